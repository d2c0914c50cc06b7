-- name: final_height
-- The chain's final height as the follower last committed it (NULL before the first commit).
SELECT final_number FROM chain_state WHERE chain = $1;

-- name: heights
-- Cursor, final height and halt reason read together (one row, one snapshot).
SELECT cursor_number, final_number, halted_reason FROM chain_state WHERE chain = $1;

-- name: factory_children
-- Contracts the chain's factories created, in address order after $3 (keyset
-- pages); $2 one factory (its contract name) or all; final = at or below final.
SELECT c.address, c.factory, c.factory_address, c.block_number, c.block_hash, c.tx_hash, c.tx_index,
       c.log_index, c.block_number <= COALESCE(s.final_number, -1) AS final
FROM factory_children c JOIN chain_state s ON s.chain = c.chain
WHERE c.chain = $1 AND ($2::text IS NULL OR c.factory = $2) AND ($3::text IS NULL OR c.address > $3)
ORDER BY c.address
LIMIT $4;
