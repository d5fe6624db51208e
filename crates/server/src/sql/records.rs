//! SELECTs over record tables: the drill-downs `calls` (`/calls`: the same filters, range and
//! pages, under the key's reach), `conversations` and `lead_stages` (the same, through the
//! store's listing), and the directory (`agents`, `teams`, `campaigns`), small lists filtered,
//! sorted and paged here.

use super::ast::{self, Literal};
use super::error::{state, SqlError};
use super::rollup::{time_value, to_cell};
use super::tables::{drill_filters, DrillFilters, Role, TableKind, VirtualTable};
use super::values::{Cell, Column, ResultSet};
use crate::api::auth::Principal;
use crate::api::AppState;
use dialboard_store::CallsRequest;
use serde_json::{json, Map, Value};
use sqlparser::ast::{BinaryOperator, Expr, InTarget, Query, Select, SelectItem};
use std::cmp::Ordering;

/// Rows a drill-down answers at most (in pages of the API's largest page), in every drill-down
/// table.
pub const MAX_CALL_ROWS: usize = 10_000;
const PAGE: usize = 1000;

/// The selected columns: `*` or column names, no aggregates.
pub fn columns(table: &VirtualTable, select: &Select) -> Result<Vec<(String, usize)>, SqlError> {
    let mut out = Vec::new();
    for item in &select.projection {
        if matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)) {
            out.extend(table.columns.iter().enumerate().map(|(i, c)| (c.name.clone(), i)));
            continue;
        }
        let (expr, name) = ast::select_item(item).ok_or_else(|| SqlError::unsupported("unsupported select item"))?;
        let column = ast::column_name(expr).ok_or_else(|| {
            SqlError::unsupported(format!(
                "{} lists records: select its columns (aggregate over call_metrics, ticket_metrics or pipeline_metrics)",
                table.name
            ))
        })?;
        let i = table.columns.iter().position(|c| c.name == column).ok_or_else(|| {
            SqlError::new(
                state::UNDEFINED_COLUMN,
                format!("column \"{column}\" does not exist in {}", table.name),
            )
        })?;
        out.push((name, i));
    }
    if !matches!(&select.group_by, sqlparser::ast::GroupByExpr::Expressions(e, _) if e.is_empty())
        || select.having.is_some()
    {
        return Err(SqlError::unsupported(format!(
            "{} lists records: GROUP BY is answered by the rollup tables",
            table.name
        )));
    }
    Ok(out)
}

pub fn result_columns(table: &VirtualTable, selected: &[(String, usize)]) -> Vec<Column> {
    selected
        .iter()
        .map(|(name, i)| Column::new(name.clone(), table.columns[*i].pg_type.clone()))
        .collect()
}

fn field<'a>(record: &'a Value, table: &VirtualTable, i: usize) -> &'a Value {
    match table.columns[i].role {
        Role::Field(path) => path.split('.').fold(record, |v, k| &v[k]),
        _ => &Value::Null,
    }
}

/// A drill-down table (`calls`, `conversations`, `lead_stages`): filters on its dimension
/// columns, `time >= … AND time < …` on its time column, newest first, up to `LIMIT` (at most
/// [`MAX_CALL_ROWS`]), under the key's reach as `/calls` is.
pub async fn drill_down(
    state: &AppState,
    principal: &Principal,
    table: &VirtualTable,
    query: &Query,
    select: &Select,
    timezone: Option<&str>,
) -> Result<ResultSet, SqlError> {
    let spec = drill_filters(table.kind).expect("a drill-down table");
    let selected = columns(table, select)?;
    let (limit, offset) = ast::limit_offset(query)?;
    for (expr, desc) in ast::order_by(query)? {
        if ast::column_name(expr).as_deref() != Some(spec.time) || !desc {
            return Err(SqlError::unsupported(format!(
                "{} are listed newest first: ORDER BY {} DESC, or no ORDER BY",
                table.name, spec.time
            )));
        }
    }
    let wanted = limit.unwrap_or(MAX_CALL_ROWS).saturating_add(offset);
    if wanted > MAX_CALL_ROWS {
        return Err(SqlError::new(
            state::INVALID_PARAMETER,
            format!(
                "{}: LIMIT + OFFSET may be at most {MAX_CALL_ROWS} rows; narrow the range or filters",
                table.name
            ),
        ));
    }
    let mut body = drill_body(table.name, &spec, select.selection.as_ref())?;
    if let Some(tz) = timezone {
        body["timezone"] = json!(tz);
    }
    principal.restrict(&mut body, true)?;
    let _running = state.admission.admit(principal).await?;
    let mut records = Vec::new();
    let mut cursor = None;
    while records.len() < wanted {
        let request = CallsRequest {
            query: body.clone(),
            cursor: cursor.take(),
            limit: PAGE.min(wanted - records.len()).max(1),
        };
        let (page, next) = match table.kind {
            TableKind::Records(kind) => state
                .store
                .records(principal.tenant_id, kind, request, state.now())
                .await
                .map(|r| r.map(|p| (p.records, p.next_cursor))),
            _ => state
                .store
                .calls(principal.tenant_id, request, state.now())
                .await
                .map(|r| r.map(|p| (p.calls, p.next_cursor))),
        }
        .map_err(|e| SqlError::from(crate::api::error::ApiError::from(e)))?
        .map_err(|fields| {
            SqlError::from(crate::api::error::ApiError::invalid(
                crate::api::error::Code::InvalidRequest,
                fields,
            ))
        })?;
        records.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(to_rows(
        table,
        &selected,
        records.iter().skip(offset).take(wanted - offset),
    ))
}

fn to_rows<'a>(
    table: &VirtualTable,
    selected: &[(String, usize)],
    records: impl Iterator<Item = &'a Value>,
) -> ResultSet {
    let columns = result_columns(table, selected);
    let rows = records
        .map(|r| {
            selected
                .iter()
                .zip(&columns)
                .map(|((_, i), c)| to_cell(field(r, table, *i), &c.pg_type))
                .collect()
        })
        .collect();
    ResultSet { columns, rows }
}

/// The `/calls`-shaped body of a drill-down's WHERE.
fn drill_body(table: &str, spec: &DrillFilters, selection: Option<&Expr>) -> Result<Value, SqlError> {
    let columns: Vec<&str> = spec.dimensions.iter().map(|(c, _)| *c).collect();
    let time = spec.time;
    let help = format!(
        "WHERE on {table} supports {} = value or IN (values), and {time} >= start AND {time} < end",
        columns.join(", ")
    );
    let help = help.as_str();
    let mut filters = Map::new();
    let mut range = Map::new();
    for term in selection.map(ast::conjuncts).unwrap_or_default() {
        let (column, op, values): (String, BinaryOperator, Vec<Literal>) = match term {
            Expr::BinaryOp { left, op, right } => match (ast::column_name(left), ast::literal(right)) {
                (Some(c), Some(v)) => (c, op.clone(), vec![v]),
                _ => return Err(SqlError::unsupported(help)),
            },
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } => match (
                ast::column_name(expr),
                list.iter().map(ast::literal).collect::<Option<Vec<_>>>(),
            ) {
                (Some(c), Some(v)) => (c, BinaryOperator::Eq, v),
                _ => return Err(SqlError::unsupported(help)),
            },
            _ => return Err(SqlError::unsupported(help)),
        };
        match (column.as_str(), op) {
            (c, BinaryOperator::GtEq) if c == time => {
                range.insert("start".into(), json!(time_value(&values[0])?));
            }
            (c, BinaryOperator::Lt) if c == time => {
                range.insert("end".into(), json!(time_value(&values[0])?));
            }
            (c, BinaryOperator::Eq) => {
                let d = spec.dimension(c).ok_or_else(|| SqlError::unsupported(help))?;
                let values: Vec<String> = values.iter().filter_map(Literal::as_filter_value).collect();
                filters.insert(d.name().into(), json!(values));
            }
            _ => return Err(SqlError::unsupported(help)),
        }
    }
    if range.is_empty() {
        range.insert("preset".into(), json!("all_time"));
    } else if range.len() == 1 {
        return Err(SqlError::unsupported(format!(
            "give both ends of the range: {time} >= start AND {time} < end"
        )));
    }
    Ok(json!({"filters": filters, "range": range}))
}

/// A directory table: what the key sees of it, filtered by `column = value`/`IN`, sorted by
/// its columns, paged.
pub async fn directory(
    state: &AppState,
    principal: &Principal,
    table: &VirtualTable,
    query: &Query,
    select: &Select,
) -> Result<ResultSet, SqlError> {
    let TableKind::Directory(kind) = table.kind else {
        unreachable!("a directory table")
    };
    let selected = columns(table, select)?;
    let (limit, offset) = ast::limit_offset(query)?;
    let mut entries = crate::api::directory::entries(state, principal, kind).await?;
    for term in select.selection.as_ref().map(ast::conjuncts).unwrap_or_default() {
        let (column, values) = match term {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } => (ast::column_name(left), ast::literal(right).map(|v| vec![v])),
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } => (ast::column_name(expr), list.iter().map(ast::literal).collect()),
            _ => (None, None),
        };
        let (Some(column), Some(values)) = (column, values) else {
            return Err(SqlError::unsupported(format!(
                "WHERE on {} supports column = value and column IN (values), joined by AND",
                table.name
            )));
        };
        let i = table.columns.iter().position(|c| c.name == column).ok_or_else(|| {
            SqlError::new(
                state::UNDEFINED_COLUMN,
                format!("column \"{column}\" does not exist in {}", table.name),
            )
        })?;
        let values: Vec<String> = values.iter().filter_map(Literal::as_filter_value).collect();
        entries.retain(|e| {
            let v = field(e, table, i);
            let text = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            values.contains(&text)
        });
    }
    let mut order = Vec::new();
    for (expr, desc) in ast::order_by(query)? {
        let i = match ast::literal(expr) {
            Some(Literal::Number(n)) => n
                .parse::<usize>()
                .ok()
                .and_then(|p| selected.get(p.wrapping_sub(1)))
                .map(|s| s.1),
            _ => ast::column_name(expr).and_then(|c| table.columns.iter().position(|x| x.name == c)),
        }
        .ok_or_else(|| SqlError::unsupported(format!("ORDER BY on {} takes its columns", table.name)))?;
        order.push((i, desc));
    }
    entries.sort_by(|a, b| {
        order
            .iter()
            .map(|(i, desc)| {
                let o = compare(field(a, table, *i), field(b, table, *i));
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    Ok(to_rows(
        table,
        &selected,
        entries.iter().skip(offset).take(limit.unwrap_or(usize::MAX)),
    ))
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        (Value::Null, Value::Null) => Ordering::Equal,
        // NULLS LAST, as PostgreSQL sorts ascending.
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        (x, y) => x.as_str().unwrap_or_default().cmp(y.as_str().unwrap_or_default()),
    }
}

/// An empty result with the columns a SELECT would have (for `LIMIT 0` and describes).
pub fn empty(table: &VirtualTable, select: &Select) -> Result<ResultSet, SqlError> {
    let selected = columns(table, select)?;
    Ok(ResultSet {
        columns: result_columns(table, &selected),
        rows: Vec::<Vec<Cell>>::new(),
    })
}
