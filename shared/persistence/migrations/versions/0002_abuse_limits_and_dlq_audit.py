"""abuse limits and dead-letter audit

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Failed redeem attempts per merchant and minute: brute-forcing codes gets 429.
    op.create_table(
        "redeem_failures",
        sa.Column("merchant_id", sa.String(200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("merchant_id", "window_start"),
    )
    # Every dead-letter replay and purge: who, when, which ids, what came of it.
    op.create_table(
        "dlq_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("message_ids", postgresql.JSONB(), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_dlq_audit_at", "dlq_audit", ["at"])


def downgrade() -> None:
    op.drop_index("ix_dlq_audit_at", table_name="dlq_audit")
    op.drop_table("dlq_audit")
    op.drop_table("redeem_failures")
