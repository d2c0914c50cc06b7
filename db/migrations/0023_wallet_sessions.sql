-- Issue 27: wallet sessions (refresh tokens stored hashed, rotated; a reused
-- one revokes its whole family) and frozen accounts.

-- One sign-in: the family of refresh tokens it hands out. Revoking it ends
-- every token of the family and every access token naming it (`sid`).
CREATE TABLE signin_sessions (
    id             UUID PRIMARY KEY,
    address        TEXT NOT NULL,
    chain          TEXT NOT NULL,
    method         TEXT NOT NULL CHECK (method IN ('eoa', 'eip1271', 'xrpl')),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT CHECK (revoked_reason IN ('logout', 'reuse', 'admin', 'frozen'))
);
CREATE INDEX signin_sessions_address ON signin_sessions (chain, address);
CREATE INDEX signin_sessions_expiry ON signin_sessions (expires_at);

-- Refresh tokens by their SHA-256 (the token itself is never stored). A
-- token is used once: rotation marks it used and inserts its successor in
-- one transaction under the row's lock, so two processes cannot both rotate it.
CREATE TABLE signin_refresh_tokens (
    hash        BYTEA PRIMARY KEY CHECK (octet_length(hash) = 32),
    session_id  UUID NOT NULL REFERENCES signin_sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX signin_refresh_tokens_session ON signin_refresh_tokens (session_id);

-- A frozen account: no withdrawal, transfer, hold or payout debits it until unfrozen.
CREATE TABLE frozen_accounts (
    account    TEXT PRIMARY KEY,
    reason     TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor      TEXT NOT NULL,
    frozen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A wallet's own reads: its payouts (withdrawals and received), its invoices.
CREATE INDEX payout_requests_from_account ON payout_requests (from_account, id);
CREATE INDEX invoices_account ON invoices (account, created_at);
