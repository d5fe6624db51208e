"""The SQL endpoint seen by psycopg (a parameterized query, server-side binding) and by
SQLAlchemy's inspector. Prints one JSON object; the Rust test compares it with /query."""
import datetime
import json
import sys

import psycopg
import sqlalchemy

host, port, user, password = sys.argv[1:5]
out = {}
with psycopg.connect(host=host, port=int(port), user=user, password=password, dbname=user) as conn:
    rows = conn.execute(
        "SELECT team, total_calls, connect_rate FROM call_metrics"
        " WHERE team = %s AND time >= %s AND time < %s GROUP BY team",
        ("t1", datetime.date(2026, 3, 1), datetime.date(2026, 4, 1)),
    ).fetchall()
    out["psycopg"] = [[r[0], r[1], r[2]] for r in rows]
    days = conn.execute(
        "SELECT date_trunc('day', time) AS day, total_calls FROM call_metrics"
        " WHERE time >= %s AND time < %s GROUP BY 1 ORDER BY 1 LIMIT %s",
        ("2026-03-01", "2026-04-01", 3),
    ).fetchall()
    out["days"] = [[r[0].isoformat(), r[1]] for r in days]

engine = sqlalchemy.create_engine(f"postgresql+psycopg://{user}:{password}@{host}:{port}/{user}")
inspector = sqlalchemy.inspect(engine)
out["tables"] = sorted(inspector.get_table_names())
out["columns"] = [[c["name"], str(c["type"])] for c in inspector.get_columns("call_metrics")]
with engine.connect() as conn:
    out["sqlalchemy"] = [
        list(r)
        for r in conn.execute(
            sqlalchemy.text("SELECT agent, total_calls FROM call_metrics GROUP BY agent ORDER BY agent")
        )
    ]
print(json.dumps(out))
