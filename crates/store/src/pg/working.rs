//! [`Records`] on PostgreSQL. A query per event would cost a network round trip per event, so
//! the writer loads, in one statement per kind, every current record the batch's events can
//! read ([`WorkingSet::load`]); the events are applied to that in memory, in order, exactly as
//! on SQLite; and the changed records go back in one binary COPY per table
//! ([`WorkingSet::flush`]). Reading anything that was not loaded is an error, never a guess.
//!
//! The transaction holds each tenant's ingest lock, so no other node changes these records
//! between the load and the flush.
//!
//! Every read is a probe per key of the batch ([`probe`]): the keys (`unnest` of arrays, made
//! distinct, as a repeated key would repeat its rows) drive a LATERAL subquery that the planner
//! can neither turn round nor, on the writer's session (`WRITER_SESSION`), answer by anything
//! but an index scan. Planned as joins, a table whose statistics lagged behind its growth was
//! read whole against the keys (0.1–0.3 s a batch at a few million calls).

use super::id_filter::{self, generations, IdFilters, Stored};
use super::schema::{id_hash, same_id};
use super::{bodies, value_runs};
use crate::apply::{Neighbour, Records};
use crate::overlay::DeltaMap;
use crate::rows::{
    analysis_from_row, call_flags, call_from_row, conversation_from_row, csat_from_row, stage_from_row,
    ANALYSIS_COLUMNS, CALL_COLUMNS, CONVERSATION_COLUMNS, CSAT_COLUMNS, STAGE_COLUMNS,
};
use crate::{Result, StoreError};
use dialboard_engine::cells::MEETING_STAGE;
use dialboard_engine::event::{
    AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, Event, ParsedEvent, StageChange, StatusChange,
};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::types::Type as T;
use postgres::Transaction;
use std::collections::{HashMap, HashSet};

/// Which of a batch's calls are stored, and the start (partition) of each: `$1` the tenant,
/// `$2` the call ids.
pub(super) fn call_keys_by_id() -> String {
    probe(
        &in_generations("unnest($2::text[]) AS wanted(v)"),
        "call_id, started_ns",
        &format!("call_keys WHERE tenant_id = $1 AND {}", call_key_is("wanted.v")),
    )
}

/// `wanted` (keys as a FROM item) with each of the tenant's (`$1`) generations of ids
/// (pg/id_filter.rs), for [`call_key_is`] and [`event_id_is`].
pub(super) fn in_generations(wanted: &str) -> String {
    format!("{wanted}, {}", generations("$1"))
}

/// The condition that finds the `call_keys` row of the call id `value` in the generation
/// `generation.n` ([`in_generations`]).
pub(super) fn call_key_is(value: &str) -> String {
    format!("gen = generation.n AND {}", same_id("call_hash", "call_id", value))
}

/// The condition that finds the `event_ids` row of the event id `value` in the generation
/// `generation.n` ([`in_generations`]).
pub(super) fn event_id_is(value: &str) -> String {
    format!("gen = generation.n AND {}", same_id("id_hash", "event_id", value))
}

/// `SELECT columns` of the rows that `from_where` (a table and conditions naming `wanted`'s
/// columns) finds for each row of `wanted`: a LATERAL subquery, kept a subquery by OFFSET 0, so
/// that the keys come first and each is one probe of the table.
fn probe(wanted: &str, columns: &str, from_where: &str) -> String {
    format!("SELECT {columns} FROM {wanted}, LATERAL (SELECT {columns} FROM {from_where} OFFSET 0) AS found")
}

/// Deletes the rows of `table` (not a partitioned one: its row ids would repeat) that
/// `condition` finds for each row of `wanted`, by their row ids.
fn delete_found(
    tx: &mut Transaction,
    table: &str,
    wanted: &str,
    condition: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<()> {
    let found = probe(wanted, "ctid", &format!("{table} WHERE tenant_id = $1 AND {condition}"));
    tx.execute(&format!("DELETE FROM {table} WHERE ctid = ANY(ARRAY({found}))"), params)?;
    Ok(())
}

/// A tenant's events of one group commit, in order.
pub struct Batch<'a> {
    pub tenant: i64,
    pub events: &'a [ParsedEvent],
}

/// The records one tenant's events may read, loaded, then changed in memory.
#[derive(Default)]
struct TenantSet {
    /// Ids new to the log; `log_event` takes each out once.
    new_ids: HashSet<String>,
    /// The tenant's ids as committed, and the hashes of this batch's ids (pg/id_filter.rs).
    head: id_filter::Head,
    logged_hashes: Vec<i64>,
    call_hashes: HashMap<String, i64>,
    /// The batch's call ids that the filter may hold: the others are not stored.
    maybe_stored_calls: HashSet<String>,
    calls: Current<CallRecord>,
    /// The start (partition) of each stored call's row, to remove it when replaced.
    stored_calls: HashMap<String, i64>,
    analyses: Current<CallAnalysis>,
    /// Loaded contacts → stage → the event of first arrival.
    firsts: HashMap<String, HashMap<String, StageChange>>,
    /// Loaded contacts that `staged_contacts` lists (their stages were looked up).
    staged: HashSet<String>,
    /// Contacts with a meeting → their calls' starts, by call.
    contact_calls: HashMap<String, HashMap<String, i64>>,
    new_stages: Vec<StageChange>,
    conversations: Current<Conversation>,
    csat_by_conversation: HashMap<String, Vec<CsatScore>>,
    new_csat: Vec<CsatScore>,
    /// The database's neighbours of each new status (by event id): `(at, event id, status)`.
    status_neighbours: HashMap<String, [Option<StoredStatus>; 2]>,
    new_statuses: Vec<StatusChange>,
}

pub struct WorkingSet {
    tenants: HashMap<i64, TenantSet>,
}

/// Current records of one kind, by id: as loaded (`None`: none is stored), then as the batch
/// changed them.
struct Current<T> {
    by_id: HashMap<String, Option<T>>,
    changed: HashSet<String>,
}

impl<T> Default for Current<T> {
    fn default() -> Self {
        Current {
            by_id: HashMap::new(),
            changed: HashSet::new(),
        }
    }
}

impl<T: Clone> Current<T> {
    /// Expects these ids: none stored, until [`Current::load`] says otherwise.
    fn expect<'a>(ids: impl IntoIterator<Item = &'a str>) -> Current<T> {
        Current {
            by_id: ids.into_iter().map(|id| (id.to_string(), None)).collect(),
            changed: HashSet::new(),
        }
    }

    fn load(&mut self, id: String, record: T) {
        self.by_id.insert(id, Some(record));
    }

    fn get(&self, id: &str) -> Result<&Option<T>> {
        loaded(&self.by_id, std::any::type_name::<T>(), id)
    }

    /// Replaces the current record of `id`; returns the one it replaces.
    fn put(&mut self, id: &str, record: &T) -> Result<Option<T>> {
        let old = self.get(id)?.clone();
        self.by_id.insert(id.to_string(), Some(record.clone()));
        self.changed.insert(id.to_string());
        Ok(old)
    }

    fn stored(&self) -> impl Iterator<Item = &T> {
        self.by_id.values().flatten()
    }

    fn changed(&self) -> impl Iterator<Item = &T> {
        self.changed.iter().filter_map(|id| self.by_id[id].as_ref())
    }

    fn changed_ids(&self) -> Vec<&str> {
        self.changed.iter().map(String::as_str).collect()
    }
}

fn not_loaded(what: &str, key: &str) -> StoreError {
    StoreError::Database(format!("{what} '{key}' was not loaded for this batch"))
}

fn loaded<'a, V>(map: &'a HashMap<String, V>, what: &str, key: &str) -> Result<&'a V> {
    map.get(key).ok_or_else(|| not_loaded(what, key))
}

/// A stored status: `(at, event id, status)`.
type StoredStatus = (i64, String, AgentStatus);
/// A status as ordered: `(at, event id, status)`.
type StatusAt<'a> = (i64, &'a str, AgentStatus);

fn stored(n: &Option<StoredStatus>) -> Option<StatusAt<'_>> {
    n.as_ref().map(|(at, id, st)| (*at, id.as_str(), *st))
}

fn status_of(text: &str) -> AgentStatus {
    AgentStatus::parse(text).unwrap_or(AgentStatus::Offline)
}

/// Distinct values, in first-seen order.
fn distinct<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    values.into_iter().filter(|v| seen.insert(*v)).collect()
}

impl WorkingSet {
    /// Logs the batches' event ids (the new ones are what gets applied), as received at
    /// `received_ns`, and loads what their events can read; `filters` spare the lookups of
    /// ids that were never stored.
    pub fn load(
        tx: &mut Transaction,
        batches: &[Batch],
        received_ns: i64,
        filters: &mut IdFilters,
    ) -> Result<WorkingSet> {
        let mut by_tenant: HashMap<i64, Vec<&ParsedEvent>> = HashMap::new();
        for b in batches {
            by_tenant.entry(b.tenant).or_default().extend(b.events);
        }
        let mut tenants = HashMap::new();
        for (tenant, events) in by_tenant {
            tenants.insert(tenant, TenantSet::load(tx, tenant, &events, received_ns, filters)?);
        }
        Ok(WorkingSet { tenants })
    }

    fn set(&mut self, tenant: i64) -> Result<&mut TenantSet> {
        self.tenants
            .get_mut(&tenant)
            .ok_or_else(|| not_loaded("tenant", &tenant.to_string()))
    }
}

impl TenantSet {
    fn load(
        tx: &mut Transaction,
        tenant: i64,
        events: &[&ParsedEvent],
        received_ns: i64,
        filters: &mut IdFilters,
    ) -> Result<TenantSet> {
        let mut set = TenantSet::default();
        // The first copy of each id is the one that counts; of those, the ids not logged before.
        let ids = distinct(events.iter().map(|e| e.id.as_str()));
        let mut record_keys: HashMap<&str, Option<&str>> = HashMap::new();
        for e in events {
            record_keys.entry(e.id.as_str()).or_insert_with(|| e.event.record_key());
        }
        let call_ids = distinct(events.iter().filter_map(|e| match &e.event {
            Event::Call(c) => Some(c.call_id.as_str()),
            Event::Analysis(a) => Some(a.call_id.as_str()),
            _ => None,
        }));
        let hashed = id_filter::hash_ids(tx, tenant, &ids, &call_ids)?;
        let filter = filters.synced(tx, tenant, hashed.head)?;
        // Only the ids the filter may hold are looked up (the rest were never stored): a probe
        // and a COPY rather than INSERT … ON CONFLICT (7.3 against 8.2–9.2 ms of the backend
        // per 1,000 calls), as the tenant's ingest lock keeps other transactions from logging
        // the same ids meanwhile.
        let maybe_logged: Vec<&str> = ids
            .iter()
            .zip(&hashed.events)
            .filter(|(_, hash)| id_filter::may_hold_event(filter, **hash))
            .map(|(id, _)| *id)
            .collect();
        set.maybe_stored_calls = call_ids
            .iter()
            .zip(&hashed.calls)
            .filter(|(_, hash)| id_filter::may_hold_call(filter, **hash))
            .map(|(id, _)| id.to_string())
            .collect();
        let logged: HashSet<String> = if maybe_logged.is_empty() {
            HashSet::new()
        } else {
            tx.query(
                &probe(
                    &in_generations("unnest($2::text[]) AS wanted(v)"),
                    "event_id",
                    &format!("event_ids WHERE tenant_id = $1 AND {}", event_id_is("wanted.v")),
                ),
                &[&tenant, &maybe_logged],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect()
        };
        set.head = hashed.head;
        set.call_hashes = call_ids.iter().map(|id| id.to_string()).zip(hashed.calls).collect();
        let (new_ids, logged_hashes): (Vec<&str>, Vec<i64>) = ids
            .into_iter()
            .zip(hashed.events)
            .filter(|(id, _)| !logged.contains(*id))
            .unzip();
        set.logged_hashes = logged_hashes;
        // Each logged as where its body will be (its transaction's block) and whose version
        // it is; an id that turns out refused is removed at the flush.
        let generation = set.head.generation();
        copy(
            tx,
            "event_ids",
            "tenant_id, event_id, received_ns, record_key, gen",
            &[T::INT8, T::TEXT, T::INT8, T::TEXT, T::INT4],
            !new_ids.is_empty(),
            |w| {
                for id in &new_ids {
                    w.write(&[&tenant, id, &received_ns, &record_keys[id], &generation])?;
                }
                Ok(())
            },
        )?;
        let new_ids: HashSet<String> = new_ids.into_iter().map(str::to_string).collect();
        let mut firsts_seen = HashSet::new();
        let applied: Vec<&Event> = events
            .iter()
            .filter(|e| new_ids.contains(&e.id) && firsts_seen.insert(e.id.as_str()))
            .map(|e| &e.event)
            .collect();
        set.new_ids = new_ids;

        let call_ids = distinct(applied.iter().filter_map(|e| match e {
            Event::Call(c) => Some(c.call_id.as_str()),
            Event::Analysis(a) => Some(a.call_id.as_str()),
            _ => None,
        }));
        if !call_ids.is_empty() {
            set.load_calls(tx, tenant, &call_ids)?;
        }
        let contacts = distinct(
            applied
                .iter()
                .filter_map(|e| match e {
                    Event::Call(c) => c.contact_id.as_deref(),
                    Event::Stage(s) => Some(s.contact_id.as_str()),
                    _ => None,
                })
                .chain(set.calls.stored().filter_map(|c| c.contact_id.as_deref())),
        )
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<String>>();
        if !contacts.is_empty() {
            let meetings_in_batch = applied.iter().filter_map(|e| match e {
                Event::Stage(s) if s.stage == MEETING_STAGE => Some(s.contact_id.as_str()),
                _ => None,
            });
            set.load_contacts(tx, tenant, &contacts, meetings_in_batch)?;
        }
        let conversations = distinct(applied.iter().filter_map(|e| match e {
            Event::Conversation(c) => Some(c.conversation_id.as_str()),
            Event::Csat(s) => s.conversation_id.as_deref(),
            _ => None,
        }));
        if !conversations.is_empty() {
            let changed = distinct(applied.iter().filter_map(|e| match e {
                Event::Conversation(c) => Some(c.conversation_id.as_str()),
                _ => None,
            }));
            set.load_conversations(tx, tenant, &conversations, &changed)?;
        }
        let statuses: Vec<&StatusChange> = applied
            .iter()
            .filter_map(|e| match e {
                Event::Status(s) => Some(s),
                _ => None,
            })
            .collect();
        if !statuses.is_empty() {
            set.load_status_neighbours(tx, tenant, &statuses)?;
        }
        Ok(set)
    }

    fn load_calls(&mut self, tx: &mut Transaction, tenant: i64, ids: &[&str]) -> Result<()> {
        self.calls = Current::expect(ids.iter().copied());
        self.analyses = Current::expect(ids.iter().copied());
        // Most calls of a batch are new: look up the keys of those the filter may hold, and
        // read rows only for those that exist (by partition key, so each probe touches one
        // month).
        let maybe: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| self.maybe_stored_calls.contains(*id))
            .collect();
        if !maybe.is_empty() {
            for row in tx.query(&call_keys_by_id(), &[&tenant, &maybe])? {
                self.stored_calls.insert(row.get(0), row.get(1));
            }
        }
        if !self.stored_calls.is_empty() {
            let (ids, starts): (Vec<&str>, Vec<i64>) =
                self.stored_calls.iter().map(|(id, at)| (id.as_str(), *at)).unzip();
            let sql = probe(
                "unnest($2::int8[], $3::text[]) AS wanted(s, v)",
                CALL_COLUMNS,
                "calls WHERE tenant_id = $1 AND started_ns = wanted.s AND call_id = wanted.v",
            );
            for row in tx.query(&sql, &[&tenant, &starts, &ids])? {
                let call = call_from_row(&row, 0)?;
                self.calls.load(call.call_id.clone(), call);
            }
        }
        let sql = probe(
            "unnest($2::text[]) AS wanted(v)",
            ANALYSIS_COLUMNS,
            "call_analysis WHERE tenant_id = $1 AND call_id = wanted.v",
        );
        for row in tx.query(&sql, &[&tenant, &ids])? {
            if let Some(a) = analysis_from_row(&row, 0)? {
                self.analyses.load(a.call_id.clone(), a);
            }
        }
        Ok(())
    }

    /// Each contact's first arrival at each stage; for contacts with a meeting (stored or in
    /// the batch), the starts of their calls.
    fn load_contacts<'a>(
        &mut self,
        tx: &mut Transaction,
        tenant: i64,
        contacts: &[String],
        meetings_in_batch: impl Iterator<Item = &'a str>,
    ) -> Result<()> {
        self.firsts = contacts.iter().map(|c| (c.to_string(), HashMap::new())).collect();
        // Only the contacts with some stage have first arrivals to look up (each a probe of
        // every month's partition of `lead_stages`).
        let sql = format!(
            "SELECT wanted.v FROM unnest($2::text[]) AS wanted(v), LATERAL (SELECT FROM staged_contacts \
             WHERE tenant_id = $1 AND contact_hash = {} OFFSET 0) AS found",
            id_hash("wanted.v")
        );
        self.staged = tx
            .query(&sql, &[&tenant, &contacts])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let staged: Vec<&str> = self.staged.iter().map(String::as_str).collect();
        if !staged.is_empty() {
            let sql = format!(
                "SELECT {STAGE_COLUMNS} FROM unnest($2::text[]) AS wanted(v), LATERAL (SELECT DISTINCT ON (stage) \
                 {STAGE_COLUMNS} FROM lead_stages WHERE tenant_id = $1 AND contact_id = wanted.v \
                 ORDER BY stage, at_ns, event_id) AS found"
            );
            for row in tx.query(&sql, &[&tenant, &staged])? {
                let stage = stage_from_row(&row)?;
                self.firsts
                    .entry(stage.contact_id.clone())
                    .or_default()
                    .insert(stage.stage.clone(), stage);
            }
        }
        let stored_meetings = self
            .firsts
            .iter()
            .filter(|(_, stages)| stages.contains_key(MEETING_STAGE))
            .map(|(contact, _)| contact.clone());
        let with_meeting: Vec<String> = stored_meetings
            .chain(meetings_in_batch.map(str::to_string))
            .collect::<HashSet<String>>()
            .into_iter()
            .collect();
        if with_meeting.is_empty() {
            return Ok(());
        }
        self.contact_calls = with_meeting.iter().map(|c| (c.to_string(), HashMap::new())).collect();
        let sql = probe(
            "unnest($2::text[]) AS wanted(v)",
            "contact_id, call_id, started_ns",
            &format!(
                "call_keys WHERE tenant_id = $1 AND {} AND contact_id IS NOT NULL",
                same_id("contact_hash", "contact_id", "wanted.v")
            ),
        );
        let rows = tx.query(&sql, &[&tenant, &with_meeting])?;
        for row in rows {
            let contact: String = row.get(0);
            self.contact_calls
                .entry(contact)
                .or_default()
                .insert(row.get(1), row.get(2));
        }
        Ok(())
    }

    fn load_conversations(&mut self, tx: &mut Transaction, tenant: i64, ids: &[&str], changed: &[&str]) -> Result<()> {
        self.conversations = Current::expect(ids.iter().copied());
        let sql = probe(
            "unnest($2::text[]) AS wanted(v)",
            CONVERSATION_COLUMNS,
            "conversations WHERE tenant_id = $1 AND conversation_id = wanted.v",
        );
        for row in tx.query(&sql, &[&tenant, &ids])? {
            let c = conversation_from_row(&row)?;
            self.conversations.load(c.conversation_id.clone(), c);
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.csat_by_conversation = changed.iter().map(|id| (id.to_string(), Vec::new())).collect();
        let sql = probe(
            "unnest($2::text[]) AS wanted(v)",
            CSAT_COLUMNS,
            "csat WHERE tenant_id = $1 AND conversation_id = wanted.v AND conversation_id IS NOT NULL",
        );
        for row in tx.query(&sql, &[&tenant, &changed])? {
            let score = csat_from_row(&row)?;
            let id = score.conversation_id.clone().unwrap_or_default();
            self.csat_by_conversation.entry(id).or_default().push(score);
        }
        Ok(())
    }

    /// For each new status, the agent's stored statuses just before and just after it.
    fn load_status_neighbours(&mut self, tx: &mut Transaction, tenant: i64, statuses: &[&StatusChange]) -> Result<()> {
        let agents: Vec<&str> = statuses.iter().map(|s| s.agent_id.as_str()).collect();
        let ats: Vec<i64> = statuses.iter().map(|s| s.at_ns).collect();
        let ids: Vec<&str> = statuses.iter().map(|s| s.event_id.as_str()).collect();
        let rows = tx.query(
            "SELECT u.event_id, p.at_ns, p.event_id, p.status, n.at_ns, n.event_id, n.status \
             FROM unnest($2::text[], $3::int8[], $4::text[]) AS u(agent_id, at_ns, event_id) \
             LEFT JOIN LATERAL (SELECT at_ns, event_id, status FROM agent_status s WHERE s.tenant_id = $1 \
               AND s.agent_id = u.agent_id AND (s.at_ns, s.event_id) < (u.at_ns, u.event_id) \
               ORDER BY s.at_ns DESC, s.event_id DESC LIMIT 1) p ON true \
             LEFT JOIN LATERAL (SELECT at_ns, event_id, status FROM agent_status s WHERE s.tenant_id = $1 \
               AND s.agent_id = u.agent_id AND (s.at_ns, s.event_id) > (u.at_ns, u.event_id) \
               ORDER BY s.at_ns, s.event_id LIMIT 1) n ON true",
            &[&tenant, &agents, &ats, &ids],
        )?;
        for row in rows {
            let side = |at: usize| -> Option<StoredStatus> {
                let when: Option<i64> = row.get(at);
                when.map(|t| (t, row.get(at + 1), status_of(row.get(at + 2))))
            };
            self.status_neighbours.insert(row.get(0), [side(1), side(4)]);
        }
        Ok(())
    }
}

impl Records for WorkingSet {
    fn log_event(&mut self, tenant: i64, event: &ParsedEvent, _received_ns: i64) -> Result<bool> {
        Ok(self.set(tenant)?.new_ids.remove(&event.id))
    }

    fn call(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallRecord>> {
        Ok(self.set(tenant)?.calls.get(call_id)?.clone())
    }

    fn purged_call(&mut self, tenant: i64, call_id: &str) -> Result<bool> {
        let set = self.set(tenant)?;
        Ok(set.stored_calls.contains_key(call_id) && set.calls.get(call_id)?.is_none())
    }

    fn put_call(&mut self, tenant: i64, call: &CallRecord, _previous: Option<&CallRecord>) -> Result<()> {
        let set = self.set(tenant)?;
        let old = set.calls.put(&call.call_id, call)?;
        if let Some(calls) = old
            .and_then(|o| o.contact_id)
            .and_then(|c| set.contact_calls.get_mut(&c))
        {
            calls.remove(&call.call_id);
        }
        if let Some(calls) = call.contact_id.as_ref().and_then(|c| set.contact_calls.get_mut(c)) {
            calls.insert(call.call_id.clone(), call.started_ns);
        }
        Ok(())
    }

    fn analysis(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallAnalysis>> {
        Ok(self.set(tenant)?.analyses.get(call_id)?.clone())
    }

    fn put_analysis(&mut self, tenant: i64, analysis: &CallAnalysis) -> Result<()> {
        self.set(tenant)?.analyses.put(&analysis.call_id, analysis)?;
        Ok(())
    }

    fn first_call(&mut self, tenant: i64, contact: &str) -> Result<Option<i64>> {
        let calls = loaded(&self.set(tenant)?.contact_calls, "calls of contact", contact)?;
        Ok(calls.values().min().copied())
    }

    fn first_arrival(&mut self, tenant: i64, contact: &str, stage: &str) -> Result<Option<StageChange>> {
        Ok(loaded(&self.set(tenant)?.firsts, "contact", contact)?
            .get(stage)
            .cloned())
    }

    fn put_stage(&mut self, tenant: i64, stage: &StageChange) -> Result<()> {
        let set = self.set(tenant)?;
        let stages = set
            .firsts
            .get_mut(&stage.contact_id)
            .ok_or_else(|| not_loaded("contact", &stage.contact_id))?;
        let earlier = |f: &StageChange| (stage.at_ns, stage.event_id.as_str()) < (f.at_ns, f.event_id.as_str());
        if stages.get(&stage.stage).is_none_or(earlier) {
            stages.insert(stage.stage.clone(), stage.clone());
        }
        set.new_stages.push(stage.clone());
        Ok(())
    }

    fn conversation(&mut self, tenant: i64, id: &str) -> Result<Option<Conversation>> {
        Ok(self.set(tenant)?.conversations.get(id)?.clone())
    }

    fn put_conversation(&mut self, tenant: i64, c: &Conversation) -> Result<()> {
        self.set(tenant)?.conversations.put(&c.conversation_id, c)?;
        Ok(())
    }

    fn csat_of_conversation(&mut self, tenant: i64, id: &str) -> Result<Vec<CsatScore>> {
        Ok(loaded(&self.set(tenant)?.csat_by_conversation, "scores of conversation", id)?.clone())
    }

    fn put_csat(&mut self, tenant: i64, score: &CsatScore) -> Result<()> {
        let set = self.set(tenant)?;
        if let Some(scores) = score
            .conversation_id
            .as_ref()
            .and_then(|c| set.csat_by_conversation.get_mut(c))
        {
            scores.push(score.clone());
        }
        set.new_csat.push(score.clone());
        Ok(())
    }

    fn put_status(&mut self, tenant: i64, s: &StatusChange) -> Result<(Neighbour, Neighbour)> {
        let set = self.set(tenant)?;
        let [stored_before, stored_after] = loaded(&set.status_neighbours, "status", &s.event_id)?.clone();
        let me = (s.at_ns, s.event_id.as_str());
        // The nearest of the stored neighbour and this batch's earlier statuses of the agent.
        let batch = set
            .new_statuses
            .iter()
            .filter(|b| b.agent_id == s.agent_id)
            .map(|b| (b.at_ns, b.event_id.as_str(), b.status));
        let candidates = batch.chain(stored(&stored_before)).chain(stored(&stored_after));
        let (mut before, mut after): (Option<StatusAt>, Option<StatusAt>) = (None, None);
        for c in candidates {
            let key = (c.0, c.1);
            if key < me && before.is_none_or(|b| (b.0, b.1) < key) {
                before = Some(c);
            }
            if key > me && after.is_none_or(|a| key < (a.0, a.1)) {
                after = Some(c);
            }
        }
        let neighbours = (before.map(|b| (b.0, b.2)), after.map(|a| (a.0, a.2)));
        set.new_statuses.push(s.clone());
        Ok(neighbours)
    }
}

/// A binary COPY into `table (columns)` of the rows `write` writes; nothing at all when there
/// are no rows (`any` is false).
pub fn copy(
    tx: &mut Transaction,
    table: &str,
    columns: &str,
    types: &[Type],
    any: bool,
    write: impl FnOnce(&mut BinaryCopyInWriter) -> Result<()>,
) -> Result<()> {
    if !any {
        return Ok(());
    }
    let sink = tx.copy_in(&format!("COPY {table} ({columns}) FROM STDIN (FORMAT binary)"))?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    write(&mut writer)?;
    writer.finish()?;
    Ok(())
}

#[rustfmt::skip]
const CALL_TYPES: [Type; 18] = [
    T::INT8, T::TEXT, T::TEXT, T::INT8, T::INT8, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::TEXT,
    T::TEXT, T::TEXT, T::INT8, T::INT8, T::INT8, T::INT8, T::INT8,
];
#[rustfmt::skip]
const ANALYSIS_TYPES: [Type; 10] = [
    T::INT8, T::TEXT, T::TEXT, T::INT8, T::INT8, T::INT8, T::INT8, T::INT8, T::INT8, T::TEXT,
];
#[rustfmt::skip]
const CONVERSATION_TYPES: [Type; 12] = [
    T::INT8, T::TEXT, T::TEXT, T::INT8, T::TEXT, T::INT8, T::TEXT, T::TEXT, T::INT8, T::INT8, T::TEXT,
    T::TEXT,
];
#[rustfmt::skip]
const STAGE_TYPES: [Type; 11] = [
    T::INT8, T::TEXT, T::TEXT, T::TEXT, T::INT8, T::TEXT, T::TEXT, T::TEXT, T::TEXT, T::INT8, T::TEXT,
];
const CSAT_TYPES: [Type; 7] = [T::INT8, T::TEXT, T::INT8, T::INT8, T::TEXT, T::TEXT, T::TEXT];

impl WorkingSet {
    /// Writes what the batches changed: the new events (one block per tenant), the new
    /// versions of records (the replaced rows removed first), the new statuses, stages and
    /// scores, and each tenant's batch of id hashes; returns those, for the writer's filters
    /// once committed.
    pub fn flush(
        &self,
        tx: &mut Transaction,
        batches: &[Batch],
        stored: &[&[bool]],
        received_ns: i64,
    ) -> Result<Vec<Stored>> {
        self.write_records(tx, batches, stored, received_ns)?;
        let mut hashes = Vec::new();
        for (tenant, set) in &self.tenants {
            let stored = set.stored_ids(*tenant)?;
            if !stored.is_empty() {
                stored.write(tx, received_ns / 1_000_000)?;
                hashes.push(stored);
            }
        }
        Ok(hashes)
    }

    fn write_records(
        &self,
        tx: &mut Transaction,
        batches: &[Batch],
        stored: &[&[bool]],
        received_ns: i64,
    ) -> Result<()> {
        let mut new_events: Vec<(i64, Vec<bodies::Entry>)> = Vec::new();
        for (b, stored) in batches.iter().zip(stored) {
            let entries = b
                .events
                .iter()
                .zip(stored.iter())
                .filter(|(_, new)| **new)
                .map(|(e, _)| bodies::Entry {
                    event_id: &e.id,
                    kind: e.event.type_name(),
                    body: &e.raw,
                });
            match new_events.iter_mut().find(|(tenant, _)| *tenant == b.tenant) {
                Some((_, events)) => events.extend(entries),
                None => new_events.push((b.tenant, entries.collect())),
            }
        }
        new_events.retain(|(_, events)| !events.is_empty());
        copy(
            tx,
            "event_blocks",
            "tenant_id, received_ns, events, block",
            &[T::INT8, T::INT8, T::INT4, T::BYTEA],
            !new_events.is_empty(),
            |w| {
                for (tenant, events) in &new_events {
                    let count = events.len() as i32;
                    w.write(&[tenant, &received_ns, &count, &bodies::encode(events.iter().cloned())])?;
                }
                Ok(())
            },
        )?;
        for (tenant, set) in &self.tenants {
            set.remove_replaced(tx, *tenant)?;
            // Ids logged at load that no event used were refused (a bound key's event naming
            // another agent's record): they were never stored, so a later event may use them.
            if !set.new_ids.is_empty() {
                let refused: Vec<&str> = set.new_ids.iter().map(String::as_str).collect();
                let by_id = in_generations("unnest($2::text[]) AS wanted(v)");
                let condition = event_id_is("wanted.v");
                delete_found(tx, "event_ids", &by_id, &condition, &[tenant, &refused])?;
            }
        }
        let sets = || self.tenants.iter();
        let calls = || sets().flat_map(|(tenant, set)| set.calls.changed().map(move |c| (tenant, c)));
        let any_call = calls().next().is_some();
        copy(
            tx,
            "calls",
            &format!("tenant_id, {CALL_COLUMNS}"),
            &CALL_TYPES,
            any_call,
            |w| {
                for (tenant, c) in calls() {
                    w.write(&[
                        tenant,
                        &c.call_id,
                        &c.event_id,
                        &c.version_ns,
                        &c.started_ns,
                        &c.agent_id,
                        &c.team_id,
                        &c.campaign_id,
                        &c.list_id,
                        &c.contact_id,
                        &c.lead_source,
                        &c.direction,
                        &c.disposition,
                        &c.ended_ns,
                        &c.talk_seconds,
                        &c.wait_seconds,
                        &c.wrap_seconds,
                        &call_flags(c),
                    ])?;
                }
                Ok(())
            },
        )?;
        // The calls by value: a run per tenant (pg/value_runs.rs).
        for (tenant, set) in &self.tenants {
            let mut run = value_runs::PendingRun::default();
            set.calls.changed().for_each(|c| run.add(c));
            run.write(tx, *tenant, 0)?;
        }
        let key_types = [T::INT8, T::TEXT, T::INT8, T::TEXT, T::INT4];
        copy(
            tx,
            "call_keys",
            "tenant_id, call_id, started_ns, contact_id, gen",
            &key_types,
            any_call,
            |w| {
                for (tenant, set) in sets() {
                    let generation = set.head.generation();
                    for c in set.calls.changed() {
                        w.write(&[tenant, &c.call_id, &c.started_ns, &c.contact_id, &generation])?;
                    }
                }
                Ok(())
            },
        )?;
        let analyses = || sets().flat_map(|(tenant, set)| set.analyses.changed().map(move |a| (tenant, a)));
        let columns = format!("tenant_id, {ANALYSIS_COLUMNS}");
        copy(
            tx,
            "call_analysis",
            &columns,
            &ANALYSIS_TYPES,
            analyses().next().is_some(),
            |w| {
                for (tenant, a) in analyses() {
                    w.write(&[
                        tenant,
                        &a.call_id,
                        &a.event_id,
                        &a.version_ns,
                        &a.score_micros,
                        &a.sentiment_micros,
                        &a.prospect_sentiment_micros,
                        &a.talk_ratio_micros,
                        &a.filler_micros,
                        &a.intent,
                    ])?;
                }
                Ok(())
            },
        )?;
        let conversations = || sets().flat_map(|(tenant, set)| set.conversations.changed().map(move |c| (tenant, c)));
        let columns = format!("tenant_id, {CONVERSATION_COLUMNS}");
        let any = conversations().next().is_some();
        copy(tx, "conversations", &columns, &CONVERSATION_TYPES, any, |w| {
            for (tenant, c) in conversations() {
                w.write(&[
                    tenant,
                    &c.conversation_id,
                    &c.event_id,
                    &c.version_ns,
                    &c.channel,
                    &c.opened_ns,
                    &c.agent_id,
                    &c.team_id,
                    &c.first_response_ns,
                    &c.resolved_ns,
                    &c.status,
                    &c.intent,
                ])?;
            }
            Ok(())
        })?;
        let statuses = || sets().flat_map(|(tenant, set)| set.new_statuses.iter().map(move |s| (tenant, s)));
        let status_types = [T::INT8, T::TEXT, T::INT8, T::TEXT, T::TEXT];
        let columns = "tenant_id, agent_id, at_ns, event_id, status";
        copy(
            tx,
            "agent_status",
            columns,
            &status_types,
            statuses().next().is_some(),
            |w| {
                for (tenant, s) in statuses() {
                    w.write(&[tenant, &s.agent_id, &s.at_ns, &s.event_id, &s.status.as_str()])?;
                }
                Ok(())
            },
        )?;
        let stages = || sets().flat_map(|(tenant, set)| set.new_stages.iter().map(move |s| (tenant, s)));
        let columns = format!("tenant_id, {STAGE_COLUMNS}");
        copy(
            tx,
            "lead_stages",
            &columns,
            &STAGE_TYPES,
            stages().next().is_some(),
            |w| {
                for (tenant, s) in stages() {
                    w.write(&[
                        tenant,
                        &s.event_id,
                        &s.contact_id,
                        &s.stage,
                        &s.at_ns,
                        &s.campaign_id,
                        &s.lead_source,
                        &s.agent_id,
                        &s.call_id,
                        &s.amount_minor,
                        &s.currency,
                    ])?;
                }
                Ok(())
            },
        )?;
        for (tenant, set) in &self.tenants {
            set.list_staged_contacts(tx, *tenant)?;
        }
        let scores = || sets().flat_map(|(tenant, set)| set.new_csat.iter().map(move |s| (tenant, s)));
        let columns = format!("tenant_id, {CSAT_COLUMNS}");
        copy(tx, "csat", &columns, &CSAT_TYPES, scores().next().is_some(), |w| {
            for (tenant, s) in scores() {
                w.write(&[
                    tenant,
                    &s.event_id,
                    &s.score,
                    &s.at_ns,
                    &s.call_id,
                    &s.conversation_id,
                    &s.agent_id,
                ])?;
            }
            Ok(())
        })
    }
}

impl TenantSet {
    /// The hashes of the event ids logged and the call keys written by this transaction.
    fn stored_ids(&self, tenant: i64) -> Result<Stored> {
        let call_hash = |id: &str| {
            self.call_hashes
                .get(id)
                .copied()
                .ok_or_else(|| not_loaded("call id hash", id))
        };
        Ok(Stored {
            tenant,
            head: self.head,
            events: self.logged_hashes.clone(),
            calls: self
                .calls
                .changed_ids()
                .into_iter()
                .map(call_hash)
                .collect::<Result<_>>()?,
        })
    }

    /// Lists in `staged_contacts` the contacts of the new stages that it did not list yet.
    fn list_staged_contacts(&self, tx: &mut Transaction, tenant: i64) -> Result<()> {
        let unlisted = distinct(
            self.new_stages
                .iter()
                .map(|s| s.contact_id.as_str())
                .filter(|c| !self.staged.contains(*c)),
        );
        if !unlisted.is_empty() {
            // Two contacts may share a hash: the second finds the row there.
            let sql = format!(
                "INSERT INTO staged_contacts (tenant_id, contact_hash) SELECT $1, {} \
                 FROM unnest($2::text[]) AS wanted(v) ON CONFLICT DO NOTHING",
                id_hash("wanted.v")
            );
            tx.execute(&sql, &[&tenant, &unlisted])?;
        }
        Ok(())
    }

    /// Removes the stored rows of replaced calls, analyses and conversations (their new versions
    /// are then written for all tenants at once, by COPY).
    fn remove_replaced(&self, tx: &mut Transaction, tenant: i64) -> Result<()> {
        let (ids, starts): (Vec<&str>, Vec<i64>) = self
            .calls
            .changed_ids()
            .into_iter()
            .filter_map(|id| self.stored_calls.get(id).map(|at| (id, *at)))
            .unzip();
        // Calls by their month's partition (row ids repeat across partitions).
        let mut by_month: HashMap<String, (Vec<&str>, Vec<i64>)> = HashMap::new();
        for (id, at) in ids.iter().zip(&starts) {
            let month = by_month.entry(super::schema::month_of(*at).2).or_default();
            month.0.push(id);
            month.1.push(*at);
        }
        for (month, (ids, starts)) in &by_month {
            let wanted = "unnest($2::int8[], $3::text[]) AS wanted(s, v)";
            let condition = "started_ns = wanted.s AND call_id = wanted.v";
            delete_found(
                tx,
                &format!("calls_{month}"),
                wanted,
                condition,
                &[&tenant, starts, ids],
            )?;
        }
        let by_id = "unnest($2::text[]) AS wanted(v)";
        if !ids.is_empty() {
            let condition = call_key_is("wanted.v");
            let by_id = in_generations(by_id);
            delete_found(tx, "call_keys", &by_id, &condition, &[&tenant, &ids])?;
        }
        let analyses = self.analyses.changed_ids();
        if !analyses.is_empty() {
            delete_found(tx, "call_analysis", by_id, "call_id = wanted.v", &[&tenant, &analyses])?;
        }
        let conversations = self.conversations.changed_ids();
        if !conversations.is_empty() {
            let condition = "conversation_id = wanted.v";
            delete_found(tx, "conversations", by_id, condition, &[&tenant, &conversations])?;
        }
        Ok(())
    }
}

/// Writes a transaction's deltas: one row per block it touched.
pub fn write_deltas(tx: &mut Transaction, deltas: &DeltaMap) -> Result<()> {
    let columns = "tenant_id, cuboid, grain, bucket, block";
    let types = [T::INT8, T::INT2, T::INT2, T::INT8, T::BYTEA];
    copy(tx, "cell_deltas", columns, &types, !deltas.is_empty(), |w| {
        for ((tenant, cuboid, grain, bucket), cells) in deltas.blocks() {
            let block = crate::block::merge(&[], cells).expect("an empty block is never corrupt");
            if !block.is_empty() {
                w.write(&[&tenant, &(cuboid as i16), &(grain as i16), &bucket, &block])?;
            }
        }
        Ok(())
    })
}
