"""refund_tokens: the writes of a refund batch as one server-side function

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Why a function: a worker refunds expired tokens in batches, and the batch's writes were
four statements built by the ORM (delete, ledger rows, account credits, outbox events),
with an event object and its JSON made in Python for every token. Most of a refund's cost
was that Python, not PostgreSQL. Here the writes are one call.

The caller (shared/services/refund.py) has already chosen the tokens and locked them
(SELECT ... ORDER BY expires_at, id FOR UPDATE, which re-checks its condition on the
newest row version), so nothing can change them before this runs. The function then locks
their owners' accounts in user-id order, the one order every transaction uses, deletes
the tokens, appends one refund row each, credits each account once with the sum, and
records TokenExpired (restored) or TokenCancelled for each, as pydantic writes them.
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RFC3339 = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""

REFUND_TOKENS = f"""
CREATE FUNCTION refund_tokens(
    p_ids uuid[], p_reason text, p_now timestamptz, p_headers jsonb, p_schema_version integer)
RETURNS TABLE (token_id uuid, user_id text, points bigint, expires_at timestamptz,
               balance bigint, now timestamptz)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    v_now timestamptz := coalesce(p_now, now());
BEGIN
    PERFORM 1 FROM accounts a
     WHERE a.user_id IN (SELECT t.user_id FROM exchange_tokens t WHERE t.id = ANY(p_ids))
     ORDER BY a.user_id FOR UPDATE;
    RETURN QUERY
    WITH gone AS (
        DELETE FROM exchange_tokens t WHERE t.id = ANY(p_ids)
        RETURNING t.id, t.user_id, t.points, t.code, t.expires_at
    ), entries AS (
        INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)
        SELECT g.user_id, g.points, 'refund', p_reason, g.id, g.code, v_now FROM gone g
    ), events AS (
        -- TokenExpired with restored = true, or TokenCancelled (schemas/events.py).
        INSERT INTO outbox (event_id, event_type, payload, headers)
        SELECT e.event_id, e.type, e.payload || CASE WHEN p_reason = 'expired' THEN
                   jsonb_build_object(
                       'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC', {_RFC3339}),
                       'restored', true)
                   ELSE '{{}}'::jsonb END,
               p_headers
        FROM (
            SELECT ev.event_id, ev.type, ev.expires_at, jsonb_build_object(
                       'event_id', ev.event_id, 'type', ev.type,
                       'schema_version', p_schema_version,
                       'occurred_at', to_char(v_now AT TIME ZONE 'UTC', {_RFC3339}),
                       'token_id', ev.id, 'user_id', ev.user_id, 'points', ev.points) AS payload
            FROM (SELECT gen_random_uuid() AS event_id,
                         CASE WHEN p_reason = 'expired' THEN 'TokenExpired'
                              ELSE 'TokenCancelled' END AS type,
                         g.id, g.user_id, g.points, g.expires_at
                  FROM gone g) ev
        ) e
    ), credited AS (
        UPDATE accounts a SET balance = a.balance + s.total, updated_at = v_now
        FROM (SELECT g.user_id, sum(g.points) AS total FROM gone g GROUP BY g.user_id) s
        WHERE a.user_id = s.user_id
        RETURNING a.user_id, a.balance
    )
    -- LEFT JOIN: a token whose account is missing comes back with a NULL balance, and the
    -- caller refuses to commit (a refund always has its account, debited at issue).
    SELECT g.id, g.user_id::text, g.points::bigint, g.expires_at, c.balance::bigint, v_now
    FROM gone g LEFT JOIN credited c ON c.user_id = g.user_id
    ORDER BY g.expires_at, g.id;
END
$fn$
"""


def upgrade() -> None:
    op.execute(REFUND_TOKENS)


def downgrade() -> None:
    op.execute("DROP FUNCTION refund_tokens(uuid[], text, timestamptz, jsonb, integer)")
