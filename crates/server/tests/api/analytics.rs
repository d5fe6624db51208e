//! The analytics views on a fixed seeded dataset (the demo's generator, a fixed week): every
//! number checked against `/api/v1/query` for the same scope and range, and each view's JSON
//! against an insta snapshot (`cargo insta review`, or `INSTA_UPDATE=always`, to accept a change
//! after reading its diff).

use crate::helpers::TestApp;
use dialboard::demo;
use dialboard_engine::event::parse_event;
use serde_json::{json, Value};

/// 2026-03-13T21:00:00Z, a Friday afternoon in New York; the data covers the week before.
const NOW: i64 = 1_773_435_600;
const RANGE: &str = "start=2026-03-07&end=2026-03-14";
const Q_RANGE: (&str, &str) = ("2026-03-07", "2026-03-14");
const SEED: u64 = 11;

/// How many reps the demo's directory puts in `team`.
fn team_size(team: &str) -> usize {
    demo::reps(SEED).iter().filter(|r| r.team == team).count()
}

pub(crate) async fn seeded() -> TestApp {
    let app = TestApp::spawn(demo::TIMEZONE).await;
    let tenant = app.store.tenant(app.tenant_id).await.unwrap();
    let events = demo::history(SEED, 7, &tenant.clock, NOW);
    let parsed: Vec<_> = events
        .iter()
        .map(|e| parse_event(e, &tenant.taxonomy).unwrap())
        .collect();
    for chunk in parsed.chunks(10_000) {
        app.store.ingest(app.tenant_id, chunk.to_vec()).await.unwrap();
    }
    demo::add_directory(&app.store, app.tenant_id, SEED).await.unwrap();
    app
}

impl TestApp {
    async fn view(&self, path: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/analytics/{path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn query(&self, mut body: Value) -> Value {
        if body.get("range").is_none() {
            body["range"] = json!({"start": Q_RANGE.0, "end": Q_RANGE.1});
        }
        let (status, result) = self.post("/api/v1/query", &self.key, &body).await;
        assert_eq!(status, 200, "{body}: {result}");
        result
    }
}

#[track_caller]
fn same(label: &str, view: &Value, query: &Value) {
    let ok = match (view.as_f64(), query.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        // A count of 0 against a row /query leaves out (all its measures zero or null).
        _ => view == query || (view.as_f64() == Some(0.0) && query.is_null()),
    };
    assert!(ok, "{label}: view {view} but /query {query}");
}

/// The row of a query result whose first columns equal `key`.
fn row<'a>(result: &'a Value, key: &[Value]) -> Option<&'a Vec<Value>> {
    result["rows"]
        .as_array()?
        .iter()
        .filter_map(Value::as_array)
        .find(|r| r.iter().zip(key).all(|(a, b)| a == b))
}

fn cell(result: &Value, key: &[Value], measure: &str) -> Value {
    let columns = result["columns"].as_array().unwrap();
    let i = columns.iter().position(|c| c == measure).unwrap();
    row(result, key).map_or(Value::Null, |r| r[i].clone())
}

#[tokio::test]
async fn every_view_equals_the_query() {
    let app = seeded().await;

    // KPIs with their previous period.
    let m = app.view(&format!("metrics?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls", "connect_rate", "ticket_volume", "deals_won"], "compare": "previous_period"}))
        .await;
    for kpi in m["kpis"].as_array().unwrap() {
        let name = kpi["metric"].as_str().unwrap();
        if let Some(v) = q["totals"].get(name) {
            same(name, &kpi["value"], v);
            same(name, &kpi["previous"], &q["comparison"]["totals"][name]);
        }
    }

    // Volume series.
    let series = app.view(&format!("call-metrics?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls", "connect_rate"], "granularity": "day"}))
        .await;
    for point in series["series"].as_array().unwrap() {
        let key = [point["time"].clone()];
        same("series calls", &point["total_calls"], &cell(&q, &key, "total_calls"));
        same("series rate", &point["connect_rate"], &cell(&q, &key, "connect_rate"));
    }

    // Dispositions.
    let d = app.view(&format!("dispositions?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls"], "dimensions": ["disposition"]}))
        .await;
    let mut n = 0;
    for category in d["categories"].as_array().unwrap() {
        for x in category["dispositions"].as_array().unwrap() {
            same(
                "disposition",
                &x["total_calls"],
                &cell(&q, &[x["disposition"].clone()], "total_calls"),
            );
            n += 1;
        }
    }
    assert!(n >= 8, "the seeded week uses most dispositions");

    // Heatmap.
    let h = app.view(&format!("call-time-heatmap?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls", "connect_rate"], "dimensions": ["day_of_week", "hour_of_day"]}))
        .await;
    for c in h["cells"].as_array().unwrap() {
        let key = [c["day_of_week"].clone(), c["hour_of_day"].clone()];
        same("heatmap", &c["value"], &cell(&q, &key, "connect_rate"));
    }

    // Scorecard: the week's numbers, and the rank among the team by meetings, connects, calls.
    let agent = "maria.santos";
    let s = app
        .view(&format!("agent-scorecard/{agent}?period=weekly&date=2026-03-11"))
        .await;
    let week = json!({"start": "2026-03-09", "end": "2026-03-16"});
    let q = app
        .query(
            json!({"measures": ["total_calls", "connect_rate", "avg_call_score", "calls_per_hour", "meetings_booked"],
                      "filters": {"agent": [agent]}, "range": week, "compare": "previous_period"}),
        )
        .await;
    for (view_field, measure) in [
        ("total_calls", "total_calls"),
        ("connect_rate", "connect_rate"),
        ("avg_call_score", "avg_call_score"),
        ("calls_per_hour", "calls_per_hour"),
        ("meetings_booked", "meetings_booked"),
    ] {
        same(view_field, &s[view_field], &q["totals"][measure]);
    }
    let trend = s["avg_call_score"].as_f64().unwrap() - q["comparison"]["totals"]["avg_call_score"].as_f64().unwrap();
    same("score trend", &s["call_score_trend"], &json!(trend));
    let team = s["team_id"].as_str().unwrap();
    let board = app
        .query(
            json!({"measures": ["meetings_booked", "connected_calls", "total_calls"], "dimensions": ["agent"],
                      "filters": {"team": [team]}, "range": week,
                      "order_by": [["meetings_booked", "desc"], ["connected_calls", "desc"], ["total_calls", "desc"]]}),
        )
        .await;
    let position = board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r[0] == agent)
        .unwrap();
    assert_eq!(s["team_rank"], json!(position + 1));
    assert_eq!(
        s["team_size"],
        json!(team_size(team)),
        "the directory's reps of the team"
    );

    // Team leaderboard.
    let l = app
        .view(&format!("team-leaderboard/{team}?date=2026-03-12&sort_by=calls"))
        .await;
    let q = app
        .query(
            json!({"measures": ["total_calls", "connected_calls", "meetings_booked"], "dimensions": ["agent"],
                      "filters": {"team": [team]}, "range": {"start": "2026-03-12", "end": "2026-03-13"}}),
        )
        .await;
    let entries = l["entries"].as_array().unwrap();
    assert_eq!(entries.len(), team_size(team));
    for e in entries {
        let key = [e["agent_id"].clone()];
        same("board calls", &e["calls"], &cell(&q, &key, "total_calls"));
        same("board connects", &e["connects"], &cell(&q, &key, "connected_calls"));
        same("board meetings", &e["meetings"], &cell(&q, &key, "meetings_booked"));
        let spark: f64 = e["sparkline"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        same(
            "sparkline sums to the day",
            &json!(spark),
            &cell(&q, &key, "total_calls"),
        );
    }
    let calls: Vec<i64> = entries.iter().map(|e| e["calls"].as_i64().unwrap()).collect();
    assert!(calls.windows(2).all(|w| w[0] >= w[1]), "sorted by calls: {calls:?}");
    same("team total", &l["team_total_calls"], &q["totals"]["total_calls"]);

    // Rolling 7-day score: the score over the 7 days ending that day.
    let t = app.view(&format!("trends/{agent}?days=3")).await;
    for point in t["score"].as_array().unwrap() {
        let end: jiff::civil::Date = point["date"].as_str().unwrap().parse().unwrap();
        let start = end.checked_sub(jiff::Span::new().days(6)).unwrap();
        let q = app
            .query(json!({"measures": ["avg_call_score"], "filters": {"agent": [agent]},
                "range": {"start": start.to_string(), "end": end.tomorrow().unwrap().to_string()}}))
            .await;
        same(
            "rolling score",
            &point["rolling_7day_avg"],
            &q["totals"]["avg_call_score"],
        );
    }

    // Pipeline funnel by campaign, and the tenant's conversion funnel.
    let f = app.view(&format!("pipeline-funnel?group_by=campaign&{RANGE}")).await;
    let stages = app
        .query(json!({"measures": ["contacts_reached"], "dimensions": ["campaign", "stage"]}))
        .await;
    let money = app
        .query(json!({"measures": ["revenue", "revenue_per_call", "total_calls", "avg_days_to_meeting"], "dimensions": ["campaign"]}))
        .await;
    for g in f["groups"].as_array().unwrap() {
        let campaign = g["group"].clone();
        let key = std::slice::from_ref(&campaign);
        for stage in ["meeting_booked", "closed_won"] {
            same(
                stage,
                &g["stages"][stage],
                &cell(&stages, &[campaign.clone(), json!(stage)], "contacts_reached"),
            );
        }
        same(
            "revenue",
            &g["revenue"]["total_closed_won"],
            &cell(&money, key, "revenue"),
        );
        same(
            "per call",
            &g["revenue"]["revenue_per_call"],
            &cell(&money, key, "revenue_per_call"),
        );
        same("calls", &g["stages"]["calls"], &cell(&money, key, "total_calls"));
        same(
            "days to meeting",
            &g["avg_days_first_call_to_meeting"],
            &cell(&money, key, "avg_days_to_meeting"),
        );
        assert!(g["avg_days_first_call_to_meeting"].as_f64().is_some(), "{g}");
    }
    let c = app.view(&format!("conversion-funnel?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["contacts_reached"], "dimensions": ["stage"]}))
        .await;
    for s in c["stages"].as_array().unwrap() {
        same(
            "funnel stage",
            &s["contacts"],
            &cell(&q, &[s["stage"].clone()], "contacts_reached"),
        );
    }

    // Intents and channels.
    let i = app.view(&format!("intents?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls", "ticket_volume"], "dimensions": ["intent"]}))
        .await;
    for x in i["intents"].as_array().unwrap() {
        same(
            "intent calls",
            &x["calls"],
            &cell(&q, &[x["intent"].clone()], "total_calls"),
        );
        same(
            "intent tickets",
            &x["conversations"],
            &cell(&q, &[x["intent"].clone()], "ticket_volume"),
        );
    }
    let ch = app.view(&format!("channels?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["ticket_volume", "median_first_response_time", "csat_avg", "resolution_rate"], "dimensions": ["channel"]}))
        .await;
    let calls = app.query(json!({"measures": ["total_calls"]})).await;
    for x in ch["channels"].as_array().unwrap() {
        for m in [
            "ticket_volume",
            "median_first_response_time",
            "csat_avg",
            "resolution_rate",
        ] {
            same(m, &x[m], &cell(&q, &[x["channel"].clone()], m));
        }
    }
    same(
        "voice calls",
        &ch["channels"][0]["calls"],
        &calls["totals"]["total_calls"],
    );

    // One campaign, with cost per lead from the directory.
    let k = app.view(&format!("campaigns/webinar-follow-up?{RANGE}")).await;
    let q = app
        .query(json!({"measures": ["total_calls", "revenue", "meetings_booked"], "filters": {"campaign": ["webinar-follow-up"]}}))
        .await;
    for m in ["total_calls", "revenue", "meetings_booked"] {
        same(m, &k["metrics"][m], &q["totals"][m]);
    }
    let leads = app
        .query(json!({"measures": ["contacts_reached"], "filters": {"campaign": ["webinar-follow-up"], "stage": ["connected"]}}))
        .await;
    let leads = leads["totals"]["contacts_reached"].as_f64().unwrap();
    same("cost per lead", &k["cost_per_lead"], &json!(12_500.0 / leads));

    // Coaching as of a date: each opportunity's value is its window's number.
    let co = app
        .view(&format!("coaching-opportunities/{team}?date=2026-03-13"))
        .await;
    let opportunities = co["opportunities"].as_array().unwrap();
    assert!(!opportunities.is_empty(), "the seeded reps include some to coach");
    for o in opportunities {
        let agent = o["agent_id"].clone();
        let (start, end) = match o["issue"].as_str().unwrap() {
            "low_connect_rate" => ("2026-03-12", "2026-03-14"),
            "below_call_volume" => continue,
            _ => ("2026-03-07", "2026-03-14"),
        };
        let q = app
            .query(json!({"measures": [o["metric"]], "filters": {"agent": [agent]}, "range": {"start": start, "end": end}}))
            .await;
        same(
            o["issue"].as_str().unwrap(),
            &o["current_value"],
            &q["totals"][o["metric"].as_str().unwrap()],
        );
        for call in o["related_calls"].as_array().unwrap() {
            let (status, c) = app.get(&format!("/api/v1/calls/{}", call.as_str().unwrap())).await;
            assert_eq!((status, &c["agent_id"]), (200, &agent));
        }
    }

    // Compliance: the day's actuals.
    let cp = app.view("compliance?date=2026-03-12").await;
    let q = app
        .query(
            json!({"measures": ["total_calls", "idle_minutes", "active_hours"], "dimensions": ["agent"],
                      "range": {"start": "2026-03-12", "end": "2026-03-13"}}),
        )
        .await;
    for a in cp["agents"].as_array().unwrap() {
        let key = [a["agent_id"].clone()];
        same(
            "compliance calls",
            &a["actuals"]["calls"],
            &cell(&q, &key, "total_calls"),
        );
        same(
            "compliance idle",
            &a["actuals"]["idle_minutes"],
            &cell(&q, &key, "idle_minutes"),
        );
        same(
            "compliance dialing",
            &a["actuals"]["dialing_hours"],
            &cell(&q, &key, "active_hours"),
        );
    }
}

/// Views whose output depends only on the data and the parameters, not on the clock.
const SNAPSHOTS: [(&str, &str); 14] = [
    ("metrics", "metrics?start=2026-03-07&end=2026-03-14"),
    ("call_metrics", "call-metrics?start=2026-03-07&end=2026-03-14"),
    ("dispositions", "dispositions?start=2026-03-07&end=2026-03-14"),
    (
        "scorecard",
        "agent-scorecard/maria.santos?period=weekly&date=2026-03-11",
    ),
    (
        "team_leaderboard",
        "team-leaderboard/enterprise?date=2026-03-12&sort_by=meetings",
    ),
    (
        "heatmap",
        "call-time-heatmap?start=2026-03-07&end=2026-03-14&metric=calls",
    ),
    (
        "pipeline_funnel",
        "pipeline-funnel?group_by=lead_source&start=2026-03-07&end=2026-03-14",
    ),
    ("lead_sources", "lead-sources?start=2026-03-07&end=2026-03-14"),
    ("conversion_funnel", "conversion-funnel?start=2026-03-07&end=2026-03-14"),
    ("lead_volume", "lead-volume?start=2026-03-07&end=2026-03-14"),
    ("intents", "intents?start=2026-03-07&end=2026-03-14"),
    ("channels", "channels?start=2026-03-07&end=2026-03-14"),
    (
        "campaign",
        "campaigns/inbound-demo-requests?start=2026-03-07&end=2026-03-14",
    ),
    ("coaching", "coaching-opportunities/smb?date=2026-03-13"),
];

/// Drops what depends on the wall clock (when the board was computed, statuses of now).
fn stable(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        obj.remove("updated_at");
        for x in obj.values_mut() {
            *x = stable(x.take());
        }
    } else if let Some(items) = v.as_array_mut() {
        for x in items {
            *x = stable(x.take());
        }
    }
    v
}

#[tokio::test]
async fn views_match_their_snapshots() {
    let app = seeded().await;
    for (name, path) in SNAPSHOTS {
        let got = stable(app.view(path).await);
        let pretty = serde_json::to_string_pretty(&got).unwrap();
        insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!(name, pretty);
        });
    }
}

#[tokio::test]
async fn views_follow_access() {
    let app = seeded().await;
    let tenant = app.tenant_id;
    let agent = crate::helpers::add_key(
        &app.store,
        tenant,
        vec![dialboard_store::Scope::Read],
        Some("maria.santos"),
    )
    .await;
    let get = |key: String, path: String| {
        let app = &app;
        async move {
            app.send(reqwest::Method::GET, &format!("/api/v1/analytics/{path}"), &key, None)
                .await
        }
    };
    // An agent reads their own scorecard and the team's board, not a colleague's scorecard.
    let (status, own) = get(agent.clone(), "agent-scorecard/maria.santos?date=2026-03-11".into()).await;
    assert_eq!((status, &own["agent_id"]), (200, &json!("maria.santos")));
    let (status, body) = get(agent.clone(), "agent-scorecard/li.wei?date=2026-03-11".into()).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("filters.agent"));
    // Another tenant's key sees none of this tenant's numbers.
    let (_, other) = app.other_tenant("other", false).await;
    let (status, empty) = get(other, format!("metrics?{RANGE}")).await;
    assert_eq!(status, 200);
    assert_eq!(empty["kpis"][0]["value"], 0);
    // A key bound to a team cannot read another team's leaderboard.
    let team_key = dialboard::cli::create_key(
        &app.store,
        tenant,
        vec![dialboard_store::Scope::Read],
        None,
        Some("smb".into()),
    )
    .await
    .unwrap();
    let (status, _) = get(team_key.clone(), "team-leaderboard/enterprise?date=2026-03-12".into()).await;
    assert_eq!(status, 403);
    let (status, board) = get(team_key, "team-leaderboard/smb?date=2026-03-12".into()).await;
    assert_eq!(
        (status, board["entries"].as_array().unwrap().len()),
        (200, team_size("smb"))
    );
    // Under leaderboard privacy an agent meets colleagues only as `anonymous`, in every view.
    let (status, _) = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/settings",
            &app.key,
            Some(&json!({"leaderboard_privacy": true})),
        )
        .await;
    assert_eq!(status, 200);
    for path in [
        "team-leaderboard/enterprise?date=2026-03-12",
        "coaching-opportunities/enterprise?date=2026-03-13",
    ] {
        let (status, view) = get(agent.clone(), path.into()).await;
        assert_eq!(status, 200);
        let rows = view
            .get("entries")
            .or(view.get("opportunities"))
            .unwrap()
            .as_array()
            .unwrap();
        for r in rows {
            assert!(
                matches!(r["agent_id"].as_str(), Some("maria.santos" | "anonymous")),
                "{path} names {}",
                r["agent_id"]
            );
        }
    }
}
