//! The PostgreSQL wire protocol (pgwire): password authentication with an API key (user name
//! = the tenant's name), the simple and the extended query protocols over [`Executor`], and
//! cancel requests through pgwire's connection manager.

use super::error::{state, SqlError};
use super::session::{parameter_count, parse, Executor, Outcome, Param, Session};
use super::values::ResultSet;
use super::{scram, SqlMetrics};
use crate::access::hash_secret;
use crate::api::auth::{key_principal, key_principal_by_hash, Principal};
use async_trait::async_trait;
use dialboard_store::access::Rate;
use dialboard_store::access::RateLimits;
use dialboard_store::Scope;
use futures_util::Sink;
use pgwire::api::auth::cleartext::CleartextPasswordAuth;
use pgwire::api::auth::driver::AuthOutcome;
use pgwire::api::auth::mechanism::{AuthMechanism, AuthMechanismFactory};
use pgwire::api::auth::{
    protocol_negotiation, save_startup_parameters_to_metadata, AuthDriver, AuthSource, DefaultServerParameterProvider,
    LoginInfo, Password, ServerParameterProvider, StartupHandler,
};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse, Response, Tag};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type, METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Failed logins allowed per client address: bursts of 10, then one every 5 s.
const LOGIN_RATE: Rate = Rate {
    per_second: 0.2,
    burst: 10.0,
};

/// When a connection last did something (for the idle timeout), and whether it logged in.
pub struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    pub authenticated: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    pub fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            authenticated: AtomicBool::new(false),
        }
    }

    pub fn touch(&self) {
        self.last_ms.store(self.started.elapsed().as_millis() as u64, Relaxed);
    }

    pub fn idle(&self) -> std::time::Duration {
        self.started
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(self.last_ms.load(Relaxed)))
    }
}

/// The handlers of one connection.
pub struct Connection {
    pub executor: Arc<Executor>,
    pub metrics: Arc<SqlMetrics>,
    pub manager: Arc<ConnectionManager>,
    pub activity: Arc<Activity>,
    handlers: Arc<Handlers>,
}

pub struct Handlers {
    executor: Arc<Executor>,
    metrics: Arc<SqlMetrics>,
    activity: Arc<Activity>,
    driver: AuthDriver<Parameters, Arc<Session>>,
    auth: Arc<KeyAuth>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Connection {
    pub fn new(
        executor: Arc<Executor>,
        metrics: Arc<SqlMetrics>,
        manager: Arc<ConnectionManager>,
        activity: Arc<Activity>,
    ) -> Connection {
        let handlers = Arc::new(Handlers {
            executor: executor.clone(),
            metrics: metrics.clone(),
            activity: activity.clone(),
            driver: AuthDriver::new(Parameters).with_connection_manager(manager.clone()),
            auth: Arc::new(KeyAuth {
                executor: executor.clone(),
            }),
            cancel: Arc::new(DefaultCancelHandler::new(manager.clone())),
        });
        Connection {
            executor,
            metrics,
            manager,
            activity,
            handlers,
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handlers.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.handlers.cancel.clone()
    }
}

/// Server parameters: PostgreSQL 15's, read-only, in the session's time zone.
struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C: ClientInfo>(&self, client: &C) -> Option<HashMap<String, String>> {
        let mut defaults = DefaultServerParameterProvider::default();
        defaults.server_version = super::catalog::SERVER_VERSION.into();
        defaults.is_superuser = false;
        defaults.default_transaction_read_only = true;
        let mut params = defaults.server_parameters(client)?;
        if let Some(session) = client.session_extensions().get::<Arc<Session>>() {
            if let Some(tz) = session.setting("timezone") {
                params.insert("TimeZone".into(), tz);
            }
        }
        Some(params)
    }
}

/// The password is an API key of the tenant named by the user name, with the `read` scope:
/// proven with SCRAM-SHA-256 against the keys' verifiers, or sent in clear text (over TLS,
/// or where the operator allows it) and checked like a bearer key.
#[derive(Debug)]
struct KeyAuth {
    executor: Arc<Executor>,
}

impl Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Executor")
    }
}

/// How a connection proves its key.
enum Method {
    Scram {
        salt: Vec<u8>,
        verifiers: Vec<([u8; 32], scram::Verifier)>,
    },
    Cleartext,
    Refused(SqlError),
}

/// SCRAM when every live key of the tenant has a verifier; else the password in clear text
/// if the channel is encrypted or the operator allows it (the key then gets its verifier);
/// else SCRAM for the keys that have one, or a refusal that says what to do. An unknown
/// tenant gets a SCRAM exchange that cannot succeed, as PostgreSQL answers an unknown role.
fn method(user: &str, tenant_id: Option<i64>, keys: Vec<([u8; 32], Option<String>)>, cleartext_ok: bool) -> Method {
    let Some(tenant_id) = tenant_id else {
        return Method::Scram {
            salt: scram::unknown_salt(user),
            verifiers: vec![],
        };
    };
    let all = keys.len();
    let verifiers: Vec<_> = keys
        .into_iter()
        .filter_map(|(hash, v)| Some((hash, scram::Verifier::parse(v.as_deref()?)?)))
        .collect();
    let scram = |verifiers| Method::Scram {
        salt: scram::tenant_salt(tenant_id),
        verifiers,
    };
    if verifiers.len() == all {
        scram(verifiers)
    } else if cleartext_ok {
        Method::Cleartext
    } else if !verifiers.is_empty() {
        scram(verifiers)
    } else {
        Method::Refused(SqlError::new(
            state::INVALID_AUTHORIZATION,
            format!(
                "the keys of tenant '{user}' predate SCRAM verifiers and a key is not sent in clear text \
                 without TLS: connect with sslmode=require (the server needs --sql-tls-cert) or create a new key"
            ),
        ))
    }
}

impl KeyAuth {
    /// The address failed logins are counted under.
    fn address(login: &LoginInfo) -> String {
        format!("sql:{}", login.host())
    }

    /// Takes one failed-login token of the client's address (given back on success).
    fn throttle(&self, login: &LoginInfo) -> PgWireResult<()> {
        let address = Self::address(login);
        if self
            .executor
            .state
            .limiter
            .take(address.as_bytes(), "login", LOGIN_RATE)
            .is_err()
        {
            return Err(SqlError::new(
                state::RATE_LIMITED,
                "too many failed logins from this address; wait and retry",
            )
            .into());
        }
        Ok(())
    }

    fn succeeded(&self, login: &LoginInfo) {
        let address = Self::address(login);
        self.executor
            .state
            .limiter
            .give_back(address.as_bytes(), "login", LOGIN_RATE);
    }

    async fn method(&self, login: &LoginInfo<'_>, secure: bool) -> PgWireResult<Method> {
        let store = &self.executor.state.store;
        let user = login.user().unwrap_or_default();
        let internal = |_| PgWireError::from(SqlError::new(state::INTERNAL, "the key store is unavailable"));
        let tenant = store.tenant_by_name(user).await.map_err(internal)?;
        let keys = match &tenant {
            Some(t) => store.key_verifiers(t.id).await.map_err(internal)?,
            None => vec![],
        };
        let cleartext_ok = secure || self.executor.allow_cleartext;
        Ok(method(user, tenant.map(|t| t.id), keys, cleartext_ok))
    }

    /// The session of a key of the tenant named by the user, if the key may read.
    async fn session(
        &self,
        login: &LoginInfo<'_>,
        found: Option<(Principal, RateLimits)>,
    ) -> PgWireResult<Arc<Session>> {
        let state = &self.executor.state;
        let user = login.user().unwrap_or_default().to_string();
        let refused = || PgWireError::InvalidPassword(user.clone());
        let tenant = state.store.tenant_by_name(&user).await.map_err(|_| refused())?;
        let (Some(tenant), Some((principal, limits))) = (tenant, found) else {
            return Err(refused());
        };
        if principal.tenant_id != tenant.id || principal.require(Scope::Read).is_err() {
            return Err(refused());
        }
        let database = login.database().unwrap_or(&user).to_string();
        Ok(Arc::new(Session::new(
            principal,
            limits,
            &user,
            &database,
            &tenant.settings.timezone,
        )))
    }
}

#[async_trait]
impl AuthSource<Arc<Session>> for KeyAuth {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn verify_password(&self, login: &LoginInfo, password: &[u8]) -> PgWireResult<Option<Arc<Session>>> {
        let state = &self.executor.state;
        let secret = String::from_utf8_lossy(password).trim().to_string();
        let found = key_principal(state, &secret).await.ok().flatten();
        let session = self.session(login, found).await?;
        // A key made before verifiers were stored gets one now, so it can use SCRAM next time.
        let (tenant_id, hash) = (session.principal.tenant_id, hash_secret(&secret));
        if let Ok(keys) = state.store.key_verifiers(tenant_id).await {
            if keys.iter().any(|(h, v)| *h == hash && v.is_none()) {
                let verifier = scram::verifier(&secret, tenant_id);
                if let Err(e) = state.store.set_key_scram(hash, verifier).await {
                    tracing::warn!(error = %e, "storing a key's SCRAM verifier");
                }
            }
        }
        Ok(Some(session))
    }
}

#[async_trait]
impl scram::KeyLogin<Arc<Session>> for KeyAuth {
    async fn login(&self, login: &LoginInfo, key_hash: [u8; 32]) -> PgWireResult<Arc<Session>> {
        let found = key_principal_by_hash(&self.executor.state, key_hash)
            .await
            .ok()
            .flatten();
        self.session(login, found).await
    }

    fn refused(&self, login: &LoginInfo) -> PgWireError {
        PgWireError::InvalidPassword(login.user().unwrap_or_default().to_string())
    }
}

#[async_trait]
impl StartupHandler for Handlers {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.activity.touch();
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if !client.metadata().contains_key(METADATA_DATABASE) {
                    let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
                    client.metadata_mut().insert(METADATA_DATABASE.into(), user);
                }
                self.auth.throttle(&LoginInfo::from_client_info(client))?;
                let method = self
                    .auth
                    .method(&LoginInfo::from_client_info(client), client.is_secure())
                    .await?;
                let mechanism: Box<dyn AuthMechanism<Arc<Session>>> = match method {
                    Method::Scram { salt, verifiers } => {
                        Box::new(scram::Exchange::new(self.auth.clone(), salt, verifiers))
                    }
                    Method::Cleartext => CleartextPasswordAuth::new(self.auth.clone()).create(),
                    Method::Refused(e) => {
                        self.metrics.login_failures.fetch_add(1, Relaxed);
                        return Err(e.into());
                    }
                };
                self.driver.begin_authentication(client, mechanism).await?;
                Ok(())
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                match self.driver.advance_authentication(client, message).await {
                    Ok(AuthOutcome::Authenticated {
                        identity,
                        final_message,
                    }) => {
                        let session = identity.ok_or_else(|| PgWireError::InvalidPassword(String::new()))?;
                        client.session_extensions().insert(session);
                        self.driver.complete_authentication(client, final_message).await?;
                        self.activity.authenticated.store(true, Relaxed);
                        self.auth.succeeded(&LoginInfo::from_client_info(client));
                        self.metrics.logins.fetch_add(1, Relaxed);
                        Ok(())
                    }
                    Ok(AuthOutcome::InProgress) => Ok(()),
                    Err(e) => {
                        self.metrics.login_failures.fetch_add(1, Relaxed);
                        Err(e)
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

fn session<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Session>> {
    client
        .session_extensions()
        .get::<Arc<Session>>()
        .map(|s| (*s).clone())
        .ok_or_else(|| SqlError::new(state::INVALID_PASSWORD, "not logged in").into())
}

impl Handlers {
    async fn run(&self, session: &Session, sql: &str, params: &[Param], describe: bool) -> PgWireResult<Vec<Outcome>> {
        self.activity.touch();
        if !describe {
            self.metrics.queries.fetch_add(1, Relaxed);
        }
        let outcome = self.executor.execute(session, sql, params, describe).await;
        self.activity.touch();
        outcome.map_err(|e| {
            self.metrics.query_errors.fetch_add(1, Relaxed);
            e.into()
        })
    }
}

fn response(outcome: Outcome, formats: &Format) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Rows(rows) => Response::Query(rows.into_response(formats)?),
        Outcome::Command(tag) => Response::Execution(Tag::new(&tag)),
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::End(tag) => Response::TransactionEnd(Tag::new(tag)),
    })
}

#[async_trait]
impl SimpleQueryHandler for Handlers {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        self.run(&session, query, &[], false)
            .await?
            .into_iter()
            .map(|o| response(o, &Format::UnifiedText))
            .collect()
    }
}

/// Statements are kept as their text and parsed again when run (parsing is microseconds).
pub struct SqlText;

#[async_trait]
impl QueryParser for SqlText {
    type Statement = String;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<String>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        parse(sql)?;
        Ok(Some(sql.to_string()))
    }

    fn get_parameter_types(&self, _stmt: &String) -> PgWireResult<Vec<Type>> {
        Ok(vec![])
    }

    fn get_result_schema(
        &self,
        _stmt: &String,
        _format: Option<&Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        Ok(vec![])
    }
}

/// A bound parameter as a SQL constant, from text or binary as the client sent it.
fn parameters(portal: &Portal<String>) -> Vec<Param> {
    (0..portal.parameter_len())
        .map(|i| {
            let ty = portal
                .statement
                .parameter_types
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or(Type::UNKNOWN);
            let Some(bytes) = portal.parameters[i].as_ref() else {
                return Param::Null;
            };
            if portal.parameter_format.is_binary(i) {
                let int = |n: &[u8]| -> Option<i64> {
                    Some(match n.len() {
                        2 => i16::from_be_bytes(n.try_into().ok()?) as i64,
                        4 => i32::from_be_bytes(n.try_into().ok()?) as i64,
                        8 => i64::from_be_bytes(n.try_into().ok()?),
                        _ => return None,
                    })
                };
                return match ty {
                    Type::BOOL => Param::Bool(bytes.first() == Some(&1)),
                    Type::INT2 | Type::INT4 | Type::INT8 | Type::OID => {
                        int(bytes).map_or(Param::Null, |v| Param::Number(v.to_string()))
                    }
                    Type::FLOAT4 => <[u8; 4]>::try_from(&bytes[..])
                        .map_or(Param::Null, |b| Param::Number(f32::from_be_bytes(b).to_string())),
                    Type::FLOAT8 => <[u8; 8]>::try_from(&bytes[..])
                        .map_or(Param::Null, |b| Param::Number(f64::from_be_bytes(b).to_string())),
                    Type::DATE => int(bytes).map_or(Param::Null, |days| Param::Text(binary_date(days))),
                    Type::TIMESTAMPTZ | Type::TIMESTAMP => {
                        int(bytes).map_or(Param::Null, |micros| Param::Text(binary_timestamp(micros)))
                    }
                    // Text-like types are their UTF-8 bytes in binary too.
                    _ => Param::Text(String::from_utf8_lossy(bytes).into_owned()),
                };
            }
            let text = String::from_utf8_lossy(bytes).into_owned();
            match ty {
                Type::INT2 | Type::INT4 | Type::INT8 | Type::OID | Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC
                    if text.parse::<f64>().is_ok() =>
                {
                    Param::Number(text)
                }
                Type::BOOL => Param::Bool(matches!(text.as_str(), "t" | "true" | "1" | "on")),
                _ => Param::Text(text),
            }
        })
        .collect()
}

/// PostgreSQL's binary date: days since 2000-01-01.
fn binary_date(days: i64) -> String {
    jiff::civil::date(2000, 1, 1)
        .checked_add(jiff::Span::new().days(days))
        .map_or_else(|_| String::new(), |d| d.to_string())
}

/// PostgreSQL's binary timestamp: microseconds since 2000-01-01 00:00 UTC.
fn binary_timestamp(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros.saturating_add(946_684_800_000_000))
        .map_or_else(|_| String::new(), |t| t.to_string())
}

fn portal_key(portal: &Portal<String>) -> String {
    format!(
        "{}\u{0}{}\u{0}{:?}",
        portal.name, portal.statement.statement, portal.parameters
    )
}

#[async_trait]
impl ExtendedQueryHandler for Handlers {
    type Statement = String;
    type QueryParser = SqlText;

    fn query_parser(&self) -> Arc<SqlText> {
        Arc::new(SqlText)
    }

    async fn do_query<C>(&self, client: &mut C, portal: &Portal<String>, _max_rows: usize) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let key = portal_key(portal);
        let described = session
            .described
            .lock()
            .expect("session")
            .take()
            .filter(|(k, _)| *k == key);
        let outcome = match described {
            Some((_, outcome)) => outcome,
            None => self
                .run(&session, &portal.statement.statement, &parameters(portal), false)
                .await?
                .pop()
                .unwrap_or(Outcome::Command("SELECT 0".into())),
        };
        response(outcome, &portal.result_column_format)
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        stmt: &StoredStatement<String>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        let count = parse(&stmt.statement)?
            .iter_mut()
            .map(parameter_count)
            .max()
            .unwrap_or(0);
        let types = (0..count)
            .map(|i| {
                stmt.parameter_types
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        let fields = match self.run(&session, &stmt.statement, &[], true).await?.pop() {
            Some(Outcome::Rows(rows)) => rows.fields(&Format::UnifiedText),
            _ => vec![],
        };
        Ok(DescribeStatementResponse::new(types, fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        portal: &Portal<String>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = String>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = session(client)?;
        // The answer is computed once: Describe keeps it for the Execute that follows.
        let outcome = self
            .run(&session, &portal.statement.statement, &parameters(portal), false)
            .await?
            .pop();
        let fields = match &outcome {
            Some(Outcome::Rows(rows)) => rows.fields(&portal.result_column_format),
            _ => vec![],
        };
        if let Some(outcome) = outcome {
            *session.described.lock().expect("session") = Some((portal_key(portal), outcome));
        }
        Ok(DescribePortalResponse::new(fields))
    }
}

#[allow(dead_code)]
fn _assert_result_set_send(r: ResultSet) -> impl Send {
    r
}
