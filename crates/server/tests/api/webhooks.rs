//! Webhooks (SPEC §7) through HTTP, delivered by the job worker to a receiver the test runs:
//! signatures verified (a replayed old timestamp refused), retries with backoff, the endpoint
//! disabled after repeated failures and re-enabled by an admin, internal addresses refused.

use crate::helpers::{add_key, error_fields, TestApp};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dialboard::jobs::{Outcome, Worker};
use dialboard::webhooks::{self, AddressPolicy, VerifyError};
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A receiver as an integrator writes it: it checks the signature with the endpoint's secret
/// and refuses stale timestamps; it can be told to fail its first requests.
#[derive(Default)]
struct Receiver {
    secret: Mutex<String>,
    fail_first: AtomicUsize,
    /// What each request got: the verification's outcome and the body.
    seen: Mutex<Vec<(Result<(), VerifyError>, Value)>>,
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = headers
        .get(webhooks::SIGNATURE_HEADER)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let secret = r.secret.lock().unwrap().clone();
    let now = jiff::Timestamp::now().as_second();
    let verdict = webhooks::verify(&secret, header, &body, now, webhooks::TOLERANCE_SECONDS);
    let ok = verdict.is_ok();
    r.seen
        .lock()
        .unwrap()
        .push((verdict, serde_json::from_slice(&body).unwrap_or(Value::Null)));
    if !ok {
        return StatusCode::UNAUTHORIZED;
    }
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// Starts a receiver on loopback; returns its URL.
async fn start_receiver(receiver: Arc<Receiver>) -> String {
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// A server whose operator allows loopback targets (`--webhook-allow-private`).
async fn permissive_app() -> TestApp {
    TestApp::spawn_with("UTC", dialboard::live::QUEUE_CAPACITY, |state| {
        state.security.webhook_allow_private = true
    })
    .await
}

fn worker(app: &TestApp, allow_private: bool) -> Worker {
    Worker::for_server(app.store.clone()).handle(
        webhooks::JOB_KIND,
        webhooks::job_handler(AddressPolicy { allow_private }),
    )
}

async fn create_webhook(app: &TestApp, body: Value) -> (String, String) {
    let (status, hook) = app.post("/api/v1/webhooks", &app.key, &body).await;
    assert_eq!(status, 201, "{hook}");
    (
        hook["id"].as_str().unwrap().into(),
        hook["secret"].as_str().unwrap().into(),
    )
}

async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(status, 200, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

async fn ping(app: &TestApp, id: &str) {
    let (status, body) = app
        .post(&format!("/api/v1/webhooks/{id}/ping"), &app.key, &json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_alert_is_delivered_signed_and_a_replay_is_refused() {
    let receiver = Arc::new(Receiver::default());
    let url = start_receiver(receiver.clone()).await;
    let now = Arc::new(AtomicI64::new(1_772_452_800)); // 2026-03-02T12:00:00Z
    let app = TestApp::spawn_with("UTC", dialboard::live::QUEUE_CAPACITY, |state| {
        state.security.webhook_allow_private = true;
        let now = now.clone();
        state.now = Arc::new(move || now.load(Ordering::Relaxed));
    })
    .await;
    let (hook, secret) = create_webhook(&app, json!({"url": url, "description": "CRM"})).await;
    *receiver.secret.lock().unwrap() = secret.clone();
    let (status, alert) = app
        .post(
            "/api/v1/alerts",
            &app.key,
            &json!({"name": "No connects", "measure": "connected_calls", "scope": "tenant",
                "window_minutes": 60, "condition": "below", "threshold": 1, "min_volume": 2,
                "webhook_ids": [hook]}),
        )
        .await;
    assert_eq!(status, 201, "{alert}");
    let events: Vec<Value> = (0..2)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": "a1",
            "disposition": "Busy", "started_at": "2026-03-02T11:40:00Z"})
        })
        .collect();
    app.events(Value::Array(events)).await;
    // The firing queues a delivery job; the worker's step sends it.
    let worker = worker(&app, true);
    let mut outcome = Outcome::Idle;
    for _ in 0..50 {
        outcome = worker.run_once(Some(webhooks::JOB_KIND)).await.unwrap();
        if outcome != Outcome::Idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let (verdict, body) = receiver.seen.lock().unwrap()[0].clone();
    assert_eq!(verdict, Ok(()));
    assert_eq!(body["event"], "alert.fired");
    assert_eq!(body["data"]["alert_id"], alert["id"]);
    assert_eq!(body["data"]["value"], 0.0);
    let log = deliveries(&app, &hook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0]["outcome"].as_str(), log[0]["status_code"].as_i64()),
        (Some("delivered"), Some(200))
    );
    assert!(log[0]["latency_ms"].as_i64().is_some());

    // Someone who captured that body replays it with an old timestamp: refused, as is a body
    // changed under a valid signature.
    let raw = body.to_string();
    let client = reqwest::Client::new();
    let old = jiff::Timestamp::now().as_second() - 3600;
    let replay = client
        .post(&url)
        .header(
            webhooks::SIGNATURE_HEADER,
            webhooks::signature_header(&secret, old, raw.as_bytes()),
        )
        .body(raw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    assert_eq!(receiver.seen.lock().unwrap()[1].0, Err(VerifyError::Stale));
    let fresh = jiff::Timestamp::now().as_second();
    let forged = client
        .post(&url)
        .header(
            webhooks::SIGNATURE_HEADER,
            webhooks::signature_header(&secret, fresh, raw.as_bytes()),
        )
        .body(raw.replace("alert.fired", "alert.recovered"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(receiver.seen.lock().unwrap()[2].0, Err(VerifyError::BadSignature));
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_backoff_and_logged() {
    let receiver = Arc::new(Receiver::default());
    receiver.fail_first.store(2, Ordering::SeqCst);
    let url = start_receiver(receiver.clone()).await;
    let app = permissive_app().await;
    let (hook, secret) = create_webhook(&app, json!({"url": url})).await;
    *receiver.secret.lock().unwrap() = secret;
    ping(&app, &hook).await;
    let worker = worker(&app, true);
    assert!(matches!(worker.run_once(None).await.unwrap(), Outcome::Retrying { .. }));
    // Not due again before its backoff (2 s).
    assert_eq!(worker.run_once(None).await.unwrap(), Outcome::Idle);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(matches!(worker.run_once(None).await.unwrap(), Outcome::Retrying { .. }));
    tokio::time::sleep(Duration::from_millis(4_100)).await;
    assert!(matches!(
        worker.run_once(None).await.unwrap(),
        Outcome::Succeeded { .. }
    ));
    let log = deliveries(&app, &hook).await;
    let outcomes: Vec<(i64, &str, Option<i64>)> = log
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["outcome"].as_str().unwrap(),
                a["status_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (3, "delivered", Some(200)),
            (2, "failed", Some(500)),
            (1, "failed", Some(500))
        ]
    );
    assert!(log[1]["error"].as_str().unwrap().contains("500"));
    let (_, state) = app.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(
        (state["enabled"].as_bool(), state["consecutive_failures"].as_i64()),
        (Some(true), Some(0))
    );
}

#[tokio::test]
async fn repeated_failures_disable_the_endpoint_until_an_admin_enables_it() {
    let receiver = Arc::new(Receiver::default());
    receiver.fail_first.store(usize::MAX, Ordering::SeqCst);
    let url = start_receiver(receiver.clone()).await;
    let app = permissive_app().await;
    let (hook, secret) = create_webhook(&app, json!({"url": url, "failure_limit": 2})).await;
    *receiver.secret.lock().unwrap() = secret;
    let worker = worker(&app, true);
    ping(&app, &hook).await;
    ping(&app, &hook).await;
    assert!(matches!(worker.run_once(None).await.unwrap(), Outcome::Retrying { .. }));
    // The second failure in a row disables it; that delivery is not retried.
    assert!(matches!(
        worker.run_once(None).await.unwrap(),
        Outcome::Succeeded { .. }
    ));
    let (_, state) = app.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(
        (state["enabled"].as_bool(), state["consecutive_failures"].as_i64()),
        (Some(false), Some(2))
    );
    // Deliveries to a disabled endpoint are skipped (the first one's retry included).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(matches!(
        worker.run_once(None).await.unwrap(),
        Outcome::Succeeded { .. }
    ));
    assert_eq!(deliveries(&app, &hook).await[0]["outcome"], "skipped");
    assert_eq!(receiver.seen.lock().unwrap().len(), 2);
    // Only an admin re-enables it.
    let reader = add_key(&app.store, app.tenant_id, vec![Scope::Read], None).await;
    let enable = json!({"url": url, "failure_limit": 2, "enabled": true});
    let path = format!("/api/v1/webhooks/{hook}");
    assert_eq!(
        app.send(reqwest::Method::PUT, &path, &reader, Some(&enable)).await.0,
        403
    );
    let (status, state) = app.send(reqwest::Method::PUT, &path, &app.key, Some(&enable)).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(
        (state["enabled"].as_bool(), state["consecutive_failures"].as_i64()),
        (Some(true), Some(0))
    );
    let (_, audit) = app.get("/api/v1/audit").await;
    assert!(audit.to_string().contains("webhook.update"), "{audit}");
}

#[tokio::test]
async fn internal_addresses_are_refused_at_creation_and_after_resolution() {
    let app = TestApp::spawn("UTC").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.com/hook",
    ] {
        let (status, body) = app.post("/api/v1/webhooks", &app.key, &json!({"url": url})).await;
        assert_eq!((status, error_fields(&body)), (400, vec!["url"]), "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_webhook");
    }
    // A name passes creation, but resolves to loopback: the delivery refuses to connect.
    let receiver = Arc::new(Receiver::default());
    let url = start_receiver(receiver.clone()).await.replace("127.0.0.1", "localhost");
    let (hook, _) = create_webhook(&app, json!({"url": url})).await;
    ping(&app, &hook).await;
    assert!(matches!(
        worker(&app, false).run_once(None).await.unwrap(),
        Outcome::Retrying { .. }
    ));
    let log = deliveries(&app, &hook).await;
    assert!(log[0]["error"].as_str().unwrap().contains("resolves to"), "{log:?}");
    assert!(receiver.seen.lock().unwrap().is_empty());
    // Another tenant's admin sees neither the endpoint nor its log.
    let (_, globex) = app.other_tenant("globex", false).await;
    let path = format!("/api/v1/webhooks/{hook}/deliveries");
    assert_eq!(app.send(reqwest::Method::GET, &path, &globex, None).await.0, 404);
    let (_, listed) = app.send(reqwest::Method::GET, "/api/v1/webhooks", &globex, None).await;
    assert_eq!(listed["webhooks"], json!([]));
    // Webhooks are for admins only.
    let reader = add_key(&app.store, app.tenant_id, vec![Scope::Read], None).await;
    assert_eq!(
        app.send(reqwest::Method::GET, "/api/v1/webhooks", &reader, None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn a_schedules_webhook_hears_of_each_delivery() {
    let receiver = Arc::new(Receiver::default());
    let url = start_receiver(receiver.clone()).await;
    let sink = crate::smtp::SmtpSink::start().await;
    let app = permissive_app().await;
    let calls: Vec<Value> = (0..4)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": "a1",
                   "disposition": "Connected", "started_at": format!("2026-03-10T1{i}:00:00Z")})
        })
        .collect();
    app.events(Value::Array(calls)).await;
    let (hook, secret) = create_webhook(&app, json!({"url": url})).await;
    *receiver.secret.lock().unwrap() = secret;
    let report = json!({"name": "Calls", "description": "", "visualization": "table", "sharing": {"kind": "tenant"},
        "query": {"measures": ["total_calls"], "range": {"start": "2026-03-01", "end": "2026-04-01"}}});
    let (status, report) = app.post("/api/v1/reports", &app.key, &report).await;
    assert_eq!(status, 201, "{report}");
    let schedule = json!({"name": "Daily calls", "report_id": report["id"], "format": "csv", "webhook_id": hook,
        "recipients": ["boss@elsewhere.test"], "recurrence": {"frequency": "daily", "time": "08:00", "timezone": "UTC"}});
    let mut unknown = schedule.clone();
    unknown["webhook_id"] = json!("no-such-hook");
    let (status, refused) = app.post("/api/v1/schedules", &app.key, &unknown).await;
    assert_eq!((status, error_fields(&refused)), (400, vec!["webhook_id"]), "{refused}");
    let (status, schedule) = app.post("/api/v1/schedules", &app.key, &schedule).await;
    assert_eq!(status, 201, "{schedule}");
    let id = schedule["id"].as_str().unwrap();
    let (status, _) = app
        .post(&format!("/api/v1/schedules/{id}/run"), &app.key, &json!({}))
        .await;
    assert_eq!(status, 202);

    let mut state = dialboard::api::AppState::with_live_queue(app.store.clone(), 16);
    Arc::get_mut(&mut state).unwrap().mailer =
        Some(dialboard::mail::Mailer::new(&sink.url(), "Dialboard <board@acme.test>").unwrap());
    let worker = worker(&app, true).handle(dialboard::schedules::JOB_KIND, dialboard::schedules::job_handler(state));
    for _ in 0..2 {
        let outcome = worker.run_once(None).await.unwrap();
        assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    }
    assert_eq!(sink.wait_for(1).await.len(), 1);
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (verdict, body) = &seen[0];
    assert!(verdict.is_ok(), "{verdict:?}");
    assert_eq!(body["event"], "schedule.delivered", "{body}");
    assert_eq!(body["data"]["schedule_id"], json!(id));
    assert_eq!(body["data"]["recipients"], json!(["boss@elsewhere.test"]));
    assert!(body["data"]["size"].as_u64().unwrap() > 0, "{body}");
}
