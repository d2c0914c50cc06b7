-- Commit order for the live event feed (/v1/stream).
--
-- events.id does not follow commit order: ids come from per-connection
-- sequence caches (CACHE 1000), so a row can commit after rows with higher
-- ids, and a reader that resumes "after id N" would skip it for good.
-- `tx` is the inserting transaction's id. A reader that takes only rows
-- with tx below its snapshot's xmin sees every transaction below that
-- point finished, and any later writer gets a larger xid, so resuming
-- "after (tx, id)" never skips a row.
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_feed ON events (tx, id);
