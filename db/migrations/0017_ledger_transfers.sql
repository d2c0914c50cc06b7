-- Transfers, holds and balance rows: value moved between accounts by the
-- app, checked against each debited account's limits under one row lock
-- (settlement/ledger/transfers.py explains the design).

-- App accounts ('app:prizes'): the app's own money, limits from the config.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
    CHECK (kind IN ('wallet', 'user', 'fee', 'external', 'equity', 'adjustment', 'app'));

ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_cause_kind_check;
ALTER TABLE ledger_transactions ADD CONSTRAINT ledger_transactions_cause_kind_check
    CHECK (cause_kind IN ('event', 'payout', 'manual', 'opening', 'transfer'));

-- internal: a transfer's posting. Its sum per account is kept in
-- ledger_account_balances.posted, so availability sums only the (few)
-- chain-derived postings, through the partial index below.
-- tx: the writing transaction, for entry pages in commit order (rows
-- written before this migration read '0').
ALTER TABLE postings ADD COLUMN internal BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE postings ADD COLUMN tx xid8 NOT NULL DEFAULT '0';
ALTER TABLE postings ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX postings_chain_account ON postings (account_id, asset_id) WHERE NOT internal;
CREATE INDEX postings_account_pages ON postings (account_id, tx, id);

-- One row per (account, asset) that a transfer, hold or payout admission
-- touched. Its row lock is THE per-account lock: transfers, holds, hold
-- resolution, payout admission. posted: sum of the transfer postings
-- (+ debit, - credit); held: pending holds debiting the account (>= 0).
CREATE TABLE ledger_account_balances (
    account_id  BIGINT NOT NULL REFERENCES ledger_accounts (id),
    asset_id    TEXT NOT NULL REFERENCES assets (id),
    posted      NUMERIC(78, 0) NOT NULL DEFAULT 0,
    held        NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (held >= 0),
    PRIMARY KEY (account_id, asset_id)
);

-- A transfer as the client sent it: its id is the idempotency key; body is
-- the canonical request (replay or 409 naming the first differing field);
-- linked: the ids of the request it came in (all or nothing).
CREATE TABLE ledger_transfers (
    id              TEXT PRIMARY KEY,
    transaction_id  BIGINT NOT NULL REFERENCES ledger_transactions (id),
    body            JSONB NOT NULL,
    linked          TEXT[] NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Two-phase transfers. A pending hold reserves `amount` against the debit
-- account (ledger_account_balances.held); it leaves 'pending' exactly once,
-- by one conditional UPDATE: posted (posted_amount <= amount, the rest
-- returns), voided, or expired at expires_at.
CREATE TABLE ledger_holds (
    id                 TEXT PRIMARY KEY,
    body               JSONB NOT NULL,
    debit_account_id   BIGINT NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id  BIGINT NOT NULL REFERENCES ledger_accounts (id),
    asset_id           TEXT NOT NULL REFERENCES assets (id),
    amount             NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    state              TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
    posted_amount      NUMERIC(78, 0) CHECK (posted_amount > 0 AND posted_amount <= amount),
    transaction_id     BIGINT REFERENCES ledger_transactions (id),
    expires_at         TIMESTAMPTZ NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at        TIMESTAMPTZ,
    resolved_by        TEXT,
    CHECK ((state = 'posted') = (posted_amount IS NOT NULL AND transaction_id IS NOT NULL)),
    CHECK ((state = 'pending') = (resolved_at IS NULL))
);
CREATE INDEX ledger_holds_expiry ON ledger_holds (expires_at) WHERE state = 'pending';

-- Payouts are paid from a named account (default: the recipient's own).
-- Rows written without it (before this migration, or by a writer that does
-- not name it) pay from the recipient's user account, as payouts always did.
ALTER TABLE payout_requests ADD COLUMN from_account TEXT;
UPDATE payout_requests SET from_account = 'user:' || chain || ':' || ledger_addr(recipient);
ALTER TABLE payout_requests ALTER COLUMN from_account SET NOT NULL;
CREATE FUNCTION payout_requests_from_default() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.from_account IS NULL THEN
        NEW.from_account := 'user:' || NEW.chain || ':' || ledger_addr(NEW.recipient);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER payout_requests_from_default BEFORE INSERT ON payout_requests
    FOR EACH ROW EXECUTE FUNCTION payout_requests_from_default();
CREATE INDEX payout_requests_open_from ON payout_requests (from_account, chain, asset)
    WHERE state IN ('pending', 'batched', 'held');
