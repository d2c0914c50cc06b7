-- name: ensure_accounts
-- Entitlement accounts and their (account, asset) balance rows, created on first use.
WITH ins AS (
    INSERT INTO ledger_accounts (code, kind)
    SELECT c, 'entitlement' FROM unnest($1::text[]) AS c ORDER BY c
    ON CONFLICT (code) DO NOTHING
    RETURNING id
)
INSERT INTO ledger_account_balances (account_id, asset_id)
SELECT id, $2 FROM (SELECT id FROM ins UNION ALL SELECT id FROM ledger_accounts WHERE code = ANY ($1::text[])) a
ORDER BY id
ON CONFLICT DO NOTHING;

-- name: account_ids
SELECT code, id FROM ledger_accounts WHERE code = ANY ($1::text[]);

-- name: fan
-- One transfer transaction between a hub account ($4) and many entitlement
-- accounts (ids $6): $5 = 1 moves amounts $7 from the hub to accounts $6 (booking
-- shares), -1 from them back to the hub. Postings of a transaction go in
-- one statement (the balance check is statement-level), then the balance rows
-- (locked by the caller, in lock_rooms order).
WITH tx AS (
    INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number, author)
    SELECT $1, 'transfer', $2::jsonb, split_part($3, ':', 1),
           COALESCE((SELECT s.final_number FROM chain_state s WHERE s.chain = split_part($3, ':', 1)), 0), $8
    RETURNING id
), x AS (
    SELECT e.account_id, e.amount * $5 AS amount  -- $5 * amount: + credit of the entitlement when booking
    FROM unnest($6::bigint[], $7::numeric[]) AS e(account_id, amount)
), p AS (
    INSERT INTO postings (transaction_id, account_id, asset_id, amount, internal)
    SELECT tx.id, v.account_id, $3, v.amount, true
    FROM tx, (SELECT $4::bigint, (SELECT sum(amount) FROM x) UNION ALL SELECT account_id, -amount FROM x)
        AS v(account_id, amount)
    RETURNING account_id, amount
)
UPDATE ledger_account_balances b SET posted = b.posted + d.delta
FROM (SELECT account_id, sum(amount) AS delta FROM p GROUP BY account_id) d
WHERE b.account_id = d.account_id AND b.asset_id = $3
RETURNING b.account_id;

-- name: open_of
-- What is owed per distribution to one recipient: its entitlement accounts'
-- booked balances (posted transfers and settled claims), with the share.
SELECT s.distribution_id, s.idx, s.amount, s.state, d.asset_id, d.mode, a.code AS account,
       -(COALESCE(b.posted, 0) + COALESCE((SELECT sum(p.amount) FROM postings p
                                            WHERE p.account_id = a.id AND NOT p.internal), 0)) AS owed
FROM distribution_shares s
JOIN distributions d ON d.id = s.distribution_id
LEFT JOIN ledger_accounts a ON a.code = 'entitlement:' || s.distribution_id || ':' || s.recipient
LEFT JOIN ledger_account_balances b ON b.account_id = a.id AND b.asset_id = d.asset_id
WHERE s.recipient = $1 AND ($2::text IS NULL OR s.distribution_id > $2)
  AND ($4::text IS NULL OR split_part(d.asset_id, ':', 1) = $4)
ORDER BY s.distribution_id
LIMIT $3;
