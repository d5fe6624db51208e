//! Imports (SPEC §11): a file of events (NDJSON) or of call records (Asterisk and FreeSWITCH
//! CDRs, any dialer's CSV) streamed into the store through the same validation and the same
//! `Store::ingest` as `POST /events`. `dialboard import` runs it on a local file; an upload to
//! `POST /api/v1/imports` runs it as a job (`job.rs`).
//!
//! The formats (`asterisk`, `freeswitch`, `columns`) are converters without IO: lines split into
//! fields go in, SPEC §3 `call` events or rejections with their line numbers come out. This
//! module does the IO: a thread reads and converts the file, batches go to the store through a
//! bounded channel (so a slow store slows the reading, and memory stays flat whatever the
//! file's size), and rejected rows go to the rejects file.

pub mod asterisk;
pub mod columns;
pub mod freeswitch;
pub mod job;
pub mod mapping;
pub mod record;

use dialboard_engine::event::{parse_event, parse_event_text, ParsedEvent};
use dialboard_engine::taxonomy::CompiledTaxonomy;
use dialboard_engine::FieldError;
use dialboard_store::{Store, TenantInfo};
use mapping::Mapping;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Events per store transaction.
const BATCH: usize = 5_000;
/// Rejections kept in the summary (the rejects file has all of them).
pub const SHOWN_REJECTIONS: usize = 20;

/// What a converter makes of rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A `call` event, from the row at `line` (the first row of a call of several).
    Call {
        line: u64,
        value: Value,
    },
    Rejected {
        line: u64,
        reason: String,
    },
    /// The file cannot be imported at all (a CSV header without a named column).
    Fatal(String),
}

/// A file format's rows → events; no IO.
pub trait Converter: Send {
    fn row(&mut self, line: u64, fields: &[String], out: &mut Vec<Output>);
    /// The end of the file: calls still open are complete.
    fn finish(&mut self, out: &mut Vec<Output>);
    /// The source column an event field came from, to name it in a rejection.
    fn column_of(&self, _field: &str) -> Option<String> {
        None
    }
}

/// An import's options, as the command line's flags or the upload's query parameters give
/// them (the same names, `-` for `_`). A job stores them as its payload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSpec {
    pub format: String,
    /// The zone of local times in the file; the tenant's when absent.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Times in the file are UTC.
    #[serde(default)]
    pub utc: bool,
    /// `field=Column,...` (`--format csv`).
    #[serde(default)]
    pub columns: Option<String>,
    /// A `mod_cdr_csv` template (`--format freeswitch-cdr`).
    #[serde(default)]
    pub template: Option<String>,
    /// `SOURCE=Disposition,...`.
    #[serde(default)]
    pub map_disposition: Option<String>,
    /// `PEER=agent_id,...`.
    #[serde(default)]
    pub map_agent: Option<String>,
    #[serde(default)]
    pub inbound_context: Option<String>,
    #[serde(default)]
    pub outbound_context: Option<String>,
}

pub const FORMATS: [&str; 4] = ["ndjson", "csv", "asterisk-cdr", "freeswitch-cdr"];

fn pairs(field: &str, text: &Option<String>) -> Result<Vec<(String, String)>, FieldError> {
    let Some(text) = text else { return Ok(Vec::new()) };
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => Ok((a.trim().into(), b.trim().into())),
            _ => Err(FieldError::new(field, format!("'{p}' is not NAME=VALUE"))),
        })
        .collect()
}

fn list(text: &Option<String>) -> Vec<String> {
    text.iter()
        .flat_map(|t| t.split(','))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

impl ImportSpec {
    /// Checks the options and builds the converter (`None` for NDJSON, whose lines are events).
    /// Errors name the option.
    pub fn converter(&self, tenant_zone: &str) -> Result<Option<Box<dyn Converter>>, FieldError> {
        if !FORMATS.contains(&self.format.as_str()) {
            return Err(FieldError::new(
                "format",
                format!("must be one of {}", FORMATS.join(", ")),
            ));
        }
        if self.utc && self.timezone.is_some() {
            return Err(FieldError::new("utc", "give --timezone or --utc, not both"));
        }
        let zone = match (&self.timezone, self.utc) {
            (_, true) => jiff::tz::TimeZone::UTC,
            (Some(tz), false) => jiff::tz::TimeZone::get(tz)
                .map_err(|_| FieldError::new("timezone", format!("'{tz}' is not an IANA time zone")))?,
            (None, false) => jiff::tz::TimeZone::get(tenant_zone).unwrap_or(jiff::tz::TimeZone::UTC),
        };
        let mapping = Mapping::new(
            zone,
            &pairs("map_disposition", &self.map_disposition)?,
            &pairs("map_agent", &self.map_agent)?,
            &list(&self.inbound_context),
            &list(&self.outbound_context),
        );
        let only = |field: &str, given: bool, format: &str| match given && self.format != format {
            true => Err(FieldError::new(field, format!("applies to --format {format} only"))),
            false => Ok(()),
        };
        only("columns", self.columns.is_some(), "csv")?;
        only("template", self.template.is_some(), "freeswitch-cdr")?;
        Ok(match self.format.as_str() {
            "ndjson" => None,
            "asterisk-cdr" => Some(Box::new(asterisk::Asterisk::new(mapping))),
            "freeswitch-cdr" => Some(Box::new(
                freeswitch::FreeSwitch::new(mapping, self.template.as_deref())
                    .map_err(|e| FieldError::new("template", e.trim_start_matches("--template: ")))?,
            )),
            _ => {
                let columns = pairs("columns", &self.columns)?;
                columns::check(&columns)
                    .map_err(|e| FieldError::new("columns", e.trim_start_matches("--columns: ")))?;
                Some(Box::new(columns::Columns::new(mapping, columns)))
            }
        })
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Summary {
    /// Lines read (the header and blank lines included).
    pub lines: u64,
    /// Valid events made of them (calls, for CDRs): accepted or duplicates.
    pub events: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// The first rejections, `line N: reason`.
    pub first_rejections: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines: {} accepted, {} duplicates, {} rejected",
            self.lines, self.accepted, self.duplicates, self.rejected
        )
    }
}

#[derive(Debug)]
pub enum ImportError {
    /// The options or the file's header are wrong (the field names the option).
    Invalid(FieldError),
    Failed(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Invalid(e) => write!(f, "--{}: {}", e.field.replace('_', "-"), e.message),
            ImportError::Failed(m) => f.write_str(m),
        }
    }
}

/// A reader that counts the bytes read through it (for progress).
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What the reading thread hands to the store.
struct Batch {
    events: Vec<ParsedEvent>,
    lines: u64,
    rejections: Vec<String>,
    rejected: u64,
}

/// Imports `input` into the tenant: reads and converts on a blocking thread, stores batch by
/// batch, writes each rejection to `rejects` (CSV: `line,reason,text`), and calls `progress`
/// with the summary so far and the bytes read after each batch.
pub async fn import<P, F>(
    store: Arc<dyn Store>,
    tenant: &TenantInfo,
    spec: &ImportSpec,
    input: Box<dyn Read + Send>,
    rejects: Option<Box<dyn Write + Send>>,
    mut progress: P,
) -> Result<Summary, ImportError>
where
    P: FnMut(Summary, u64) -> F,
    F: Future<Output = Result<(), String>>,
{
    let converter = spec
        .converter(&tenant.settings.timezone)
        .map_err(ImportError::Invalid)?;
    let count = Arc::new(AtomicU64::new(0));
    let input = Counted {
        inner: input,
        count: count.clone(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let taxonomy = tenant.taxonomy.clone();
    let reader = tokio::task::spawn_blocking(move || read_all(input, converter, taxonomy, rejects, tx));
    let mut summary = Summary::default();
    while let Some(mut batch) = rx.recv().await {
        summary.add(&mut batch);
        if !batch.events.is_empty() {
            let stored = store
                .ingest(tenant.id, batch.events)
                .await
                .map_err(|e| ImportError::Failed(e.to_string()))?;
            summary.accepted += stored.accepted as u64;
            summary.duplicates += stored.duplicates as u64;
        }
        progress(summary.clone(), count.load(Ordering::Relaxed))
            .await
            .map_err(ImportError::Failed)?;
    }
    reader
        .await
        .map_err(|e| ImportError::Failed(format!("the reader stopped: {e}")))??;
    Ok(summary)
}

/// The importer without a store: reads and converts `input` as [`import`] does and counts the
/// events it would store (`accepted` stays 0). Benchmarks measure the importer's own time and
/// memory with it, apart from the store's.
pub async fn convert_only(
    tenant: &TenantInfo,
    spec: &ImportSpec,
    input: Box<dyn Read + Send>,
) -> Result<Summary, ImportError> {
    let converter = spec
        .converter(&tenant.settings.timezone)
        .map_err(ImportError::Invalid)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let taxonomy = tenant.taxonomy.clone();
    let reader = tokio::task::spawn_blocking(move || read_all(input, converter, taxonomy, None, tx));
    let mut summary = Summary::default();
    while let Some(mut batch) = rx.recv().await {
        summary.add(&mut batch);
    }
    reader
        .await
        .map_err(|e| ImportError::Failed(format!("the reader stopped: {e}")))??;
    Ok(summary)
}

impl Summary {
    /// Counts a batch read (not what the store made of its events).
    fn add(&mut self, batch: &mut Batch) {
        self.lines += batch.lines;
        self.events += batch.events.len() as u64;
        self.rejected += batch.rejected;
        for r in batch.rejections.drain(..) {
            if self.first_rejections.len() < SHOWN_REJECTIONS {
                self.first_rejections.push(r);
            }
        }
    }
}

/// Writes one rejection as a CSV line.
fn write_reject(out: &mut dyn Write, line: u64, reason: &str, text: &str) -> std::io::Result<()> {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    writeln!(out, "{line},{},{}", quote(reason), quote(text))
}

/// The reading thread: lines → converter → validated events, in batches.
fn read_all(
    input: impl Read,
    mut converter: Option<Box<dyn Converter>>,
    taxonomy: CompiledTaxonomy,
    mut rejects: Option<Box<dyn Write + Send>>,
    tx: tokio::sync::mpsc::Sender<Batch>,
) -> Result<(), ImportError> {
    let failed = |e: std::io::Error| ImportError::Failed(format!("reading the file: {e}"));
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut bytes = Vec::with_capacity(4096);
    let mut fields: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let new_batch = || Batch {
        events: Vec::with_capacity(BATCH),
        lines: 0,
        rejections: Vec::new(),
        rejected: 0,
    };
    let mut batch = new_batch();
    let mut line_no = 0u64;
    let mut done = false;
    if let Some(w) = rejects.as_mut() {
        writeln!(w, "line,reason,text").map_err(failed)?;
    }
    while !done {
        bytes.clear();
        let n = reader.read_until(b'\n', &mut bytes).map_err(failed)?;
        let text = if n == 0 {
            done = true;
            std::borrow::Cow::Borrowed("")
        } else {
            line_no += 1;
            batch.lines += 1;
            while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                bytes.pop();
            }
            String::from_utf8_lossy(&bytes)
        };
        match (&mut converter, done) {
            (_, false) if text.trim().is_empty() => {}
            (None, false) => match parse_event_text(&text, &taxonomy) {
                Ok(event) => batch.events.push(event),
                Err((_, errors)) => out.push(Output::Rejected {
                    line: line_no,
                    reason: describe(&errors, None),
                }),
            },
            (Some(c), false) => match record::split(&text, &mut fields) {
                Ok(()) => c.row(line_no, &fields, &mut out),
                Err(reason) => out.push(Output::Rejected { line: line_no, reason }),
            },
            (Some(c), true) => c.finish(&mut out),
            (None, true) => {}
        }
        for o in out.drain(..) {
            let (line, reason) = match o {
                Output::Call { line, value } => match parse_event(&value, &taxonomy) {
                    Ok(event) => {
                        batch.events.push(event);
                        continue;
                    }
                    Err((_, errors)) => (line, describe(&errors, converter.as_deref())),
                },
                Output::Rejected { line, reason } => (line, reason),
                Output::Fatal(reason) => {
                    return Err(ImportError::Invalid(FieldError::new(
                        "columns",
                        reason.trim_start_matches("--columns: "),
                    )))
                }
            };
            batch.rejected += 1;
            if batch.rejections.len() < SHOWN_REJECTIONS {
                batch.rejections.push(format!("line {line}: {reason}"));
            }
            if let Some(w) = rejects.as_mut() {
                // The text is the line's when the rejection is about the line just read.
                let raw = if line == line_no && !done { text.as_ref() } else { "" };
                write_reject(w.as_mut(), line, &reason, raw).map_err(failed)?;
            }
        }
        if batch.events.len() >= BATCH || done {
            let full = std::mem::replace(&mut batch, new_batch());
            if tx.blocking_send(full).is_err() {
                // The importer stopped (its store failed): it reports why.
                return Ok(());
            }
        }
    }
    if let Some(w) = rejects.as_mut() {
        w.flush().map_err(failed)?;
    }
    Ok(())
}

/// An event's validation errors as one reason, fields named by their source column.
fn describe(errors: &[FieldError], converter: Option<&dyn Converter>) -> String {
    errors
        .iter()
        .map(|e| {
            let column = converter.and_then(|c| c.column_of(&e.field));
            match (column, e.field.is_empty()) {
                (Some(c), _) => format!("{} (column '{c}'): {}", e.field, e.message),
                (None, true) => e.message.clone(),
                (None, false) => format!("{}: {}", e.field, e.message),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `dialboard import`: a local file, with a progress bar and a summary on stdout.
pub async fn run(
    store: &Arc<dyn Store>,
    tenant: &str,
    spec: &ImportSpec,
    path: &std::path::Path,
    rejects: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use indicatif::{ProgressBar, ProgressStyle};
    let tenant = store
        .tenant_by_name(tenant)
        .await?
        .ok_or_else(|| anyhow::anyhow!("--tenant: no tenant named '{tenant}'"))?;
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let bar = ProgressBar::new(file.metadata()?.len());
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}")
            .expect("a valid template"),
    );
    let rejects_file: Option<Box<dyn Write + Send>> = match rejects {
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("--rejects {}: {e}", p.display()))?,
        ))),
        None => None,
    };
    let shown = bar.clone();
    let summary = import(
        store.clone(),
        &tenant,
        spec,
        Box::new(file),
        rejects_file,
        move |s, bytes| {
            shown.set_position(bytes);
            shown.set_message(format!("{} accepted, {} rejected", s.accepted, s.rejected));
            std::future::ready(Ok(()))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    bar.finish_and_clear();
    for r in &summary.first_rejections {
        eprintln!("{r}");
    }
    if summary.rejected > summary.first_rejections.len() as u64 {
        let more = summary.rejected - summary.first_rejections.len() as u64;
        match rejects {
            Some(p) => eprintln!("… and {more} more rejected, all in {}", p.display()),
            None => eprintln!("… and {more} more rejected (--rejects FILE lists them all)"),
        }
    }
    println!("imported {}: {summary}", path.display());
    Ok(())
}
