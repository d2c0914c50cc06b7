-- The movements that explain a difference are stored with the run (issue 30).
--
-- A mismatch lists the events that touched the wallet since it last matched,
-- unbooked first, then the largest: on a busy wallet the newest ones are all
-- booked and hide the cause. They were only in the CLI's report; now
-- /v1/reconciliation and the status page show what the run saw.
ALTER TABLE reconciliation_results
    ADD COLUMN movements JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(movements) = 'array'),
    -- how many movements there were in all (the stored list is capped by reconcile.max_movements)
    ADD COLUMN movements_total INT NOT NULL DEFAULT 0 CHECK (movements_total >= 0);
