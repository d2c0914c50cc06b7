-- Core indexer schema: per-chain follower state, the unfinalized block
-- window, events (the storage contract other tools read), raw logs that did
-- not decode, reorg history and the audit log.

CREATE TABLE chain_state (
    chain                TEXT PRIMARY KEY,
    kind                 TEXT NOT NULL CHECK (kind IN ('evm', 'xrpl')),
    chain_id             BIGINT NOT NULL,
    -- last block (XRPL: validated ledger) whose events are all stored
    cursor_number        BIGINT,
    cursor_hash          TEXT,
    -- events at or below final_number are final: the block was final on
    -- chain and its range was re-checked after it became final
    final_number         BIGINT,
    head_number          BIGINT,
    chain_finalized      BIGINT,
    head_seen_at         TIMESTAMPTZ,
    halted_reason        TEXT,
    reorg_count          BIGINT NOT NULL DEFAULT 0,
    status               JSONB NOT NULL DEFAULT '{}'::jsonb,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Hashes of the blocks above finality (plus a margin), to detect reorgs by
-- parent hash and find the common ancestor.
CREATE TABLE blocks (
    chain        TEXT NOT NULL,
    number       BIGINT NOT NULL,
    hash         TEXT NOT NULL,
    parent_hash  TEXT NOT NULL,
    timestamp    BIGINT,
    PRIMARY KEY (chain, number)
);

CREATE TABLE events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1000) PRIMARY KEY,
    chain         TEXT NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    tx_index      INT NOT NULL,
    log_index     INT NOT NULL,
    address       TEXT NOT NULL,
    event         TEXT NOT NULL,
    args          JSONB NOT NULL,
    inserted_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The natural key. On EVM chains (chain, block_hash, log_index) alone is
-- unique; XRPL rows all carry log_index 0 and one transaction can touch
-- several watched accounts, so tx_index and address complete the key.
-- block_number leads because a block hash fixes its number (so uniqueness
-- is unchanged) and the same index then serves block-range scans and the
-- reorg delete: one index to maintain per insert instead of two.
CREATE UNIQUE INDEX events_natural_key ON events (chain, block_number, block_hash, log_index, tx_index, address);

-- Logs of watched contracts that did not decode: kept, counted, never lost.
CREATE TABLE raw_logs (
    chain         TEXT NOT NULL,
    block_number  BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    tx_hash       TEXT NOT NULL,
    tx_index      INT NOT NULL,
    log_index     INT NOT NULL,
    address       TEXT NOT NULL,
    topics        TEXT[] NOT NULL,
    data          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    inserted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (chain, block_hash, log_index, tx_index, address)
);
CREATE INDEX raw_logs_chain_block ON raw_logs (chain, block_number);

CREATE TABLE reorgs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain         TEXT NOT NULL,
    detected_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    common_ancestor BIGINT NOT NULL,
    old_cursor    BIGINT NOT NULL,
    depth         INT NOT NULL,
    deleted_events BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT,
    details   JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);

-- Events that can no longer change: at or below the chain's final_number.
CREATE VIEW final_events AS
SELECT e.*
FROM events e
JOIN chain_state s ON s.chain = e.chain
WHERE e.block_number <= s.final_number;
