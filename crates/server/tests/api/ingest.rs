use crate::helpers::{add_key, call, TestApp};
use dialboard_store::Scope;
use serde_json::json;

#[tokio::test]
async fn invalid_events_are_rejected_by_field_and_valid_ones_kept() {
    let app = TestApp::spawn("UTC").await;
    let body = app
        .events(json!([
            call("e1", "c1", "Connected", "2026-03-02T10:00:00Z"),
            {"id": "e2", "type": "call", "call_id": "c2", "agent_id": "a1", "disposition": "Maybe",
             "started_at": "2026-03-02T10:00:00Z", "talk_seconds": -5},
            {"id": "e3", "type": "call", "call_id": "c3", "agent_id": "a1", "disposition": "Busy", "started_at": "noon"},
            {"id": "e4", "type": "fax"},
            {"type": "csat", "score": 3, "at": "2026-03-02T10:00:00Z"},
            {"id": "e6", "type": "call", "call_id": "c6", "agent_id": "a1", "disposition": "Busy",
             "started_at": "2026-03-02T10:00:00Z", "wait_seconds": 2.5},
        ]))
        .await;
    assert_eq!(body["accepted"], 1);
    let rejected = body["rejected"].as_array().unwrap();
    let fields = |i: usize| -> Vec<&str> {
        rejected[i]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect()
    };
    assert_eq!(rejected.len(), 5);
    assert_eq!(
        (rejected[0]["index"].clone(), rejected[0]["id"].clone()),
        (json!(1), json!("e2"))
    );
    assert_eq!(fields(0), vec!["disposition", "talk_seconds"]);
    assert!(
        rejected[0]["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("No Answer"),
        "lists the known dispositions"
    );
    assert_eq!(fields(1), vec!["started_at"]);
    assert_eq!(fields(2), vec!["type"]);
    assert_eq!((rejected[3]["id"].clone(), fields(3)), (json!(null), vec!["id"]));
    assert_eq!(fields(4), vec!["wait_seconds"]);
    assert_eq!(app.totals(&["total_calls"], json!({})).await["total_calls"], 1);
}

#[tokio::test]
async fn duplicates_change_nothing_even_with_other_content() {
    let app = TestApp::spawn("UTC").await;
    let first = app
        .events(json!([call("e1", "c1", "Connected", "2026-03-02T10:00:00Z")]))
        .await;
    assert_eq!(
        (first["accepted"].clone(), first["duplicates"].clone()),
        (json!(1), json!(0))
    );
    let again = app
        .events(json!([
            call("e1", "c1", "Busy", "2026-03-05T10:00:00Z"),
            call("e1", "c1", "Busy", "2026-03-05T10:00:00Z")
        ]))
        .await;
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone()),
        (json!(0), json!(2))
    );
    let t = app.totals(&["total_calls", "connected_calls"], json!({})).await;
    assert_eq!(
        (t["total_calls"].clone(), t["connected_calls"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn a_correction_moves_a_call_between_dispositions_and_stale_versions_do_not() {
    let app = TestApp::spawn("America/New_York").await;
    let mut v1 = call("e1", "c1", "Interested", "2026-03-02T15:00:00Z");
    v1["talk_seconds"] = json!(100);
    v1["updated_at"] = json!("2026-03-02T15:10:00Z");
    let mut v2 = v1.clone();
    v2["id"] = json!("e2");
    v2["disposition"] = json!("Meeting Booked");
    v2["updated_at"] = json!("2026-03-02T16:00:00Z");
    let mut stale = v1.clone();
    stale["id"] = json!("e0");
    stale["disposition"] = json!("No Answer");
    stale["updated_at"] = json!("2026-03-02T15:05:00Z");
    app.events(json!([v1])).await;
    let before = app
        .totals(&["meetings_booked", "positive_disposition_rate"], json!({}))
        .await;
    assert_eq!(before["meetings_booked"], 0);
    app.events(json!([v2])).await;
    app.events(json!([stale])).await; // arrives last, but is older: changes nothing
    let after = app
        .totals(
            &["total_calls", "meetings_booked", "connected_calls", "median_talk_time"],
            json!({}),
        )
        .await;
    assert_eq!(
        after,
        json!({"total_calls": 1, "meetings_booked": 1, "connected_calls": 1, "median_talk_time": 100.0})
    );
    let by_disposition = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "dimensions": ["disposition"], "range": {"preset": "all_time"}}),
        )
        .await
        .1;
    assert_eq!(by_disposition["rows"], json!([["Meeting Booked", 1]]));
    let (status, detail) = app.get("/api/v1/calls/c1").await;
    assert_eq!(status, 200);
    assert_eq!(detail["disposition"], "Meeting Booked");
    let versions = detail["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions.iter().filter(|v| v["current"] == true).count(), 1);
}

#[tokio::test]
async fn a_correction_that_arrives_before_the_original_wins() {
    let app = TestApp::spawn("UTC").await;
    let mut newer = call("e2", "c1", "Meeting Booked", "2026-03-02T15:00:00Z");
    newer["updated_at"] = json!("2026-03-02T16:00:00Z");
    let mut older = call("e1", "c1", "No Answer", "2026-03-02T15:00:00Z");
    older["updated_at"] = json!("2026-03-02T15:01:00Z");
    app.events(json!([newer, older])).await;
    let t = app.totals(&["total_calls", "meetings_booked"], json!({})).await;
    assert_eq!(t, json!({"total_calls": 1, "meetings_booked": 1}));
}

#[tokio::test]
async fn ndjson_bodies_and_body_errors() {
    let app = TestApp::spawn("UTC").await;
    let ndjson = format!(
        "{}\n{{not json\n\n{}\n",
        call("e1", "c1", "Busy", "2026-03-02T10:00:00Z"),
        call("e2", "c2", "Busy", "2026-03-02T10:00:00Z")
    );
    let r = app
        .client
        .post(format!("{}/api/v1/events", app.url))
        .bearer_auth(&app.key)
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 1);
    for bad in ["this is not json", "{\"id\": 1}", "[1, 2"] {
        let r = app
            .client
            .post(format!("{}/api/v1/events", app.url))
            .bearer_auth(&app.key)
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "bad_request");
    }
    assert_eq!(
        app.totals(&["total_calls"], json!({})).await["total_calls"],
        2,
        "bad bodies stored nothing"
    );
    let many: Vec<_> = (0..10_001)
        .map(|i| call(&format!("x{i}"), &format!("x{i}"), "Busy", "2026-03-02T10:00:00Z"))
        .collect();
    let (status, body) = app.post("/api/v1/events", &app.key, &json!(many)).await;
    assert_eq!((status, body["error"]["code"].clone()), (413, json!("too_many_events")));
    let huge = "x".repeat(11 * 1024 * 1024);
    let r = app
        .client
        .post(format!("{}/api/v1/events", app.url))
        .bearer_auth(&app.key)
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
}

#[tokio::test]
async fn keys_decide_access() {
    let app = TestApp::spawn("UTC").await;
    let read_only = add_key(&app.store, app.tenant_id, vec![Scope::Read], None).await;
    let ingest_only = add_key(&app.store, app.tenant_id, vec![Scope::Ingest], None).await;
    let events = json!([call("e1", "c1", "Busy", "2026-03-02T10:00:00Z")]);
    assert_eq!(app.post("/api/v1/events", "nonsense", &events).await.0, 401);
    let r = app
        .client
        .post(format!("{}/api/v1/events", app.url))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (status, body) = app.post("/api/v1/events", &read_only, &events).await;
    assert_eq!((status, body["error"]["code"].clone()), (403, json!("forbidden")));
    assert_eq!(app.post("/api/v1/events", &ingest_only, &events).await.0, 200);
    let q = json!({"measures": ["total_calls"], "range": {"preset": "all_time"}});
    assert_eq!(app.post("/api/v1/query", &ingest_only, &q).await.0, 403);
    assert_eq!(app.post("/api/v1/query", &read_only, &q).await.0, 200);
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let app = TestApp::spawn("UTC").await;
    let (_, other_key) = app.other_tenant("globex", false).await;
    app.events(json!([call("e1", "c1", "Busy", "2026-03-02T10:00:00Z")]))
        .await;
    // The same event id in another tenant is not a duplicate.
    let (_, body) = app
        .post(
            "/api/v1/events",
            &other_key,
            &json!([call("e1", "c9", "Connected", "2026-03-02T10:00:00Z")]),
        )
        .await;
    assert_eq!(body["accepted"], 1);
    let q = json!({"measures": ["total_calls", "connected_calls"], "range": {"preset": "all_time"}});
    assert_eq!(
        app.post("/api/v1/query", &other_key, &q).await.1["totals"],
        json!({"total_calls": 1, "connected_calls": 1})
    );
    assert_eq!(
        app.post("/api/v1/query", &app.key, &q).await.1["totals"],
        json!({"total_calls": 1, "connected_calls": 0})
    );
    let r = app
        .client
        .get(format!("{}/api/v1/calls/c1", app.url))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
