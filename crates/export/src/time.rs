//! Instants shown in a zone, fast enough for a million rows: the zone's offset comes from jiff,
//! the civil fields from integer arithmetic.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// An instant's local wall clock in `zone`.
#[derive(Clone, Copy)]
pub struct Local {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// The zone's offset at that instant, in seconds east of UTC.
    pub offset: i32,
    /// Local seconds since 1970-01-01T00:00 (the instant plus its offset).
    pub local_seconds: i64,
}

pub fn local(epoch_seconds: i64, zone: &TimeZone) -> Local {
    let offset = Timestamp::from_second(epoch_seconds)
        .map(|t| zone.to_offset(t).seconds())
        .unwrap_or(0);
    let local_seconds = epoch_seconds + i64::from(offset);
    let (days, secs) = (local_seconds.div_euclid(86_400), local_seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    Local {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
        offset,
        local_seconds,
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Appends `n` with at least `width` digits, zero-padded (a million rows' dates and times
/// without the formatting machinery or an allocation each).
fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    at = at.min(digits.len() - width);
    out.push_str(std::str::from_utf8(&digits[at..]).expect("ASCII digits"));
}

impl Local {
    pub fn date(&self) -> String {
        let mut out = String::with_capacity(10);
        self.push_date(&mut out);
        out
    }

    pub fn time(&self) -> String {
        let mut out = String::with_capacity(8);
        self.push_time(&mut out);
        out
    }

    /// RFC 3339 with the zone's offset, as the API writes times ([`Local::push_rfc3339`]).
    #[cfg(test)]
    pub fn rfc3339(&self) -> String {
        let mut out = String::with_capacity(25);
        self.push_rfc3339(&mut out);
        out
    }

    /// Appends `YYYY-MM-DD`.
    pub fn push_date(&self, out: &mut String) {
        if self.year < 0 {
            out.push('-');
        }
        push_padded(out, self.year.unsigned_abs(), 4);
        out.push('-');
        push_padded(out, self.month.into(), 2);
        out.push('-');
        push_padded(out, self.day.into(), 2);
    }

    /// Appends `hh:mm:ss`.
    pub fn push_time(&self, out: &mut String) {
        push_padded(out, self.hour.into(), 2);
        out.push(':');
        push_padded(out, self.minute.into(), 2);
        out.push(':');
        push_padded(out, self.second.into(), 2);
    }

    /// Appends RFC 3339 with the zone's offset, as the API writes times.
    pub fn push_rfc3339(&self, out: &mut String) {
        self.push_date(out);
        out.push('T');
        self.push_time(out);
        out.push(if self.offset < 0 { '-' } else { '+' });
        let off = self.offset.unsigned_abs();
        push_padded(out, (off / 3600).into(), 2);
        out.push(':');
        push_padded(out, (off / 60 % 60).into(), 2);
    }

    /// Excel's serial date-time (days since 1899-12-30, fraction of the day), of the local
    /// wall clock: spreadsheets have no zones.
    pub fn excel_serial(&self) -> f64 {
        self.local_seconds as f64 / 86_400.0 + 25_569.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_match_jiff_across_dst() {
        let zone = TimeZone::get("America/New_York").unwrap();
        for s in (1_709_000_000i64..1_712_000_000).step_by(3_593) {
            let z = Timestamp::from_second(s).unwrap().to_zoned(zone.clone());
            assert_eq!(
                local(s, &zone).rfc3339(),
                z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
            );
        }
    }

    #[test]
    fn dates_and_times_are_zero_padded_as_iso_8601() {
        let t = Local {
            year: 987,
            month: 3,
            day: 4,
            hour: 5,
            minute: 6,
            second: 7,
            offset: -(9 * 3600 + 30 * 60),
            local_seconds: 0,
        };
        assert_eq!(t.rfc3339(), "0987-03-04T05:06:07-09:30");
        let t = Local {
            year: 12_026,
            month: 12,
            day: 31,
            hour: 23,
            minute: 59,
            second: 58,
            offset: 0,
            local_seconds: 0,
        };
        assert_eq!(
            (t.date(), t.time(), t.rfc3339()),
            (
                "12026-12-31".into(),
                "23:59:58".into(),
                "12026-12-31T23:59:58+00:00".into()
            )
        );
    }

    #[test]
    fn excel_serial_of_a_known_day() {
        // 2026-03-01T12:00 UTC is serial 46082.5.
        let t = Timestamp::from_second(1_772_366_400).unwrap();
        assert_eq!(t.to_string(), "2026-03-01T12:00:00Z");
        assert_eq!(local(t.as_second(), &TimeZone::UTC).excel_serial(), 46_082.5);
    }
}
