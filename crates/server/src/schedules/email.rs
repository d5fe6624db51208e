//! A schedule run's e-mail to one recipient: the report attached as PDF, XLSX or CSV, or for
//! the `html` format the headline numbers and the report's chart (rasterized to PNG, shown
//! inline by `cid:`) in the message itself; always a plain-text part and the link to the report.

use crate::exports::Format;
use crate::mail::{Attachment, InlineImage, OutgoingEmail};
use crate::reports::run::{file, render};
use crate::reports::ReportDef;
use dialboard_export::{Cell, Chart, ChartKind, ColumnKind, Series, Table};
use dialboard_views::ViewFile;
use serde_json::Value;

/// The chart's size in the message (CSS pixels); the PNG has twice as many for sharp screens.
const CHART_WIDTH: u32 = 640;
const CHART_HEIGHT: u32 = 280;
const CHART_CID: &str = "chart";
/// At most this many categories in a chart drawn from a table.
const CHART_CATEGORIES: usize = 24;

/// One recipient's e-mail: the file attached (PDF, XLSX, CSV), or for `html` the numbers in
/// the message itself; always a plain-text part and the link to the report.
pub(super) async fn compose(
    tenant: &dialboard_store::TenantInfo,
    def: &ReportDef,
    result: &Value,
    format: &str,
    link: Option<&str>,
    to: &str,
) -> Result<OutgoingEmail, String> {
    let view_file = file(tenant, def, result).map_err(|e| format!("rendering for {to}: {}", e.message))?;
    let rows = view_file.tables.first().map_or(0, |t| t.rows.len());
    if rows == 0 {
        return Err(format!("the report came out empty for {to}; no e-mail is sent"));
    }
    let headline = headline_lines(result);
    let mut text = format!("{}\n\n", def.name);
    for (label, value) in &headline {
        text.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(link) = link {
        text.push_str(&format!("\nOpen it in dialboard: {link}\n"));
    }
    let mut email = OutgoingEmail {
        to: vec![to.to_string()],
        subject: def.name.clone(),
        text,
        ..OutgoingEmail::default()
    };
    if format == "html" {
        let mut html = format!("<h2>{}</h2><table>", escape(&def.name));
        for (label, value) in &headline {
            html.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(label),
                escape(value)
            ));
        }
        html.push_str("</table>");
        if let Some(chart) = email_chart(&view_file) {
            let png = tokio::task::spawn_blocking(move || {
                dialboard_export::chart_png(&chart, CHART_WIDTH, CHART_HEIGHT, 2.0)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("rendering the chart for {to}: {e}"))?;
            html.push_str(&format!(
                "<p><img src=\"cid:{CHART_CID}\" width=\"{CHART_WIDTH}\" height=\"{CHART_HEIGHT}\" alt=\"{}\"></p>",
                escape(&def.name)
            ));
            email.inline_images.push(InlineImage {
                cid: CHART_CID.into(),
                content_type: "image/png".into(),
                data: png,
            });
        }
        if let Some(link) = link {
            html.push_str(&format!("<p><a href=\"{0}\">{0}</a></p>", escape(link)));
        }
        email.html = Some(html);
        return Ok(email);
    }
    let format = Format::parse(format).ok_or("unknown format")?;
    let (bytes, _) = render(tenant, def, result, format)
        .await
        .map_err(|e| format!("rendering for {to}: {}", e.message))?;
    if bytes.is_empty() {
        return Err(format!("the report came out empty for {to}; no e-mail is sent"));
    }
    email.attachments.push(Attachment {
        filename: format!("{}.{}", file_stem(&def.name), format.extension()),
        content_type: format.content_type().to_string(),
        data: bytes,
    });
    Ok(email)
}

/// The chart the e-mail shows: the report's own (the PDF's first), or else bars of the main
/// table's numbers by its first text column; none when the table has nothing to draw.
fn email_chart(view_file: &ViewFile) -> Option<Chart> {
    if let Some(chart) = view_file.charts.first() {
        return Some(chart.clone());
    }
    let table = view_file.tables.first()?;
    bars_of(table)
}

/// Up to three numeric columns of `table` as bars over its first text column's values.
fn bars_of(table: &Table) -> Option<Chart> {
    let label_at = table.columns.iter().position(|c| c.kind == ColumnKind::Text)?;
    let numeric: Vec<usize> = (0..table.columns.len())
        .filter(|&i| {
            matches!(
                table.columns[i].kind,
                ColumnKind::Integer | ColumnKind::Number | ColumnKind::Percent
            )
        })
        .take(3)
        .collect();
    if numeric.is_empty() || table.rows.is_empty() {
        return None;
    }
    let rows = &table.rows[..table.rows.len().min(CHART_CATEGORIES)];
    let number = |cell: &Cell| match cell {
        Cell::Int(n) => *n as f64,
        Cell::Number(n) => *n,
        _ => 0.0,
    };
    Some(Chart {
        title: table.title.clone(),
        kind: ChartKind::Bar,
        categories: rows
            .iter()
            .map(|r| match &r[label_at] {
                Cell::Text(t) => t.clone(),
                _ => String::new(),
            })
            .collect(),
        series: numeric
            .iter()
            .map(|&i| Series {
                name: table.columns[i].name.clone(),
                values: rows.iter().map(|r| number(&r[i])).collect(),
            })
            .collect(),
    })
}

/// The headline numbers: a query's totals, or a view's top-level numbers.
fn headline_lines(result: &Value) -> Vec<(String, String)> {
    let source = result
        .get("totals")
        .and_then(Value::as_object)
        .or_else(|| result.as_object());
    let mut out = Vec::new();
    for (k, v) in source.into_iter().flatten() {
        if let Some(n) = v.as_f64() {
            let shown = if n.fract() == 0.0 {
                format!("{n:.0}")
            } else {
                format!("{n:.2}")
            };
            out.push((k.replace('_', " "), shown));
        }
    }
    out.truncate(12);
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '-' { c } else { '_' })
        .take(60)
        .collect();
    if stem.is_empty() {
        "report".into()
    } else {
        stem
    }
}
