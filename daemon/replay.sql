-- name: claim_replay
-- The oldest replay nobody runs: pending, or running under a lease that ran
-- out (its worker died). The lease replaces a row lock held through the
-- network fetch, which would keep a transaction open for minutes.
UPDATE replay_requests r
SET state = 'running', attempts = r.attempts + 1, claimed_by = $1, started_at = now(),
    lease_until = now() + make_interval(secs => $2)
WHERE r.id = (
    SELECT id FROM replay_requests
    WHERE state = 'pending' OR (state = 'running' AND lease_until < now())
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING r.id, r.chain, r.from_block, r.to_block, r.attempts, r.requested_by;

-- name: extend_lease
UPDATE replay_requests SET lease_until = now() + make_interval(secs => $3)
WHERE id = $1 AND claimed_by = $2 AND state = 'running';

-- name: finish_replay
-- Only the worker holding the claim reports; a worker whose lease was taken over says nothing.
UPDATE replay_requests
SET state = $3, inserted = $4, error = $5, finished_at = now(), lease_until = NULL
WHERE id = $1 AND claimed_by = $2 AND state = 'running'
RETURNING id;

-- name: release_replay
-- Stopping mid-replay: back to the queue at once instead of after the lease.
UPDATE replay_requests SET state = 'pending', claimed_by = NULL, lease_until = NULL
WHERE id = $1 AND claimed_by = $2 AND state = 'running';
