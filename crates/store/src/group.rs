//! Group commit, the same on both stores: ingest requests queued while a transaction runs are
//! taken together into the next one (one durable commit for all), and each is answered — and
//! its newly stored events published — only after that commit.

use crate::apply::{apply_batch, Records};
use crate::contribution::{self, Contribution, Counted};
use crate::overlay::DeltaMap;
use crate::{Change, ChangeFeed, IngestSummary, Result, StoreError, StoreMetrics, TenantInfo, TouchedCall};
use dialboard_engine::event::ParsedEvent;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

pub struct IngestRequest {
    pub tenant: Arc<TenantInfo>,
    pub events: Vec<ParsedEvent>,
    pub reply: oneshot::Sender<Result<IngestSummary>>,
}

/// Most events one transaction takes, so one commit never grows without bound.
const MAX_GROUP_EVENTS: usize = 50_000;

/// The instant a commit's events are logged as received.
pub fn now_ns() -> i64 {
    jiff::Timestamp::now().as_nanosecond() as i64
}

/// What one request's events did.
pub struct Applied {
    pub summary: IngestSummary,
    /// Per event, whether it was new (a duplicate is not).
    pub stored: Vec<bool>,
    /// What they change in the rollups.
    pub contributions: Vec<Contribution>,
}

/// What one transaction committed, per request.
pub type Outcome = Vec<Applied>;

/// `first` and the ingest requests queued behind it (up to [`MAX_GROUP_EVENTS`]); a queued
/// command of another kind ends the group and is handed back.
pub fn gather<C>(
    first: IngestRequest,
    rx: &Receiver<C>,
    as_ingest: impl Fn(C) -> Result<IngestRequest, C>,
) -> (Vec<IngestRequest>, Option<C>) {
    let mut size = first.events.len();
    let mut group = vec![first];
    while size < MAX_GROUP_EVENTS {
        match rx.try_recv().map(&as_ingest) {
            Ok(Ok(request)) => {
                size += request.events.len();
                group.push(request);
            }
            Ok(Err(other)) => return (group, Some(other)),
            Err(_) => break,
        }
    }
    (group, None)
}

/// Applies each request's events in order, all stamped as received at `received_ns`.
pub fn apply_group(records: &mut impl Records, group: &[IngestRequest], received_ns: i64) -> Result<Outcome> {
    group
        .iter()
        .map(|r| {
            let mut stored = Vec::with_capacity(r.events.len());
            let mut contributions = Vec::with_capacity(r.events.len());
            let summary = apply_batch(
                records,
                &r.tenant,
                &r.events,
                received_ns,
                &mut contributions,
                &mut stored,
            )?;
            Ok(Applied {
                summary,
                stored,
                contributions,
            })
        })
        .collect()
}

/// The cell deltas of a group's contributions.
pub fn deltas(group: &[IngestRequest], outcome: &Outcome) -> DeltaMap {
    let mut deltas = DeltaMap::default();
    add_deltas(&mut deltas, group, outcome);
    deltas
}

/// Adds the cell deltas of a group's contributions to `deltas`, which holds none yet.
pub fn add_deltas(deltas: &mut DeltaMap, group: &[IngestRequest], outcome: &Outcome) {
    let tenants = group
        .iter()
        .zip(outcome)
        .map(|(request, applied)| (&*request.tenant, &applied.contributions[..]));
    contribution::add_deltas(deltas, tenants);
}

/// A group's contributions, encoded as one row.
pub fn encode_contributions(group: &[IngestRequest], outcome: &Outcome) -> Vec<u8> {
    contribution::encode(
        group
            .iter()
            .zip(outcome)
            .map(|(r, applied)| (r.tenant.id, &applied.contributions[..])),
    )
}

/// The calls counted or taken back (their agents and starts), sorted and once each.
fn touched_calls(contributions: &[Contribution]) -> Vec<TouchedCall> {
    // Sorted once rather than inserted into a tree call by call (a string comparison a level).
    let mut touched: Vec<TouchedCall> = contributions
        .iter()
        .filter_map(|c| match &c.counted {
            Counted::Call { call, .. } => Some(TouchedCall {
                agent: call.agent_id.clone(),
                started_ns: call.started_ns,
            }),
            _ => None,
        })
        .collect();
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// Answers every request of a group once its transaction ended, and publishes what it stored.
pub fn answer(
    group: Vec<IngestRequest>,
    outcome: Result<Outcome>,
    started: Instant,
    metrics: &StoreMetrics,
    changes: &ChangeFeed,
) {
    match outcome {
        Ok(summaries) => {
            metrics.record_commit(started.elapsed(), group.len());
            for (
                request,
                Applied {
                    summary,
                    stored,
                    contributions,
                },
            ) in group.into_iter().zip(summaries)
            {
                let accepted = summary.accepted;
                let _ = request.reply.send(Ok(summary));
                if accepted > 0 {
                    let events = request
                        .events
                        .into_iter()
                        .zip(stored)
                        .filter_map(|(e, new)| new.then_some(e));
                    changes.publish(Change {
                        tenant_id: request.tenant.id,
                        events: events.collect(),
                        calls: touched_calls(&contributions),
                        local: true,
                    });
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batches = group.len(), "ingest transaction failed");
            for request in group {
                let _ = request.reply.send(Err(StoreError::Database(e.to_string())));
            }
        }
    }
}

/// The sending end of a store's writer thread; closed at shutdown.
pub struct WriterQueue<C>(Mutex<Option<Sender<C>>>);

impl<C> WriterQueue<C> {
    pub fn new(sender: Sender<C>) -> WriterQueue<C> {
        WriterQueue(Mutex::new(Some(sender)))
    }

    pub fn send(&self, command: C) -> Result<()> {
        let guard = self.0.lock().expect("writer queue lock");
        guard
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(command)
            .map_err(|_| StoreError::Closed)
    }

    /// Closes the queue; the writer ends once it has handled what was queued.
    pub fn close(&self) -> Option<Sender<C>> {
        self.0.lock().expect("writer queue lock").take()
    }

    /// Asks the writer to finish what is queued (`command` carries the reply), waits for it,
    /// then closes the queue.
    pub async fn shut_down(&self, command: fn(oneshot::Sender<()>) -> C) -> Option<Sender<C>> {
        let (done, rx) = oneshot::channel();
        if self.send(command(done)).is_ok() {
            let _ = rx.await;
        }
        self.close()
    }

    /// Queues events for the next group commit and waits until it is durable.
    pub async fn ingest(
        &self,
        tenant: Arc<TenantInfo>,
        events: Vec<ParsedEvent>,
        command: fn(IngestRequest) -> C,
    ) -> Result<IngestSummary> {
        if events.is_empty() {
            return Ok(IngestSummary::default());
        }
        let (reply, rx) = oneshot::channel();
        self.send(command(IngestRequest { tenant, events, reply }))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}
