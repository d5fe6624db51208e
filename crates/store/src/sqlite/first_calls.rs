//! The first calls of the contacts that have a meeting, held by the writer; every other
//! contact's calls are only listed in the key runs, on disk.
//!
//! A meeting counts the days since its contact's first call (the earliest start of the
//! contact's current calls), and only a meeting asks for it (`apply.rs`: a call asks for the
//! contacts among its own that have a meeting, a meeting stage for its contact). An index of
//! calls by contact made every call a random B-tree insert, and each dirtied a page of the log:
//! at 1M calls it alone cut what SQLite can take from ~120,000 to ~53,000 calls/s
//! (`bench/src/bin/floor.rs`). A map of every contact's first call in memory then grew without
//! bound (24 bytes a contact plus its table: 517 MB at the peak of a 2 GB CDR import, 5.2M
//! contacts). So now:
//!
//! - every call's row is listed under its contact in the sorted key runs (`keys::Kind::Contact`:
//!   16 bytes on disk, appended with the transaction's other keys, nothing in memory); a
//!   correction that moves the call to another contact adds it under the new one;
//! - when a meeting needs a first call this map lacks, the runs are probed for the contact's
//!   hash (one chunk per run), those rows read, the ones that are still this contact's kept
//!   (a hash collision or a call since moved to another contact is dropped) and their earliest
//!   start taken; it is held from then on and each later call of the contact keeps it exact.
//!
//! What the map cannot know without the calls — who is first once the first call moves later or
//! to another contact — it forgets, and the runs answer when it is asked again (rare, as a
//! dialer corrects a call's outcome, not its start or its contact).

use super::keys::{self, FilteredRuns, Keys, Kind};
use dialboard_engine::event::CallRecord;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

#[derive(Default)]
pub struct FirstCalls {
    /// Per tenant: the contacts whose first call is known (`None`: no current call).
    known: HashMap<i64, HashMap<String, Option<i64>>>,
}

impl FirstCalls {
    /// The earliest start of the contact's current calls, as the open transaction sees them.
    /// `runs`: the runs of contacts, listed once for the transaction.
    pub fn get(
        &mut self,
        conn: &Connection,
        keys: &Keys,
        runs: &mut FilteredRuns,
        tenant: i64,
        contact: &str,
    ) -> rusqlite::Result<Option<i64>> {
        if let Some(&first) = self.known.get(&tenant).and_then(|c| c.get(contact)) {
            return Ok(first);
        }
        let first = read(conn, keys, runs, tenant, contact)?;
        self.known.entry(tenant).or_default().insert(contact.to_string(), first);
        Ok(first)
    }

    /// `call` replaces `previous` (same call id) as the current version.
    pub fn replace(&mut self, tenant: i64, call: &CallRecord, previous: Option<&CallRecord>) {
        let Some(contacts) = self.known.get_mut(&tenant) else {
            return;
        };
        if let Some(old) = previous {
            if let Some(old_contact) = old.contact_id.as_deref() {
                let same_contact = call.contact_id.as_deref() == Some(old_contact);
                // Only a version that leaves its contact, or starts later, can take the first
                // call away; if it was the first (or tied with it), who is first now is unknown.
                if !(same_contact && call.started_ns <= old.started_ns)
                    && contacts.get(old_contact) == Some(&Some(old.started_ns))
                {
                    contacts.remove(old_contact);
                }
            }
        }
        if let Some(contact) = call.contact_id.as_deref() {
            if let Some(first) = contacts.get_mut(contact) {
                *first = Some(first.map_or(call.started_ns, |f| f.min(call.started_ns)));
            }
        }
    }

    /// The open transaction rolled back: every first call is read from the runs again when
    /// asked. Forgetting them all (rare: a failed transaction) spares every call of a contact
    /// with a meeting a note of what it set, a `String` each (1% of the writer at 1M calls).
    pub fn rolled_back(&mut self) {
        self.known.clear();
    }

    /// How many contacts' first calls are held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.known.values().map(HashMap::len).sum()
    }
}

/// The earliest start of the contact's calls listed under its hash, among those still its own.
fn read(
    conn: &Connection,
    keys: &Keys,
    runs: &mut FilteredRuns,
    tenant: i64,
    contact: &str,
) -> rusqlite::Result<Option<i64>> {
    let mut rows = keys.candidates_in(conn, runs, Kind::Contact, keys::hash(tenant, contact))?;
    rows.sort_unstable();
    rows.dedup();
    let mut start =
        conn.prepare_cached("SELECT started_ns FROM calls WHERE seq = ?1 AND tenant_id = ?2 AND contact_id = ?3")?;
    let mut first: Option<i64> = None;
    for seq in rows {
        if let Some(started) = start
            .query_row(params![seq, tenant, contact], |r| r.get::<_, i64>(0))
            .optional()?
        {
            first = Some(first.map_or(started, |f| f.min(started)));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::super::writer::Contacts;
    use super::super::{keys, schema};
    use crate::apply::apply_batch;
    use crate::contribution::{Contribution, Counted};
    use crate::{TenantInfo, TenantSettings};
    use dialboard_engine::event::{parse_event, ParsedEvent};
    use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
    use proptest::prelude::*;
    use rusqlite::Connection;
    use serde_json::{json, Value};
    use std::collections::HashMap;

    const T0: i64 = 1_772_841_600;
    const CONTACTS: u8 = 4;

    #[derive(Debug, Clone)]
    enum Step {
        /// A version of call `call` (a newer one replaces it: another start, another contact).
        Call {
            call: u8,
            contact: Option<u8>,
            start: i64,
            version: i64,
        },
        /// A meeting of the contact: the writer asks for its first call.
        Meeting { contact: u8, at: i64 },
    }

    #[derive(Debug, Clone, Copy)]
    enum End {
        Commit,
        RollBack,
        /// Committed, then the writer's state is built again from the database (a restart).
        CommitAndReopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..8, prop::option::of(0..CONTACTS), 0i64..50, 0i64..40)
                .prop_map(|(call, contact, start, version)| Step::Call { call, contact, start, version }),
            1 => (0..CONTACTS, 0i64..60).prop_map(|(contact, at)| Step::Meeting { contact, at }),
        ]
    }

    fn transaction() -> impl Strategy<Value = (Vec<Step>, End)> {
        (
            prop::collection::vec(step(), 1..8),
            prop_oneof![6 => Just(End::Commit), 1 => Just(End::RollBack), 1 => Just(End::CommitAndReopen)],
        )
    }

    fn event(id: usize, step: &Step) -> ParsedEvent {
        let ts = |s: i64| jiff::Timestamp::from_second(T0 + s).unwrap().to_string();
        let value: Value = match step {
            Step::Call {
                call,
                contact,
                start,
                version,
            } => {
                let mut e = json!({"id": format!("e{id}"), "type": "call", "call_id": format!("c{call}"),
                    "agent_id": "a1", "disposition": "Connected", "started_at": ts(*start),
                    "updated_at": ts(100 + version)});
                if let Some(contact) = contact {
                    e["contact_id"] = json!(format!("p{contact}"));
                }
                e
            }
            Step::Meeting { contact, at } => json!({"id": format!("e{id}"), "type": "lead_stage",
                "contact_id": format!("p{contact}"), "stage": "meeting_booked", "at": ts(*at)}),
        };
        parse_event(&value, &CompiledTaxonomy::new(&Taxonomy::default())).unwrap()
    }

    /// The earliest start of the contact's current calls, from the calls themselves.
    fn oracle(conn: &Connection, contact: &str) -> Option<i64> {
        conn.query_row(
            "SELECT min(started_ns) FROM calls WHERE tenant_id = 1 AND contact_id = ?1",
            [contact],
            |r| r.get(0),
        )
        .unwrap()
    }

    /// Runs `transactions` through the writer's own records, checking after every event that
    /// the first call of every contact it holds (and of each meeting's, as the writer asks)
    /// equals the calls'; returns the contributions that were committed, and how many contacts'
    /// first calls the writer holds at the end.
    fn run(transactions: &[(Vec<Step>, End)]) -> Result<(Connection, Vec<Contribution>, usize), TestCaseError> {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::migrate(&mut conn).unwrap();
        let tenant = TenantInfo::new(1, "t".into(), TenantSettings::new("UTC")).unwrap();
        let mut contacts = Contacts::load(&conn).unwrap();
        let mut committed = Vec::new();
        let mut id = 0;
        for (steps, end) in transactions {
            let tx = conn.transaction().unwrap();
            let mut out = Vec::new();
            {
                let records = &mut contacts.records(&tx);
                for step in steps {
                    id += 1;
                    apply_batch(records, &tenant, &[event(id, step)], 0, &mut out, &mut Vec::new()).unwrap();
                    for (tenant, known) in &records.first_calls.known {
                        for (contact, first) in known {
                            prop_assert_eq!(*tenant, 1);
                            prop_assert_eq!(*first, oracle(&tx, contact), "held for {}", contact);
                        }
                    }
                }
            }
            match end {
                End::RollBack => {
                    drop(tx);
                    contacts.first_calls.rolled_back();
                    contacts.keys.rolled_back();
                }
                End::Commit | End::CommitAndReopen => {
                    contacts.keys.write(&tx).unwrap();
                    tx.commit().unwrap();
                    contacts.keys.committed(&conn).unwrap();
                    committed.extend(out);
                    keys::compact(&mut conn, Some(&mut contacts.keys)).unwrap();
                    if matches!(end, End::CommitAndReopen) {
                        contacts = Contacts::load(&conn).unwrap();
                    }
                }
            }
        }
        let held = contacts.first_calls.held();
        Ok((conn, committed, held))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Through corrections that move a call's start either way or to another contact,
        /// stale versions, rolled-back transactions, merges of the key runs (a run a
        /// transaction) and restarts, the first call the writer holds or reads is the earliest
        /// start of the contact's current calls, and each contact's meeting ends up counted
        /// once, from its first arrival, with that first call.
        #[test]
        fn first_calls_are_the_earliest_current_calls(transactions in prop::collection::vec(transaction(), 1..40)) {
            let (conn, committed, _) = run(&transactions)?;
            let mut net: HashMap<(String, i64, Option<i64>), i64> = HashMap::new();
            for c in committed {
                let Counted::Stage { stage, first_call_ns } = c.counted else { continue };
                *net.entry((stage.contact_id, stage.at_ns, first_call_ns)).or_default() += c.sign;
            }
            net.retain(|_, n| *n != 0);
            let mut expected = HashMap::new();
            let mut meetings = conn
                .prepare("SELECT contact_id, min(at_ns) FROM lead_stages GROUP BY contact_id")
                .unwrap();
            for row in meetings.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).unwrap() {
                let (contact, at) = row.unwrap();
                let first = oracle(&conn, &contact);
                expected.insert((contact, at, first), 1);
            }
            prop_assert_eq!(net, expected);
        }
    }

    /// Only contacts with a meeting are held: the calls of the others cost no memory (the map
    /// of every contact's first call held all four).
    #[test]
    fn only_contacts_with_a_meeting_are_held() {
        let mut steps: Vec<Step> = (0..8)
            .map(|call| Step::Call {
                call,
                contact: Some(call % CONTACTS),
                start: 10 + call as i64,
                version: 0,
            })
            .collect();
        steps.push(Step::Meeting { contact: 2, at: 40 });
        let (_, _, held) = run(&[(steps, End::Commit)]).unwrap();
        assert_eq!(held, 1);
    }
}
