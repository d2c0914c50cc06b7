-- name: find_request
SELECT * FROM payout_requests WHERE idempotency_key = $1;

-- name: lock_name
-- A transaction lock on a name: one recipient and asset (admission and
-- confirmation), one idempotency key, one day's cap.
SELECT pg_advisory_xact_lock(hashtextextended($1, 0));

-- name: find_refusal
-- The first refusal of an idempotency key, replayed to every later request.
SELECT * FROM payout_refusals WHERE idempotency_key = $1;

-- name: insert_refusal
INSERT INTO payout_refusals (idempotency_key, chain, asset, recipient, amount, field, reason, requested_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: insert_request
INSERT INTO payout_requests (idempotency_key, chain, asset, recipient, amount, requested_by, from_account)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;

-- name: pending_requests
-- The head of one queue: requeued requests wait for retry_after; rows another worker batches are skipped.
SELECT id, recipient, amount, extract(epoch FROM now() - created_at)::float8 AS age
FROM payout_requests
WHERE chain = $1 AND asset = $2 AND state = 'pending' AND (retry_after IS NULL OR retry_after <= now())
ORDER BY id
LIMIT $3
FOR UPDATE SKIP LOCKED;

-- name: pending_lane
-- The head of one approval lane of a queue: amounts above $4 when $5, at or below it otherwise.
SELECT id, recipient, amount, extract(epoch FROM now() - created_at)::float8 AS age
FROM payout_requests
WHERE chain = $1 AND asset = $2 AND state = 'pending' AND (retry_after IS NULL OR retry_after <= now())
  AND (amount > $4::numeric) = $5
ORDER BY id
LIMIT $3
FOR UPDATE SKIP LOCKED;

-- name: daily_total
SELECT COALESCE((SELECT total FROM payout_daily_totals
                 WHERE chain = $1 AND asset = $2 AND day = (now() AT TIME ZONE 'utc')::date), 0);

-- name: add_daily_total
INSERT INTO payout_daily_totals (chain, asset, day, total)
VALUES ($1, $2, (now() AT TIME ZONE 'utc')::date, $3)
ON CONFLICT (chain, asset, day) DO UPDATE SET total = payout_daily_totals.total + EXCLUDED.total;

-- name: give_back_daily_total
-- A batch proven dead paid nothing: its total leaves the cap of the day it was counted on ($3).
UPDATE payout_daily_totals SET total = GREATEST(total - $4, 0)
WHERE chain = $1 AND asset = $2 AND day = $3;

-- name: batch_cap_day
SELECT cap_day FROM payout_batches WHERE batch_id = $1;

-- name: insert_batch
INSERT INTO payout_batches (batch_id, chain, asset, token, source, treasury, batcher, item_count, total,
                            gas_limit, expiry, state, replaces)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13);

-- name: insert_items
INSERT INTO payout_items (batch_id, idx, request_id, recipient, amount)
SELECT $1, (i.n - 1)::int, i.request_id, i.recipient, i.amount
FROM unnest($2::bigint[], $3::text[], $4::numeric[]) WITH ORDINALITY AS i(request_id, recipient, amount, n);

-- name: mark_batched
UPDATE payout_requests SET state = 'batched', batch_id = $1, updated_at = now()
WHERE id = ANY ($2::bigint[]) AND state = 'pending';

-- name: approve_batch
UPDATE payout_batches SET state = 'ready', approved_by = $2, approved_at = now(), updated_at = now()
WHERE batch_id = $1 AND state = 'awaiting_approval'
RETURNING batch_id, chain, asset, total, item_count;

-- name: batch_state
SELECT state FROM payout_batches WHERE batch_id = $1;

-- name: claim_ready_batch
-- One batch to sign; a batch another worker is signing is skipped.
-- $2: the chain's paused assets, whose batches wait.
SELECT * FROM payout_batches
WHERE chain = $1 AND state = 'ready' AND NOT (asset = ANY ($2::text[]))
ORDER BY created_at, batch_id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: batch_items
SELECT idx, recipient, amount FROM payout_items WHERE batch_id = $1 ORDER BY idx;

-- name: set_batch_signed
-- The batcher ($5) and expiry ($6) it was signed for are stored with the signature.
UPDATE payout_batches SET state = $2, signer = $3, signature = $4, batcher = $5, expiry = $6, signed_at = now(),
                          updated_at = now()
WHERE batch_id = $1 AND state = 'ready';

-- name: killed
-- Run-time kill switches: the global one ('*') or this chain's.
SELECT COALESCE(bool_or(killed), false) FROM payout_controls WHERE scope IN ('*', $1);

-- name: set_control
INSERT INTO payout_controls (scope, killed, reason, changed_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT (scope) DO UPDATE
SET killed = EXCLUDED.killed, reason = EXCLUDED.reason, changed_by = EXCLUDED.changed_by, changed_at = now();

-- name: list_requests
SELECT id, idempotency_key, chain, asset, recipient, amount::text AS amount, state, reason, batch_id,
       requested_by, created_at, updated_at
FROM payout_requests
WHERE ($1::text IS NULL OR chain = $1)
ORDER BY id DESC
LIMIT $2;

-- name: list_batches
SELECT batch_id, chain, asset, state, reason, item_count, total::text AS total, expiry, approved_by, approved_at,
       signer, replaces, executed_block, executed_tx, failed_count, created_at, updated_at
FROM payout_batches
WHERE ($1::text IS NULL OR chain = $1)
ORDER BY created_at DESC
LIMIT $2;

-- name: list_controls
SELECT scope, killed, reason, changed_by, changed_at FROM payout_controls ORDER BY scope;

-- name: request_counts
-- Open states counted (a partial index), terminal ones from their totals
-- (db/migrations/0015): the gauges' cost does not grow with the history.
SELECT chain, state, count(*) AS n FROM payout_requests
WHERE NOT payout_state_terminal(state) GROUP BY 1, 2
UNION ALL
SELECT chain, state, n FROM payout_state_totals WHERE kind = 'request';

-- name: batch_counts
SELECT chain, state, count(*) AS n FROM payout_batches
WHERE NOT payout_state_terminal(state) GROUP BY 1, 2
UNION ALL
SELECT chain, state, n FROM payout_state_totals WHERE kind = 'batch';

-- name: set_request_tag
UPDATE payout_requests SET destination_tag = $2 WHERE id = $1 RETURNING *;

-- name: negative_user_balances
-- Of the user accounts $1, those the ledger owes less than nothing in asset $2.
SELECT a.code, -sum(p.amount) AS owed
FROM postings p JOIN ledger_accounts a ON a.id = p.account_id
WHERE a.code = ANY ($1::text[]) AND p.asset_id = $2
GROUP BY a.code
HAVING -sum(p.amount) < 0;

-- name: held_requests
SELECT r.id, r.idempotency_key, r.chain, r.asset, r.recipient, r.amount, r.reason, r.batch_id,
       b.state AS batch_state, r.updated_at
FROM payout_requests r LEFT JOIN payout_batches b ON b.batch_id = r.batch_id
WHERE r.state = 'held' AND ($1::text IS NULL OR r.chain = $1)
ORDER BY r.updated_at, r.id
LIMIT $2;

-- name: lock_batch_row
SELECT batch_id, chain, asset, state, total, expiry, cap_day FROM payout_batches WHERE batch_id = $1 FOR UPDATE;

-- name: held_of_batch
SELECT id, recipient FROM payout_requests WHERE batch_id = $1 AND state = 'held' ORDER BY id;

-- name: release_held
-- Held requests of a batch that can no longer pay them, back to the queue (except recipients $2).
UPDATE payout_requests SET state = 'pending', batch_id = NULL, reason = NULL, retry_after = NULL, updated_at = now()
WHERE batch_id = $1 AND state = 'held' AND NOT (recipient = ANY ($2::text[]))
RETURNING id, amount;

-- name: rebatch_held
-- Held requests of a reverted batch: requeued by its expiry proof, not before.
UPDATE payout_requests SET state = 'batched', reason = NULL, updated_at = now()
WHERE batch_id = $1 AND state = 'held' AND NOT (recipient = ANY ($2::text[]))
RETURNING id;

-- name: cancel_unsigned_batch
UPDATE payout_batches SET state = 'cancelled', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state IN ('awaiting_approval', 'ready');

-- name: cancel_batched
UPDATE payout_requests SET state = 'cancelled', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state = 'batched'
RETURNING id;

-- name: cancel_held
-- Cancelled requests reserve nothing: admission no longer counts them.
UPDATE payout_requests SET state = 'cancelled', reason = $2, updated_at = now()
WHERE batch_id = $1 AND state = 'held'
RETURNING id, amount;
