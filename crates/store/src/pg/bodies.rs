//! Raw events on PostgreSQL, compressed in blocks: the new events of one tenant in one ingest
//! transaction are one `event_blocks` row, their ids, types and JSON bodies LZ4-compressed
//! together (one tenant's events share their keys and most values: a block is 4–6× smaller
//! than its bodies). Where an event is, `event_ids` says: the `received_ns` of its
//! transaction, which its block bears; whose version it is, its `record_key`.
//!
//! A block is written by the transaction that logs its events, read whole (a call's versions,
//! an export page's bodies, another node's live feed), deleted by a purge of raw events, and
//! rewritten by an erasure. Events stored before blocks existed keep their `events` row, and
//! the readers of versions and bodies read those too.

use super::id_filter::generations;
use super::schema::same_id;
use super::working::{event_id_is, in_generations};
use crate::drill::Version;
use crate::retention::erased_body;
use crate::{Result, StoreError};
use postgres::GenericClient;
use std::collections::{BTreeSet, HashMap, HashSet};

/// One event of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub event_id: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
}

/// Encodes events as a block: each as its id, type and body, each of those as its length
/// (4 bytes) and its text; then LZ4 with the length in front.
pub fn encode<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Vec<u8> {
    let mut data = Vec::new();
    for e in entries {
        for text in [e.event_id, e.kind, e.body] {
            data.extend_from_slice(&(text.len() as u32).to_le_bytes());
            data.extend_from_slice(text.as_bytes());
        }
    }
    lz4_flex::block::compress_prepend_size(&data)
}

/// A block's events, decompressed.
pub struct Block(Vec<u8>);

fn corrupt() -> StoreError {
    StoreError::Database("corrupt event block".into())
}

impl Block {
    pub fn decompress(bytes: &[u8]) -> Result<Block> {
        let data = lz4_flex::block::decompress_size_prepended(bytes).map_err(|_| corrupt())?;
        let block = Block(data);
        // Checked whole once, so that reading it never fails.
        let mut at = 0;
        while at < block.0.len() {
            at = block.entry_at(at).ok_or_else(corrupt)?.1;
        }
        Ok(block)
    }

    /// The entry at byte `at` and where the next one starts.
    fn entry_at(&self, mut at: usize) -> Option<(Entry<'_>, usize)> {
        let mut text = || -> Option<&str> {
            let len = u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?) as usize;
            let s = std::str::from_utf8(self.0.get(at + 4..at + 4 + len)?).ok()?;
            at += 4 + len;
            Some(s)
        };
        let (event_id, kind, body) = (text()?, text()?, text()?);
        Some((Entry { event_id, kind, body }, at))
    }

    /// The events in the order they were stored.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let (entry, next) = self.entry_at(at)?;
            at = next;
            Some(entry)
        })
    }
}

/// The tenant's blocks received at each of `received`, decompressed, with their arrival.
pub fn blocks_at(db: &mut impl GenericClient, tenant: i64, received: &[i64]) -> Result<Vec<(i64, Block)>> {
    if received.is_empty() {
        return Ok(Vec::new());
    }
    db.query(
        "SELECT received_ns, block FROM event_blocks WHERE tenant_id = $1 AND received_ns = ANY($2)",
        &[&tenant, &received],
    )?
    .iter()
    .map(|r| Ok((r.get(0), Block::decompress(r.get(1))?)))
    .collect()
}

/// The distinct arrivals (column 1) of `event_ids` rows: the blocks to read.
fn arrivals(logged: &[postgres::Row]) -> Vec<i64> {
    let distinct: BTreeSet<i64> = logged.iter().map(|r| r.get(1)).collect();
    distinct.into_iter().collect()
}

/// Every version of the tenant's record `key` (a call's or a conversation's events), oldest
/// first.
pub fn versions(db: &mut impl GenericClient, tenant: i64, key: &str) -> Result<Vec<Version>> {
    let logged = db.query(
        &format!(
            "SELECT event_id, received_ns FROM {}, LATERAL (SELECT event_id, received_ns FROM event_ids \
             WHERE tenant_id = $1 AND gen = generation.n AND {} AND received_ns IS NOT NULL OFFSET 0) AS found",
            generations("$1"),
            same_id("record_hash", "record_key", "$2::text")
        ),
        &[&tenant, &key],
    )?;
    let ids: HashSet<String> = logged.iter().map(|r| r.get(0)).collect();
    let received = arrivals(&logged);
    let mut versions = Vec::new();
    for (at, block) in blocks_at(db, tenant, &received)? {
        for e in block.entries().filter(|e| ids.contains(e.event_id)) {
            versions.push(Version {
                event_id: e.event_id.to_string(),
                kind: e.kind.to_string(),
                received_ns: at,
                body: e.body.to_string(),
            });
        }
    }
    let before_blocks = db.query(
        &format!(
            "SELECT event_id, type, received_ns, body FROM events WHERE tenant_id = $1 AND {}",
            same_id("record_hash", "record_key", "$2::text")
        ),
        &[&tenant, &key],
    )?;
    versions.extend(before_blocks.iter().map(|r| Version {
        event_id: r.get(0),
        kind: r.get(1),
        received_ns: r.get(2),
        body: r.get(3),
    }));
    versions.sort_by(|a, b| (a.received_ns, &a.event_id).cmp(&(b.received_ns, &b.event_id)));
    Ok(versions)
}

/// The stored JSON body of events (event id → body), each given with its record's key (a call
/// id, by which events stored before blocks are found).
pub fn bodies_of(
    db: &mut impl GenericClient,
    tenant: i64,
    keys: Vec<(String, String)>,
) -> Result<HashMap<String, String>> {
    let ids: Vec<&str> = keys.iter().map(|(_, id)| id.as_str()).collect();
    let logged = db.query(
        &format!(
            "SELECT event_id, received_ns FROM {}, LATERAL (SELECT event_id, received_ns \
             FROM event_ids WHERE tenant_id = $1 AND {} AND received_ns IS NOT NULL OFFSET 0) AS found",
            in_generations("unnest($2::text[]) AS wanted(v)"),
            event_id_is("wanted.v")
        ),
        &[&tenant, &ids],
    )?;
    let wanted: HashSet<&str> = ids.iter().copied().collect();
    let received = arrivals(&logged);
    let mut found = HashMap::new();
    for (_, block) in blocks_at(db, tenant, &received)? {
        for e in block.entries().filter(|e| wanted.contains(e.event_id)) {
            found.insert(e.event_id.to_string(), e.body.to_string());
        }
    }
    // The rest were stored before blocks: through the index `events` has on record keys.
    let (records, ids): (Vec<String>, Vec<String>) = keys.into_iter().filter(|(_, id)| !found.contains_key(id)).unzip();
    if !ids.is_empty() {
        let rows = db.query(
            &format!(
                "SELECT DISTINCT event_id, body FROM unnest($2::text[]) AS wanted(v), LATERAL (SELECT event_id, body \
                 FROM events WHERE tenant_id = $1 AND {} AND event_id = ANY($3) OFFSET 0) AS found",
                same_id("record_hash", "record_key", "wanted.v")
            ),
            &[&tenant, &records, &ids],
        )?;
        found.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
    }
    Ok(found)
}

/// Removes a contact's personal data from the bodies of every block of the tenant
/// (`retention::erased_body` decides), rewriting the blocks that held any; returns how many
/// events were rewritten. Reads the blocks a chunk at a time, in the caller's transaction.
pub fn erase_contact(tx: &mut postgres::Transaction, tenant: i64, contact_id: &str) -> Result<i64> {
    let read = tx.prepare("SELECT ctid::text, block FROM event_blocks WHERE tenant_id = $1")?;
    let portal = tx.bind(&read, &[&tenant])?;
    let mut rewritten: Vec<(String, Vec<u8>)> = Vec::new();
    let mut erased = 0;
    loop {
        let rows = tx.query_portal(&portal, 64)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let block = Block::decompress(row.get(1))?;
            let mut changed = HashMap::new();
            for e in block.entries() {
                if let Some(body) = erased_body(e.body, contact_id) {
                    changed.insert(e.event_id, body);
                }
            }
            if changed.is_empty() {
                continue;
            }
            erased += changed.len() as i64;
            let entries = block.entries().map(|e| Entry {
                body: changed.get(e.event_id).map_or(e.body, String::as_str),
                ..e
            });
            rewritten.push((row.get(0), encode(entries)));
        }
    }
    for (ctid, block) in rewritten {
        tx.execute(
            "UPDATE event_blocks SET block = $2 WHERE ctid = $1::text::tid",
            &[&ctid, &block],
        )?;
    }
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_gives_back_its_events_in_order() {
        let events = [
            Entry {
                event_id: "e1",
                kind: "call",
                body: r#"{"id":"e1","type":"call"}"#,
            },
            Entry {
                event_id: "é2",
                kind: "agent_status",
                body: "",
            },
            Entry {
                event_id: "e3",
                kind: "call",
                body: "{}",
            },
        ];
        let block = Block::decompress(&encode(events.iter().cloned())).unwrap();
        assert_eq!(block.entries().collect::<Vec<_>>(), events);
        assert_eq!(Block::decompress(&encode([])).unwrap().entries().count(), 0);
    }

    #[test]
    fn a_damaged_block_is_refused_whole() {
        // An event whose body says 10 bytes and has 2: cut short.
        let mut data = Vec::new();
        for (len, text) in [(2u32, "e1"), (4, "call"), (10, "{}")] {
            data.extend_from_slice(&len.to_le_bytes());
            data.extend_from_slice(text.as_bytes());
        }
        assert!(Block::decompress(&lz4_flex::block::compress_prepend_size(&data)).is_err());
        assert!(Block::decompress(b"not a block").is_err());
    }
}
