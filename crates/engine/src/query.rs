//! The one query model (SPEC §5 `POST /api/v1/query`). Every preset view, report, export and
//! live update is a [`Query`]. A query is planned over rollup cells: each output bucket is
//! covered by the coarsest cells that fit in it, from the smallest cuboid that has every
//! dimension the query groups or filters by; what no cuboid covers is read from raw records.

use crate::cells::{
    agent_in_team, call_dim_values, call_stats, counter::COUNT, cuboid, CellData, Cuboid, Dim, DimValues, Fact,
    CUBOIDS, DIMS, KEY_SEPARATOR,
};
use crate::clock::{out_of_range_message, Clock, Grain, Granularity, OutOfRange, FIRST_YEAR, LAST_YEAR, QUARTER_HOUR};
use crate::event::{CallAnalysis, CallRecord};
use crate::fxhash::Fx;
use crate::histogram::HistogramRef;
use crate::measures::{measure, Accum, MeasureDef, Num, MEASURES};
use crate::taxonomy::{Category, CompiledTaxonomy, DispositionClass};
use crate::FieldError;
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

/// A dimension a query can group or filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Key(Dim),
    DispositionCategory,
    HourOfDay,
    DayOfWeek,
}

impl Dimension {
    pub const ALL: [Dimension; 14] = [
        Dimension::Key(Dim::Agent),
        Dimension::Key(Dim::Team),
        Dimension::Key(Dim::Campaign),
        Dimension::Key(Dim::List),
        Dimension::Key(Dim::LeadSource),
        Dimension::Key(Dim::Direction),
        Dimension::Key(Dim::Disposition),
        Dimension::DispositionCategory,
        Dimension::HourOfDay,
        Dimension::DayOfWeek,
        Dimension::Key(Dim::ScoreRange),
        Dimension::Key(Dim::Channel),
        Dimension::Key(Dim::Stage),
        Dimension::Key(Dim::Intent),
    ];

    pub fn parse(name: &str) -> Option<Dimension> {
        Dimension::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Every dimension's name, for messages and documentation.
    pub fn names() -> Vec<&'static str> {
        Dimension::ALL.iter().map(|d| d.name()).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Key(d) => d.name(),
            Dimension::DispositionCategory => "disposition_category",
            Dimension::HourOfDay => "hour_of_day",
            Dimension::DayOfWeek => "day_of_week",
        }
    }

    /// The stored dimension this one is read from, if any.
    fn stored(self) -> Option<Dim> {
        match self {
            Dimension::Key(d) => Some(d),
            Dimension::DispositionCategory => Some(Dim::Disposition),
            _ => None,
        }
    }
}

/// `[start, end)` in epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub dimension: Dimension,
    /// Fx: every cell a query reads is checked against it (SipHash was 5% of a view's time).
    pub values: HashSet<String, Fx>,
}

#[derive(Debug, Clone)]
pub struct Query {
    pub measures: Vec<&'static MeasureDef>,
    pub dimensions: Vec<Dimension>,
    pub granularity: Option<Granularity>,
    pub filters: Vec<Filter>,
    pub range: TimeRange,
    /// The zone of the query's buckets and dates.
    pub clock: Clock,
    pub compare: Option<TimeRange>,
    pub order_by: Vec<(String, bool)>,
    pub limit: usize,
}

/// What a query is evaluated against, besides the data.
pub struct Context<'a> {
    /// The zone of the tenant's hour and day cells.
    pub tenant_clock: &'a Clock,
    /// The default zone of queries (the tenant's timezone).
    pub zone: &'a Clock,
    pub taxonomy: &'a CompiledTaxonomy,
    /// The current instant, for presets.
    pub now: i64,
    /// The earliest instant with data, for `all_time`.
    pub earliest: Option<i64>,
    /// Each agent's team in the directory. Status, CSAT and stage events carry no team (nor do
    /// some tickets), so they count for the team their agent belongs to now.
    pub agent_teams: &'a AgentTeams,
}

/// Agent id → team id.
pub type AgentTeams = HashMap<String, String>;

pub const PRESETS: [&str; 8] = [
    "today",
    "yesterday",
    "last_7_days",
    "last_30_days",
    "this_week",
    "this_month",
    "this_quarter",
    "all_time",
];
pub const DEFAULT_LIMIT: usize = 10_000;
/// More output buckets than this is almost certainly a mistake (15-minute buckets over years).
const MAX_BUCKETS: usize = 50_000;

/// What one query may cost, so that no request can take the server's memory or hold a core
/// for long: the cells and raw records it reads and the rows it groups into (each row holds
/// its sums, and its histograms when a measure reads them), over its range and comparison.
/// Dashboard views stay orders of magnitude below (a 90-day leaderboard at 10M calls reads a
/// few thousand cells into a few hundred rows).
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub cells: u64,
    pub groups: usize,
    /// The row budget of a query whose measures read histograms (medians, percentiles):
    /// such rows can hold a histogram of every second of talk time.
    pub groups_with_histograms: usize,
}

pub const BUDGET: Budget = Budget {
    cells: 20_000_000,
    groups: 100_000,
    groups_with_histograms: 10_000,
};

/// A query past its [`Budget`]; says what to narrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTooLarge(pub String);

impl std::fmt::Display for QueryTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QueryTooLarge {}

/// Where a query stands against its budget while it runs (shared by its range and comparison).
struct Spent {
    budget: Budget,
    cells: u64,
    over: Option<QueryTooLarge>,
}

impl Spent {
    fn new(q: &Query, budget: Budget) -> Spent {
        let histograms = q.measures.iter().any(|m| m.reads_histogram);
        let groups = if histograms {
            budget.groups_with_histograms
        } else {
            budget.groups
        };
        Spent {
            budget: Budget { groups, ..budget },
            cells: 0,
            over: None,
        }
    }

    /// Counts one cell or record read; false once the query is over budget.
    fn read(&mut self, rows: usize) -> bool {
        if self.over.is_some() {
            return false;
        }
        self.cells += 1;
        if self.cells > self.budget.cells {
            self.over = Some(QueryTooLarge(format!(
                "the query reads more than {} cells and records; narrow its range or its filters, or group by fewer dimensions",
                self.budget.cells
            )));
        } else if rows > self.budget.groups {
            self.over = Some(QueryTooLarge(format!(
                "the query produces more than {} groups; group by fewer dimensions, choose a coarser granularity, narrow its range or filters{}",
                self.budget.groups,
                if self.budget.groups < BUDGET.groups { ", or leave out medians and percentiles" } else { "" }
            )));
        }
        self.over.is_none()
    }
}

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }
}

fn string_list(v: &Value, field: &str, errors: &mut Errors) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => {
                    errors.add(format!("{field}[{i}]"), "must be a string");
                    None
                }
            })
            .collect(),
        _ => {
            errors.add(field, "must be an array of strings");
            vec![]
        }
    }
}

/// Validates a query body. Every problem is reported with the field it concerns.
pub fn parse_query(body: &Value, ctx: &Context) -> Result<Query, Vec<FieldError>> {
    let mut errors = Errors(Vec::new());
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("", "the query must be a JSON object")]);
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "measures"
                | "dimensions"
                | "granularity"
                | "filters"
                | "range"
                | "timezone"
                | "compare"
                | "order_by"
                | "limit"
        ) {
            errors.add(key.clone(), "unknown field");
        }
    }
    let measures: Vec<&'static MeasureDef> = match obj.get("measures") {
        None => {
            errors.add("measures", "is required");
            vec![]
        }
        Some(v) => {
            let names = string_list(v, "measures", &mut errors);
            if names.is_empty() && v.is_array() {
                errors.add("measures", "must name at least one measure");
            }
            names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let m = measure(n);
                    if m.is_none() {
                        let known: Vec<_> = MEASURES.iter().map(|m| m.name).collect();
                        errors.add(
                            format!("measures[{i}]"),
                            format!("unknown measure '{n}'; known: {}", known.join(", ")),
                        );
                    }
                    m
                })
                .collect()
        }
    };
    let parse_dim = |name: &str, field: String, errors: &mut Errors| {
        let d = Dimension::parse(name);
        if d.is_none() {
            errors.add(
                field,
                format!("unknown dimension '{name}'; known: {}", Dimension::names().join(", ")),
            );
        }
        d
    };
    let mut dimensions = Vec::new();
    if let Some(v) = obj.get("dimensions") {
        for (i, n) in string_list(v, "dimensions", &mut errors).iter().enumerate() {
            if let Some(d) = parse_dim(n, format!("dimensions[{i}]"), &mut errors) {
                if dimensions.contains(&d) {
                    errors.add(format!("dimensions[{i}]"), "is listed twice");
                }
                dimensions.push(d);
            }
        }
    }
    let granularity = match obj.get("granularity") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let g = Granularity::parse(s);
            if g.is_none() {
                errors.add("granularity", "must be one of: 15m, hour, day, week, month, quarter");
            }
            g
        }
        Some(_) => {
            errors.add("granularity", "must be a string");
            None
        }
    };
    let mut filters = Vec::new();
    match obj.get("filters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (name, values) in map {
                let field = format!("filters.{name}");
                if let Some(d) = parse_dim(name, field.clone(), &mut errors) {
                    let values = string_list(values, &field, &mut errors).into_iter().collect();
                    filters.push(Filter { dimension: d, values });
                }
            }
        }
        Some(_) => errors.add("filters", "must be an object of dimension → list of values"),
    }
    let clock = match obj.get("timezone") {
        None | Some(Value::Null) => ctx.zone.clone(),
        Some(Value::String(tz)) => match Clock::new(tz) {
            Ok(c) => c,
            Err(message) => {
                errors.add("timezone", message);
                ctx.zone.clone()
            }
        },
        Some(_) => {
            errors.add("timezone", "must be an IANA time zone name");
            ctx.zone.clone()
        }
    };
    let range = match obj.get("range") {
        None => {
            errors.add("range", "is required");
            None
        }
        Some(v) => parse_range(v, "range", &clock, ctx, &mut errors),
    };
    let compare = match (obj.get("compare"), range) {
        (None | Some(Value::Null), _) => None,
        (Some(v), Some(range)) => parse_compare(v, range, &clock, ctx, &mut errors),
        (Some(_), None) => None,
    };
    let mut order_by = Vec::new();
    if let Some(v) = obj.get("order_by") {
        let columns: HashSet<&str> = dimensions
            .iter()
            .map(|d| d.name())
            .chain(measures.iter().map(|m| m.name))
            .chain(granularity.map(|_| "time"))
            .collect();
        match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("order_by[{i}]");
                    let pair = item.as_array().filter(|a| a.len() == 2);
                    match pair.map(|a| (a[0].as_str(), a[1].as_str())) {
                        Some((Some(col), Some(dir @ ("asc" | "desc")))) if columns.contains(col) => {
                            order_by.push((col.to_string(), dir == "desc"))
                        }
                        Some((Some(col), Some("asc" | "desc"))) => {
                            errors.add(field, format!("'{col}' is not a column of this query"))
                        }
                        _ => errors.add(field, "must be [column, \"asc\" | \"desc\"]"),
                    }
                }
            }
            None => errors.add("order_by", "must be a list of [column, direction]"),
        }
    }
    let limit = match obj.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=DEFAULT_LIMIT as u64).contains(&n) => n as usize,
            _ => {
                errors.add("limit", format!("must be a whole number from 1 to {DEFAULT_LIMIT}"));
                DEFAULT_LIMIT
            }
        },
    };
    if let Some(r) = range {
        if !clock.quarter_aligned_between(r.start, r.end) {
            errors.add(
                "timezone",
                "uses an offset that is not a multiple of 15 minutes in this range",
            );
        }
    }
    // A comparison derived from a range near the supported limits may fall outside them.
    if let Some(c) = compare {
        let years = FIRST_YEAR..=LAST_YEAR;
        if !years.contains(&clock.date_of(c.start).year())
            || !years.contains(&clock.date_of(c.end.saturating_sub(1)).year())
        {
            errors.add("compare", crate::clock::out_of_range_message());
        } else if !clock.quarter_aligned_between(c.start, c.end) {
            errors.add(
                "timezone",
                "uses an offset that is not a multiple of 15 minutes in the compared range",
            );
        }
    }
    match range {
        Some(range) if errors.0.is_empty() => {
            let q = Query {
                measures,
                dimensions,
                granularity,
                filters,
                range,
                clock,
                compare,
                order_by,
                limit,
            };
            if [Some(range), compare]
                .into_iter()
                .flatten()
                .any(|r| most_buckets(&q, r) > MAX_BUCKETS)
            {
                return Err(vec![FieldError::new(
                    "granularity",
                    format!("gives more than {MAX_BUCKETS} buckets for this range; choose a coarser one"),
                )]);
            }
            Ok(q)
        }
        _ => Err(errors.0),
    }
}

fn parse_instant(s: &str, field: &str, clock: &Clock, errors: &mut Errors) -> Option<i64> {
    if let Ok(d) = s.parse::<Date>() {
        let start = crate::clock::supported_date(d)
            .and_then(|d| clock.checked_date_start(d).map_err(|_| out_of_range_message()));
        return match start {
            Ok(start) => Some(start),
            Err(message) => {
                errors.add(field, message);
                None
            }
        };
    }
    match crate::clock::parse_rfc3339_nanos(s) {
        Ok(ns) if ns % (QUARTER_HOUR * 1_000_000_000) == 0 => Some(ns / 1_000_000_000),
        Ok(_) => {
            errors.add(field, "must fall on a 15-minute boundary (e.g. 09:00, 09:15)");
            None
        }
        Err(_) if s.parse::<jiff::Timestamp>().is_ok() => {
            errors.add(field, crate::clock::out_of_range_message());
            None
        }
        Err(_) => {
            errors.add(field, "must be a local date (YYYY-MM-DD) or an RFC 3339 timestamp");
            None
        }
    }
}

fn parse_range(v: &Value, field: &str, clock: &Clock, ctx: &Context, errors: &mut Errors) -> Option<TimeRange> {
    let Some(obj) = v.as_object() else {
        errors.add(field, "must be {\"preset\": ...} or {\"start\": ..., \"end\": ...}");
        return None;
    };
    let preset = obj.get("preset").and_then(Value::as_str);
    if let Some(p) = preset.filter(|p| *p != "custom") {
        let r = preset_range(p, clock, ctx);
        if r.is_none() {
            errors.add(
                format!("{field}.preset"),
                format!("must be one of: {}, custom", PRESETS.join(", ")),
            );
        }
        return r;
    }
    let get = |name: &str, errors: &mut Errors| match obj.get(name).and_then(Value::as_str) {
        Some(s) => parse_instant(s, &format!("{field}.{name}"), clock, errors),
        None => {
            errors.add(format!("{field}.{name}"), "is required (or give a preset)");
            None
        }
    };
    let (start, end) = (get("start", errors), get("end", errors));
    let (start, end) = (start?, end?);
    if end <= start {
        errors.add(format!("{field}.end"), "must be after start");
        return None;
    }
    Some(TimeRange { start, end })
}

/// The range of a preset in `clock`'s zone; weeks start on Monday. Ranges end at the end of
/// the current period (the future holds no data).
pub fn preset_range(preset: &str, clock: &Clock, ctx: &Context) -> Option<TimeRange> {
    let today = clock.day_start(ctx.now);
    let tomorrow = clock.next_day_start(ctx.now);
    // `now` is the server's clock, inside the supported years; saturate rather than panic.
    let days_back = |n: i64| {
        clock
            .checked_shifted_date_start(clock.date_of(today), (-n).days())
            .unwrap_or(today)
    };
    let bucket = |g: Granularity| TimeRange {
        start: clock.bucket_start(g, ctx.now),
        end: clock.next_bucket_start(g, ctx.now),
    };
    Some(match preset {
        "today" => TimeRange {
            start: today,
            end: tomorrow,
        },
        "yesterday" => TimeRange {
            start: days_back(1),
            end: today,
        },
        "last_7_days" => TimeRange {
            start: days_back(6),
            end: tomorrow,
        },
        "last_30_days" => TimeRange {
            start: days_back(29),
            end: tomorrow,
        },
        "this_week" => bucket(Granularity::Week),
        "this_month" => bucket(Granularity::Month),
        "this_quarter" => bucket(Granularity::CalendarQuarter),
        "all_time" => TimeRange {
            start: ctx.earliest.map_or(today, |e| clock.day_start(e).min(today)),
            end: tomorrow,
        },
        _ => return None,
    })
}

fn parse_compare(v: &Value, range: TimeRange, clock: &Clock, ctx: &Context, errors: &mut Errors) -> Option<TimeRange> {
    let period = match v {
        Value::String(s) if s == "previous_period" => previous_period(range, clock),
        Value::String(s) if s == "same_period_last_year" => {
            let back = |t: i64| {
                if clock.day_start(t) == t {
                    clock.checked_shifted_date_start(clock.date_of(t), (-1).year())
                } else {
                    t.checked_sub(365 * 86_400).ok_or(OutOfRange)
                }
            };
            back(range.start).and_then(|start| {
                Ok(TimeRange {
                    start,
                    end: back(range.end)?,
                })
            })
        }
        // A range given explicitly is compared as given.
        Value::Object(_) => return parse_range(v, "compare", clock, ctx, errors),
        _ => {
            errors.add(
                "compare",
                "must be previous_period, same_period_last_year or {\"start\", \"end\"}",
            );
            return None;
        }
    };
    match period {
        Ok(period) => Some(like_for_like(range, period, clock, ctx.now)),
        Err(OutOfRange) => {
            errors.add("compare", out_of_range_message());
            None
        }
    }
}

/// The part of `period` (the period `range` is compared with) that has elapsed as much as
/// `range` has at `now` (SPEC §4): while `range` is running, today until now is compared with
/// yesterday until the same local time, this month to date with the same days and hours of the
/// last month. Elapsed time is counted in local months, days and clock time, so DST days
/// compare 11:00 with 11:00 and the 15th of a quarter's second month with the previous one's. It runs to the end of the quarter hour `now` is in (rollups' smallest
/// cell, so the comparison stays exact), and never past `period`'s end.
pub fn like_for_like(range: TimeRange, period: TimeRange, clock: &Clock, now: i64) -> TimeRange {
    let cut = (now.div_euclid(QUARTER_HOUR) + 1).saturating_mul(QUARTER_HOUR);
    if !(range.start < cut && cut < range.end) {
        return period;
    }
    let (start, elapsed) = (clock.zoned(range.start), clock.zoned(cut));
    let local_end = start
        .datetime()
        .until((jiff::Unit::Month, elapsed.datetime()))
        .and_then(|span| clock.zoned(period.start).datetime().checked_add(span))
        .and_then(|dt| dt.to_zoned(start.time_zone().clone()));
    let end = match local_end {
        Ok(z) => z.timestamp().as_second(),
        // Out of the calendar's range: compare exact durations instead.
        Err(_) => period.start.saturating_add(cut - range.start),
    };
    TimeRange {
        start: period.start,
        end: end.max(period.start.saturating_add(QUARTER_HOUR)).min(period.end),
    }
}

/// The period of the same length just before: whole calendar months (this month, this
/// quarter) shift by months, so March is compared with February; whole local days by days (so
/// DST does not skew them), other ranges by their duration.
pub fn previous_period(range: TimeRange, clock: &Clock) -> Result<TimeRange, OutOfRange> {
    let whole_days = clock.day_start(range.start) == range.start && clock.day_start(range.end) == range.end;
    let (first, last) = (clock.date_of(range.start), clock.date_of(range.end));
    if whole_days && first.day() == 1 && last.day() == 1 {
        let months = (last.year() as i64 - first.year() as i64) * 12 + (last.month() as i64 - first.month() as i64);
        let start = clock.checked_shifted_date_start(first, (-months).months())?;
        Ok(TimeRange {
            start,
            end: range.start,
        })
    } else if whole_days {
        let days = first.until(last).map_err(|_| OutOfRange)?.get_days() as i64;
        let start = clock.checked_shifted_date_start(first, (-days).days())?;
        Ok(TimeRange {
            start,
            end: range.start,
        })
    } else {
        let length = range.end.checked_sub(range.start).ok_or(OutOfRange)?;
        Ok(TimeRange {
            start: range.start.checked_sub(length).ok_or(OutOfRange)?,
            end: range.start,
        })
    }
}

/// A piece of the range inside which every output column (time bucket, hour, weekday) is
/// constant.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub start: i64,
    pub end: i64,
    pub time: Option<i64>,
    pub hour_of_day: i64,
    pub day_of_week: i64,
}

fn uses(q: &Query, d: Dimension) -> bool {
    q.dimensions.contains(&d) || q.filters.iter().any(|f| f.dimension == d)
}

/// An upper bound of the segments a range splits into, known before computing any: the
/// finest boundaries in use contain all the others (days start on hours, hours on quarters),
/// and none is shorter than its unit's shortest length (a 30-minute hour at Lord Howe's shift,
/// a 23-hour day, a 28-day month).
fn most_buckets(q: &Query, range: TimeRange) -> usize {
    let mut shortest = range.end - range.start;
    let mut finer = |seconds: i64| shortest = shortest.min(seconds);
    if let Some(g) = q.granularity {
        finer(match g {
            Granularity::Quarter => QUARTER_HOUR,
            Granularity::Hour => 1800,
            Granularity::Day => 23 * 3600,
            Granularity::Week => 7 * 86_400 - 3600,
            Granularity::Month => 28 * 86_400 - 3600,
            Granularity::CalendarQuarter => 89 * 86_400 - 3600,
        });
    }
    if uses(q, Dimension::HourOfDay) {
        finer(1800);
    }
    if uses(q, Dimension::DayOfWeek) {
        finer(23 * 3600);
    }
    ((range.end - range.start) / shortest.max(1)) as usize + 2
}

fn segments(q: &Query, range: TimeRange) -> Vec<Segment> {
    let by_hour = uses(q, Dimension::HourOfDay);
    let by_day = uses(q, Dimension::DayOfWeek);
    let mut out = Vec::new();
    let mut t = range.start;
    while t < range.end {
        let mut end = range.end;
        if let Some(g) = q.granularity {
            end = end.min(q.clock.next_bucket_start(g, t));
        }
        if by_hour {
            end = end.min(q.clock.next_hour_start(t));
        }
        if by_day {
            end = end.min(q.clock.next_day_start(t));
        }
        out.push(Segment {
            start: t,
            end,
            time: q.granularity.map(|g| q.clock.bucket_start(g, t)),
            hour_of_day: if by_hour { q.clock.hour_of_day(t) } else { 0 },
            day_of_week: if by_day { q.clock.day_of_week(t) } else { 0 },
        });
        t = end;
    }
    out
}

/// One read the plan asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetch {
    /// Cells of `cuboid` at `grain` whose bucket starts in `[from, to)`.
    Cells {
        cuboid: u8,
        grain: Grain,
        from: i64,
        to: i64,
    },
    /// Current call records (with their analysis) that started in `[from, to)`.
    RawCalls { from: i64, to: i64 },
}

pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// The store's side of a query: it streams cells and raw records to the engine.
pub trait CellSource {
    fn cells(
        &mut self,
        cuboid: &Cuboid,
        grain: Grain,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(i64, &str, CellData),
    ) -> Result<(), SourceError>;

    fn raw_calls(
        &mut self,
        from: i64,
        to: i64,
        sink: &mut dyn FnMut(&CallRecord, Option<&CallAnalysis>),
    ) -> Result<(), SourceError>;
}

/// The stored dimensions a query needs from a fact's records, or `None` if the fact lacks one.
fn needed_dims(q: &Query, fact: Fact) -> Option<Vec<Dim>> {
    let mut dims: Vec<Dim> = q
        .dimensions
        .iter()
        .copied()
        .chain(q.filters.iter().map(|f| f.dimension))
        .filter_map(Dimension::stored)
        .collect();
    if fact == Fact::Calls {
        dims.push(Dim::Disposition); // categories and meetings are read from it
    }
    dims.sort();
    dims.dedup();
    dims.iter().all(|d| fact.dims().contains(d)).then_some(dims)
}

/// The facts this query reads: those its measures need and whose records have every
/// dimension it groups or filters by. Measures of the other facts are `null`.
fn facts(q: &Query) -> Vec<Fact> {
    let mut out = Vec::new();
    for m in &q.measures {
        for &f in m.facts {
            if !out.contains(&f) && needed_dims(q, f).is_some() {
                out.push(f);
            }
        }
    }
    out
}

/// Plans the reads for `range`: per segment, month or week cells where one fits (from the
/// smallest covering cuboid, if it has them), else day cells where a tenant day fits, then hour
/// cells, then 15-minute cells, from the first covering cuboid with that grain; raw records
/// where no cuboid covers the query.
pub fn plan(q: &Query, range: TimeRange, tenant_clock: &Clock) -> (Vec<Segment>, Vec<Fetch>) {
    let segs = segments(q, range);
    let mut fetches: Vec<Fetch> = Vec::new();
    let mut push = |f: Fetch| {
        if let Some(last) = fetches.last_mut() {
            match (last, &f) {
                (
                    Fetch::Cells { cuboid, grain, to, .. },
                    Fetch::Cells {
                        cuboid: c,
                        grain: g,
                        from,
                        to: t,
                    },
                ) if cuboid == c && grain == g && to == from => {
                    *to = *t;
                    return;
                }
                (Fetch::RawCalls { to, .. }, Fetch::RawCalls { from, to: t }) if to == from => {
                    *to = *t;
                    return;
                }
                _ => {}
            }
        }
        fetches.push(f);
    };
    for fact in facts(q) {
        let dims = needed_dims(q, fact).expect("facts() keeps covered facts");
        let stored: Vec<Dim> = dims.iter().map(|&d| fact.stored(d)).collect();
        let covering: Vec<&Cuboid> = CUBOIDS.iter().filter(|c| c.fact == fact && c.covers(&stored)).collect();
        let with = |g: Grain| covering.iter().find(|c| c.has(g)).map(|c| c.id);
        // Weeks and months only from the smallest covering cuboid: a month of a bigger one
        // (a cell per agent) costs more than the days of a smaller one (a cell per disposition).
        let coarse = |g: Grain| covering.first().filter(|c| c.has(g)).map(|c| c.id);
        // Coarsest first, greedily: the days before a week or month starts, then whole weeks
        // and months, then the days, hours and quarters of the range's ragged end.
        let grains = [
            (coarse(Grain::Month), Grain::Month),
            (coarse(Grain::Week), Grain::Week),
            (with(Grain::Day), Grain::Day),
            (with(Grain::Hour), Grain::Hour),
            (with(Grain::Quarter), Grain::Quarter),
        ];
        for s in &segs {
            let mut t = s.start;
            while t < s.end {
                let cell = grains.into_iter().find_map(|(cuboid, grain)| {
                    let cuboid = cuboid?;
                    if tenant_clock.cell_start(grain, t) != t {
                        return None;
                    }
                    let end = tenant_clock.cell_end(grain, t);
                    (end <= s.end).then_some((cuboid, grain, end))
                });
                match cell {
                    Some((cuboid, grain, end)) => {
                        push(Fetch::Cells {
                            cuboid,
                            grain,
                            from: t,
                            to: end,
                        });
                        t = end;
                    }
                    None => {
                        // Only calls lack a covering cuboid; activity has every grain, and
                        // ranges and zones are validated to fall on 15-minute boundaries.
                        assert_eq!(fact, Fact::Calls, "activity cells cover every aligned range");
                        let end = s.end.min(tenant_clock.next_hour_start(t));
                        push(Fetch::RawCalls { from: t, to: end });
                        t = end;
                    }
                }
            }
        }
    }
    (segs, fetches)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyValue {
    Null,
    Int(i64),
    Text(String),
    /// A bucket start, shown as RFC 3339 in the query's zone.
    Time(i64),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub key: Vec<KeyValue>,
    pub values: Vec<Num>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub totals: Vec<Num>,
    /// Whether rows past the query's `limit` were left out (totals still count them).
    pub truncated: bool,
}

#[derive(Debug, Clone)]
pub struct QueryResult {
    /// The query's `limit`: at most this many rows per table (`truncated` says if more matched).
    pub limit: usize,
    pub table: Table,
    pub comparison: Option<Table>,
    /// The resolved ranges of the table and of the comparison.
    pub range: TimeRange,
    pub compare: Option<TimeRange>,
    pub clock: Clock,
    pub measure_names: Vec<&'static str>,
}

/// Runs a query against a source.
pub fn run(q: &Query, ctx: &Context, source: &mut dyn CellSource) -> Result<QueryResult, SourceError> {
    run_within(q, ctx, source, BUDGET)
}

/// Runs a query within `budget`; past it, the error is a [`QueryTooLarge`].
pub fn run_within(
    q: &Query,
    ctx: &Context,
    source: &mut dyn CellSource,
    budget: Budget,
) -> Result<QueryResult, SourceError> {
    let mut spent = Spent::new(q, budget);
    let table = run_range(q, q.range, ctx, source, &mut spent)?;
    let comparison = match q.compare {
        Some(r) => Some(run_range(q, r, ctx, source, &mut spent)?),
        None => None,
    };
    Ok(QueryResult {
        limit: q.limit,
        table,
        comparison,
        range: q.range,
        compare: q.compare,
        clock: q.clock.clone(),
        measure_names: q.measures.iter().map(|m| m.name).collect(),
    })
}

struct Aggregator<'a> {
    q: &'a Query,
    taxonomy: &'a CompiledTaxonomy,
    segs: Vec<Segment>,
    /// A row's position in `rows` by its key's bytes (see `key_bytes`): finding a cell's row
    /// allocates nothing; a `KeyValue` key is built once per row.
    index: HashMap<Box<[u8]>, usize, Fx>,
    rows: Vec<(Vec<KeyValue>, Accum)>,
    scratch: Vec<u8>,
}

/// What a cell key that passes the filters resolves to where neither a row nor a filter
/// depends on the cell's time (see [`KeyMemo`]): the row it adds to and its disposition's class.
type Resolved = (u32, DispositionClass);

/// The longest cell key [`KeyMemo`] keeps (longer ones are resolved at each cell).
const MEMO_KEY: usize = 55;

/// A cell key held in the memo's own slot: comparing it reads no other memory (a boxed key
/// cost a cache miss per cell, most of a lookup's time on a board of every agent).
#[derive(Clone, Copy, PartialEq, Eq)]
struct InlineKey {
    len: u8,
    bytes: [u8; MEMO_KEY],
}

impl std::hash::Hash for InlineKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The key's own bytes (its length is in them: the padding is zeros).
        state.write(&self.bytes[..self.len as usize]);
    }
}

impl InlineKey {
    fn new(key: &str) -> Option<InlineKey> {
        let mut bytes = [0; MEMO_KEY];
        bytes.get_mut(..key.len())?.copy_from_slice(key.as_bytes());
        Some(InlineKey {
            len: key.len() as u8,
            bytes,
        })
    }
}

/// Each distinct key of one cuboid that passes the filters, resolved once: a board of every
/// agent over weeks reads the same (agent, team, disposition) key in every bucket, and
/// splitting it, finding its team, filtering, finding its row and classifying its disposition
/// cost most of a cell's time. Keys filtered out are not kept (see `run_range`).
/// Only for queries whose rows and filters do not depend on the segment (no time buckets, no
/// hour of day or day of week), where a key gives the same answer in every bucket.
struct KeyMemo {
    cuboid: u8,
    resolved: HashMap<InlineKey, Resolved, Fx>,
}

impl KeyMemo {
    fn applies(q: &Query) -> bool {
        q.granularity.is_none() && !uses(q, Dimension::HourOfDay) && !uses(q, Dimension::DayOfWeek)
    }

    /// The memo of `cuboid`'s keys (a key means different values in another cuboid).
    fn of(&mut self, cuboid: u8) -> &mut HashMap<InlineKey, Resolved, Fx> {
        if self.cuboid != cuboid {
            self.cuboid = cuboid;
            self.resolved.clear();
        }
        &mut self.resolved
    }
}

impl Aggregator<'_> {
    fn segment(&self, t: i64) -> Option<&Segment> {
        let i = self.segs.partition_point(|s| s.start <= t).checked_sub(1)?;
        let s = &self.segs[i];
        (t < s.end).then_some(s)
    }

    fn passes(&self, values: &DimValues, seg: &Segment) -> bool {
        passes_filters(&self.q.filters, values, seg.hour_of_day, seg.day_of_week, self.taxonomy)
    }

    fn key(&self, values: &DimValues, seg: &Segment) -> Vec<KeyValue> {
        let text = |s: &str| {
            if s.is_empty() {
                KeyValue::Null
            } else {
                KeyValue::Text(s.to_string())
            }
        };
        let mut key: Vec<KeyValue> = self
            .q
            .dimensions
            .iter()
            .map(|d| match d {
                Dimension::Key(d) => text(values[*d as usize]),
                Dimension::DispositionCategory => self
                    .taxonomy
                    .class(values[Dim::Disposition as usize])
                    .category
                    .map_or(KeyValue::Null, |c| KeyValue::Text(c.as_str().into())),
                Dimension::HourOfDay => KeyValue::Int(seg.hour_of_day),
                Dimension::DayOfWeek => KeyValue::Int(seg.day_of_week),
            })
            .collect();
        if let Some(t) = seg.time {
            key.push(KeyValue::Time(t));
        }
        key
    }

    /// The segment a record at `t` with these values counts in, if it passes the filters.
    fn locate(&self, t: i64, values: &DimValues) -> Option<Segment> {
        let seg = self.segment(t).copied()?;
        self.passes(values, &seg).then_some(seg)
    }

    /// The bytes that identify a row: the same values give the same bytes, and different
    /// values different bytes (parts end with a separator that ids cannot contain).
    fn key_bytes(&self, values: &DimValues, seg: &Segment, out: &mut Vec<u8>) {
        out.clear();
        for d in &self.q.dimensions {
            match d {
                Dimension::Key(d) => out.extend_from_slice(values[*d as usize].as_bytes()),
                Dimension::DispositionCategory => {
                    let category = self.taxonomy.class(values[Dim::Disposition as usize]).category;
                    out.push(category.map_or(0, |c| c.index() as u8 + 1));
                }
                Dimension::HourOfDay => out.push(seg.hour_of_day as u8),
                Dimension::DayOfWeek => out.push(seg.day_of_week as u8),
            }
            out.push(KEY_SEPARATOR as u8);
        }
        if let Some(t) = seg.time {
            out.extend_from_slice(&t.to_le_bytes());
        }
    }

    /// The position of the row a cell (or record) with these values in `seg` adds to, made if new.
    fn row(&mut self, seg: &Segment, values: &DimValues) -> usize {
        let mut bytes = std::mem::take(&mut self.scratch);
        self.key_bytes(values, seg, &mut bytes);
        let i = match self.index.get(bytes.as_slice()) {
            Some(&i) => i,
            None => {
                self.rows.push((self.key(values, seg), Accum::default()));
                self.index.insert(bytes.as_slice().into(), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        self.scratch = bytes;
        i
    }

    /// Adds a cell (or record) to its row; `None` if its durations are corrupt.
    fn add(
        &mut self,
        seg: Segment,
        values: &DimValues,
        fact: Fact,
        counters: &[i64],
        durations: Option<HistogramRef>,
    ) -> Option<()> {
        let i = self.row(&seg, values);
        let class = self.taxonomy.class(values[Dim::Disposition as usize]);
        self.rows[i].1.add_classified(fact, class, counters, durations)
    }
}

/// A cell key's values for every [`Dim`], split from the key of cuboid `c`, with the team
/// looked up in the directory where the record takes it from there (`derives_team`).
fn key_values<'k>(c: &Cuboid, key: &'k str, derives_team: bool, agent_teams: &'k AgentTeams) -> DimValues<'k> {
    let mut values = [""; DIMS];
    for (dim, part) in c.dims.iter().zip(key.split(KEY_SEPARATOR)) {
        values[*dim as usize] = part;
    }
    if let Some(agent) = agent_in_team(values[Dim::Team as usize]) {
        values[Dim::Agent as usize] = agent;
        values[Dim::Team as usize] = "";
    }
    if derives_team {
        directory_team(&mut values, c.fact, agent_teams);
    }
    values
}

/// Gives a record the team of its agent in the directory where it takes its team from there.
pub fn directory_team<'a>(values: &mut DimValues<'a>, fact: Fact, agent_teams: &'a AgentTeams) {
    if fact.team_from_directory(values[Dim::Team as usize]) {
        let team = agent_teams.get(values[Dim::Agent as usize]);
        values[Dim::Team as usize] = team.map_or("", String::as_str);
    }
}

fn run_range(
    q: &Query,
    range: TimeRange,
    ctx: &Context,
    source: &mut dyn CellSource,
    spent: &mut Spent,
) -> Result<Table, SourceError> {
    let (segs, fetches) = plan(q, range, ctx.tenant_clock);
    let mut agg = Aggregator {
        q,
        taxonomy: ctx.taxonomy,
        segs,
        index: HashMap::default(),
        rows: Vec::new(),
        scratch: Vec::new(),
    };
    // Histograms are decoded only for facts whose durations a measure reads.
    let histograms = |fact: Fact| q.measures.iter().any(|m| m.reads_histogram && m.facts[0] == fact);
    // A record's team is looked up in the directory only when the query groups or filters by
    // team (see `Fact::team_from_directory`).
    let derives_team = uses(q, Dimension::Key(Dim::Team));
    let mut corrupt = false;
    let mut counters = [0; COUNT];
    let mut memo = KeyMemo::applies(q).then(|| KeyMemo {
        cuboid: u8::MAX,
        resolved: HashMap::default(),
    });
    for fetch in &fetches {
        match *fetch {
            Fetch::Cells {
                cuboid: id,
                grain,
                from,
                to,
            } => {
                let c = cuboid(id).expect("planned cuboids exist");
                source.cells(c, grain, from, to, &mut |bucket, key, data| {
                    // Past the budget the rest is skipped: nothing more is decoded or grouped.
                    if !spent.read(agg.rows.len()) {
                        return;
                    }
                    // Filters are decided on the key, before paying for decoding.
                    let resolve = |agg: &mut Aggregator, seg: &Segment, values: &DimValues| {
                        let class = ctx.taxonomy.class(values[Dim::Disposition as usize]);
                        (agg.row(seg, values) as u32, class)
                    };
                    let resolved = match memo.as_mut() {
                        // Without filters a known key needs nothing more than its memo.
                        Some(memo) if q.filters.is_empty() => {
                            let inline = InlineKey::new(key);
                            let known = memo.of(c.id);
                            match inline.and_then(|k| known.get(&k).copied()) {
                                Some(resolved) => agg.segment(bucket).map(|_| resolved),
                                None => {
                                    let values = key_values(c, key, derives_team, ctx.agent_teams);
                                    agg.locate(bucket, &values).map(|seg| {
                                        let resolved = resolve(&mut agg, &seg, &values);
                                        if let Some(k) = inline {
                                            known.insert(k, resolved);
                                        }
                                        resolved
                                    })
                                }
                            }
                        }
                        // With filters the key is checked first, as without a memo (most
                        // keys of a query of one agent or team are filtered out, each seen
                        // in a bucket or two); the memo finds the row of those that pass.
                        Some(memo) => {
                            let values = key_values(c, key, derives_team, ctx.agent_teams);
                            let Some(seg) = agg.locate(bucket, &values) else { return };
                            Some(match InlineKey::new(key) {
                                Some(k) => *memo
                                    .of(c.id)
                                    .entry(k)
                                    .or_insert_with(|| resolve(&mut agg, &seg, &values)),
                                None => resolve(&mut agg, &seg, &values),
                            })
                        }
                        None => {
                            let values = key_values(c, key, derives_team, ctx.agent_teams);
                            agg.locate(bucket, &values).map(|seg| resolve(&mut agg, &seg, &values))
                        }
                    };
                    let Some((row, class)) = resolved else { return };
                    // Talk times are read only from connected calls' cells (see `Accum::add_calls`).
                    let decode =
                        histograms(c.fact) && (c.fact != Fact::Calls || class.category == Some(Category::Connected));
                    let added = data.sums(decode, &mut counters).and_then(|(counters, durations)| {
                        agg.rows[row as usize]
                            .1
                            .add_classified(c.fact, class, counters, durations)
                    });
                    corrupt |= added.is_none();
                })?;
                if corrupt {
                    return Err("a stored cell could not be decoded".into());
                }
            }
            Fetch::RawCalls { from, to } => {
                source.raw_calls(from, to, &mut |call, analysis| {
                    if !spent.read(agg.rows.len()) {
                        return;
                    }
                    let t = call.started_second();
                    let mut values = call_dim_values(call, analysis);
                    if derives_team {
                        directory_team(&mut values, Fact::Calls, ctx.agent_teams);
                    }
                    if let Some(seg) = agg.locate(t, &values).filter(|_| (from..to).contains(&t)) {
                        let stats = call_stats(call, analysis);
                        let durations = Some(HistogramRef::Decoded(&stats.durations));
                        agg.add(seg, &values, Fact::Calls, &stats.c, durations)
                            .expect("a histogram in memory is valid");
                    }
                })?;
            }
        }
        if let Some(over) = &spent.over {
            return Err(Box::new(over.clone()));
        }
    }
    let included = facts(q);
    let evaluate = |a: &Accum| -> Vec<Num> {
        q.measures
            .iter()
            .map(|m| {
                if m.facts.iter().all(|f| included.contains(f)) {
                    (m.compute)(a)
                } else {
                    Num::Null
                }
            })
            .collect()
    };
    let mut totals = Accum::default();
    for (_, row) in &agg.rows {
        totals.add_accum(row);
    }
    let totals = evaluate(&totals);
    let mut rows: Vec<Row> = agg
        .rows
        .into_iter()
        .map(|(key, a)| Row {
            values: evaluate(&a),
            key,
        })
        .filter(|r| !r.values.iter().all(|v| v.is_zero_or_null()))
        .collect();
    let mut columns: Vec<String> = q.dimensions.iter().map(|d| d.name().to_string()).collect();
    if q.granularity.is_some() {
        columns.push("time".into());
    }
    let key_len = columns.len();
    columns.extend(q.measures.iter().map(|m| m.name.to_string()));
    sort_rows(&mut rows, &columns, key_len, &q.order_by);
    let truncated = rows.len() > q.limit;
    rows.truncate(q.limit);
    Ok(Table {
        columns,
        rows,
        totals,
        truncated,
    })
}

/// A row's value in one column, as ordered by `order_by`.
enum SortValue<'a> {
    Key(&'a KeyValue),
    Number(f64),
}

impl SortValue<'_> {
    /// The value of column `i`, `None` when null.
    fn of(row: &Row, i: usize, key_len: usize) -> Option<SortValue<'_>> {
        if i < key_len {
            Some(&row.key[i]).filter(|k| **k != KeyValue::Null).map(SortValue::Key)
        } else {
            row.values[i - key_len].as_f64().map(SortValue::Number)
        }
    }

    fn cmp(&self, other: &SortValue) -> std::cmp::Ordering {
        match (self, other) {
            (SortValue::Key(x), SortValue::Key(y)) => x.cmp(y),
            (SortValue::Number(x), SortValue::Number(y)) => x.total_cmp(y),
            _ => std::cmp::Ordering::Equal, // one column holds one kind
        }
    }
}

/// Sorts by `order_by`, then by the key columns; nulls last in either direction.
fn sort_rows(rows: &mut [Row], columns: &[String], key_len: usize, order_by: &[(String, bool)]) {
    use std::cmp::Ordering;
    let order: Vec<(usize, bool)> = order_by
        .iter()
        .filter_map(|(c, desc)| columns.iter().position(|x| x == c).map(|i| (i, *desc)))
        .collect();
    rows.sort_by(|a, b| {
        for &(i, desc) in &order {
            let ord = match (SortValue::of(a, i, key_len), SortValue::of(b, i, key_len)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) if desc => x.cmp(&y).reverse(),
                (Some(x), Some(y)) => x.cmp(&y),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        a.key.cmp(&b.key)
    });
}

impl QueryResult {
    fn key_json(&self, k: &KeyValue) -> Value {
        match k {
            KeyValue::Null => Value::Null,
            KeyValue::Int(i) => json!(i),
            KeyValue::Text(s) => json!(s),
            KeyValue::Time(t) => json!(self.clock.format(*t)),
        }
    }

    fn table_json(&self, t: &Table) -> Map<String, Value> {
        let rows: Vec<Value> = t
            .rows
            .iter()
            .map(|r| {
                Value::Array(
                    r.key
                        .iter()
                        .map(|k| self.key_json(k))
                        .chain(r.values.iter().map(|v| v.to_json()))
                        .collect(),
                )
            })
            .collect();
        let mut m = Map::new();
        m.insert("columns".into(), json!(t.columns));
        m.insert("rows".into(), Value::Array(rows));
        m.insert("totals".into(), self.totals_json(t));
        m.insert("truncated".into(), json!(t.truncated));
        m
    }

    fn totals_json(&self, t: &Table) -> Value {
        Value::Object(
            self.measure_names
                .iter()
                .zip(&t.totals)
                .map(|(n, v)| (n.to_string(), v.to_json()))
                .collect(),
        )
    }

    /// `{"start", "end"}` in the query's zone.
    fn range_json(&self, r: TimeRange) -> Value {
        json!({"start": self.clock.format(r.start), "end": self.clock.format(r.end)})
    }

    /// The SPEC §5 response: the resolved `range`, `columns`, `rows`, `totals` and, with
    /// `compare`, `comparison` with its own `range` and `change_percent` per measure.
    pub fn to_json(&self) -> Value {
        let mut out = self.table_json(&self.table);
        out.insert("range".into(), self.range_json(self.range));
        if let (Some(c), Some(range)) = (&self.comparison, self.compare) {
            let mut cmp = self.table_json(c);
            cmp.insert("range".into(), self.range_json(range));
            let change: Map<String, Value> = self
                .measure_names
                .iter()
                .zip(self.table.totals.iter().zip(&c.totals))
                .map(|(n, (now, before))| (n.to_string(), change_percent(*now, *before).to_json()))
                .collect();
            cmp.insert("change_percent".into(), Value::Object(change));
            out.insert("comparison".into(), Value::Object(cmp));
        }
        out.insert("limit".into(), json!(self.limit));
        Value::Object(out)
    }

    /// The totals of the main range, by measure name.
    pub fn total(&self, measure: &str) -> Option<Num> {
        self.measure_names
            .iter()
            .position(|m| *m == measure)
            .map(|i| self.table.totals[i])
    }
}

/// `(now − before) / |before| × 100`; `null` when `before` is zero or missing.
pub fn change_percent(now: Num, before: Num) -> Num {
    match (now.as_f64(), before.as_f64()) {
        (Some(n), Some(b)) if b != 0.0 => Num::Float((n - b) / b.abs() * 100.0),
        _ => Num::Null,
    }
}

/// Whether a record with these dimension values (in `Dim::ALL` order), local hour and weekday
/// passes every filter. The one definition of filtering, for queries and drill-downs alike.
pub fn passes_filters(
    filters: &[Filter],
    values: &DimValues,
    hour_of_day: i64,
    day_of_week: i64,
    taxonomy: &CompiledTaxonomy,
) -> bool {
    filters.iter().all(|f| match f.dimension {
        Dimension::Key(d) => f.values.contains(values[d as usize]),
        Dimension::DispositionCategory => {
            let c = taxonomy.class(values[Dim::Disposition as usize]).category;
            c.is_some_and(|c| f.values.contains(c.as_str()))
        }
        Dimension::HourOfDay => f.values.contains(&hour_of_day.to_string()),
        Dimension::DayOfWeek => f.values.contains(&day_of_week.to_string()),
    })
}

/// Validates a drill-down's `filters`, `range` and `timezone` with exactly the rules of a query.
pub fn parse_drilldown(body: &Value, ctx: &Context) -> Result<Query, Vec<FieldError>> {
    let mut body = body.clone();
    if let Some(obj) = body.as_object_mut() {
        obj.insert("measures".into(), json!(["total_calls"]));
    }
    parse_query(&body, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Taxonomy;

    fn parse(body: Value) -> Result<Query, Vec<FieldError>> {
        let clock = Clock::new("Australia/Lord_Howe").unwrap();
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let ctx = Context {
            tenant_clock: &clock,
            zone: &clock,
            taxonomy: &taxonomy,
            now: 1_780_000_000,
            earliest: None,
            agent_teams: &AgentTeams::new(),
        };
        parse_query(&body, &ctx)
    }

    /// Every cell request answered with `n` cells of distinct keys, each one call.
    struct Synthetic(usize);

    impl CellSource for Synthetic {
        fn cells(
            &mut self,
            c: &Cuboid,
            _grain: Grain,
            from: i64,
            _to: i64,
            sink: &mut dyn FnMut(i64, &str, CellData),
        ) -> Result<(), SourceError> {
            let mut stats = crate::cells::Stats::default();
            stats.c[crate::cells::counter::CALLS] = 1;
            for i in 0..self.0 {
                let key: Vec<String> = c.dims.iter().map(|_| format!("v{i}")).collect();
                sink(from, &key.join(&KEY_SEPARATOR.to_string()), CellData::Decoded(&stats));
            }
            Ok(())
        }

        fn raw_calls(
            &mut self,
            _from: i64,
            _to: i64,
            _sink: &mut dyn FnMut(&CallRecord, Option<&CallAnalysis>),
        ) -> Result<(), SourceError> {
            Ok(())
        }
    }

    fn run_synthetic(body: Value, cells: usize, budget: Budget) -> Result<QueryResult, SourceError> {
        let clock = Clock::utc();
        let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
        let teams = AgentTeams::new();
        let ctx = Context {
            tenant_clock: &clock,
            zone: &clock,
            taxonomy: &taxonomy,
            now: 1_780_000_000,
            earliest: None,
            agent_teams: &teams,
        };
        let q = parse_query(&body, &ctx).unwrap();
        run_within(&q, &ctx, &mut Synthetic(cells), budget)
    }

    #[test]
    fn a_query_past_its_budget_stops_with_what_to_narrow() {
        let body = json!({"measures": ["total_calls"], "dimensions": ["agent"],
            "range": {"start": "2026-03-01", "end": "2026-03-02"}});
        let budget = |cells, groups| Budget {
            cells,
            groups,
            groups_with_histograms: groups,
        };
        let ok = run_synthetic(body.clone(), 50, budget(1000, 100)).unwrap();
        assert_eq!(ok.table.rows.len(), 50);
        let too_many_groups = run_synthetic(body.clone(), 500, budget(1000, 100)).unwrap_err();
        let e = too_many_groups
            .downcast_ref::<QueryTooLarge>()
            .expect("a QueryTooLarge");
        assert!(e.0.contains("more than 100 groups"), "{e}");
        let too_many_cells = run_synthetic(body.clone(), 500, budget(200, 1000)).unwrap_err();
        assert!(too_many_cells.to_string().contains("more than 200 cells"));
        // Medians keep a histogram per row: they get the smaller row budget.
        let mut median = body;
        median["measures"] = json!(["median_talk_time"]);
        let strict = Budget {
            groups_with_histograms: 10,
            ..budget(1000, 100)
        };
        assert!(run_synthetic(median, 50, strict).is_err());
    }

    #[test]
    fn a_result_cut_at_its_limit_says_so() {
        let body = json!({"measures": ["total_calls"], "dimensions": ["agent"], "limit": 20,
            "range": {"start": "2026-03-01", "end": "2026-03-02"}});
        let cut = run_synthetic(body.clone(), 21, BUDGET).unwrap();
        let json = cut.to_json();
        assert_eq!(
            (json["truncated"].clone(), json["limit"].clone()),
            (json!(true), json!(20))
        );
        assert_eq!(json["rows"].as_array().unwrap().len(), 20);
        assert_eq!(json["totals"]["total_calls"], 21, "totals count every row");
        let whole = run_synthetic(body, 20, BUDGET).unwrap().to_json();
        assert_eq!(whole["truncated"], false);
    }

    fn date_text(year: i16, month: i8, day: i8) -> String {
        let d = Date::new(year, month, day.min(28)).unwrap();
        d.to_string()
    }

    /// Every calendar function of `clock`, called directly on the dates of `years` (from
    /// `-9999` to `9999`, first and last days included) and on `instant` (any `i64`), answers
    /// without panicking; checked ones succeed on everything inside the supported years.
    fn clock_is_total(clock: &Clock, years: &[i16], instant: i64) {
        use crate::clock::OutOfRange;
        let granularities = [
            Granularity::Quarter,
            Granularity::Hour,
            Granularity::Day,
            Granularity::Week,
            Granularity::Month,
            Granularity::CalendarQuarter,
        ];
        let mut instants = vec![instant, i64::MIN, i64::MAX];
        for &year in years {
            for (month, day) in [(1, 1), (12, 31)] {
                let d = Date::new(year, month, day).unwrap();
                let _ = clock.checked_date_start(d);
                let _ = clock.checked_shifted_date_start(d, (-1).year());
                instants.push(clock.date_start(d));
            }
        }
        for t in instants {
            let supported = (FIRST_YEAR..=LAST_YEAR)
                .contains(&jiff::Timestamp::from_second(t).map_or(0, |ts| ts.to_zoned(jiff::tz::TimeZone::UTC).year()));
            let checked = |r: Result<i64, OutOfRange>| assert!(r.is_ok() || !supported, "{t} in {clock:?}");
            for g in granularities {
                let (start, next) = (clock.bucket_start(g, t), clock.next_bucket_start(g, t));
                assert!(start <= next && next > start.min(i64::MAX - 1), "{g:?} at {t}");
                checked(clock.checked_bucket_start(g, t));
                checked(clock.checked_next_bucket_start(g, t));
            }
            checked(clock.checked_day_start(t));
            checked(clock.checked_next_day_start(t));
            let _ = (
                clock.hour_start(t),
                clock.next_hour_start(t),
                clock.hour_of_day(t),
                clock.day_of_week(t),
            );
            let _ = (
                clock.format(t),
                clock.quarter_aligned_between(t, t.saturating_add(86_400)),
            );
            let day = TimeRange {
                start: clock.day_start(t),
                end: clock.next_day_start(t),
            };
            if day.start < day.end {
                let _ = previous_period(day, clock);
                let _ = like_for_like(day, day, clock, t);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Any date jiff can write — ±9999 years, with every comparison, in zones with odd
        /// offsets — is either a valid query inside the supported years or a field error;
        /// parsing and planning never panic.
        #[test]
        fn any_date_is_a_query_or_a_field_error(
            years in proptest::prop_oneof![
                (-9999i16..=9999, -9999i16..=9999),
                (1960i16..=2210, 1960i16..=2210),
                (proptest::prelude::Just(1970i16), 1970i16..=1971),
                (2199i16..=2200, proptest::prelude::Just(2200i16)),
            ],
            months in (1i8..=12, 1i8..=12),
            days in (1i8..=31, 1i8..=31),
            compare in 0usize..4,
            zone in 0usize..6,
            rfc3339 in proptest::prelude::any::<bool>(),
            instant in proptest::prop_oneof![
                proptest::prelude::any::<i64>(),
                jiff::Timestamp::MIN.as_second()..=jiff::Timestamp::MAX.as_second(),
            ],
        ) {
            let start = date_text(years.0, months.0, days.0);
            let end = date_text(years.1, months.1, days.1);
            let (start, end) = if rfc3339 {
                (format!("{start}T00:00:00Z"), format!("{end}T00:00:00Z"))
            } else {
                (start, end)
            };
            let compare = [Value::Null, json!("previous_period"), json!("same_period_last_year"),
                json!({"start": "1970-01-01", "end": "2200-12-31"})][compare].clone();
            let zone = ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Kiritimati",
                "Australia/Lord_Howe", "America/St_Johns"][zone];
            let clock = Clock::new(zone).unwrap();
            clock_is_total(&clock, &[years.0, years.1], instant);
            let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
            let ctx = Context {
                tenant_clock: &clock,
                zone: &clock,
                taxonomy: &taxonomy,
                now: 1_780_000_000,
                earliest: None,
                agent_teams: &AgentTeams::new(),
            };
            let body = json!({"measures": ["total_calls", "idle_minutes"], "range": {"start": start, "end": end},
                "compare": compare});
            match parse_query(&body, &ctx) {
                Ok(q) => {
                    for r in [Some(q.range), q.compare].into_iter().flatten() {
                        let year = |t: i64| clock.date_of(t).year();
                        proptest::prop_assert!(year(r.start) >= crate::clock::FIRST_YEAR - 1);
                        proptest::prop_assert!(year(r.end) <= LAST_YEAR + 1);
                        plan(&q, r, &clock);
                    }
                }
                Err(errors) => proptest::prop_assert!(!errors.is_empty()),
            }
        }
    }

    #[test]
    fn extreme_dates_are_field_errors() {
        for (range, field) in [
            (json!({"start": "-009999-01-01", "end": "9999-12-31"}), "range.start"),
            (json!({"start": "2026-01-01", "end": "9999-12-31"}), "range.end"),
            (
                json!({"start": "1969-12-31T00:00:00Z", "end": "2026-01-01"}),
                "range.start",
            ),
        ] {
            let errors = parse(json!({"measures": ["total_calls"], "range": range})).unwrap_err();
            assert_eq!(errors[0].field, field, "{range}");
            assert!(errors[0].message.contains("1970-01-01 and 2200-12-31"), "{errors:?}");
        }
        let near = parse(
            json!({"measures": ["total_calls"], "range": {"start": "1970-01-01", "end": "1970-02-01"},
            "compare": "previous_period"}),
        )
        .unwrap_err();
        assert_eq!(near[0].field, "compare");
    }

    /// The intents view and a campaign's intents read cells, not the raw calls.
    #[test]
    fn intents_tenant_wide_and_per_campaign_read_cells() {
        for body in [
            json!({"measures": ["total_calls"], "dimensions": ["intent"],
                "range": {"start": "2026-03-01", "end": "2026-03-31"}}),
            json!({"measures": ["total_calls"], "dimensions": ["intent"], "filters": {"campaign": ["c1"]},
                "range": {"start": "2026-03-01", "end": "2026-03-31"}}),
        ] {
            let q = parse(body.clone()).unwrap();
            let (_, fetches) = plan(&q, q.range, &Clock::new("UTC").unwrap());
            assert!(
                fetches.iter().all(|f| matches!(f, Fetch::Cells { cuboid: 9, .. })),
                "{body}: {fetches:?}"
            );
        }
    }

    /// A board of every agent over 30 days reads whole weeks and months of the agent cuboid and
    /// day cells only at the ragged ends; a query a smaller cuboid covers keeps its day cells.
    #[test]
    fn agent_ranges_read_weeks_and_months_with_days_at_the_edges() {
        let clock = Clock::new("America/New_York").unwrap();
        let plan_of = |mut body: Value| {
            body["timezone"] = json!("America/New_York");
            let q = parse(body).unwrap();
            plan(&q, q.range, &clock).1
        };
        let cells = |fetches: &[Fetch]| -> Vec<(u8, Grain, String, String)> {
            fetches
                .iter()
                .map(|f| match *f {
                    Fetch::Cells {
                        cuboid,
                        grain,
                        from,
                        to,
                    } => (
                        cuboid,
                        grain,
                        clock.date_of(from).to_string(),
                        clock.date_of(to).to_string(),
                    ),
                    Fetch::RawCalls { .. } => panic!("raw calls: {fetches:?}"),
                })
                .collect()
        };
        // Friday 2026-07-31 to Sunday 2026-08-30: the days to Monday (one read), four weeks.
        let board = plan_of(json!({"measures": ["total_calls"], "dimensions": ["agent"],
            "range": {"start": "2026-07-31", "end": "2026-08-31"}}));
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        let expected: Vec<(u8, Grain, String, String)> = [
            (Grain::Day, s("2026-07-31", "2026-08-03")),
            (Grain::Week, s("2026-08-03", "2026-08-31")),
        ]
        .into_iter()
        .map(|(g, (a, b))| (1, g, a, b))
        .collect();
        assert_eq!(cells(&board), expected);
        // A whole month, then a week and the days after it (summer time ends on 2026-11-01).
        let months = plan_of(json!({"measures": ["total_calls"], "dimensions": ["team"],
            "range": {"start": "2026-10-01", "end": "2026-11-12"}}));
        assert_eq!(
            cells(&months),
            vec![
                (1, Grain::Month, "2026-10-01".into(), "2026-11-01".into()),
                (1, Grain::Day, "2026-11-01".into(), "2026-11-02".into()),
                (1, Grain::Week, "2026-11-02".into(), "2026-11-09".into()),
                (1, Grain::Day, "2026-11-09".into(), "2026-11-12".into()),
            ]
        );
        // Tenant-wide totals read the small cuboid's days, not a cell per agent of a month.
        let totals =
            plan_of(json!({"measures": ["total_calls"], "range": {"start": "2026-10-01", "end": "2026-11-01"}}));
        assert!(
            cells(&totals).iter().all(|(c, g, ..)| *c == 0 && *g == Grain::Day),
            "{totals:?}"
        );
        // Days as the rows: no week fits a day's row.
        let daily = plan_of(
            json!({"measures": ["total_calls"], "dimensions": ["agent"], "granularity": "day",
            "range": {"start": "2026-10-01", "end": "2026-11-01"}}),
        );
        assert!(cells(&daily).iter().all(|(_, g, ..)| *g == Grain::Day), "{daily:?}");
    }

    #[test]
    fn bucket_bound_rejects_absurd_granularities_and_holds_for_real_ones() {
        let too_fine = parse(json!({"measures": ["total_calls"], "granularity": "15m",
            "range": {"start": "2020-01-01", "end": "2026-01-01"}}));
        assert_eq!(too_fine.unwrap_err()[0].field, "granularity");
        let compare_too_long = parse(json!({"measures": ["total_calls"], "granularity": "hour",
            "range": {"start": "2025-01-01", "end": "2026-01-01"}, "compare": {"start": "2010-01-01", "end": "2026-01-01"}}));
        assert_eq!(compare_too_long.unwrap_err()[0].field, "granularity");
        // The bound is never below the real count, Lord Howe's 30-minute hours included.
        for (gran, dims) in [
            ("hour", json!([])),
            ("day", json!(["hour_of_day"])),
            ("month", json!(["day_of_week"])),
        ] {
            let q = parse(
                json!({"measures": ["total_calls"], "granularity": gran, "dimensions": dims,
                "range": {"start": "2026-03-01", "end": "2026-06-01"}}),
            )
            .unwrap();
            assert!(segments(&q, q.range).len() <= most_buckets(&q, q.range), "{gran}");
        }
    }
}
