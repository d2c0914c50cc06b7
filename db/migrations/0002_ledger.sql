-- Double-entry ledger and reconciliation.
--
-- Sign convention: a posting's amount is positive for a debit and negative
-- for a credit, in integer base units of its asset. Every transaction sums
-- to zero per asset. Wallet accounts (what the chain holds) carry debit
-- balances; user, equity and external accounts carry credit balances, so
-- what the daemon owes a user is minus the sum of that user's postings
-- (the `ledger_balances` view shows it as `natural_balance`).

-- One row per chain and coin or token. id is '<chain>:<name>' where name
-- is 'native', an EVM contract name from the config, or a configured XRPL
-- issued-currency name.
CREATE TABLE assets (
    id        TEXT PRIMARY KEY,
    chain     TEXT NOT NULL,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('native', 'erc20', 'xrpl_iou')),
    contract  TEXT,  -- ERC-20 address, lowercase 0x hex
    currency  TEXT,  -- XRPL currency code (3 letters or 40 hex)
    issuer    TEXT,  -- XRPL issuer account
    symbol    TEXT,
    decimals  INT CHECK (decimals BETWEEN 0 AND 77),  -- NULL until read from the contract
    UNIQUE (chain, name),
    CHECK ((kind = 'erc20') = (contract IS NOT NULL)),
    CHECK ((kind = 'xrpl_iou') = (currency IS NOT NULL AND issuer IS NOT NULL))
);
CREATE UNIQUE INDEX assets_by_contract ON assets (chain, contract) WHERE contract IS NOT NULL;
CREATE UNIQUE INDEX assets_by_currency ON assets (chain, currency, issuer) WHERE currency IS NOT NULL;
CREATE UNIQUE INDEX assets_native ON assets (chain) WHERE kind = 'native';

-- Account codes read '<kind>:<chain>:<identifier>', e.g. wallet:anvil:0xab..,
-- user:anvil:0xcd.., user:xrpl:tag:42, fee:anvil, equity:anvil:opening.
CREATE TABLE ledger_accounts (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code     TEXT NOT NULL UNIQUE,
    kind     TEXT NOT NULL CHECK (kind IN ('wallet', 'user', 'fee', 'external', 'equity', 'adjustment')),
    label    TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (kind = split_part(code, ':', 1))
);

-- The configured wallets. tracked_from is the height whose on-chain balance
-- opens the books for this wallet: events above it are booked, everything
-- at or below it is in the opening balance. NULL until the first range of a
-- new chain is committed (then it is that range's start minus one).
CREATE TABLE ledger_wallets (
    chain         TEXT NOT NULL,
    address       TEXT NOT NULL,  -- EVM: lowercase 0x hex; XRPL: the classic address
    name          TEXT NOT NULL,
    account_id    BIGINT NOT NULL REFERENCES ledger_accounts (id),
    assets        TEXT[] NOT NULL,  -- asset ids reconciled for this wallet
    tracked_from  BIGINT,
    active        BOOLEAN NOT NULL DEFAULT true,
    PRIMARY KEY (chain, address)
);

CREATE TABLE ledger_transactions (
    id               BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 100) PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE,
    cause_kind       TEXT NOT NULL CHECK (cause_kind IN ('event', 'payout', 'manual', 'opening')),
    -- event: the event's natural key and the rule; payout: payout id;
    -- manual: author and reason; opening: wallet, asset and height.
    cause            JSONB NOT NULL,
    -- The events row this entry was derived from. The rollback hook deletes
    -- derived entries explicitly; the cascade is only a safety net.
    event_id         BIGINT REFERENCES events (id) ON DELETE CASCADE,
    payout_id        TEXT,
    author           TEXT,
    reason           TEXT,
    chain            TEXT NOT NULL,
    -- The height the entry is effective at: balances "as of H" sum the
    -- transactions of that chain with block_number <= H.
    block_number     BIGINT NOT NULL,
    tx_hash          TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((cause_kind = 'event') = (event_id IS NOT NULL)),
    CHECK (cause_kind <> 'payout' OR payout_id IS NOT NULL),
    CHECK (cause_kind <> 'manual' OR (author IS NOT NULL AND reason IS NOT NULL AND reason <> ''))
);
CREATE INDEX ledger_transactions_chain_block ON ledger_transactions (chain, block_number);
CREATE INDEX ledger_transactions_event ON ledger_transactions (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX ledger_transactions_tx ON ledger_transactions (chain, tx_hash) WHERE tx_hash IS NOT NULL;

CREATE TABLE postings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 100) PRIMARY KEY,
    transaction_id  BIGINT NOT NULL REFERENCES ledger_transactions (id) ON DELETE CASCADE,
    account_id      BIGINT NOT NULL REFERENCES ledger_accounts (id),
    asset_id        TEXT NOT NULL REFERENCES assets (id),
    amount          NUMERIC(78, 0) NOT NULL
);
CREATE INDEX postings_transaction ON postings (transaction_id);
CREATE INDEX postings_account_asset ON postings (account_id, asset_id);

-- Balance checks. Postings of one transaction are inserted by one
-- statement, so a statement-level check sees them all; the deferred
-- per-transaction check at commit catches a transaction left without
-- postings or completed across several statements.
CREATE FUNCTION ledger_check_balanced(tx_ids BIGINT[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE bad RECORD;
BEGIN
    SELECT p.transaction_id, p.asset_id, sum(p.amount) AS total INTO bad
    FROM postings p
    WHERE p.transaction_id = ANY (tx_ids)
    GROUP BY p.transaction_id, p.asset_id
    HAVING sum(p.amount) <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger transaction % does not balance in asset %: postings sum to %',
            bad.transaction_id, bad.asset_id, bad.total
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION ledger_postings_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_balanced(ARRAY(SELECT DISTINCT transaction_id FROM new_postings));
    RETURN NULL;
END $$;

CREATE TRIGGER postings_balanced AFTER INSERT ON postings
REFERENCING NEW TABLE AS new_postings
FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_balanced();

CREATE FUNCTION ledger_transaction_complete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.id) THEN
        RETURN NULL;  -- deleted again in the same database transaction
    END IF;
    IF NOT EXISTS (SELECT 1 FROM postings WHERE transaction_id = NEW.id) THEN
        RAISE EXCEPTION 'ledger transaction % (%) has no postings', NEW.id, NEW.idempotency_key
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM ledger_check_balanced(ARRAY[NEW.id]);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_transactions_complete AFTER INSERT ON ledger_transactions
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION ledger_transaction_complete();

-- The books are append-only: a correction is a new transaction. Postings go
-- only together with their transaction (the FK cascade runs at trigger
-- depth > 0; a direct DELETE runs at depth 0).
CREATE FUNCTION ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION '% rows are immutable; post a correcting transaction instead', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF pg_trigger_depth() <= 1 THEN
        RAISE EXCEPTION 'postings are deleted only with their transaction'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END $$;

CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_transactions_immutable BEFORE UPDATE ON ledger_transactions
FOR EACH ROW EXECUTE FUNCTION ledger_append_only();

-- Helpers for the event-to-ledger mapping (settlement/ledger_hook.sql).

-- EVM addresses compare lowercase; XRPL addresses are case-sensitive (and
-- never 42 characters starting with 0x). No regex: this runs per event.
CREATE FUNCTION ledger_addr(v TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN length(v) = 42 AND left(v, 2) = '0x' THEN lower(v) ELSE v END
$$;

-- Fill '{path.to.value}' placeholders from ctx; NULL when one is missing,
-- so a list of templates can fall back to the next one.
CREATE FUNCTION ledger_render(tpl TEXT, ctx JSONB) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    m TEXT[];
    v TEXT;
    out TEXT := tpl;
BEGIN
    FOR m IN SELECT regexp_matches(tpl, '\{([^{}]+)\}', 'g') LOOP
        v := ctx #>> string_to_array(m[1], '.');
        IF v IS NULL OR v = '' THEN
            RETURN NULL;
        END IF;
        out := replace(out, '{' || m[1] || '}', ledger_addr(v));
    END LOOP;
    RETURN out;
END $$;

CREATE FUNCTION ledger_render_first(tpls TEXT[], ctx JSONB) RETURNS TEXT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT r FROM unnest(tpls) WITH ORDINALITY AS t(tpl, i)
    CROSS JOIN LATERAL ledger_render(t.tpl, ctx) AS r
    WHERE r IS NOT NULL ORDER BY t.i LIMIT 1
$$;

-- An amount in base units from an event value: a decimal integer (string
-- or number), or an XRPL issued amount {currency, issuer, value} scaled by
-- the asset's decimals. NULL when it is not an exact non-negative integer
-- in base units: such an event stays unbooked (and reconciliation shows it)
-- rather than aborting the range or booking a rounded figure.
CREATE FUNCTION ledger_amount(v JSONB, decimals INT) RETURNS NUMERIC
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s TEXT;
    x NUMERIC;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'object' THEN
        s := v ->> 'value';
        IF decimals IS NULL OR s IS NULL OR s !~ '^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$' THEN
            RETURN NULL;
        END IF;
        x := s::numeric * power(10::numeric, decimals);
        IF x <> trunc(x) THEN
            RETURN NULL;
        END IF;
        x := trunc(x);
    ELSE
        s := v #>> '{}';
        IF s IS NULL OR s !~ '^[0-9]{1,78}$' THEN
            RETURN NULL;
        END IF;
        x := s::numeric;
    END IF;
    IF x < 0 OR x >= 1e78 THEN
        RETURN NULL;
    END IF;
    RETURN x;
END $$;

-- Which asset a matched event moves (see `asset` in [[ledger.rules]]):
-- fixed; the chain's native coin; the emitting ERC-20 contract; on XRPL the
-- issued currency of an amount object, else XRP; or a token address taken
-- from the event, the zero address meaning the native coin.
CREATE FUNCTION ledger_rule_asset(p_chain TEXT, mode TEXT, fixed TEXT, event_address TEXT, amount JSONB, token TEXT)
RETURNS TEXT LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE mode
        WHEN 'fixed' THEN fixed
        WHEN 'native' THEN (SELECT id FROM assets WHERE chain = p_chain AND kind = 'native')
        WHEN 'contract' THEN (SELECT id FROM assets WHERE chain = p_chain AND contract = event_address)
        WHEN 'xrpl' THEN CASE
            WHEN jsonb_typeof(amount) = 'object' THEN
                (SELECT id FROM assets WHERE chain = p_chain AND currency = amount ->> 'currency'
                    AND issuer = amount ->> 'issuer')
            ELSE (SELECT id FROM assets WHERE chain = p_chain AND kind = 'native') END
        WHEN 'address' THEN CASE
            WHEN ledger_addr(token) = '0x0000000000000000000000000000000000000000' THEN
                (SELECT id FROM assets WHERE chain = p_chain AND kind = 'native')
            ELSE (SELECT id FROM assets WHERE chain = p_chain AND contract = ledger_addr(token)) END
    END
$$;

-- Balance of every account and asset over all effective entries.
CREATE VIEW ledger_balances AS
SELECT a.id AS account_id, a.code AS account, a.kind, p.asset_id,
       sum(p.amount) AS balance,
       CASE WHEN a.kind IN ('wallet', 'fee', 'adjustment') THEN sum(p.amount) ELSE -sum(p.amount) END
           AS natural_balance
FROM postings p
JOIN ledger_accounts a ON a.id = p.account_id
GROUP BY a.id, a.code, a.kind, p.asset_id;

-- Reconciliation: one run per chain and invocation, one result per wallet
-- and asset.
CREATE TABLE reconciliation_runs (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain        TEXT NOT NULL,
    height       BIGINT,  -- H; NULL when the run failed before choosing it
    started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    status       TEXT NOT NULL CHECK (status IN ('ok', 'mismatch', 'error')),
    error        TEXT,
    checked      INT NOT NULL DEFAULT 0,
    mismatches   INT NOT NULL DEFAULT 0
);
CREATE INDEX reconciliation_runs_chain ON reconciliation_runs (chain, id DESC);

CREATE TABLE reconciliation_results (
    run_id      BIGINT NOT NULL REFERENCES reconciliation_runs (id) ON DELETE CASCADE,
    account_id  BIGINT NOT NULL REFERENCES ledger_accounts (id),
    asset_id    TEXT NOT NULL REFERENCES assets (id),
    expected    NUMERIC(78, 0) NOT NULL,  -- ledger balance as of H
    actual      NUMERIC(78, 0) NOT NULL,  -- on-chain balance at H
    difference  NUMERIC(78, 0) NOT NULL,  -- actual - expected
    tolerance   NUMERIC(78, 0) NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ok', 'within_tolerance', 'mismatch')),
    PRIMARY KEY (run_id, account_id, asset_id),
    CHECK (difference = actual - expected)
);
CREATE INDEX reconciliation_results_mismatch ON reconciliation_results (asset_id, run_id) WHERE status = 'mismatch';

-- Payouts of an asset stop while it has an open pause; only an operator
-- closes one, with a recorded reason.
CREATE TABLE asset_pauses (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset_id     TEXT NOT NULL REFERENCES assets (id),
    reason       TEXT NOT NULL,
    run_id       BIGINT REFERENCES reconciliation_runs (id),
    paused_by    TEXT NOT NULL,
    paused_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at  TIMESTAMPTZ,
    resolved_by  TEXT,
    resolution   TEXT,
    CHECK ((resolved_at IS NULL) = (resolved_by IS NULL)),
    CHECK (resolved_at IS NULL OR (resolution IS NOT NULL AND resolution <> ''))
);
CREATE UNIQUE INDEX asset_pauses_open ON asset_pauses (asset_id) WHERE resolved_at IS NULL;
