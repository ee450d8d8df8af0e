"""idempotency keys: one per caller, whatever the endpoint

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24

Why: the API's contract scopes an Idempotency-Key to the caller (``sub``). The key was unique
per caller *and endpoint*, so a caller with two roles (admin and user) could send one key
to the credit and to the issue endpoint and get two effects. Unique per (caller, key),
the second request meets the first's row; its fingerprint covers the endpoint, so it
answers 409 ``idempotency_conflict``, as a key reused with another request does.

Rows that would collide (the same caller and key on two endpoints, only possible before
this migration) keep the oldest: the first response is the one a replay must give.
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM idempotency_keys newer USING idempotency_keys older"
        " WHERE newer.caller = older.caller AND newer.key = older.key"
        " AND (newer.created_at, newer.endpoint) > (older.created_at, older.endpoint)"
    )
    op.drop_constraint("idempotency_keys_pkey", "idempotency_keys", type_="primary")
    op.create_primary_key("idempotency_keys_pkey", "idempotency_keys", ["caller", "key"])


def downgrade() -> None:
    # (caller, key) unique implies (caller, endpoint, key) unique: nothing to delete.
    op.drop_constraint("idempotency_keys_pkey", "idempotency_keys", type_="primary")
    op.create_primary_key("idempotency_keys_pkey", "idempotency_keys",
                          ["caller", "endpoint", "key"])
