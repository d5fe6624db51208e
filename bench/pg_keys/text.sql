-- Before issue 24: B-trees on the ids' text.
DROP TABLE IF EXISTS event_ids, events, call_keys;
CREATE TABLE event_ids (tenant_id BIGINT NOT NULL, event_id TEXT COLLATE "C" NOT NULL, PRIMARY KEY (tenant_id, event_id));
CREATE TABLE events (tenant_id BIGINT NOT NULL, received_ns BIGINT NOT NULL, seq BIGSERIAL, event_id TEXT COLLATE "C" NOT NULL,
    record_key TEXT COLLATE "C", body TEXT NOT NULL, PRIMARY KEY (tenant_id, received_ns, seq));
CREATE INDEX events_by_record ON events (tenant_id, record_key) WHERE record_key IS NOT NULL;
CREATE TABLE call_keys (tenant_id BIGINT NOT NULL, call_id TEXT COLLATE "C" NOT NULL, started_ns BIGINT NOT NULL,
    contact_id TEXT COLLATE "C", PRIMARY KEY (tenant_id, call_id));
CREATE INDEX call_keys_by_contact ON call_keys (tenant_id, contact_id, started_ns) WHERE contact_id IS NOT NULL;
CREATE OR REPLACE FUNCTION known_events(ids text[]) RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(*) FROM unnest(ids) w(v), LATERAL (SELECT event_id FROM event_ids WHERE tenant_id = 1 AND event_id = w.v OFFSET 0) f $$;
CREATE OR REPLACE FUNCTION known_calls(ids text[]) RETURNS bigint LANGUAGE sql AS
  $$ SELECT count(*) FROM unnest(ids) w(v), LATERAL (SELECT call_id FROM call_keys WHERE tenant_id = 1 AND call_id = w.v OFFSET 0) f $$;
\echo 'layout: B-trees on the ids'' text (before)'
