-- name: record_deferred
-- The definitions, as Postgres prints them, of those of $1 that exist now.
INSERT INTO events_deferred_indexes (name, definition, chain)
SELECT i.indexname, i.indexdef, $2
FROM pg_indexes i
WHERE i.schemaname = current_schema() AND i.tablename = 'events' AND i.indexname = ANY($1::text[])
ON CONFLICT (name) DO NOTHING;

-- name: deferred
-- What is set aside now.
SELECT name, definition, chain, deferred_at FROM events_deferred_indexes ORDER BY name;

-- name: index_exists
SELECT to_regclass(quote_ident(current_schema()) || '.' || quote_ident($1)) IS NOT NULL;

-- name: forget_deferred
DELETE FROM events_deferred_indexes WHERE name = $1;

-- name: events_estimate
-- Rows in `events` as the planner counts them (no scan); 0 before the first ANALYZE.
SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = 'events'::regclass;

-- name: lock_shared
SELECT pg_advisory_lock_shared($1);

-- name: unlock_shared
SELECT pg_advisory_unlock_shared($1);

-- name: try_lock
SELECT pg_try_advisory_lock($1);

-- name: unlock
SELECT pg_advisory_unlock($1);
