-- Payment intents: scheduled, conditional payouts on top of the payout pipeline.
--
-- An intent is versioned: every edit appends a row to intent_versions and the
-- scheduler materialises occurrences with the version current at the time;
-- an occurrence keeps the version it was made with (edits apply to future
-- occurrences only).
--
-- Occurrence states:
--   due -> requested -> executed           (its payout is `paid`, from final chain data)
--   due | delayed -> delayed               (a condition is false: reason, next_attempt_at)
--   due | delayed -> missed                (its deadline passed with a condition still false)
--   requested -> failed                    (its payout ended without paying: failed, cancelled, rejected)
--   awaiting_approval -> due               (a catch-up above the intent's approval amount, approved)
--   skipped                                (a run missed while the scheduler was down, dropped by the policy)
--   due | delayed | awaiting_approval -> cancelled (the intent was cancelled)
-- The occurrence id is the payout's idempotency key: an occurrence can never pay twice.

CREATE TABLE intents (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    state           TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'cancelled')),
    version         INT NOT NULL DEFAULT 1 CHECK (version >= 1),
    chain           TEXT NOT NULL,
    asset           TEXT NOT NULL,
    source_account  TEXT NOT NULL,
    -- The scheduling cursor: the first scheduled time not yet materialised (NULL: the schedule ended).
    next_at         TIMESTAMPTZ,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX intents_due ON intents (next_at) WHERE state = 'active' AND next_at IS NOT NULL;

CREATE TABLE intent_versions (
    intent_id       BIGINT NOT NULL REFERENCES intents (id),
    version         INT NOT NULL CHECK (version >= 1),
    spec            JSONB NOT NULL,
    changed_by      TEXT NOT NULL,
    reason          TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (intent_id, version)
);

CREATE TABLE intent_occurrences (
    id               TEXT PRIMARY KEY CHECK (id ~ '^[\x21-\x7e]{1,200}$'),  -- = payout_requests.idempotency_key
    intent_id        BIGINT NOT NULL REFERENCES intents (id),
    version          INT NOT NULL,
    scheduled_at     TIMESTAMPTZ NOT NULL,
    chain            TEXT NOT NULL,
    asset            TEXT NOT NULL,
    source_account   TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('due', 'delayed', 'awaiting_approval', 'requested', 'executed',
                                                    'failed', 'missed', 'skipped', 'cancelled')),
    catch_up         BOOLEAN NOT NULL DEFAULT false,
    amount           NUMERIC(78, 0) CHECK (amount > 0),  -- what was requested
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    deadline         TIMESTAMPTZ NOT NULL,
    reason           TEXT,
    payout_request_id BIGINT,
    payout_state     TEXT,
    approved_by      TEXT,
    requested_at     TIMESTAMPTZ,  -- the scheduler's clock when its payout was requested (period caps)
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (intent_id, scheduled_at),
    FOREIGN KEY (intent_id, version) REFERENCES intent_versions (intent_id, version),
    CHECK (state NOT IN ('requested', 'executed') OR (amount IS NOT NULL AND payout_request_id IS NOT NULL))
);
CREATE INDEX intent_occurrences_attempt ON intent_occurrences (next_attempt_at) WHERE state IN ('due', 'delayed');
CREATE INDEX intent_occurrences_requested ON intent_occurrences (id) WHERE state = 'requested';
CREATE INDEX intent_occurrences_source ON intent_occurrences (chain, asset, source_account);
CREATE INDEX intent_occurrences_period ON intent_occurrences (intent_id, requested_at) WHERE requested_at IS NOT NULL;

-- Every condition evaluation of every attempt, with its inputs.
CREATE TABLE intent_evaluations (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurrence_id  TEXT NOT NULL REFERENCES intent_occurrences (id),
    attempt        INT NOT NULL,
    evaluated_at   TIMESTAMPTZ NOT NULL,  -- the scheduler's clock
    result         BOOLEAN NOT NULL,
    reason         TEXT NOT NULL,         -- 'ok' or the first failing condition's code
    inputs         JSONB NOT NULL,
    UNIQUE (occurrence_id, attempt)
);

-- Intent notifications go out through the feed (kind 'intent'). Other
-- migrations may add kinds too: the allowed list is extended, not replaced.
DO $$
DECLARE
    def TEXT;
    kinds TEXT[];
BEGIN
    SELECT pg_get_constraintdef(c.oid) INTO def FROM pg_constraint c
    WHERE c.conrelid = 'feed_outbox'::regclass AND c.contype = 'c' AND pg_get_constraintdef(c.oid) LIKE '%kind%';
    IF def IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(DISTINCT m[1]) INTO kinds FROM regexp_matches(def, '''([a-z_]+)''', 'g') AS m;
    kinds := array(SELECT DISTINCT unnest(kinds || ARRAY['intent']));
    EXECUTE (SELECT 'ALTER TABLE feed_outbox DROP CONSTRAINT ' || quote_ident(c.conname) FROM pg_constraint c
             WHERE c.conrelid = 'feed_outbox'::regclass AND c.contype = 'c' AND pg_get_constraintdef(c.oid) = def);
    EXECUTE 'ALTER TABLE feed_outbox ADD CONSTRAINT feed_outbox_kind_check CHECK (kind = ANY ('
            || quote_literal(kinds::text) || '::text[]))';
END $$;
