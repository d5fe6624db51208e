//! SELECTs over the rollup tables (`call_metrics`, `ticket_metrics`, `pipeline_metrics`)
//! translated into a `/query` body: the dimensions grouped by, the measures selected, filters
//! from WHERE, the range from `time`, ORDER BY and LIMIT. What the query model cannot answer
//! from its rollups is refused with a message that says what to write instead; nothing here
//! scans raw rows.

use super::ast::{self, Literal};
use super::error::{state, SqlError};
use super::tables::{additive, Role, VirtualTable};
use super::values::{Cell, Column, ResultSet, Timestamp};
use dialboard_engine::query::Dimension;
use pgwire::api::Type;
use serde_json::{json, Map, Value};
use sqlparser::ast::{BinaryOperator, Expr, GroupByExpr, InTarget, Query, Select};

/// What one output column of the SELECT is.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    /// The time bucket at a granularity (`15m`, `hour`, … `quarter`).
    Time(&'static str),
    Dimension(Dimension),
    Measure(&'static str),
}

impl Output {
    /// The column's name in the query model's answer.
    fn engine_name(&self) -> &'static str {
        match self {
            Output::Time(_) => "time",
            Output::Dimension(d) => d.name(),
            Output::Measure(m) => m,
        }
    }
}

/// A translated SELECT: the `/query` body and how to turn its answer into rows.
#[derive(Debug, Clone)]
pub struct RollupPlan {
    pub body: Value,
    outputs: Vec<Output>,
    pub columns: Vec<Column>,
    offset: usize,
    limit: Option<usize>,
    /// No grouping at all: one row of totals, as an aggregate without GROUP BY gives.
    totals_only: bool,
}

impl RollupPlan {
    /// Nothing to ask (`LIMIT 0`, which clients send to learn the columns).
    pub fn is_empty(&self) -> bool {
        self.limit == Some(0)
    }
}

fn refuse(table: &VirtualTable, what: impl std::fmt::Display) -> SqlError {
    SqlError::unsupported(format!("{}: {what}", table.name))
}

/// Translates a SELECT on a rollup table; `timezone` is the session's, when it set one.
pub fn plan(
    table: &VirtualTable,
    query: &Query,
    select: &Select,
    timezone: Option<&str>,
) -> Result<RollupPlan, SqlError> {
    if select.having.is_some() {
        return Err(refuse(
            table,
            "HAVING is not supported; filter with WHERE on dimensions, or order by a measure and LIMIT",
        ));
    }
    let (limit, offset) = ast::limit_offset(query)?;
    let mut outputs = Vec::new();
    let mut columns = Vec::new();
    let mut aliases = Vec::new();
    for item in &select.projection {
        if matches!(
            item,
            sqlparser::ast::SelectItem::Wildcard(_) | sqlparser::ast::SelectItem::QualifiedWildcard(..)
        ) {
            if limit == Some(0) {
                // Clients learn a table's columns with `SELECT * … LIMIT 0`.
                for c in &table.columns {
                    outputs.push(column_output(table, &c.name)?);
                    columns.push(Column::new(c.name.clone(), c.pg_type.clone()));
                }
                continue;
            }
            return Err(refuse(
                table,
                "SELECT * would group by every dimension; select the dimensions and measures you need",
            ));
        }
        let (expr, name) = ast::select_item(item).ok_or_else(|| refuse(table, "unsupported select item"))?;
        let output = output(table, expr)?;
        columns.push(Column::new(name.clone(), output_type(table, &output)));
        aliases.push(name);
        outputs.push(output);
    }
    // Grouping: GROUP BY's items (by name, alias or position), else the selected dimensions.
    let grouped: Vec<Output> = match &select.group_by {
        GroupByExpr::Expressions(exprs, _) if !exprs.is_empty() => exprs
            .iter()
            .map(|e| group_item(table, e, &aliases, &outputs))
            .collect::<Result<_, _>>()?,
        _ => outputs
            .iter()
            .filter(|o| !matches!(o, Output::Measure(_)))
            .cloned()
            .collect(),
    };
    for o in &outputs {
        if !matches!(o, Output::Measure(_)) && !grouped.contains(o) {
            return Err(SqlError::new(
                state::GROUPING,
                format!("column \"{}\" must appear in the GROUP BY clause", o.engine_name()),
            ));
        }
    }
    let mut dimensions = Vec::new();
    let mut granularity = None;
    for g in &grouped {
        match g {
            Output::Dimension(d) => dimensions.push(d.name()),
            Output::Time(unit) => match granularity {
                Some(other) if other != *unit => {
                    return Err(refuse(table, "group by one time granularity at a time"));
                }
                _ => granularity = Some(*unit),
            },
            Output::Measure(m) => return Err(refuse(table, format!("cannot group by the measure {m}"))),
        }
    }
    let mut measures: Vec<&str> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Measure(m) => Some(*m),
            _ => None,
        })
        .collect();
    measures.dedup();
    if measures.is_empty() {
        // `SELECT DISTINCT agent …`: the groups that have data, by the table's first measure.
        let first = table.columns.iter().find_map(|c| match c.role {
            Role::Measure(m) => Some(m.name),
            _ => None,
        });
        measures.extend(first);
    }
    let mut body = Map::new();
    body.insert("measures".into(), json!(measures));
    body.insert("dimensions".into(), json!(dimensions));
    if let Some(g) = granularity {
        body.insert("granularity".into(), json!(g));
    }
    let (filters, range) = where_clause(table, select.selection.as_ref())?;
    body.insert("filters".into(), Value::Object(filters));
    body.insert("range".into(), range);
    if let Some(tz) = timezone {
        body.insert("timezone".into(), json!(tz));
    }
    let mut order = Vec::new();
    for (expr, desc) in ast::order_by(query)? {
        let o = group_item(table, expr, &aliases, &outputs).or_else(|_| output(table, expr))?;
        order.push(json!([o.engine_name(), if desc { "desc" } else { "asc" }]));
    }
    if !order.is_empty() {
        body.insert("order_by".into(), json!(order));
    }
    if let Some(l) = limit {
        let rows = l.saturating_add(offset);
        if rows > dialboard_engine::query::DEFAULT_LIMIT {
            return Err(SqlError::new(
                state::INVALID_PARAMETER,
                format!(
                    "{}: LIMIT + OFFSET may be at most {} rows",
                    table.name,
                    dialboard_engine::query::DEFAULT_LIMIT
                ),
            ));
        }
        if rows > 0 {
            body.insert("limit".into(), json!(rows));
        }
    }
    Ok(RollupPlan {
        body: Value::Object(body),
        totals_only: dimensions.is_empty() && granularity.is_none(),
        outputs,
        columns,
        offset,
        limit,
    })
}

fn column_output(table: &VirtualTable, name: &str) -> Result<Output, SqlError> {
    let column = table.column(name).ok_or_else(|| {
        SqlError::new(
            state::UNDEFINED_COLUMN,
            format!("column \"{name}\" does not exist in {}", table.name),
        )
    })?;
    Ok(match column.role {
        Role::Time => Output::Time("15m"),
        Role::Dimension(d) => Output::Dimension(d),
        Role::Measure(m) => Output::Measure(m.name),
        Role::Field(_) => unreachable!("rollup tables have no record fields"),
    })
}

fn output_type(table: &VirtualTable, o: &Output) -> Type {
    match o {
        Output::Time(_) => Type::TIMESTAMPTZ,
        o => table.column(o.engine_name()).map_or(Type::TEXT, |c| c.pg_type.clone()),
    }
}

/// A select item: a dimension, `time` or `date_trunc('unit', time)`, a measure, or an
/// additive measure under `SUM`.
fn output(table: &VirtualTable, expr: &Expr) -> Result<Output, SqlError> {
    if let Some(name) = ast::column_name(expr) {
        return column_output(table, &name);
    }
    match expr {
        Expr::Cast { expr, .. } | Expr::Nested(expr) => output(table, expr),
        Expr::Function(f) => {
            let name = ast::function_name(f);
            let args = ast::function_args(f);
            match (name.as_str(), args.as_slice()) {
                ("date_trunc", [Some(unit), Some(arg)]) => {
                    let unit = match ast::literal(unit) {
                        Some(Literal::Text(u)) => u.to_lowercase(),
                        _ => return Err(refuse(table, "date_trunc's unit must be a constant")),
                    };
                    if output(table, arg)? != Output::Time("15m") {
                        return Err(refuse(table, "date_trunc applies to the time column"));
                    }
                    let granularity = match unit.as_str() {
                        "hour" => "hour",
                        "day" => "day",
                        "week" => "week",
                        "month" => "month",
                        "quarter" => "quarter",
                        other => {
                            return Err(refuse(
                                table,
                                format!("date_trunc('{other}', time) is not a rollup granularity; use hour, day, week, month or quarter (or time for 15 minutes)"),
                            ))
                        }
                    };
                    Ok(Output::Time(granularity))
                }
                ("sum", [Some(arg)]) => match output(table, arg)? {
                    Output::Measure(m) if table.column(m).is_some_and(|c| matches!(c.role, Role::Measure(d) if additive(d))) => {
                        Ok(Output::Measure(m))
                    }
                    Output::Measure(m) => Err(refuse(
                        table,
                        format!("{m} is not additive: select it without an aggregate and it is computed over each group"),
                    )),
                    _ => Err(refuse(table, "SUM applies to a measure")),
                },
                ("count", _) => Err(refuse(
                    table,
                    "rows of a rollup table are groups, not records: count with total_calls, ticket_volume or contacts_reached",
                )),
                (agg @ ("avg" | "min" | "max"), _) => Err(refuse(
                    table,
                    format!("{agg}() over a rollup is not supported: select the measure itself and it is computed exactly over each group"),
                )),
                (other, _) => Err(refuse(table, format!("the function {other}() is not supported here"))),
            }
        }
        _ => Err(refuse(
            table,
            format!("unsupported expression {expr}: select dimensions, time, date_trunc(unit, time) and measures"),
        )),
    }
}

/// A GROUP BY or ORDER BY item: a select-list position, an output alias, or an expression.
fn group_item(table: &VirtualTable, e: &Expr, aliases: &[String], outputs: &[Output]) -> Result<Output, SqlError> {
    if let Some(Literal::Number(n)) = ast::literal(e) {
        let i: usize = n.parse().unwrap_or(0);
        return outputs.get(i.wrapping_sub(1)).cloned().ok_or_else(|| {
            SqlError::new(
                state::INVALID_PARAMETER,
                format!("position {n} is not in the select list"),
            )
        });
    }
    if let Some(name) = ast::column_name(e) {
        if let Some(i) = aliases.iter().position(|a| *a == name) {
            return Ok(outputs[i].clone());
        }
    }
    output(table, e)
}

/// WHERE: `dimension = value`, `dimension IN (…)`, `time >= start`, `time < end`, joined by AND.
fn where_clause(table: &VirtualTable, selection: Option<&Expr>) -> Result<(Map<String, Value>, Value), SqlError> {
    let mut filters: Map<String, Value> = Map::new();
    let mut range = Map::new();
    let help = "WHERE supports dimension = value, dimension IN (values), time >= start and time < end, joined by AND";
    for term in selection.map(ast::conjuncts).unwrap_or_default() {
        if matches!(ast::literal(term), Some(Literal::Bool(true))) {
            continue;
        }
        match term {
            Expr::BinaryOp { left, op, right } => {
                let (column, op, value) = match (ast::column_name(left), ast::column_name(right)) {
                    (Some(c), _) if ast::literal(right).is_some() => (c, op.clone(), ast::literal(right)),
                    (_, Some(c)) if ast::literal(left).is_some() => (c, flip(op), ast::literal(left)),
                    _ if ast::literal(left).is_some() && ast::literal(left) == ast::literal(right) => continue,
                    _ => return Err(refuse(table, help)),
                };
                let value = value.unwrap_or(Literal::Null);
                match (column_output(table, &column)?, op) {
                    (Output::Dimension(d), BinaryOperator::Eq) => add_filter(&mut filters, d, [value])?,
                    (Output::Time(_), BinaryOperator::GtEq) => {
                        range.insert("start".into(), json!(time_value(&value)?));
                    }
                    (Output::Time(_), BinaryOperator::Lt) => {
                        range.insert("end".into(), json!(time_value(&value)?));
                    }
                    (Output::Time(_), _) => {
                        return Err(refuse(
                            table,
                            "a time range is [start, end): write time >= start AND time < end",
                        ))
                    }
                    _ => return Err(refuse(table, help)),
                }
            }
            Expr::In {
                expr,
                target: InTarget::List(list),
                negated: false,
                ..
            } => match ast::column_name(expr).map(|c| column_output(table, &c)).transpose()? {
                Some(Output::Dimension(d)) => {
                    let values: Option<Vec<Literal>> = list.iter().map(ast::literal).collect();
                    add_filter(&mut filters, d, values.ok_or_else(|| refuse(table, help))?)?;
                }
                _ => return Err(refuse(table, help)),
            },
            Expr::Between { expr, .. } if ast::column_name(expr).as_deref() == Some("time") => {
                return Err(refuse(
                    table,
                    "BETWEEN includes its end; a time range is [start, end): write time >= start AND time < end",
                ))
            }
            _ => return Err(refuse(table, help)),
        }
    }
    if !range.contains_key("start") && !range.contains_key("end") {
        range.insert("preset".into(), json!("all_time"));
    } else if !range.contains_key("start") || !range.contains_key("end") {
        return Err(refuse(
            table,
            "give both ends of the time range: time >= start AND time < end",
        ));
    }
    Ok((filters, Value::Object(range)))
}

fn flip(op: &BinaryOperator) -> BinaryOperator {
    match op {
        BinaryOperator::Lt => BinaryOperator::Gt,
        BinaryOperator::Gt => BinaryOperator::Lt,
        BinaryOperator::LtEq => BinaryOperator::GtEq,
        BinaryOperator::GtEq => BinaryOperator::LtEq,
        o => o.clone(),
    }
}

/// Adds values to a dimension's filter; two conditions on one dimension keep what both allow.
fn add_filter(
    filters: &mut Map<String, Value>,
    d: Dimension,
    values: impl IntoIterator<Item = Literal>,
) -> Result<(), SqlError> {
    let values: Vec<String> = values.into_iter().filter_map(|v| v.as_filter_value()).collect();
    let entry = filters.entry(d.name()).or_insert_with(|| json!(values.clone()));
    let kept: Vec<Value> = entry
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v.as_str().is_some_and(|v| values.iter().any(|x| x == v)))
        .cloned()
        .collect();
    *entry = Value::Array(kept);
    Ok(())
}

/// A time bound as the query model takes it: a local date, or an instant in RFC 3339.
pub fn time_value(v: &Literal) -> Result<String, SqlError> {
    let text = match v {
        Literal::Text(s) => s.trim(),
        _ => {
            return Err(SqlError::new(
                state::INVALID_DATETIME,
                "a time bound must be a date or a timestamp",
            ))
        }
    };
    if text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10 {
        return Ok(text.to_string());
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.to_string());
    }
    if let Ok(dt) = text.parse::<jiff::civil::DateTime>() {
        if dt.time() == jiff::civil::Time::midnight() {
            return Ok(dt.date().to_string());
        }
    }
    Err(SqlError::new(
        state::INVALID_DATETIME,
        format!("'{text}' is not a date (2026-03-01, in the query's zone) or a timestamp with an offset"),
    ))
}

/// The query model's answer as rows of the plan's columns.
pub fn rows(plan: &RollupPlan, answer: &Value) -> ResultSet {
    let names: Vec<&str> = answer["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let cell = |value: &Value, column: &Column| to_cell(value, &column.pg_type);
    let rows: Vec<Vec<Cell>> = if plan.totals_only {
        vec![plan
            .outputs
            .iter()
            .zip(&plan.columns)
            .map(|(o, c)| cell(&answer["totals"][o.engine_name()], c))
            .collect()]
    } else {
        let index: Vec<Option<usize>> = plan
            .outputs
            .iter()
            .map(|o| names.iter().position(|n| *n == o.engine_name()))
            .collect();
        answer["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                index
                    .iter()
                    .zip(&plan.columns)
                    .map(|(i, c)| i.map_or(Cell::Null, |i| cell(&row[i], c)))
                    .collect()
            })
            .collect()
    };
    let rows = rows
        .into_iter()
        .skip(plan.offset)
        .take(plan.limit.unwrap_or(usize::MAX))
        .collect();
    ResultSet {
        columns: plan.columns.clone(),
        rows,
    }
}

/// A JSON value of an answer as a cell of a column's type.
pub fn to_cell(v: &Value, ty: &Type) -> Cell {
    match v {
        Value::Null => Cell::Null,
        Value::Bool(b) => Cell::Bool(*b),
        Value::String(s) if *ty == Type::TIMESTAMPTZ => Timestamp::parse(s).map_or(Cell::Text(s.clone()), Cell::Time),
        Value::String(s) if *ty == Type::INT8 => s.parse().map_or(Cell::Text(s.clone()), Cell::Int),
        Value::String(s) => Cell::Text(s.clone()),
        Value::Number(n) if *ty == Type::FLOAT8 => n.as_f64().map_or(Cell::Null, Cell::Float),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| n.as_f64().map_or(Cell::Null, Cell::Float), Cell::Int),
        other => Cell::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::session::parse;
    use crate::sql::tables::find;
    use sqlparser::ast::{SetExpr, Statement};

    fn translate(sql: &str) -> Result<Value, SqlError> {
        let Statement::Query(q) = parse(sql).unwrap().pop().unwrap() else {
            panic!("a query")
        };
        let SetExpr::Select(select) = q.body.as_ref() else {
            panic!("a select")
        };
        plan(find("call_metrics").unwrap(), &q, select, None).map(|p| p.body)
    }

    #[test]
    fn selects_become_query_bodies() {
        assert_eq!(
            translate(
                "SELECT date_trunc('week', time) AS w, team, sum(total_calls), connect_rate FROM call_metrics \
                 WHERE team IN ('t1', 't2') AND disposition_category = 'connected' AND time >= '2026-03-01' \
                 AND time < '2026-03-15T00:00:00Z' GROUP BY 1, team ORDER BY connect_rate DESC LIMIT 5 OFFSET 5"
            )
            .unwrap(),
            json!({"measures": ["total_calls", "connect_rate"], "dimensions": ["team"], "granularity": "week",
                "filters": {"team": ["t1", "t2"], "disposition_category": ["connected"]},
                "range": {"start": "2026-03-01", "end": "2026-03-15T00:00:00Z"},
                "order_by": [["connect_rate", "desc"]], "limit": 10})
        );
        assert_eq!(
            translate("SELECT DISTINCT agent FROM call_metrics").unwrap()["measures"],
            json!(["total_calls"])
        );
    }

    #[test]
    fn what_rollups_cannot_answer_is_refused() {
        for (sql, says) in [
            ("SELECT agent, total_calls FROM call_metrics GROUP BY team", "GROUP BY"),
            ("SELECT sum(connect_rate) FROM call_metrics", "not additive"),
            (
                "SELECT date_trunc('minute', time), total_calls FROM call_metrics GROUP BY 1",
                "granularity",
            ),
            (
                "SELECT total_calls FROM call_metrics WHERE time >= '2026-03-01'",
                "both ends",
            ),
            (
                "SELECT total_calls FROM call_metrics WHERE agent LIKE 'a%'",
                "WHERE supports",
            ),
            ("SELECT total_calls FROM call_metrics HAVING total_calls > 1", "HAVING"),
        ] {
            let e = translate(sql).unwrap_err();
            assert!(e.message.contains(says), "{sql}: {}", e.message);
        }
    }
}
