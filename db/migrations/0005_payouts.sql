-- Payout pipeline: requests -> batches -> signed EVM transactions -> confirmation.
--
-- Request states:  pending -> batched -> paid
--                  batched -> pending   (its batch was proven dead: expired and never executed)
--                  batched -> held      (needs a human: the recipient refused the coin, the batch reverted)
-- Batch states:    awaiting_approval -> ready -> signed -> confirmed
--                  ready -> dry_run     (signed, never sent)
--                  signed -> reverted   (its transaction failed on chain; items held)
--                  signed | dry_run | reverted -> expired   (proven dead; items requeued or held)
-- Transaction states: signed (stored, maybe not yet broadcast) -> broadcast -> mined
--                  broadcast -> replaced (a bump at the same nonce superseded it)
--                  broadcast -> stuck_fee_cap (the next bump would pass the fee cap)
--                  any open -> dropped (its nonce was used by another transaction)

CREATE TABLE payout_requests (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  TEXT NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    chain            TEXT NOT NULL,
    asset            TEXT NOT NULL,  -- asset name of the chain: 'native' or a contract name
    recipient        TEXT NOT NULL CHECK (recipient ~ '^0x[0-9a-f]{40}$'),
    amount           NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    state            TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'batched', 'paid', 'held')),
    reason           TEXT,
    batch_id         TEXT,
    requested_by     TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((state IN ('batched', 'paid')) = (batch_id IS NOT NULL) OR state = 'held'),
    CHECK (state <> 'held' OR reason IS NOT NULL)
);
CREATE INDEX payout_requests_queue ON payout_requests (chain, asset, id) WHERE state = 'pending';
CREATE INDEX payout_requests_recipient ON payout_requests (chain, asset, recipient) WHERE state <> 'paid';

CREATE TABLE payout_batches (
    batch_id      TEXT PRIMARY KEY CHECK (batch_id ~ '^0x[0-9a-f]{64}$'),
    chain         TEXT NOT NULL,
    asset         TEXT NOT NULL,
    token         TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]{40}$'),  -- zero address: native coin
    source        SMALLINT NOT NULL CHECK (source IN (0, 1)),
    treasury      TEXT NOT NULL,
    batcher       TEXT NOT NULL,
    item_count    INT NOT NULL CHECK (item_count > 0),
    total         NUMERIC(78, 0) NOT NULL CHECK (total > 0),
    gas_limit     BIGINT NOT NULL CHECK (gas_limit > 0),
    expiry        BIGINT NOT NULL,  -- unix seconds, compared with block timestamps
    state         TEXT NOT NULL CHECK (state IN ('awaiting_approval', 'ready', 'signed', 'dry_run', 'confirmed',
                                                 'reverted', 'expired')),
    reason        TEXT,
    approved_by   TEXT,
    approved_at   TIMESTAMPTZ,
    signer        TEXT,
    signature     TEXT,
    replaces      TEXT,  -- the dead batch whose items this one carries again
    executed_block BIGINT,
    executed_tx   TEXT,
    failed_count  INT,
    failed_amount NUMERIC(78, 0),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (state <> 'awaiting_approval' OR approved_by IS NULL),
    CHECK (state NOT IN ('signed', 'dry_run', 'confirmed', 'reverted') OR signature IS NOT NULL),
    CHECK ((state = 'confirmed') = (executed_block IS NOT NULL))
);
CREATE INDEX payout_batches_open ON payout_batches (chain, state) WHERE state NOT IN ('confirmed', 'expired');

CREATE TABLE payout_items (
    batch_id    TEXT NOT NULL REFERENCES payout_batches (batch_id),
    idx         INT NOT NULL CHECK (idx >= 0),  -- position in the signed arrays
    request_id  BIGINT NOT NULL REFERENCES payout_requests (id),
    recipient   TEXT NOT NULL,
    amount      NUMERIC(78, 0) NOT NULL CHECK (amount > 0),
    outcome     TEXT CHECK (outcome IN ('sent', 'failed')),
    PRIMARY KEY (batch_id, idx),
    UNIQUE (batch_id, request_id)
);
CREATE INDEX payout_items_request ON payout_items (request_id);

-- Every transaction the daemon signs, stored before it is broadcast.
CREATE TABLE evm_txs (
    id                        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain                     TEXT NOT NULL,
    sender                    TEXT NOT NULL,
    nonce                     BIGINT NOT NULL CHECK (nonce >= 0),
    attempt                   INT NOT NULL CHECK (attempt >= 1),  -- 1, then one per fee bump
    purpose                   TEXT NOT NULL CHECK (purpose IN ('batch', 'gap_fill')),
    batch_id                  TEXT REFERENCES payout_batches (batch_id),
    raw                       TEXT NOT NULL,
    tx_hash                   TEXT NOT NULL UNIQUE,
    gas_limit                 BIGINT NOT NULL,
    max_fee_per_gas           NUMERIC(78, 0) NOT NULL,
    max_priority_fee_per_gas  NUMERIC(78, 0) NOT NULL,
    state                     TEXT NOT NULL CHECK (state IN ('signed', 'broadcast', 'mined', 'replaced',
                                                             'stuck_fee_cap', 'dropped')),
    broadcasts                INT NOT NULL DEFAULT 0,
    last_error                TEXT,
    mined_block               BIGINT,
    receipt_status            SMALLINT,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_broadcast_at         TIMESTAMPTZ,
    UNIQUE (chain, sender, nonce, attempt),
    CHECK ((purpose = 'batch') = (batch_id IS NOT NULL)),
    CHECK ((state = 'mined') = (mined_block IS NOT NULL))
);
CREATE INDEX evm_txs_open ON evm_txs (chain, sender, nonce) WHERE state IN ('signed', 'broadcast', 'stuck_fee_cap');
CREATE INDEX evm_txs_batch ON evm_txs (batch_id);

-- The next nonce per sending address: claimed under this row's lock, in the
-- same transaction that stores the signed transaction using it.
CREATE TABLE evm_nonces (
    chain       TEXT NOT NULL,
    sender      TEXT NOT NULL,
    next_nonce  BIGINT NOT NULL CHECK (next_nonce >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, sender)
);

-- What was batched per UTC day, for the per-day caps.
CREATE TABLE payout_daily_totals (
    chain  TEXT NOT NULL,
    asset  TEXT NOT NULL,
    day    DATE NOT NULL,
    total  NUMERIC(78, 0) NOT NULL CHECK (total >= 0),
    PRIMARY KEY (chain, asset, day)
);

-- Run-time kill switches: scope '*' (all chains) or a chain name.
CREATE TABLE payout_controls (
    scope       TEXT PRIMARY KEY,
    killed      BOOLEAN NOT NULL,
    reason      TEXT NOT NULL,
    changed_by  TEXT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
