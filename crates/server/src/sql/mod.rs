//! The PostgreSQL-protocol endpoint for BI tools (SPEC §13, `serve --sql-listen`): virtual
//! tables answered by the query model under the key's tenant and reach, read-only.
//!
//! - [`wire`]: the protocol (pgwire): API-key login, simple and extended queries, cancel;
//! - [`session`]: one statement: parameters, session commands, routing, writes refused;
//! - [`tables`]: the virtual tables, from the engine's catalogue of dimensions and measures;
//! - [`rollup`]: SELECTs on the rollups as `/query` bodies; [`records`]: calls, directory;
//! - [`catalog`], [`functions`], [`rewrite`]: `pg_catalog` and `information_schema`;
//! - [`values`], [`error`], [`ast`]: result encoding, SQLSTATE errors, AST readers.

pub mod ast;
pub mod catalog;
pub mod error;
pub mod functions;
pub mod records;
pub mod rewrite;
pub mod rollup;
pub mod scram;
pub mod session;
pub mod tables;
pub mod values;
pub mod wire;

use crate::api::AppState;
use bytes::BytesMut;
use pgwire::api::ConnectionManager;
use pgwire::error::ErrorInfo;
use pgwire::messages::PgWireBackendMessage;
use session::Executor;
use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// What the endpoint allows one client.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Open connections at most; more are refused with `too_many_connections`.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed (`idle_session_timeout`).
    pub idle_timeout: Duration,
    /// A statement that runs longer is cancelled (`statement_timeout`).
    pub statement_timeout: Duration,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            max_connections: 100,
            idle_timeout: Duration::from_secs(600),
            statement_timeout: Duration::from_secs(60),
        }
    }
}

/// The endpoint's configuration: its limits and how keys are proven.
#[derive(Clone, Default)]
pub struct SqlConfig {
    pub limits: SqlLimits,
    /// TLS with the configured certificate (`--sql-tls-cert`/`--sql-tls-key`), for clients'
    /// `sslmode=require`; without it clients connect unencrypted.
    pub tls: Option<pgwire::tokio::TlsAcceptor>,
    /// Lets a key be sent in clear text on an unencrypted connection
    /// (`--sql-allow-cleartext`); otherwise only SCRAM is accepted without TLS.
    pub allow_cleartext: bool,
}

/// A TLS acceptor from PEM files: the certificate chain and its private key.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<pgwire::tokio::TlsAcceptor> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("--sql-tls-cert {}: {e}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--sql-tls-cert {}: no certificate in the file",
        cert.display()
    );
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| anyhow::anyhow!("--sql-tls-key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| anyhow::anyhow!("--sql-tls-key {}: {e}", key.display()))?;
    // PostgreSQL 17's direct TLS (sslnegotiation=direct) requires this ALPN name.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

/// The endpoint's counters in `/metrics`.
#[derive(Debug, Default)]
pub struct SqlMetrics {
    pub connections: AtomicU64,
    pub open: AtomicU64,
    pub refused: AtomicU64,
    pub idle_closed: AtomicU64,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub queries: AtomicU64,
    pub query_errors: AtomicU64,
}

impl SqlMetrics {
    pub fn render(&self, out: &mut String) {
        for (name, kind, help, v) in [
            (
                "dialboard_sql_connections_total",
                "counter",
                "SQL connections accepted.",
                &self.connections,
            ),
            (
                "dialboard_sql_connections_open",
                "gauge",
                "SQL connections open.",
                &self.open,
            ),
            (
                "dialboard_sql_connections_refused_total",
                "counter",
                "SQL connections refused past the limit.",
                &self.refused,
            ),
            (
                "dialboard_sql_idle_closed_total",
                "counter",
                "SQL connections closed for idleness.",
                &self.idle_closed,
            ),
            (
                "dialboard_sql_logins_total",
                "counter",
                "SQL logins with a valid key.",
                &self.logins,
            ),
            (
                "dialboard_sql_login_failures_total",
                "counter",
                "SQL logins refused.",
                &self.login_failures,
            ),
            (
                "dialboard_sql_queries_total",
                "counter",
                "SQL statements run.",
                &self.queries,
            ),
            (
                "dialboard_sql_query_errors_total",
                "counter",
                "SQL statements that failed.",
                &self.query_errors,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// Serves the SQL endpoint on `listener` until `shutdown` completes.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    config: SqlConfig,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let catalog = Arc::new(catalog::Catalog::new()?);
    let metrics = state.metrics.sql.clone();
    let limits = config.limits;
    let executor = Arc::new(Executor {
        state,
        catalog,
        limits,
        allow_cleartext: config.allow_cleartext,
    });
    let manager = Arc::new(ConnectionManager::new());
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sql accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = socket.set_nodelay(true);
        let Ok(permit) = open.clone().try_acquire_owned() else {
            metrics.refused.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let _ = socket.write_all(&too_many_connections()).await;
            });
            continue;
        };
        metrics.connections.fetch_add(1, Relaxed);
        metrics.open.fetch_add(1, Relaxed);
        let activity = Arc::new(wire::Activity::new());
        activity.touch();
        let connection = Arc::new(wire::Connection::new(
            executor.clone(),
            metrics.clone(),
            manager.clone(),
            activity.clone(),
        ));
        let metrics = metrics.clone();
        let idle_timeout = limits.idle_timeout;
        let tls = config.tls.clone();
        tokio::spawn(async move {
            let serving = pgwire::tokio::process_socket(socket, tls, connection);
            tokio::pin!(serving);
            // A client that goes quiet (or never finishes logging in) does not hold a
            // connection forever; neither does one that stops reading its results.
            loop {
                let idle = activity.idle();
                if idle >= idle_timeout {
                    metrics.idle_closed.fetch_add(1, Relaxed);
                    break;
                }
                tokio::select! {
                    _ = &mut serving => break,
                    _ = tokio::time::sleep(idle_timeout - idle) => {}
                }
            }
            metrics.open.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
}

/// PostgreSQL's answer to one connection too many.
fn too_many_connections() -> Vec<u8> {
    let info = ErrorInfo::new(
        "FATAL".into(),
        error::state::TOO_MANY_CONNECTIONS.into(),
        "sorry, too many clients already".into(),
    );
    let mut buf = BytesMut::new();
    let _ = PgWireBackendMessage::ErrorResponse(info.into()).encode(&mut buf);
    buf.to_vec()
}
