-- name: lock_chain
-- Taken by the wallet sync so it cannot interleave with a range commit.
SELECT cursor_number FROM chain_state WHERE chain = $1 FOR UPDATE;

-- name: upsert_asset
-- Symbol and decimals may be filled in later; the identity never changes.
INSERT INTO assets (id, chain, name, kind, contract, currency, issuer, symbol, decimals)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO UPDATE
SET symbol = COALESCE(EXCLUDED.symbol, assets.symbol),
    decimals = COALESCE(EXCLUDED.decimals, assets.decimals)
RETURNING kind, contract, currency, issuer;

-- name: upsert_account
INSERT INTO ledger_accounts (code, kind, label)
VALUES ($1, $2, $3)
ON CONFLICT (code) DO UPDATE SET label = COALESCE(EXCLUDED.label, ledger_accounts.label)
RETURNING id;

-- name: upsert_accounts
-- Accounts named by postings; the kind is the code's prefix.
INSERT INTO ledger_accounts (code, kind)
SELECT DISTINCT code, split_part(code, ':', 1) FROM unnest($1::text[]) AS code
ON CONFLICT (code) DO NOTHING;

-- name: upsert_wallet
-- A wallet new to a chain that is already indexed starts at the cursor;
-- on a chain without a cursor the first committed range decides.
INSERT INTO ledger_wallets (chain, address, name, account_id, assets, tracked_from, active)
VALUES ($1, $2, $3, $4, $5, $6, true)
ON CONFLICT (chain, address) DO UPDATE
SET name = EXCLUDED.name, assets = EXCLUDED.assets, active = true;

-- name: deactivate_wallets
-- Wallets no longer in the config: kept for history, no longer booked or reconciled.
UPDATE ledger_wallets SET active = false
WHERE chain = $1 AND active AND NOT (address = ANY ($2::text[]));

-- name: insert_transaction
INSERT INTO ledger_transactions
    (idempotency_key, cause_kind, cause, event_id, payout_id, author, reason, chain, block_number, tx_hash)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: insert_postings
-- All legs in one statement: the balance check runs at its end.
INSERT INTO postings (transaction_id, account_id, asset_id, amount)
SELECT $1, a.id, p.asset_id, p.amount
FROM unnest($2::text[], $3::text[], $4::numeric[]) AS p(code, asset_id, amount)
JOIN ledger_accounts a ON a.code = p.code;

-- name: balances_as_of
-- Every account's balance per asset from the entries of one chain effective at or below $2.
SELECT a.code AS account, p.asset_id, sum(p.amount) AS balance
FROM ledger_transactions t
JOIN postings p ON p.transaction_id = t.id
JOIN ledger_accounts a ON a.id = p.account_id
WHERE t.chain = $1 AND t.block_number <= $2
GROUP BY a.code, p.asset_id;

-- name: wallet_balances_as_of
-- Each active wallet and the assets it reconciles, with the ledger balance as of $2.
SELECT w.address, w.name, w.account_id, acc.code AS account, x.asset_id, w.tracked_from,
       COALESCE((
           SELECT sum(p.amount)
           FROM postings p
           JOIN ledger_transactions t ON t.id = p.transaction_id
           WHERE p.account_id = w.account_id AND p.asset_id = x.asset_id
             AND t.chain = $1 AND t.block_number <= $2
       ), 0) AS expected,
       EXISTS (
           SELECT 1 FROM ledger_transactions t
           WHERE t.idempotency_key = concat_ws(':', 'opening', $1, w.address, x.asset_id)
       ) AS opened
FROM ledger_wallets w
JOIN ledger_accounts acc ON acc.id = w.account_id
CROSS JOIN LATERAL unnest(w.assets) AS x(asset_id)
WHERE w.chain = $1 AND w.active
ORDER BY w.address, x.asset_id;

-- name: missing_openings
-- Wallet assets whose opening balance is not booked yet (start height known).
SELECT w.address, w.name, x.asset_id, w.tracked_from
FROM ledger_wallets w
CROSS JOIN LATERAL unnest(w.assets) AS x(asset_id)
WHERE w.chain = $1 AND w.active AND w.tracked_from IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM ledger_transactions t
      WHERE t.idempotency_key = concat_ws(':', 'opening', $1, w.address, x.asset_id)
  )
ORDER BY w.address, x.asset_id;

-- name: assets_of_chain
SELECT id, chain, name, kind, contract, currency, issuer, symbol, decimals FROM assets WHERE chain = $1 ORDER BY id;

-- name: set_decimals
UPDATE assets SET decimals = $2 WHERE id = $1 AND decimals IS NULL;
