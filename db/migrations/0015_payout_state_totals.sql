-- Payout gauges without counting the history (issue 16).
--
-- settlement/payouts/requests.refresh_gauges sets every state of every
-- chain, in every process, about once a second (the gauge job and each
-- payout worker's step). It counted payout_requests and payout_batches
-- whole: a scan of every request ever paid, several times a second, growing
-- with the table. The open states stay few and are still counted, through
-- partial indexes. The terminal ones only grow, so they are kept as totals,
-- moved by triggers in the transaction that moves a row in or out of them:
-- exact, and read in one index probe. A transition touches one totals row
-- per (chain, state), and requests enter as pending, so intake never waits
-- on a totals row. No CHECK on n: a gauge must never fail a confirmation.
CREATE TABLE payout_state_totals (
    kind   TEXT NOT NULL CHECK (kind IN ('request', 'batch')),
    chain  TEXT NOT NULL,
    state  TEXT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (kind, chain, state)
);

-- The one definition of which states are terminal (requests: paid,
-- cancelled; batches: confirmed, expired, reverted, cancelled), for the
-- triggers, the partial indexes and the gauge queries alike. A state added
-- later is open unless named here: counted, never missing from the gauges.
CREATE FUNCTION payout_state_terminal(TEXT) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT $1 IN ('paid', 'cancelled', 'confirmed', 'expired', 'reverted') $$;

-- Per statement, from its transition tables: one upsert per (chain, state)
-- it moved. A row trigger would update one totals row once per payout row,
-- and in one transaction each update walks the versions the earlier ones
-- left (quadratic: 20,000 rows took 7 s). TG_ARGV[0] is the kind; the
-- callers pass terminal rows only.
CREATE FUNCTION payout_state_totals_add(TEXT, payout_state_totals[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO payout_state_totals AS t (kind, chain, state, n)
    SELECT $1, d.chain, d.state, sum(d.n) FROM unnest($2) d
    GROUP BY d.chain, d.state HAVING sum(d.n) <> 0
    ON CONFLICT (kind, chain, state) DO UPDATE SET n = t.n + EXCLUDED.n
$$;

CREATE FUNCTION payout_state_totals_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM payout_state_totals_add(TG_ARGV[0], ARRAY(
        SELECT ROW(TG_ARGV[0], chain, state, 1)::payout_state_totals FROM new_rows
        WHERE payout_state_terminal(state)));
    RETURN NULL;
END $$;

CREATE FUNCTION payout_state_totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM payout_state_totals_add(TG_ARGV[0], ARRAY(
        SELECT ROW(TG_ARGV[0], chain, state, -1)::payout_state_totals FROM old_rows
        WHERE payout_state_terminal(state)));
    RETURN NULL;
END $$;

CREATE FUNCTION payout_state_totals_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM payout_state_totals_add(TG_ARGV[0], ARRAY(
        SELECT ROW(TG_ARGV[0], chain, state, -1)::payout_state_totals FROM old_rows
        WHERE payout_state_terminal(state)
        UNION ALL
        SELECT ROW(TG_ARGV[0], chain, state, 1)::payout_state_totals FROM new_rows
        WHERE payout_state_terminal(state)));
    RETURN NULL;
END $$;

DO $$
DECLARE
    t RECORD;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('payout_requests', 'request'), ('payout_batches', 'batch')) v (tbl, kind) LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION payout_state_totals_insert(%L)',
                       t.tbl || '_totals_insert', t.tbl, t.kind);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION payout_state_totals_update(%L)',
                       t.tbl || '_totals_update', t.tbl, t.kind);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION payout_state_totals_delete(%L)',
                       t.tbl || '_totals_delete', t.tbl, t.kind);
    END LOOP;
END $$;

-- TRUNCATE fires no row triggers.
CREATE FUNCTION payout_state_totals_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM payout_state_totals WHERE kind = TG_ARGV[0];
    RETURN NULL;
END $$;
CREATE TRIGGER payout_requests_totals_truncate AFTER TRUNCATE ON payout_requests
    FOR EACH STATEMENT EXECUTE FUNCTION payout_state_totals_clear('request');
CREATE TRIGGER payout_batches_totals_truncate AFTER TRUNCATE ON payout_batches
    FOR EACH STATEMENT EXECUTE FUNCTION payout_state_totals_clear('batch');

-- Totals of what is stored already, in this migration's transaction.
INSERT INTO payout_state_totals (kind, chain, state, n)
SELECT 'request', chain, state, count(*) FROM payout_requests
WHERE payout_state_terminal(state) GROUP BY chain, state
UNION ALL
SELECT 'batch', chain, state, count(*) FROM payout_batches
WHERE payout_state_terminal(state) GROUP BY chain, state;

CREATE INDEX payout_requests_open_states ON payout_requests (chain, state) WHERE NOT payout_state_terminal(state);
CREATE INDEX payout_batches_open_states ON payout_batches (chain, state) WHERE NOT payout_state_terminal(state);
