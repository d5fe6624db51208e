//! Workforce planning (SPEC §14): the forecast with its backtest, the day's staffing against
//! the agents online, and the Erlang calculator. The maths is the engine's
//! (`engine::forecast`, `engine::staffing`); this module reads the history from the rollups
//! with the general query — 15-minute cells of calls and handle time, and of agent status —
//! exactly as `/query` would for the caller, and never scans raw calls. Each view is a function
//! of a [`Planner`] and its parameters, without HTTP, so it can move into the views library.

use super::admission::Permit;
use super::auth::Principal;
use super::error::{ApiError, Code};
use super::openapi::{op, Routes};
use super::query::params_body;
use super::AppState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::Json;
use dialboard_engine::clock::{Clock, Granularity};
use dialboard_engine::forecast::{self, Day, DayForecast, Model, SLOTS};
use dialboard_engine::staffing::{self, Load, Target};
use dialboard_engine::FieldError;
use dialboard_store::{Scope, TenantInfo};
use jiff::civil::Date;
use jiff::ToSpan;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

/// Weeks of history a forecast learns from, and weeks its backtest replays.
const HISTORY_WEEKS: i64 = 8;
const BACKTEST_WEEKS: usize = 4;
/// The farthest day a forecast reaches.
const MAX_DAYS: i64 = 14;

/// The planning views' answers, built as these types (which the OpenAPI document describes,
/// and `tests/api/answers.rs` checks the answers against).
pub mod answers {
    use serde::Serialize;
    use utoipa::ToSchema;

    /// One 15-minute interval's forecast.
    #[derive(Serialize, ToSchema)]
    pub struct ForecastInterval {
        /// RFC 3339.
        pub start: String,
        pub calls: f64,
        /// The 80% band.
        pub low: f64,
        pub high: f64,
        #[schema(required = true)]
        pub aht_seconds: Option<f64>,
    }

    #[derive(Serialize, ToSchema)]
    pub struct ForecastDay {
        /// A local date.
        pub date: String,
        pub holiday: bool,
        pub calls: f64,
        pub intervals: Vec<ForecastInterval>,
    }

    /// The last weeks' backtest against seasonal naive (same interval last week).
    #[derive(Serialize, ToSchema)]
    pub struct Backtest {
        pub weeks: i64,
        #[schema(required = true)]
        pub wape: Option<f64>,
        #[schema(required = true)]
        pub mase: Option<f64>,
        pub baseline: String,
        #[schema(required = true)]
        pub baseline_wape: Option<f64>,
        #[schema(required = true)]
        pub baseline_mase: Option<f64>,
        /// The share of actual intervals inside the band.
        #[schema(required = true)]
        pub interval_coverage: Option<f64>,
        #[schema(required = true)]
        pub beats_baseline: Option<bool>,
    }

    /// The local dates the model learned from.
    #[derive(Serialize, ToSchema)]
    pub struct History {
        #[schema(required = true)]
        pub start: Option<String>,
        pub end: String,
    }

    /// `GET /analytics/forecast`.
    #[derive(Serialize, ToSchema)]
    pub struct ForecastView {
        pub timezone: String,
        pub history: History,
        pub granularity: String,
        /// The band's level (0.8).
        pub interval_level: f64,
        pub days: Vec<ForecastDay>,
        pub backtest: Backtest,
    }

    /// Erlang C (or A) for one load.
    #[derive(Serialize, ToSchema)]
    pub struct Outcome {
        pub agents: u32,
        /// Agents needed once shrinkage is counted.
        pub scheduled_agents: u32,
        pub traffic_erlangs: f64,
        pub probability_wait: f64,
        /// Percent.
        pub service_level: f64,
        #[schema(required = true)]
        pub asa_seconds: Option<f64>,
        /// Percent.
        pub occupancy: f64,
        /// Percent (Erlang A only).
        #[schema(required = true)]
        pub abandon_rate: Option<f64>,
    }

    /// `GET /analytics/erlang`.
    #[derive(Serialize, ToSchema)]
    pub struct ErlangAnswer {
        #[serde(flatten)]
        pub outcome: Outcome,
        /// `erlang_c` or `erlang_a`.
        pub model: String,
    }

    /// One 15-minute interval of the staffing day.
    #[derive(Serialize, ToSchema)]
    pub struct StaffingInterval {
        #[serde(flatten)]
        pub outcome: Outcome,
        /// RFC 3339.
        pub start: String,
        pub forecast_calls: f64,
        pub forecast_low: f64,
        pub forecast_high: f64,
        /// Today's re-forecast from the calls so far (intervals still to come).
        #[schema(required = true)]
        pub reforecast_calls: Option<f64>,
        #[schema(required = true)]
        pub aht_seconds: Option<f64>,
        #[schema(required = true)]
        pub actual_calls: Option<f64>,
        #[schema(required = true)]
        pub actual_aht_seconds: Option<f64>,
        /// Average agents online over the quarter.
        #[schema(required = true)]
        pub agents_online: Option<f64>,
        #[schema(required = true)]
        pub staffing_gap: Option<f64>,
    }

    /// The callers' mean patience behind Erlang A: from the calls (`data`), a parameter, or
    /// `none` (Erlang C).
    #[derive(Serialize, ToSchema)]
    pub struct Patience {
        #[schema(required = true)]
        pub seconds: Option<f64>,
        /// `data`, `parameter` or `none`.
        pub source: String,
        // The fields of an estimate from the calls (`data`), absent otherwise.
        #[schema(required = false)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub abandoned_calls: Option<u64>,
        #[schema(required = false)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub total_wait_seconds: Option<f64>,
        /// The local days estimated from: `[from, until)`.
        #[schema(required = false)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub from: Option<String>,
        #[schema(required = false)]
        #[serde(skip_serializing_if = "Option::is_none")]
        pub until: Option<String>,
    }

    /// The service target, in percent where a share.
    #[derive(Serialize, ToSchema)]
    pub struct Target {
        pub service_level: f64,
        pub target_seconds: f64,
        pub max_occupancy: f64,
        pub shrinkage: f64,
        #[schema(required = true)]
        pub patience_seconds: Option<f64>,
    }

    #[derive(Serialize, ToSchema)]
    pub struct StaffingTotals {
        pub forecast_calls: f64,
        #[schema(required = true)]
        pub reforecast_calls: Option<f64>,
        #[schema(required = true)]
        pub actual_calls: Option<f64>,
        pub peak_agents: u32,
        pub peak_scheduled_agents: u32,
    }

    /// `GET /analytics/staffing`.
    #[derive(Serialize, ToSchema)]
    pub struct StaffingView {
        /// A local date.
        pub date: String,
        pub timezone: String,
        pub holiday: bool,
        /// `erlang_c` or `erlang_a`.
        pub model: String,
        pub patience: Patience,
        pub target: Target,
        pub intervals: Vec<StaffingInterval>,
        pub totals: StaffingTotals,
    }
}

pub fn routes(api: Routes) -> Routes {
    use super::openapi::{answer, Answer};
    let view = |summary, params, answer: Answer| vec![op("get", "read", summary).params(params).answers(answer)];
    api.add(
        "/analytics/forecast",
        get(forecast_view),
        view(
            "call volume and handle time per 15 minutes for the next days, with an 80% band, and the backtest against seasonal naive",
            &["days", "team", "campaign", "timezone"],
            answer::<answers::ForecastView>(),
        ),
    )
    .add(
        "/analytics/staffing",
        get(staffing_view),
        view(
            "one day per 15 minutes: forecast (re-forecast today), actual calls, Erlang C/A agents needed and scheduled, agents online",
            &["date", "team", "campaign", "timezone", "service_level", "target_seconds", "max_occupancy", "shrinkage", "patience_seconds"],
            answer::<answers::StaffingView>(),
        ),
    )
    .add(
        "/analytics/erlang",
        get(erlang_view),
        view(
            "Erlang C (or A with patience_seconds) for one load: agents, scheduled agents, P(wait), service level, ASA, occupancy",
            &["calls_per_hour", "aht_seconds", "target_seconds", "service_level", "max_occupancy", "shrinkage", "patience_seconds", "agents"],
            answer::<answers::ErlangAnswer>(),
        ),
    )
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(Code::InvalidRequest, vec![FieldError::new(field, message)])
}

/// A planning request: the caller, its tenant, the zone of its dates, its filters.
pub struct Planner {
    state: Arc<AppState>,
    principal: Principal,
    tenant: Arc<TenantInfo>,
    zone: Clock,
    timezone: Value,
    filters: Value,
    now: i64,
    own: HashMap<String, String>,
    _running: Permit,
}

impl Planner {
    async fn new(
        state: Arc<AppState>,
        principal: Principal,
        params: &HashMap<String, String>,
        own: &[&str],
    ) -> Result<Planner, ApiError> {
        principal.require(Scope::Read)?;
        for name in params.keys() {
            if !matches!(name.as_str(), "team" | "campaign" | "timezone") && !own.contains(&name.as_str()) {
                return Err(invalid(name, "unknown parameter"));
            }
        }
        let (base, own) = params_body(params, own, "today")?;
        let _running = state.admission.admit(&principal).await?;
        let tenant = state.store.tenant(principal.tenant_id).await?;
        let timezone = base
            .get("timezone")
            .cloned()
            .unwrap_or_else(|| json!(tenant.settings.timezone));
        let zone = match timezone.as_str() {
            Some(tz) => Clock::new(tz).map_err(|m| invalid("timezone", m))?,
            None => tenant.zone.clone(),
        };
        let now = state.now();
        Ok(Planner {
            state,
            principal,
            tenant,
            zone,
            timezone,
            filters: base.get("filters").cloned().unwrap_or_else(|| json!({})),
            now,
            own,
            _running,
        })
    }

    fn today(&self) -> Date {
        self.zone.date_of(self.now)
    }

    /// Runs one query as `/query` would for this caller.
    async fn run(
        &self,
        measures: &[&str],
        granularity: Option<&str>,
        start: Date,
        end: Date,
    ) -> Result<Value, ApiError> {
        let mut body = json!({"measures": measures, "dimensions": [],
            "filters": self.filters, "timezone": self.timezone,
            "range": {"start": start.to_string(), "end": end.to_string()}});
        if let Some(granularity) = granularity {
            body["granularity"] = json!(granularity);
        }
        self.principal.restrict(&mut body, false)?;
        let asked = body.clone();
        let result = self.state.store.query(self.tenant.id, body, self.now).await?;
        let mut json = result
            .map_err(|f| ApiError::invalid(Code::InvalidRequest, f))?
            .to_json();
        self.principal
            .redact(&mut json, self.tenant.settings.leaderboard_privacy, &asked);
        Ok(json)
    }

    /// Calls carry campaigns in hour cells only: a campaign's history is read by the hour and
    /// each hour spread evenly over its quarters, so it still comes from rollups.
    fn granularity(&self) -> &'static str {
        if self.filters.get("campaign").is_some() {
            "hour"
        } else {
            "15m"
        }
    }

    fn is_holiday(&self, date: Date) -> bool {
        self.tenant.settings.holidays.binary_search(&date.to_string()).is_ok()
    }

    /// Per local day of `[start, end)` and 15-minute slot, the sum of `measures`' values
    /// (missing rows are zero), read from the rollups.
    async fn per_slot(&self, measures: &[&str], start: Date, end: Date) -> Result<Vec<Vec<Vec<f64>>>, ApiError> {
        let granularity = self.granularity();
        let result = self.run(measures, Some(granularity), start, end).await?;
        let days = (end - start).get_days().max(0) as usize;
        let mut out = vec![vec![vec![0.0; SLOTS]; measures.len()]; days];
        let columns: Vec<&str> = result["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let index = |name: &str| columns.iter().position(|c| *c == name);
        let time = index("time");
        for row in result["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
        {
            let Some((date, slot)) = time.and_then(|t| row[t].as_str()).and_then(local_slot) else {
                continue;
            };
            let Ok(day) = usize::try_from((date - start).get_days()) else {
                continue;
            };
            if day >= days {
                continue;
            }
            for (m, name) in measures.iter().enumerate() {
                let value = index(name).and_then(|i| row[i].as_f64()).unwrap_or(0.0);
                if granularity == "hour" {
                    for quarter in out[day][m].iter_mut().skip(slot).take(4) {
                        *quarter += value / 4.0;
                    }
                } else {
                    out[day][m][slot] += value;
                }
            }
        }
        Ok(out)
    }

    /// The local days `[end − weeks, end)` with their calls and handle time per slot, from the
    /// first whole day with calls: a tenant's empty weeks before its first call would read as
    /// closed, and the day of its first call, which data rarely covers from midnight, as a slump
    /// (it skews the daily model's start: on the demo, WAPE 0.170 with it, 0.144 without).
    async fn history(&self, end: Date, weeks: i64) -> Result<Vec<Day>, ApiError> {
        let start = end
            .checked_sub((7 * weeks).days())
            .map_err(|_| invalid("date", dialboard_engine::clock::out_of_range_message()))?;
        let slots = self.per_slot(&["total_calls", "total_handle_time"], start, end).await?;
        let mut days: Vec<Day> = forecast::dates(start, slots.len())
            .into_iter()
            .zip(slots)
            .map(|(date, mut values)| Day {
                date,
                holiday: self.is_holiday(date),
                handle_seconds: values.pop().unwrap_or_default(),
                calls: values.pop().unwrap_or_default(),
            })
            .collect();
        let first_whole_day = match days.iter().position(|d| d.calls.iter().any(|c| *c > 0.0)) {
            // Data from the window's first day on: that day is as whole as any.
            Some(0) => 0,
            Some(first) if first + 1 < days.len() => first + 1,
            Some(only) => only,
            None => days.len().saturating_sub(1),
        };
        days.drain(..first_whole_day);
        Ok(days)
    }

    /// The callers' mean patience over the local days `[end − weeks, end)`, from the rollups'
    /// abandoned calls and total wait (`staffing::estimated_patience`).
    async fn patience(&self, end: Date, weeks: i64) -> Result<answers::Patience, ApiError> {
        let start = end
            .checked_sub((7 * weeks).days())
            .map_err(|_| invalid("date", dialboard_engine::clock::out_of_range_message()))?;
        let totals = self
            .run(&["abandoned_calls", "total_wait_time"], None, start, end)
            .await?["totals"]
            .clone();
        let abandons = totals["abandoned_calls"].as_f64().unwrap_or(0.0).max(0.0) as u64;
        let waited = totals["total_wait_time"].as_f64().unwrap_or(0.0);
        Ok(answers::Patience {
            seconds: staffing::estimated_patience(waited, abandons),
            source: "data".into(),
            abandoned_calls: Some(abandons),
            total_wait_seconds: Some(waited),
            from: Some(start.to_string()),
            until: Some(end.to_string()),
        })
    }

    /// The 15-minute buckets of a local date: each one's start and slot of the day.
    fn buckets(&self, date: Date) -> Vec<(i64, usize)> {
        let (mut t, end) = (
            self.zone.date_start(date),
            self.zone.date_start(date.tomorrow().unwrap_or(date)),
        );
        let mut out = Vec::new();
        while t < end {
            let z = self.zone.zoned(t);
            out.push((t, z.hour() as usize * 4 + z.minute() as usize / 15));
            t = self.zone.next_bucket_start(Granularity::Quarter, t);
        }
        out
    }

    fn own_param(&self, name: &str) -> Option<&str> {
        self.own.get(name).map(String::as_str)
    }
}

/// `2026-03-01T09:15:00-05:00` → (2026-03-01, slot 37): a bucket's local date and quarter.
fn local_slot(time: &str) -> Option<(Date, usize)> {
    let date: Date = time.get(..10)?.parse().ok()?;
    let hour: usize = time.get(11..13)?.parse().ok()?;
    let minute: usize = time.get(14..16)?.parse().ok()?;
    Some((date, (hour * 4 + minute / 15).min(SLOTS - 1)))
}

/// A whole-number parameter within `range`, or `default`.
fn whole(p: &Planner, name: &str, range: std::ops::RangeInclusive<i64>, default: i64) -> Result<i64, ApiError> {
    match p.own_param(name) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            invalid(
                name,
                format!(
                    "must be a whole number from {} to {}, not {v:?}",
                    range.start(),
                    range.end()
                ),
            )
        }),
    }
}

/// `GET /analytics/forecast?days=7`: today and the next days per 15 minutes, learned from the
/// last eight weeks up to yesterday, with the last four weeks' backtest.
async fn forecast_view(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(p): Params,
) -> Result<Json<answers::ForecastView>, ApiError> {
    let planner = Planner::new(state, principal, &p, &["days"]).await?;
    let days = whole(&planner, "days", 1..=MAX_DAYS, 7)?;
    Ok(Json(forecast_of(&planner, days).await?))
}

/// The forecast view's answer, without HTTP.
pub async fn forecast_of(p: &Planner, days: i64) -> Result<answers::ForecastView, ApiError> {
    let today = p.today();
    let history = p.history(today, HISTORY_WEEKS).await?;
    let model = Model::fit(&history);
    let b = forecast::backtest(&history, BACKTEST_WEEKS);
    let days = forecast::dates(today, days as usize)
        .into_iter()
        .map(|date| {
            let day = model.day(date, p.is_holiday(date));
            let intervals = p
                .buckets(date)
                .into_iter()
                .map(|(t, slot)| {
                    let i = day.intervals[slot];
                    answers::ForecastInterval {
                        start: p.zone.format(t),
                        calls: i.calls,
                        low: i.low,
                        high: i.high,
                        aht_seconds: i.aht_seconds,
                    }
                })
                .collect();
            answers::ForecastDay {
                date: date.to_string(),
                holiday: day.holiday,
                calls: day.calls,
                intervals,
            }
        })
        .collect();
    Ok(answers::ForecastView {
        // A query parameter or the tenant's setting: always text.
        timezone: p.timezone.as_str().unwrap_or_default().to_string(),
        history: answers::History {
            start: history.first().map(|d| d.date.to_string()),
            end: today.to_string(),
        },
        granularity: p.granularity().to_string(),
        interval_level: forecast::INTERVAL_LEVEL,
        days,
        backtest: answers::Backtest {
            weeks: b.weeks as i64,
            wape: b.wape,
            mase: b.mase,
            baseline: "seasonal_naive_same_interval_last_week".into(),
            baseline_wape: b.baseline_wape,
            baseline_mase: b.baseline_mase,
            interval_coverage: b.interval_coverage,
            beats_baseline: b.wape.zip(b.baseline_wape).map(|(w, n)| w < n),
        },
    })
}

/// A percent parameter (`80` for 80%) within `(low, high)` (bounds included where said), as a
/// fraction.
fn percent(
    p: &HashMap<String, String>,
    name: &str,
    default: f64,
    low: f64,
    high: f64,
    high_included: bool,
) -> Result<f64, ApiError> {
    let Some(v) = p.get(name) else { return Ok(default) };
    let ok = |x: &f64| x.is_finite() && *x >= low && (*x < high || (high_included && *x == high));
    let bound = if high_included { "≤" } else { "<" };
    v.parse::<f64>().ok().filter(ok).map(|x| x / 100.0).ok_or_else(|| {
        invalid(
            name,
            format!("must be a percent from {low} to {bound} {high}, not {v:?}"),
        )
    })
}

/// A positive number of seconds.
fn seconds(p: &HashMap<String, String>, name: &str) -> Result<Option<f64>, ApiError> {
    p.get(name)
        .map(|v| {
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x > 0.0 && *x <= 86_400.0)
                .ok_or_else(|| {
                    invalid(
                        name,
                        format!("must be a number of seconds above 0 and at most 86400, not {v:?}"),
                    )
                })
        })
        .transpose()
}

/// The service target of a request: `service_level` (percent answered within `target_seconds`,
/// 80 and 20 by default), `max_occupancy` (percent, 85), `shrinkage` (percent, 30) and, for
/// Erlang A, `patience_seconds`.
fn target(p: &HashMap<String, String>) -> Result<Target, ApiError> {
    let d = Target::default();
    let service_level = percent(p, "service_level", d.service_level, 0.0, 100.0, false)?;
    if service_level <= 0.0 {
        return Err(invalid("service_level", "must be above 0"));
    }
    let max_occupancy = percent(p, "max_occupancy", d.max_occupancy, 1.0, 100.0, true)?;
    Ok(Target {
        service_level,
        target_seconds: seconds(p, "target_seconds")?.unwrap_or(d.target_seconds),
        max_occupancy,
        shrinkage: percent(p, "shrinkage", d.shrinkage, 0.0, 100.0, false)?,
        patience_seconds: seconds(p, "patience_seconds")?,
    })
}

fn outcome(s: &staffing::Staffing, traffic: f64) -> answers::Outcome {
    let o = &s.outcome;
    answers::Outcome {
        agents: s.agents,
        scheduled_agents: s.scheduled_agents,
        traffic_erlangs: traffic,
        probability_wait: o.probability_wait,
        service_level: o.service_level * 100.0,
        // Infinite when no number of agents answers the calls.
        asa_seconds: o.asa_seconds.is_finite().then_some(o.asa_seconds),
        occupancy: o.occupancy * 100.0,
        abandon_rate: o.abandon_probability.map(|a| a * 100.0),
    }
}

fn model_name(t: &Target) -> &'static str {
    if t.patience_seconds.is_some() {
        "erlang_a"
    } else {
        "erlang_c"
    }
}

/// `GET /analytics/erlang?calls_per_hour=&aht_seconds=…`: the calculator. With `agents`, the
/// outcome of that many agents instead of the fewest that meet the target.
async fn erlang_view(principal: Principal, Query(p): Params) -> Result<Json<answers::ErlangAnswer>, ApiError> {
    principal.require(Scope::Read)?;
    const KNOWN: [&str; 8] = [
        "calls_per_hour",
        "aht_seconds",
        "target_seconds",
        "service_level",
        "max_occupancy",
        "shrinkage",
        "patience_seconds",
        "agents",
    ];
    if let Some(unknown) = p.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(invalid(
            unknown,
            format!("unknown parameter; known: {}", KNOWN.join(", ")),
        ));
    }
    let calls_per_hour = match p.get("calls_per_hour").map(|v| v.parse::<f64>()) {
        Some(Ok(x)) if x.is_finite() && (0.0..=1_000_000.0).contains(&x) => x,
        Some(_) => return Err(invalid("calls_per_hour", "must be a number from 0 to 1000000")),
        None => return Err(invalid("calls_per_hour", "is required")),
    };
    let aht_seconds = seconds(&p, "aht_seconds")?.ok_or_else(|| invalid("aht_seconds", "is required"))?;
    let target = target(&p)?;
    let load = Load {
        calls_per_hour,
        aht_seconds,
    };
    if load.traffic() > 50_000.0 {
        return Err(invalid(
            "calls_per_hour",
            "more than 50,000 Erlangs of traffic is out of this calculator's range",
        ));
    }
    let result = match p.get("agents") {
        Some(v) => {
            let agents: u32 = v
                .parse()
                .ok()
                .filter(|n| *n <= 100_000)
                .ok_or_else(|| invalid("agents", "must be a whole number from 0 to 100000"))?;
            staffing::Staffing {
                agents,
                scheduled_agents: staffing::scheduled(agents, target.shrinkage),
                outcome: staffing::outcome(agents, load, &target),
            }
        }
        None => staffing::staff(load, &target),
    };
    Ok(Json(answers::ErlangAnswer {
        outcome: outcome(&result, load.traffic()),
        model: model_name(&target).into(),
    }))
}

/// `GET /analytics/staffing?date=&service_level=&target_seconds=&max_occupancy=&shrinkage=&patience_seconds=`.
async fn staffing_view(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Query(p): Params,
) -> Result<Json<answers::StaffingView>, ApiError> {
    const OWN: [&str; 6] = [
        "date",
        "service_level",
        "target_seconds",
        "max_occupancy",
        "shrinkage",
        "patience_seconds",
    ];
    // `patience_seconds`: a number, `data` (the default: estimated from the calls) or `none`
    // (Erlang C: callers never abandon).
    let mut numbers = p.clone();
    let patience = match numbers.get("patience_seconds").map(String::as_str) {
        None | Some("data") => Patience::FromData,
        Some("none") => Patience::None,
        Some(_) => Patience::Given,
    };
    if patience != Patience::Given {
        numbers.remove("patience_seconds");
    }
    let target = target(&numbers)?;
    let planner = Planner::new(state, principal, &p, &OWN).await?;
    let date = match planner.own_param("date") {
        None => planner.today(),
        Some(d) => dialboard_engine::clock::parse_date(d).map_err(|m| invalid("date", m))?,
    };
    if i64::from((date - planner.today()).get_days()) >= MAX_DAYS {
        return Err(invalid(
            "date",
            format!("must be at most {} days after today", MAX_DAYS - 1),
        ));
    }
    Ok(Json(staffing_of(&planner, date, &target, patience).await?))
}

/// Where the staffing view's patience comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// `patience_seconds` was a number.
    Given,
    /// Estimated from the calls before the day; Erlang C if none abandoned.
    FromData,
    /// Erlang C.
    None,
}

/// The staffing view's answer, without HTTP: `date`'s forecast (learned up to the day before
/// it, or yesterday for a later day; re-forecast from today's calls so far), its actual calls
/// and agents online, and per interval the agents the target needs.
pub async fn staffing_of(
    p: &Planner,
    date: Date,
    target: &Target,
    patience: Patience,
) -> Result<answers::StaffingView, ApiError> {
    let today = p.today();
    let learned_until = date.min(today);
    let history = p.history(learned_until, HISTORY_WEEKS).await?;
    let (target, patience) = match patience {
        Patience::FromData => {
            let estimate = p.patience(learned_until, HISTORY_WEEKS).await?;
            let target = Target {
                patience_seconds: estimate.seconds,
                ..*target
            };
            (target, estimate)
        }
        Patience::Given => (*target, stated_patience(target.patience_seconds, "parameter")),
        Patience::None => (*target, stated_patience(None, "none")),
    };
    let target = &target;
    let planned = Model::fit(&history).day(date, p.is_holiday(date));
    let next = date
        .tomorrow()
        .map_err(|_| invalid("date", dialboard_engine::clock::out_of_range_message()))?;
    let (actual, online) = if date <= today {
        let calls = p.per_slot(&["total_calls", "total_handle_time"], date, next).await?;
        // Agent status carries no campaign: online agents are unknown for one campaign.
        let online = if p.filters.get("campaign").is_some() {
            None
        } else {
            Some(p.per_slot(&["active_hours", "idle_minutes"], date, next).await?)
        };
        (calls.into_iter().next(), online.and_then(|o| o.into_iter().next()))
    } else {
        (None, None)
    };
    let buckets = p.buckets(date);
    // Today: the slots already begun count as seen; the rest are re-forecast from them.
    let elapsed = (date == today).then(|| {
        buckets
            .iter()
            .filter(|(t, _)| *t <= p.now)
            .map(|(_, s)| s + 1)
            .max()
            .unwrap_or(0)
    });
    let current: DayForecast = match (&actual, elapsed) {
        (Some(a), Some(elapsed)) => forecast::reforecast(&planned, &a[0], elapsed),
        _ => planned.clone(),
    };
    let mut peak = (0u32, 0u32);
    let intervals = buckets
        .iter()
        .map(|&(t, slot)| {
            let f = current.intervals[slot];
            let aht = f.aht_seconds.unwrap_or(0.0);
            let load = Load {
                calls_per_hour: f.calls * 4.0,
                aht_seconds: aht.max(1.0),
            };
            let need = staffing::staff(
                if aht > 0.0 {
                    load
                } else {
                    Load {
                        calls_per_hour: 0.0,
                        ..load
                    }
                },
                target,
            );
            peak = (peak.0.max(need.agents), peak.1.max(need.scheduled_agents));
            let begun = t <= p.now;
            let actual_calls = actual.as_ref().filter(|_| begun).map(|a| a[0][slot]);
            let actual_aht = actual
                .as_ref()
                .filter(|a| begun && a[0][slot] > 0.0)
                .map(|a| a[1][slot] / a[0][slot]);
            // Average agents online over the quarter: active (dialing, on call, wrap-up) plus idle.
            let agents_online = online
                .as_ref()
                .filter(|_| begun)
                .map(|o| (o[0][slot] * 60.0 + o[1][slot]) / 15.0);
            answers::StaffingInterval {
                outcome: outcome(&need, load.traffic()),
                start: p.zone.format(t),
                forecast_calls: planned.intervals[slot].calls,
                forecast_low: planned.intervals[slot].low,
                forecast_high: planned.intervals[slot].high,
                // Only the slots still to come are re-forecast.
                reforecast_calls: elapsed.filter(|&e| slot >= e).map(|_| f.calls),
                aht_seconds: f.aht_seconds,
                actual_calls,
                actual_aht_seconds: actual_aht,
                agents_online,
                staffing_gap: agents_online.map(|o| o - f64::from(need.agents)),
            }
        })
        .collect();
    Ok(answers::StaffingView {
        date: date.to_string(),
        // A query parameter or the tenant's setting: always text.
        timezone: p.timezone.as_str().unwrap_or_default().to_string(),
        holiday: planned.holiday,
        model: model_name(target).into(),
        patience,
        target: answers::Target {
            service_level: target.service_level * 100.0,
            target_seconds: target.target_seconds,
            max_occupancy: target.max_occupancy * 100.0,
            shrinkage: target.shrinkage * 100.0,
            patience_seconds: target.patience_seconds,
        },
        intervals,
        totals: answers::StaffingTotals {
            forecast_calls: planned.calls,
            reforecast_calls: elapsed.map(|_| current.calls),
            actual_calls: actual.as_ref().map(|a| a[0].iter().sum::<f64>()),
            peak_agents: peak.0,
            peak_scheduled_agents: peak.1,
        },
    })
}

/// A patience given (or none), not estimated: its seconds and source only.
fn stated_patience(seconds: Option<f64>, source: &str) -> answers::Patience {
    answers::Patience {
        seconds,
        source: source.into(),
        abandoned_calls: None,
        total_wait_seconds: None,
        from: None,
        until: None,
    }
}
