//! Asterisk `cdr_csv` files (SPEC §11): no header; 16 columns, 17 with `loguniqueid`, 18 with
//! `loguserfield` too, 21 with `newcdrcolumns` (peeraccount, linkedid, sequence), detected
//! from the first record. The rows of one call (a queue's attempts, a transfer's legs) share
//! a `linkedid` (or, before Asterisk 1.8's linkedid, a `uniqueid`) and become one call. No IO.
//!
//! Asterisk writes a call's rows as its channels hang up, so they sit close together in the
//! file, but not always next to each other. A call stays open until [`WINDOW`] rows have gone
//! by without one of its own; a row arriving later than that is rejected (its call was already
//! imported without it), which bounds memory whatever the file's size.

use super::mapping::{content_id, CallDraft, Direction, Mapping};
use super::record::{caller_id, cdr_seconds, channel_peer, local_time};
use super::{Converter, Output};
use jiff::Timestamp;
use std::collections::{HashMap, HashSet, VecDeque};

/// Rows a call may lie apart in the file.
pub const WINDOW: u64 = 10_000;

const SRC: usize = 1;
const DST: usize = 2;
const DCONTEXT: usize = 3;
const CLID: usize = 4;
const CHANNEL: usize = 5;
const DSTCHANNEL: usize = 6;
const LASTAPP: usize = 7;
const START: usize = 9;
const ANSWER: usize = 10;
const END: usize = 11;
const BILLSEC: usize = 13;
const DISPOSITION: usize = 14;
const UNIQUEID: usize = 16;
const LINKEDID: usize = 19;
const NAMES: [&str; 21] = [
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "sequence",
];

/// One row, parsed.
#[derive(Debug, Clone)]
struct Leg {
    src: String,
    dst: String,
    context: String,
    clid: String,
    channel: String,
    dstchannel: String,
    lastapp: String,
    start: Timestamp,
    answer: Option<Timestamp>,
    end: Option<Timestamp>,
    billsec: i64,
    disposition: String,
}

struct Group {
    first_line: u64,
    last_row: u64,
    legs: Vec<Leg>,
}

pub struct Asterisk {
    mapping: Mapping,
    /// The file's column count, from its first record.
    columns: Option<usize>,
    rows: u64,
    open: HashMap<String, Group>,
    /// Open calls by the row they were last seen at (stale entries are skipped).
    order: VecDeque<(u64, String)>,
    /// Recently closed calls, to reject their stragglers with a clear reason.
    closed: VecDeque<String>,
    closed_set: HashSet<String>,
}

impl Asterisk {
    pub fn new(mapping: Mapping) -> Asterisk {
        Asterisk {
            mapping,
            columns: None,
            rows: 0,
            open: HashMap::new(),
            order: VecDeque::new(),
            closed: VecDeque::new(),
            closed_set: HashSet::new(),
        }
    }

    fn leg(&self, f: &[String]) -> Result<Leg, String> {
        let zone = &self.mapping.zone;
        let time = |i: usize| local_time(&f[i], zone).map_err(|e| format!("{}: {e}", NAMES[i]));
        let optional_time = |i: usize| match f[i].trim() {
            "" => Ok(None),
            _ => time(i).map(Some),
        };
        let billsec = cdr_seconds("billsec", &f[BILLSEC])?;
        Ok(Leg {
            src: f[SRC].clone(),
            dst: f[DST].clone(),
            context: f[DCONTEXT].clone(),
            clid: f[CLID].clone(),
            channel: f[CHANNEL].clone(),
            dstchannel: f[DSTCHANNEL].clone(),
            lastapp: f[LASTAPP].clone(),
            start: time(START)?,
            answer: optional_time(ANSWER)?,
            end: optional_time(END)?,
            billsec,
            disposition: f[DISPOSITION].trim().to_uppercase(),
        })
    }

    /// The call's key: linkedid (21 columns), else uniqueid (17, 18), else none (16: each row
    /// is a call).
    fn key(f: &[String]) -> Option<String> {
        let pick = |i: usize| f.get(i).map(|s| s.trim()).filter(|s| !s.is_empty());
        pick(LINKEDID).or_else(|| pick(UNIQUEID)).map(str::to_string)
    }

    /// Closes the calls not seen within the window.
    fn close_stale(&mut self, out: &mut Vec<Output>) {
        while let Some((seen, _)) = self.order.front() {
            if self.rows.saturating_sub(*seen) < WINDOW {
                break;
            }
            let (seen, key) = self.order.pop_front().expect("a front");
            if self.open.get(&key).is_some_and(|g| g.last_row == seen) {
                let group = self.open.remove(&key).expect("open");
                out.push(self.call(&key, group));
                self.closed_set.insert(key.clone());
                self.closed.push_back(key);
                if self.closed.len() > WINDOW as usize {
                    let forgotten = self.closed.pop_front().expect("a front");
                    self.closed_set.remove(&forgotten);
                }
            }
        }
    }

    /// One call from its rows.
    fn call(&self, key: &str, group: Group) -> Output {
        let line = group.first_line;
        match merge(&self.mapping, key, group.legs) {
            Ok(draft) => Output::Call {
                line,
                value: draft.to_event(),
            },
            Err(reason) => Output::Rejected {
                line,
                reason: format!("call {key}: {reason}"),
            },
        }
    }
}

impl Converter for Asterisk {
    fn row(&mut self, line: u64, fields: &[String], out: &mut Vec<Output>) {
        let n = fields.len();
        let expected = *self.columns.get_or_insert(n);
        if !matches!(expected, 16 | 17 | 18 | 21) {
            out.push(Output::Rejected {
                line,
                reason: format!("{n} columns: an Asterisk cdr_csv file has 16, 17, 18 or 21"),
            });
            self.columns = None;
            return;
        }
        if n != expected {
            out.push(Output::Rejected {
                line,
                reason: format!("{n} columns where this file's records have {expected}"),
            });
            return;
        }
        self.rows += 1;
        let leg = match self.leg(fields) {
            Ok(leg) => leg,
            Err(reason) => {
                out.push(Output::Rejected { line, reason });
                return;
            }
        };
        let Some(key) = Self::key(fields) else {
            let key = format!("cdr-{}", content_id(&fields.join("\u{1f}")));
            let group = Group {
                first_line: line,
                last_row: self.rows,
                legs: vec![leg],
            };
            out.push(self.call(&key, group));
            return;
        };
        if !self.open.contains_key(&key) && self.closed_set.contains(&key) {
            out.push(Output::Rejected {
                line,
                reason: format!(
                    "a row of call {key} more than {WINDOW} rows after its other rows, which were imported without it"
                ),
            });
            return;
        }
        let rows = self.rows;
        let group = self.open.entry(key.clone()).or_insert_with(|| Group {
            first_line: line,
            last_row: rows,
            legs: Vec::new(),
        });
        group.last_row = rows;
        group.legs.push(leg);
        self.order.push_back((rows, key));
        self.close_stale(out);
    }

    fn finish(&mut self, out: &mut Vec<Output>) {
        let mut rest: Vec<(String, Group)> = self.open.drain().collect();
        rest.sort_by_key(|(_, g)| g.first_line);
        for (key, group) in rest {
            out.push(self.call(&key, group));
        }
        self.order.clear();
    }
}

/// The rows of one call as one call (SPEC §11): started at the first row's start, ended at
/// the last row's end; answered when any row was; the agent is the peer of the answering
/// leg's agent-side channel (`dstchannel` inbound, `channel` outbound); the external number
/// is the contact.
fn merge(mapping: &Mapping, key: &str, mut legs: Vec<Leg>) -> Result<CallDraft, String> {
    legs.sort_by_key(|l| l.start);
    let direction = legs.iter().find_map(|l| mapping.direction(&l.context)).ok_or_else(|| {
        let mut contexts: Vec<&str> = legs.iter().map(|l| l.context.as_str()).collect();
        contexts.dedup();
        mapping.unknown_context(&contexts.join("', '"))
    })?;
    fn agent_side(direction: Direction, l: &Leg) -> Option<&str> {
        match direction {
            Direction::Inbound => channel_peer(&l.dstchannel),
            Direction::Outbound => channel_peer(&l.channel),
        }
    }
    let answering: Vec<&Leg> = legs
        .iter()
        .filter(|l| l.disposition == "ANSWERED" && agent_side(direction, l).is_some())
        .collect();
    let first = &legs[0];
    let last = legs.iter().max_by_key(|l| (l.end, l.start)).expect("a call has a row");
    let agent = match (answering.first(), direction) {
        (Some(leg), _) => agent_side(direction, leg).map(str::to_string),
        (None, Direction::Inbound) => legs
            .iter()
            .rev()
            .find_map(|l| channel_peer(&l.dstchannel))
            .or_else(|| Some(first.dst.as_str()).filter(|d| !d.is_empty()))
            .map(str::to_string),
        (None, Direction::Outbound) => channel_peer(&first.channel).map(str::to_string),
    }
    .ok_or("no agent: no row names an agent's channel or a destination")?;
    let source_disposition = match answering.first() {
        Some(leg) if leg.lastapp.eq_ignore_ascii_case("voicemail") => "VOICEMAIL",
        Some(_) => "ANSWERED",
        None => last.disposition.as_str(),
    };
    let (contact, name) = match direction {
        Direction::Inbound => {
            let (name, number) = caller_id(&first.clid);
            let number = Some(first.src.as_str()).filter(|s| !s.is_empty()).or(number);
            (number, name)
        }
        Direction::Outbound => (Some(first.dst.as_str()).filter(|s| !s.is_empty()), None),
    };
    Ok(CallDraft {
        id: format!("asterisk:{key}"),
        call_id: key.to_string(),
        agent_id: mapping.agent(&agent),
        disposition: mapping.disposition(source_disposition),
        direction: Some(direction),
        started: Some(first.start),
        answered: legs.iter().filter_map(|l| l.answer).min(),
        agent_connected: answering.first().and_then(|l| l.answer),
        ended: legs.iter().filter_map(|l| l.end).max(),
        talk_seconds: (!answering.is_empty()).then(|| answering.iter().map(|l| l.billsec).sum()),
        contact: contact.map(str::to_string),
        prospect_name: name.map(str::to_string),
        abandoned: direction == Direction::Inbound && answering.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::record::split;
    use jiff::tz::TimeZone;
    use serde_json::json;

    fn convert(lines: &[&str]) -> Vec<Output> {
        let mut a = Asterisk::new(Mapping::new(
            TimeZone::get("Europe/Berlin").unwrap(),
            &[],
            &[],
            &[],
            &[],
        ));
        let (mut out, mut fields) = (Vec::new(), Vec::new());
        for (i, line) in lines.iter().enumerate() {
            split(line, &mut fields).unwrap();
            a.row(i as u64 + 1, &fields, &mut out);
        }
        a.finish(&mut out);
        out
    }

    #[test]
    fn a_queue_call_of_three_rows_is_one_answered_call() {
        let out = convert(&[
            r#""","5551234","600","from-pstn","""John Smith"" <5551234>","SIP/trunk-00000010","","Answer","","2024-03-04 09:00:00","2024-03-04 09:00:01","2024-03-04 09:00:05",5,4,"ANSWERED","DOCUMENTATION","1709539200.16","","","1709539200.16",16"#,
            r#""","5551234","600","ext-queues","""John Smith"" <5551234>","SIP/trunk-00000010","SIP/agent01-00000011","Queue","support,t,,,300","2024-03-04 09:00:05","","2024-03-04 09:00:20",15,0,"NO ANSWER","DOCUMENTATION","1709539205.17","","","1709539200.16",17"#,
            r#""","5551234","600","ext-queues","""John Smith"" <5551234>","SIP/trunk-00000010","SIP/agent02-00000012","Queue","support,t,,,300","2024-03-04 09:00:05","2024-03-04 09:00:25","2024-03-04 09:02:00",115,95,"ANSWERED","DOCUMENTATION","1709539205.18","","","1709539200.16",18"#,
        ]);
        let [Output::Call { line: 1, value }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(
            value,
            &json!({"id": "asterisk:1709539200.16", "type": "call", "call_id": "1709539200.16", "agent_id": "agent02",
                "disposition": "Connected", "direction": "inbound", "started_at": "2024-03-04T08:00:00Z",
                "answered_at": "2024-03-04T08:00:01Z", "agent_connected_at": "2024-03-04T08:00:25Z",
                "ended_at": "2024-03-04T08:02:00Z", "talk_seconds": 95, "contact_id": "5551234",
                "prospect": {"phone": "5551234", "name": "John Smith"}})
        );
    }

    #[test]
    fn rows_with_the_wrong_column_count_or_bad_times_are_rejected() {
        let out = convert(&[
            r#""","100","5550001","from-internal","""Agent"" <100>","PJSIP/agent07-00000001","PJSIP/trunk-00000002","Dial","PJSIP/5550001@trunk","2024-03-04 10:00:00","","2024-03-04 10:00:30",30,0,"BUSY","DOCUMENTATION","1709542800.1""#,
            r#""","100","5550002","from-internal","#,
            r#""","100","5550003","from-internal","""Agent"" <100>","PJSIP/agent07-00000003","","Dial","","2024-02-30 10:00:00","","",0,0,"FAILED","DOCUMENTATION","1709542800.3""#,
        ]);
        assert!(
            matches!(&out[0], Output::Rejected { line: 2, reason } if reason.contains("5 columns")),
            "{out:?}"
        );
        assert!(
            matches!(&out[1], Output::Rejected { line: 3, reason } if reason.starts_with("start:")),
            "{out:?}"
        );
        let Output::Call { value, .. } = &out[2] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (&value["agent_id"], &value["disposition"], &value["contact_id"]),
            (&json!("agent07"), &json!("Busy"), &json!("5550001"))
        );
    }
}
