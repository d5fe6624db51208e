//! Raw-call exports (SPEC §7) read back with real readers: the csv crate, calamine, and
//! poppler's pdftotext/pdfinfo. Their numbers equal `/calls`' JSON; a rep exports only their
//! own calls; large exports are jobs that another tenant cannot see.

use crate::helpers::{add_key, poppler, TestApp};
use calamine::{Data, Reader, Xlsx};
use dialboard::jobs::{Outcome, Worker};
use dialboard_store::{DirectoryKind, Scope};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Cursor;

const RANGE: &str = "start=2026-03-01&end=2026-04-01";
const COLUMNS: [&str; 18] = [
    "call_id",
    "date",
    "time",
    "agent_name",
    "prospect_name",
    "prospect_phone",
    "prospect_company",
    "campaign_name",
    "disposition",
    "talk_duration",
    "wait_time",
    "wrap_time",
    "ai_score",
    "sentiment",
    "recording_url",
    "notes",
    "meeting_booked",
    "crm_synced",
];

/// 30 calls of a1 (team t1) and a2 (team t2) over three days, with prospects, notes,
/// recordings and (for most) an analysis.
async fn seeded(app: &TestApp) {
    for (id, name, team) in [("a1", "Ann Lee", "t1"), ("a2", "Bo Diaz", "t2")] {
        app.store
            .put_directory(
                app.tenant_id,
                DirectoryKind::Agent,
                id,
                json!({"name": name, "team_id": team}),
            )
            .await
            .unwrap();
    }
    app.store
        .put_directory(
            app.tenant_id,
            DirectoryKind::Campaign,
            "spring",
            json!({"name": "Spring, \"Q1\""}),
        )
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..30 {
        let (agent, team) = if i % 3 == 0 { ("a2", "t2") } else { ("a1", "t1") };
        let disposition = ["Connected", "Meeting Booked", "No Answer"][i % 3];
        events.push(
            json!({"id": format!("e{i}"), "type": "call", "call_id": format!("c{i:02}"),
            "agent_id": agent, "team_id": team, "campaign_id": "spring", "disposition": disposition,
            "started_at": format!("2026-03-{:02}T{:02}:{:02}:00-05:00", 2 + i / 10, 9 + i % 8, i),
            "talk_seconds": 30 + i * 7, "wait_seconds": i, "wrap_seconds": 10 + i,
            "prospect": {"name": format!("Prospect {i}"), "phone": format!("+1555000{i:04}"), "company": "Acme, Inc."},
            "recording_url": format!("https://rec.example/{i}"), "notes": format!("line one\nline \"two\" {i}"),
            "crm_synced": i.is_multiple_of(2)}),
        );
        if i % 5 != 4 {
            events.push(
                json!({"id": format!("x{i}"), "type": "call_analysis", "call_id": format!("c{i:02}"),
                "score": 50.0 + i as f64 / 3.0, "sentiment": (i as f64 - 15.0) / 20.0}),
            );
        }
    }
    app.events(Value::Array(events)).await;
}

async fn fetch(app: &TestApp, path: &str, key: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
    let r = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

/// `/calls`' JSON, every page, by call id.
async fn calls_json(app: &TestApp, key: &str) -> HashMap<String, Value> {
    let (status, page) = app
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/calls?{RANGE}&limit=1000"),
            key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page["next_cursor"].is_null());
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["call_id"].as_str().unwrap().to_string(), c.clone()))
        .collect()
}

fn parse_csv(bytes: &[u8]) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, COLUMNS);
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header.iter().cloned().zip(r.iter().map(String::from)).collect()
        })
        .collect()
}

/// Each CSV row against the call's JSON.
fn assert_csv_matches(rows: &[HashMap<String, String>], calls: &HashMap<String, Value>) {
    assert_eq!(rows.len(), calls.len(), "every matching row, no paging");
    for row in rows {
        let call = &calls[&row["call_id"]];
        let i: usize = row["call_id"][1..].parse().unwrap();
        let started = call["started_at"].as_str().unwrap();
        assert_eq!(row["date"], started[..10]);
        assert_eq!(row["time"], started[11..19]);
        let agent = if call["agent_id"] == "a1" { "Ann Lee" } else { "Bo Diaz" };
        assert_eq!(row["agent_name"], agent);
        assert_eq!(row["prospect_name"], format!("Prospect {i}"));
        assert_eq!(row["prospect_phone"], format!("+1555000{i:04}"));
        assert_eq!(row["prospect_company"], "Acme, Inc.");
        assert_eq!(row["campaign_name"], "Spring, \"Q1\"");
        assert_eq!(row["disposition"], call["disposition"].as_str().unwrap());
        assert_eq!(row["talk_duration"].parse::<i64>().ok(), call["talk_seconds"].as_i64());
        assert_eq!(row["wait_time"].parse::<i64>().ok(), call["wait_seconds"].as_i64());
        assert_eq!(row["wrap_time"].parse::<i64>().ok(), call["wrap_seconds"].as_i64());
        assert_eq!(row["ai_score"].parse::<f64>().ok(), call["analysis"]["score"].as_f64());
        assert_eq!(
            row["sentiment"].parse::<f64>().ok(),
            call["analysis"]["sentiment"].as_f64()
        );
        assert_eq!(row["recording_url"], format!("https://rec.example/{i}"));
        assert_eq!(row["notes"], format!("line one\nline \"two\" {i}"));
        assert_eq!(
            row["meeting_booked"],
            (call["disposition"] == "Meeting Booked").to_string()
        );
        assert_eq!(row["crm_synced"], i.is_multiple_of(2).to_string());
    }
}

#[tokio::test]
async fn call_exports_read_back_equal_the_calls_json() {
    let app = TestApp::spawn("America/New_York").await;
    seeded(&app).await;
    let calls = calls_json(&app, &app.key).await;
    assert_eq!(calls.len(), 30);

    let (status, headers, csv) = fetch(&app, &format!("/api/v1/calls?{RANGE}&format=csv"), &app.key).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert!(headers["content-disposition"].contains("calls.csv"));
    assert!(
        !headers.contains_key("content-length"),
        "streamed (chunked), not buffered"
    );
    assert_csv_matches(&parse_csv(&csv), &calls);

    let (status, _, xlsx) = fetch(&app, &format!("/api/v1/calls?{RANGE}&format=xlsx"), &app.key).await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
    let sheet = book.worksheet_range("Calls").unwrap();
    let header: Vec<String> = (0..18).map(|c| sheet.get((0, c)).unwrap().to_string()).collect();
    assert_eq!(header, COLUMNS);
    assert_eq!(sheet.height(), 31);
    for r in 1..31 {
        let id = sheet.get((r, 0)).unwrap().to_string();
        let call = &calls[&id];
        assert!(
            matches!(sheet.get((r, 1)), Some(Data::DateTime(_))),
            "date is a date cell"
        );
        assert!(
            matches!(sheet.get((r, 2)), Some(Data::DateTime(_))),
            "time is a time cell"
        );
        let talk = call["talk_seconds"].as_f64().unwrap();
        assert_eq!(sheet.get((r, 9)), Some(&Data::Float(talk)), "talk_duration is a number");
        match call["analysis"]["score"].as_f64() {
            Some(score) => assert_eq!(sheet.get((r, 12)), Some(&Data::Float(score))),
            None => assert!(matches!(sheet.get((r, 12)), None | Some(Data::Empty))),
        }
        let meeting = call["disposition"] == "Meeting Booked";
        assert_eq!(sheet.get((r, 16)), Some(&Data::Bool(meeting)));
        // The date cell is the local day of the call's start (serial days since 1899-12-30).
        let Some(Data::DateTime(day)) = sheet.get((r, 1)) else {
            unreachable!()
        };
        let local: jiff::civil::Date = call["started_at"].as_str().unwrap()[..10].parse().unwrap();
        let serial = local.since(jiff::civil::date(1899, 12, 30)).unwrap().get_days();
        assert_eq!(day.as_f64(), f64::from(serial));
    }

    let (status, headers, pdf) = fetch(&app, &format!("/api/v1/calls?{RANGE}&format=pdf"), &app.key).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let path = path.to_str().unwrap();
    let info = poppler("pdfinfo", &[path]);
    assert!(info.contains("Pages:"), "{info}");
    let text = poppler("pdftotext", &["-layout", path, "-"]);
    assert!(text.contains("Tenant: acme") && text.contains("America/New_York") && text.contains("Page 1 of"));
    for id in calls.keys() {
        assert!(text.contains(id.as_str()), "{id} in the PDF");
    }

    // Each export is in the audit log: who, what, how many rows.
    let (_, audit) = app.get("/api/v1/audit?limit=10").await;
    let exports: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export")
        .collect();
    assert_eq!(exports.len(), 3, "{audit}");
    for e in exports {
        assert_eq!(e["detail"]["rows"], 30);
        assert!(e["actor"].as_str().unwrap().starts_with("key:"));
    }
}

#[tokio::test]
async fn a_reps_export_holds_only_their_own_calls() {
    let app = TestApp::spawn("America/New_York").await;
    seeded(&app).await;
    let rep = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a2")).await;
    let theirs = calls_json(&app, &rep).await;
    assert_eq!(theirs.len(), 10);
    assert!(theirs.values().all(|c| c["agent_id"] == "a2"));
    let (status, _, csv) = fetch(&app, &format!("/api/v1/calls?{RANGE}&format=csv"), &rep).await;
    assert_eq!(status, 200);
    assert_csv_matches(&parse_csv(&csv), &theirs);
    // Asking for another rep's calls is refused, as on /calls.
    let (status, _, _) = fetch(&app, &format!("/api/v1/calls?{RANGE}&format=csv&agent=a1"), &rep).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn bad_export_parameters_name_the_field() {
    let app = TestApp::spawn("UTC").await;
    for (query, field) in [
        ("format=docx", "format"),
        ("format=csv&limit=10", "limit"),
        ("format=csv&start=2026-13-01&end=2026-04-01", "range.start"),
    ] {
        let (status, body) = app.get(&format!("/api/v1/calls?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let fields = crate::helpers::error_fields(&body);
        assert!(fields.iter().any(|f| f.starts_with(field)), "{query}: {body}");
    }
    let (status, body) = app
        .post(
            "/api/v1/exports",
            &app.key,
            &json!({"source": "reports", "format": "csv"}),
        )
        .await;
    assert_eq!((status, crate::helpers::error_fields(&body)), (400, vec!["source"]));
}

#[tokio::test]
async fn large_exports_are_jobs_only_their_tenant_reads() {
    // Past 10 rows (100,000 in production) an export is a job.
    let app = TestApp::spawn_with_export_limit("America/New_York", 10).await;
    seeded(&app).await;
    let calls = calls_json(&app, &app.key).await;
    let r = app
        .client
        .get(format!("{}/api/v1/calls?{RANGE}&format=csv", app.url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let queued: Value = r.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/exports/{}", queued["id"].as_str().unwrap()));
    assert_eq!(queued["status"], "queued");
    let (_, before) = app.get(&location).await;
    assert!(before["file_url"].is_null());
    let (status, _, _) = fetch(&app, &format!("{location}/file"), &app.key).await;
    assert_eq!(status, 409, "no file before the job ran");

    // Another tenant's key sees neither the job nor its file, nor lists it.
    let (_, other) = app.other_tenant("globex", false).await;
    assert_eq!(app.send(reqwest::Method::GET, &location, &other, None).await.0, 404);
    assert_eq!(fetch(&app, &format!("{location}/file"), &other).await.0, 404);
    let (_, listed) = app.send(reqwest::Method::GET, "/api/v1/exports", &other, None).await;
    assert_eq!(listed["exports"], json!([]));

    // The worker's single step runs it (a server's loop does the same).
    let worker = Worker::for_server(app.store.clone());
    let outcome = worker.run_once(None).await.unwrap();
    assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
    assert_eq!(
        worker.run_once(None).await.unwrap(),
        Outcome::Idle,
        "no work left queued"
    );
    let (_, done) = app.get(&location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (done["progress"]["done"].as_i64(), done["progress"]["total"].as_i64()),
        (Some(30), Some(30))
    );
    assert_eq!(done["rows"], 30);
    let file_url = done["file_url"].as_str().unwrap();
    assert_eq!(file_url, format!("{location}/file"));
    let (status, headers, csv) = fetch(&app, file_url, &app.key).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    assert_csv_matches(&parse_csv(&csv), &calls);
    let (_, listed) = app.get("/api/v1/exports").await;
    assert_eq!(listed["exports"][0]["id"], queued["id"]);

    // A rep of the same tenant does not see the admin's export either.
    let rep = add_key(&app.store, app.tenant_id, vec![Scope::Read], Some("a2")).await;
    assert_eq!(app.send(reqwest::Method::GET, &location, &rep, None).await.0, 404);

    // POST /exports queues one whatever its size; an XLSX job's file reads back typed.
    let (status, created) = app
        .post(
            "/api/v1/exports",
            &rep,
            &json!({"source": "calls", "format": "xlsx", "query": {"range": {"start": "2026-03-01", "end": "2026-04-01"}}}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert!(matches!(
        worker.run_once(Some("export")).await.unwrap(),
        Outcome::Succeeded { .. }
    ));
    let (_, done) = app
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/exports/{}", created["id"].as_str().unwrap()),
            &rep,
            None,
        )
        .await;
    assert_eq!(done["rows"], 10, "the rep's reach, kept in the job");
    let (status, _, xlsx) = fetch(&app, done["file_url"].as_str().unwrap(), &rep).await;
    assert_eq!(status, 200);
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).unwrap();
    let sheet = book.worksheet_range("Calls").unwrap();
    assert_eq!(sheet.height(), 11);
    assert!((1..11).all(|r| sheet.get((r, 3)) == Some(&Data::String("Bo Diaz".into()))));

    // Queued and finished exports are audited.
    let (_, audit) = app.get("/api/v1/audit?limit=20").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("export"))
        .collect();
    assert_eq!(
        actions,
        ["export_finished", "export_queued", "export_finished", "export_queued"]
    );
}

#[tokio::test]
async fn the_servers_worker_loops_run_an_export_once() {
    let app = TestApp::spawn_with_export_limit("UTC", 10).await;
    seeded(&app).await;
    let r = app
        .client
        .get(format!("{}/api/v1/calls?{RANGE}&format=pdf", app.url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    // Two workers, as two nodes' loops, race for the job.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let loops: Vec<_> = (0..2)
        .map(|_| std::sync::Arc::new(Worker::for_server(app.store.clone())).spawn(stopped.clone()))
        .collect();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = app.get(&location).await.1;
        if status["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(status["attempts"], 1, "claimed once");
    let (_, audit) = app.get("/api/v1/audit?limit=20").await;
    let finished = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "export_finished")
        .count();
    assert_eq!(finished, 1, "run once");
    let (status, headers, pdf) = fetch(&app, status["file_url"].as_str().unwrap(), &app.key).await;
    assert_eq!((status, headers["content-type"].as_str()), (200, "application/pdf"));
    assert!(pdf.starts_with(b"%PDF"));
}
