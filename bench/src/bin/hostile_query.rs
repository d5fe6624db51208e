//! `cargo run --release -p dialboard-bench --bin hostile_query -- [--calls 200000] [--heavy 80] [--seconds 20] [--within-budget 1]`
//!
//! Issue 21's heavy-query flood against the release `dialboard serve` on a fresh SQLite file:
//! one tenant (`bench`, `--calls` calls over 90 days) sends `--heavy` concurrent `/query`s from
//! one credential, each the worst case — median and p90, four dimensions, 15-minute
//! granularity, `all_time` and a comparison — in a loop for `--seconds`; meanwhile a second
//! tenant (`light`) asks a trivial question (today's calls) one request after another. Prints the
//! light tenant's latency alone and beside the flood (p50/p99/max), what the flood was answered
//! (200 / 422 query_too_large / 429 too_many_queries), and the server's peak resident memory.

use anyhow::{bail, Context};
use dialboard_bench::{batches, ingest, percentile, start_server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn flag(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args.get(i + 1).context("a value")?.parse()?),
        None => Ok(default),
    }
}

/// Sends one `/query` and reads its whole answer; its status.
async fn post_query(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> anyhow::Result<u16> {
    let r = client
        .post(format!("{url}/api/v1/query"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

/// The light tenant's trivial query, one after another until `stop`; its latencies.
async fn light_loop(
    client: reqwest::Client,
    url: String,
    key: String,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    let body = json!({"measures": ["total_calls"], "range": {"preset": "last_7_days"}});
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let status = post_query(&client, &url, &key, &body).await?;
        if status != 200 {
            bail!("the light tenant's query answered {status}");
        }
        out.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(out)
}

fn report(name: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let max = samples.iter().max().copied().unwrap_or_default();
    println!(
        "{name:<28} n={n:<5} p50={:>8.2} ms  p99={:>8.2} ms  max={:>8.2} ms",
        percentile(samples.clone(), 0.5),
        percentile(samples, 0.99),
        max.as_secs_f64() * 1000.0
    );
}

/// The server's peak resident memory (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls = flag("--calls", 200_000)? as usize;
    let heavy = flag("--heavy", 80)? as usize;
    let seconds = flag("--seconds", 20)?;
    let dir = std::env::temp_dir().join(format!("dialboard-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut server = start_server(&dir)?;
    let client = reqwest::Client::new();
    server.ready(&client).await?;
    let took = ingest(&server, &client, batches(0, calls, calls, 21), 4).await?;
    println!("ingested {calls} calls in {:.1} s", took.as_secs_f64());
    // The light tenant: its own admin key, a handful of calls today.
    let bin = std::env::current_exe()?
        .parent()
        .context("target dir")?
        .join("dialboard");
    let db = format!("sqlite://{}", server.db.display());
    let out = Command::new(&bin)
        .args(["tenant", "create", "light", "--timezone", "UTC", "--database", &db])
        .output()?;
    let light_key = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .context("a key")?
        .to_string();
    let now = jiff::Timestamp::now();
    let events: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": format!("l{i}"), "type": "call", "call_id": format!("l{i}"), "agent_id": "a1",
            "disposition": "Connected", "started_at": now.to_string()})
        })
        .collect();
    let r = client
        .post(format!("{}/api/v1/events", server.url))
        .bearer_auth(&light_key)
        .json(&events)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("the light tenant's ingest answered {}", r.status());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let alone = tokio::spawn(light_loop(
        client.clone(),
        server.url.clone(),
        light_key.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    report("light tenant, alone", alone.await??);

    // `--within-budget 1`: a heavy query the budget lets run (no median, two dimensions, days),
    // so that only the admission caps hold the flood.
    let heavy_body = if flag("--within-budget", 0)? == 1 {
        json!({"measures": ["total_calls", "connect_rate", "avg_talk_time"], "dimensions": ["agent", "disposition"],
            "granularity": "day", "range": {"preset": "all_time"}, "compare": "previous_period"})
    } else {
        json!({"measures": ["total_calls", "median_talk_time", "p90_talk_time", "connect_rate"],
            "dimensions": ["agent", "campaign", "lead_source", "disposition"], "granularity": "15m",
            "range": {"preset": "all_time"}, "compare": "previous_period"})
    };
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut flood = Vec::new();
    for _ in 0..heavy {
        let (client, url, key, body) = (
            client.clone(),
            server.url.clone(),
            server.key.clone(),
            heavy_body.clone(),
        );
        flood.push(tokio::spawn(async move {
            let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
            while Instant::now() < deadline {
                let status = post_query(&client, &url, &key, &body).await?;
                *answers.entry(status).or_default() += 1;
                if status == 429 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok::<_, anyhow::Error>(answers)
        }));
    }
    let beside = tokio::spawn(light_loop(
        client.clone(),
        server.url.clone(),
        light_key.clone(),
        stop.clone(),
    ));
    let mut answers: BTreeMap<u16, usize> = BTreeMap::new();
    for f in flood {
        for (status, n) in f.await?? {
            *answers.entry(status).or_default() += n;
        }
    }
    stop.store(true, Ordering::Relaxed);
    report(&format!("light tenant, beside {heavy} heavy"), beside.await??);
    println!("the heavy tenant's answers by status: {answers:?}");
    if let Some(mb) = peak_rss_mb(server.child.id()) {
        println!("server peak resident memory: {mb:.0} MB");
    }
    drop(server);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
