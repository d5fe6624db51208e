//! An uploaded file's import as a job on the job mechanism (`POST /api/v1/imports`): the upload
//! is stored in chunks (as export files are, so any node can run the job), the job streams it
//! through [`super::import`], reports the bytes read as progress, and writes the rejected rows
//! to its own file. A retried job imports again from the start, which counts nothing twice
//! (event ids come from the source's ids).

use super::{import, ImportError, ImportSpec};
use crate::jobs::{Handler, JobContext};
use dialboard_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::runtime::Handle;

pub const JOB_KIND: &str = "import";
/// Bytes per stored chunk of an upload or a rejects file.
pub const CHUNK: usize = 1 << 20;

/// An import job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRequest {
    pub spec: ImportSpec,
    /// Where the upload's chunks are stored (a job-file id of its own).
    pub upload: String,
    pub bytes: i64,
    /// The file's name as the client gave it.
    pub name: Option<String>,
    /// The requester, as the audit log names them.
    pub owner: String,
}

/// The id the upload of a job is stored under.
pub fn upload_id() -> String {
    format!("upload-{}", dialboard_store::jobs::new_id())
}

/// Reads a stored file chunk by chunk; used on a blocking thread.
struct StoredFile {
    store: Arc<dyn Store>,
    runtime: Handle,
    tenant_id: i64,
    id: String,
    seq: i64,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for StoredFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            let next = self
                .runtime
                .block_on(self.store.job_file_chunk(self.tenant_id, &self.id, self.seq))
                .map_err(std::io::Error::other)?;
            match next {
                Some(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                    self.seq += 1;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Writes a job's file chunk by chunk; used on a blocking thread.
struct JobFile {
    store: Arc<dyn Store>,
    runtime: Handle,
    tenant_id: i64,
    id: String,
    seq: i64,
    pending: Vec<u8>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
}

impl JobFile {
    fn put(&mut self) -> std::io::Result<()> {
        let data = std::mem::take(&mut self.pending);
        self.bytes
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        self.runtime
            .block_on(self.store.put_job_file_chunk(self.tenant_id, &self.id, self.seq, data))
            .map_err(std::io::Error::other)?;
        self.seq += 1;
        Ok(())
    }
}

impl Write for JobFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= CHUNK {
            self.put()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() || self.seq == 0 {
            self.put()?;
        }
        Ok(())
    }
}

pub fn job_handler() -> Handler {
    Arc::new(|cx: JobContext| Box::pin(run(cx)))
}

async fn run(cx: JobContext) -> Result<Value, String> {
    let request: ImportRequest =
        serde_json::from_value(cx.job.payload.clone()).map_err(|e| format!("the job's payload: {e}"))?;
    let tenant_id = cx.job.tenant_id;
    let tenant = cx.store.tenant(tenant_id).await.map_err(|e| e.to_string())?;
    let runtime = Handle::current();
    let input = StoredFile {
        store: cx.store.clone(),
        runtime: runtime.clone(),
        tenant_id,
        id: request.upload.clone(),
        seq: 0,
        chunk: Vec::new(),
        at: 0,
    };
    let reject_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rejects = JobFile {
        store: cx.store.clone(),
        runtime,
        tenant_id,
        id: cx.job.id.clone(),
        seq: 0,
        pending: Vec::new(),
        bytes: reject_bytes.clone(),
    };
    let total = request.bytes;
    let cx = &cx;
    let outcome = import(
        cx.store.clone(),
        &tenant,
        &request.spec,
        Box::new(input),
        Some(Box::new(rejects)),
        |_, bytes| async move { cx.progress(bytes as i64, Some(total)).await },
    )
    .await;
    let summary = match outcome {
        Ok(summary) => summary,
        Err(ImportError::Invalid(e)) => return Err(format!("{}: {}", e.field, e.message)),
        Err(ImportError::Failed(e)) => return Err(e),
    };
    // The upload is not needed any more: an empty first chunk drops the others.
    cx.store
        .put_job_file_chunk(tenant_id, &request.upload, 0, Vec::new())
        .await
        .map_err(|e| e.to_string())?;
    crate::access::audit(
        &cx.store,
        tenant_id,
        &request.owner,
        "import",
        Some(&cx.job.id),
        json!({"name": request.name, "format": request.spec.format, "accepted": summary.accepted,
               "duplicates": summary.duplicates, "rejected": summary.rejected}),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut result = serde_json::to_value(&summary).expect("a summary serializes");
    result["rejects_bytes"] = reject_bytes.load(std::sync::atomic::Ordering::Relaxed).into();
    Ok(result)
}
