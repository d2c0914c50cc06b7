-- `final` as one row per finality move, not one row per event (0010 wrote
-- a delivery_outbox row for every event that became final, inside the
-- indexer's commit: on a backfill that doubled the rows written).
--
-- A row says: every event of `chain` with above_block < block_number <=
-- upto_block and id_lo <= id <= id_hi is final. A relay expands it at
-- fan-out, in event id order, at positions (tx, 3, event id); a final
-- message's id is still ev_<chain>_<id>_final, so an event two rows cover
-- is delivered once (delivery_messages is unique per subscription and
-- message id). The id bounds only keep the expansion an index range scan.
CREATE TABLE delivery_finality (
    tx           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain        TEXT NOT NULL,
    above_block  BIGINT NOT NULL,
    upto_block   BIGINT NOT NULL,
    id_lo        BIGINT NOT NULL,
    id_hi        BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX delivery_finality_feed ON delivery_finality (tx, id);

-- When a chain's final height moves from A to B, the events stored in
-- (A, B] become final, in the transaction that moves it. count(*) keeps
-- Postgres from answering min(id) by walking the primary key from the
-- table's start (the min/max rewrite), and drops an empty range.
CREATE OR REPLACE FUNCTION delivery_on_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_finality (chain, above_block, upto_block, id_lo, id_hi)
    SELECT NEW.chain, COALESCE(OLD.final_number, -1), NEW.final_number, min(e.id), max(e.id)
    FROM events e
    WHERE e.chain = NEW.chain
      AND e.block_number > COALESCE(OLD.final_number, -1)
      AND e.block_number <= NEW.final_number
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

-- An event inserted at or below the final height (a replay restoring a
-- missed log) is final at once. 0010 found those through a transition
-- table, which Postgres fills with every inserted row: on a backfill, a
-- copy of each COPY. Here a writer that has checked its rows are all above
-- the final height says so (chainsettle.events_above_final, transaction
-- local; indexer/store's direct COPY path) and nothing is looked at;
-- otherwise the transaction's own rows are found by the events (tx, id)
-- index. Writers that say nothing (a replay, a hand insert) are checked.
CREATE OR REPLACE FUNCTION delivery_on_late_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('chainsettle.events_above_final', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO delivery_finality (chain, above_block, upto_block, id_lo, id_hi)
        SELECT e.chain, -1, s.final_number, min(e.id), max(e.id)
        FROM events e
        JOIN chain_state s ON s.chain = e.chain
        WHERE e.tx = pg_current_xact_id() AND s.final_number IS NOT NULL AND e.block_number <= s.final_number
        GROUP BY e.chain, s.final_number;
    END IF;
    PERFORM pg_notify('chainsettle_delivery', '');
    RETURN NULL;
END $$;

DROP TRIGGER events_delivery_insert ON events;
CREATE TRIGGER events_delivery_insert AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_on_late_insert();

CREATE TRIGGER delivery_finality_notify AFTER INSERT ON delivery_finality
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_notify();
