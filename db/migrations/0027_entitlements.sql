-- Entitlement accounts: what each recipient of a distribution is owed, one
-- ledger account per share (`entitlement:<distribution>:<recipient>`,
-- settlement/distributions/entitlements.py explains the flows).
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
    CHECK (kind IN ('wallet', 'user', 'fee', 'external', 'equity', 'adjustment', 'app', 'entitlement'));

-- A pushed share whose payout an operator cancelled (proven never to
-- execute) is owed again and pushed under a new key: `attempts` counts the
-- cancelled ones (key distribution:<id>:<idx>, then ...:<idx>:<attempts>).
ALTER TABLE distribution_shares ADD COLUMN attempts INT NOT NULL DEFAULT 0 CHECK (attempts >= 0);

-- What one recipient is owed across distributions.
CREATE INDEX distribution_shares_recipient ON distribution_shares (recipient, distribution_id);

-- Distributions booked before this migration hold their open shares in the
-- hub (app:dist.<id>): move each still owed share to its entitlement, one
-- ledger transaction per distribution, as creation now does. Left in the hub:
-- shares already requested (their payouts pay from the hub, as they were
-- admitted) and a share whose payout request exists without its mark.
DO $$
DECLARE
    d RECORD;
    tx BIGINT;
    total NUMERIC;
BEGIN
    FOR d IN SELECT id, account, asset_id, unclaimed FROM distributions ORDER BY id LOOP
        CREATE TEMP TABLE IF NOT EXISTS moving (code TEXT, amount NUMERIC, account_id BIGINT) ON COMMIT DROP;
        TRUNCATE moving;
        INSERT INTO moving (code, amount)
        SELECT 'entitlement:' || s.distribution_id || ':' || s.recipient, s.amount
        FROM distribution_shares s
        WHERE s.distribution_id = d.id
          AND (s.state = 'owed' OR s.state = 'expired' AND d.unclaimed = 'rollover'
               AND NOT EXISTS (SELECT 1 FROM distributions c WHERE c.carried_from = d.id))
          AND NOT EXISTS (SELECT 1 FROM payout_requests p
                          WHERE p.idempotency_key = 'distribution:' || s.distribution_id || ':' || s.idx);
        SELECT sum(amount) INTO total FROM moving;
        CONTINUE WHEN total IS NULL;
        INSERT INTO ledger_accounts (code, kind) SELECT code, 'entitlement' FROM moving ORDER BY code
        ON CONFLICT (code) DO NOTHING;
        UPDATE moving m SET account_id = a.id FROM ledger_accounts a WHERE a.code = m.code;
        INSERT INTO ledger_account_balances (account_id, asset_id)
        SELECT account_id, d.asset_id FROM moving UNION SELECT id, d.asset_id FROM ledger_accounts
        WHERE code = d.account
        ON CONFLICT DO NOTHING;
        INSERT INTO ledger_transactions (idempotency_key, cause_kind, cause, chain, block_number, author)
        VALUES ('distribution:' || d.id || ':shares', 'transfer',
                jsonb_build_object('distribution', d.id, 'memo', 'open shares to their entitlements (0027)',
                                   'direction', 1, 'amount', total::text),
                split_part(d.asset_id, ':', 1),
                COALESCE((SELECT final_number FROM chain_state WHERE chain = split_part(d.asset_id, ':', 1)), 0),
                'migration')
        RETURNING id INTO tx;
        INSERT INTO postings (transaction_id, account_id, asset_id, amount, internal)
        SELECT tx, id, d.asset_id, total, true FROM ledger_accounts WHERE code = d.account
        UNION ALL
        SELECT tx, account_id, d.asset_id, -amount, true FROM moving;
        UPDATE ledger_account_balances b SET posted = b.posted + x.delta
        FROM (SELECT account_id, -amount AS delta FROM moving
              UNION ALL SELECT id, total FROM ledger_accounts WHERE code = d.account) x
        WHERE b.account_id = x.account_id AND b.asset_id = d.asset_id;
    END LOOP;
END $$;
