//! A query report's answer as export tables and a chart: its rows with cells typed by the
//! measure catalogue (counts as integers, rates as percents, seconds as durations, `time` as
//! date-times), its totals and comparison. (A view's answer is typed; the views library makes
//! its tables and charts.)

use dialboard_engine::measures::{measure, Unit};
use dialboard_export::{Cell, Chart, ChartKind, Column, ColumnKind, Series, Table};
use serde_json::Value;

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
