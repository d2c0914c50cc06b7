-- EVM batch payouts: signing, nonces, transactions, confirmation from final events.

-- name: ensure_nonce
INSERT INTO evm_nonces (chain, sender, next_nonce) VALUES ($1, $2, $3)
ON CONFLICT (chain, sender) DO NOTHING;

-- name: claim_nonce
-- Below the chain's own count every nonce is used already, ours or not.
UPDATE evm_nonces SET next_nonce = GREATEST(next_nonce, $3) + 1, updated_at = now()
WHERE chain = $1 AND sender = $2
RETURNING next_nonce - 1;

-- name: insert_tx
INSERT INTO evm_txs (chain, sender, nonce, attempt, purpose, batch_id, raw, tx_hash, gas_limit,
                     max_fee_per_gas, max_priority_fee_per_gas, owner_call_id, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'signed')
RETURNING id;

-- name: open_nonces
-- Nonces with a transaction still in flight (or not yet broadcast), or mined in a block not yet final.
SELECT DISTINCT nonce FROM evm_txs
WHERE chain = $1 AND sender = $2
  AND (state IN ('signed', 'broadcast', 'stuck_fee_cap') OR (state = 'mined' AND NOT final))
ORDER BY nonce;

-- name: nonce_attempts
-- Every attempt at one nonce: any of them may be the one that gets mined.
SELECT * FROM evm_txs
WHERE chain = $1 AND sender = $2 AND nonce = $3 AND state <> 'dropped'
ORDER BY attempt;

-- name: mark_broadcast
UPDATE evm_txs
SET state = CASE WHEN state = 'signed' THEN 'broadcast' ELSE state END,
    broadcasts = broadcasts + 1, last_broadcast_at = now(),
    last_error = CASE WHEN state = 'stuck_fee_cap' THEN last_error ELSE $2 END
WHERE id = $1
RETURNING broadcasts;

-- name: mark_mined
UPDATE evm_txs SET state = 'mined', mined_block = $2, receipt_status = $3, mined_block_hash = $4, final = false
WHERE id = $1;

-- name: mark_final
-- Its block is at or below the final height and canonical by hash: the nonce is used for good.
UPDATE evm_txs SET final = true WHERE id = $1 AND state = 'mined' AND mined_block_hash = $2;

-- name: unmine
-- Reorged out before its block was final: in flight again, its bytes sent again.
UPDATE evm_txs SET state = 'broadcast', mined_block = NULL, mined_block_hash = NULL, receipt_status = NULL
WHERE id = $1 AND state = 'mined' AND NOT final
RETURNING id;

-- name: supersede_nonce
-- The other attempts at a nonce once one of them is mined (or a bump replaced them).
UPDATE evm_txs SET state = 'replaced'
WHERE chain = $1 AND sender = $2 AND nonce = $3 AND id <> $4 AND state IN ('signed', 'broadcast', 'stuck_fee_cap');

-- name: set_tx_state
UPDATE evm_txs SET state = $2, last_error = $3 WHERE id = $1 AND state IN ('signed', 'broadcast', 'stuck_fee_cap');

-- name: drop_nonce
-- A final block shows the nonce used by a transaction that is not ours.
UPDATE evm_txs SET state = 'dropped', last_error = $4
WHERE chain = $1 AND sender = $2 AND nonce = $3 AND state <> 'mined';

-- name: lock_batch
SELECT state FROM payout_batches WHERE batch_id = $1 FOR UPDATE;

-- name: held_batches
-- Signed batches of paused assets ($2): their transactions are not sent again or bumped.
SELECT batch_id FROM payout_batches WHERE chain = $1 AND state = 'signed' AND asset = ANY ($2::text[]);

-- name: batch_has_live_tx
SELECT EXISTS (SELECT 1 FROM evm_txs WHERE batch_id = $1 AND state IN ('signed', 'broadcast', 'stuck_fee_cap', 'mined'));

-- name: revert_batch
UPDATE payout_batches SET state = 'reverted', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state = 'signed';

-- name: hold_batch_items
UPDATE payout_requests SET state = 'held', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state = 'batched';

-- name: expirable_batches
-- Signed but unconfirmed batches whose expiry is before a final block's timestamp ($2).
SELECT batch_id, state, expiry, batcher, asset, total, cap_day FROM payout_batches
WHERE chain = $1 AND state IN ('signed', 'dry_run', 'reverted') AND expiry < $2
ORDER BY created_at;

-- name: expire_batch
UPDATE payout_batches SET state = 'expired', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state IN ('signed', 'dry_run', 'reverted')
RETURNING batch_id;

-- name: requeue_items
UPDATE payout_requests SET state = 'pending', batch_id = NULL, updated_at = now()
WHERE batch_id = $1 AND state = 'batched'
RETURNING id, amount;

-- name: stored_nonces_from
SELECT DISTINCT nonce FROM evm_txs WHERE chain = $1 AND sender = $2 AND nonce >= $3 AND state <> 'dropped';

-- name: next_nonce
SELECT next_nonce FROM evm_nonces WHERE chain = $1 AND sender = $2;

-- name: executed_batches_in_range
-- BatchExecuted events of our batches in final blocks $2..$3, batches still open.
SELECT e.block_number, e.tx_hash, e.args, b.batch_id, b.state, b.asset, b.source, b.treasury, b.batcher, b.total
FROM events e
JOIN payout_batches b ON b.batch_id = e.args ->> 'batchId' AND b.chain = e.chain AND b.batcher = e.address
WHERE e.chain = $1 AND e.event = 'BatchExecuted' AND e.block_number BETWEEN $2 AND $3
  AND b.state <> 'confirmed'
ORDER BY e.block_number, e.log_index
FOR UPDATE OF b;

-- name: batch_request_states
-- The requests of a batch as they stand before its confirmation is booked.
SELECT i.request_id, i.recipient, r.state, r.batch_id, r.from_account
FROM payout_items i JOIN payout_requests r ON r.id = i.request_id
WHERE i.batch_id = $1
ORDER BY i.idx;

-- name: batch_outcomes
-- Per-recipient results of one execution: PayoutSent / PayoutFailed with their index.
SELECT e.event, (e.args ->> 'index')::int AS idx
FROM events e
WHERE e.chain = $1 AND e.block_number = $2 AND e.tx_hash = $3 AND e.address = $4
  AND e.event IN ('PayoutSent', 'PayoutFailed') AND e.args ->> 'batchId' = $5;

-- name: confirm_batch
UPDATE payout_batches
SET state = 'confirmed', executed_block = $2, executed_tx = $3, failed_count = $4, failed_amount = $5,
    updated_at = now()
WHERE batch_id = $1 AND state <> 'confirmed';

-- name: set_item_outcomes
UPDATE payout_items i SET outcome = v.outcome
FROM unnest($2::int[], $3::text[]) AS v(idx, outcome)
WHERE i.batch_id = $1 AND i.idx = v.idx;

-- name: settle_requests
-- Requests of a confirmed batch: paid, or held when the recipient refused the coin.
UPDATE payout_requests r
SET state = CASE WHEN i.outcome = 'sent' THEN 'paid' ELSE 'held' END,
    reason = CASE WHEN i.outcome = 'sent' THEN NULL ELSE $2 END,
    batch_id = $1, updated_at = now()
FROM payout_items i
WHERE i.batch_id = $1 AND i.request_id = r.id AND r.state <> 'paid'
RETURNING r.id, r.state, r.recipient, r.amount;

-- name: sent_items
-- Each paid item with the account it is paid from.
SELECT i.recipient, i.amount, r.from_account
FROM payout_items i JOIN payout_requests r ON r.id = i.request_id
WHERE i.batch_id = $1 AND i.outcome = 'sent'
ORDER BY i.idx;

-- name: list_txs
SELECT id, chain, sender, nonce, attempt, purpose, batch_id, tx_hash, gas_limit,
       max_fee_per_gas::text AS max_fee_per_gas, max_priority_fee_per_gas::text AS max_priority_fee_per_gas,
       state, broadcasts, last_error, mined_block, receipt_status, created_at
FROM evm_txs
WHERE ($1::text IS NULL OR chain = $1)
ORDER BY id DESC
LIMIT $2;

-- name: max_attempt
SELECT COALESCE(max(attempt), 0) FROM evm_txs WHERE chain = $1 AND sender = $2 AND nonce = $3;

-- name: stuck_counts
SELECT chain, count(*) AS n FROM evm_txs WHERE state = 'stuck_fee_cap' GROUP BY chain;
