//! What ingest changes in the rollups, as the records that change them: "add this call", "take
//! back that version of it". Applying events (apply.rs) only decides which contributions change;
//! turning each into its cells' deltas ([`Contribution::add_to`]) is the costly part, and on
//! SQLite it runs off the writer's thread. A transaction stores its contributions, encoded, as
//! its durable record of the rollups' change (a few dozen bytes per record instead of a delta
//! for each of its ~10 cells), so after a crash they are turned into deltas again.

use crate::overlay::DeltaMap;
use crate::TenantInfo;
use dialboard_engine::cells::{
    for_each_activity_cell, for_each_call_cell, for_each_csat_cell, for_each_stage_cell, for_each_ticket_cell,
    get_bytes, get_varint, put_bytes, put_varint, CellRef, Grains, Stats,
};
use dialboard_engine::clock::Clock;
use dialboard_engine::event::{AgentStatus, CallAnalysis, CallRecord, Conversation, CsatScore, StageChange};
use std::sync::Arc;

/// One record's contribution to the rollups, added (`sign` 1) or taken back (−1).
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub sign: i64,
    pub counted: Counted,
}

/// What is counted in the rollups: a record, with what its cells also depend on.
// Most contributions are calls: boxing them to shrink the others would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Counted {
    Call {
        /// The event's own record (a new version) or the one read back (the version it replaces).
        call: Arc<CallRecord>,
        analysis: Option<CallAnalysis>,
    },
    Ticket(Conversation),
    /// A score counted in its conversation's channel, as far as that was known.
    Csat {
        score: CsatScore,
        channel: Option<String>,
    },
    /// A contact's first arrival at a stage; a meeting with its contact's first call then.
    Stage {
        stage: StageChange,
        first_call_ns: Option<i64>,
    },
    /// An agent's status from one instant to the next status.
    Activity {
        agent_id: String,
        status: AgentStatus,
        from_ns: i64,
        to_ns: i64,
    },
}

impl Contribution {
    pub fn add(counted: Counted) -> Contribution {
        Contribution { sign: 1, counted }
    }

    pub fn take_back(counted: Counted) -> Contribution {
        Contribution { sign: -1, counted }
    }

    /// Adds this contribution's cell deltas of `grains`, in `tenant`'s rollup zone.
    fn add_to(&self, tenant: &TenantInfo, grains: Grains, deltas: &mut DeltaMap) {
        let clock = &tenant.clock;
        let (id, sign) = (tenant.id, self.sign);
        let add = |cell: CellRef, stats: &Stats| deltas.add(id, cell, stats, sign);
        match &self.counted {
            Counted::Call { call, analysis } => for_each_call_cell(clock, grains, call, analysis.as_ref(), add),
            Counted::Ticket(conversation) => for_each_ticket_cell(clock, grains, conversation, add),
            Counted::Csat { score, channel } => for_each_csat_cell(clock, grains, score, channel.as_deref(), add),
            Counted::Stage { stage, first_call_ns } => for_each_stage_cell(clock, grains, stage, *first_call_ns, add),
            Counted::Activity {
                agent_id,
                status,
                from_ns,
                to_ns,
            } => for_each_activity_cell(clock, grains, agent_id, *status, *from_ns, *to_ns, add),
        }
    }
}

/// Adds the cell deltas of tenants' contributions to `deltas`, which must hold none yet: each
/// record's cells up to the hour, then every hour cell once into its day, week and month cells
/// (`DeltaMap::add_coarse_from_hours`). A transaction of calls in time order spans an hour or
/// two, so each of its coarse cells sums many calls: adding each call to them was half of its
/// 14 cells, each a lookup in a table too large for the cache, and a day, a week and a month
/// worked out in the tenant's zone.
pub fn add_deltas<'a>(deltas: &mut DeltaMap, tenants: impl IntoIterator<Item = (&'a TenantInfo, &'a [Contribution])>) {
    debug_assert!(deltas.is_empty(), "coarse cells are summed from every hour cell held");
    let mut clocks: Vec<(i64, &Clock)> = Vec::new();
    for (tenant, contributions) in tenants {
        if !clocks.iter().any(|(id, _)| *id == tenant.id) {
            clocks.push((tenant.id, &tenant.clock));
        }
        for c in contributions {
            c.add_to(tenant, Grains::UpToHour, deltas);
        }
    }
    deltas.add_coarse_from_hours(&clocks);
}

/// Encodes tenants' contributions (in order) as one row.
pub fn encode<'a>(tenants: impl Iterator<Item = (i64, &'a [Contribution])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (tenant, contributions) in tenants.filter(|(_, c)| !c.is_empty()) {
        put_varint(&mut out, tenant);
        put_varint(&mut out, contributions.len() as i64);
        for c in contributions {
            c.encode(&mut out);
        }
    }
    out
}

/// The contributions of a row, by tenant; `None` if it is corrupt.
pub fn decode(mut input: &[u8]) -> Option<Vec<(i64, Vec<Contribution>)>> {
    let input = &mut input;
    let mut tenants = Vec::new();
    while !input.is_empty() {
        let tenant = get_varint(input)?;
        let count = usize::try_from(get_varint(input)?).ok()?;
        let contributions = (0..count)
            .map(|_| Contribution::decode(input))
            .collect::<Option<Vec<_>>>()?;
        tenants.push((tenant, contributions));
    }
    Some(tenants)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// `None` as 0, a value as its length + 1.
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_varint(out, 0),
        Some(s) => {
            put_varint(out, s.len() as i64 + 1);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

fn put_opt_int(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put_varint(out, v);
        }
    }
}

fn get_str(input: &mut &[u8]) -> Option<String> {
    String::from_utf8(get_bytes(input)?.to_vec()).ok()
}

fn get_opt_str(input: &mut &[u8]) -> Option<Option<String>> {
    let len = usize::try_from(get_varint(input)?).ok()?;
    if len == 0 {
        return Some(None);
    }
    let bytes = input.get(..len - 1)?;
    *input = &input[len - 1..];
    Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
}

fn get_byte(input: &mut &[u8]) -> Option<u8> {
    let (&byte, rest) = input.split_first()?;
    *input = rest;
    Some(byte)
}

fn get_opt_int(input: &mut &[u8]) -> Option<Option<i64>> {
    match get_byte(input)? {
        0 => Some(None),
        1 => Some(Some(get_varint(input)?)),
        _ => None,
    }
}

fn get_bool(input: &mut &[u8]) -> Option<bool> {
    match get_byte(input)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

const CALL: u8 = 0;
const TICKET: u8 = 1;
const CSAT: u8 = 2;
const STAGE: u8 = 3;
const ACTIVITY: u8 = 4;

impl Contribution {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self.counted {
            Counted::Call { .. } => CALL,
            Counted::Ticket(_) => TICKET,
            Counted::Csat { .. } => CSAT,
            Counted::Stage { .. } => STAGE,
            Counted::Activity { .. } => ACTIVITY,
        });
        put_varint(out, self.sign);
        match &self.counted {
            Counted::Call { call, analysis } => {
                encode_call(out, call);
                match analysis {
                    None => out.push(0),
                    Some(a) => {
                        out.push(1);
                        encode_analysis(out, a);
                    }
                }
            }
            Counted::Ticket(c) => {
                put_str(out, &c.conversation_id);
                put_str(out, &c.event_id);
                put_varint(out, c.version_ns);
                put_str(out, &c.channel);
                put_varint(out, c.opened_ns);
                put_opt_str(out, c.agent_id.as_deref());
                put_opt_str(out, c.team_id.as_deref());
                put_opt_int(out, c.first_response_ns);
                put_opt_int(out, c.resolved_ns);
                put_opt_str(out, c.status.as_deref());
                put_opt_str(out, c.intent.as_deref());
            }
            Counted::Csat { score: s, channel } => {
                put_str(out, &s.event_id);
                put_varint(out, s.score);
                put_varint(out, s.at_ns);
                put_opt_str(out, s.call_id.as_deref());
                put_opt_str(out, s.conversation_id.as_deref());
                put_opt_str(out, s.agent_id.as_deref());
                put_opt_str(out, channel.as_deref());
            }
            Counted::Stage {
                stage: s,
                first_call_ns,
            } => {
                put_str(out, &s.event_id);
                put_str(out, &s.contact_id);
                put_str(out, &s.stage);
                put_varint(out, s.at_ns);
                put_opt_str(out, s.campaign_id.as_deref());
                put_opt_str(out, s.lead_source.as_deref());
                put_opt_str(out, s.agent_id.as_deref());
                put_opt_str(out, s.call_id.as_deref());
                put_opt_int(out, s.amount_minor);
                put_opt_str(out, s.currency.as_deref());
                put_opt_int(out, *first_call_ns);
            }
            Counted::Activity {
                agent_id,
                status,
                from_ns,
                to_ns,
            } => {
                put_str(out, agent_id);
                out.push(*status as u8);
                put_varint(out, *from_ns);
                put_varint(out, *to_ns);
            }
        }
    }

    fn decode(input: &mut &[u8]) -> Option<Contribution> {
        let kind = get_byte(input)?;
        let sign = get_varint(input)?;
        let counted = match kind {
            CALL => Counted::Call {
                call: Arc::new(decode_call(input)?),
                analysis: match get_bool(input)? {
                    false => None,
                    true => Some(decode_analysis(input)?),
                },
            },
            TICKET => Counted::Ticket(Conversation {
                conversation_id: get_str(input)?,
                event_id: get_str(input)?,
                version_ns: get_varint(input)?,
                channel: get_str(input)?,
                opened_ns: get_varint(input)?,
                agent_id: get_opt_str(input)?,
                team_id: get_opt_str(input)?,
                first_response_ns: get_opt_int(input)?,
                resolved_ns: get_opt_int(input)?,
                status: get_opt_str(input)?,
                intent: get_opt_str(input)?,
            }),
            CSAT => Counted::Csat {
                score: CsatScore {
                    event_id: get_str(input)?,
                    score: get_varint(input)?,
                    at_ns: get_varint(input)?,
                    call_id: get_opt_str(input)?,
                    conversation_id: get_opt_str(input)?,
                    agent_id: get_opt_str(input)?,
                },
                channel: get_opt_str(input)?,
            },
            STAGE => Counted::Stage {
                stage: StageChange {
                    event_id: get_str(input)?,
                    contact_id: get_str(input)?,
                    stage: get_str(input)?,
                    at_ns: get_varint(input)?,
                    campaign_id: get_opt_str(input)?,
                    lead_source: get_opt_str(input)?,
                    agent_id: get_opt_str(input)?,
                    call_id: get_opt_str(input)?,
                    amount_minor: get_opt_int(input)?,
                    currency: get_opt_str(input)?,
                },
                first_call_ns: get_opt_int(input)?,
            },
            ACTIVITY => Counted::Activity {
                agent_id: get_str(input)?,
                // Written as `status as u8`, its index in `NAMES`.
                status: AgentStatus::parse(AgentStatus::NAMES.get(usize::from(get_byte(input)?))?)?,
                from_ns: get_varint(input)?,
                to_ns: get_varint(input)?,
            },
            _ => return None,
        };
        Some(Contribution { sign, counted })
    }
}

fn encode_call(out: &mut Vec<u8>, c: &CallRecord) {
    put_str(out, &c.call_id);
    put_str(out, &c.event_id);
    put_varint(out, c.version_ns);
    put_str(out, &c.agent_id);
    put_opt_str(out, c.team_id.as_deref());
    put_opt_str(out, c.campaign_id.as_deref());
    put_opt_str(out, c.list_id.as_deref());
    put_opt_str(out, c.contact_id.as_deref());
    put_opt_str(out, c.lead_source.as_deref());
    put_opt_str(out, c.direction.as_deref());
    put_str(out, &c.disposition);
    put_varint(out, c.started_ns);
    put_opt_int(out, c.ended_ns);
    put_opt_int(out, c.talk_seconds);
    put_opt_int(out, c.wait_seconds);
    put_opt_int(out, c.wrap_seconds);
    out.push(u8::from(c.voicemail_dropped) | u8::from(c.is_callback) << 1 | u8::from(c.abandoned) << 2);
}

fn decode_call(input: &mut &[u8]) -> Option<CallRecord> {
    let mut call = CallRecord {
        call_id: get_str(input)?,
        event_id: get_str(input)?,
        version_ns: get_varint(input)?,
        agent_id: get_str(input)?,
        team_id: get_opt_str(input)?,
        campaign_id: get_opt_str(input)?,
        list_id: get_opt_str(input)?,
        contact_id: get_opt_str(input)?,
        lead_source: get_opt_str(input)?,
        direction: get_opt_str(input)?,
        disposition: get_str(input)?,
        started_ns: get_varint(input)?,
        ended_ns: get_opt_int(input)?,
        talk_seconds: get_opt_int(input)?,
        wait_seconds: get_opt_int(input)?,
        wrap_seconds: get_opt_int(input)?,
        voicemail_dropped: false,
        is_callback: false,
        abandoned: false,
    };
    let flags = get_byte(input)?;
    if flags > 7 {
        return None;
    }
    call.voicemail_dropped = flags & 1 != 0;
    call.is_callback = flags & 2 != 0;
    call.abandoned = flags & 4 != 0;
    Some(call)
}

fn encode_analysis(out: &mut Vec<u8>, a: &CallAnalysis) {
    put_str(out, &a.call_id);
    put_str(out, &a.event_id);
    put_varint(out, a.version_ns);
    put_opt_int(out, a.score_micros);
    put_opt_int(out, a.sentiment_micros);
    put_opt_int(out, a.prospect_sentiment_micros);
    put_opt_int(out, a.talk_ratio_micros);
    put_opt_int(out, a.filler_micros);
    put_opt_str(out, a.intent.as_deref());
}

fn decode_analysis(input: &mut &[u8]) -> Option<CallAnalysis> {
    Some(CallAnalysis {
        call_id: get_str(input)?,
        event_id: get_str(input)?,
        version_ns: get_varint(input)?,
        score_micros: get_opt_int(input)?,
        sentiment_micros: get_opt_int(input)?,
        prospect_sentiment_micros: get_opt_int(input)?,
        talk_ratio_micros: get_opt_int(input)?,
        filler_micros: get_opt_int(input)?,
        intent: get_opt_str(input)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialboard_engine::clock::Grain;

    fn call() -> CallRecord {
        CallRecord {
            call_id: "c1".into(),
            event_id: "e1".into(),
            version_ns: 5,
            agent_id: "a1".into(),
            team_id: Some("t1".into()),
            campaign_id: None,
            list_id: Some(String::new()),
            contact_id: Some("p1".into()),
            lead_source: None,
            direction: Some("outbound".into()),
            disposition: "Connected".into(),
            started_ns: -1_000_000_000,
            ended_ns: Some(3),
            talk_seconds: Some(0),
            wait_seconds: None,
            wrap_seconds: Some(-1),
            voicemail_dropped: false,
            is_callback: true,
            abandoned: true,
        }
    }

    #[test]
    fn contributions_round_trip_and_corruption_is_refused() {
        let all = [
            Contribution::take_back(Counted::Call {
                call: Arc::new(call()),
                analysis: Some(CallAnalysis {
                    call_id: "c1".into(),
                    event_id: "e2".into(),
                    version_ns: 1,
                    score_micros: Some(71_500_000),
                    sentiment_micros: None,
                    prospect_sentiment_micros: Some(-250_000),
                    talk_ratio_micros: None,
                    filler_micros: Some(0),
                    intent: Some("pricing".into()),
                }),
            }),
            Contribution::add(Counted::Call {
                call: Arc::new(call()),
                analysis: None,
            }),
            Contribution::add(Counted::Ticket(Conversation {
                conversation_id: "v1".into(),
                event_id: "e3".into(),
                version_ns: 9,
                channel: "email".into(),
                opened_ns: 7,
                agent_id: None,
                team_id: Some("t2".into()),
                first_response_ns: Some(8),
                resolved_ns: None,
                status: Some("open".into()),
                intent: None,
            })),
            Contribution::take_back(Counted::Csat {
                score: CsatScore {
                    event_id: "e4".into(),
                    score: 4,
                    at_ns: 11,
                    call_id: None,
                    conversation_id: Some("v1".into()),
                    agent_id: Some("a2".into()),
                },
                channel: None,
            }),
            Contribution::add(Counted::Stage {
                stage: StageChange {
                    event_id: "e5".into(),
                    contact_id: "p1".into(),
                    stage: "meeting_booked".into(),
                    at_ns: 12,
                    campaign_id: Some("k".into()),
                    lead_source: None,
                    agent_id: None,
                    call_id: Some("c1".into()),
                    amount_minor: Some(120_000),
                    currency: Some("EUR".into()),
                },
                first_call_ns: Some(-1_000_000_000),
            }),
            Contribution::add(Counted::Activity {
                agent_id: "a1".into(),
                status: AgentStatus::WrapUp,
                from_ns: 100,
                to_ns: 200,
            }),
        ];
        let row = encode([(3, &all[..2]), (4, &[][..]), (5, &all[2..])].into_iter());
        assert_eq!(
            decode(&row).unwrap(),
            vec![(3, all[..2].to_vec()), (5, all[2..].to_vec())],
            "tenants without contributions are left out"
        );
        assert!(decode(&row[..row.len() - 1]).is_none(), "a truncated row is refused");
        let mut bad_kind = row.clone();
        bad_kind[2] = 9;
        assert!(decode(&bad_kind).is_none(), "an unknown kind is refused");
    }

    /// Every cell of `deltas`, in order.
    fn cells_of(deltas: &DeltaMap) -> Vec<(crate::overlay::BlockId, String, Stats)> {
        let mut cells: Vec<_> = deltas
            .blocks()
            .flat_map(|(id, cells)| cells.map(move |(key, stats)| (id, key.to_string(), stats.clone())))
            .collect();
        cells.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        cells
    }

    /// Contributions of every kind, added and taken back, over days around DST changes in two
    /// tenants' zones: the coarse cells summed from the hour cells equal those of adding every
    /// record to them.
    #[test]
    fn coarse_cells_summed_from_hours_equal_each_record_added() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let ns = 1_000_000_000;
        // 2026-03-07 to 2026-04-09: New York's and Lord Howe's DST changes, a month's end.
        let (from, span) = (1_772_841_600 * ns, 33 * 86_400 * ns);
        let tenants = [
            TenantInfo::new(3, "ny".into(), crate::TenantSettings::new("America/New_York")).unwrap(),
            TenantInfo::new(4, "lh".into(), crate::TenantSettings::new("Australia/Lord_Howe")).unwrap(),
        ];
        let mut batches = vec![
            (&tenants[0], Vec::new()),
            (&tenants[1], Vec::new()),
            (&tenants[0], Vec::new()),
        ];
        for (i, (_, batch)) in batches.iter_mut().enumerate() {
            for n in 0..3_000 {
                let at = from + (next(span as u64) as i64);
                let counted = match next(10) {
                    0 => Counted::Activity {
                        agent_id: format!("a{}", next(3)),
                        status: AgentStatus::Dialing,
                        from_ns: at,
                        to_ns: at + next(3 * 86_400) as i64 * ns,
                    },
                    1 => Counted::Stage {
                        stage: StageChange {
                            event_id: format!("s{i}-{n}"),
                            contact_id: "p1".into(),
                            stage: ["meeting_booked", "closed_won"][next(2) as usize].into(),
                            at_ns: at,
                            campaign_id: Some(format!("k{}", next(2))),
                            lead_source: None,
                            agent_id: Some(format!("a{}", next(3))),
                            call_id: None,
                            amount_minor: Some(next(1_000) as i64),
                            currency: None,
                        },
                        first_call_ns: Some(at - 3_600 * ns),
                    },
                    2 => Counted::Ticket(Conversation {
                        conversation_id: format!("v{i}-{n}"),
                        event_id: format!("t{i}-{n}"),
                        version_ns: 1,
                        channel: "chat".into(),
                        opened_ns: at,
                        agent_id: Some(format!("a{}", next(3))),
                        team_id: None,
                        first_response_ns: Some(at + next(600) as i64 * ns),
                        resolved_ns: None,
                        status: None,
                        intent: None,
                    }),
                    3 => Counted::Csat {
                        score: CsatScore {
                            event_id: format!("q{i}-{n}"),
                            score: next(5) as i64 + 1,
                            at_ns: at,
                            call_id: Some("c".into()),
                            conversation_id: None,
                            agent_id: Some(format!("a{}", next(3))),
                        },
                        channel: None,
                    },
                    _ => Counted::Call {
                        call: Arc::new(CallRecord {
                            agent_id: format!("a{}", next(5)),
                            team_id: [None, Some("t1".to_string())][next(2) as usize].clone(),
                            campaign_id: Some(format!("k{}", next(2))),
                            disposition: ["Connected", "No Answer", "Busy"][next(3) as usize].into(),
                            started_ns: at,
                            talk_seconds: Some(next(300) as i64),
                            ..call()
                        }),
                        analysis: None,
                    },
                };
                // Some taken back, as a correction does.
                batch.push(match next(5) {
                    0 => Contribution::take_back(counted),
                    _ => Contribution::add(counted),
                });
            }
        }
        let mut summed = DeltaMap::default();
        add_deltas(&mut summed, batches.iter().map(|(t, c)| (*t, &c[..])));
        let mut each = DeltaMap::default();
        for (tenant, batch) in &batches {
            for c in batch {
                c.add_to(tenant, Grains::All, &mut each);
            }
        }
        let (summed, each) = (cells_of(&summed), cells_of(&each));
        for grain in [Grain::Day, Grain::Week, Grain::Month] {
            assert!(each.iter().any(|(id, _, _)| id.2 == grain), "cells of {grain:?}");
        }
        assert_eq!(summed.len(), each.len());
        assert!(summed == each, "the cells differ");
    }
}
