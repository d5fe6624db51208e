//! `dialboard import`: events from a file, through the same validation and store as HTTP.

use dialboard_engine::event::parse_event_text;
use dialboard_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

const BATCH: usize = 5_000;
/// Rejections printed in full; the rest are only counted.
const SHOWN_REJECTIONS: usize = 20;

pub async fn run(store: &Arc<dyn Store>, tenant: &str, format: &str, path: &Path) -> anyhow::Result<()> {
    if format != "ndjson" {
        anyhow::bail!("--format {format}: only ndjson is supported by this build");
    }
    let tenant = store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant named '{tenant}'"))?;
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let progress = ProgressBar::new(file.metadata()?.len());
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}").expect("template"),
    );
    let reader = BufReader::new(progress.wrap_read(file));
    let (mut accepted, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    let mut batch = Vec::with_capacity(BATCH);
    for (number, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let problem = match parse_event_text(&line, &tenant.taxonomy) {
            Ok(event) => {
                batch.push(event);
                None
            }
            Err((_, errors)) => Some(errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")),
        };
        if let Some(problem) = problem {
            rejected += 1;
            if rejected <= SHOWN_REJECTIONS {
                progress.suspend(|| eprintln!("line {}: {problem}", number + 1));
            }
        }
        if batch.len() == BATCH {
            let s = store.ingest(tenant.id, std::mem::take(&mut batch)).await?;
            accepted += s.accepted;
            duplicates += s.duplicates;
            progress.set_message(format!("{accepted} accepted"));
        }
    }
    let s = store.ingest(tenant.id, batch).await?;
    accepted += s.accepted;
    duplicates += s.duplicates;
    progress.finish_and_clear();
    if rejected > SHOWN_REJECTIONS {
        eprintln!("… and {} more rejected lines", rejected - SHOWN_REJECTIONS);
    }
    println!(
        "imported {}: {accepted} accepted, {duplicates} duplicates, {rejected} rejected",
        path.display()
    );
    Ok(())
}
