-- Evidence a person can act on (issue 30): why reconciliation differs, why a relay is stuck.
--
-- The movements that explain a difference are stored with the run.
--
-- A mismatch lists the events that touched the wallet since it last matched,
-- unbooked first, then the largest: on a busy wallet the newest ones are all
-- booked and hide the cause. They were only in the CLI's report; now
-- /v1/reconciliation and the status page show what the run saw.
ALTER TABLE reconciliation_results
    ADD COLUMN movements JSONB NOT NULL DEFAULT '[]'::jsonb CHECK (jsonb_typeof(movements) = 'array'),
    -- how many movements there were in all (the stored list is capped by reconcile.max_movements)
    ADD COLUMN movements_total INT NOT NULL DEFAULT 0 CHECK (movements_total >= 0);

-- A relay that says why it is stuck: the outcome and reason of a
-- subscription's last failed attempt, cleared by its next success. The relay
-- logs once when they change; /v1/deliveries and the status page show them.
ALTER TABLE delivery_subscriptions
    ADD COLUMN last_outcome TEXT CHECK (last_outcome IN ('http_error', 'timeout', 'network', 'refused', 'gone')),
    ADD COLUMN last_error TEXT CHECK (length(last_error) <= 1000);
