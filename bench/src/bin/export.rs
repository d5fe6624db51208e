//! `cargo run --release -p dialboard-bench --bin export -- --calls 1000000`
//!
//! Exports (SPEC §10, issue 23): a raw-call CSV export of every call — rows per second and the
//! peak resident memory while it runs (target ≥ 200,000 rows/s, memory flat); the same calls
//! as XLSX (peak memory); and a PDF with a chart and a 1,000-row table (target ≤ 1 s). The
//! exports run in process, through the server's own export code (`dialboard::exports`) over a
//! SQLite store filled with the ingest bench's calls (plus prospects, notes and recordings), and
//! their bytes are counted and dropped, as a fast client would.

use clap::Parser;
use dialboard::exports::{export_calls, CallRows, Format, Sink};
use dialboard_bench::{batches, status_mb, DAYS, T0};
use dialboard_engine::event::parse_event;
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_export::{Cell, Chart, ChartKind, Series, Table};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Store, TenantInfo, TenantSettings};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// The server's allocator (crates/server/src/main.rs), so memory is measured as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Export throughput and memory: CSV and XLSX of every call, and a PDF report")]
struct Args {
    /// Calls to ingest and export.
    #[arg(long, default_value_t = 1_000_000)]
    calls: usize,
    /// Skip the XLSX export (the slowest).
    #[arg(long)]
    no_xlsx: bool,
    /// Rows of the PDF's table.
    #[arg(long, default_value_t = 1_000)]
    pdf_rows: usize,
    /// Keep the database in this file, and export what it holds if it already does (no
    /// ingest): to compare two builds, or profile the export alone, on the same calls.
    #[arg(long, value_name = "SQLITE_FILE")]
    db: Option<std::path::PathBuf>,
}

/// CPU seconds (user + system) of the process, or of the calling thread, from `/proc`: on a
/// shared machine the wall time depends on the load, the CPU each stage took does not.
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // After the command's name (in parentheses), from field 3: utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ, 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Starts a new peak (VmHWM) from the current resident size (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let path = args.db.clone().unwrap_or_else(|| dir.path().join("bench.db"));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Options::not_durable())?);
    match store.tenant_by_name("bench").await? {
        Some(tenant) => {
            eprintln!("exporting the calls already in {}", path.display());
            export_all(&args, &store, &tenant).await?;
        }
        None => {
            let tenant = store
                .create_tenant("bench", TenantSettings::new("America/New_York"))
                .await?;
            ingest(&args, &store, &tenant).await?;
            export_all(&args, &store, &tenant).await?;
        }
    }
    store.shutdown().await;
    Ok(())
}

/// Fills the store with `--calls` of the ingest bench's calls, with prospects, notes and
/// recordings.
async fn ingest(args: &Args, store: &Arc<dyn Store>, tenant: &TenantInfo) -> anyhow::Result<()> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let started = Instant::now();
    for (n, batch) in batches(0, args.calls, args.calls, 7).into_iter().enumerate() {
        let events: Vec<Value> = serde_json::from_slice(&batch)?;
        let parsed = events
            .into_iter()
            .map(|mut e| {
                if e["type"] == "call" {
                    let i = &e["call_id"].as_str().unwrap_or_default()[1..].to_string();
                    e["prospect"] = json!({"name": format!("Prospect {i}"), "phone": format!("+1555{i:0>7}"), "company": "Acme, Inc."});
                    e["recording_url"] = json!(format!("https://recordings.example/{i}.mp3"));
                    e["notes"] = json!("Asked for a follow-up next week; \"budget\" approved");
                }
                parse_event(&e, &taxonomy).expect("the bench's events are valid")
            })
            .collect();
        store.ingest(tenant.id, parsed).await?;
        if n % 100 == 99 {
            eprint!("\ringested {} calls", (n + 1) * 1_000);
        }
    }
    store.checkpoint().await?;
    eprintln!(
        "\ringested {} calls in {:.1} s; resident {:.0} MB",
        args.calls,
        started.elapsed().as_secs_f64(),
        status_mb("VmRSS:")
    );
    Ok(())
}

/// The CSV and XLSX exports of every call, and the PDF.
async fn export_all(args: &Args, store: &Arc<dyn Store>, tenant: &TenantInfo) -> anyhow::Result<()> {
    let start = jiff::Timestamp::from_second(T0)?.to_string();
    let end = jiff::Timestamp::from_second(T0 + (DAYS + 30) * 86_400)?.to_string();
    let query = json!({"range": {"start": start, "end": end}});
    let now = T0 + (DAYS + 30) * 86_400;

    // Resident memory counts the pages of the database file SQLite reads through its memory
    // map (`mmap_size`) as well as the heap: the anonymous part is what the export holds.
    // The export writes on this thread (its future runs here) while the store reads the next
    // page on others: the CPU each side took, and the rows per second the busier one allows
    // when each has a core (what the wall time shows on an idle machine).
    println!("| export | rows | time | rows/s | output | resident before | peak during | resident at 25/50/75/100 % | of which anonymous | CPU writing / reading | rows/s by the busier's CPU |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let formats: &[Format] = if args.no_xlsx {
        &[Format::Csv]
    } else {
        &[Format::Csv, Format::Xlsx]
    };
    for &format in formats {
        let rows = CallRows::new(store.clone(), tenant.id, query.clone(), now)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let total = rows.count().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        // The bytes go to a reader that counts and drops them, as a fast client would.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
        let reader = tokio::spawn(async move {
            let mut bytes = 0usize;
            while let Some(chunk) = rx.recv().await {
                bytes += chunk.map(|c| c.len()).unwrap_or(0);
            }
            bytes
        });
        reset_peak();
        let before = status_mb("VmRSS:");
        let mut marks = Vec::new();
        let (process_cpu, writing_cpu) = (cpu_seconds("/proc/self/stat"), cpu_seconds("/proc/thread-self/stat"));
        let started = Instant::now();
        let mut sink = Sink::Body(tx);
        let summary = export_calls(rows, format, &mut sink, |done| {
            if marks.len() < 4 && done * 4 >= total * (marks.len() as i64 + 1) {
                marks.push((status_mb("VmRSS:"), status_mb("RssAnon:")));
            }
            async { Ok(()) }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        drop(sink);
        let bytes = reader.await?;
        let elapsed = started.elapsed().as_secs_f64();
        let writing = cpu_seconds("/proc/thread-self/stat") - writing_cpu;
        let reading = cpu_seconds("/proc/self/stat") - process_cpu - writing;
        let resident: Vec<String> = marks.iter().map(|m| format!("{:.0}", m.0)).collect();
        let anonymous: Vec<String> = marks.iter().map(|m| format!("{:.0}", m.1)).collect();
        println!(
            "| {format:?} | {} | {elapsed:.2} s | {:.0} | {:.1} MB | {before:.0} MB | {:.0} MB | {} MB | {} MB | {writing:.2} / {reading:.2} s | {:.0} |",
            summary.rows,
            summary.rows as f64 / elapsed,
            bytes as f64 / 1e6,
            status_mb("VmHWM:"),
            resident.join(" / "),
            anonymous.join(" / "),
            summary.rows as f64 / writing.max(reading)
        );
    }

    // A report's PDF: a chart of calls per day and a table of the first rows.
    let mut rows = CallRows::new(store.clone(), tenant.id, query.clone(), now)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut table_rows = Vec::new();
    while table_rows.len() < args.pdf_rows {
        match rows.next_page().await.map_err(|e| anyhow::anyhow!("{e:?}"))? {
            Some(page) => table_rows.extend(page),
            None => break,
        }
    }
    table_rows.truncate(args.pdf_rows);
    let mut per_day = std::collections::BTreeMap::<String, f64>::new();
    for row in &table_rows {
        if let Cell::Instant(s) = row[1] {
            let day = jiff::Timestamp::from_second(s)?
                .to_zoned(rows.zone())
                .date()
                .to_string();
            *per_day.entry(day).or_default() += 1.0;
        }
    }
    let chart = Chart {
        title: "Calls per day".into(),
        kind: ChartKind::Bar,
        categories: per_day.keys().cloned().collect(),
        series: vec![Series {
            name: "calls".into(),
            values: per_day.values().copied().collect(),
        }],
    };
    let table = Table {
        title: "Calls".into(),
        columns: dialboard::exports::call_columns(),
        rows: table_rows,
    };
    let header = rows.header("Calls report");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let started = Instant::now();
        size = dialboard_export::pdf(&header, std::slice::from_ref(&chart), std::slice::from_ref(&table))?.len();
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "\nPDF with a chart and a {}-row table: median {:.0} ms, slowest {:.0} ms of 5; {:.0} KB",
        table.rows.len(),
        times[2] * 1000.0,
        times[4] * 1000.0,
        size as f64 / 1024.0
    );
    if let Ok(path) = std::env::var("DIALBOARD_BENCH_PDF") {
        std::fs::write(&path, dialboard_export::pdf(&header, &[chart], &[table])?)?;
        println!("written to {path}");
    }
    Ok(())
}
