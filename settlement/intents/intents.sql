-- Payment intents (db/migrations/0012_intents.sql): intents and their versions,
-- occurrences, condition evaluations, and the feed rows they announce.

-- name: insert_intent
INSERT INTO intents (name, chain, asset, source_account, next_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING *;

-- name: insert_version
INSERT INTO intent_versions (intent_id, version, spec, changed_by, reason)
VALUES ($1, $2, $3, $4, $5);

-- name: get_intent
SELECT i.*, v.spec FROM intents i
JOIN intent_versions v ON v.intent_id = i.id AND v.version = i.version
WHERE i.id = $1;

-- name: lock_intent
SELECT i.*, v.spec FROM intents i
JOIN intent_versions v ON v.intent_id = i.id AND v.version = i.version
WHERE i.id = $1
FOR UPDATE OF i;

-- name: set_intent_version
UPDATE intents SET version = $2, name = $3, chain = $4, asset = $5, source_account = $6, next_at = $7,
                   updated_at = now()
WHERE id = $1
RETURNING *;

-- name: set_intent_state
UPDATE intents SET state = $2, next_at = $3, updated_at = now() WHERE id = $1 RETURNING *;

-- name: list_intents
SELECT i.*, v.spec FROM intents i
JOIN intent_versions v ON v.intent_id = i.id AND v.version = i.version
WHERE ($1::text IS NULL OR i.state = $1)
ORDER BY i.id
LIMIT $2;

-- name: versions_of
SELECT version, spec, changed_by, reason, created_at FROM intent_versions WHERE intent_id = $1 ORDER BY version;

-- name: payouts_in_flight
-- Occurrences of intent $1 whose payout was requested and is not executed
-- or cancelled yet: a pause or cancel does not stop those.
SELECT o.id AS occurrence_id, p.id AS payout_id, p.state AS payout_state
FROM intent_occurrences o
JOIN payout_requests p ON p.idempotency_key = o.id
WHERE o.intent_id = $1 AND o.state = 'requested' AND p.state IN ('pending', 'batched', 'held')
ORDER BY o.scheduled_at, o.id;

-- name: cancel_open_occurrences
UPDATE intent_occurrences SET state = 'cancelled', reason = $2, next_attempt_at = NULL, updated_at = now()
WHERE intent_id = $1 AND state IN ('due', 'delayed', 'awaiting_approval')
RETURNING id, chain;

-- name: due_intents
-- Intents whose cursor is due; one scheduler at a time per intent (others skip it).
SELECT i.id, i.version, i.next_at, v.spec FROM intents i
JOIN intent_versions v ON v.intent_id = i.id AND v.version = i.version
WHERE i.state = 'active' AND i.next_at IS NOT NULL AND i.next_at <= $1
ORDER BY i.next_at, i.id
LIMIT $2
FOR UPDATE OF i SKIP LOCKED;

-- name: insert_occurrences
-- Materialise occurrences of many intents at once; a (intent, scheduled time) made before is left alone.
INSERT INTO intent_occurrences (id, intent_id, version, scheduled_at, chain, asset, source_account, state, catch_up,
                                deadline, next_attempt_at, reason)
SELECT o.id, o.intent_id, o.version, o.scheduled_at, o.chain, o.asset, o.source, o.state, o.catch_up, o.deadline,
       CASE WHEN o.state = 'due' THEN o.scheduled_at END, o.reason
FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::text[],
            $9::bool[], $10::timestamptz[], $11::text[])
     AS o(id, intent_id, version, chain, asset, source, scheduled_at, state, catch_up, deadline, reason)
ON CONFLICT DO NOTHING
RETURNING id, intent_id, chain, state, scheduled_at, catch_up, reason;

-- name: set_next_at
-- Many cursors at once ($1 ids, $2 next times).
UPDATE intents i SET next_at = n.next_at, updated_at = now()
FROM unnest($1::bigint[], $2::timestamptz[]) AS n(id, next_at)
WHERE i.id = n.id;

-- name: attemptable
-- Occurrences of active intents whose next attempt is due, oldest first (a paused intent's wait).
SELECT o.id, o.chain FROM intent_occurrences o
JOIN intents i ON i.id = o.intent_id AND i.state = 'active'
WHERE o.state IN ('due', 'delayed') AND o.next_attempt_at <= $1
ORDER BY o.next_attempt_at, o.id
LIMIT $2;

-- name: lock_occurrences
-- Occurrences to attempt (ones being attempted elsewhere are skipped), each with the payout its
-- id already keys, if any: only the holder of the row lock requests it.
SELECT o.*, v.spec, i.state AS intent_state,
       p.id AS payout_id, p.state AS payout_request_state, p.amount AS payout_amount
FROM intent_occurrences o
JOIN intents i ON i.id = o.intent_id
JOIN intent_versions v ON v.intent_id = o.intent_id AND v.version = o.version
LEFT JOIN payout_requests p ON p.idempotency_key = o.id
WHERE o.id = ANY ($1::text[]) AND o.state IN ('due', 'delayed')
ORDER BY o.next_attempt_at, o.id
-- The intent is share-locked for the whole attempt: a pause or cancel
-- (lock_intent, FOR UPDATE) waits for it and then sees what it requested;
-- an intent being paused or cancelled right now is skipped (busy).
FOR UPDATE OF o SKIP LOCKED
FOR SHARE OF i SKIP LOCKED;

-- name: lock_sources
-- Serialises the check-and-request of each source account and asset across processes; in one
-- fixed (sorted) order, so two schedulers never wait on each other in a cycle.
SELECT count(*) FROM (
    SELECT pg_advisory_xact_lock(hashtextextended(k, 15)) FROM unnest($1::text[]) AS k ORDER BY k
) AS locked;

-- name: source_funds
-- The source's final balance and what is reserved against it, in one round trip:
-- open payout requests paid from it (any recipient, intent or not) and its open holds.
-- $1 chain, $2 asset, $3 source account, $4 asset id.
SELECT
    (SELECT COALESCE(-sum(p.amount), 0)
     FROM postings p
     JOIN ledger_accounts a ON a.id = p.account_id
     JOIN ledger_transactions t ON t.id = p.transaction_id
     WHERE a.code = $3 AND p.asset_id = $4
       AND t.block_number <= (SELECT final_number FROM chain_state WHERE chain = $1)) AS balance,
    (SELECT COALESCE((SELECT sum(amount) FROM payout_requests
                      WHERE from_account = $3 AND chain = $1 AND asset = $2
                        AND state IN ('pending', 'batched', 'held')), 0)
          + COALESCE((SELECT b.held FROM ledger_account_balances b JOIN ledger_accounts a ON a.id = b.account_id
                      WHERE a.code = $3 AND b.asset_id = $4), 0))
        AS reserved;

-- name: source_funds_many
-- source_funds for many sources at once (arrays: chains, assets, sources, asset ids);
-- n is the 1-based position in the arrays.
SELECT s.n,
    (SELECT COALESCE(-sum(p.amount), 0)
     FROM postings p
     JOIN ledger_accounts a ON a.id = p.account_id
     JOIN ledger_transactions t ON t.id = p.transaction_id
     WHERE a.code = s.source AND p.asset_id = s.aid
       AND t.block_number <= (SELECT final_number FROM chain_state WHERE chain = s.chain)) AS balance,
    (SELECT COALESCE((SELECT sum(amount) FROM payout_requests
                      WHERE from_account = s.source AND chain = s.chain AND asset = s.asset
                        AND state IN ('pending', 'batched', 'held')), 0)
          + COALESCE((SELECT b.held FROM ledger_account_balances b JOIN ledger_accounts a ON a.id = b.account_id
                      WHERE a.code = s.source AND b.asset_id = s.aid), 0))
        AS reserved
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY
     AS s(chain, asset, source, aid, n);

-- name: period_total
-- What this intent requested in [$2, $3) and did not fail to pay.
SELECT COALESCE(sum(amount), 0) FROM intent_occurrences
WHERE intent_id = $1 AND requested_at >= $2 AND requested_at < $3 AND state IN ('requested', 'executed')
  AND id <> $4;

-- name: insert_evaluation
INSERT INTO intent_evaluations (occurrence_id, attempt, evaluated_at, result, reason, inputs)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: set_delayed
UPDATE intent_occurrences SET state = 'delayed', attempts = $2, next_attempt_at = $3, reason = $4, updated_at = now()
WHERE id = $1;

-- name: set_missed
UPDATE intent_occurrences SET state = 'missed', attempts = $2, next_attempt_at = NULL, reason = $3, updated_at = now()
WHERE id = $1;

-- name: set_requested
UPDATE intent_occurrences SET state = 'requested', attempts = $2, amount = $3, payout_request_id = $4,
                              payout_state = $5, requested_at = $6, next_attempt_at = NULL, reason = NULL,
                              updated_at = now()
WHERE id = $1;

-- name: set_requested_many
-- set_requested_evaluated for many occurrences (arrays in its argument order).
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::numeric[], $4::bigint[], $5::text[], $6::timestamptz[],
                         $7::jsonb[]) AS r(id, attempt, amount, payout_id, payout_state, at, inputs)
), e AS (
    INSERT INTO intent_evaluations (occurrence_id, attempt, evaluated_at, result, reason, inputs)
    SELECT id, attempt, at, true, 'ok', inputs FROM r
)
UPDATE intent_occurrences o SET state = 'requested', attempts = r.attempt, amount = r.amount,
                                payout_request_id = r.payout_id, payout_state = r.payout_state, requested_at = r.at,
                                next_attempt_at = NULL, reason = NULL, updated_at = now()
FROM r WHERE o.id = r.id;

-- name: set_failed
UPDATE intent_occurrences SET state = 'failed', attempts = $2, next_attempt_at = NULL, reason = $3, updated_at = now()
WHERE id = $1;

-- name: sync_payouts
-- Occurrences follow their payouts: paid (from final chain data) -> executed; a payout that
-- ended without paying -> failed; held and the rest shown as payout_state. The feed rows
-- (executed, failed, payout_held) are written by the same statement.
WITH changed AS (
    UPDATE intent_occurrences o
    SET payout_state = p.state,
        state = CASE WHEN p.state = 'paid' THEN 'executed'
                     WHEN p.state IN ('failed', 'cancelled', 'rejected') THEN 'failed'
                     ELSE 'requested' END,
        reason = CASE WHEN p.state = 'paid' THEN NULL ELSE p.reason END,
        updated_at = now()
    FROM payout_requests p
    WHERE o.state = 'requested' AND p.id = o.payout_request_id AND o.payout_state IS DISTINCT FROM p.state
    RETURNING o.id, o.intent_id, o.chain, o.asset, o.scheduled_at, o.state, o.amount, o.reason, o.payout_request_id,
              o.payout_state
)
INSERT INTO feed_outbox (kind, subject, chain, payload)
SELECT 'intent', c.id, c.chain, jsonb_build_object(
    'event', CASE c.state WHEN 'executed' THEN 'executed' WHEN 'failed' THEN 'failed'
                          ELSE 'payout_' || c.payout_state END,
    'occurrence_id', c.id, 'intent_id', c.intent_id, 'chain', c.chain, 'asset', c.asset,
    'scheduled_at', c.scheduled_at, 'state', c.state, 'amount', c.amount::text, 'reason', c.reason,
    'payout_request_id', c.payout_request_id, 'payout_state', c.payout_state)
FROM changed c
WHERE c.state IN ('executed', 'failed') OR c.payout_state = 'held'
RETURNING subject, payload ->> 'event' AS event;

-- name: insert_feed
INSERT INTO feed_outbox (kind, subject, chain, payload) VALUES ('intent', $1, $2, $3);

-- name: occurrences_of
SELECT o.id, o.intent_id, o.version, o.scheduled_at, o.state, o.catch_up, o.amount::text AS amount, o.attempts,
       o.next_attempt_at, o.deadline, o.reason, o.payout_request_id, o.payout_state, o.approved_by, o.created_at,
       o.updated_at,
       (SELECT jsonb_agg(jsonb_build_object('attempt', e.attempt, 'at', e.evaluated_at, 'result', e.result,
                                            'reason', e.reason, 'inputs', e.inputs) ORDER BY e.attempt)
        FROM intent_evaluations e WHERE e.occurrence_id = o.id) AS evaluations
FROM intent_occurrences o
WHERE o.intent_id = $1 AND ($2::text IS NULL OR o.state = $2)
ORDER BY o.scheduled_at DESC
LIMIT $3;

-- name: approve_occurrence
UPDATE intent_occurrences SET state = 'due', approved_by = $2, next_attempt_at = $3, updated_at = now()
WHERE id = $1 AND state = 'awaiting_approval'
RETURNING id, chain;

-- name: occurrence_state
SELECT state FROM intent_occurrences WHERE id = $1;
