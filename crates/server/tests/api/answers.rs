//! Every answer matches its schema in the OpenAPI document: the endpoints are called on the
//! seeded demo tenant and each JSON answer is checked against the schema the document gives
//! its status (types, required fields, and no field the schema does not name), so the typed
//! schemas — and the TypeScript the web app generates from them — say what the API sends.

use crate::analytics::seeded;
use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Where `value` differs from `schema` (resolving `$ref`s in `doc`), each with its path.
fn mismatches(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return mismatches(doc, &doc["components"]["schemas"][name], value, at, out);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(choices) = schema[key].as_array() {
            let fits = choices.iter().any(|c| {
                let mut errors = Vec::new();
                mismatches(doc, c, value, at, &mut errors);
                errors.is_empty()
            });
            if !fits {
                out.push(format!("{at}: {value} fits none of {key} {schema}"));
            }
            return;
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        // Each part checks its own fields; together they name every field.
        let mut named = Map::new();
        for part in all {
            let part = resolve(doc, part);
            named.extend(part["properties"].as_object().cloned().unwrap_or_default());
            let mut open = part.clone();
            open["additionalProperties"] = json!(true);
            mismatches(doc, &open, value, at, out);
        }
        if let (Some(object), false) = (value.as_object(), schema["additionalProperties"] == json!(true)) {
            for key in object.keys().filter(|k| !named.contains_key(*k)) {
                out.push(format!("{at}.{key}: not in the schema"));
            }
        }
        return;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.is_empty() || types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: {kind} {value}, the schema says {types:?}"));
        return;
    }
    match value {
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    mismatches(doc, item, v, &format!("{at}[{i}]"), out);
                }
            }
        }
        Value::Object(object) => {
            let properties = schema["properties"].as_object();
            for name in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    out.push(format!("{at}.{name}: required, absent"));
                }
            }
            for (key, v) in object {
                match (properties.and_then(|p| p.get(key)), &schema["additionalProperties"]) {
                    (Some(s), _) => mismatches(doc, s, v, &format!("{at}.{key}"), out),
                    (None, extra) if extra.is_object() => mismatches(doc, extra, v, &format!("{at}.{key}"), out),
                    (None, Value::Bool(true)) => {}
                    (None, _) if properties.is_none() => {}
                    (None, _) => out.push(format!("{at}.{key}: not in the schema")),
                }
            }
        }
        _ => {}
    }
}

/// `.rows[12][0]: string "x", the schema …` → `.rows[_][_]: string`: a problem once per field.
fn per_field(problem: &str) -> String {
    let (at, what) = problem.split_once(": ").unwrap_or((problem, ""));
    let mut out = String::new();
    let mut index = false;
    for c in at.chars() {
        match c {
            '[' => {
                index = true;
                out.push_str("[_]");
            }
            ']' => index = false,
            c if !index => out.push(c),
            _ => {}
        }
    }
    format!("{out}: {}", what.split(' ').next().unwrap_or(""))
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

struct Checker {
    app: TestApp,
    doc: Value,
    problems: Vec<String>,
    checked: usize,
}

impl Checker {
    /// Calls `method path` and checks the answer against `template`'s schema for its status.
    async fn call(&mut self, method: Method, path: &str, template: &str, body: Option<Value>) -> Value {
        let (status, answer) = self
            .app
            .send(method.clone(), path, &self.app.key.clone(), body.as_ref())
            .await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        let op = &self.doc["paths"][format!("/api/v1{template}")][method.as_str().to_lowercase()];
        let schema = &op["responses"][status.to_string()]["content"]["application/json"]["schema"];
        if status == 204 {
            return answer;
        }
        assert!(schema.is_object(), "{method} {template} {status}: no schema");
        let mut problems = Vec::new();
        mismatches(&self.doc, schema, &answer, "", &mut problems);
        // One line per field, whatever the row.
        for p in problems {
            let line = format!("{method} {template} {status}: {}", per_field(&p));
            if !self.problems.contains(&line) {
                self.problems.push(line);
            }
        }
        self.checked += 1;
        answer
    }

    async fn get(&mut self, path: &str, template: &str) -> Value {
        self.call(Method::GET, path, template, None).await
    }
}

#[tokio::test]
async fn every_answer_matches_its_schema() {
    let app = seeded().await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let mut c = Checker {
        app,
        doc,
        problems: Vec::new(),
        checked: 0,
    };
    // The directory, settings, the caller, the catalogue.
    c.call(
        Method::PUT,
        "/api/v1/campaigns/c9",
        "/campaigns/{id}",
        Some(json!({"name": "C9", "cost": 10.5, "currency": "EUR"})),
    )
    .await;
    for (path, one) in [
        ("/agents", "/agents/{id}"),
        ("/teams", "/teams/{id}"),
        ("/campaigns", "/campaigns/{id}"),
    ] {
        let list = c.get(&format!("/api/v1{path}"), path).await;
        assert!(
            list[&path[1..]].as_array().is_some_and(|l| !l.is_empty()),
            "{path}: {list}"
        );
        let _ = one;
    }
    c.get("/api/v1/settings", "/settings").await;
    c.call(
        Method::PUT,
        "/api/v1/settings",
        "/settings",
        Some(json!({"holidays": ["2026-12-25"]})),
    )
    .await;
    c.get("/api/v1/auth/me", "/auth/me").await;
    c.get("/api/v1/catalogue", "/catalogue").await;
    // Ingest, the general query (with a comparison), raw calls and one call.
    c.call(
        Method::POST,
        "/api/v1/events",
        "/events",
        Some(
            json!([{"id": "x1", "type": "call", "call_id": "x1", "agent_id": "nobody", "disposition": "Meeting Booked",
                     "started_at": "2026-03-10T10:00:00Z"}, {"id": "x2", "type": "call"}]),
        ),
    )
    .await;
    let query = json!({"measures": ["total_calls", "connect_rate"], "dimensions": ["agent"], "range": {"start": "2026-03-07", "end": "2026-03-14"},
                       "compare": "previous_period"});
    c.call(Method::POST, "/api/v1/query", "/query", Some(query.clone()))
        .await;
    let calls = c
        .get("/api/v1/calls?start=2026-03-07&end=2026-03-14&limit=5", "/calls")
        .await;
    let call_id = calls["calls"][0]["call_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a call: {calls}"))
        .to_string();
    c.get(&format!("/api/v1/calls/{call_id}"), "/calls/{call_id}").await;
    // Saved reports (a query's and a view's), dashboards, schedules.
    let report = json!({"name": "By rep", "description": "", "query": query, "visualization": "bar", "sharing": {"kind": "tenant"}});
    let created = c
        .call(Method::POST, "/api/v1/reports", "/reports", Some(report.clone()))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    c.call(
        Method::PUT,
        &format!("/api/v1/reports/{id}"),
        "/reports/{id}",
        Some(report),
    )
    .await;
    c.get("/api/v1/reports", "/reports").await;
    c.get(&format!("/api/v1/reports/{id}/versions"), "/reports/{id}/versions")
        .await;
    c.call(
        Method::POST,
        &format!("/api/v1/reports/{id}/versions/1/restore"),
        "/reports/{id}/versions/{n}/restore",
        None,
    )
    .await;
    c.get(&format!("/api/v1/reports/{id}/result"), "/reports/{id}/result")
        .await;
    c.get(
        &format!("/api/v1/reports/{id}/calls?limit=3&start=2026-03-07&end=2026-03-14"),
        "/reports/{id}/calls",
    )
    .await;
    let view = json!({"name": "Board", "view": "leaderboard", "params": {"period": "week"}, "visualization": "table", "sharing": {"kind": "private"}});
    c.call(Method::POST, "/api/v1/reports/preview", "/reports/preview", Some(view))
        .await;
    let dashboard = json!({"name": "Mine", "sharing": {"kind": "private"}, "widgets": [
        {"id": "w1", "report": id, "x": 0, "y": 0, "w": 6, "h": 4},
        {"id": "w2", "view": "leaderboard", "params": {"period": "week"}, "title": "Board", "x": 6, "y": 0, "w": 6, "h": 4}]});
    let board = c
        .call(Method::POST, "/api/v1/dashboards", "/dashboards", Some(dashboard))
        .await;
    let board_id = board["id"].as_str().unwrap().to_string();
    c.get("/api/v1/dashboards", "/dashboards").await;
    c.get(
        &format!("/api/v1/dashboards/{board_id}/versions"),
        "/dashboards/{id}/versions",
    )
    .await;
    let schedule = json!({"name": "Monday", "report_id": id, "format": "csv", "recipients": ["a@example.com", {"team": "t1"}],
        "recurrence": {"frequency": "weekly", "days": ["mon"], "time": "08:00", "timezone": "Europe/London"}});
    let schedule = c
        .call(Method::POST, "/api/v1/schedules", "/schedules", Some(schedule))
        .await;
    let schedule_id = schedule["id"].as_str().unwrap().to_string();
    c.get(&format!("/api/v1/schedules/{schedule_id}"), "/schedules/{id}")
        .await;
    c.get(
        &format!("/api/v1/schedules/{schedule_id}/versions"),
        "/schedules/{id}/versions",
    )
    .await;
    c.call(
        Method::POST,
        &format!("/api/v1/schedules/{schedule_id}/run"),
        "/schedules/{id}/run",
        None,
    )
    .await;
    c.get(&format!("/api/v1/schedules/{schedule_id}/runs"), "/schedules/{id}/runs")
        .await;
    // Alerts and their templates.
    let templates = c.get("/api/v1/alerts/templates?team=t1", "/alerts/templates").await;
    let alert = templates["templates"][0]["alert"].clone();
    let alert = c.call(Method::POST, "/api/v1/alerts", "/alerts", Some(alert)).await;
    let alert_id = alert["id"].as_str().unwrap().to_string();
    c.get("/api/v1/alerts", "/alerts").await;
    c.get(&format!("/api/v1/alerts/{alert_id}/events"), "/alerts/{id}/events")
        .await;
    // Planning views.
    c.get("/api/v1/analytics/forecast?days=2", "/analytics/forecast").await;
    c.get("/api/v1/analytics/staffing", "/analytics/staffing").await;
    c.get(
        "/api/v1/analytics/staffing?patience_seconds=none",
        "/analytics/staffing",
    )
    .await;
    c.get(
        "/api/v1/analytics/erlang?calls_per_hour=100&aht_seconds=180&patience_seconds=60",
        "/analytics/erlang",
    )
    .await;
    let agent = calls["calls"][0]["agent_id"].as_str().unwrap().to_string();
    c.get(
        &format!("/api/v1/analytics/badges/{agent}"),
        "/analytics/badges/{agent_id}",
    )
    .await;
    // Credentials, retention.
    c.get("/api/v1/users", "/users").await;
    c.get("/api/v1/keys", "/keys").await;
    c.get("/api/v1/retention/dry-run", "/retention/dry-run").await;
    c.call(Method::POST, "/api/v1/retention/purge", "/retention/purge", None)
        .await;
    c.get("/api/v1/retention/purges", "/retention/purges").await;
    c.call(Method::DELETE, "/api/v1/contacts/nobody", "/contacts/{id}", None)
        .await;
    c.get("/api/v1/exports", "/exports").await;
    c.call(
        Method::POST,
        "/api/v1/exports",
        "/exports",
        Some(json!({"source": "calls", "format": "csv"})),
    )
    .await;
    assert!(
        c.problems.is_empty(),
        "answers that differ from their schema:\n{}",
        c.problems.join("\n")
    );
    assert!(c.checked >= 45, "{} answers checked", c.checked);
}
