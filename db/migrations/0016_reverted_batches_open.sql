-- A reverted batch is not over (issue 16, after 0015).
--
-- 0015 named 'reverted' among the terminal states. It is not one: a batch
-- whose transaction reverted holds its requests and waits, for its expiry
-- (expire_batch: reverted -> expired) or an operator (cancel: -> cancelled).
-- As "terminal" it left the open-state index and, had /v1/status used the
-- definition, the status page while an operator still had to act. The
-- gauges were exact either way (the triggers count moves out of a terminal
-- state too); this moves reverted batches back to the open count.
--
-- Writers wait for this migration's transaction: no statement moves a batch
-- between the old and the new definition.
LOCK TABLE payout_batches IN SHARE ROW EXCLUSIVE MODE;

CREATE OR REPLACE FUNCTION payout_state_terminal(TEXT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT $1 IN ('paid', 'cancelled', 'confirmed', 'expired') $$;

DELETE FROM payout_state_totals WHERE kind = 'batch' AND state = 'reverted';

-- The partial index's predicate changed meaning with the function: build it
-- again. No request state was terminal by the old definition and open by the
-- new one, so payout_requests_open_states holds the same rows as before.
DROP INDEX payout_batches_open_states;
CREATE INDEX payout_batches_open_states ON payout_batches (chain, state) WHERE NOT payout_state_terminal(state);
