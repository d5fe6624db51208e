//! Badges held on both stores: when two stores (two nodes; on SQLite, one store a file, two
//! callers) award or revoke the same badge at once, exactly one records it; a revoked badge can
//! be awarded again.

mod common;

use common::{each_store, runtime, Open};
use dialboard_engine::gamification::Award;
use dialboard_store::alerting::run;
use dialboard_store::badges;
use dialboard_store::{Store, TenantSettings};
use std::sync::Arc;

const T0: i64 = 1_800_000_000_000;

fn each_award_and_revocation_is_recorded_once_across_nodes(open: Open) {
    let rt = runtime();
    let (a, b) = (open(), open());
    let tenant = rt
        .block_on(a.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap()
        .id;
    let first = Award {
        badge: "first_meeting".into(),
        agent: "a1".into(),
        period: String::new(),
    };
    // Awarded, revoked after a correction, awarded again: each step by both nodes at once.
    for (step, awarding) in [true, false, true].into_iter().enumerate() {
        let record = |store: Arc<dyn Store>| {
            let award = first.clone();
            rt.spawn(async move {
                run(&*store, move |db| {
                    if awarding {
                        badges::award(db, tenant, &award, T0 + step as i64)
                    } else {
                        badges::revoke(db, tenant, &award)
                    }
                })
                .await
                .unwrap()
            })
        };
        let (x, y) = (record(a.clone()), record(b.clone()));
        let won = [rt.block_on(x).unwrap(), rt.block_on(y).unwrap()];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "step {step}: one node records it: {won:?}"
        );
    }
    let other = Award {
        badge: "five_meetings_week".into(),
        agent: "a2".into(),
        period: "2026-03-02".into(),
    };
    let o = other.clone();
    assert!(rt
        .block_on(run(&*b, move |db| badges::award(db, tenant, &o, T0)))
        .unwrap());
    let all = rt.block_on(run(&*a, move |db| badges::held(db, tenant, None))).unwrap();
    let keys: Vec<&Award> = all.iter().map(|h| &h.award).collect();
    assert_eq!(keys, [&first, &other]);
    let mine = rt
        .block_on(run(&*a, move |db| badges::held(db, tenant, Some("a1"))))
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].award.clone(), mine[0].awarded_at), (first.clone(), T0 + 2));
    // By rep or by period; empty lists match nothing.
    let by = |agents: &[&str], periods: &[&str]| {
        let (agents, periods): (Vec<String>, Vec<String>) = (
            agents.iter().map(|s| s.to_string()).collect(),
            periods.iter().map(|s| s.to_string()).collect(),
        );
        let found = rt
            .block_on(run(&*b, move |db| badges::held_by(db, tenant, &agents, &periods)))
            .unwrap();
        found.into_iter().map(|h| h.award).collect::<Vec<_>>()
    };
    assert_eq!(by(&["a2"], &[]), std::slice::from_ref(&other));
    assert_eq!(by(&[], &["2026-03-02"]), std::slice::from_ref(&other));
    assert_eq!(by(&["a1", "nobody"], &["2026-03-02"]), [first, other]);
    assert!(by(&[], &[]).is_empty());
}

#[test]
fn awards_are_recorded_once_across_nodes() {
    each_store(each_award_and_revocation_is_recorded_once_across_nodes);
}
