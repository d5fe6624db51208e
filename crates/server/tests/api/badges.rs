//! Badges held and announced (SPEC §14) through the real router: committed events award a
//! badge once, recorded in the store and sent as a live `badge` message; a correction revokes
//! it and a later one awards it again, each announced once; the rep's page reads when it was
//! awarded.

use crate::helpers::TestApp;
use crate::live::{connect, send, wait_for};
use dialboard::api::AppState;
use dialboard::badges::{reconcile, Announce, Reconciler, Reps};
use dialboard_store::alerting::run;
use dialboard_store::badges::held;
use serde_json::{json, Value};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

/// 2026-03-13T21:00:00Z.
const NOW: i64 = 1_773_435_600;

fn call(call_id: &str, agent: &str, disposition: &str, version: u32) -> Value {
    json!({"id": format!("{call_id}-v{version}"), "type": "call", "call_id": call_id, "agent_id": agent, "team_id": "t1",
           "disposition": disposition, "started_at": "2026-03-09T10:00:00Z",
           "updated_at": format!("2026-03-13T0{version}:00:00Z")})
}

async fn stored(app: &TestApp) -> Vec<(String, String, String)> {
    let tenant = app.tenant_id;
    run(&*app.store, move |db| held(db, tenant, None))
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.award.badge, h.award.agent, h.award.period))
        .collect()
}

#[tokio::test]
async fn a_badge_is_recorded_and_announced_once_revoked_by_a_correction_and_awarded_again() {
    let app = TestApp::spawn_at("UTC", Arc::new(AtomicI64::new(NOW))).await;
    let mut rep = connect(&app, &app.key).await;
    send(
        &mut rep,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "r1"}),
    )
    .await;
    wait_for(&mut rep, |m| m["type"] == "subscribed").await;
    let mut tenant = connect(&app, &app.key).await;
    send(&mut tenant, json!({"type": "subscribe", "scope": "tenant"})).await;
    wait_for(&mut tenant, |m| m["type"] == "subscribed").await;

    app.events(json!([call("c1", "r1", "Meeting Booked", 1)])).await;
    let (awarded, _) = wait_for(&mut rep, |m| m["type"] == "badge").await;
    assert_eq!(
        (
            &awarded["change"],
            &awarded["badge"],
            &awarded["agent_id"],
            &awarded["period"]
        ),
        (&json!("awarded"), &json!("first_meeting"), &json!("r1"), &json!(""))
    );
    assert_eq!(awarded["name"], "First meeting");
    assert_eq!(
        (&awarded["scope"], &awarded["scope_id"]),
        (&json!("agent"), &json!("r1"))
    );
    let (on_tenant, _) = wait_for(&mut tenant, |m| m["type"] == "badge").await;
    assert_eq!(on_tenant["badge"], "first_meeting");
    let first = ("first_meeting".to_string(), "r1".to_string(), String::new());
    assert_eq!(stored(&app).await, std::slice::from_ref(&first));
    let (status, page) = app
        .send(reqwest::Method::GET, "/api/v1/analytics/badges/r1", &app.key, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["badges"][0]["badge"], "first_meeting");
    assert_eq!(page["badges"][0]["awarded_at"], "2026-03-13T21:00:00+00:00");

    // More events that change nothing about it (another rep's call, the same call again)
    // announce nothing more for r1.
    app.events(json!([
        call("c2", "r2", "No Answer", 1),
        call("c1", "r1", "Meeting Booked", 1)
    ]))
    .await;
    // A correction takes the meeting away, a later one gives it back: revoked, then awarded.
    app.events(json!([call("c1", "r1", "No Answer", 2)])).await;
    let (revoked, between) = wait_for(&mut rep, |m| m["type"] == "badge").await;
    assert_eq!(
        (&revoked["change"], &revoked["badge"]),
        (&json!("revoked"), &json!("first_meeting"))
    );
    assert!(between.iter().all(|m| m["type"] != "badge"), "{between:?}");
    assert_eq!(stored(&app).await, []);
    app.events(json!([call("c1", "r1", "Meeting Booked", 3)])).await;
    let (again, _) = wait_for(&mut rep, |m| m["type"] == "badge").await;
    assert_eq!(
        (&again["change"], &again["badge"]),
        (&json!("awarded"), &json!("first_meeting"))
    );
    assert_eq!(stored(&app).await, [first]);

    // A later reconciliation of the same facts (another node's, or a sweep) records nothing,
    // and nothing more is announced.
    app.events(json!([call("c3", "r2", "No Answer", 1)])).await;
    let quiet = tokio::time::timeout(Duration::from_secs(2), wait_for(&mut rep, |m| m["type"] == "badge")).await;
    assert!(quiet.is_err(), "announced twice: {quiet:?}");
}

#[tokio::test]
async fn a_rep_out_of_public_leaderboards_is_announced_on_their_own_scope_only() {
    let app = TestApp::spawn_at("UTC", Arc::new(AtomicI64::new(NOW))).await;
    let (status, body) = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/agents/r9",
            &app.key,
            Some(&json!({"name": "Private Rep", "team_id": "t1", "leaderboard_opt_out": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut tenant = connect(&app, &app.key).await;
    send(&mut tenant, json!({"type": "subscribe", "scope": "tenant"})).await;
    wait_for(&mut tenant, |m| m["type"] == "subscribed").await;
    let mut rep = connect(&app, &app.key).await;
    send(
        &mut rep,
        json!({"type": "subscribe", "scope": "agent", "scope_id": "r9"}),
    )
    .await;
    wait_for(&mut rep, |m| m["type"] == "subscribed").await;
    app.events(json!([call("c9", "r9", "Meeting Booked", 1)])).await;
    let (own, _) = wait_for(&mut rep, |m| m["type"] == "badge").await;
    assert_eq!(
        (&own["agent_name"], &own["change"]),
        (&json!("Private Rep"), &json!("awarded"))
    );
    let public = tokio::time::timeout(Duration::from_secs(2), wait_for(&mut tenant, |m| m["type"] == "badge")).await;
    assert!(public.is_err(), "announced publicly: {public:?}");
}

/// Notes every change the feed has for the tenant within a moment into `reconciler`.
async fn note_changes(
    feed: &mut tokio::sync::broadcast::Receiver<Arc<dialboard_store::Change>>,
    reconciler: &mut Reconciler,
) {
    while let Ok(Ok(change)) = tokio::time::timeout(Duration::from_millis(300), feed.recv()).await {
        reconciler.note(&change);
    }
}

/// `n` calls of `agent` on 2026-02-10, the first `connected` of them connected, as `version`.
fn february(agent: &str, n: usize, connected: usize, version: u32) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("{agent}-feb{i}-v{version}"), "type": "call", "call_id": format!("{agent}-feb{i}"),
                "agent_id": agent, "team_id": "t1", "disposition": if i < connected { "Connected" } else { "No Answer" },
                "started_at": "2026-02-10T10:00:00Z", "updated_at": format!("2026-03-13T0{version}:00:00Z")})
        })
        .collect()
}

#[tokio::test]
async fn a_pass_reads_only_the_reps_whose_calls_changed_and_decides_as_a_full_one() {
    let app = TestApp::spawn_at("UTC", Arc::new(AtomicI64::new(NOW))).await;
    let mut state = AppState::with_live_queue(app.store.clone(), dialboard::live::QUEUE_CAPACITY);
    Arc::get_mut(&mut state).unwrap().now = Arc::new(|| NOW);
    let mut feed = app.store.changes();
    let mut reconciler = Reconciler::default();

    // r1 60% and r2 50% connected in February (100 calls each: ranked), r3 a meeting in March.
    let mut first = february("r1", 100, 60, 1);
    first.extend(february("r2", 100, 50, 1));
    first.push(call("c1", "r3", "Meeting Booked", 1));
    app.events(json!(first)).await;
    note_changes(&mut feed, &mut reconciler).await;
    let passes = reconciler.run(&state).await;
    assert_eq!(passes.len(), 1);
    let pass = passes[0].1;
    assert!(pass.full, "a tenant new to the reconciler is read whole: {pass:?}");
    assert_eq!(pass.evaluated, 3);
    let best = |agent: &str| {
        (
            "best_connect_rate_month".to_string(),
            agent.to_string(),
            "2026-02".to_string(),
        )
    };
    let held = stored(&app).await;
    assert!(held.contains(&best("r1")) && !held.contains(&best("r2")), "{held:?}");

    // One rep's call today: only that rep is read.
    app.events(json!([call("c2", "r3", "No Answer", 1)])).await;
    note_changes(&mut feed, &mut reconciler).await;
    let pass = reconciler.run(&state).await[0].1;
    assert_eq!((pass.full, pass.evaluated), (false, 1), "{pass:?}");

    // A correction of r2's February calls (now 70%) reads r2 alone, and February's comparison
    // from every rep's month totals: r1 loses the month's best to r2.
    app.events(json!(february("r2", 100, 70, 2))).await;
    note_changes(&mut feed, &mut reconciler).await;
    let pass = reconciler.run(&state).await[0].1;
    assert_eq!((pass.full, pass.evaluated), (false, 1), "{pass:?}");
    let held = stored(&app).await;
    assert!(held.contains(&best("r2")) && !held.contains(&best("r1")), "{held:?}");

    // A correction that moves r3's meeting to r4 reads both reps.
    app.events(
        json!([{"id": "c1-v2", "type": "call", "call_id": "c1", "agent_id": "r4", "team_id": "t1",
        "disposition": "Meeting Booked", "started_at": "2026-03-09T10:00:00Z", "updated_at": "2026-03-13T02:00:00Z"}]),
    )
    .await;
    note_changes(&mut feed, &mut reconciler).await;
    let pass = reconciler.run(&state).await[0].1;
    assert_eq!((pass.full, pass.evaluated), (false, 2), "{pass:?}");
    let held = stored(&app).await;
    let first_meeting = |agent: &str| ("first_meeting".to_string(), agent.to_string(), String::new());
    assert!(
        held.contains(&first_meeting("r4")) && !held.contains(&first_meeting("r3")),
        "{held:?}"
    );

    // The partial passes left the awards where a pass over everyone puts them.
    let whole = reconcile(&state, app.tenant_id, &Reps::All, Announce::Each)
        .await
        .unwrap();
    assert_eq!((whole.full, whole.recorded), (true, 0), "{whole:?}");
}
