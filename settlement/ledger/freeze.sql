-- name: frozen_among
SELECT account FROM frozen_accounts WHERE account = ANY($1::text[]);

-- name: frozen_count
SELECT count(*) FROM frozen_accounts;

-- name: list_frozen
SELECT account, reason, actor, frozen_at FROM frozen_accounts ORDER BY frozen_at, account;

-- name: frozen_row
SELECT account, reason, actor, frozen_at FROM frozen_accounts WHERE account = $1;

-- name: lock_shared
-- Debits take their accounts' freeze locks shared (in one order); a freeze takes one exclusive.
SELECT pg_advisory_xact_lock_shared(hashtextextended('freeze:' || x, 0))
FROM (SELECT x FROM unnest($1::text[]) AS x ORDER BY x) s;

-- name: lock_exclusive
SELECT pg_advisory_xact_lock(hashtextextended('freeze:' || $1, 0));

-- name: freeze
INSERT INTO frozen_accounts (account, reason, actor) VALUES ($1, $2, $3)
ON CONFLICT (account) DO NOTHING
RETURNING account, reason, actor, frozen_at;

-- name: unfreeze
DELETE FROM frozen_accounts WHERE account = $1 RETURNING account;
