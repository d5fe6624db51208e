//! Raw events, compressed in blocks: one `event_blocks` row per tenant and ingest transaction
//! holds that transaction's new events, LZ4-compressed together (one tenant's events share
//! their keys and most values, so a block is 4–6× smaller than its bodies; one at a time they
//! hardly compress). Each event is its `seq`, id, type, record key and JSON body there, and has
//! no row in `events`: a row cost ~100 bytes a call uncompressed with UUIDs (the id and the
//! record key as text) and a B-tree insert. A block is found by the tenant and the event's `seq`
//! (the block's `first_seq` is the tenant's greatest not after it), the event inside it by the
//! same `seq`; its id and record key are hashed keys in the runs (`keys`), which lead to it.
//!
//! Two formats, told apart by the block's `events` column (migration 32): the blocks written
//! before it (`Format::Bodies`, `events` = 0) hold only each event's `seq` and body, the event's
//! row in `events` the rest (with an empty `body`); rows written before blocks existed keep their
//! body too. Every reader takes either ([`EventReader`]).
//!
//! The writer numbers events (`next_seq`): a `seq` is used once a block holding it commits,
//! and numbering at open continues after the greatest of the rows and the blocks.
//!
//! A block is written by the transaction that logs its events and purged with them (it bears
//! their `received_at`: a transaction's events are all received at one instant); an erasure
//! rewrites the blocks that held the contact's bodies, keeping each event's other fields.

use rusqlite::{params, Connection, OptionalExtension};
use std::cell::RefCell;
use std::collections::HashMap;

/// One event as a block holds it. In a block of the first format the id and type are empty and
/// the record key `None`: the event's row holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub seq: i64,
    pub event_id: &'a str,
    pub kind: &'a str,
    pub record_key: Option<&'a str>,
    pub body: &'a str,
}

/// What a block's entries hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `seq` and body: the event has a row (blocks written before migration 32).
    Bodies,
    /// The whole event: it has no row.
    #[default]
    Events,
}

impl Format {
    /// The format of a block whose `events` column holds `events`.
    fn of(events: i64) -> Format {
        if events > 0 {
            Format::Events
        } else {
            Format::Bodies
        }
    }
}

/// The new events of one transaction, per tenant, until they are written.
#[derive(Default)]
pub struct PendingBodies {
    blocks: HashMap<i64, Block>,
    /// The event added last: its tenant and `seq` (its id is in its block).
    last: Option<(i64, i64)>,
}

impl PendingBodies {
    pub fn add(&mut self, tenant: i64, entry: &Entry) {
        self.blocks.entry(tenant).or_insert_with(Spare::block).push(entry);
        self.last = Some((tenant, entry.seq));
    }

    /// The id of the tenant's event `seq` if this transaction logged it.
    pub fn event_id(&self, tenant: i64, seq: i64) -> Option<&str> {
        self.blocks.get(&tenant)?.event_id(seq)
    }

    /// The `seq` of the tenant's event `event_id` if it is the one added last: a record is
    /// stored right after the event that changed it is logged, and keeps where its body is.
    pub fn seq_of_last(&self, tenant: i64, event_id: &str) -> Option<i64> {
        let (last_tenant, seq) = self.last?;
        (last_tenant == tenant && self.event_id(tenant, seq)? == event_id).then_some(seq)
    }

    /// Writes one block per tenant (in the transaction that logged the events) and empties
    /// itself.
    pub fn write(&mut self, conn: &Connection, received_ns: i64) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO event_blocks (tenant_id, first_seq, received_at, events, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        self.blocks.drain().try_for_each(|(tenant, block)| {
            let Some(first) = block.first_seq() else {
                return Ok(());
            };
            let (data, events) = (block.compress(), block.starts.len() as i64);
            Spare::keep(block);
            insert
                .execute(params![tenant, first, received_ns, events, data])
                .map(drop)
        })
    }
}

impl Drop for PendingBodies {
    /// A transaction that rolled back leaves its blocks unwritten: their buffers serve the next.
    fn drop(&mut self) {
        self.blocks.drain().for_each(|(_, block)| Spare::keep(block));
    }
}

/// The buffers of the blocks the writer wrote, kept for its next transactions with their
/// capacity: filling a block from an empty buffer each transaction grew it by copies onto fresh
/// pages (~3% of the writer's time at 1M calls, bench/README.md). Held per thread (only the
/// writer writes blocks), and at most [`Spare::MAX_BYTES`] of them: a rare huge transaction does
/// not stay in memory. (The compressed block takes a fresh buffer: LZ4 into a kept one would
/// need it zeroed to the most LZ4 can write, ~4× the pages it uses, raising the peak.)
#[derive(Default)]
struct Spare {
    /// Emptied blocks, their buffers' capacity kept.
    blocks: Vec<Block>,
}

thread_local! {
    static SPARE: RefCell<Spare> = RefCell::default();
}

impl Spare {
    const MAX_BYTES: usize = 8 << 20;

    /// An empty block to fill, in kept buffers if there are some.
    fn block() -> Block {
        SPARE.with_borrow_mut(|s| s.blocks.pop()).unwrap_or_default()
    }

    /// Keeps the buffers of a block that is done with, while the kept ones stay small enough.
    fn keep(mut block: Block) {
        SPARE.with_borrow_mut(|s| {
            if s.blocks.iter().chain([&block]).map(Block::capacity).sum::<usize>() <= Self::MAX_BYTES {
                block.data.clear();
                block.starts.clear();
                s.blocks.push(block);
            }
        });
    }
}

/// The numbering of events after those stored: past the greatest `seq` of the rows and of the
/// blocks. The greatest of the blocks is in the last transaction's blocks, which start after
/// every other block (a transaction numbers after the one before): read back from the block that
/// starts last while their `received_at` is that block's (the instant of its transaction).
pub fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    // A new call's row takes its event's `seq` (`records::put_call`): above every row, also
    // those numbered on their own before migration 34 and those whose events were purged.
    let mut last: i64 = conn.query_row(
        "SELECT max(coalesce((SELECT max(seq) FROM events), 0), coalesce((SELECT max(seq) FROM calls), 0))",
        [],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare("SELECT received_at, events, data FROM event_blocks ORDER BY first_seq DESC")?;
    let mut rows = stmt.query([])?;
    let mut instant = None;
    while let Some(row) = rows.next()? {
        let received: i64 = row.get(0)?;
        if instant.is_some_and(|at| at != received) {
            break;
        }
        instant = Some(received);
        let block =
            Block::decompress(row.get_ref(2)?.as_blob()?, Format::of(row.get(1)?), received).ok_or_else(corrupt)?;
        last = last.max(block.starts.last().map_or(0, |&(seq, _)| seq));
    }
    Ok(last + 1)
}

/// Entries in `seq` order: each as its `seq` (8 bytes), the lengths of its body, id, type and
/// record key (4 bytes each; `u32::MAX` for no record key) and those texts (the first format:
/// the `seq`, the body's length and the body); beside them, where each starts, so that finding
/// one is a binary search (a page of an export reads every body of a block, and a scan per body
/// made that quadratic).
#[derive(Default)]
pub struct Block {
    data: Vec<u8>,
    /// Each entry's `seq` and the offset of its entry in `data`, in `seq` order.
    starts: Vec<(i64, usize)>,
    format: Format,
    /// When its transaction received its events (0 until written).
    received_ns: i64,
}

const NO_KEY: u32 = u32::MAX;

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn text_at(data: &[u8], at: usize, len: usize) -> Option<&str> {
    std::str::from_utf8(data.get(at..at.checked_add(len)?)?).ok()
}

/// The entry at `at` of `data` and where the next starts; `None` if it is cut or not UTF-8.
fn parse(data: &[u8], at: usize, format: Format) -> Option<(Entry<'_>, usize)> {
    let seq = i64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?);
    let body_len = u32_at(data, at + 8)? as usize;
    if format == Format::Bodies {
        let body = text_at(data, at + 12, body_len)?;
        let entry = Entry {
            seq,
            event_id: "",
            kind: "",
            record_key: None,
            body,
        };
        return Some((entry, at + 12 + body_len));
    }
    let (id_len, kind_len, key_len) = (u32_at(data, at + 12)?, u32_at(data, at + 16)?, u32_at(data, at + 20)?);
    let mut next = at + 24;
    let mut take = |len: u32| {
        let text = text_at(data, next, len as usize);
        next += len as usize;
        text
    };
    let body = take(body_len as u32)?;
    let event_id = take(id_len)?;
    let kind = take(kind_len)?;
    let record_key = match key_len {
        NO_KEY => None,
        len => Some(take(len)?),
    };
    let entry = Entry {
        seq,
        event_id,
        kind,
        record_key,
        body,
    };
    Some((entry, next))
}

impl Block {
    fn new(format: Format, received_ns: i64) -> Block {
        Block {
            format,
            received_ns,
            ..Block::default()
        }
    }

    /// Adds `entry` (after the entries of smaller `seq`); a block of the first format keeps
    /// only its `seq` and body.
    pub fn push(&mut self, entry: &Entry) {
        self.starts.push((entry.seq, self.data.len()));
        let data = &mut self.data;
        data.extend_from_slice(&entry.seq.to_le_bytes());
        data.extend_from_slice(&(entry.body.len() as u32).to_le_bytes());
        if self.format == Format::Bodies {
            data.extend_from_slice(entry.body.as_bytes());
            return;
        }
        let key_len = entry.record_key.map_or(NO_KEY, |k| k.len() as u32);
        for len in [entry.event_id.len() as u32, entry.kind.len() as u32, key_len] {
            data.extend_from_slice(&len.to_le_bytes());
        }
        for text in [entry.body, entry.event_id, entry.kind, entry.record_key.unwrap_or("")] {
            data.extend_from_slice(text.as_bytes());
        }
    }

    /// The bytes its buffers hold room for.
    fn capacity(&self) -> usize {
        self.data.capacity() + self.starts.capacity() * std::mem::size_of::<(i64, usize)>()
    }

    fn first_seq(&self) -> Option<i64> {
        self.starts.first().map(|&(seq, _)| seq)
    }

    /// Whether `seq` falls within the block's span: a tenant's blocks are the spans of their
    /// transactions, which never overlap, so no other block of the tenant can hold it.
    fn spans(&self, seq: i64) -> bool {
        matches!((self.starts.first(), self.starts.last()), (Some(f), Some(l)) if f.0 <= seq && seq <= l.0)
    }

    pub fn compress(&self) -> Vec<u8> {
        lz4_flex::block::compress_prepend_size(&self.data)
    }

    /// `None` if `data` is not a block of `format`.
    pub fn decompress(data: &[u8], format: Format, received_ns: i64) -> Option<Block> {
        let data = lz4_flex::block::decompress_size_prepended(data).ok()?;
        let mut starts = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let (entry, next) = parse(&data, at, format)?;
            starts.push((entry.seq, at));
            at = next;
        }
        // Written in `seq` order; sorted anyway, as the search relies on it.
        if !starts.is_sorted_by_key(|&(seq, _)| seq) {
            starts.sort_unstable_by_key(|&(seq, _)| seq);
        }
        Some(Block {
            data,
            starts,
            format,
            received_ns,
        })
    }

    /// The entry at `at` (an offset of `starts`).
    fn entry_at(&self, at: usize) -> Entry<'_> {
        parse(&self.data, at, self.format).expect("checked when decompressed").0
    }

    /// Every entry, in `seq` order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        self.starts.iter().map(|&(_, at)| self.entry_at(at))
    }

    pub fn get(&self, seq: i64) -> Option<Entry<'_>> {
        Some(self.entry_at(self.offset_of(seq)?))
    }

    /// The offset of entry `seq` in `data`.
    fn offset_of(&self, seq: i64) -> Option<usize> {
        // The entry added last, which every call's row asks for (`PendingBodies::seq_of_last`),
        // without a search.
        if let Some(&(_, at)) = self.starts.last().filter(|(last, _)| *last == seq) {
            return Some(at);
        }
        let i = self.starts.binary_search_by_key(&seq, |&(s, _)| s).ok()?;
        Some(self.starts[i].1)
    }

    /// The id of event `seq` alone ("" in a block of the first format). Every call's row asks
    /// for its event's: [`Block::get`] would check the body's UTF-8 too (~0.5 KB a call).
    pub fn event_id(&self, seq: i64) -> Option<&str> {
        if self.format == Format::Bodies {
            return self.offset_of(seq).map(|_| "");
        }
        let at = self.offset_of(seq)?;
        let body_len = u32_at(&self.data, at + 8)? as usize;
        let id_len = u32_at(&self.data, at + 12)? as usize;
        text_at(&self.data, at + 24 + body_len, id_len)
    }
}

/// An event as stored, from its row or its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: String,
    pub kind: String,
    pub record_key: Option<String>,
    pub received_ns: i64,
    pub body: String,
}

/// Reads events from their rows or their blocks, decompressing each block once. A reader serves
/// one page, one call or one ingest transaction: the blocks it holds are few, and reads in `seq`
/// order find most events in a block already at hand.
#[derive(Default)]
pub struct EventReader(HashMap<(i64, i64), Block>);

impl EventReader {
    /// The tenant's event `seq`, if it is stored (`None` if purged, or another tenant's).
    pub fn event(&mut self, conn: &Connection, tenant: i64, seq: i64) -> rusqlite::Result<Option<StoredEvent>> {
        let row = conn
            .prepare_cached(
                "SELECT event_id, type, record_key, received_at, body FROM events WHERE seq = ?1 AND tenant_id = ?2",
            )?
            .query_row(params![seq, tenant], |r| {
                Ok(StoredEvent {
                    event_id: r.get(0)?,
                    kind: r.get(1)?,
                    record_key: r.get(2)?,
                    received_ns: r.get(3)?,
                    body: r.get(4)?,
                })
            })
            .optional()?;
        if let Some(mut event) = row {
            if event.body.is_empty() {
                let entry = self.block(conn, tenant, seq)?.and_then(|b| b.get(seq));
                event.body = entry.ok_or_else(corrupt)?.body.to_string();
            }
            return Ok(Some(event));
        }
        let Some(block) = self.block(conn, tenant, seq)?.filter(|b| b.format == Format::Events) else {
            return Ok(None);
        };
        Ok(block.get(seq).map(|e| StoredEvent {
            event_id: e.event_id.to_string(),
            kind: e.kind.to_string(),
            record_key: e.record_key.map(str::to_string),
            received_ns: block.received_ns,
            body: e.body.to_string(),
        }))
    }

    /// The tenant's block that may hold `seq`: one at hand, or read.
    fn block(&mut self, conn: &Connection, tenant: i64, seq: i64) -> rusqlite::Result<Option<&Block>> {
        let at_hand = self.0.iter().find(|((t, _), b)| *t == tenant && b.spans(seq));
        if let Some(&key) = at_hand.map(|(key, _)| key) {
            return Ok(self.0.get(&key));
        }
        let Some((first, block)) = block_of(conn, tenant, seq)? else {
            return Ok(None);
        };
        Ok(Some(self.0.entry((tenant, first)).or_insert(block)))
    }
}

/// The bodies of the tenant's events at the rows `wanted` (each with the caller's tag), read in
/// `seq` order: each block is read and decompressed once, one at a time. An event whose block
/// is gone (purged with it) has no body.
pub fn by_seq<T>(conn: &Connection, tenant: i64, mut wanted: Vec<(i64, T)>) -> rusqlite::Result<Vec<(T, String)>> {
    wanted.sort_unstable_by_key(|&(seq, _)| seq);
    let mut block: Option<Block> = None;
    let mut out = Vec::with_capacity(wanted.len());
    for (seq, tag) in wanted {
        if !block.as_ref().is_some_and(|b| b.spans(seq)) {
            block = block_of(conn, tenant, seq)?.map(|(_, block)| block);
        }
        if let Some(entry) = block.as_ref().and_then(|b| b.get(seq)) {
            out.push((tag, entry.body.to_string()));
        }
    }
    Ok(out)
}

/// The tenant's block that holds the event at row `seq` if any (its first `seq` and the block):
/// back from the event, its block is its transaction's, past at most the blocks of the other
/// tenants of that transaction.
fn block_of(conn: &Connection, tenant: i64, seq: i64) -> rusqlite::Result<Option<(i64, Block)>> {
    conn.prepare_cached(
        "SELECT first_seq, received_at, events, data FROM event_blocks WHERE first_seq <= ?2 AND tenant_id = ?1 \
         ORDER BY first_seq DESC LIMIT 1",
    )?
    .query_row(params![tenant, seq], |r| {
        let block = Block::decompress(r.get_ref(3)?.as_blob()?, Format::of(r.get(2)?), r.get(1)?);
        Ok((r.get(0)?, block))
    })
    .optional()?
    .map(|(first, block)| Ok((first, block.ok_or_else(corrupt)?)))
    .transpose()
}

fn corrupt() -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, "event_blocks.data".into(), rusqlite::types::Type::Blob)
}

/// Calls `found` with the tenant of each event that has no row (in blocks of the second
/// format) and the event, one block in memory at a time: the events' keys for `keys::rebuild`.
pub fn for_each_rowless(conn: &Connection, mut found: impl FnMut(i64, &Entry)) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare("SELECT tenant_id, received_at, events, data FROM event_blocks WHERE events > 0")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let tenant = row.get(0)?;
        let block = Block::decompress(row.get_ref(3)?.as_blob()?, Format::Events, row.get(1)?).ok_or_else(corrupt)?;
        block.entries().for_each(|entry| found(tenant, &entry));
    }
    Ok(())
}

/// Rewrites each of the tenant's blocks in which `rewrite` changes a body, keeping every other
/// field of its events; returns how many bodies changed. One block in memory at a time (a
/// tenant's blocks are ~140 bytes a call).
pub fn rewrite(
    conn: &Connection,
    tenant: i64,
    mut rewrite: impl FnMut(&str) -> Option<String>,
) -> rusqlite::Result<i64> {
    let mut next = conn.prepare(
        "SELECT first_seq, received_at, events, data FROM event_blocks WHERE first_seq > ?2 AND tenant_id = ?1 \
         ORDER BY first_seq LIMIT 1",
    )?;
    let mut update = conn.prepare("UPDATE event_blocks SET data = ?3 WHERE tenant_id = ?1 AND first_seq = ?2")?;
    let mut changed = 0;
    let mut after = i64::MIN;
    while let Some((first, block)) = next
        .query_row(params![tenant, after], |r| {
            let block = Block::decompress(r.get_ref(3)?.as_blob()?, Format::of(r.get(2)?), r.get(1)?);
            Ok((r.get::<_, i64>(0)?, block))
        })
        .optional()?
    {
        after = first;
        let block = block.ok_or_else(corrupt)?;
        let mut rewritten = Block::new(block.format, block.received_ns);
        let mut changed_here = 0;
        for entry in block.entries() {
            match rewrite(entry.body) {
                Some(body) => {
                    rewritten.push(&Entry { body: &body, ..entry });
                    changed_here += 1;
                }
                None => rewritten.push(&entry),
            }
        }
        if changed_here > 0 {
            update.execute(params![tenant, first, rewritten.compress()])?;
            changed += changed_here;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(seq: i64, event_id: &'a str, record_key: Option<&'a str>, body: &'a str) -> Entry<'a> {
        Entry {
            seq,
            event_id,
            kind: "call",
            record_key,
            body,
        }
    }

    /// Each field of each event comes back, a record key or none, an empty text and one not
    /// ASCII; a block of the first format gives back bodies; a cut block is refused.
    #[test]
    fn a_block_gives_back_each_event_by_its_seq() {
        let entries = [
            entry(7, "e1", Some("c1"), r#"{"id":"e1","type":"call"}"#),
            entry(9, "", None, ""),
            entry(12, "é2", Some(""), r#"{"id":"é2"}"#),
        ];
        let mut block = Block::default();
        entries.iter().for_each(|e| block.push(e));
        let data = block.compress();
        let back = Block::decompress(&data, Format::Events, 5).unwrap();
        assert_eq!(back.entries().collect::<Vec<_>>(), entries);
        assert_eq!(back.get(12), Some(entries[2]));
        assert_eq!(back.get(8), None);
        for block in [&block, &back] {
            let ids: Vec<_> = [7, 8, 9, 12].map(|seq| block.event_id(seq)).into();
            assert_eq!(ids, [Some("e1"), None, Some(""), Some("é2")], "an id read alone");
        }
        assert!(
            Block::decompress(&data[..data.len() - 3], Format::Events, 5).is_none(),
            "a cut block is refused"
        );

        let mut bodies = Block::new(Format::Bodies, 0);
        entries.iter().for_each(|e| bodies.push(e));
        let back = Block::decompress(&bodies.compress(), Format::Bodies, 5).unwrap();
        let bodies_back: Vec<(i64, &str)> = back.entries().map(|e| (e.seq, e.body)).collect();
        assert_eq!(bodies_back, entries.map(|e| (e.seq, e.body)));
        assert_eq!(back.get(7).unwrap().event_id, "", "the row holds the rest");
        assert_eq!((back.event_id(7), back.event_id(8)), (Some(""), None));
    }

    fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        conn
    }

    fn write(conn: &Connection, received_ns: i64, events: &[(i64, Entry)]) {
        let mut pending = PendingBodies::default();
        events.iter().for_each(|(tenant, e)| pending.add(*tenant, e));
        pending.write(conn, received_ns).unwrap();
    }

    /// Numbering continues after the greatest `seq` of the rows and of the last transaction's
    /// blocks, whichever tenant's block holds it (tenants' events interleave in a transaction,
    /// so the block that starts last need not end last).
    #[test]
    fn numbering_continues_after_every_stored_event() {
        let conn = store();
        assert_eq!(next_seq(&conn).unwrap(), 1);
        conn.execute(
            "INSERT INTO events (seq, tenant_id, event_id, type, received_at, body) VALUES (40, 1, 'old', 'call', 1, '{}')",
            [],
        )
        .unwrap();
        assert_eq!(next_seq(&conn).unwrap(), 41);
        write(
            &conn,
            10,
            &[(1, entry(41, "a", None, "{}")), (1, entry(45, "b", None, "{}"))],
        );
        write(
            &conn,
            11,
            &[
                (1, entry(46, "c", None, "{}")),
                (2, entry(47, "d", None, "{}")),
                (1, entry(49, "e", None, "{}")),
            ],
        );
        assert_eq!(
            next_seq(&conn).unwrap(),
            50,
            "tenant 1's block ends last, tenant 2's starts last"
        );
    }

    /// The writer's blocks reuse the buffers of its earlier transactions (a larger one's, and
    /// one that rolled back with its events unwritten): each block stored is byte for byte the
    /// compression of its own events only, nothing left over from a buffer's earlier use.
    #[test]
    fn kept_buffers_leave_nothing_of_their_earlier_blocks() {
        let conn = store();
        let long = "x".repeat(5_000);
        let big: Vec<(i64, Entry)> = (1..=200).map(|seq| (1, entry(seq, "big", Some("c"), &long))).collect();
        write(&conn, 10, &big);
        let mut rolled_back = PendingBodies::default();
        rolled_back.add(2, &entry(201, "gone", None, r#"{"rolled":"back"}"#));
        drop(rolled_back);
        let small = [
            (1, entry(202, "e202", Some("c9"), r#"{"id":"e202"}"#)),
            (2, entry(203, "e203", None, r#"{"id":"e203"}"#)),
        ];
        write(&conn, 11, &small);
        for (tenant, e) in small {
            let mut alone = Block::default();
            alone.push(&e);
            let stored: Vec<u8> = conn
                .query_row(
                    "SELECT data FROM event_blocks WHERE tenant_id = ?1 AND first_seq = ?2",
                    params![tenant, e.seq],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(stored, alone.compress(), "tenant {tenant}'s block");
        }
        let blocks: i64 = conn
            .query_row("SELECT count(*) FROM event_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(blocks, 3, "the rolled-back block was never written");
    }

    /// An erasure's rewrite changes bodies only: each event keeps its id, type and record key.
    #[test]
    fn a_rewrite_keeps_every_other_field() {
        let conn = store();
        write(
            &conn,
            10,
            &[
                (1, entry(1, "e1", Some("c1"), "secret")),
                (1, entry(2, "e2", None, "kept")),
            ],
        );
        let changed = rewrite(&conn, 1, |body| (body == "secret").then(|| "erased".to_string())).unwrap();
        assert_eq!(changed, 1);
        let mut reader = EventReader::default();
        let first = reader.event(&conn, 1, 1).unwrap().unwrap();
        assert_eq!(
            first,
            StoredEvent {
                event_id: "e1".into(),
                kind: "call".into(),
                record_key: Some("c1".into()),
                received_ns: 10,
                body: "erased".into(),
            }
        );
        assert_eq!(reader.event(&conn, 1, 2).unwrap().unwrap().body, "kept");
        assert_eq!(reader.event(&conn, 2, 1).unwrap(), None, "another tenant's");
    }
}
