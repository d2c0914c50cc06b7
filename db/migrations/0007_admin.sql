-- Admin replays and the live feed of payout and reconciliation changes.

-- A replay asked for over the admin API. The request only records it; a
-- worker of `chainsettle run` claims it (FOR UPDATE SKIP LOCKED, then a
-- lease, so no transaction stays open during the network fetch) and runs
-- the follower's backfill over the range. Replay inserts only what is
-- missing, so a lease that expires under a slow worker costs a second,
-- harmless run, never a duplicate row.
CREATE TABLE replay_requests (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain         TEXT NOT NULL,
    from_block    BIGINT NOT NULL CHECK (from_block >= 0),
    to_block      BIGINT NOT NULL,
    reason        TEXT,
    requested_by  TEXT NOT NULL,
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts      INT NOT NULL DEFAULT 0,
    claimed_by    TEXT,
    lease_until   TIMESTAMPTZ,
    inserted      BIGINT,  -- events the replay restored
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    CHECK (to_block >= from_block),
    CHECK ((state = 'done') = (inserted IS NOT NULL)),
    CHECK (state <> 'failed' OR error IS NOT NULL)
);
CREATE INDEX replay_requests_open ON replay_requests (id) WHERE state IN ('pending', 'running');

-- State changes for /v1/stream, in commit order like events (0003): a
-- change is an UPDATE, which a tx column on the changed table could not
-- order, so triggers append one row per change here, in the changing
-- transaction. Payloads are built from named columns: a batch's signature
-- never reaches the feed.
CREATE TABLE feed_outbox (
    tx       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind     TEXT NOT NULL CHECK (kind IN ('payout', 'batch', 'reconciliation', 'asset_pause', 'payout_control')),
    subject  TEXT NOT NULL,
    chain    TEXT,
    payload  JSONB NOT NULL,
    at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX feed_outbox_feed ON feed_outbox (tx, id);

CREATE FUNCTION feed_payout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('payout', NEW.id::text, NEW.chain, jsonb_build_object(
        'id', NEW.id, 'idempotency_key', NEW.idempotency_key, 'chain', NEW.chain, 'asset', NEW.asset,
        'recipient', NEW.recipient, 'amount', NEW.amount::text, 'state', NEW.state,
        'previous_state', CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
        'reason', NEW.reason, 'batch_id', NEW.batch_id, 'requested_by', NEW.requested_by,
        -- XRPL requests carry one (0006); read by name so an EVM-only schema works too.
        'destination_tag', to_jsonb(NEW) -> 'destination_tag',
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
    RETURN NULL;
END $$;

CREATE TRIGGER payout_requests_feed_insert AFTER INSERT ON payout_requests
    FOR EACH ROW EXECUTE FUNCTION feed_payout();
CREATE TRIGGER payout_requests_feed_update AFTER UPDATE ON payout_requests
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.batch_id IS DISTINCT FROM NEW.batch_id
                       OR OLD.reason IS DISTINCT FROM NEW.reason
                       OR to_jsonb(OLD) -> 'destination_tag' IS DISTINCT FROM to_jsonb(NEW) -> 'destination_tag')
    EXECUTE FUNCTION feed_payout();

CREATE FUNCTION feed_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('batch', NEW.batch_id, NEW.chain, jsonb_build_object(
        'batch_id', NEW.batch_id, 'chain', NEW.chain, 'asset', NEW.asset, 'item_count', NEW.item_count,
        'total', NEW.total::text, 'state', NEW.state,
        'previous_state', CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
        'reason', NEW.reason, 'approved_by', NEW.approved_by, 'replaces', NEW.replaces,
        'executed_block', NEW.executed_block, 'executed_tx', NEW.executed_tx,
        'failed_count', NEW.failed_count, 'failed_amount', NEW.failed_amount::text,
        'created_at', NEW.created_at, 'updated_at', NEW.updated_at));
    RETURN NULL;
END $$;

CREATE TRIGGER payout_batches_feed_insert AFTER INSERT ON payout_batches
    FOR EACH ROW EXECUTE FUNCTION feed_batch();
CREATE TRIGGER payout_batches_feed_update AFTER UPDATE ON payout_batches
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.approved_by IS DISTINCT FROM NEW.approved_by
                       OR OLD.executed_block IS DISTINCT FROM NEW.executed_block
                       OR OLD.reason IS DISTINCT FROM NEW.reason)
    EXECUTE FUNCTION feed_batch();

-- Deferred to commit: a run's results are inserted after its row, in the
-- same transaction, and the message carries them.
CREATE FUNCTION feed_reconciliation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    SELECT 'reconciliation', r.id::text, r.chain, jsonb_build_object(
        'id', r.id, 'chain', r.chain, 'height', r.height, 'started_at', r.started_at,
        'finished_at', r.finished_at, 'status', r.status, 'error', r.error, 'checked', r.checked,
        'mismatches', r.mismatches,
        'results', COALESCE((
            SELECT jsonb_agg(jsonb_build_object(
                       'account', a.code, 'asset_id', x.asset_id, 'expected', x.expected::text,
                       'actual', x.actual::text, 'difference', x.difference::text,
                       'tolerance', x.tolerance::text, 'status', x.status) ORDER BY a.code, x.asset_id)
            FROM reconciliation_results x
            JOIN ledger_accounts a ON a.id = x.account_id
            WHERE x.run_id = r.id), '[]'::jsonb))
    FROM reconciliation_runs r WHERE r.id = NEW.id;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER reconciliation_runs_feed AFTER INSERT ON reconciliation_runs
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION feed_reconciliation();

CREATE FUNCTION feed_asset_pause() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    SELECT 'asset_pause', NEW.asset_id, a.chain, jsonb_build_object(
        'id', NEW.id, 'asset_id', NEW.asset_id, 'paused', NEW.resolved_at IS NULL, 'reason', NEW.reason,
        'run_id', NEW.run_id, 'paused_by', NEW.paused_by, 'paused_at', NEW.paused_at,
        'resolved_at', NEW.resolved_at, 'resolved_by', NEW.resolved_by, 'resolution', NEW.resolution)
    FROM assets a WHERE a.id = NEW.asset_id;
    RETURN NULL;
END $$;

CREATE TRIGGER asset_pauses_feed AFTER INSERT OR UPDATE ON asset_pauses
    FOR EACH ROW EXECUTE FUNCTION feed_asset_pause();

CREATE FUNCTION feed_payout_control() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('payout_control', NEW.scope, NULLIF(NEW.scope, '*'), jsonb_build_object(
        'scope', NEW.scope, 'killed', NEW.killed, 'reason', NEW.reason, 'changed_by', NEW.changed_by,
        'changed_at', NEW.changed_at));
    RETURN NULL;
END $$;

CREATE TRIGGER payout_controls_feed AFTER INSERT OR UPDATE ON payout_controls
    FOR EACH ROW EXECUTE FUNCTION feed_payout_control();
