-- Feed kind 'balance': one feed_outbox row per (account, asset) a committed
-- transfer, a hold's creation or its resolution (post, void, expiry)
-- changed, for user and app accounts, written in the transaction of the
-- change by statement-level triggers (one INSERT per booking statement, so a
-- group-committed batch of transfers stays one statement). Payload:
-- {account, asset, reason: transfer|hold|post|void|expire, transfer_id or
-- hold_id, amount}: amount is the change of the account's available balance
-- in its natural sign (a credit to a user account is positive), as an exact
-- integer string. The WebSocket `account` channel forwards a row to the
-- wallet whose account it names (api/ws.py), followed by its figures.
SELECT feed_outbox_allow_kinds(ARRAY['balance']);  -- 0024

-- changes: (account id, asset, reason, id field, id, change in natural sign), any number of rows;
-- the accounts that are not user or app accounts are left out.
CREATE FUNCTION feed_balance_rows(changes JSONB) RETURNS void LANGUAGE sql AS $$
    INSERT INTO feed_outbox (kind, subject, chain, payload)
    SELECT 'balance', a.code || ' ' || c.asset, split_part(c.asset, ':', 1),
           jsonb_build_object('event', 'balance.' || c.reason, 'account', a.code, 'asset', c.asset,
                              'reason', c.reason, c.id_field, c.id, 'amount', c.amount::text)
    FROM jsonb_to_recordset(changes) AS c(account_id BIGINT, asset TEXT, reason TEXT, id_field TEXT, id TEXT,
                                          amount NUMERIC, ord BIGINT)
    JOIN ledger_accounts a ON a.id = c.account_id
    WHERE a.kind IN ('user', 'app')
    ORDER BY c.ord, a.code, c.asset;
$$;

-- Transfers: the postings of the transfers this statement wrote (a posting is
-- + debit, - credit; the natural sign is its opposite).
CREATE FUNCTION feed_balance_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM feed_balance_rows(COALESCE((
        SELECT jsonb_agg(jsonb_build_object('account_id', p.account_id, 'asset', p.asset_id, 'reason', 'transfer',
                                            'id_field', 'transfer_id', 'id', n.id, 'amount', -p.amount,
                                            'ord', p.id))
        FROM new_transfers n JOIN postings p ON p.transaction_id = n.transaction_id), '[]'));
    RETURN NULL;
END $$;
CREATE TRIGGER feed_balance_transfers AFTER INSERT ON ledger_transfers
    REFERENCING NEW TABLE AS new_transfers FOR EACH STATEMENT EXECUTE FUNCTION feed_balance_transfers();

-- A new hold: its debit account's available balance goes down by the amount.
CREATE FUNCTION feed_balance_holds_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM feed_balance_rows(COALESCE((
        SELECT jsonb_agg(jsonb_build_object('account_id', n.debit_account_id, 'asset', n.asset_id, 'reason', 'hold',
                                            'id_field', 'hold_id', 'id', n.id, 'amount', -n.amount, 'ord', 0))
        FROM new_holds n), '[]'));
    RETURN NULL;
END $$;
CREATE TRIGGER feed_balance_holds_new AFTER INSERT ON ledger_holds
    REFERENCING NEW TABLE AS new_holds FOR EACH STATEMENT EXECUTE FUNCTION feed_balance_holds_new();

-- A hold leaving 'pending': posted (the debit account gets back what was
-- held but not posted, the credit account gains the posted amount), voided
-- or expired (the debit account gets the whole amount back).
CREATE FUNCTION feed_balance_holds_resolved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM feed_balance_rows(COALESCE((
        SELECT jsonb_agg(c)
        FROM (
            SELECT jsonb_build_object('account_id', n.debit_account_id, 'asset', n.asset_id,
                                      'reason', CASE n.state WHEN 'posted' THEN 'post' WHEN 'voided' THEN 'void'
                                                ELSE 'expire' END,
                                      'id_field', 'hold_id', 'id', n.id,
                                      'amount', n.amount - COALESCE(n.posted_amount, 0), 'ord', 0) AS c
            FROM new_holds n JOIN old_holds o ON o.id = n.id
            WHERE o.state = 'pending' AND n.state <> 'pending'
            UNION ALL
            SELECT jsonb_build_object('account_id', n.credit_account_id, 'asset', n.asset_id, 'reason', 'post',
                                      'id_field', 'hold_id', 'id', n.id, 'amount', n.posted_amount, 'ord', 1)
            FROM new_holds n JOIN old_holds o ON o.id = n.id
            WHERE o.state = 'pending' AND n.state = 'posted'
        ) s), '[]'));
    RETURN NULL;
END $$;
CREATE TRIGGER feed_balance_holds_resolved AFTER UPDATE ON ledger_holds
    REFERENCING OLD TABLE AS old_holds NEW TABLE AS new_holds FOR EACH STATEMENT
    EXECUTE FUNCTION feed_balance_holds_resolved();
