use dialboard::api::guard::Security;
use dialboard::api::{app, AppState, Now};
use dialboard::serve::Limits;
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{Scope, Store, TenantSettings};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

pub struct TestApp {
    pub url: String,
    pub key: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub tenant_id: i64,
    /// The PostgreSQL-protocol endpoint (SPEC §13) of the same server: `host:port`.
    pub sql_addr: String,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A server on port 0 with a fresh database and a tenant in `timezone` with an admin key.
    pub async fn spawn(timezone: &str) -> TestApp {
        Self::spawn_with_live_queue(timezone, dialboard::live::QUEUE_CAPACITY).await
    }

    /// Like [`TestApp::spawn`], with live subscribers allowed `queue` waiting messages.
    pub async fn spawn_with_live_queue(timezone: &str, queue: usize) -> TestApp {
        Self::spawn_with(timezone, queue, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with the server's "now" read from `now` (epoch seconds).
    pub async fn spawn_at(timezone: &str, now: Arc<AtomicI64>) -> TestApp {
        let now: Now = Arc::new(move || now.load(Ordering::Relaxed));
        Self::spawn_with(timezone, dialboard::live::QUEUE_CAPACITY, |state| state.now = now).await
    }

    /// A server deployed as `security` says, serving within `limits` (as `dialboard serve`).
    pub async fn spawn_configured(timezone: &str, queue: usize, security: Security, limits: Limits) -> TestApp {
        Self::spawn_serving(timezone, queue, limits, |state| state.security = security).await
    }

    /// Like [`TestApp::spawn`], with exports past `export_sync_limit` rows answered as jobs.
    pub async fn spawn_with_export_limit(timezone: &str, export_sync_limit: i64) -> TestApp {
        Self::spawn_with(timezone, dialboard::live::QUEUE_CAPACITY, |state| {
            state.export_sync_limit = export_sync_limit
        })
        .await
    }

    /// Like [`TestApp::spawn_with_live_queue`], with the server's state changed by `configure`.
    pub async fn spawn_with(timezone: &str, queue: usize, configure: impl FnOnce(&mut AppState)) -> TestApp {
        Self::spawn_serving(timezone, queue, Limits::default(), configure).await
    }

    async fn spawn_serving(
        timezone: &str,
        queue: usize,
        limits: Limits,
        configure: impl FnOnce(&mut AppState),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("test.db"), Options::not_durable()).unwrap());
        let tenant = store
            .create_tenant("acme", TenantSettings::new(timezone))
            .await
            .unwrap();
        let key = add_key(&store, tenant.id, vec![Scope::Ingest, Scope::Read, Scope::Admin], None).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mut state = AppState::with_live_queue(store.clone(), queue);
        configure(Arc::get_mut(&mut state).expect("the state is not shared yet"));
        let sql_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sql_addr = sql_listener.local_addr().unwrap().to_string();
        let sql_config = dialboard::sql::SqlConfig {
            limits: sql_limits(),
            ..Default::default()
        };
        let sql = dialboard::sql::serve(state.clone(), sql_listener, sql_config, std::future::pending());
        tokio::spawn(async move { sql.await.unwrap() });
        let serving = dialboard::serve::run(listener, app(state), limits, std::future::pending());
        tokio::spawn(async move { serving.await.unwrap() });
        TestApp {
            url,
            key,
            client: reqwest::Client::new(),
            store,
            tenant_id: tenant.id,
            sql_addr,
            _dir: dir,
        }
    }

    /// The SQLite database file the server writes.
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("test.db")
    }

    /// Another tenant on the same server, with an admin key (ingest, read, admin).
    pub async fn other_tenant(&self, name: &str, leaderboard_privacy: bool) -> (i64, String) {
        let settings = TenantSettings {
            leaderboard_privacy,
            ..TenantSettings::new("UTC")
        };
        let tenant = self.store.create_tenant(name, settings).await.unwrap();
        let key = add_key(
            &self.store,
            tenant.id,
            vec![Scope::Ingest, Scope::Read, Scope::Admin],
            None,
        )
        .await;
        (tenant.id, key)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, key, Some(body)).await
    }

    /// A GET with the admin key.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, &self.key, None).await
    }

    /// Any request with `key` and an optional JSON body: the status and the JSON answer.
    pub async fn send(&self, method: reqwest::Method, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(b) = body {
            request = request.json(b);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn events(&self, events: Value) -> Value {
        let (status, body) = self.post("/api/v1/events", &self.key, &events).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The totals of a query over March 2026.
    pub async fn totals(&self, measures: &[&str], filters: Value) -> Value {
        let (status, body) = self
            .post("/api/v1/query", &self.key, &json!({"measures": measures, "filters": filters, "range": {"start": "2026-03-01", "end": "2026-04-01"}}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["totals"].clone()
    }
}

/// The SQL endpoint's limits in tests: the defaults, with a short idle timeout to test it.
pub fn sql_limits() -> dialboard::sql::SqlLimits {
    dialboard::sql::SqlLimits {
        idle_timeout: std::time::Duration::from_secs(3),
        ..Default::default()
    }
}

pub async fn add_key(store: &Arc<dyn Store>, tenant_id: i64, scopes: Vec<Scope>, agent: Option<&str>) -> String {
    dialboard::cli::create_key(store, tenant_id, scopes, agent.map(String::from), None)
        .await
        .unwrap()
}

pub fn call(id: &str, call_id: &str, disposition: &str, started: &str) -> Value {
    json!({"id": id, "type": "call", "call_id": call_id, "agent_id": "a1", "team_id": "t1", "disposition": disposition,
        "started_at": started})
}

/// Runs the one queued job with the worker's single step (as a server's loop does) and checks
/// that it succeeded and that no work is left queued.
pub async fn run_the_queued_job(store: &Arc<dyn Store>) {
    let worker = dialboard::jobs::Worker::for_server(store.clone());
    let outcome = worker.run_once(None).await.unwrap();
    assert!(
        matches!(outcome, dialboard::jobs::Outcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_eq!(
        worker.run_once(None).await.unwrap(),
        dialboard::jobs::Outcome::Idle,
        "no work left queued"
    );
}

/// The fields a 4xx error names, in order.
pub fn error_fields(body: &Value) -> Vec<&str> {
    body["error"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["field"].as_str())
        .collect()
}

/// The text a poppler tool (`pdftotext`, `pdfinfo`, `pdffonts`; Debian's poppler-utils) prints.
pub fn poppler(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils): {e}"));
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// A view's answer without the instant it was answered (a second may pass between two).
pub fn answered(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("updated_at");
    }
    v
}
