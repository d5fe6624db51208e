//! A throwaway PostgreSQL cluster for tests and benchmarks, made with the local `initdb`
//! (PostgreSQL 15's binaries; `DIALBOARD_PG_BIN` names another directory). It listens only on a
//! Unix socket in its own temporary directory. A watchdog shell stops it and removes the
//! directory once the process that started it exits, so nothing is left running even when a
//! test binary never drops it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Cluster {
    dir: PathBuf,
}

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var("DIALBOARD_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    Path::new(&dir).join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program`, run as the `postgres` user when we are root (PostgreSQL refuses root).
fn as_owner(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Cluster {
    /// Makes and starts a cluster. `durable`: fsync as in production (benchmarks); otherwise
    /// `fsync=off` for speed (tests).
    pub fn start(durable: bool) -> std::io::Result<Cluster> {
        let dir = std::env::temp_dir().join(format!(
            "dialboard-pg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir)?;
        let root = is_root();
        if root {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir))?;
        }
        let data = dir.join("data");
        run(as_owner(&bin("initdb"), root).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;
        // Durable (benchmarks): fsync, and checkpoints spaced as a write-heavy production server
        // has them (docs/SCALING.md): with the defaults (1 GB of log, 5 min) they come often
        // under ingest, and after each the next write of every index page logs a full page
        // image, as the ids' hashed indexes are written at random (PostgreSQL's CPU a call −12%
        // at 3M calls, bench/README.md).
        let settings = if durable {
            "-c fsync=on -c max_wal_size=8GB -c checkpoint_timeout=15min"
        } else {
            "-c fsync=off"
        };
        // More settings from the environment (`-c name=value …`), for benchmarks of tunings.
        let extra = std::env::var("DIALBOARD_PG_OPTIONS").unwrap_or_default();
        let postgres = format!(
            "{} -D {} -k {} -c listen_addresses= {settings} -c max_connections=200 -c shared_buffers=256MB {extra}",
            bin("postgres").display(),
            data.display(),
            dir.display()
        );
        let runner = if root { "runuser -u postgres -- " } else { "" };
        // The watchdog: postgres runs while the parent lives; then it is stopped (by the pid in
        // its pid file: `runuser` passes no signal on) and its directory removed.
        let script = format!(
            "{runner}{postgres} >{log} 2>&1 & pg=$!; while kill -0 {parent} 2>/dev/null && kill -0 $pg 2>/dev/null; \
             do sleep 0.5; done; kill -INT $(head -n 1 {pid}) 2>/dev/null; wait $pg; rm -rf {dir}",
            pid = data.join("postmaster.pid").display(),
            log = dir.join("log").display(),
            parent = std::process::id(),
            dir = dir.display(),
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let cluster = Cluster { dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                return Err(std::io::Error::other(format!("PostgreSQL did not start:\n{log}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(cluster)
    }

    /// The URL of a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@localhost/{database}?host={}", self.dir.display())
    }

    /// Makes a new empty database; returns its URL.
    pub fn create_database(&self) -> std::io::Result<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let url = self.url("postgres");
        // The sync client runs its own runtime: keep it off any async thread.
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).map_err(std::io::Error::other)?;
            client
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(name)
        })
        .join()
        .expect("the thread finishes")
        .map(|name| self.url(&name))
    }
}

fn run(command: &mut Command) -> std::io::Result<()> {
    let out = command.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{:?} failed: {}{}",
            command,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
