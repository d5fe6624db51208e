//! `cargo run --release -p dialboard-bench -- [--calls N] [--clients N] [--repeat N]`
//!
//! Starts the release `dialboard serve` on a fresh SQLite file, ingests generated calls over
//! HTTP in batches of 1,000 (each batch durable before its 200), and at 100k calls and at the
//! final size measures dashboard queries over HTTP — next to the same questions answered by a
//! plain GROUP BY over the raw `calls` rows of the same file (the peer of SPEC §10).

use anyhow::{bail, Context};
use dialboard_bench::{percentile, start_server, Server};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const BATCH: usize = 1_000;
/// 2026-06-01T04:00:00Z = midnight in New York; the data covers 90 days from there.
const T0: i64 = 1_780_286_400;
const DAYS: i64 = 90;
const AGENTS: usize = 200;
const TEAMS: usize = 10;
const DISPOSITIONS: [(&str, f64); 12] = [
    ("No Answer", 0.30),
    ("Voicemail", 0.22),
    ("Busy", 0.06),
    ("Disconnected", 0.03),
    ("Connected", 0.10),
    ("Interested", 0.07),
    ("Not Interested", 0.12),
    ("Meeting Booked", 0.04),
    ("Wrong Number", 0.025),
    ("DNC", 0.01),
    ("Call Error", 0.01),
    ("Dropped", 0.005),
];
const SOURCES: [&str; 6] = ["web", "webinar", "referral", "linkedin", "list", "event"];
const CONNECTED: [&str; 4] = ["Connected", "Meeting Booked", "Interested", "Not Interested"];

struct Args {
    calls: usize,
    clients: usize,
    repeat: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        calls: 10_000_000,
        clients: 4,
        repeat: 200,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().context("a value after each flag")?.parse()?;
        match flag.as_str() {
            "--calls" => a.calls = value,
            "--clients" => a.clients = value,
            "--repeat" => a.repeat = value,
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

/// Batches of calls whose start times run through the 90 days in order, as a dialer sends them.
/// Each call is to one of `total / 4` contacts; a booked meeting also sends the contact's
/// `meeting_booked` stage, and one in four of those a `closed_won` some days later (these
/// stage events ride in the same batches and are not counted as calls).
fn batches(from: usize, to: usize, total: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let talk = LogNormal::new(5.1, 0.8).expect("valid");
    let span = (DAYS * 86_400) as f64;
    (from..to)
        .step_by(BATCH)
        .map(|first| {
            let mut events: Vec<Value> = Vec::with_capacity(BATCH + BATCH / 16);
            for i in first..(first + BATCH).min(to) {
                // Working hours 08:00–18:00 local of each day, spread evenly over the range.
                let day = (i as f64 / total as f64 * span / 86_400.0) as i64;
                let started = T0 + day * 86_400 + 8 * 3600 + rng.random_range(0..10 * 3600);
                let mut r: f64 = rng.random();
                let disposition = DISPOSITIONS
                    .iter()
                    .find(|(_, p)| {
                        r -= p;
                        r < 0.0
                    })
                    .map_or("No Answer", |d| d.0);
                let agent_number = rng.random_range(0..AGENTS);
                let agent = format!("agent-{agent_number:03}");
                let connected = CONNECTED.contains(&disposition);
                let contact = format!("contact-{}", rng.random_range(0..(total / 4).max(1)));
                let campaign = format!("campaign-{}", rng.random_range(0..8));
                let source = SOURCES[rng.random_range(0..SOURCES.len())];
                let talk_seconds = if connected {
                    (talk.sample(&mut rng) as i64).min(7200)
                } else {
                    0
                };
                let at = |t: i64| jiff::Timestamp::from_second(t).expect("in range").to_string();
                events.push(
                    json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"),
                    "agent_id": agent, "team_id": format!("team-{}", agent_number % TEAMS), "contact_id": contact,
                    "campaign_id": campaign, "lead_source": source,
                    "direction": "outbound", "disposition": disposition,
                    "started_at": at(started), "talk_seconds": talk_seconds,
                    "wait_seconds": if connected { rng.random_range(0..8) } else { 0 },
                    "wrap_seconds": rng.random_range(5..120)}),
                );
                if disposition == "Meeting Booked" {
                    let stage = |id: String, stage: &str, t: i64| {
                        json!({"id": id, "type": "lead_stage",
                        "contact_id": contact, "stage": stage, "at": at(t), "agent_id": agent,
                        "campaign_id": campaign, "lead_source": source, "call_id": format!("c{i}")})
                    };
                    events.push(stage(format!("m{i}"), "meeting_booked", started + talk_seconds));
                    if rng.random_range(0..4) == 0 {
                        let mut won = stage(
                            format!("w{i}"),
                            "closed_won",
                            started + rng.random_range(3..20) * 86_400,
                        );
                        won["amount"] = json!(rng.random_range(500..20_000));
                        events.push(won);
                    }
                }
            }
            serde_json::to_vec(&events).expect("serializable")
        })
        .collect()
}

async fn ingest(
    server: &Server,
    client: &reqwest::Client,
    bodies: Vec<Vec<u8>>,
    clients: usize,
) -> anyhow::Result<Duration> {
    let queue = std::sync::Arc::new(std::sync::Mutex::new(bodies));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, client, url, key) = (queue.clone(), client.clone(), server.url.clone(), server.key.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = queue.lock().expect("queue").pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let r = client
                    .post(format!("{url}/api/v1/events"))
                    .bearer_auth(&key)
                    .body(body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("ingest answered {}", r.status());
                }
                let summary: Value = r.json().await?;
                if summary["rejected"].as_array().is_some_and(|r| !r.is_empty()) {
                    bail!("rejected events: {summary}");
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

fn dashboard_queries() -> Vec<(&'static str, Value)> {
    vec![
        (
            "day leaderboard",
            json!({"measures": ["total_calls", "connected_calls", "connect_rate", "meetings_booked", "total_talk_time"],
            "dimensions": ["agent"], "filters": {"team": ["team-3"]}, "range": {"start": "2026-08-15", "end": "2026-08-16"},
            "order_by": [["meetings_booked", "desc"]]}),
        ),
        (
            "90-day daily trend with median",
            json!({"measures": ["total_calls", "connect_rate", "median_talk_time"],
            "granularity": "day", "range": {"start": "2026-06-01", "end": "2026-08-30"}}),
        ),
        (
            "heatmap 30 days",
            json!({"measures": ["total_calls", "connect_rate"], "dimensions": ["day_of_week", "hour_of_day"],
            "range": {"start": "2026-07-31", "end": "2026-08-30"}}),
        ),
        (
            "today's KPIs vs yesterday",
            json!({"measures": ["total_calls", "connect_rate", "meetings_booked", "avg_talk_time", "median_talk_time"],
            "range": {"start": "2026-08-29", "end": "2026-08-30"}, "compare": "previous_period"}),
        ),
    ]
}

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

/// The analytics views of the dashboards, over the generated calls.
const VIEWS: [(&str, &str); 4] = [
    (
        "scorecard (week)",
        "agent-scorecard/agent-007?period=weekly&date=2026-08-12",
    ),
    ("team leaderboard (day)", "team-leaderboard/team-3?date=2026-08-15"),
    ("heatmap (30 days)", "call-time-heatmap?start=2026-07-31&end=2026-08-30"),
    (
        "pipeline funnel (30 days)",
        "pipeline-funnel?group_by=campaign&start=2026-07-31&end=2026-08-30",
    ),
];

struct Latency {
    p50: f64,
    p99: f64,
}

/// Runs not measured before each query's samples (warm caches, as on a dashboard in use).
const WARM_UP: usize = 10;

/// Latency of one request to the server, sent `repeat` times after the warm-up runs.
async fn measure_dialboard(request: impl Fn() -> reqwest::RequestBuilder, repeat: usize) -> anyhow::Result<Latency> {
    let mut samples = Vec::with_capacity(repeat);
    for run in 0..WARM_UP + repeat {
        let started = Instant::now();
        let r = request().send().await?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("answered {status}: {text}");
        }
        if run >= WARM_UP {
            samples.push(started.elapsed());
        }
    }
    Ok(Latency {
        p50: percentile(samples.clone(), 0.5),
        p99: percentile(samples, 0.99),
    })
}

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
) -> anyhow::Result<Vec<(String, f64)>> {
    // Let a checkpoint fold the ingest overlay, as in steady state.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("\n## queries at {calls} calls ({repeat} runs each; dialboard over HTTP, peer in-process SQL)\n");
    println!(
        "| query | dialboard p50 ms | dialboard p99 ms | GROUP BY p50 ms | GROUP BY p99 ms | peer ÷ dialboard (p99) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut p99s = Vec::new();
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
        p99s.push((name.to_string(), d.p99));
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
        p99s.push((name.to_string(), v.p99));
    }
    println!("\nserver resident memory: {:.0} MB", rss_mb(server.child.id()));
    Ok(p99s)
}

/// Ingests `calls` calls spanning the 90 days into a fresh server, then measures the queries.
async fn run_dataset(calls: usize, args: &Args) -> anyhow::Result<Vec<(String, f64)>> {
    let dir = std::env::temp_dir().join(format!("dialboard-bench-{}-{calls}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut server = start_server(&dir)?;
    let client = reqwest::Client::new();
    server.ready(&client).await?;
    let mut ingested = 0;
    let mut ingest_time = Duration::ZERO;
    // Generate a million calls at a time (not timed), then send them (timed).
    while ingested < calls {
        let next = (ingested + 1_000_000).min(calls);
        let bodies: Vec<Vec<u8>> = batches(ingested, next, calls, ingested as u64)
            .into_iter()
            .rev()
            .collect();
        ingest_time += ingest(&server, &client, bodies, args.clients).await?;
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
    let p99s = report_queries(&server, &client, args.repeat, ingested).await?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(p99s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    println!(
        "# dialboard benchmark (SQLite store), datasets of 100000 and {} calls over 90 days\n",
        args.calls
    );
    let small = 100_000.min(args.calls);
    let at_small = run_dataset(small, &args).await?;
    if args.calls > small {
        let at_large = run_dataset(args.calls, &args).await?;
        println!(
            "\n## history independence: p99 at {} calls ÷ p99 at {small}\n",
            args.calls
        );
        for ((name, small), (_, large)) in at_small.iter().zip(&at_large) {
            println!("- {name}: {:.2}×", large / small);
        }
    }
    Ok(())
}
