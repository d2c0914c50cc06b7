-- name: insert_nonce
INSERT INTO signin_nonces (nonce, kind, chain, address, message, issued_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: nonce
SELECT nonce, kind, chain, address, message, issued_at, expires_at, used_at FROM signin_nonces WHERE nonce = $1;

-- name: consume_nonce
-- Single use across every process: only one UPDATE finds it unused.
UPDATE signin_nonces SET used_at = now()
WHERE nonce = $1 AND used_at IS NULL AND expires_at > now()
RETURNING nonce;

-- name: purge_nonces
DELETE FROM signin_nonces WHERE expires_at < now() - interval '1 day';
