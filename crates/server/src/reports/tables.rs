//! A report's answer as export tables and a chart: a query's rows with cells typed by the
//! measure catalogue (counts as integers, rates as percents, seconds as durations, `time` as
//! date-times), its totals and comparison; a view's answer by its shape (every list of records
//! a table, its single numbers a summary).

use dialboard_engine::measures::{measure, Unit};
use dialboard_export::{Cell, Chart, ChartKind, Column, ColumnKind, Series, Table};
use serde_json::{Map, Value};

/// How a measure's values are written.
pub fn measure_kind(name: &str) -> ColumnKind {
    match measure(name).map(|m| m.unit) {
        Some(Unit::Count) => ColumnKind::Integer,
        Some(Unit::Percent) => ColumnKind::Percent,
        Some(Unit::Seconds) => ColumnKind::DurationSeconds,
        _ => ColumnKind::Number,
    }
}

fn column_kind(name: &str) -> ColumnKind {
    match name {
        "time" => ColumnKind::DateTime,
        "hour_of_day" | "day_of_week" => ColumnKind::Integer,
        _ if measure(name).is_some() => measure_kind(name),
        _ => ColumnKind::Text,
    }
}

/// A JSON value as a cell of a column of `kind`.
fn cell(value: &Value, kind: ColumnKind) -> Cell {
    match (value, kind) {
        (Value::Null, _) => Cell::Empty,
        (Value::String(s), ColumnKind::DateTime) => s
            .parse::<jiff::Timestamp>()
            .map_or_else(|_| Cell::Text(s.clone()), |t| Cell::Instant(t.as_second())),
        (Value::Number(n), ColumnKind::Integer | ColumnKind::DurationSeconds) if n.is_i64() => {
            Cell::Int(n.as_i64().unwrap_or_default())
        }
        (Value::Number(n), ColumnKind::Text) => Cell::Text(n.to_string()),
        (Value::Number(n), _) => n.as_f64().map_or(Cell::Empty, Cell::Number),
        (Value::Bool(b), _) => Cell::Bool(*b),
        (Value::String(s), _) => Cell::Text(s.clone()),
        (other, _) => Cell::Text(other.to_string()),
    }
}

/// A `/query` answer as its tables: the rows, then the totals (with the compared period's and
/// the change when the query compares).
pub fn query_tables(title: &str, result: &Value) -> Vec<Table> {
    let names: Vec<&str> = result["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let columns: Vec<Column> = names.iter().map(|n| Column::new(*n, column_kind(n))).collect();
    let rows = result["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|row| columns.iter().enumerate().map(|(i, c)| cell(&row[i], c.kind)).collect())
        .collect();
    let mut tables = vec![Table {
        title: title.to_string(),
        columns,
        rows,
    }];
    if let Some(totals) = result["totals"].as_object() {
        let comparison = &result["comparison"];
        let mut columns = vec![
            Column::new("measure", ColumnKind::Text),
            Column::new("total", ColumnKind::Number),
        ];
        if comparison.is_object() {
            columns.push(Column::new("previous", ColumnKind::Number));
            columns.push(Column::new("change_percent", ColumnKind::Percent));
        }
        // In the query's order of measures (the last columns), not the map's.
        let measures = names.iter().skip(names.len().saturating_sub(totals.len()));
        let rows = measures
            .map(|name| {
                let kind = measure_kind(name);
                let value = totals.get(*name).unwrap_or(&Value::Null);
                let mut row = vec![Cell::Text(name.to_string()), cell(value, kind)];
                if comparison.is_object() {
                    row.push(cell(&comparison["totals"][name], kind));
                    row.push(cell(&comparison["change_percent"][name], ColumnKind::Percent));
                }
                row
            })
            .collect();
        tables.push(Table {
            title: "Totals".into(),
            columns,
            rows,
        });
    }
    tables
}

/// A query answer's chart for a visualization that draws one: the time buckets (or the first
/// dimension's values) across, one series per measure.
pub fn query_chart(title: &str, visualization: &str, result: &Value) -> Option<Chart> {
    let kind = match visualization {
        "line" | "area" => ChartKind::Line,
        "bar" | "stacked_bar" | "donut" | "funnel" => ChartKind::Bar,
        _ => return None,
    };
    let names: Vec<&str> = result["columns"].as_array()?.iter().filter_map(Value::as_str).collect();
    let totals = result["totals"].as_object()?;
    let keys = names.len() - totals.len();
    let rows = result["rows"].as_array()?;
    if keys == 0 || rows.is_empty() {
        return None;
    }
    let label_at = names.iter().position(|n| *n == "time").unwrap_or(0);
    let categories = rows
        .iter()
        .map(|r| match &r[label_at] {
            Value::String(s) if label_at < keys && names[label_at] == "time" => s.chars().take(16).collect(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    let series = (keys..names.len())
        .map(|i| Series {
            name: names[i].to_string(),
            values: rows.iter().map(|r| r[i].as_f64().unwrap_or(0.0)).collect(),
        })
        .collect();
    Some(Chart {
        title: title.to_string(),
        kind,
        categories,
        series,
    })
}

fn value_kind(values: &[&Value]) -> ColumnKind {
    let present: Vec<&&Value> = values.iter().filter(|v| !v.is_null()).collect();
    if present.is_empty() {
        ColumnKind::Text
    } else if present.iter().all(|v| v.is_i64()) {
        ColumnKind::Integer
    } else if present.iter().all(|v| v.is_number()) {
        ColumnKind::Number
    } else if present.iter().all(|v| v.is_boolean()) {
        ColumnKind::Boolean
    } else {
        ColumnKind::Text
    }
}

/// A list of records as a table: the union of their scalar fields, in first-seen order.
fn records_table(title: &str, records: &[Map<String, Value>]) -> Table {
    let mut names: Vec<&String> = Vec::new();
    for r in records {
        for (k, v) in r {
            if !v.is_object() && !v.is_array() && !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let columns: Vec<Column> = names
        .iter()
        .map(|n| {
            let values: Vec<&Value> = records.iter().map(|r| r.get(*n).unwrap_or(&Value::Null)).collect();
            Column::new(n.as_str(), value_kind(&values))
        })
        .collect();
    let rows = records
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| cell(r.get(&c.name).unwrap_or(&Value::Null), c.kind))
                .collect()
        })
        .collect();
    Table {
        title: title.to_string(),
        columns,
        rows,
    }
}

/// A view's answer as tables: one per list of records (found at any depth, named by its
/// path), and a summary of its single numbers and texts (name, value).
pub fn view_tables(title: &str, result: &Value) -> Vec<Table> {
    let mut summary = Vec::new();
    let mut tables = Vec::new();
    walk("", result, &mut summary, &mut tables);
    if !summary.is_empty() {
        // Texts stay texts in the number column: each cell is written by what it holds.
        let kind = ColumnKind::Number;
        let rows = summary
            .iter()
            .map(|(k, v)| vec![Cell::Text(k.clone()), cell(v, kind)])
            .collect();
        tables.insert(
            0,
            Table {
                title: title.to_string(),
                columns: vec![Column::new("name", ColumnKind::Text), Column::new("value", kind)],
                rows,
            },
        );
    }
    tables
}

fn walk(path: &str, value: &Value, summary: &mut Vec<(String, Value)>, tables: &mut Vec<Table>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                walk(&join(k), v, summary, tables);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            let records: Vec<Map<String, Value>> = items.iter().filter_map(|v| v.as_object().cloned()).collect();
            tables.push(records_table(path, &records));
        }
        Value::Array(_) => {}
        scalar => summary.push((path.to_string(), scalar.clone())),
    }
}
