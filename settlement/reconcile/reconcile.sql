
-- name: try_lock
-- One reconciler at a time across processes (session lock, released below).
SELECT pg_try_advisory_lock(hashtext('chainsettle.reconcile'));

-- name: unlock
SELECT pg_advisory_unlock(hashtext('chainsettle.reconcile'));

-- name: insert_run
INSERT INTO reconciliation_runs (chain, height, started_at, finished_at, status, error, checked, mismatches)
VALUES ($1, $2, $3, now(), $4, $5, $6, $7)
RETURNING id;

-- name: insert_results
-- $8: each result's movements as a JSON array text, $9 how many there were in all.
INSERT INTO reconciliation_results (run_id, account_id, asset_id, expected, actual, difference, tolerance, status,
                                    movements, movements_total)
SELECT $1, r.account_id, r.asset_id, r.expected, r.actual, r.actual - r.expected, r.tolerance, r.status,
       r.movements::jsonb, r.movements_total
FROM unnest($2::bigint[], $3::text[], $4::numeric[], $5::numeric[], $6::numeric[], $7::text[], $8::text[], $9::int[])
    AS r(account_id, asset_id, expected, actual, tolerance, status, movements, movements_total);

-- name: last_good_height
-- The last height at which this wallet asset matched: movements after it explain a difference.
SELECT max(r.height)
FROM reconciliation_results x
JOIN reconciliation_runs r ON r.id = x.run_id
WHERE r.chain = $1 AND x.account_id = $2 AND x.asset_id = $3 AND x.status <> 'mismatch';

-- name: movements
-- Events in ($2, $3] that touch wallet $4 through one of the sources $5 (or
-- that the wallet itself emitted), with the rules that booked them (an XRPL
-- payment out may have only its fee booked): unbooked first, then the
-- largest amount, then the newest; `total` counts them all before LIMIT $6.
WITH found AS (
    SELECT e.block_number, e.tx_index, e.tx_hash, e.log_index, e.address, e.event, e.args,
           ARRAY(SELECT t.cause ->> 'rule' FROM ledger_transactions t WHERE t.event_id = e.id ORDER BY 1) AS booked_by,
           (SELECT a.v::numeric
            FROM (VALUES (1, e.args ->> 'value'), (2, e.args ->> 'amount'),
                         (3, e.args ->> 'delivered_amount'), (4, e.args -> 'delivered_amount' ->> 'value')) AS a(n, v)
            WHERE a.v ~ '^[0-9]+(\.[0-9]+)?$' ORDER BY a.n LIMIT 1) AS amount
    FROM events e
    WHERE e.chain = $1 AND e.block_number > $2 AND e.block_number <= $3
      AND (e.address = $4
           OR (e.address = ANY ($5::text[])
               AND EXISTS (SELECT 1 FROM jsonb_each_text(e.args) kv WHERE ledger_addr(kv.value) = $4)))
)
SELECT block_number, tx_hash, log_index, address, event, args, booked_by, amount::text AS amount,
       count(*) OVER () AS total
FROM found
ORDER BY cardinality(booked_by) = 0 DESC, amount DESC NULLS LAST, block_number DESC, tx_index DESC, log_index DESC
LIMIT $6;

-- name: paused_assets
SELECT asset_id FROM asset_pauses WHERE resolved_at IS NULL;

-- name: account_ids
SELECT code, id FROM ledger_accounts WHERE code = ANY ($1::text[]);

-- name: asset_ids
SELECT id FROM assets;

-- name: overpaid_users
-- User accounts of chain $1 owed less than zero as of H ($2): paid more than
-- was ever credited to them (a payout executed twice is booked from chain
-- events on both sides, so wallet and ledger agree; only this shows it).
-- Postings of the chain's assets only; served by ledger_transactions_chain_block.
SELECT a.id AS account_id, a.code, p.asset_id, -sum(p.amount) AS owed,
       sum(p.amount) FILTER (WHERE p.amount > 0) AS paid,
       COALESCE(-sum(p.amount) FILTER (WHERE p.amount < 0), 0) AS credited
FROM ledger_transactions t
JOIN postings p ON p.transaction_id = t.id
JOIN ledger_accounts a ON a.id = p.account_id AND a.kind = 'user'
WHERE t.chain = $1 AND t.block_number <= $2
GROUP BY a.id, a.code, p.asset_id
HAVING sum(p.amount) > 0
ORDER BY a.code, p.asset_id;
-- name: last_runs
-- When each chain's last run of each status finished (seeds the gauges at start-up).
SELECT chain, status, extract(epoch FROM max(finished_at))::float8 AS at
FROM reconciliation_runs GROUP BY chain, status;
