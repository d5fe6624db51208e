//! Schedules across nodes and crashes (SPEC §7: "a run happens once across nodes"; "a failed
//! run is retried"), delivered to a real SMTP server (`smtp.rs`):
//! - two nodes (two stores on one PostgreSQL database) that tick the same due schedule at once
//!   and both run their workers make one run, and each recipient gets one e-mail;
//! - the real binary killed (`kill -9`) between two recipients — the first one's message
//!   accepted, the second one's held by the SMTP server — is retried after restart, once the
//!   dead node's lease ends, and each recipient gets exactly one e-mail: the first recipient's
//!   delivery was checkpointed, so the retry sends only the second (whose message, cut short,
//!   was never acknowledged, so the SMTP server did not keep it).

use crate::helpers::add_key;
use crate::process::{cli, free_port, last_line, wait_ready, BIN};
use crate::schedules::worker_on;
use crate::smtp::SmtpSink;
use dialboard::api::AppState;
use dialboard::jobs::Outcome;
use dialboard::serve::Limits;
use dialboard_store::pg::cluster::Cluster;
use dialboard_store::{Scope, Store, TenantSettings};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECIPIENTS: [&str; 2] = ["boss@elsewhere.test", "ops@elsewhere.test"];

async fn send(method: reqwest::Method, url: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let r = request.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Calls in March 2026, a report of calls per rep over them, and a daily CSV schedule of it
/// to [`RECIPIENTS`], made through the HTTP API at `url`; the schedule's id.
async fn scheduled_report(url: &str, key: &str) -> String {
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let agent = ["a1", "a2"][i % 2];
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": agent,
                   "disposition": "Connected", "started_at": format!("2026-03-10T{:02}:00:00Z", 8 + i), "talk_seconds": 40})
        })
        .collect();
    let post = reqwest::Method::POST;
    let (status, body) = send(post.clone(), &format!("{url}/api/v1/events"), key, Some(&json!(events))).await;
    assert_eq!(status, 200, "{body}");
    let query = json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": "2026-03-01", "end": "2026-04-01"}});
    let report = json!({"name": "Calls per rep", "description": "", "query": query, "visualization": "table",
                        "sharing": {"kind": "tenant"}});
    let (status, report) = send(post.clone(), &format!("{url}/api/v1/reports"), key, Some(&report)).await;
    assert_eq!(status, 201, "{report}");
    let schedule = json!({"name": "Daily calls", "report_id": report["id"], "format": "csv", "recipients": RECIPIENTS,
                          "recurrence": {"frequency": "daily", "time": "08:00", "timezone": "UTC"}});
    let (status, schedule) = send(post, &format!("{url}/api/v1/schedules"), key, Some(&schedule)).await;
    assert_eq!(status, 201, "{schedule}");
    schedule["id"].as_str().unwrap().to_string()
}

async fn runs(url: &str, key: &str, schedule: &str) -> Vec<Value> {
    let (status, body) = send(
        reqwest::Method::GET,
        &format!("{url}/api/v1/schedules/{schedule}/runs"),
        key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["runs"].as_array().unwrap().clone()
}

/// Each recipient got exactly one message, and nothing else arrived (waiting a moment for
/// late duplicates).
async fn one_message_each(sink: &SmtpSink) {
    sink.wait_for(RECIPIENTS.len()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut to: Vec<Vec<String>> = sink.received().iter().map(|m| m.recipients()).collect();
    to.sort();
    assert_eq!(to, RECIPIENTS.map(|r| vec![r.to_string()]), "one e-mail per recipient");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_postgres_make_one_run_and_send_one_email_per_recipient() {
    let (_cluster, a, b) = tokio::task::spawn_blocking(|| {
        let cluster = Cluster::start(false).unwrap();
        let db = cluster.create_database().unwrap();
        let a = dialboard::open_store(&db).unwrap();
        let b = dialboard::open_store(&db).unwrap();
        (cluster, a, b)
    })
    .await
    .unwrap();
    let tenant = a.create_tenant("acme", TenantSettings::new("UTC")).await.unwrap();
    let key = add_key(&a, tenant.id, vec![Scope::Ingest, Scope::Read, Scope::Admin], None).await;
    // Node A serves the API, its clock three days behind so the schedule made through it is
    // three days old (due now); both nodes tick and work in the present.
    let now = jiff::Timestamp::now().as_second();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut state = AppState::with_live_queue(a.clone(), 16);
    Arc::get_mut(&mut state).unwrap().now = Arc::new(move || now - 3 * 86_400);
    let app = dialboard::api::app(state);
    let serving = dialboard::serve::run(listener, app, Limits::default(), std::future::pending());
    tokio::spawn(async move { serving.await.unwrap() });
    let schedule = scheduled_report(&url, &key).await;

    // Both nodes see the schedule due and tick at the same moment.
    let tick = dialboard::schedules::tick;
    let (on_a, on_b) = tokio::join!(tick(&a, now), tick(&b, now));
    assert_eq!(on_a.unwrap() + on_b.unwrap(), 1, "one node queues the run");
    let made = runs(&url, &key, &schedule).await;
    assert_eq!(made.len(), 1, "{made:?}");
    // Two nodes that both read the schedule before either queued its occurrence (what the
    // ticks above may or may not have raced into) still make it once: the run's key decides.
    let due: jiff::Timestamp = made[0]["scheduled_for"].as_str().unwrap().parse().unwrap();
    let tenant_id = tenant.id;
    let queue = |store: &Arc<dyn Store>| {
        let store = store.clone();
        let schedule = schedule.clone();
        async move {
            dialboard::schedules::queue_run(&store, tenant_id, &schedule, due.as_second(), true, now * 1000)
                .await
                .unwrap()
        }
    };
    let (again_a, again_b) = tokio::join!(queue(&a), queue(&b));
    assert!(
        again_a.is_none() && again_b.is_none(),
        "the occurrence already has its run"
    );

    // Both nodes' workers look for work at once: one runs it, the other finds nothing.
    let sink = SmtpSink::start().await;
    let (worker_a, worker_b) = (worker_on(&a, &sink), worker_on(&b, &sink));
    let kind = Some(dialboard::schedules::JOB_KIND);
    let (x, y) = tokio::join!(worker_a.run_once(kind), worker_b.run_once(kind));
    let mut outcomes = [x.unwrap(), y.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Outcome::Idle));
    assert!(
        matches!(outcomes, [Outcome::Succeeded { .. }, Outcome::Idle]),
        "{outcomes:?}"
    );
    let (x, y) = tokio::join!(worker_a.run_once(kind), worker_b.run_once(kind));
    assert_eq!((x.unwrap(), y.unwrap()), (Outcome::Idle, Outcome::Idle), "nothing left");

    one_message_each(&sink).await;
    let history = runs(&url, &key, &schedule).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (&history[0]["status"], &history[0]["attempts"], &history[0]["late"]),
        (&json!("succeeded"), &json!(1), &json!(true)),
        "{history:?}"
    );
    let mut recipients = history[0]["recipients"].clone();
    recipients.as_array_mut().unwrap().sort_by_key(|r| r.to_string());
    assert_eq!(recipients, json!(RECIPIENTS));
}

/// `dialboard serve` on `db` delivering through `sink`, its log in `log`.
fn serve(db: &str, port: u16, sink: &SmtpSink, log: &std::path::Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--smtp-url", &sink.url(), "--smtp-from", "board@acme.test"])
        .env("DIALBOARD_DATABASE", db)
        .stdout(Stdio::null())
        .stderr(std::fs::File::options().create(true).append(true).open(log).unwrap())
        .spawn()
        .unwrap()
}

/// Kill -9 after the first recipient's e-mail was accepted, while the second's is in the SMTP
/// server's hands; restart: the run is claimed again once the dead node's lease
/// (`jobs::LEASE_MS`, 60 s) ends and sends only what was not delivered, so this test takes a
/// minute and more.
#[tokio::test]
async fn a_run_cut_short_by_kill_nine_between_recipients_is_retried_and_each_gets_one_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let log = dir.path().join("server.log");
    let key = last_line(&cli(&db, &["tenant", "create", "acme", "--timezone", "UTC"]));
    let sink = SmtpSink::start_holding(Duration::from_secs(2)).await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(&db, port, &sink, &log);
    wait_ready(&url).await;
    let schedule = scheduled_report(&url, &key).await;

    let (status, run) = send(
        reqwest::Method::POST,
        &format!("{url}/api/v1/schedules/{schedule}/run"),
        &key,
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    // Each message is held 2 s before it is accepted: wait until the first was accepted and
    // the second is held.
    let start = Instant::now();
    while sink.held() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never reached its second recipient"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill().unwrap(); // SIGKILL between the first recipient's message and the second's
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let first = sink.received();
    assert_eq!(
        first.len(),
        1,
        "the first recipient's message was accepted, the second's never acknowledged"
    );

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = serve(&db, port, &sink, &log);
    wait_ready(&url).await;
    let history = runs(&url, &key, &schedule).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (&history[0]["status"], &history[0]["attempts"]),
        (&json!("running"), &json!(1)),
        "still leased to the dead node: {history:?}"
    );
    // The restarted node claims it again once the lease ends, and delivers it.
    let start = Instant::now();
    let history = loop {
        let history = runs(&url, &key, &schedule).await;
        if history[0]["status"] != "running" || start.elapsed() > Duration::from_secs(120) {
            break history;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    let run = &history[0];
    assert_eq!(
        (&run["status"], &run["attempts"]),
        (&json!("succeeded"), &json!(2)),
        "retried once after the kill: {run}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(run["recipients"].as_array().unwrap().len(), RECIPIENTS.len(), "{run}");
    one_message_each(&sink).await;
    assert_eq!(
        sink.held(),
        RECIPIENTS.len() + 1,
        "the second recipient's message was cut short once and sent again; the first's was not"
    );
}
