#!/bin/sh
# The write path's id indexes on PostgreSQL alone (issue 24): per transaction of 2,000 calls with
# random UUIDv4 ids, the writer's probe of the event ids and call keys, then the inserts into
# `event_ids`, `events` (its record index) and `call_keys` (its call and contact indexes), one
# durable commit each (fsync on, shared_buffers 256MB as the bench's cluster), for the layout
# before issue 24 (B-trees on the ids' text) and after (on their 64-bit hashes). Prints the
# calls/s of each 100k calls.
#   sh bench/pg_keys/run.sh [CALLS]   (default 1,000,000; PostgreSQL 15; LAYOUTS="hashed text" to swap the order)
set -e
CALLS=${1:-1000000}
BIN=${DIALBOARD_PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=$(mktemp -d /tmp/pg-keys-XXXXXX)
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=""
if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DIR"; RUN="runuser -u postgres --"; fi
$RUN "$BIN/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
$RUN "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -o "-c listen_addresses= -k $DIR -c fsync=on -c shared_buffers=256MB" start >/dev/null
trap '$RUN "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null; rm -rf "$DIR"' EXIT
for layout in ${LAYOUTS:-text hashed}; do
    "$BIN/psql" -q -h "$DIR" -U postgres -d postgres -v ON_ERROR_STOP=1 -v calls="$CALLS" \
        -f "$HERE/$layout.sql" -f "$HERE/ingest.sql"
done
