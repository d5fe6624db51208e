//! One statement at a time: parameters bound, then routed — session commands (SET, SHOW,
//! BEGIN …) answered here, writes refused, SELECTs on dialboard's tables translated
//! ([`super::rollup`], [`super::records`]), and everything else (catalog and connect-time
//! queries) run on the catalog.

use super::catalog::{Catalog, SessionInfo, SERVER_VERSION};
use super::error::{state, SqlError};
use super::tables::{find, TableKind};
use super::values::{Cell, Column, ResultSet};
use super::{records, rewrite, rollup, SqlLimits};
use crate::api::auth::Principal;
use crate::api::AppState;
use dialboard_store::access::RateLimits;
use pgwire::api::Type;
use sqlparser::ast::{
    visit_expressions_mut, visit_relations, Expr, Set, SetExpr, Statement, TableFactor, Value, ValueWithSpan,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
}

/// What a statement answers.
#[derive(Debug, Clone)]
pub enum Outcome {
    Rows(ResultSet),
    Command(String),
    Begin,
    End(&'static str),
}

/// An authenticated connection: its credential and its settings.
pub struct Session {
    pub principal: Principal,
    pub limits: RateLimits,
    pub info: Mutex<SessionInfo>,
    /// The zone the session chose with `SET TIME ZONE` (else the tenant's, as `/query`).
    pub timezone: Mutex<Option<String>>,
    /// A portal's result computed by its Describe, kept for its Execute.
    pub described: Mutex<Option<(String, Outcome)>>,
}

impl Session {
    pub fn new(principal: Principal, limits: RateLimits, user: &str, database: &str, tenant_timezone: &str) -> Session {
        let settings: HashMap<String, String> = [
            ("server_version", SERVER_VERSION),
            ("server_version_num", "150006"),
            ("server_encoding", "UTF8"),
            ("client_encoding", "UTF8"),
            ("datestyle", "ISO, MDY"),
            ("intervalstyle", "postgres"),
            ("timezone", tenant_timezone),
            ("standard_conforming_strings", "on"),
            ("integer_datetimes", "on"),
            ("transaction_isolation", "read committed"),
            ("default_transaction_isolation", "read committed"),
            ("transaction_read_only", "on"),
            ("default_transaction_read_only", "on"),
            ("search_path", "public"),
            ("max_identifier_length", "63"),
            ("max_index_keys", "32"),
            ("is_superuser", "off"),
            ("lc_collate", "C"),
            ("lc_ctype", "C"),
            ("extra_float_digits", "3"),
            ("application_name", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Session {
            principal,
            limits,
            info: Mutex::new(SessionInfo {
                user: user.into(),
                database: database.into(),
                settings,
            }),
            timezone: Mutex::new(None),
            described: Mutex::new(None),
        }
    }

    pub fn setting(&self, name: &str) -> Option<String> {
        self.info.lock().expect("session").settings.get(name).cloned()
    }
}

/// What every connection shares.
pub struct Executor {
    pub state: Arc<AppState>,
    pub catalog: Arc<Catalog>,
    pub limits: SqlLimits,
    /// Keys may be sent in clear text without TLS ([`super::SqlConfig::allow_cleartext`]).
    pub allow_cleartext: bool,
}

pub fn parse(sql: &str) -> Result<Vec<Statement>, SqlError> {
    Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| SqlError::new(state::SYNTAX, e.to_string()))
}

/// The number of `$n` parameters a statement takes.
pub fn parameter_count(statement: &mut Statement) -> usize {
    let mut n = 0;
    let _ = visit_expressions_mut(statement, |e| {
        if let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            ..
        }) = e
        {
            n = n.max(p.trim_start_matches('$').parse().unwrap_or(0));
        }
        ControlFlow::<()>::Continue(())
    });
    n
}

fn bind(statement: &mut Statement, params: &[Param]) -> Result<(), SqlError> {
    let flow = visit_expressions_mut(statement, |e| {
        if let Expr::Value(ValueWithSpan {
            value: Value::Placeholder(p),
            span,
        }) = e
        {
            let i: usize = p.trim_start_matches('$').parse().unwrap_or(0);
            let Some(param) = params.get(i.wrapping_sub(1)) else {
                return ControlFlow::Break(SqlError::new(
                    state::INVALID_PARAMETER,
                    format!("no value bound for {p}"),
                ));
            };
            let value = match param {
                Param::Null => Value::Null,
                Param::Bool(b) => Value::Boolean(*b),
                Param::Number(n) => Value::Number(n.clone(), false),
                Param::Text(t) => Value::SingleQuotedString(t.clone()),
            };
            *e = Expr::Value(ValueWithSpan { value, span: *span });
        }
        ControlFlow::Continue(())
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Statements that would change something: refused with `read_only_sql_transaction`.
const WRITES: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "DROP", "ALTER", "TRUNCATE", "COPY", "GRANT", "REVOKE", "VACUUM",
    "REINDEX", "COMMENT", "CALL", "DO", "LOCK", "CLUSTER", "REFRESH", "SECURITY", "IMPORT",
];

impl Executor {
    /// Runs a statement text with its parameters; `describe` only wants the result's columns
    /// (parameters may be unbound, nothing is read from the store).
    pub async fn execute(
        &self,
        session: &Session,
        sql: &str,
        params: &[Param],
        describe: bool,
    ) -> Result<Vec<Outcome>, SqlError> {
        let mut out = Vec::new();
        for mut statement in parse(sql)? {
            if describe {
                let n = parameter_count(&mut statement);
                bind(&mut statement, &vec![Param::Null; n])?;
            } else {
                bind(&mut statement, params)?;
            }
            out.push(self.statement(session, statement, describe).await?);
        }
        Ok(out)
    }

    async fn statement(&self, session: &Session, statement: Statement, describe: bool) -> Result<Outcome, SqlError> {
        match statement {
            Statement::Query(query) => self.select(session, *query, describe).await,
            Statement::Set(set) => {
                self.set(session, set)?;
                Ok(Outcome::Command("SET".into()))
            }
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" ");
                let name = match name.as_str() {
                    "time zone" => "timezone".to_string(),
                    "transaction isolation level" => "transaction_isolation".to_string(),
                    _ => name,
                };
                let value = session.setting(&name).ok_or_else(|| {
                    SqlError::new("42704", format!("unrecognized configuration parameter \"{name}\""))
                })?;
                Ok(Outcome::Rows(ResultSet {
                    columns: vec![Column::new(name, Type::TEXT)],
                    rows: vec![vec![Cell::Text(value)]],
                }))
            }
            Statement::StartTransaction { .. } => Ok(Outcome::Begin),
            Statement::Commit { .. } => Ok(Outcome::End("COMMIT")),
            Statement::Rollback { savepoint: Some(_), .. } => Ok(Outcome::Command("ROLLBACK".into())),
            Statement::Rollback { .. } => Ok(Outcome::End("ROLLBACK")),
            // Transactions are read-only snapshots of nothing to undo: savepoints are accepted.
            Statement::Savepoint { .. } => Ok(Outcome::Command("SAVEPOINT".into())),
            Statement::ReleaseSavepoint { .. } => Ok(Outcome::Command("RELEASE".into())),
            Statement::Discard { .. } => Ok(Outcome::Command("DISCARD ALL".into())),
            Statement::Deallocate { .. } => Ok(Outcome::Command("DEALLOCATE".into())),
            Statement::Close { .. } => Ok(Outcome::Command("CLOSE CURSOR".into())),
            other => {
                let sql = other.to_string();
                let keyword = sql.split_whitespace().next().unwrap_or_default().to_uppercase();
                if WRITES.contains(&keyword.as_str()) {
                    Err(SqlError::read_only())
                } else {
                    Err(SqlError::unsupported(format!(
                        "{keyword} is not supported by dialboard's SQL endpoint"
                    )))
                }
            }
        }
    }

    fn set(&self, session: &Session, set: Set) -> Result<(), SqlError> {
        let (name, value) = match &set {
            Set::SingleAssignment { variable, values, .. } => (
                variable.to_string().to_lowercase(),
                values.first().map(|v| match super::ast::literal(v) {
                    Some(l) => l.as_filter_value().unwrap_or_default(),
                    None => v.to_string(),
                }),
            ),
            Set::SetTimeZone { value, .. } => (
                "timezone".into(),
                Some(
                    super::ast::literal(value)
                        .and_then(|l| l.as_filter_value())
                        .unwrap_or_else(|| value.to_string()),
                ),
            ),
            _ => return Ok(()),
        };
        let Some(value) = value else { return Ok(()) };
        let name = if name == "time zone" { "timezone".into() } else { name };
        if name == "timezone" {
            let zone = if value.eq_ignore_ascii_case("local") || value.eq_ignore_ascii_case("default") {
                None
            } else {
                jiff::tz::TimeZone::get(&value).map_err(|_| {
                    SqlError::new(
                        state::INVALID_PARAMETER,
                        format!("invalid value for parameter \"TimeZone\": \"{value}\""),
                    )
                })?;
                Some(value.clone())
            };
            *session.timezone.lock().expect("session") = zone;
        }
        if (name == "transaction_read_only" || name == "default_transaction_read_only")
            && !matches!(value.to_lowercase().as_str(), "on" | "true" | "1")
        {
            return Err(SqlError::read_only());
        }
        session.info.lock().expect("session").settings.insert(name, value);
        Ok(())
    }

    async fn select(
        &self,
        session: &Session,
        mut query: sqlparser::ast::Query,
        describe: bool,
    ) -> Result<Outcome, SqlError> {
        if !query.locks.is_empty() {
            return Err(SqlError::read_only());
        }
        if let SetExpr::Select(select) = query.body.as_ref() {
            if select.into.is_some() {
                return Err(SqlError::read_only());
            }
            if let [from] = select.from.as_slice() {
                if let TableFactor::Table { name, .. } = &from.relation {
                    let parts = super::ast::object_parts(name);
                    let schema_ok = parts.len() == 1 || parts.first().is_some_and(|s| s == "public");
                    if let Some(table) =
                        find(parts.last().map(String::as_str).unwrap_or_default()).filter(|_| schema_ok)
                    {
                        if !from.joins.is_empty() || query.with.is_some() {
                            return Err(joins_refused());
                        }
                        let select = (**select).clone();
                        return self
                            .table(session, table, &query, &select, describe)
                            .await
                            .map(Outcome::Rows);
                    }
                }
            }
        }
        let mut touches_tables = false;
        let _ = visit_relations(&query, |name| {
            let parts = super::ast::object_parts(name);
            if parts.len() == 1 || parts.first().is_some_and(|s| s == "public") {
                touches_tables |= parts.last().and_then(|n| find(n)).is_some();
            }
            ControlFlow::<()>::Continue(())
        });
        if touches_tables {
            return Err(joins_refused());
        }
        let sql = rewrite::for_sqlite(&mut Statement::Query(Box::new(std::mem::replace(
            &mut query,
            empty_query(),
        ))))?;
        let catalog = self.catalog.clone();
        let info = session.info.lock().expect("session").clone();
        let ticket = catalog.ticket();
        // Dropped before the query is done (a cancel request drops this future, so does the
        // timeout), the guard stops it: the blocking thread would otherwise run on.
        let mut guard = StopOnDrop {
            catalog: catalog.clone(),
            ticket,
        };
        let work = tokio::task::spawn_blocking(move || catalog.query(&sql, &info, ticket));
        let rows = self
            .bounded(work)
            .await?
            .map_err(|_| SqlError::new(state::INTERNAL, "internal error"))??;
        guard.ticket = 0;
        Ok(Outcome::Rows(rows))
    }

    async fn table(
        &self,
        session: &Session,
        table: &'static super::tables::VirtualTable,
        query: &sqlparser::ast::Query,
        select: &sqlparser::ast::Select,
        describe: bool,
    ) -> Result<ResultSet, SqlError> {
        let timezone = session.timezone.lock().expect("session").clone();
        let mut select = select.clone();
        if describe {
            select.selection = None;
        }
        match table.kind {
            TableKind::Rollup => {
                let plan = rollup::plan(table, query, &select, timezone.as_deref())?;
                if describe || plan.is_empty() {
                    return Ok(ResultSet {
                        columns: plan.columns.clone(),
                        rows: vec![],
                    });
                }
                self.charge(session)?;
                let answer = self
                    .bounded(crate::api::query::run_query(
                        &self.state,
                        &session.principal,
                        plan.body.clone(),
                    ))
                    .await??;
                Ok(rollup::rows(&plan, &answer))
            }
            _ if describe => records::empty(table, &select),
            TableKind::Calls | TableKind::Records(_) => {
                self.charge(session)?;
                self.bounded(records::drill_down(
                    &self.state,
                    &session.principal,
                    table,
                    query,
                    &select,
                    timezone.as_deref(),
                ))
                .await?
            }
            TableKind::Directory(_) => {
                self.charge(session)?;
                self.bounded(records::directory(
                    &self.state,
                    &session.principal,
                    table,
                    query,
                    &select,
                ))
                .await?
            }
        }
    }

    /// One query's share of the credential's rate limit (the bucket of the API's reads).
    fn charge(&self, session: &Session) -> Result<(), SqlError> {
        self.state
            .limiter
            .take(session.principal.actor_name().as_bytes(), "other", session.limits.other)
            .map_err(|retry| SqlError::new(state::RATE_LIMITED, format!("too many queries; retry after {retry} s")))
    }

    async fn bounded<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, SqlError> {
        tokio::time::timeout(self.limits.statement_timeout, work)
            .await
            .map_err(|_| SqlError::new(state::QUERY_CANCELED, "canceling statement due to statement timeout"))
    }
}

/// Stops a catalog query when dropped, unless it finished (ticket 0).
struct StopOnDrop {
    catalog: Arc<Catalog>,
    ticket: u64,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if self.ticket != 0 {
            self.catalog.stop(self.ticket);
        }
    }
}

fn joins_refused() -> SqlError {
    SqlError::unsupported(
        "joins, subqueries, unions and WITH over dialboard's tables are not supported: query one table at a time (rollups are grouped by the query model)",
    )
}

fn empty_query() -> sqlparser::ast::Query {
    match parse("SELECT 1").ok().and_then(|mut v| v.pop()) {
        Some(Statement::Query(q)) => *q,
        _ => unreachable!("SELECT 1 parses"),
    }
}
