//! The metric catalogue. Each metric of SPEC §4 is defined here, once, as a function of an
//! [`Accum`] — the sums of the cells (or raw records) of one result row. Dispositions are
//! classified while accumulating, with the tenant's current taxonomy.

use crate::cells::{counter::*, Fact};
use crate::event::MICROS;
use crate::histogram::{HistogramRef, HistogramSum};
use crate::taxonomy::{Category, CompiledTaxonomy, DispositionClass};

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
#[derive(Debug, Clone)]
pub struct Accum {
    /// Counters over all records.
    pub all: [i64; COUNT],
    /// Counters over connected calls (category Connected).
    pub connected: [i64; COUNT],
    /// Talk seconds of connected calls.
    pub connected_talk: HistogramSum,
    /// First-response seconds of tickets.
    pub first_response: HistogramSum,
    pub by_category: [i64; 4],
    pub meetings: i64,
    pub positive: i64,
    pub voicemails: i64,
}

impl Default for Accum {
    fn default() -> Self {
        Accum {
            all: [0; COUNT],
            connected: [0; COUNT],
            connected_talk: HistogramSum::default(),
            first_response: HistogramSum::default(),
            by_category: [0; 4],
            meetings: 0,
            positive: 0,
            voicemails: 0,
        }
    }
}

impl Accum {
    /// Adds the counters and durations (if a measure reads them) of records of `fact`; calls are
    /// classified by their `disposition`. `None` if the durations are corrupt.
    pub fn add(
        &mut self,
        fact: Fact,
        disposition: &str,
        taxonomy: &CompiledTaxonomy,
        counters: &[i64],
        durations: Option<HistogramRef>,
    ) -> Option<()> {
        self.add_classified(fact, taxonomy.class(disposition), counters, durations)
    }

    /// [`Accum::add`] with the disposition already classified (by a caller that classifies
    /// each distinct disposition once).
    pub fn add_classified(
        &mut self,
        fact: Fact,
        class: DispositionClass,
        counters: &[i64],
        durations: Option<HistogramRef>,
    ) -> Option<()> {
        add_counters(&mut self.all, counters);
        let durations_sum = match fact {
            Fact::Calls => self.add_calls(class, counters),
            Fact::Tickets => Some(&mut self.first_response),
            Fact::Activity | Fact::Csat | Fact::Stages => None,
        };
        match (durations_sum, durations) {
            (Some(sum), Some(durations)) => sum.add(durations),
            _ => Some(()),
        }
    }

    /// Counts a cell of calls; the sum its talk times go to if they are connected.
    fn add_calls(&mut self, class: DispositionClass, counters: &[i64]) -> Option<&mut HistogramSum> {
        let calls = counters.get(CALLS).copied().unwrap_or(0);
        self.meetings += calls * class.meeting as i64;
        self.positive += calls * class.positive as i64;
        self.voicemails += calls * class.voicemail as i64;
        let category = class.category?;
        self.by_category[category.index()] += calls;
        if category != Category::Connected {
            return None;
        }
        add_counters(&mut self.connected, counters);
        Some(&mut self.connected_talk)
    }

    /// Adds the sums of another row (a query's totals are the sum of its rows).
    pub fn add_accum(&mut self, other: &Accum) {
        // Destructured, so that a new field cannot be forgotten here.
        let Accum {
            all,
            connected,
            connected_talk,
            first_response,
            by_category,
            meetings,
            positive,
            voicemails,
        } = other;
        add_counters(&mut self.all, all);
        add_counters(&mut self.connected, connected);
        self.connected_talk.add_sum(connected_talk);
        self.first_response.add_sum(first_response);
        for (mine, theirs) in self.by_category.iter_mut().zip(by_category) {
            *mine += theirs;
        }
        self.meetings += meetings;
        self.positive += positive;
        self.voicemails += voicemails;
    }

    fn connected_calls(&self) -> i64 {
        self.by_category[Category::Connected.index()]
    }

    /// Hours in any status but offline.
    fn logged_in_hours(&self) -> f64 {
        (self.all[ACTIVE_NS] + self.all[IDLE_NS]) as f64 / NS_PER_HOUR
    }

    /// Closed-won revenue in currency units.
    fn revenue(&self) -> f64 {
        self.all[WON_AMOUNT_SUM] as f64 / 100.0
    }
}

/// Adds `from`, which may end early (encoded counters stop at the last non-zero one).
fn add_counters(into: &mut [i64; COUNT], from: &[i64]) {
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
    Currency,
    Ratio,
    PerHour,
    Days,
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

/// `count` per hour logged in; null without time logged in.
fn per_logged_in_hour(a: &Accum, count: i64) -> Num {
    let hours = a.logged_in_hours();
    if hours == 0.0 {
        Num::Null
    } else {
        Num::Float(count as f64 / hours)
    }
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
        "total_handle_time",
        [Calls],
        Seconds,
        "sum(talk_seconds) + sum(wrap_seconds) over all calls: the workload staffing plans for",
        |a| Num::Int(a.all[TALK_SUM] + a.all[WRAP_SUM])
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
    measure!("abandoned_calls", [Calls], Count, "calls with abandoned", |a| {
        Num::Int(a.all[ABANDONED])
    }),
    measure!(
        "total_wait_time",
        [Calls],
        Seconds,
        "sum(wait_seconds) over all calls, answered or abandoned (the queue time behind Erlang A's patience)",
        |a| Num::Int(a.all[WAIT_SUM])
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
    measure!("scored_calls", [Calls], Count, "analysed calls with a score", |a| {
        Num::Int(a.all[SCORE_N])
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
    measure!(
        "logged_in_hours",
        [Activity],
        Hours,
        "hours logged in: in status dialing, on_call, wrap_up or idle (not offline)",
        |a| Num::Float(a.logged_in_hours())
    ),
    measure!(
        "calls_per_logged_in_hour",
        [Calls, Activity],
        PerHour,
        "total_calls / logged_in_hours (SPEC §14: rates per hour logged in, not per day)",
        |a| per_logged_in_hour(a, a.all[CALLS])
    ),
    measure!(
        "connects_per_logged_in_hour",
        [Calls, Activity],
        PerHour,
        "connected_calls / logged_in_hours",
        |a| per_logged_in_hour(a, a.connected_calls())
    ),
    measure!(
        "meetings_per_logged_in_hour",
        [Calls, Activity],
        PerHour,
        "meetings_booked / logged_in_hours",
        |a| per_logged_in_hour(a, a.meetings)
    ),
    measure!("idle_minutes", [Activity], Minutes, "minutes in status idle", |a| {
        Num::Float(a.all[IDLE_NS] as f64 / 60_000_000_000.0)
    }),
    measure!("ticket_volume", [Tickets], Count, "count of conversations", |a| {
        Num::Int(a.all[TICKETS])
    }),
    measure!(
        "avg_first_response_time",
        [Tickets],
        Seconds,
        "average seconds from opened_at to first_response_at over conversations that have one",
        |a| ratio(a.all[FIRST_RESPONSE_SUM], a.all[FIRST_RESPONSE_N])
    ),
    measure!(
        "median_first_response_time",
        [Tickets],
        Seconds,
        "PERCENTILE_CONT(0.5) of first-response seconds",
        |a| a.first_response.percentile_cont(0.5).map_or(Num::Null, Num::Float),
        histogram
    ),
    measure!(
        "avg_resolution_time",
        [Tickets],
        Seconds,
        "average seconds from opened_at to resolved_at over resolved conversations",
        |a| ratio(a.all[RESOLUTION_SUM], a.all[RESOLVED])
    ),
    measure!(
        "resolution_rate",
        [Tickets],
        Percent,
        "resolved conversations / ticket_volume × 100",
        |a| percent(a.all[RESOLVED], a.all[TICKETS])
    ),
    measure!("csat_avg", [Csat], Score, "average CSAT score (1–5)", |a| ratio(
        a.all[CSAT_SUM],
        a.all[CSAT_N]
    )),
    measure!("csat_count", [Csat], Count, "count of CSAT scores", |a| Num::Int(
        a.all[CSAT_N]
    )),
    measure!(
        "csat_positive_rate",
        [Csat],
        Percent,
        "CSAT scores ≥ 4 / csat_count × 100",
        |a| percent(a.all[CSAT_POSITIVE], a.all[CSAT_N])
    ),
    measure!(
        "contacts_reached",
        [Stages],
        Count,
        "contacts reaching a pipeline stage for the first time (per stage when grouped by stage)",
        |a| Num::Int(a.all[STAGE_CONTACTS])
    ),
    measure!("deals_won", [Stages], Count, "contacts reaching closed_won", |a| {
        Num::Int(a.all[WON])
    }),
    measure!("revenue", [Stages], Currency, "sum of closed_won amounts", |a| {
        Num::Float(a.revenue())
    }),
    measure!(
        "avg_deal_size",
        [Stages],
        Currency,
        "revenue / closed_won deals with an amount",
        |a| ratio(a.all[WON_AMOUNT_SUM], a.all[WON_AMOUNT_N] * 100)
    ),
    measure!(
        "avg_days_to_meeting",
        [Stages],
        Days,
        "average days from a contact's first call to its first meeting_booked, over meetings whose contact was called first",
        |a| match micros_avg(a.all[CALL_TO_MEETING_SUM], a.all[MEETINGS_CALLED]) {
            Num::Float(seconds) => Num::Float(seconds / 86_400.0),
            other => other,
        }
    ),
    measure!(
        "revenue_per_call",
        [Stages, Calls],
        Currency,
        "revenue / total_calls",
        |a| if a.all[CALLS] == 0 {
            Num::Null
        } else {
            Num::Float(a.revenue() / a.all[CALLS] as f64)
        }
    ),
    measure!(
        "revenue_per_connect",
        [Stages, Calls],
        Currency,
        "revenue / connected_calls",
        |a| if a.connected_calls() == 0 {
            Num::Null
        } else {
            Num::Float(a.revenue() / a.connected_calls() as f64)
        }
    ),
];

pub fn measure(name: &str) -> Option<&'static MeasureDef> {
    MEASURES.iter().find(|m| m.name == name)
}
