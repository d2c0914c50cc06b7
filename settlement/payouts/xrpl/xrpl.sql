-- XRPL payouts: Sequences, signed Payments, their outcomes (schema: 0006_xrpl_payouts.sql).
-- Batches, items, daily totals and kill switches are the pipeline's own (payouts.sql).

-- name: ensure_sequence
INSERT INTO xrpl_sequences (chain, account, next_sequence) VALUES ($1, $2, $3)
ON CONFLICT (chain, account) DO NOTHING;

-- name: lock_sequence
-- Serialises signing per hot wallet: held until the signed blob is stored.
SELECT next_sequence FROM xrpl_sequences WHERE chain = $1 AND account = $2 FOR UPDATE;

-- name: claim_sequence
-- Below the account's validated Sequence every number is used already, ours or not.
UPDATE xrpl_sequences SET next_sequence = GREATEST(next_sequence, $3) + 1, updated_at = now()
WHERE chain = $1 AND account = $2
RETURNING next_sequence - 1;

-- name: holes
-- Sequences from the account's validated one up to our next that no live transaction holds.
SELECT s::bigint AS sequence
FROM xrpl_sequences q, generate_series($3::bigint, q.next_sequence - 1) AS s
WHERE q.chain = $1 AND q.account = $2
  AND NOT EXISTS (SELECT 1 FROM xrpl_payments p WHERE p.chain = $1 AND p.account = $2 AND p.sequence = s
                  AND p.state NOT IN ('dead', 'refused'))
ORDER BY s;

-- name: in_flight
-- Fees (drops) and amounts per asset of what is signed but not yet validated.
SELECT COALESCE(r.asset, 'native') AS asset, COALESCE(sum(p.amount), 0) AS amount, sum(p.fee) AS fees, count(*) AS n
FROM xrpl_payments p LEFT JOIN payout_requests r ON r.id = p.request_id
WHERE p.chain = $1 AND p.account = $2 AND p.state IN ('signed', 'submitted')
GROUP BY 1;

-- name: item_to_sign
-- One request of a released batch without a live payment; one worker signs it.
SELECT r.id, r.recipient, r.amount, r.asset, r.destination_tag, r.batch_id
FROM payout_requests r
JOIN payout_batches b ON b.batch_id = r.batch_id
WHERE r.chain = $1 AND r.state = 'batched' AND b.state = 'signed'
  AND NOT EXISTS (SELECT 1 FROM xrpl_payments p WHERE p.request_id = r.id AND p.state IN ('signed', 'submitted', 'validated'))
ORDER BY r.id
LIMIT 1
FOR UPDATE OF r SKIP LOCKED;

-- name: request_still_batched
SELECT state = 'batched' AND batch_id = $2 FROM payout_requests WHERE id = $1 FOR UPDATE;

-- name: insert_payment
INSERT INTO xrpl_payments (chain, account, sequence, purpose, request_id, batch_id, destination, destination_tag,
                           amount, fee, min_ledger, last_ledger, tx_blob, tx_hash, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'signed')
RETURNING id;

-- name: payment_row
SELECT * FROM xrpl_payments WHERE id = $1;

-- name: open_payments
-- With the asset of the request (NULL for a fill), so a paused asset's payments are not sent again.
SELECT p.*, r.asset FROM xrpl_payments p LEFT JOIN payout_requests r ON r.id = p.request_id
WHERE p.chain = $1 AND p.account = $2 AND p.state IN ('signed', 'submitted') ORDER BY p.sequence;

-- name: mark_submitted
UPDATE xrpl_payments
SET state = CASE WHEN state = 'signed' THEN 'submitted' ELSE state END,
    result = COALESCE($2, result), last_error = $3, submits = submits + 1, last_submit_at = now()
WHERE id = $1 AND state IN ('signed', 'submitted')
RETURNING submits;

-- name: close_payment
-- dead or refused: it never applied (Sequence free again); only from an open state.
UPDATE xrpl_payments SET state = $2, last_error = $3
WHERE id = $1 AND state IN ('signed', 'submitted')
RETURNING id;

-- name: failed_attempts
SELECT count(*) FROM xrpl_payments WHERE request_id = $1 AND state IN ('failed', 'dead');

-- name: requeue_request
UPDATE payout_requests
SET state = 'pending', batch_id = NULL, retry_after = now() + make_interval(secs => $2), updated_at = now()
WHERE id = $1 AND state = 'batched'
RETURNING id;

-- name: hold_request
UPDATE payout_requests SET state = 'held', reason = $2, updated_at = now()
WHERE id = $1 AND state = 'batched'
RETURNING id;

-- name: pay_request
UPDATE payout_requests SET state = 'paid', reason = NULL, retry_after = NULL, updated_at = now()
WHERE id = $1 AND state <> 'paid'
RETURNING id;

-- name: set_item_outcome
UPDATE payout_items SET outcome = $3 WHERE batch_id = $1 AND request_id = $2;

-- name: finish_batch
-- A released batch is done once every item has an outcome.
UPDATE payout_batches b
SET state = 'confirmed', executed_block = $2,
    failed_count = (SELECT count(*) FROM payout_items i WHERE i.batch_id = b.batch_id AND i.outcome = 'failed'),
    failed_amount = (SELECT COALESCE(sum(amount), 0) FROM payout_items i WHERE i.batch_id = b.batch_id AND i.outcome = 'failed'),
    updated_at = now()
WHERE b.batch_id = $1 AND b.state = 'signed'
  AND NOT EXISTS (SELECT 1 FROM payout_items i WHERE i.batch_id = b.batch_id AND i.outcome IS NULL)
RETURNING batch_id;

-- name: payments_in_range
-- Our transactions seen in final (validated) ledgers $2..$3, still open on our side.
SELECT p.*, e.block_number, e.args ->> 'result' AS ledger_result, r.asset, r.from_account
FROM events e
JOIN xrpl_payments p ON p.tx_hash = e.tx_hash AND p.chain = e.chain AND p.account = e.address
LEFT JOIN payout_requests r ON r.id = p.request_id
WHERE e.chain = $1 AND e.block_number BETWEEN $2 AND $3 AND e.args ->> 'role' = 'sender'
  AND p.state NOT IN ('validated', 'failed')
  AND NOT (p.state IN ('dead', 'refused') AND p.last_error LIKE 'validated anyway:%')
ORDER BY e.block_number, e.tx_index
FOR UPDATE OF p;

-- name: mark_validated
UPDATE xrpl_payments SET state = $2, result = $3, validated_ledger = $4 WHERE id = $1;

-- name: note_validated_anyway
-- A dead or refused payment seen validated: the evidence, the state untouched (see hook.py).
UPDATE xrpl_payments SET result = $2, last_error = $3 WHERE id = $1;

-- name: list_payments
SELECT id, chain, account, sequence, purpose, request_id, batch_id, destination, destination_tag,
       amount::text AS amount, fee, min_ledger, last_ledger, tx_hash, state, result, validated_ledger, submits,
       last_error, created_at
FROM xrpl_payments
WHERE ($1::text IS NULL OR chain = $1)
ORDER BY id DESC
LIMIT $2;
