-- name: events_page_begin
-- The first statement of a page's read-only transaction, in one round trip:
-- - plan_cache_mode: optional filters ($n IS NULL OR col = $n) need a plan
--   made for the actual values; a generic plan would scan by id and filter
--   everything.
-- - enable_bitmapscan off: a page is an ordered index range read up to its
--   LIMIT (see events_page_asc). A bitmap scan returns rows out of order, so
--   its plan reads and sorts every matching row; the planner picks it when it
--   underestimates the matches, as it does before `events` has statistics
--   (right after a backfill: autovacuum analyzes a minute or more later,
--   pg_upgrade drops them), and then every page costs a scan of the chain.
-- - statement_timeout: $1 ms for this transaction's statements, whatever pool
--   the API was given.
-- Returns the horizon (see feed_horizon), from the transaction's snapshot.
SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
       set_config('enable_bitmapscan', 'off', true),
       set_config('statement_timeout', $1, true),
       pg_snapshot_xmin(pg_current_snapshot())::text AS horizon;

-- name: chain_states
-- Every chain a follower registered, with the indexed block's timestamp (for lag in seconds).
SELECT s.chain, s.kind, s.chain_id, s.cursor_number, s.final_number, s.head_number, s.chain_finalized,
       s.head_seen_at, s.halted_reason, s.reorg_count, s.status, s.updated_at,
       b.timestamp AS cursor_timestamp,
       extract(epoch FROM now())::float8 AS db_now
FROM chain_state s
LEFT JOIN blocks b ON b.chain = s.chain AND b.number = s.cursor_number
ORDER BY s.chain;

-- name: recent_reorgs
-- The last $1 reorgs of each chain, newest first.
SELECT id, chain, detected_at, common_ancestor, old_cursor, depth, deleted_events
FROM (
    SELECT r.*, row_number() OVER (PARTITION BY r.chain ORDER BY r.id DESC) AS n
    FROM reorgs r
) x
WHERE n <= $1
ORDER BY chain, id DESC;

-- name: events_page_asc
-- Keyset page in commit order (tx, id) after cursor ($6 tx, $7 id), only from
-- transactions below the horizon $8 (every one of them has finished, and any
-- later writer gets a larger xid: following `next` never skips a row; see
-- db/migrations/0003_event_feed.sql). NULL filters match everything; the API
-- refuses address/event/block filters without a chain, so every page is an
-- index range: events_feed, or events_chain_commit / _address_ / _event_
-- (0009), keyed on text_key() of the filtered columns (0014).
SELECT e.tx::text AS tx, e.id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       e.address, e.event, e.args, e.inserted_at,
       (s.final_number IS NOT NULL AND e.block_number <= s.final_number) AS final
FROM events e
LEFT JOIN chain_state s ON s.chain = e.chain
WHERE ($1::text IS NULL OR (text_key(e.chain) = text_key($1) AND e.chain = $1))
  AND ($2::text IS NULL OR (text_key(e.address) = text_key($2) AND e.address = $2))
  AND ($3::text IS NULL OR (text_key(e.event) = text_key($3) AND e.event = $3))
  AND ($4::bigint IS NULL OR e.block_number >= $4)
  AND ($5::bigint IS NULL OR e.block_number <= $5)
  AND ($6::text IS NULL OR (e.tx, e.id) > ($6::text::xid8, $7::bigint))
  AND e.tx < $8::text::xid8
ORDER BY e.tx, e.id
LIMIT $9;

-- name: events_page_desc
-- Keyset page, newest commit first, before cursor ($6 tx, $7 id), below horizon $8.
SELECT e.tx::text AS tx, e.id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       e.address, e.event, e.args, e.inserted_at,
       (s.final_number IS NOT NULL AND e.block_number <= s.final_number) AS final
FROM events e
LEFT JOIN chain_state s ON s.chain = e.chain
WHERE ($1::text IS NULL OR (text_key(e.chain) = text_key($1) AND e.chain = $1))
  AND ($2::text IS NULL OR (text_key(e.address) = text_key($2) AND e.address = $2))
  AND ($3::text IS NULL OR (text_key(e.event) = text_key($3) AND e.event = $3))
  AND ($4::bigint IS NULL OR e.block_number >= $4)
  AND ($5::bigint IS NULL OR e.block_number <= $5)
  AND ($6::text IS NULL OR (e.tx, e.id) < ($6::text::xid8, $7::bigint))
  AND e.tx < $8::text::xid8
ORDER BY e.tx DESC, e.id DESC
LIMIT $9;

-- name: feed_horizon
-- Every transaction below this xid has finished: where a new feed starts, and
-- the bound of each read (see db/migrations/0003_event_feed.sql).
SELECT pg_snapshot_xmin(pg_current_snapshot())::text;

-- name: feed_events_after
-- Events after ($1 tx, $2 id) in commit order, from transactions below horizon $3.
SELECT e.tx::text AS tx, e.id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       e.address, e.event, e.args, e.inserted_at,
       (s.final_number IS NOT NULL AND e.block_number <= s.final_number) AS final
FROM events e
LEFT JOIN chain_state s ON s.chain = e.chain
WHERE (e.tx, e.id) > ($1::text::xid8, $2::bigint)
  AND e.tx < $3::text::xid8
ORDER BY e.tx, e.id
LIMIT $4;

-- name: feed_outbox_after
-- Payout, batch, reconciliation, pause and kill-switch changes after ($1 tx, $2 id), below horizon $3.
-- Qualified: an unqualified `tx` in ORDER BY is the text output column (999 after 1000).
SELECT o.tx::text AS tx, o.id, o.kind, o.chain, o.payload
FROM feed_outbox o
WHERE (o.tx, o.id) > ($1::text::xid8, $2::bigint)
  AND o.tx < $3::text::xid8
ORDER BY o.tx, o.id
LIMIT $4;

-- name: account_by_ref
-- An account by its code ('user:anvil:0x..') or its numeric id.
SELECT id, code, kind, label, created_at
FROM ledger_accounts
WHERE code = $1 OR id = $2::bigint
ORDER BY (code = $1) DESC
LIMIT 1;

-- name: reconciliation_page
-- Runs newest first before cursor $3, each with its per-wallet, per-asset results.
SELECT r.id, r.chain, r.height, r.started_at, r.finished_at, r.status, r.error, r.checked, r.mismatches,
       COALESCE((
           SELECT jsonb_agg(jsonb_build_object(
                      'account', a.code, 'asset_id', x.asset_id,
                      'expected', x.expected::text, 'actual', x.actual::text,
                      'difference', x.difference::text, 'tolerance', x.tolerance::text,
                      'status', x.status, 'movements', x.movements,
                      'movements_total', x.movements_total) ORDER BY a.code, x.asset_id)
           FROM reconciliation_results x
           JOIN ledger_accounts a ON a.id = x.account_id
           WHERE x.run_id = r.id
       ), '[]'::jsonb) AS results
FROM reconciliation_runs r
WHERE ($1::text IS NULL OR r.chain = $1)
  AND ($2::text IS NULL OR r.status = $2)
  AND ($3::bigint IS NULL OR r.id < $3)
ORDER BY r.id DESC
LIMIT $4;

-- name: chain_known
-- A chain with stored state (configured now or before): /v1/events answers for it.
SELECT EXISTS (SELECT 1 FROM chain_state WHERE chain = $1);

-- name: asset_units
-- Symbols and decimals for showing amounts in an asset's units (public: chain configuration).
SELECT id, chain, name, kind, contract, symbol, decimals FROM assets ORDER BY id;

-- name: latest_reconciliations
-- The newest run of each chain.
SELECT DISTINCT ON (chain) id, chain, height, started_at, finished_at, status, error, checked, mismatches
FROM reconciliation_runs
ORDER BY chain, id DESC;

-- name: open_pause_rows
SELECT asset_id, reason, run_id, paused_by, paused_at
FROM asset_pauses WHERE resolved_at IS NULL ORDER BY asset_id;

-- name: payout_queue
-- Payout requests still to be paid, by chain, asset and state (paid and
-- cancelled ones are over; the open-state index holds the rest).
SELECT chain, asset, state, count(*) AS count, sum(amount)::text AS amount
FROM payout_requests WHERE NOT payout_state_terminal(state)
GROUP BY chain, asset, state ORDER BY chain, asset, state;

-- name: open_batches
-- Batches not yet over, reverted ones included: they wait for an operator or their expiry.
-- `ids`: the oldest few, so the status page can say which batch to approve or release.
SELECT chain, state, count(*) AS count, (array_agg(batch_id ORDER BY created_at, batch_id))[1:5] AS ids
FROM payout_batches WHERE NOT payout_state_terminal(state)
GROUP BY chain, state ORDER BY chain, state;

-- name: payout_kill_switches
SELECT scope, reason, changed_by, changed_at FROM payout_controls WHERE killed ORDER BY scope;

-- name: payout_by_ref
-- A payout request by numeric id, else by idempotency key, with where its batch stands.
SELECT r.id, r.idempotency_key, r.chain, r.asset, r.recipient, r.amount::text AS amount, r.state, r.reason,
       r.batch_id, r.requested_by, r.created_at, r.updated_at, r.from_account,
       b.state AS batch_state, b.executed_block, b.executed_tx, i.outcome
FROM payout_requests r
LEFT JOIN payout_batches b ON b.batch_id = r.batch_id
LEFT JOIN payout_items i ON i.batch_id = r.batch_id AND i.request_id = r.id
WHERE r.id = $2::bigint OR ($2::bigint IS NULL AND r.idempotency_key = $1);

-- name: payouts_to
-- Payout requests to one recipient on one chain, newest first, before cursor $3.
SELECT r.id, r.idempotency_key, r.chain, r.asset, r.recipient, r.amount::text AS amount, r.state, r.reason,
       r.batch_id, r.requested_by, r.created_at, r.updated_at,
       b.state AS batch_state, b.executed_block, b.executed_tx, i.outcome
FROM payout_requests r
LEFT JOIN payout_batches b ON b.batch_id = r.batch_id
LEFT JOIN payout_items i ON i.batch_id = r.batch_id AND i.request_id = r.id
WHERE r.chain = $1 AND r.recipient = $2 AND ($3::bigint IS NULL OR r.id < $3)
ORDER BY r.id DESC
LIMIT $4;

-- name: batch_by_id
-- A batch without its signature (it authorizes execution; clients have no use for it).
SELECT batch_id, chain, asset, token, source, treasury, batcher, item_count, total::text AS total, gas_limit,
       expiry, state, reason, approved_by, approved_at, signer, replaces, executed_block, executed_tx,
       failed_count, failed_amount::text AS failed_amount, created_at, updated_at
FROM payout_batches WHERE batch_id = $1;

-- name: batch_item_rows
SELECT idx, request_id, recipient, amount::text AS amount, outcome
FROM payout_items WHERE batch_id = $1 ORDER BY idx;

-- name: batch_transactions
-- The batch's signed transactions (raw bytes left out), in signing order.
SELECT tx_hash, sender, nonce, attempt, state, broadcasts, gas_limit, max_fee_per_gas::text AS max_fee_per_gas,
       max_priority_fee_per_gas::text AS max_priority_fee_per_gas, mined_block, receipt_status, last_error,
       created_at, last_broadcast_at
FROM evm_txs WHERE batch_id = $1 ORDER BY nonce, attempt;

-- name: schema_ready
-- The newest tables this API reads: events.tx (0003), the payout tables (0005), the feed outbox (0007).
SELECT to_regclass('payout_requests') IS NOT NULL AND to_regclass('feed_outbox') IS NOT NULL AND EXISTS (
    SELECT 1 FROM information_schema.columns
    WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'tx'
);

-- name: asset_exists
SELECT 1 FROM assets WHERE id = $1;

-- name: insert_replay
INSERT INTO replay_requests (chain, from_block, to_block, reason, requested_by)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, chain, from_block, to_block, reason, requested_by, state, attempts, inserted, error,
          created_at, started_at, finished_at;

-- name: replay_by_id
SELECT id, chain, from_block, to_block, reason, requested_by, state, attempts, inserted, error,
       created_at, started_at, finished_at
FROM replay_requests WHERE id = $1;
