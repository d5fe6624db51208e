//! The node's ingest thread and its compaction job.
//!
//! Ingest: requests queued meanwhile share one transaction (group commit). The transaction
//! takes each tenant's ingest lock (an advisory lock), so the nodes of one database apply a
//! tenant's events one transaction at a time, as SQLite's single writer does; it loads what
//! the events read, applies them, writes the records and one delta row per touched block, and
//! notifies every node (`NOTIFY dialboard`) as it commits.
//!
//! Compaction: folds delta rows into cells. It runs on every node, but under a
//! transaction-level advisory lock, so one node at a time does it.

use super::id_filter::IdFilters;
use super::schema::{Lock, Partitions};
use super::value_runs;
use super::working::{copy, write_deltas, Batch, WorkingSet};
use super::Pg;
use super::Shared;
use crate::group::{self, IngestRequest};
use crate::{catalog, Result, TenantInfo};
use dialboard_engine::cells::Stats;
use dialboard_engine::event::Event;
use postgres::types::Type;
use postgres::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

pub enum Command {
    Ingest(IngestRequest),
    Shutdown(oneshot::Sender<()>),
}

fn as_ingest(command: Command) -> Result<IngestRequest, Command> {
    match command {
        Command::Ingest(request) => Ok(request),
        other => Err(other),
    }
}

pub fn run(mut client: Client, mut partitions: Partitions, rx: Receiver<Command>, shared: &Shared) {
    // Filled per tenant at its first ingest (pg/id_filter.rs).
    let mut filters = IdFilters::default();
    while let Ok(command) = rx.recv() {
        let shutdown = match command {
            Command::Ingest(first) => {
                let (group, other) = group::gather(first, &rx, as_ingest);
                commit_group(&mut client, &mut partitions, &mut filters, shared, group);
                other
            }
            shutdown => Some(shutdown),
        };
        if let Some(Command::Shutdown(done)) = shutdown {
            // Everything queued before the shutdown is committed first.
            let queued: Vec<IngestRequest> = rx.try_iter().filter_map(|c| as_ingest(c).ok()).collect();
            if !queued.is_empty() {
                commit_group(&mut client, &mut partitions, &mut filters, shared, queued);
            }
            let _ = done.send(());
            return;
        }
    }
}

/// The monthly partitions the group's rows go to.
fn ensure_partitions(client: &mut Client, partitions: &mut Partitions, group: &[IngestRequest]) -> Result<()> {
    let mut needed: BTreeSet<(&str, i64)> = BTreeSet::new();
    let month = |ns: i64| super::schema::month_of(ns).0;
    for e in group.iter().flat_map(|r| &r.events) {
        let (table, at) = match &e.event {
            Event::Call(c) => ("calls", c.started_ns),
            Event::Status(s) => ("agent_status", s.at_ns),
            Event::Stage(s) => ("lead_stages", s.at_ns),
            Event::Csat(s) => ("csat", s.at_ns),
            Event::Analysis(_) | Event::Conversation(_) => continue,
        };
        needed.insert((table, month(at)));
    }
    for (table, at) in needed {
        partitions.ensure(client, table, at)?;
    }
    Ok(())
}

fn commit_group(
    client: &mut Client,
    partitions: &mut Partitions,
    filters: &mut IdFilters,
    shared: &Shared,
    mut group: Vec<IngestRequest>,
) {
    let started = Instant::now();
    let received_ns = group::now_ns();
    let tenants: BTreeSet<i64> = group.iter().map(|r| r.tenant.id).collect();
    let outcome = (|| {
        ensure_partitions(client, partitions, &group)?;
        let mut tx = client.transaction()?;
        for tenant in &tenants {
            Lock::Ingest(*tenant).take(&mut tx)?;
        }
        current_horizons(&mut tx, &mut group)?;
        let batches: Vec<Batch> = group
            .iter()
            .map(|r| Batch {
                tenant: r.tenant.id,
                events: &r.events,
            })
            .collect();
        let mut records = WorkingSet::load(&mut tx, &batches, received_ns, filters)?;
        let outcome = group::apply_group(&mut records, &group, received_ns)?;
        let stored: Vec<&[bool]> = outcome.iter().map(|a| a.stored.as_slice()).collect();
        let ids = records.flush(&mut tx, &batches, &stored, received_ns)?;
        write_deltas(&mut tx, &group::deltas(&group, &outcome))?;
        let changed: BTreeSet<i64> = batches
            .iter()
            .zip(&outcome)
            .filter(|(_, applied)| applied.summary.accepted > 0)
            .map(|(b, _)| b.tenant)
            .collect();
        for tenant in changed {
            shared.notify(&mut tx, &super::Notice::Stored { tenant, received_ns })?;
        }
        tx.commit()?;
        filters.committed(&ids);
        Ok(outcome)
    })();
    if outcome.is_err() {
        // Committed or not, the filters of these tenants are rebuilt from what the store holds.
        filters.forget(tenants);
    }
    group::answer(group, outcome, started, &shared.metrics, &shared.changes);
}

/// Puts each request's tenant at the purge horizons committed now. A purge takes the tenant's
/// ingest lock, so under it they are final; the tenant a request carries was read before, and
/// on a node that has not yet heard of another node's purge (its notice is on its way) it would
/// accept records dated before the horizon.
fn current_horizons(tx: &mut postgres::Transaction, group: &mut [IngestRequest]) -> Result<()> {
    let mut fresh: std::collections::HashMap<i64, Arc<TenantInfo>> = std::collections::HashMap::new();
    for request in group.iter_mut() {
        let tenant = match fresh.entry(request.tenant.id) {
            std::collections::hash_map::Entry::Occupied(known) => known.get().clone(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let committed = catalog::tenant_by_id(&mut Pg(&mut *tx), request.tenant.id)?;
                let tenant = match committed.map(|(_, _, settings)| settings.purged) {
                    Some(purged) if purged != request.tenant.settings.purged => {
                        Arc::new(request.tenant.with_purged(purged)?)
                    }
                    _ => request.tenant.clone(),
                };
                slot.insert(tenant).clone()
            }
        };
        request.tenant = tenant;
    }
    Ok(())
}

/// ANALYZEs each table (or partition) that changed by more than half since its last ANALYZE,
/// and by at least 1,000 rows. Autovacuum does the same after a tenth, but looks once a minute:
/// a table that grew from nothing during an import was planned as nearly empty until then.
pub fn refresh_statistics(client: &mut Client) -> Result<()> {
    let stale = client.query(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables \
         WHERE n_mod_since_analyze > greatest(1000, n_live_tup / 2)",
        &[],
    )?;
    for row in stale {
        let table: String = row.get(0);
        client.batch_execute(&format!("ANALYZE {table}"))?;
    }
    Ok(())
}

/// Merges the runs of calls by value that are due and folds every committed delta row into its
/// cell block. `None` when another node is compacting right now; otherwise the number of delta
/// rows folded.
pub fn compact(client: &mut Client) -> Result<Option<usize>> {
    let mut tx = client.transaction()?;
    if !Lock::Compact.try_take(&mut tx)? {
        return Ok(None);
    }
    // The runs of calls by value, merged level by level (pg/value_runs.rs).
    value_runs::compact(&mut tx)?;
    // The batches of id hashes that other nodes' filters had time to read (pg/id_filter.rs).
    let kept_since = group::now_ns() / 1_000_000 - super::id_filter::BATCHES_KEPT_MS;
    tx.execute("DELETE FROM id_batches WHERE at_ms < $1", &[&kept_since])?;
    // Rows committed after this statement began stay for the next run.
    let rows = tx.query(
        "DELETE FROM cell_deltas RETURNING tenant_id, cuboid, grain, bucket, block",
        &[],
    )?;
    if rows.is_empty() {
        tx.commit()?;
        return Ok(Some(0));
    }
    let corrupt = || crate::StoreError::Database("corrupt cell delta block".into());
    let mut blocks: BTreeMap<(i64, i16, i16, i64), BTreeMap<String, Stats>> = BTreeMap::new();
    for row in &rows {
        let cells = blocks
            .entry((row.get(0), row.get(1), row.get(2), row.get(3)))
            .or_default();
        for entry in crate::block::entries(row.get(4)) {
            let (key, bytes) = entry.ok_or_else(corrupt)?;
            let delta = Stats::from_bytes(bytes).ok_or_else(corrupt)?;
            cells.entry(key.to_string()).or_default().merge(&delta, 1);
        }
    }
    let (mut tenants, mut cuboids, mut grains, mut buckets) = (vec![], vec![], vec![], vec![]);
    for (tenant, cuboid, grain, bucket) in blocks.keys() {
        tenants.push(*tenant);
        cuboids.push(*cuboid);
        grains.push(*grain);
        buckets.push(*bucket);
    }
    let touched =
        "(tenant_id, cuboid, grain, bucket) IN (SELECT * FROM unnest($1::int8[], $2::int2[], $3::int2[], $4::int8[]))";
    let params: [&(dyn postgres::types::ToSql + Sync); 4] = [&tenants, &cuboids, &grains, &buckets];
    let mut stored: BTreeMap<(i64, i16, i16, i64), Vec<u8>> = BTreeMap::new();
    for row in tx.query(
        &format!("SELECT tenant_id, cuboid, grain, bucket, block FROM cells WHERE {touched}"),
        &params,
    )? {
        stored.insert((row.get(0), row.get(1), row.get(2), row.get(3)), row.get(4));
    }
    tx.execute(&format!("DELETE FROM cells WHERE {touched}"), &params)?;
    let types = [Type::INT8, Type::INT2, Type::INT2, Type::INT8, Type::BYTEA];
    copy(
        &mut tx,
        "cells",
        "tenant_id, cuboid, grain, bucket, block",
        &types,
        true,
        |w| {
            for (id, cells) in &blocks {
                let old = stored.get(id).map(Vec::as_slice).unwrap_or_default();
                let merged =
                    crate::block::merge(old, cells.iter().map(|(k, s)| (k.as_str(), s))).ok_or_else(corrupt)?;
                if !merged.is_empty() {
                    w.write(&[&id.0, &id.1, &id.2, &id.3, &merged])?;
                }
            }
            Ok(())
        },
    )?;
    tx.commit()?;
    Ok(Some(rows.len()))
}
