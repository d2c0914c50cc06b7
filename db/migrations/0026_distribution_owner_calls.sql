-- The ClaimDistributor owner's calls, sent by the daemon itself
-- (settlement/distributions/owner.py queues them, owner_send.py sends them
-- from the chain's payout worker: the owner is the chain's payout sender, so
-- its nonces come from the one allocator, evm_nonces, and its transactions
-- are tracked to final receipts with the batches').
--
-- id is the idempotency key (`epoch:<distribution>:create|approve|fund|sweep`,
-- `voucher:<id>:revoke`): each call is queued once. state moves
-- queued -> sent (in the transaction that stores its signed transaction,
-- evm_txs.owner_call_id linking the two: sent once) -> confirmed (a FINAL
-- receipt with status 1) or failed (a final receipt with status 0, or a
-- simulation that reverts before anything is signed); an operator may put a
-- failed call back in the queue (retry) or cancel a queued or failed one.
-- after_id: the call that must be confirmed before this one is sent
-- (createEpoch -> approve -> fundEpoch -> sweep).
CREATE TABLE distribution_owner_calls (
    id               TEXT PRIMARY KEY CHECK (id ~ '^(epoch|voucher):[A-Za-z0-9_.-]{1,58}:[a-z]{1,12}$'),
    kind             TEXT NOT NULL CHECK (kind IN ('create_epoch', 'approve', 'fund_epoch', 'sweep',
                                                   'revoke_voucher')),
    chain            TEXT NOT NULL,
    sender           TEXT NOT NULL,  -- the contract's owner(): the chain's payout sender when queued
    contract         TEXT NOT NULL,  -- the ClaimDistributor
    target           TEXT NOT NULL,  -- the transaction's `to`: the ClaimDistributor, or the token to approve
    calldata         TEXT NOT NULL CHECK (calldata ~ '^0x([0-9a-f]{2})+$'),
    value            NUMERIC(78, 0) NOT NULL DEFAULT 0 CHECK (value >= 0),
    distribution_id  TEXT REFERENCES distributions (id),
    voucher_id       TEXT REFERENCES distribution_vouchers (id),
    after_id         TEXT REFERENCES distribution_owner_calls (id),
    state            TEXT NOT NULL DEFAULT 'queued'
                     CHECK (state IN ('queued', 'sent', 'confirmed', 'failed', 'cancelled')),
    sends            INT NOT NULL DEFAULT 0,  -- times sent (a retry, or a nonce lost to another, sends again)
    sent_tx_id       BIGINT,                  -- the first evm_txs row of the current send (bumps come after it)
    tx_hash          TEXT,                    -- the attempt whose final receipt decided it
    block_number     BIGINT,
    reason           TEXT,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((distribution_id IS NULL) <> (voucher_id IS NULL)),
    CHECK (state <> 'confirmed' OR (tx_hash IS NOT NULL AND block_number IS NOT NULL))
);
CREATE INDEX distribution_owner_calls_open ON distribution_owner_calls (chain, created_at, id)
    WHERE state IN ('queued', 'sent');

-- Which pull distributions the daemon owns on chain, and whether it sweeps
-- the unclaimed rest itself once the distribution is closed (its deadline
-- passed a final block): `sweep(epoch)` is then queued once.
CREATE TABLE distribution_owner_epochs (
    distribution_id  TEXT PRIMARY KEY REFERENCES distributions (id),
    chain            TEXT NOT NULL,
    contract         TEXT NOT NULL,
    epoch            NUMERIC(78, 0) NOT NULL,
    auto_sweep       BOOLEAN NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The transactions of owner calls share evm_txs (and its nonces) with batches.
ALTER TABLE evm_txs ADD COLUMN owner_call_id TEXT REFERENCES distribution_owner_calls (id);
ALTER TABLE evm_txs DROP CONSTRAINT evm_txs_purpose_check;
ALTER TABLE evm_txs ADD CONSTRAINT evm_txs_purpose_check CHECK (purpose IN ('batch', 'gap_fill', 'owner_call'));
ALTER TABLE evm_txs ADD CONSTRAINT evm_txs_owner_call_check CHECK ((purpose = 'owner_call') = (owner_call_id IS NOT NULL));
CREATE INDEX evm_txs_owner_call ON evm_txs (owner_call_id) WHERE owner_call_id IS NOT NULL;
