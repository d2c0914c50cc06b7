-- App accounts (`app:treasury`, ...): the app's own money, e.g. what a
-- configured funder sent to a wallet (issue 25). 0002 listed the account
-- kinds without 'app'.
--
-- Written to commute with 0017 (accounts with limits), which adds 'app' in
-- its own way: this adds 'app' only when the kind check does not allow it
-- yet, keeping every other kind; when it does, nothing changes.
DO $$
DECLARE
    def TEXT;
BEGIN
    SELECT pg_get_constraintdef(c.oid) INTO def
    FROM pg_constraint c
    WHERE c.conrelid = 'ledger_accounts'::regclass AND c.conname = 'ledger_accounts_kind_check';
    IF def IS NOT NULL AND position('''app''' IN def) = 0 THEN
        ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_kind_check;
        ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_kind_check
            CHECK (kind IN ('wallet', 'user', 'fee', 'external', 'equity', 'adjustment', 'app'));
    END IF;
END
$$;
