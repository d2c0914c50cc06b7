-- name: ensure_chain
-- One row per chain; created on first start, never overwritten.
INSERT INTO chain_state (chain, kind, chain_id)
VALUES ($1, $2, $3)
ON CONFLICT (chain) DO NOTHING;

-- name: chain_identity_and_state
-- At start-up, on the connection that just ensured the row: what network it
-- is stored as, and load_state's columns, in one read.
SELECT kind, chain_id, cursor_number, cursor_hash, final_number, halted_reason, status
FROM chain_state WHERE chain = $1;

-- name: load_state
SELECT cursor_number, cursor_hash, final_number, halted_reason, status
FROM chain_state WHERE chain = $1;

-- name: lock_state
-- Serializes writers of one chain inside a transaction (takes the row lock).
SELECT cursor_number, cursor_hash, final_number, halted_reason
FROM chain_state WHERE chain = $1 FOR UPDATE;

-- name: create_events_in
-- Staging table for COPY; rows vanish at commit.
CREATE TEMP TABLE IF NOT EXISTS events_in (
    chain TEXT, block_number BIGINT, block_hash TEXT, tx_hash TEXT,
    tx_index INT, log_index INT, address TEXT, event TEXT, args TEXT
) ON COMMIT DELETE ROWS;

-- name: insert_events_from_staging
-- Natural key + DO NOTHING: replaying a range inserts nothing.
INSERT INTO events (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event, args)
SELECT chain, block_number, block_hash, tx_hash, tx_index, log_index, address, event, args::jsonb
FROM events_in
ON CONFLICT DO NOTHING;

-- name: events_exist_from
-- Any rows at or above a block: decides whether COPY can go straight in.
SELECT EXISTS (SELECT 1 FROM events WHERE chain = $1 AND block_number >= $2);

-- name: events_above_final
-- Said by a writer whose rows are all above the final height, for the rest
-- of its transaction (db/migrations/0013: a late insert is final at once).
SELECT set_config('chainsettle.events_above_final', 'on', true);

-- name: insert_raw_log
INSERT INTO raw_logs (chain, block_number, block_hash, tx_hash, tx_index, log_index, address, topics, data, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT DO NOTHING;

-- name: upsert_block
-- A block number can come back with a new hash after a reorg.
INSERT INTO blocks (chain, number, hash, parent_hash, timestamp)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (chain, number) DO UPDATE
SET hash = EXCLUDED.hash, parent_hash = EXCLUDED.parent_hash, timestamp = EXCLUDED.timestamp;

-- name: set_cursor
-- The head moves up with the cursor: a block we indexed exists, so the
-- status never shows `indexed` above `head` (the head report may lag).
UPDATE chain_state
SET cursor_number = $2, cursor_hash = $3,
    final_number = GREATEST(COALESCE(final_number, $4), $4),
    head_number = GREATEST(COALESCE(head_number, $2), $2),
    updated_at = now()
WHERE chain = $1;

-- name: set_final
UPDATE chain_state SET final_number = $2, updated_at = now()
WHERE chain = $1 AND (final_number IS NULL OR final_number < $2);

-- name: prune_blocks
-- Keep the window above finality plus a margin; older hashes are history.
DELETE FROM blocks WHERE chain = $1 AND number < $2;

-- name: stored_blocks_desc
SELECT number, hash, parent_hash FROM blocks
WHERE chain = $1 AND number <= $2 AND number >= $3
ORDER BY number DESC;

-- name: stored_block
SELECT number, hash, parent_hash FROM blocks WHERE chain = $1 AND number = $2;

-- name: delete_events_above
DELETE FROM events WHERE chain = $1 AND block_number > $2;

-- name: delete_raw_logs_above
DELETE FROM raw_logs WHERE chain = $1 AND block_number > $2;

-- name: delete_blocks_above
DELETE FROM blocks WHERE chain = $1 AND number > $2;

-- name: record_reorg
INSERT INTO reorgs (chain, common_ancestor, old_cursor, depth, deleted_events)
VALUES ($1, $2, $3, $4, $5);

-- name: rewind_cursor
UPDATE chain_state
SET cursor_number = $2, cursor_hash = $3, reorg_count = reorg_count + 1, updated_at = now()
WHERE chain = $1;

-- name: set_halted
UPDATE chain_state SET halted_reason = $2, updated_at = now() WHERE chain = $1;

-- name: set_status
-- Follower health for the API and other processes; merged, not replaced.
UPDATE chain_state
SET status = status || $2::jsonb, head_number = GREATEST(COALESCE($3, head_number), cursor_number),
    chain_finalized = COALESCE($4, chain_finalized),
    head_seen_at = CASE WHEN $3 IS NULL THEN head_seen_at ELSE now() END,
    updated_at = now()
WHERE chain = $1;

-- name: canonical_hashes
-- The hash we hold for each block number in [$2, $3]: the block window, else
-- the events and raw logs already stored there (one hash per number).
SELECT number, hash FROM blocks WHERE chain = $1 AND number BETWEEN $2 AND $3
UNION
SELECT DISTINCT block_number, block_hash FROM events
WHERE chain = $1 AND block_number BETWEEN $2 AND $3
UNION
SELECT DISTINCT block_number, block_hash FROM raw_logs
WHERE chain = $1 AND block_number BETWEEN $2 AND $3;

-- name: final_log_keys
-- What we store of contract logs in [$2, $3] (events and raw logs), for the
-- background re-scan to compare with the chain.
SELECT block_number, block_hash, tx_hash, log_index FROM events
WHERE chain = $1 AND block_number BETWEEN $2 AND $3 AND address = ANY($4::text[])
UNION ALL
SELECT block_number, block_hash, tx_hash, log_index FROM raw_logs
WHERE chain = $1 AND block_number BETWEEN $2 AND $3 AND address = ANY($4::text[]);

-- name: rewind_below_final
-- An operator's rewind (`chains unhalt --rewind-to`): cursor and final height
-- back to $2, the halt cleared, in the transaction that deleted above $2.
UPDATE chain_state
SET cursor_number = $2, cursor_hash = $3, final_number = LEAST(COALESCE(final_number, $2), $2),
    halted_reason = NULL, reorg_count = reorg_count + 1, updated_at = now()
WHERE chain = $1;

-- name: insert_child
-- A contract a factory announced; the announcing event's key rides along.
-- Replays and re-announcements of a known address insert nothing.
INSERT INTO factory_children (chain, address, factory, factory_address, block_number, block_hash, tx_hash,
                              tx_index, log_index)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (chain, address) DO NOTHING;

-- name: load_children
-- The children a follower fetches logs of, at start and after a rollback.
SELECT address, factory_address, block_number FROM factory_children WHERE chain = $1 ORDER BY block_number, address;

-- name: delete_children_above
-- Children whose creation a reorg (or a rewind) removed, with their events.
DELETE FROM factory_children WHERE chain = $1 AND block_number > $2;
