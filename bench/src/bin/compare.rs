//! `cargo run --release -p dialboard-bench --bin compare -- [--calls N] [--repeat N]`
//!
//! One run, the same generated calls, three systems:
//! 1. dialboard on SQLite (the release `dialboard serve`, HTTP);
//! 2. dialboard on PostgreSQL (the same binary on a throwaway, durable cluster, HTTP);
//! 3. the seeds' design on the same cluster: a raw `calls` table, written by multi-row INSERTs
//!    of 1,000 straight from this process (no HTTP, no validation: generous to it), and the
//!    seed's `call_metrics_hourly` materialized view, refreshed concurrently.
//!
//! Reported: ingest rate; freshness (a new call accepted → visible to a dashboard query); and
//! the dashboard questions' latency — on dialboard, on the view, and as plain GROUP BYs over
//! the raw table (PostgreSQL's own PERCENTILE_CONT for medians).

use anyhow::{bail, Context};
use dialboard_bench::{
    dashboard_queries, ingest, measure_dialboard, percentile, settle, shaped_batches, start_server_on, Args, Latency,
    Shape, T0,
};
use dialboard_store::pg::cluster::Cluster;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The generated calls, a million at a time (the same seeds for every system).
fn chunks(calls: usize, shape: Shape) -> impl Iterator<Item = Vec<Vec<u8>>> {
    (0..calls)
        .step_by(1_000_000)
        .map(move |from| shaped_batches(from, (from + 1_000_000).min(calls), calls, from as u64, &shape))
}

struct Measured {
    ingest_per_s: f64,
    freshness_ms: f64,
    queries: Vec<Latency>,
}

/// A call started at the end of the data, with a fresh id.
fn probe_call(n: usize) -> Value {
    let at = jiff::Timestamp::from_second(T0 + 89 * 86_400 + 12 * 3600).expect("in range");
    json!([{"id": format!("probe{n}"), "type": "call", "call_id": format!("probe{n}"), "agent_id": "agent-001",
        "team_id": "team-1", "campaign_id": "campaign-1", "lead_source": "web", "direction": "outbound",
        "disposition": "Connected", "started_at": at.to_string(), "talk_seconds": 60}])
}

/// The last day's total in dialboard's answer.
async fn last_day_total(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<i64> {
    let q = json!({"measures": ["total_calls"], "range": {"start": "2026-08-29", "end": "2026-08-30"}});
    let r: Value = client
        .post(format!("{url}/api/v1/query"))
        .bearer_auth(key)
        .json(&q)
        .send()
        .await?
        .json()
        .await?;
    r["totals"]["total_calls"].as_i64().context("a total")
}

async fn dialboard(database: &str, args: &Args) -> anyhow::Result<Measured> {
    let mut server = start_server_on(database)?;
    let client = reqwest::Client::new();
    server.ready(&client).await?;
    let mut took = Duration::ZERO;
    for bodies in chunks(args.calls, args.shape) {
        took += ingest(&server, &client, bodies.into_iter().rev().collect(), args.clients).await?;
    }
    settle()?;
    // Freshness: from sending a call to a dashboard query that counts it.
    let mut fresh = Vec::new();
    for n in 0..20 {
        let before = last_day_total(&client, &server.url, &server.key).await?;
        let started = Instant::now();
        let body = probe_call(n).to_string();
        let r = client
            .post(format!("{}/api/v1/events", server.url))
            .bearer_auth(&server.key)
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("probe answered {}", r.status());
        }
        while last_day_total(&client, &server.url, &server.key).await? == before {}
        fresh.push(started.elapsed());
    }
    let mut queries = Vec::new();
    for (_, body) in dashboard_queries() {
        let query = || {
            client
                .post(format!("{}/api/v1/query", server.url))
                .bearer_auth(&server.key)
                .json(&body)
        };
        queries.push(measure_dialboard(query, args.repeat).await?);
    }
    Ok(Measured {
        ingest_per_s: args.calls as f64 / took.as_secs_f64(),
        freshness_ms: percentile(fresh, 0.5),
        queries,
    })
}

const SEED_SCHEMA: &str = r#"
CREATE TABLE calls (
    tenant_id BIGINT NOT NULL,
    call_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    team_id TEXT,
    campaign_id TEXT,
    disposition TEXT NOT NULL,
    disposition_category TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    talk_duration_seconds INT,
    wait_time_seconds INT,
    wrapup_duration_seconds INT,
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX calls_by_time ON calls (tenant_id, started_at);
"#;

/// The seed's view (000_…txt), without its `now() - 90 days` window: the data is older than that.
const SEED_VIEW: &str = r#"
CREATE MATERIALIZED VIEW call_metrics_hourly AS
SELECT tenant_id, date_trunc('hour', started_at) AS hour, campaign_id, agent_id,
  COUNT(*) AS total_calls,
  COUNT(*) FILTER (WHERE disposition_category = 'connected') AS connected_calls,
  COUNT(*) FILTER (WHERE disposition = 'Meeting Booked') AS meetings_booked,
  COUNT(*) FILTER (WHERE disposition = 'Voicemail') AS voicemails,
  COUNT(*) FILTER (WHERE disposition_category = 'no_contact') AS no_contacts,
  COUNT(*) FILTER (WHERE disposition_category = 'invalid') AS invalid_numbers,
  AVG(talk_duration_seconds) FILTER (WHERE disposition_category = 'connected') AS avg_talk_time,
  PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY talk_duration_seconds)
    FILTER (WHERE disposition_category = 'connected') AS median_talk_time,
  SUM(talk_duration_seconds) AS total_talk_time,
  AVG(wait_time_seconds) FILTER (WHERE disposition_category = 'connected') AS avg_wait_time,
  AVG(wrapup_duration_seconds) AS avg_wrapup_time
FROM calls
GROUP BY tenant_id, hour, campaign_id, agent_id;
CREATE UNIQUE INDEX idx_metrics_hourly ON call_metrics_hourly (tenant_id, hour, campaign_id, agent_id);
"#;

fn category(disposition: &str) -> &'static str {
    match disposition {
        "Connected" | "Meeting Booked" | "Interested" | "Not Interested" => "connected",
        "No Answer" | "Busy" | "Voicemail" | "Disconnected" => "no_contact",
        "Wrong Number" | "Bad Number" | "DNC" => "invalid",
        _ => "system",
    }
}

/// Inserts one batch's calls with one multi-row INSERT (stage events are not the view's).
fn insert_batch(client: &mut postgres::Client, body: &[u8]) -> anyhow::Result<()> {
    let events: Vec<Value> = serde_json::from_slice(body)?;
    let calls: Vec<&Value> = events.iter().filter(|e| e["type"] == "call").collect();
    let text = |k: &str| -> Vec<Option<String>> { calls.iter().map(|c| c[k].as_str().map(String::from)).collect() };
    let int = |k: &str| -> Vec<Option<i32>> { calls.iter().map(|c| c[k].as_i64().map(|v| v as i32)).collect() };
    let dispositions = text("disposition");
    let categories: Vec<&str> = dispositions
        .iter()
        .map(|d| category(d.as_deref().unwrap_or("")))
        .collect();
    client.execute(
        "INSERT INTO calls SELECT 1, * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[]::timestamptz[], $8::int[], $9::int[], $10::int[])",
        &[
            &text("call_id"),
            &text("agent_id"),
            &text("team_id"),
            &text("campaign_id"),
            &dispositions,
            &categories,
            &text("started_at"),
            &int("talk_seconds"),
            &int("wait_seconds"),
            &int("wrap_seconds"),
        ],
    )?;
    Ok(())
}

/// The dashboard questions on the view and as GROUP BYs over the raw rows (New York days).
/// The view has no team: the leaderboard filters by team-3's agents. Its medians are per hour
/// and agent: a day's median can only be approximated from them (here: their average).
fn seed_queries() -> Vec<(String, String)> {
    let ny = "AT TIME ZONE 'America/New_York'";
    let team3 = "(SELECT format('agent-%s', lpad(n::text, 3, '0')) FROM generate_series(3, 199, 10) n)";
    let connected = "disposition_category = 'connected'";
    let day = |d: &str| format!("'{d} 00:00'::timestamp AT TIME ZONE 'America/New_York'");
    vec![
        (
            format!("SELECT agent_id, sum(total_calls), sum(connected_calls), 100.0 * sum(connected_calls) / sum(total_calls), \
             sum(meetings_booked), sum(total_talk_time) FROM call_metrics_hourly WHERE tenant_id = 1 AND hour >= {} \
             AND hour < {} AND agent_id IN {team3} GROUP BY agent_id ORDER BY 5 DESC", day("2026-08-15"), day("2026-08-16")),
            format!("SELECT agent_id, count(*), count(*) FILTER (WHERE {connected}), 100.0 * count(*) FILTER (WHERE {connected}) / count(*), \
             count(*) FILTER (WHERE disposition = 'Meeting Booked'), sum(talk_duration_seconds) FROM calls WHERE tenant_id = 1 \
             AND team_id = 'team-3' AND started_at >= {} AND started_at < {} GROUP BY agent_id ORDER BY 5 DESC",
             day("2026-08-15"), day("2026-08-16")),
        ),
        (
            format!("SELECT date_trunc('day', hour {ny}) d, sum(total_calls), 100.0 * sum(connected_calls) / sum(total_calls), \
             avg(median_talk_time) FROM call_metrics_hourly WHERE tenant_id = 1 AND hour >= {} AND hour < {} GROUP BY d ORDER BY d",
             day("2026-06-01"), day("2026-08-30")),
            format!("SELECT date_trunc('day', started_at {ny}) d, count(*), 100.0 * count(*) FILTER (WHERE {connected}) / count(*), \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY talk_duration_seconds) FILTER (WHERE {connected}) FROM calls \
             WHERE tenant_id = 1 AND started_at >= {} AND started_at < {} GROUP BY d ORDER BY d", day("2026-06-01"), day("2026-08-30")),
        ),
        (
            format!("SELECT extract(dow FROM hour {ny}), extract(hour FROM hour {ny}), sum(total_calls), \
             100.0 * sum(connected_calls) / sum(total_calls) FROM call_metrics_hourly WHERE tenant_id = 1 AND hour >= {} \
             AND hour < {} GROUP BY 1, 2", day("2026-07-31"), day("2026-08-30")),
            format!("SELECT extract(dow FROM started_at {ny}), extract(hour FROM started_at {ny}), count(*), \
             100.0 * count(*) FILTER (WHERE {connected}) / count(*) FROM calls WHERE tenant_id = 1 AND started_at >= {} \
             AND started_at < {} GROUP BY 1, 2", day("2026-07-31"), day("2026-08-30")),
        ),
        (
            format!("SELECT hour >= {a}, sum(total_calls), 100.0 * sum(connected_calls) / sum(total_calls), sum(meetings_booked), \
             sum(avg_talk_time * connected_calls) / nullif(sum(connected_calls), 0), avg(median_talk_time) FROM call_metrics_hourly \
             WHERE tenant_id = 1 AND hour >= {y} AND hour < {b} GROUP BY 1",
             a = day("2026-08-29"), b = day("2026-08-30"), y = day("2026-08-28")),
            format!("SELECT started_at >= {a}, count(*), 100.0 * count(*) FILTER (WHERE {connected}) / count(*), \
             count(*) FILTER (WHERE disposition = 'Meeting Booked'), avg(talk_duration_seconds) FILTER (WHERE {connected}), \
             percentile_cont(0.5) WITHIN GROUP (ORDER BY talk_duration_seconds) FILTER (WHERE {connected}) FROM calls \
             WHERE tenant_id = 1 AND started_at >= {y} AND started_at < {b} GROUP BY 1",
             a = day("2026-08-29"), b = day("2026-08-30"), y = day("2026-08-28")),
        ),
    ]
}

fn measure_sql(client: &mut postgres::Client, sql: &str, repeat: usize) -> anyhow::Result<Latency> {
    let statement = client.prepare(sql)?;
    let mut samples = Vec::with_capacity(repeat);
    for run in 0..repeat + 2 {
        let started = Instant::now();
        std::hint::black_box(client.query(&statement, &[])?);
        if run >= 2 {
            samples.push(started.elapsed());
        }
    }
    Ok(Latency {
        p50: percentile(samples.clone(), 0.5),
        p99: percentile(samples, 0.99),
    })
}

struct SeedMeasured {
    ingest_per_s: f64,
    refresh_ms: f64,
    freshness_ms: f64,
    view: Vec<Latency>,
    raw: Vec<Latency>,
}

/// The seeds' design, measured from a thread of its own (the sync client runs its own runtime).
fn seed_design(url: &str, args: &Args) -> anyhow::Result<SeedMeasured> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(SEED_SCHEMA)?;
    let mut took = Duration::ZERO;
    for bodies in chunks(args.calls, args.shape) {
        let started = Instant::now();
        for body in &bodies {
            insert_batch(&mut client, body)?;
        }
        took += started.elapsed();
    }
    client.batch_execute(SEED_VIEW)?;
    client.batch_execute("VACUUM ANALYZE calls")?;
    client.batch_execute("ANALYZE call_metrics_hourly")?;
    settle()?;
    // Freshness: a call inserted, the view refreshed right away (the seed schedules it every
    // minute, which adds 30 s on average), and read back.
    let mut refresh = Vec::new();
    let mut fresh = Vec::new();
    for n in 0..5 {
        let started = Instant::now();
        client.execute(
            "INSERT INTO calls VALUES (1, $1, 'agent-001', 'team-1', 'campaign-1', 'Connected', 'connected', \
             '2026-08-29 16:00+00', 60, 0, 10)",
            &[&format!("probe{n}")],
        )?;
        let refreshing = Instant::now();
        client.batch_execute("REFRESH MATERIALIZED VIEW CONCURRENTLY call_metrics_hourly")?;
        refresh.push(refreshing.elapsed());
        client.query(
            "SELECT sum(total_calls) FROM call_metrics_hourly WHERE tenant_id = 1",
            &[],
        )?;
        fresh.push(started.elapsed());
    }
    let (mut view, mut raw) = (Vec::new(), Vec::new());
    for (on_view, on_raw) in seed_queries() {
        view.push(measure_sql(&mut client, &on_view, args.repeat)?);
        raw.push(measure_sql(&mut client, &on_raw, (args.repeat / 10).max(3))?);
    }
    Ok(SeedMeasured {
        ingest_per_s: args.calls as f64 / took.as_secs_f64(),
        refresh_ms: percentile(refresh, 0.5),
        freshness_ms: percentile(fresh, 0.5),
        view,
        raw,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(1_000_000, 100)?;
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(true)).await??;
    let sqlite_dir = std::env::temp_dir().join(format!("dialboard-compare-{}", std::process::id()));
    std::fs::create_dir_all(&sqlite_dir)?;
    eprintln!("dialboard on SQLite…");
    let sqlite = dialboard(&format!("sqlite://{}", sqlite_dir.join("bench.db").display()), &args).await?;
    let _ = std::fs::remove_dir_all(&sqlite_dir);
    eprintln!("  {:.0} calls/s", sqlite.ingest_per_s);
    eprintln!("dialboard on PostgreSQL…");
    let postgres = dialboard(&cluster.create_database()?, &args).await?;
    eprintln!("  {:.0} calls/s", postgres.ingest_per_s);
    eprintln!("the seeds' design on PostgreSQL…");
    let seed_url = cluster.create_database()?;
    let seed_args = args.clone();
    let seed = tokio::task::spawn_blocking(move || seed_design(&seed_url, &seed_args)).await??;
    println!(
        "# {} calls over 90 days, one run, 2-core machine (PostgreSQL 15, durable: fsync on)\n",
        args.calls
    );
    println!("| measure | dialboard SQLite | dialboard PostgreSQL | seeds' design (raw table + view) |");
    println!("|---|---|---|---|");
    println!(
        "| ingest, calls/s | {:.0} | {:.0} | {:.0} (direct INSERTs, no HTTP) |",
        sqlite.ingest_per_s, postgres.ingest_per_s, seed.ingest_per_s
    );
    println!(
        "| freshness: new call → in a dashboard query, p50 ms | {:.1} | {:.1} | {:.0} (refresh right away; the seed's schedule adds ~30,000) |",
        sqlite.freshness_ms, postgres.freshness_ms, seed.freshness_ms
    );
    println!(
        "| one concurrent refresh of the view, ms | – | – | {:.0} |",
        seed.refresh_ms
    );
    println!(
        "\nfreshness, view ÷ dialboard PostgreSQL: **{:.0}×** (without the schedule's wait)\n",
        seed.freshness_ms / postgres.freshness_ms
    );
    println!("| query, p50 / p99 ms | dialboard SQLite (HTTP) | dialboard PostgreSQL (HTTP) | view (SQL) | raw GROUP BY (SQL) | view ÷ dialboard PG | GROUP BY ÷ dialboard PG (p99) |");
    println!("|---|---|---|---|---|---|---|");
    for (i, (name, _)) in dashboard_queries().iter().enumerate() {
        let (s, p, v, r) = (&sqlite.queries[i], &postgres.queries[i], &seed.view[i], &seed.raw[i]);
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.1} / {:.1} | {:.1}× | {:.0}× |",
            s.p50,
            s.p99,
            p.p50,
            p.p99,
            v.p50,
            v.p99,
            r.p50,
            r.p99,
            v.p99 / p.p99,
            r.p99 / p.p99
        );
    }
    Ok(())
}
