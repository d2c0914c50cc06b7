-- Snapshots and distributions (settlement/distributions/).

-- name: final_height
-- The chain's final height (NULL before there is one).
SELECT final_number FROM chain_state WHERE chain = $1;

-- name: erc20_holders
-- Balances of an ERC-20 at height $3 from its final Transfer events, plus
-- opening balances ($4 addresses, $5 amounts) at the contract's start block;
-- excluded addresses ($6) left out. Only positive balances.
WITH moves AS (
    SELECT lower(args ->> 'to') AS holder, (args ->> 'value')::numeric AS v
    FROM final_events WHERE chain = $1 AND address = $2 AND event = 'Transfer' AND block_number <= $3
    UNION ALL
    SELECT lower(args ->> 'from'), -(args ->> 'value')::numeric
    FROM final_events WHERE chain = $1 AND address = $2 AND event = 'Transfer' AND block_number <= $3
    UNION ALL
    SELECT lower(o.holder), o.v FROM unnest($4::text[], $5::numeric[]) AS o(holder, v)
)
SELECT holder AS recipient, sum(v) AS weight
FROM moves
WHERE holder <> ALL ($6::text[])
GROUP BY holder
HAVING sum(v) > 0
ORDER BY holder;

-- name: erc721_holders
-- Token counts per owner of an ERC-721 at height $3: each token's last final
-- Transfer at or below it (opening owners $4 token ids, $5 owners, come
-- first); excluded addresses ($6) left out.
WITH moves AS (
    SELECT args ->> 'tokenId' AS token, lower(args ->> 'to') AS owner, block_number, tx_index, log_index
    FROM final_events WHERE chain = $1 AND address = $2 AND event = 'Transfer' AND block_number <= $3
    UNION ALL
    SELECT o.token, lower(o.owner), -1, 0, 0 FROM unnest($4::text[], $5::text[]) AS o(token, owner)
), owners AS (
    SELECT DISTINCT ON (token) token, owner
    FROM moves ORDER BY token, block_number DESC, tx_index DESC, log_index DESC
)
SELECT owner AS recipient, count(*)::numeric AS weight
FROM owners
WHERE owner <> ALL ($6::text[])
GROUP BY owner
ORDER BY owner;

-- name: find_snapshot
SELECT id, kind, chain, contract, height, body, holders, total_weight, created_by, created_at
FROM distribution_snapshots WHERE id = $1;

-- name: insert_snapshot
-- A new snapshot (nothing when the id exists: the caller compares bodies).
INSERT INTO distribution_snapshots (id, kind, chain, contract, height, body, holders, total_weight, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: insert_weights
INSERT INTO distribution_snapshot_weights (snapshot_id, recipient, weight)
SELECT $1, r, w FROM unnest($2::text[], $3::numeric[]) AS x(r, w);

-- name: snapshot_weights
SELECT recipient, weight FROM distribution_snapshot_weights WHERE snapshot_id = $1 ORDER BY recipient;

-- name: snapshot_weights_page
SELECT recipient, weight FROM distribution_snapshot_weights
WHERE snapshot_id = $1 AND recipient > $2 ORDER BY recipient LIMIT $3;

-- name: find_distribution
SELECT id, snapshot_id, asset_id, pool_account, account, total, minimum, remainder, remainder_account, mode,
       body, recipients, state, created_by, created_at, claim_contract, epoch, root, deadline, closed_at,
       unclaimed, carried_from, carried
FROM distributions WHERE id = $1;

-- name: insert_distribution
INSERT INTO distributions (id, snapshot_id, asset_id, pool_account, account, total, minimum, remainder,
                           remainder_account, mode, body, recipients, created_by, unclaimed, carried_from, carried)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (id) DO NOTHING
RETURNING id;

-- name: insert_shares
INSERT INTO distribution_shares (distribution_id, idx, recipient, amount)
SELECT $1, i, r, a FROM unnest($2::int[], $3::text[], $4::numeric[]) AS x(i, r, a);

-- name: ensure_app_account
-- The distribution's own app account (created whatever ledger.create_app_accounts says).
INSERT INTO ledger_accounts (code, kind, label) VALUES ($1, 'app', $2)
ON CONFLICT (code) DO NOTHING;

-- name: shares_page
SELECT idx, recipient, amount, state, payout_key FROM distribution_shares
WHERE distribution_id = $1 AND idx > $2 ORDER BY idx LIMIT $3;

-- name: share_of
SELECT idx, recipient, amount, state, payout_key FROM distribution_shares
WHERE distribution_id = $1 AND recipient = $2;

-- name: all_shares
SELECT idx, recipient, amount, state FROM distribution_shares WHERE distribution_id = $1 ORDER BY idx;

-- name: share_totals
SELECT state, count(*) AS n, COALESCE(sum(amount), 0) AS amount
FROM distribution_shares WHERE distribution_id = $1 GROUP BY state;

-- name: owed_shares
-- Shares not yet requested, in index order, from index $2 on.
SELECT idx, recipient, amount, attempts FROM distribution_shares
WHERE distribution_id = $1 AND state = 'owed' AND idx > $2 ORDER BY idx LIMIT $3;

-- name: payers_of
-- The accounts the existing requests among keys $1 pay from.
SELECT idempotency_key, from_account FROM payout_requests WHERE idempotency_key = ANY ($1::text[]);

-- name: mark_requested
-- The share's payout request exists (key $3); at most once.
UPDATE distribution_shares SET state = 'requested', payout_key = $3, updated_at = now()
WHERE distribution_id = $1 AND idx = $2 AND state = 'owed';

-- name: sync_paid
-- Shares follow their payout requests: paid when the payout is, back to
-- requested if a reorg un-confirms it. Returns the shares that changed.
UPDATE distribution_shares s
SET state = CASE WHEN p.state = 'paid' THEN 'paid' ELSE 'requested' END, updated_at = now()
FROM payout_requests p
WHERE s.distribution_id = $1 AND p.idempotency_key = s.payout_key AND s.state IN ('requested', 'paid')
  AND (p.state = 'paid') <> (s.state = 'paid')
RETURNING s.idx, s.state;

-- name: reopen_cancelled
-- Shares whose payout request an operator cancelled: owed again (the
-- entitlement was never debited), to be pushed under the next key. Once per
-- cancellation: the key is cleared with the state.
UPDATE distribution_shares s
SET state = 'owed', payout_key = NULL, attempts = s.attempts + 1, updated_at = now()
FROM payout_requests p
WHERE s.distribution_id = $1 AND s.state = 'requested' AND p.idempotency_key = s.payout_key
  AND p.state = 'cancelled'
RETURNING s.idx, s.recipient, s.amount, p.idempotency_key AS cancelled_key;

-- name: set_paid_if_done
-- A push distribution is paid once no share is open; returns its id when it changed now.
UPDATE distributions d SET state = 'paid'
WHERE d.id = $1 AND d.state = 'open'
  AND NOT EXISTS (SELECT 1 FROM distribution_shares s WHERE s.distribution_id = d.id AND s.state <> 'paid')
RETURNING id;

-- name: lock_distribution
SELECT id, snapshot_id, asset_id, pool_account, account, total, remainder, mode, state, claim_contract, epoch,
       root, deadline, unclaimed, carried
FROM distributions WHERE id = $1 FOR UPDATE;

-- name: set_epoch
-- The epoch a pull distribution is claimed from; once.
UPDATE distributions SET claim_contract = $2, epoch = $3, root = $4, deadline = $5
WHERE id = $1 AND mode = 'pull' AND epoch IS NULL
RETURNING id;

-- name: final_claims
-- Final Claimed events of one epoch of one contract, first per leaf index.
SELECT DISTINCT ON ((args ->> 'index')::numeric) id, block_number, tx_hash, (args ->> 'index')::numeric AS idx,
       lower(args ->> 'account') AS account, (args ->> 'amount')::numeric AS amount
FROM final_events
WHERE chain = $1 AND address = $2 AND event = 'Claimed' AND (args ->> 'epochId')::numeric = $3
ORDER BY (args ->> 'index')::numeric, block_number, log_index;

-- name: pending_claims
-- Claimed events of the epoch above the final height: seen, not settled.
SELECT count(*) FROM events e JOIN chain_state s ON s.chain = e.chain
WHERE e.chain = $1 AND e.address = $2 AND e.event = 'Claimed' AND (e.args ->> 'epochId')::numeric = $3
  AND e.block_number > s.final_number;

-- name: mismatch_seen
SELECT 1 FROM audit_log WHERE subject = $1 AND action = 'distribution.claim_mismatch' AND details ->> 'event_id' = $2;

-- name: settle_share
UPDATE distribution_shares SET state = 'claimed', claim_event_id = $3, updated_at = now()
WHERE distribution_id = $1 AND idx = $2 AND state = 'owed'
RETURNING idx, recipient, amount;

-- name: unsettle_shares
-- Claimed shares whose event is no longer final (it cannot happen to final
-- data; kept so the share state is derived both ways).
UPDATE distribution_shares SET state = 'owed', claim_event_id = NULL, updated_at = now()
WHERE distribution_id = $1 AND state = 'claimed' AND NOT (claim_event_id = ANY ($2::bigint[]))
RETURNING idx;

-- name: final_block_time
-- The time of the newest final block whose header is kept (NULL before there is one).
SELECT b.timestamp FROM blocks b JOIN chain_state s ON s.chain = b.chain
WHERE b.chain = $1 AND b.number <= s.final_number AND b.timestamp IS NOT NULL
ORDER BY b.number DESC LIMIT 1;

-- name: expire_shares
UPDATE distribution_shares SET state = 'expired', updated_at = now()
WHERE distribution_id = $1 AND state = 'owed'
RETURNING idx, recipient, amount;

-- name: close_distribution
UPDATE distributions SET state = 'closed', closed_at = now() WHERE id = $1 AND state = 'open' RETURNING id;

-- name: wallet_account
SELECT a.code FROM ledger_wallets w JOIN ledger_accounts a ON a.id = w.account_id
WHERE w.chain = $1 AND w.address = $2;

-- name: open_distributions
-- What the background task settles: open push distributions with requested shares, pull ones with an epoch.
SELECT id, mode FROM distributions d
WHERE state = 'open' AND (mode = 'pull' AND epoch IS NOT NULL
   OR mode = 'push' AND EXISTS (SELECT 1 FROM distribution_shares s WHERE s.distribution_id = d.id
                                AND s.state = 'requested'))
ORDER BY id;

-- name: voucher_chains
SELECT DISTINCT chain FROM distribution_vouchers WHERE state = 'issued';

-- name: carried_into
-- The distribution that carried this one's expired shares (NULL: none yet).
SELECT id FROM distributions WHERE carried_from = $1;

-- name: roll_shares
-- The expired shares of a distribution, carried into the next one: once.
UPDATE distribution_shares SET state = 'rolled', updated_at = now()
WHERE distribution_id = $1 AND state = 'expired'
RETURNING recipient, amount;
