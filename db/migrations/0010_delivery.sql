-- Delivery of events to applications (delivery/): subscriptions, the
-- lifecycle outbox, per-subscription messages and their attempts.
--
-- What a relay reads, in the SSE feed's commit order (0003, 0007):
--   (tx, 0, id)  events            -> `observed`  (the events table is its own outbox)
--   (tx, 1, id)  feed_outbox       -> payout, batch, reconciliation, ... (any kind)
--   (tx, 2, id)  delivery_outbox   -> `final` and `reverted` of one event
-- Each source carries the writing transaction's xid8, and a reader stops at
-- the oldest running transaction, so resuming "after (tx, source, id)"
-- never skips a row that commits late.

-- Lifecycle rows written by triggers in the transaction that changes the
-- event: nothing in indexer/ or settlement/ calls this package.
CREATE TABLE delivery_outbox (
    tx        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id        BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 100) PRIMARY KEY,
    stage     TEXT NOT NULL CHECK (stage IN ('final', 'reverted')),
    event_id  BIGINT NOT NULL,
    chain     TEXT NOT NULL,
    -- `reverted`: the event as it was (its row is gone) and the ledger
    -- entries removed with it. `final`: empty; the event row is read at
    -- fan-out (final rows are never deleted), which keeps this write small
    -- on the indexer's hot path.
    payload   JSONB NOT NULL DEFAULT '{}'::jsonb,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX delivery_outbox_feed ON delivery_outbox (tx, id);

-- Ledger entries removed by a reorg, kept for the rest of the transaction
-- so the events trigger can attach them to each `reverted` row. The
-- ledger hook deletes entries before the events (their FK), so the
-- entries are gone by the time the event delete fires.
CREATE UNLOGGED TABLE delivery_reversal_stage (
    tx              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id        BIGINT NOT NULL,
    transaction_id  BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL
);
CREATE INDEX delivery_reversal_stage_tx ON delivery_reversal_stage (tx, event_id);
CREATE UNLOGGED TABLE delivery_reversal_postings (
    tx              xid8 NOT NULL DEFAULT pg_current_xact_id(),
    transaction_id  BIGINT NOT NULL,
    postings        JSONB NOT NULL
);
CREATE INDEX delivery_reversal_postings_tx ON delivery_reversal_postings (tx, transaction_id);

CREATE FUNCTION delivery_event_row(e events) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id, 'chain', e.chain, 'block_number', e.block_number, 'block_hash', e.block_hash,
        'tx_hash', e.tx_hash, 'tx_index', e.tx_index, 'log_index', e.log_index, 'address', e.address,
        'event', e.event, 'args', e.args)
$$;

-- `final`: when a chain's final height moves from A to B, every stored
-- event in (A, B] becomes final, in the same transaction that moves it
-- (indexer/store commit_range). Derived here rather than by a relay
-- comparing final_number later: the relay would then need a second order
-- (finality moves) beside commit order, and an event restored by a replay
-- below an already-final height would have no transition at all.
CREATE FUNCTION delivery_on_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_outbox (stage, event_id, chain)
    SELECT 'final', e.id, e.chain
    FROM events e
    WHERE e.chain = NEW.chain
      AND e.block_number > COALESCE(OLD.final_number, -1)
      AND e.block_number <= NEW.final_number
    ORDER BY e.block_number, e.tx_index, e.log_index, e.id;
    RETURN NULL;
END $$;

CREATE TRIGGER chain_state_delivery_final AFTER UPDATE OF final_number ON chain_state
    FOR EACH ROW WHEN (NEW.final_number IS NOT NULL
                       AND NEW.final_number > COALESCE(OLD.final_number, -1))
    EXECUTE FUNCTION delivery_on_final();

-- An event inserted at or below the final height (a replay restoring a
-- missed log) is final at once: observed and final in one transaction.
CREATE FUNCTION delivery_on_late_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_outbox (stage, event_id, chain)
    SELECT 'final', n.id, n.chain
    FROM new_events n
    JOIN chain_state s ON s.chain = n.chain
    WHERE s.final_number IS NOT NULL AND n.block_number <= s.final_number
    ORDER BY n.block_number, n.tx_index, n.log_index, n.id;
    PERFORM pg_notify('chainsettle_delivery', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_delivery_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_on_late_insert();

CREATE FUNCTION delivery_stage_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_reversal_stage (event_id, transaction_id, idempotency_key)
    SELECT o.event_id, o.id, o.idempotency_key
    FROM old_tx o WHERE o.event_id IS NOT NULL;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_transactions_delivery_delete AFTER DELETE ON ledger_transactions
    REFERENCING OLD TABLE AS old_tx
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_stage_ledger();

-- Postings go by cascade; which statement trigger fires first is not
-- promised, so each stages its own rows and the events trigger joins them.
CREATE FUNCTION delivery_stage_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_reversal_postings (transaction_id, postings)
    SELECT o.transaction_id, jsonb_agg(jsonb_build_object(
               'account', a.code, 'asset_id', o.asset_id, 'amount', o.amount::text) ORDER BY o.id)
    FROM old_postings o
    LEFT JOIN ledger_accounts a ON a.id = o.account_id
    GROUP BY o.transaction_id;
    RETURN NULL;
END $$;

CREATE TRIGGER postings_delivery_delete AFTER DELETE ON postings
    REFERENCING OLD TABLE AS old_postings
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_stage_postings();

-- `reverted`: a reorg deletes events above the common ancestor
-- (indexer/store rollback_to); each gets its reversal in that transaction.
CREATE FUNCTION delivery_on_revert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_outbox (stage, event_id, chain, payload)
    SELECT 'reverted', o.id, o.chain, delivery_event_row(o) || jsonb_build_object('ledger_reversal', COALESCE((
               SELECT jsonb_agg(jsonb_build_object('idempotency_key', s.idempotency_key,
                                                   'postings', COALESCE(p.postings, '[]'::jsonb))
                                ORDER BY s.transaction_id)
               FROM delivery_reversal_stage s
               LEFT JOIN delivery_reversal_postings p
                      ON p.tx = s.tx AND p.transaction_id = s.transaction_id
               WHERE s.tx = pg_current_xact_id() AND s.event_id = o.id), '[]'::jsonb))
    FROM old_events o
    LEFT JOIN chain_state c ON c.chain = o.chain
    -- Only what could still change: a reorg never goes below the final
    -- height, and a final event removed by hand is no reorg to announce.
    WHERE c.final_number IS NULL OR o.block_number > c.final_number
    ORDER BY o.block_number, o.tx_index, o.log_index, o.id;
    DELETE FROM delivery_reversal_stage WHERE tx = pg_current_xact_id();
    DELETE FROM delivery_reversal_postings WHERE tx = pg_current_xact_id();
    PERFORM pg_notify('chainsettle_delivery', '');
    RETURN NULL;
END $$;

CREATE TRIGGER events_delivery_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_on_revert();

CREATE FUNCTION delivery_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chainsettle_delivery', '');
    RETURN NULL;
END $$;

-- NOTIFY is delivered at commit and folded per transaction: one wake-up
-- per writing transaction at most. Relays poll as well.
CREATE TRIGGER feed_outbox_delivery_notify AFTER INSERT ON feed_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_notify();
CREATE TRIGGER delivery_outbox_notify AFTER INSERT ON delivery_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_notify();

CREATE TABLE delivery_subscriptions (
    id              TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    origin          TEXT NOT NULL CHECK (origin IN ('config', 'api')),
    sink            TEXT NOT NULL CHECK (sink IN ('webhook', 'redis')),
    url             TEXT NOT NULL,        -- webhook URL, or redis:// URL
    stream          TEXT,                 -- redis: the stream key
    filter          JSONB NOT NULL DEFAULT '{}'::jsonb,
    finality        TEXT NOT NULL CHECK (finality IN ('instant', 'final')),
    ordering        TEXT NOT NULL CHECK (ordering IN ('per_key', 'strict')),
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'disabled')),
    state_reason    TEXT,
    -- Where fan-out resumes, in commit order (tx, source, id).
    cursor_tx       xid8 NOT NULL,
    cursor_source   INT NOT NULL DEFAULT 0,
    cursor_id       BIGINT NOT NULL DEFAULT 0,
    failing_since   TIMESTAMPTZ,          -- first failure since the last success
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((sink = 'redis') = (stream IS NOT NULL))
);

-- Signing secrets. Several are active during a rotation; each signs.
CREATE TABLE delivery_secrets (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES delivery_subscriptions (id) ON DELETE CASCADE,
    secret           TEXT NOT NULL,       -- whsec_<base64>; never in logs or API output
    prefix           TEXT NOT NULL,       -- what may be shown
    origin           TEXT NOT NULL DEFAULT 'api' CHECK (origin IN ('config', 'api')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ,
    UNIQUE (subscription_id, secret)
);

CREATE TABLE delivery_messages (
    seq              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- the subscription's order
    subscription_id  TEXT NOT NULL REFERENCES delivery_subscriptions (id) ON DELETE CASCADE,
    msg_id           TEXT NOT NULL,       -- webhook-id: stable across retries and redeliveries
    event_id         TEXT,                -- stable id of the thing described (ev_<chain>_<id>)
    type             TEXT NOT NULL,
    key              TEXT NOT NULL,       -- per_key ordering
    chain            TEXT,
    block_number     BIGINT,
    pos_tx           xid8,
    pos_source       INT,
    pos_id           BIGINT,
    body             BYTEA NOT NULL,      -- the exact bytes signed and sent
    committed_at     TIMESTAMPTZ NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INT NOT NULL DEFAULT 0,
    generation       INT NOT NULL DEFAULT 0,  -- bumped by each redelivery
    next_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ,
    dead_at          TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (subscription_id, msg_id)
);
CREATE INDEX delivery_messages_pending ON delivery_messages (subscription_id, seq) WHERE state = 'pending';
CREATE INDEX delivery_messages_waiting ON delivery_messages (subscription_id, next_at) WHERE state = 'pending';
CREATE INDEX delivery_messages_done ON delivery_messages (delivered_at) WHERE state = 'delivered';
CREATE INDEX delivery_messages_pos ON delivery_messages (subscription_id, pos_tx, pos_source, pos_id);

CREATE TABLE delivery_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES delivery_subscriptions (id) ON DELETE CASCADE,
    seq              BIGINT NOT NULL REFERENCES delivery_messages (seq) ON DELETE CASCADE,
    msg_id           TEXT NOT NULL,
    attempt          INT NOT NULL,
    outcome          TEXT NOT NULL CHECK (outcome IN ('ok', 'http_error', 'timeout', 'network', 'refused', 'gone')),
    status_code      INT,
    latency_ms       DOUBLE PRECISION NOT NULL,
    response_head    TEXT,                -- the first bytes of the answer
    error            TEXT,
    at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_sub ON delivery_attempts (subscription_id, id);
CREATE INDEX delivery_attempts_seq ON delivery_attempts (seq);
