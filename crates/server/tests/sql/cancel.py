"""psycopg's cancel (a CancelRequest on a second connection) stops a runaway query on the SQL
endpoint: the query fails with 57014, and the shared catalog answers another client at once."""
import json
import os
import sys
import threading
import time

import psycopg

host, port, user, password = sys.argv[1:5]
RUNAWAY = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r"


def connect():
    return psycopg.connect(host=host, port=int(port), user=user, password=password, dbname=user, connect_timeout=10)


out = {}
with connect() as conn:
    cancel = getattr(conn, "cancel_safe", conn.cancel)
    threading.Timer(1.0, cancel).start()
    started = time.monotonic()
    try:
        conn.execute(RUNAWAY)
        out["cancel"] = "not cancelled"
    except psycopg.Error as e:
        out["cancel"] = e.sqlstate
    out["cancel_seconds"] = time.monotonic() - started


def next_query():
    with connect() as other:
        started = time.monotonic()
        other.execute("SELECT count(*) FROM pg_catalog.pg_class").fetchone()
        out["next_seconds"] = time.monotonic() - started


# A catalog still held by the runaway query would block this one: wait at most 10 s.
waiter = threading.Thread(target=next_query, daemon=True)
waiter.start()
waiter.join(10)
out.setdefault("next_seconds", None)
print(json.dumps(out), flush=True)
os._exit(0)
