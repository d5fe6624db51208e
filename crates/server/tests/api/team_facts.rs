//! Every fact with an agent follows the agent's team: a manager restricted to a team sees that
//! team's pipeline and CSAT (whose events name no team), and they move when an agent moves.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "password-1";
const RANGE: &str = "start=2026-03-01&end=2026-04-01";

/// A session cookie for a new user of the app's tenant.
async fn session(app: &TestApp, email: &str, role: &str, teams: &[&str]) -> String {
    let body = json!({"email": email, "password": PASSWORD, "role": role, "teams": teams});
    let (status, user) = app.post("/api/v1/users", &app.key, &body).await;
    assert_eq!(status, 201, "{user}");
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

async fn view_as(app: &TestApp, cookie: &str, path: &str) -> Value {
    let r = app
        .client
        .get(format!("{}/api/v1/analytics/{path}", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn put_agent(app: &TestApp, agent: &str, team: &str) {
    let body = json!({"name": agent, "team_id": team});
    let (status, answer) = app
        .send(Method::PUT, &format!("/api/v1/agents/{agent}"), &app.key, Some(&body))
        .await;
    assert_eq!(status, 200, "{answer}");
}

fn stage(id: &str, contact: &str, stage: &str, agent: &str, amount: Option<f64>) -> Value {
    json!({"id": id, "type": "lead_stage", "contact_id": contact, "stage": stage, "agent_id": agent,
        "campaign_id": "k1", "at": "2026-03-10T11:00:00Z", "amount": amount})
}

fn csat(id: &str, agent: &str, score: i64) -> Value {
    json!({"id": id, "type": "csat", "score": score, "call_id": format!("call-{id}"), "agent_id": agent,
        "at": "2026-03-10T12:00:00Z"})
}

fn voice(channels: &Value) -> &Value {
    channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "voice")
        .unwrap()
}

#[tokio::test]
async fn a_managers_pipeline_and_csat_follow_the_directory() {
    let app = TestApp::spawn("Europe/Berlin").await;
    put_agent(&app, "a1", "t1").await;
    put_agent(&app, "a2", "t2").await;
    app.events(json!([
        {"id": "c1", "type": "call", "call_id": "c1", "agent_id": "a1", "team_id": "t1", "campaign_id": "k1",
            "disposition": "Connected", "started_at": "2026-03-10T10:00:00Z", "talk_seconds": 60},
        stage("s1", "p1", "connected", "a1", None),
        stage("s2", "p1", "meeting_booked", "a1", None),
        stage("s3", "p1", "closed_won", "a1", Some(1500.0)),
        stage("s4", "p2", "connected", "a2", None),
        stage("s5", "p2", "closed_won", "a2", Some(700.0)),
        csat("q1", "a1", 5),
        csat("q2", "a1", 3),
        csat("q3", "a2", 1),
    ]))
    .await;
    let manager = session(&app, "manager@acme.test", "manager", &["t1"]).await;

    let funnel = view_as(&app, &manager, &format!("pipeline-funnel?{RANGE}")).await;
    let overall = &funnel["overall"];
    assert_eq!(overall["stages"]["connected"], 1, "{funnel}");
    assert_eq!(overall["stages"]["meeting_booked"], 1, "{funnel}");
    assert_eq!(overall["stages"]["closed_won"], 1, "{funnel}");
    assert_eq!(overall["revenue"]["total_closed_won"], 1500.0, "{funnel}");
    assert_eq!(overall["revenue"]["deals_won"], 1, "{funnel}");
    let channels = view_as(&app, &manager, &format!("channels?{RANGE}")).await;
    assert_eq!(voice(&channels)["csat_count"], 2, "{channels}");
    assert_eq!(voice(&channels)["csat_avg"], 4.0, "{channels}");

    // a2 joins t1: their stages and scores count for t1 from now on, as the directory says.
    put_agent(&app, "a2", "t1").await;
    let funnel = view_as(&app, &manager, &format!("pipeline-funnel?{RANGE}")).await;
    assert_eq!(funnel["overall"]["stages"]["connected"], 2, "{funnel}");
    assert_eq!(funnel["overall"]["revenue"]["total_closed_won"], 2200.0, "{funnel}");
    let channels = view_as(&app, &manager, &format!("channels?{RANGE}")).await;
    assert_eq!(voice(&channels)["csat_count"], 3, "{channels}");
}

/// What ROI and cost per lead cannot be computed from, the campaign view says: `null` with a
/// reason, never −100%.
#[tokio::test]
async fn campaign_returns_say_why_they_are_unknown() {
    let app = TestApp::spawn("Europe/Berlin").await;
    put_agent(&app, "a1", "t1").await;
    let put_campaign = |body: Value| {
        let app = &app;
        async move {
            let (status, answer) = app
                .send(Method::PUT, "/api/v1/campaigns/k1", &app.key, Some(&body))
                .await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    put_campaign(json!({"name": "Spring"})).await;
    app.events(json!([
        stage("s1", "p1", "connected", "a1", None),
        stage("s2", "p2", "connected", "a1", None),
    ]))
    .await;
    let campaign = || async {
        let (status, view) = app.get(&format!("/api/v1/analytics/campaigns/k1?{RANGE}")).await;
        assert_eq!(status, 200, "{view}");
        view
    };
    let v = campaign().await;
    assert_eq!(
        (&v["roi_percent"], &v["cost_per_lead"]),
        (&Value::Null, &Value::Null),
        "{v}"
    );
    assert_eq!(v["roi_unavailable"], "no campaign cost in the directory");
    assert_eq!(v["cost_per_lead_unavailable"], "no campaign cost in the directory");

    // With a cost, a lead's cost is known; the return is not until a deal with an amount is won.
    put_campaign(json!({"name": "Spring", "cost": 1000.0})).await;
    let v = campaign().await;
    assert_eq!(
        (&v["cost_per_lead"], &v["cost_per_lead_unavailable"]),
        (&json!(500.0), &Value::Null)
    );
    assert_eq!(v["roi_percent"], Value::Null, "{v}");
    assert_eq!(v["roi_unavailable"], "no deal with an amount was won in this range");
    app.events(json!([stage("s3", "p1", "closed_won", "a1", Some(1500.0))]))
        .await;
    let v = campaign().await;
    assert_eq!(
        (&v["roi_percent"], &v["roi_unavailable"]),
        (&json!(50.0), &Value::Null),
        "{v}"
    );

    // The cost is the whole campaign's: a manager's team has none of its own.
    let manager = session(&app, "manager@acme.test", "manager", &["t1"]).await;
    let v = view_as(&app, &manager, &format!("campaigns/k1?{RANGE}")).await;
    assert_eq!(v["metrics"]["revenue"], 1500.0, "{v}");
    assert_eq!(v["roi_percent"], Value::Null, "{v}");
    assert!(v["roi_unavailable"].as_str().unwrap().contains("whole campaign"), "{v}");
}

async fn send_as(app: &TestApp, cookie: &str, method: Method, path: &str, body: Option<&Value>) -> Value {
    let mut request = app
        .client
        .request(method, format!("{}/api/v1/{path}", app.url))
        .header("cookie", cookie)
        .header("origin", &app.url); // as the server's own pages send
    if let Some(body) = body {
        request = request.json(body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body
}

fn call(id: &str, agent: &str, team: Option<&str>, campaign: &str) -> Value {
    let mut call = json!({"id": id, "type": "call", "call_id": id, "agent_id": agent, "campaign_id": campaign,
        "disposition": "Connected", "started_at": "2026-03-10T10:00:00Z", "talk_seconds": 60});
    if let Some(team) = team {
        call["team_id"] = json!(team);
    }
    call
}

/// A call event without `team_id` is its agent's team's in the directory, like every other
/// fact: a manager of t1 sees it by campaign (rollups by team and campaign), in the KPIs and in
/// the drill-down, and it moves with its agent.
#[tokio::test]
async fn a_managers_calls_without_a_team_follow_the_directory() {
    let app = TestApp::spawn("Europe/Berlin").await;
    put_agent(&app, "a1", "t1").await;
    put_agent(&app, "a2", "t2").await;
    app.events(json!([
        call("c1", "a1", None, "k1"),
        call("c2", "a1", Some("t1"), "k2"),
        call("c3", "a2", None, "k1"),
        call("c4", "a2", Some("t1"), "k1"),
    ]))
    .await;
    let manager = session(&app, "manager@acme.test", "manager", &["t1"]).await;
    let by_campaign = json!({"measures": ["total_calls"], "dimensions": ["campaign"],
        "range": {"start": "2026-03-01", "end": "2026-04-01"}});
    let answer = send_as(&app, &manager, Method::POST, "query", Some(&by_campaign)).await;
    assert_eq!(answer["rows"], json!([["k1", 2], ["k2", 1]]), "{answer}");
    let metrics = send_as(&app, &manager, Method::GET, &format!("analytics/metrics?{RANGE}"), None).await;
    let calls = &metrics["kpis"][0];
    assert_eq!(
        (&calls["metric"], &calls["value"]),
        (&json!("total_calls"), &json!(3)),
        "{metrics}"
    );
    let drill = send_as(&app, &manager, Method::GET, &format!("calls?{RANGE}"), None).await;
    let ids: Vec<&str> = drill["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{drill}");
    assert!(ids.contains(&"c1") && !ids.contains(&"c3"), "{drill}");

    // a2 joins t1: their call without a team follows them.
    put_agent(&app, "a2", "t1").await;
    let answer = send_as(&app, &manager, Method::POST, "query", Some(&by_campaign)).await;
    assert_eq!(answer["rows"], json!([["k1", 3], ["k2", 1]]), "{answer}");
    let drill = send_as(&app, &manager, Method::GET, &format!("calls?{RANGE}"), None).await;
    assert_eq!(drill["calls"].as_array().unwrap().len(), 4, "{drill}");
}
