-- name: find_assets
SELECT id, chain, name FROM assets WHERE id = ANY ($1::text[]);

-- name: resolve_accounts
-- Accounts by code; those in $2 (allowed to be created on first use) are created with labels $3.
WITH ins AS (
    INSERT INTO ledger_accounts (code, kind, label)
    SELECT c.code, split_part(c.code, ':', 1), c.label
    FROM unnest($2::text[], $3::text[]) AS c(code, label)
    ORDER BY c.code
    ON CONFLICT (code) DO NOTHING
    RETURNING id, code, kind
)
SELECT id, code, kind, true AS created FROM ins
UNION ALL
SELECT id, code, kind, false FROM ledger_accounts WHERE code = ANY ($1::text[]);

-- name: lock_balances
-- THE per-account lock: the (account, asset) balance rows, in one global order.
SELECT account_id, asset_id
FROM ledger_account_balances
WHERE (account_id, asset_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
ORDER BY account_id, asset_id
FOR UPDATE;

-- name: insert_balances
INSERT INTO ledger_account_balances (account_id, asset_id)
SELECT * FROM unnest($1::bigint[], $2::text[]) AS x(account_id, asset_id)
ORDER BY 1, 2
ON CONFLICT DO NOTHING;

-- name: availability
-- Read AFTER lock_balances, in one statement (one snapshot): a payout
-- confirmation commits "paid" and its debit together, so this sees both or
-- neither. chain_final: chain-derived postings in final blocks (partial
-- index postings_chain_account); posted/held: the row; reserved: open
-- payout requests paid from the account.
SELECT b.account_id, b.asset_id, b.posted, b.held,
       COALESCE((
           SELECT sum(p.amount)
           FROM postings p
           JOIN ledger_transactions t ON t.id = p.transaction_id
           WHERE p.account_id = b.account_id AND p.asset_id = b.asset_id AND NOT p.internal
             AND t.block_number <= (SELECT final_number FROM chain_state WHERE chain = x.chain)
       ), 0) AS chain_final,
       COALESCE((
           SELECT sum(r.amount) FROM payout_requests r
           WHERE r.from_account = a.code AND r.chain = x.chain AND r.asset = x.name
             AND r.state IN ('pending', 'batched', 'held')
       ), 0) AS reserved
FROM ledger_account_balances b
JOIN ledger_accounts a ON a.id = b.account_id
JOIN assets x ON x.id = b.asset_id
WHERE (b.account_id, b.asset_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]));

-- name: find_transfers
SELECT id, transaction_id, body, linked, created_at FROM ledger_transfers WHERE id = ANY ($1::text[]);

-- name: book
-- Transactions, their two postings each, the transfer rows (when $9, each
-- row's linked ids joined by spaces, is not NULL; $8 each row's actor) and the balance rows, in
-- one statement. A transfer is effective at
-- its asset's chain's final height when booked (0 before there is one).
WITH x AS (
    SELECT x.*, COALESCE((SELECT final_number FROM chain_state s JOIN assets a ON a.chain = s.chain
                          WHERE a.id = x.asset_id), 0) AS block_number,
           split_part(x.asset_id, ':', 1) AS chain
    FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::numeric[], $7::jsonb[],
                $8::text[], COALESCE($9::text[], array_fill(NULL::text, ARRAY[cardinality($1::text[])])))
        AS x(key, id, debit, credit, asset_id, amount, body, actor, linked)
), tx AS (
    INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number, author)
    SELECT x.key, 'transfer', x.body, x.chain, x.block_number, x.actor FROM x
    RETURNING id, idempotency_key
), p AS (
    INSERT INTO postings (transaction_id, account_id, asset_id, amount, internal)
    SELECT tx.id, v.account_id, x.asset_id, v.amount, true
    FROM tx JOIN x ON x.key = tx.idempotency_key
    CROSS JOIN LATERAL (VALUES (x.debit, x.amount), (x.credit, -x.amount)) AS v(account_id, amount)
), tr AS (
    INSERT INTO ledger_transfers (id, transaction_id, body, linked, created_by)
    SELECT x.id, tx.id, x.body, string_to_array(x.linked, ' '), x.actor
    FROM tx JOIN x ON x.key = tx.idempotency_key
    WHERE x.linked IS NOT NULL
), b AS (
    UPDATE ledger_account_balances b SET posted = b.posted + d.delta
    FROM (SELECT account_id, asset_id, sum(amount) AS delta
          FROM (SELECT debit, asset_id, amount FROM x UNION ALL SELECT credit, asset_id, -amount FROM x)
              AS s(account_id, asset_id, amount)
          GROUP BY 1, 2) d
    WHERE b.account_id = d.account_id AND b.asset_id = d.asset_id
)
SELECT tx.id AS transaction_id, x.id, now() AS created_at
FROM tx JOIN x ON x.key = tx.idempotency_key;

-- name: find_hold
SELECT h.*, d.code AS debit_account, c.code AS credit_account
FROM ledger_holds h
JOIN ledger_accounts d ON d.id = h.debit_account_id
JOIN ledger_accounts c ON c.id = h.credit_account_id
WHERE h.id = $1;

-- name: lock_hold
SELECT h.*, d.code AS debit_account, c.code AS credit_account, h.expires_at <= now() AS due
FROM ledger_holds h
JOIN ledger_accounts d ON d.id = h.debit_account_id
JOIN ledger_accounts c ON c.id = h.credit_account_id
WHERE h.id = $1
FOR UPDATE OF h;

-- name: insert_hold
-- The hold and its reservation on the (locked) debit row, together.
WITH h AS (
    INSERT INTO ledger_holds (id, body, debit_account_id, credit_account_id, asset_id, amount, expires_at, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8)
    RETURNING *
), b AS (
    UPDATE ledger_account_balances SET held = held + $6
    WHERE account_id = $3 AND asset_id = $5
)
SELECT * FROM h;

-- name: resolve_hold
-- Leaves 'pending' once (a second resolver finds no pending row), and its
-- reservation leaves the (locked) debit row in the same statement.
WITH h AS (
    UPDATE ledger_holds
    SET state = $2, posted_amount = $3, transaction_id = $4, resolved_at = now(), resolved_by = $5
    WHERE id = $1 AND state = 'pending'
    RETURNING *
), b AS (
    UPDATE ledger_account_balances b SET held = b.held - h.amount
    FROM h WHERE b.account_id = h.debit_account_id AND b.asset_id = h.asset_id
)
SELECT * FROM h;

-- name: release_held
-- The reservations of resolved holds leave their debit rows (locked by the caller).
UPDATE ledger_account_balances b SET held = b.held - d.amount
FROM (SELECT account_id, asset_id, sum(amount) AS amount
      FROM unnest($1::bigint[], $2::text[], $3::numeric[]) AS x(account_id, asset_id, amount)
      GROUP BY 1, 2) d
WHERE b.account_id = d.account_id AND b.asset_id = d.asset_id;

-- name: due_holds
-- Pending holds past their timeout; rows another sweeper or resolver holds are skipped.
SELECT id, debit_account_id, credit_account_id, asset_id, amount
FROM ledger_holds
WHERE state = 'pending' AND expires_at <= now()
ORDER BY expires_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: expire_holds
UPDATE ledger_holds SET state = 'expired', resolved_at = now(), resolved_by = 'expiry'
WHERE id = ANY ($1::text[]) AND state = 'pending';

-- name: account_summary
-- Per asset: all postings, the chain-derived ones in final blocks, the
-- balance row, and open payout requests paid from the account.
SELECT x.id AS asset_id, x.chain, x.symbol, x.decimals,
       COALESCE(s.total, 0) AS total, COALESCE(s.final_chain, 0) AS final_chain,
       COALESCE(b.posted, 0) AS posted, COALESCE(b.held, 0) AS held,
       COALESCE((SELECT sum(r.amount) FROM payout_requests r
                 WHERE r.from_account = $2 AND r.chain = x.chain AND r.asset = x.name
                   AND r.state IN ('pending', 'batched', 'held')), 0) AS reserved
FROM (
    SELECT p.asset_id, sum(p.amount) AS total,
           sum(p.amount) FILTER (WHERE NOT p.internal AND t.block_number <= cs.final_number) AS final_chain
    FROM postings p
    JOIN ledger_transactions t ON t.id = p.transaction_id
    LEFT JOIN chain_state cs ON cs.chain = t.chain
    WHERE p.account_id = $1
    GROUP BY p.asset_id
) s
FULL JOIN (SELECT * FROM ledger_account_balances WHERE account_id = $1) b ON b.asset_id = s.asset_id
JOIN assets x ON x.id = COALESCE(s.asset_id, b.asset_id)
ORDER BY x.id;

-- name: entries_page
-- An account's postings in commit order (tx, id) after the cursor; only
-- rows of transactions older than every one still running, so a page
-- never changes and a later page never gains a row before the cursor.
SELECT p.id, p.tx::text AS tx, p.asset_id, p.amount, p.transaction_id,
       t.cause_kind, t.idempotency_key, t.cause, t.chain, t.block_number, t.tx_hash, t.created_at
FROM postings p
JOIN ledger_transactions t ON t.id = p.transaction_id
WHERE p.account_id = $1
  AND (p.tx, p.id) > ($2::text::xid8, $3::bigint)
  AND p.tx < pg_snapshot_xmin(pg_current_snapshot())
  AND ($4::text IS NULL OR p.asset_id = $4)
ORDER BY p.tx, p.id
LIMIT $5;

-- name: account_by_code
SELECT id, code, kind FROM ledger_accounts WHERE code = $1;

-- name: account_by_ref
-- By code ('app:prizes') or numeric id; the code wins.
SELECT id, code, kind FROM ledger_accounts WHERE code = $1 OR id = $2::bigint
ORDER BY (code = $1) DESC
LIMIT 1;
