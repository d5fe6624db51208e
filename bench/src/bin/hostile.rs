//! Hostile clients against a real `dialboard serve` (issue 21, items 1 and 3):
//!
//! - `login-flood`: unauthenticated logins, each with a different e-mail of 1.9 MB, many at a
//!   time; prints the server's resident memory before and after and the size of its log.
//! - `slow-flood`: up to 20,000 slow clients for 30 s, each opening a connection on which it
//!   sends one header line and nothing more (with `reconnect`, opening another whenever the
//!   server closes it), while `/healthz` is asked every 100 ms on a fresh connection; prints
//!   its latencies.
//!
//! ```text
//! cargo build --release -p dialboard -p dialboard-bench
//! target/release/hostile login-flood [REQUESTS=2000]
//! target/release/hostile slow-flood [CONNECTIONS=20000] [reconnect]
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

/// This process's soft limit of open files (Linux), or 1024.
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            let line = l.lines().find(|l| l.starts_with("Max open files"))?.to_string();
            line.split_whitespace().nth(3)?.parse().ok()
        })
        .unwrap_or(1024)
}

/// Latency of one `/healthz` (or the error).
async fn health(client: &reqwest::Client, url: &str) -> Result<Duration, String> {
    let start = Instant::now();
    match client.get(format!("{url}/healthz")).send().await {
        Ok(r) if r.status().is_success() => Ok(start.elapsed()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(format!("{e:?}")),
    }
}

async fn slow_flood(connections: usize, reconnect: bool) -> anyhow::Result<()> {
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
    // Each slow client holds one connection (with `reconnect`, it opens another as soon as the
    // server closes it) for the whole flood; this process keeps some descriptors for the prober.
    let connections = connections.min(open_files_limit().saturating_sub(300));
    let flood = Duration::from_secs(30);
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let address = address.clone();
        clients.spawn(async move {
            let (mut opened, mut failed) = (0usize, 0usize);
            while started.elapsed() < flood {
                let mut stream = TcpStream::connect(&address).await.ok();
                if let Some(s) = &mut stream {
                    if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.is_err() {
                        stream = None;
                    }
                }
                match stream {
                    Some(mut s) => {
                        opened += 1;
                        let mut buf = [0u8; 64];
                        // Until the server closes it (or the flood ends).
                        let left = flood.saturating_sub(started.elapsed());
                        let _ = tokio::time::timeout(left, s.read(&mut buf)).await;
                        if !reconnect {
                            tokio::time::sleep(flood.saturating_sub(started.elapsed())).await;
                        }
                    }
                    None => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            (opened, failed)
        });
    }
    let (mut opened, mut failed) = (0, 0);
    while let Some(outcome) = clients.join_next().await {
        let (o, f) = outcome?;
        opened += o;
        failed += f;
    }
    println!(
        "slow flood: {connections} slow clients for {} s opened {opened} connections ({failed} connects failed)",
        flood.as_secs()
    );
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
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |default: usize| args.get(1).and_then(|n| n.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("login-flood") => login_flood(count(2000)).await,
        Some("slow-flood") => slow_flood(count(20_000), args.get(2).is_some_and(|a| a == "reconnect")).await,
        _ => bail!("usage: hostile login-flood [REQUESTS] | slow-flood [CONNECTIONS] [reconnect]"),
    }
}
