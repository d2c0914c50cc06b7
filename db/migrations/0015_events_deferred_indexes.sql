-- Secondary indexes of `events` set aside while a long backfill runs
-- (indexer/bulk.py) and the exact definition each is rebuilt from. A row
-- here means the index is, or is about to be, missing; whoever finishes
-- the last running backfill (or the next start after a crash) rebuilds it
-- and deletes the row, in one transaction with the build.
CREATE TABLE events_deferred_indexes (
    name         TEXT PRIMARY KEY,
    definition   TEXT NOT NULL,
    chain        TEXT NOT NULL,          -- the backfill that set it aside
    deferred_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
