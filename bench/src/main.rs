//! `cargo run --release -p dialboard-bench -- [--calls N] [--clients N] [--repeat N] [--agents N]
//! [--teams N] [--counting-ids] [--ingest-only [--postgres]]` (`--help` explains them)
//!
//! Starts the release `dialboard serve` on a fresh SQLite file, ingests generated calls over
//! HTTP in batches of 1,000 (each batch durable before its 200), and at 100k calls and at the
//! final size measures dashboard queries over HTTP — next to the same questions answered by a
//! plain GROUP BY over the raw `calls` rows of the same file (the peer of SPEC §10).

use dialboard_bench::{
    dashboard_queries, ingest, measure_dialboard, percentile, settle, shaped_batches, start_server, start_server_on,
    start_server_on_kept, Args, Latency, Server, BATCH, T0,
};
use dialboard_store::pg::cluster::Cluster;
use std::time::{Duration, Instant};

/// The same questions as plain GROUP BYs over the raw rows (a fixed −4 h offset: the peer does
/// not know time zones; medians from the sorted talk times, as PERCENTILE_CONT would).
fn peer_queries() -> Vec<(&'static str, String)> {
    let ns = |t: i64| t * 1_000_000_000;
    let day = |d: i64| ns(T0 + d * 86_400);
    let connected = "disposition IN ('Connected','Meeting Booked','Interested','Not Interested')";
    vec![
        ("day leaderboard", format!("SELECT agent_id, count(*), sum({connected}), 100.0 * sum({connected}) / count(*), \
            sum(disposition = 'Meeting Booked'), sum(talk_seconds) FROM calls WHERE tenant_id = 1 AND team_id = 'team-3' \
            AND started_ns >= {} AND started_ns < {} GROUP BY agent_id ORDER BY 5 DESC", day(75), day(76))),
        ("90-day daily trend with median", format!("SELECT d, count(*), 100.0 * sum(conn) / count(*), \
            group_concat(CASE WHEN conn THEN talk_seconds END) FROM (SELECT (started_ns / 1000000000 - 14400) / 86400 AS d, \
            {connected} AS conn, talk_seconds FROM calls WHERE tenant_id = 1 AND started_ns >= {} AND started_ns < {}) \
            GROUP BY d", day(0), day(90))),
        ("heatmap 30 days", format!("SELECT ((started_ns / 1000000000 - 14400) / 86400 + 4) % 7, \
            ((started_ns / 1000000000 - 14400) % 86400) / 3600, count(*), 100.0 * sum({connected}) / count(*) \
            FROM calls WHERE tenant_id = 1 AND started_ns >= {} AND started_ns < {} GROUP BY 1, 2", day(60), day(90))),
        ("today's KPIs vs yesterday", format!("SELECT count(*), 100.0 * sum({connected}) / count(*), \
            sum(disposition = 'Meeting Booked'), avg(CASE WHEN {connected} THEN talk_seconds END), \
            group_concat(CASE WHEN {connected} THEN talk_seconds END) FROM calls WHERE tenant_id = 1 \
            AND started_ns >= {a} AND started_ns < {b} UNION ALL SELECT count(*), 0, 0, 0, NULL FROM calls \
            WHERE tenant_id = 1 AND started_ns >= {y} AND started_ns < {a}", a = day(89), b = day(90), y = day(88))),
    ]
}

/// The analytics views of the dashboards, over the generated calls (dates inside their 90
/// days; views whose range is relative to now, trends and lead volume, read recent empty days).
const VIEWS: [(&str, &str); 20] = [
    ("KPIs (day)", "metrics?start=2026-08-29&end=2026-08-30"),
    ("call metrics (30 days)", "call-metrics?start=2026-07-31&end=2026-08-30"),
    ("dispositions (30 days)", "dispositions?start=2026-07-31&end=2026-08-30"),
    (
        "scorecard (week)",
        "agent-scorecard/agent-007?period=weekly&date=2026-08-12",
    ),
    ("team leaderboard (day)", "team-leaderboard/team-3?date=2026-08-15"),
    (
        "leaderboard, top 100 of every agent (30 days)",
        "leaderboard?start=2026-07-31&end=2026-08-30",
    ),
    (
        "leaderboard, every agent in full (30 days, limit=10000)",
        "leaderboard?start=2026-07-31&end=2026-08-30&limit=10000",
    ),
    ("heatmap (30 days)", "call-time-heatmap?start=2026-07-31&end=2026-08-30"),
    ("trends (last 30 days)", "trends/agent-007"),
    (
        "pipeline funnel (30 days)",
        "pipeline-funnel?group_by=campaign&start=2026-07-31&end=2026-08-30",
    ),
    ("lead sources (30 days)", "lead-sources?start=2026-07-31&end=2026-08-30"),
    (
        "conversion funnel (30 days)",
        "conversion-funnel?start=2026-07-31&end=2026-08-30",
    ),
    ("lead volume (30d)", "lead-volume?period=30d"),
    ("intents (30 days)", "intents?start=2026-07-31&end=2026-08-30"),
    ("channels (30 days)", "channels?start=2026-07-31&end=2026-08-30"),
    (
        "campaign (30 days)",
        "campaigns/campaign-1?start=2026-07-31&end=2026-08-30",
    ),
    ("coaching (team, week)", "coaching-opportunities/team-3?date=2026-08-15"),
    ("compliance (day)", "compliance?date=2026-08-15"),
    (
        "team leaderboard (30 days)",
        "team-leaderboard/team-3?start=2026-07-31&end=2026-08-30",
    ),
    (
        "leaderboard, top 100 of every agent (day)",
        "leaderboard?start=2026-08-15&end=2026-08-16",
    ),
];

/// Drill-downs (`GET /api/v1/calls`, a page of 100) over 30 days, by each filter, and all time.
const DRILLS: [(&str, &str); 9] = [
    ("no filter", "start=2026-07-31&end=2026-08-30"),
    ("agent", "start=2026-07-31&end=2026-08-30&agent=agent-007"),
    ("team", "start=2026-07-31&end=2026-08-30&team=team-3"),
    ("campaign", "start=2026-07-31&end=2026-08-30&campaign=campaign-1"),
    ("disposition (1%)", "start=2026-07-31&end=2026-08-30&disposition=DNC"),
    (
        "disposition category connected",
        "start=2026-07-31&end=2026-08-30&disposition_category=connected",
    ),
    (
        "disposition category invalid",
        "start=2026-07-31&end=2026-08-30&disposition_category=invalid",
    ),
    ("all time", "preset=all_time"),
    ("all time, agent", "preset=all_time&agent=agent-007"),
];

fn measure_peer(db: &std::path::Path, sql: &str, repeat: usize) -> anyhow::Result<Latency> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut samples = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let started = Instant::now();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            // Medians the peer must compute from the sorted list it fetched.
            for i in 0..row.as_ref().column_count() {
                if let Ok(Some(list)) = row.get::<_, Option<String>>(i) {
                    let mut v: Vec<i64> = list.split(',').filter_map(|x| x.parse().ok()).collect();
                    v.sort_unstable();
                    std::hint::black_box(v.get(v.len() / 2));
                }
            }
        }
        samples.push(started.elapsed());
    }
    Ok(Latency {
        p50: percentile(samples.clone(), 0.5),
        p99: percentile(samples, 0.99),
    })
}

/// Calls per timed slice of ingest.
const SLICE: usize = 100_000;

/// The rate of the first and the last slices of 100,000 calls, and of the slice after each
/// millionth call.
fn report_slices(slices: &[(usize, f64)]) {
    let (Some(first), Some(last)) = (slices.first(), slices.last()) else {
        return;
    };
    let marks: Vec<String> = slices
        .iter()
        .filter(|(n, _)| n % 1_000_000 == 0 || n == &first.0 || n == &last.0)
        .map(|(n, rate)| format!("{n}: {rate:.0}"))
        .collect();
    println!(
        "\ncalls/s of the 100k calls ending at …: {}\nthe last 100k ÷ the first 100k: {:.2}",
        marks.join(", "),
        last.1 / first.1
    );
}

/// The bytes of every file in `dir` (the database, its log and shared memory).
fn files_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// The size of the PostgreSQL database `url` names (tables, indexes, TOAST; not the WAL).
fn pg_database_bytes(url: &str) -> anyhow::Result<i64> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(client
        .query_one("SELECT pg_database_size(current_database())", &[])?
        .get(0))
}

/// The index by start the peer's design has (the seeds' schema), made once after the ingest:
/// dialboard lists its calls by start in its own runs and keeps no such index.
fn peer_index(db: &std::path::Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    conn.execute_batch("CREATE INDEX IF NOT EXISTS peer_calls_by_start ON calls (tenant_id, started_ns)")?;
    Ok(())
}

/// The calls stored in a kept database.
fn count_calls(db: &std::path::Path) -> anyhow::Result<usize> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn.query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))? as usize)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

async fn report_queries(
    server: &Server,
    client: &reqwest::Client,
    repeat: usize,
    calls: usize,
) -> anyhow::Result<Vec<(String, Latency)>> {
    // Let a checkpoint fold the ingest overlay, as in steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    peer_index(&server.db)?;
    println!("\n## queries at {calls} calls ({repeat} runs each; dialboard over HTTP, peer in-process SQL)\n");
    println!(
        "| query | dialboard p50 ms | dialboard p99 ms | GROUP BY p50 ms | GROUP BY p99 ms | peer ÷ dialboard (p99) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut latencies = Vec::new();
    for ((name, body), (_, sql)) in dashboard_queries().iter().zip(peer_queries()) {
        let query = || {
            client
                .post(format!("{}/api/v1/query", server.url))
                .bearer_auth(&server.key)
                .json(body)
        };
        let d = measure_dialboard(query, repeat).await?;
        let p = measure_peer(&server.db, &sql, (repeat / 50).max(3))?;
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0}× |",
            d.p50,
            d.p99,
            p.p50,
            p.p99,
            p.p99 / d.p99
        );
        latencies.push((name.to_string(), d));
    }
    println!("\n| view (GET /api/v1/analytics/…, several queries each) | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for (name, path) in VIEWS {
        let view = || {
            client
                .get(format!("{}/api/v1/analytics/{path}", server.url))
                .bearer_auth(&server.key)
        };
        let v = measure_dialboard(view, (repeat / 5).max(5)).await?;
        println!("| {name} | {:.2} | {:.2} |", v.p50, v.p99);
        latencies.push((name.to_string(), v));
    }
    println!("\n| drill-down (GET /api/v1/calls, 100 calls a page) | p50 ms | p99 ms | calls on the page |");
    println!("|---|---|---|---|");
    for (name, query) in DRILLS {
        let url = format!("{}/api/v1/calls?{query}", server.url);
        let drill = || client.get(&url).bearer_auth(&server.key);
        let d = measure_dialboard(drill, (repeat / 2).max(5)).await?;
        let page: serde_json::Value = drill().send().await?.json().await?;
        let shown = page["calls"].as_array().map_or(0, Vec::len);
        println!("| {name} | {:.2} | {:.2} | {shown} |", d.p50, d.p99);
        latencies.push((format!("drill-down: {name}"), d));
    }
    println!("\nserver resident memory: {:.0} MB", rss_mb(server.child.id()));
    Ok(latencies)
}

/// Ingests `calls` calls spanning the 90 days into a fresh server, then measures the queries.
async fn run_dataset(calls: usize, args: &Args) -> anyhow::Result<Vec<(String, Latency)>> {
    let dir = std::env::temp_dir().join(format!("dialboard-bench-{}-{calls}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // PostgreSQL: a durable throwaway cluster, stopped when `cluster` is dropped.
    let (cluster, pg_url) = if args.postgres {
        let cluster = tokio::task::spawn_blocking(|| Cluster::start(true)).await??;
        let url = cluster.create_database()?;
        (Some(cluster), Some(url))
    } else {
        (None, None)
    };
    let mut server = match &pg_url {
        Some(url) => start_server_on(url)?,
        None => start_server(&dir)?,
    };
    let client = reqwest::Client::new();
    server.ready(&client).await?;
    let mut ingested = 0;
    let mut ingest_time = Duration::ZERO;
    // The rate of each slice of 100,000 calls: the cost of the newest calls at that history.
    let mut slices: Vec<(usize, f64)> = Vec::new();
    // Generate a million calls at a time (not timed), then send them (timed).
    while ingested < calls {
        let next = (ingested + 1_000_000).min(calls);
        let mut bodies = shaped_batches(ingested, next, calls, ingested as u64, &args.shape);
        let mut sent = ingested;
        while !bodies.is_empty() {
            let rest = bodies.split_off(SLICE.div_ceil(BATCH).min(bodies.len()));
            let slice_calls = (bodies.len() * BATCH).min(next - sent);
            let took = ingest(&server, &client, bodies.into_iter().rev().collect(), args.clients).await?;
            ingest_time += took;
            sent += slice_calls;
            slices.push((sent, slice_calls as f64 / took.as_secs_f64()));
            eprintln!(
                "{sent} calls: {:.0} calls/s for the last 100k",
                slice_calls as f64 / took.as_secs_f64()
            );
            bodies = rest;
        }
        ingested = next;
        eprintln!(
            "ingested {ingested} calls: {:.0} calls/s so far",
            ingested as f64 / ingest_time.as_secs_f64()
        );
    }
    println!(
        "\n## ingest of {ingested} calls over HTTP, {} clients, batches of {BATCH}: {:.1} s = **{:.0} calls/s** (durable, rollups maintained)",
        args.clients,
        ingest_time.as_secs_f64(),
        ingested as f64 / ingest_time.as_secs_f64()
    );
    report_slices(&slices);
    // Let a checkpoint fold the overlay and the log be copied, then weigh the files.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let on_postgres = pg_url.is_some();
    if let Some(url) = pg_url {
        let bytes = tokio::task::spawn_blocking(move || pg_database_bytes(&url)).await??;
        println!(
            "\nPostgreSQL database after ingest: {:.0} MB = **{:.0} bytes a call**; server resident memory {:.0} MB",
            bytes as f64 / 1e6,
            bytes as f64 / ingested as f64,
            rss_mb(server.child.id())
        );
    } else {
        let bytes = std::fs::metadata(&server.db).map_or(0, |m| m.len());
        println!(
            "\ndatabase file after ingest: {:.0} MB = **{:.0} bytes a call** (with its log: {:.0} MB); server resident memory {:.0} MB",
            bytes as f64 / 1e6,
            bytes as f64 / ingested as f64,
            files_bytes(&dir) as f64 / 1e6,
            rss_mb(server.child.id())
        );
    }
    let keep = std::env::var_os("DIALBOARD_BENCH_KEEP").is_some();
    if args.ingest_only {
        drop(server);
        drop(cluster);
        // DIALBOARD_BENCH_KEEP=1 keeps the database, for `--queries-on` afterwards.
        if keep && !on_postgres {
            eprintln!("kept {}", dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Ok(Vec::new());
    }
    settle()?;
    let latencies = report_queries(&server, &client, args.repeat, ingested).await?;
    drop(server);
    // DIALBOARD_BENCH_KEEP=1 keeps the database, to look into it afterwards.
    if keep {
        eprintln!("kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(latencies)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(10_000_000, 200)?;
    if args.postgres && !args.ingest_only {
        anyhow::bail!("--postgres measures ingest only: add --ingest-only");
    }
    if let Some(db) = &args.queries_on {
        println!(
            "# dialboard benchmark (SQLite store): the queries on {}\n",
            db.display()
        );
        let mut server = start_server_on_kept(db)?;
        let client = reqwest::Client::new();
        server.ready(&client).await?;
        settle()?;
        report_queries(&server, &client, args.repeat, count_calls(db)?).await?;
        return Ok(());
    }
    println!(
        "# dialboard benchmark ({} store), datasets of 100000 and {} calls over 90 days, {} agents in {} teams, {} ids\n",
        if args.postgres { "PostgreSQL" } else { "SQLite" },
        args.calls,
        args.shape.agents,
        args.shape.teams,
        if args.shape.uuid_ids { "UUIDv4" } else { "counting" }
    );
    let small = 100_000.min(args.calls);
    let at_small = run_dataset(small, &args).await?;
    if args.calls > small {
        let at_large = run_dataset(args.calls, &args).await?;
        println!(
            "\n## history independence: latency at {} calls ÷ latency at {small}\n",
            args.calls
        );
        // Both: a p99 of 100 runs (20 for a view) is its one or two slowest samples.
        for ((name, small), (_, large)) in at_small.iter().zip(&at_large) {
            println!(
                "- {name}: p50 {:.2}×, p99 {:.2}×",
                large.p50 / small.p50,
                large.p99 / small.p99
            );
        }
    }
    Ok(())
}
