//! Raw event bodies, compressed in blocks: one `event_blocks` row per tenant and ingest
//! transaction holds the JSON bodies of that transaction's new events, LZ4-compressed
//! together (one tenant's events share their keys and most values, so a block is 4–6× smaller
//! than its bodies; one at a time they hardly compress). The event's own row keeps an empty
//! `body`: a block is found by the tenant and the event's `seq` (the block's `first_seq` is the
//! tenant's greatest not after it), the body inside it by the same `seq`. Rows written before blocks
//! existed keep their body in the row, and every reader takes either.
//!
//! A block is written by the transaction that logs its events and purged with them (it bears
//! their `received_at`: a transaction's events are all received at one instant); an erasure
//! rewrites the blocks that held the contact's bodies.

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// The bodies of one transaction's new events, per tenant, until they are written.
#[derive(Default)]
pub struct PendingBodies {
    blocks: HashMap<i64, Block>,
    /// The event added last: its tenant, id and `seq`.
    last: Option<(i64, String, i64)>,
}

impl PendingBodies {
    pub fn add(&mut self, tenant: i64, event_id: &str, seq: i64, body: &str) {
        self.blocks.entry(tenant).or_default().push(seq, body);
        let last = self.last.get_or_insert_with(|| (tenant, String::new(), seq));
        last.0 = tenant;
        last.1.clear();
        last.1.push_str(event_id);
        last.2 = seq;
    }

    /// The `seq` of the tenant's event `event_id` if it is the one added last: a record is
    /// stored right after the event that changed it is logged, and keeps where its body is.
    pub fn seq_of_last(&self, tenant: i64, event_id: &str) -> Option<i64> {
        self.last
            .as_ref()
            .filter(|(t, id, _)| *t == tenant && id == event_id)
            .map(|&(_, _, seq)| seq)
    }

    /// Writes one block per tenant (in the transaction that logged the events) and empties
    /// itself.
    pub fn write(&mut self, conn: &Connection, received_ns: i64) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO event_blocks (tenant_id, first_seq, received_at, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (tenant, block) in self.blocks.drain() {
            if let Some(first) = block.first_seq() {
                insert.execute(params![tenant, first, received_ns, block.compress()])?;
            }
        }
        Ok(())
    }
}

/// Bodies in `seq` order: each as its `seq` (8 bytes), its length (4 bytes) and its text;
/// beside them, where each starts, so that finding one is a binary search (a page of an export
/// reads every body of a block, and a scan per body made that quadratic).
#[derive(Default)]
pub struct Block {
    data: Vec<u8>,
    /// Each body's `seq` and the offset of its entry in `data`, in `seq` order.
    starts: Vec<(i64, usize)>,
}

impl Block {
    pub fn push(&mut self, seq: i64, body: &str) {
        self.starts.push((seq, self.data.len()));
        self.data.extend_from_slice(&seq.to_le_bytes());
        self.data.extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.data.extend_from_slice(body.as_bytes());
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

    /// `None` if `data` is not a block.
    pub fn decompress(data: &[u8]) -> Option<Block> {
        let data = lz4_flex::block::decompress_size_prepended(data).ok()?;
        let mut starts = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let seq = i64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?);
            let len = u32::from_le_bytes(data.get(at + 8..at + 12)?.try_into().ok()?) as usize;
            std::str::from_utf8(data.get(at + 12..at + 12 + len)?).ok()?;
            starts.push((seq, at));
            at += 12 + len;
        }
        // Written in `seq` order; sorted anyway, as the search relies on it.
        if !starts.is_sorted_by_key(|&(seq, _)| seq) {
            starts.sort_unstable_by_key(|&(seq, _)| seq);
        }
        Some(Block { data, starts })
    }

    /// The body of the entry at `at` (an offset of `starts`).
    fn body_at(&self, at: usize) -> &str {
        let len = u32::from_le_bytes(self.data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
        std::str::from_utf8(&self.data[at + 12..at + 12 + len]).expect("checked when decompressed")
    }

    /// Every (seq, body), in order.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &str)> {
        self.starts.iter().map(|&(seq, at)| (seq, self.body_at(at)))
    }

    pub fn get(&self, seq: i64) -> Option<&str> {
        let i = self.starts.binary_search_by_key(&seq, |&(s, _)| s).ok()?;
        Some(self.body_at(self.starts[i].1))
    }
}

/// Reads the bodies of events from their rows or their blocks, decompressing each block once.
#[derive(Default)]
pub struct BodyReader(HashMap<(i64, i64), Block>);

impl BodyReader {
    /// The body of the tenant's event `seq`, whose row holds `stored` (empty if it is in a
    /// block).
    pub fn body(&mut self, conn: &Connection, tenant: i64, seq: i64, stored: String) -> rusqlite::Result<String> {
        if !stored.is_empty() {
            return Ok(stored);
        }
        // A reader serves one page or one call: the blocks it holds are few, and reads in
        // `seq` order find most bodies in a block already at hand.
        let at_hand = self.0.iter().filter(|((t, _), _)| *t == tenant);
        if let Some(body) = at_hand.filter_map(|(_, block)| block.get(seq)).next() {
            return Ok(body.to_string());
        }
        let (first, block) = block_of(conn, tenant, seq)?.ok_or_else(corrupt)?;
        let body = block.get(seq).map(str::to_string).ok_or_else(corrupt)?;
        self.0.insert((tenant, first), block);
        Ok(body)
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
        if let Some(body) = block.as_ref().and_then(|b| b.get(seq)) {
            out.push((tag, body.to_string()));
        }
    }
    Ok(out)
}

/// The tenant's block that holds the event at row `seq` if any (its first `seq` and the block):
/// back from the event, its block is its transaction's, past at most the blocks of the other
/// tenants of that transaction.
fn block_of(conn: &Connection, tenant: i64, seq: i64) -> rusqlite::Result<Option<(i64, Block)>> {
    conn.prepare_cached(
        "SELECT first_seq, data FROM event_blocks WHERE first_seq <= ?2 AND tenant_id = ?1 \
         ORDER BY first_seq DESC LIMIT 1",
    )?
    .query_row(params![tenant, seq], |r| {
        Ok((r.get(0)?, Block::decompress(r.get_ref(1)?.as_blob()?)))
    })
    .optional()?
    .map(|(first, block)| Ok((first, block.ok_or_else(corrupt)?)))
    .transpose()
}

fn corrupt() -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, "event_blocks.data".into(), rusqlite::types::Type::Blob)
}

/// Rewrites each of the tenant's blocks in which `rewrite` changes a body; returns how many
/// bodies changed. One block in memory at a time (a tenant's blocks are ~140 bytes a call).
pub fn rewrite(
    conn: &Connection,
    tenant: i64,
    mut rewrite: impl FnMut(&str) -> Option<String>,
) -> rusqlite::Result<i64> {
    let mut next = conn.prepare(
        "SELECT first_seq, data FROM event_blocks WHERE first_seq > ?2 AND tenant_id = ?1 ORDER BY first_seq LIMIT 1",
    )?;
    let mut update = conn.prepare("UPDATE event_blocks SET data = ?3 WHERE tenant_id = ?1 AND first_seq = ?2")?;
    let mut changed = 0;
    let mut after = i64::MIN;
    while let Some((first, data)) = next
        .query_row(params![tenant, after], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .optional()?
    {
        after = first;
        let block = Block::decompress(&data).ok_or_else(corrupt)?;
        let mut rewritten = Block::default();
        let mut changed_here = 0;
        for (seq, body) in block.entries() {
            match rewrite(body) {
                Some(new) => {
                    rewritten.push(seq, &new);
                    changed_here += 1;
                }
                None => rewritten.push(seq, body),
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
    use super::Block;

    #[test]
    fn a_block_gives_back_each_body_by_its_seq() {
        let mut block = Block::default();
        let bodies = [(7, r#"{"id":"e1","type":"call"}"#), (9, ""), (12, r#"{"id":"é2"}"#)];
        for (seq, body) in bodies {
            block.push(seq, body);
        }
        let data = block.compress();
        let back = Block::decompress(&data).unwrap();
        assert_eq!(back.entries().collect::<Vec<_>>(), bodies);
        assert_eq!(back.get(12), Some(r#"{"id":"é2"}"#));
        assert_eq!(back.get(8), None);
        assert!(
            Block::decompress(&data[..data.len() - 3]).is_none(),
            "a cut block is refused"
        );
    }
}
