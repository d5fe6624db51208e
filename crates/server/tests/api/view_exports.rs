//! `format=csv|xlsx|pdf` on every analytics view (SPEC §7), read back with real readers (the
//! csv crate, calamine, poppler's pdftotext and pdfinfo): each file's numbers are the view's
//! JSON numbers, cell by cell; XLSX numbers are numeric cells and times date-times.

use crate::analytics::seeded;
use crate::helpers::{answered, TestApp};
use calamine::{Data, Reader, Xlsx};
use serde_json::Value;
use std::io::Cursor;

/// A view, the array of its JSON that its first table lists row by row, and the columns
/// checked: (the file's column, where the number is in each element, its kind).
struct Case {
    path: &'static str,
    /// The title of the chart its PDF draws (as vector graphics, its text embedded).
    chart: &'static str,
    rows: fn(&Value) -> Vec<Value>,
    columns: &'static [(&'static str, &'static str, Kind)],
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Text,
    Number,
    /// A percent: the CSV has the JSON's number, the XLSX cell the fraction (34.5 % = 0.345).
    Percent,
    /// An RFC 3339 instant: a date-time cell in the XLSX.
    Time,
}

fn at(path: &'static str) -> impl Fn(&Value) -> Vec<Value> {
    move |v| v.pointer(path).and_then(Value::as_array).cloned().unwrap_or_default()
}

fn cases() -> Vec<Case> {
    use Kind::*;
    vec![
        Case {
            path: "metrics?start=2026-03-07&end=2026-03-14",
            chart: "This period and the previous",
            rows: |v| at("/kpis")(v),
            columns: &[
                ("metric", "/metric", Text),
                ("value", "/value", Number),
                ("previous", "/previous", Number),
                ("change_percent", "/change_percent", Percent),
            ],
        },
        Case {
            path: "call-metrics?start=2026-03-07&end=2026-03-14",
            chart: "Calls over time",
            rows: |v| at("/series")(v),
            columns: &[
                ("time", "/time", Time),
                ("total_calls", "/total_calls", Number),
                ("connected_calls", "/connected_calls", Number),
                ("meetings_booked", "/meetings_booked", Number),
                ("connect_rate", "/connect_rate", Percent),
            ],
        },
        Case {
            path: "dispositions?start=2026-03-07&end=2026-03-14",
            chart: "Calls by category",
            rows: |v| {
                at("/categories")(v)
                    .iter()
                    .flat_map(|c| {
                        at("/dispositions")(c).into_iter().map(|mut d| {
                            d["category"] = c["category"].clone();
                            d
                        })
                    })
                    .collect()
            },
            columns: &[
                ("category", "/category", Text),
                ("disposition", "/disposition", Text),
                ("total_calls", "/total_calls", Number),
                ("percent", "/percent", Percent),
            ],
        },
        Case {
            path: "call-time-heatmap?start=2026-03-07&end=2026-03-14&metric=calls",
            chart: "calls by day and hour",
            rows: |v| at("/cells")(v),
            columns: &[
                ("day_of_week", "/day_of_week", Number),
                ("hour_of_day", "/hour_of_day", Number),
                ("total_calls", "/total_calls", Number),
                ("connect_rate", "/connect_rate", Percent),
            ],
        },
        Case {
            path: "agent-scorecard/maria.santos?period=weekly&date=2026-03-11",
            chart: "Rates (%)",
            rows: |v| {
                [
                    "total_calls",
                    "connected_calls",
                    "connect_rate",
                    "calls_per_hour",
                    "total_talk_time_minutes",
                    "avg_talk_time_seconds",
                    "meetings_booked",
                    "avg_call_score",
                    "call_score_trend",
                    "avg_sentiment_score",
                    "filler_word_rate",
                    "avg_talk_ratio",
                    "meeting_booked_rate",
                    "positive_disposition_rate",
                    "callback_conversion_rate",
                    "team_rank",
                    "team_size",
                    "percentile",
                ]
                .iter()
                .map(|m| serde_json::json!({"measure": m, "value": v[m]}))
                .collect()
            },
            columns: &[("measure", "/measure", Text), ("value", "/value", Number)],
        },
        Case {
            path: "team-leaderboard/enterprise?date=2026-03-12&sort_by=meetings",
            chart: "Calls and meetings",
            rows: |v| at("/entries")(v),
            columns: &[
                ("rank", "/rank", Number),
                ("agent_id", "/agent_id", Text),
                ("calls", "/calls", Number),
                ("connects", "/connects", Number),
                ("connect_rate", "/connect_rate", Percent),
                ("meetings", "/meetings", Number),
                ("talk_time_minutes", "/talk_time_minutes", Number),
                ("avg_call_score", "/avg_call_score", Number),
            ],
        },
        Case {
            path: "leaderboard?start=2026-03-07&end=2026-03-14&limit=5",
            chart: "Calls and meetings",
            rows: |v| at("/entries")(v),
            columns: &[
                ("agent_id", "/agent_id", Text),
                ("calls", "/calls", Number),
                ("connect_rate", "/connect_rate", Percent),
            ],
        },
        Case {
            path: "trends/maria.santos?days=14",
            chart: "Call score, rolling 7 days",
            rows: |v| at("/score")(v),
            columns: &[
                ("date", "/date", Text),
                ("avg_call_score", "/avg_call_score", Number),
                ("scored_calls", "/scored_calls", Number),
                ("rolling_7day_avg", "/rolling_7day_avg", Number),
            ],
        },
        Case {
            path: "pipeline-funnel?group_by=lead_source&start=2026-03-07&end=2026-03-14",
            chart: "Overall funnel",
            rows: |v| {
                let mut rows = at("/groups")(v);
                rows.push(v["overall"].clone());
                rows
            },
            columns: &[
                ("calls", "/stages/calls", Number),
                ("connects", "/stages/connects", Number),
                ("closed_won", "/stages/closed_won", Number),
            ],
        },
        Case {
            path: "lead-sources?start=2026-03-07&end=2026-03-14",
            chart: "Leads by source",
            rows: |v| {
                let mut rows = at("/lead_sources")(v);
                let mut overall = v["overall"].clone();
                overall["group"] = "total".into();
                rows.push(overall);
                rows
            },
            columns: &[
                ("group", "/group", Text),
                ("total_leads", "/total_leads", Number),
                ("conversion_rate", "/conversion_rate", Percent),
            ],
        },
        Case {
            path: "conversion-funnel?start=2026-03-07&end=2026-03-14",
            chart: "Contacts by stage",
            rows: |v| at("/stages")(v),
            columns: &[
                ("stage", "/stage", Text),
                ("contacts", "/contacts", Number),
                ("conversion_from_first", "/conversion_from_first", Percent),
            ],
        },
        Case {
            path: "lead-volume?start=2026-03-07&end=2026-03-14",
            chart: "New leads and conversions",
            rows: |v| at("/series")(v),
            columns: &[
                ("time", "/time", Time),
                ("new_leads", "/new_leads", Number),
                ("conversions", "/conversions", Number),
            ],
        },
        Case {
            path: "intents?start=2026-03-07&end=2026-03-14",
            chart: "Contacts by intent",
            rows: |v| at("/intents")(v),
            columns: &[
                ("intent", "/intent", Text),
                ("calls", "/calls", Number),
                ("total", "/total", Number),
                ("percent", "/percent", Percent),
            ],
        },
        Case {
            path: "channels?start=2026-03-07&end=2026-03-14",
            chart: "Volume by channel",
            rows: |v| at("/channels")(v),
            columns: &[
                ("channel", "/channel", Text),
                ("ticket_volume", "/ticket_volume", Number),
                ("resolution_rate", "/resolution_rate", Percent),
                ("calls", "/calls", Number),
            ],
        },
        Case {
            path: "campaigns/inbound-demo-requests?start=2026-03-07&end=2026-03-14",
            chart: "Contacts along the journey",
            rows: |v| {
                v["metrics"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(m, value)| serde_json::json!({"measure": m, "value": value}))
                    .chain(
                        ["cost", "leads", "cost_per_lead", "roi_percent"]
                            .map(|m| serde_json::json!({"measure": m, "value": v[m]})),
                    )
                    .collect()
            },
            columns: &[("measure", "/measure", Text), ("value", "/value", Number)],
        },
        Case {
            path: "coaching-opportunities/smb?date=2026-03-13",
            chart: "Opportunities by agent",
            rows: |v| at("/opportunities")(v),
            columns: &[
                ("agent_id", "/agent_id", Text),
                ("issue", "/issue", Text),
                ("current_value", "/current_value", Number),
                ("target_value", "/target_value", Number),
            ],
        },
        Case {
            path: "compliance?date=2026-03-12",
            chart: "Overall compliance (%)",
            rows: |v| at("/agents")(v),
            columns: &[
                ("agent_id", "/agent_id", Text),
                ("calls", "/actuals/calls", Number),
                ("talk_minutes", "/actuals/talk_minutes", Number),
                ("overall_compliance", "/overall_compliance", Percent),
            ],
        },
    ]
}

async fn file(app: &TestApp, path: &str, format: &str) -> (String, Vec<u8>) {
    let r = app
        .client
        .get(format!("{}/api/v1/analytics/{path}&format={format}", app.url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path} as {format}");
    let kind = r.headers()["content-type"].to_str().unwrap().to_string();
    (kind, r.bytes().await.unwrap().to_vec())
}

#[track_caller]
fn same_number(label: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{label}: the file has {got}, the JSON {want}"
    );
}

fn poppler(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils): {e}"));
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn every_view_exports_its_json_numbers_as_csv_xlsx_and_pdf() {
    let app = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let path = case.path;
        let (status, json) = app.get(&format!("/api/v1/analytics/{path}")).await;
        assert_eq!(status, 200, "{path}: {json}");
        let expected = (case.rows)(&json);
        assert!(!expected.is_empty(), "{path}: the seeded week has rows");

        // CSV: a real parser; every checked cell equals the JSON's.
        let (kind, csv) = file(&app, path, "csv").await;
        assert_eq!(kind, "text/csv; charset=utf-8");
        let mut reader = csv::Reader::from_reader(csv.as_slice());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), expected.len(), "{path}: one CSV row per JSON row");
        for (column, pointer, kind) in case.columns {
            let i = header
                .iter()
                .position(|h| h == column)
                .unwrap_or_else(|| panic!("{path}: no CSV column {column} in {header:?}"));
            for (record, row) in records.iter().zip(&expected) {
                let want = row.pointer(pointer).unwrap_or(&Value::Null);
                let got = &record[i];
                let label = format!("{path} CSV {column}");
                match (kind, want) {
                    (_, Value::Null) => assert_eq!(got, "", "{label}"),
                    (Kind::Time, Value::String(t)) => assert_eq!(
                        got.parse::<jiff::Timestamp>().unwrap(),
                        t.parse::<jiff::Timestamp>().unwrap(),
                        "{label}"
                    ),
                    (Kind::Text, Value::String(t)) => assert_eq!(got, t, "{label}"),
                    (_, want) => same_number(&label, got.parse().unwrap(), want.as_f64().unwrap()),
                }
            }
        }

        // XLSX: calamine; numbers are numeric cells, times date-times, percents fractions.
        let (kind, xlsx) = file(&app, path, "xlsx").await;
        assert_eq!(
            kind,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        );
        let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
        let first = book.sheet_names()[0].clone();
        let sheet = book.worksheet_range(&first).unwrap();
        assert_eq!(sheet.height(), expected.len() + 1, "{path}: header and rows");
        let names: Vec<String> = (0..sheet.width())
            .map(|c| sheet.get((0, c)).unwrap().to_string())
            .collect();
        assert_eq!(names, header, "{path}: the sheet's header is the CSV's");
        for (column, pointer, kind) in case.columns {
            let c = names.iter().position(|h| h == column).unwrap();
            for (r, row) in expected.iter().enumerate() {
                let cell = sheet.get((r + 1, c));
                let label = format!("{path} XLSX {column} row {}", r + 1);
                match (kind, row.pointer(pointer).unwrap_or(&Value::Null)) {
                    (_, Value::Null) => assert!(matches!(cell, None | Some(Data::Empty)), "{label}: {cell:?}"),
                    (Kind::Time, _) => assert!(matches!(cell, Some(Data::DateTime(_))), "{label}: {cell:?}"),
                    (Kind::Text, Value::String(t)) => assert_eq!(cell, Some(&Data::String(t.clone())), "{label}"),
                    (Kind::Percent, want) => match cell {
                        Some(Data::Float(f)) => same_number(&label, *f, want.as_f64().unwrap() / 100.0),
                        other => panic!("{label}: a percent is a number cell, not {other:?}"),
                    },
                    (_, want) => match cell {
                        Some(Data::Float(f)) => same_number(&label, *f, want.as_f64().unwrap()),
                        Some(Data::Int(i)) => same_number(&label, *i as f64, want.as_f64().unwrap()),
                        other => panic!("{label}: a number cell, not {other:?}"),
                    },
                }
            }
        }

        // PDF: poppler reads its pages, header and the first table's text.
        let (kind, pdf) = file(&app, path, "pdf").await;
        assert_eq!(kind, "application/pdf");
        let file = dir.path().join("view.pdf");
        std::fs::write(&file, &pdf).unwrap();
        let file = file.to_str().unwrap();
        assert!(poppler("pdfinfo", &[file]).contains("Pages:"));
        let text = poppler("pdftotext", &["-layout", file, "-"]);
        assert!(
            text.contains("Tenant: acme") && text.contains("Page 1 of"),
            "{path}: {text}"
        );
        let first_page = text.split('\u{c}').next().unwrap_or_default();
        assert!(
            first_page.contains(case.chart),
            "{path}: the chart '{}' on the first page: {first_page}",
            case.chart
        );
        let first_text = case.columns.iter().find(|c| c.2 == Kind::Text);
        if let Some((_, pointer, _)) = first_text {
            for row in &expected {
                if let Some(t) = row.pointer(pointer).and_then(Value::as_str) {
                    assert!(text.contains(t), "{path}: {t} in the PDF");
                }
            }
        }
    }
    // Each export is audited with the view it ran.
    let (_, audit) = app.get("/api/v1/audit?limit=200").await;
    let views: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .filter_map(|e| e["detail"]["source"].as_str())
        .collect();
    assert_eq!(views.len(), 3 * cases().len(), "{audit}");
    assert!(views.contains(&"view:team-leaderboard"));
}

#[tokio::test]
async fn a_reps_view_export_shows_what_their_json_shows() {
    let app = seeded().await;
    let rep = crate::helpers::add_key(
        &app.store,
        app.tenant_id,
        vec![dialboard_store::Scope::Read],
        Some("maria.santos"),
    )
    .await;
    let path = "/api/v1/analytics/compliance?date=2026-03-12";
    let (status, json) = app.send(reqwest::Method::GET, path, &rep, None).await;
    assert_eq!(status, 200, "{json}");
    let r = app
        .client
        .get(format!("{}{path}&format=csv", app.url))
        .bearer_auth(&rep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let bytes = r.bytes().await.unwrap();
    let mut reader = csv::Reader::from_reader(bytes.as_ref());
    let agents: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
    assert_eq!(
        agents,
        vec!["maria.santos".to_string()],
        "a rep's compliance holds only their own row"
    );
    assert_eq!(json["agents"].as_array().unwrap().len(), 1);
    // Bad formats name the parameter.
    let (status, body) = app.get("/api/v1/analytics/intents?format=docx").await;
    assert_eq!((status, crate::helpers::error_fields(&body)), (400, vec!["format"]));
}

/// A view's URL path (`name[/id]?k=v&…`) as a report's question: the view and its params, the
/// path's id under the name the view gives it.
fn question(path: &str) -> Value {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let (view, id) = route.split_once('/').map_or((route, None), |(v, id)| (v, Some(id)));
    let mut params = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap();
        params.insert(k.into(), Value::from(v));
    }
    if let Some(id) = id {
        let name = match view {
            "agent-scorecard" | "trends" => "agent_id",
            "campaigns" => "id",
            _ => "team_id",
        };
        params.insert(name.into(), Value::from(id));
    }
    serde_json::json!({"name": "Every view", "view": view, "params": params})
}

/// Every sheet of a workbook with its cells.
fn sheets(xlsx: Vec<u8>) -> Vec<(String, Vec<Vec<Data>>)> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
    book.sheet_names()
        .into_iter()
        .map(|name| {
            let range = book.worksheet_range(&name).unwrap();
            (name, range.rows().map(|r| r.to_vec()).collect())
        })
        .collect()
}

#[tokio::test]
async fn a_report_of_every_view_is_the_views_answer_and_its_files() {
    let app = seeded().await;
    for case in cases() {
        let path = case.path;
        let body = question(path);
        let (_, json) = app.get(&format!("/api/v1/analytics/{path}")).await;
        let (status, preview) = app.post("/api/v1/reports/preview", &app.key, &body).await;
        assert_eq!(status, 200, "{path}: {preview}");
        assert_eq!(
            answered(&preview["result"]),
            answered(&json),
            "{path}: the report's answer is the view's (but for when it was answered)"
        );
        for format in ["csv", "xlsx"] {
            let (_, from_view) = file(&app, path, format).await;
            let r = app
                .client
                .post(format!("{}/api/v1/reports/preview?format={format}", app.url))
                .bearer_auth(&app.key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{path} as {format}");
            let from_report = r.bytes().await.unwrap().to_vec();
            if format == "csv" {
                assert_eq!(from_report, from_view, "{path}: the report's CSV is the view's");
            } else {
                assert_eq!(
                    sheets(from_report),
                    sheets(from_view),
                    "{path}: the report's XLSX is the view's"
                );
            }
        }
    }
}
