-- Payouts exactly once under real conditions (issue 11).
--
-- Request states gain  held -> cancelled   (an operator freed the reservation, with a reason)
-- Batch states gain    awaiting_approval | ready | reverted | signed | dry_run -> cancelled
--                      (only once no signature of it can still execute: see settlement/payouts/operator.py)

-- The first refusal of an idempotency key, replayed for every later request
-- with that key (an accepted key is replayed from payout_requests itself).
-- Only decisions are stored (the balance, the caps); a request that fails
-- validation never reached a decision and stores nothing, as payment APIs do.
CREATE TABLE payout_refusals (
    idempotency_key  TEXT PRIMARY KEY,
    chain            TEXT NOT NULL,
    asset            TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    amount           NUMERIC(78, 0) NOT NULL,
    field            TEXT,
    reason           TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE payout_requests DROP CONSTRAINT payout_requests_state_check;
ALTER TABLE payout_requests ADD CONSTRAINT payout_requests_state_check
    CHECK (state IN ('pending', 'batched', 'paid', 'held', 'cancelled'));
ALTER TABLE payout_requests DROP CONSTRAINT payout_requests_check;
ALTER TABLE payout_requests ADD CONSTRAINT payout_requests_check
    CHECK ((state IN ('batched', 'paid')) = (batch_id IS NOT NULL) OR state IN ('held', 'cancelled'));
ALTER TABLE payout_requests ADD CONSTRAINT payout_requests_cancel_reason
    CHECK (state <> 'cancelled' OR reason IS NOT NULL);

ALTER TABLE payout_batches DROP CONSTRAINT payout_batches_state_check;
ALTER TABLE payout_batches ADD CONSTRAINT payout_batches_state_check
    CHECK (state IN ('awaiting_approval', 'ready', 'signed', 'dry_run', 'confirmed', 'reverted', 'expired',
                     'cancelled'));
-- When the signature was made: expiry counts from here, not from creation.
ALTER TABLE payout_batches ADD COLUMN signed_at TIMESTAMPTZ;
-- The UTC day whose cap this batch was counted against (what a dead batch gives back).
ALTER TABLE payout_batches ADD COLUMN cap_day DATE;
UPDATE payout_batches SET cap_day = (created_at AT TIME ZONE 'utc')::date;
ALTER TABLE payout_batches ALTER COLUMN cap_day SET DEFAULT (now() AT TIME ZONE 'utc')::date;
ALTER TABLE payout_batches ALTER COLUMN cap_day SET NOT NULL;

-- The confirmer: a mined transaction stays watched until its block is final
-- (and canonical by hash); reorged out, it goes back to 'broadcast' and its
-- stored bytes are sent again. Rows mined before this migration were final
-- under the old rule (receipt seen): they stay unwatched.
ALTER TABLE evm_txs ADD COLUMN mined_block_hash TEXT;
ALTER TABLE evm_txs ADD COLUMN final BOOLEAN NOT NULL DEFAULT false;
UPDATE evm_txs SET final = true WHERE state = 'mined';
ALTER TABLE evm_txs ADD CONSTRAINT evm_txs_final_is_mined CHECK (NOT final OR state = 'mined');
CREATE INDEX evm_txs_unfinal ON evm_txs (chain, sender, nonce) WHERE state = 'mined' AND NOT final;
