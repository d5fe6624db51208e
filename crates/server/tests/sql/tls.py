"""Logins to the SQL endpoint seen by psycopg (libpq): SCRAM-SHA-256 with or without TLS, and
a key that predates SCRAM verifiers sent in clear text over TLS only, after which it has a
verifier. Prints one JSON object; the Rust test checks it."""
import json
import sys

import psycopg

host, port, user, new_key, old_key = sys.argv[1:6]
# libpq 16+ can insist on a method, which proves which one the server asked for.
pinned = psycopg.pq.version() >= 160000


def attempt(key, sslmode, method):
    extra = {"require_auth": method} if pinned else {}
    try:
        with psycopg.connect(
            host=host, port=int(port), user=user, password=key, dbname=user,
            sslmode=sslmode, connect_timeout=10, **extra,
        ) as conn:
            total = conn.execute("SELECT total_calls FROM call_metrics").fetchone()[0]
            return {"total": total, "tls": conn.pgconn.ssl_in_use}
    except psycopg.OperationalError as e:
        return {"error": str(e)}


# In this order: while the tenant has a key without a verifier, TLS connections are asked
# for the key in clear text; once it logged in that way, every login is SCRAM.
out = {
    "pinned": pinned,
    "new_plain_scram": attempt(new_key, "disable", "scram-sha-256"),
    "old_plain_before": attempt(old_key, "disable", "scram-sha-256"),
    "old_tls_cleartext": attempt(old_key, "require", "password"),
    "old_plain_after": attempt(old_key, "disable", "scram-sha-256"),
    "new_tls_scram": attempt(new_key, "require", "scram-sha-256"),
}
print(json.dumps(out))
