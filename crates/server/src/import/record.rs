//! One line of a CSV file split into fields (RFC 4180 quoting: `"a ""b"", c"`), and the values
//! CDR files hold: local date-times, integers, `clid`s. No IO.
//!
//! A record never spans lines: the CDR writers (Asterisk's `cdr_csv`, FreeSWITCH's
//! `mod_cdr_csv`) write one line per record, so a line cut short by a crash (an open quote)
//! is one broken record, not the start of a field that swallows the rest of the file.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Splits `line` (without its line ending) into `fields`, reusing their allocations.
pub fn split(line: &str, fields: &mut Vec<String>) -> Result<(), String> {
    let mut count = 0;
    let mut next = |fields: &mut Vec<String>| -> usize {
        if count == fields.len() {
            fields.push(String::new());
        }
        fields[count].clear();
        count += 1;
        count - 1
    };
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        let slot = next(fields);
        // A space before an opening quote (FreeSWITCH templates have them) is not the field's.
        let unpadded = i + bytes[i.min(bytes.len())..].iter().take_while(|b| **b == b' ').count();
        if bytes.get(unpadded) == Some(&b'"') {
            i = unpadded;
            i += 1;
            loop {
                let Some(close) = line[i..].find('"') else {
                    return Err(format!("field {}: a quoted field is not closed on its line", slot + 1));
                };
                fields[slot].push_str(&line[i..i + close]);
                i += close + 1;
                if bytes.get(i) == Some(&b'"') {
                    fields[slot].push('"');
                    i += 1;
                } else {
                    break;
                }
            }
            // FreeSWITCH templates may put a space after a comma; anything else is broken.
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(format!("field {}: text after a closing quote", slot + 1)),
            }
        } else {
            let end = line[i..].find(',').map_or(line.len(), |e| i + e);
            fields[slot].push_str(line[i..end].trim_start_matches(' '));
            if end == line.len() {
                break;
            }
            i = end + 1;
        }
    }
    fields.truncate(count);
    Ok(())
}

/// A date-time written `YYYY-MM-DD HH:MM:SS` (or with a `T`) in `zone`, as the instant it names.
/// A time that a DST change repeats is read as the earlier one; one it skips, after the gap.
pub fn local_time(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    let civil: jiff::civil::DateTime = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a date-time YYYY-MM-DD HH:MM:SS"))?;
    zone.to_ambiguous_timestamp(civil)
        .compatible()
        .map_err(|e| format!("'{text}': {e}"))
}

/// An instant as a CDR or a dialer's export writes it: RFC 3339 with an offset, a local
/// date-time in `zone`, or epoch seconds.
pub fn any_time(text: &str, zone: &TimeZone) -> Result<Timestamp, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text.parse().map_err(|_| format!("'{text}' is out of range"))?;
        return Timestamp::from_second(seconds).map_err(|e| format!("'{text}': {e}"));
    }
    if let Ok(t) = text.parse::<Timestamp>() {
        return Ok(t);
    }
    local_time(text, zone).map_err(|_| {
        format!(
            "'{text}' is not a date-time (RFC 3339, YYYY-MM-DD HH:MM:SS in the import's timezone, or epoch seconds)"
        )
    })
}

/// Whole seconds: `185`, `185.0`, or `0:03:05`.
pub fn seconds(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("'{text}' is not a number of seconds");
    if text.contains(':') {
        let mut total = 0i64;
        for part in text.split(':') {
            let n: i64 = part.parse().map_err(|_| bad())?;
            if n < 0 {
                return Err(bad());
            }
            total = total * 60 + n;
        }
        return Ok(total);
    }
    if let Ok(n) = text.parse::<i64>() {
        return if n < 0 { Err(bad()) } else { Ok(n) };
    }
    match text.parse::<f64>() {
        Ok(f) if f >= 0.0 && f.fract() == 0.0 && f < 1e15 => Ok(f as i64),
        _ => Err(bad()),
    }
}

/// A CDR's seconds column (`billsec`): a whole number ≥ 0; empty is 0.
pub fn cdr_seconds(column: &str, text: &str) -> Result<i64, String> {
    match text.trim() {
        "" => Ok(0),
        s => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("{column}: '{s}' is not a number of seconds")),
    }
}

/// Asterisk's `clid`: `"Name" <number>`, `Name <number>`, `<number>` or just a number.
pub fn caller_id(clid: &str) -> (Option<&str>, Option<&str>) {
    let clid = clid.trim();
    let Some(open) = clid.rfind('<') else {
        return (None, (!clid.is_empty()).then_some(clid));
    };
    let number = clid[open + 1..].trim_end_matches('>').trim();
    let name = clid[..open].trim().trim_matches('"').trim();
    (
        (!name.is_empty() && name != number).then_some(name),
        (!number.is_empty()).then_some(number),
    )
}

/// The endpoint a channel name names: `SIP/agent01-0000001a` and `PJSIP/agent01-00000003` →
/// `agent01`; `Local/1001@from-queue-00000012;2` → `1001`.
pub fn channel_peer(channel: &str) -> Option<&str> {
    let rest = channel.split_once('/').map_or(channel, |(_, r)| r);
    let rest = rest.split(';').next().unwrap_or(rest);
    let rest = match rest.rsplit_once('-') {
        Some((peer, suffix)) if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_hexdigit()) => peer,
        _ => rest,
    };
    let rest = rest.split('@').next().unwrap_or(rest);
    (!rest.is_empty()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<String>, String> {
        let mut out = vec!["stale".to_string(); 3];
        split(line, &mut out).map(|_| out)
    }

    #[test]
    fn quoted_fields_with_commas_and_doubled_quotes() {
        assert_eq!(
            fields(r#""","""Ana, Sales"" <5551>",12,"a,b""c""""#).unwrap(),
            vec!["", r#""Ana, Sales" <5551>"#, "12", r#"a,b"c""#]
        );
        assert_eq!(fields("a,,b,").unwrap(), vec!["a", "", "b", ""]);
        assert_eq!(fields(r#""a", "b""#).unwrap(), vec!["a", "b"]);
        assert!(fields(r#""a","b"#).unwrap_err().contains("field 2"));
        assert!(fields(r#""a"x,"b""#).is_err());
    }

    #[test]
    fn clids_and_channels() {
        assert_eq!(
            caller_id(r#""John Smith" <5551234>"#),
            (Some("John Smith"), Some("5551234"))
        );
        assert_eq!(caller_id("<5551234>"), (None, Some("5551234")));
        assert_eq!(caller_id(r#""5551234" <5551234>"#), (None, Some("5551234")));
        assert_eq!(caller_id("5551234"), (None, Some("5551234")));
        assert_eq!(channel_peer("SIP/agent01-0000001a"), Some("agent01"));
        assert_eq!(channel_peer("PJSIP/agent-two-00000003"), Some("agent-two"));
        assert_eq!(channel_peer("Local/1001@from-queue-00000012;2"), Some("1001"));
        assert_eq!(channel_peer(""), None);
    }

    #[test]
    fn times_and_durations() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            local_time("2024-03-04 09:00:00", &berlin).unwrap().to_string(),
            "2024-03-04T08:00:00Z"
        );
        // 02:30 on the spring-forward day does not exist: read after the gap.
        assert_eq!(
            local_time("2024-03-31 02:30:00", &berlin).unwrap().to_string(),
            "2024-03-31T01:30:00Z"
        );
        assert!(local_time("2024-13-04 09:00:00", &berlin).is_err());
        assert_eq!(
            any_time("1709539200", &berlin).unwrap().to_string(),
            "2024-03-04T08:00:00Z"
        );
        assert_eq!(
            any_time("2024-03-04T09:00:00+01:00", &TimeZone::UTC)
                .unwrap()
                .to_string(),
            "2024-03-04T08:00:00Z"
        );
        assert_eq!(seconds("0:03:05"), Ok(185));
        assert_eq!(seconds("185"), Ok(185));
        assert!(seconds("-1").is_err() && seconds("1.5").is_err());
    }
}
