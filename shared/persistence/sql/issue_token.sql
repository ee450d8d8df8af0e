-- issue_token: the whole issue as one call (the API's hot path).
-- Locks the account, counts the user's active tokens after the lock (a fresh snapshot per
-- statement under READ COMMITTED, so concurrent issues by one user respect the limit),
-- debits, inserts the token, its ledger row and its TokenIssued event. Answers 'sweep'
-- without writing when the user has due tokens: the caller refunds them and calls again.
-- Created by migration 0003; tests check the migrated database holds exactly this.
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
        'occurred_at', to_char(v_now AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'token_id', p_token_id, 'user_id', p_user_id, 'points', p_points,
        'type', 'TokenIssued',
        'expires_at', to_char(v_expires AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), p_headers);
    RETURN QUERY SELECT 'issued'::text, v_balance, v_now, v_expires;
END
$fn$;
