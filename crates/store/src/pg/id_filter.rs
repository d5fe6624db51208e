//! The writer's filter of every id a tenant has stored (issue 24), and the generations its
//! keys are indexed in.
//!
//! **Generations.** The indexes of ids (`event_ids` by id and by record, `call_keys` by call)
//! are keyed `(tenant_id, gen, hash)`, where `gen` is the tenant's count of ids logged before
//! the row's transaction, in units of 2^[`GENERATION_BITS`]. A random 64-bit hash lands anywhere
//! in an index; led by the generation, it lands in the last generation's part, a few MB of
//! leaves whatever the history, which stay cached and are written once per checkpoint, where a
//! whole index of ever more leaves each took a random insert. A lookup descends once per
//! generation ([`generations`]) — so the writer looks up only the ids that its filter says may
//! be stored, and readers (a call's page) pay a few dozen descents.
//!
//! **The filter.** A Bloom filter per tenant of the hashes of every stored event id and call
//! id. An id it has never seen is new: no probe. One it may have seen (a retry, or ~0.5% of
//! new ids) is looked up exactly, comparing the text, so a collision of hashes never drops a
//! distinct event. The filter lives in the writer's memory and is rebuilt from the store
//! after a restart (crash safety needs nothing more: the store is the truth).
//!
//! **Several nodes.** Each node's filter must also hold what the other nodes stored. Every
//! ingest transaction, under the tenant's ingest lock, adds a row to `id_batches` (the hashes
//! it stored, numbered without gaps per tenant) and counts it in `id_heads`. Under the same lock
//! a node reads the head and adds the batches it has not seen; if some were already pruned (a
//! node idle for the tenant longer than [`BATCHES_KEPT_MS`]) or the filter is full, it rebuilds
//! the filter from the ids stored. So the filter is exact-or-superset whenever it is consulted.

use super::schema::id_hash;
use crate::bloom::Filter;
use crate::Result;
use postgres::Transaction;
use std::collections::HashMap;

/// Ids of a tenant per generation of the indexes of ids: 2^18, ~8 MB of leaves per index.
pub const GENERATION_BITS: u32 = 18;

/// How long the compaction job keeps a batch of hashes for other nodes' filters (ms).
pub const BATCHES_KEPT_MS: i64 = 3_600_000;

/// The tenant's generations as a FROM item, `generation(n)`: a lookup by hash is a LATERAL
/// probe per generation with `gen = generation.n`, so each is an index descent on the whole key
/// (as `gen = ANY(…)`, PostgreSQL 15 filtered the generation instead, scanning the tenant's
/// entries). An array, not `generate_series`, so that the planner expects a few rows, not a
/// thousand. `tenant` is an SQL expression.
pub fn generations(tenant: &str) -> String {
    format!(
        "unnest(ARRAY(SELECT generate_series(0, (ids >> {GENERATION_BITS})::int) FROM id_heads \
         WHERE tenant_id = {tenant})) AS generation(n)"
    )
}

/// A call id's key in the filter: its hash, moved so that an event id with the same text (some
/// sources use one id for both) is not taken for it.
fn call_key(hash: i64) -> u64 {
    hash as u64 ^ 0x5bd1_e995_c2b2_ae35
}

fn event_key(hash: i64) -> u64 {
    hash as u64
}

/// A tenant's count of ids logged and of batches of hashes, as committed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Head {
    pub ids: i64,
    pub batches: i64,
}

impl Head {
    /// The generation the rows of this transaction go to.
    pub fn generation(&self) -> i32 {
        (self.ids >> GENERATION_BITS) as i32
    }
}

/// The batch's ids and their hashes, and the head, in one round trip.
pub struct Hashed {
    pub head: Head,
    pub events: Vec<i64>,
    pub calls: Vec<i64>,
}

/// Reads the tenant's head and the hashes of `events` and `calls` (ids), in order.
pub fn hash_ids(tx: &mut Transaction, tenant: i64, events: &[&str], calls: &[&str]) -> Result<Hashed> {
    let hashes = |param: &str| {
        format!(
            "ARRAY(SELECT {} FROM unnest({param}::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i)",
            id_hash("u.v")
        )
    };
    let row = tx.query_one(
        &format!(
            "SELECT coalesce((SELECT ids FROM id_heads WHERE tenant_id = $1), 0), \
             coalesce((SELECT batches FROM id_heads WHERE tenant_id = $1), 0), {}, {}",
            hashes("$2"),
            hashes("$3")
        ),
        &[&tenant, &events, &calls],
    )?;
    Ok(Hashed {
        head: Head {
            ids: row.get(0),
            batches: row.get(1),
        },
        events: row.get(2),
        calls: row.get(3),
    })
}

/// What one transaction stored of a tenant's ids, to count in its head and add to the filters
/// once committed.
#[derive(Debug, Default)]
pub struct Stored {
    pub tenant: i64,
    pub head: Head,
    pub events: Vec<i64>,
    pub calls: Vec<i64>,
}

impl Stored {
    /// Whether the transaction stored no id of the tenant (only duplicates): nothing to write.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.calls.is_empty()
    }

    /// Writes the batch of hashes and moves the head on (under the tenant's ingest lock).
    pub fn write(&self, tx: &mut Transaction, now_ms: i64) -> Result<()> {
        let batch = self.head.batches + 1;
        tx.execute(
            "INSERT INTO id_batches (tenant_id, batch, at_ms, events, calls) VALUES ($1, $2, $3, $4, $5)",
            &[&self.tenant, &batch, &now_ms, &self.events, &self.calls],
        )?;
        tx.execute(
            "INSERT INTO id_heads (tenant_id, ids, batches) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET ids = EXCLUDED.ids, batches = EXCLUDED.batches",
            &[&self.tenant, &(self.head.ids + self.events.len() as i64), &batch],
        )?;
        Ok(())
    }
}

struct TenantFilter {
    filter: Filter,
    /// The batches it holds: every one up to this.
    batches: i64,
}

/// The writer's filters, by tenant.
#[derive(Default)]
pub struct IdFilters {
    tenants: HashMap<i64, TenantFilter>,
}

/// Reads stored hashes this many rows at a time while rebuilding a filter.
const REBUILD_ROWS: i32 = 50_000;

impl IdFilters {
    /// The tenant's filter, holding every id committed up to `head` (the caller holds the
    /// tenant's ingest lock, so nothing is committed meanwhile).
    pub fn synced(&mut self, tx: &mut Transaction, tenant: i64, head: Head) -> Result<&Filter> {
        let behind = match self.tenants.get(&tenant) {
            Some(known) if known.batches == head.batches && !known.filter.full() => None,
            Some(known) if known.batches < head.batches && !known.filter.full() => Some(known.batches),
            _ => {
                self.rebuild(tx, tenant, head)?;
                None
            }
        };
        if let Some(seen) = behind {
            let rows = tx.query(
                "SELECT batch, events, calls FROM id_batches WHERE tenant_id = $1 AND batch > $2 ORDER BY batch",
                &[&tenant, &seen],
            )?;
            let contiguous = rows.len() as i64 == head.batches - seen
                && rows
                    .iter()
                    .enumerate()
                    .all(|(i, r)| r.get::<_, i64>(0) == seen + 1 + i as i64);
            if contiguous {
                let known = self.tenants.get_mut(&tenant).expect("checked above");
                for row in &rows {
                    add(
                        &mut known.filter,
                        &row.get::<_, Vec<i64>>(1),
                        &row.get::<_, Vec<i64>>(2),
                    );
                }
                known.batches = head.batches;
            } else {
                // Some were pruned: this node was idle for the tenant too long.
                self.rebuild(tx, tenant, head)?;
            }
        }
        Ok(&self.tenants[&tenant].filter)
    }

    /// Fills a new filter from every stored event id and call id of the tenant.
    fn rebuild(&mut self, tx: &mut Transaction, tenant: i64, head: Head) -> Result<()> {
        let calls: i64 = tx
            .query_one("SELECT count(*) FROM call_keys WHERE tenant_id = $1", &[&tenant])?
            .get(0);
        // Sized by the tenant, not SQLite's one filter for all (64k keys at least): many small
        // tenants each have a small one.
        let mut filter = Filter::sized(2 * (head.ids + calls).max(512) as usize);
        for (sql, key) in [
            (
                "SELECT id_hash FROM event_ids WHERE tenant_id = $1",
                event_key as fn(i64) -> u64,
            ),
            ("SELECT call_hash FROM call_keys WHERE tenant_id = $1", call_key),
        ] {
            let statement = tx.prepare(sql)?;
            let portal = tx.bind(&statement, &[&tenant])?;
            loop {
                let rows = tx.query_portal(&portal, REBUILD_ROWS)?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    filter.insert(key(row.get(0)));
                }
            }
        }
        self.tenants.insert(
            tenant,
            TenantFilter {
                filter,
                batches: head.batches,
            },
        );
        Ok(())
    }

    /// Adds what a committed transaction stored.
    pub fn committed(&mut self, stored: &[Stored]) {
        for s in stored {
            if let Some(known) = self.tenants.get_mut(&s.tenant) {
                if known.batches == s.head.batches {
                    add(&mut known.filter, &s.events, &s.calls);
                    known.batches = s.head.batches + 1;
                } else {
                    self.tenants.remove(&s.tenant);
                }
            }
        }
    }

    /// Forgets the filters of tenants whose transaction may or may not have committed.
    pub fn forget(&mut self, tenants: impl IntoIterator<Item = i64>) {
        for tenant in tenants {
            self.tenants.remove(&tenant);
        }
    }
}

fn add(filter: &mut Filter, events: &[i64], calls: &[i64]) {
    events.iter().for_each(|h| filter.insert(event_key(*h)));
    calls.iter().for_each(|h| filter.insert(call_key(*h)));
}

/// Whether `filter` may hold the event id of hash `hash`.
pub fn may_hold_event(filter: &Filter, hash: i64) -> bool {
    filter.maybe(event_key(hash))
}

/// Whether `filter` may hold the call id of hash `hash`.
pub fn may_hold_call(filter: &Filter, hash: i64) -> bool {
    filter.maybe(call_key(hash))
}
