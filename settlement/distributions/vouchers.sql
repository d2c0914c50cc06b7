-- Claim vouchers (settlement/distributions/vouchers.py).

-- name: find_voucher
SELECT * FROM distribution_vouchers WHERE id = $1;

-- name: outstanding
-- What the pool's issued vouchers add up to (read under the pool's balance-row lock).
SELECT COALESCE(sum(amount), 0) FROM distribution_vouchers
WHERE pool_account = $1 AND asset_id = $2 AND state = 'issued';

-- name: insert_voucher
INSERT INTO distribution_vouchers (id, nonce, chain, contract, pool_account, account, asset_id, recipient, amount,
                                   valid_after, valid_before, signature, body, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (id) DO NOTHING
RETURNING *;

-- name: open_vouchers
SELECT * FROM distribution_vouchers WHERE chain = $1 AND state = 'issued' ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: final_voucher_events
-- Final VoucherRedeemed / VoucherRevoked events of the contracts for the nonces.
SELECT DISTINCT ON (address, lower(args ->> 'nonce')) id, block_number, tx_hash, address, event,
       lower(args ->> 'nonce') AS nonce
FROM final_events
WHERE chain = $1 AND address = ANY ($2::text[]) AND event IN ('VoucherRedeemed', 'VoucherRevoked')
  AND lower(args ->> 'nonce') = ANY ($3::text[])
ORDER BY address, lower(args ->> 'nonce'), block_number, log_index;

-- name: resolve_voucher
UPDATE distribution_vouchers SET state = $2, event_id = $3, resolved_at = now()
WHERE id = $1 AND state = 'issued'
RETURNING id;

-- name: request_revoke
UPDATE distribution_vouchers SET revoke_requested = true WHERE id = $1 RETURNING *;

-- name: vouchers_page
SELECT * FROM distribution_vouchers WHERE id > $1 AND ($2::text IS NULL OR state = $2) ORDER BY id LIMIT $3;
