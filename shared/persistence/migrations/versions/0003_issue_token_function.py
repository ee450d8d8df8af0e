"""issue_token: the issue transaction as one server-side function

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Why a function: issuing is the hot path of the API. As statements sent one by one it took
several round trips (lock and count, then debit, token, ledger and outbox) and most of the
API's CPU went into building them. As one call it is one round trip whose plans PL/pgSQL
caches, and each of its statements still takes a fresh snapshot (READ COMMITTED), so the
count of active tokens made after the account lock sees every token committed before it:
the limit holds under concurrent issues by one user, which a single CTE statement (one
snapshot, taken before the lock wait) would not guarantee.

It decides and writes nothing else: restoring the user's expired tokens stays in Python
(shared/services/refund.py, the one refund path). When there are some, the function
answers 'sweep' without writing; the caller restores them in its transaction and calls
again with p_swept = true.
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# RFC 3339 in UTC with a Z, as pydantic writes the events the rest of the code records.
_RFC3339 = """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'"""

ISSUE_TOKEN = f"""
CREATE FUNCTION issue_token(
    p_user_id text, p_points bigint, p_reward text, p_token_id uuid, p_code text,
    p_event_id uuid, p_ttl_seconds integer, p_max_active integer, p_headers jsonb,
    p_schema_version integer, p_now timestamptz, p_swept boolean)
RETURNS TABLE (outcome text, balance bigint, now timestamptz, expires_at timestamptz)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    -- p_now is NULL in production: the transaction's now(), the one clock. Tests pass a
    -- fixed instant to step time without sleeping.
    v_now timestamptz := coalesce(p_now, now());
    v_balance bigint;
    v_active integer;
    v_expired boolean;
    v_expires timestamptz;
BEGIN
    -- The account row first: concurrent issues of one user queue here.
    SELECT a.balance INTO v_balance FROM accounts a WHERE a.user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_account'::text, 0::bigint, v_now, NULL::timestamptz;
        RETURN;
    END IF;
    -- A new snapshot: every token committed before we got the lock is counted.
    SELECT count(*) FILTER (WHERE t.expires_at > v_now), coalesce(bool_or(t.expires_at <= v_now), false)
      INTO v_active, v_expired
      FROM exchange_tokens t WHERE t.user_id = p_user_id AND t.status = 'active';
    IF v_expired AND NOT p_swept THEN
        RETURN QUERY SELECT 'sweep'::text, v_balance, v_now, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_balance < p_points THEN
        RETURN QUERY SELECT 'insufficient'::text, v_balance, v_now, NULL::timestamptz;
        RETURN;
    END IF;
    IF v_active >= p_max_active THEN
        RETURN QUERY SELECT 'too_many'::text, v_balance, v_now, NULL::timestamptz;
        RETURN;
    END IF;
    v_expires := v_now + make_interval(secs => p_ttl_seconds);
    -- The conditional debit stays the overdraft guard, whatever was read above.
    UPDATE accounts a SET balance = a.balance - p_points, updated_at = v_now
     WHERE a.user_id = p_user_id AND a.balance >= p_points
    RETURNING a.balance INTO v_balance;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'insufficient'::text, 0::bigint, v_now, NULL::timestamptz;
        RETURN;
    END IF;
    INSERT INTO exchange_tokens (id, code, user_id, points, reward, status, created_at, expires_at)
    VALUES (p_token_id, p_code, p_user_id, p_points, p_reward, 'active', v_now, v_expires);
    INSERT INTO ledger (user_id, amount, kind, reason, token_id, token_code, created_at)
    VALUES (p_user_id, -p_points, 'debit', 'token issued', p_token_id, p_code, v_now);
    -- TokenIssued (schemas/events.py), written as pydantic writes it.
    INSERT INTO outbox (event_id, event_type, payload, headers)
    VALUES (p_event_id, 'TokenIssued', jsonb_build_object(
        'event_id', p_event_id, 'schema_version', p_schema_version,
        'occurred_at', to_char(v_now AT TIME ZONE 'UTC', {_RFC3339}),
        'token_id', p_token_id, 'user_id', p_user_id, 'points', p_points,
        'type', 'TokenIssued',
        'expires_at', to_char(v_expires AT TIME ZONE 'UTC', {_RFC3339})), p_headers);
    RETURN QUERY SELECT 'issued'::text, v_balance, v_now, v_expires;
END
$fn$
"""


def upgrade() -> None:
    op.execute(ISSUE_TOKEN)


def downgrade() -> None:
    op.execute("DROP FUNCTION issue_token(text, bigint, text, uuid, text, uuid, integer, "
               "integer, jsonb, integer, timestamptz, boolean)")
