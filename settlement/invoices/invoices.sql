-- name: insert_invoice
-- A new invoice; NULL when the app reference is taken (the caller reads the stored one).
INSERT INTO invoices (id, app_ref, chain, asset, asset_id, asset_kind, contract, currency, issuer, decimals, amount,
                      tolerance, wallet, match_method, destination_tag, memo, payer, account, expires_at, created_by,
                      after_block)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (app_ref) DO NOTHING
RETURNING *;

-- name: head_number
SELECT head_number FROM chain_state WHERE chain = $1;

-- name: bind_after_block
-- Invoices made before anything of the chain was known get the indexed
-- head as their bound (later than their creation: fail closed).
UPDATE invoices i
SET after_block = GREATEST(COALESCE(s.head_number, $2), $2)
FROM chain_state s
WHERE i.chain = $1 AND s.chain = $1 AND i.after_block IS NULL AND i.matchable
RETURNING i.id, i.after_block;

-- name: invoice_by_ref
-- One invoice by id or app reference, with what it is owed and the claimed payments.
SELECT i.*, GREATEST(i.amount - i.received, 0) AS shortfall, GREATEST(i.received - i.amount, 0) AS excess,
       COALESCE((SELECT jsonb_agg(jsonb_build_object(
                    'tx_hash', p.tx_hash, 'log_index', p.log_index, 'block_number', p.block_number,
                    'payer', p.payer, 'amount', p.amount::text, 'late', p.late,
                    'final', p.block_number <= COALESCE(s.final_number, -1)) ORDER BY p.block_number, p.log_index)
                 FROM invoice_payments p WHERE p.invoice_id = i.id), '[]'::jsonb) AS payments
FROM invoices i
LEFT JOIN chain_state s ON s.chain = i.chain
WHERE i.id = $1 OR i.app_ref = $1;

-- name: list_invoices
SELECT i.*, GREATEST(i.amount - i.received, 0) AS shortfall, GREATEST(i.received - i.amount, 0) AS excess
FROM invoices i
WHERE ($1::text IS NULL OR i.chain = $1) AND ($2::text IS NULL OR i.state = $2)
ORDER BY i.created_at DESC, i.id
LIMIT $3;

-- name: cancel_invoice
-- An operator marks a waiting invoice invalid.
UPDATE invoices SET state = 'invalid', reason = $2, updated_at = now()
WHERE (id = $1 OR app_ref = $1) AND state IN ('new', 'expired')
RETURNING *;

-- name: expire_due
-- Invoices still waiting when the chain's time (its latest indexed block
-- time up to $2; the clock when the chain stores none) passed their expiry.
WITH t AS (
    SELECT COALESCE((SELECT to_timestamp(b.timestamp) FROM blocks b
                     WHERE b.chain = $1 AND b.number <= $2 AND b.timestamp IS NOT NULL
                     ORDER BY b.number DESC LIMIT 1), now()) AS chain_time
)
UPDATE invoices i SET state = 'expired', updated_at = now()
WHERE i.id IN (
    -- At most $3 per range: a backlog is swept over the next ranges, so one
    -- follower transaction stays short (a claim's `late` comes from its own
    -- block time, not from this state).
    SELECT x.id FROM invoices x, t
    WHERE x.chain = $1 AND x.state = 'new' AND x.expires_at < t.chain_time
    ORDER BY x.expires_at LIMIT $3)
RETURNING i.id;

-- name: has_waiting
-- Cheap guard for the follower's hot path: anything to match, retire or
-- settle on this chain (expired ones: a payment naming one is recorded)?
SELECT EXISTS (SELECT 1 FROM invoices WHERE chain = $1 AND (matchable OR state IN ('new', 'expired')));

-- name: retire_expired
-- Expired invoices whose grace ($3 seconds) the chain's time passed stop
-- being matchable (a payment naming one is then recorded for review); at
-- most $4 per range.
WITH t AS (
    SELECT COALESCE((SELECT to_timestamp(b.timestamp) FROM blocks b
                     WHERE b.chain = $1 AND b.number <= $2 AND b.timestamp IS NOT NULL
                     ORDER BY b.number DESC LIMIT 1), now()) AS chain_time
)
UPDATE invoices i SET retired_at = now(), updated_at = now()
WHERE i.id IN (
    SELECT x.id FROM invoices x, t
    WHERE x.chain = $1 AND x.state = 'expired' AND x.retired_at IS NULL
      AND x.expires_at < t.chain_time - make_interval(secs => $3)
    ORDER BY x.expires_at LIMIT $4)
RETURNING i.id;

-- name: match_range
-- Candidate (transfer, invoice) pairs of blocks $2..$3: each unclaimed
-- incoming transfer with every matchable invoice it fits, found through the
-- partial indexes of 0019 (one indexed lookup per match method), plus the
-- retired invoices it names by tag, memo or payer (`retired`: recorded for
-- review, never credited). The caller allocates (claims.allocate).
WITH t AS (
    -- XRPL transactions carry their validated ledger's close time
    SELECT t.*, CASE WHEN e.args ->> 'close_time_iso' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'
                     THEN (e.args ->> 'close_time_iso')::timestamptz END AS close_time
    FROM incoming_transfers t
    JOIN events e ON e.id = t.event_id
    WHERE t.chain = $1 AND t.block_number BETWEEN $2 AND $3 AND t.status = 'success'
      AND NOT EXISTS (SELECT 1 FROM payment_claims c
                      WHERE c.chain = t.chain AND c.tx_hash = t.tx_hash AND c.log_index = t.log_index)
),
pairs AS (
    SELECT t.event_id, i.id FROM t JOIN invoices i
      ON i.chain = t.chain AND i.wallet = t.recipient AND i.payer = t.payer AND i.matchable AND i.match_method = 'payer'
    UNION
    -- amount invoices: looked up once per (wallet, asset kind) of the range, not per transfer
    SELECT t.event_id, a.id FROM t JOIN (
        SELECT i.id, i.chain, i.wallet, i.asset_kind
        FROM (SELECT DISTINCT chain, recipient, asset_kind FROM t) k
        JOIN invoices i ON i.chain = k.chain AND i.wallet = k.recipient AND i.asset_kind = k.asset_kind
                       AND i.matchable AND i.match_method = 'amount'
    ) a ON a.chain = t.chain AND a.wallet = t.recipient AND a.asset_kind = t.asset_kind
    UNION
    SELECT t.event_id, i.id FROM t JOIN invoices i
      ON i.chain = t.chain AND i.wallet = t.recipient AND i.destination_tag IS NOT NULL
     AND i.destination_tag = CASE WHEN t.destination_tag ~ '^[0-9]{1,10}$' THEN t.destination_tag::bigint END
    UNION
    SELECT t.event_id, i.id FROM t
    CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(t.memos) = 'array' THEN t.memos
                                                 ELSE '[]'::jsonb END) m
    JOIN invoices i ON i.chain = t.chain AND i.wallet = t.recipient AND i.memo IS NOT NULL AND i.memo = m ->> 'data'
    UNION
    -- the payer's latest retired invoice, if any (one index probe)
    SELECT t.event_id, r.id FROM t CROSS JOIN LATERAL (
        SELECT i.id FROM invoices i
        WHERE i.chain = t.chain AND i.wallet = t.recipient AND i.payer = t.payer AND i.match_method = 'payer'
          AND i.state = 'expired' AND i.retired_at IS NOT NULL
        ORDER BY i.expires_at DESC LIMIT 1) r
)
SELECT t.event_id, t.tx_hash, t.log_index, t.block_number, t.payer, x.amount, bt.block_time,
       i.id AS invoice_id, i.match_method, i.amount AS invoice_amount, i.tolerance, i.received, i.state,
       NOT i.matchable AS retired, COALESCE(bt.block_time, now()) > i.expires_at AS late
FROM pairs p
JOIN t ON t.event_id = p.event_id
JOIN invoices i ON i.id = p.id
-- The transfer's own block time: its header (EVM final ranges keep the
-- headers of blocks with a transfer to a watched wallet), or its XRPL
-- ledger's close time; else (a header not kept) that of the nearest stored
-- block below it: block times only grow, so a payment is never called
-- late on a guess.
LEFT JOIN LATERAL (
    SELECT COALESCE(
        (SELECT to_timestamp(b.timestamp) FROM blocks b
         WHERE b.chain = t.chain AND b.number = t.block_number AND b.timestamp IS NOT NULL),
        t.close_time,
        (SELECT to_timestamp(b.timestamp) FROM blocks b
         WHERE b.chain = t.chain AND b.number <= t.block_number AND b.timestamp IS NOT NULL
         ORDER BY b.number DESC LIMIT 1)) AS block_time
) bt ON true
CROSS JOIN LATERAL (
    SELECT ledger_amount(t.value, CASE WHEN i.asset_kind = 'xrpl_iou' THEN i.decimals ELSE 0 END) AS amount
) x
WHERE x.amount > 0 AND i.asset_kind = t.asset_kind
  AND i.after_block IS NOT NULL AND t.block_number > i.after_block
  AND (i.asset_kind <> 'erc20' OR i.contract = t.contract)
  AND (i.asset_kind <> 'xrpl_iou' OR (i.currency = t.currency AND i.issuer = t.issuer))
  AND (i.state NOT IN ('paid', 'overpaid', 'paid_late', 'invalid'))
  AND (i.match_method <> 'amount' OR abs(x.amount - i.amount) <= i.tolerance)
ORDER BY t.block_number, t.log_index, t.event_id, i.created_at, i.id;

-- name: insert_claims
-- The gate: a transfer is claimed once, by whoever inserts its row first.
INSERT INTO payment_claims (chain, tx_hash, log_index, invoice_id, claim_key, event_id, block_number, amount)
SELECT $1, u.* FROM unnest($2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::bigint[],
                           $8::numeric[]) u
ON CONFLICT DO NOTHING
RETURNING tx_hash, log_index;

-- name: insert_allocations
INSERT INTO invoice_payments (chain, tx_hash, log_index, invoice_id, event_id, block_number, block_time, payer,
                              amount, late)
SELECT $1, u.* FROM unnest($2::text[], $3::int[], $4::text[], $5::bigint[], $6::bigint[], $7::timestamptz[],
                           $8::text[], $9::numeric[], $10::bool[]) u
RETURNING invoice_id, event_id, tx_hash, log_index, block_number, payer, amount;

-- name: insert_unmatched
INSERT INTO invoice_unmatched (chain, tx_hash, log_index, invoice_id, event_id, block_number, payer, amount, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
RETURNING invoice_id;

-- name: delete_claims_above
DELETE FROM payment_claims WHERE chain = $1 AND block_number > $2;

-- name: recompute_states
-- The state of every invoice with news ($2: just claimed) or (with $3)
-- waiting for finality: the sum of its claims, and whether all of them are final. A
-- reverted invoice with claims left goes on from what remains; one with
-- none stays reverted.
WITH fin AS (
    SELECT COALESCE((SELECT final_number FROM chain_state WHERE chain = $1), -1) AS final_number
),
agg AS (
    SELECT i.id, COALESCE(sum(p.amount), 0) AS received, count(p.invoice_id) AS n,
           COALESCE(bool_and(p.block_number <= fin.final_number), false) AS final,
           COALESCE(bool_or(p.late), false) AS late
    FROM invoices i
    CROSS JOIN fin
    LEFT JOIN invoice_payments p ON p.invoice_id = i.id
    WHERE i.chain = $1 AND (($3::bool AND i.state IN ('seen', 'reverted')) OR i.id = ANY ($2::text[]))
    GROUP BY i.id
),
next AS (
    SELECT a.id, a.received,
           CASE WHEN a.n = 0 THEN i.state
                WHEN NOT a.final THEN 'seen'
                WHEN a.received + i.tolerance < i.amount THEN 'underpaid'
                WHEN a.late THEN 'paid_late'
                WHEN a.received > i.amount + i.tolerance THEN 'overpaid'
                ELSE 'paid' END AS state
    FROM agg a JOIN invoices i ON i.id = a.id
)
UPDATE invoices i
SET state = n.state, received = n.received, updated_at = now(), reason = NULL,
    settled_at = CASE WHEN n.state IN ('paid', 'overpaid', 'paid_late', 'underpaid') THEN now() END
FROM next n
WHERE n.id = i.id AND (n.state, n.received) IS DISTINCT FROM (i.state, i.received)
RETURNING i.id, i.state;

-- name: source_account
-- The account the ledger rules credited for this deposit event ($1) into
-- wallet account $3, in asset $2: the invoice moves the amount from it.
SELECT a.code
FROM ledger_transactions t
JOIN postings p ON p.transaction_id = t.id AND p.amount < 0 AND p.asset_id = $2
JOIN ledger_accounts a ON a.id = p.account_id
WHERE t.event_id = $1 AND t.cause_kind = 'event' AND t.idempotency_key NOT LIKE 'invoice:%'
  AND EXISTS (SELECT 1 FROM postings q JOIN ledger_accounts w ON w.id = q.account_id
              WHERE q.transaction_id = t.id AND q.amount > 0 AND w.code = $3)
ORDER BY t.id
LIMIT 1;

-- name: invoice_for_booking
SELECT id, chain, asset_id, wallet, account FROM invoices WHERE id = ANY ($1::text[]);

-- name: revert_above
-- Rollback: claims of transfers above the common ancestor go, and their
-- invoices become `reverted` (matched again if the transfer comes back).
WITH gone AS (
    DELETE FROM invoice_payments WHERE chain = $1 AND block_number > $2
    RETURNING invoice_id, amount
),
hit AS (
    SELECT invoice_id, sum(amount) AS amount FROM gone GROUP BY invoice_id
)
UPDATE invoices i
SET state = 'reverted', received = i.received - h.amount, settled_at = NULL, updated_at = now(),
    reason = 'a reorg removed a claimed payment'
FROM hit h
WHERE h.invoice_id = i.id
RETURNING i.id;

-- name: transfers_of_tx
-- What the indexer stored for one transaction: its incoming transfers, the
-- claim on each (the invoices it was allocated to, with the part of invoice
-- $3, or the claim key), and the chain's final and indexed heights.
SELECT t.*, c.claim_key, c.claimed_at,
       (SELECT array_agg(p.invoice_id ORDER BY p.invoice_id) FROM invoice_payments p
        WHERE p.chain = t.chain AND p.tx_hash = t.tx_hash AND p.log_index = t.log_index) AS allocated_to,
       (SELECT p.amount FROM invoice_payments p
        WHERE p.chain = t.chain AND p.tx_hash = t.tx_hash AND p.log_index = t.log_index AND p.invoice_id = $3)
           AS allocated_here,
       s.final_number, s.cursor_number
FROM incoming_transfers t
LEFT JOIN payment_claims c ON c.chain = t.chain AND c.tx_hash = t.tx_hash AND c.log_index = t.log_index
LEFT JOIN chain_state s ON s.chain = t.chain
WHERE t.chain = $1 AND t.tx_hash = $2
ORDER BY t.log_index;

-- name: failed_xrpl_tx
-- An XRPL transaction the indexer stored as failed (a tec result) for a watched account.
SELECT args ->> 'result' AS result, block_number FROM events
WHERE chain = $1 AND tx_hash = $2 AND args ->> 'status' = 'failed'
LIMIT 1;

-- name: claims_of_tx
SELECT c.log_index, c.claim_key, c.claimed_at,
       (SELECT array_agg(p.invoice_id ORDER BY p.invoice_id) FROM invoice_payments p
        WHERE p.chain = c.chain AND p.tx_hash = c.tx_hash AND p.log_index = c.log_index) AS allocated_to
FROM payment_claims c WHERE c.chain = $1 AND c.tx_hash = $2;

-- name: lock_invoice
SELECT i.*, GREATEST(i.amount - i.received, 0) AS shortfall FROM invoices i WHERE i.id = $1 FOR UPDATE;

-- name: transfer_block_time
-- A transfer's block time as match_range dates it ($3: its event id).
SELECT COALESCE(
    (SELECT to_timestamp(b.timestamp) FROM blocks b
     WHERE b.chain = $1 AND b.number = $2 AND b.timestamp IS NOT NULL),
    (SELECT (e.args ->> 'close_time_iso')::timestamptz FROM events e
     WHERE e.id = $3 AND e.args ->> 'close_time_iso' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d'),
    (SELECT to_timestamp(b.timestamp) FROM blocks b
     WHERE b.chain = $1 AND b.number <= $2 AND b.timestamp IS NOT NULL
     ORDER BY b.number DESC LIMIT 1));

-- name: chain_heights
SELECT final_number, cursor_number FROM chain_state WHERE chain = $1;
