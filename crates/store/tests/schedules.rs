//! Schedule delivery checkpoints and stored next runs on both stores: a recipient's delivery
//! recorded by one node is what another node (taking the run over) reads, once even if both
//! record it; the ticker's query finds only the due schedules, and a next run moved by one
//! node is not moved again by another that read the old value.

mod common;

use common::{each_store as each_case, runtime, Open};
use dialboard_store::alerting::run;
use dialboard_store::schedules::{self, Delivery, DueSchedule};
use dialboard_store::{Store, TenantSettings};
use std::sync::Arc;

const DUE: i64 = 1_800_000_000;

/// Two stores (nodes) on one database, and a tenant.
fn two_nodes(open: Open) -> (tokio::runtime::Runtime, Arc<dyn Store>, Arc<dyn Store>, i64) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let tenant = rt
        .block_on(a.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    (rt, a, b, tenant)
}

fn deliveries_are_checkpointed_once_and_seen_by_every_node(open: Open) {
    let (rt, a, b, tenant) = two_nodes(open);
    let delivery = |to: &str, size: i64| Delivery {
        recipient: to.into(),
        size,
        delivered_at: DUE * 1000 + size,
    };
    let boss = delivery("boss@x.test", 10);
    for store in [&a, &b] {
        let boss = boss.clone();
        rt.block_on(run(&**store, move |db| {
            schedules::record_delivery(db, tenant, "s1", DUE, &boss)
        }))
        .unwrap();
    }
    let other_run = delivery("ops@x.test", 20);
    rt.block_on(run(&*a, move |db| {
        schedules::record_delivery(db, tenant, "s1", DUE + 60, &other_run)
    }))
    .unwrap();
    let seen = rt
        .block_on(run(&*b, move |db| schedules::deliveries(db, tenant, "s1", DUE)))
        .unwrap();
    assert_eq!(seen, vec![boss], "one record, of this run only");
}

fn only_due_schedules_are_read_and_a_next_run_moves_once(open: Open) {
    let (rt, a, b, tenant) = two_nodes(open);
    for (id, next) in [("due", Some(DUE)), ("later", Some(DUE + 3600)), ("paused", None)] {
        rt.block_on(run(&*a, move |db| schedules::set_next_run(db, tenant, id, next)))
            .unwrap();
    }
    let due = rt
        .block_on(run(&*b, move |db| schedules::due(db, DUE + 60, 100)))
        .unwrap();
    let want = DueSchedule {
        tenant_id: tenant,
        schedule_id: "due".into(),
        next_run: DUE,
    };
    assert_eq!(due, vec![want]);
    // Both nodes read DUE; the first moves it a day on, the second finds it moved.
    let mut moved = Vec::new();
    for store in [&a, &b] {
        moved.push(
            rt.block_on(run(&**store, move |db| {
                schedules::advance_next_run(db, tenant, "due", DUE, Some(DUE + 86_400))
            }))
            .unwrap(),
        );
    }
    assert_eq!(moved, [true, false]);
    assert!(rt
        .block_on(run(&*a, move |db| schedules::due(db, DUE + 60, 100)))
        .unwrap()
        .is_empty());
    rt.block_on(run(&*a, move |db| schedules::delete_next_run(db, tenant, "later")))
        .unwrap();
    let all = rt
        .block_on(run(&*b, move |db| schedules::due(db, DUE + 10 * 86_400, 100)))
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.schedule_id.as_str()).collect::<Vec<_>>(),
        ["due"],
        "the deleted one is gone, the paused one never due"
    );
}

#[test]
fn a_delivery_is_checkpointed_once_and_every_node_sees_it() {
    each_case(deliveries_are_checkpointed_once_and_seen_by_every_node);
}

#[test]
fn the_ticker_reads_only_due_schedules_and_a_next_run_moves_once() {
    each_case(only_due_schedules_are_read_and_a_next_run_moves_once);
}
