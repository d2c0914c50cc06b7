-- Incoming payments: invoices matched from indexed data, the claims that
-- tie one chain transfer to at most one invoice, and wallet sign-in nonces.
--
-- Invoice states (BTCPay-like):
--   new -> seen        a matching transfer is indexed in a block that is not final yet
--   seen -> paid | underpaid | overpaid | paid_late   every claimed transfer is final
--   new -> expired     the chain passed expires_at (block time) with nothing received
--   expired -> seen / paid_late   a payment arrived after expiry
--   underpaid -> seen  a top-up arrived (received is the sum of all claims)
--   any claimed -> reverted   a reorg removed a claimed transfer (re-matched if it comes back)
--   new | expired -> invalid  cancelled by an operator
ALTER TABLE feed_outbox DROP CONSTRAINT IF EXISTS feed_outbox_kind_check;
ALTER TABLE feed_outbox ADD CONSTRAINT feed_outbox_kind_check
    CHECK (kind IN ('payout', 'batch', 'reconciliation', 'asset_pause', 'payout_control', 'invoice'));

CREATE TABLE invoices (
    id               TEXT PRIMARY KEY CHECK (id ~ '^inv_[0-9a-f]{24}$'),
    app_ref          TEXT NOT NULL UNIQUE CHECK (length(app_ref) BETWEEN 1 AND 200),
    chain            TEXT NOT NULL,
    asset            TEXT NOT NULL,  -- asset name of the chain: 'native', a contract name, an XRPL currency name
    asset_id         TEXT NOT NULL,  -- '<chain>:<asset>'
    asset_kind       TEXT NOT NULL CHECK (asset_kind IN ('native', 'erc20', 'xrpl_iou')),
    contract         TEXT,           -- ERC-20: the exact token contract whose Transfer logs count
    currency         TEXT,
    issuer           TEXT,
    decimals         INT,            -- XRPL issued currencies: base units per unit = 10^decimals
    amount           NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    tolerance        NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (tolerance >= 0),
    wallet           TEXT NOT NULL,  -- the receiving wallet (EVM lowercase; XRPL classic address)
    match_method     TEXT NOT NULL CHECK (match_method IN ('destination_tag', 'memo', 'payer', 'amount')),
    destination_tag  BIGINT CHECK (destination_tag BETWEEN 0 AND 4294967295),
    memo             TEXT,
    payer            TEXT,
    account          TEXT NOT NULL CHECK (account ~ '^user:'),  -- ledger account credited when paid
    expires_at       TIMESTAMPTZ NOT NULL,
    -- The chain's final height when the invoice was made: only transfers in
    -- later blocks can pay it, so a replay of old history (or a backfill)
    -- never settles a new invoice with an old payment. NULL: nothing indexed yet.
    after_block      BIGINT,
    state            TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'seen', 'paid', 'underpaid', 'overpaid',
                                                                 'expired', 'paid_late', 'reverted', 'invalid')),
    received         NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (received >= 0),
    reason           TEXT,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    settled_at       TIMESTAMPTZ,
    CHECK (tolerance < amount),
    CHECK ((asset_kind = 'erc20') = (contract IS NOT NULL)),
    CHECK ((match_method = 'destination_tag') = (destination_tag IS NOT NULL)),
    CHECK ((match_method = 'memo') = (memo IS NOT NULL)),
    CHECK (match_method <> 'payer' OR payer IS NOT NULL)
);
-- A tag or memo names one invoice of a wallet for good (a late payment must
-- still find it); a unique amount only among invoices still waiting.
CREATE UNIQUE INDEX invoices_tag ON invoices (chain, wallet, destination_tag) WHERE destination_tag IS NOT NULL;
CREATE UNIQUE INDEX invoices_memo ON invoices (chain, wallet, memo) WHERE memo IS NOT NULL;
CREATE UNIQUE INDEX invoices_unique_amount ON invoices (chain, wallet, asset_id, amount)
    WHERE match_method = 'amount' AND state IN ('new', 'seen', 'underpaid', 'reverted');
CREATE INDEX invoices_open ON invoices (chain, wallet) WHERE state IN ('new', 'seen', 'underpaid', 'expired', 'reverted');
CREATE INDEX invoices_expiring ON invoices (chain, expires_at) WHERE state = 'new';

-- One chain transfer (chain, tx, log index) settles at most one invoice:
-- the primary key is the claim, inserted in the follower's transaction
-- together with the invoice's state change. XRPL rows carry log_index 0
-- (one Payment delivers to one destination); EVM native transfers -1.
CREATE TABLE invoice_payments (
    chain         TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    log_index     INT NOT NULL,
    invoice_id    TEXT NOT NULL REFERENCES invoices (id),
    event_id      BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    block_number  BIGINT NOT NULL,
    block_time    TIMESTAMPTZ,
    payer         TEXT,
    amount        NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    late          BOOLEAN NOT NULL,
    claimed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, tx_hash, log_index)
);
CREATE INDEX invoice_payments_invoice ON invoice_payments (invoice_id);
CREATE INDEX invoice_payments_block ON invoice_payments (chain, block_number);

CREATE FUNCTION feed_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    VALUES ('invoice', NEW.id, NEW.chain, jsonb_build_object(
        'id', NEW.id, 'app_ref', NEW.app_ref, 'chain', NEW.chain, 'asset', NEW.asset, 'amount', NEW.amount::text,
        'received', NEW.received::text,
        'shortfall', GREATEST(NEW.amount - NEW.received, 0)::text,
        'excess', GREATEST(NEW.received - NEW.amount, 0)::text,
        'wallet', NEW.wallet, 'account', NEW.account, 'state', NEW.state,
        'previous_state', CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END,
        'reason', NEW.reason, 'expires_at', NEW.expires_at, 'updated_at', NEW.updated_at));
    RETURN NULL;
END $$;

CREATE TRIGGER invoices_feed_insert AFTER INSERT ON invoices
    FOR EACH ROW EXECUTE FUNCTION feed_invoice();
CREATE TRIGGER invoices_feed_update AFTER UPDATE ON invoices
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.received IS DISTINCT FROM NEW.received)
    EXECUTE FUNCTION feed_invoice();

-- Wallet sign-in challenges. verify consumes the nonce with one UPDATE
-- (used_at IS NULL), so a nonce is good once across every API process.
CREATE TABLE signin_nonces (
    nonce       TEXT PRIMARY KEY CHECK (nonce ~ '^[A-Za-z0-9]{16,64}$'),
    kind        TEXT NOT NULL CHECK (kind IN ('siwe', 'xrpl')),
    chain       TEXT NOT NULL,
    address     TEXT NOT NULL,
    message     TEXT NOT NULL,
    issued_at   TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    CHECK (expires_at > issued_at)
);
CREATE INDEX signin_nonces_expiry ON signin_nonces (expires_at);

-- Incoming transfers as the indexer stored them, one row per (chain, tx,
-- log index): ERC-20 Transfer logs (address = the emitting contract), EVM
-- top-level native transfers (internal calls are not indexed, so never
-- seen here), and XRPL Payments to the watched account with what they
-- delivered (`value` = delivered_amount, never Amount) and their outcome.
CREATE VIEW incoming_transfers AS
SELECT e.id AS event_id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.log_index,
       CASE e.event WHEN 'Transfer' THEN 'erc20' WHEN 'NativeTransfer' THEN 'native'
            ELSE CASE WHEN jsonb_typeof(e.args -> 'delivered_amount') = 'object' THEN 'xrpl_iou' ELSE 'native' END
       END AS asset_kind,
       CASE WHEN e.event = 'Transfer' THEN lower(e.address) END AS contract,
       CASE WHEN e.event = 'Payment' THEN e.args -> 'delivered_amount' ->> 'currency' END AS currency,
       CASE WHEN e.event = 'Payment' THEN e.args -> 'delivered_amount' ->> 'issuer' END AS issuer,
       CASE WHEN e.event = 'Payment' THEN e.address ELSE ledger_addr(e.args ->> 'to') END AS recipient,
       CASE WHEN e.event = 'Payment' THEN e.args ->> 'account' ELSE ledger_addr(e.args ->> 'from') END AS payer,
       CASE WHEN e.event = 'Payment' THEN e.args -> 'delivered_amount' ELSE e.args -> 'value' END AS value,
       e.args ->> 'destination_tag' AS destination_tag,
       e.args -> 'memos' AS memos,
       CASE WHEN e.event = 'Payment' THEN e.args ->> 'status' ELSE 'success' END AS status,
       e.args ->> 'result' AS result
FROM events e
WHERE (e.event IN ('Transfer', 'NativeTransfer') AND e.args ? 'to' AND e.args ? 'value')
   OR (e.event = 'Payment' AND e.args ->> 'direction' = 'in' AND e.args ->> 'destination' = e.address);
