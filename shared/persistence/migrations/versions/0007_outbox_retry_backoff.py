"""outbox: a row that failed to publish waits before its next attempt

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24

Why: the relay claims the oldest unsent rows. A row the broker keeps refusing (returned
as unroutable because a queue or binding is missing, nacked, or never confirmed) was
unmarked and claimed again at the next poll, first in line: once such rows filled the
relay's batches, no newer row was ever claimed, and one undeliverable event type stopped
every other (TokenIssued, so expiry timers; TokenRedeemed, so exchange requests). A
failed row now gets ``next_attempt_at`` (backing off with its attempts, at most 30 s),
and the claim passes over rows whose time has not come.

Nullable and without a default: adding it rewrites nothing.
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "next_attempt_at")
