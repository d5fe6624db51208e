//! `cargo run --release -p dialboard-bench --bin sql -- [--calls 200000] [--repeat 200]`
//!
//! Issue 27: a rollup aggregation asked over the PostgreSQL protocol (`serve --sql-listen`, the
//! rust-postgres client, extended protocol) against the same question asked of `/query` over
//! HTTP (reqwest, keep-alive), on the release `dialboard serve` with `--calls` calls over 90
//! days. Both answers are checked equal; prints p50/p99 of each, one request at a time.

use anyhow::{ensure, Context};
use clap::Parser;
use dialboard_bench::{batches, ingest, percentile, settle, start_server_with};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about, long_about = None)]
struct Flags {
    /// Calls ingested before measuring
    #[arg(long, default_value_t = 200_000)]
    calls: usize,
    /// Times each question is asked
    #[arg(long, default_value_t = 200)]
    repeat: usize,
}

/// The questions, as SQL and as the `/query` body it translates to.
fn questions() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "by agent, 30 days",
            "SELECT agent, total_calls, connect_rate, median_talk_time FROM call_metrics WHERE time >= $1 AND time < $2 GROUP BY agent ORDER BY agent",
            json!({"measures": ["total_calls", "connect_rate", "median_talk_time"], "dimensions": ["agent"], "order_by": [["agent", "asc"]]}),
        ),
        (
            "by day and team, 30 days",
            "SELECT date_trunc('day', time), team, total_calls, meetings_booked FROM call_metrics WHERE time >= $1 AND time < $2 GROUP BY 1, 2 ORDER BY 1, 2",
            json!({"measures": ["total_calls", "meetings_booked"], "dimensions": ["team"], "granularity": "day", "order_by": [["time", "asc"], ["team", "asc"]]}),
        ),
    ]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sql_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = start_server_with(&db, &["--sql-listen", &format!("127.0.0.1:{sql_port}")])?;
    let client = reqwest::Client::new();
    server.ready(&client).await?;
    let took = ingest(&server, &client, batches(0, flags.calls, flags.calls, 7), 4).await?;
    settle()?;
    println!(
        "# {} calls ingested in {:.1} s; {} runs of each question\n",
        flags.calls,
        took.as_secs_f64(),
        flags.repeat
    );
    // The bench's calls run through 90 days from T0 (2026-06-01 in New York): ask for June.
    let (start, end) = ("2026-06-01".to_string(), "2026-07-01".to_string());
    let key = server.key.clone();
    let conn_string = format!("host=127.0.0.1 port={sql_port} user=bench password={key} dbname=bench");
    let mut pg = tokio::task::spawn_blocking(move || postgres::Client::connect(&conn_string, postgres::NoTls))
        .await?
        .context("connecting over SQL")?;
    println!("| question | SQL p50 ms | SQL p99 ms | /query p50 ms | /query p99 ms |\n|---|---|---|---|---|");
    for (name, sql, mut body) in questions() {
        body["range"] = json!({"start": start, "end": end});
        let mut http = Vec::with_capacity(flags.repeat);
        let mut answer = Value::Null;
        for _ in 0..flags.repeat {
            let started = Instant::now();
            let r = client
                .post(format!("{}/api/v1/query", server.url))
                .bearer_auth(&server.key)
                .json(&body)
                .send()
                .await?;
            ensure!(r.status().is_success(), "/query answered {}", r.status());
            answer = r.json().await?;
            http.push(started.elapsed());
        }
        let (s, e, repeat) = (start.clone(), end.clone(), flags.repeat);
        let (sql_samples, rows, client_back) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let statement = pg.prepare(sql)?;
            let mut samples: Vec<Duration> = Vec::with_capacity(repeat);
            let mut rows = Vec::new();
            for _ in 0..repeat {
                let started = Instant::now();
                rows = pg.query(&statement, &[&s, &e])?;
                samples.push(started.elapsed());
            }
            Ok((samples, rows.len(), pg))
        })
        .await??;
        pg = client_back;
        ensure!(
            rows == answer["rows"].as_array().map_or(0, Vec::len),
            "{name}: SQL returned {rows} rows, /query {}",
            answer["rows"]
        );
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
            percentile(sql_samples.clone(), 0.5),
            percentile(sql_samples, 0.99),
            percentile(http.clone(), 0.5),
            percentile(http, 0.99)
        );
    }
    // The blocking client closes its connection on a thread of its own (not in the runtime).
    tokio::task::spawn_blocking(move || drop(pg)).await?;
    Ok(())
}
