-- name: halted_reason
SELECT halted_reason FROM chain_state WHERE chain = $1;

-- name: clear_halt
-- An operator investigated a reorg beyond finality; the follower may start again.
UPDATE chain_state SET halted_reason = NULL WHERE chain = $1;
