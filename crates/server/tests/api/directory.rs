//! Settings and the directory: validation by field, admin-only changes that are audited, a
//! taxonomy change re-categorizing past calls at once, a timezone change that keeps numbers
//! exact, and the OpenAPI document listing what the router serves.

use crate::helpers::{add_key, call, error_fields, TestApp};
use dialboard_store::Scope;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn directory_entries_are_validated_listed_and_audited() {
    let app = TestApp::spawn("UTC").await;
    let reader = add_key(&app.store, app.tenant_id, vec![Scope::Read], None).await;
    let put = |path: &'static str, body: Value| {
        let app = &app;
        async move { app.send(Method::PUT, path, &app.key, Some(&body)).await }
    };
    let (status, body) = put(
        "/api/v1/agents/a1",
        json!({"name": "Ada", "team_id": "t1", "daily_goal": 70}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = put(
        "/api/v1/teams/t1",
        json!({"name": "Team One", "targets": {"min_calls": -1,
        "min_connects": 1, "min_talk_minutes": 1, "max_idle_minutes": 1, "min_dialing_hours": 1}, "colour": "red"}),
    )
    .await;
    assert_eq!(status, 400);
    let fields = error_fields(&body);
    assert_eq!(fields, ["colour", "targets.min_calls"], "{body}");
    let (status, _) = put("/api/v1/campaigns/k1", json!({"name": "Spring", "cost": 1000.5})).await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(Method::PUT, "/api/v1/agents/a2", &reader, Some(&json!({"name": "B"})))
        .await;
    assert_eq!(status, 403, "changing the directory needs admin");
    let (status, list) = app.send(Method::GET, "/api/v1/agents", &reader, None).await;
    assert_eq!(
        (status, list),
        (
            200,
            json!({"agents": [{"id": "a1", "name": "Ada", "team_id": "t1", "daily_goal": 70}]})
        )
    );
    let (status, list) = app.get("/api/v1/campaigns").await;
    assert_eq!((status, &list["campaigns"][0]["cost"]), (200, &json!(1000.5)));
    let (status, _) = app.send(Method::DELETE, "/api/v1/campaigns/k1", &app.key, None).await;
    assert_eq!(status, 204);
    let (status, _) = app.send(Method::DELETE, "/api/v1/campaigns/k1", &app.key, None).await;
    assert_eq!(status, 404);
    let (_, audit) = app.get("/api/v1/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["agent_saved", "campaign_saved", "campaign_deleted"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}

/// Status events carry no team: an agent's activity counts for its team in the directory, and
/// moves with the agent when an admin moves it.
#[tokio::test]
async fn team_activity_follows_the_directory() {
    let app = TestApp::spawn("UTC").await;
    let status = |id: &str, agent: &str, status: &str, at: &str| json!({"id": id, "type": "agent_status", "agent_id": agent, "status": status, "at": at});
    app.events(json!([
        status("s1", "a1", "dialing", "2026-03-02T09:00:00Z"),
        status("s2", "a1", "idle", "2026-03-02T10:00:00Z"),
        status("s3", "a1", "offline", "2026-03-02T10:30:00Z"),
        status("s4", "a2", "on_call", "2026-03-02T09:00:00Z"),
        status("s5", "a2", "offline", "2026-03-02T09:15:00Z"),
        call("e1", "c1", "Connected", "2026-03-02T09:05:00Z"),
    ]))
    .await;
    let by_team = || async {
        let (status, body) = app
            .post(
                "/api/v1/query",
                &app.key,
                &json!({"measures": ["active_hours", "idle_minutes", "calls_per_hour"],
                "dimensions": ["team"], "range": {"start": "2026-03-02", "end": "2026-03-03"}}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["rows"].clone()
    };
    let put = |agent: &'static str, team: &'static str| {
        let app = &app;
        async move {
            let body = json!({"name": agent, "team_id": team});
            let (status, _) = app
                .send(Method::PUT, &format!("/api/v1/agents/{agent}"), &app.key, Some(&body))
                .await;
            assert_eq!(status, 200);
        }
    };
    // Without a directory entry, activity belongs to no team (and t1's call has no dialing
    // hours to divide by, so its row is empty).
    assert_eq!(by_team().await, json!([[null, 1.25, 30.0, 0.0]]));
    put("a1", "t1").await;
    put("a2", "t2").await;
    assert_eq!(by_team().await, json!([["t1", 1.0, 30.0, 1.0], ["t2", 0.25, 0.0, 0.0]]));
    put("a2", "t1").await;
    assert_eq!(by_team().await, json!([["t1", 1.25, 30.0, 0.8]]));
}

#[tokio::test]
async fn settings_changes_apply_at_once_and_name_bad_fields() {
    let app = TestApp::spawn("America/New_York").await;
    app.events(json!([
        call("e1", "c1", "Interested", "2026-03-10T15:00:00Z"),
        call("e2", "c2", "No Answer", "2026-03-10T15:30:00Z"),
        call("e3", "c3", "Voicemail", "2026-03-10T23:30:00Z"),
    ]))
    .await;
    let (status, body) = app
        .send(
            Method::PUT,
            "/api/v1/settings",
            &app.key,
            Some(&json!({"timezone": "Mars/Olympus", "stages": [], "colour": 1})),
        )
        .await;
    assert_eq!(status, 400);
    let fields = error_fields(&body);
    assert_eq!(fields.len(), 3, "{body}");
    for f in ["timezone", "stages", "colour"] {
        assert!(fields.contains(&f), "{f} in {body}");
    }

    // Interested stops counting as connected the moment the taxonomy says so.
    assert_eq!(app.totals(&["connected_calls"], json!({})).await["connected_calls"], 1);
    let mut taxonomy = app.get("/api/v1/settings").await.1["taxonomy"].clone();
    for (category, dispositions) in taxonomy["categories"].as_array_mut().unwrap().iter_mut().map(|c| {
        let pair = c.as_array_mut().unwrap();
        let (a, b) = pair.split_at_mut(1);
        (a[0].clone(), &mut b[0])
    }) {
        let list = dispositions.as_array_mut().unwrap();
        if category == "connected" {
            list.retain(|d| d != "Interested");
        } else if category == "no_contact" {
            list.push(json!("Interested"));
        }
    }
    let (status, body) = app
        .send(
            Method::PUT,
            "/api/v1/settings",
            &app.key,
            Some(&json!({"taxonomy": taxonomy, "timezone": "Asia/Kathmandu"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.totals(&["connected_calls", "no_contacts"], json!({})).await,
        json!({"connected_calls": 0, "no_contacts": 3})
    );

    // The new zone is the default; cells built in the old one still answer exactly.
    let by_day = |tz: Option<&str>| {
        let mut q = json!({"measures": ["total_calls"], "granularity": "day", "range": {"start": "2026-03-10", "end": "2026-03-12"}});
        if let Some(tz) = tz {
            q["timezone"] = json!(tz);
        }
        q
    };
    let (_, default_zone) = app.post("/api/v1/query", &app.key, &by_day(None)).await;
    let (_, explicit) = app
        .post("/api/v1/query", &app.key, &by_day(Some("Asia/Kathmandu")))
        .await;
    assert_eq!(default_zone, explicit);
    assert_eq!(
        default_zone["rows"],
        json!([["2026-03-10T00:00:00+05:45", 2], ["2026-03-11T00:00:00+05:45", 1]])
    );
    let (_, audit) = app.get("/api/v1/audit").await;
    assert_eq!(audit["entries"][0]["action"], "settings_changed");
}

#[tokio::test]
async fn openapi_describes_every_endpoint() {
    let app = TestApp::spawn("UTC").await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/events",
        "/api/v1/query",
        "/api/v1/calls/{call_id}",
        "/api/v1/live/sse",
        "/api/v1/settings",
        "/api/v1/agents/{id}",
        "/api/v1/analytics/agent-scorecard/{agent_id}",
        "/api/v1/analytics/compliance",
        "/api/v1/analytics/coaching-opportunities/{team_id}",
        "/api/v1/exports/{id}/file",
        "/api/v1/analytics/forecast",
        "/api/v1/analytics/staffing",
        "/api/v1/analytics/erlang",
        "/api/v1/analytics/badges/{agent_id}",
    ] {
        assert!(paths.contains_key(path), "{path}");
    }
    assert_eq!(paths.len(), 80, "every route is documented once");
    let measures = &doc["components"]["schemas"]["Query"]["properties"]["measures"]["items"]["enum"];
    assert!(measures.as_array().unwrap().contains(&json!("csat_avg")));
    // Every view's answer has a schema derived from its type (not `{}`), every schema it
    // refers to is in the document, and every view also answers files.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let resolve = |r: &Value| {
        let name = r.as_str().unwrap().strip_prefix("#/components/schemas/").unwrap();
        schemas
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not in the document"))
    };
    // The planning views (forecast, staffing, erlang, badges) are not typed views yet.
    let untyped = ["forecast", "staffing", "erlang", "badges"];
    let views: Vec<(&String, &Value)> = paths
        .iter()
        .filter(|(p, _)| p.contains("/analytics/") && !untyped.iter().any(|u| p.contains(u)))
        .collect();
    assert_eq!(views.len(), 17);
    for (path, item) in views {
        let content = &item["get"]["responses"]["200"]["content"];
        let schema = resolve(&content["application/json"]["schema"]["$ref"]);
        assert!(
            schema["properties"].as_object().is_some_and(|p| !p.is_empty()),
            "{path}: {schema}"
        );
        for file in ["text/csv", "application/pdf"] {
            assert!(content.get(file).is_some(), "{path} answers {file}");
        }
        let params = item["get"]["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["name"] == "format"), "{path} takes format");
    }
    let mut refs = Vec::new();
    fn collect<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| collect(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&doc["components"]["schemas"], &mut refs);
    for r in refs {
        resolve(r);
    }
    let board = &schemas["LeaderboardView"]["properties"];
    assert_eq!(
        board["entries"]["items"]["$ref"],
        "#/components/schemas/LeaderboardEntry"
    );
    let entry = &schemas["LeaderboardEntry"];
    assert_eq!(entry["properties"]["meeting_streak"]["type"], "integer", "{entry}");
    assert!(entry["required"].as_array().unwrap().contains(&json!("agent_id")));
    // Every documented GET without path parameters answers (not 404) with the admin key.
    for (path, item) in paths {
        if item.get("get").is_some() && !path.contains('{') && !path.contains("/live") {
            let (status, body) = app.get(path).await;
            assert!(status != 404 && status < 500, "{path}: {status} {body}");
        }
    }
}

/// Every success answer is described: a JSON answer by a schema derived from its type (never
/// `{}`), a file or stream by its media type, a 204 by nothing at all.
#[tokio::test]
async fn openapi_gives_every_json_answer_a_schema() {
    let app = TestApp::spawn("UTC").await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let mut untyped = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let successes: Vec<_> = responses.iter().filter(|(code, _)| code.starts_with('2')).collect();
            if let Some(upgrade) = responses.get("101") {
                // A WebSocket: its messages' schema.
                assert!(upgrade["x-messages"]["$ref"].is_string(), "{method} {path}: {upgrade}");
                continue;
            }
            assert!(!successes.is_empty(), "{method} {path}: no success status");
            for (code, answer) in successes {
                let content = answer["content"].as_object();
                if code == "204" {
                    assert!(content.is_none(), "{method} {path}: a 204 has no content");
                    continue;
                }
                let content = content.filter(|c| !c.is_empty());
                let Some(content) = content else {
                    untyped.push(format!("{method} {path} {code}: no content"));
                    continue;
                };
                for (media, body) in content {
                    let typed = body["schema"].as_object().is_some_and(|s| !s.is_empty());
                    if (media == "application/json" || media == "text/event-stream") && !typed {
                        untyped.push(format!("{method} {path} {code} {media}"));
                    }
                }
            }
        }
    }
    assert!(untyped.is_empty(), "answers without a schema:\n{}", untyped.join("\n"));
}

/// The web app's types (web/src/api-types.ts, made by `npm run gen-types` in web/) are
/// generated from web/openapi.json, which must be the document the server serves; .ci/run
/// regenerates the types and fails if they differ from the committed ones.
#[tokio::test]
async fn the_web_apps_copy_of_the_openapi_document_is_current() {
    let app = TestApp::spawn("UTC").await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let served = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "web/openapi.json is not the served document: run `UPDATE_OPENAPI=1 cargo test -p dialboard \
         --test api the_web_apps_copy` and `npm run gen-types` in web/, and commit both"
    );
}
