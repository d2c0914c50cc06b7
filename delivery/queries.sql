-- name: horizon
-- Every transaction below this xid has finished (as api/queries.sql feed_horizon).
SELECT pg_snapshot_xmin(pg_current_snapshot())::text;

-- name: source_events_after
-- Observed events after ($1 tx, $2 id) in commit order, below horizon $3.
SELECT e.tx::text AS tx, e.id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       e.address, e.event, e.args, e.inserted_at AS at
FROM events e
WHERE (e.tx, e.id) > ($1::text::xid8, $2::bigint)
  AND e.tx < $3::text::xid8
ORDER BY e.tx, e.id
LIMIT $4;

-- name: source_feed_after
-- Every feed_outbox kind (payouts, batches, reconciliation, pauses, and kinds added later).
-- Qualified: an unqualified `tx` in ORDER BY is the text output column (999 after 1000).
SELECT o.tx::text AS tx, o.id, o.kind, o.subject, o.chain, o.payload, o.at
FROM feed_outbox o
WHERE (o.tx, o.id) > ($1::text::xid8, $2::bigint)
  AND o.tx < $3::text::xid8
ORDER BY o.tx, o.id
LIMIT $4;

-- name: source_lifecycle_after
-- final / reverted rows after ($1 tx, $2 id), below horizon $3.
-- A final row carries no copy of the event: it is read here (final rows stay).
SELECT d.tx::text AS tx, d.id, d.stage, d.event_id, d.chain, d.payload, d.at,
       CASE WHEN e.id IS NOT NULL THEN delivery_event_row(e) END AS event
FROM delivery_outbox d
LEFT JOIN events e ON d.stage = 'final' AND e.id = d.event_id
WHERE (d.tx, d.id) > ($1::text::xid8, $2::bigint)
  AND d.tx < $3::text::xid8
ORDER BY d.tx, d.id
LIMIT $4;

-- name: source_finality_after
-- Finality rows (0013) of transactions after $1 ($4: from $1 on), below
-- horizon $2: the first $3 and every other row of the last transaction
-- among them, so each transaction's rows are read together (they merge by
-- event id).
WITH firsts AS (
    SELECT tx FROM delivery_finality
    WHERE tx >= $1::text::xid8 AND (tx > $1::text::xid8 OR $4::bool) AND tx < $2::text::xid8
    ORDER BY tx, id
    LIMIT $3
)
SELECT r.tx::text AS tx, r.id, r.chain, r.above_block, r.upto_block, r.id_lo, r.id_hi, r.at
FROM delivery_finality r
WHERE r.tx >= $1::text::xid8 AND (r.tx > $1::text::xid8 OR $4::bool)
  AND r.tx <= (SELECT max(tx) FROM firsts)
ORDER BY r.tx, r.id;

-- name: source_final_events
-- The events one finality row covers with id in ($2, $3], in id order: a
-- primary key range scan. The chain and block bounds are written so no
-- index can serve them (`|| ''`, `+ 0`): on the natural key the planner
-- would fetch and sort the whole range for every page.
SELECT e.id, delivery_event_row(e) AS event
FROM events e
WHERE e.id > $2::bigint AND e.id <= $3::bigint
  AND e.chain || '' = $1 AND e.block_number + 0 > $4::bigint AND e.block_number + 0 <= $5::bigint
ORDER BY e.id
LIMIT $6;

-- name: upsert_config_subscription
-- A [[deliveries]] entry: definition from the file; state, cursor and messages kept.
INSERT INTO delivery_subscriptions (id, origin, sink, url, stream, filter, finality, ordering, cursor_tx)
VALUES ($1, 'config', $2, $3, $4, $5::jsonb, $6, $7,
        CASE WHEN $8 = 'earliest' THEN '0'::xid8 ELSE pg_snapshot_xmin(pg_current_snapshot()) END)
ON CONFLICT (id) DO UPDATE SET
    sink = EXCLUDED.sink, url = EXCLUDED.url, stream = EXCLUDED.stream, filter = EXCLUDED.filter,
    finality = EXCLUDED.finality, ordering = EXCLUDED.ordering, updated_at = now()
WHERE delivery_subscriptions.origin = 'config'
RETURNING id, origin;

-- name: insert_subscription
-- A subscription made over the admin API.
INSERT INTO delivery_subscriptions (id, origin, sink, url, stream, filter, finality, ordering, cursor_tx)
VALUES ($1, 'api', $2, $3, $4, $5::jsonb, $6, $7,
        CASE WHEN $8 = 'earliest' THEN '0'::xid8 ELSE pg_snapshot_xmin(pg_current_snapshot()) END)
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: insert_secret
-- A signing secret ($4: config or api). One already stored is left as it is:
-- a config secret rotated away over the API does not come back at a restart.
INSERT INTO delivery_secrets (subscription_id, secret, prefix, origin)
VALUES ($1, $2, $3, $4)
ON CONFLICT (subscription_id, secret) DO NOTHING
RETURNING id, prefix, created_at, expires_at;

-- name: expire_secrets
-- Rotation: every secret still valid now expires at $2 (the overlap), except the new one $3.
UPDATE delivery_secrets SET expires_at = $2
WHERE subscription_id = $1 AND id <> $3 AND (expires_at IS NULL OR expires_at > $2);

-- name: expire_config_secrets_except
-- Config secrets no longer in the file stop signing.
UPDATE delivery_secrets SET expires_at = now()
WHERE subscription_id = $1 AND origin = 'config' AND NOT (secret = ANY($2::text[]))
  AND (expires_at IS NULL OR expires_at > now());

-- name: active_secrets
-- Secrets that sign now, oldest first.
SELECT id, secret, prefix, created_at, expires_at
FROM delivery_secrets
WHERE subscription_id = $1 AND (expires_at IS NULL OR expires_at > now())
ORDER BY id;

-- name: secrets_shown
-- Every secret's id and prefix (never the secret).
SELECT id, prefix, created_at, expires_at, (expires_at IS NULL OR expires_at > now()) AS active
FROM delivery_secrets WHERE subscription_id = $1 ORDER BY id;

-- name: subscriptions
-- All subscriptions with their backlog, for the relay and the status views.
SELECT s.id, s.origin, s.sink, s.url, s.stream, s.filter, s.finality, s.ordering, s.state, s.state_reason,
       s.cursor_tx::text AS cursor_tx, s.cursor_source, s.cursor_id, s.failing_since, s.created_at, s.updated_at,
       s.last_outcome, s.last_error,
       (SELECT count(*) FROM delivery_messages m WHERE m.subscription_id = s.id AND m.state = 'pending') AS pending,
       (SELECT count(*) FROM delivery_messages m WHERE m.subscription_id = s.id AND m.state = 'dead') AS dead,
       (SELECT extract(epoch FROM now() - min(m.committed_at))::float8 FROM delivery_messages m
         WHERE m.subscription_id = s.id AND m.state = 'pending') AS lag_seconds
FROM delivery_subscriptions s
ORDER BY s.id;

-- name: subscription
-- One subscription by id.
SELECT s.id, s.origin, s.sink, s.url, s.stream, s.filter, s.finality, s.ordering, s.state, s.state_reason,
       s.cursor_tx::text AS cursor_tx, s.cursor_source, s.cursor_id, s.failing_since, s.created_at, s.updated_at,
       s.last_outcome, s.last_error,
       (SELECT count(*) FROM delivery_messages m WHERE m.subscription_id = s.id AND m.state = 'pending') AS pending,
       (SELECT count(*) FROM delivery_messages m WHERE m.subscription_id = s.id AND m.state = 'dead') AS dead,
       (SELECT extract(epoch FROM now() - min(m.committed_at))::float8 FROM delivery_messages m
         WHERE m.subscription_id = s.id AND m.state = 'pending') AS lag_seconds
FROM delivery_subscriptions s WHERE s.id = $1;

-- name: lock_subscription
-- Fan-out of one subscription is serial: its cursor and messages move together.
SELECT id, cursor_tx::text AS cursor_tx, cursor_source, cursor_id
FROM delivery_subscriptions WHERE id = $1 FOR UPDATE;

-- name: set_cursor
-- Fan-out moved past ($2, $3, $4).
UPDATE delivery_subscriptions
SET cursor_tx = $2::text::xid8, cursor_source = $3, cursor_id = $4
WHERE id = $1;

-- name: set_state
-- Pause, resume, disable; resuming clears the failure clock.
UPDATE delivery_subscriptions
SET state = $2, state_reason = $3, updated_at = now(),
    failing_since = CASE WHEN $2 = 'active' THEN NULL ELSE failing_since END,
    last_outcome = CASE WHEN $2 = 'active' THEN NULL ELSE last_outcome END,
    last_error = CASE WHEN $2 = 'active' THEN NULL ELSE last_error END
WHERE id = $1
RETURNING id, state, state_reason;

-- name: delete_subscription
-- A subscription, its secrets, messages and attempts.
DELETE FROM delivery_subscriptions WHERE id = $1 RETURNING id, origin;

-- name: pending_batch
-- The first $2 pending messages in the subscription's order, leaving out keys
-- that wait for a retry ($3: per_key). Every earlier pending message of a key
-- returned is returned too, so a sender may send each key's run in order.
SELECT m.seq, m.msg_id, m.type, m.key, m.body, m.attempts, m.generation, m.next_at <= now() AS due
FROM delivery_messages m
WHERE m.subscription_id = $1 AND m.state = 'pending'
  AND (NOT $3::bool OR m.key NOT IN (SELECT w.key FROM delivery_messages w
                                     WHERE w.subscription_id = $1 AND w.state = 'pending' AND w.next_at > now()))
ORDER BY m.seq
LIMIT $2;

-- name: next_due
-- Seconds until the subscription's next pending message is due (NULL: none).
SELECT GREATEST(0, extract(epoch FROM min(next_at) - now()))::float8
FROM delivery_messages WHERE subscription_id = $1 AND state = 'pending';

-- name: record_attempt
-- One attempt's result.
INSERT INTO delivery_attempts (subscription_id, seq, msg_id, attempt, outcome, status_code, latency_ms,
                               response_head, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: mark_delivered
-- Done; a redelivery bumped generation meanwhile keeps it pending.
UPDATE delivery_messages
SET state = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL
WHERE seq = $1 AND generation = $2 AND state = 'pending';

-- name: mark_retry
-- Failed; next try at now + $2 seconds.
UPDATE delivery_messages
SET attempts = attempts + 1, next_at = now() + make_interval(secs => $2), last_error = $3
WHERE seq = $1 AND generation = $4 AND state = 'pending';

-- name: mark_dead
-- Out of retries: dead-lettered (kept, redeliverable).
UPDATE delivery_messages
SET state = 'dead', attempts = attempts + 1, dead_at = now(), last_error = $2
WHERE seq = $1 AND generation = $3 AND state = 'pending'
RETURNING seq, msg_id, event_id, type;

-- name: sub_succeeded
-- A success stops the failure clock and clears the reason; returns a row only if it was failing.
UPDATE delivery_subscriptions SET failing_since = NULL, last_outcome = NULL, last_error = NULL
WHERE id = $1 AND (failing_since IS NOT NULL OR last_outcome IS NOT NULL)
RETURNING id;

-- name: sub_failed
-- A failure starts the clock and records its outcome and reason ($2, $3); returns how long it
-- has run and whether the outcome or reason changed (the relay logs only then).
WITH before AS (SELECT id, last_outcome, last_error FROM delivery_subscriptions WHERE id = $1 FOR NO KEY UPDATE)
UPDATE delivery_subscriptions s
SET failing_since = COALESCE(s.failing_since, now()), last_outcome = $2, last_error = left($3, 1000)
FROM before b
WHERE s.id = b.id
RETURNING extract(epoch FROM now() - s.failing_since)::float8 AS failing_for, s.state,
          (b.last_outcome IS DISTINCT FROM $2 OR b.last_error IS DISTINCT FROM left($3, 1000)) AS changed;

-- name: redeliver
-- Back to pending, due now, with a new generation: one message, or a range.
-- $2 msg_id, $3/$4 seq, $5/$6 committed_at, $7/$8 block_number, $9 event_id; NULL matches all.
UPDATE delivery_messages
SET state = 'pending', attempts = 0, next_at = now(), generation = generation + 1,
    delivered_at = NULL, dead_at = NULL, last_error = NULL
WHERE subscription_id = $1
  AND ($2::text IS NULL OR msg_id = $2)
  AND ($3::bigint IS NULL OR seq >= $3) AND ($4::bigint IS NULL OR seq <= $4)
  AND ($5::timestamptz IS NULL OR committed_at >= $5) AND ($6::timestamptz IS NULL OR committed_at <= $6)
  AND ($7::bigint IS NULL OR block_number >= $7) AND ($8::bigint IS NULL OR block_number <= $8)
  AND ($9::text IS NULL OR event_id = $9)
RETURNING seq;

-- name: insert_ping
-- A test ping: one message through the normal path.
INSERT INTO delivery_messages (subscription_id, msg_id, event_id, type, key, body, committed_at)
VALUES ($1, $2, NULL, 'ping', 'ping', $3, now())
RETURNING seq, msg_id;

-- name: notify
-- Wake relays (admin actions).
SELECT pg_notify('chainsettle_delivery', $1);

-- name: messages_page
-- A subscription's messages after seq $2, optionally one state.
SELECT seq, msg_id, event_id, type, key, chain, block_number, state, attempts, generation, next_at,
       last_error, committed_at, delivered_at, dead_at,
       pos_tx::text AS pos_tx, pos_source, pos_id
FROM delivery_messages
WHERE subscription_id = $1 AND seq > $2 AND ($3::text IS NULL OR state = $3)
ORDER BY seq
LIMIT $4;

-- name: messages_after_position
-- Pull: messages whose source position is after ($2 tx, $3 source, $4 id), in the subscription's order.
SELECT seq, msg_id, type, body, pos_tx::text AS pos_tx, pos_source, pos_id
FROM delivery_messages
WHERE subscription_id = $1 AND (pos_tx, pos_source, pos_id) > ($2::text::xid8, $3::int, $4::bigint)
ORDER BY seq
LIMIT $5;

-- name: attempts_page
-- Attempts newest first before id $2, optionally of one message.
SELECT a.id, a.seq, a.msg_id, a.attempt, a.outcome, a.status_code, a.latency_ms, a.response_head, a.error, a.at
FROM delivery_attempts a
WHERE a.subscription_id = $1 AND a.id < $2 AND ($3::text IS NULL OR a.msg_id = $3)
ORDER BY a.id DESC
LIMIT $4;

-- name: metrics_rows
-- Per subscription: state, backlog, lag, dead letters.
SELECT s.id, s.state,
       count(m.seq) FILTER (WHERE m.state = 'pending') AS pending,
       count(m.seq) FILTER (WHERE m.state = 'dead') AS dead,
       COALESCE(extract(epoch FROM now() - min(m.committed_at) FILTER (WHERE m.state = 'pending')), 0)::float8
           AS lag_seconds
FROM delivery_subscriptions s
LEFT JOIN delivery_messages m ON m.subscription_id = s.id AND m.state IN ('pending', 'dead')
GROUP BY s.id, s.state;

-- name: insert_message
-- Fan-out: one message of a subscription, in commit order (seq grows with it).
INSERT INTO delivery_messages (subscription_id, msg_id, event_id, type, key, chain, block_number,
    pos_tx, pos_source, pos_id, body, committed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::xid8, $9, $10, $11, $12)
ON CONFLICT (subscription_id, msg_id) DO NOTHING;

-- name: assets_display
-- Symbols and decimals for showing amounts in an asset's units (the status page).
SELECT id, chain, name, kind, contract, symbol, decimals FROM assets ORDER BY id;

-- name: prune_delivered
-- Retention: delivered messages (and their attempts) older than $1 seconds, $2 at a time.
-- Pending and dead ones stay until delivered or redelivered.
DELETE FROM delivery_messages
WHERE seq IN (SELECT seq FROM delivery_messages
              WHERE state = 'delivered' AND delivered_at < now() - make_interval(secs => $1)
              LIMIT $2);

-- name: held_back
-- Committed rows at or past horizon $1: a transaction below them was still
-- running (often one of the relay's own), so look again soon, not at the next poll.
SELECT EXISTS (SELECT 1 FROM events WHERE tx >= $1::text::xid8)
    OR EXISTS (SELECT 1 FROM feed_outbox WHERE tx >= $1::text::xid8)
    OR EXISTS (SELECT 1 FROM delivery_outbox WHERE tx >= $1::text::xid8)
    OR EXISTS (SELECT 1 FROM delivery_finality WHERE tx >= $1::text::xid8);
