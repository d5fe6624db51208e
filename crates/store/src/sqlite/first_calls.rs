//! Each contact's first call, kept in memory by the writer instead of an index on the calls.
//!
//! A meeting counts the days since its contact's first call, and any contact may book one
//! later, so the writer must know every contact's earliest call. An index by contact made every
//! call a random B-tree insert, and each dirtied a page of the log: at 1M calls that index alone
//! cut what SQLite can take from ~120,000 to ~53,000 calls/s (`bench/src/bin/floor.rs`). Here a
//! call costs a hash lookup; the map is built from the calls table by one scan (see
//! `writer::Contacts` for when).
//!
//! Contacts are keyed by a 128-bit fingerprint of their id, 24 bytes per contact (~100 MB at
//! 2.5M contacts) whatever the ids' length; two ids of one tenant sharing a fingerprint is as
//! likely as two random UUIDs being equal.
//!
//! What the map cannot know without the calls — who is first once the first call moves later or
//! to another contact — it marks unknown, and the calls table answers when it is asked (a scan:
//! rare, as a dialer corrects a call's outcome, not its start or its contact).

use dialboard_engine::event::CallRecord;
use dialboard_engine::fxhash::Fx;
use rusqlite::{params, Connection};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

type Fingerprint = (u64, u64);

/// An entry whose first call must be read from the calls table.
const UNKNOWN: i64 = i64::MIN;

pub struct FirstCalls {
    /// Per tenant: each contact with a current call, and its earliest start (or [`UNKNOWN`]).
    first: HashMap<i64, HashMap<Fingerprint, i64, Fx>, Fx>,
    /// The entries changed by the open transaction, to forget should it roll back.
    touched: Vec<(i64, Fingerprint)>,
}

fn fingerprint(contact: &str) -> Fingerprint {
    // Two SipHash values of the id, told apart by a leading byte.
    let half = |domain: u8| {
        let mut h = std::hash::DefaultHasher::new();
        domain.hash(&mut h);
        contact.hash(&mut h);
        h.finish()
    };
    (half(0), half(1))
}

impl FirstCalls {
    /// Builds the map from the calls table.
    pub fn load(conn: &Connection) -> rusqlite::Result<FirstCalls> {
        let mut all = FirstCalls {
            first: HashMap::default(),
            touched: Vec::new(),
        };
        let mut stmt =
            conn.prepare("SELECT tenant_id, contact_id, started_ns FROM calls WHERE contact_id IS NOT NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let started: i64 = row.get(2)?;
            let first = all
                .first
                .entry(row.get(0)?)
                .or_default()
                .entry(fingerprint(row.get_ref(1)?.as_str()?))
                .or_insert(started);
            *first = (*first).min(started);
        }
        Ok(all)
    }

    /// The earliest start of the contact's current calls.
    pub fn get(&mut self, conn: &Connection, tenant: i64, contact: &str) -> rusqlite::Result<Option<i64>> {
        let key = fingerprint(contact);
        match self.first.get(&tenant).and_then(|m| m.get(&key)) {
            None => Ok(None),
            Some(&UNKNOWN) => {
                let first: Option<i64> = conn
                    .prepare_cached("SELECT min(started_ns) FROM calls WHERE tenant_id = ?1 AND contact_id = ?2")?
                    .query_row(params![tenant, contact], |r| r.get(0))?;
                let contacts = self.first.entry(tenant).or_default();
                match first {
                    Some(t) => contacts.insert(key, t),
                    None => contacts.remove(&key),
                };
                self.touched.push((tenant, key));
                Ok(first)
            }
            Some(&t) => Ok(Some(t)),
        }
    }

    /// `call` replaces `previous` (same call id) as the current version.
    pub fn replace(&mut self, tenant: i64, call: &CallRecord, previous: Option<&CallRecord>) {
        let contacts = self.first.entry(tenant).or_default();
        if let Some(old) = previous.filter(|p| p.contact_id.is_some()) {
            let same_contact = old.contact_id == call.contact_id;
            let key = fingerprint(old.contact_id.as_deref().unwrap_or_default());
            // Only a version that leaves its contact, or starts later, can take the first call
            // away; if it was the first (or tied with it), who is first now is unknown.
            if !(same_contact && call.started_ns <= old.started_ns) && contacts.get(&key) == Some(&old.started_ns) {
                contacts.insert(key, UNKNOWN);
                self.touched.push((tenant, key));
            }
        }
        if let Some(contact) = &call.contact_id {
            let key = fingerprint(contact);
            let first = contacts.entry(key).or_insert(call.started_ns);
            if *first != UNKNOWN {
                *first = (*first).min(call.started_ns);
            }
            self.touched.push((tenant, key));
        }
    }

    /// The open transaction committed.
    pub fn committed(&mut self) {
        self.touched.clear();
    }

    /// The open transaction rolled back: what it changed is read from the calls table again.
    pub fn rolled_back(&mut self) {
        for (tenant, key) in self.touched.drain(..) {
            self.first.entry(tenant).or_default().insert(key, UNKNOWN);
        }
    }
}
