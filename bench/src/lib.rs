//! What the benchmarks share: the generated calls, the release server on a fresh database,
//! the dashboard queries, and latency percentiles.

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The flags of the benchmarks that ingest generated calls over HTTP.
#[derive(Debug, Clone, clap::Parser)]
#[command(about, long_about = None)]
pub struct Flags {
    /// Calls in the (largest) dataset [default: the benchmark's own]
    #[arg(long)]
    pub calls: Option<usize>,
    /// Concurrent HTTP clients sending batches
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Measured runs of each query [default: the benchmark's own]
    #[arg(long)]
    pub repeat: Option<usize>,
    /// Agents the calls are spread over
    #[arg(long, default_value_t = AGENTS)]
    pub agents: usize,
    /// Teams the agents are spread over
    #[arg(long, default_value_t = TEAMS)]
    pub teams: usize,
    /// Call and event ids that count up (`c1`, `e1`, …) instead of random UUIDv4s
    #[arg(long)]
    pub counting_ids: bool,
    /// Only ingest (rates, bytes per call, memory); no queries
    #[arg(long)]
    pub ingest_only: bool,
    /// The calls' start times in the order they are sent: `time` (as a dialer sends them) or
    /// `random` (a backfill of several files merged: each call anywhere in the 90 days)
    #[arg(long, value_enum, default_value_t = Order::Time)]
    pub order: Order,
    /// Ingest into a durable throwaway PostgreSQL cluster instead of a SQLite file (with
    /// --ingest-only; `dialboard-bench` only)
    #[arg(long)]
    pub postgres: bool,
    /// Only the queries, on a database an earlier run kept (`DIALBOARD_BENCH_KEEP=1`): no
    /// ingest, no 100k dataset; the server the bench starts upgrades it if it is older
    #[arg(long, value_name = "SQLITE_FILE", conflicts_with = "ingest_only")]
    pub queries_on: Option<std::path::PathBuf>,
}

/// The benchmarks' settings, their own defaults applied.
#[derive(Debug, Clone)]
pub struct Args {
    /// Calls in the (largest) dataset.
    pub calls: usize,
    /// Concurrent HTTP clients sending batches.
    pub clients: usize,
    /// Measured runs of each query.
    pub repeat: usize,
    /// What the generated calls look like.
    pub shape: Shape,
    /// Only ingest; no queries.
    pub ingest_only: bool,
    /// Ingest into PostgreSQL instead of SQLite.
    pub postgres: bool,
    /// Only the queries, on this kept database.
    pub queries_on: Option<std::path::PathBuf>,
}

impl Args {
    /// The command line (`--help` lists it), with this benchmark's default dataset size and
    /// runs per query.
    pub fn parse(calls: usize, repeat: usize) -> anyhow::Result<Args> {
        let flags = <Flags as clap::Parser>::parse();
        if flags.agents == 0 || flags.teams == 0 {
            bail!("--agents and --teams must be at least 1");
        }
        Ok(Args {
            calls: flags.calls.unwrap_or(calls),
            clients: flags.clients,
            repeat: flags.repeat.unwrap_or(repeat),
            shape: Shape {
                agents: flags.agents,
                teams: flags.teams,
                uuid_ids: !flags.counting_ids,
                random_order: flags.order == Order::Random,
            },
            ingest_only: flags.ingest_only,
            postgres: flags.postgres,
            queries_on: flags.queries_on,
        })
    }
}

/// The generated tenant: how many agents and teams, and the kind of ids.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub agents: usize,
    pub teams: usize,
    /// Random UUIDv4 ids, as real sources send; otherwise ids that count up.
    pub uuid_ids: bool,
    /// Start times in random order, not in time order.
    pub random_order: bool,
}

/// The order the calls' start times are sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    Time,
    Random,
}

impl Default for Shape {
    /// The sessions' figures before ids were random: 200 agents in 10 teams, counting ids.
    fn default() -> Self {
        Shape {
            agents: AGENTS,
            teams: TEAMS,
            uuid_ids: false,
            random_order: false,
        }
    }
}

/// A random UUIDv4 (RFC 9562: version 4, variant 10).
pub fn uuid_v4(rng: &mut impl Rng) -> String {
    let mut b: [u8; 16] = rng.random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub key: String,
    /// The SQLite file, when the server runs on one (the in-process GROUP BY peer reads it).
    pub db: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dialboard serve` (the release binary next to this one) on a fresh SQLite file in `dir`,
/// with a tenant `bench` in New York and its admin key.
pub fn start_server(dir: &std::path::Path) -> anyhow::Result<Server> {
    let db = dir.join("bench.db");
    let mut server = start_server_on(&format!("sqlite://{}", db.display()))?;
    server.db = db;
    Ok(server)
}

/// `dialboard serve` on the database `url` names (made if new), with a tenant `bench` in New
/// York and its admin key.
pub fn start_server_on(url_db: &str) -> anyhow::Result<Server> {
    start_server_with(url_db, &[])
}

/// [`start_server_on`] with more `serve` flags (`--sql-listen ADDR`).
pub fn start_server_with(url_db: &str, serve_flags: &[&str]) -> anyhow::Result<Server> {
    let key = dialboard_command(&[
        "tenant",
        "create",
        "bench",
        "--timezone",
        "America/New_York",
        "--database",
        url_db,
    ])?;
    serve(url_db, key, serve_flags)
}

/// `dialboard serve` on the SQLite file `db` a bench run kept (`DIALBOARD_BENCH_KEEP=1`), with a
/// new admin key of its tenant `bench`.
pub fn start_server_on_kept(db: &std::path::Path) -> anyhow::Result<Server> {
    let url_db = format!("sqlite://{}", db.display());
    let key = dialboard_command(&[
        "key",
        "create",
        "--tenant",
        "bench",
        "--scopes",
        "read,admin",
        "--database",
        &url_db,
    ])?;
    let mut server = serve(&url_db, key, &[])?;
    server.db = db.to_path_buf();
    Ok(server)
}

/// The release `dialboard` next to this binary.
fn dialboard_bin() -> anyhow::Result<std::path::PathBuf> {
    let bin = std::env::current_exe()?
        .parent()
        .context("target dir")?
        .join("dialboard");
    if !bin.exists() {
        bail!("build the server first: cargo build --release --bin dialboard");
    }
    Ok(bin)
}

/// Runs a `dialboard` command that prints a key alone on its last line, and returns the key.
fn dialboard_command(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(dialboard_bin()?).args(args).output()?;
    if !out.status.success() {
        bail!(
            "dialboard {} failed: {}",
            args[..2].join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .last()
        .context("a key")?
        .to_string())
}

/// `dialboard serve` on `url_db` on a free port, answering to `key`.
fn serve(url_db: &str, key: String, serve_flags: &[&str]) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(dialboard_bin()?)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", url_db])
        .args(serve_flags)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        key,
        db: std::path::PathBuf::new(),
    })
}

/// The `p` quantile of `samples` in milliseconds.
pub fn percentile(mut samples: Vec<Duration>, p: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
}

impl Server {
    /// Waits until the server answers `/readyz` (at most 5 s), then replaces the admin key by
    /// one without practical rate limits: the benchmarks measure speed, not the limiter.
    pub async fn ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let mut up = false;
        for _ in 0..200 {
            if client
                .get(format!("{}/readyz", self.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if !up {
            bail!("the server did not become ready");
        }
        let unlimited = serde_json::json!({"per_second": 1e9, "burst": 1e9});
        let body = serde_json::json!({"scopes": ["ingest", "read", "admin"], "name": "bench",
            "rate_limits": {"ingest": unlimited, "other": unlimited}});
        let r = client
            .post(format!("{}/api/v1/keys", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("creating the bench key answered {}", r.status());
        }
        let made: serde_json::Value = r.json().await?;
        self.key = made["key"].as_str().context("a key")?.to_string();
        Ok(())
    }
}

pub const BATCH: usize = 1_000;
/// 2026-06-01T04:00:00Z = midnight in New York; the data covers 90 days from there.
pub const T0: i64 = 1_780_286_400;
pub const DAYS: i64 = 90;
pub const AGENTS: usize = 200;
pub const TEAMS: usize = 10;
pub const DISPOSITIONS: [(&str, f64); 12] = [
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
pub const SOURCES: [&str; 6] = ["web", "webinar", "referral", "linkedin", "list", "event"];
pub const CONNECTED: [&str; 4] = ["Connected", "Meeting Booked", "Interested", "Not Interested"];

/// Batches of calls whose start times run through the 90 days in order, as a dialer sends them.
/// Each call is to one of `total / 4` contacts; a booked meeting also sends the contact's
/// `meeting_booked` stage, and one in four of those a `closed_won` some days later (these
/// stage events ride in the same batches and are not counted as calls).
pub fn batches(from: usize, to: usize, total: usize, seed: u64) -> Vec<Vec<u8>> {
    shaped_batches(from, to, total, seed, &Shape::default())
}

/// [`batches`] of a tenant of another [`Shape`]. Ids come from a generator of their own, so
/// the calls are the same whatever their ids.
pub fn shaped_batches(from: usize, to: usize, total: usize, seed: u64, shape: &Shape) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut ids = SmallRng::seed_from_u64(seed ^ 0x1d5);
    let mut id = |prefix: &str, i: usize| {
        if shape.uuid_ids {
            uuid_v4(&mut ids)
        } else {
            format!("{prefix}{i}")
        }
    };
    let talk = LogNormal::new(5.1, 0.8).expect("valid");
    let span = (DAYS * 86_400) as f64;
    (from..to)
        .step_by(BATCH)
        .map(|first| {
            let mut events: Vec<Value> = Vec::with_capacity(BATCH + BATCH / 16);
            for i in first..(first + BATCH).min(to) {
                // Working hours 08:00–18:00 local of each day, spread evenly over the range (or,
                // in random order, of any day).
                let day = if shape.random_order {
                    rng.random_range(0..DAYS)
                } else {
                    (i as f64 / total as f64 * span / 86_400.0) as i64
                };
                let started = T0 + day * 86_400 + 8 * 3600 + rng.random_range(0..10 * 3600);
                let mut r: f64 = rng.random();
                let disposition = DISPOSITIONS
                    .iter()
                    .find(|(_, p)| {
                        r -= p;
                        r < 0.0
                    })
                    .map_or("No Answer", |d| d.0);
                let agent_number = rng.random_range(0..shape.agents);
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
                let call_id = id("c", i);
                events.push(json!({"id": id("e", i), "type": "call", "call_id": call_id,
                    "agent_id": agent, "team_id": format!("team-{}", agent_number % shape.teams), "contact_id": contact,
                    "campaign_id": campaign, "lead_source": source,
                    "direction": "outbound", "disposition": disposition,
                    "started_at": at(started), "talk_seconds": talk_seconds,
                    "wait_seconds": if connected { rng.random_range(0..8) } else { 0 },
                    "wrap_seconds": rng.random_range(5..120)}));
                if disposition == "Meeting Booked" {
                    let stage = |id: String, stage: &str, t: i64| {
                        json!({"id": id, "type": "lead_stage",
                        "contact_id": contact, "stage": stage, "at": at(t), "agent_id": agent,
                        "campaign_id": campaign, "lead_source": source, "call_id": call_id})
                    };
                    events.push(stage(id("m", i), "meeting_booked", started + talk_seconds));
                    if rng.random_range(0..4) == 0 {
                        let mut won = stage(id("w", i), "closed_won", started + rng.random_range(3..20) * 86_400);
                        won["amount"] = json!(rng.random_range(500..20_000));
                        events.push(won);
                    }
                }
            }
            serde_json::to_vec(&events).expect("serializable")
        })
        .collect()
}

pub async fn ingest(
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

/// Flushes what an ingest left dirty in the page cache, so that queries are measured on a
/// settled machine, not during the kernel's writeback of gigabytes (which gave the first query
/// measured after ingest p99s of 5–10 ms at 1M calls in `compare`).
pub fn settle() -> anyhow::Result<()> {
    if !Command::new("sync").status()?.success() {
        bail!("sync failed");
    }
    Ok(())
}

pub fn dashboard_queries() -> Vec<(&'static str, Value)> {
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

pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

/// Runs not measured before each query's samples (warm caches, as on a dashboard in use).
pub const WARM_UP: usize = 10;

/// Latency of one request to the server, sent `repeat` times after the warm-up runs.
pub async fn measure_dialboard(
    request: impl Fn() -> reqwest::RequestBuilder,
    repeat: usize,
) -> anyhow::Result<Latency> {
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

/// A line of /proc/self/status (`VmRSS:`, `VmHWM:`), in MB.
pub fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
