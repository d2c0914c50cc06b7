-- Distributions: snapshots of who holds what at a final height (or an
-- app's explicit weights), exact pro-rata shares booked as a liability of a
-- per-distribution app account, paid by push (payouts from that account).
-- settlement/distributions/ explains the design.

-- A snapshot is immutable once stored: its id is client-chosen (the same
-- id with the same body replays; a different body is a conflict).
-- kind: 'list' (weights given by the app) or 'erc20' / 'erc721' (holders
-- from final Transfer events of an indexed contract at `height`).
CREATE TABLE distribution_snapshots (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('list', 'erc20', 'erc721')),
    chain         TEXT,
    contract      TEXT,
    height        BIGINT,
    body          JSONB NOT NULL,
    holders       INT NOT NULL CHECK (holders >= 0),
    total_weight  NUMERIC(78, 0) NOT NULL CHECK (total_weight >= 0),
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'list') = (contract IS NULL AND height IS NULL))
);

CREATE TABLE distribution_snapshot_weights (
    snapshot_id  TEXT NOT NULL REFERENCES distribution_snapshots (id),
    recipient    TEXT NOT NULL,
    weight       NUMERIC(78, 0) NOT NULL CHECK (weight > 0),
    PRIMARY KEY (snapshot_id, recipient)
);

CREATE FUNCTION distribution_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER distribution_snapshots_immutable BEFORE UPDATE OR DELETE ON distribution_snapshots
    FOR EACH ROW EXECUTE FUNCTION distribution_immutable();
CREATE TRIGGER distribution_snapshot_weights_immutable BEFORE UPDATE OR DELETE ON distribution_snapshot_weights
    FOR EACH ROW EXECUTE FUNCTION distribution_immutable();

-- A distribution: `total` of `asset_id` from `pool_account` over a
-- snapshot. Creating it books, in one transaction, total - remainder from
-- the pool to `account` (app:dist.<id>, the liability: what is still owed
-- to its recipients) and the remainder (shares below `minimum`) to
-- `remainder_account`, and writes every share.
CREATE TABLE distributions (
    id                 TEXT PRIMARY KEY,
    snapshot_id        TEXT NOT NULL REFERENCES distribution_snapshots (id),
    asset_id           TEXT NOT NULL REFERENCES assets (id),
    pool_account       TEXT NOT NULL,
    account            TEXT NOT NULL UNIQUE,
    total              NUMERIC(78, 0) NOT NULL CHECK (total > 0),
    minimum            NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (minimum >= 0),
    remainder          NUMERIC(78, 0) NOT NULL CHECK (remainder >= 0 AND remainder <= total),
    remainder_account  TEXT NOT NULL,
    mode               TEXT NOT NULL CHECK (mode IN ('push', 'pull')),
    body               JSONB NOT NULL,
    recipients         INT NOT NULL,
    state              TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'paid', 'closed')),
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- pull: the ClaimDistributor epoch its tree is claimed from (set once),
    -- the tree's root and the claim deadline (unix seconds, block time).
    claim_contract     TEXT,
    epoch              NUMERIC(78, 0),
    root               TEXT,
    deadline           BIGINT,
    closed_at          TIMESTAMPTZ,
    -- pull: what the shares still owed at the deadline do: return to the
    -- pool, or roll over into the next distribution that names this one in
    -- carried_from (once: the column is unique), added to the same recipients.
    unclaimed          TEXT NOT NULL DEFAULT 'pool' CHECK (unclaimed IN ('pool', 'rollover')),
    carried_from       TEXT UNIQUE REFERENCES distributions (id),
    carried            NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (carried >= 0),
    CHECK ((claim_contract IS NULL) = (epoch IS NULL) AND (epoch IS NULL) = (root IS NULL)
           AND (root IS NULL) = (deadline IS NULL)),
    CHECK (mode = 'pull' OR claim_contract IS NULL)
);
CREATE UNIQUE INDEX distributions_epoch ON distributions (asset_id, claim_contract, epoch) WHERE epoch IS NOT NULL;

-- One row per paid share. idx is the share's position in recipient order
-- (the Merkle leaf index); state moves owed -> requested (a payout request
-- exists, key `distribution:<id>:<idx>`) -> paid (push), owed -> claimed or
-- expired (pull), expired -> rolled (carried into the next distribution); once each.
CREATE TABLE distribution_shares (
    distribution_id  TEXT NOT NULL REFERENCES distributions (id),
    idx              INT NOT NULL CHECK (idx >= 0),
    recipient        TEXT NOT NULL,
    amount           NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    state            TEXT NOT NULL DEFAULT 'owed'
                     CHECK (state IN ('owed', 'requested', 'paid', 'claimed', 'expired', 'rolled')),
    payout_key       TEXT UNIQUE,
    claim_event_id   BIGINT,  -- the final Claimed event that settled it
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (distribution_id, idx),
    UNIQUE (distribution_id, recipient)
);
CREATE INDEX distribution_shares_open ON distribution_shares (distribution_id, idx) WHERE state IN ('owed', 'requested');

-- Who, how much and for which distribution never change after creation.
CREATE FUNCTION distribution_shares_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.recipient <> OLD.recipient OR NEW.amount <> OLD.amount
       OR NEW.distribution_id <> OLD.distribution_id OR NEW.idx <> OLD.idx THEN
        RAISE EXCEPTION 'a distribution share is immutable but for its state' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER distribution_shares_fixed BEFORE UPDATE OR DELETE ON distribution_shares
    FOR EACH ROW EXECUTE FUNCTION distribution_shares_fixed();

-- Signed claim vouchers (EIP-712, redeemed at the ClaimDistributor): the
-- amount moves from the pool to its voucher account (app:vouchers.<pool
-- name>) when issued, and leaves 'issued' exactly once, from final data:
-- used (a final VoucherRedeemed event), expired (a final block at or past
-- valid_before), revoked (a final VoucherRevoked event); expired and revoked
-- move it back to the pool.
CREATE TABLE distribution_vouchers (
    id                TEXT PRIMARY KEY,  -- the client's id: the same body replays the same voucher
    nonce             TEXT NOT NULL UNIQUE CHECK (nonce ~ '^0x[0-9a-f]{64}$'),
    chain             TEXT NOT NULL,
    contract          TEXT NOT NULL,
    pool_account      TEXT NOT NULL,
    account           TEXT NOT NULL,
    asset_id          TEXT NOT NULL REFERENCES assets (id),
    recipient         TEXT NOT NULL,
    amount            NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    valid_after       BIGINT NOT NULL,
    valid_before      BIGINT NOT NULL CHECK (valid_before > valid_after),
    signature         TEXT NOT NULL,
    body              JSONB NOT NULL,
    state             TEXT NOT NULL DEFAULT 'issued' CHECK (state IN ('issued', 'used', 'expired', 'revoked')),
    revoke_requested  BOOLEAN NOT NULL DEFAULT false,
    event_id          BIGINT,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at       TIMESTAMPTZ,
    CHECK ((state = 'issued') = (resolved_at IS NULL))
);
CREATE INDEX distribution_vouchers_open ON distribution_vouchers (pool_account, asset_id) WHERE state = 'issued';

-- Feed kinds 'distribution' (created, paid, claimed, expired) and 'voucher'
-- (issued, used, expired, revoked): written by triggers in the transaction
-- of the change. The allowed list is extended, not replaced.
-- Later migrations add their kinds the same way: SELECT feed_outbox_allow_kinds(ARRAY[...]).
CREATE FUNCTION feed_outbox_allow_kinds(extra TEXT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    def TEXT;
    kinds TEXT[];
BEGIN
    SELECT pg_get_constraintdef(c.oid) INTO def FROM pg_constraint c
    WHERE c.conrelid = 'feed_outbox'::regclass AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%kind%';
    IF def IS NULL THEN
        RETURN;
    END IF;
    -- The list reads either 'a', 'b' (IN) or '{a,b}' (= ANY, as 0012 writes it).
    SELECT array_agg(DISTINCT k) INTO kinds
    FROM regexp_matches(def, '''\{?([a-z_,]+)\}?''', 'g') AS m, unnest(string_to_array(m[1], ',')) AS k;
    kinds := array(SELECT DISTINCT unnest(kinds || extra));
    EXECUTE (SELECT 'ALTER TABLE feed_outbox DROP CONSTRAINT ' || quote_ident(c.conname) FROM pg_constraint c
             WHERE c.conrelid = 'feed_outbox'::regclass AND c.contype = 'c' AND pg_get_constraintdef(c.oid) = def);
    EXECUTE 'ALTER TABLE feed_outbox ADD CONSTRAINT feed_outbox_kind_check CHECK (kind = ANY ('
            || quote_literal(kinds::text) || '::text[]))';
END $$;

SELECT feed_outbox_allow_kinds(ARRAY['distribution', 'voucher']);

CREATE FUNCTION feed_distribution() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state IS NOT DISTINCT FROM OLD.state THEN
        RETURN NEW;
    END IF;
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('distribution', NEW.id, split_part(NEW.asset_id, ':', 1), jsonb_build_object(
        'event', 'distribution.' || CASE WHEN TG_OP = 'INSERT' THEN 'created'
                                         WHEN NEW.state = 'closed' THEN 'expired' ELSE NEW.state END,
        'state', CASE WHEN TG_OP = 'INSERT' THEN 'created' WHEN NEW.state = 'closed' THEN 'expired'
                      ELSE NEW.state END,
        'id', NEW.id, 'asset', NEW.asset_id, 'mode', NEW.mode, 'total', NEW.total::text,
        'recipients', NEW.recipients, 'pool_account', NEW.pool_account));
    RETURN NEW;
END $$;
CREATE TRIGGER feed_distribution AFTER INSERT OR UPDATE OF state ON distributions
    FOR EACH ROW EXECUTE FUNCTION feed_distribution();

CREATE FUNCTION feed_distribution_claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'claimed' AND OLD.state <> 'claimed' THEN
        INSERT INTO feed_outbox (kind, subject, chain, payload)
        SELECT 'distribution', NEW.distribution_id, split_part(d.asset_id, ':', 1), jsonb_build_object(
            'event', 'distribution.claimed', 'state', 'claimed', 'id', NEW.distribution_id, 'index', NEW.idx,
            'account', NEW.recipient, 'amount', NEW.amount::text, 'asset', d.asset_id)
        FROM distributions d WHERE d.id = NEW.distribution_id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER feed_distribution_claim AFTER UPDATE OF state ON distribution_shares
    FOR EACH ROW EXECUTE FUNCTION feed_distribution_claim();

CREATE FUNCTION feed_voucher() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state IS NOT DISTINCT FROM OLD.state THEN
        RETURN NEW;
    END IF;
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('voucher', NEW.id, NEW.chain, jsonb_build_object(
        'event', 'voucher.' || NEW.state, 'state', NEW.state, 'id', NEW.id, 'nonce', NEW.nonce,
        'recipient', NEW.recipient, 'asset', NEW.asset_id, 'amount', NEW.amount::text,
        'pool_account', NEW.pool_account, 'valid_before', NEW.valid_before));
    RETURN NEW;
END $$;
CREATE TRIGGER feed_voucher AFTER INSERT OR UPDATE OF state ON distribution_vouchers
    FOR EACH ROW EXECUTE FUNCTION feed_voucher();
