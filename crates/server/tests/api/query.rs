use crate::helpers::{add_key, TestApp};
use dialboard_store::Scope;
use serde_json::{json, Value};

fn calls_on_a_dst_day() -> Value {
    // 2026-03-08 is 23 hours long in New York. Calls every 30 minutes from 00:15 local.
    let mut events = Vec::new();
    for i in 0..46 {
        let t = jiff::Timestamp::from_second(1_772_946_900 + i * 1800).unwrap(); // 2026-03-08T05:15Z = 00:15 EST
        events.push(
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"),
            "agent_id": format!("a{}", i % 3), "team_id": "t1",
            "disposition": if i % 4 == 0 { "Connected" } else { "No Answer" }, "started_at": t.to_string(),
            "talk_seconds": if i % 4 == 0 { 60 + i } else { 0 }}),
        );
    }
    Value::Array(events)
}

#[tokio::test]
async fn spec_shaped_query_with_dst_day_buckets() {
    let app = TestApp::spawn("America/New_York").await;
    app.events(calls_on_a_dst_day()).await;
    let (status, body) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls", "connect_rate", "median_talk_time"], "dimensions": ["agent"],
                "granularity": "day", "range": {"start": "2026-03-08", "end": "2026-03-09"},
                "order_by": [["total_calls", "desc"]], "limit": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["columns"],
        json!(["agent", "time", "total_calls", "connect_rate", "median_talk_time"])
    );
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(body["rows"][0][1], "2026-03-08T00:00:00-05:00");
    assert_eq!(body["totals"]["total_calls"], 46, "a 23-hour day holds 46 half-hours");
    let hourly = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "granularity": "hour", "range": {"start": "2026-03-08", "end": "2026-03-09"}}),
        )
        .await
        .1;
    let rows = hourly["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 23);
    assert_eq!(rows[2][0], "2026-03-08T03:00:00-04:00", "02:00 does not exist that day");
    // The same calls seen from Kathmandu (+05:45).
    let kathmandu = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "dimensions": ["hour_of_day"], "timezone": "Asia/Kathmandu",
                "range": {"start": "2026-03-08", "end": "2026-03-10"}}),
        )
        .await
        .1;
    let first = &kathmandu["rows"][0];
    // 18:15Z and 18:45Z are 00:00 and 00:30 in Kathmandu; hour 0 sorts first.
    assert_eq!(first, &json!([0, 2]), "{kathmandu}");
}

#[tokio::test]
async fn compare_and_null_rates() {
    let app = TestApp::spawn("UTC").await;
    app.events(json!([
        {"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a1", "disposition": "Busy", "started_at": "2026-03-02T10:00:00Z"},
        {"id": "e2", "type": "call", "call_id": "c2", "agent_id": "a1", "disposition": "Connected", "started_at": "2026-03-09T10:00:00Z", "talk_seconds": 30},
        {"id": "e3", "type": "call", "call_id": "c3", "agent_id": "a1", "disposition": "Busy", "started_at": "2026-03-09T11:00:00Z"},
    ]))
    .await;
    let body = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls", "connect_rate", "avg_talk_time", "meeting_booked_rate"],
                "range": {"start": "2026-03-09", "end": "2026-03-16"}, "compare": "previous_period"}),
        )
        .await
        .1;
    assert_eq!(
        body["totals"],
        json!({"total_calls": 2, "connect_rate": 50.0, "avg_talk_time": 30.0, "meeting_booked_rate": 0.0})
    );
    assert_eq!(
        body["comparison"]["totals"],
        json!({"total_calls": 1, "connect_rate": 0.0, "avg_talk_time": null, "meeting_booked_rate": null})
    );
    assert_eq!(body["comparison"]["change_percent"]["total_calls"], 100.0);
    assert_eq!(body["comparison"]["change_percent"]["connect_rate"], Value::Null);
}

#[tokio::test]
async fn drill_down_pages_through_the_calls_behind_a_number() {
    let app = TestApp::spawn("America/New_York").await;
    app.events(calls_on_a_dst_day()).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = format!(
            "/api/v1/calls?start=2026-03-08&end=2026-03-09&disposition_category=connected&limit=5{}",
            cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default()
        );
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        for c in page["calls"].as_array().unwrap() {
            assert_eq!(c["disposition_category"], "connected");
            seen.push(c["call_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let connected = app.totals(&["connected_calls"], json!({})).await["connected_calls"]
        .as_i64()
        .unwrap();
    assert_eq!(seen.len() as i64, connected);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no call twice across pages");
    assert_eq!(
        app.get("/api/v1/calls?colour=red").await.1["error"]["fields"][0]["field"],
        "colour"
    );
    assert_eq!(app.get("/api/v1/calls?cursor=zz").await.0, 400);
    assert_eq!(app.get("/api/v1/calls/nope").await.0, 404);
}

#[tokio::test]
async fn an_agent_bound_key_sees_only_its_agent() {
    let app = TestApp::spawn("America/New_York").await;
    app.events(calls_on_a_dst_day()).await;
    let a1 = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let q = json!({"measures": ["total_calls"], "dimensions": ["agent"], "filters": {"agent": ["a0", "a2"]},
        "range": {"start": "2026-03-08", "end": "2026-03-09"}});
    let (status, body) = app.post("/api/v1/query", &a1, &q).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "filters.agent: \"a0\" is not visible to this credential"
    );
    let q = json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": "2026-03-08", "end": "2026-03-09"}});
    let body = app.post("/api/v1/query", &a1, &q).await.1;
    assert_eq!(
        body["rows"],
        json!([["a0", 16], ["a1", 15], ["a2", 15]]),
        "a leaderboard is an aggregate"
    );
    let q = json!({"measures": ["total_calls"], "range": {"start": "2026-03-08", "end": "2026-03-09"}});
    let body = app.post("/api/v1/query", &a1, &q).await.1;
    assert_eq!(
        body["totals"]["total_calls"], 46,
        "the tenant's aggregate is open to an agent"
    );
    let r = app
        .client
        .get(format!("{}/api/v1/calls/c0", app.url))
        .bearer_auth(&a1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404, "another agent's call is not visible");
}

#[tokio::test]
async fn operations_endpoints() {
    let app = TestApp::spawn("UTC").await;
    let text = |path: &str| {
        let url = format!("{}{path}", app.url);
        async move { reqwest::get(url).await.unwrap().text().await.unwrap() }
    };
    assert_eq!(text("/healthz").await, "ok");
    assert_eq!(text("/readyz").await, "ready");
    app.events(json!([{"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a", "disposition": "Busy", "started_at": "2026-03-02T10:00:00Z"}, {"id": "x"}])).await;
    let metrics = text("/metrics").await;
    assert!(metrics.contains("dialboard_events_accepted_total 1"), "{metrics}");
    assert!(metrics.contains("dialboard_events_rejected_total 1"));
    assert!(metrics.contains("dialboard_commit_duration_seconds_count 1"));
    assert_eq!(
        app.get("/api/v1/nowhere").await,
        (
            404,
            json!({"error": {"code": "not_found", "message": "no such endpoint"}})
        )
    );
}

#[tokio::test]
async fn all_time_drill_down_covers_every_call() {
    let app = TestApp::spawn("America/New_York").await;
    app.events(json!([
        {"id": "e1", "type": "call", "call_id": "old", "agent_id": "a1", "disposition": "Busy", "started_at": "2024-01-15T10:00:00Z"},
        {"id": "e2", "type": "call", "call_id": "new", "agent_id": "a1", "disposition": "Connected", "started_at": "2026-03-09T10:00:00Z"},
        {"id": "e3", "type": "call", "call_id": "other", "agent_id": "a2", "disposition": "Busy", "started_at": "2025-06-01T10:00:00Z"},
    ]))
    .await;
    let (status, page) = app.get("/api/v1/calls?preset=all_time&agent=a1").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["new", "old"], "{page}");
    let (_, page) = app.get("/api/v1/calls?preset=all_time").await;
    assert_eq!(page["calls"].as_array().unwrap().len(), 3, "{page}");
}
