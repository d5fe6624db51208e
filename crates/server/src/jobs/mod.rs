//! The worker of the one job mechanism (`dialboard_store::jobs`): it claims a due job (once
//! across nodes, under a lease), runs the handler of its kind, and stores the outcome; a
//! failure is retried with backoff by the store. [`Worker::run_once`] is the single step, which
//! tests drive; [`Worker::spawn`] loops over it in a server.

use dialboard_store::jobs::{Claim, Job, JobUpdate};
use dialboard_store::{Store, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long a claimed job is held without a progress report before another node may take it.
pub const LEASE_MS: i64 = 60_000;
/// How long an idle worker waits before looking again.
const IDLE_WAIT: Duration = Duration::from_millis(500);

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// What a handler is given: the job and a way to report progress (which renews the lease).
pub struct JobContext {
    pub store: Arc<dyn Store>,
    pub job: Job,
    worker: String,
}

impl JobContext {
    /// Stores progress; `Err` if this worker lost the job (its lease expired and another node
    /// took it over), so the handler stops.
    pub async fn progress(&self, done: i64, total: Option<i64>) -> Result<(), String> {
        let update = JobUpdate::Progress {
            done,
            total,
            lease_ms: LEASE_MS,
        };
        match self
            .store
            .update_job(self.job.tenant_id, &self.job.id, &self.worker, update, now_ms())
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err("the job's lease was lost to another worker".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
/// A kind's handler: the job's result (stored as JSON) or an error (retried, then failed).
pub type Handler = Arc<dyn Fn(JobContext) -> HandlerFuture + Send + Sync>;

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    Succeeded {
        id: String,
        result: Value,
    },
    /// Failed; queued again after a backoff.
    Retrying {
        id: String,
        error: String,
    },
    /// Failed on its last attempt.
    Failed {
        id: String,
        error: String,
    },
    /// Another worker took the job over before this one finished; nothing was stored.
    LostLease {
        id: String,
    },
}

pub struct Worker {
    store: Arc<dyn Store>,
    name: String,
    handlers: HashMap<String, Handler>,
}

impl Worker {
    /// A worker named uniquely (two nodes, or two workers in a test, never share a name).
    pub fn new(store: Arc<dyn Store>) -> Worker {
        Worker {
            store,
            name: format!("worker-{}", dialboard_store::jobs::new_id()),
            handlers: HashMap::new(),
        }
    }

    /// The worker a server runs: every kind this build handles.
    pub fn for_server(store: Arc<dyn Store>) -> Worker {
        Worker::new(store)
            .handle(crate::exports::JOB_KIND, crate::exports::job_handler())
            .handle(crate::import::job::JOB_KIND, crate::import::job::job_handler())
            .handle(crate::retention::JOB_KIND, crate::retention::job_handler(None))
    }

    pub fn handle(mut self, kind: &str, handler: Handler) -> Worker {
        self.handlers.insert(kind.to_string(), handler);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Claims and runs one due job: of `kind`, or of any kind this worker handles.
    pub async fn run_once(&self, kind: Option<&str>) -> Result<Outcome, StoreError> {
        let kinds: Vec<&String> = match kind {
            Some(k) => self.handlers.keys().filter(|h| h.as_str() == k).collect(),
            None => self.handlers.keys().collect(),
        };
        for kind in kinds {
            let claim = Claim {
                worker: self.name.clone(),
                kind: Some(kind.clone()),
                lease_ms: LEASE_MS,
            };
            if let Some(job) = self.store.claim_job(claim, now_ms()).await? {
                return self.run(job).await;
            }
        }
        Ok(Outcome::Idle)
    }

    async fn run(&self, job: Job) -> Result<Outcome, StoreError> {
        let (tenant_id, id, attempts, max_attempts) = (job.tenant_id, job.id.clone(), job.attempts, job.max_attempts);
        let handler = self.handlers[&job.kind].clone();
        let span = tracing::info_span!("job", kind = %job.kind, %id, attempt = attempts);
        let context = JobContext {
            store: self.store.clone(),
            job,
            worker: self.name.clone(),
        };
        // A panicking handler is a failed attempt, not a dead worker.
        let ran = tokio::spawn(tracing::Instrument::instrument(handler(context), span)).await;
        let ran = ran.unwrap_or_else(|e| Err(format!("the handler panicked: {e}")));
        let (update, outcome) = match ran {
            Ok(result) => (
                JobUpdate::Succeeded(result.clone()),
                Outcome::Succeeded { id: id.clone(), result },
            ),
            Err(error) => {
                tracing::warn!(%id, attempts, %error, "job failed");
                let outcome = if attempts < max_attempts {
                    Outcome::Retrying {
                        id: id.clone(),
                        error: error.clone(),
                    }
                } else {
                    Outcome::Failed {
                        id: id.clone(),
                        error: error.clone(),
                    }
                };
                (JobUpdate::Failed(error), outcome)
            }
        };
        let held = self
            .store
            .update_job(tenant_id, &id, &self.name, update, now_ms())
            .await?;
        Ok(if held { outcome } else { Outcome::LostLease { id } })
    }

    /// Runs jobs until `stop` is set: at once while work is due, every half second otherwise.
    pub fn spawn(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut stop = stop;
            while !*stop.borrow() {
                let wait = match self.run_once(None).await {
                    Ok(Outcome::Idle) => IDLE_WAIT,
                    Ok(_) => Duration::ZERO,
                    Err(e) => {
                        tracing::warn!(error = %e, "the job worker could not reach the store");
                        IDLE_WAIT * 4
                    }
                };
                if !wait.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        })
    }
}
