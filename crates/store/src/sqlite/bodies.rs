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
pub struct PendingBodies(HashMap<i64, Block>);

impl PendingBodies {
    pub fn add(&mut self, tenant: i64, seq: i64, body: &str) {
        self.0.entry(tenant).or_default().push(seq, body);
    }

    /// Writes one block per tenant (in the transaction that logged the events) and empties
    /// itself.
    pub fn write(&mut self, conn: &Connection, received_ns: i64) -> rusqlite::Result<()> {
        let mut insert = conn.prepare_cached(
            "INSERT INTO event_blocks (tenant_id, first_seq, received_at, data) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (tenant, block) in self.0.drain() {
            if let Some(first) = block.first_seq() {
                insert.execute(params![tenant, first, received_ns, block.compress()])?;
            }
        }
        Ok(())
    }
}

/// Bodies in `seq` order: each as its `seq` (8 bytes), its length (4 bytes) and its text.
#[derive(Default)]
pub struct Block(Vec<u8>);

impl Block {
    pub fn push(&mut self, seq: i64, body: &str) {
        self.0.extend_from_slice(&seq.to_le_bytes());
        self.0.extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.0.extend_from_slice(body.as_bytes());
    }

    fn first_seq(&self) -> Option<i64> {
        self.entries().next().map(|(seq, _)| seq)
    }

    pub fn compress(&self) -> Vec<u8> {
        lz4_flex::block::compress_prepend_size(&self.0)
    }

    /// `None` if `data` is not a block.
    pub fn decompress(data: &[u8]) -> Option<Block> {
        let block = Block(lz4_flex::block::decompress_size_prepended(data).ok()?);
        let mut at = 0;
        while at < block.0.len() {
            let len = u32::from_le_bytes(block.0.get(at + 8..at + 12)?.try_into().ok()?) as usize;
            std::str::from_utf8(block.0.get(at + 12..at + 12 + len)?).ok()?;
            at += 12 + len;
        }
        Some(block)
    }

    /// Every (seq, body), in order. Only for blocks built by `push` or checked by `decompress`.
    pub fn entries(&self) -> impl Iterator<Item = (i64, &str)> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let data = &self.0;
            if at >= data.len() {
                return None;
            }
            let seq = i64::from_le_bytes(data[at..at + 8].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().expect("4 bytes")) as usize;
            let body = std::str::from_utf8(&data[at + 12..at + 12 + len]).expect("checked when decompressed");
            at += 12 + len;
            Some((seq, body))
        })
    }

    pub fn get(&self, seq: i64) -> Option<&str> {
        self.entries().find(|(s, _)| *s == seq).map(|(_, body)| body)
    }
}

fn corrupt() -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, "event_blocks.data".into(), rusqlite::types::Type::Blob)
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
        let found: Option<(i64, Vec<u8>)> = conn
            .prepare_cached(
                // Back from the event: its block is its transaction's, past at most the blocks of
                // the other tenants of that transaction.
                "SELECT first_seq, data FROM event_blocks WHERE first_seq <= ?2 AND tenant_id = ?1 \
                 ORDER BY first_seq DESC LIMIT 1",
            )?
            .query_row(params![tenant, seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((first, data)) = found else {
            return Err(corrupt());
        };
        let block = match self.0.entry((tenant, first)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Block::decompress(&data).ok_or_else(corrupt)?),
        };
        block.get(seq).map(str::to_string).ok_or_else(corrupt)
    }
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
