//! Schedules (SPEC §7) through HTTP, delivered to a real SMTP server (aiosmtpd, `smtp.rs`):
//! a run renders each recipient's copy with that recipient's own reach (a team's rep gets
//! only their own rows) and the numbers in the attachment are `/query`'s; runs are made once
//! per occurrence; missed occurrences run once, late; an empty rendering fails the run and
//! sends nothing; errors name the field and a rep schedules only for themselves.

use crate::helpers::{error_fields, TestApp};
use crate::smtp::SmtpSink;
use dialboard::api::AppState;
use dialboard::jobs::{Outcome, Worker};
use dialboard::mail::Mailer;
use dialboard_store::{DirectoryKind, Store};
use serde_json::{json, Value};
use std::sync::Arc;

/// A worker that runs schedule runs through `sink`, over the app's store.
fn worker(app: &TestApp, sink: &SmtpSink) -> Worker {
    worker_on(&app.store, sink)
}

/// A worker that runs schedule runs through `sink`, over `store` (a node of its own).
pub(crate) fn worker_on(store: &Arc<dyn Store>, sink: &SmtpSink) -> Worker {
    let mut state = AppState::with_live_queue(store.clone(), 16);
    let s = Arc::get_mut(&mut state).unwrap();
    s.mailer = Some(Mailer::new(&sink.url(), "Dialboard <board@acme.test>").unwrap());
    s.security.public_origin = Some("https://board.acme.test".into());
    Worker::new(store.clone()).handle(dialboard::schedules::JOB_KIND, dialboard::schedules::job_handler(state))
}

/// acme: a1, a2 in t1 and a3 in t2 with calls in March 2026; a manager of t1 and rep a1.
async fn world() -> TestApp {
    let app = TestApp::spawn("UTC").await;
    for team in ["t1", "t2"] {
        app.store
            .put_directory(app.tenant_id, DirectoryKind::Team, team, json!({"name": team}))
            .await
            .unwrap();
    }
    let events: Vec<Value> = (0..18)
        .map(|i| {
            let (agent, team) = [("a1", "t1"), ("a2", "t1"), ("a3", "t2")][i % 3];
            let disposition = ["Connected", "No Answer"][i % 2];
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": agent, "team_id": team,
                   "disposition": disposition, "started_at": format!("2026-03-10T{:02}:00:00Z", 6 + i),
                   "talk_seconds": 30 + i})
        })
        .collect();
    app.events(Value::Array(events)).await;
    for (email, role, agent, teams) in [
        ("manager@acme.test", "manager", None, vec!["t1"]),
        ("a1@acme.test", "agent", Some("a1"), vec!["t1"]),
        ("a3@acme.test", "agent", Some("a3"), vec!["t2"]),
    ] {
        let body = json!({"email": email, "password": "password-1", "role": role, "agent_id": agent, "teams": teams});
        let (status, user) = app.post("/api/v1/users", &app.key, &body).await;
        assert_eq!(status, 201, "{user}");
    }
    app
}

fn by_agent() -> Value {
    json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": "2026-03-01", "end": "2026-04-01"},
           "order_by": [["agent", "asc"]]})
}

async fn report(app: &TestApp, query: Value) -> String {
    let body = json!({"name": "Calls per rep", "description": "", "query": query, "visualization": "bar", "sharing": {"kind": "tenant"}});
    let (status, created) = app.post("/api/v1/reports", &app.key, &body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

fn schedule(report_id: &str, recipients: Value, format: &str) -> Value {
    json!({"name": "Monday scorecard", "report_id": report_id, "format": format, "recipients": recipients,
           "recurrence": {"frequency": "weekly", "days": ["mon"], "time": "08:00", "timezone": "Europe/London"}})
}

async fn create(app: &TestApp, body: &Value) -> String {
    let (status, created) = app.post("/api/v1/schedules", &app.key, body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    csv::Reader::from_reader(bytes)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

#[tokio::test]
async fn run_now_mails_each_recipient_their_own_numbers_which_equal_query() {
    let app = world().await;
    let sink = SmtpSink::start().await;
    let report_id = report(&app, by_agent()).await;
    let id = create(
        &app,
        &schedule(&report_id, json!(["boss@elsewhere.test", {"team": "t1"}]), "csv"),
    )
    .await;
    let (status, run) = app
        .post(&format!("/api/v1/schedules/{id}/run"), &app.key, &json!({}))
        .await;
    assert_eq!((status, run["status"].as_str()), (202, Some("pending")), "{run}");
    let worker = worker(&app, &sink);
    let outcome = worker.run_once(None).await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(
        worker.run_once(None).await.unwrap(),
        Outcome::Idle,
        "no work left queued"
    );

    let mails = sink.wait_for(3).await;
    let by_recipient = |to: &str| {
        mails
            .iter()
            .find(|m| m.recipients() == [to])
            .unwrap_or_else(|| panic!("no mail to {to}"))
    };
    // The address sees what the schedule's owner (an admin key) sees: every rep, as /query.
    let (_, all) = app.post("/api/v1/query", &app.key, &by_agent()).await;
    let boss = by_recipient("boss@elsewhere.test");
    assert_eq!(boss.subject(), "Calls per rep");
    assert!(boss
        .body("text/plain")
        .unwrap()
        .contains(&format!("https://board.acme.test/reports/{report_id}")));
    let (kind, file) = boss.attachment("Calls_per_rep.csv").expect("the CSV is attached");
    assert_eq!(kind, "text/csv");
    let rows = csv_rows(&file);
    let expected = all["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{rows:?} vs {all}");
    for (row, want) in rows.iter().zip(expected) {
        assert!(
            row.contains(&want[0].as_str().unwrap().to_string()),
            "{row:?} vs {want}"
        );
        assert!(row.contains(&want[1].to_string()), "{row:?} vs {want}");
    }
    // The team's members each get it as their own role sees it.
    let manager = csv_rows(
        &by_recipient("manager@acme.test")
            .attachment("Calls_per_rep.csv")
            .unwrap()
            .1,
    );
    let agents: Vec<&str> = manager.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(agents.len(), 2, "the manager sees t1's two reps: {manager:?}");
    let rep = csv_rows(&by_recipient("a1@acme.test").attachment("Calls_per_rep.csv").unwrap().1);
    let rep_key = dialboard::cli::create_key(
        &app.store,
        app.tenant_id,
        vec![dialboard_store::Scope::Read],
        Some("a1".into()),
        None,
    )
    .await
    .unwrap();
    let (_, as_rep) = app.post("/api/v1/query", &rep_key, &by_agent()).await;
    let want: Vec<Vec<String>> = as_rep["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| vec![r[0].as_str().unwrap_or("").to_string(), r[1].to_string()])
        .collect();
    assert_eq!(rep, want, "a rep gets what /query answers a rep");

    let (_, runs) = app.get(&format!("/api/v1/schedules/{id}/runs")).await;
    let run = &runs["runs"][0];
    assert_eq!(run["status"], "succeeded", "{runs}");
    assert_eq!(run["attempts"], 1);
    assert_eq!(run["recipients"].as_array().unwrap().len(), 3);
    assert!(run["size"].as_u64().unwrap() > 0 && run["started"].is_string() && run["finished"].is_string());
}

/// The e-mail of an HTML schedule of `report_id` to one address, run now.
async fn html_mail(app: &TestApp, sink: &SmtpSink, report_id: &str) -> crate::smtp::Received {
    let id = create(app, &schedule(report_id, json!(["boss@elsewhere.test"]), "html")).await;
    app.post(&format!("/api/v1/schedules/{id}/run"), &app.key, &json!({}))
        .await;
    let outcome = worker(app, sink).run_once(None).await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    sink.wait_for(1).await.remove(0)
}

#[tokio::test]
async fn an_html_schedule_has_the_numbers_in_the_message_beside_plain_text() {
    let app = world().await;
    let sink = SmtpSink::start().await;
    let mut query = by_agent();
    query["dimensions"] = json!([]);
    query["order_by"] = json!([]);
    let report_id = report(&app, query).await;
    let mail = &html_mail(&app, &sink, &report_id).await;
    let html = mail.body("text/html").unwrap();
    assert!(html.contains("total calls</th><td>18</td>"), "{html}");
    assert!(mail.body("text/plain").unwrap().contains("total calls: 18"));
}

#[tokio::test]
async fn an_html_schedule_shows_the_reports_chart_inline_as_a_png() {
    let app = world().await;
    let sink = SmtpSink::start().await;
    let report_id = report(&app, by_agent()).await;
    let mail = &html_mail(&app, &sink, &report_id).await;
    let html = mail.body("text/html").unwrap();
    let cid = html
        .split("src=\"cid:")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("the HTML shows no inline image: {html}"));
    let (kind, bytes) = mail.inline(cid).expect("the image the HTML names is in the message");
    assert_eq!(kind, "image/png");
    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("its pixels decode");
    assert_eq!(
        (frame.width, frame.height),
        (1280, 560),
        "640 × 280 at twice the density"
    );
    // The bars (the chart's first colour, #2563EB) are drawn: the report's three reps.
    let channels = frame.color_type.samples();
    let bar = pixels[..frame.buffer_size()]
        .chunks(channels)
        .filter(|p| p[..3] == [37, 99, 235])
        .count();
    assert!(bar > 5_000, "{bar} pixels of bars");
    assert_eq!(mail.content_types().iter().filter(|t| *t == "image/png").count(), 1);
}

#[tokio::test]
async fn an_empty_rendering_fails_the_run_and_sends_nothing() {
    let app = world().await;
    let sink = SmtpSink::start().await;
    let mut query = by_agent();
    query["range"] = json!({"start": "2025-01-01", "end": "2025-02-01"});
    let report_id = report(&app, query).await;
    let id = create(&app, &schedule(&report_id, json!(["boss@elsewhere.test"]), "xlsx")).await;
    app.post(&format!("/api/v1/schedules/{id}/run"), &app.key, &json!({}))
        .await;
    let outcome = worker(&app, &sink).run_once(None).await.unwrap();
    let Outcome::Retrying { error, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(error.contains("came out empty"), "{error}");
    let (_, runs) = app.get(&format!("/api/v1/schedules/{id}/runs")).await;
    assert_eq!(runs["runs"][0]["status"], "pending", "retried later: {runs}");
    assert!(runs["runs"][0]["error"].as_str().unwrap().contains("came out empty"));
    assert!(runs["runs"][0]["next_attempt"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sink.received().is_empty(), "no blank e-mail");
}

#[tokio::test]
async fn due_occurrences_become_runs_once_and_missed_ones_run_once_late() {
    let app = world().await;
    let report_id = report(&app, by_agent()).await;
    let id = create(&app, &schedule(&report_id, json!(["boss@elsewhere.test"]), "pdf")).await;
    let now = jiff::Timestamp::now().as_second();
    // Nothing due yet (created now; the next Monday 08:00 London is ahead).
    assert_eq!(dialboard::schedules::tick(&app.store, now).await.unwrap(), 0);
    // Three weeks later (the server was down): three Mondays missed, one run, late.
    let later = now + 21 * 86_400;
    assert_eq!(dialboard::schedules::tick(&app.store, later).await.unwrap(), 1);
    assert_eq!(
        dialboard::schedules::tick(&app.store, later).await.unwrap(),
        0,
        "once per occurrence"
    );
    let (_, runs) = app.get(&format!("/api/v1/schedules/{id}/runs")).await;
    let runs = runs["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["late"], true);
    let due: jiff::Timestamp = runs[0]["scheduled_for"].as_str().unwrap().parse().unwrap();
    let local = due.to_zoned(jiff::tz::TimeZone::get("Europe/London").unwrap());
    assert_eq!(
        (local.weekday(), local.hour(), local.minute()),
        (jiff::civil::Weekday::Monday, 8, 0)
    );
    // Paused: nothing more is due.
    let mut body = schedule(&report_id, json!(["boss@elsewhere.test"]), "pdf");
    body["paused"] = json!(true);
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/schedules/{id}"),
            &app.key,
            Some(&body),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        dialboard::schedules::tick(&app.store, later + 30 * 86_400)
            .await
            .unwrap(),
        0
    );
}

/// The ticker reads only schedules whose stored next run has come: one with no stored next run
/// (saved before they were stored) is not even read until the start-up pass stores it, after
/// which its missed occurrences run once, late; an edit stores the next run again.
#[tokio::test]
async fn the_ticker_reads_stored_next_runs_which_start_up_fills_in_and_edits_move() {
    let app = world().await;
    let report_id = report(&app, by_agent()).await;
    let body = schedule(&report_id, json!(["boss@elsewhere.test"]), "pdf");
    let id = create(&app, &body).await;
    let now = jiff::Timestamp::now().as_second();
    let later = now + 21 * 86_400;
    dialboard::schedules::forget(&app.store, app.tenant_id, &id)
        .await
        .unwrap();
    assert_eq!(
        dialboard::schedules::tick(&app.store, later).await.unwrap(),
        0,
        "not read without a stored next run"
    );
    dialboard::schedules::plan_all(&app.store).await.unwrap();
    assert_eq!(dialboard::schedules::tick(&app.store, later).await.unwrap(), 1);
    let (_, runs) = app.get(&format!("/api/v1/schedules/{id}/runs")).await;
    assert_eq!(runs["runs"][0]["late"], true, "{runs}");
    // Moved past `later`: nothing due until the next Monday after it.
    assert_eq!(dialboard::schedules::tick(&app.store, later + 60).await.unwrap(), 0);
    // Edited to run daily: stored as due the day after the last run (what it is counted from).
    let last: jiff::Timestamp = runs["runs"][0]["scheduled_for"].as_str().unwrap().parse().unwrap();
    let mut daily = body.clone();
    daily["recurrence"] = json!({"frequency": "daily", "time": "08:00", "timezone": "Europe/London"});
    let (status, saved) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/schedules/{id}"),
            &app.key,
            Some(&daily),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    let stored = dialboard_store::alerting::run(app.store.as_ref(), |db| {
        dialboard_store::schedules::due(db, i64::MAX / 2, 10)
    })
    .await
    .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let after = stored[0].next_run - last.as_second();
    assert!(
        (82_800..=90_000).contains(&after),
        "a day after the last run: {after} s"
    );
}

#[tokio::test]
async fn errors_name_the_field_and_a_rep_schedules_only_for_themselves() {
    let app = world().await;
    let report_id = report(&app, by_agent()).await;
    let bad = json!({"name": "", "report_id": report_id, "format": "docx", "recipients": ["not-an-address", {"team": 3}],
                     "recurrence": {"frequency": "monthly", "day_of_month": 31, "time": "25:00", "timezone": "Mars/Base"},
                     "webhook_id": 5, "colour": "red"});
    let (status, err) = app.post("/api/v1/schedules", &app.key, &bad).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "invalid_schedule");
    let fields = error_fields(&err);
    for f in [
        "colour",
        "name",
        "recurrence.timezone",
        "recurrence.day_of_month",
        "format",
        "webhook_id",
        "recipients[0]",
        "recipients[1]",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
    let rep_key = dialboard::cli::create_key(
        &app.store,
        app.tenant_id,
        vec![dialboard_store::Scope::Read],
        Some("a1".into()),
        None,
    )
    .await
    .unwrap();
    let (status, err) = app
        .post(
            "/api/v1/schedules",
            &rep_key,
            &schedule(&report_id, json!([{"team": "t1"}, "x@y.test"]), "csv"),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(error_fields(&err), ["recipients[0]", "recipients[1]"]);
    let (_, other) = app.other_tenant("globex", false).await;
    let id = create(&app, &schedule(&report_id, json!(["boss@elsewhere.test"]), "csv")).await;
    let (status, _) = app
        .post(&format!("/api/v1/schedules/{id}/run"), &other, &json!({}))
        .await;
    assert_eq!(status, 404, "another tenant does not see it");
}

#[tokio::test]
async fn a_schedule_says_when_it_runs_next_and_a_paused_one_does_not() {
    // Monday 2026-03-02 12:00 UTC: Monday's 08:00 in London has passed, the next is a week on.
    let now = Arc::new(std::sync::atomic::AtomicI64::new(1_772_452_800));
    let app = TestApp::spawn_at("UTC", now.clone()).await;
    let report_id = report(&app, by_agent()).await;
    let id = create(&app, &schedule(&report_id, json!(["boss@elsewhere.test"]), "csv")).await;
    let (_, listed) = app.get("/api/v1/schedules").await;
    assert_eq!(listed["schedules"][0]["next_run"], "2026-03-09T08:00:00Z", "{listed}");
    // After the clocks go forward (29 March), 08:00 in London is 07:00 UTC.
    now.store(1_774_785_600, std::sync::atomic::Ordering::Relaxed); // 2026-03-29T12:00:00Z
    let (_, one) = app.get(&format!("/api/v1/schedules/{id}")).await;
    assert_eq!(one["next_run"], "2026-03-30T07:00:00Z", "{one}");
    let mut paused = schedule(&report_id, json!(["boss@elsewhere.test"]), "csv");
    paused["paused"] = json!(true);
    let (status, saved) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/schedules/{id}"),
            &app.key,
            Some(&paused),
        )
        .await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["next_run"], Value::Null, "{saved}");
}

#[tokio::test]
async fn an_admins_edit_leaves_the_schedule_running_as_its_owner() {
    let app = world().await;
    let sink = SmtpSink::start().await;
    let report_id = report(&app, by_agent()).await;
    // A manager of t1 (a key bound to the team) schedules the report to an outside address.
    let manager = dialboard::cli::create_key(
        &app.store,
        app.tenant_id,
        vec![dialboard_store::Scope::Read],
        None,
        Some("t1".into()),
    )
    .await
    .unwrap();
    let body = schedule(&report_id, json!(["boss@elsewhere.test"]), "csv");
    let (status, created) = app.post("/api/v1/schedules", &manager, &body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    // An admin renames it, then restores the first version: it is still the manager's.
    let mut renamed = body.clone();
    renamed["name"] = json!("Renamed by the admin");
    let path = format!("/api/v1/schedules/{id}");
    let (status, edited) = app.send(reqwest::Method::PUT, &path, &app.key, Some(&renamed)).await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        (&edited["owner"], &edited["run_as"]),
        (&created["owner"], &created["run_as"])
    );
    let (status, restored) = app
        .post(&format!("{path}/versions/1/restore"), &app.key, &json!({}))
        .await;
    assert_eq!(status, 200, "{restored}");
    assert_eq!(restored["run_as"], created["run_as"]);

    let (status, run) = app.post(&format!("{path}/run"), &app.key, &json!({})).await;
    assert_eq!(status, 202, "{run}");
    let outcome = worker(&app, &sink).run_once(None).await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    let mails = sink.wait_for(1).await;
    let rows = csv_rows(&mails[0].attachment("Calls_per_rep.csv").unwrap().1);
    let (_, as_manager) = app.post("/api/v1/query", &manager, &by_agent()).await;
    let agents: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(agents, ["a1", "a2"], "the manager's reach, t1's reps: {rows:?}");
    assert_eq!(rows.len(), as_manager["rows"].as_array().unwrap().len());
}
