//! The metric catalogue. Each metric of SPEC §4 is defined here, once, as a function of an
//! [`Accum`] — the sums of the cells (or raw records) of one result row. Dispositions are
//! classified while accumulating, with the tenant's current taxonomy.

use crate::cells::{counter::*, Fact, Stats};
use crate::event::MICROS;
use crate::histogram::HistogramSum;
use crate::taxonomy::{Category, CompiledTaxonomy};

/// A metric value: counts are integers, everything else a float; `Null` for a zero
/// denominator (never NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
    Null,
}

impl Num {
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Num::Int(i) => Some(i as f64),
            Num::Float(f) => Some(f),
            Num::Null => None,
        }
    }

    pub fn is_zero_or_null(self) -> bool {
        matches!(self, Num::Null | Num::Int(0)) || self == Num::Float(0.0)
    }

    pub fn to_json(self) -> serde_json::Value {
        match self {
            Num::Int(i) => i.into(),
            Num::Float(f) => serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into),
            Num::Null => serde_json::Value::Null,
        }
    }
}

/// The sums behind one result row.
#[derive(Debug, Clone, Default)]
pub struct Accum {
    /// Counters over all calls.
    pub all: [i64; COUNT],
    /// Counters over connected calls (category Connected).
    pub connected: [i64; COUNT],
    /// Talk seconds of connected calls.
    pub connected_talk: HistogramSum,
    pub by_category: [i64; 4],
    pub meetings: i64,
    pub positive: i64,
    pub voicemails: i64,
}

impl Accum {
    /// Adds `stats` of calls with `disposition`, classified by `taxonomy`.
    pub fn add_calls(&mut self, disposition: &str, taxonomy: &CompiledTaxonomy, stats: &Stats) {
        let class = taxonomy.class(disposition);
        add_counters(&mut self.all, &stats.c);
        let calls = stats.c[CALLS];
        if let Some(category) = class.category {
            self.by_category[category.index()] += calls;
            if category == Category::Connected {
                add_counters(&mut self.connected, &stats.c);
                self.connected_talk.add(&stats.talk);
            }
        }
        self.meetings += calls * class.meeting as i64;
        self.positive += calls * class.positive as i64;
        self.voicemails += calls * class.voicemail as i64;
    }

    /// Adds agent-status time (only activity counters are non-zero in such stats).
    pub fn add_activity(&mut self, stats: &Stats) {
        self.all[ACTIVE_NS] += stats.c[ACTIVE_NS];
        self.all[IDLE_NS] += stats.c[IDLE_NS];
    }

    fn connected_calls(&self) -> i64 {
        self.by_category[Category::Connected.index()]
    }
}

fn add_counters(into: &mut [i64; COUNT], from: &[i64; COUNT]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

fn ratio(numerator: i64, denominator: i64) -> Num {
    if denominator == 0 {
        Num::Null
    } else {
        Num::Float(numerator as f64 / denominator as f64)
    }
}

fn percent(numerator: i64, denominator: i64) -> Num {
    if denominator == 0 {
        Num::Null
    } else {
        Num::Float(numerator as f64 * 100.0 / denominator as f64)
    }
}

/// Average of a quantity kept in millionths.
fn micros_avg(sum: i64, n: i64) -> Num {
    if n == 0 {
        Num::Null
    } else {
        Num::Float(sum as f64 / n as f64 / MICROS)
    }
}

const NS_PER_HOUR: f64 = 3_600_000_000_000.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
    Seconds,
    Hours,
    Minutes,
    Score,
    Ratio,
    PerHour,
}

pub struct MeasureDef {
    pub name: &'static str,
    /// The facts whose cells it reads (calls per hour needs agent status time too).
    pub facts: &'static [Fact],
    pub unit: Unit,
    pub description: &'static str,
    pub compute: fn(&Accum) -> Num,
    /// Whether it reads the talk-time histogram (cells are decoded without it otherwise).
    pub reads_histogram: bool,
}

impl std::fmt::Debug for MeasureDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

macro_rules! measure {
    ($name:literal, [$($fact:ident),+], $unit:ident, $desc:literal, $f:expr $(, $histogram:ident)?) => {
        MeasureDef {
            name: $name,
            facts: &[$(Fact::$fact),+],
            unit: Unit::$unit,
            description: $desc,
            compute: $f,
            reads_histogram: measure!(@reads $($histogram)?),
        }
    };
    (@reads) => { false };
    (@reads histogram) => { true };
}

pub static MEASURES: &[MeasureDef] = &[
    measure!("total_calls", [Calls], Count, "count of calls", |a| Num::Int(
        a.all[CALLS]
    )),
    measure!(
        "connected_calls",
        [Calls],
        Count,
        "calls whose disposition is in category Connected",
        |a| Num::Int(a.connected_calls())
    ),
    measure!(
        "connect_rate",
        [Calls],
        Percent,
        "connected_calls / total_calls × 100",
        |a| percent(a.connected_calls(), a.all[CALLS])
    ),
    measure!(
        "avg_talk_time",
        [Calls],
        Seconds,
        "sum(talk_seconds of connected) / connected_calls",
        |a| ratio(a.connected[TALK_SUM], a.connected_calls())
    ),
    measure!(
        "median_talk_time",
        [Calls],
        Seconds,
        "PERCENTILE_CONT(0.5) of talk_seconds over connected calls",
        |a| a.connected_talk.percentile_cont(0.5).map_or(Num::Null, Num::Float),
        histogram
    ),
    measure!(
        "p90_talk_time",
        [Calls],
        Seconds,
        "PERCENTILE_CONT(0.9) of talk_seconds over connected calls",
        |a| a.connected_talk.percentile_cont(0.9).map_or(Num::Null, Num::Float),
        histogram
    ),
    measure!(
        "total_talk_time",
        [Calls],
        Seconds,
        "sum(talk_seconds) over all calls",
        |a| Num::Int(a.all[TALK_SUM])
    ),
    measure!(
        "calls_per_hour",
        [Calls, Activity],
        PerHour,
        "total_calls / active dialing hours (dialing + on_call + wrap_up)",
        |a| if a.all[ACTIVE_NS] == 0 {
            Num::Null
        } else {
            Num::Float(a.all[CALLS] as f64 / (a.all[ACTIVE_NS] as f64 / NS_PER_HOUR))
        }
    ),
    measure!(
        "meetings_booked",
        [Calls],
        Count,
        "calls with a meeting disposition (Meeting Booked)",
        |a| Num::Int(a.meetings)
    ),
    measure!(
        "meeting_booked_rate",
        [Calls],
        Percent,
        "meetings_booked / connected_calls × 100",
        |a| percent(a.meetings, a.connected_calls())
    ),
    measure!(
        "positive_disposition_rate",
        [Calls],
        Percent,
        "calls in {Meeting Booked, Interested} / total_calls × 100",
        |a| percent(a.positive, a.all[CALLS])
    ),
    measure!("voicemails", [Calls], Count, "calls with disposition Voicemail", |a| {
        Num::Int(a.voicemails)
    }),
    measure!("no_contacts", [Calls], Count, "calls in category No Contact", |a| {
        Num::Int(a.by_category[Category::NoContact.index()])
    }),
    measure!("invalid_numbers", [Calls], Count, "calls in category Invalid", |a| {
        Num::Int(a.by_category[Category::Invalid.index()])
    }),
    measure!("system_errors", [Calls], Count, "calls in category System", |a| {
        Num::Int(a.by_category[Category::System.index()])
    }),
    measure!(
        "voicemail_drop_rate",
        [Calls],
        Percent,
        "calls with voicemail_dropped / total_calls × 100",
        |a| percent(a.all[VOICEMAIL_DROPPED], a.all[CALLS])
    ),
    measure!(
        "callback_conversion",
        [Calls],
        Percent,
        "connected callbacks / callbacks attempted × 100",
        |a| percent(a.connected[CALLBACKS], a.all[CALLBACKS])
    ),
    measure!(
        "abandon_rate",
        [Calls],
        Percent,
        "abandoned calls / connected_calls × 100",
        |a| percent(a.all[ABANDONED], a.connected_calls())
    ),
    measure!(
        "avg_wait_time",
        [Calls],
        Seconds,
        "average wait_seconds over connected calls that have one",
        |a| ratio(a.connected[WAIT_SUM], a.connected[WAIT_N])
    ),
    measure!(
        "avg_wrapup_time",
        [Calls],
        Seconds,
        "average wrap_seconds over calls that have one",
        |a| ratio(a.all[WRAP_SUM], a.all[WRAP_N])
    ),
    measure!("analysed_calls", [Calls], Count, "calls with an AI analysis", |a| {
        Num::Int(a.all[ANALYSED])
    }),
    measure!(
        "avg_call_score",
        [Calls],
        Score,
        "average AI score (0–100) over analysed calls",
        |a| micros_avg(a.all[SCORE_SUM], a.all[SCORE_N])
    ),
    measure!(
        "avg_sentiment",
        [Calls],
        Ratio,
        "average sentiment (−1..1) over analysed calls",
        |a| micros_avg(a.all[SENTIMENT_SUM], a.all[SENTIMENT_N])
    ),
    measure!(
        "avg_prospect_sentiment",
        [Calls],
        Ratio,
        "average prospect sentiment (−1..1) over analysed calls",
        |a| micros_avg(a.all[PROSPECT_SENTIMENT_SUM], a.all[PROSPECT_SENTIMENT_N])
    ),
    measure!(
        "avg_talk_ratio",
        [Calls],
        Ratio,
        "average agent talk ratio (0..1) over analysed calls",
        |a| micros_avg(a.all[TALK_RATIO_SUM], a.all[TALK_RATIO_N])
    ),
    measure!(
        "filler_word_rate",
        [Calls],
        Ratio,
        "average filler words per 100 words over analysed calls",
        |a| micros_avg(a.all[FILLER_SUM], a.all[FILLER_N])
    ),
    measure!(
        "active_hours",
        [Activity],
        Hours,
        "hours in status dialing, on_call or wrap_up",
        |a| Num::Float(a.all[ACTIVE_NS] as f64 / NS_PER_HOUR)
    ),
    measure!("idle_minutes", [Activity], Minutes, "minutes in status idle", |a| {
        Num::Float(a.all[IDLE_NS] as f64 / 60_000_000_000.0)
    }),
];

pub fn measure(name: &str) -> Option<&'static MeasureDef> {
    MEASURES.iter().find(|m| m.name == name)
}
