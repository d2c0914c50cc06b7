-- name: chain_asset
-- An asset of one chain, by id.
SELECT id, symbol, decimals FROM assets WHERE id = $1 AND chain = $2;

-- name: account_by_code
SELECT id, code, kind FROM ledger_accounts WHERE code = $1;

-- name: lock_key
-- One decision per adjustment key: a concurrent booking with the same key
-- waits here, then finds the first one's transaction.
SELECT pg_advisory_xact_lock(hashtextextended('ledger-adjustment:' || $1, 0));

-- name: account_id
SELECT id FROM ledger_accounts WHERE code = $1;

-- name: adjustment_by_key
-- A manual transaction with its two legs: the debit (positive) and the credit.
SELECT t.id, t.idempotency_key, t.chain, t.block_number, t.tx_hash, t.author, t.reason, t.created_at,
       d.asset_id, d.amount, da.code AS debit, ca.code AS credit
FROM ledger_transactions t
JOIN postings d ON d.transaction_id = t.id AND d.amount > 0
JOIN ledger_accounts da ON da.id = d.account_id
JOIN postings c ON c.transaction_id = t.id AND c.amount < 0 AND c.asset_id = d.asset_id
JOIN ledger_accounts ca ON ca.id = c.account_id
WHERE t.idempotency_key = $1 AND t.cause_kind = 'manual';
