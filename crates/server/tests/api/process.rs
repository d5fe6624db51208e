//! The real binary: a `kill -9` right after a 200 loses nothing; the CLI prints keys alone on
//! the last line; import reports a summary.

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_dialboard");

pub(crate) fn last_line(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap()
        .to_string()
}

pub(crate) fn cli(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("DIALBOARD_DATABASE", db)
        .output()
        .unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) async fn wait_ready(url: &str) {
    for _ in 0..200 {
        if reqwest::get(format!("{url}/readyz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("server at {url} did not become ready");
}

/// POSTs `body` with `key` to a running binary's `path`; the JSON answer.
pub(crate) async fn post_json(url: &str, path: &str, key: &str, body: &serde_json::Value) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) fn spawn_server(db: &str, port: u16) -> std::process::Child {
    Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DIALBOARD_DATABASE", db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// On the embedded store one process owns the file: the CLI refuses a database a server runs on
/// (it would have run a second writer beside the server's, each blind to the other's ids and
/// merges), saying why and what to do, and works again once the server is gone.
#[tokio::test]
async fn the_cli_refuses_a_database_a_server_owns() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("owned.db").display());
    last_line(&cli(&db, &["tenant", "create", "acme"]));
    let port = free_port();
    let mut server = spawn_server(&db, port);
    wait_ready(&format!("http://127.0.0.1:{port}")).await;
    let key = ["key", "create", "--tenant", "acme", "--scopes", "read"];
    let refused = cli(&db, &key);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("owned.db is in use by another dialboard process"),
        "{err}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(last_line(&cli(&db, &key)).starts_with("dbk_"));
}

#[tokio::test]
async fn kill_nine_right_after_a_200_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("crash.db").display());
    let key = last_line(&cli(&db, &["tenant", "create", "acme", "--timezone", "Europe/Berlin"]));
    assert!(key.starts_with("dbk_"), "{key}");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&db, port);
    wait_ready(&url).await;
    let client = reqwest::Client::new();
    let mut sent = 0;
    for batch in 0..5 {
        let events: Vec<_> = (0..1000)
            .map(|i| {
                json!({"id": format!("e{batch}-{i}"), "type": "call", "call_id": format!("c{batch}-{i}"), "agent_id": "a1",
                    "disposition": if i % 3 == 0 { "Connected" } else { "Voicemail" }, "started_at": "2026-03-02T10:00:00Z", "talk_seconds": i % 300})
            })
            .collect();
        let r = client
            .post(format!("{url}/api/v1/events"))
            .bearer_auth(&key)
            .json(&events)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        sent += 1000;
    }
    server.kill().unwrap(); // SIGKILL, immediately after the last 200
    server.wait().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&db, port);
    wait_ready(&url).await;
    let r = client
        .post(format!("{url}/api/v1/query"))
        .bearer_auth(&key)
        .json(&json!({"measures": ["total_calls", "connected_calls", "median_talk_time"], "range": {"preset": "all_time"}}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["totals"]["total_calls"], sent, "{body}");
    assert_eq!(body["totals"]["connected_calls"], 1670);
    server.kill().unwrap();
    server.wait().unwrap();
}

/// The server asks the kernel for no transparent huge pages (src/main.rs): with them, memory
/// the allocator had given back became resident again and a long backfill outgrew SPEC §10's
/// 500 MB. The flag is the process's own, whatever the system's setting.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("thp.db").display());
    let port = free_port();
    let mut server = spawn_server(&db, port);
    wait_ready(&format!("http://127.0.0.1:{port}")).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let thp = status.lines().find(|l| l.starts_with("THP_enabled:"));
    assert_eq!(thp.map(|l| l.split_whitespace().nth(1)), Some(Some("0")), "{status}");
}

/// SQLite's allocations share glibc's one main arena (src/main.rs): with an arena per thread
/// that had allocated (the writer, every blocking thread that ran a reader), glibc kept ~2× SQLite's
/// bounded memory resident at 10M calls. The arenas are counted from the process's mappings.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn sqlite_allocates_from_one_malloc_arena() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("arenas.db").display());
    let key = last_line(&cli(&db, &["tenant", "create", "acme"]));
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&db, port);
    wait_ready(&url).await;
    let events: Vec<_> = (0..200)
        .map(|i| {
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": format!("a{}", i % 7),
            "disposition": "Connected", "started_at": "2026-03-02T10:00:00Z", "talk_seconds": i})
        })
        .collect();
    post_json(&url, "/api/v1/events", &key, &json!(events)).await;
    // Readers on several blocking threads at once.
    let queries: Vec<_> = (0..16)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move {
                let body = json!({"measures": ["total_calls"], "range": {"preset": "all_time"}});
                post_json(&url, "/api/v1/query", &key, &body).await
            })
        })
        .collect();
    for query in queries {
        assert_eq!(query.await.unwrap()["totals"]["total_calls"], 200);
    }
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", server.id())).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(glibc_thread_arenas(&maps), 0, "{maps}");
}

/// glibc's arenas other than the main one: anonymous reservations of 64 MiB (`HEAP_MAX_SIZE`)
/// aligned to 64 MiB, a read-write part followed by the unused rest.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_thread_arenas(maps: &str) -> usize {
    const HEAP: u64 = 64 << 20;
    let regions: Vec<(u64, u64, &str, bool)> = maps
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (start, end) = fields.next()?.split_once('-')?;
            let perms = fields.next()?;
            let anonymous = fields.nth(3).is_none();
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                perms,
                anonymous,
            ))
        })
        .collect();
    let reserved_to = |i: usize, end: u64| {
        regions
            .get(i + 1)
            .filter(|&&(start, _, perms, anonymous)| start == end && perms == "---p" && anonymous)
            .map_or(end, |next| next.1)
    };
    regions
        .iter()
        .enumerate()
        .filter(|&(i, &(start, end, perms, anonymous))| {
            anonymous && perms == "rw-p" && start % HEAP == 0 && reserved_to(i, end) - start == HEAP
        })
        .count()
}

#[test]
fn cli_creates_keys_and_imports_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    assert!(cli(&db, &["migrate"]).status.success());
    last_line(&cli(&db, &["tenant", "create", "acme"]));
    let key = last_line(&cli(
        &db,
        &[
            "key",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "read,ingest",
            "--agent",
            "a1",
        ],
    ));
    assert!(key.starts_with("dbk_"));
    let bad = cli(&db, &["key", "create", "--tenant", "acme", "--scopes", "root"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--scopes"));
    let file = dir.path().join("events.ndjson");
    let line = |i: usize| {
        json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i}"), "agent_id": "a1", "disposition": "Busy", "started_at": "2026-03-02T10:00:00Z"}).to_string()
    };
    let body = format!(
        "{}\n{}\n{}\nnot json\n{{\"id\": \"x\", \"type\": \"call\"}}\n",
        line(1),
        line(2),
        line(1)
    );
    std::fs::write(&file, body).unwrap();
    let out = cli(
        &db,
        &[
            "import",
            "--tenant",
            "acme",
            "--format",
            "ndjson",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(
        last_line(&out),
        format!(
            "imported {}: 5 lines: 2 accepted, 1 duplicates, 2 rejected",
            file.display()
        )
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 4: ") && stderr.contains("line 5: ") && stderr.contains("call_id"),
        "{stderr}"
    );
}

/// `dialboard user add` to tenant acme, with `password` on stdin (or an empty stdin).
fn user_add(db: &str, email: &str, role: &str, password: Option<&str>) -> std::process::Output {
    user_command(db, &["add", "--email", email, "--role", role], password)
}

/// `dialboard user <args>` in tenant acme, with `password` on stdin (or an empty stdin).
fn user_command(db: &str, args: &[&str], password: Option<&str>) -> std::process::Output {
    let mut add = Command::new(BIN)
        .arg("user")
        .args(args)
        .args(["--tenant", "acme"])
        .env("DIALBOARD_DATABASE", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = add.stdin.take().unwrap();
    if let Some(password) = password {
        use std::io::Write;
        writeln!(stdin, "{password}").unwrap();
    }
    drop(stdin);
    add.wait_with_output().unwrap()
}

/// `dialboard user password` resets a password under the creation policy, naming stdin.
#[test]
fn the_cli_resets_a_password_under_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    cli(&db, &["tenant", "create", "acme"]);
    assert!(user_add(&db, "ana@acme.test", "admin", Some("s3cret-passw0rd"))
        .status
        .success());
    let weak = user_command(&db, &["password", "--email", "ana@acme.test"], Some("aaaaaaaa"));
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(
        !weak.status.success() && err.contains("the password (stdin): repeats"),
        "{err}"
    );
    let unknown = user_command(&db, &["password", "--email", "bo@acme.test"], Some("another-good-one"));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("--email: no user"));
    let set = user_command(&db, &["password", "--email", "Ana@acme.test"], Some("another-good-one"));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let store = dialboard::open_store(&db).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hash = runtime.block_on(async {
        let tenant = store.tenant_by_name("acme").await.unwrap().unwrap();
        store
            .user_by_email(tenant.id, "ana@acme.test")
            .await
            .unwrap()
            .unwrap()
            .1
    });
    assert!(dialboard::access::verify_password("another-good-one", &hash));
    assert!(!dialboard::access::verify_password("s3cret-passw0rd", &hash));
}

#[tokio::test]
async fn passwords_keys_and_sessions_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("d.db").display());
    let admin_key = last_line(&cli(&db, &["tenant", "create", "acme"]));
    let password = "s3cret-passw0rd";
    let added = user_add(&db, "ana@acme.test", "admin", Some(password));
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert_eq!(
        String::from_utf8_lossy(&added.stdout).trim(),
        "added ana@acme.test (admin) to tenant 'acme'"
    );
    let short = user_add(&db, "bo@acme.test", "agent", None);
    let err = String::from_utf8_lossy(&short.stderr);
    assert!(!short.status.success());
    assert!(
        err.contains("the password (stdin): must have at least 8") && err.contains("--agent: is required"),
        "{err}"
    );

    let port = free_port();
    let log = dir.path().join("server.log");
    let mut server = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("DIALBOARD_DATABASE", &db)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url).await;
    let client = reqwest::Client::new();
    let login = |p: &'static str| {
        client
            .post(format!("{url}/api/v1/auth/login"))
            .json(&json!({"email": "ana@acme.test", "password": p}))
            .send()
    };
    assert_eq!(login("wrong-passw0rd").await.unwrap().status(), 401);
    // What a client sends as an e-mail is never logged as such (only a short hash of it).
    let made_up = format!("{}@acme.test", "made-up-".repeat(25));
    let unknown = client
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"email": made_up, "password": "wrong-passw0rd"}))
        .send();
    assert_eq!(unknown.await.unwrap().status(), 401);
    let ok = login("s3cret-passw0rd").await.unwrap();
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let made: serde_json::Value = client
        .post(format!("{url}/api/v1/keys"))
        .header("cookie", &cookie)
        .header("origin", &url)
        .json(&json!({"scopes": ["read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_key = made["key"].as_str().unwrap().to_string();
    let me = client
        .get(format!("{url}/api/v1/auth/me"))
        .bearer_auth(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me = me.text().await.unwrap();
    let users = client
        .get(format!("{url}/api/v1/users"))
        .bearer_auth(&admin_key)
        .send()
        .await
        .unwrap();
    let users = users.text().await.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("failed login"), "the logs are being written: {logs}");
    assert!(!logs.contains("made-up-made-up"), "a client's e-mail reached the logs");
    let token = cookie.trim_start_matches("dialboard_session=");
    for secret in [password, "wrong-passw0rd", admin_key.as_str(), new_key.as_str(), token] {
        assert!(!logs.contains(secret), "a secret reached the logs");
        assert!(
            !me.contains(secret) && !users.contains(secret),
            "a secret in a response"
        );
    }
    assert!(!users.contains("argon2"));
}
