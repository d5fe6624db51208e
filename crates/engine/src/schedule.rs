//! When a schedule runs (SPEC §7): daily, weekdays, weekly on chosen days, monthly on a day or
//! the last day, or a cron expression, at a local time in an IANA zone. No IO: the next run
//! after an instant is a pure function, so the property tests below walk DST changes.
//!
//! Every frequency becomes a cron pattern evaluated by croner in the zone, which handles the
//! two DST cases as SPEC §7 asks: a local time the clocks skip runs once at the first valid
//! instant after the gap, and a local time that happens twice (clocks going back) runs once,
//! at its first occurrence.

use crate::FieldError;
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde_json::Value;

/// How often.
#[derive(Debug, Clone, PartialEq)]
pub enum Frequency {
    Daily,
    /// Monday to Friday.
    Weekdays,
    /// On these days of the week (0 = Sunday … 6 = Saturday).
    Weekly(Vec<u8>),
    /// On this day of the month (1–28, so every month has it) …
    Monthly(u8),
    /// … or on its last day.
    MonthlyLastDay,
    /// A five-field cron expression (minute hour day-of-month month day-of-week), which also
    /// gives the time of day.
    Cron(String),
}

/// A schedule's recurrence: a frequency at a local time in a zone.
#[derive(Debug, Clone)]
pub struct Recurrence {
    pub frequency: Frequency,
    /// Local hour and minute (unused by `Cron`, whose expression has its own).
    pub hour: u8,
    pub minute: u8,
    pub timezone: String,
    zone: TimeZone,
    cron: Cron,
}

const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Recurrence {
    /// Reads `{"frequency", "time": "HH:MM", "timezone", "days": [...], "day_of_month": n|"last",
    /// "cron": "…"}`; every problem names its field under `prefix` (e.g. `recurrence.time`).
    pub fn parse(body: &Value, prefix: &str) -> Result<Recurrence, Vec<FieldError>> {
        let mut errors = Vec::new();
        let field = |name: &str| format!("{prefix}{name}");
        let text = |name: &str| body.get(name).and_then(Value::as_str);
        let timezone = text("timezone").unwrap_or("").to_string();
        let zone = match TimeZone::get(&timezone) {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push(FieldError::new(
                    field("timezone"),
                    "must be an IANA time zone, e.g. Europe/London",
                ));
                None
            }
        };
        let frequency = match text("frequency") {
            Some("daily") => Some(Frequency::Daily),
            Some("weekdays") => Some(Frequency::Weekdays),
            Some("weekly") => match body.get("days").and_then(Value::as_array) {
                Some(days) if !days.is_empty() => {
                    let parsed: Option<Vec<u8>> = days
                        .iter()
                        .map(|d| {
                            d.as_str()
                                .and_then(|d| DAYS.iter().position(|n| *n == d))
                                .map(|i| i as u8)
                        })
                        .collect();
                    match parsed {
                        Some(mut days) => {
                            days.sort_unstable();
                            days.dedup();
                            Some(Frequency::Weekly(days))
                        }
                        None => {
                            errors.push(FieldError::new(
                                field("days"),
                                "each day is one of sun, mon, tue, wed, thu, fri, sat",
                            ));
                            None
                        }
                    }
                }
                _ => {
                    errors.push(FieldError::new(
                        field("days"),
                        "a weekly schedule names at least one day",
                    ));
                    None
                }
            },
            Some("monthly") => match body.get("day_of_month") {
                Some(Value::String(s)) if s == "last" => Some(Frequency::MonthlyLastDay),
                Some(Value::Number(n)) if n.as_u64().is_some_and(|n| (1..=28).contains(&n)) => {
                    Some(Frequency::Monthly(n.as_u64().unwrap() as u8))
                }
                _ => {
                    errors.push(FieldError::new(
                        field("day_of_month"),
                        "a day from 1 to 28 (every month has it), or \"last\"",
                    ));
                    None
                }
            },
            Some("cron") => Some(Frequency::Cron(text("cron").unwrap_or("").trim().to_string())),
            _ => {
                errors.push(FieldError::new(
                    field("frequency"),
                    "one of daily, weekdays, weekly, monthly, cron",
                ));
                None
            }
        };
        let (mut hour, mut minute) = (0, 0);
        if !matches!(frequency, Some(Frequency::Cron(_)) | None) {
            match text("time").and_then(parse_time) {
                Some((h, m)) => (hour, minute) = (h, m),
                None => errors.push(FieldError::new(field("time"), "a local time HH:MM, e.g. 08:00")),
            }
        }
        let cron = frequency.as_ref().and_then(|f| {
            let pattern = pattern(f, hour, minute);
            let parsed = CronParser::builder()
                .seconds(Seconds::Disallowed)
                .build()
                .parse(&pattern);
            match parsed {
                Ok(cron) => Some(cron),
                Err(e) => {
                    errors.push(FieldError::new(
                        field("cron"),
                        format!("not a five-field cron expression (minute hour day month weekday): {e}"),
                    ));
                    None
                }
            }
        });
        match (frequency, zone, cron) {
            (Some(frequency), Some(zone), Some(cron)) if errors.is_empty() => Ok(Recurrence {
                frequency,
                hour,
                minute,
                timezone,
                zone,
                cron,
            }),
            _ => Err(errors),
        }
    }

    /// The recurrence as the API shows and stores it (what [`Recurrence::parse`] reads).
    pub fn to_json(&self) -> Value {
        let mut out = serde_json::json!({"timezone": self.timezone});
        let time = format!("{:02}:{:02}", self.hour, self.minute);
        match &self.frequency {
            Frequency::Daily => out["frequency"] = "daily".into(),
            Frequency::Weekdays => out["frequency"] = "weekdays".into(),
            Frequency::Weekly(days) => {
                out["frequency"] = "weekly".into();
                out["days"] = days.iter().map(|d| DAYS[*d as usize]).collect();
            }
            Frequency::Monthly(day) => {
                out["frequency"] = "monthly".into();
                out["day_of_month"] = (*day).into();
            }
            Frequency::MonthlyLastDay => {
                out["frequency"] = "monthly".into();
                out["day_of_month"] = "last".into();
            }
            Frequency::Cron(expression) => {
                out["frequency"] = "cron".into();
                out["cron"] = expression.as_str().into();
                return out;
            }
        }
        out["time"] = time.into();
        out
    }

    /// The first run strictly after `after`, or `None` if the pattern never matches again.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let start = after.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|z: Zoned| z.timestamp())
    }

    /// Every run in `(after, until]`, oldest first, at most `limit` of them.
    pub fn runs_between(&self, after: Timestamp, until: Timestamp, limit: usize) -> Vec<Timestamp> {
        let mut runs = Vec::new();
        let mut at = after;
        while runs.len() < limit {
            match self.next_after(at) {
                Some(next) if next <= until => {
                    runs.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        runs
    }
}

fn parse_time(s: &str) -> Option<(u8, u8)> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u8, u8) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && s.len() == 5).then_some((h, m))
}

fn pattern(frequency: &Frequency, hour: u8, minute: u8) -> String {
    match frequency {
        Frequency::Daily => format!("{minute} {hour} * * *"),
        Frequency::Weekdays => format!("{minute} {hour} * * 1-5"),
        Frequency::Weekly(days) => {
            let days: Vec<String> = days.iter().map(u8::to_string).collect();
            format!("{minute} {hour} * * {}", days.join(","))
        }
        Frequency::Monthly(day) => format!("{minute} {hour} {day} * *"),
        Frequency::MonthlyLastDay => format!("{minute} {hour} L * *"),
        Frequency::Cron(expression) => expression.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, Date};
    use proptest::prelude::*;
    use serde_json::json;

    fn daily(time: &str, zone: &str) -> Recurrence {
        Recurrence::parse(&json!({"frequency": "daily", "time": time, "timezone": zone}), "").unwrap()
    }

    fn at(zone: &str, d: Date, h: i8, m: i8) -> Timestamp {
        d.at(h, m, 0, 0)
            .to_zoned(TimeZone::get(zone).unwrap())
            .unwrap()
            .timestamp()
    }

    fn local(ts: Timestamp, zone: &str) -> jiff::civil::DateTime {
        ts.to_zoned(TimeZone::get(zone).unwrap()).datetime()
    }

    #[test]
    fn a_skipped_time_runs_once_at_the_first_instant_after_the_gap() {
        // New York, 2026-03-08: 02:00 → 03:00.
        let r = daily("02:30", "America/New_York");
        let runs = r.runs_between(
            at("America/New_York", date(2026, 3, 7), 12, 0),
            at("America/New_York", date(2026, 3, 9), 12, 0),
            10,
        );
        let seen: Vec<_> = runs.iter().map(|t| local(*t, "America/New_York")).collect();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].date(), date(2026, 3, 8));
        assert_eq!((seen[0].hour(), seen[0].minute()), (3, 0), "{seen:?}");
        assert_eq!(
            (seen[1].date(), seen[1].hour(), seen[1].minute()),
            (date(2026, 3, 9), 2, 30)
        );
    }

    #[test]
    fn a_repeated_time_runs_once_at_its_first_occurrence() {
        // London, 2026-10-25: 02:00 BST → 01:00 GMT, so 01:30 happens twice.
        let r = daily("01:30", "Europe/London");
        let runs = r.runs_between(
            at("Europe/London", date(2026, 10, 24), 12, 0),
            at("Europe/London", date(2026, 10, 26), 12, 0),
            10,
        );
        assert_eq!(runs.len(), 2, "{runs:?}");
        assert_eq!(runs[0].to_string(), "2026-10-25T00:30:00Z", "the first 01:30 (BST)");
    }

    #[test]
    fn kathmandu_and_lord_howe_offsets_are_respected() {
        let r = daily("08:00", "Asia/Kathmandu");
        let next = r.next_after("2026-06-01T00:00:00Z".parse().unwrap()).unwrap();
        assert_eq!(next.to_string(), "2026-06-01T02:15:00Z", "08:00 at +05:45");
        // Lord Howe moves by half an hour: 2026-10-04 02:00 → 02:30.
        let r = daily("02:15", "Australia/Lord_Howe");
        let runs = r.runs_between(
            at("Australia/Lord_Howe", date(2026, 10, 3), 12, 0),
            at("Australia/Lord_Howe", date(2026, 10, 5), 12, 0),
            10,
        );
        let seen: Vec<_> = runs.iter().map(|t| local(*t, "Australia/Lord_Howe")).collect();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((seen[0].hour(), seen[0].minute()), (2, 30), "{seen:?}");
    }

    #[test]
    fn monthly_last_day_weekly_weekdays_and_cron() {
        let zone = "Europe/Berlin";
        let r = Recurrence::parse(
            &json!({"frequency": "monthly", "day_of_month": "last", "time": "18:00", "timezone": zone}),
            "",
        )
        .unwrap();
        let runs = r.runs_between(
            at(zone, date(2028, 1, 1), 0, 0),
            at(zone, date(2028, 12, 31), 23, 0),
            20,
        );
        let days: Vec<i8> = runs.iter().map(|t| local(*t, zone).day()).collect();
        assert_eq!(
            days,
            [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31],
            "2028 is a leap year"
        );
        let r = Recurrence::parse(
            &json!({"frequency": "weekly", "days": ["mon", "fri", "mon"], "time": "08:00", "timezone": zone}),
            "",
        )
        .unwrap();
        assert_eq!(r.to_json()["days"], json!(["mon", "fri"]));
        let runs = r.runs_between(at(zone, date(2026, 6, 1), 0, 0), at(zone, date(2026, 6, 14), 23, 0), 20);
        let weekdays: Vec<_> = runs
            .iter()
            .map(|t| local(*t, zone).weekday().to_sunday_zero_offset())
            .collect();
        assert_eq!(weekdays, [1, 5, 1, 5]);
        let r = Recurrence::parse(&json!({"frequency": "weekdays", "time": "07:45", "timezone": zone}), "").unwrap();
        assert_eq!(
            r.runs_between(at(zone, date(2026, 6, 1), 0, 0), at(zone, date(2026, 6, 7), 23, 0), 20)
                .len(),
            5
        );
        let r = Recurrence::parse(&json!({"frequency": "cron", "cron": "0 9 * * 1", "timezone": zone}), "").unwrap();
        let next = local(r.next_after(at(zone, date(2026, 6, 2), 0, 0)).unwrap(), zone);
        assert_eq!((next.date(), next.hour()), (date(2026, 6, 8), 9));
        assert_eq!(Recurrence::parse(&r.to_json(), "").unwrap().frequency, r.frequency);
    }

    #[test]
    fn errors_name_the_field() {
        let fields = |body: Value| -> Vec<String> {
            Recurrence::parse(&body, "recurrence.")
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(
            fields(json!({"frequency": "hourly", "time": "08:00", "timezone": "UTC"})),
            ["recurrence.frequency"]
        );
        assert_eq!(
            fields(json!({"frequency": "daily", "time": "8am", "timezone": "Mars/Base"})),
            ["recurrence.timezone", "recurrence.time"]
        );
        assert_eq!(
            fields(json!({"frequency": "weekly", "days": ["funday"], "time": "08:00", "timezone": "UTC"})),
            ["recurrence.days"]
        );
        assert_eq!(
            fields(json!({"frequency": "monthly", "day_of_month": 31, "time": "08:00", "timezone": "UTC"})),
            ["recurrence.day_of_month"]
        );
        assert_eq!(
            fields(json!({"frequency": "cron", "cron": "every day", "timezone": "UTC"})),
            ["recurrence.cron"]
        );
    }

    const ZONES: [&str; 5] = [
        "America/New_York",
        "Europe/London",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "Europe/Berlin",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Across a year (both DST changes), a daily schedule runs exactly once on every local
        /// date, at its local time when that time exists, else at the first instant after it.
        #[test]
        fn daily_runs_once_per_local_date_at_its_time_or_just_after_a_gap(
            zone in prop::sample::select(&ZONES[..]),
            hour in 0u8..24,
            minute in prop::sample::select(&[0u8, 15, 30, 45, 59][..]),
            year in 2025i16..2029,
        ) {
            let time = format!("{hour:02}:{minute:02}");
            let r = daily(&time, zone);
            let tz = TimeZone::get(zone).unwrap();
            let start = at(zone, date(year, 1, 1), 0, 0);
            let end = at(zone, date(year, 12, 31), 0, 0);
            let runs = r.runs_between(start, end, 400);
            let first = date(year, 1, 1);
            let expected_days = (date(year, 12, 31) - first).get_days() as usize;
            // Jan 1 at 00:00 itself is excluded (strictly after), and Dec 31's run is after the end.
            prop_assert_eq!(runs.len(), expected_days);
            let mut previous_date = None;
            for run in &runs {
                let z = run.to_zoned(tz.clone());
                let wanted = z.date().at(hour as i8, minute as i8, 0, 0);
                let candidates = tz.to_ambiguous_zoned(wanted);
                if matches!(candidates.offset(), jiff::tz::AmbiguousOffset::Gap { .. }) {
                    // The time does not exist that day: the first instant after the gap.
                    prop_assert!(z.datetime() > wanted && z.datetime() <= wanted + jiff::SignedDuration::from_mins(60), "{} vs {}", z, wanted);
                    let just_before = (*run - jiff::SignedDuration::from_secs(1)).to_zoned(tz.clone()).datetime();
                    prop_assert!(just_before < wanted, "{} is not the first instant after the gap", z);
                } else {
                    // It exists once or twice (clocks going back): its first occurrence.
                    prop_assert_eq!(*run, candidates.earlier().unwrap().timestamp());
                }
                prop_assert!(previous_date != Some(z.date()), "two runs on {}", z.date());
                previous_date = Some(z.date());
            }
        }

        /// Monthly "last day" runs on the last day of every month, in any zone.
        #[test]
        fn monthly_last_day_is_the_last_day_of_every_month(
            zone in prop::sample::select(&ZONES[..]),
            hour in 0u8..24,
            year in 2024i16..2031,
        ) {
            let body = json!({"frequency": "monthly", "day_of_month": "last", "time": format!("{hour:02}:00"), "timezone": zone});
            let r = Recurrence::parse(&body, "").unwrap();
            let runs = r.runs_between(at(zone, date(year, 1, 1), 0, 0), at(zone, date(year + 1, 1, 1), 0, 0), 20);
            prop_assert_eq!(runs.len(), 12);
            for (month, run) in runs.iter().enumerate() {
                let d = local(*run, zone).date();
                prop_assert_eq!((d.month() as usize, d), (month + 1, d.last_of_month()));
            }
        }
    }
}
