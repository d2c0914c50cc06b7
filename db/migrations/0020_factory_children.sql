-- Contracts created at run time (issue 29).
--
-- A factory's announcing event (`[[chains.contracts]] factory = {...}`) makes
-- the announced address a child: its logs are indexed with the child ABI
-- from the block that created it. A child row commits in the follower's
-- transaction with the announcing event, its own events of that range and
-- the cursor, and goes with them: a reorg (or an operator's rewind) deletes
-- the children created above the common ancestor in the transaction that
-- deletes their events (indexer/store.py, rollback_to and rewind). The row
-- carries the announcing event's natural key, so a replay inserts nothing.
CREATE TABLE factory_children (
    chain            TEXT NOT NULL,
    address          TEXT NOT NULL,
    factory          TEXT NOT NULL,   -- the factory's contract name in the config
    factory_address  TEXT NOT NULL,
    block_number     BIGINT NOT NULL, -- the block that created it (indexed from here)
    block_hash       TEXT NOT NULL,
    tx_hash          TEXT NOT NULL,
    tx_index         INT NOT NULL,
    log_index        INT NOT NULL,
    discovered_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, address)
);
CREATE INDEX factory_children_block ON factory_children (chain, block_number);

-- ERC-1155 transfers, one row per token id. `events` keeps one row per log
-- (its natural key has no place for a second row of one log), so a
-- TransferBatch is stored with its `ids` and `values` arrays and expanded here.
CREATE VIEW erc1155_transfers AS
SELECT e.id AS event_id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       0 AS item_index, e.address, e.args->>'operator' AS operator, e.args->>'from' AS "from",
       e.args->>'to' AS "to", e.args->>'id' AS token_id, (e.args->>'value')::numeric AS value
FROM events e WHERE e.event = 'TransferSingle'
UNION ALL
SELECT e.id, e.chain, e.block_number, e.block_hash, e.tx_hash, e.tx_index, e.log_index,
       (i.ord - 1)::int, e.address, e.args->>'operator', e.args->>'from', e.args->>'to',
       i.token_id, (e.args->'values'->>(i.ord - 1)::int)::numeric
FROM events e
CROSS JOIN LATERAL jsonb_array_elements_text(e.args->'ids') WITH ORDINALITY AS i(token_id, ord)
WHERE e.event = 'TransferBatch';
