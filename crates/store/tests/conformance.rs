//! Random event streams — duplicates (also with other content), corrections in any order,
//! late events, analyses before and after their call, late status changes, conversations that
//! change channel after their CSAT scores, stages reached again or earlier — fed to a real
//! store in random batches give, through its rollups and the query model, exactly what brute
//! force over the final records gives — on SQLite and on PostgreSQL (a throwaway cluster the
//! test starts with the local `initdb`), which must therefore agree with each other too.

use dialboard_engine::cells::{call_dim_values, stage_dim_values, ticket_dim_values, DimValues, Fact};
use dialboard_engine::event::{
    parse_event, CallAnalysis, CallRecord, Conversation, CsatScore, Event, ParsedEvent, StageChange, StatusChange,
};
use dialboard_engine::measures::{Num, MEASURES};
use dialboard_engine::oracle::{self, Records};
use dialboard_engine::query::{
    directory_team, parse_drilldown, parse_query, passes_filters, AgentTeams, Context, KeyValue,
};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use dialboard_store::listing::RecordKind;
use dialboard_store::pg::{cluster::Cluster, PgStore};
use dialboard_store::sqlite::{Options, SqliteStore};
use dialboard_store::{CallsRequest, DirectoryKind, Store, TenantInfo, TenantSettings};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

const DISPOSITIONS: [&str; 7] = [
    "Connected",
    "Meeting Booked",
    "Interested",
    "No Answer",
    "Voicemail",
    "DNC",
    "Dropped",
];
const CHANNELS: [&str; 3] = ["email", "chat", "whatsapp"];
const INTENTS: [&str; 2] = ["billing", "demo"];
const STAGES: [&str; 3] = ["meeting_booked", "proposal_sent", "closed_won"];
const STATUSES: [&str; 5] = ["idle", "dialing", "on_call", "wrap_up", "offline"];
const ZONES: [&str; 4] = ["America/New_York", "Asia/Kathmandu", "Australia/Adelaide", "UTC"];
/// 2026-03-07T00:00:00Z, two days before the end of US winter time.
const T0: i64 = 1_772_841_600;

fn ts(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).unwrap().to_string()
}

/// One generated event, as JSON.
fn event_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => (0usize..25, 0i64..3 * 86_400, 0usize..DISPOSITIONS.len(), 0usize..3, prop::option::of(0i64..600), 0i64..5_000, any::<bool>(), 0usize..3)
            .prop_map(|(call, start, disp, agent, talk, updated, derive, team)| {
                let mut e = json!({"type": "call", "call_id": format!("c{call}"), "agent_id": format!("a{agent}"),
                    "campaign_id": format!("k{}", call % 3), "lead_source": "web",
                    "contact_id": format!("p{}", (call + agent) % 6),
                    "disposition": DISPOSITIONS[disp], "started_at": ts(T0 + start),
                    "updated_at": ts(T0 + 3 * 86_400 + updated), "is_callback": call % 4 == 0, "abandoned": call % 5 == 0});
                // Calls without a team count for their agent's team in the directory.
                if team < 2 {
                    e["team_id"] = json!(format!("t{team}"));
                }
                match (talk, derive) {
                    (Some(t), false) => e["talk_seconds"] = json!(t),
                    (Some(t), true) => {
                        e["agent_connected_at"] = json!(ts(T0 + start + 3));
                        e["ended_at"] = json!(ts(T0 + start + 3 + t));
                        e["answered_at"] = json!(ts(T0 + start + 1));
                    }
                    _ => {}
                }
                e
            }),
        2 => (0usize..25, 0u32..=100, -100i32..=100, 0i64..100).prop_map(|(call, score, sentiment, updated)| json!({
            "type": "call_analysis", "call_id": format!("c{call}"), "score": score, "sentiment": sentiment as f64 / 100.0,
            "agent_talk_ratio": 0.5, "updated_at": ts(T0 + updated),
            // A later analysis can move its call to another intent.
            "intent": INTENTS[(call + updated as usize) % 2]})),
        2 => (0usize..3, 0i64..3 * 86_400, 0usize..5).prop_map(|(agent, at, status)| json!({
            "type": "agent_status", "agent_id": format!("a{agent}"), "at": ts(T0 + at),
            "status": STATUSES[status]})),
        2 => (0usize..6, 0i64..3 * 86_400, 0usize..3, 0i64..5_000, prop::option::of(0i64..9_000), any::<bool>()).prop_map(
            |(conv, opened, channel, updated, response, resolved)| {
                let mut e = json!({"type": "conversation", "conversation_id": format!("v{conv}"),
                    "channel": CHANNELS[channel], "opened_at": ts(T0 + opened),
                    "agent_id": format!("a{}", conv % 3), "intent": INTENTS[conv % 2],
                    "updated_at": ts(T0 + 4 * 86_400 + updated)});
                // Tickets without a team count for their agent's team in the directory.
                if conv % 2 == 0 {
                    e["team_id"] = json!("t1");
                }
                if let Some(r) = response {
                    e["first_response_at"] = json!(ts(T0 + opened + r));
                    if resolved {
                        e["resolved_at"] = json!(ts(T0 + opened + 2 * r + 60));
                    }
                }
                e
            }),
        2 => (0usize..8, 0i64..3 * 86_400, 1i64..=5).prop_map(|(about, at, score)| {
            let mut e = json!({"type": "csat", "score": score, "at": ts(T0 + at), "agent_id": format!("a{}", about % 3)});
            if about < 6 { e["conversation_id"] = json!(format!("v{about}")); } else { e["call_id"] = json!("c1"); }
            e
        }),
        2 => (0usize..5, 0usize..3, 0i64..3 * 86_400, 0i64..100_000).prop_map(|(contact, stage, at, amount)| json!({
            "type": "lead_stage", "contact_id": format!("p{contact}"),
            "stage": STAGES[stage], "at": ts(T0 + at),
            "campaign_id": format!("k{}", contact % 3), "agent_id": format!("a{}", (contact + stage) % 3),
            "amount": amount as f64 / 100.0})),
    ]
}

/// A stream: events with ids, some re-sent as is and some re-sent with other content.
fn stream_strategy() -> impl Strategy<Value = Vec<Value>> {
    (
        prop::collection::vec(event_strategy(), 1..80),
        prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..15),
    )
        .prop_map(|(events, resends)| {
            let mut out: Vec<Value> = events
                .into_iter()
                .enumerate()
                .map(|(i, mut e)| {
                    e["id"] = json!(format!("e{i:03}"));
                    e
                })
                .collect();
            for (index, altered) in resends {
                let mut copy = out[index.index(out.len())].clone();
                if altered {
                    copy["agent_id"] = json!("someone-else"); // same id, other content: still a duplicate
                }
                out.push(copy);
            }
            out
        })
        .prop_shuffle()
}

#[derive(Default)]
struct Final {
    calls: Vec<CallRecord>,
    analyses: BTreeMap<String, CallAnalysis>,
    statuses: Vec<StatusChange>,
    conversations: Vec<Conversation>,
    csats: Vec<CsatScore>,
    stages: Vec<StageChange>,
}

/// The final records: first arrival of each id wins; the greatest version of each record.
fn final_records(events: &[ParsedEvent]) -> Final {
    let mut seen = HashSet::new();
    let mut calls: BTreeMap<String, CallRecord> = BTreeMap::new();
    let mut conversations: BTreeMap<String, Conversation> = BTreeMap::new();
    let mut out = Final::default();
    for e in events {
        if !seen.insert(e.id.clone()) {
            continue;
        }
        match &e.event {
            Event::Call(c) if calls.get(&c.call_id).is_none_or(|old| old.version() < c.version()) => {
                calls.insert(c.call_id.clone(), CallRecord::clone(c));
            }
            Event::Analysis(a)
                if out
                    .analyses
                    .get(&a.call_id)
                    .is_none_or(|old| old.version() < a.version()) =>
            {
                out.analyses.insert(a.call_id.clone(), a.clone());
            }
            Event::Conversation(c)
                if conversations
                    .get(&c.conversation_id)
                    .is_none_or(|old| old.version() < c.version()) =>
            {
                conversations.insert(c.conversation_id.clone(), c.clone());
            }
            Event::Status(s) => out.statuses.push(s.clone()),
            Event::Csat(s) => out.csats.push(s.clone()),
            Event::Stage(s) => out.stages.push(s.clone()),
            _ => {}
        }
    }
    out.calls = calls.into_values().collect();
    out.conversations = conversations.into_values().collect();
    out
}

fn queries() -> Vec<Value> {
    let measures: Vec<&str> = MEASURES.iter().map(|m| m.name).collect();
    let dims: [&[&str]; 11] = [
        &[],
        &["agent"],
        &["disposition_category"],
        &["campaign", "team"],
        &["hour_of_day"],
        &["score_range"],
        &["channel"],
        &["stage", "campaign"],
        &["intent", "agent"],
        &["team", "stage"],
        &["intent", "campaign"],
    ];
    let grans = [None, Some("hour"), Some("day"), Some("15m")];
    let mut out = Vec::new();
    for (i, d) in dims.iter().enumerate() {
        let mut q =
            json!({"measures": measures, "dimensions": d, "range": {"start": "2026-03-07", "end": "2026-03-10"}});
        if let Some(g) = grans[i % grans.len()] {
            q["granularity"] = json!(g);
        }
        if i % 2 == 1 {
            q["timezone"] = json!("Asia/Kolkata");
        }
        out.push(q);
    }
    out.push(
        json!({"measures": measures, "dimensions": ["intent"], "filters": {"campaign": ["k1"]},
        "range": {"start": "2026-03-07", "end": "2026-03-10"}}),
    );
    out.push(
        json!({"measures": measures, "dimensions": ["agent"], "filters": {"team": ["t1"]},
        "range": {"start": ts(T0 + 3600 * 5 + 900), "end": ts(T0 + 86_400 * 2 + 2700)}}),
    );
    out
}

fn close(a: &Value, b: Num) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        (None, None) => a.is_null(),
        _ => false,
    }
}

fn check(
    store: &dyn Store,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    zone: &str,
    events: &[ParsedEvent],
    agent_teams: &AgentTeams,
) -> Result<(), TestCaseError> {
    let f = final_records(events);
    let records = Records {
        calls: &f.calls,
        analyses: &f.analyses,
        statuses: &f.statuses,
        conversations: &f.conversations,
        csats: &f.csats,
        stages: &f.stages,
        agent_teams,
    };
    let clock = dialboard_engine::clock::Clock::new(zone).unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let ctx = Context {
        tenant_clock: &clock,
        zone: &clock,
        taxonomy: &taxonomy,
        now: T0,
        earliest: None,
        agent_teams,
    };
    for body in queries() {
        let q = parse_query(&body, &ctx).unwrap();
        let (rows, totals) = oracle::evaluate(&q, q.range, &records, &taxonomy);
        let got = rt
            .block_on(store.query(tenant, body.clone(), T0))
            .unwrap()
            .unwrap()
            .to_json();
        for (i, m) in q.measures.iter().enumerate() {
            prop_assert!(
                close(&got["totals"][m.name], totals[i]),
                "{} total: store {} vs brute force {:?} for {}",
                m.name,
                got["totals"][m.name],
                totals[i],
                body
            );
        }
        prop_assert_eq!(
            got["rows"].as_array().unwrap().len(),
            rows.len(),
            "row count for {}",
            body
        );
        let key_len = q.dimensions.len() + q.granularity.is_some() as usize;
        for (row, (key, values)) in got["rows"].as_array().unwrap().iter().zip(&rows) {
            let cells = row.as_array().unwrap();
            for (cell, k) in cells.iter().zip(key) {
                let expected = match k {
                    KeyValue::Null => Value::Null,
                    KeyValue::Int(i) => json!(i),
                    KeyValue::Text(s) => json!(s),
                    KeyValue::Time(t) => json!(q.clock.format(*t)),
                };
                prop_assert_eq!(cell, &expected);
            }
            for (cell, v) in cells[key_len..].iter().zip(values) {
                prop_assert!(
                    close(cell, *v),
                    "row {:?}: store {} vs brute force {:?} for {}",
                    key,
                    cell,
                    v,
                    body
                );
            }
        }
    }
    check_drill(store, rt, tenant, &f, &ctx)?;
    check_listings(store, rt, tenant, &f, &ctx)
}

/// Every page of a drill-down (a few calls a page), in order.
fn drill_all(
    store: &dyn Store,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    query: &Value,
    now: i64,
) -> Result<Vec<String>, TestCaseError> {
    let (mut got, mut cursor) = (Vec::new(), None);
    loop {
        let request = CallsRequest {
            query: query.clone(),
            cursor: cursor.take(),
            limit: 3,
        };
        let page = rt.block_on(store.calls(tenant, request, now)).unwrap().unwrap();
        got.extend(page.calls.iter().map(|c| c["call_id"].as_str().unwrap().to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(got)
}

/// The final calls that a drill-down `query` shows, newest first, by brute force.
fn drill_expected<'a>(f: &'a Final, query: &Value, ctx: &Context) -> Vec<&'a CallRecord> {
    let q = parse_query(query, ctx).unwrap();
    let mut expected: Vec<&CallRecord> = f
        .calls
        .iter()
        .filter(|c| {
            let t = c.started_second();
            let mut values = call_dim_values(c, f.analyses.get(&c.call_id));
            directory_team(&mut values, Fact::Calls, ctx.agent_teams);
            (q.range.start..q.range.end).contains(&t)
                && passes_filters(
                    &q.filters,
                    &values,
                    q.clock.hour_of_day(t),
                    q.clock.day_of_week(t),
                    ctx.taxonomy,
                )
        })
        .collect();
    expected.sort_by(|a, b| (b.started_ns, &b.call_id).cmp(&(a.started_ns, &a.call_id)));
    expected
}

/// Paging through the drill-down (a few calls a page) gives the final calls of the range
/// that pass its filters (read through SQL conditions and indexes), newest first, each once;
/// `all_time` covers every call; the per-agent drill-down and the meeting streaks read in
/// one pass agree with brute force.
fn check_drill(
    store: &dyn Store,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    f: &Final,
    ctx: &Context,
) -> Result<(), TestCaseError> {
    let filters = [
        json!({}),
        json!({"agent": ["a0"]}),
        json!({"agent": ["a1", "a2"], "disposition": ["No Answer", "DNC", "Connected"]}),
        json!({"team": ["t1"]}),
        json!({"campaign": ["k1", "k2"], "team": ["t0"]}),
        json!({"campaign": ["k2"]}),
        json!({"disposition": ["Connected"]}),
        json!({"disposition_category": ["connected", "invalid"]}),
        json!({"agent": ["a2"], "disposition_category": ["no_contact"], "hour_of_day": ["1", "2", "3", "4", "5", "6"]}),
        json!({"lead_source": ["web"], "direction": ["outbound"], "score_range": ["40-60", "60-80", "80-100"]}),
    ];
    for filter in &filters {
        let query = json!({"measures": ["total_calls"], "range": {"start": "2026-03-07", "end": "2026-03-10"},
            "filters": filter});
        let expected: Vec<&str> = drill_expected(f, &query, ctx)
            .iter()
            .map(|c| c.call_id.as_str())
            .collect();
        prop_assert_eq!(
            drill_all(store, rt, tenant, &query, T0)?,
            expected,
            "drill-down by {}",
            filter
        );
    }
    // All time, days after the last call: every call.
    let mut all: Vec<&CallRecord> = f.calls.iter().collect();
    all.sort_by(|a, b| (b.started_ns, &b.call_id).cmp(&(a.started_ns, &a.call_id)));
    let all: Vec<&str> = all.iter().map(|c| c.call_id.as_str()).collect();
    let all_time = json!({"range": {"preset": "all_time"}});
    prop_assert_eq!(
        drill_all(store, rt, tenant, &all_time, T0 + 10 * 86_400)?,
        all,
        "all_time"
    );

    let agents: Vec<String> = ["a0", "a1", "a2", "nobody"].map(String::from).to_vec();
    let query = json!({"range": {"start": "2026-03-07", "end": "2026-03-10"},
        "filters": {"disposition_category": ["connected", "no_contact"]}});
    let request = CallsRequest {
        query: query.clone(),
        cursor: None,
        limit: 2,
    };
    let pages = rt
        .block_on(store.calls_per_agent(tenant, request, agents.clone(), T0))
        .unwrap()
        .unwrap();
    let expected = drill_expected(
        f,
        &json!({"measures": ["total_calls"], "range": query["range"], "filters": query["filters"]}),
        ctx,
    );
    for (agent, page) in agents.iter().zip(&pages) {
        let mine: Vec<&str> = expected
            .iter()
            .filter(|c| c.agent_id == *agent)
            .map(|c| c.call_id.as_str())
            .collect();
        let got: Vec<&str> = page.calls.iter().map(|c| c["call_id"].as_str().unwrap()).collect();
        prop_assert_eq!(&got[..], &mine[..mine.len().min(2)], "calls of {}", agent);
        prop_assert_eq!(page.next_cursor.is_some(), mine.len() > 2);
    }

    // Streaks of meetings and connects since the middle of the second day.
    let (from, to) = (T0 + 86_400 + 43_200, T0 + 3 * 86_400);
    let run: Vec<String> = ["Meeting Booked", "Connected"].map(String::from).to_vec();
    let streaks = rt
        .block_on(store.disposition_streaks(
            tenant,
            agents.clone(),
            from * 1_000_000_000,
            to * 1_000_000_000,
            run.clone(),
        ))
        .unwrap();
    for (agent, streak) in agents.iter().zip(streaks) {
        let mut mine: Vec<&CallRecord> = f
            .calls
            .iter()
            .filter(|c| c.agent_id == *agent && (from..to).contains(&c.started_second()))
            .collect();
        mine.sort_by(|a, b| (b.started_ns, &b.call_id).cmp(&(a.started_ns, &a.call_id)));
        let expected = mine.iter().take_while(|c| run.contains(&c.disposition)).count() as i64;
        prop_assert_eq!(streak, expected, "streak of {}", agent);
    }
    Ok(())
}

/// Every page of the conversations' or stage changes' drill-down (a few a page): the ids.
fn records_all(
    store: &dyn Store,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    kind: RecordKind,
    query: &Value,
    now: i64,
) -> Vec<String> {
    let id = match kind {
        RecordKind::Conversations => "conversation_id",
        RecordKind::LeadStages => "event_id",
    };
    let (mut got, mut cursor) = (Vec::new(), None);
    loop {
        let request = CallsRequest {
            query: query.clone(),
            cursor: cursor.take(),
            limit: 3,
        };
        let page = rt.block_on(store.records(tenant, kind, request, now)).unwrap().unwrap();
        got.extend(page.records.iter().map(|r| r[id].as_str().unwrap().to_string()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return got,
        }
    }
}

/// The ids of `records` (time ns, id, dimension values) in the range of `query` that pass its
/// filters, newest first, by brute force.
fn records_expected<'a>(
    records: impl Iterator<Item = (i64, &'a str, DimValues<'a>)>,
    fact: Fact,
    query: &Value,
    ctx: &'a Context,
) -> Vec<String> {
    let q = parse_drilldown(query, ctx).unwrap();
    let mut expected: Vec<(i64, &str)> = records
        .filter_map(|(ns, id, mut values)| {
            let t = ns.div_euclid(1_000_000_000);
            directory_team(&mut values, fact, ctx.agent_teams);
            let shown = (q.range.start..q.range.end).contains(&t)
                && passes_filters(
                    &q.filters,
                    &values,
                    q.clock.hour_of_day(t),
                    q.clock.day_of_week(t),
                    ctx.taxonomy,
                );
            shown.then_some((ns, id))
        })
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    expected.into_iter().map(|(_, id)| id.to_string()).collect()
}

/// The drill-downs of conversations (their final versions) and stage changes (each one):
/// paging with filters on stored columns, on the directory's team and on the hour gives the
/// records of the range that pass them, newest first, each once; `all_time` covers them all.
fn check_listings(
    store: &dyn Store,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    f: &Final,
    ctx: &Context,
) -> Result<(), TestCaseError> {
    let range = json!({"start": "2026-03-07", "end": "2026-03-10"});
    let far = T0 + 10 * 86_400;
    let conversation_filters = [
        json!({}),
        json!({"agent": ["a0"]}),
        json!({"channel": ["chat", "email"], "intent": ["demo"]}),
        json!({"team": ["t1"]}),
        json!({"agent": ["a1", "a2"], "hour_of_day": ["1", "2", "3", "4", "5", "6", "7", "8"]}),
    ];
    for filter in &conversation_filters {
        for (query, now) in [
            (json!({"range": range, "filters": filter}), T0),
            (json!({"range": {"preset": "all_time"}, "filters": filter}), far),
        ] {
            let earliest = f
                .conversations
                .iter()
                .map(|c| c.opened_ns.div_euclid(1_000_000_000))
                .min();
            let ctx = Context { now, earliest, ..*ctx };
            let rows = f
                .conversations
                .iter()
                .map(|c| (c.opened_ns, c.conversation_id.as_str(), ticket_dim_values(c)));
            let expected = records_expected(rows, Fact::Tickets, &query, &ctx);
            let got = records_all(store, rt, tenant, RecordKind::Conversations, &query, now);
            prop_assert_eq!(got, expected, "conversations by {}", query);
        }
    }
    let stage_filters = [
        json!({}),
        json!({"agent": ["a1"]}),
        json!({"stage": ["closed_won", "proposal_sent"], "campaign": ["k0", "k2"]}),
        json!({"team": ["t0", "t1"]}),
        json!({"lead_source": [""]}),
    ];
    for filter in &stage_filters {
        for (query, now) in [
            (json!({"range": range, "filters": filter}), T0),
            (json!({"range": {"preset": "all_time"}, "filters": filter}), far),
        ] {
            let earliest = f.stages.iter().map(|s| s.at_ns.div_euclid(1_000_000_000)).min();
            let ctx = Context { now, earliest, ..*ctx };
            let rows = f
                .stages
                .iter()
                .map(|s| (s.at_ns, s.event_id.as_str(), stage_dim_values(s)));
            let expected = records_expected(rows, Fact::Stages, &query, &ctx);
            let got = records_all(store, rt, tenant, RecordKind::LeadStages, &query, now);
            prop_assert_eq!(got, expected, "lead stages by {}", query);
        }
    }
    Ok(())
}

/// Opens the store under test: the same database each time (a second call reopens it).
type Open<'a> = &'a dyn Fn() -> Arc<dyn Store>;

/// One PostgreSQL cluster for the whole run; a database per case.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| Cluster::start(false).expect("a throwaway PostgreSQL cluster starts"))
}

fn parsed(stream: &[Value]) -> Vec<ParsedEvent> {
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    stream
        .iter()
        .map(|v| parse_event(v, &taxonomy).expect("generated events are valid"))
        .collect()
}

fn put_agent(store: &dyn Store, rt: &tokio::runtime::Runtime, tenant: i64, id: &str, team: Option<&str>) {
    rt.block_on(store.put_directory(tenant, DirectoryKind::Agent, id, json!({"name": id, "team_id": team})))
        .unwrap();
}

/// The directory puts a0 in t0 and a1 in t1; a2 has no team.
fn directory(store: &dyn Store, rt: &tokio::runtime::Runtime, tenant: i64) -> AgentTeams {
    put_agent(store, rt, tenant, "a0", Some("t0"));
    put_agent(store, rt, tenant, "a1", Some("t1"));
    put_agent(store, rt, tenant, "a2", None);
    [("a0", "t0"), ("a1", "t1")]
        .into_iter()
        .map(|(a, t)| (a.into(), t.into()))
        .collect()
}

/// A store with tenant `t` in `zone` and the directory of [`directory`], and `stream` parsed.
fn start(
    open: Open,
    stream: &[Value],
    zone: &str,
) -> (
    tokio::runtime::Runtime,
    Arc<dyn Store>,
    Arc<TenantInfo>,
    Vec<ParsedEvent>,
    AgentTeams,
) {
    let rt = runtime();
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new(zone)))
        .unwrap();
    let teams = directory(&*store, &rt, tenant.id);
    (rt, store, tenant, parsed(stream), teams)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Checks `store`, closes it, and checks it again reopened.
fn check_and_reopen(
    open: Open,
    store: Arc<dyn Store>,
    rt: &tokio::runtime::Runtime,
    tenant: i64,
    zone: &str,
    parsed: &[ParsedEvent],
    teams: &AgentTeams,
) -> Result<(), TestCaseError> {
    check(&*store, rt, tenant, zone, parsed, teams)?;
    rt.block_on(store.shutdown());
    drop(store);
    let reopened = open();
    check(&*reopened, rt, tenant, zone, parsed, teams)?;
    rt.block_on(reopened.shutdown());
    Ok(())
}

fn equals_brute_force(
    open: Open,
    stream: &[Value],
    zone: &str,
    batch: usize,
    fold_midway: bool,
    reopen_midway: bool,
) -> Result<(), TestCaseError> {
    let (rt, mut store, tenant, parsed, mut teams) = start(open, stream, zone);
    let mut accepted = 0;
    for (i, chunk) in parsed.chunks(batch).enumerate() {
        accepted += rt.block_on(store.ingest(tenant.id, chunk.to_vec())).unwrap().accepted;
        if fold_midway && i == 1 {
            rt.block_on(store.checkpoint()).unwrap();
        }
        // A restart midway: what the writer holds (on SQLite the meetings' first calls, the
        // key filters) is built again from the database, and later events must find the rest.
        if reopen_midway && i == 2 {
            rt.block_on(store.shutdown());
            drop(store);
            store = open();
        }
    }
    let unique: HashSet<&str> = parsed.iter().map(|e| e.id.as_str()).collect();
    prop_assert_eq!(accepted, unique.len());
    check(&*store, &rt, tenant.id, zone, &parsed, &teams)?;
    // As after a crash: the store stops without its last checkpoint (what it holds since the
    // last one is only committed, not folded; a merge of runs may be half built), and the store
    // opened on the database then gives the same answers.
    drop(store);
    let store = open();
    check(&*store, &rt, tenant.id, zone, &parsed, &teams)?;
    // a2 joins t1 and a0 leaves the directory: activity, CSAT, stages, and calls and tickets
    // without a team follow at once.
    put_agent(&*store, &rt, tenant.id, "a2", Some("t1"));
    rt.block_on(store.delete_directory(tenant.id, DirectoryKind::Agent, "a0"))
        .unwrap();
    teams.insert("a2".into(), "t1".into());
    teams.remove("a0");
    // The same answers after folding everything into cells, and after a reopen.
    rt.block_on(store.checkpoint()).unwrap();
    check_and_reopen(open, store, &rt, tenant.id, zone, &parsed, &teams)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_equals_brute_force(stream in stream_strategy(), zone_index in 0usize..ZONES.len(), batch in 1usize..20, fold_midway in any::<bool>(), reopen_midway in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::not_durable()).unwrap()) };
        equals_brute_force(&open, &stream, ZONES[zone_index], batch, fold_midway, reopen_midway)?;
    }

    #[test]
    fn postgres_store_equals_brute_force(stream in stream_strategy(), zone_index in 0usize..ZONES.len(), batch in 1usize..20, fold_midway in any::<bool>(), reopen_midway in any::<bool>()) {
        let url = cluster().create_database().unwrap();
        let open = || -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) };
        equals_brute_force(&open, &stream, ZONES[zone_index], batch, fold_midway, reopen_midway)?;
    }
}

/// The stream (in random time order, with corrections) checkpointed after every batch, so that
/// blocks get many parts and their merges (SQLite's `parts`), and the store closed and reopened
/// every `restart_every` batches: the answers are the brute force's, before and after a last
/// checkpoint and reopen.
fn equals_brute_force_through_checkpoints(
    open: Open,
    stream: &[Value],
    zone: &str,
    batch: usize,
    restart_every: usize,
) -> Result<(), TestCaseError> {
    let (rt, mut store, tenant, parsed, teams) = start(open, stream, zone);
    for (i, chunk) in parsed.chunks(batch).enumerate() {
        rt.block_on(store.ingest(tenant.id, chunk.to_vec())).unwrap();
        rt.block_on(store.checkpoint()).unwrap();
        if i % restart_every == restart_every - 1 {
            rt.block_on(store.shutdown());
            drop(store);
            store = open();
        }
    }
    check_and_reopen(open, store, &rt, tenant.id, zone, &parsed, &teams)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_store_equals_brute_force_through_checkpoints(stream in stream_strategy(), zone_index in 0usize..ZONES.len(), batch in 1usize..4, restart_every in 1usize..12) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = || -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::not_durable()).unwrap()) };
        equals_brute_force_through_checkpoints(&open, &stream, ZONES[zone_index], batch, restart_every)?;
    }
}

/// Calls that start at the same instant are listed by id, newest instant first, across pages,
/// through the time index and through a filter's index (whose entries hold no call id on
/// SQLite: the tie is sorted when read); each call's detail gives back every version's body as
/// sent (on SQLite, from the transaction's compressed block of bodies).
fn ties_and_bodies(open: Open) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let store = open();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("UTC")))
        .unwrap();
    let call = |n: usize, call: &str, agent: &str, start: i64| {
        json!({"id": format!("e{n}"), "type": "call", "call_id": call, "agent_id": agent,
               "disposition": "Connected", "started_at": ts(T0 + start), "updated_at": ts(T0 + 600),
               "prospect": {"name": format!("Prospect {call}")}})
    };
    let ids = ["c7", "c2", "c9", "c4", "c1", "c5"];
    let mut events: Vec<Value> = ids.iter().enumerate().map(|(n, c)| call(n, c, "a1", 60)).collect();
    events.push(call(6, "c3", "a1", 120));
    events.push(call(7, "c8", "a2", 60));
    let parsed: Vec<ParsedEvent> = events.iter().map(|e| parse_event(e, &taxonomy).unwrap()).collect();
    rt.block_on(store.ingest(tenant.id, parsed.clone())).unwrap();
    let range = json!({"start": "2026-03-07", "end": "2026-03-08"});
    let all = drill_all(&*store, &rt, tenant.id, &json!({"range": range}), T0).unwrap();
    assert_eq!(all, ["c3", "c9", "c8", "c7", "c5", "c4", "c2", "c1"]);
    let query = json!({"range": range, "filters": {"agent": ["a1"]}});
    let by_agent = drill_all(&*store, &rt, tenant.id, &query, T0).unwrap();
    assert_eq!(by_agent, ["c3", "c9", "c7", "c5", "c4", "c2", "c1"]);
    for (event, sent) in parsed.iter().zip(&events) {
        let Event::Call(c) = &event.event else { unreachable!() };
        let detail = rt.block_on(store.call(tenant.id, &c.call_id)).unwrap().unwrap();
        assert_eq!(detail["versions"][0]["event"], *sent, "{}", c.call_id);
    }
    rt.block_on(store.shutdown());
}

/// On SQLite the events are in one compressed block (the batch was one transaction), with no
/// row in `events`, and the indexes of calls hold no call id.
#[test]
fn sqlite_lists_ties_by_id_and_keeps_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    ties_and_bodies(&|| -> Arc<dyn Store> { Arc::new(SqliteStore::open(&path, Options::not_durable()).unwrap()) });
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    let blocks: (i64, i64) = conn
        .query_row("SELECT count(*), sum(events) FROM event_blocks", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((rows, blocks), (0, (1, 8)), "no event has a row: one block holds the 8");
    // Nor is the call id in the entries of the calls' indexes (36 bytes a UUID in each).
    let with_id: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_index_list('calls') l, pragma_index_info(l.name) i WHERE i.name = 'call_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(with_id, 0);
}

#[test]
fn postgres_lists_ties_by_id_and_keeps_bodies() {
    let url = cluster().create_database().unwrap();
    ties_and_bodies(&|| -> Arc<dyn Store> { Arc::new(PgStore::open(&url).unwrap()) });
}

/// The stream with distinct versions: `updated_at` moved by the event's position in
/// milliseconds, so no two versions of a record tie (a tie is broken by the greater event id,
/// which other ids would order otherwise).
fn with_distinct_versions(stream: &[Value]) -> Vec<Value> {
    stream
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut e = e.clone();
            if let Some(at) = e["updated_at"].as_str() {
                let at: jiff::Timestamp = at.parse().unwrap();
                e["updated_at"] = json!((at + jiff::SignedDuration::from_millis(i as i64)).to_string());
            }
            e
        })
        .collect()
}

/// A UUIDv4-shaped id for `id`, random for each `seed` (and distinct for distinct ids).
fn random_id(seed: u64, id: &str) -> String {
    use std::hash::{Hash, Hasher};
    let half = |part: u8| {
        let mut h = std::hash::DefaultHasher::new();
        (seed, part, id).hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(0), half(1));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// The stream with every event, call and conversation id replaced by a random one; returns it
/// and the way back (random id → counting id).
fn with_random_ids(stream: &[Value], seed: u64) -> (Vec<Value>, BTreeMap<String, String>) {
    let mut back = BTreeMap::new();
    let out = stream
        .iter()
        .map(|e| {
            let mut e = e.clone();
            for field in ["id", "call_id", "conversation_id"] {
                if let Some(id) = e[field].as_str().map(str::to_string) {
                    let random = random_id(seed, &format!("{field}:{id}"));
                    back.insert(random.clone(), id);
                    e[field] = json!(random);
                }
            }
            e
        })
        .collect();
    (out, back)
}

/// What a store answers about a stream: ingest summaries, every query of the conformance
/// suite, all calls of all time, and each call's detail with its versions.
fn answers(store: &dyn Store, stream: &[Value], batch: usize, back: &BTreeMap<String, String>) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tenant = rt
        .block_on(store.create_tenant("t", TenantSettings::new("America/New_York")))
        .unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let parsed: Vec<ParsedEvent> = stream.iter().map(|v| parse_event(v, &taxonomy).unwrap()).collect();
    // Ids of the stream as counting ids again (ids within longer strings too: bodies, cursors).
    let counting = |v: Value| -> Value {
        let mut text = v.to_string();
        for (random, id) in back {
            text = text.replace(random.as_str(), id);
        }
        serde_json::from_str(&text).unwrap()
    };
    let mut out = Vec::new();
    for chunk in parsed.chunks(batch) {
        let summary = rt.block_on(store.ingest(tenant.id, chunk.to_vec())).unwrap();
        out.push(json!([summary.accepted, summary.duplicates]));
    }
    for query in queries() {
        out.push(
            rt.block_on(store.query(tenant.id, query, T0))
                .unwrap()
                .unwrap()
                .to_json(),
        );
    }
    let all_time = json!({"range": {"preset": "all_time"}});
    let mut calls: Vec<String> = drill_all(store, &rt, tenant.id, &all_time, T0 + 10 * 86_400)
        .unwrap()
        .into_iter()
        .collect();
    for call in &calls {
        let mut detail = rt
            .block_on(store.call(tenant.id, call))
            .unwrap()
            .expect("every listed call has a detail");
        let mut versions: Vec<Value> = detail["versions"].as_array().unwrap().clone();
        for v in &mut versions {
            v.as_object_mut().unwrap().remove("received_at");
        }
        detail["versions"] = json!([]);
        let mut versions: Vec<Value> = versions.into_iter().map(counting).collect();
        versions.sort_by_key(|v| v["event_id"].as_str().unwrap().to_string());
        out.push(json!({"call": counting(detail), "versions": versions}));
    }
    // The order of calls starting at the same instant follows their ids.
    calls = calls.into_iter().map(|c| back.get(&c).cloned().unwrap_or(c)).collect();
    calls.sort();
    out.push(json!(calls));
    // Details come in the drill-down's order: sort them by call for the comparison.
    let details = out.len() - 1 - calls.len()..out.len() - 1;
    out[details].sort_by_key(|d| d["call"]["call_id"].as_str().unwrap().to_string());
    rt.block_on(store.shutdown());
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Ids are only names: the same stream with random ids (as real sources send) and with ids
    /// that count up gives every answer equal — summaries, queries, drill-downs, call details.
    #[test]
    fn random_and_counting_ids_give_the_same_answers(stream in stream_strategy(), batch in 1usize..20, seed in any::<u64>()) {
        let stream = with_distinct_versions(&stream);
        let (random, back) = with_random_ids(&stream, seed);
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| SqliteStore::open(dir.path().join(name), Options::not_durable()).unwrap();
        let counted = answers(&open("counting.db"), &stream, batch, &BTreeMap::new());
        let randomized = answers(&open("random.db"), &random, batch, &back);
        prop_assert_eq!(counted.len(), randomized.len());
        for (a, b) in counted.iter().zip(&randomized) {
            prop_assert_eq!(a, b);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// The same on PostgreSQL, whose ids are found through indexes on their hashes.
    #[test]
    fn random_and_counting_ids_give_the_same_answers_on_postgresql(stream in stream_strategy(), batch in 1usize..20, seed in any::<u64>()) {
        let stream = with_distinct_versions(&stream);
        let (random, back) = with_random_ids(&stream, seed);
        let open = || PgStore::open(&cluster().create_database().unwrap()).unwrap();
        let counted = answers(&open(), &stream, batch, &BTreeMap::new());
        let randomized = answers(&open(), &random, batch, &back);
        prop_assert_eq!(counted.len(), randomized.len());
        for (a, b) in counted.iter().zip(&randomized) {
            prop_assert_eq!(a, b);
        }
    }
}
