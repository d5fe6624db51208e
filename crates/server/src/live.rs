//! Live updates (SPEC §6). The [`Hub`] listens to the store's committed changes, recomputes
//! today's metrics of every watched scope through the same query model as everything else,
//! and sends a `metric_update` only where the numbers moved. Changes that arrive while a round
//! is computed are handled together in the next round, so a burst costs one update per scope.
//!
//! Alerts and badges are announced through the store ([`Store::announce`]), which tells every
//! node (PostgreSQL `NOTIFY`); each hub forwards what it hears to its own subscribers.
//!
//! Every subscriber has a bounded queue. Delivery never waits: a subscriber whose queue is full
//! is dropped with a close reason, so a stalled client slows neither ingest nor anyone else.

use crate::api::auth::{forbidden, Principal};
use crate::api::error::{ApiError, Code};
use axum::extract::ws::Utf8Bytes;
use dialboard_engine::activity::Activity;
use dialboard_engine::event::ParsedEvent;
use dialboard_engine::measures::{measure, Accum};
use dialboard_engine::query::KeyValue;
use dialboard_engine::FieldError;
use dialboard_store::{Announcement, Change, Store, StoreError, TenantInfo};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{mpsc, oneshot};

/// Today's metrics of a scope, as sent in `metric_update`.
pub const LIVE_MEASURES: [&str; 12] = [
    "total_calls",
    "connected_calls",
    "connect_rate",
    "meetings_booked",
    "meeting_booked_rate",
    "total_talk_time",
    "avg_talk_time",
    "median_talk_time",
    "avg_call_score",
    "avg_sentiment",
    "active_hours",
    "calls_per_hour",
];

/// Messages a subscriber may have waiting before it counts as stalled.
pub const QUEUE_CAPACITY: usize = 512;
/// At most this many feed items per scope and round (the newest); a wallboard cannot show more.
const MAX_ITEMS_PER_ROUND: usize = 50;
/// Rounds start at most this often, which bounds the messages a burst causes.
const MIN_ROUND_INTERVAL: Duration = Duration::from_millis(10);
/// Even without events, metrics are re-checked this often, so "today" rolls over at midnight.
const IDLE_REFRESH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    Tenant,
    Team,
    Agent,
    Campaign,
}

impl ScopeKind {
    pub const NAMES: [&'static str; 4] = ["tenant", "team", "agent", "campaign"];

    pub fn parse(s: &str) -> Option<ScopeKind> {
        Some(match s {
            "tenant" => ScopeKind::Tenant,
            "team" => ScopeKind::Team,
            "agent" => ScopeKind::Agent,
            "campaign" => ScopeKind::Campaign,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The query dimension that splits metrics by this scope (none for the whole tenant).
    fn dimension(self) -> Option<&'static str> {
        match self {
            ScopeKind::Tenant => None,
            ScopeKind::Team => Some("team"),
            ScopeKind::Agent => Some("agent"),
            ScopeKind::Campaign => Some("campaign"),
        }
    }
}

/// A watched scope. The tenant scope's id is the tenant's name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LiveScope {
    pub kind: ScopeKind,
    pub id: String,
}

impl LiveScope {
    /// Whether an activity belongs to this scope.
    fn covers(&self, a: &Activity) -> bool {
        let id = Some(self.id.as_str());
        match self.kind {
            ScopeKind::Tenant => true,
            ScopeKind::Team => a.team_id.as_deref() == id,
            ScopeKind::Agent => a.agent_id.as_deref() == id,
            ScopeKind::Campaign => a.campaign_id.as_deref() == id,
        }
    }

    fn message(&self, kind: &str, body: Value) -> Value {
        let mut m = json!({"type": kind, "scope": self.kind.as_str(), "scope_id": self.id});
        if let (Value::Object(m), Value::Object(body)) = (&mut m, body) {
            m.extend(body);
        }
        m
    }
}

struct Subscriber {
    principal: Principal,
    scopes: HashSet<LiveScope>,
    tx: mpsc::Sender<Utf8Bytes>,
    kick: Option<oneshot::Sender<&'static str>>,
}

type ScopeKey = (i64, LiveScope);

#[derive(Default)]
struct HubState {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    watchers: HashMap<ScopeKey, HashSet<u64>>,
    /// The metrics last sent per scope, so unchanged numbers are not sent again.
    last_sent: HashMap<ScopeKey, Value>,
    /// Subscribers dropped for not reading (exported in `/metrics`).
    dropped: u64,
}

impl HubState {
    fn unwatch(&mut self, id: u64, tenant_id: i64, scope: &LiveScope) {
        let key = (tenant_id, scope.clone());
        if let Some(ids) = self.watchers.get_mut(&key) {
            ids.remove(&id);
            if ids.is_empty() {
                self.watchers.remove(&key);
                self.last_sent.remove(&key);
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Subscriber> {
        let sub = self.subscribers.remove(&id)?;
        for scope in &sub.scopes {
            self.unwatch(id, sub.principal.tenant_id, scope);
        }
        Some(sub)
    }

    /// Queues `msg` for a subscriber; one whose queue is full is dropped with a reason.
    fn send(&mut self, id: u64, msg: &Utf8Bytes) {
        let Some(sub) = self.subscribers.get(&id) else {
            return;
        };
        match sub.tx.try_send(msg.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                if let Some(kick) = self.remove(id).and_then(|s| s.kick) {
                    let _ = kick.send("too slow: updates were not read in time");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.remove(id);
            }
        }
    }
}

pub struct Hub {
    store: Arc<dyn Store>,
    state: Mutex<HubState>,
    queue: usize,
}

impl Hub {
    /// Starts the hub on the current runtime, following the store's changes.
    /// `queue` is each subscriber's capacity in messages ([`QUEUE_CAPACITY`] in the server).
    pub fn start(store: Arc<dyn Store>, queue: usize) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            store: store.clone(),
            state: Mutex::default(),
            queue,
        });
        tokio::spawn(Arc::clone(&hub).run(store.changes()));
        tokio::spawn(Arc::clone(&hub).forward(store.announcements()));
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("live hub lock")
    }

    pub fn subscribers(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Subscribers dropped so far for not reading.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Registers a connection; dropping the returned [`Connection`] unregisters it.
    pub fn connect(self: &Arc<Self>, principal: Principal) -> Connection {
        let (tx, rx) = mpsc::channel(self.queue);
        let (kick, kicked) = oneshot::channel();
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.subscribers.insert(
            id,
            Subscriber {
                principal: principal.clone(),
                scopes: HashSet::new(),
                tx,
                kick: Some(kick),
            },
        );
        Connection {
            hub: Arc::clone(self),
            id,
            principal,
            rx,
            kicked,
        }
    }

    async fn run(self: Arc<Self>, mut changes: tokio::sync::broadcast::Receiver<Arc<Change>>) {
        let mut last_round = tokio::time::Instant::now();
        loop {
            let mut dirty = HashSet::new();
            let mut changes_seen: Vec<Arc<Change>> = Vec::new();
            let mut note = |received: Result<Arc<Change>, RecvError>, dirty: &mut HashSet<i64>| match received {
                Ok(change) => {
                    dirty.insert(change.tenant_id);
                    changes_seen.push(change);
                    true
                }
                Err(RecvError::Lagged(n)) => {
                    // Metrics are recomputed, not accumulated, so nothing is wrong after a lag:
                    // only the skipped feed items are missed.
                    tracing::warn!(skipped = n, "live hub fell behind the store's changes");
                    dirty.extend(self.watched_tenants());
                    true
                }
                Err(RecvError::Closed) => false,
            };
            tokio::select! {
                received = changes.recv() => if !note(received, &mut dirty) { return },
                _ = tokio::time::sleep(IDLE_REFRESH) => dirty.extend(self.watched_tenants()),
            }
            tokio::time::sleep_until(last_round + MIN_ROUND_INTERVAL).await;
            last_round = tokio::time::Instant::now();
            loop {
                let received = match changes.try_recv() {
                    Ok(c) => Ok(c),
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                    Err(TryRecvError::Empty) => break,
                };
                note(received, &mut dirty);
            }
            for tenant_id in dirty {
                let round = changes_seen.iter().filter(|c| c.tenant_id == tenant_id);
                if let Err(e) = self.round(tenant_id, round.flat_map(|c| &c.events)).await {
                    tracing::warn!(tenant_id, error = %e, "live update failed");
                }
            }
        }
    }

    fn watched_tenants(&self) -> HashSet<i64> {
        self.lock().watchers.keys().map(|(t, _)| *t).collect()
    }

    /// One round for a tenant: the feed items of the events `stored` since the last round, and
    /// the metrics of every watched scope.
    async fn round<'a>(&self, tenant_id: i64, stored: impl Iterator<Item = &'a ParsedEvent>) -> Result<(), StoreError> {
        let mut by_kind: HashMap<ScopeKind, Vec<String>> = HashMap::new();
        let scopes: Vec<LiveScope> = {
            let state = self.lock();
            state
                .watchers
                .keys()
                .filter(|(t, _)| *t == tenant_id)
                .map(|(_, s)| s.clone())
                .collect()
        };
        if scopes.is_empty() {
            return Ok(());
        }
        let tenant = self.store.tenant(tenant_id).await?;
        for scope in &scopes {
            by_kind.entry(scope.kind).or_default().push(scope.id.clone());
        }
        // Metrics first, so a round's feed items and numbers are queued together and each
        // connection writes them in one go.
        let now = jiff::Timestamp::now().as_second();
        let mut updates = Vec::new();
        for (kind, ids) in by_kind {
            for (id, metrics) in self.metrics(&tenant, kind, ids, now).await? {
                updates.push((LiveScope { kind, id }, metrics));
            }
        }
        let agent_teams = self.store.agent_teams(tenant_id).await?;
        let activities: Vec<Activity> = stored
            .filter_map(|e| Activity::of(&e.event, &tenant.taxonomy, &agent_teams))
            .collect();
        for scope in &scopes {
            self.send_activities(&tenant, scope, &activities);
        }
        for (scope, metrics) in updates {
            self.send_metrics(&tenant, scope, metrics, now);
        }
        Ok(())
    }

    fn send_activities(&self, tenant: &TenantInfo, scope: &LiveScope, activities: &[Activity]) {
        let items: Vec<&Activity> = activities.iter().filter(|a| scope.covers(a)).collect();
        if items.is_empty() {
            return;
        }
        let message = |visible: &dyn Fn(&Activity) -> bool| {
            let shown: Vec<&&Activity> = items.iter().filter(|a| visible(a)).collect();
            let skip = shown.len().saturating_sub(MAX_ITEMS_PER_ROUND);
            let json: Vec<Value> = shown[skip..].iter().map(|a| a.to_json(&tenant.zone)).collect();
            (!json.is_empty()).then(|| {
                let m = scope.message("activity", json!({"items": json, "omitted": skip}));
                Utf8Bytes::from(m.to_string())
            })
        };
        let shared = message(&|_| true);
        let mut state = self.lock();
        let ids: Vec<u64> = state
            .watchers
            .get(&(tenant.id, scope.clone()))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let Some(sub) = state.subscribers.get(&id) else {
                continue;
            };
            // A restricted subscriber sees feed items about itself only; numbers are
            // aggregates and shared.
            let msg = if sub.principal.sees_everyone() {
                shared.clone()
            } else {
                let p = sub.principal.clone();
                message(&|a| p.sees_record(a.agent_id.as_deref(), a.team_id.as_deref()))
            };
            if let Some(msg) = msg {
                state.send(id, &msg);
            }
        }
    }

    fn send_metrics(&self, tenant: &TenantInfo, scope: LiveScope, metrics: Value, now: i64) {
        let key = (tenant.id, scope);
        let mut state = self.lock();
        if state.last_sent.get(&key) == Some(&metrics) || !state.watchers.contains_key(&key) {
            return;
        }
        let msg = metric_update(&key.1, &metrics, &tenant.zone.format(now));
        state.last_sent.insert(key.clone(), metrics);
        let ids: Vec<u64> = state.watchers[&key].iter().copied().collect();
        for id in ids {
            state.send(id, &msg);
        }
    }

    /// Forwards every announcement (this node's and the other nodes', [`Store::announcements`])
    /// to this node's subscribers.
    async fn forward(self: Arc<Self>, mut announcements: tokio::sync::broadcast::Receiver<Arc<Announcement>>) {
        loop {
            match announcements.recv().await {
                Ok(a) => self.send_about(&a),
                Err(RecvError::Lagged(n)) => tracing::warn!(skipped = n, "live hub missed announcements"),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Sends an announcement (an alert's firing or recovery, a badge awarded or revoked) once
    /// to each subscriber watching a scope it concerns — the tenant, or the subject's agent,
    /// team or campaign — who may see the subject's records. One that concerns its agent's
    /// scope only (a rep out of public leaderboards) reaches that scope alone.
    fn send_about(&self, a: &Announcement) {
        let (agent, team, campaign) = (a.agent.as_deref(), a.team.as_deref(), a.campaign.as_deref());
        let mut state = self.lock();
        let mut reached: HashSet<u64> = HashSet::new();
        let scopes: Vec<LiveScope> = state
            .watchers
            .keys()
            .filter(|(t, _)| *t == a.tenant_id)
            .map(|(_, s)| s.clone())
            .collect();
        for scope in scopes {
            let concerned = match scope.kind {
                _ if a.agent_scope_only && scope.kind != ScopeKind::Agent => false,
                ScopeKind::Tenant => true,
                ScopeKind::Team => team == Some(scope.id.as_str()),
                ScopeKind::Agent => agent == Some(scope.id.as_str()),
                ScopeKind::Campaign => campaign == Some(scope.id.as_str()),
            };
            if !concerned {
                continue;
            }
            let msg = Utf8Bytes::from(scope.message(&a.kind, a.body.clone()).to_string());
            let ids: Vec<u64> = state.watchers[&(a.tenant_id, scope.clone())].iter().copied().collect();
            for id in ids {
                let allowed = state
                    .subscribers
                    .get(&id)
                    .is_some_and(|s| agent.is_none() || s.principal.sees_record(agent, team));
                if allowed && reached.insert(id) {
                    state.send(id, &msg);
                }
            }
        }
    }

    /// Today's metrics (in the tenant's zone) of scopes of one kind, by one grouped query.
    async fn metrics(
        &self,
        tenant: &TenantInfo,
        kind: ScopeKind,
        ids: Vec<String>,
        now: i64,
    ) -> Result<Vec<(String, Value)>, StoreError> {
        let mut body = json!({"measures": LIVE_MEASURES, "range": {"preset": "today"}});
        if let Some(dim) = kind.dimension() {
            body["dimensions"] = json!([dim]);
            body["filters"] = json!({ dim: ids });
        }
        let result = self
            .store
            .query(tenant.id, body, now)
            .await?
            .map_err(|e| StoreError::Invalid(format!("live metrics query: {e:?}")))?;
        let to_json = |values: &[dialboard_engine::measures::Num]| -> Value {
            let m: Map<String, Value> = LIVE_MEASURES
                .iter()
                .zip(values)
                .map(|(n, v)| (n.to_string(), v.to_json()))
                .collect();
            Value::Object(m)
        };
        if kind.dimension().is_none() {
            return Ok(ids.into_iter().map(|id| (id, to_json(&result.table.totals))).collect());
        }
        let mut found: HashMap<&str, Value> = HashMap::new();
        for row in &result.table.rows {
            if let Some(KeyValue::Text(id)) = row.key.first() {
                found.insert(id, to_json(&row.values));
            }
        }
        Ok(ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    found.get(id.as_str()).cloned().unwrap_or_else(empty_metrics),
                )
            })
            .collect())
    }
}

/// The metrics of a scope without records today (rows of all-zero metrics are left out of
/// query results): each measure evaluated over nothing.
fn empty_metrics() -> Value {
    let empty = Accum::default();
    let m: Map<String, Value> = LIVE_MEASURES
        .iter()
        .map(|n| {
            (
                n.to_string(),
                (measure(n).expect("live measure").compute)(&empty).to_json(),
            )
        })
        .collect();
    Value::Object(m)
}

fn metric_update(scope: &LiveScope, metrics: &Value, timestamp: &str) -> Utf8Bytes {
    let m = scope.message("metric_update", json!({"metrics": metrics, "timestamp": timestamp}));
    Utf8Bytes::from(m.to_string())
}

/// One client connection (a WebSocket or an SSE stream) and its subscriptions.
pub struct Connection {
    hub: Arc<Hub>,
    id: u64,
    principal: Principal,
    /// Messages to send, in order.
    pub rx: mpsc::Receiver<Utf8Bytes>,
    /// Fires with a close reason when the hub drops this connection for not reading.
    pub kicked: oneshot::Receiver<&'static str>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.hub.lock().remove(self.id);
    }
}

impl Connection {
    /// Checks a requested scope against the credential; the tenant scope's id may be omitted.
    pub async fn resolve(&self, kind: &str, id: Option<&str>) -> Result<LiveScope, ApiError> {
        let invalid =
            |field: &str, message: String| ApiError::invalid(Code::InvalidScope, vec![FieldError::new(field, message)]);
        let Some(kind) = ScopeKind::parse(kind) else {
            return Err(invalid(
                "scope",
                format!("must be one of {}", ScopeKind::NAMES.join(", ")),
            ));
        };
        let id = match (kind, id.filter(|s| !s.is_empty())) {
            (ScopeKind::Tenant, given) => {
                let tenant = self.hub.store.tenant(self.principal.tenant_id).await?;
                if given.is_some_and(|g| g != tenant.name) {
                    return Err(forbidden("scope_id: not your tenant"));
                }
                tenant.name.clone()
            }
            (_, Some(id)) => id.to_string(),
            (_, None) => return Err(invalid("scope_id", "is required for this scope".into())),
        };
        let scope = LiveScope { kind, id };
        if !self.principal.may_watch(&scope) {
            return Err(forbidden(format!(
                "scope: this credential may not watch {} {}",
                kind.as_str(),
                scope.id
            )));
        }
        Ok(scope)
    }

    /// Starts watching `scope`: an acknowledgement, then its current metrics, then updates.
    pub async fn subscribe(&self, scope: LiveScope) {
        let tenant_id = self.principal.tenant_id;
        {
            let mut state = self.hub.lock();
            let Some(sub) = state.subscribers.get_mut(&self.id) else {
                return;
            };
            sub.scopes.insert(scope.clone());
            state
                .watchers
                .entry((tenant_id, scope.clone()))
                .or_default()
                .insert(self.id);
            let ack = Utf8Bytes::from(scope.message("subscribed", json!({})).to_string());
            state.send(self.id, &ack);
        }
        let now = jiff::Timestamp::now().as_second();
        let current = match self.hub.store.tenant(tenant_id).await {
            Ok(tenant) => self
                .hub
                .metrics(&tenant, scope.kind, vec![scope.id.clone()], now)
                .await
                .map(|m| (tenant, m)),
            Err(e) => Err(e),
        };
        match current {
            Ok((tenant, metrics)) => {
                if let Some((_, metrics)) = metrics.into_iter().next() {
                    let msg = metric_update(&scope, &metrics, &tenant.zone.format(now));
                    self.hub.lock().send(self.id, &msg);
                }
            }
            Err(e) => tracing::warn!(error = %e, "initial live metrics failed"),
        }
    }

    pub fn unsubscribe(&self, scope: &LiveScope) -> bool {
        let mut state = self.hub.lock();
        let removed = state
            .subscribers
            .get_mut(&self.id)
            .is_some_and(|s| s.scopes.remove(scope));
        if removed {
            state.unwatch(self.id, self.principal.tenant_id, scope);
        }
        removed
    }

    /// Queues a message for this connection only (acknowledgements and errors).
    pub fn reply(&self, message: Value) {
        self.hub.lock().send(self.id, &Utf8Bytes::from(message.to_string()));
    }
}
