-- name: purge_sessions
-- Sessions (and their refresh tokens) a day past their end go.
DELETE FROM signin_sessions WHERE expires_at < now() - interval '1 day';

-- name: insert_session
INSERT INTO signin_sessions (id, address, chain, method, expires_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id, address, chain, method;

-- name: insert_refresh
INSERT INTO signin_refresh_tokens (hash, session_id, expires_at) VALUES ($1, $2, $3);

-- name: lock_refresh
-- The token row and its session, locked: a concurrent rotation of the same token waits here.
SELECT r.session_id, r.expires_at, r.used_at, s.address, s.chain, s.method, s.revoked_at,
       s.expires_at AS session_expires_at
FROM signin_refresh_tokens r JOIN signin_sessions s ON s.id = r.session_id
WHERE r.hash = $1
FOR UPDATE OF r, s;

-- name: use_refresh
UPDATE signin_refresh_tokens SET used_at = now() WHERE hash = $1 AND used_at IS NULL;

-- name: session_of_refresh
SELECT session_id FROM signin_refresh_tokens WHERE hash = $1;

-- name: revoke_session
UPDATE signin_sessions SET revoked_at = now(), revoked_reason = $2
WHERE id = $1 AND revoked_at IS NULL
RETURNING id, address, chain;

-- name: revoke_wallet_sessions
UPDATE signin_sessions SET revoked_at = now(), revoked_reason = $3
WHERE chain = $1 AND address = $2 AND revoked_at IS NULL
RETURNING id;

-- name: session_live
SELECT EXISTS (SELECT 1 FROM signin_sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > now());
