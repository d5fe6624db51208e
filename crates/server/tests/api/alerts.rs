//! Alerts (SPEC §7) through HTTP: evaluated when new events change the numbers, with the
//! hysteresis the definition asks for, per agent of a team, against an earlier window, and
//! announced on the live socket.

use crate::helpers::{add_key, error_fields, TestApp};
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

/// 2026-03-02T12:00:00Z, the servers' "now".
const NOW: i64 = 1_772_452_800;

async fn app_at_noon() -> TestApp {
    TestApp::spawn_at("UTC", Arc::new(AtomicI64::new(NOW))).await
}

/// `n` calls of agent `agent` in team t1 with `disposition`, started at `at` (UTC).
fn calls(prefix: &str, n: usize, agent: &str, disposition: &str, at: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                json!({"id": format!("{prefix}-{i}"), "type": "call", "call_id": format!("{prefix}-{i}"),
                    "agent_id": agent, "team_id": "t1", "disposition": disposition, "started_at": at})
            })
            .collect(),
    )
}

async fn create_alert(app: &TestApp, body: Value) -> String {
    let (status, alert) = app.post("/api/v1/alerts", &app.key, &body).await;
    assert_eq!(status, 201, "{alert}");
    alert["id"].as_str().unwrap().to_string()
}

async fn events(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/alerts/{id}/events")).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

/// Waits until the alert has `n` recorded changes, then a little longer to see no more come.
async fn settle(app: &TestApp, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        if events(app, id).await.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Longer than the evaluator's coalescing: a change that would come has come.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let all = events(app, id).await;
    assert_eq!(all.len(), n, "{all:#?}");
    all
}

/// The query the alert's window stands for, through `/query`.
async fn window_totals(app: &TestApp, event: &Value, filters: Value) -> Value {
    let body = json!({"measures": ["connect_rate", "total_calls"], "range": event["window"], "filters": filters});
    let (status, answer) = app.post("/api/v1/query", &app.key, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["totals"].clone()
}

#[tokio::test]
async fn an_alert_fires_once_stays_quiet_does_not_flap_recovers_and_ignores_low_volume() {
    let app = app_at_noon().await;
    let id = create_alert(
        &app,
        json!({"name": "Team connect rate", "measure": "connect_rate", "scope": "team", "scope_id": "t1",
            "window_minutes": 120, "condition": "below", "threshold": 40, "recovery_threshold": 50,
            "min_volume": 10}),
    )
    .await;
    let at = "2026-03-02T11:00:00Z";
    // Five calls, none connected: below the threshold but under the minimum volume.
    app.events(calls("a", 5, "a1", "No Answer", at)).await;
    settle(&app, &id, 0).await;
    // Ten calls: it fires, once.
    app.events(calls("b", 5, "a1", "No Answer", at)).await;
    let fired = settle(&app, &id, 1).await;
    assert_eq!(fired[0]["kind"], "fired");
    assert_eq!(fired[0]["team_id"], "t1");
    assert_eq!(fired[0]["threshold"], 40.0);
    let totals = window_totals(&app, &fired[0], json!({"team": ["t1"]})).await;
    assert_eq!(fired[0]["value"].as_f64(), totals["connect_rate"].as_f64());
    assert_eq!(fired[0]["volume"].as_f64(), totals["total_calls"].as_f64());
    // Still below: quiet.
    app.events(calls("c", 1, "a1", "Connected", at)).await;
    settle(&app, &id, 1).await;
    // 7 of 17 = 41%: over the threshold, under the recovery threshold: no recovery (no flapping).
    app.events(calls("d", 6, "a1", "Connected", at)).await;
    settle(&app, &id, 1).await;
    // 11 of 21 = 52%: recovered.
    app.events(calls("e", 4, "a1", "Connected", at)).await;
    let changes = settle(&app, &id, 2).await;
    assert_eq!(changes[0]["kind"], "recovered");
    assert_eq!(changes[0]["threshold"], 50.0);
    let (_, alert) = app.get(&format!("/api/v1/alerts/{id}")).await;
    assert_eq!(alert["firing"], false, "{alert}");
    // 11 of 22 = 50%: back between the thresholds, nothing happens.
    app.events(calls("f", 1, "a1", "No Answer", at)).await;
    settle(&app, &id, 2).await;
    // The evaluation's window is the last two hours: calls before it count for nothing.
    app.events(calls("old", 30, "a1", "No Answer", "2026-03-02T08:00:00Z"))
        .await;
    settle(&app, &id, 2).await;
}

#[tokio::test]
async fn each_agent_of_a_team_fires_on_its_own() {
    let app = app_at_noon().await;
    let id = create_alert(
        &app,
        json!({"name": "Rep connect rate", "measure": "connect_rate", "scope": "each_agent_of_team",
            "scope_id": "t1", "window_minutes": 60, "condition": "below", "threshold": 30, "min_volume": 5}),
    )
    .await;
    let mut batch = calls("a1", 6, "a1", "No Answer", "2026-03-02T11:30:00Z");
    let good = calls("a2", 6, "a2", "Connected", "2026-03-02T11:30:00Z");
    batch.as_array_mut().unwrap().extend(good.as_array().unwrap().clone());
    app.events(batch).await;
    let fired = settle(&app, &id, 1).await;
    assert_eq!(
        (fired[0]["agent_id"].as_str(), fired[0]["team_id"].as_str()),
        (Some("a1"), Some("t1"))
    );
    assert_eq!(fired[0]["value"], 0.0);
    assert_eq!(fired[0]["volume"], 6.0);
    let (_, alert) = app.get(&format!("/api/v1/alerts/{id}")).await;
    let states = alert["states"].as_array().unwrap();
    assert_eq!(states.len(), 1, "{alert}");
    assert_eq!(states[0]["subject"], "a1");
}

#[tokio::test]
async fn a_percent_change_against_the_previous_window() {
    let app = app_at_noon().await;
    let id = create_alert(
        &app,
        json!({"name": "Volume surge", "measure": "total_calls", "scope": "tenant", "window_minutes": 60,
            "condition": "rises_by", "threshold": 50, "compare_to": "previous_window", "min_volume": 2}),
    )
    .await;
    // The window is [11:15, 12:15); the previous one [10:15, 11:15). 4 calls then 5: +25%.
    let mut batch = calls("before", 4, "a1", "No Answer", "2026-03-02T10:30:00Z");
    batch.as_array_mut().unwrap().extend(
        calls("now", 5, "a1", "No Answer", "2026-03-02T11:30:00Z")
            .as_array()
            .unwrap()
            .clone(),
    );
    app.events(batch).await;
    settle(&app, &id, 0).await;
    // 4 then 8: +100%.
    app.events(calls("more", 3, "a1", "No Answer", "2026-03-02T11:40:00Z"))
        .await;
    let fired = settle(&app, &id, 1).await;
    assert_eq!(fired[0]["compared"], 100.0);
    assert_eq!(fired[0]["value"], 8.0);
    assert_eq!(fired[0]["base_value"], 4.0);
}

#[tokio::test]
async fn a_firing_reaches_the_live_socket() {
    let app = app_at_noon().await;
    let mut ws = crate::live::connect(&app, &app.key).await;
    crate::live::send(&mut ws, json!({"type": "subscribe", "scope": "team", "scope_id": "t1"})).await;
    crate::live::wait_for(&mut ws, |m| m["type"] == "subscribed").await;
    let id = create_alert(
        &app,
        json!({"name": "No connects", "measure": "connected_calls", "scope": "team", "scope_id": "t1",
            "window_minutes": 60, "condition": "below", "threshold": 1, "min_volume": 3}),
    )
    .await;
    app.events(calls("x", 3, "a1", "Busy", "2026-03-02T11:50:00Z")).await;
    let (alert, _) = crate::live::wait_for(&mut ws, |m| m["type"] == "alert").await;
    assert_eq!(alert["alert_id"], id);
    assert_eq!(alert["kind"], "fired");
    assert_eq!(
        (alert["scope"].as_str(), alert["scope_id"].as_str()),
        (Some("team"), Some("t1"))
    );
    assert_eq!(alert["value"], 0.0);
}

#[tokio::test]
async fn alerts_follow_roles_and_name_bad_fields() {
    let app = app_at_noon().await;
    let rep = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let own = json!({"name": "Mine", "measure": "connect_rate", "scope": "agent", "scope_id": "a1",
        "window_minutes": 60, "condition": "below", "threshold": 10});
    let (status, mine) = app.post("/api/v1/alerts", &rep, &own).await;
    assert_eq!(status, 201, "{mine}");
    let mut colleague = own.clone();
    colleague["scope_id"] = json!("a2");
    assert_eq!(app.post("/api/v1/alerts", &rep, &colleague).await.0, 403);
    let (_, team_alert) = app
        .post(
            "/api/v1/alerts",
            &app.key,
            &json!({"name": "Team", "measure": "connect_rate", "scope": "team", "scope_id": "t1",
                "window_minutes": 60, "condition": "below", "threshold": 10}),
        )
        .await;
    // The rep sees their own alert, not the team's.
    let (_, listed) = app.send(reqwest::Method::GET, "/api/v1/alerts", &rep, None).await;
    let ids: Vec<&str> = listed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, [mine["id"].as_str().unwrap()]);
    let team_path = format!("/api/v1/alerts/{}", team_alert["id"].as_str().unwrap());
    assert_eq!(app.send(reqwest::Method::GET, &team_path, &rep, None).await.0, 404);
    // A team-bound key (a manager's reach) watches its team and its agents, not the tenant.
    let team_key = dialboard::cli::create_key(&app.store, app.tenant_id, vec![Scope::Read], None, Some("t1".into()))
        .await
        .unwrap();
    let mut for_team = own.clone();
    for_team["scope"] = json!("each_agent_of_team");
    for_team["scope_id"] = json!("t1");
    assert_eq!(app.post("/api/v1/alerts", &team_key, &for_team).await.0, 201);
    for_team["scope_id"] = json!("t2");
    assert_eq!(app.post("/api/v1/alerts", &team_key, &for_team).await.0, 403);
    let tenant_wide = json!({"name": "All", "measure": "connect_rate", "scope": "tenant",
        "window_minutes": 60, "condition": "below", "threshold": 10});
    assert_eq!(app.post("/api/v1/alerts", &team_key, &tenant_wide).await.0, 403);
    // Another tenant sees none of it.
    let (_, globex) = app.other_tenant("globex", false).await;
    let (_, theirs) = app.send(reqwest::Method::GET, "/api/v1/alerts", &globex, None).await;
    assert_eq!(theirs["alerts"], json!([]));
    assert_eq!(app.send(reqwest::Method::GET, &team_path, &globex, None).await.0, 404);
    assert_eq!(
        app.send(reqwest::Method::DELETE, &team_path, &globex, None).await.0,
        404
    );
    // Bad fields are named.
    let (status, body) = app
        .post(
            "/api/v1/alerts",
            &app.key,
            &json!({"name": "x", "measure": "nope", "scope": "team", "window_minutes": 60,
                "condition": "below", "threshold": 10, "recovery_threshold": 5, "webhook_ids": ["zz"]}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_fields(&body), ["measure", "scope_id", "recovery_threshold"]);
    let mut unknown_hook = own.clone();
    unknown_hook["webhook_ids"] = json!(["zz"]);
    let (status, body) = app.post("/api/v1/alerts", &app.key, &unknown_hook).await;
    assert_eq!((status, error_fields(&body)), (400, vec!["webhook_ids[0]"]));
    // Changes are audited.
    let (_, audit) = app.get("/api/v1/audit").await;
    assert!(audit.to_string().contains("alert.create"), "{audit}");
}

#[tokio::test]
async fn the_coaching_rules_are_templates_that_make_valid_alerts() {
    let app = app_at_noon().await;
    let (status, body) = app.get("/api/v1/alerts/templates?team=t1").await;
    assert_eq!(status, 200, "{body}");
    let templates = body["templates"].as_array().unwrap();
    assert_eq!(templates.len(), 8);
    for template in templates {
        let (status, created) = app.post("/api/v1/alerts", &app.key, &template["alert"]).await;
        assert_eq!(status, 201, "{}: {created}", template["key"]);
        assert_eq!(created["scope"], "each_agent_of_team");
    }
}

#[tokio::test]
async fn a_firing_is_mailed_to_the_alerts_recipients() {
    let sink = crate::smtp::SmtpSink::start().await;
    let mailer = dialboard::mail::Mailer::new(&sink.url(), "Dialboard <board@acme.test>").unwrap();
    let app = TestApp::spawn_with("UTC", dialboard::live::QUEUE_CAPACITY, |state| {
        state.now = Arc::new(|| NOW);
        state.mailer = Some(mailer);
    })
    .await;
    let id = create_alert(
        &app,
        json!({"name": "No connects", "measure": "connected_calls", "scope": "team", "scope_id": "t1",
            "window_minutes": 60, "condition": "below", "threshold": 1, "min_volume": 3,
            "emails": ["lead@acme.test", "coach@acme.test"]}),
    )
    .await;
    app.events(calls("m", 3, "a1", "Busy", "2026-03-02T11:50:00Z")).await;
    settle(&app, &id, 1).await;
    let mail = sink.wait_for(1).await;
    assert_eq!(mail.len(), 1, "one message to every recipient of one firing");
    let mut to = mail[0].recipients();
    to.sort();
    assert_eq!(to, ["coach@acme.test", "lead@acme.test"]);
    assert!(mail[0].subject().contains("No connects"), "{}", mail[0].subject());
    let text = mail[0].body("text/plain").unwrap();
    assert!(text.contains("fired") && text.contains("connected_calls"), "{text}");
}

#[tokio::test]
async fn an_admins_edit_leaves_the_alert_reading_with_its_owners_reach() {
    let app = app_at_noon().await;
    let rep = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let mut own = json!({"name": "Mine", "measure": "connect_rate", "scope": "agent", "scope_id": "a1",
        "window_minutes": 60, "condition": "below", "threshold": 10});
    let (status, mine) = app.post("/api/v1/alerts", &rep, &own).await;
    assert_eq!(status, 201, "{mine}");
    let id = mine["id"].as_str().unwrap().to_string();
    let reach = || async {
        let tenant = app.tenant_id;
        let alerts =
            dialboard_store::alerting::run(&*app.store, move |db| dialboard_store::alerting::alerts(db, tenant))
                .await
                .unwrap();
        alerts.into_iter().find(|a| a.id == id).unwrap().body["reach"].clone()
    };
    let before = reach().await;
    assert_eq!(before["agent"]["id"], "a1", "{before}");
    own["threshold"] = json!(20);
    let (status, edited) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/alerts/{id}"),
            &app.key,
            Some(&own),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["threshold"], 20.0);
    assert_eq!(reach().await, before, "still the rep's reach");
}
