-- Fixed-width keys for the filter indexes of events (issue 16).
--
-- The three indexes behind /v1/events filters (0009) led with the text
-- `chain`, and two of them had a second text column. Every row a backfill
-- COPYs is inserted into each of them: Postgres compared the text keys and,
-- past the first variable-length column, found every later key column by
-- walking the index tuple (perf on the COPY backend: nocache_index_getattr
-- 12%, _bt_compare 6%, text comparison 3%). Keyed on 64-bit hashes of the
-- text instead, the same COPY writes about 15% more rows per second
-- (bench/copy_cost.py). The table's columns and its unique key, the storage
-- contract other tools read, do not change.
--
-- A query reaches these indexes by naming the key and the column both:
-- `text_key(e.chain) = text_key($1) AND e.chain = $1`. The key is the index
-- range; the column is exact, so two names with one hash cost a recheck and
-- never a wrong row (the indexes are not unique).
CREATE FUNCTION text_key(text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT hashtextextended($1, 0) $$;

DROP INDEX events_chain_commit, events_chain_address_commit, events_chain_event_commit;
CREATE INDEX events_chain_commit ON events (text_key(chain), tx, id);
CREATE INDEX events_chain_address_commit ON events (text_key(chain), text_key(address), tx, id);
CREATE INDEX events_chain_event_commit ON events (text_key(chain), text_key(event), tx, id);
