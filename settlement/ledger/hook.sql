-- name: start_tracking
-- A wallet new to a chain that has no cursor yet starts with this range.
UPDATE ledger_wallets w
SET tracked_from = COALESCE(s.cursor_number, $2 - 1)
FROM chain_state s
WHERE s.chain = $1 AND w.chain = $1 AND w.tracked_from IS NULL;

-- name: active_wallets
SELECT count(*) FROM ledger_wallets WHERE chain = $1 AND active;

-- name: create_staged
-- Matches of one range, before booking; rows vanish at commit.
CREATE TEMP TABLE IF NOT EXISTS ledger_staged (
    idempotency_key TEXT, rule TEXT, event_id BIGINT, block_number BIGINT, tx_hash TEXT,
    cause JSONB, asset_id TEXT, amount NUMERIC, debit TEXT, credit TEXT
) ON COMMIT DELETE ROWS;

-- name: stage_matches
-- Every (event, rule) match of the range: $1 chain, $2 compiled rules, $3..$4 blocks.
-- Wallets are matched on the raw fields first; the JSON context that
-- templates and conditions read is built only for those few hits.
WITH r AS MATERIALIZED (
    SELECT * FROM jsonb_to_recordset($2::jsonb) AS r(
        name TEXT, source TEXT, event TEXT, wallet_path TEXT[], cp_path TEXT[], cp_is_wallet BOOLEAN,
        cp_is_funder BOOLEAN, funders JSONB, conds JSONB, amount_path TEXT[], asset_mode TEXT, asset_id TEXT,
        asset_path TEXT[], debit TEXT[], credit TEXT[])
),
-- Rules sharing a source, event and wallet path share the per-event work.
probe AS MATERIALIZED (
    SELECT DISTINCT source, event, wallet_path FROM r
),
found AS MATERIALIZED (
    SELECT p.source, p.event, p.wallet_path, e.id AS event_id, w.account_id
    FROM probe p
    JOIN events e
      ON e.chain = $1 AND e.block_number BETWEEN $3 AND $4
     AND (p.event IS NULL OR e.event = p.event)
     AND (p.source IS NULL OR e.address = p.source)
    JOIN ledger_wallets w
      ON w.chain = $1 AND w.active AND e.block_number > w.tracked_from
     AND w.address = ledger_addr(CASE p.wallet_path[1]
                                     WHEN 'args' THEN e.args #>> p.wallet_path[2:]
                                     WHEN 'address' THEN e.address
                                     WHEN 'tx_hash' THEN e.tx_hash END)
),
hit AS MATERIALIZED (
    SELECT e.id, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index, e.address, e.event,
           r.name, r.cp_path, r.cp_is_wallet, r.cp_is_funder, r.funders, r.conds, r.amount_path, r.asset_mode,
           r.asset_id, r.asset_path, r.debit, r.credit,
           jsonb_build_object('args', e.args, 'address', e.address, 'tx_hash', e.tx_hash, 'chain', e.chain,
                              'block_number', e.block_number, 'wallet', wa.code) AS base
    FROM found f
    JOIN r ON r.source IS NOT DISTINCT FROM f.source AND r.event IS NOT DISTINCT FROM f.event
          AND r.wallet_path = f.wallet_path
    JOIN events e ON e.id = f.event_id
    JOIN ledger_accounts wa ON wa.id = f.account_id
),
ctx AS MATERIALIZED (
    SELECT h.*, cw.address IS NOT NULL AS cp_wallet,
           -- {funder}: the app account of a [[ledger.funders]] counterparty, else null
           h.base || jsonb_build_object('counterparty_wallet', cwa.code,
                                        'funder', h.funders ->> ledger_addr(h.base #>> h.cp_path)) AS x
    FROM hit h
    LEFT JOIN ledger_wallets cw
      ON h.cp_path IS NOT NULL AND cw.chain = $1 AND cw.active AND cw.address = ledger_addr(h.base #>> h.cp_path)
    LEFT JOIN ledger_accounts cwa ON cwa.id = cw.account_id
)
INSERT INTO ledger_staged (idempotency_key, rule, event_id, block_number, tx_hash, cause, asset_id, amount, debit, credit)
SELECT
    concat_ws(':', 'event', $1, c.block_hash, c.tx_index, c.log_index, c.address, c.name),
    c.name, c.id, c.block_number, c.tx_hash,
    jsonb_build_object('rule', c.name, 'chain', $1, 'block_number', c.block_number,
                       'block_hash', c.block_hash, 'tx_hash', c.tx_hash, 'tx_index', c.tx_index,
                       'log_index', c.log_index, 'address', c.address, 'event', c.event),
    a.id,
    ledger_amount(c.x #> c.amount_path, a.decimals),
    ledger_render_first(c.debit, c.x),
    ledger_render_first(c.credit, c.x)
FROM ctx c
CROSS JOIN LATERAL (
    SELECT ledger_rule_asset($1, c.asset_mode, c.asset_id, c.address, c.x #> c.amount_path,
                             c.x #>> c.asset_path) AS id
) ra
LEFT JOIN assets a ON a.id = ra.id
WHERE (c.cp_is_wallet IS NULL OR c.cp_wallet = c.cp_is_wallet)
  AND (c.cp_is_funder IS NULL OR (c.x ->> 'funder' IS NOT NULL) = c.cp_is_funder)
  AND NOT EXISTS (
      SELECT 1 FROM jsonb_to_recordset(c.conds) AS k(path TEXT[], value TEXT, ref TEXT[])
      WHERE ledger_addr(c.x #>> k.path) IS DISTINCT FROM ledger_addr(COALESCE(k.value, c.x #>> k.ref))
  );

-- name: upsert_staged_accounts
INSERT INTO ledger_accounts (code, kind)
SELECT DISTINCT v.code, split_part(v.code, ':', 1)
FROM ledger_staged s
CROSS JOIN LATERAL (VALUES (s.debit), (s.credit)) AS v(code)
WHERE s.amount > 0 AND s.asset_id IS NOT NULL AND s.debit IS NOT NULL AND s.credit IS NOT NULL
ON CONFLICT (code) DO NOTHING;

-- name: book_staged
-- One transaction of two postings per bookable match; a replay books nothing.
WITH tx AS (
    INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, event_id, chain, block_number, tx_hash)
    SELECT idempotency_key, 'event', cause, event_id, $1, block_number, tx_hash
    FROM ledger_staged
    WHERE amount > 0 AND asset_id IS NOT NULL AND debit IS NOT NULL AND credit IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, idempotency_key
)
INSERT INTO postings (transaction_id, account_id, asset_id, amount)
SELECT tx.id, acc.id, s.asset_id, v.amount
FROM tx
JOIN ledger_staged s USING (idempotency_key)
CROSS JOIN LATERAL (VALUES (s.debit, s.amount), (s.credit, -s.amount)) AS v(code, amount)
JOIN ledger_accounts acc ON acc.code = v.code;

-- name: staged_unbookable
-- Matches that could not be booked, by rule and cause (zero amounts are not news).
SELECT rule,
       CASE WHEN asset_id IS NULL THEN 'unknown_asset'
            WHEN amount IS NULL THEN 'bad_amount'
            ELSE 'missing_account_field' END AS reason,
       count(*) AS n, min(tx_hash) AS example_tx
FROM ledger_staged
WHERE asset_id IS NULL OR amount IS NULL OR debit IS NULL OR credit IS NULL
GROUP BY 1, 2;

-- name: delete_derived_above
-- Rollback: entries derived from events above the common ancestor.
DELETE FROM ledger_transactions
WHERE chain = $1 AND cause_kind = 'event' AND block_number > $2;

-- name: reopen_wallets_above
-- Wallets whose books opened above the ancestor (added while the cursor
-- was not final) open again at the ancestor: their opening balance was
-- read on the abandoned branch and is read again at the new start.
WITH reopened AS (
    UPDATE ledger_wallets SET tracked_from = $2
    WHERE chain = $1 AND tracked_from > $2
    RETURNING address
)
DELETE FROM ledger_transactions t
USING reopened w
WHERE t.chain = $1 AND t.cause_kind = 'opening' AND t.block_number > $2
  AND t.idempotency_key LIKE concat_ws(':', 'opening', $1, w.address, '') || '%';
