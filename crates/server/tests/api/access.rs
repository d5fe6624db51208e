//! Access control (SPEC §8): every endpoint × every role and key scope × own and other
//! tenant; sessions; rate limits; the audit log; hostile input.

use crate::helpers::{add_key, error_fields, TestApp};
use dialboard_store::Scope;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const PASSWORD: &str = "password-1";

/// How a request authenticates.
#[derive(Clone)]
enum Cred {
    None,
    Key(String),
    Cookie(String),
}

struct World {
    app: TestApp,
    creds: Vec<(&'static str, Cred)>,
    other_admin: String,
}

impl Cred {
    fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Cred::None => req,
            Cred::Key(k) => req.bearer_auth(k),
            Cred::Cookie(c) => req.header("cookie", c),
        }
    }
}

/// The status of a request without a body.
async fn status_of(app: &TestApp, cred: &Cred, method: Method, path: &str) -> u16 {
    send(app, cred, method, path, None).await.0
}

async fn send(app: &TestApp, cred: &Cred, method: Method, path: &str, body: Option<Value>) -> (u16, Value, String) {
    let mut req = app.client.request(method, format!("{}{path}", app.url));
    req = cred.apply(req);
    if let Cred::Cookie(_) = cred {
        req = req.header("origin", &app.url); // as the server's own pages send
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Option<String>, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r.headers().get("set-cookie").map(|c| c.to_str().unwrap().to_string());
    (status, cookie, r.json().await.unwrap_or(Value::Null))
}

fn session(set_cookie: &str) -> Cred {
    Cred::Cookie(set_cookie.split(';').next().unwrap().to_string())
}

fn call(id: &str, agent: &str, team: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": id, "agent_id": agent, "team_id": team, "disposition": "Connected",
        "started_at": "2026-03-10T10:00:00Z", "talk_seconds": 60})
}

/// Tenant acme with calls of a1/a2 in t1 and a3 in t2, four users and five keys; tenant
/// globex with a call whose ids collide with acme's.
async fn world() -> World {
    let app = TestApp::spawn("UTC").await;
    app.events(json!([
        call("c1", "a1", "t1"),
        call("c2", "a2", "t1"),
        call("c3", "a3", "t2")
    ]))
    .await;
    let (_, other_admin) = app.other_tenant("globex", false).await;
    let (s, _) = app
        .post("/api/v1/events", &other_admin, &json!([call("g1", "a1", "t1")]))
        .await;
    assert_eq!(s, 200);
    let admin = Cred::Key(app.key.clone());
    for (email, role, agent, teams) in [
        ("admin@acme.test", "admin", None, vec![]),
        ("manager@acme.test", "manager", None, vec!["t1"]),
        ("agent@acme.test", "agent", Some("a1"), vec!["t1"]),
        ("viewer@acme.test", "viewer", None, vec![]),
    ] {
        let body = json!({"email": email, "password": PASSWORD, "role": role, "agent_id": agent, "teams": teams});
        let (status, user, text) = send(&app, &admin, Method::POST, "/api/v1/users", Some(body)).await;
        assert_eq!(status, 201, "{text}");
        assert!(!text.contains(PASSWORD) && !text.contains("argon2"), "{text}");
        assert_eq!(user["role"], role);
    }
    let mut creds = vec![("none", Cred::None), ("admin key", admin)];
    for (name, scopes) in [("read key", vec![Scope::Read]), ("ingest key", vec![Scope::Ingest])] {
        creds.push((name, Cred::Key(add_key(&app.store, app.tenant_id, scopes, None).await)));
    }
    creds.push((
        "agent key a1",
        Cred::Key(add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await),
    ));
    let team_key = dialboard::cli::create_key(&app.store, app.tenant_id, vec![Scope::Read], None, Some("t2".into()))
        .await
        .unwrap();
    creds.push(("team key t2", Cred::Key(team_key)));
    for (name, email) in [
        ("admin user", "admin@acme.test"),
        ("manager t1", "manager@acme.test"),
        ("agent a1", "agent@acme.test"),
        ("viewer", "viewer@acme.test"),
    ] {
        let (status, cookie, body) = login(&app, email, PASSWORD).await;
        assert_eq!(status, 200, "{body}");
        creds.push((name, session(&cookie.unwrap())));
    }
    creds.push(("globex admin", Cred::Key(other_admin.clone())));
    World {
        app,
        creds,
        other_admin,
    }
}

/// Which calls (by id) each credential may see in acme's data.
fn visible_calls(name: &str) -> BTreeSet<&'static str> {
    match name {
        "agent key a1" | "agent a1" => ["c1"].into(),
        "manager t1" => ["c1", "c2"].into(),
        "team key t2" => ["c3"].into(),
        "globex admin" => ["g1"].into(),
        _ => ["c1", "c2", "c3"].into(),
    }
}

#[tokio::test]
async fn every_endpoint_for_every_credential() {
    let w = world().await;
    let app = &w.app;
    let can_ingest = ["admin key", "ingest key", "admin user", "globex admin"];
    let is_admin = ["admin key", "admin user", "globex admin"];
    for (name, cred) in &w.creds {
        let expect = |allowed: bool| match (name, allowed) {
            (&"none", _) => 401,
            (_, true) => 200,
            (_, false) => 403,
        };
        let reads = *name != "ingest key";
        let check = |(status, body, _): (u16, Value, String), want: u16, what: &str| {
            assert_eq!(status, want, "{name}: {what}: {body}");
            assert!(status < 500);
            if status >= 400 {
                assert!(body["error"]["code"].is_string(), "{name}: {what}: error shape {body}");
            }
        };
        let mut event = call(&format!("new-{name}"), "a1", "t1");
        event["started_at"] = json!("2026-05-01T10:00:00Z"); // outside the range read below
        let event = json!([event]);
        check(
            send(app, cred, Method::POST, "/api/v1/events", Some(event)).await,
            expect(can_ingest.contains(name)),
            "ingest",
        );
        let query = json!({"measures": ["total_calls"], "range": {"start": "2026-03-01", "end": "2026-03-11"}});
        let q = send(app, cred, Method::POST, "/api/v1/query", Some(query)).await;
        check(q.clone(), expect(reads), "query");
        let listed = send(
            app,
            cred,
            Method::GET,
            "/api/v1/calls?start=2026-03-01&end=2026-03-11",
            None,
        )
        .await;
        check(listed.clone(), expect(reads), "drill-down");
        if reads && *name != "none" {
            // No foreign or out-of-scope row, and none of what is in scope is missing.
            let ids: BTreeSet<&str> = listed.1["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["call_id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, visible_calls(name), "{name}: drill-down rows");
            let total = q.1["totals"]["total_calls"].as_i64().unwrap();
            let aggregate = if name.starts_with("agent") {
                3
            } else {
                visible_calls(name).len() as i64
            };
            assert_eq!(total, aggregate, "{name}: tenant total (agents see aggregates)");
            // Coaching and compliance rows are individual: a rep sees only their own.
            let agents: BTreeSet<String> = visible_calls(name)
                .iter()
                .map(|c| if *c == "g1" { "a1".into() } else { c.replace('c', "a") })
                .collect();
            let rows = |v: &Value, list: &str| -> BTreeSet<String> {
                v[list]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["agent_id"].as_str().unwrap().to_string())
                    .collect()
            };
            let day = send(
                app,
                cred,
                Method::GET,
                "/api/v1/analytics/compliance?date=2026-03-10",
                None,
            )
            .await;
            assert_eq!(rows(&day.1, "agents"), agents, "{name}: compliance rows");
            if visible_calls(name).contains("c1") {
                let t1 = "/api/v1/analytics/coaching-opportunities/t1?date=2026-03-10";
                let coaching = send(app, cred, Method::GET, t1, None).await;
                assert!(
                    rows(&coaching.1, "opportunities").is_subset(&agents),
                    "{name}: coaching {}",
                    coaching.2
                );
            }
            for id in ["c1", "c3", "g1"] {
                let visible = visible_calls(name).contains(id);
                let r = send(app, cred, Method::GET, &format!("/api/v1/calls/{id}"), None).await;
                check(r, if visible { 200 } else { 404 }, &format!("call {id}"));
            }
        }
        let me = send(app, cred, Method::GET, "/api/v1/auth/me", None).await;
        if *name == "none" {
            // Signed out is an answer, not an error: browsers log every 401 of a first visit.
            assert_eq!((me.0, &me.1), (200, &json!({"user": null})), "me, signed out: {}", me.2);
        } else {
            check(me, expect(true), "me");
        }
        for path in ["/api/v1/users", "/api/v1/keys", "/api/v1/audit"] {
            check(
                send(app, cred, Method::GET, path, None).await,
                expect(is_admin.contains(name)),
                path,
            );
        }
        let new_key = json!({"scopes": ["read"], "name": format!("made by {name}")});
        let made = send(app, cred, Method::POST, "/api/v1/keys", Some(new_key)).await;
        check(
            made.clone(),
            if is_admin.contains(name) { 201 } else { expect(false) },
            "create key",
        );
        let new_user = json!({"email": format!("u{}@acme.test", name.len()), "password": PASSWORD, "role": "viewer"});
        let status = send(app, cred, Method::POST, "/api/v1/users", Some(new_user)).await.0;
        assert!(
            matches!(status, 201 | 409) == is_admin.contains(name),
            "{name}: create user answered {status}"
        );
        let scope = match *name {
            "manager t1" => "?scope=team&scope_id=t1",
            "team key t2" => "?scope=team&scope_id=t2",
            _ => "",
        };
        let sse = app.client.get(format!("{}/api/v1/live/sse{scope}", app.url));
        // What a browser's EventSource on the server's own page sends.
        let sse = cred.apply(sse).header("sec-fetch-site", "same-origin");
        assert_eq!(
            sse.send().await.unwrap().status().as_u16(),
            expect(reads),
            "{name}: live stream"
        );
    }
    // Ids of another tenant are simply not there, even for its own key names.
    let (status, _, _) = send(
        app,
        &Cred::Key(w.other_admin.clone()),
        Method::DELETE,
        "/api/v1/keys/0000000000000000",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_admin_cannot_touch_another_tenants_users_or_keys() {
    let w = world().await;
    let app = &w.app;
    let acme = Cred::Key(app.key.clone());
    let globex = Cred::Key(w.other_admin.clone());
    let (_, users, _) = send(app, &acme, Method::GET, "/api/v1/users", None).await;
    let acme_user = users["users"][0]["id"].as_str().unwrap().to_string();
    let (_, keys, _) = send(app, &acme, Method::GET, "/api/v1/keys", None).await;
    let acme_key = keys["keys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        status_of(app, &globex, Method::DELETE, &format!("/api/v1/users/{acme_user}")).await,
        404
    );
    assert_eq!(
        status_of(app, &globex, Method::DELETE, &format!("/api/v1/keys/{acme_key}")).await,
        404
    );
    let (_, theirs, text) = send(app, &globex, Method::GET, "/api/v1/users", None).await;
    assert_eq!(theirs["users"], json!([]), "{text}");
    let (_, audit, text) = send(app, &globex, Method::GET, "/api/v1/audit", None).await;
    assert!(!text.contains("acme.test"), "{audit}");
    // acme's own admin still can.
    assert_eq!(
        status_of(app, &acme, Method::DELETE, &format!("/api/v1/keys/{acme_key}")).await,
        204
    );
}

#[tokio::test]
async fn sessions_end_at_logout_and_when_the_user_is_deleted() {
    let app = TestApp::spawn("UTC").await;
    let admin = Cred::Key(app.key.clone());
    let body = json!({"email": "Ana@Acme.test", "password": PASSWORD, "role": "viewer"});
    let (_, user, _) = send(&app, &admin, Method::POST, "/api/v1/users", Some(body)).await;
    assert_eq!(user["email"], "ana@acme.test", "e-mails are case-insensitive");
    let (status, _, body) = login(&app, "ana@acme.test", "wrong-password").await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_login")));
    assert_eq!(
        login(&app, "nobody@acme.test", PASSWORD).await.0,
        401,
        "same answer for unknown e-mails"
    );
    let (status, cookie, body) = login(&app, "ANA@acme.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let s = session(&cookie);
    let (status, me, _) = send(&app, &s, Method::GET, "/api/v1/auth/me", None).await;
    assert_eq!(
        (status, me["user"]["role"].as_str(), me["tenant"].as_str()),
        (200, Some("viewer"), Some("acme"))
    );
    // A viewer reads but changes nothing.
    assert_eq!(
        send(&app, &s, Method::POST, "/api/v1/events", Some(json!([]))).await.0,
        403
    );
    assert_eq!(status_of(&app, &s, Method::POST, "/api/v1/auth/logout").await, 204);
    assert_eq!(
        status_of(&app, &s, Method::GET, "/api/v1/auth/me").await,
        401,
        "logged out"
    );

    let (_, cookie, _) = login(&app, "ana@acme.test", PASSWORD).await;
    let s = session(&cookie.unwrap());
    assert_eq!(status_of(&app, &s, Method::GET, "/api/v1/auth/me").await, 200);
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        status_of(&app, &admin, Method::DELETE, &format!("/api/v1/users/{id}")).await,
        204
    );
    assert_eq!(
        status_of(&app, &s, Method::GET, "/api/v1/auth/me").await,
        401,
        "deleted users lose their sessions"
    );

    // Sessions expire: the store refuses a session past its expiry.
    let (_, cookie, _) = login(&app, "admin-less@acme.test", PASSWORD).await;
    assert!(cookie.is_none());
    let body = json!({"email": "bo@acme.test", "password": PASSWORD, "role": "admin"});
    send(&app, &admin, Method::POST, "/api/v1/users", Some(body)).await;
    let (_, cookie, _) = login(&app, "bo@acme.test", PASSWORD).await;
    let token = cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("dialboard_session=")
        .to_string();
    let hash = dialboard::access::hash_secret(&token);
    let now = jiff::Timestamp::now().as_second();
    assert!(app.store.session(hash, now).await.unwrap().is_some());
    assert!(app.store.session(hash, now + 13 * 3600).await.unwrap().is_none());
}

#[tokio::test]
async fn keys_are_shown_once_revoked_at_once_and_rate_limited() {
    let app = TestApp::spawn("UTC").await;
    let admin = Cred::Key(app.key.clone());
    let body = json!({"scopes": ["read", "ingest"], "name": "dialer",
        "rate_limits": {"ingest": {"per_second": 100, "burst": 100}, "other": {"per_second": 1, "burst": 2}}});
    let (status, made, _) = send(&app, &admin, Method::POST, "/api/v1/keys", Some(body)).await;
    assert_eq!(status, 201);
    let secret = made["key"].as_str().unwrap().to_string();
    let (_, listed, text) = send(&app, &admin, Method::GET, "/api/v1/keys", None).await;
    assert!(!text.contains(&secret), "a key's secret is shown once");
    assert!(listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["id"] == made["id"] && k["name"] == "dialer"));
    let key = Cred::Key(secret);
    assert_eq!(status_of(&app, &key, Method::GET, "/api/v1/auth/me").await, 200);
    assert_eq!(status_of(&app, &key, Method::GET, "/api/v1/auth/me").await, 200);
    let r = app
        .client
        .get(format!("{}/api/v1/auth/me", app.url))
        .bearer_auth(match &key {
            Cred::Key(k) => k,
            _ => unreachable!(),
        });
    let r = r.send().await.unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        send(&app, &key, Method::POST, "/api/v1/events", Some(json!([])))
            .await
            .0,
        200,
        "ingest has its own budget"
    );
    // Other credentials are not affected.
    assert_eq!(status_of(&app, &admin, Method::GET, "/api/v1/auth/me").await, 200);
    let bad = json!({"scopes": ["read", "root"], "agent_id": "a", "team_id": "t"});
    let (status, body, _) = send(&app, &admin, Method::POST, "/api/v1/keys", Some(bad)).await;
    assert_eq!(status, 400);
    let fields = error_fields(&body);
    assert_eq!(fields, ["scopes", "team_id"]);

    let id = made["id"].as_str().unwrap();
    assert_eq!(
        status_of(&app, &admin, Method::DELETE, &format!("/api/v1/keys/{id}")).await,
        204
    );
    assert_eq!(
        send(&app, &key, Method::POST, "/api/v1/events", Some(json!([])))
            .await
            .0,
        401,
        "revoked at once"
    );
    assert_eq!(
        status_of(&app, &admin, Method::DELETE, &format!("/api/v1/keys/{id}")).await,
        404
    );
}

#[tokio::test]
async fn the_audit_log_records_logins_and_changes_without_secrets() {
    let app = TestApp::spawn("UTC").await;
    let admin = Cred::Key(app.key.clone());
    let body =
        json!({"email": "cy@acme.test", "password": PASSWORD, "role": "agent", "agent_id": "a7", "teams": ["t1"]});
    let (_, user, _) = send(&app, &admin, Method::POST, "/api/v1/users", Some(body)).await;
    login(&app, "cy@acme.test", "not-the-password").await;
    let (_, cookie, _) = login(&app, "cy@acme.test", PASSWORD).await;
    send(
        &app,
        &session(&cookie.unwrap()),
        Method::POST,
        "/api/v1/auth/logout",
        None,
    )
    .await;
    let (_, key, _) = send(
        &app,
        &admin,
        Method::POST,
        "/api/v1/keys",
        Some(json!({"scopes": ["read"]})),
    )
    .await;
    send(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/keys/{}", key["id"].as_str().unwrap()),
        None,
    )
    .await;
    send(
        &app,
        &admin,
        Method::DELETE,
        &format!("/api/v1/users/{}", user["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, log, text) = send(&app, &admin, Method::GET, "/api/v1/audit?limit=7", None).await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user_deleted",
            "key_revoked",
            "key_created",
            "logout",
            "login",
            "login_failed",
            "user_created"
        ]
    );
    assert_eq!(log["entries"][4]["actor"], "cy@acme.test");
    assert!(log["entries"][0]["actor"].as_str().unwrap().starts_with("key:"));
    assert!(
        !text.contains(PASSWORD) && !text.contains("not-the-password") && !text.contains(key["key"].as_str().unwrap())
    );
    // Paging back reaches the key created by the test setup.
    let before = log["next_before"].as_i64().unwrap();
    let (_, older, _) = send(
        &app,
        &admin,
        Method::GET,
        &format!("/api/v1/audit?before={before}"),
        None,
    )
    .await;
    assert_eq!(older["entries"][0]["action"], "key_created");
    assert_eq!(status_of(&app, &admin, Method::GET, "/api/v1/audit?limit=0").await, 400);
}

#[tokio::test]
async fn hostile_input_gets_a_clear_4xx_and_never_leaks() {
    let w = world().await;
    let app = &w.app;
    let admin = Cred::Key(app.key.clone());
    let agent = w.creds.iter().find(|(n, _)| *n == "agent key a1").unwrap().1.clone();
    let range = json!({"start": "2026-03-01", "end": "2026-04-01"});
    // Quotes, NULs, wildcards and patterns are plain values that match nothing.
    for value in [
        "a1' OR '1'='1",
        "a1\u{0}",
        "%",
        "*",
        "a_",
        ".*",
        "\\",
        "\"; DROP TABLE calls; --",
    ] {
        let q = json!({"measures": ["total_calls"], "dimensions": ["agent"], "filters": {"agent": [value]}, "range": range});
        let (status, body, _) = send(app, &admin, Method::POST, "/api/v1/query", Some(q.clone())).await;
        assert_eq!((status, &body["rows"]), (200, &json!([])), "{value:?}: {body}");
        assert_eq!(
            send(app, &agent, Method::POST, "/api/v1/query", Some(q)).await.0,
            403,
            "{value:?}"
        );
        let path = format!(
            "/api/v1/calls?agent={}&start=2026-03-01&end=2026-04-01",
            urlencode(value)
        );
        let (status, body, _) = send(app, &admin, Method::GET, &path, None).await;
        assert_eq!((status, &body["calls"]), (200, &json!([])), "{value:?}: {body}");
        let (status, _, _) = send(
            app,
            &admin,
            Method::GET,
            &format!("/api/v1/calls/{}", urlencode(value)),
            None,
        )
        .await;
        assert_eq!(status, 404, "{value:?}");
    }
    let unknown = json!({"measures": ["total_calls"], "dimensions": ["password_hash"], "filters": {"tenant_id": ["2"]}, "range": range});
    let (status, body, _) = send(app, &admin, Method::POST, "/api/v1/query", Some(unknown)).await;
    assert_eq!(status, 400);
    let fields = error_fields(&body);
    assert!(
        fields.contains(&"dimensions[0]") && fields.iter().any(|f| f.contains("tenant_id")),
        "{body}"
    );

    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let huge = format!("[\"{}\"]", "x".repeat(11 * 1024 * 1024));
    for (path, body, want) in [
        // An array whose one event is too deep: that event is rejected, the request is fine.
        ("/api/v1/events", deep.clone(), 200),
        ("/api/v1/query", deep.clone(), 400),
        ("/api/v1/users", deep.clone(), 400),
        ("/api/v1/keys", deep.clone(), 400),
        ("/api/v1/auth/login", deep, 413), // a login takes 16 KiB at most
        ("/api/v1/events", huge.clone(), 413),
        ("/api/v1/query", huge, 413),
        ("/api/v1/query", "\u{feff}{\"measures\": [\"total_calls\"]".into(), 400),
        ("/api/v1/auth/login", "{\"email\": 5}".into(), 400),
    ] {
        let r = app
            .client
            .post(format!("{}{path}", app.url))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, want, "{path}: {}", &text[..text.len().min(300)]);
        let v: Value = serde_json::from_str(&text).unwrap();
        if status == 200 {
            let message = v["rejected"][0]["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains("recursion limit"), "{text}");
        } else {
            assert!(v["error"]["code"].is_string(), "{path}: {text}");
        }
        assert!(!text.contains("rusqlite") && !text.contains("SELECT"), "{path}: {text}");
    }
    let bytes = app
        .client
        .post(format!("{}/api/v1/query", app.url))
        .bearer_auth(&app.key)
        .body(vec![0xff, 0xfe, 0x00, 0x7b])
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.status().as_u16(), 400);
    let (status, body, _) = send(app, &admin, Method::GET, "/api/v1/calls?limit=abc&cursor=%00%27", None).await;
    assert_eq!(
        (status, body["error"]["fields"][0]["field"].as_str()),
        (400, Some("limit"))
    );
    let (status, _, _) = send(app, &admin, Method::GET, "/api/v1/calls?cursor=%00%27", None).await;
    assert!(status == 400 || status == 200, "a bad cursor is a 400 (got {status})");
    let mut bad_header = app.client.get(format!("{}/api/v1/auth/me", app.url));
    bad_header = bad_header
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .header("cookie", "dialboard_session=nope");
    assert_eq!(bad_header.send().await.unwrap().status().as_u16(), 401);
    let (status, _, _) = send(
        app,
        &Cred::Cookie("dialboard_session=dbs_forged".into()),
        Method::GET,
        "/api/v1/auth/me",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn leaderboard_privacy_hides_other_reps_from_agents_only() {
    let app = TestApp::spawn("UTC").await;
    let (private, admin) = app.other_tenant("private", true).await;
    let events = json!([
        call("c1", "a1", "t1"),
        call("c2", "a2", "t1"),
        call("c3", "a2", "t1"),
        call("c4", "a3", "t2")
    ]);
    assert_eq!(app.post("/api/v1/events", &admin, &events).await.0, 200);
    let agent = add_key(&app.store, private, vec![Scope::Read], Some("a1")).await;
    let board = json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": "2026-03-01", "end": "2026-04-01"},
        "order_by": [["total_calls", "desc"]], "compare": "previous_period"});
    let (status, body) = app.post("/api/v1/query", &agent, &board).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["anonymous", 2], ["a1", 1], ["anonymous", 1]]));
    let (_, body) = app.post("/api/v1/query", &admin, &board).await;
    assert_eq!(
        body["rows"],
        json!([["a2", 2], ["a1", 1], ["a3", 1]]),
        "admins see names"
    );
    // Without privacy (acme), agents see the names.
    let acme_agent = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    app.events(json!([call("c1", "a1", "t1"), call("c2", "a2", "t1")]))
        .await;
    let (_, body) = app.post("/api/v1/query", &acme_agent, &board).await;
    let names: BTreeSet<&str> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "a2"].into());
}

/// A rep who opts out of public leaderboards (a directory setting, SPEC §14) is `anonymous` to
/// colleagues — in `/query`, in the leaderboards and in the agent directory — still sees their
/// own name, and managers and admins still see them.
#[tokio::test]
async fn a_rep_who_opts_out_is_anonymous_to_colleagues_only() {
    let app = TestApp::spawn("UTC").await;
    for (agent, opt_out) in [("a1", false), ("a2", true), ("a3", false)] {
        let body = json!({"name": agent, "team_id": "t1", "leaderboard_opt_out": opt_out});
        let (status, answer) = app
            .send(Method::PUT, &format!("/api/v1/agents/{agent}"), &app.key, Some(&body))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let bad = json!({"name": "a4", "leaderboard_opt_out": "yes"});
    let (status, answer) = app.send(Method::PUT, "/api/v1/agents/a4", &app.key, Some(&bad)).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.to_string().contains("leaderboard_opt_out"), "{answer}");
    app.events(json!([
        call("c1", "a1", "t1"),
        call("c2", "a2", "t1"),
        call("c3", "a2", "t1"),
        call("c4", "a3", "t1"),
    ]))
    .await;
    let board = json!({"measures": ["total_calls"], "dimensions": ["agent"], "range": {"start": "2026-03-01", "end": "2026-04-01"},
        "order_by": [["total_calls", "desc"]]});
    let a1 = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let (status, body) = app.post("/api/v1/query", &a1, &board).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rows"], json!([["anonymous", 2], ["a1", 1], ["a3", 1]]));
    let path = "/api/v1/analytics/team-leaderboard/t1?start=2026-03-01&end=2026-04-01";
    let (status, view) = app.send(Method::GET, path, &a1, None).await;
    assert_eq!(status, 200, "{view}");
    let names: Vec<&str> = view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["agent_id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["anonymous", "a1", "a3"], "{view}");
    let (_, agents) = app.send(Method::GET, "/api/v1/agents", &a1, None).await;
    assert!(!agents.to_string().contains("\"a2\""), "{agents}");
    // The rep who opted out sees their own name; a manager and an admin see everyone's.
    let a2 = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a2")).await;
    let (_, body) = app.post("/api/v1/query", &a2, &board).await;
    assert_eq!(body["rows"], json!([["a2", 2], ["a1", 1], ["a3", 1]]));
    let manager = dialboard::cli::create_key(&app.store, app.tenant_id, vec![Scope::Read], None, Some("t1".into()))
        .await
        .unwrap();
    for key in [&manager, &app.key] {
        let (_, body) = app.post("/api/v1/query", key, &board).await;
        assert_eq!(body["rows"], json!([["a2", 2], ["a1", 1], ["a3", 1]]));
        let (_, view) = app.send(Method::GET, path, key, None).await;
        assert_eq!(view["entries"][0]["agent_id"], "a2", "{view}");
    }
}

/// The tenant leaderboard answers its top `limit` rows, states how many there are, and always
/// includes the caller's own row with its rank among all of them.
#[tokio::test]
async fn the_leaderboard_is_limited_and_keeps_the_callers_own_row() {
    let app = TestApp::spawn("UTC").await;
    let events: Vec<Value> = (1..=4)
        .flat_map(|agent| (0..agent).map(move |i| call(&format!("c{agent}-{i}"), &format!("a{agent}"), "t1")))
        .collect();
    app.events(json!(events)).await;
    let agent = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a1")).await;
    let path = "/api/v1/analytics/leaderboard?period=all_time&limit=2";
    let (status, board) = app.send(reqwest::Method::GET, path, &agent, None).await;
    assert_eq!(status, 200, "{board}");
    let ranks: Vec<(i64, &str)> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["rank"].as_i64().unwrap(), e["agent_id"].as_str().unwrap()))
        .collect();
    assert_eq!(ranks, [(1, "a4"), (2, "a3"), (4, "a1")]);
    assert_eq!(board["total_entries"], 4);
    // An admin has no row of its own; without a limit, 100 rows at most.
    let (_, board) = app.get("/api/v1/analytics/leaderboard?period=all_time&limit=1").await;
    assert_eq!(board["entries"].as_array().unwrap().len(), 1);
    let (_, board) = app.get("/api/v1/analytics/leaderboard?period=all_time").await;
    assert_eq!(board["entries"].as_array().unwrap().len(), 4);
    let (status, error) = app.get("/api/v1/analytics/leaderboard?limit=0").await;
    assert_eq!(status, 400);
    assert!(error.to_string().contains("limit"), "{error}");
}
