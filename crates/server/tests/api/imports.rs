//! Imports (SPEC §11): CDR files written here in the exact layouts Asterisk's `cdr_csv` and
//! FreeSWITCH's `mod_cdr_csv` produce, and a dialer's CSV export, imported over HTTP (an
//! upload that becomes a job) and by `dialboard import`; their numbers equal `/query` over the
//! same calls sent as events, and importing again changes nothing.

use super::helpers::{run_the_queued_job, TestApp};
use super::process::{cli, free_port, last_line, post_json, spawn_server, wait_ready};
use serde_json::{json, Value};

/// A query over everything the files hold, by agent, disposition and direction.
fn breakdown() -> Value {
    json!({"measures": ["total_calls", "connected_calls", "no_contacts", "total_talk_time", "avg_talk_time",
            "avg_wait_time", "abandon_rate"],
        "dimensions": ["agent", "disposition", "direction"],
        "range": {"start": "2026-03-01", "end": "2026-04-01"}, "timezone": "UTC"})
}

async fn query(app: &TestApp, key: &str) -> Value {
    let (status, body) = app.post("/api/v1/query", key, &breakdown()).await;
    assert_eq!(status, 200, "{body}");
    json!({"totals": body["totals"], "rows": body["rows"]})
}

/// Uploads `file` to `POST /imports` with the query `params`.
async fn upload(app: &TestApp, params: &str, file: &str) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/api/v1/imports?{params}", app.url))
        .bearer_auth(&app.key)
        .body(file.to_string())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Uploads and runs the job to its end; the job's final state.
async fn import(app: &TestApp, params: &str, file: &str) -> Value {
    let (status, created) = upload(app, params, file).await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["status"], "queued");
    run_the_queued_job(&app.store).await;
    let (status, done) = app
        .get(&format!("/api/v1/imports/{}", created["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["done"], file.len());
    assert_eq!(done["progress"]["total"], file.len());
    done
}

async fn rejects(app: &TestApp, job: &Value) -> String {
    let url = job["rejects_url"].as_str().expect("a rejects file");
    let r = app
        .client
        .get(format!("{}{url}", app.url))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// One row of an Asterisk CDR, in `cdr_csv`'s layout: strings quoted (quotes doubled),
/// duration, billsec and sequence bare; 16 columns, or 17/18/21 with loguniqueid,
/// loguserfield and newcdrcolumns.
struct Cdr<'a> {
    src: &'a str,
    dst: &'a str,
    dcontext: &'a str,
    clid: &'a str,
    channel: &'a str,
    dstchannel: &'a str,
    lastapp: &'a str,
    lastdata: &'a str,
    start: &'a str,
    answer: &'a str,
    end: &'a str,
    billsec: i64,
    disposition: &'a str,
    uniqueid: &'a str,
    linkedid: &'a str,
    sequence: i64,
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn duration(start: &str, end: &str) -> i64 {
    let t = |s: &str| s.parse::<jiff::civil::DateTime>().unwrap();
    t(end).duration_since(t(start)).as_secs()
}

impl Cdr<'_> {
    fn line(&self, columns: usize) -> String {
        let mut f: Vec<String> = [
            "",
            self.src,
            self.dst,
            self.dcontext,
            self.clid,
            self.channel,
            self.dstchannel,
            self.lastapp,
            self.lastdata,
            self.start,
            self.answer,
            self.end,
        ]
        .iter()
        .map(|s| quoted(s))
        .collect();
        f.push(duration(self.start, self.end).to_string());
        f.push(self.billsec.to_string());
        f.push(quoted(self.disposition));
        f.push(quoted("DOCUMENTATION"));
        if columns >= 17 {
            f.push(quoted(self.uniqueid));
        }
        if columns >= 18 {
            f.push(quoted(""));
        }
        if columns == 21 {
            f.push(quoted(""));
            f.push(quoted(self.linkedid));
            f.push(self.sequence.to_string());
        }
        f.join(",")
    }
}

/// The calls of the Asterisk files (local times in Europe/Berlin on 2026-03-02), and a
/// broken line after the second: a record cut short by a crash.
fn asterisk_file(columns: usize) -> String {
    let cdr = |src, dst, dcontext, clid, channel, dstchannel, start, answer, end, billsec, disposition, id| Cdr {
        src,
        dst,
        dcontext,
        clid,
        channel,
        dstchannel,
        lastapp: "Dial",
        lastdata: "SIP/trunk/5550001,60,tT",
        start,
        answer,
        end,
        billsec,
        disposition,
        uniqueid: id,
        linkedid: id,
        sequence: 1,
    };
    let mut lines = vec![
        cdr(
            "100",
            "5550001",
            "from-internal",
            "\"Agent One\" <100>",
            "SIP/agent01-00000001",
            "SIP/trunk-00000002",
            "2026-03-02 09:00:00",
            "2026-03-02 09:00:10",
            "2026-03-02 09:02:10",
            120,
            "ANSWERED",
            "1772438400.1",
        )
        .line(columns),
        cdr(
            "101",
            "5550002",
            "from-internal",
            "\"Agent Two\" <101>",
            "PJSIP/agent02-00000003",
            "PJSIP/trunk-00000004",
            "2026-03-02 09:05:00",
            "",
            "2026-03-02 09:05:08",
            0,
            "BUSY",
            "1772438700.3",
        )
        .line(columns),
        r#""","102","5550009","from-internal","""Agent"#.to_string(),
        cdr(
            "5550003",
            "200",
            "from-pstn",
            "\"Smith, John\" <5550003>",
            "SIP/trunk-00000005",
            "SIP/agent01-00000006",
            "2026-03-02 10:00:00",
            "2026-03-02 10:00:05",
            "2026-03-02 10:03:05",
            180,
            "ANSWERED",
            "1772442000.5",
        )
        .line(columns),
        cdr(
            "5550004",
            "200",
            "from-pstn",
            "<5550004>",
            "SIP/trunk-00000007",
            "SIP/agent02-00000008",
            "2026-03-02 11:00:00",
            "",
            "2026-03-02 11:00:30",
            0,
            "NO ANSWER",
            "1772445600.7",
        )
        .line(columns),
    ];
    if columns > 16 {
        // A queue call: the caller's IVR leg, an agent who did not answer, one who did. They
        // share the caller's uniqueid (Asterisk 1.4–1.6) and linkedid (1.8 on).
        let leg = |dcontext, dstchannel, lastapp, start, answer, end, billsec, disposition, uniqueid, sequence| Cdr {
            src: "5551234",
            dst: "600",
            dcontext,
            clid: "\"John Smith\" <5551234>",
            channel: "SIP/trunk-00000010",
            dstchannel,
            lastapp,
            lastdata: "support,t,,,300",
            start,
            answer,
            end,
            billsec,
            disposition,
            uniqueid: if columns == 21 { uniqueid } else { "1772452800.16" },
            linkedid: "1772452800.16",
            sequence,
        };
        lines.push(
            leg(
                "from-pstn",
                "",
                "Answer",
                "2026-03-02 13:00:00",
                "2026-03-02 13:00:01",
                "2026-03-02 13:00:05",
                4,
                "ANSWERED",
                "1772452800.16",
                16,
            )
            .line(columns),
        );
        lines.push(
            leg(
                "ext-queues",
                "SIP/agent01-00000011",
                "Queue",
                "2026-03-02 13:00:05",
                "",
                "2026-03-02 13:00:20",
                0,
                "NO ANSWER",
                "1772452805.17",
                17,
            )
            .line(columns),
        );
        lines.push(
            leg(
                "ext-queues",
                "SIP/agent02-00000012",
                "Queue",
                "2026-03-02 13:00:05",
                "2026-03-02 13:00:25",
                "2026-03-02 13:02:00",
                95,
                "ANSWERED",
                "1772452805.18",
                18,
            )
            .line(columns),
        );
    }
    lines.join("\n") + "\n"
}

/// The same calls as SPEC §3 events, written by hand.
fn asterisk_events(columns: usize) -> Value {
    let mut events = vec![
        json!({"id": "e1", "type": "call", "call_id": "c1", "agent_id": "agent01", "disposition": "Connected",
            "direction": "outbound", "started_at": "2026-03-02T08:00:00Z", "answered_at": "2026-03-02T08:00:10Z",
            "agent_connected_at": "2026-03-02T08:00:10Z", "ended_at": "2026-03-02T08:02:10Z", "talk_seconds": 120,
            "contact_id": "5550001", "prospect": {"phone": "5550001"}}),
        json!({"id": "e2", "type": "call", "call_id": "c2", "agent_id": "agent02", "disposition": "Busy",
            "direction": "outbound", "started_at": "2026-03-02T08:05:00Z", "ended_at": "2026-03-02T08:05:08Z",
            "contact_id": "5550002"}),
        json!({"id": "e3", "type": "call", "call_id": "c3", "agent_id": "agent01", "disposition": "Connected",
            "direction": "inbound", "started_at": "2026-03-02T09:00:00Z", "answered_at": "2026-03-02T09:00:05Z",
            "agent_connected_at": "2026-03-02T09:00:05Z", "ended_at": "2026-03-02T09:03:05Z", "talk_seconds": 180,
            "contact_id": "5550003", "prospect": {"phone": "5550003", "name": "Smith, John"}}),
        json!({"id": "e4", "type": "call", "call_id": "c4", "agent_id": "agent02", "disposition": "No Answer",
            "direction": "inbound", "started_at": "2026-03-02T10:00:00Z", "ended_at": "2026-03-02T10:00:30Z",
            "contact_id": "5550004", "abandoned": true}),
    ];
    if columns > 16 {
        events.push(
            json!({"id": "e5", "type": "call", "call_id": "c5", "agent_id": "agent02",
            "disposition": "Connected", "direction": "inbound", "started_at": "2026-03-02T12:00:00Z",
            "answered_at": "2026-03-02T12:00:01Z", "agent_connected_at": "2026-03-02T12:00:25Z",
            "ended_at": "2026-03-02T12:02:00Z", "talk_seconds": 95, "contact_id": "5551234",
            "prospect": {"phone": "5551234", "name": "John Smith"}}),
        );
    }
    Value::Array(events)
}

#[tokio::test]
async fn asterisk_files_of_every_column_count_import_as_the_same_calls_sent_as_events() {
    for columns in [16, 17, 18, 21] {
        let app = TestApp::spawn("Europe/Berlin").await;
        let file = asterisk_file(columns);
        let calls = if columns > 16 { 5 } else { 4 };
        // The tenant's zone (Europe/Berlin) is the file's when none is given.
        let done = import(&app, "format=asterisk-cdr&name=Master.csv", &file).await;
        assert_eq!(done["name"], "Master.csv");
        let summary = &done["summary"];
        assert_eq!(
            (&summary["accepted"], &summary["duplicates"], &summary["rejected"]),
            (&json!(calls), &json!(0), &json!(1)),
            "{columns} columns: {done}"
        );
        let broken = "field 5: a quoted field is not closed on its line";
        assert_eq!(summary["first_rejections"], json!([format!("line 3: {broken}")]));
        let broken_line = file.lines().nth(2).unwrap();
        assert_eq!(
            rejects(&app, &done).await,
            format!("line,reason,text\n3,{},{}\n", quoted(broken), quoted(broken_line))
        );

        let (_, other_key) = app.other_tenant("events", false).await;
        let (status, sent) = app.post("/api/v1/events", &other_key, &asterisk_events(columns)).await;
        assert_eq!((status, &sent["accepted"]), (200, &json!(calls)), "{sent}");
        let imported = query(&app, &app.key).await;
        assert_eq!(imported, query(&app, &other_key).await, "{columns} columns");
        assert_eq!(imported["totals"]["total_calls"], calls);

        // Importing the file again counts nothing twice.
        let again = import(&app, "format=asterisk-cdr&timezone=Europe/Berlin", &file).await;
        assert_eq!(
            (&again["summary"]["accepted"], &again["summary"]["duplicates"]),
            (&json!(0), &json!(calls))
        );
        assert_eq!(query(&app, &app.key).await, imported);
    }
}

#[tokio::test]
async fn freeswitch_files_with_the_example_template_or_another_import_like_events() {
    let app = TestApp::spawn("America/New_York").await;
    // mod_cdr_csv's `example` template, times in UTC (--utc).
    let file = [
        r#""Jane Roe","+15550100","1002","public","2026-03-02 09:00:00","2026-03-02 09:00:07","2026-03-02 09:04:07","247","240","NORMAL_CLEARING","6f1c9a52-0001-4c6e-9a63-5b1a7e0c0001","","","PCMU","PCMU""#,
        r#""Agent 1001","1001","+15550200","default","2026-03-02 10:00:00","","2026-03-02 10:00:30","30","0","NO_ANSWER","6f1c9a52-0002-4c6e-9a63-5b1a7e0c0002","","","PCMU","PCMU""#,
        r#""Doe, Jim","1001","+15550300","default","2026-03-02 11:00:00","2026-03-02 11:00:09","2026-03-02 11:01:09","69","60","NORMAL_CLEARING","6f1c9a52-0003-4c6e-9a63-5b1a7e0c0003","6f1c9a52-0003-4c6e-9a63-5b1a7e0c0033","","PCMA","PCMA""#,
        r#""+15550400","+15550400","1003","public","2026-03-02 12:00:00","","2026-03-02 12:00:12","12","0","USER_BUSY","6f1c9a52-0004-4c6e-9a63-5b1a7e0c0004","","","PCMU","PCMU""#,
        r#""Cut","1003","+1555"#,
    ]
    .join("\n")
        + "\n";
    let done = import(&app, "format=freeswitch-cdr&utc=true", &file).await;
    let s = &done["summary"];
    assert_eq!((&s["accepted"], &s["rejected"]), (&json!(4), &json!(1)), "{done}");
    assert!(
        s["first_rejections"][0]
            .as_str()
            .unwrap()
            .starts_with("line 5: field 3: a quoted field is not closed"),
        "{done}"
    );
    let events = json!([
        {"id": "e1", "type": "call", "call_id": "c1", "agent_id": "1002", "disposition": "Connected", "direction": "inbound",
         "started_at": "2026-03-02T09:00:00Z", "answered_at": "2026-03-02T09:00:07Z", "agent_connected_at": "2026-03-02T09:00:07Z",
         "ended_at": "2026-03-02T09:04:07Z", "talk_seconds": 240, "contact_id": "+15550100"},
        {"id": "e2", "type": "call", "call_id": "c2", "agent_id": "1001", "disposition": "No Answer", "direction": "outbound",
         "started_at": "2026-03-02T10:00:00Z", "ended_at": "2026-03-02T10:00:30Z", "contact_id": "+15550200"},
        {"id": "e3", "type": "call", "call_id": "c3", "agent_id": "1001", "disposition": "Connected", "direction": "outbound",
         "started_at": "2026-03-02T11:00:00Z", "answered_at": "2026-03-02T11:00:09Z", "agent_connected_at": "2026-03-02T11:00:09Z",
         "ended_at": "2026-03-02T11:01:09Z", "talk_seconds": 60, "contact_id": "+15550300"},
        {"id": "e4", "type": "call", "call_id": "c4", "agent_id": "1003", "disposition": "Busy", "direction": "inbound",
         "started_at": "2026-03-02T12:00:00Z", "ended_at": "2026-03-02T12:00:12Z", "contact_id": "+15550400", "abandoned": true},
    ]);
    let (_, other_key) = app.other_tenant("events", false).await;
    assert_eq!(app.post("/api/v1/events", &other_key, &events).await.1["accepted"], 4);
    let imported = query(&app, &app.key).await;
    assert_eq!(imported, query(&app, &other_key).await);

    // Another template (as in cdr_csv.conf.xml, bare numbers included), agents mapped, local
    // times in the tenant's zone (America/New_York: UTC-5 in March before the 8th).
    let template = r#""${uuid}","${context}","${caller_id_number}","${destination_number}","${start_stamp}","${answer_stamp}","${end_stamp}",${billsec},"${hangup_cause}""#;
    let custom = r#""6f1c9a52-0005-4c6e-9a63-5b1a7e0c0005","public","+15550500","1002","2026-03-03 08:00:00","2026-03-03 08:00:03","2026-03-03 08:02:03",120,"NORMAL_CLEARING""#.to_string() + "\n";
    let params = format!(
        "format=freeswitch-cdr&template={}&map_agent=1002%3Djane",
        percent(template)
    );
    let done = import(&app, &params, &custom).await;
    assert_eq!(done["summary"]["accepted"], 1, "{done}");
    let (_, rows) = app
        .post(
            "/api/v1/query",
            &app.key,
            &json!({"measures": ["total_talk_time"], "dimensions": ["agent"],
            "filters": {"agent": ["jane"]}, "range": {"start": "2026-03-03", "end": "2026-03-04"}, "timezone": "UTC"}),
        )
        .await;
    assert_eq!(rows["totals"]["total_talk_time"], 120, "{rows}");

    // A template without the variables a call needs is a 400 naming it, before any upload.
    let (status, body) = upload(
        &app,
        &format!("format=freeswitch-cdr&template={}", percent(r#""${uuid}""#)),
        "x",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(super::helpers::error_fields(&body), ["template"]);
    let (status, body) = upload(&app, "format=asterisk-cdr&timezone=Mars/Olympus", "x").await;
    assert_eq!((status, super::helpers::error_fields(&body)), (400, vec!["timezone"]));
    let (status, body) = upload(&app, "format=asterisk-cdr&colour=red", "x").await;
    assert_eq!((status, super::helpers::error_fields(&body)), (400, vec!["colour"]));
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `dialboard import --format csv` on a dialer's export: columns by header, dispositions
/// mapped, a rejects file with line numbers, a summary; the same numbers as the events; a
/// second run counts nothing twice.
#[tokio::test]
async fn the_cli_imports_a_dialer_csv_with_rejects_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("csv.db").display());
    let key = last_line(&cli(&db, &["tenant", "create", "acme", "--timezone", "Europe/Paris"]));
    let other_key = last_line(&cli(&db, &["tenant", "create", "events"]));
    let file = dir.path().join("export.csv");
    std::fs::write(
        &file,
        "Call ID,Agent,Start,Result,Talk,Phone,Lead\r\n\
         D-1,ana,2026-03-02 09:00:00,SALE,0:02:00,+33100000001,\"Martin, Paul\"\r\n\
         D-2,ana,2026-03-02 09:10:00,NOANS,0,+33100000002,\r\n\
         D-3,bob,2026-03-02 09:20:00,NOANS,-5,+33100000003,\r\n\
         D-4,bob,2026-03-02 09:30:00,SALE,45,+33100000004,\"Durand \"\"Jo\"\"\"\r\n",
    )
    .unwrap();
    let rejects = dir.path().join("rejects.csv");
    let args = |rejects: &str| {
        vec![
            "import".to_string(),
            "--tenant".into(),
            "acme".into(),
            "--format".into(),
            "csv".into(),
            "--columns".into(),
            "call_id=Call ID,agent_id=Agent,started_at=Start,disposition=Result,talk_seconds=Talk,contact_id=Phone,prospect.name=Lead".into(),
            "--map-disposition".into(),
            "SALE=Interested,NOANS=No Answer".into(),
            "--rejects".into(),
            rejects.into(),
            file.to_str().unwrap().into(),
        ]
    };
    let run = |a: Vec<String>| cli(&db, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(rejects.to_str().unwrap()));
    assert_eq!(
        last_line(&out),
        format!(
            "imported {}: 5 lines: 3 accepted, 0 duplicates, 1 rejected",
            file.display()
        )
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("line 4: talk_seconds (column 'Talk'): '-5' is not a number of seconds"));
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "line,reason,text\n4,\"talk_seconds (column 'Talk'): '-5' is not a number of seconds\",\"D-3,bob,2026-03-02 09:20:00,NOANS,-5,+33100000003,\"\n"
    );
    let again = run(args(dir.path().join("rejects2.csv").to_str().unwrap()));
    assert!(last_line(&again).ends_with(": 5 lines: 0 accepted, 3 duplicates, 1 rejected"));
    // A column the header lacks fails the whole import, naming it.
    let mut wrong = args(rejects.to_str().unwrap());
    wrong[6] = "call_id=Call,agent_id=Agent,started_at=Start,disposition=Result".into();
    let out = run(wrong);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--columns: call_id=Call: the header has no column 'Call'"));

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut server = spawn_server(&db, port);
    wait_ready(&url).await;
    let events = json!([
        {"id": "x1", "type": "call", "call_id": "x1", "agent_id": "ana", "disposition": "Interested", "started_at": "2026-03-02T08:00:00Z", "talk_seconds": 120, "contact_id": "+33100000001"},
        {"id": "x2", "type": "call", "call_id": "x2", "agent_id": "ana", "disposition": "No Answer", "started_at": "2026-03-02T08:10:00Z", "talk_seconds": 0, "contact_id": "+33100000002"},
        {"id": "x4", "type": "call", "call_id": "x4", "agent_id": "bob", "disposition": "Interested", "started_at": "2026-03-02T08:30:00Z", "talk_seconds": 45, "contact_id": "+33100000004"},
    ]);
    let sent = post_json(&url, "/api/v1/events", &other_key, &events).await;
    assert_eq!(sent["accepted"], 3, "{sent}");
    let mut answers = Vec::new();
    for k in [&key, &other_key] {
        let body = post_json(&url, "/api/v1/query", k, &breakdown()).await;
        answers.push(json!({"totals": body["totals"], "rows": body["rows"]}));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0]["totals"]["total_calls"], 3);
    server.kill().unwrap();
    server.wait().unwrap();
}
