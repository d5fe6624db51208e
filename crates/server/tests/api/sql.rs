//! The PostgreSQL-protocol endpoint (SPEC §13) with real clients — psql, psycopg,
//! SQLAlchemy, the JDBC driver and rust-postgres — against a server the test starts: the same
//! numbers as `/query`, tenants and reach kept apart, nothing written.

use super::helpers::*;
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::path::PathBuf;

const MARCH: &str = "time >= '2026-03-01' AND time < '2026-04-01'";

/// Forty calls over March for agents a1 (team t1) and a2 (team t2), and names in the directory.
async fn seeded() -> TestApp {
    let app = TestApp::spawn("America/New_York").await;
    let dispositions = ["Connected", "Meeting Booked", "No Answer", "Voicemail", "Interested"];
    let events: Vec<Value> = (0..40)
        .map(|i| {
            let (agent, team) = if i % 3 == 0 { ("a2", "t2") } else { ("a1", "t1") };
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": agent,
                "team_id": team, "disposition": dispositions[i % dispositions.len()],
                "started_at": format!("2026-03-{:02}T{:02}:15:00Z", 1 + i % 20, 8 + i % 9),
                "talk_seconds": 30 + i * 7})
        })
        .collect();
    app.events(json!(events)).await;
    for (kind, id, body) in [
        ("agents", "a1", json!({"name": "Ada", "team_id": "t1"})),
        ("agents", "a2", json!({"name": "Bo", "team_id": "t2"})),
        ("teams", "t1", json!({"name": "North"})),
    ] {
        let (status, body) = app
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/{kind}/{id}"),
                &app.key,
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app
}

fn host_port(app: &TestApp) -> (String, String) {
    let (h, p) = app.sql_addr.rsplit_once(':').unwrap();
    (h.to_string(), p.to_string())
}

fn psql_binary() -> String {
    let debian = "/usr/lib/postgresql/15/bin/psql";
    if std::path::Path::new(debian).exists() {
        debian.into()
    } else {
        "psql".into()
    }
}

/// Runs psql with unaligned, tuples-only output (`|` between fields).
async fn psql(app: &TestApp, key: &str, command: &str) -> String {
    let (host, port) = host_port(app);
    let out = tokio::process::Command::new(psql_binary())
        .args([
            "-X", "-A", "-t", "-F", "|", "-h", &host, "-p", &port, "-U", "acme", "-d", "acme", "-c", command,
        ])
        .env("PGPASSWORD", key)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .await
        .expect("psql runs (postgresql-client is installed by .ci/run)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql {command}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// `/query`'s answer with the admin key.
async fn query(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, answer) = app.post("/api/v1/query", key, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

fn march() -> Value {
    json!({"start": "2026-03-01", "end": "2026-04-01"})
}

/// `/query`'s rows as psql prints them: fields joined by `|`, numbers as PostgreSQL shows them.
fn as_psql(rows: &Value) -> String {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    n => n.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
                + "\n"
        })
        .collect()
}

#[tokio::test]
async fn psql_lists_describes_and_groups_with_the_numbers_of_query() {
    let app = seeded().await;
    let tables = psql(&app, &app.key, "\\dt").await;
    for t in [
        "call_metrics",
        "ticket_metrics",
        "pipeline_metrics",
        "calls",
        "agents",
        "teams",
        "campaigns",
    ] {
        assert!(
            tables.contains(&format!("public|{t}|table|")),
            "\\dt lists {t}:\n{tables}"
        );
    }
    let described = psql(&app, &app.key, "\\d call_metrics").await;
    for line in [
        "time|timestamp with time zone",
        "agent|text",
        "hour_of_day|bigint",
        "total_calls|bigint",
        "connect_rate|double precision",
        "median_talk_time|double precision",
    ] {
        assert!(described.contains(line), "\\d call_metrics has {line}:\n{described}");
    }
    assert!(
        !described.contains("revenue|"),
        "revenue is a pipeline measure:\n{described}"
    );

    let sql = format!(
        "SELECT agent, total_calls, connect_rate, median_talk_time FROM call_metrics WHERE {MARCH} GROUP BY agent ORDER BY agent"
    );
    let expected = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls", "connect_rate", "median_talk_time"], "dimensions": ["agent"], "range": march(),
            "order_by": [["agent", "asc"]]}),
    )
    .await;
    assert_eq!(psql(&app, &app.key, &sql).await, as_psql(&expected["rows"]));
    assert!(expected["rows"].as_array().unwrap().len() == 2);

    // Totals without GROUP BY, an additive measure under SUM, filters and a day granularity.
    let totals = psql(
        &app,
        &app.key,
        &format!("SELECT sum(total_calls), meetings_booked FROM call_metrics WHERE {MARCH}"),
    )
    .await;
    let t = &expected["totals"];
    let meetings = query(
        &app,
        &app.key,
        json!({"measures": ["meetings_booked"], "range": march()}),
    )
    .await;
    assert_eq!(
        totals,
        format!("{}|{}\n", t["total_calls"], meetings["totals"]["meetings_booked"])
    );
    let days = psql(
        &app,
        &app.key,
        &format!("SELECT date_trunc('day', time) AS day, total_calls FROM call_metrics WHERE {MARCH} AND team IN ('t1') GROUP BY 1 ORDER BY 1 LIMIT 2"),
    )
    .await;
    let by_day = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls"], "granularity": "day", "filters": {"team": ["t1"]}, "range": march(),
            "order_by": [["time", "asc"]], "limit": 2}),
    )
    .await;
    let first = &by_day["rows"][0];
    assert!(
        days.starts_with(&format!("2026-03-01 00:00:00-05|{}\n", first[1])),
        "{days} vs {first}"
    );
    assert_eq!(days.lines().count(), 2);

    // Drill-down and directory.
    let calls = psql(
        &app,
        &app.key,
        "SELECT call_id, agent_id, talk_seconds FROM calls WHERE agent_id = 'a2' LIMIT 3",
    )
    .await;
    assert_eq!(calls.lines().count(), 3, "{calls}");
    assert!(calls.lines().all(|l| l.contains("|a2|")), "{calls}");
    let agents = psql(&app, &app.key, "SELECT id, name FROM agents ORDER BY name DESC").await;
    assert_eq!(agents, "a2|Bo\na1|Ada\n");
}

#[tokio::test]
async fn what_rollups_cannot_answer_is_refused_with_a_reason() {
    let app = seeded().await;
    let (host, port) = host_port(&app);
    let key = app.key.clone();
    let errors = tokio::task::spawn_blocking(move || {
        let mut client = connect(&host, &port, "acme", &key).unwrap();
        [
            "SELECT avg(connect_rate) FROM call_metrics",
            "SELECT count(*) FROM call_metrics",
            "SELECT agent, total_calls FROM call_metrics WHERE time > '2026-03-01' GROUP BY agent",
            "SELECT c.agent FROM call_metrics c JOIN agents a ON a.id = c.agent",
            "SELECT * FROM call_metrics",
            "SELECT nope FROM call_metrics",
            "INSERT INTO agents (id, name) VALUES ('x', 'y')",
            "CREATE TABLE t (a int)",
            "DELETE FROM calls",
            "SET transaction_read_only = off",
        ]
        .map(|sql| {
            let e = client.simple_query(sql).expect_err(sql);
            let db = e.as_db_error().expect("a server error");
            (db.code().code().to_string(), db.message().to_string())
        })
    })
    .await
    .unwrap();
    let codes: Vec<&str> = errors.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        ["0A000", "0A000", "0A000", "0A000", "0A000", "42703", "25006", "25006", "25006", "25006"],
        "{errors:?}"
    );
    assert!(errors[0].1.contains("select the measure itself"), "{}", errors[0].1);
    assert!(errors[2].1.contains("time >= start AND time < end"), "{}", errors[2].1);
    assert!(errors[6].1.contains("read-only"), "{}", errors[6].1);
}

fn connect(host: &str, port: &str, user: &str, password: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host(host)
        .port(port.parse().unwrap())
        .user(user)
        .password(password)
        .dbname(user)
        .connect_timeout(std::time::Duration::from_secs(10))
        .connect(postgres::NoTls)
}

#[tokio::test]
async fn tenants_and_reach_hold_over_sql() {
    let app = seeded().await;
    let (_, globex_key) = app.other_tenant("globex", false).await;
    let (status, _) = app
        .post(
            "/api/v1/events",
            &globex_key,
            &json!([call("g1", "gc1", "Connected", "2026-03-03T10:00:00Z")]),
        )
        .await;
    assert_eq!(status, 200);
    let agent_key = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let ingest_only = add_key(&app.store, app.tenant_id, vec![Scope::Ingest], None).await;
    let (host, port) = host_port(&app);
    let admin = app.key.clone();
    let (refusals, agent_rows, agent_calls, forbidden, globex_total) = {
        let (agent_key, globex_key) = (agent_key.clone(), globex_key.clone());
        tokio::task::spawn_blocking(move || {
            let refused = |user: &str, password: &str| {
                let e = connect(&host, &port, user, password).err().expect("refused");
                e.as_db_error().map(|d| d.code().code().to_string()).unwrap_or_else(|| e.to_string())
            };
            let refusals = vec![
                refused("acme", &globex_key),
                refused("globex", &admin),
                refused("acme", "not-a-key"),
                refused("acme", &ingest_only),
            ];
            let mut agent = connect(&host, &port, "acme", &agent_key).unwrap();
            let rows: Vec<(String, i64)> = agent
                .query("SELECT team, total_calls FROM call_metrics WHERE time >= $1 AND time < $2 GROUP BY team ORDER BY team", &[&"2026-03-01", &"2026-04-01"])
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let calls: Vec<String> = agent
                .query("SELECT agent_id FROM calls", &[])
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let forbidden = agent
                .query("SELECT total_calls FROM call_metrics WHERE agent = 'a2'", &[])
                .unwrap_err()
                .as_db_error()
                .unwrap()
                .code()
                .code()
                .to_string();
            let mut globex = connect(&host, &port, "globex", &globex_key).unwrap();
            let total: i64 = globex.query_one("SELECT total_calls FROM call_metrics", &[]).unwrap().get(0);
            (refusals, rows, calls, forbidden, total)
        })
        .await
        .unwrap()
    };
    assert_eq!(refusals, ["28P01"; 4]);
    let expected = query(
        &app,
        &agent_key,
        json!({"measures": ["total_calls"], "dimensions": ["team"], "range": march(), "order_by": [["team", "asc"]]}),
    )
    .await;
    let expected: Vec<(String, i64)> = expected["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(agent_rows, expected);
    assert!(
        !agent_calls.is_empty() && agent_calls.iter().all(|a| a == "a1"),
        "{agent_calls:?}"
    );
    assert_eq!(forbidden, "42501");
    assert_eq!(globex_total, 1, "globex sees its one call, none of acme's");

    let metrics = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics"))
    };
    assert!(value("dialboard_sql_queries_total") >= 4);
    assert!(value("dialboard_sql_login_failures_total") >= 4);
    assert!(value("dialboard_sql_logins_total") >= 2);
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = seeded().await;
    let (host, port) = host_port(&app);
    let key = app.key.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut client = connect(&host, &port, "acme", &key).unwrap();
        client.simple_query("SELECT 1").unwrap();
        std::thread::sleep(sql_limits().idle_timeout + std::time::Duration::from_secs(1));
        client.simple_query("SELECT 1").map(|_| ())
    })
    .await
    .unwrap();
    assert!(outcome.is_err(), "the idle connection was closed");
}

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql")
}

/// The Python that has psycopg and SQLAlchemy: `DIALBOARD_SQL_PYTHON`, or a venv at the
/// repository's root (`.venv-sql`) that the test makes from PyPI when it is missing, as the
/// browser tests install their npm packages.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("DIALBOARD_SQL_PYTHON") {
        return p.into();
    }
    static MADE: std::sync::Once = std::sync::Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv-sql/bin/python");
    MADE.call_once(|| {
        let ready = || {
            std::process::Command::new(&venv)
                .args(["-c", "import psycopg, sqlalchemy"])
                .status()
                .is_ok_and(|s| s.success())
        };
        if ready() {
            return;
        }
        let run = |program: &std::path::Path, args: &[&str]| {
            let status = std::process::Command::new(program)
                .args(args)
                .current_dir(&root)
                .status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "{} {args:?} failed ({status:?}): python3-venv and PyPI are needed",
                program.display()
            );
        };
        run("python3".as_ref(), &["-m", "venv", ".venv-sql"]);
        run(&venv, &["-m", "pip", "install", "-q", "psycopg[binary]", "sqlalchemy"]);
    });
    venv
}

#[tokio::test]
async fn psycopg_and_the_sqlalchemy_inspector_read_the_same_numbers() {
    let app = seeded().await;
    let (host, port) = host_port(&app);
    let out = tokio::process::Command::new(python())
        .arg(client_dir().join("clients.py"))
        .args([&host, &port, "acme", &app.key])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_team = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls", "connect_rate"], "dimensions": ["team"], "filters": {"team": ["t1"]}, "range": march()}),
    )
    .await;
    assert_eq!(seen["psycopg"], by_team["rows"]);
    let by_day = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls"], "granularity": "day", "range": march(), "order_by": [["time", "asc"]], "limit": 3}),
    )
    .await;
    let days: Vec<Value> = by_day["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r[0].as_str().unwrap(), r[1]]))
        .collect();
    assert_eq!(seen["days"], json!(days));
    let tables: Vec<&str> = seen["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        tables,
        [
            "agents",
            "call_metrics",
            "calls",
            "campaigns",
            "conversations",
            "lead_stages",
            "pipeline_metrics",
            "teams",
            "ticket_metrics"
        ]
    );
    let columns = seen["columns"].as_array().unwrap();
    assert!(
        columns.contains(&json!(["time", "TIMESTAMP"])) || columns.iter().any(|c| c[0] == "time"),
        "{columns:?}"
    );
    assert!(columns.contains(&json!(["total_calls", "BIGINT"])), "{columns:?}");
    assert!(
        columns.contains(&json!(["connect_rate", "DOUBLE PRECISION"])),
        "{columns:?}"
    );
    let by_agent = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"preset": "all_time"}, "order_by": [["agent", "asc"]]}),
    )
    .await;
    assert_eq!(seen["sqlalchemy"], by_agent["rows"]);
}

/// Runs Check.java with the JDBC driver; `params` are appended to the connection URL.
async fn jdbc(host: &str, port: &str, key: &str, params: &[&str]) -> String {
    jdbc_run("Check.java", host, port, key, params).await
}

/// Runs another program of tests/sql with the JDBC driver.
async fn jdbc_program(program: &str, host: &str, port: &str, key: &str) -> String {
    jdbc_run(program, host, port, key, &[]).await
}

async fn jdbc_run(program: &str, host: &str, port: &str, key: &str, params: &[&str]) -> String {
    let jar = "/usr/share/java/postgresql.jar";
    assert!(
        std::path::Path::new(jar).exists(),
        "{jar} is missing: apt-get install libpostgresql-jdbc-java (as .ci/run does)"
    );
    let out = tokio::process::Command::new("java")
        .args(["-cp", jar])
        .arg(client_dir().join(program))
        .args([host, port, "acme", key])
        .args(params)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Check.java printed the tables and call_metrics' columns with their types.
fn assert_jdbc_catalog(stdout: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    for t in ["call_metrics", "calls", "agents", "pipeline_metrics"] {
        assert!(lines.contains(&format!("table {t}").as_str()), "{stdout}");
    }
    for c in [
        "column time timestamptz",
        "column agent text",
        "column total_calls int8",
        "column connect_rate float8",
    ] {
        assert!(lines.contains(&c), "{c} in:\n{stdout}");
    }
}

#[tokio::test]
async fn the_jdbc_driver_lists_tables_and_columns_and_runs_a_prepared_query() {
    let app = seeded().await;
    let (host, port) = host_port(&app);
    let stdout = jdbc(&host, &port, &app.key, &[]).await;
    let expected = query(
        &app,
        &app.key,
        json!({"measures": ["total_calls"], "dimensions": ["agent"], "filters": {"agent": ["a1"]}, "range": march()}),
    )
    .await;
    assert_jdbc_catalog(&stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("row ")).collect::<Vec<_>>(),
        [format!("row a1 {}", expected["rows"][0][1])]
    );
}

/// A key made the way keys were before SCRAM verifiers: in the store, without one.
async fn key_without_verifier(store: &std::sync::Arc<dyn dialboard_store::Store>, tenant_id: i64) -> String {
    let secret = dialboard::access::generate_secret("dbk");
    let key = dialboard_store::ApiKey {
        tenant_id,
        scopes: vec![Scope::Read],
        agent_id: None,
        team_id: None,
        name: Some("from before SCRAM".into()),
        rate_limits: None,
    };
    store
        .create_key(dialboard::access::hash_secret(&secret), key)
        .await
        .unwrap();
    secret
}

#[tokio::test]
async fn a_key_without_a_verifier_is_not_sent_in_clear_text_without_tls() {
    let app = seeded().await;
    let legacy = app
        .store
        .create_tenant("legacy", dialboard_store::TenantSettings::new("UTC"))
        .await
        .unwrap();
    let old_key = key_without_verifier(&app.store, legacy.id).await;
    let (host, port) = host_port(&app);
    let error = tokio::task::spawn_blocking(move || connect(&host, &port, "legacy", &old_key).err().unwrap())
        .await
        .unwrap();
    let db = error.as_db_error().expect("a PostgreSQL error");
    assert_eq!(db.code().code(), "28000");
    assert!(db.message().contains("sslmode=require"), "{}", db.message());
}

/// Makes a self-signed certificate for localhost; returns the certificate and key files.
fn self_signed(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "2", "-subj", "/CN=localhost"])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(status.success());
    (cert, key)
}

/// The real binary with `--sql-tls-cert`: psql with sslmode=require, psycopg proving the
/// method (SCRAM with and without TLS; a key without a verifier in clear text only over TLS,
/// after which it uses SCRAM too) and the JDBC driver over TLS with SCRAM.
#[tokio::test]
async fn tls_and_scram_with_psql_psycopg_and_jdbc() {
    use super::process::{free_port, last_line, wait_ready};
    const BIN: &str = env!("CARGO_BIN_EXE_dialboard");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key_file) = self_signed(dir.path());
    let path = dir.path().join("d.db");
    let db = format!("sqlite://{}", path.display());
    let created = std::process::Command::new(BIN)
        .args(["tenant", "create", "acme", "--database", &db])
        .output()
        .unwrap();
    let new_key = last_line(&created);
    let old_key = {
        let store: std::sync::Arc<dyn dialboard_store::Store> = std::sync::Arc::new(
            dialboard_store::sqlite::SqliteStore::open(&path, dialboard_store::sqlite::Options::default()).unwrap(),
        );
        let tenant = store.tenant_by_name("acme").await.unwrap().unwrap();
        key_without_verifier(&store, tenant.id).await
    };
    let (http, sql) = (free_port(), free_port());
    let mut server = std::process::Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{http}"), "--database", &db])
        .args(["--sql-listen", &format!("127.0.0.1:{sql}")])
        .arg("--sql-tls-cert")
        .arg(&cert)
        .arg("--sql-tls-key")
        .arg(&key_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&format!("http://127.0.0.1:{http}")).await;
    let port = sql.to_string();
    let psql = tokio::process::Command::new(psql_binary())
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "acme",
            "-d",
            "acme",
        ])
        .args(["-c", "SELECT total_calls FROM call_metrics"])
        .env("PGPASSWORD", &new_key)
        .env("PGSSLMODE", "require")
        .output()
        .await
        .unwrap();
    let logins = tokio::process::Command::new(python())
        .arg(client_dir().join("tls.py"))
        .args(["127.0.0.1", &port, "acme", &new_key, &old_key])
        .output()
        .await
        .unwrap();
    let java = jdbc(
        "127.0.0.1",
        &port,
        &new_key,
        &["ssl=true&sslmode=require&sslfactory=org.postgresql.ssl.NonValidatingFactory"],
    )
    .await;
    let _ = server.kill();
    let _ = server.wait();
    assert!(psql.status.success(), "{}", String::from_utf8_lossy(&psql.stderr));
    assert_eq!(String::from_utf8_lossy(&psql.stdout), "0\n");
    assert!(logins.status.success(), "{}", String::from_utf8_lossy(&logins.stderr));
    let seen: Value = serde_json::from_slice(&logins.stdout).unwrap();
    assert_eq!(seen["new_tls_scram"], json!({"total": 0, "tls": true}), "{seen}");
    assert_eq!(seen["new_plain_scram"], json!({"total": 0, "tls": false}), "{seen}");
    let before = seen["old_plain_before"]["error"].as_str().unwrap_or_default();
    assert!(
        before.to_lowercase().contains("password authentication failed"),
        "{seen}"
    );
    assert_eq!(seen["old_tls_cleartext"], json!({"total": 0, "tls": true}), "{seen}");
    assert_eq!(seen["old_plain_after"], json!({"total": 0, "tls": false}), "{seen}");
    assert_eq!(seen["pinned"], true, "psycopg's libpq proves the method (16+)");
    assert_jdbc_catalog(&java);
}

/// `dialboard serve --sql-listen` (the real binary) answers psql with the key `tenant create`
/// printed.
#[tokio::test]
async fn the_binary_serves_sql_with_sql_listen() {
    use super::process::{free_port, last_line, wait_ready};
    const BIN: &str = env!("CARGO_BIN_EXE_dialboard");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let created = std::process::Command::new(BIN)
        .args(["tenant", "create", "acme", "--database", &db])
        .output()
        .unwrap();
    let key = last_line(&created);
    let (http, sql) = (free_port(), free_port());
    let mut server = std::process::Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{http}"), "--database", &db])
        .args(["--sql-listen", &format!("127.0.0.1:{sql}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&format!("http://127.0.0.1:{http}")).await;
    let out = tokio::process::Command::new(psql_binary())
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-p",
            &sql.to_string(),
            "-U",
            "acme",
            "-d",
            "acme",
        ])
        .args(["-c", "SELECT total_calls FROM call_metrics"])
        .env("PGPASSWORD", &key)
        .output()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
}

/// A query that never ends on its own: it runs on the shared catalog.
const RUNAWAY: &str = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";

/// Another SQL endpoint over the app's store, with these limits.
async fn sql_server(app: &TestApp, limits: dialboard::sql::SqlLimits) -> (String, String) {
    let config = dialboard::sql::SqlConfig {
        limits,
        ..Default::default()
    };
    sql_server_with(app, config).await
}

async fn sql_server_with(app: &TestApp, config: dialboard::sql::SqlConfig) -> (String, String) {
    let state = dialboard::api::AppState::with_live_queue(app.store.clone(), dialboard::live::QUEUE_CAPACITY);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let serving = dialboard::sql::serve(state, listener, config, std::future::pending());
    tokio::spawn(async move { serving.await.unwrap() });
    ("127.0.0.1".into(), port)
}

/// Whether another client's catalog query answers within 10 s.
fn catalog_answers(host: &str, port: &str, key: &str) -> bool {
    let (tx, rx) = std::sync::mpsc::channel();
    let (host, port, key) = (host.to_string(), port.to_string(), key.to_string());
    std::thread::spawn(move || {
        let mut client = connect(&host, &port, "acme", &key).unwrap();
        let _ = tx.send(client.simple_query("SELECT count(*) FROM pg_catalog.pg_class").is_ok());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap_or(false)
}

#[tokio::test]
async fn the_statement_timeout_stops_a_runaway_query_and_frees_the_catalog() {
    let app = seeded().await;
    let limits = dialboard::sql::SqlLimits {
        statement_timeout: std::time::Duration::from_secs(1),
        ..sql_limits()
    };
    let (host, port) = sql_server(&app, limits).await;
    let key = app.key.clone();
    let (code, elapsed, next) = tokio::task::spawn_blocking(move || {
        let mut client = connect(&host, &port, "acme", &key).unwrap();
        let started = std::time::Instant::now();
        let error = client.simple_query(RUNAWAY).unwrap_err();
        let code = error.as_db_error().map(|d| d.code().code().to_string());
        (code, started.elapsed(), catalog_answers(&host, &port, &key))
    })
    .await
    .unwrap();
    assert_eq!(code.as_deref(), Some("57014"));
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    assert!(next, "the runaway query was stopped, not left holding the catalog");
}

#[tokio::test]
async fn psycopgs_cancel_stops_a_running_query() {
    let app = seeded().await;
    let (host, port) = host_port(&app);
    let out = tokio::process::Command::new(python())
        .arg(client_dir().join("cancel.py"))
        .args([&host, &port, "acme", &app.key])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["cancel"], "57014", "{seen}");
    assert!(seen["cancel_seconds"].as_f64().unwrap() < 10.0, "{seen}");
    assert!(seen["next_seconds"].as_f64().is_some_and(|s| s < 5.0), "{seen}");
}

#[tokio::test]
async fn a_connection_past_the_cap_is_refused_with_53300() {
    let app = seeded().await;
    let limits = dialboard::sql::SqlLimits {
        max_connections: 2,
        ..sql_limits()
    };
    let (host, port) = sql_server(&app, limits).await;
    let key = app.key.clone();
    let (refused, again) = tokio::task::spawn_blocking(move || {
        let first = connect(&host, &port, "acme", &key).unwrap();
        let _second = connect(&host, &port, "acme", &key).unwrap();
        let error = connect(&host, &port, "acme", &key).err().expect("the third is refused");
        let refused = error
            .as_db_error()
            .map(|d| (d.code().code().to_string(), d.message().to_string()));
        drop(first);
        // Once a connection closes, its place is free again.
        let again = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            connect(&host, &port, "acme", &key).is_ok()
        });
        (refused, again)
    })
    .await
    .unwrap();
    assert_eq!(
        refused,
        Some(("53300".into(), "sorry, too many clients already".into()))
    );
    assert!(again);
}

/// `--sql-allow-cleartext`: a key without a verifier logs in without TLS, and gets one.
#[tokio::test]
async fn allow_cleartext_lets_an_old_key_in_without_tls_and_gives_it_a_verifier() {
    let app = seeded().await;
    let legacy = app
        .store
        .create_tenant("legacy", dialboard_store::TenantSettings::new("UTC"))
        .await
        .unwrap();
    let old_key = key_without_verifier(&app.store, legacy.id).await;
    let config = dialboard::sql::SqlConfig {
        limits: sql_limits(),
        allow_cleartext: true,
        ..Default::default()
    };
    let (host, port) = sql_server_with(&app, config).await;
    let key = old_key.clone();
    let total: i64 = tokio::task::spawn_blocking(move || {
        let mut client = connect(&host, &port, "legacy", &key).unwrap();
        client
            .query_one("SELECT total_calls FROM call_metrics", &[])
            .unwrap()
            .get(0)
    })
    .await
    .unwrap();
    assert_eq!(total, 0);
    let verifiers = app.store.key_verifiers(legacy.id).await.unwrap();
    assert_eq!(verifiers.len(), 1);
    assert_eq!(
        verifiers[0].1.as_deref(),
        Some(dialboard::sql::scram::verifier(&old_key, legacy.id).as_str())
    );
}

/// Conversations (v1 replaced by a later version) and stage changes in early March for a1
/// (team t1) and a2 (team t2); v3 has no team (its agent's, t1, in the directory).
fn drill_events() -> Value {
    json!([
        {"id": "ev1", "type": "conversation", "conversation_id": "v1", "channel": "chat", "opened_at": "2026-03-02T14:30:00Z",
            "agent_id": "a1", "team_id": "t1", "intent": "billing", "status": "open", "updated_at": "2026-03-02T14:31:00Z"},
        {"id": "ev1b", "type": "conversation", "conversation_id": "v1", "channel": "email", "opened_at": "2026-03-02T14:30:00Z",
            "agent_id": "a1", "team_id": "t1", "intent": "billing", "status": "resolved",
            "first_response_at": "2026-03-02T15:00:00Z", "resolved_at": "2026-03-02T16:00:00Z", "updated_at": "2026-03-02T16:00:00Z"},
        {"id": "ev2", "type": "conversation", "conversation_id": "v2", "channel": "chat", "opened_at": "2026-03-03T16:00:00Z",
            "agent_id": "a2", "team_id": "t2", "intent": "demo", "status": "open"},
        {"id": "ev3", "type": "conversation", "conversation_id": "v3", "channel": "whatsapp", "opened_at": "2026-03-04T10:00:00Z",
            "agent_id": "a1", "intent": "demo", "status": "open"},
        {"id": "s1", "type": "lead_stage", "contact_id": "p1", "stage": "meeting_booked", "at": "2026-03-02T15:00:00Z",
            "campaign_id": "k1", "lead_source": "web", "agent_id": "a1"},
        {"id": "s2", "type": "lead_stage", "contact_id": "p1", "stage": "closed_won", "at": "2026-03-05T18:00:00Z",
            "campaign_id": "k1", "lead_source": "web", "agent_id": "a1", "amount": 1234.5, "currency": "USD"},
        {"id": "s3", "type": "lead_stage", "contact_id": "p2", "stage": "proposal_sent", "at": "2026-03-04T13:00:00Z",
            "campaign_id": "k2", "lead_source": "ads", "agent_id": "a2", "amount": 99.99, "currency": "USD"},
        {"id": "s4", "type": "lead_stage", "contact_id": "p3", "stage": "closed_won", "at": "2026-03-06T12:00:00Z",
            "campaign_id": "k2", "lead_source": "ads", "agent_id": "a2", "amount": 500.25, "currency": "EUR"},
    ])
}

#[tokio::test]
async fn conversations_and_lead_stages_are_drill_downs_for_psql_and_jdbc() {
    let app = seeded().await;
    app.events(drill_events()).await;
    let tables = psql(&app, &app.key, "\\dt").await;
    for t in ["conversations", "lead_stages"] {
        assert!(
            tables.contains(&format!("public|{t}|table|")),
            "\\dt lists {t}:\n{tables}"
        );
    }
    let described = psql(&app, &app.key, "\\d conversations").await;
    for line in [
        "conversation_id|text",
        "opened_at|timestamp with time zone",
        "resolved_at|timestamp with time zone",
    ] {
        assert!(described.contains(line), "\\d conversations has {line}:\n{described}");
    }
    let described = psql(&app, &app.key, "\\d lead_stages").await;
    for line in ["stage|text", "at|timestamp with time zone", "amount|double precision"] {
        assert!(described.contains(line), "\\d lead_stages has {line}:\n{described}");
    }

    // Every conversation of March, newest first, in its latest version; times in New York.
    let all = psql(
        &app,
        &app.key,
        "SELECT conversation_id, channel, opened_at, agent_id, team_id, status, intent, resolved_at FROM conversations \
         WHERE opened_at >= '2026-03-01' AND opened_at < '2026-04-01'",
    )
    .await;
    assert_eq!(
        all,
        "v3|whatsapp|2026-03-04 05:00:00-05|a1||open|demo|\n\
         v2|chat|2026-03-03 11:00:00-05|a2|t2|open|demo|\n\
         v1|email|2026-03-02 09:30:00-05|a1|t1|resolved|billing|2026-03-02 11:00:00-05\n"
    );
    // The team filters as /query's does: a ticket without a team is its agent's.
    let team = psql(
        &app,
        &app.key,
        "SELECT conversation_id FROM conversations WHERE team_id = 't1'",
    )
    .await;
    assert_eq!(team, "v3\nv1\n");
    let filtered = psql(
        &app,
        &app.key,
        "SELECT conversation_id FROM conversations WHERE channel IN ('chat', 'email') AND intent = 'demo'",
    )
    .await;
    assert_eq!(filtered, "v2\n");

    let stages = psql(
        &app,
        &app.key,
        "SELECT event_id, contact_id, stage, at, campaign_id, agent_id, amount, currency FROM lead_stages \
         WHERE stage IN ('closed_won', 'proposal_sent') AND at >= '2026-03-01' AND at < '2026-04-01' ORDER BY at DESC",
    )
    .await;
    assert_eq!(
        stages,
        "s4|p3|closed_won|2026-03-06 07:00:00-05|k2|a2|500.25|EUR\n\
         s2|p1|closed_won|2026-03-05 13:00:00-05|k1|a1|1234.5|USD\n\
         s3|p2|proposal_sent|2026-03-04 08:00:00-05|k2|a2|99.99|USD\n"
    );
    let paged = psql(&app, &app.key, "SELECT event_id FROM lead_stages LIMIT 2 OFFSET 1").await;
    assert_eq!(paged, "s2\ns3\n");

    let (host, port) = host_port(&app);
    let stdout = jdbc_program("Drills.java", &host, &port, &app.key).await;
    let lines: Vec<&str> = stdout.lines().collect();
    for c in [
        "column conversations conversation_id text",
        "column conversations opened_at timestamptz",
        "column lead_stages at timestamptz",
        "column lead_stages amount float8",
    ] {
        assert!(lines.contains(&c), "{c} in:\n{stdout}");
    }
    let rows: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("conversation ") || l.starts_with("stage "))
        .collect();
    assert_eq!(
        rows,
        [
            "conversation v3 whatsapp 2026-03-04T10:00:00Z",
            "conversation v1 email 2026-03-02T14:30:00Z",
            "stage s4 p3 500.25 2026-03-06T12:00:00Z",
        ]
    );
}

#[tokio::test]
async fn conversations_and_lead_stages_keep_tenants_and_reach() {
    let app = seeded().await;
    app.events(drill_events()).await;
    let (_, globex_key) = app.other_tenant("globex", false).await;
    let (status, body) = app
        .post(
            "/api/v1/events",
            &globex_key,
            &json!([
                {"id": "g1", "type": "conversation", "conversation_id": "gv1", "channel": "sms",
                    "opened_at": "2026-03-03T10:00:00Z", "agent_id": "a1"},
                {"id": "g2", "type": "lead_stage", "contact_id": "gp1", "stage": "closed_won",
                    "at": "2026-03-03T10:00:00Z", "agent_id": "a1"},
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let agent_key = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let (host, port) = host_port(&app);
    let admin = app.key.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let ids = |client: &mut postgres::Client, sql: &str| -> Vec<String> {
            client.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
        };
        let code = |client: &mut postgres::Client, sql: &str| -> String {
            let e = client.query(sql, &[]).expect_err(sql);
            e.as_db_error().expect("a server error").code().code().to_string()
        };
        let mut admin = connect(&host, &port, "acme", &admin).unwrap();
        let mut agent = connect(&host, &port, "acme", &agent_key).unwrap();
        let mut globex = connect(&host, &port, "globex", &globex_key).unwrap();
        let columns: Vec<(String, String)> = admin
            .query(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'lead_stages' \
                 ORDER BY ordinal_position",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        json!({
            "admin": [ids(&mut admin, "SELECT conversation_id FROM conversations"), ids(&mut admin, "SELECT event_id FROM lead_stages")],
            "agent": [ids(&mut agent, "SELECT conversation_id FROM conversations"), ids(&mut agent, "SELECT event_id FROM lead_stages")],
            "globex": [ids(&mut globex, "SELECT conversation_id FROM conversations"), ids(&mut globex, "SELECT event_id FROM lead_stages")],
            "codes": [
                code(&mut agent, "SELECT event_id FROM lead_stages WHERE agent_id = 'a2'"),
                code(&mut agent, "SELECT conversation_id FROM conversations WHERE agent_id IN ('a1', 'a2')"),
                code(&mut admin, "SELECT conversation_id FROM conversations ORDER BY opened_at"),
                code(&mut admin, "SELECT conversation_id FROM conversations LIMIT 10001"),
                code(&mut admin, "SELECT channel, count(*) FROM conversations GROUP BY channel"),
                code(&mut admin, "SELECT event_id FROM lead_stages WHERE amount = 5"),
            ],
            "columns": columns,
        })
    })
    .await
    .unwrap();
    assert_eq!(seen["admin"], json!([["v3", "v2", "v1"], ["s4", "s2", "s3", "s1"]]));
    assert_eq!(seen["agent"], json!([["v3", "v1"], ["s2", "s1"]]));
    assert_eq!(seen["globex"], json!([["gv1"], ["g2"]]));
    assert_eq!(
        seen["codes"],
        json!(["42501", "42501", "0A000", "22023", "0A000", "0A000"])
    );
    let columns = seen["columns"].as_array().unwrap();
    assert_eq!(columns[3], json!(["at", "timestamp with time zone"]), "{columns:?}");
    assert_eq!(columns[8], json!(["amount", "double precision"]), "{columns:?}");
}
