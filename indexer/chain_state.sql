-- name: final_height
-- The chain's final height as the follower last committed it (NULL before the first commit).
SELECT final_number FROM chain_state WHERE chain = $1;

-- name: heights
-- Cursor, final height and halt reason read together (one row, one snapshot).
SELECT cursor_number, final_number, halted_reason FROM chain_state WHERE chain = $1;
