//! What the benchmarks share: the release server on a fresh database, and percentiles.

use anyhow::{bail, Context};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub child: Child,
    pub url: String,
    pub key: String,
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
    let bin = std::env::current_exe()?
        .parent()
        .context("target dir")?
        .join("dialboard");
    if !bin.exists() {
        bail!("build the server first: cargo build --release --bin dialboard");
    }
    let db = dir.join("bench.db");
    let url_db = format!("sqlite://{}", db.display());
    let out = Command::new(&bin)
        .args([
            "tenant",
            "create",
            "bench",
            "--timezone",
            "America/New_York",
            "--database",
            &url_db,
        ])
        .output()?;
    let key = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .context("a key")?
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(&bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database", &url_db])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        key,
        db,
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
