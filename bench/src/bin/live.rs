//! `cargo run --release -p dialboard-bench --bin live -- [--subscribers 2000] [--seconds 20]`
//!
//! Live updates (SPEC §10) against the release `dialboard serve` on a fresh SQLite file:
//!
//! 1. **freshness**: 20 WebSocket subscribers on the tenant's scope while calls arrive at
//!    1,000 events/s (batches of 10 every 10 ms); for every batch, the time from its 200
//!    (accepted, durable) to the first `metric_update` whose `total_calls` includes it.
//! 2. **fan-out**: `--subscribers` WebSocket subscribers on the tenant's scope while batches of
//!    10 calls arrive every 100 ms; the same latency, for every subscriber and batch.
//!
//! Client and server share the machine's cores, so the figures include the client's own work.

use anyhow::{bail, Context};
use dialboard_bench::{percentile, start_server, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const BATCH: usize = 10;

struct Scenario {
    name: &'static str,
    subscribers: usize,
    interval: Duration,
    seconds: u64,
}

/// A subscriber's view: when each tenant `metric_update` arrived and the total it carried.
type Received = Vec<(Instant, i64)>;

/// `"total_calls":N` read without parsing the whole message (the client shares the cores).
fn total_calls(text: &str) -> Option<i64> {
    let rest = &text[text.find("\"total_calls\":")? + 14..];
    rest[..rest.find([',', '}'])?].parse().ok()
}

/// Connects, subscribes to the tenant's scope and waits for the first metrics.
async fn connect(
    server: &Server,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
    let mut req = format!("{}/api/v1/live", server.url.replacen("http", "ws", 1)).into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {}", server.key).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws.send(Message::Text(
        json!({"type": "subscribe", "scope": "tenant"}).to_string().into(),
    ))
    .await?;
    loop {
        match ws.next().await.context("closed before the first metrics")?? {
            Message::Text(t) if total_calls(&t).is_some() => return Ok(ws),
            _ => {}
        }
    }
}

async fn run(server: &Server, s: &Scenario, first_total: i64) -> anyhow::Result<i64> {
    let posts = (s.seconds as u128 * 1000 / s.interval.as_millis()) as usize;
    let final_total = first_total + (posts * BATCH) as i64;
    let mut readers = Vec::new();
    for _ in 0..s.subscribers {
        let mut ws = connect(server).await?;
        readers.push(tokio::spawn(async move {
            let mut seen = Received::new();
            while let Some(msg) = ws.next().await {
                if let Message::Text(t) = msg? {
                    if let Some(total) = total_calls(&t) {
                        seen.push((Instant::now(), total));
                        if total >= final_total {
                            break;
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>(seen)
        }));
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut accepted = Vec::with_capacity(posts);
    for k in 0..posts {
        tokio::time::sleep_until((started + s.interval * k as u32).into()).await;
        let now = jiff::Timestamp::now().to_string();
        let calls: Vec<Value> = (0..BATCH)
            .map(|i| {
                let id = format!("{}-{k}-{i}", s.name);
                json!({"id": id, "type": "call", "call_id": id, "agent_id": format!("a{}", i % 7), "team_id": "t1",
                    "disposition": if i % 3 == 0 { "Connected" } else { "No Answer" }, "started_at": now,
                    "talk_seconds": if i % 3 == 0 { 60 + k % 200 } else { 0 }})
            })
            .collect();
        let r = client
            .post(format!("{}/api/v1/events", server.url))
            .bearer_auth(&server.key)
            .json(&calls)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("ingest answered {}", r.status());
        }
        accepted.push((Instant::now(), first_total + ((k + 1) * BATCH) as i64));
    }
    let rate = (posts * BATCH) as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut missed = 0;
    for reader in readers {
        let seen = tokio::time::timeout(Duration::from_secs(30), reader)
            .await
            .context("a subscriber never saw the final total")???;
        for (at, total) in &accepted {
            match seen.iter().find(|(_, t)| t >= total) {
                Some((received, _)) => latencies.push(received.saturating_duration_since(*at)),
                None => missed += 1,
            }
        }
    }
    println!(
        "| {} | {} | {:.0} events/s | {} | {:.1} | {:.1} | {:.1} | {missed} |",
        s.name,
        s.subscribers,
        rate,
        latencies.len(),
        percentile(latencies.clone(), 0.5),
        percentile(latencies.clone(), 0.99),
        percentile(latencies, 1.0),
    );
    Ok(final_total)
}

/// Live updates: freshness and fan-out over WebSocket (see the crate's bench/README.md).
#[derive(clap::Parser)]
#[command(about, long_about = None)]
struct Flags {
    /// WebSocket subscribers of the fan-out scenario
    #[arg(long, default_value_t = 2000)]
    subscribers: usize,
    /// Seconds each scenario runs
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Flags { subscribers, seconds } = <Flags as clap::Parser>::parse();
    let dir = std::env::temp_dir().join(format!("dialboard-live-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut server = start_server(&dir)?;
    server.ready(&reqwest::Client::new()).await?;
    println!("# dialboard live benchmark (SQLite store, one node)\n");
    println!("latency: batch accepted (its 200) → first metric_update including it, per subscriber (ms)\n");
    println!(
        "| scenario | subscribers | ingest | samples | p50 | p99 | max | missed |\n|---|---|---|---|---|---|---|---|"
    );
    let scenarios = [
        Scenario {
            name: "freshness",
            subscribers: 20,
            interval: Duration::from_millis(10),
            seconds,
        },
        Scenario {
            name: "fan-out",
            subscribers,
            interval: Duration::from_millis(100),
            seconds,
        },
    ];
    let mut total = 0;
    for s in &scenarios {
        total = run(&server, s, total).await?;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
