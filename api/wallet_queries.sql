-- name: account_exists
SELECT EXISTS (SELECT 1 FROM ledger_accounts WHERE code = $1);

-- name: my_payouts
-- Payouts paid from the wallet's account (withdrawals) or to its address, newest first, before cursor $4.
SELECT r.id, r.idempotency_key, r.chain, r.asset, r.recipient, r.amount::text AS amount, r.state, r.reason,
       r.batch_id, r.requested_by, r.created_at, r.updated_at, r.from_account,
       b.state AS batch_state, b.executed_block, b.executed_tx, i.outcome
FROM payout_requests r
LEFT JOIN payout_batches b ON b.batch_id = r.batch_id
LEFT JOIN payout_items i ON i.batch_id = r.batch_id AND i.request_id = r.id
WHERE ((r.chain = $1 AND r.recipient = $2) OR r.from_account = $3) AND ($4::bigint IS NULL OR r.id < $4)
ORDER BY r.id DESC
LIMIT $5;

-- name: withdrawn_recently
-- Run under the payer's lock: the wallet's withdrawals of this asset (not cancelled) in the last 24 hours.
SELECT now() AS now,
       COALESCE(sum(amount) FILTER (WHERE created_at > now() - interval '1 day'), 0)::text AS day_total,
       max(created_at) AS last_at
FROM payout_requests
WHERE from_account = $3 AND chain = $1 AND asset = $2 AND idempotency_key LIKE $4 AND state <> 'cancelled'
  AND created_at > now() - interval '1 day';

-- name: my_invoices
SELECT i.*, GREATEST(i.amount - i.received, 0) AS shortfall, GREATEST(i.received - i.amount, 0) AS excess
FROM invoices i
WHERE i.account = $1
  AND ($2::text IS NULL OR (i.created_at, i.id) < (SELECT created_at, id FROM invoices WHERE id = $2))
ORDER BY i.created_at DESC, i.id DESC
LIMIT $3;
