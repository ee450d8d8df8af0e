"""outbox: no NOTIFY on insert; the relay polls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

Why: a transaction that has called NOTIFY takes, as it commits, one lock for the whole
cluster (PostgreSQL queues notifications in commit order that way) and keeps it until its
commit record is flushed to disk. Every transaction that records an event (every issue,
redeem, cancel and refund batch) inserted an outbox row, so the trigger made them commit
one at a time, each waiting for its own WAL flush while the others waited on the lock:
no group commit. Sampled under the API benchmark (pg_locks, pg_stat_activity): one issue
in WALSync holding AccessExclusiveLock on object (pg_database, 0), the others waiting for
it. On this machine's fast disk that cost little; on a disk with a 1 ms flush it would cap
every instance together at about a thousand such commits a second.

The relay now polls the outbox every 100 ms when idle (workers/relay.py) and, after a
full batch, at once: an event waits 50 ms on average before it is published, which no
consumer notices (expiry timers count from expires_at, not from publication).
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS outbox_notify ON outbox")
    op.execute("DROP FUNCTION IF EXISTS outbox_notify()")


def downgrade() -> None:
    op.execute("""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('outbox_new', '');
            RETURN NULL;
        END $$;
    """)
    op.execute("""
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
    """)
