-- Integrity against lying nodes and hostile clients (issue 12).
--
-- A reconciliation run that compared nothing (every wallet's books start
-- above H) is `skipped`: it must not read as a fresh "ok".
ALTER TABLE reconciliation_runs DROP CONSTRAINT reconciliation_runs_status_check;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_status_check
    CHECK (status IN ('ok', 'mismatch', 'error', 'skipped'));

-- /v1/events pages in commit order (tx, id), like the SSE feed. Every filter
-- a client may send is an index range: no filter -> events_feed (tx, id);
-- chain -> events_chain_commit; chain + address -> events_chain_address_commit;
-- chain + event -> events_chain_event_commit. Block bounds ride on the chain
-- index as a filter, under the API's short statement timeout.
CREATE INDEX events_chain_commit ON events (chain, tx, id);
CREATE INDEX events_chain_address_commit ON events (chain, address, tx, id);
CREATE INDEX events_chain_event_commit ON events (chain, event, tx, id);
