//! Raw-call exports (seed 000's columns), without HTTP: the rows come from the drill-down's
//! calls as typed records (`Store::export_calls`, page by page, with a query body already
//! narrowed to the caller's reach, the filters applied in SQL),
//! are rendered by `dialboard-export`, and go to a [`Sink`]: an HTTP body as they are made, or
//! an export job's file in the store. The API answers small exports at once and queues large
//! ones as jobs of kind [`JOB_KIND`] on the job mechanism.

use crate::jobs::{Handler, JobContext};
use dialboard_engine::event::MICROS;
use dialboard_export::{Cell, Column, ColumnKind, CsvWriter, PdfHeader, Table, XlsxWriter};
use dialboard_store::{CallsRequest, DirectoryKind, EventDetails, ExportCall, Store, TenantInfo};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const JOB_KIND: &str = "export";
/// Past this many rows an export is a job (seed 000: "max 100,000 rows per export").
pub const SYNC_LIMIT: i64 = 100_000;
/// How long a finished export's file can be downloaded.
pub const KEEP_FILE_SECONDS: i64 = 7 * 24 * 3600;
/// Calls read per page. A page's bodies are read block by block (`Store::export_calls`; a block
/// holds one ingest transaction's events, which a page shares with its neighbours), so fewer,
/// larger pages read each block fewer times; a page is held in memory three times at most:
/// being read, read ahead, and being rendered (~1 KB a row).
const PAGE: usize = 20_000;
/// Bytes per chunk of a job's file in the store.
const CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Xlsx,
    Pdf,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Pdf => "pdf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Pdf => "application/pdf",
        }
    }
}

/// An export job's payload: what to export, already narrowed to the requester's reach when it
/// was asked for (a job runs later, on any node, without the requester's credential).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRequest {
    /// What is exported: `calls` (the raw drill-down) for now; views and reports later.
    pub source: String,
    pub format: Format,
    /// The drill-down's query body (filters, range, timezone) after `Principal::restrict`.
    pub query: Value,
    /// The requester (as the audit log names them): only they, or an admin, see the job.
    pub owner: String,
    /// The `now` the request was made at (epoch seconds), so a relative range such as
    /// `last_7_days` means the same days when the job runs later.
    pub now: i64,
}

/// Seed 000's call export columns.
pub fn call_columns() -> Vec<Column> {
    use ColumnKind::*;
    [
        ("call_id", Text),
        ("date", Date),
        ("time", Time),
        ("agent_name", Text),
        ("prospect_name", Text),
        ("prospect_phone", Text),
        ("prospect_company", Text),
        ("campaign_name", Text),
        ("disposition", Text),
        ("talk_duration", DurationSeconds),
        ("wait_time", DurationSeconds),
        ("wrap_time", DurationSeconds),
        ("ai_score", Number),
        ("sentiment", Number),
        ("recording_url", Text),
        ("notes", Text),
        ("meeting_booked", Boolean),
        ("crm_synced", Boolean),
    ]
    .into_iter()
    .map(|(name, kind)| Column::new(name, kind))
    .collect()
}

/// An export that cannot be made, with the reason for the client (`Invalid`) or the log.
#[derive(Debug)]
pub enum ExportFailure {
    /// The query's fields are wrong: (field, message) pairs.
    Invalid(Vec<dialboard_engine::FieldError>),
    Failed(String),
}

impl<E: std::fmt::Display> From<E> for ExportFailure {
    fn from(e: E) -> Self {
        ExportFailure::Failed(e.to_string())
    }
}

/// The calls an export reads, page by page, as rows of [`call_columns`].
pub struct CallRows {
    store: Arc<dyn Store>,
    pub tenant: Arc<TenantInfo>,
    query: Value,
    now: i64,
    cursor: Option<String>,
    done: bool,
    /// Calls read per page ([`PAGE`]; tests read small pages to cross their edges).
    page: usize,
    names: Arc<RowMaker>,
}

/// What turns a stored call into a row of [`call_columns`]: the tenant's taxonomy and the
/// directory's names. Shared, so a page is turned into rows while the next one is read.
struct RowMaker {
    tenant: Arc<TenantInfo>,
    agent_names: HashMap<String, String>,
    campaign_names: HashMap<String, String>,
}

impl CallRows {
    pub async fn new(store: Arc<dyn Store>, tenant_id: i64, query: Value, now: i64) -> Result<CallRows, ExportFailure> {
        let tenant = store.tenant(tenant_id).await?;
        let names = |entries: Vec<(String, Value)>| -> HashMap<String, String> {
            entries
                .into_iter()
                .filter_map(|(id, body)| Some((id, body["name"].as_str()?.to_string())))
                .collect()
        };
        let agent_names = names(store.directory(tenant_id, DirectoryKind::Agent).await?);
        let campaign_names = names(store.directory(tenant_id, DirectoryKind::Campaign).await?);
        Ok(CallRows {
            store,
            tenant: tenant.clone(),
            query,
            now,
            cursor: None,
            done: false,
            page: PAGE,
            names: Arc::new(RowMaker {
                tenant,
                agent_names,
                campaign_names,
            }),
        })
    }

    /// How many calls match: the same query model's `total_calls` over the same filters and
    /// range (the drill-down lists exactly the calls that measure counts), from the rollups.
    pub async fn count(&self) -> Result<i64, ExportFailure> {
        let mut body = self.query.clone();
        body["measures"] = json!(["total_calls"]);
        let result = self
            .store
            .query(self.tenant.id, body, self.now)
            .await?
            .map_err(ExportFailure::Invalid)?;
        Ok(result.to_json()["totals"]["total_calls"].as_i64().unwrap_or(0))
    }

    /// The next page of rows; `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Vec<Cell>>>, ExportFailure> {
        let names = self.names.clone();
        Ok(self.next_calls().await?.map(|calls| names.rows(calls)))
    }

    /// The next page of stored calls, not yet rows; `None` after the last.
    async fn next_calls(&mut self) -> Result<Option<Vec<ExportCall>>, ExportFailure> {
        if self.done {
            return Ok(None);
        }
        let request = CallsRequest {
            query: self.query.clone(),
            cursor: self.cursor.take(),
            limit: self.page,
        };
        let page = self
            .store
            .export_calls(self.tenant.id, request, self.now)
            .await?
            .map_err(ExportFailure::Invalid)?;
        self.cursor = page.next_cursor;
        self.done = self.cursor.is_none();
        Ok(Some(page.rows))
    }
    /// The range and zone as the PDF's header shows them.
    pub fn header(&self, title: &str) -> PdfHeader {
        let range = &self.query["range"];
        let range = match (range["preset"].as_str(), range["start"].as_str(), range["end"].as_str()) {
            (Some(preset), _, _) => preset.replace('_', " "),
            (None, Some(start), Some(end)) => format!("{start} – {end}"),
            _ => "last 7 days".into(),
        };
        PdfHeader {
            title: title.into(),
            tenant: self.tenant.name.clone(),
            range,
            zone: self.zone(),
        }
    }

    /// The zone times are shown in: the query's, or the tenant's.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        let name = self.query["timezone"]
            .as_str()
            .unwrap_or(self.tenant.settings.timezone.as_str());
        jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

impl RowMaker {
    fn rows(&self, calls: Vec<ExportCall>) -> Vec<Vec<Cell>> {
        calls.into_iter().map(|call| self.row(call)).collect()
    }

    fn row(&self, row: ExportCall) -> Vec<Cell> {
        let ExportCall { call, analysis, body } = row;
        let details = body.map(|b| EventDetails::from_body(&b)).unwrap_or_default();
        let text = |v: Option<String>| v.map_or(Cell::Empty, Cell::Text);
        let named = |id: Option<String>, names: &HashMap<String, String>| match id {
            Some(id) => Cell::Text(names.get(&id).cloned().unwrap_or(id)),
            None => Cell::Empty,
        };
        let int = |v: Option<i64>| v.map_or(Cell::Empty, Cell::Int);
        let micros = |v: Option<i64>| v.map_or(Cell::Empty, |v| Cell::Number(v as f64 / MICROS));
        let started = Cell::Instant(call.started_ns.div_euclid(1_000_000_000));
        let meeting = self.tenant.taxonomy.class(&call.disposition).meeting;
        vec![
            Cell::Text(call.call_id),
            started.clone(),
            started,
            named(Some(call.agent_id), &self.agent_names),
            text(details.prospect.name),
            text(details.prospect.phone),
            text(details.prospect.company),
            named(call.campaign_id, &self.campaign_names),
            Cell::Text(call.disposition),
            int(call.talk_seconds),
            int(call.wait_seconds),
            int(call.wrap_seconds),
            micros(analysis.as_ref().and_then(|a| a.score_micros)),
            micros(analysis.as_ref().and_then(|a| a.sentiment_micros)),
            text(details.recording_url),
            text(details.notes),
            Cell::Bool(meeting),
            // Not part of the event schema (SPEC §3): kept when a source sends it.
            details.crm_synced.map_or(Cell::Empty, Cell::Bool),
        ]
    }
}

/// Where an export's bytes go.
pub enum Sink {
    /// An HTTP response body, chunk by chunk (a bounded channel: a slow client slows the reads
    /// instead of filling memory).
    Body(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>),
    /// An export job's file in the store, in chunks.
    JobFile {
        store: Arc<dyn Store>,
        tenant_id: i64,
        id: String,
        seq: i64,
        pending: Vec<u8>,
    },
}

impl Sink {
    pub fn job_file(store: Arc<dyn Store>, tenant_id: i64, id: &str) -> Sink {
        Sink::JobFile {
            store,
            tenant_id,
            id: id.to_string(),
            seq: 0,
            pending: Vec::new(),
        }
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), ExportFailure> {
        match self {
            Sink::Body(tx) => tx
                .send(Ok(bytes))
                .await
                .map_err(|_| ExportFailure::Failed("the client went away".into())),
            Sink::JobFile { pending, .. } => {
                pending.extend(bytes);
                if pending.len() >= CHUNK {
                    self.flush_chunk().await?;
                }
                Ok(())
            }
        }
    }

    async fn flush_chunk(&mut self) -> Result<(), ExportFailure> {
        if let Sink::JobFile {
            store,
            tenant_id,
            id,
            seq,
            pending,
        } = self
        {
            if !pending.is_empty() || *seq == 0 {
                store
                    .put_job_file_chunk(*tenant_id, id, *seq, std::mem::take(pending))
                    .await?;
                *seq += 1;
            }
        }
        Ok(())
    }
}

/// The pages of `rows`, read one ahead of the page being rendered: the store reads the next
/// page (on a blocking thread) while this one is turned into rows and written, so reading and
/// rendering take a core each instead of taking turns. Dropping the receiver (a client gone)
/// stops the reading.
fn read_ahead(mut rows: CallRows) -> Pages {
    let names = rows.names.clone();
    let (tx, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        loop {
            let page = match rows.next_calls().await {
                Ok(Some(page)) => Ok(page),
                Ok(None) => return,
                Err(e) => Err(e),
            };
            let failed = page.is_err();
            if tx.send(page).await.is_err() || failed {
                return;
            }
        }
    });
    Pages { receiver, names }
}

/// The pages [`read_ahead`] reads.
struct Pages {
    receiver: tokio::sync::mpsc::Receiver<Result<Vec<ExportCall>, ExportFailure>>,
    names: Arc<RowMaker>,
}

impl Pages {
    /// The next page's rows; `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<Vec<Cell>>>, ExportFailure> {
        match self.receiver.recv().await.transpose()? {
            Some(calls) => Ok(Some(self.names.rows(calls))),
            None => Ok(None),
        }
    }
}

/// How far an export got: rows written so far (`on_progress` hears it after every page).
pub struct Summary {
    pub rows: i64,
    pub bytes: u64,
}

/// Renders every row of `rows` as `format` into `sink`.
pub async fn export_calls<F, Fut>(
    rows: CallRows,
    format: Format,
    sink: &mut Sink,
    mut on_progress: F,
) -> Result<Summary, ExportFailure>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let columns = call_columns();
    let zone = rows.zone();
    let header = rows.header("Calls");
    let mut pages = read_ahead(rows);
    let mut count = 0i64;
    let mut bytes = 0u64;
    match format {
        Format::Csv => {
            let mut csv = CsvWriter::new(Vec::with_capacity(1 << 16), &columns, zone)?;
            while let Some(page) = pages.next().await? {
                for row in &page {
                    csv.write_row(row)?;
                }
                count += page.len() as i64;
                let chunk = csv.take_bytes()?;
                bytes += chunk.len() as u64;
                sink.write(chunk).await?;
                on_progress(count).await.map_err(ExportFailure::Failed)?;
            }
        }
        Format::Xlsx => {
            // Constant-memory sheets spill rows to temporary files; the book is saved to one
            // and then copied out in chunks.
            let mut book = XlsxWriter::new(zone, None)?;
            book.start_sheet("Calls", &columns)?;
            while let Some(page) = pages.next().await? {
                for row in &page {
                    book.write_row(row)?;
                }
                count += page.len() as i64;
                on_progress(count).await.map_err(ExportFailure::Failed)?;
            }
            let path = std::env::temp_dir().join(format!("dialboard-export-{}.xlsx", dialboard_store::jobs::new_id()));
            let saved = path.clone();
            tokio::task::spawn_blocking(move || book.save(&saved)).await??;
            let copied = copy_file(&path, sink).await;
            let _ = std::fs::remove_file(&path);
            bytes = copied?;
        }
        Format::Pdf => {
            let mut table = Table {
                title: "Calls".into(),
                columns,
                rows: Vec::new(),
            };
            while let Some(page) = pages.next().await? {
                count += page.len() as i64;
                table.rows.extend(page);
                on_progress(count).await.map_err(ExportFailure::Failed)?;
            }
            let pdf = tokio::task::spawn_blocking(move || dialboard_export::pdf(&header, &[], &[table])).await??;
            bytes = pdf.len() as u64;
            sink.write(pdf).await?;
        }
    }
    sink.flush_chunk().await?;
    Ok(Summary { rows: count, bytes })
}

async fn copy_file(path: &std::path::Path, sink: &mut Sink) -> Result<u64, ExportFailure> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut total = 0u64;
    loop {
        // Each read off the runtime's threads (the file may be large).
        let (back, chunk) = tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0u8; 256 * 1024];
            let n = file.read(&mut buffer);
            (
                file,
                n.map(|n| {
                    buffer.truncate(n);
                    buffer
                }),
            )
        })
        .await?;
        file = back;
        let chunk = chunk?;
        if chunk.is_empty() {
            return Ok(total);
        }
        total += chunk.len() as u64;
        sink.write(chunk).await?;
    }
}

/// The export job's handler: renders the file into the store, reporting progress, and
/// returns what `GET /exports/{id}` shows (rows, bytes, the file's name and expiry).
pub fn job_handler() -> Handler {
    Arc::new(|cx: JobContext| Box::pin(run_job(cx)))
}

async fn run_job(cx: JobContext) -> Result<Value, String> {
    let request: ExportRequest =
        serde_json::from_value(cx.job.payload.clone()).map_err(|e| format!("the job's payload: {e}"))?;
    let failure = |f: ExportFailure| match f {
        ExportFailure::Invalid(fields) => format!("invalid query: {fields:?}"),
        ExportFailure::Failed(m) => m,
    };
    let rows = CallRows::new(cx.store.clone(), cx.job.tenant_id, request.query.clone(), request.now)
        .await
        .map_err(failure)?;
    let total = rows.count().await.map_err(failure)?;
    cx.progress(0, Some(total)).await?;
    let mut sink = Sink::job_file(cx.store.clone(), cx.job.tenant_id, &cx.job.id);
    let mut reported = 0;
    let summary = export_calls(rows, request.format, &mut sink, |done| {
        // Every 10,000 rows is enough for a progress bar, and renews the lease.
        let report = done - reported >= 10_000;
        if report {
            reported = done;
        }
        let cx = &cx;
        async move {
            if report {
                cx.progress(done, Some(total.max(done))).await
            } else {
                Ok(())
            }
        }
    })
    .await
    .map_err(failure)?;
    let finished = jiff::Timestamp::now().as_second();
    crate::access::audit(
        &cx.store,
        cx.job.tenant_id,
        &request.owner,
        "export_finished",
        Some(&cx.job.id),
        json!({"source": request.source, "format": request.format, "rows": summary.rows, "bytes": summary.bytes}),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(json!({
        "rows": summary.rows,
        "bytes": summary.bytes,
        "file_name": format!("calls-{}.{}", cx.job.id, request.format.extension()),
        "expires_at": finished + KEEP_FILE_SECONDS,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialboard_engine::event::parse_event;
    use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
    use dialboard_store::sqlite::{Options, SqliteStore};
    use dialboard_store::TenantSettings;

    /// Pages read ahead of the one being written still give every call once, newest first,
    /// each with its event's fields, across many page edges (pages of 7 calls of 50).
    #[tokio::test]
    async fn a_csv_read_ahead_in_small_pages_holds_every_call_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("t.db"), Options::default()).unwrap());
        let tenant = store.create_tenant("t", TenantSettings::new("UTC")).await.unwrap();
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let events = (0..50)
            .map(|i| {
                let e = json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i:02}"),
                    "agent_id": "a1", "disposition": "Connected", "talk_seconds": i,
                    "started_at": format!("2026-03-02T{:02}:{:02}:00Z", i / 60, i % 60),
                    "notes": format!("note {i}")});
                parse_event(&e, &taxonomy).unwrap()
            })
            .collect();
        store.ingest(tenant.id, events).await.unwrap();
        let query = json!({"range": {"start": "2026-03-02", "end": "2026-03-03"}});
        let mut rows = CallRows::new(store.clone(), tenant.id, query, 1_772_500_000)
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        rows.page = 7;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
        let reader = tokio::spawn(async move {
            let mut bytes = Vec::new();
            while let Some(chunk) = rx.recv().await {
                bytes.extend(chunk.unwrap());
            }
            bytes
        });
        let mut sink = Sink::Body(tx);
        let summary = export_calls(rows, Format::Csv, &mut sink, |_| async { Ok(()) })
            .await
            .map_err(|e| format!("{e:?}"))
            .unwrap();
        drop(sink);
        let bytes = reader.await.unwrap();
        let mut csv = csv::Reader::from_reader(bytes.as_slice());
        let read: Vec<(String, String)> = csv
            .records()
            .map(|r| {
                let r = r.unwrap();
                (r[0].to_string(), r[15].to_string())
            })
            .collect();
        let expected: Vec<(String, String)> = (0..50)
            .rev()
            .map(|i| (format!("c{i:02}"), format!("note {i}")))
            .collect();
        assert_eq!(summary.rows, 50);
        assert_eq!(read, expected);
    }
}
