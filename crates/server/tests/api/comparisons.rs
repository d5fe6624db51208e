//! Running periods compare like for like (SPEC §4): at any time of day, today until now is
//! compared with yesterday until the same local time, and every answer states both ranges.
//! Berlin moves to summer time on 2026-03-29, so that day is 23 hours long.

use crate::helpers::TestApp;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

fn instant(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn call(id: &str, started: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": id, "agent_id": "a1", "team_id": "t1", "disposition": "Connected",
        "started_at": started, "talk_seconds": 60})
}

#[tokio::test]
async fn today_is_compared_with_yesterday_until_the_same_time() {
    let now = Arc::new(AtomicI64::new(instant("2026-03-29T11:07:00+02:00")));
    let app = TestApp::spawn_at("Europe/Berlin", now.clone()).await;
    app.events(json!([
        call("y1", "2026-03-28T09:00:00+01:00"),
        call("y2", "2026-03-28T10:30:00+01:00"),
        call("y3", "2026-03-28T11:10:00+01:00"),
        call("y4", "2026-03-28T15:00:00+01:00"),
        call("t1", "2026-03-29T10:00:00+02:00"),
    ]))
    .await;
    let today = json!({"measures": ["total_calls"], "range": {"preset": "today"}, "compare": "previous_period"});
    for (at, until, before) in [
        ("2026-03-29T09:30:00+02:00", "2026-03-28T09:45:00+01:00", 1),
        ("2026-03-29T11:07:00+02:00", "2026-03-28T11:15:00+01:00", 3),
        ("2026-03-29T23:50:00+02:00", "2026-03-29T00:00:00+01:00", 4),
    ] {
        now.store(instant(at), Ordering::Relaxed);
        let (status, result) = app.post("/api/v1/query", &app.key, &today).await;
        assert_eq!(status, 200, "{result}");
        assert_eq!(
            result["range"],
            json!({"start": "2026-03-29T00:00:00+01:00", "end": "2026-03-30T00:00:00+02:00"}),
            "at {at}"
        );
        assert_eq!(
            result["comparison"]["range"],
            json!({"start": "2026-03-28T00:00:00+01:00", "end": until}),
            "at {at}"
        );
        assert_eq!(
            result["comparison"]["totals"]["total_calls"], before,
            "at {at}: {result}"
        );
    }

    // The overview's KPIs compare the same way and say with what.
    now.store(instant("2026-03-29T11:07:00+02:00"), Ordering::Relaxed);
    let (status, metrics) = app.get("/api/v1/analytics/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    assert_eq!(metrics["range"]["start"], "2026-03-29T00:00:00+01:00");
    assert_eq!(
        metrics["comparison"]["range"],
        json!({"start": "2026-03-28T00:00:00+01:00", "end": "2026-03-28T11:15:00+01:00"})
    );
    let calls = &metrics["kpis"][0];
    assert_eq!(
        (&calls["metric"], &calls["value"], &calls["previous"]),
        (&json!("total_calls"), &json!(1), &json!(3))
    );
    let (status, series) = app.get("/api/v1/analytics/call-metrics").await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(series["comparison"]["range"]["end"], "2026-03-28T11:15:00+01:00");
    assert_eq!(series["comparison"]["totals"]["total_calls"], 3);

    // A rep's weekly scorecard on Thursday compares with last week until Thursday, same time.
    now.store(instant("2026-03-26T15:00:00+01:00"), Ordering::Relaxed);
    let (status, card) = app
        .get("/api/v1/analytics/agent-scorecard/a1?period=weekly&date=2026-03-26")
        .await;
    assert_eq!(status, 200, "{card}");
    assert_eq!(
        card["comparison"]["range"],
        json!({"start": "2026-03-16T00:00:00+01:00", "end": "2026-03-19T15:15:00+01:00"})
    );
}
