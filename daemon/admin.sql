-- name: halted_reason
SELECT halted_reason FROM chain_state WHERE chain = $1;

-- name: clear_halt
-- An operator investigated a reorg beyond finality; the follower may start again.
UPDATE chain_state SET halted_reason = NULL WHERE chain = $1;

-- name: audit
INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4);

-- name: final_height
SELECT final_number FROM chain_state WHERE chain = $1;
