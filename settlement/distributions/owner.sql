-- The ClaimDistributor owner's calls (settlement/distributions/owner.py, owner_send.py).

-- name: insert_call
INSERT INTO distribution_owner_calls (id, kind, chain, sender, contract, target, calldata, value, distribution_id,
                                      voucher_id, after_id, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: find_call
SELECT c.*, a.state AS after_state FROM distribution_owner_calls c
LEFT JOIN distribution_owner_calls a ON a.id = c.after_id
WHERE c.id = $1;

-- name: insert_epoch
INSERT INTO distribution_owner_epochs (distribution_id, chain, contract, epoch, auto_sweep, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (distribution_id) DO NOTHING;

-- name: find_epoch
SELECT * FROM distribution_owner_epochs WHERE distribution_id = $1;

-- name: calls_page
-- Owner calls, oldest first: $1 state, $2 chain (NULL: any), at most $3.
SELECT c.*, a.state AS after_state FROM distribution_owner_calls c
LEFT JOIN distribution_owner_calls a ON a.id = c.after_id
WHERE ($1::text IS NULL OR c.state = $1) AND ($2::text IS NULL OR c.chain = $2)
ORDER BY c.created_at, c.id
LIMIT $3;

-- name: retry_call
-- A failed call back in the queue: the next pass signs a new transaction for it (at a new nonce).
UPDATE distribution_owner_calls SET state = 'queued', reason = $2, updated_at = now()
WHERE id = $1 AND state = 'failed'
RETURNING *;

-- name: cancel_call
-- Never a sent one: its transaction may still be mined; a final receipt decides it.
UPDATE distribution_owner_calls SET state = 'cancelled', reason = $2, updated_at = now()
WHERE id = $1 AND state IN ('queued', 'failed')
RETURNING *;

-- name: cancel_dependents
-- The queued calls that can only go after $1 (directly or through another): cancelled with it.
WITH RECURSIVE dep AS (
    SELECT id FROM distribution_owner_calls WHERE after_id = $1 AND state = 'queued'
    UNION
    SELECT c.id FROM distribution_owner_calls c JOIN dep ON c.after_id = dep.id WHERE c.state = 'queued'
)
UPDATE distribution_owner_calls c SET state = 'cancelled', reason = $2, updated_at = now()
FROM dep WHERE c.id = dep.id
RETURNING c.id;

-- name: sweeps_due
-- Closed pull distributions (the deadline passed a final block) that the daemon sweeps and has not queued yet.
SELECT o.distribution_id, o.chain, o.contract, o.epoch, f.sender
FROM distribution_owner_epochs o
JOIN distributions d ON d.id = o.distribution_id
JOIN distribution_owner_calls f ON f.id = 'epoch:' || o.distribution_id || ':fund'
WHERE o.chain = $1 AND o.auto_sweep AND d.state = 'closed' AND f.state <> 'cancelled'
  AND NOT EXISTS (SELECT 1 FROM distribution_owner_calls s WHERE s.id = 'epoch:' || o.distribution_id || ':sweep')
ORDER BY o.distribution_id;

-- name: ready_calls
-- Queued calls whose predecessor is confirmed. An approve waits while another distribution's approve is
-- in flight or confirmed with its fundEpoch not yet done: an approval sets the allowance, it does not add.
SELECT c.*, d.asset_id FROM distribution_owner_calls c
LEFT JOIN distribution_owner_calls a ON a.id = c.after_id
LEFT JOIN distributions d ON d.id = c.distribution_id
WHERE c.chain = $1 AND c.state = 'queued' AND (c.after_id IS NULL OR a.state = 'confirmed')
  AND NOT (c.kind = 'approve' AND EXISTS (
      SELECT 1 FROM distribution_owner_calls y
      LEFT JOIN distribution_owner_calls f ON f.after_id = y.id AND f.kind = 'fund_epoch'
      WHERE y.chain = c.chain AND y.kind = 'approve' AND y.id <> c.id
        AND (y.state = 'sent' OR y.state = 'confirmed' AND f.state IN ('queued', 'sent'))))
ORDER BY c.created_at, c.id
LIMIT $2;

-- name: lock_queued
SELECT * FROM distribution_owner_calls WHERE id = $1 AND state = 'queued' FOR UPDATE;

-- name: mark_sent
UPDATE distribution_owner_calls
SET state = 'sent', sends = sends + 1, sent_tx_id = $2, reason = NULL, updated_at = now()
WHERE id = $1 AND state = 'queued'
RETURNING id;

-- name: fail_unsent
UPDATE distribution_owner_calls SET state = 'failed', reason = $2, updated_at = now()
WHERE id = $1 AND state = 'queued'
RETURNING id;

-- name: sent_calls
SELECT * FROM distribution_owner_calls WHERE chain = $1 AND state = 'sent' ORDER BY created_at, id;

-- name: call_txs
-- The transactions of a call's current send: its first one and every replacement after it.
SELECT id, tx_hash, nonce, attempt, state, final, receipt_status, mined_block, gas_limit
FROM evm_txs WHERE owner_call_id = $1 AND id >= $2
ORDER BY id;

-- name: decide_call
-- From a final receipt only: confirmed (status 1) or failed (status 0).
UPDATE distribution_owner_calls
SET state = $2, tx_hash = $3, block_number = $4, reason = $5, updated_at = now()
WHERE id = $1 AND state = 'sent'
RETURNING id;

-- name: requeue_lost
-- Every transaction of the send is dropped (a final block shows its nonce used by another, none of ours
-- mined): nothing of it can be mined any more, so it is sent again.
UPDATE distribution_owner_calls SET state = 'queued', reason = $2, updated_at = now()
WHERE id = $1 AND state = 'sent'
RETURNING id;

-- name: state_counts
SELECT chain, state, count(*) AS n FROM distribution_owner_calls
WHERE state IN ('queued', 'sent', 'failed') GROUP BY chain, state;

-- name: stuck_counts
-- Sent, or queued with nothing to wait for, and unchanged for more than $1 seconds.
SELECT c.chain, count(*) AS n FROM distribution_owner_calls c
LEFT JOIN distribution_owner_calls a ON a.id = c.after_id
WHERE (c.state = 'sent' OR c.state = 'queued' AND (c.after_id IS NULL OR a.state = 'confirmed'))
  AND c.updated_at < now() - make_interval(secs => $1)
GROUP BY c.chain;
