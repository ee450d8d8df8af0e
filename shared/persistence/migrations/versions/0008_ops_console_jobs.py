"""ops console: replay and purge jobs, and periodic samples for its charts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Why: a replay or purge started from the web console must outlive the API process that
accepted it and report its progress to whoever polls. The job is a row: the API inserts it
``queued``; an ``ops`` worker role claims it with a conditional update (so two workers never
run one job), moves the dead letters, and writes done / total / failed as it goes. A job
whose worker died (no heartbeat) is claimed again; messages already acked are gone from the
parking queue, so the second run only moves what is left.

``ops_samples``: one row every few seconds from the same role (expiry lateness, outbox
backlog, dead-letter depth), read by the console's charts of the last hour.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ops_jobs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("selection", JSONB, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("total", sa.Integer, nullable=True),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message_ids", JSONB, nullable=True),
        sa.Column("outcomes", JSONB, nullable=False, server_default="{}"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("audit_id", sa.BigInteger, nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('replay', 'purge')", name="ops_job_kind"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="ops_job_status"),
        sa.CheckConstraint("rate > 0", name="ops_job_rate_positive"),
    )
    # The claim looks for queued jobs, or running ones whose worker went silent.
    op.create_index("ix_ops_jobs_open", "ops_jobs", ["id"],
                    postgresql_where=sa.text("status IN ('queued', 'running')"))
    op.create_table(
        "ops_samples",
        sa.Column("at", sa.DateTime(timezone=True), primary_key=True,
                  server_default=sa.func.now()),
        sa.Column("figures", JSONB, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ops_samples")
    op.drop_index("ix_ops_jobs_open", table_name="ops_jobs")
    op.drop_table("ops_jobs")
