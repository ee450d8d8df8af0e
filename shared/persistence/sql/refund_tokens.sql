-- refund_tokens: delete tokens the caller has locked, append one refund per token, one
-- credit per account (accounts locked in user-id order), one event per token.
-- The one way points come back (shared/services/refund.py chooses and locks the tokens).
-- Created by migration 0004; tests check the migrated database holds exactly this.
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
                       'expires_at', to_char(e.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       'restored', true)
                   ELSE '{}'::jsonb END,
               p_headers
        FROM (
            SELECT ev.event_id, ev.type, ev.expires_at, jsonb_build_object(
                       'event_id', ev.event_id, 'type', ev.type,
                       'schema_version', p_schema_version,
                       'occurred_at', to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
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
$fn$;
