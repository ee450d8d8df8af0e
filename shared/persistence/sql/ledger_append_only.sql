-- ledger_append_only: the trigger function that refuses any UPDATE or DELETE on the ledger,
-- so its history is never rewritten, whatever code runs (trigger ledger_append_only).
-- Created by migration 0001; tests check the migrated database holds exactly this.
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'ledger is append-only (% refused)', TG_OP;
        END $$;
