-- Integrity against lying nodes and hostile clients (issue 12).
--
-- A reconciliation run that compared nothing (every wallet's books start
-- above H) is `skipped`: it must not read as a fresh "ok".
ALTER TABLE reconciliation_runs DROP CONSTRAINT reconciliation_runs_status_check;
ALTER TABLE reconciliation_runs ADD CONSTRAINT reconciliation_runs_status_check
    CHECK (status IN ('ok', 'mismatch', 'error', 'skipped'));
