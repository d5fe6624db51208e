//! Hostile and heavy requests (issue 21): query cost budgets and admission, a rep's view of
//! colleagues, bound keys writing only their own records, extreme dates, truncated results,
//! bidirectional characters and unknown event fields.

use crate::helpers::{add_key, call, error_fields, TestApp};
use dialboard::api::admission::{Admission, AdmissionLimits};
use dialboard_store::Scope;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn put_agent(app: &TestApp, id: &str, team: &str) {
    let body = json!({"name": id.to_uppercase(), "team_id": team});
    let (code, answer) = app
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/agents/{id}"),
            &app.key,
            Some(&body),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
}

/// The fields of an event's `errors`.
fn fields_of(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(String::from))
        .collect()
}

fn status(id: &str, agent: &str, state: &str, at: &str) -> Value {
    json!({"id": id, "type": "agent_status", "agent_id": agent, "status": state, "at": at})
}

/// `n` calls of distinct agents on 2026-03-02, as batches of at most 10,000 events.
async fn many_agents(app: &TestApp, key: &str, n: usize) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": format!("agent{i}"),
                "team_id": "t1", "disposition": if i % 3 == 0 { "Connected" } else { "No Answer" },
                "started_at": format!("2026-03-02T{:02}:{:02}:00Z", i % 24, i % 60), "talk_seconds": i % 300})
        })
        .collect();
    for chunk in events.chunks(10_000) {
        let (code, body) = app.post("/api/v1/events", key, &json!(chunk)).await;
        assert_eq!(
            (code, body["accepted"].as_u64()),
            (200, Some(chunk.len() as u64)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn a_query_past_its_budget_is_a_422_naming_what_to_narrow() {
    let app = TestApp::spawn("UTC").await;
    many_agents(&app, &app.key, 20_100).await;
    let range = json!({"start": "2026-03-01", "end": "2026-03-08"});
    let (code, body) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls", "median_talk_time"],
            "dimensions": ["agent"], "range": range}),
        )
        .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (422, Some("query_too_large")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("groups") && message.contains("fewer dimensions"),
        "{message}"
    );
    // The same breakdown without a median fits; its 20,100 rows are cut at 10,000 and say so.
    let (code, body) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": range}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["truncated"].clone(), body["limit"].clone()),
        (json!(true), json!(10_000))
    );
    assert_eq!(body["rows"].as_array().unwrap().len(), 10_000);
    assert_eq!(body["totals"]["total_calls"], 20_100);
    let (_, small) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "range": range, "limit": 5}),
        )
        .await;
    assert_eq!(
        (small["truncated"].clone(), small["limit"].clone()),
        (json!(false), json!(5))
    );
}

/// One heavy tenant floods `/query` with 80 concurrent breakdowns of 20,000 agents by hour; a
/// light tenant's trivial queries, meanwhile, keep answering quickly. The flood's excess is
/// refused (429 with Retry-After) rather than queued without bound.
#[tokio::test]
async fn a_heavy_tenant_cannot_starve_a_light_one() {
    // The default caps with a short wait, so that the flood's excess is refused within the test.
    let app = TestApp::spawn_with("UTC", dialboard::live::QUEUE_CAPACITY, |state| {
        state.admission = Admission::new(AdmissionLimits {
            wait: Duration::from_millis(300),
            ..AdmissionLimits::default()
        })
    })
    .await;
    many_agents(&app, &app.key, 20_000).await;
    let (_, light_key) = app.other_tenant("light", false).await;
    app.post(
        "/api/v1/events",
        &light_key,
        &json!([call("l1", "lc1", "Connected", "2026-03-02T10:00:00Z")]),
    )
    .await;
    let heavy = json!({"measures": ["total_calls", "connect_rate", "avg_talk_time"], "dimensions": ["agent", "team", "disposition"],
        "granularity": "hour", "range": {"start": "2026-03-01", "end": "2026-03-08"}, "compare": "previous_period"});
    let flood: Vec<_> = (0..80)
        .map(|_| {
            let (client, url, key, body) = (app.client.clone(), app.url.clone(), app.key.clone(), heavy.clone());
            tokio::spawn(async move {
                let r = client
                    .post(format!("{url}/api/v1/query"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.headers().get("retry-after").is_some())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let trivial = json!({"measures": ["total_calls"], "range": {"start": "2026-03-01", "end": "2026-03-08"}});
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let (code, body) = app.post("/api/v1/query", &light_key, &trivial).await;
        latencies.push(started.elapsed());
        assert_eq!((code, body["totals"]["total_calls"].as_i64()), (200, Some(1)), "{body}");
    }
    let mut outcomes = Vec::new();
    for f in flood {
        outcomes.push(f.await.unwrap());
    }
    let refused = outcomes.iter().filter(|(code, retry)| *code == 429 && *retry).count();
    let served = outcomes.iter().filter(|(code, _)| *code == 200).count();
    assert_eq!(refused + served, 80, "{outcomes:?}");
    assert!(refused > 0 && served >= 4, "refused {refused}, served {served}");
    let worst = latencies.iter().max().unwrap();
    assert!(
        *worst < Duration::from_secs(2),
        "the light tenant waited {worst:?}: {latencies:?}"
    );
}

/// The rep's session of agent a2, an admin and a manager of t1 ask the same questions.
#[tokio::test]
async fn a_rep_sees_only_leaderboard_measures_of_colleagues() {
    let app = TestApp::spawn("UTC").await;
    let mut events = Vec::new();
    for agent in ["a1", "a2", "a3"] {
        put_agent(&app, agent, "t1").await;
    }
    for (i, agent) in ["a1", "a2", "a3"].iter().enumerate() {
        let call_id = format!("c{i}");
        events.push(
            json!({"id": format!("e{i}"), "type": "call", "call_id": call_id, "agent_id": agent, "team_id": "t1",
            "disposition": "Meeting Booked", "started_at": "2026-03-02T10:00:00Z", "talk_seconds": 60}),
        );
        events.push(
            json!({"id": format!("x{i}"), "type": "call_analysis", "call_id": call_id, "score": 80,
            "filler_words_per_100": 3, "agent_talk_ratio": 0.6, "sentiment": 0.2}),
        );
        events.push(status(&format!("s{i}"), agent, "idle", "2026-03-02T09:00:00Z"));
        events.push(status(&format!("t{i}"), agent, "offline", "2026-03-02T09:30:00Z"));
    }
    app.events(json!(events)).await;
    let rep = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a2")).await;
    let manager = dialboard::cli::create_key(&app.store, app.tenant_id, vec![Scope::Read], None, Some("t1".into()))
        .await
        .unwrap();
    let open = [
        "total_calls",
        "connect_rate",
        "meetings_booked",
        "total_talk_time",
        "avg_call_score",
    ];
    let private = [
        "filler_word_rate",
        "avg_talk_ratio",
        "idle_minutes",
        "avg_sentiment",
        "avg_talk_time",
    ];
    let range = json!({"start": "2026-03-02", "end": "2026-03-03"});
    for (who, key) in [("admin", &app.key), ("manager", &manager), ("rep", &rep)] {
        for measure in open.iter().chain(&private) {
            for dimension in ["agent", "team"] {
                let (code, body) = app
                    .post(
                        "/api/v1/query",
                        key,
                        &json!({"measures": [measure], "dimensions": [dimension], "range": range}),
                    )
                    .await;
                assert_eq!(code, 200, "{who} {measure} {dimension}: {body}");
                let rows = body["rows"].as_array().unwrap();
                let value_of = |id: &str| rows.iter().find(|r| r[0] == id).map(|r| r[1].clone());
                let hidden = who == "rep" && dimension == "agent" && private.contains(measure);
                if who == "rep" && dimension == "team" && private.contains(measure) {
                    // A team can be one colleague: broken down by team, private measures are
                    // hidden (this key belongs to no team).
                    assert_eq!(value_of("t1"), None, "{who} {measure}: {body}");
                } else if dimension == "team" {
                    assert!(
                        value_of("t1").is_some_and(|v| !v.is_null()),
                        "{who} {measure}: aggregates stay open"
                    );
                } else if hidden {
                    assert!(
                        value_of("a2").is_some_and(|v| !v.is_null()),
                        "{who} {measure}: their own"
                    );
                    assert_eq!(
                        (value_of("a1"), value_of("a3")),
                        (None, None),
                        "{who} {measure}: {body}"
                    );
                } else {
                    for a in ["a1", "a2", "a3"] {
                        assert!(value_of(a).is_some_and(|v| !v.is_null()), "{who} {measure} {a}: {body}");
                    }
                }
            }
        }
    }
    // Mixed: the colleague's row keeps its leaderboard numbers, the rest is null.
    let (_, body) = app
        .post(
            "/api/v1/query",
            &rep,
            &json!({"measures": ["total_calls", "filler_word_rate"], "dimensions": ["agent"], "range": range}),
        )
        .await;
    assert_eq!(body["rows"][0], json!(["a1", 1, null]), "{body}");
    assert_eq!(body["rows"][1], json!(["a2", 1, 3.0]), "{body}");
    assert_eq!(
        body["totals"]["filler_word_rate"], 3.0,
        "the aggregate stays open: {body}"
    );
}

/// A rep reads colleagues' private measures only merged over the tenant or their own team, or
/// of their own records: any breakdown or filter that could narrow the merge to one colleague
/// (another team, a campaign) hides them in rows, totals and the comparison.
#[tokio::test]
async fn private_measures_are_not_singled_out_by_other_dimensions() {
    let app = TestApp::spawn("UTC").await;
    // a1 and the rep a2 work team t1; a3 is alone in t2 and alone on campaign k3.
    let people = [("a1", "t1", "k1", 2), ("a2", "t1", "k2", 4), ("a3", "t2", "k3", 9)];
    let mut events = Vec::new();
    for (agent, team, campaign, filler) in people {
        put_agent(&app, agent, team).await;
        for (day, n) in [("2026-03-01", 0), ("2026-03-02", 1)] {
            let call_id = format!("{agent}-{n}");
            events.push(
                json!({"id": call_id, "type": "call", "call_id": call_id, "agent_id": agent,
                "team_id": team, "campaign_id": campaign, "disposition": "Connected",
                "started_at": format!("{day}T10:00:00Z"), "talk_seconds": 60}),
            );
            events.push(
                json!({"id": format!("x{call_id}"), "type": "call_analysis", "call_id": call_id,
                "score": 70, "filler_words_per_100": filler}),
            );
        }
    }
    app.events(json!(events)).await;
    let rep = dialboard::cli::create_key(
        &app.store,
        app.tenant_id,
        vec![Scope::Read],
        Some("a2".into()),
        Some("t1".into()),
    )
    .await
    .unwrap();
    let day = json!({"start": "2026-03-02", "end": "2026-03-03"});
    let ask = |key: &str, extra: Value| {
        let mut body = json!({"measures": ["total_calls", "filler_word_rate"], "range": day});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (app, key) = (&app, key.to_string());
        async move {
            let (code, answer) = app.post("/api/v1/query", &key, &body).await;
            assert_eq!(code, 200, "{body}: {answer}");
            answer
        }
    };
    // (what is asked, whether the private measure is open to the rep)
    let matrix = [
        (json!({}), true),
        (json!({"filters": {"team": ["t1"]}}), true),
        (
            json!({"granularity": "hour", "dimensions": ["hour_of_day", "day_of_week"]}),
            true,
        ),
        (
            json!({"filters": {"agent": ["a2"]}, "dimensions": ["campaign", "team"]}),
            true,
        ),
        (json!({"filters": {"team": ["t2"]}}), false),
        (json!({"dimensions": ["team"]}), false),
        (json!({"filters": {"campaign": ["k3"]}}), false),
        (json!({"dimensions": ["campaign"]}), false),
        (json!({"filters": {"team": ["t1"]}, "dimensions": ["campaign"]}), false),
        (json!({"filters": {"campaign": ["k1"]}, "dimensions": ["agent"]}), false),
    ];
    for (extra, open) in matrix {
        let admin = ask(&app.key, extra.clone()).await;
        let answer = ask(&rep, extra.clone()).await;
        assert!(admin["totals"]["filler_word_rate"].is_number(), "{extra}: {admin}");
        assert_eq!(
            answer["totals"]["total_calls"], admin["totals"]["total_calls"],
            "{extra}: {answer}"
        );
        assert_eq!(
            answer["totals"]["filler_word_rate"].is_number(),
            open,
            "{extra}: {answer}"
        );
        let columns = answer["columns"].as_array().unwrap();
        let filler = columns.iter().position(|c| c == "filler_word_rate").unwrap();
        let agent = columns.iter().position(|c| c == "agent");
        for row in answer["rows"].as_array().unwrap() {
            let own = agent.is_some_and(|a| row[a] == "a2") || extra["filters"]["agent"] == json!(["a2"]);
            let colleague_row = agent.is_some() && !own;
            assert_eq!(
                row[filler].is_number(),
                (open && !colleague_row) || own,
                "{extra}: {row}"
            );
        }
    }
    // The comparison follows the same rule, its change percent included.
    let compared = ask(
        &rep,
        json!({"filters": {"campaign": ["k3"]}, "compare": "previous_period"}),
    )
    .await;
    assert_eq!(
        compared["comparison"]["totals"]["filler_word_rate"],
        Value::Null,
        "{compared}"
    );
    assert_eq!(
        compared["comparison"]["change_percent"]["filler_word_rate"],
        Value::Null,
        "{compared}"
    );
    assert_eq!(compared["comparison"]["totals"]["total_calls"], 1, "{compared}");
    let merged = ask(&rep, json!({"compare": "previous_period"})).await;
    assert!(
        merged["comparison"]["totals"]["filler_word_rate"].is_number(),
        "{merged}"
    );
    // Ordered (and cut) by a private measure, colleagues' rows would rank them by it.
    let ranked = json!({"measures": ["total_calls", "filler_word_rate"], "dimensions": ["agent"], "range": day,
        "order_by": [["filler_word_rate", "desc"]], "limit": 1});
    let (code, answer) = app.post("/api/v1/query", &rep, &ranked).await;
    assert_eq!(code, 403, "{answer}");
    assert!(
        answer["error"]["message"].as_str().unwrap().starts_with("order_by:"),
        "{answer}"
    );
    assert_eq!(app.post("/api/v1/query", &app.key, &ranked).await.0, 200);
    let mut own = ranked.clone();
    own["filters"] = json!({"agent": ["a2"]});
    assert_eq!(app.post("/api/v1/query", &rep, &own).await.0, 200);
    let by_hour = json!({"measures": ["filler_word_rate"], "dimensions": ["hour_of_day"], "range": day,
        "order_by": [["filler_word_rate", "desc"]]});
    assert_eq!(app.post("/api/v1/query", &rep, &by_hour).await.0, 200);
}

/// Under leaderboard privacy, anonymous rows come in the order of what they show, not of ids.
#[tokio::test]
async fn anonymous_colleagues_are_not_ordered_by_id() {
    let app = TestApp::spawn("UTC").await;
    let (tenant, admin) = app.other_tenant("private", true).await;
    // a1 made 1 call, a3 3 calls, a4 2 calls: id order is 1, 3, 2.
    let mut events = Vec::new();
    for (agent, n) in [("a1", 1), ("a2", 1), ("a3", 3), ("a4", 2)] {
        for i in 0..n {
            events.push(
                json!({"id": format!("{agent}-{i}"), "type": "call", "call_id": format!("{agent}-{i}"),
                "agent_id": agent, "team_id": "t1", "disposition": "No Answer", "started_at": "2026-03-02T10:00:00Z"}),
            );
        }
    }
    app.post("/api/v1/events", &admin, &json!(events)).await;
    let rep = add_key(&app.store, tenant, vec![Scope::Read], Some("a2")).await;
    let (_, body) = app
        .post(
            "/api/v1/query",
            &rep,
            &json!({"measures": ["total_calls"], "dimensions": ["agent"],
            "range": {"start": "2026-03-02", "end": "2026-03-03"}}),
        )
        .await;
    assert_eq!(
        body["rows"],
        json!([["a2", 1], ["anonymous", 3], ["anonymous", 2], ["anonymous", 1]]),
        "{body}"
    );
    let (_, board) = app
        .send(
            reqwest::Method::GET,
            "/api/v1/analytics/team-leaderboard/t1?start=2026-03-02&end=2026-03-03&sort_by=meetings",
            &rep,
            None,
        )
        .await;
    let calls: Vec<(Value, Value)> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["agent_id"].clone(), e["calls"].clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            (json!("anonymous"), json!(3)),
            (json!("anonymous"), json!(2)),
            (json!("a2"), json!(1)),
            (json!("anonymous"), json!(1))
        ],
        "ties in the sort (no meetings) follow the visible numbers: {board}"
    );
}

#[tokio::test]
async fn a_bound_key_writes_only_its_own_records() {
    let app = TestApp::spawn("UTC").await;
    put_agent(&app, "a1", "t1").await;
    put_agent(&app, "a2", "t2").await;
    app.events(json!([
        {"id": "o1", "type": "call", "call_id": "theirs", "agent_id": "a2", "team_id": "t2", "disposition": "Connected",
         "started_at": "2026-03-02T10:00:00Z", "updated_at": "2026-03-02T10:05:00Z"},
        {"id": "o2", "type": "conversation", "conversation_id": "conv2", "agent_id": "a2", "team_id": "t2", "channel": "chat",
         "opened_at": "2026-03-02T10:00:00Z"}
    ]))
    .await;
    let key = add_key(&app.store, app.tenant_id, vec![Scope::Ingest, Scope::Read], Some("a1")).await;
    let later = "2026-03-02T11:00:00Z";
    let (code, body) = app
        .post("/api/v1/events", &key, &json!([
            {"id": "b1", "type": "call", "call_id": "mine", "agent_id": "a1", "team_id": "t1", "disposition": "Busy", "started_at": later},
            {"id": "b2", "type": "call", "call_id": "other", "agent_id": "a2", "disposition": "Busy", "started_at": later},
            {"id": "b3", "type": "agent_status", "agent_id": "a2", "status": "offline", "at": later},
            {"id": "b4", "type": "call", "call_id": "theirs", "agent_id": "a1", "disposition": "Busy",
             "started_at": "2026-03-02T10:00:00Z", "updated_at": later},
            {"id": "b5", "type": "call_analysis", "call_id": "theirs", "score": 1},
            {"id": "b6", "type": "conversation", "conversation_id": "conv2", "agent_id": "a1", "channel": "email",
             "opened_at": "2026-03-02T10:00:00Z", "updated_at": later},
            {"id": "b7", "type": "csat", "score": 1, "at": later, "agent_id": "a2"}
        ]))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    let rejected: Vec<(u64, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), fields_of(&r["errors"]).join(",")))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (1, "agent_id".to_string()),
            (2, "agent_id".to_string()),
            (3, "call_id".to_string()),
            (4, "call_id".to_string()),
            (5, "conversation_id".to_string()),
            (6, "agent_id".to_string()),
        ],
        "{body}"
    );
    let (_, theirs) = app.get("/api/v1/calls/theirs").await;
    assert_eq!(
        (theirs["agent_id"].as_str(), theirs["disposition"].as_str()),
        (Some("a2"), Some("Connected")),
        "{theirs}"
    );
    // A team-bound key sends for its team's agents (by the directory), not for others.
    let team_key = dialboard::cli::create_key(&app.store, app.tenant_id, vec![Scope::Ingest], None, Some("t1".into()))
        .await
        .unwrap();
    let (_, body) = app
        .post("/api/v1/events", &team_key, &json!([
            status("m1", "a1", "idle", later),
            status("m2", "a2", "idle", later),
            {"id": "m3", "type": "call", "call_id": "m3", "agent_id": "a1", "team_id": "t2", "disposition": "Busy", "started_at": later}
        ]))
        .await;
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["rejected"][0]["errors"][0]["field"], "agent_id", "{body}");
    assert_eq!(body["rejected"][1]["errors"][0]["field"], "team_id", "{body}");
}

#[tokio::test]
async fn extreme_dates_are_400s_naming_the_field() {
    let app = TestApp::spawn("America/New_York").await;
    put_agent(&app, "a1", "t1").await;
    app.events(json!([call("e1", "c1", "Connected", "2026-03-02T10:00:00Z")]))
        .await;
    for (body, field) in [
        (
            json!({"measures": ["total_calls"], "range": {"start": "-009999-01-01", "end": "9999-12-31"}}),
            vec!["range.start", "range.end"],
        ),
        (
            json!({"measures": ["total_calls"], "range": {"start": "2026-01-01", "end": "9999-12-31"}}),
            vec!["range.end"],
        ),
        (
            json!({"measures": ["total_calls"], "range": {"start": "1970-01-01", "end": "1970-03-01"}, "compare": "same_period_last_year"}),
            vec!["compare"],
        ),
        (
            json!({"measures": ["total_calls"], "range": {"start": "2200-01-01", "end": "2200-12-31"}, "compare": {"start": "2200-12-01", "end": "9999-01-01"}}),
            vec!["compare.end"],
        ),
    ] {
        let (code, answer) = app.post("/api/v1/query", &app.key, &body).await;
        assert_eq!((code, error_fields(&answer)), (400, field), "{body}: {answer}");
        assert!(answer.to_string().contains("1970-01-01 and 2200-12-31"), "{answer}");
    }
    // The far edges themselves are fine.
    let (code, answer) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "range": {"start": "1970-01-01", "end": "2200-12-31"},
            "compare": "previous_period"}),
        )
        .await;
    assert_eq!(
        (code, error_fields(&answer)),
        (400, vec!["compare"]),
        "the compared period starts in 1740: {answer}"
    );
    for path in [
        "/api/v1/analytics/agent-scorecard/a1",
        "/api/v1/analytics/team-leaderboard/t1",
        "/api/v1/analytics/coaching-opportunities/t1",
        "/api/v1/analytics/compliance",
    ] {
        for date in ["9999-12-31", "-009999-01-01", "1969-12-31"] {
            let (code, answer) = app.get(&format!("{path}?date={date}")).await;
            assert_eq!(
                (code, error_fields(&answer)),
                (400, vec!["date"]),
                "{path}?date={date}: {answer}"
            );
        }
        let (code, answer) = app.get(&format!("{path}?date=2200-06-30")).await;
        assert_eq!(code, 200, "{path}: {answer}");
    }
    // A view names the parameters the client sent (`start`, `end`), not its query's fields.
    let (code, answer) = app
        .get("/api/v1/analytics/leaderboard?start=-009999-01-01&end=9999-12-31")
        .await;
    assert_eq!((code, error_fields(&answer)), (400, vec!["start", "end"]), "{answer}");
}

/// A view builds queries from its parameters; when the engine refuses one, the 400 names the
/// parameter the client sent (a `date`, a path's id, `granularity`), never a field of the
/// view's own query (`range.end`, `compare`), and has the code `/query` has for the same
/// failure.
#[tokio::test]
async fn a_views_refused_query_names_the_clients_parameter() {
    let app = TestApp::spawn("America/New_York").await;
    put_agent(&app, "a1", "t1").await;
    app.events(json!([call("e1", "c1", "Connected", "2026-03-02T10:00:00Z")]))
        .await;
    for (path, field) in [
        // The day after 2200-12-31 (the rules' range end, the board's hourly range) leaves
        // the calendar the engine accepts.
        ("coaching-opportunities/t1?date=2200-12-31", "date"),
        ("team-leaderboard/t1?date=2200-12-31", "date"),
        // The period compared with 1970-01-01 starts in 1969.
        ("agent-scorecard/a1?date=1970-01-01", "date"),
        ("compliance?date=1970-01-01&timezone=Mars/Base", "timezone"),
        ("call-metrics?granularity=fortnight", "granularity"),
        // Days of 1970–2200 are more buckets than a query may have: the range is too long.
        ("lead-volume?start=1970-01-01&end=2200-12-31", "start"),
        ("metrics?preset=someday", "preset"),
        ("metrics?start=2026-03-02&end=2026-03-01", "end"),
        ("intents?end=2026-03-01", "start"),
        ("dispositions?start=2026-03-02&end=9999-01-01", "end"),
    ] {
        let (code, answer) = app.get(&format!("/api/v1/analytics/{path}")).await;
        assert_eq!(
            (code, error_fields(&answer), answer["error"]["code"].as_str()),
            (400, vec![field], Some("invalid_request")),
            "{path}: {answer}"
        );
    }
    let (code, answer) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_calls"], "granularity": "fortnight", "range": {"preset": "today"}}),
        )
        .await;
    assert_eq!(
        (code, error_fields(&answer), answer["error"]["code"].as_str()),
        (400, vec!["granularity"], Some("invalid_request")),
        "{answer}"
    );
}

#[tokio::test]
async fn bidirectional_characters_are_refused_in_ids_and_names() {
    let app = TestApp::spawn("UTC").await;
    let (code, body) = app
        .post("/api/v1/events", &app.key, &json!([
            {"id": "e\u{202E}1", "type": "call", "call_id": "c\u{2066}1", "agent_id": "a\u{200F}", "disposition": "Busy",
             "started_at": "2026-03-02T10:00:00Z"}
        ]))
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        fields_of(&body["rejected"][0]["errors"]),
        vec!["id", "call_id", "agent_id"],
        "{body}"
    );
    let put = |path: &str, body: Value| {
        let path = path.to_string();
        let app = &app;
        async move { app.send(reqwest::Method::PUT, &path, &app.key, Some(&body)).await }
    };
    let (code, body) = put("/api/v1/agents/a%E2%80%AE1", json!({"name": "Ana"})).await;
    assert_eq!((code, error_fields(&body)), (400, vec!["id"]), "{body}");
    let (code, body) = put(
        "/api/v1/agents/a1",
        json!({"name": "Ana \u{202E}reversed", "team_id": "t\u{2067}"}),
    )
    .await;
    assert_eq!((code, error_fields(&body)), (400, vec!["name", "team_id"]), "{body}");
    let (code, body) = put("/api/v1/teams/t1", json!({"name": "Sales\u{0008}"})).await;
    assert_eq!((code, error_fields(&body)), (400, vec!["name"]), "{body}");
}

#[tokio::test]
async fn unknown_event_fields_are_not_stored() {
    let app = TestApp::spawn("UTC").await;
    let padding = "x".repeat(1_000_000);
    app.events(json!([{"id": "e1", "type": "call", "call_id": "c1", "agent_id": "a1", "disposition": "Busy",
        "started_at": "2026-03-02T10:00:00Z", "notes": "kept", "junk": padding, "prospect": {"name": "Ana", "extra": padding}}]))
    .await;
    let (code, call) = app.get("/api/v1/calls/c1").await;
    assert_eq!(code, 200, "{call}");
    let stored = &call["versions"][0]["event"];
    assert_eq!(stored["notes"], "kept", "{stored}");
    assert_eq!(stored["prospect"], json!({"name": "Ana"}));
    assert_eq!(stored.get("junk"), None);
}
