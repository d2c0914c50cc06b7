-- XRPL payouts: the same requests, batches, approvals and caps as EVM; one
-- signed Payment per request, sent from a hot wallet (settlement/xrpl_payout_*.py).
--
-- Payment states: signed (stored, maybe not yet submitted) -> submitted -> validated (tesSUCCESS)
--                 submitted -> failed   (a tec result in a validated ledger: fee burnt, Sequence used)
--                 submitted -> dead     (a validated ledger passed LastLedgerSequence and the
--                                        transaction is proven absent from the whole window)
--                 signed | submitted -> refused (tem: malformed, can never apply anywhere)
-- A request has at most one live (signed / submitted / validated) payment:
-- the unique index below is the last line against paying twice.

ALTER TABLE payout_requests DROP CONSTRAINT payout_requests_recipient_check;
ALTER TABLE payout_requests ADD CONSTRAINT payout_requests_recipient_check
    CHECK (recipient ~ '^0x[0-9a-f]{40}$' OR recipient ~ '^r[1-9A-HJ-NP-Za-km-z]{24,34}$');
ALTER TABLE payout_requests ADD COLUMN destination_tag BIGINT CHECK (destination_tag BETWEEN 0 AND 4294967295);
-- A request given back to the queue after a retryable failure waits until then.
ALTER TABLE payout_requests ADD COLUMN retry_after TIMESTAMPTZ;

-- XRPL batches group requests for approvals and caps; `token` names the XRPL asset.
ALTER TABLE payout_batches DROP CONSTRAINT payout_batches_token_check;
ALTER TABLE payout_batches ADD CONSTRAINT payout_batches_token_check
    CHECK (token ~ '^0x[0-9a-f]{40}$' OR token ~ '^xrpl:');

CREATE TABLE xrpl_payments (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain              TEXT NOT NULL,
    account            TEXT NOT NULL,  -- the hot wallet
    sequence           BIGINT NOT NULL CHECK (sequence > 0),
    purpose            TEXT NOT NULL CHECK (purpose IN ('payout', 'fill')),
    request_id         BIGINT REFERENCES payout_requests (id),
    batch_id           TEXT REFERENCES payout_batches (batch_id),
    destination        TEXT,
    destination_tag    BIGINT,
    amount             NUMERIC(78, 0),  -- base units of the request's asset
    fee                BIGINT NOT NULL CHECK (fee > 0),  -- drops
    min_ledger         BIGINT NOT NULL,  -- validated ledger when signed: it can only appear above
    last_ledger        BIGINT NOT NULL,  -- its LastLedgerSequence
    tx_blob            TEXT NOT NULL,
    tx_hash            TEXT NOT NULL UNIQUE CHECK (tx_hash ~ '^[0-9A-F]{64}$'),
    state              TEXT NOT NULL CHECK (state IN ('signed', 'submitted', 'validated', 'failed', 'dead', 'refused')),
    result             TEXT,  -- the validated result, or the preliminary one while open
    validated_ledger   BIGINT,
    submits            INT NOT NULL DEFAULT 0,
    last_error         TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_submit_at     TIMESTAMPTZ,
    CHECK ((purpose = 'payout') = (request_id IS NOT NULL AND batch_id IS NOT NULL AND amount IS NOT NULL)),
    CHECK ((state IN ('validated', 'failed')) = (validated_ledger IS NOT NULL))
);
-- One transaction per Sequence that may still apply or has applied.
CREATE UNIQUE INDEX xrpl_payments_sequence ON xrpl_payments (chain, account, sequence)
    WHERE state NOT IN ('dead', 'refused');
CREATE UNIQUE INDEX xrpl_payments_one_live ON xrpl_payments (request_id)
    WHERE state IN ('signed', 'submitted', 'validated');
CREATE INDEX xrpl_payments_open ON xrpl_payments (chain, account) WHERE state IN ('signed', 'submitted');

-- The next Sequence per hot wallet, claimed under this row's lock in the
-- transaction that stores the signed blob using it.
CREATE TABLE xrpl_sequences (
    chain          TEXT NOT NULL,
    account        TEXT NOT NULL,
    next_sequence  BIGINT NOT NULL CHECK (next_sequence > 0),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, account)
);
