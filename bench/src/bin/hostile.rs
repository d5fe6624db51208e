//! Hostile clients against a real `dialboard serve` (issue 21, items 1 and 3):
//!
//! - `login-flood`: unauthenticated logins, each with a different e-mail of 1.9 MB, many at a
//!   time; prints the server's resident memory before and after and the size of its log.
//! - `slow-flood`: up to 20,000 connections that each send one header line and then nothing,
//!   while `/healthz` is asked every 100 ms; prints its latencies and how many of the slow
//!   connections the server closed.
//!
//! ```text
//! cargo build --release -p dialboard -p dialboard-bench
//! target/release/hostile login-flood [REQUESTS=2000]
//! target/release/hostile slow-flood [CONNECTIONS=20000]
//! ```
//! `DIALBOARD_BIN` names the server binary (default `target/release/dialboard`). The flood's own
//! descriptors count against this process's limit (`ulimit -n`).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    _dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn binary() -> PathBuf {
    std::env::var_os("DIALBOARD_BIN").map_or_else(|| PathBuf::from("target/release/dialboard"), PathBuf::from)
}

/// A fresh database with tenant `acme`, served on a free port; its log goes to a file.
async fn start() -> anyhow::Result<Server> {
    let dir = std::env::temp_dir().join(format!("dialboard-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}", dir.join("h.db").display());
    let made = Command::new(binary())
        .args(["tenant", "create", "acme", "--database", &db])
        .output()
        .with_context(|| format!("running {}", binary().display()))?;
    if !made.status.success() {
        bail!("tenant create failed: {}", String::from_utf8_lossy(&made.stderr));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = dir.join("server.log");
    let child = Command::new(binary())
        .args(["serve", "--database", &db, "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            return Ok(Server {
                child,
                url,
                log,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the server did not start; see {}", log.display())
}

/// Resident memory of a process in MiB (Linux).
fn resident_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn file_mib(path: &Path) -> f64 {
    std::fs::metadata(path).map_or(0.0, |m| m.len() as f64 / 1048576.0)
}

async fn login_flood(requests: usize) -> anyhow::Result<()> {
    let server = start().await?;
    let pid = server.child.id();
    let before = resident_mib(pid);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let concurrency = 16;
    let mut next = 0;
    while next < requests {
        let mut batch = tokio::task::JoinSet::new();
        let end = (next + concurrency).min(requests);
        for i in next..end {
            let email = format!("{i}-{}@example.com", "x".repeat(1_900_000));
            let body = serde_json::json!({"email": email, "password": "whatever-it-is"});
            let sent = client
                .post(format!("{}/api/v1/auth/login", server.url))
                .json(&body)
                .send();
            batch.spawn(async move { sent.await.map_or(0, |r| r.status().as_u16()) });
        }
        next = end;
        while let Some(status) = batch.join_next().await {
            *statuses.entry(status?).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "login flood: {requests} logins with 1.9 MB e-mails in {:.1} s; answers {statuses:?}",
        elapsed.as_secs_f64()
    );
    println!(
        "server resident memory: {before:.1} MiB before, {:.1} MiB after; log {:.3} MiB",
        resident_mib(pid),
        file_mib(&server.log)
    );
    Ok(())
}

/// Latency of one `/healthz` (or the error).
async fn health(client: &reqwest::Client, url: &str) -> Result<Duration, String> {
    let start = Instant::now();
    match client.get(format!("{url}/healthz")).send().await {
        Ok(r) if r.status().is_success() => Ok(start.elapsed()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(e.to_string()),
    }
}

async fn slow_flood(connections: usize) -> anyhow::Result<()> {
    let server = start().await?;
    let url = server.url.clone();
    let address = url.trim_start_matches("http://").to_string();
    // /healthz every 100 ms, each on a new connection (as a load balancer does), until told.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let prober = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut failures = Vec::new();
        loop {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client");
            match health(&client, &url).await {
                Ok(d) => latencies.push(d),
                Err(e) => failures.push(e),
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = &mut stop_rx => break,
            }
        }
        (latencies, failures)
    });
    let started = Instant::now();
    let mut slow = Vec::with_capacity(connections);
    let mut refused = 0;
    for _ in 0..connections {
        match TcpStream::connect(&address).await {
            Ok(mut s) => {
                if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.is_ok() {
                    slow.push(s);
                }
            }
            Err(e) if e.raw_os_error() == Some(24) => {
                println!("this process ran out of descriptors after {} connections", slow.len());
                break;
            }
            Err(_) => refused += 1,
        }
    }
    let opened = slow.len();
    println!(
        "slow flood: {opened} slow connections opened in {:.1} s ({refused} refused)",
        started.elapsed().as_secs_f64()
    );
    // Keep them for a while, as an attacker would, while /healthz is probed.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let mut closed = 0;
    for s in &mut slow {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            closed += 1;
        }
    }
    let _ = stop_tx.send(());
    let (mut latencies, failures) = prober.await?;
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
    };
    println!(
        "/healthz during the flood: {} answered (p50 {}, p99 {}, max {}), {} failed {:?}",
        latencies.len(),
        pick(0.5),
        pick(0.99),
        pick(1.0),
        failures.len(),
        failures.iter().take(3).collect::<Vec<_>>()
    );
    println!("the server closed {closed} of the {opened} slow connections within 15 s");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |default: usize| args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("login-flood") => login_flood(count(2000)).await,
        Some("slow-flood") => slow_flood(count(20_000)).await,
        _ => bail!("usage: hostile login-flood [REQUESTS] | slow-flood [CONNECTIONS]"),
    }
}
