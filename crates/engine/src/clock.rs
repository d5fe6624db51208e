//! Time: instants are UTC epoch seconds (`i64`) inside the engine. Every real UTC offset is a
//! multiple of 15 minutes, so 15-minute UTC cells regroup exactly into local hours and days of
//! any zone; tenant-local hour and day cells are a shortcut for the tenant's own zone.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

pub const QUARTER_HOUR: i64 = 900;

/// The size of a rollup cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    /// 15 minutes, aligned on UTC.
    Quarter = 0,
    /// A local hour of the tenant's zone.
    Hour = 1,
    /// A local day of the tenant's zone (23 or 25 hours on DST days).
    Day = 2,
    /// A local week of the tenant's zone, from Monday (as `Granularity::Week`).
    Week = 3,
    /// A local calendar month of the tenant's zone.
    Month = 4,
}

impl Grain {
    pub const ALL: [Grain; 5] = [Grain::Quarter, Grain::Hour, Grain::Day, Grain::Week, Grain::Month];

    pub fn from_i64(v: i64) -> Option<Grain> {
        Grain::ALL.into_iter().find(|g| *g as i64 == v)
    }

    /// A cell is a bucket of this granularity.
    pub fn granularity(self) -> Granularity {
        match self {
            Grain::Quarter => Granularity::Quarter,
            Grain::Hour => Granularity::Hour,
            Grain::Day => Granularity::Day,
            Grain::Week => Granularity::Week,
            Grain::Month => Granularity::Month,
        }
    }
}

/// The granularity of a query's `time` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Quarter,
    Hour,
    Day,
    Week,
    Month,
    CalendarQuarter,
}

impl Granularity {
    pub fn parse(s: &str) -> Option<Granularity> {
        Some(match s {
            "15m" => Granularity::Quarter,
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            "month" => Granularity::Month,
            "quarter" => Granularity::CalendarQuarter,
            _ => return None,
        })
    }
}

/// A zone, with the arithmetic dialboard needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Clock {
    tz: TimeZone,
}

impl Clock {
    pub fn new(iana: &str) -> Result<Clock, String> {
        let tz = TimeZone::get(iana).map_err(|_| format!("unknown IANA time zone '{iana}'"))?;
        Ok(Clock { tz })
    }

    pub fn utc() -> Clock {
        Clock { tz: TimeZone::UTC }
    }

    /// `t` in this zone. Instants beyond jiff's ±9999 years are clamped to its limits: they
    /// never come from a request (dates are bounded at parsing, see [`FIRST_YEAR`]), and
    /// clamping keeps every function here total instead of panicking.
    pub fn zoned(&self, t: i64) -> Zoned {
        clamped_timestamp(t).to_zoned(self.tz.clone())
    }

    /// `t` in this zone, or [`OutOfRange`] beyond jiff's range.
    pub fn checked_zoned(&self, t: i64) -> Result<Zoned, OutOfRange> {
        Ok(Timestamp::from_second(t)
            .map_err(|_| OutOfRange)?
            .to_zoned(self.tz.clone()))
    }

    pub fn offset_seconds(&self, t: i64) -> i64 {
        self.tz.to_offset(clamped_timestamp(t)).seconds() as i64
    }

    /// Local wall-clock time of `t` as seconds since the local epoch.
    fn local_seconds(&self, t: i64) -> i64 {
        t.saturating_add(self.offset_seconds(t))
    }

    /// Start of the local day containing `t`.
    pub fn day_start(&self, t: i64) -> i64 {
        self.checked_day_start(t).unwrap_or_else(|_| saturated(t))
    }

    pub fn checked_day_start(&self, t: i64) -> Result<i64, OutOfRange> {
        let z = self.checked_zoned(t)?;
        Ok(z.start_of_day().map_err(|_| OutOfRange)?.timestamp().as_second())
    }

    /// Start of the local day after the one containing `t`.
    pub fn next_day_start(&self, t: i64) -> i64 {
        self.checked_next_day_start(t).unwrap_or(i64::MAX)
    }

    pub fn checked_next_day_start(&self, t: i64) -> Result<i64, OutOfRange> {
        self.checked_date_start(self.checked_zoned(t)?.date().tomorrow().map_err(|_| OutOfRange)?)
    }

    /// The first instant of a local date.
    pub fn date_start(&self, d: Date) -> i64 {
        self.checked_date_start(d)
            .unwrap_or(if d.year() < 0 { Timestamp::MIN } else { Timestamp::MAX }.as_second())
    }

    /// The first instant of a local date, or [`OutOfRange`] at the edges of jiff's range.
    pub fn checked_date_start(&self, d: Date) -> Result<i64, OutOfRange> {
        Ok(d.to_zoned(self.tz.clone())
            .map_err(|_| OutOfRange)?
            .timestamp()
            .as_second())
    }

    /// The local date `d` moved by `span` (days, months, years), started in this zone.
    pub fn checked_shifted_date_start(&self, d: Date, span: jiff::Span) -> Result<i64, OutOfRange> {
        self.checked_date_start(d.checked_add(span).map_err(|_| OutOfRange)?)
    }

    pub fn date_of(&self, t: i64) -> Date {
        self.zoned(t).date()
    }

    /// Start of the local hour containing `t`: the instants sharing its wall-clock date, hour
    /// and UTC offset. (Both copies of a repeated DST hour are hours of their own.) Instants
    /// beyond jiff's range count as its limits.
    pub fn hour_start(&self, t: i64) -> i64 {
        let t = saturated(t);
        let offset = self.offset_seconds(t);
        let mut start = (t + offset).div_euclid(3600) * 3600 - offset;
        // A transition inside the hour (e.g. Lord Howe's 30-minute shift) starts a new one.
        while self.offset_seconds(start) != offset {
            start += QUARTER_HOUR;
        }
        start
    }

    /// Start of the local hour after the one containing `t`.
    pub fn next_hour_start(&self, t: i64) -> i64 {
        let start = self.hour_start(t);
        let mut next = start.saturating_add(QUARTER_HOUR);
        while next < start.saturating_add(3600) && self.hour_start(next) == start {
            next = next.saturating_add(QUARTER_HOUR);
        }
        next
    }

    /// Start of the cell of `grain` containing `t`.
    pub fn cell_start(&self, grain: Grain, t: i64) -> i64 {
        self.bucket_start(grain.granularity(), t)
    }

    /// End (exclusive) of the cell of `grain` that starts at `start`.
    pub fn cell_end(&self, grain: Grain, start: i64) -> i64 {
        self.next_bucket_start(grain.granularity(), start)
    }

    /// Start of the `granularity` bucket containing `t` (weeks start on Monday); at the edge
    /// of jiff's range, `t` itself.
    pub fn bucket_start(&self, g: Granularity, t: i64) -> i64 {
        self.checked_bucket_start(g, t).unwrap_or_else(|_| saturated(t))
    }

    pub fn checked_bucket_start(&self, g: Granularity, t: i64) -> Result<i64, OutOfRange> {
        Ok(match g {
            Granularity::Quarter => t.div_euclid(QUARTER_HOUR).checked_mul(QUARTER_HOUR).ok_or(OutOfRange)?,
            Granularity::Hour => {
                // Only the range check of `checked_zoned` (its one error): the zoned time it
                // made (one more offset lookup, the civil time, a count on the zone) went
                // unused, for every call ingested.
                Timestamp::from_second(t).map_err(|_| OutOfRange)?;
                self.hour_start(t)
            }
            Granularity::Day => self.checked_day_start(t)?,
            Granularity::Week => {
                let d = self.checked_zoned(t)?.date();
                let back = d.weekday().to_monday_zero_offset() as i64;
                self.checked_shifted_date_start(d, (-back).days())?
            }
            Granularity::Month => self.checked_date_start(self.checked_zoned(t)?.date().first_of_month())?,
            Granularity::CalendarQuarter => {
                let d = self.checked_zoned(t)?.date();
                let month = (d.month() - 1) / 3 * 3 + 1;
                self.checked_date_start(Date::new(d.year(), month, 1).map_err(|_| OutOfRange)?)?
            }
        })
    }

    /// Start of the `granularity` bucket after the one containing `t`; at the edge of jiff's
    /// range, `i64::MAX` (no later bucket), so loops over buckets still end.
    pub fn next_bucket_start(&self, g: Granularity, t: i64) -> i64 {
        self.checked_next_bucket_start(g, t).unwrap_or(i64::MAX)
    }

    pub fn checked_next_bucket_start(&self, g: Granularity, t: i64) -> Result<i64, OutOfRange> {
        let start = self.checked_bucket_start(g, t)?;
        let date = || Ok::<_, OutOfRange>(self.checked_zoned(start)?.date());
        match g {
            Granularity::Quarter => start.checked_add(QUARTER_HOUR).ok_or(OutOfRange),
            Granularity::Hour => {
                self.checked_zoned(start.saturating_add(3600))?;
                Ok(self.next_hour_start(start))
            }
            Granularity::Day => self.checked_next_day_start(start),
            Granularity::Week => self.checked_shifted_date_start(date()?, 7.days()),
            Granularity::Month => self.checked_shifted_date_start(date()?, 1.month()),
            Granularity::CalendarQuarter => self.checked_shifted_date_start(date()?, 3.months()),
        }
    }

    /// Local hour of day, 0–23.
    pub fn hour_of_day(&self, t: i64) -> i64 {
        self.local_seconds(t).rem_euclid(86_400) / 3600
    }

    /// ISO day of week, Monday = 1 … Sunday = 7.
    pub fn day_of_week(&self, t: i64) -> i64 {
        match self.date_of(t).weekday() {
            Weekday::Monday => 1,
            Weekday::Tuesday => 2,
            Weekday::Wednesday => 3,
            Weekday::Thursday => 4,
            Weekday::Friday => 5,
            Weekday::Saturday => 6,
            Weekday::Sunday => 7,
        }
    }

    /// RFC 3339 with the local offset, e.g. `2026-03-01T00:00:00-05:00`.
    pub fn format(&self, t: i64) -> String {
        let z = self.zoned(t);
        let offset = z.offset().seconds();
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        format!(
            "{}{}{:02}:{:02}",
            z.datetime().strftime("%Y-%m-%dT%H:%M:%S"),
            sign,
            abs / 3600,
            abs % 3600 / 60
        )
    }

    /// Whether every offset this zone uses between `from` and `to` is a multiple of 15 minutes,
    /// which cell regrouping relies on (all zones in use today; not some historic mean times).
    pub fn quarter_aligned_between(&self, from: i64, to: i64) -> bool {
        let mut t = from;
        loop {
            if self.offset_seconds(t) % QUARTER_HOUR != 0 {
                return false;
            }
            match self.tz.following(clamped_timestamp(t)).next() {
                Some(tr) if tr.timestamp().as_second() < to => t = tr.timestamp().as_second(),
                _ => return true,
            }
        }
    }
}

/// A date or instant beyond what the calendar arithmetic can represent (jiff's ±9999 years).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

fn clamped_timestamp(t: i64) -> Timestamp {
    let t = t.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `t` clamped into jiff's range: what the total functions answer at its edges.
fn saturated(t: i64) -> i64 {
    t.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second())
}

/// The years dates and timestamps may fall in, wherever they come from (events, query ranges,
/// views' `date`). Every calendar step the engine takes from such a date (a previous period,
/// a year back, the next bucket) stays far inside jiff's ±9999 years and `i64` nanoseconds
/// (1678–2261), so the zone arithmetic below cannot fail on anything a request can reach.
pub const FIRST_YEAR: i16 = 1970;
pub const LAST_YEAR: i16 = 2200;

/// What a field outside [`FIRST_YEAR`]..=[`LAST_YEAR`] is told.
pub fn out_of_range_message() -> String {
    format!("must fall between {FIRST_YEAR}-01-01 and {LAST_YEAR}-12-31")
}

/// `d` if its year is supported (see [`FIRST_YEAR`]).
pub fn supported_date(d: Date) -> Result<Date, String> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&d.year()) {
        Ok(d)
    } else {
        Err(out_of_range_message())
    }
}

/// Parses a local date `YYYY-MM-DD` within the supported years.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let d: Date = s.parse().map_err(|_| "must be a date (YYYY-MM-DD)".to_string())?;
    supported_date(d)
}

/// Parses an RFC 3339 timestamp with an offset into epoch nanoseconds, within the supported
/// years (in UTC).
pub fn parse_rfc3339_nanos(s: &str) -> Result<i64, String> {
    let ts: Timestamp = s
        .parse()
        .map_err(|_| "must be an RFC 3339 timestamp with an offset, e.g. 2026-03-01T09:30:00Z".to_string())?;
    supported_date(ts.to_zoned(TimeZone::UTC).date())?;
    i64::try_from(ts.as_nanosecond()).map_err(|_| out_of_range_message())
}

pub fn nanos_to_seconds(nanos: i64) -> i64 {
    nanos.div_euclid(1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_second()
    }

    #[test]
    fn dst_days_are_23_and_25_hours() {
        let ny = Clock::new("America/New_York").unwrap();
        let spring = ny.date_start(Date::new(2026, 3, 8).unwrap());
        assert_eq!(ny.next_day_start(spring) - spring, 23 * 3600);
        let fall = ny.date_start(Date::new(2026, 11, 1).unwrap());
        assert_eq!(ny.next_day_start(fall) - fall, 25 * 3600);
        // The repeated 01:00 hour is two hours of their own.
        let first_one = at("2026-11-01T05:00:00Z");
        assert_eq!(ny.hour_start(first_one + 1800), first_one);
        assert_eq!(ny.next_hour_start(first_one), first_one + 3600);
        assert_eq!(ny.hour_of_day(first_one + 3600), 1);
    }

    #[test]
    fn odd_offsets_align_on_quarters() {
        let kathmandu = Clock::new("Asia/Kathmandu").unwrap(); // +05:45
        let t = at("2026-03-01T10:20:00Z"); // 16:05 local
        assert_eq!(kathmandu.hour_start(t), at("2026-03-01T10:15:00Z"));
        assert_eq!(kathmandu.hour_of_day(t), 16);
        assert_eq!(kathmandu.day_start(t), at("2026-02-28T18:15:00Z"));
        let adelaide = Clock::new("Australia/Adelaide").unwrap(); // +10:30 / +09:30
        assert_eq!(
            adelaide.hour_start(at("2026-06-01T00:10:00Z")),
            at("2026-05-31T23:30:00Z")
        );
        assert_eq!(kathmandu.format(t), "2026-03-01T16:05:00+05:45");
        assert!(kathmandu.quarter_aligned_between(at("2000-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")));
    }

    #[test]
    fn lord_howe_half_hour_shift() {
        let lh = Clock::new("Australia/Lord_Howe").unwrap();
        // 2026-04-05 02:00 +11 becomes 01:30 +10:30: the hour 01:00–02:00 +11 ends at the shift.
        let shift = at("2026-04-04T15:00:00Z");
        assert_eq!(lh.hour_start(shift - 600), at("2026-04-04T14:00:00Z"));
        assert_eq!(lh.next_hour_start(shift - 600), shift);
        assert_eq!(lh.hour_start(shift), shift);
    }

    #[test]
    fn weeks_months_quarters() {
        let utc = Clock::utc();
        let t = at("2026-03-19T12:00:00Z"); // a Thursday
        assert_eq!(utc.bucket_start(Granularity::Week, t), at("2026-03-16T00:00:00Z"));
        assert_eq!(utc.next_bucket_start(Granularity::Week, t), at("2026-03-23T00:00:00Z"));
        assert_eq!(utc.bucket_start(Granularity::Month, t), at("2026-03-01T00:00:00Z"));
        assert_eq!(
            utc.bucket_start(Granularity::CalendarQuarter, t),
            at("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            utc.next_bucket_start(Granularity::CalendarQuarter, t),
            at("2026-04-01T00:00:00Z")
        );
        assert_eq!(utc.day_of_week(t), 4);
    }
}
