//! Retention and erasure through HTTP (SPEC §12): a purge by the tenant's policy leaves daily
//! answers unchanged, the drill-down says purged, purged records cannot come back, the dry run
//! counts what the purge deletes, a new policy is announced before its first purge, and
//! erasing a contact leaves every metric as it was and no trace of their data in the file.

use crate::helpers::{error_fields, run_the_queued_job, TestApp};
use serde_json::{json, Value};

const DAY: i64 = 86_400;

fn date(days_ago: i64) -> String {
    let t = jiff::Timestamp::now().as_second() - days_ago * DAY;
    jiff::Timestamp::from_second(t).unwrap().to_string()[..10].to_string()
}

fn at(days_ago: i64, hour: u32) -> String {
    format!("{}T{hour:02}:10:00Z", date(days_ago))
}

fn call(id: &str, call_id: &str, agent: &str, disposition: &str, started: &str, talk: i64) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": agent, "team_id": "t1", "campaign_id": "spring",
        "disposition": disposition, "started_at": started, "talk_seconds": talk, "contact_id": format!("ct-{call_id}"),
        "prospect": {"name": format!("Prospect {call_id}"), "phone": "+15550100"}, "notes": "called back"})
}

/// Calls 120 days ago (past raw, 15-minute and hourly retention) and 2 days ago.
fn history() -> Value {
    let mut events = Vec::new();
    for i in 0..12 {
        let (agent, disposition) = (
            ["a1", "a2", "a3"][i % 3],
            ["Meeting Booked", "No Answer", "Busy"][i % 3],
        );
        events.push(call(
            &format!("old-{i}"),
            &format!("o{i}"),
            agent,
            disposition,
            &at(120 + (i as i64 % 2), 9 + i as u32),
            30 + i as i64,
        ));
        events.push(call(
            &format!("new-{i}"),
            &format!("n{i}"),
            agent,
            disposition,
            &at(2, 9 + i as u32),
            40,
        ));
    }
    Value::Array(events)
}

async fn daily(app: &TestApp) -> Value {
    let body = json!({"measures": ["total_calls", "connected_calls", "avg_talk_time", "meetings_booked"],
        "dimensions": ["agent"], "granularity": "day",
        "range": {"start": date(125), "end": date(110)}, "timezone": "UTC"});
    let (status, answer) = app.post("/api/v1/query", &app.key, &body).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn put_retention(app: &TestApp, retention: Value) -> (u16, Value) {
    app.send(
        reqwest::Method::PUT,
        "/api/v1/settings",
        &app.key,
        Some(&json!({"retention": retention})),
    )
    .await
}

#[tokio::test]
async fn a_purge_keeps_daily_answers_and_refuses_purged_records_back() {
    let app = TestApp::spawn("UTC").await;
    // Announced with no wait, so the first run purges.
    let (status, body) = put_retention(
        &app,
        json!({"raw_days": 90, "quarter_cells_days": 7, "hour_cells_days": 90,
        "day_cells_days": 730, "pipeline_days": 1095, "notice_hours": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.events(history()).await;
    let before = daily(&app).await;
    assert_eq!(before["totals"]["total_calls"], json!(12), "{before}");

    let (status, preview) = app.get("/api/v1/retention/dry-run").await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["deletes"]["raw_records"], json!(12), "{preview}");
    assert_eq!(
        preview["deletes"]["raw_events"],
        json!(0),
        "events were received now: {preview}"
    );
    assert!(preview["deletes"]["quarter_cells"].as_i64().unwrap() > 0, "{preview}");
    assert!(preview["deletes"]["hour_cells"].as_i64().unwrap() > 0, "{preview}");
    assert_eq!(preview["deletes"]["day_cells"], json!(0), "{preview}");

    let (status, job) = app.post("/api/v1/retention/purge", &app.key, &json!({})).await;
    assert_eq!(status, 202, "{job}");
    run_the_queued_job(&app.store).await;
    let (_, purges) = app.get("/api/v1/retention/purges").await;
    let result = &purges["purges"][0]["result"];
    assert_eq!(result["status"], json!("purged"), "{purges}");
    assert_eq!(
        result["deleted"], preview["deletes"],
        "the dry run counts what the purge deletes"
    );
    let (_, again) = app.get("/api/v1/retention/dry-run").await;
    assert!(
        again["deletes"].as_object().unwrap().values().all(|n| n == 0),
        "{again}"
    );

    // The daily answer comes from the day cells that remain.
    assert_eq!(daily(&app).await, before);

    // The drill-down over the purged range says so; over a kept range it does not.
    let (_, old) = app
        .get(&format!("/api/v1/calls?start={}&end={}", date(125), date(110)))
        .await;
    assert_eq!(old["calls"], json!([]), "{old}");
    assert_eq!(
        old["purged_before"].as_str().map(|s| &s[..10]),
        Some(date(90).as_str()),
        "{old}"
    );
    let (_, new) = app
        .get(&format!("/api/v1/calls?start={}&end={}", date(3), date(0)))
        .await;
    assert_eq!(new["calls"].as_array().unwrap().len(), 12, "{new}");
    assert!(new.get("purged_before").is_none(), "{new}");

    // A purged event sent again, and a correction of a purged call, are refused by field.
    let resent = history()[0].clone();
    let mut correction = resent.clone();
    correction["id"] = json!("old-0-fix");
    correction["disposition"] = json!("Busy");
    let (status, answer) = app.post("/api/v1/events", &app.key, &json!([resent, correction])).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], json!(0), "{answer}");
    let rejected = answer["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{answer}");
    for r in rejected {
        assert_eq!(r["errors"][0]["field"], json!("started_at"), "{answer}");
        assert!(
            r["errors"][0]["message"].as_str().unwrap().contains("purged"),
            "{answer}"
        );
    }
    assert_eq!(daily(&app).await, before, "nothing counted twice");

    let (_, audit) = app.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"retention_purge") && actions.contains(&"retention_notice"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_new_policy_is_announced_before_its_first_purge() {
    let app = TestApp::spawn("UTC").await;
    app.events(history()).await;
    // The default policy waits 24 hours after its notice.
    let (status, job) = app.post("/api/v1/retention/purge", &app.key, &json!({})).await;
    assert_eq!(status, 202, "{job}");
    run_the_queued_job(&app.store).await;
    let (_, purges) = app.get("/api/v1/retention/purges").await;
    assert_eq!(
        purges["purges"][0]["result"]["status"],
        json!("waiting_for_notice"),
        "{purges}"
    );
    let (_, old) = app
        .get(&format!("/api/v1/calls?start={}&end={}", date(125), date(110)))
        .await;
    assert_eq!(old["calls"].as_array().unwrap().len(), 12, "nothing purged yet: {old}");
    let (_, audit) = app.get("/api/v1/audit").await;
    let notice = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "retention_notice")
        .cloned();
    let notice = notice.unwrap_or_else(|| panic!("a notice in {audit}"));
    assert_eq!(notice["detail"]["would_delete"]["raw_records"], json!(12), "{notice}");
    // The day's job is queued once however many nodes queue it.
    assert_eq!(
        dialboard::retention::queue_daily(&app.store, dialboard::jobs::now_ms())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        dialboard::retention::queue_daily(&app.store, dialboard::jobs::now_ms())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_policy_that_drops_summaries_before_their_rows_is_refused_by_field() {
    let app = TestApp::spawn("UTC").await;
    let (status, body) = put_retention(&app, json!({"raw_days": 0, "hour_cells_days": 3})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_fields(&body),
        vec!["retention.raw_days", "retention.hour_cells_days"],
        "{body}"
    );
    let (status, body) = put_retention(&app, json!({"days": 3})).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn erasing_a_contact_keeps_every_metric_and_leaves_no_trace() {
    let app = TestApp::spawn("UTC").await;
    let secret = json!({"name": "Zelda Quixote", "phone": "+15550199", "company": "Xylophone Corp"});
    let mut first = call("e1", "c1", "a1", "No Answer", &at(1, 10), 0);
    first["contact_id"] = json!("ct-9");
    first["prospect"] = secret.clone();
    first["notes"] = json!("prefers mornings, wife Ximena");
    first["recording_url"] = json!("https://rec.example/zq-0001.wav");
    let mut fix = first.clone();
    fix["id"] = json!("e2");
    fix["disposition"] = json!("Meeting Booked");
    fix["talk_seconds"] = json!(300);
    let other = call("e3", "c2", "a2", "Busy", &at(1, 11), 0);
    app.events(json!([first, fix, other])).await;
    let query = json!({"measures": ["total_calls", "connected_calls", "meetings_booked", "avg_talk_time"],
        "dimensions": ["agent"], "range": {"start": date(3), "end": date(0)}, "timezone": "UTC"});
    let (_, before) = app.post("/api/v1/query", &app.key, &query).await;

    let (status, erased) = app
        .send(reqwest::Method::DELETE, "/api/v1/contacts/ct-9", &app.key, None)
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["events_erased"], json!(2), "both versions: {erased}");

    let (_, after) = app.post("/api/v1/query", &app.key, &query).await;
    assert_eq!(after, before);
    let (_, detail) = app.get("/api/v1/calls/c1").await;
    let text = detail.to_string();
    assert!(
        detail["disposition"] == json!("Meeting Booked") || text.contains("Meeting Booked"),
        "{detail}"
    );
    let csv = app
        .client
        .get(format!(
            "{}/api/v1/calls?format=csv&start={}&end={}",
            app.url,
            date(3),
            date(0)
        ))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains("c1"), "{csv}");
    let (_, other_detail) = app.get("/api/v1/calls/c2").await;
    assert!(
        other_detail.to_string().contains("Prospect c2"),
        "another contact keeps theirs: {other_detail}"
    );
    // No trace in the answers, nor anywhere in the database's files.
    let files: Vec<Vec<u8>> = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", app.db_path().display())).ok())
        .collect();
    for needle in ["Zelda Quixote", "+15550199", "Xylophone Corp", "Ximena", "zq-0001"] {
        assert!(
            !text.contains(needle) && !csv.contains(needle),
            "{needle} in {text} or {csv}"
        );
        for bytes in &files {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} in the database file"
            );
        }
    }
    let (_, audit) = app.get("/api/v1/audit").await;
    let entries = audit["entries"].as_array().unwrap();
    let erasure = entries.iter().find(|e| e["action"] == "contact_erased");
    assert_eq!(erasure.map(|e| &e["target"]), Some(&json!("ct-9")), "{audit}");
}

#[tokio::test]
async fn a_new_policys_notice_is_mailed_to_the_tenants_admins() {
    let sink = crate::smtp::SmtpSink::start().await;
    let mailer = dialboard::mail::Mailer::new(&sink.url(), "Dialboard <board@acme.test>").unwrap();
    let app = TestApp::spawn("UTC").await;
    app.events(history()).await;
    for (email, role, teams) in [
        ("owner@acme.test", "admin", json!([])),
        ("lead@acme.test", "manager", json!(["t1"])),
    ] {
        let body = json!({"email": email, "password": "Quartz-lantern-93-orbit", "role": role, "teams": teams});
        let (status, user) = app.post("/api/v1/users", &app.key, &body).await;
        assert_eq!(status, 201, "{user}");
    }
    let first = dialboard::retention::run(
        &app.store,
        Some(&mailer),
        app.tenant_id,
        "test",
        dialboard::jobs::now_ms(),
    )
    .await
    .unwrap();
    assert_eq!(first["status"], json!("waiting_for_notice"), "{first}");
    let mail = sink.wait_for(1).await;
    assert_eq!(mail[0].recipients(), ["owner@acme.test"], "admins only");
    let text = mail[0].body("text/plain").unwrap();
    assert!(text.contains("raw_records: 12"), "what the first purge deletes: {text}");
    // The same policy is announced once.
    dialboard::retention::run(
        &app.store,
        Some(&mailer),
        app.tenant_id,
        "test",
        dialboard::jobs::now_ms(),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(sink.received().len(), 1);
}
