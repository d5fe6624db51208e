//! Saved reports and dashboards (SPEC §7) through HTTP: versions and restore, validation that
//! names the field, sharing (private, users, team, tenant) with each viewer's own reach in the
//! answer, the drill-down and the exports (read back with the csv crate, calamine and poppler),
//! and nothing of it visible to another tenant.

use crate::helpers::{add_key, answered, error_fields, poppler, TestApp};
use calamine::{Data, Reader, Xlsx};
use dialboard_store::{DirectoryKind, Scope};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::io::Cursor;

const PASSWORD: &str = "password-1";

/// A caller: an API key or a browser session.
#[derive(Clone)]
enum Cred {
    Key(String),
    Cookie(String),
}

async fn send(app: &TestApp, cred: &Cred, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let (status, bytes) = fetch(app, cred, method, path, body).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn fetch(app: &TestApp, cred: &Cred, method: Method, path: &str, body: Option<&Value>) -> (u16, Vec<u8>) {
    let mut req = app.client.request(method, format!("{}{path}", app.url));
    req = match cred {
        Cred::Key(k) => req.bearer_auth(k),
        // As the server's own pages send it.
        Cred::Cookie(c) => req.header("cookie", c).header("origin", &app.url),
    };
    if let Some(b) = body {
        req = req.json(b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

struct World {
    app: TestApp,
    admin: Cred,
    /// Sessions by e-mail: admin, manager of t1, reps a1 (t1) and a3 (t2).
    users: HashMap<&'static str, Cred>,
    other: Cred,
}

/// Tenant acme: a1 and a2 in team t1, a3 in t2, calls over two days; users of every role;
/// tenant globex with its own admin.
async fn world() -> World {
    world_exporting_at_once(dialboard::exports::SYNC_LIMIT).await
}

/// The world, on a server whose exports of more than `limit` rows are jobs.
async fn world_exporting_at_once(limit: i64) -> World {
    let app = TestApp::spawn_with_export_limit("UTC", limit).await;
    for (team, name) in [("t1", "Team One"), ("t2", "Team Two")] {
        app.store
            .put_directory(app.tenant_id, DirectoryKind::Team, team, json!({"name": name}))
            .await
            .unwrap();
    }
    let mut events = Vec::new();
    for i in 0..24 {
        let (agent, team) = [("a1", "t1"), ("a2", "t1"), ("a3", "t2")][i % 3];
        let disposition = ["Connected", "No Answer", "Meeting Booked"][i % 4 % 3];
        events.push(
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i:02}"), "agent_id": agent,
            "team_id": team, "disposition": disposition,
            "started_at": format!("2026-03-{:02}T{:02}:00:00Z", 10 + i % 2, 8 + i / 2), "talk_seconds": 20 + i * 5}),
        );
    }
    app.events(Value::Array(events)).await;
    let admin = Cred::Key(app.key.clone());
    let mut users = HashMap::new();
    for (email, role, agent, teams) in [
        ("admin@acme.test", "admin", None, vec![]),
        ("manager@acme.test", "manager", None, vec!["t1"]),
        ("a1@acme.test", "agent", Some("a1"), vec!["t1"]),
        ("a3@acme.test", "agent", Some("a3"), vec!["t2"]),
    ] {
        let body = json!({"email": email, "password": PASSWORD, "role": role, "agent_id": agent, "teams": teams});
        let (status, user) = send(&app, &admin, Method::POST, "/api/v1/users", Some(&body)).await;
        assert_eq!(status, 201, "{user}");
        let r = app
            .client
            .post(format!("{}/api/v1/auth/login", app.url))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        users.insert(email, Cred::Cookie(cookie));
    }
    let (_, other) = app.other_tenant("globex", false).await;
    World {
        app,
        admin,
        users,
        other: Cred::Key(other),
    }
}

const RANGE: &str = r#"{"start": "2026-03-01", "end": "2026-04-01"}"#;

fn by_agent() -> Value {
    json!({"measures": ["total_calls", "connect_rate", "avg_talk_time"], "dimensions": ["agent"],
           "range": serde_json::from_str::<Value>(RANGE).unwrap(), "order_by": [["agent", "asc"]]})
}

fn report(name: &str, query: Value, sharing: Value) -> Value {
    json!({"name": name, "description": "calls per rep", "query": query, "visualization": "bar", "sharing": sharing})
}

#[tokio::test]
async fn every_edit_is_a_version_and_a_restore_is_the_next_one() {
    let w = world().await;
    let (app, admin) = (&w.app, &w.admin);
    let (status, created) = send(
        app,
        admin,
        Method::POST,
        "/api/v1/reports",
        Some(&report("Weekly", by_agent(), json!({"kind": "private"}))),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["version"].as_i64(), created["can_edit"].as_bool()),
        (Some(1), Some(true))
    );
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/reports/{id}");

    let mut v2 = report("Weekly by team", by_agent(), json!({"kind": "tenant"}));
    v2["query"]["dimensions"] = json!(["team"]);
    v2["query"]["order_by"] = json!([["team", "asc"]]);
    v2["visualization"] = json!("line");
    let (status, updated) = send(app, admin, Method::PUT, &path, Some(&v2)).await;
    assert_eq!((status, updated["version"].as_i64()), (200, Some(2)), "{updated}");
    let (_, read) = send(app, admin, Method::GET, &path, None).await;
    assert_eq!(
        (read["name"].as_str(), read["query"]["dimensions"].clone()),
        (Some("Weekly by team"), json!(["team"]))
    );

    let (_, versions) = send(app, admin, Method::GET, &format!("{path}/versions"), None).await;
    let numbers: Vec<i64> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(versions["versions"][1]["report"]["name"], "Weekly");
    assert!(versions["versions"][1]["author"].as_str().unwrap().starts_with("key:"));

    let (status, restored) = send(app, admin, Method::POST, &format!("{path}/versions/1/restore"), None).await;
    assert_eq!((status, restored["version"].as_i64()), (200, Some(3)), "{restored}");
    assert_eq!(
        (restored["name"].as_str(), restored["visualization"].as_str()),
        (Some("Weekly"), Some("bar"))
    );
    assert_eq!(restored["query"], by_agent());
    let (status, _) = send(app, admin, Method::POST, &format!("{path}/versions/9/restore"), None).await;
    assert_eq!(status, 404);
    // The answer is the restored question's: rows by agent.
    let (_, result) = send(app, admin, Method::GET, &format!("{path}/result"), None).await;
    assert_eq!(result["result"]["columns"][0], "agent", "{result}");
    let (_, direct) = send(app, admin, Method::POST, "/api/v1/query", Some(&by_agent())).await;
    assert_eq!(result["result"], direct);

    let (_, audit) = send(app, admin, Method::GET, "/api/v1/audit?limit=20", None).await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in ["report_created", "report_updated", "report_restored"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let (status, _) = send(app, admin, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(send(app, admin, Method::GET, &path, None).await.0, 404);
    assert_eq!(
        send(app, admin, Method::GET, &format!("{path}/versions"), None).await.0,
        404
    );
}

#[tokio::test]
async fn invalid_reports_name_the_field() {
    let w = world().await;
    let (app, admin) = (&w.app, &w.admin);
    let good = report("R", by_agent(), json!({"kind": "private"}));
    let with = |change: &dyn Fn(&mut Value)| {
        let mut r = good.clone();
        change(&mut r);
        r
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|r| r["name"] = json!("  ")), "name"),
        (
            with(&|r| r.as_object_mut().unwrap().remove("name").map(drop).unwrap_or(())),
            "name",
        ),
        (
            with(&|r| r["query"]["measures"] = json!(["total_calls", "nope"])),
            "query.measures",
        ),
        (
            with(&|r| r["query"]["granularity"] = json!("fortnight")),
            "query.granularity",
        ),
        (
            with(&|r| r["query"]["range"] = json!({"start": "2026-13-01", "end": "2026-04-01"})),
            "query.range.start",
        ),
        (with(&|r| r["visualization"] = json!("pie3d")), "visualization"),
        (with(&|r| r["sharing"] = json!({"kind": "everyone"})), "sharing.kind"),
        (with(&|r| r["sharing"] = json!({"kind": "users"})), "sharing.users"),
        (
            with(&|r| r["sharing"] = json!({"kind": "team", "team": 7})),
            "sharing.team",
        ),
        (
            with(&|r| r["sharing"] = json!({"kind": "users", "users": ["nobody@acme.test"]})),
            "sharing.users[0]",
        ),
        (
            with(&|r| r["sharing"] = json!({"kind": "team", "team": "t9"})),
            "sharing.team",
        ),
        (with(&|r| r["colour"] = json!("red")), "colour"),
        (with(&|r| r["view"] = json!("leaderboard")), "view"),
        (json!({"name": "V", "view": "no-such-view"}), "view"),
        (
            json!({"name": "V", "view": "team-leaderboard", "params": {"sort_by": "calls"}}),
            "params.team_id",
        ),
        (
            json!({"name": "V", "view": "leaderboard", "params": {"color": "red"}}),
            "params.color",
        ),
        (json!({"name": "V"}), "query"),
    ];
    for (body, field) in cases {
        let (status, answer) = send(app, admin, Method::POST, "/api/v1/reports", Some(&body)).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_report");
        let fields = error_fields(&answer);
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{field} in {fields:?} for {body}"
        );
    }
    // A PUT is checked the same way, and a bad one changes nothing.
    let (_, created) = send(app, admin, Method::POST, "/api/v1/reports", Some(&good)).await;
    let path = format!("/api/v1/reports/{}", created["id"].as_str().unwrap());
    let (status, answer) = send(
        app,
        admin,
        Method::PUT,
        &path,
        Some(&with(&|r| r["visualization"] = json!(3))),
    )
    .await;
    assert_eq!((status, error_fields(&answer)), (400, vec!["visualization"]));
    assert_eq!(send(app, admin, Method::GET, &path, None).await.1["version"], 1);
}

/// A report's PDF as poppler reads it: its text and its document info.
async fn report_pdf(app: &TestApp, cred: &Cred, id: &str) -> (String, String) {
    let path = format!("/api/v1/reports/{id}/result?format=pdf");
    let (status, pdf) = fetch(app, cred, Method::GET, &path, None).await;
    assert_eq!(status, 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let file = file.to_str().unwrap();
    (
        poppler("pdftotext", &["-layout", file, "-"]),
        poppler("pdfinfo", &[file]),
    )
}

fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

fn ids(page: &Value) -> BTreeSet<String> {
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["agent_id"].as_str().unwrap().to_string())
        .collect()
}

/// The admin's report of calls per rep, shared with the tenant; its id.
async fn shared_by_agent(w: &World) -> String {
    let body = report("Reps", by_agent(), json!({"kind": "tenant"}));
    let (status, created) = send(&w.app, &w.admin, Method::POST, "/api/v1/reports", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_shared_report_answers_with_each_viewers_own_reach() {
    let w = world().await;
    let app = &w.app;
    let id = &shared_by_agent(&w).await;
    let rep = &w.users["a1@acme.test"];
    let manager = &w.users["manager@acme.test"];

    // Everyone in the tenant lists it; the rep may open it but not change it.
    let (_, listed) = send(app, rep, Method::GET, "/api/v1/reports", None).await;
    let listed: Vec<&str> = listed["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [id]);
    let (status, seen) = send(app, rep, Method::GET, &format!("/api/v1/reports/{id}"), None).await;
    assert_eq!((status, seen["can_edit"].as_bool()), (200, Some(false)));
    let edit = report("Mine now", by_agent(), json!({"kind": "private"}));
    let changes = |id: &str| {
        [
            (Method::PUT, format!("/api/v1/reports/{id}"), Some(edit.clone())),
            (Method::DELETE, format!("/api/v1/reports/{id}"), None),
            (Method::POST, format!("/api/v1/reports/{id}/versions/1/restore"), None),
        ]
    };
    for (method, path, body) in changes(id) {
        assert_eq!(send(app, rep, method, &path, body.as_ref()).await.0, 403, "{path}");
    }

    // Each viewer's answer is what /query gives that viewer: the manager's team only; the
    // rep's colleagues without their private measures.
    for viewer in [rep, manager, &w.admin] {
        let (_, result) = send(app, viewer, Method::GET, &format!("/api/v1/reports/{id}/result"), None).await;
        let (_, direct) = send(app, viewer, Method::POST, "/api/v1/query", Some(&by_agent())).await;
        assert_eq!(result["result"], direct);
    }
    let (_, as_manager) = send(app, manager, Method::GET, &format!("/api/v1/reports/{id}/result"), None).await;
    let agents: Vec<&str> = as_manager["result"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(agents, ["a1", "a2"]);

    // The drill-down and its export hold only the rep's own calls.
    let (status, page) = send(
        app,
        rep,
        Method::GET,
        &format!("/api/v1/reports/{id}/calls?limit=1000"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), BTreeSet::from(["a1".to_string()]));
    assert_eq!(page["calls"].as_array().unwrap().len(), 8);
    let (status, csv) = fetch(
        app,
        rep,
        Method::GET,
        &format!("/api/v1/reports/{id}/calls?format=csv"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (header, rows) = parse_csv(&csv);
    let call_id = header.iter().position(|h| h == "call_id").unwrap();
    let exported: BTreeSet<&str> = rows.iter().map(|r| r[call_id].as_str()).collect();
    let listed: BTreeSet<&str> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(exported, listed);
    // The result's export is the rep's answer too: a colleague's private measure is empty.
    let (status, csv) = fetch(
        app,
        rep,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=csv"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (header, rows) = parse_csv(&csv);
    assert_eq!(header, ["agent", "total_calls", "connect_rate", "avg_talk_time"]);
    let (_, direct) = send(app, rep, Method::POST, "/api/v1/query", Some(&by_agent())).await;
    assert_csv_equals_rows(&rows, &direct);

    // Another tenant cannot see, open, drill into or export it.
    let other = &w.other;
    let (_, theirs) = send(app, other, Method::GET, "/api/v1/reports", None).await;
    assert_eq!(theirs["reports"], json!([]));
    for path in [
        format!("/api/v1/reports/{id}"),
        format!("/api/v1/reports/{id}/result"),
        format!("/api/v1/reports/{id}/result?format=csv"),
        format!("/api/v1/reports/{id}/result?format=pdf"),
        format!("/api/v1/reports/{id}/calls"),
        format!("/api/v1/reports/{id}/calls?format=xlsx"),
        format!("/api/v1/reports/{id}/versions"),
    ] {
        assert_eq!(send(app, other, Method::GET, &path, None).await.0, 404, "{path}");
    }
    for (method, path, body) in changes(id) {
        assert_eq!(send(app, other, method, &path, body.as_ref()).await.0, 404, "{path}");
    }
}

/// CSV rows equal `/query`'s rows: texts as texts, numbers as the same numbers, nulls empty.
fn assert_csv_equals_rows(rows: &[Vec<String>], direct: &Value) {
    let expected = direct["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len());
    let mut saw_null = false;
    for (row, want) in rows.iter().zip(expected) {
        for (cell, value) in row.iter().zip(want.as_array().unwrap()) {
            match value {
                Value::Null => {
                    saw_null = true;
                    assert_eq!(cell, "");
                }
                Value::String(s) => assert_eq!(cell, s),
                n => assert_eq!(cell.parse::<f64>().ok(), n.as_f64(), "{cell} vs {n}"),
            }
        }
    }
    assert!(saw_null, "the rep's view hides colleagues' private measures");
}

#[tokio::test]
async fn sharing_with_users_and_teams_reaches_exactly_them() {
    let w = world().await;
    let app = &w.app;
    let cases = [
        (json!({"kind": "private"}), vec!["admin@acme.test"]),
        (
            json!({"kind": "users", "users": ["a3@acme.test"]}),
            vec!["admin@acme.test", "a3@acme.test"],
        ),
        (
            json!({"kind": "team", "team": "t1"}),
            vec!["admin@acme.test", "manager@acme.test", "a1@acme.test"],
        ),
    ];
    // Made by the manager, so the admin sees it as an admin, not as its owner.
    let owner = &w.users["manager@acme.test"];
    for (sharing, seen_by) in cases {
        let (status, created) = send(
            app,
            owner,
            Method::POST,
            "/api/v1/reports",
            Some(&report("S", by_agent(), sharing.clone())),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let path = format!("/api/v1/reports/{}", created["id"].as_str().unwrap());
        for (email, cred) in &w.users {
            let sees = seen_by.contains(email) || *email == "manager@acme.test";
            let status = send(app, cred, Method::GET, &format!("{path}/result"), None).await.0;
            assert_eq!(status, if sees { 200 } else { 404 }, "{email} and {sharing}");
        }
        send(app, owner, Method::DELETE, &path, None).await;
    }
}

#[tokio::test]
async fn report_exports_read_back_equal_the_answer() {
    let w = world().await;
    let (app, admin) = (&w.app, &w.admin);
    let mut query = by_agent();
    query["dimensions"] = json!([]);
    query["order_by"] = json!([]);
    query["granularity"] = json!("day");
    query["compare"] = json!("previous_period");
    let body = json!({"name": "Daily calls", "query": query, "visualization": "line", "sharing": {"kind": "private"}});
    let (_, created) = send(app, admin, Method::POST, "/api/v1/reports", Some(&body)).await;
    let id = created["id"].as_str().unwrap();
    let (_, direct) = send(app, admin, Method::POST, "/api/v1/query", Some(&query)).await;
    let rows = direct["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);

    let (status, csv) = fetch(
        app,
        admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=csv"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (header, csv_rows) = parse_csv(&csv);
    assert_eq!(header, ["time", "total_calls", "connect_rate", "avg_talk_time"]);
    for (row, want) in csv_rows.iter().zip(rows) {
        assert_eq!(row[0].get(..10), want[0].as_str().unwrap().get(..10));
        for i in 1..4 {
            assert_eq!(row[i].parse::<f64>().ok(), want[i].as_f64(), "{row:?} vs {want}");
        }
    }

    let (status, xlsx) = fetch(
        app,
        admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=xlsx"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
    let names = book.sheet_names();
    assert_eq!(names.len(), 2, "{names:?}: the rows, then the totals");
    let sheet = book.worksheet_range(&names[0]).unwrap();
    assert_eq!(sheet.height(), 3);
    for (r, want) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        assert!(
            matches!(sheet.get((r as usize, 0)), Some(Data::DateTime(_))),
            "time is a date-time cell"
        );
        assert_eq!(
            sheet.get((r as usize, 1)),
            Some(&Data::Float(want[1].as_f64().unwrap())),
            "a count is a number"
        );
        // Percent cells hold the fraction, formatted as a percent.
        let rate = want[2].as_f64().unwrap();
        let Some(Data::Float(cell)) = sheet.get((r as usize, 2)) else {
            panic!("connect_rate is a number")
        };
        assert!((cell * 100.0 - rate).abs() < 1e-9);
    }
    let totals = book.worksheet_range(&names[1]).unwrap();
    assert_eq!(totals.get((0, 2)).map(|d| d.to_string()), Some("previous".into()));
    let total_calls = direct["totals"]["total_calls"].as_f64().unwrap();
    assert_eq!(totals.get((1, 1)), Some(&Data::Float(total_calls)));

    let (text, info) = report_pdf(app, admin, id).await;
    assert!(
        text.contains("Daily calls") && text.contains("Tenant: acme") && text.contains("Page 1 of"),
        "{text}"
    );
    assert!(text.contains(&format!("{}", direct["totals"]["total_calls"])), "{text}");
    assert!(info.contains("Pages:"));

    // Each export is audited with its row count.
    let (_, audit) = send(app, admin, Method::GET, "/api/v1/audit?limit=10", None).await;
    let exports: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .collect();
    assert_eq!(exports.len(), 3);
    assert!(
        exports.iter().all(|e| e["target"] == id && e["detail"]["rows"] == 2),
        "{audit}"
    );
    let (status, answer) = send(
        app,
        admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=docx"),
        None,
    )
    .await;
    assert_eq!((status, error_fields(&answer)), (400, vec!["format"]));
}

#[tokio::test]
async fn a_view_report_is_the_views_answer_for_each_viewer() {
    let w = world().await;
    let app = &w.app;
    let body = json!({"name": "Team one", "view": "team-leaderboard",
        "params": {"team_id": "t1", "date": "2026-03-10", "sort_by": "calls"}, "visualization": "table",
        "sharing": {"kind": "tenant"}});
    let (status, created) = send(app, &w.admin, Method::POST, "/api/v1/reports", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    for viewer in [&w.admin, &w.users["a1@acme.test"], &w.users["manager@acme.test"]] {
        let (_, result) = send(app, viewer, Method::GET, &format!("/api/v1/reports/{id}/result"), None).await;
        let (_, page) = send(
            app,
            viewer,
            Method::GET,
            "/api/v1/analytics/team-leaderboard/t1?date=2026-03-10&sort_by=calls",
            None,
        )
        .await;
        assert_eq!(answered(&result["result"]), answered(&page));
    }
    // Its drill-down is the team's calls of that day, as the rep may see them.
    let (_, page) = send(
        app,
        &w.users["a1@acme.test"],
        Method::GET,
        &format!("/api/v1/reports/{id}/calls"),
        None,
    )
    .await;
    assert_eq!(ids(&page), BTreeSet::from(["a1".to_string()]));
    let (_, page) = send(app, &w.admin, Method::GET, &format!("/api/v1/reports/{id}/calls"), None).await;
    assert_eq!(ids(&page), BTreeSet::from(["a1".to_string(), "a2".to_string()]));
    // Its files are the view's own export (the same tables, charts and typed cells), under
    // the report's name.
    let (status, xlsx) = fetch(
        app,
        &w.admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=xlsx"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, view_xlsx) = fetch(
        app,
        &w.admin,
        Method::GET,
        "/api/v1/analytics/team-leaderboard/t1?date=2026-03-10&sort_by=calls&format=xlsx",
        None,
    )
    .await;
    let sheets = |bytes: Vec<u8>| {
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
        book.sheet_names()
            .into_iter()
            .map(|name| {
                let range = book.worksheet_range(&name).unwrap();
                (name, range.rows().map(|r| r.to_vec()).collect::<Vec<_>>())
            })
            .collect::<Vec<_>>()
    };
    let (report_sheets, view_sheets) = (sheets(xlsx), sheets(view_xlsx));
    assert_eq!(report_sheets, view_sheets);
    let (name, rows) = &report_sheets[0];
    assert_eq!(name, "Leaderboard");
    let calls = rows[0].iter().position(|h| *h == "calls").expect("a calls column");
    assert!(matches!(rows[1][calls], Data::Float(_)));
    let (text, _) = report_pdf(app, &w.admin, id).await;
    assert!(text.contains("Team one"), "the report's name heads its PDF: {text}");

    // The same question unsaved (a page's export buttons): the same answer and the same file,
    // audited as a preview; a bad one names its field.
    let rep = &w.users["a1@acme.test"];
    let (_, saved) = send(app, rep, Method::GET, &format!("/api/v1/reports/{id}/result"), None).await;
    let (status, preview) = send(app, rep, Method::POST, "/api/v1/reports/preview", Some(&body)).await;
    assert_eq!(
        (status, answered(&preview["result"])),
        (200, answered(&saved["result"]))
    );
    let (_, from_saved) = fetch(
        app,
        rep,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?format=csv"),
        None,
    )
    .await;
    let (status, from_preview) = fetch(
        app,
        rep,
        Method::POST,
        "/api/v1/reports/preview?format=csv",
        Some(&body),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(parse_csv(&from_preview), parse_csv(&from_saved));
    let (_, audit) = send(app, &w.admin, Method::GET, "/api/v1/audit?limit=5", None).await;
    assert_eq!(audit["entries"][0]["detail"]["source"], "report_preview", "{audit}");
    let bad = json!({"view": "leaderboard", "params": {"period": 7}});
    let (status, answer) = send(app, rep, Method::POST, "/api/v1/reports/preview?format=pdf", Some(&bad)).await;
    assert_eq!((status, error_fields(&answer)), (400, vec!["params.period"]));
}

#[tokio::test]
async fn dashboards_keep_their_grid_and_share_like_reports() {
    let w = world().await;
    let app = &w.app;
    let owner = &w.users["manager@acme.test"];
    let (_, made) = send(
        app,
        owner,
        Method::POST,
        "/api/v1/reports",
        Some(&report("Mine", by_agent(), json!({"kind": "tenant"}))),
    )
    .await;
    let report_id = made["id"].as_str().unwrap().to_string();
    let (_, private) = send(
        app,
        &w.users["a3@acme.test"],
        Method::POST,
        "/api/v1/reports",
        Some(&report("A3's", by_agent(), json!({"kind": "private"}))),
    )
    .await;
    let private_id = private["id"].as_str().unwrap();
    let dashboard = json!({"name": "My board", "sharing": {"kind": "team", "team": "t1"}, "widgets": [
        {"id": "w1", "report": report_id, "x": 0, "y": 0, "w": 6, "h": 4},
        {"id": "w2", "view": "leaderboard", "params": {"period": "week"}, "title": "Board", "x": 6, "y": 0, "w": 6, "h": 4}]});
    let (status, created) = send(app, owner, Method::POST, "/api/v1/dashboards", Some(&dashboard)).await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/api/v1/dashboards/{}", created["id"].as_str().unwrap());

    // Moved and resized: a new version, positions kept.
    let mut moved = dashboard.clone();
    moved["widgets"][0]["x"] = json!(3);
    moved["widgets"][0]["w"] = json!(9);
    moved["widgets"][1]["y"] = json!(4);
    let (status, updated) = send(app, owner, Method::PUT, &path, Some(&moved)).await;
    assert_eq!((status, updated["version"].as_i64()), (200, Some(2)), "{updated}");
    let (_, read) = send(app, owner, Method::GET, &path, None).await;
    assert_eq!(read["widgets"], moved["widgets"]);
    let (_, versions) = send(app, owner, Method::GET, &format!("{path}/versions"), None).await;
    assert_eq!(versions["versions"][1]["dashboard"]["widgets"], dashboard["widgets"]);

    // Shared with team t1: its rep sees it, t2's rep and another tenant do not.
    assert_eq!(
        send(app, &w.users["a1@acme.test"], Method::GET, &path, None).await.0,
        200
    );
    assert_eq!(
        send(app, &w.users["a3@acme.test"], Method::GET, &path, None).await.0,
        404
    );
    assert_eq!(send(app, &w.other, Method::GET, &path, None).await.0, 404);
    let (_, theirs) = send(app, &w.other, Method::GET, "/api/v1/dashboards", None).await;
    assert_eq!(theirs["dashboards"], json!([]));

    // Bad widgets name their field, including a report the saver cannot see.
    for (change, field) in [
        (
            json!({"id": "w9", "report": private_id, "x": 0, "y": 0, "w": 4, "h": 4}),
            "widgets[2].report",
        ),
        (
            json!({"id": "w9", "view": "leaderboard", "x": 8, "y": 0, "w": 6, "h": 4}),
            "widgets[2].w",
        ),
        (
            json!({"id": "w1", "view": "leaderboard", "x": 0, "y": 9, "w": 4, "h": 4}),
            "widgets[2].id",
        ),
        (
            json!({"id": "w9", "view": "trends", "x": 0, "y": 9, "w": 4, "h": 4}),
            "widgets[2].params.agent_id",
        ),
        (json!({"id": "w9", "x": 0, "y": 9, "w": 4, "h": 4}), "widgets[2].report"),
    ] {
        let mut bad = moved.clone();
        bad["widgets"].as_array_mut().unwrap().push(change);
        let (status, answer) = send(app, owner, Method::PUT, &path, Some(&bad)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_dashboard");
        assert!(error_fields(&answer).contains(&field), "{field}: {answer}");
    }
    let reader = add_key(&app.store, app.tenant_id, vec![Scope::Read], None).await;
    let (_, listed) = send(app, &Cred::Key(reader), Method::GET, "/api/v1/dashboards", None).await;
    assert_eq!(
        listed["dashboards"],
        json!([]),
        "a key outside the team does not see it"
    );
}

#[tokio::test]
async fn the_catalogue_is_the_engines() {
    let w = world().await;
    let (status, catalogue) = send(&w.app, &w.users["a1@acme.test"], Method::GET, "/api/v1/catalogue", None).await;
    assert_eq!(status, 200);
    let measures = catalogue["measures"].as_array().unwrap();
    assert_eq!(measures.len(), dialboard_engine::measures::MEASURES.len());
    let rate = measures.iter().find(|m| m["name"] == "connect_rate").unwrap();
    assert_eq!(rate["unit"], "percent");
    assert_eq!(
        catalogue["dimensions"].as_array().unwrap().len(),
        dialboard_engine::query::Dimension::ALL.len()
    );
    let board = catalogue["views"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "team-leaderboard")
        .unwrap();
    assert_eq!(board["path_param"], "team_id");
    assert!(catalogue["visualizations"]
        .as_array()
        .unwrap()
        .contains(&json!("stacked_bar")));
    // Every view the catalogue names is served (a report could not run one that is not).
    let (_, doc) = w.app.get("/api/v1/openapi.json").await;
    for view in catalogue["views"].as_array().unwrap() {
        let name = view["name"].as_str().unwrap();
        let path = match view["path_param"].as_str() {
            Some(p) => format!("/api/v1/analytics/{name}/{{{p}}}"),
            None => format!("/api/v1/analytics/{name}"),
        };
        assert!(doc["paths"].get(&path).is_some(), "{path}");
    }
}

#[tokio::test]
async fn a_dashboards_filters_narrow_a_report_where_they_apply() {
    let w = world().await;
    let app = &w.app;
    let id = &shared_by_agent(&w).await;
    // One day and one team: what /query gives for the question so narrowed, for each viewer.
    let mut narrowed = by_agent();
    narrowed["range"] = json!({"start": "2026-03-11", "end": "2026-03-12"});
    narrowed["filters"] = json!({"team": ["t1"]});
    let path = format!("/api/v1/reports/{id}/result?start=2026-03-11&end=2026-03-12&team=t1");
    for viewer in [&w.admin, &w.users["a1@acme.test"]] {
        let (status, result) = send(app, viewer, Method::GET, &path, None).await;
        let (_, direct) = send(app, viewer, Method::POST, "/api/v1/query", Some(&narrowed)).await;
        assert_eq!((status, &result["result"]), (200, &direct), "{result}");
    }
    let (_, page) = send(
        app,
        &w.admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/calls?start=2026-03-11&end=2026-03-12&team=t1&limit=1000"),
        None,
    )
    .await;
    let calls = page["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 8, "{page}");
    assert!(calls
        .iter()
        .all(|c| c["team_id"] == "t1" && c["started_at"].as_str().unwrap().starts_with("2026-03-11")));
    // The stored question is unchanged; a filter a view does not take, or an unknown one, is named.
    assert_eq!(
        send(app, &w.admin, Method::GET, &format!("/api/v1/reports/{id}"), None)
            .await
            .1["query"],
        by_agent()
    );
    let (_, trends) = send(
        app,
        &w.admin,
        Method::POST,
        "/api/v1/reports",
        Some(&json!({"name": "T", "view": "trends", "params": {"agent_id": "a1"}})),
    )
    .await;
    let trends = trends["id"].as_str().unwrap();
    let (status, answer) = send(
        app,
        &w.admin,
        Method::GET,
        &format!("/api/v1/reports/{trends}/result?team=t1"),
        None,
    )
    .await;
    assert_eq!((status, error_fields(&answer)), (400, vec!["team"]));
    let (status, answer) = send(
        app,
        &w.admin,
        Method::GET,
        &format!("/api/v1/reports/{id}/result?colour=red"),
        None,
    )
    .await;
    assert_eq!((status, error_fields(&answer)), (400, vec!["colour"]));
}

#[tokio::test]
async fn a_large_drill_down_export_is_a_job_with_the_viewers_reach() {
    // Past 5 rows (100,000 in production) an export is a job.
    let w = world_exporting_at_once(5).await;
    let app = &w.app;
    let id = &shared_by_agent(&w).await;
    let rep = &w.users["a1@acme.test"];
    let (status, queued) = send(
        app,
        rep,
        Method::GET,
        &format!("/api/v1/reports/{id}/calls?format=csv"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(
        queued["query"]["filters"]["agent"],
        json!(["a1"]),
        "the job keeps the rep's reach"
    );
    let location = format!("/api/v1/exports/{}", queued["id"].as_str().unwrap());
    let worker = dialboard::jobs::Worker::for_server(app.store.clone());
    assert!(matches!(
        worker.run_once(None).await.unwrap(),
        dialboard::jobs::Outcome::Succeeded { .. }
    ));
    assert_eq!(
        worker.run_once(None).await.unwrap(),
        dialboard::jobs::Outcome::Idle,
        "no work left queued"
    );
    let (_, done) = send(app, rep, Method::GET, &location, None).await;
    assert_eq!(
        (done["status"].as_str(), done["rows"].as_i64()),
        (Some("succeeded"), Some(8)),
        "{done}"
    );
    let (status, csv) = fetch(app, rep, Method::GET, done["file_url"].as_str().unwrap(), None).await;
    assert_eq!(status, 200);
    let (header, rows) = parse_csv(&csv);
    let agent = header.iter().position(|h| h == "agent_name").unwrap();
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r[agent] == "a1"), "{rows:?}");
    // Another tenant sees neither the job nor its file.
    assert_eq!(send(app, &w.other, Method::GET, &location, None).await.0, 404);
}
