//! Rollups + planner + aggregation give exactly what brute force over the final records gives,
//! for every measure, dimension and granularity, in zones with DST and odd offsets.

use dialboard_engine::cells::{
    cuboid, for_each_activity_cell, for_each_call_cell, for_each_csat_cell, for_each_stage_cell, for_each_ticket_cell,
    CellData, CellId, CellRef, Cuboid, Grains, Stats,
};
use dialboard_engine::clock::{Clock, Grain};
use dialboard_engine::event::{
    AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, StageChange, StatusChange,
};
use dialboard_engine::measures::{Num, MEASURES};
use dialboard_engine::oracle::{self, Records};
use dialboard_engine::query::{self, AgentTeams, CellSource, Context, Dimension, Query, SourceError};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

const ZONES: [&str; 7] = [
    "UTC",
    "America/New_York",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Europe/London",
    "Asia/Kolkata",
];
const DISPOSITIONS: [&str; 8] = [
    "Connected",
    "Meeting Booked",
    "Interested",
    "Not Interested",
    "No Answer",
    "Voicemail",
    "Wrong Number",
    "Dropped",
];
/// 2026-03-06T00:00Z: a window spanning the US spring-forward and Lord Howe/Adelaide dates.
const WINDOW_START: i64 = 1_772_755_200;
const WINDOW: i64 = 5 * 86_400;
const NS: i64 = 1_000_000_000;

struct MemorySource {
    cells: BTreeMap<CellId, Stats>,
    calls: Vec<CallRecord>,
    analyses: BTreeMap<String, CallAnalysis>,
}

impl CellSource for MemorySource {
    fn cells(
        &mut self,
        c: &Cuboid,
        grain: Grain,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(i64, &str, CellData),
    ) -> Result<(), SourceError> {
        for (id, s) in &self.cells {
            if id.cuboid == c.id && id.grain == grain && (from..to).contains(&id.bucket) {
                sink(id.bucket, &id.key, CellData::Decoded(s));
            }
        }
        Ok(())
    }

    fn raw_calls(
        &mut self,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(&CallRecord, Option<&CallAnalysis>),
    ) -> Result<(), SourceError> {
        for c in &self.calls {
            if (from..to).contains(&c.started_second()) {
                sink(c, self.analyses.get(&c.call_id));
            }
        }
        Ok(())
    }
}

fn pick<T: Clone + std::fmt::Debug>(xs: &[T]) -> impl Strategy<Value = T> + '_ {
    (0..xs.len()).prop_map(move |i| xs[i].clone())
}

fn opt_id(prefix: &'static str, n: usize) -> impl Strategy<Value = Option<String>> {
    prop::option::of((0..n).prop_map(move |i| format!("{prefix}{i}")))
}

fn call_strategy() -> impl Strategy<Value = CallRecord> {
    (
        (
            0..WINDOW * NS,
            0usize..4,
            opt_id("t", 2),
            opt_id("c", 3),
            opt_id("l", 2),
            opt_id("s", 3),
        ),
        (
            pick(&DISPOSITIONS),
            prop::option::of(0i64..900),
            prop::option::of(0i64..40),
            prop::option::of(0i64..120),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(prop_oneof![Just("outbound"), Just("inbound")]),
            opt_id("p", 6),
        ),
    )
        .prop_map(
            |((start, agent, team, campaign, list, source), (disp, talk, wait, wrap), (vm, cb, ab, dir, contact))| {
                CallRecord {
                    call_id: String::new(),
                    event_id: String::new(),
                    version_ns: 0,
                    agent_id: format!("a{agent}"),
                    team_id: team,
                    campaign_id: campaign,
                    list_id: list,
                    contact_id: contact,
                    lead_source: source,
                    direction: dir.map(String::from),
                    disposition: disp.to_string(),
                    started_ns: WINDOW_START * NS + start,
                    ended_ns: None,
                    talk_seconds: talk,
                    wait_seconds: wait,
                    wrap_seconds: wrap,
                    voicemail_dropped: vm,
                    is_callback: cb,
                    abandoned: ab,
                }
            },
        )
}

fn analysis_strategy() -> impl Strategy<Value = CallAnalysis> {
    (
        prop::option::of(0i64..=100_000_000),
        prop::option::of(-1_000_000i64..=1_000_000),
        prop::option::of(0i64..=1_000_000),
    )
        .prop_map(|(score, sentiment, ratio)| CallAnalysis {
            call_id: String::new(),
            event_id: String::new(),
            version_ns: 0,
            score_micros: score,
            sentiment_micros: sentiment,
            prospect_sentiment_micros: sentiment.map(|s| -s / 2),
            talk_ratio_micros: ratio,
            filler_micros: score.map(|s| s / 7),
            intent: score.map(|s| ["pricing", "demo", "support"][(s % 3) as usize].to_string()),
        })
}

fn conversation_strategy() -> impl Strategy<Value = Conversation> {
    (
        (0..WINDOW * NS, opt_id("a", 4), opt_id("t", 2)),
        (pick(&["email", "whatsapp", "chat", "voice"]), opt_id("i", 2)),
        (prop::option::of(0..7_200 * NS), prop::option::of(0..90_000 * NS)),
    )
        .prop_map(|((opened, agent, team), (channel, intent), (response, resolution))| {
            let opened_ns = WINDOW_START * NS + opened;
            Conversation {
                conversation_id: String::new(),
                event_id: String::new(),
                version_ns: 0,
                channel: channel.to_string(),
                opened_ns,
                agent_id: agent,
                team_id: team,
                first_response_ns: response.map(|r| opened_ns + r),
                resolved_ns: resolution.map(|r| opened_ns + r),
                status: None,
                intent,
            }
        })
}

/// CSAT about one of the first conversations (some of which may not exist), a call, or nothing.
fn csat_strategy() -> impl Strategy<Value = CsatScore> {
    (0..WINDOW * NS, 1i64..=5, 0usize..8, opt_id("a", 4)).prop_map(|(at, score, about, agent)| CsatScore {
        event_id: format!("csat{at}"),
        score,
        at_ns: WINDOW_START * NS + at,
        call_id: (about == 6).then(|| "call0".to_string()),
        conversation_id: (about < 6).then(|| format!("conv{about}")),
        agent_id: agent,
    })
}

fn stage_strategy() -> impl Strategy<Value = StageChange> {
    (
        (
            0..WINDOW * NS,
            0usize..6,
            pick(&["connected", "meeting_booked", "closed_won"]),
        ),
        (
            opt_id("a", 4),
            opt_id("c", 3),
            opt_id("s", 3),
            prop::option::of(0i64..5_000_000),
        ),
    )
        .prop_map(
            |((at, contact, stage), (agent, campaign, source, amount))| StageChange {
                event_id: format!("stage{at}"),
                contact_id: format!("p{contact}"),
                stage: stage.to_string(),
                at_ns: WINDOW_START * NS + at,
                campaign_id: campaign,
                lead_source: source,
                agent_id: agent,
                call_id: None,
                amount_minor: amount,
                currency: None,
            },
        )
}

fn status_strategy() -> impl Strategy<Value = StatusChange> {
    (0usize..4, 0..WINDOW * NS, 0usize..5).prop_map(|(agent, at, s)| StatusChange {
        event_id: format!("{at}"),
        agent_id: format!("a{agent}"),
        status: AgentStatus::parse(AgentStatus::NAMES[s]).unwrap(),
        at_ns: WINDOW_START * NS + at,
    })
}

fn query_strategy() -> impl Strategy<Value = serde_json::Value> {
    let dims = prop::sample::subsequence(Dimension::names(), 0..=2);
    let gran = prop::option::of(prop_oneof![
        Just("15m"),
        Just("hour"),
        Just("day"),
        Just("week"),
        Just("month")
    ]);
    let filters = prop::option::of(prop_oneof![
        Just(json!({"team": ["t0"]})),
        Just(json!({"team": ["t1"], "stage": ["closed_won", "meeting_booked"]})),
        Just(json!({"disposition_category": ["connected"]})),
        Just(json!({"agent": ["a1", "a2"]})),
        Just(json!({"campaign": ["c1"], "lead_source": ["s0", "s2"]})),
        Just(json!({"hour_of_day": ["9", "10", "23"]})),
        Just(json!({"score_range": ["60-80", "80-100"]})),
        Just(json!({"channel": ["email", "voice"]})),
        Just(json!({"stage": ["closed_won"]})),
        Just(json!({"intent": ["pricing", "i1"]})),
    ]);
    (dims, gran, filters, 0..WINDOW / 900, 1..WINDOW / 900, pick(&ZONES), any::<bool>()).prop_map(
        |(dims, gran, filters, a, len, tz, days)| {
            let range = if days && a % 3 == 0 {
                // Weeks (from Monday) and months, whole or with ragged days around them.
                let start = ["2026-02-23", "2026-03-01", "2026-03-02", "2026-03-05"][(a / 3 % 4) as usize];
                let end = ["2026-03-16", "2026-04-01", "2026-04-06", "2026-03-11"][(len % 4) as usize];
                json!({"start": start, "end": end})
            } else if days {
                let start = jiff::civil::date(2026, 3, 6).checked_add(jiff::Span::new().days(a % 4)).unwrap();
                json!({"start": start.to_string(), "end": start.checked_add(jiff::Span::new().days(1 + len % 3)).unwrap().to_string()})
            } else {
                let s = WINDOW_START + a * 900;
                let e = (s + len * 900).min(WINDOW_START + WINDOW);
                let fmt = |t: i64| jiff::Timestamp::from_second(t).unwrap().to_string();
                json!({"start": fmt(s), "end": fmt(e.max(s + 900))})
            };
            let measures: Vec<&str> = MEASURES.iter().map(|m| m.name).collect();
            let mut q = json!({"measures": measures, "dimensions": dims, "range": range, "timezone": tz, "compare": "previous_period"});
            if let Some(g) = gran { q["granularity"] = json!(g); }
            if let Some(f) = filters { q["filters"] = f; }
            q
        },
    )
}

fn close(a: Num, b: Num) -> bool {
    match (a, b) {
        (Num::Float(x), Num::Float(y)) => (x - y).abs() <= 1e-9 * x.abs().max(1.0),
        _ => a == b,
    }
}

fn check_table(
    label: &str,
    table: &query::Table,
    expected: &(BTreeMap<Vec<query::KeyValue>, Vec<Num>>, Vec<Num>),
    names: &[String],
) -> Result<(), TestCaseError> {
    let got: BTreeMap<_, _> = table.rows.iter().map(|r| (r.key.clone(), r.values.clone())).collect();
    prop_assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.0.keys().collect::<Vec<_>>(),
        "{} row keys",
        label
    );
    for (k, v) in &got {
        for (i, (x, y)) in v.iter().zip(&expected.0[k]).enumerate() {
            prop_assert!(
                close(*x, *y),
                "{} row {:?} {}: got {:?}, brute force {:?}",
                label,
                k,
                names[i],
                x,
                y
            );
        }
    }
    for (i, (x, y)) in table.totals.iter().zip(&expected.1).enumerate() {
        prop_assert!(
            close(*x, *y),
            "{} total {}: got {:?}, brute force {:?}",
            label,
            names[i],
            x,
            y
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn rollups_equal_brute_force(
        mut calls in prop::collection::vec(call_strategy(), 0..120),
        analyses in prop::collection::vec(prop::option::of(analysis_strategy()), 120),
        statuses in prop::collection::vec(status_strategy(), 0..40),
        mut conversations in prop::collection::vec(conversation_strategy(), 0..20),
        csats in prop::collection::vec(csat_strategy(), 0..20),
        stages in prop::collection::vec(stage_strategy(), 0..30),
        teams in prop::collection::vec(opt_id("t", 2), 4),
        tenant_zone in pick(&ZONES),
        q in query_strategy(),
    ) {
        // The directory: some agents in a team, some in none.
        let agent_teams: AgentTeams =
            teams.into_iter().enumerate().filter_map(|(i, t)| Some((format!("a{i}"), t?))).collect();
        let tenant_clock = Clock::new(tenant_zone).unwrap();
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let mut analysis_of = BTreeMap::new();
        for (i, c) in calls.iter_mut().enumerate() {
            c.call_id = format!("call{i}");
            if let Some(mut a) = analyses[i].clone() {
                a.call_id = c.call_id.clone();
                analysis_of.insert(c.call_id.clone(), a);
            }
        }
        let mut cells: BTreeMap<CellId, Stats> = BTreeMap::new();
        let sign = std::cell::Cell::new(1);
        let mut add = |id: CellRef, s: &Stats| cells.entry(id.to_owned()).or_default().merge(s, sign.get());
        for c in &calls {
            for_each_call_cell(&tenant_clock, Grains::All, c, analysis_of.get(&c.call_id), &mut add);
        }
        let mut sorted = statuses.clone();
        sorted.sort_by(|a, b| (a.agent_id.as_str(), a.at_ns, &a.event_id).cmp(&(b.agent_id.as_str(), b.at_ns, &b.event_id)));
        for w in sorted.windows(2).filter(|w| w[0].agent_id == w[1].agent_id) {
            for_each_activity_cell(&tenant_clock, Grains::All, &w[0].agent_id, w[0].status, w[0].at_ns, w[1].at_ns, &mut add);
        }
        for (i, c) in conversations.iter_mut().enumerate() {
            c.conversation_id = format!("conv{i}");
            for_each_ticket_cell(&tenant_clock, Grains::All, c, &mut add);
        }
        for s in &csats {
            let channel = s.conversation_id.as_ref().and_then(|id| conversations.iter().find(|c| &c.conversation_id == id));
            for_each_csat_cell(&tenant_clock, Grains::All, s, channel.map(|c| c.channel.as_str()), &mut add);
        }
        // Stage events in arrival order: a contact's first arrival at a stage counts; an earlier
        // one arriving later retracts it.
        let mut firsts: BTreeMap<(String, String), &StageChange> = BTreeMap::new();
        let first_call = |contact: &str| calls.iter().filter(|c| c.contact_id.as_deref() == Some(contact)).map(|c| c.started_ns).min();
        for s in &stages {
            let slot = (s.contact_id.clone(), s.stage.clone());
            match firsts.get(&slot) {
                Some(first) if (first.at_ns, &first.event_id) <= (s.at_ns, &s.event_id) => continue,
                Some(first) => {
                    sign.set(-1);
                    for_each_stage_cell(&tenant_clock, Grains::All, first, first_call(&first.contact_id), &mut add);
                    sign.set(1);
                }
                None => {}
            }
            for_each_stage_cell(&tenant_clock, Grains::All, s, first_call(&s.contact_id), &mut add);
            firsts.insert(slot, s);
        }
        prop_assert!(cuboid(0).is_some());
        let ctx = Context { tenant_clock: &tenant_clock, zone: &tenant_clock, taxonomy: &taxonomy, now: WINDOW_START + WINDOW, earliest: None, agent_teams: &agent_teams };
        let query: Query = query::parse_query(&q, &ctx).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let mut source = MemorySource { cells, calls: calls.clone(), analyses: analysis_of.clone() };
        let result = query::run(&query, &ctx, &mut source).unwrap();
        let records = Records {
            calls: &calls,
            analyses: &analysis_of,
            statuses: &statuses,
            conversations: &conversations,
            csats: &csats,
            stages: &stages,
            agent_teams: &agent_teams,
        };
        let names: Vec<String> = query.measures.iter().map(|m| m.name.to_string()).collect();
        check_table("main", &result.table, &oracle::evaluate(&query, query.range, &records, &taxonomy), &names)?;
        let cmp = query.compare.unwrap();
        check_table("comparison", result.comparison.as_ref().unwrap(), &oracle::evaluate(&query, cmp, &records, &taxonomy), &names)?;
    }
}
