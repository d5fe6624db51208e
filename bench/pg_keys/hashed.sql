-- Since issue 24: B-trees on a 64-bit hash of the id, the text compared on the rows found.
DROP TABLE IF EXISTS event_ids, events, call_keys;
CREATE TABLE event_ids (tenant_id BIGINT NOT NULL, event_id TEXT COLLATE "C" NOT NULL,
    id_hash BIGINT GENERATED ALWAYS AS (hashtextextended(event_id, 0)) STORED);
CREATE INDEX event_ids_by_hash ON event_ids (tenant_id, id_hash);
CREATE TABLE events (tenant_id BIGINT NOT NULL, received_ns BIGINT NOT NULL, seq BIGSERIAL, event_id TEXT COLLATE "C" NOT NULL,
    record_key TEXT COLLATE "C", body TEXT NOT NULL, PRIMARY KEY (tenant_id, received_ns, seq),
    record_hash BIGINT GENERATED ALWAYS AS (hashtextextended(record_key, 0)) STORED);
CREATE INDEX events_by_record ON events (tenant_id, record_hash) WHERE record_key IS NOT NULL;
CREATE TABLE call_keys (tenant_id BIGINT NOT NULL, call_id TEXT COLLATE "C" NOT NULL, started_ns BIGINT NOT NULL,
    contact_id TEXT COLLATE "C",
    call_hash BIGINT GENERATED ALWAYS AS (hashtextextended(call_id, 0)) STORED,
    contact_hash BIGINT GENERATED ALWAYS AS (hashtextextended(contact_id, 0)) STORED);
CREATE INDEX call_keys_by_hash ON call_keys (tenant_id, call_hash);
CREATE INDEX call_keys_by_contact ON call_keys (tenant_id, contact_hash) WHERE contact_id IS NOT NULL;
CREATE OR REPLACE FUNCTION known_events(ids text[]) RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(*) FROM unnest(ids) w(v), LATERAL (SELECT event_id FROM event_ids WHERE tenant_id = 1
     AND id_hash = hashtextextended(w.v COLLATE "C", 0) AND event_id = w.v OFFSET 0) f $$;
CREATE OR REPLACE FUNCTION known_calls(ids text[]) RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(*) FROM unnest(ids) w(v), LATERAL (SELECT call_id FROM call_keys WHERE tenant_id = 1
     AND call_hash = hashtextextended(w.v COLLATE "C", 0) AND call_id = w.v OFFSET 0) f $$;
\echo 'layout: B-trees on 64-bit hashes of the ids (after)'
