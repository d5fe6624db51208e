//! Hostile clients against login, sessions and the serving loop (issue 21: items 1, 3, 4, 7,
//! 8 and `/metrics`), through real HTTP connections.

use crate::helpers::TestApp;
use dialboard::api::guard::Security;
use dialboard::serve::Limits;
use reqwest::Method;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "long-enough-secret";

/// A client whose connections come from `ip` (any 127.x.y.z is this machine on Linux).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login_from(app: &TestApp, client: &reqwest::Client, body: Value) -> (u16, Option<String>, Value) {
    let r = client
        .post(format!("{}/api/v1/auth/login", app.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r.headers().get("set-cookie").map(|c| c.to_str().unwrap().to_string());
    (status, cookie, r.json().await.unwrap_or(Value::Null))
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Option<String>, Value) {
    login_from(app, &app.client, json!({"email": email, "password": password})).await
}

async fn add_user(app: &TestApp, key: &str, email: &str, role: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": PASSWORD, "role": role});
    app.post("/api/v1/users", key, &body).await
}

/// The `name=value` part of a `Set-Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn login_bounds_the_email_before_using_it_and_limits_each_address() {
    let app = TestApp::spawn("UTC").await;
    let huge = format!("{}@example.com", "x".repeat(1_900_000));
    let (status, _, body) = login(&app, &huge, "whatever-it-is").await;
    assert_eq!(status, 413, "a 1.9 MB e-mail is refused unread: {body}");
    let long = format!("{}@example.com", "x".repeat(300));
    let (status, _, body) = login(&app, &long, "whatever-it-is").await;
    assert_eq!(
        (status, body["error"]["fields"][0]["field"].as_str()),
        (400, Some("email"))
    );
    // A flood of made-up e-mails from one address is slowed at that address.
    let flooder = client_from("127.0.0.3");
    let mut statuses = Vec::new();
    for i in 0..200 {
        let body = json!({"email": format!("nobody{i}@example.com"), "password": "whatever-it-is"});
        statuses.push(login_from(&app, &flooder, body).await.0);
        if statuses.last() == Some(&429) {
            break;
        }
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    assert_eq!(
        login(&app, "nobody0@example.com", "whatever-it-is").await.0,
        401,
        "other addresses go on"
    );
}

#[tokio::test]
async fn a_strangers_wrong_attempts_do_not_lock_out_the_real_user() {
    let app = TestApp::spawn("UTC").await;
    assert_eq!(add_user(&app, &app.key, "ana@acme.test", "viewer").await.0, 201);
    let stranger = client_from("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let body = json!({"email": "ana@acme.test", "password": "not-her-password"});
        statuses.push(login_from(&app, &stranger, body).await.0);
    }
    assert_eq!(statuses.last(), Some(&429), "the stranger is slowed: {statuses:?}");
    let (status, _, body) = login(&app, "ana@acme.test", PASSWORD).await;
    assert_eq!(status, 200, "ana still logs in from her own address: {body}");
}

#[tokio::test]
async fn unknown_emails_take_as_long_as_wrong_passwords() {
    let app = TestApp::spawn("UTC").await;
    assert_eq!(add_user(&app, &app.key, "ana@acme.test", "viewer").await.0, 201);
    let timed = |email: String| {
        let app = &app;
        async move {
            let start = Instant::now();
            let (status, _, body) = login(app, &email, "not-the-password").await;
            assert_eq!(status, 401, "{body}");
            start.elapsed()
        }
    };
    timed("warm-up@acme.test".into()).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..5 {
        known.push(timed("ana@acme.test".into()).await);
        unknown.push(timed(format!("nobody{i}@acme.test")).await);
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2], unknown[2]);
    assert!(
        unknown * 2 > known,
        "an unknown e-mail answers in {unknown:?}, a known one in {known:?}"
    );
}

#[tokio::test]
async fn weak_passwords_are_refused_naming_the_field() {
    let app = TestApp::spawn("UTC").await;
    for weak in ["aaaaaaaa", "password1", "12345678", "Qwerty123"] {
        let body = json!({"email": "bo@acme.test", "password": weak, "role": "viewer"});
        let (status, answer) = app.post("/api/v1/users", &app.key, &body).await;
        assert_eq!(
            (status, answer["error"]["fields"][0]["field"].as_str()),
            (400, Some("password")),
            "{weak}: {answer}"
        );
    }
}

#[tokio::test]
async fn emails_are_per_tenant_neither_leaked_nor_squatted() {
    let app = TestApp::spawn("UTC").await;
    let (_, globex) = app.other_tenant("globex", false).await;
    // Another tenant registers acme's admin first: acme can still add her, and neither
    // answer says that the address exists elsewhere.
    let (status, body) = add_user(&app, &globex, "admin@acme.test", "admin").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = add_user(&app, &app.key, "admin@acme.test", "admin").await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = add_user(&app, &app.key, "admin@acme.test", "viewer").await;
    assert_eq!(status, 409, "a duplicate within the tenant: {body}");
    assert!(!body.to_string().contains("globex"));
    // An e-mail of two tenants logs in naming the tenant; without it the answer is the
    // generic one.
    let (status, _, body) = login(&app, "admin@acme.test", PASSWORD).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_login")));
    for tenant in ["acme", "globex"] {
        let body = json!({"email": "admin@acme.test", "password": PASSWORD, "tenant": tenant});
        let (status, _, answer) = login_from(&app, &app.client, body).await;
        assert_eq!((status, answer["tenant"].as_str()), (200, Some(tenant)), "{answer}");
    }
    let body = json!({"email": "admin@acme.test", "password": PASSWORD, "tenant": "initech"});
    assert_eq!(login_from(&app, &app.client, body).await.0, 401);
}

/// The web app's upload (`POST /imports`, the file as `application/octet-stream`) works with
/// the session cookie from the server's own pages; a `text/plain` body is still refused.
#[tokio::test]
async fn the_session_uploads_an_import_as_an_octet_stream() {
    let app = TestApp::spawn("UTC").await;
    let cookie = admin_session(&app).await;
    let send = |content_type: &'static str| {
        let r = app
            .client
            .post(format!("{}/api/v1/imports?format=ndjson&name=e.ndjson", app.url))
            .header("cookie", &cookie)
            .header("origin", app.url.clone())
            .header("sec-fetch-site", "same-origin")
            .header("content-type", content_type)
            .body("{\"id\": \"e1\"}\n");
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send("application/octet-stream").await, 202);
    assert_eq!(send("text/plain").await, 415);
}

/// An admin's session on `app`.
async fn admin_session(app: &TestApp) -> String {
    assert_eq!(add_user(app, &app.key, "root@acme.test", "admin").await.0, 201);
    let (status, cookie, body) = login(app, "root@acme.test", PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    cookie_pair(&cookie.unwrap())
}

#[tokio::test]
async fn another_origin_cannot_write_with_the_session_cookie() {
    let app = TestApp::spawn("UTC").await;
    let cookie = admin_session(&app).await;
    let evil = "http://127.0.0.1:1";
    let users = format!("{}/api/v1/users", app.url);
    let form_body = r#"{"email": "evil@acme.test", "password": "long-enough-secret", "role": "admin", "x": "="}"#;
    let valid_body = r#"{"email": "own@acme.test", "password": "long-enough-secret", "role": "viewer"}"#;
    let attempt = |content_type: &'static str, headers: Vec<(&'static str, String)>| {
        let body = if content_type == "text/plain" {
            form_body
        } else {
            valid_body
        };
        let mut r = app
            .client
            .post(&users)
            .header("cookie", &cookie)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    // What a text/plain form on another origin of the same site sends.
    let form = vec![("origin", evil.to_string()), ("sec-fetch-site", "same-site".into())];
    assert_eq!(attempt("text/plain", form).await, 403);
    assert_eq!(attempt("application/json", vec![("origin", evil.into())]).await, 403);
    assert_eq!(attempt("application/json", vec![]).await, 403, "no Origin at all");
    assert_eq!(attempt("text/plain", vec![("origin", app.url.clone())]).await, 415);
    let own = vec![("origin", app.url.clone()), ("sec-fetch-site", "same-origin".into())];
    assert_eq!(attempt("application/json", own).await, 201);
    // An API key is no ambient credential: it needs no Origin.
    let (status, _) = add_user(&app, &app.key, "key-made@acme.test", "viewer").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn another_origin_cannot_open_the_live_stream_with_the_session_cookie() {
    let app = TestApp::spawn("UTC").await;
    let cookie = admin_session(&app).await;
    let open = |origin: String| {
        let mut req = format!("{}/api/v1/live", app.url.replacen("http", "ws", 1))
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    match open("http://127.0.0.1:1".into()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!(
            "a WebSocket from another origin opened: {:?}",
            other.map(|(_, r)| r.status())
        ),
    }
    assert!(open(app.url.clone()).await.is_ok(), "the server's own page opens it");
    let sse = app
        .client
        .get(format!("{}/api/v1/live/sse?scope=tenant", app.url))
        .header("cookie", &cookie)
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 403);
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_only_and_secure() {
    let security = Security {
        public_origin: Some(Security::origin_of("https://board.example.com").unwrap()),
        ..Security::default()
    };
    let app = TestApp::spawn_configured("UTC", 64, security, Limits::default()).await;
    assert_eq!(add_user(&app, &app.key, "ana@acme.test", "viewer").await.0, 201);
    let (status, cookie, _) = login(&app, "ana@acme.test", PASSWORD).await;
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    assert!(
        cookie.starts_with("__Host-dialboard_session=") && cookie.contains("; Secure"),
        "{cookie}"
    );
    let me = |cookie: String| {
        let r = app
            .client
            .get(format!("{}/api/v1/auth/me", app.url))
            .header("cookie", cookie);
        async move {
            let response = r.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, signed_in) = me(cookie_pair(&cookie)).await;
    assert_eq!((status, signed_in["kind"].as_str()), (200, Some("user")), "{signed_in}");
    let token = cookie_pair(&cookie).replace("__Host-", "");
    let (status, signed_out) = me(token).await;
    assert_eq!(
        (status, signed_out),
        (200, json!({"user": null})),
        "the name without the prefix is not the session"
    );
}

#[tokio::test]
async fn metrics_need_the_token_or_a_loopback_client() {
    let token = "scrape-token-0123456789";
    let security = Security {
        metrics_token: Some(token.into()),
        ..Security::default()
    };
    let app = TestApp::spawn_configured("UTC", 64, security, Limits::default()).await;
    let get = |bearer: Option<&str>| {
        let mut r = app.client.get(format!("{}/metrics", app.url));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("wrong")).await, 401);
    assert_eq!(get(Some(token)).await, 200);

    // Without a token, a client beyond a trusted proxy is not loopback: refused.
    let security = Security {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..Security::default()
    };
    let app = TestApp::spawn_configured("UTC", 64, security, Limits::default()).await;
    let outside = app
        .client
        .get(format!("{}/metrics", app.url))
        .header("x-forwarded-for", "203.0.113.5")
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status().as_u16(), 403);
    let (status, _) = app.send(Method::GET, "/healthz", "", None).await;
    assert_eq!(status, 200);
}

/// Opens a connection and sends part of a request's headers.
async fn slow_client(url: &str) -> TcpStream {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    stream
}

/// Whether the server closed `stream` within `wait`.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(wait, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_partial_request_is_closed_after_the_header_timeout() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let app = TestApp::spawn_configured("UTC", 64, Security::default(), limits).await;
    let mut slow = slow_client(&app.url).await;
    assert!(closed_within(&mut slow, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn slow_clients_are_shed_so_health_checks_get_in() {
    let limits = Limits {
        max_connections: 16,
        header_read_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let app = TestApp::spawn_configured("UTC", 64, Security::default(), limits).await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        slow.push(slow_client(&app.url).await);
    }
    let start = Instant::now();
    let health = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .expect("/healthz answers beside 40 slow clients");
    assert_eq!(health.status().as_u16(), 200);
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
    // The oldest slow clients were closed to make room; at most the limit stays open.
    assert!(closed_within(&mut slow[0], Duration::from_secs(2)).await);
    let mut open = 0;
    for s in &mut slow {
        if !closed_within(s, Duration::from_millis(20)).await {
            open += 1;
        }
    }
    assert!(open <= 16, "{open} slow connections stay open");
}

/// `POST /auth/password` with `cookie` from this server's own page (`origin`: None for none).
async fn change_password(app: &TestApp, cookie: &str, origin: Option<&str>, body: Value) -> (u16, Value) {
    let mut r = app
        .client
        .post(format!("{}/api/v1/auth/password", app.url))
        .header("cookie", cookie)
        .json(&body);
    if let Some(origin) = origin {
        r = r.header("origin", origin).header("sec-fetch-site", "same-origin");
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn me_status(app: &TestApp, cookie: &str) -> u16 {
    let r = app
        .client
        .get(format!("{}/api/v1/auth/me", app.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

/// The password policy holds on change too: a user changes their own (knowing the current one,
/// from this server's pages, other sessions ending), an admin resets one; weak ones are refused
/// naming the field, and each change is audited.
#[tokio::test]
async fn password_changes_follow_the_policy_and_end_other_sessions() {
    let app = TestApp::spawn("UTC").await;
    let (status, user) = add_user(&app, &app.key, "ana@acme.test", "viewer").await;
    assert_eq!(status, 201, "{user}");
    let own = Some(app.url.as_str());
    let session = |password: &'static str| {
        let app = &app;
        async move {
            let (status, cookie, body) = login(app, "ana@acme.test", password).await;
            assert_eq!(status, 200, "{body}");
            cookie_pair(&cookie.unwrap())
        }
    };
    let (here, elsewhere) = (session(PASSWORD).await, session(PASSWORD).await);
    let field = |body: &Value| {
        body["error"]["fields"][0]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (body, status, named) in [
        (
            json!({"current_password": "not-the-password", "new_password": "brand-new-secret"}),
            400,
            "current_password",
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "aaaaaaaa"}),
            400,
            "new_password",
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "password1"}),
            400,
            "new_password",
        ),
        (
            json!({"current_password": PASSWORD, "new_password": "ana@acme.test"}),
            400,
            "new_password",
        ),
    ] {
        let (code, answer) = change_password(&app, &here, own, body.clone()).await;
        assert_eq!((code, field(&answer)), (status, named.to_string()), "{body}: {answer}");
    }
    // Like every cookie write, only from this server's own pages.
    let good = json!({"current_password": PASSWORD, "new_password": "brand-new-secret"});
    assert_eq!(change_password(&app, &here, None, good.clone()).await.0, 403);
    assert_eq!(change_password(&app, &here, own, good).await.0, 204);
    assert_eq!(me_status(&app, &here).await, 200, "this session stays signed in");
    assert_eq!(me_status(&app, &elsewhere).await, 401, "other sessions end");
    assert_eq!(login(&app, "ana@acme.test", PASSWORD).await.0, 401);
    let fresh = session("brand-new-secret").await;
    // An API key has no password of its own.
    let (code, _) = app
        .post(
            "/api/v1/auth/password",
            &app.key,
            &json!({"current_password": "x", "new_password": "y"}),
        )
        .await;
    assert_eq!(code, 400);

    // An admin resets it: the policy names `password`; every session of the user ends.
    let id = user["id"].as_str().unwrap();
    let reset = |password: &str| {
        let (app, path) = (&app, format!("/api/v1/users/{id}/password"));
        let body = json!({"password": password});
        async move { app.send(Method::PUT, &path, &app.key, Some(&body)).await }
    };
    let (code, answer) = reset("12345678").await;
    assert_eq!((code, field(&answer)), (400, "password".to_string()), "{answer}");
    assert_eq!(reset("another-good-secret").await.0, 204);
    assert_eq!(me_status(&app, &fresh).await, 401);
    assert_eq!(me_status(&app, &here).await, 401);
    assert_eq!(login(&app, "ana@acme.test", "another-good-secret").await.0, 200);
    let (code, _) = app
        .send(
            Method::PUT,
            "/api/v1/users/nobody/password",
            &app.key,
            Some(&json!({"password": "another-good-secret"})),
        )
        .await;
    assert_eq!(code, 404);
    let (_, log) = app.send(Method::GET, "/api/v1/audit", &app.key, None).await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"password_changed") && actions.contains(&"password_reset"),
        "{log}"
    );
}
