//! [`Records`] on SQLite: every read is a query in the writer's open transaction (in-process,
//! so a query per event costs microseconds).

use super::bodies::{Entry, EventReader, PendingBodies};
use super::first_calls::FirstCalls;
use super::keys::{self, FilteredRuns, Keys, Kind};
use super::rows::{
    put_call, put_stage, upsert_analysis, Row, INSERT_CALL, INSERT_CSAT, INSERT_STAGE, SELECT_ANALYSIS, SELECT_CALL_AT,
    SELECT_CONVERSATION, SELECT_CSAT_OF_CONVERSATION, SELECT_FIRST_STAGE, UPSERT_CONVERSATION,
};
use super::value_runs::PendingEntries;
use crate::apply::{Neighbour, Records};
use crate::bloom::Filter;
use crate::rows::{analysis_from_row, call_from_row, conversation_from_row, csat_from_row, stage_from_row};
use crate::Result;
use dialboard_engine::cells::MEETING_STAGE;
use dialboard_engine::event::{
    AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, Event, ParsedEvent, StageChange, StatusChange,
};
use rusqlite::{params, CachedStatement, Connection, OptionalExtension, Transaction};
use std::collections::{HashMap, HashSet};

/// The contacts that reached the meeting stage, kept by the writer across transactions. Every
/// call asks whether its contact has a meeting (whose days from the first call it may move);
/// most have none, and answering that from memory spares each call an index lookup (10% of the
/// writer at 10M calls). A contact listed without a meeting costs only that lookup, so additions
/// of a transaction that rolls back may stay, and a contact is held as its key's hash
/// (`keys::hash`, the tenant's seed in it): two contacts of one hash (~1 in 2^64) would cost the
/// other that lookup, nothing more. A map of tenants to sets of the contacts' text under
/// SipHash (two lookups, the text hashed and compared, a `String` a contact) was ~2% of the
/// writer's time at 4.5M calls (`may_have_meeting`, perf).
#[derive(Default)]
pub struct MeetingContacts(HashSet<u64, Hashed>);

/// Hashes that are already well mixed (`keys::hash`): Fx's one multiply places them.
type Hashed = dialboard_engine::fxhash::Fx;

impl MeetingContacts {
    pub fn load(conn: &Connection) -> rusqlite::Result<MeetingContacts> {
        let mut all = MeetingContacts::default();
        let mut stmt = conn.prepare("SELECT DISTINCT tenant_id, contact_id FROM lead_stages WHERE stage = ?1")?;
        let mut rows = stmt.query([MEETING_STAGE])?;
        while let Some(row) = rows.next()? {
            all.0.insert(keys::hash(row.get(0)?, row.get_ref(1)?.as_str()?));
        }
        Ok(all)
    }

    fn contains(&self, tenant: i64, contact: &str) -> bool {
        self.0.contains(&keys::hash(tenant, contact))
    }

    fn add(&mut self, tenant: i64, contact: &str) {
        self.0.insert(keys::hash(tenant, contact));
    }
}

/// The calls that have an analysis, as a filter of their hashed ids kept by the writer. Every
/// new call asks for its analysis (one may have come before the call) and nearly all have none:
/// answering that from memory spares each call a B-tree probe of `call_analysis` by its id. The
/// filter only ever errs towards "maybe": an analysis purged, erased or added by a transaction
/// that rolled back costs that probe, nothing else.
pub struct AnalysedCalls(Filter);

impl AnalysedCalls {
    pub fn load(conn: &Connection) -> rusqlite::Result<AnalysedCalls> {
        let stored: i64 = conn.query_row("SELECT count(*) FROM call_analysis", [], |r| r.get(0))?;
        let mut filter = Filter::with_capacity(2 * stored as usize);
        let mut stmt = conn.prepare("SELECT tenant_id, call_id FROM call_analysis")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            filter.insert(keys::hash(row.get(0)?, row.get_ref(1)?.as_str()?));
        }
        Ok(AnalysedCalls(filter))
    }

    fn maybe(&self, tenant: i64, call_id: &str) -> bool {
        self.0.maybe(keys::hash(tenant, call_id))
    }

    /// An analysis was stored (in `conn`'s open transaction): the filter grows, rebuilt from
    /// the table, once past its capacity.
    fn add(&mut self, conn: &Connection, tenant: i64, call_id: &str) -> rusqlite::Result<()> {
        self.0.insert(keys::hash(tenant, call_id));
        if self.0.full() {
            *self = AnalysedCalls::load(conn)?;
        }
        Ok(())
    }

    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }
}

pub struct SqliteRecords<'a> {
    pub tx: &'a Transaction<'a>,
    pub meetings: &'a mut MeetingContacts,
    pub analysed: &'a mut AnalysedCalls,
    pub first_calls: &'a mut FirstCalls,
    pub keys: &'a mut Keys,
    /// The new events, written as one compressed block per tenant before the commit.
    pub bodies: PendingBodies,
    /// The `seq` of the next new event (the writer's numbering, `bodies::next_seq`).
    pub next_seq: &'a mut i64,
    /// The stored events that duplicate checks read, each block decompressed once.
    pub stored: EventReader,
    /// The rows of the calls this transaction read, where their next version goes.
    pub call_rows: HashMap<(i64, String), i64>,
    /// The calls' entries by agent, team, campaign and disposition, written as one run before
    /// the commit.
    pub values: PendingEntries,
    /// The insert of every new call, prepared once per transaction.
    pub statements: HotStatements<'a>,
    /// The key (hashed) of a call that `purged_call` found no row listed under, until a call is
    /// stored: the new call's own lookup (`call`, right after) is then answered without asking
    /// the keys again (its event, logged in between, added the only key since, with no row).
    pub absent_call: Option<u64>,
    /// The runs of contacts, which a meeting's first call probes.
    pub contact_runs: FilteredRuns,
}

/// The statements every new call or stage runs, looked up once per transaction and then held: a lookup
/// in rusqlite's statement cache hashes the statement's SQL (~300 bytes for a call's insert) as
/// it is taken and again as it is put back, 6.5% of the writer's time at 1M calls (`perf`,
/// bench/README.md).
#[derive(Default)]
pub struct HotStatements<'a> {
    insert_call: Option<CachedStatement<'a>>,
    insert_stage: Option<CachedStatement<'a>>,
}

/// The statement in `slot`, prepared (from the connection's cache) at its first use.
fn held<'s, 'a>(
    slot: &'s mut Option<CachedStatement<'a>>,
    conn: &'a Connection,
    sql: &str,
) -> rusqlite::Result<&'s mut CachedStatement<'a>> {
    if slot.is_none() {
        *slot = Some(conn.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("prepared above"))
}

impl SqliteRecords<'_> {
    /// The row of the tenant's call `call_id`, and the call.
    fn find_call(&self, tenant: i64, call_id: &str) -> Result<Option<(i64, CallRecord)>> {
        let hash = keys::hash(tenant, call_id);
        if self.absent_call == Some(hash) {
            return Ok(None);
        }
        let candidates = self.keys.candidates(self.tx, Kind::Call, hash)?;
        if candidates.is_empty() {
            // A new call (nearly every one): no statement looked up (its SQL hashed) for nothing.
            return Ok(None);
        }
        let mut stmt = self.tx.prepare_cached(SELECT_CALL_AT)?;
        for seq in candidates {
            if let Some(call) = stmt
                .query_row(params![seq, tenant, call_id], |r| call_from_row(r, 0))
                .optional()?
            {
                return Ok(Some((seq, call)));
            }
        }
        Ok(None)
    }
}

impl Records for SqliteRecords<'_> {
    /// The event goes into its tenant's block of the transaction (no row): its block bears
    /// `received_ns`, the transaction's, when written.
    fn log_event(&mut self, tenant: i64, e: &ParsedEvent, _received_ns: i64) -> Result<bool> {
        let hash = keys::hash(tenant, &e.id);
        for seq in self.keys.candidates(self.tx, Kind::Event, hash)? {
            // An event of this transaction, not yet in a block, or one stored before.
            let known = match self.bodies.event_id(tenant, seq) {
                Some(event_id) => event_id == e.id,
                None => self
                    .stored
                    .event(self.tx, tenant, seq)?
                    .is_some_and(|s| s.event_id == e.id),
            };
            if known {
                return Ok(false);
            }
        }
        let seq = *self.next_seq;
        *self.next_seq += 1;
        let record_key = e.event.record_key();
        let entry = Entry {
            seq,
            event_id: &e.id,
            kind: e.event.type_name(),
            record_key,
            body: &e.raw,
        };
        self.bodies.add(tenant, &entry);
        self.keys.add(Kind::Event, hash, seq);
        if let Some(record) = record_key {
            // A call's events are its call keys: the first numbers its row (`put_call`).
            let kind = if matches!(e.event, Event::Call(_)) {
                Kind::Call
            } else {
                Kind::Record
            };
            self.keys.add(kind, keys::hash(tenant, record), seq);
        }
        Ok(true)
    }

    fn purged_call(&mut self, tenant: i64, call_id: &str) -> Result<bool> {
        // The keys of purged rows stay in the runs: a key (of this id, but for a 64-bit hash
        // collision) whose row is gone was purged. A live call's own row answers first (its
        // later versions' keys have no row of their own).
        let hash = keys::hash(tenant, call_id);
        let candidates = self.keys.candidates(self.tx, Kind::Call, hash)?;
        if candidates.is_empty() {
            self.absent_call = Some(hash);
            return Ok(false);
        }
        let mut exists = self.tx.prepare_cached("SELECT 1 FROM calls WHERE seq = ?1")?;
        let mut gone = false;
        for seq in candidates {
            gone |= !exists.exists([seq])?;
        }
        Ok(gone && self.find_call(tenant, call_id)?.is_none())
    }

    fn call(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallRecord>> {
        let Some((seq, call)) = self.find_call(tenant, call_id)? else {
            return Ok(None);
        };
        self.call_rows.insert((tenant, call_id.to_string()), seq);
        Ok(Some(call))
    }

    fn put_call(&mut self, tenant: i64, call: &CallRecord, previous: Option<&CallRecord>) -> Result<()> {
        let at = match previous {
            None => None,
            Some(_) => match self.call_rows.get(&(tenant, call.call_id.clone())) {
                Some(&seq) => Some(seq),
                None => self.find_call(tenant, &call.call_id)?.map(|(seq, _)| seq),
            },
        };
        let event_seq = self.bodies.seq_of_last(tenant, &call.event_id);
        // A new row takes its event's `seq`, which `log_event` listed under the call's key:
        // that key finds the row (`find_call`), no key of its own. A call not logged as an
        // event of this transaction (none does so today) gets a number of its own and a key.
        let row = match (at, event_seq) {
            (Some(seq), _) => Row::At(seq),
            (None, Some(seq)) => Row::New(seq),
            (None, None) => {
                let seq = *self.next_seq;
                *self.next_seq += 1;
                self.keys.add(Kind::Call, keys::hash(tenant, &call.call_id), seq);
                Row::New(seq)
            }
        };
        let insert = held(&mut self.statements.insert_call, self.tx, INSERT_CALL)?;
        let seq = put_call(self.tx, insert, tenant, call, event_seq, row)?;
        // A version that found no row is a new row: all its values are new.
        self.values.add(tenant, call, seq, at.and(previous));
        if at.is_none() {
            self.absent_call = None;
        }
        // The row is listed under each contact it has had (`first_calls` drops the stale ones).
        if let Some(contact) = &call.contact_id {
            if at.is_none() || previous.and_then(|p| p.contact_id.as_ref()) != Some(contact) {
                self.keys.add(Kind::Contact, keys::hash(tenant, contact), seq);
            }
        }
        self.first_calls.replace(tenant, call, previous);
        Ok(())
    }

    fn analysis(&mut self, tenant: i64, call_id: &str) -> Result<Option<CallAnalysis>> {
        if !self.analysed.maybe(tenant, call_id) {
            return Ok(None);
        }
        Ok(self
            .tx
            .prepare_cached(SELECT_ANALYSIS)?
            .query_row(params![tenant, call_id], |r| analysis_from_row(r, 0))
            .optional()?
            .flatten())
    }

    fn put_analysis(&mut self, tenant: i64, analysis: &CallAnalysis) -> Result<()> {
        upsert_analysis(self.tx, tenant, analysis)?;
        Ok(self.analysed.add(self.tx, tenant, &analysis.call_id)?)
    }

    fn first_call(&mut self, tenant: i64, contact: &str) -> Result<Option<i64>> {
        Ok(self
            .first_calls
            .get(self.tx, self.keys, &mut self.contact_runs, tenant, contact)?)
    }

    fn first_arrival(&mut self, tenant: i64, contact: &str, stage: &str) -> Result<Option<StageChange>> {
        if stage == MEETING_STAGE && !self.meetings.contains(tenant, contact) {
            return Ok(None);
        }
        Ok(self
            .tx
            .prepare_cached(SELECT_FIRST_STAGE)?
            .query_row(params![tenant, contact, stage], |r| stage_from_row(r))
            .optional()?)
    }

    fn may_have_meeting(&mut self, tenant: i64, contact: &str) -> Result<bool> {
        Ok(self.meetings.contains(tenant, contact))
    }

    fn put_stage(&mut self, tenant: i64, s: &StageChange) -> Result<()> {
        if s.stage == MEETING_STAGE {
            self.meetings.add(tenant, &s.contact_id);
        }
        let insert = held(&mut self.statements.insert_stage, self.tx, INSERT_STAGE)?;
        Ok(put_stage(insert, tenant, s)?)
    }

    fn conversation(&mut self, tenant: i64, id: &str) -> Result<Option<Conversation>> {
        Ok(self
            .tx
            .prepare_cached(SELECT_CONVERSATION)?
            .query_row(params![tenant, id], |r| conversation_from_row(r))
            .optional()?)
    }

    fn put_conversation(&mut self, tenant: i64, c: &Conversation) -> Result<()> {
        self.tx.prepare_cached(UPSERT_CONVERSATION)?.execute(params![
            tenant,
            c.conversation_id,
            c.event_id,
            c.version_ns,
            c.channel,
            c.opened_ns,
            c.agent_id,
            c.team_id,
            c.first_response_ns,
            c.resolved_ns,
            c.status,
            c.intent
        ])?;
        Ok(())
    }

    fn csat_of_conversation(&mut self, tenant: i64, id: &str) -> Result<Vec<CsatScore>> {
        let mut stmt = self.tx.prepare_cached(SELECT_CSAT_OF_CONVERSATION)?;
        let scores = stmt.query_map(params![tenant, id], |r| csat_from_row(r))?;
        Ok(scores.collect::<rusqlite::Result<_>>()?)
    }

    fn put_csat(&mut self, tenant: i64, s: &CsatScore) -> Result<()> {
        self.tx.prepare_cached(INSERT_CSAT)?.execute(params![
            tenant,
            s.event_id,
            s.score,
            s.at_ns,
            s.call_id,
            s.conversation_id,
            s.agent_id
        ])?;
        Ok(())
    }

    fn put_status(&mut self, tenant: i64, s: &StatusChange) -> Result<(Neighbour, Neighbour)> {
        self.tx
            .prepare_cached(
                "INSERT INTO agent_status (tenant_id, agent_id, at_ns, event_id, status) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![tenant, s.agent_id, s.at_ns, s.event_id, s.status.as_str()])?;
        let neighbour = |sql: &str| -> Result<Neighbour> {
            Ok(self
                .tx
                .prepare_cached(sql)?
                .query_row(params![tenant, s.agent_id, s.at_ns, s.event_id], |r| {
                    let status: String = r.get(1)?;
                    Ok((r.get(0)?, AgentStatus::parse(&status).unwrap_or(AgentStatus::Offline)))
                })
                .optional()?)
        };
        let previous = neighbour(
            "SELECT at_ns, status FROM agent_status WHERE tenant_id = ?1 AND agent_id = ?2 AND (at_ns, event_id) < (?3, ?4) \
             ORDER BY at_ns DESC, event_id DESC LIMIT 1",
        )?;
        let next = neighbour(
            "SELECT at_ns, status FROM agent_status WHERE tenant_id = ?1 AND agent_id = ?2 AND (at_ns, event_id) > (?3, ?4) \
             ORDER BY at_ns, event_id LIMIT 1",
        )?;
        Ok((previous, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::Records;
    use dialboard_engine::event::{parse_event, Event};
    use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};

    fn parsed(value: serde_json::Value) -> Event {
        parse_event(&value, &CompiledTaxonomy::new(&Taxonomy::default()))
            .unwrap()
            .event
    }

    fn call(id: &str, call_id: &str, updated_s: i64) -> CallRecord {
        let Event::Call(call) = parsed(serde_json::json!({"id": id, "type": "call", "call_id": call_id,
            "agent_id": "a1", "disposition": "Connected", "started_at": "2026-06-01T10:00:00Z",
            "updated_at": jiff::Timestamp::from_second(1_780_300_000 + updated_s).unwrap().to_string()}))
        else {
            unreachable!()
        };
        std::sync::Arc::unwrap_or_clone(call)
    }

    fn stage(id: &str, contact: &str, stage: &str) -> StageChange {
        let Event::Stage(stage) = parsed(
            serde_json::json!({"id": id, "type": "lead_stage", "contact_id": contact,
            "stage": stage, "at": "2026-06-01T10:00:00Z"}),
        ) else {
            unreachable!()
        };
        stage
    }

    /// An empty database and the writer's state of it.
    fn writer_state() -> (Connection, super::super::writer::Contacts) {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let contacts = super::super::writer::Contacts::load(&conn).unwrap();
        (conn, contacts)
    }

    /// A contact has a meeting once one is stored (at once) or once the writer's state is
    /// loaded after it was: in its own tenant only, and only a meeting (not another stage).
    #[test]
    fn meeting_contacts_are_known_per_tenant() {
        let (mut conn, mut contacts) = writer_state();
        let tx = conn.transaction().unwrap();
        {
            let records = &mut contacts.records(&tx);
            assert!(!records.may_have_meeting(1, "p1").unwrap());
            records.put_stage(1, &stage("m1", "p1", MEETING_STAGE)).unwrap();
            records.put_stage(1, &stage("w2", "p2", "closed_won")).unwrap();
            assert!(records.may_have_meeting(1, "p1").unwrap());
            assert!(!records.may_have_meeting(1, "p2").unwrap(), "another stage");
            assert!(!records.may_have_meeting(2, "p1").unwrap(), "another tenant's");
        }
        tx.commit().unwrap();
        let loaded = MeetingContacts::load(&conn).unwrap();
        assert!(loaded.contains(1, "p1"));
        assert!(!loaded.contains(1, "p2"));
        assert!(!loaded.contains(2, "p1"));
    }

    /// A new call's key, found absent before it is stored, is found once it is: the note that
    /// spares the second lookup goes as the call is stored (fails if it outlives the insert).
    #[test]
    fn a_call_found_absent_is_found_once_stored() {
        let (mut conn, mut contacts) = writer_state();
        let tx = conn.transaction().unwrap();
        let records = &mut contacts.records(&tx);
        let first = call("e1", "c1", 0);
        assert!(!records.purged_call(1, "c1").unwrap());
        assert_eq!(records.call(1, "c1").unwrap(), None);
        records.put_call(1, &first, None).unwrap();
        assert_eq!(records.call(1, "c1").unwrap(), Some(first.clone()));
        // Another call's note does not hide this one.
        assert!(!records.purged_call(1, "c2").unwrap());
        assert_eq!(records.call(1, "c1").unwrap(), Some(first));
        assert_eq!(records.call(2, "c1").unwrap(), None, "another tenant's");
    }

    /// The analyses stored before the writer starts, and those it stores past the filter's
    /// capacity (a rebuild from the table), are all "maybe": a call never misses its analysis.
    #[test]
    fn analysed_calls_are_never_missed() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let insert = |conn: &Connection, tenant: i64, call: &str| {
            conn.execute(
                "INSERT INTO call_analysis (tenant_id, call_id, event_id, version_ns) VALUES (?1, ?2, ?3, 0)",
                params![tenant, call, format!("e-{call}")],
            )
            .unwrap();
        };
        for i in 0..1_000 {
            insert(&conn, 1, &format!("before-{i}"));
        }
        let mut analysed = AnalysedCalls::load(&conn).unwrap();
        assert!((0..1_000).all(|i| analysed.maybe(1, &format!("before-{i}"))));
        let capacity = 1 << 16;
        for i in 0..capacity + 10 {
            let call = format!("after-{i}");
            insert(&conn, 2, &call);
            analysed.add(&conn, 2, &call).unwrap();
        }
        assert!(analysed.bytes() > Filter::with_capacity(capacity).bytes(), "it grew");
        assert!((0..1_000).all(|i| analysed.maybe(1, &format!("before-{i}"))));
        assert!((0..capacity + 10).all(|i| analysed.maybe(2, &format!("after-{i}"))));
        let absent = (0..10_000).filter(|i| analysed.maybe(1, &format!("never-{i}"))).count();
        assert!(
            absent < 100,
            "{absent} of 10,000 calls without analysis would probe the table"
        );
    }
}
