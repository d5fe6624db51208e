-- Transactions of 2,000 calls (random UUIDv4 call and event ids, 250k contacts), each probed,
-- inserted and committed; a row of timings per 100k calls.
SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_seqscan = off;
CREATE TEMP TABLE slices (calls bigint, at timestamptz);
CREATE OR REPLACE PROCEDURE ingest(total bigint) LANGUAGE plpgsql AS $$
DECLARE
    done bigint := 0;
    ev text[]; calls text[]; n bigint;
BEGIN
    INSERT INTO slices VALUES (0, clock_timestamp());
    COMMIT;
    WHILE done < total LOOP
        SELECT array_agg(gen_random_uuid()::text), array_agg(gen_random_uuid()::text) INTO ev, calls
          FROM generate_series(1, 2000);
        n := known_events(ev) + known_calls(calls);
        INSERT INTO event_ids (tenant_id, event_id) SELECT 1, v FROM unnest(ev) v;
        INSERT INTO events (tenant_id, received_ns, event_id, record_key, body)
          SELECT 1, done, e, c, repeat(md5(e), 12) FROM unnest(ev, calls) AS u(e, c);
        INSERT INTO call_keys (tenant_id, call_id, started_ns, contact_id)
          SELECT 1, c, done * 1000 + i, 'contact-' || (hashtext(c) & 262143) FROM unnest(calls) WITH ORDINALITY AS u(c, i);
        COMMIT;
        done := done + 2000;
        IF done % 100000 = 0 THEN
            INSERT INTO slices VALUES (done, clock_timestamp());
            COMMIT;
        END IF;
    END LOOP;
END $$;
CALL ingest(:calls);
SELECT s.calls AS "calls stored", round(100000 / extract(epoch FROM s.at - p.at)) AS "calls/s of the last 100k"
  FROM slices s JOIN slices p ON p.calls = s.calls - 100000 ORDER BY s.calls;
SELECT pg_size_pretty(pg_total_relation_size('event_ids')) AS event_ids,
       pg_size_pretty(pg_total_relation_size('call_keys')) AS call_keys,
       pg_size_pretty(pg_indexes_size('events')) AS "events' indexes",
       pg_size_pretty(pg_indexes_size('event_ids') + pg_indexes_size('call_keys') + pg_indexes_size('events')) AS "all indexes";
