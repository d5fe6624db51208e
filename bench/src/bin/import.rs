//! `cargo run --release -p dialboard-bench --bin import -- --bytes 2000000000`
//!
//! CDR imports (SPEC §10, issue 26): an Asterisk `cdr_csv` file of `--bytes` (21 columns, one
//! call in five a queue call of three rows, names with commas and quotes, a broken line every
//! 100,000) imported through the server's own importer (`dialboard::import::import`, what
//! `dialboard import` runs) into a SQLite store: rows per second (target ≥ 50,000) and the
//! resident memory, sampled as it goes and at its peak (target: flat whatever the size). The
//! file is generated as it is read (`--write FILE` writes it instead, for `dialboard import`).

use clap::Parser;
use dialboard::import::{convert_only, import, ImportSpec};
use dialboard_bench::status_mb;
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantSettings};
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Asterisk CDR import: rows per second and memory")]
struct Args {
    /// Size of the generated file.
    #[arg(long, default_value_t = 2_000_000_000)]
    bytes: u64,
    /// Write the file here and stop (to import it with `dialboard import`).
    #[arg(long)]
    write: Option<std::path::PathBuf>,
    /// Read and convert only, storing nothing: the importer's own rate and memory.
    #[arg(long)]
    convert_only: bool,
}

/// An Asterisk CDR file, made as it is read: calls one every 3 seconds from 2025-01-01.
struct CdrFile {
    left: u64,
    call: u64,
    line: u64,
    pending: Vec<u8>,
    at: usize,
    /// Rows written.
    rows: u64,
}

const AGENTS: u64 = 200;

impl CdrFile {
    fn new(bytes: u64) -> CdrFile {
        CdrFile {
            left: bytes,
            call: 0,
            line: 0,
            pending: Vec::with_capacity(4096),
            at: 0,
            rows: 0,
        }
    }

    fn quoted(out: &mut Vec<u8>, s: &str) {
        out.push(b'"');
        for b in s.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.extend_from_slice(b"\",");
    }

    fn time(second: u64) -> String {
        let t = jiff::Timestamp::from_second(1_735_689_600 + second as i64).expect("in range");
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        context: &str,
        src: &str,
        dst: &str,
        clid: &str,
        channel: &str,
        dstchannel: &str,
        app: &str,
        start: u64,
        answer: Option<u64>,
        end: u64,
        disposition: &str,
        uniqueid: &str,
        linkedid: &str,
        seq: u64,
    ) {
        self.line += 1;
        self.rows += 1;
        let out = &mut self.pending;
        if self.line.is_multiple_of(100_000) {
            // A record cut short by a crash.
            out.extend_from_slice(b"\"\",\"100\",\"555\",\"from-internal\",\"\"\"Cut\n");
            self.line += 1;
        }
        Self::quoted(out, "");
        for f in [src, dst, context, clid, channel, dstchannel, app, "SIP/trunk/555,60,tT"] {
            Self::quoted(out, f);
        }
        Self::quoted(out, &Self::time(start));
        Self::quoted(out, &answer.map(Self::time).unwrap_or_default());
        Self::quoted(out, &Self::time(end));
        let billsec = answer.map_or(0, |a| end - a);
        out.extend_from_slice(format!("{},{billsec},", end - start).as_bytes());
        Self::quoted(out, disposition);
        Self::quoted(out, "DOCUMENTATION");
        Self::quoted(out, uniqueid);
        Self::quoted(out, "");
        Self::quoted(out, "");
        Self::quoted(out, linkedid);
        out.extend_from_slice(format!("{seq}\n").as_bytes());
    }

    /// The rows of the next call.
    fn next_call(&mut self) {
        let n = self.call;
        self.call += 1;
        let start = n * 3;
        let agent = format!("SIP/agent{:03}-{:08x}", n % AGENTS, n);
        let id = format!("{}.{}", 1_735_689_600 + start, n);
        let phone = format!("+1555{:07}", n % 10_000_000);
        let talk = 30 + (n * 7919) % 600;
        match n % 5 {
            0 => {
                // A queue call: the IVR, an agent who did not answer, one who did.
                let clid = format!("\"Smith, John \"\"J\"\" {n}\" <{phone}>");
                let other = format!("SIP/agent{:03}-{:08x}", (n + 1) % AGENTS, n);
                self.row(
                    "from-pstn",
                    &phone,
                    "600",
                    &clid,
                    "SIP/trunk-1",
                    "",
                    "Answer",
                    start,
                    Some(start + 1),
                    start + 5,
                    "ANSWERED",
                    &id,
                    &id,
                    1,
                );
                self.row(
                    "ext-queues",
                    &phone,
                    "600",
                    &clid,
                    "SIP/trunk-1",
                    &other,
                    "Queue",
                    start + 5,
                    None,
                    start + 20,
                    "NO ANSWER",
                    &format!("{id}1"),
                    &id,
                    2,
                );
                self.row(
                    "ext-queues",
                    &phone,
                    "600",
                    &clid,
                    "SIP/trunk-1",
                    &agent,
                    "Queue",
                    start + 5,
                    Some(start + 25),
                    start + 25 + talk,
                    "ANSWERED",
                    &format!("{id}2"),
                    &id,
                    3,
                );
            }
            1 | 2 => {
                let answered = !n.is_multiple_of(3);
                let (answer, end, disposition) = match answered {
                    true => (Some(start + 8), start + 8 + talk, "ANSWERED"),
                    false => (None, start + 25, if n.is_multiple_of(2) { "NO ANSWER" } else { "BUSY" }),
                };
                self.row(
                    "from-internal",
                    "100",
                    &phone,
                    "\"Agent\" <100>",
                    &agent,
                    "SIP/trunk-2",
                    "Dial",
                    start,
                    answer,
                    end,
                    disposition,
                    &id,
                    &id,
                    1,
                );
            }
            _ => {
                let answered = !n.is_multiple_of(4);
                let (answer, end, disposition) = match answered {
                    true => (Some(start + 3), start + 3 + talk, "ANSWERED"),
                    false => (None, start + 30, "NO ANSWER"),
                };
                self.row(
                    "from-pstn",
                    &phone,
                    "200",
                    &format!("<{phone}>"),
                    "SIP/trunk-3",
                    &agent,
                    "Dial",
                    start,
                    answer,
                    end,
                    disposition,
                    &id,
                    &id,
                    1,
                );
            }
        }
    }
}

impl Read for CdrFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.pending.len() {
            if self.left == 0 {
                return Ok(0);
            }
            self.pending.clear();
            self.at = 0;
            self.next_call();
            // The file ends with the call that crosses the size.
            self.left = self.left.saturating_sub(self.pending.len() as u64);
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = args.write {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let written = std::io::copy(&mut CdrFile::new(args.bytes), &mut file)?;
        println!("wrote {written} bytes to {}", path.display());
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("bench.db"), Options::not_durable())?);
    let tenant = store.create_tenant("bench", TenantSettings::new("UTC")).await?;
    let spec = ImportSpec {
        format: "asterisk-cdr".into(),
        utc: true,
        ..ImportSpec::default()
    };
    let rss_before = status_mb("VmRSS:");
    let started = Instant::now();
    if args.convert_only {
        let summary = convert_only(&tenant, &spec, Box::new(CdrFile::new(args.bytes)))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "converted {:.2} GB in {seconds:.1} s, storing nothing: {summary}\n{:.0} rows/s; resident memory {rss_before:.0} MB before, peak {:.0} MB",
            args.bytes as f64 / 1e9,
            summary.lines as f64 / seconds,
            status_mb("VmHWM:")
        );
        store.shutdown().await;
        return Ok(());
    }
    let mut marks: Vec<(u64, f64, f64)> = Vec::new();
    let mut next_mark = 0u64;
    let summary = import(
        store.clone(),
        &tenant,
        &spec,
        Box::new(CdrFile::new(args.bytes)),
        Some(Box::new(std::io::sink())),
        |s, bytes| {
            if bytes >= next_mark {
                marks.push((bytes, status_mb("VmRSS:"), status_mb("RssAnon:")));
                eprint!(
                    "\r{:.2} GB read, {} lines, {:.0} lines/s, RSS {:.0} MB   ",
                    bytes as f64 / 1e9,
                    s.lines,
                    s.lines as f64 / started.elapsed().as_secs_f64(),
                    status_mb("VmRSS:")
                );
                next_mark = bytes + args.bytes / 20;
            }
            std::future::ready(Ok(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!();
    println!(
        "imported {:.2} GB of Asterisk CDRs in {seconds:.1} s: {summary}",
        args.bytes as f64 / 1e9
    );
    println!(
        "{:.0} rows/s ({:.0} calls/s, {:.0} MB/s)",
        summary.lines as f64 / seconds,
        summary.events as f64 / seconds,
        args.bytes as f64 / 1e6 / seconds
    );
    println!(
        "resident memory: {rss_before:.0} MB before, peak {:.0} MB; by GB read, resident (anonymous): {}",
        status_mb("VmHWM:"),
        marks
            .iter()
            .map(|(b, mb, anon)| format!("{:.1} GB {mb:.0} ({anon:.0}) MB", *b as f64 / 1e9))
            .collect::<Vec<_>>()
            .join(", ")
    );
    store.shutdown().await;
    Ok(())
}
