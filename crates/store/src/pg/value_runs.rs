//! The calls of each agent, campaign, team and disposition, newest first, without a B-tree
//! index on those columns: PostgreSQL's version of SQLite's sorted runs (sqlite/value_runs.rs).
//!
//! Four indexes `(tenant_id, column, started_ns)` on the partitions of `calls` served the
//! drill-downs by one value; each call inserted an entry into each, a descent of a B-tree per
//! index and call (with the call's key, the COPY of calls was ~40% of the ingest backend's time).
//! Here, as log-structured stores do:
//!
//! - each ingest transaction writes, per tenant, one **run** (`call_runs`, with the span of its
//!   calls' starts): per column and value, the distinct starts of its calls, newest first, in
//!   chunks of at most [`CHUNK`] (`call_run_chunks`, keyed by run first, so a transaction's
//!   chunks are appended at the right edge of their one index), in the transaction that stores
//!   the calls, so they are as durable as the calls;
//! - the compaction job ([`compact`]) merges a tenant's runs of a level into one of the next
//!   once there are [`FANOUT`], up to [`TOP_LEVEL`] (runs there, ~8³ transactions of calls, are
//!   never merged again): a merge holds one level's entries of one tenant in memory, and each
//!   entry is rewritten at most [`TOP_LEVEL`] times. A reader skips the runs whose span misses
//!   its range: when calls come roughly in time order, the top runs are partitions by time;
//! - a reader ([`NewestFirst`]) merges the runs' chunks of its value newest first, a chunk of a
//!   run at a time, and the drill-down reads the calls of a batch of those starts through the
//!   key of `calls` (`(tenant_id, started_ns, call_id)`), with the value's condition: an entry
//!   whose calls have since another value or start (a correction wrote its own entry) or are
//!   gone (purged, erased) finds nothing, so a correction never needs the old entry found.
//!
//! An entry is a start alone (8 bytes): all calls of the tenant at that instant are read and the
//! condition keeps the value's. A purge drops the entries before its cutoff ([`purge`]).

use super::working::copy;
use crate::Result;
use dialboard_engine::event::CallRecord;
use postgres::types::Type;
use postgres::Transaction;
use std::collections::HashMap;

/// Runs of a level merged into one of the next once a tenant has this many.
pub const FANOUT: usize = 8;
/// Runs of this level are not merged further.
pub const TOP_LEVEL: i16 = 3;
/// Entries per chunk at most: 240 starts (1,920 bytes) keep a chunk's row under PostgreSQL's
/// TOAST threshold (~2 KB), in its heap page, uncompressed.
pub const CHUNK: usize = 240;

/// The columns the runs list (those of `drill::INDEXED`): a column's number (`field`) is its
/// position here. Stored in every chunk: never reorder, only append.
const COLUMNS: [&str; 4] = ["agent_id", "campaign_id", "team_id", "disposition"];

/// The call's value of `COLUMNS[field]`, if it has one to list: a drill-down never reads ""
/// through the runs (it also matches NULL there).
fn value_of(call: &CallRecord, field: usize) -> Option<&str> {
    let value = match COLUMNS[field] {
        "agent_id" => Some(call.agent_id.as_str()),
        "campaign_id" => call.campaign_id.as_deref(),
        "team_id" => call.team_id.as_deref(),
        "disposition" => Some(call.disposition.as_str()),
        other => unreachable!("no call column {other} in the runs"),
    };
    value.filter(|v| !v.is_empty())
}

/// The number of `column` in the runs, if they list it.
pub fn field_of(column: &str) -> Option<i16> {
    COLUMNS.iter().position(|c| *c == column).map(|i| i as i16)
}

fn encode(entries: &[i64]) -> Vec<u8> {
    entries.iter().flat_map(|ns| ns.to_be_bytes()).collect()
}

fn decode(data: &[u8]) -> impl Iterator<Item = i64> + '_ {
    data.chunks_exact(8)
        .map(|e| i64::from_be_bytes(e.try_into().expect("8 bytes")))
}

fn newest_first(entries: &mut Vec<i64>) {
    entries.sort_unstable_by(|a, b| b.cmp(a));
    entries.dedup();
}

/// One tenant's entries of one run, per field and value, until they are written.
#[derive(Default)]
pub struct PendingRun(HashMap<(i16, String), Vec<i64>>);

impl PendingRun {
    /// An entry for each listed value of `call` (a new version: its previous version's entries
    /// stay, and find this version's row only where value and start are unchanged).
    pub fn add(&mut self, call: &CallRecord) {
        for field in 0..COLUMNS.len() {
            if let Some(value) = value_of(call, field) {
                let key = (field as i16, value.to_string());
                self.0.entry(key).or_default().push(call.started_ns);
            }
        }
    }

    /// Writes the entries as a new run of `level` of `tenant`, in the transaction `tx`.
    pub fn write(self, tx: &mut Transaction, tenant: i64, level: i16) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut values: Vec<((i16, String), Vec<i64>)> = self.0.into_iter().collect();
        // In key order: the run's chunks are appended in the order of their index.
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let starts = values.iter().flat_map(|(_, e)| e.iter());
        let (oldest, newest) = starts.fold((i64::MAX, i64::MIN), |(o, n), ns| (o.min(*ns), n.max(*ns)));
        let run: i64 = tx
            .query_one(
                "INSERT INTO call_runs (tenant_id, run, level, oldest_ns, newest_ns) \
                 VALUES ($1, nextval('call_run_seq'), $2, $3, $4) RETURNING run",
                &[&tenant, &level, &oldest, &newest],
            )?
            .get(0);
        copy(tx, "call_run_chunks", CHUNK_COLUMNS, &CHUNK_TYPES, true, |w| {
            for ((field, value), mut entries) in values {
                newest_first(&mut entries);
                for chunk in entries.chunks(CHUNK) {
                    let oldest = *chunk.last().expect("chunks are not empty");
                    w.write(&[&tenant, &run, &field, &value, &oldest, &encode(chunk)])?;
                }
            }
            Ok(())
        })
    }
}

const CHUNK_COLUMNS: &str = "tenant_id, run, field, value, oldest_ns, entries";
/// The types of [`CHUNK_COLUMNS`], in their order (the COPYs that write chunks).
const CHUNK_TYPES: [Type; 6] = [Type::INT8, Type::INT8, Type::INT2, Type::TEXT, Type::INT8, Type::BYTEA];

/// Merges runs wherever a tenant's level below [`TOP_LEVEL`] holds [`FANOUT`] of them, level
/// after level, in the transaction `tx` (the compaction's); returns how many entries were
/// rewritten.
pub fn compact(tx: &mut Transaction) -> Result<usize> {
    let mut rewritten = 0;
    // A merge may fill the level above it: go up.
    for level in 0..TOP_LEVEL {
        let full = tx.query(
            "SELECT tenant_id, array_agg(run ORDER BY run) FROM call_runs WHERE level = $1 \
             GROUP BY tenant_id HAVING count(*) >= $2",
            &[&level, &(FANOUT as i64)],
        )?;
        for row in full {
            let (tenant, runs): (i64, Vec<i64>) = (row.get(0), row.get(1));
            rewritten += merge(tx, tenant, &runs, level + 1)?;
        }
    }
    Ok(rewritten)
}

/// Replaces `runs` of `tenant` by one run of `level`.
fn merge(tx: &mut Transaction, tenant: i64, runs: &[i64], level: i16) -> Result<usize> {
    let mut merged = PendingRun::default();
    let chunks = tx.query(
        "SELECT field, value, entries FROM call_run_chunks WHERE tenant_id = $1 AND run = ANY($2)",
        &[&tenant, &runs],
    )?;
    let mut rewritten = 0;
    for row in &chunks {
        let data: &[u8] = row.get(2);
        rewritten += data.len() / 8;
        merged
            .0
            .entry((row.get(0), row.get(1)))
            .or_default()
            .extend(decode(data));
    }
    merged.write(tx, tenant, level)?;
    delete_runs(tx, tenant, runs)?;
    Ok(rewritten)
}

fn delete_runs(tx: &mut Transaction, tenant: i64, runs: &[i64]) -> Result<()> {
    tx.execute(
        "DELETE FROM call_run_chunks WHERE tenant_id = $1 AND run = ANY($2)",
        &[&tenant, &runs],
    )?;
    tx.execute(
        "DELETE FROM call_runs WHERE tenant_id = $1 AND run = ANY($2)",
        &[&tenant, &runs],
    )?;
    Ok(())
}

/// Drops the tenant's entries of calls that started before `cutoff_ns` (purged with them):
/// the chunks that hold any are rewritten without them.
pub fn purge(tx: &mut Transaction, tenant: i64, cutoff_ns: i64) -> Result<()> {
    let old = "tenant_id = $1 AND oldest_ns < $2 \
               AND run IN (SELECT run FROM call_runs WHERE tenant_id = $1 AND oldest_ns < $2)";
    let chunks = tx.query(
        &format!("DELETE FROM call_run_chunks WHERE {old} RETURNING run, field, value, entries"),
        &[&tenant, &cutoff_ns],
    )?;
    copy(
        tx,
        "call_run_chunks",
        CHUNK_COLUMNS,
        &CHUNK_TYPES,
        !chunks.is_empty(),
        |w| {
            for row in &chunks {
                let (run, field, value): (i64, i16, String) = (row.get(0), row.get(1), row.get(2));
                let kept: Vec<i64> = decode(row.get(3)).filter(|ns| *ns >= cutoff_ns).collect();
                if let Some(oldest) = kept.last() {
                    w.write(&[&tenant, &run, &field, &value, oldest, &encode(&kept)])?;
                }
            }
            Ok(())
        },
    )?;
    tx.execute(
        "DELETE FROM call_runs r WHERE tenant_id = $1 AND newest_ns < $2 AND NOT EXISTS \
         (SELECT 1 FROM call_run_chunks c WHERE c.tenant_id = r.tenant_id AND c.run = r.run)",
        &[&tenant, &cutoff_ns],
    )?;
    Ok(())
}

/// The SQL that builds, from the rows of `calls`, one run of [`TOP_LEVEL`] per tenant (run
/// `-tenant_id`: the sequence's runs are positive) with the chunks of every value: for a
/// database whose calls were indexed by B-trees (the migration that brings the runs).
pub fn rebuild_sql() -> String {
    let mut sql = format!(
        "INSERT INTO call_runs (tenant_id, run, level, oldest_ns, newest_ns) \
         SELECT tenant_id, -tenant_id, {TOP_LEVEL}, min(started_ns), max(started_ns) FROM calls GROUP BY tenant_id;\n"
    );
    for (field, column) in COLUMNS.iter().enumerate() {
        // Each value's distinct starts, newest first, numbered into chunks of CHUNK.
        sql += &format!(
            "INSERT INTO call_run_chunks ({CHUNK_COLUMNS}) \
             SELECT tenant_id, -tenant_id, {field}, v, min(s), \
                    string_agg(int8send(s), ''::bytea ORDER BY s DESC) \
             FROM (SELECT tenant_id, v, s, (row_number() OVER (PARTITION BY tenant_id, v ORDER BY s DESC) - 1) / {CHUNK} AS n \
                   FROM (SELECT DISTINCT tenant_id, {column} AS v, started_ns AS s FROM calls \
                         WHERE {column} IS NOT NULL AND {column} <> '') d) numbered \
             GROUP BY tenant_id, v, n;\n"
        );
    }
    sql
}

/// One run's entries of a value, read a chunk at a time, newest first.
struct RunCursor {
    run: i64,
    /// The chunk read last, oldest first (the next entry is the last).
    entries: Vec<i64>,
    /// Entries of the next chunk are older than this; `None` once the run is read to `from`.
    below: Option<i64>,
}

/// The starts of one value's calls in `[from, below)`, newest first and once each, over every
/// run that may hold some; candidates, whose calls are to be read with the value's condition.
/// Read it in one snapshot (REPEATABLE READ): a merge committed between its statements would
/// replace runs it has listed by one it has not.
pub struct NewestFirst {
    tenant: i64,
    field: i16,
    value: String,
    from: i64,
    runs: Vec<RunCursor>,
    last: Option<i64>,
}

impl NewestFirst {
    pub fn new(
        tx: &mut Transaction,
        tenant: i64,
        field: i16,
        value: &str,
        from: i64,
        below: i64,
    ) -> Result<NewestFirst> {
        let runs = tx
            .query(
                "SELECT run FROM call_runs WHERE tenant_id = $1 AND newest_ns >= $2 AND oldest_ns < $3",
                &[&tenant, &from, &below],
            )?
            .iter()
            .map(|r| RunCursor {
                run: r.get(0),
                entries: Vec::new(),
                below: Some(below),
            })
            .collect();
        Ok(NewestFirst {
            tenant,
            field,
            value: value.to_string(),
            from,
            runs,
            last: None,
        })
    }

    /// Reads the next chunk of every run that has no entry left and more to read: one
    /// statement for all of them.
    fn fill(&mut self, tx: &mut Transaction) -> Result<()> {
        loop {
            let empty: Vec<usize> = (self.runs.iter().enumerate())
                .filter(|(_, c)| c.entries.is_empty() && c.below.is_some())
                .map(|(i, _)| i)
                .collect();
            if empty.is_empty() {
                return Ok(());
            }
            let runs: Vec<i64> = empty.iter().map(|i| self.runs[*i].run).collect();
            let belows: Vec<i64> = empty.iter().map(|i| self.runs[*i].below.unwrap_or(i64::MIN)).collect();
            let rows = tx.query(
                "SELECT w.run, c.oldest_ns, c.entries FROM unnest($4::int8[], $5::int8[]) AS w(run, below) \
                 CROSS JOIN LATERAL (SELECT oldest_ns, entries FROM call_run_chunks WHERE tenant_id = $1 \
                 AND run = w.run AND field = $2 AND value = $3 AND oldest_ns < w.below \
                 ORDER BY oldest_ns DESC LIMIT 1) c",
                &[&self.tenant, &self.field, &self.value, &runs, &belows],
            )?;
            let mut found: HashMap<i64, (i64, Vec<u8>)> =
                rows.iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
            for i in empty {
                let cursor = &mut self.runs[i];
                let below = cursor.below.unwrap_or(i64::MIN);
                let Some((oldest, data)) = found.remove(&cursor.run) else {
                    cursor.below = None;
                    continue;
                };
                cursor.below = (oldest >= self.from).then_some(oldest);
                cursor.entries = decode(&data).filter(|ns| *ns < below && *ns >= self.from).collect();
                cursor.entries.reverse();
            }
        }
    }

    /// The next start, or `None` when every run is read.
    pub fn next(&mut self, tx: &mut Transaction) -> Result<Option<i64>> {
        loop {
            self.fill(tx)?;
            let newest = (self.runs.iter_mut())
                .filter(|c| !c.entries.is_empty())
                .max_by_key(|c| *c.entries.last().expect("not empty"));
            let Some(cursor) = newest else {
                return Ok(None);
            };
            let entry = cursor.entries.pop().expect("not empty");
            // An instant listed by several runs (calls of several transactions, or a call
            // stored again) is read once.
            if self.last != Some(entry) {
                self.last = Some(entry);
                return Ok(Some(entry));
            }
        }
    }

    /// The rows `fetch` reads for batches of starts (newest first; it reads the calls at those
    /// starts that have the value and returns them in the order they are to come), lazily: a
    /// first batch of `first` starts, each next one twice as large (up to [`MAX_BATCH`]).
    pub fn rows<'t, 'a: 't, T: 't>(
        mut self,
        tx: &'t mut Transaction<'a>,
        first: usize,
        mut fetch: impl FnMut(&mut Transaction<'a>, &[i64]) -> Result<Vec<T>> + 't,
    ) -> Box<dyn Iterator<Item = Result<T>> + 't> {
        let mut batch = first.clamp(1, MAX_BATCH);
        let mut ready = std::collections::VecDeque::new();
        let mut done = false;
        Box::new(std::iter::from_fn(move || loop {
            if let Some(row) = ready.pop_front() {
                return Some(Ok(row));
            }
            if done {
                return None;
            }
            let mut starts = Vec::with_capacity(batch);
            while starts.len() < batch {
                match self.next(tx) {
                    Ok(Some(ns)) => starts.push(ns),
                    Ok(None) => break,
                    Err(e) => return Some(Err(e)),
                }
            }
            done = starts.len() < batch;
            batch = (batch * 2).min(MAX_BATCH);
            if !starts.is_empty() {
                match fetch(tx, &starts) {
                    Ok(rows) => ready.extend(rows),
                    Err(e) => return Some(Err(e)),
                }
            }
        }))
    }
}

/// Starts read in one statement at most.
const MAX_BATCH: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::Cluster;
    use crate::sqlite::value_runs::tests::call;
    use postgres::{Client, NoTls};

    /// A throwaway cluster (kept while the test runs) and a client of a migrated database.
    fn database() -> (Cluster, Client) {
        let cluster = Cluster::start(false).expect("a throwaway PostgreSQL cluster starts");
        let url = cluster.create_database().unwrap();
        let mut client = Client::connect(&url, NoTls).unwrap();
        crate::pg::schema::migrate(&mut client).unwrap();
        (cluster, client)
    }

    fn read(client: &mut Client, tenant: i64, agent: &str, from: i64, below: i64) -> Vec<i64> {
        let mut tx = client.transaction().unwrap();
        let mut reader = NewestFirst::new(&mut tx, tenant, 0, agent, from, below).unwrap();
        std::iter::from_fn(|| reader.next(&mut tx).unwrap()).collect()
    }

    fn levels(client: &mut Client, tenant: i64) -> Vec<i16> {
        let rows = client
            .query("SELECT level FROM call_runs WHERE tenant_id = $1", &[&tenant])
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// Every start stays findable, newest first and once, through runs of one transaction,
    /// their merges up to the top level (a tenant's runs merged apart from another's), runs of
    /// more than a chunk, and a purge; the runs that miss a range are not read.
    #[test]
    fn starts_are_read_newest_first_through_merges_and_purges() {
        let (_cluster, mut client) = database();
        let mut all = Vec::new();
        let mut seq = 0;
        for txn in 0..(FANOUT * FANOUT * FANOUT + 5) as i64 {
            let mut tx = client.transaction().unwrap();
            for tenant in [1, 2] {
                let mut run = PendingRun::default();
                // Calls in time order, some late, one instant shared by many transactions, and
                // a transaction of more than a chunk.
                let calls = if txn == 3 { 600 } else { 7 };
                for i in 0..calls {
                    seq += 1;
                    let ns = match i {
                        0 => 5_000,
                        1 => txn * 10,
                        _ => txn * 1_000 + i * 7 % 5 + i,
                    };
                    let agent = if i == 6 { "b" } else { "a" };
                    run.add(&call(&format!("c{seq}"), agent, ns));
                    if agent == "a" && tenant == 1 {
                        all.push(ns);
                    }
                }
                run.write(&mut tx, tenant, 0).unwrap();
            }
            compact(&mut tx).unwrap();
            tx.commit().unwrap();
        }
        for tenant in [1, 2] {
            let levels = levels(&mut client, tenant);
            assert!(levels.contains(&TOP_LEVEL), "{levels:?}");
            assert!(levels.len() < 3 * FANOUT, "{levels:?}");
        }
        newest_first(&mut all);
        assert_eq!(read(&mut client, 1, "a", i64::MIN, i64::MAX), all);
        assert_eq!(read(&mut client, 2, "a", i64::MIN, i64::MAX), all);
        let window: Vec<i64> = all.iter().copied().filter(|ns| (3_000..5_001).contains(ns)).collect();
        assert_eq!(read(&mut client, 1, "a", 3_000, 5_001), window);
        assert!(read(&mut client, 1, "nobody", i64::MIN, i64::MAX).is_empty());
        // A purge takes what started before its cutoff, of its tenant only.
        let mut tx = client.transaction().unwrap();
        purge(&mut tx, 1, 5_000).unwrap();
        tx.commit().unwrap();
        let kept: Vec<i64> = all.iter().copied().filter(|ns| *ns >= 5_000).collect();
        assert_eq!(read(&mut client, 1, "a", i64::MIN, i64::MAX), kept);
        assert_eq!(read(&mut client, 2, "a", i64::MIN, i64::MAX), all);
    }

    /// Every column a drill-down may be driven by is listed in the runs.
    #[test]
    fn the_runs_list_every_driving_column() {
        for column in crate::drill::INDEXED {
            assert!(field_of(column).is_some(), "{column}");
        }
    }

    /// The runs an upgrade builds from the rows hold every value's distinct starts, newest
    /// first, in chunks of at most CHUNK.
    #[test]
    fn the_rebuild_lists_every_value_of_the_rows() {
        let (_cluster, mut client) = database();
        client
            .batch_execute(
                "CREATE TABLE calls_all PARTITION OF calls FOR VALUES FROM (MINVALUE) TO (MAXVALUE); \
                 INSERT INTO calls (tenant_id, call_id, event_id, version_ns, started_ns, agent_id, team_id, \
                 disposition, flags) SELECT 7, 'c' || g, 'e' || g, 0, g / 2, 'a' || g % 3, \
                 CASE WHEN g % 5 = 0 THEN NULL ELSE '' END, 'Sale', 0 FROM generate_series(1, 1000) g",
            )
            .unwrap();
        client.batch_execute(&rebuild_sql()).unwrap();
        for agent in ["a0", "a1", "a2"] {
            let n: i64 = agent[1..].parse().unwrap();
            let mut expected: Vec<i64> = (1..=1000).filter(|g| g % 3 == n).map(|g| g / 2).collect();
            newest_first(&mut expected);
            assert_eq!(read(&mut client, 7, agent, i64::MIN, i64::MAX), expected);
        }
        let longest: i32 = client
            .query_one("SELECT max(length(entries)) FROM call_run_chunks", &[])
            .unwrap()
            .get(0);
        assert_eq!(longest as usize, CHUNK * 8);
        // Teams here are NULL or "": none listed.
        let teams: i64 = client
            .query_one("SELECT count(*) FROM call_run_chunks WHERE field = 2", &[])
            .unwrap()
            .get(0);
        assert_eq!(teams, 0);
    }
}
