//! Storage behind one trait. A store keeps the raw records (the truth) and the rollup cells
//! derived from them, changes both in one transaction per batch, and answers the engine's
//! reads. [`sqlite::SqliteStore`] is the embedded default.

pub mod access;
pub mod alerting;
mod apply;
pub mod badges;
mod block;
mod bloom;
mod catalog;
mod coarse;
pub mod contribution;
mod drill;
mod group;
pub mod jobs;
pub mod listing;
pub mod overlay;
pub mod pg;
pub mod retention;
mod rows;
pub mod saved;
pub mod schedules;
mod sql;
pub mod sqlite;

use access::{AuditEntry, KeyInfo, RateLimits, User};
use async_trait::async_trait;
use dialboard_engine::clock::Clock;
use dialboard_engine::event::{CallAnalysis, CallRecord, ParsedEvent, MICROS};
use dialboard_engine::query::{AgentTeams, Context, QueryResult};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_engine::FieldError;
use jobs::{Claim, Job, JobUpdate, NewJob};
use saved::{SavedChange, SavedItem, SavedKind, SavedOutcome, SavedVersion};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is shutting down")]
    Closed,
    /// A query past its cost budget (`engine::query::Budget`): what to narrow.
    #[error("query too large: {0}")]
    TooLarge(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's message (e.g. a constraint's) says more than the client's summary.
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        StoreError::Database(text)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A tenant's settings, stored as JSON. Fields added later default, so older rows still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// IANA zone: the default zone of queries, presets and "today".
    pub timezone: String,
    #[serde(default)]
    pub taxonomy: Taxonomy,
    /// The ordered pipeline stages (funnels follow this order).
    #[serde(default = "default_stages")]
    pub stages: Vec<String>,
    /// Daily activity targets (a team's own targets, in the directory, take precedence).
    #[serde(default)]
    pub targets: ActivityTargets,
    #[serde(default)]
    pub coaching: CoachingThresholds,
    /// How long each kind of data is kept (`retention`).
    #[serde(default)]
    pub retention: retention::RetentionPolicy,
    /// What purges removed so far: kept by the store, not settable.
    #[serde(default, skip_serializing_if = "retention::PurgeState::is_empty")]
    pub purged: retention::PurgeState,
    /// Agents see other reps in leaderboards only anonymized.
    #[serde(default)]
    pub leaderboard_privacy: bool,
    /// Local dates (`YYYY-MM-DD`) the tenant's calendar marks as holidays, sorted.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// How leaderboards rank reps on rates (SPEC §14).
    #[serde(default)]
    pub fair_ranking: FairRanking,
    /// The tenant's badge rules; `None` gives the defaults (`gamification::default_badges`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badges: Option<Vec<dialboard_engine::gamification::Badge>>,
    /// The zone the tenant's hour and day cells are kept in: its first timezone. Changing
    /// `timezone` later changes how numbers are shown, not how cells were built (queries in
    /// another zone regroup 15-minute cells, exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_timezone: Option<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            timezone: "UTC".into(),
            taxonomy: Taxonomy::default(),
            stages: default_stages(),
            targets: ActivityTargets::default(),
            coaching: CoachingThresholds::default(),
            retention: retention::RetentionPolicy::default(),
            purged: retention::PurgeState::default(),
            leaderboard_privacy: false,
            holidays: Vec::new(),
            fair_ranking: FairRanking::default(),
            badges: None,
            rollup_timezone: None,
        }
    }
}

impl TenantSettings {
    pub fn new(timezone: &str) -> TenantSettings {
        TenantSettings {
            timezone: timezone.into(),
            ..TenantSettings::default()
        }
    }
}

pub fn default_stages() -> Vec<String> {
    [
        "connected",
        "meeting_booked",
        "opportunity_created",
        "proposal_sent",
        "closed_won",
        "closed_lost",
    ]
    .map(String::from)
    .to_vec()
}

/// The seed's ActivityCompliance targets, per agent and day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityTargets {
    pub min_calls: f64,
    pub min_connects: f64,
    pub min_talk_minutes: f64,
    pub max_idle_minutes: f64,
    pub min_dialing_hours: f64,
}

impl Default for ActivityTargets {
    fn default() -> Self {
        ActivityTargets {
            min_calls: 80.0,
            min_connects: 15.0,
            min_talk_minutes: 120.0,
            max_idle_minutes: 30.0,
            min_dialing_hours: 5.0,
        }
    }
}

/// The thresholds of the seed's coaching rules.
/// Fair ranking on rates: the fewest calls before a rep is ranked on a rate, and whether to
/// rank by the empirical-Bayes shrunk rate rather than the raw one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FairRanking {
    pub min_calls: u32,
    pub by_shrunk: bool,
}

impl Default for FairRanking {
    fn default() -> Self {
        FairRanking {
            min_calls: 20,
            by_shrunk: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoachingThresholds {
    /// Percent, over the last 2 days.
    pub low_connect_rate: f64,
    /// Average score, over the last week.
    pub low_call_score: f64,
    /// Agent talk ratio (0..1), over the last week.
    pub high_talk_ratio: f64,
    /// Percent of connected calls.
    pub low_meeting_rate: f64,
    /// Filler words per 100 words.
    pub high_filler_words: f64,
    /// Drop of average prospect sentiment, this week against the one before.
    pub sentiment_decline: f64,
    /// Percent of the daily call goal, on each of the last 3 days.
    pub below_volume_percent: f64,
    /// Average wrap-up seconds.
    pub long_wrap_seconds: f64,
}

impl Default for CoachingThresholds {
    fn default() -> Self {
        CoachingThresholds {
            low_connect_rate: 15.0,
            low_call_score: 60.0,
            high_talk_ratio: 0.65,
            low_meeting_rate: 5.0,
            high_filler_words: 8.0,
            sentiment_decline: 0.1,
            below_volume_percent: 80.0,
            long_wrap_seconds: 180.0,
        }
    }
}

/// The kinds of directory entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryKind {
    Agent,
    Team,
    Campaign,
}

impl DirectoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::Agent => "agent",
            DirectoryKind::Team => "team",
            DirectoryKind::Campaign => "campaign",
        }
    }
}

/// A tenant with its settings prepared for use.
#[derive(Debug)]
pub struct TenantInfo {
    pub id: i64,
    pub name: String,
    pub settings: TenantSettings,
    /// The zone of the tenant's hour and day cells.
    pub clock: Clock,
    /// The tenant's timezone: the default of queries.
    pub zone: Clock,
    pub taxonomy: CompiledTaxonomy,
}

impl TenantInfo {
    pub fn new(id: i64, name: String, settings: TenantSettings) -> Result<TenantInfo> {
        let zone = Clock::new(&settings.timezone).map_err(StoreError::Invalid)?;
        let clock = match &settings.rollup_timezone {
            Some(tz) => Clock::new(tz).map_err(StoreError::Invalid)?,
            None => zone.clone(),
        };
        let taxonomy = CompiledTaxonomy::new(&settings.taxonomy);
        Ok(TenantInfo {
            id,
            name,
            settings,
            clock,
            zone,
            taxonomy,
        })
    }

    /// The tenant with new settings. The zone its hour and day cells were built in stays: a
    /// timezone change regroups 15-minute cells at query time instead. What purges removed
    /// stays too (only a purge changes it, through `with_purged`).
    pub fn with_settings(&self, mut settings: TenantSettings) -> Result<TenantInfo> {
        let rollup = self
            .settings
            .rollup_timezone
            .as_ref()
            .unwrap_or(&self.settings.timezone);
        settings.rollup_timezone = Some(rollup.clone()).filter(|tz| *tz != settings.timezone);
        settings.purged = self.settings.purged.clone();
        TenantInfo::new(self.id, self.name.clone(), settings)
    }

    /// The tenant after a purge.
    pub fn with_purged(&self, purged: retention::PurgeState) -> Result<TenantInfo> {
        let mut settings = self.settings.clone();
        settings.purged = purged;
        TenantInfo::new(self.id, self.name.clone(), settings)
    }

    /// Parses a `/query` body in this tenant's context and runs it over `source`;
    /// `Ok(Err(..))` carries field errors.
    pub fn run_query(
        &self,
        body: &Value,
        now: i64,
        earliest: Option<i64>,
        agent_teams: &AgentTeams,
        source: &mut dyn dialboard_engine::query::CellSource,
    ) -> Result<Result<QueryResult, Vec<FieldError>>> {
        let ctx = self.context(now, earliest, agent_teams);
        let q = match dialboard_engine::query::parse_query(body, &ctx) {
            Ok(q) => q,
            Err(errors) => return Ok(Err(errors)),
        };
        let result =
            dialboard_engine::query::run(&q, &ctx, source).map_err(|e| match e
                .downcast_ref::<dialboard_engine::query::QueryTooLarge>()
            {
                Some(too_large) => StoreError::TooLarge(too_large.0.clone()),
                None => StoreError::Database(e.to_string()),
            })?;
        Ok(Ok(result))
    }

    /// What queries of this tenant are evaluated against; `agent_teams` is the directory's
    /// team of each agent (the store keeps it).
    pub fn context<'a>(&'a self, now: i64, earliest: Option<i64>, agent_teams: &'a AgentTeams) -> Context<'a> {
        Context {
            tenant_clock: &self.clock,
            zone: &self.zone,
            taxonomy: &self.taxonomy,
            now,
            earliest,
            agent_teams,
        }
    }
}

/// The tenants a store has read, by id: every request needs its tenant, settings rarely change.
#[derive(Default)]
pub struct TenantCache(std::sync::RwLock<std::collections::HashMap<i64, Arc<TenantInfo>>>);

impl TenantCache {
    pub fn get(&self, id: i64) -> Option<Arc<TenantInfo>> {
        self.0.read().expect("tenant cache lock").get(&id).cloned()
    }

    pub fn insert(&self, info: TenantInfo) -> Arc<TenantInfo> {
        let info = Arc::new(info);
        self.0.write().expect("tenant cache lock").insert(info.id, info.clone());
        info
    }

    /// A tenant row as the cached info (the cache's copy if there is one).
    pub fn from_row(&self, (id, name, settings): catalog::TenantRow) -> Result<Arc<TenantInfo>> {
        match self.get(id) {
            Some(t) => Ok(t),
            None => Ok(self.insert(TenantInfo::new(id, name, settings)?)),
        }
    }

    pub fn forget(&self, id: i64) {
        self.0.write().expect("tenant cache lock").remove(&id);
    }

    pub fn clear(&self) {
        self.0.write().expect("tenant cache lock").clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// An API key as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, Default)]
pub struct ApiKey {
    pub tenant_id: i64,
    pub scopes: Vec<Scope>,
    pub agent_id: Option<String>,
    pub team_id: Option<String>,
    pub name: Option<String>,
    /// Overrides of the server's default rate limits.
    pub rate_limits: Option<RateLimits>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    pub accepted: usize,
    pub duplicates: usize,
    /// Events of a bound key that would have replaced another agent's record, by their index
    /// in the request: neither logged nor applied.
    pub refused: Vec<(usize, FieldError)>,
}

/// One page of raw call records, newest first.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallsPage {
    pub calls: Vec<Value>,
    pub next_cursor: Option<String>,
    /// Set when the range reaches before the retention horizon: the calls before this instant
    /// were purged (their numbers remain in the rollups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged_before: Option<String>,
}

/// One page of a raw-call export, newest first: typed records (no JSON per call) with the
/// fields of each call's current event that records do not keep.
#[derive(Debug, Clone, Default)]
pub struct ExportPage {
    pub rows: Vec<ExportCall>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ExportCall {
    pub call: CallRecord,
    pub analysis: Option<CallAnalysis>,
    /// The JSON body of the call's current event, if found: the exporter reads its
    /// [`EventDetails`] (`EventDetails::from_body`) off the store's reading thread, so decoding
    /// one page overlaps reading the next.
    pub body: Option<String>,
}

/// What an export shows of a call event's body beyond the record (SPEC §3's `prospect`,
/// `recording_url`, `notes`; `crm_synced` when a source sends it).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct EventDetails {
    #[serde(default)]
    pub prospect: Prospect,
    pub recording_url: Option<String>,
    pub notes: Option<String>,
    pub crm_synced: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Prospect {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
}

impl EventDetails {
    /// The fields of a stored body, decoded straight into the struct (the rest of the body is
    /// skipped, not built into a `Value`). A field of another type than the schema's reads as
    /// absent, as the export showed it before.
    pub fn from_body(body: &str) -> EventDetails {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            prospect: Lenient<BodyProspect>,
            #[serde(default)]
            recording_url: Lenient<String>,
            #[serde(default)]
            notes: Lenient<String>,
            #[serde(default)]
            crm_synced: Lenient<bool>,
        }
        let Ok(body) = serde_json::from_str::<Body>(body) else {
            return EventDetails::default();
        };
        let prospect = body.prospect.0.map_or_else(Prospect::default, |p| Prospect {
            name: p.name.0,
            phone: p.phone.0,
            company: p.company.0,
        });
        EventDetails {
            prospect,
            recording_url: body.recording_url.0,
            notes: body.notes.0,
            crm_synced: body.crm_synced.0,
        }
    }
}

/// A value of type `T`, or `None` when the JSON holds anything else (null, another type): a
/// body's fields outside the event schema are read as the export shows them, never failing it.
struct Lenient<T>(Option<T>);

impl<T> Default for Lenient<T> {
    fn default() -> Self {
        Lenient(None)
    }
}

impl<'de, T: LenientValue<'de>> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(LenientVisitor(std::marker::PhantomData)).map(Lenient)
    }
}

struct LenientVisitor<T>(std::marker::PhantomData<T>);

/// How a lenient value is read from each JSON kind (everything else is skipped as `None`).
trait LenientValue<'de>: Sized {
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> std::result::Result<Option<Self>, A::Error> {
        skip_map(map).map(|()| None)
    }
}

fn skip_map<'de, A: serde::de::MapAccess<'de>>(mut map: A) -> std::result::Result<(), A::Error> {
    while map
        .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
        .is_some()
    {}
    Ok(())
}

impl LenientValue<'_> for String {
    fn from_str(s: &str) -> Option<String> {
        Some(s.to_string())
    }
}

impl LenientValue<'_> for bool {
    fn from_bool(b: bool) -> Option<bool> {
        Some(b)
    }
}

impl<'de> LenientValue<'de> for BodyProspect {
    fn from_map<A: serde::de::MapAccess<'de>>(map: A) -> std::result::Result<Option<Self>, A::Error> {
        BodyProspect::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

/// A call event's `prospect`, each field lenient.
#[derive(Deserialize)]
struct BodyProspect {
    #[serde(default)]
    name: Lenient<String>,
    #[serde(default)]
    phone: Lenient<String>,
    #[serde(default)]
    company: Lenient<String>,
}

impl<'de, T: LenientValue<'de>> serde::de::Visitor<'de> for LenientVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(T::from_str(v))
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(T::from_bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        T::from_map(map)
    }
}

/// A drill-down request: the query model's filters, range and zone, plus paging.
#[derive(Debug, Clone)]
pub struct CallsRequest {
    /// A `/query`-shaped body carrying `filters`, `range` and `timezone`.
    pub query: Value,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// What one commit changed, published once it is durable, for live subscribers.
#[derive(Debug, Clone)]
pub struct Change {
    pub tenant_id: i64,
    /// The events the commit newly stored (not duplicates). Live subscribers derive their
    /// feed from them, off the writer thread and only for watched tenants.
    pub events: Vec<ParsedEvent>,
    /// The calls whose facts the commit changed, sorted, once each: every call version it
    /// counted and every version it took back (a correction that moves a call to another rep or
    /// day changes both). Only on the node that committed (`local`): a change followed from
    /// another node (PostgreSQL) leaves it empty, as the work it feeds runs where the commit was
    /// made.
    pub calls: Vec<TouchedCall>,
    /// Whether this node committed it (work done once per commit, such as badges, runs there).
    pub local: bool,
}

/// A call version a commit counted or took back: whose facts, on which instant, it changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TouchedCall {
    pub agent: String,
    pub started_ns: i64,
}

/// A message for the live subscribers of every node (SPEC §6, §7, §14): an alert's firing or
/// recovery, a badge awarded or revoked. The node that recorded what it says announces it
/// once ([`Store::announce`]); every node's live hub hears it once ([`Store::announcements`])
/// and forwards it to its own subscribers of the scopes it concerns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Announcement {
    /// Carried beside the body in a notice, not inside it.
    #[serde(skip)]
    pub tenant_id: i64,
    /// The message's `type` (`alert`, `badge`).
    pub kind: String,
    /// Whom it is about: it reaches the tenant's scope and the subject's agent, team and
    /// campaign scopes, and only subscribers who may see the agent's records.
    pub agent: Option<String>,
    pub team: Option<String>,
    pub campaign: Option<String>,
    /// Only the agent's own scope (a rep out of public leaderboards).
    pub agent_scope_only: bool,
    /// The message's fields besides `type`, `scope` and `scope_id`.
    pub body: Value,
}

/// A store's stream of `T`s ([`Change`]s, [`Announcement`]s). Publishing never blocks the
/// writer: a receiver that falls more than [`Feed::CAPACITY`] items behind is told it lagged.
/// An item stays in memory until its slowest receiver has read it, and a [`Change`] holds every
/// event its commit stored: a receiver that batches its work must still read items as they
/// come and keep only what it needs (the server's `alerts::gather_for`). Two loops that slept
/// through their period first held every event of the last 2 s, the top of resident memory at
/// high ingest rates (bench/README.md, 2026-12-06).
pub struct Feed<T>(tokio::sync::broadcast::Sender<Arc<T>>);

pub type ChangeFeed = Feed<Change>;

impl<T> Default for Feed<T> {
    fn default() -> Self {
        Feed(tokio::sync::broadcast::channel(Self::CAPACITY).0)
    }
}

impl<T> Feed<T> {
    pub const CAPACITY: usize = 4096;

    pub fn publish(&self, item: T) {
        // An error only means nobody listens.
        let _ = self.0.send(Arc::new(item));
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<T>> {
        self.0.subscribe()
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn create_tenant(&self, name: &str, settings: TenantSettings) -> Result<Arc<TenantInfo>>;
    async fn tenant_by_name(&self, name: &str) -> Result<Option<Arc<TenantInfo>>>;
    async fn tenant(&self, id: i64) -> Result<Arc<TenantInfo>>;
    async fn create_key(&self, key_hash: [u8; 32], key: ApiKey) -> Result<()>;
    /// A key that is not revoked.
    async fn key(&self, key_hash: [u8; 32]) -> Result<Option<ApiKey>>;
    async fn keys(&self, tenant_id: i64) -> Result<Vec<KeyInfo>>;
    /// Stores a key's SCRAM-SHA-256 verifier (the SQL endpoint's SCRAM login).
    async fn set_key_scram(&self, key_hash: [u8; 32], verifier: String) -> Result<()>;
    /// A tenant's live keys, each key's hash with its SCRAM verifier if it has one.
    async fn key_verifiers(&self, tenant_id: i64) -> Result<Vec<([u8; 32], Option<String>)>>;
    /// Revokes a key by its public id; `false` if the tenant has no such live key.
    async fn revoke_key(&self, tenant_id: i64, key_id: &str) -> Result<bool>;

    /// `Conflict` if the tenant has a user with this e-mail (e-mails are unique per tenant;
    /// another tenant may have the same one). `password_hash` is an argon2 PHC string.
    async fn create_user(&self, user: User, password_hash: String) -> Result<()>;
    /// A tenant's user and their password hash, by e-mail (for login).
    async fn user_by_email(&self, tenant_id: i64, email: &str) -> Result<Option<(User, String)>>;
    /// The users of every tenant with this e-mail, at most `limit` (for a login that names
    /// no tenant).
    async fn users_by_email(&self, email: &str, limit: usize) -> Result<Vec<(User, String)>>;
    async fn users(&self, tenant_id: i64) -> Result<Vec<User>>;
    /// Deletes a user and ends their sessions; `false` if the tenant has no such user.
    async fn delete_user(&self, tenant_id: i64, user_id: &str) -> Result<bool>;
    /// Replaces a user's password hash (argon2 PHC) and ends their sessions except
    /// `keep_session`; `false` if the tenant has no such user.
    async fn set_password(
        &self,
        tenant_id: i64,
        user_id: &str,
        password_hash: String,
        keep_session: Option<[u8; 32]>,
    ) -> Result<bool>;
    async fn create_session(&self, token_hash: [u8; 32], user: &User, expires_at: i64) -> Result<()>;
    /// The user of a session that is neither expired (at `now`, seconds) nor revoked.
    async fn session(&self, token_hash: [u8; 32], now: i64) -> Result<Option<User>>;
    async fn revoke_session(&self, token_hash: [u8; 32]) -> Result<()>;
    async fn audit(&self, tenant_id: i64, entry: AuditEntry) -> Result<()>;
    /// The newest entries first, at most `limit`, older than `before` (a sequence number).
    async fn audit_log(&self, tenant_id: i64, limit: usize, before: Option<i64>) -> Result<Vec<(i64, AuditEntry)>>;
    /// Stores validated events durably (committed before this returns) and maintains rollups.
    /// Each agent's latest status: (agent, status, since epoch ns).
    async fn current_statuses(&self, tenant_id: i64) -> Result<Vec<(String, String, i64)>>;
    /// Replaces the tenant's settings (keeping the zone its cells are built in).
    async fn update_settings(&self, tenant_id: i64, settings: TenantSettings) -> Result<Arc<TenantInfo>>;
    /// Creates or replaces a directory entry (a JSON object).
    async fn put_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str, body: Value) -> Result<()>;
    /// `false` if there was no such entry.
    async fn delete_directory(&self, tenant_id: i64, kind: DirectoryKind, id: &str) -> Result<bool>;
    /// Every entry of a kind, by id.
    async fn directory(&self, tenant_id: i64, kind: DirectoryKind) -> Result<Vec<(String, Value)>>;
    /// Each agent's team in the directory, as queries see it (kept in memory by the store).
    async fn agent_teams(&self, tenant_id: i64) -> Result<Arc<AgentTeams>>;
    async fn ingest(&self, tenant_id: i64, events: Vec<ParsedEvent>) -> Result<IngestSummary>;
    /// Parses and runs a `/query` body for the tenant; `Ok(Err(..))` carries field errors.
    async fn query(&self, tenant_id: i64, body: Value, now: i64) -> Result<Result<QueryResult, Vec<FieldError>>>;
    async fn calls(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<CallsPage, Vec<FieldError>>>;
    /// The drill-down for each of `agents` (its own agent filter added), one page each, read in
    /// one pass: what a view shows per agent (the calls behind a coaching rule).
    async fn calls_per_agent(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        agents: Vec<String>,
        now: i64,
    ) -> Result<Result<Vec<CallsPage>, Vec<FieldError>>>;
    /// For each of `agents`, how many of its latest calls starting in `[from_ns, to_ns)` (newest
    /// first) have one of `dispositions`, up to the first that has not: streaks, read in one
    /// pass for all agents.
    async fn disposition_streaks(
        &self,
        tenant_id: i64,
        agents: Vec<String>,
        from_ns: i64,
        to_ns: i64,
        dispositions: Vec<String>,
    ) -> Result<Vec<i64>>;
    /// One call with its analysis and every version received.
    async fn call(&self, tenant_id: i64, call_id: &str) -> Result<Option<Value>>;
    /// A page of the conversations' or stage changes' drill-down (`listing`): the records of
    /// the request's range that pass its filters, newest first, from its cursor.
    async fn records(
        &self,
        tenant_id: i64,
        kind: listing::RecordKind,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<listing::RecordsPage, Vec<FieldError>>>;
    /// Folds pending deltas into the cells now (each store also does it on its own); returns
    /// how many cells (SQLite) or delta rows (PostgreSQL) were folded.
    async fn checkpoint(&self) -> Result<usize>;
    async fn ready(&self) -> Result<()>;
    fn metrics(&self) -> &StoreMetrics;
    /// Every committed change from now on (on PostgreSQL: from every node). Read it as it
    /// comes: an unread change keeps its events in memory ([`Feed`]).
    fn changes(&self) -> tokio::sync::broadcast::Receiver<Arc<Change>>;
    /// Tells every node's live subscribers (on PostgreSQL by `NOTIFY`; on SQLite, one node,
    /// in process): each node's [`Store::announcements`] yields it once.
    async fn announce(&self, announcement: Announcement) -> Result<()>;
    /// Every announcement from now on, this node's and (on PostgreSQL) the other nodes'.
    fn announcements(&self) -> tokio::sync::broadcast::Receiver<Arc<Announcement>>;
    /// Finishes in-flight commits and folds pending deltas into cells.
    async fn shutdown(&self);

    // The job mechanism (see `jobs`); `now` is epoch milliseconds.
    async fn enqueue_job(&self, tenant_id: i64, job: NewJob, now: i64) -> Result<Job>;
    /// Leases the oldest due job (of any tenant) to `claim.worker`: each job to one claimer,
    /// across nodes; a job whose lease expired is claimed again.
    async fn claim_job(&self, claim: Claim, now: i64) -> Result<Option<Job>>;
    /// Queues `job` as `id` unless the tenant has a job of that id (`None`): once across nodes.
    async fn enqueue_job_once(&self, tenant_id: i64, id: &str, job: NewJob, now: i64) -> Result<Option<Job>>;
    /// Every tenant's id (for work done per tenant, such as retention).
    async fn tenant_ids(&self) -> Result<Vec<i64>>;
    /// `false` if `worker` no longer holds the job (nothing changed).
    async fn update_job(&self, tenant_id: i64, id: &str, worker: &str, update: JobUpdate, now: i64) -> Result<bool>;
    async fn job(&self, tenant_id: i64, id: &str) -> Result<Option<Job>>;
    /// The tenant's jobs of a kind, newest first.
    async fn jobs(&self, tenant_id: i64, kind: &str, limit: usize) -> Result<Vec<Job>>;
    /// Writes chunk `seq` of a job's file; chunk 0 first drops what an earlier attempt wrote.
    async fn put_job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64, data: Vec<u8>) -> Result<()>;
    async fn job_file_chunk(&self, tenant_id: i64, id: &str, seq: i64) -> Result<Option<Vec<u8>>>;
    /// One page of a raw-call export (the drill-down's calls, filters and order, as records
    /// with [`EventDetails`]): `request.limit` calls and the cursor to the next page.
    async fn export_calls(
        &self,
        tenant_id: i64,
        request: CallsRequest,
        now: i64,
    ) -> Result<Result<ExportPage, Vec<FieldError>>>;
    /// The JSON body of stored events by id, each given with its record's key (a call id):
    /// the fields records do not keep, such as a call's prospect and notes, for exports.
    async fn event_bodies(&self, tenant_id: i64, keys: Vec<(String, String)>) -> Result<HashMap<String, String>>;

    // Retention and erasure (see `retention`).
    /// Counts (`dry_run`) or deletes, in one transaction, what `cutoffs` purge from the tenant,
    /// per kind; a purge also records its horizons in the tenant's `purged` state.
    async fn purge(&self, tenant_id: i64, cutoffs: retention::Cutoffs, dry_run: bool) -> Result<retention::Counts>;
    /// Replaces the tenant's purge state (a policy's notice).
    async fn set_purge_state(&self, tenant_id: i64, state: retention::PurgeState) -> Result<Arc<TenantInfo>>;
    /// Removes a contact's personal data from every stored event; returns how many changed.
    async fn erase_contact(&self, tenant_id: i64, contact_id: &str) -> Result<i64>;

    // Saved reports and dashboards with their versions (see `saved`); `now` is epoch seconds.
    /// Creates, updates (a new version) or deletes an item, in one transaction.
    async fn change_saved(
        &self,
        tenant_id: i64,
        kind: SavedKind,
        change: SavedChange,
        now: i64,
    ) -> Result<SavedOutcome>;
    async fn saved_item(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Option<SavedItem>>;
    /// Every item of a kind in the tenant, most recently changed first.
    async fn saved_items(&self, tenant_id: i64, kind: SavedKind) -> Result<Vec<SavedItem>>;
    /// An item's versions, newest first.
    async fn saved_versions(&self, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Vec<SavedVersion>>;

    /// Runs `work` in one transaction (on SQLite's writer): the small tables written in SQL
    /// both databases speak, such as `alerting`'s (call it through `alerting::run`).
    async fn transact(&self, work: SqlWork) -> Result<()>;
    /// Every tenant's saved items of a kind, with their tenant.
    async fn all_saved_items(&self, kind: SavedKind) -> Result<Vec<(i64, SavedItem)>>;

    // Schedule runs (see `schedules`); `now_ms` is epoch milliseconds.
    /// The run of an occurrence with its job, once: `None` if it exists already.
    async fn create_schedule_run(
        &self,
        tenant_id: i64,
        schedule_id: &str,
        scheduled_for: i64,
        late: bool,
        job: NewJob,
        now_ms: i64,
    ) -> Result<Option<Job>>;
    async fn latest_schedule_run(&self, tenant_id: i64, schedule_id: &str) -> Result<Option<i64>>;
    /// A schedule's runs, newest first.
    async fn schedule_runs(
        &self,
        tenant_id: i64,
        schedule_id: &str,
        limit: usize,
    ) -> Result<Vec<schedules::ScheduleRun>>;
}

/// Work for [`Store::transact`].
pub type SqlWork = Box<dyn FnOnce(&mut dyn sql::Sql) -> Result<()> + Send>;

fn nanos_to_rfc3339(ns: i64, clock: &Clock) -> Value {
    json!(clock.format(ns.div_euclid(1_000_000_000)))
}

/// The cuboids a database written by schema `version` lacks, of `since`: pairs of the version
/// that first keeps a cuboid and the cuboid. An upgrade computes their cells from the records.
pub(crate) fn cuboids_newer_than(version: usize, since: &[(usize, u8)]) -> Vec<u8> {
    since
        .iter()
        .filter(|(v, _)| version < *v)
        .map(|(_, cuboid)| *cuboid)
        .collect()
}

/// The API's JSON form of a call record (times in `clock`'s zone).
pub fn call_json(c: &CallRecord, a: Option<&CallAnalysis>, clock: &Clock, taxonomy: &CompiledTaxonomy) -> Value {
    let micros = |v: Option<i64>| v.map(|v| v as f64 / MICROS);
    json!({
        "call_id": c.call_id,
        "event_id": c.event_id,
        "agent_id": c.agent_id,
        "team_id": c.team_id,
        "campaign_id": c.campaign_id,
        "list_id": c.list_id,
        "contact_id": c.contact_id,
        "lead_source": c.lead_source,
        "direction": c.direction,
        "disposition": c.disposition,
        "disposition_category": taxonomy.class(&c.disposition).category.map(|c| c.as_str()),
        "started_at": nanos_to_rfc3339(c.started_ns, clock),
        "ended_at": c.ended_ns.map(|n| nanos_to_rfc3339(n, clock)),
        "talk_seconds": c.talk_seconds,
        "wait_seconds": c.wait_seconds,
        "wrap_seconds": c.wrap_seconds,
        "voicemail_dropped": c.voicemail_dropped,
        "is_callback": c.is_callback,
        "abandoned": c.abandoned,
        "analysis": a.map(|a| json!({
            "event_id": a.event_id,
            "score": micros(a.score_micros),
            "sentiment": micros(a.sentiment_micros),
            "prospect_sentiment": micros(a.prospect_sentiment_micros),
            "agent_talk_ratio": micros(a.talk_ratio_micros),
            "filler_words_per_100": micros(a.filler_micros),
            "intent": a.intent,
        })),
    })
}

/// A latency histogram with fixed buckets (milliseconds), for Prometheus.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [std::sync::atomic::AtomicU64; LATENCY_BUCKETS_MS.len()],
    count: std::sync::atomic::AtomicU64,
    sum_micros: std::sync::atomic::AtomicU64,
}

pub const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 5000.0,
];

impl LatencyHistogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let ms = elapsed.as_secs_f64() * 1000.0;
        for (bucket, le) in self.buckets.iter().zip(LATENCY_BUCKETS_MS) {
            if ms <= le {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(elapsed.as_micros() as u64, Relaxed);
    }

    /// Renders as a Prometheus histogram in seconds.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bucket, le) in self.buckets.iter().zip(LATENCY_BUCKETS_MS) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {}", le / 1000.0, bucket.load(Relaxed));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// What a store measures about itself.
#[derive(Debug, Default)]
pub struct StoreMetrics {
    pub commit_latency: LatencyHistogram,
    pub batches_per_commit: std::sync::atomic::AtomicU64,
}

impl StoreMetrics {
    pub fn record_commit(&self, elapsed: std::time::Duration, batches: usize) {
        self.commit_latency.observe(elapsed);
        self.batches_per_commit
            .fetch_add(batches as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod event_details_tests {
    use super::*;

    #[test]
    fn reads_the_exported_fields_and_skips_the_rest() {
        let body = r#"{"type":"call","call_id":"c1","analysis":{"score":7.5,"topics":["a",{"b":1}]},
            "prospect":{"name":"Doe, \"JD\"","phone":"+15550001","company":null,"extra":[1,2]},
            "recording_url":"https://r.example/1.mp3","notes":"follow up","crm_synced":true}"#;
        let d = EventDetails::from_body(body);
        assert_eq!(d.prospect.name.as_deref(), Some("Doe, \"JD\""));
        assert_eq!(d.prospect.phone.as_deref(), Some("+15550001"));
        assert_eq!(d.prospect.company, None);
        assert_eq!(d.recording_url.as_deref(), Some("https://r.example/1.mp3"));
        assert_eq!(d.notes.as_deref(), Some("follow up"));
        assert_eq!(d.crm_synced, Some(true));
    }

    #[test]
    fn a_field_of_another_type_reads_as_absent_not_as_a_failure() {
        let body = r#"{"prospect":"Jane","recording_url":12,"notes":{"text":"x"},"crm_synced":"yes"}"#;
        assert_eq!(EventDetails::from_body(body), EventDetails::default());
        let body = r#"{"prospect":{"name":["x"],"phone":"+1"},"crm_synced":false}"#;
        let d = EventDetails::from_body(body);
        assert_eq!(d.prospect.name, None);
        assert_eq!(d.prospect.phone.as_deref(), Some("+1"));
        assert_eq!(d.crm_synced, Some(false));
        assert_eq!(EventDetails::from_body("not json"), EventDetails::default());
    }
}
