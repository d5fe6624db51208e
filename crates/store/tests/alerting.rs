//! Alerts and webhooks on both stores: an alert's state changes once when two stores (two
//! nodes; on SQLite, one store a file, two callers) record the same crossing at once, its
//! history is kept, and a webhook's consecutive failures disable it and a success or a
//! re-enable resets them.

mod common;

use common::{each_store as each_case, runtime, Open};
use dialboard_store::alerting::{self, Alert, DeliveryAttempt, StateChange, Webhook};
use dialboard_store::{Store, TenantSettings};
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

fn one_change_per_crossing_across_nodes(open: Open) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let tenant = rt
        .block_on(a.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    let alert = Alert {
        id: "al1".into(),
        owner: "admin".into(),
        body: json!({"definition": {}}),
        created_at: T0,
        updated_at: T0,
    };
    rt.block_on(alerting::run(&*a, move |db| alerting::insert_alert(db, tenant, &alert)))
        .unwrap();
    // Both nodes read revision 0 and record the same firing, then the same recovery at once.
    for (revision, firing) in [(0, true), (1, false)] {
        let record = |store: Arc<dyn Store>| {
            rt.spawn(async move {
                let change = StateChange {
                    subject: "a1".into(),
                    expected_revision: revision,
                    firing,
                    event: json!({"kind": if firing { "fired" } else { "recovered" }}),
                    at: T0 + revision,
                };
                alerting::run(&*store, move |db| alerting::transition(db, tenant, "al1", &change))
                    .await
                    .unwrap()
            })
        };
        let (x, y) = (record(a.clone()), record(b.clone()));
        let won = [rt.block_on(x).unwrap(), rt.block_on(y).unwrap()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "one node records it: {won:?}");
    }
    let states = rt
        .block_on(alerting::run(&*b, move |db| alerting::alert_states(db, tenant, "al1")))
        .unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].firing, states[0].revision, states[0].last_fired_at),
        (false, 2, Some(T0))
    );
    let events = rt
        .block_on(alerting::run(&*a, move |db| {
            alerting::alert_events(db, tenant, "al1", 10)
        }))
        .unwrap();
    assert_eq!(events, [json!({"kind": "recovered"}), json!({"kind": "fired"})]);
    // A deleted alert takes its state and history along.
    assert!(rt
        .block_on(alerting::run(&*a, move |db| alerting::delete_alert(db, tenant, "al1")))
        .unwrap());
    let left = rt
        .block_on(alerting::run(&*a, move |db| {
            alerting::alert_events(db, tenant, "al1", 10)
        }))
        .unwrap();
    assert!(left.is_empty());
}

fn failures_disable_a_webhook(open: Open) {
    let rt = runtime();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    let hook = Webhook {
        id: "w1".into(),
        owner: "admin".into(),
        body: json!({"url": "https://example.com/"}),
        secret: "whsec_x".into(),
        enabled: true,
        consecutive_failures: 0,
        created_at: T0,
        updated_at: T0,
    };
    rt.block_on(alerting::run(&*store, move |db| {
        alerting::insert_webhook(db, tenant, &hook)
    }))
    .unwrap();
    let attempt = |n: i64, outcome: &str| DeliveryAttempt {
        id: format!("d{n}"),
        attempt: 1,
        event: "ping".into(),
        at: T0 + n,
        outcome: outcome.into(),
        status_code: Some(if outcome == "delivered" { 200 } else { 500 }),
        latency_ms: Some(3),
        error: None,
    };
    let record = |n: i64, outcome: &'static str| {
        let a = attempt(n, outcome);
        rt.block_on(alerting::run(&*store, move |db| {
            alerting::record_attempt(db, tenant, "w1", &a, 3)
        }))
        .unwrap()
        .unwrap()
    };
    assert_eq!(record(1, "failed").consecutive_failures, 1);
    assert_eq!(record(2, "delivered").consecutive_failures, 0);
    record(3, "failed");
    record(4, "failed");
    let disabled = record(5, "failed");
    assert_eq!((disabled.enabled, disabled.consecutive_failures), (false, 3));
    let log = rt
        .block_on(alerting::run(&*store, move |db| {
            alerting::deliveries(db, tenant, "w1", 100)
        }))
        .unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(log[0].id, "d5");
    let body = json!({"url": "https://example.com/"});
    rt.block_on(alerting::run(&*store, move |db| {
        alerting::update_webhook(db, tenant, "w1", &body, Some(true), T0 + 9)
    }))
    .unwrap();
    let hook = rt
        .block_on(alerting::run(&*store, move |db| alerting::webhook(db, tenant, "w1")))
        .unwrap()
        .unwrap();
    assert_eq!((hook.enabled, hook.consecutive_failures), (true, 0));
}

#[test]
fn an_alerts_change_is_recorded_once_across_nodes() {
    each_case(one_change_per_crossing_across_nodes);
}

#[test]
fn consecutive_failures_disable_a_webhook_until_it_is_enabled() {
    each_case(failures_disable_a_webhook);
}
