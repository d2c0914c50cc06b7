-- One chain transfer pays at most one thing, whichever route asks (issue 26).
--
-- `payment_claims` is the gate: one row per claimed transfer (chain, tx,
-- log index), inserted with ON CONFLICT DO NOTHING by whoever claims it
-- first: the follower's invoice hook, verify-payment for an invoice, or
-- verify-payment for an expectation that names a claim key. The claimer
-- then allocates the transfer: to one invoice, or (payer invoices) split
-- oldest-first across the payer's open invoices (`invoice_payments` rows,
-- one per invoice, summing to the claim's amount).
CREATE TABLE payment_claims (
    chain         TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    log_index     INT NOT NULL,
    invoice_id    TEXT REFERENCES invoices (id),  -- the first (oldest) invoice it was allocated to
    claim_key     TEXT CHECK (length(claim_key) BETWEEN 1 AND 200),
    event_id      BIGINT REFERENCES events (id) ON DELETE CASCADE,  -- NULL: read from the chain (unwatched wallet)
    block_number  BIGINT NOT NULL,
    amount        NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    claimed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, tx_hash, log_index),
    CHECK ((invoice_id IS NULL) <> (claim_key IS NULL))
);
CREATE INDEX payment_claims_block ON payment_claims (chain, block_number);
CREATE INDEX payment_claims_key ON payment_claims (claim_key) WHERE claim_key IS NOT NULL;

INSERT INTO payment_claims (chain, tx_hash, log_index, invoice_id, event_id, block_number, amount, claimed_at)
SELECT chain, tx_hash, log_index, invoice_id, event_id, block_number, amount, claimed_at FROM invoice_payments;

-- An allocation: part of a claimed transfer credited to one invoice.
ALTER TABLE invoice_payments DROP CONSTRAINT invoice_payments_pkey;
ALTER TABLE invoice_payments ADD PRIMARY KEY (chain, tx_hash, log_index, invoice_id);
ALTER TABLE invoice_payments ADD FOREIGN KEY (chain, tx_hash, log_index)
    REFERENCES payment_claims (chain, tx_hash, log_index) ON DELETE CASCADE;

-- Expired invoices stop being matchable after a grace
-- (invoices.expired_grace_seconds): `retired_at` is set then. Only
-- `matchable` invoices are candidates of the matcher, through partial
-- indexes on what each match method compares, so matching cost follows the
-- live invoices, not every invoice ever created.
ALTER TABLE invoices ADD COLUMN retired_at TIMESTAMPTZ;
ALTER TABLE invoices ADD COLUMN matchable BOOLEAN GENERATED ALWAYS AS (
    state IN ('new', 'seen', 'underpaid', 'reverted') OR (state = 'expired' AND retired_at IS NULL)) STORED;
DROP INDEX invoices_open;
CREATE INDEX invoices_match_payer ON invoices (chain, wallet, payer) WHERE matchable AND match_method = 'payer';
CREATE INDEX invoices_match_amount ON invoices (chain, wallet, asset_kind, amount)
    WHERE matchable AND match_method = 'amount';
CREATE INDEX invoices_match_tag ON invoices (chain, wallet, destination_tag) WHERE matchable AND destination_tag IS NOT NULL;
CREATE INDEX invoices_match_memo ON invoices (chain, wallet, memo) WHERE matchable AND memo IS NOT NULL;
CREATE INDEX invoices_unsettled ON invoices (chain) WHERE state IN ('seen', 'reverted');
CREATE INDEX invoices_unbound ON invoices (chain) WHERE after_block IS NULL;
CREATE INDEX invoices_retiring ON invoices (chain, expires_at) WHERE state = 'expired' AND retired_at IS NULL;
-- Retired payer invoices: a late payment to the latest one is recorded for review.
CREATE INDEX invoices_payer_retired ON invoices (chain, wallet, payer, expires_at)
    WHERE match_method = 'payer' AND state = 'expired' AND retired_at IS NOT NULL;

-- Payments that would have matched an invoice no longer matchable (expired
-- past the grace): recorded for review, never credited to the invoice.
CREATE TABLE invoice_unmatched (
    chain         TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    log_index     INT NOT NULL,
    invoice_id    TEXT NOT NULL REFERENCES invoices (id),
    event_id      BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    block_number  BIGINT NOT NULL,
    payer         TEXT,
    amount        NUMERIC(78, 0) NOT NULL,
    reason        TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, tx_hash, log_index)
);
CREATE INDEX invoice_unmatched_block ON invoice_unmatched (chain, block_number);

