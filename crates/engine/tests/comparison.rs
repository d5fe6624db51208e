//! Comparisons of running periods are like for like (SPEC §4): the compared period runs only as
//! far as the current one has, counted on the local calendar and clock, DST days included.

use dialboard_engine::clock::Clock;
use dialboard_engine::query::{parse_query, AgentTeams, Context, TimeRange};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use serde_json::json;

const ZONE: &str = "Europe/Berlin";

fn instant(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

/// The resolved range and comparison of `preset` compared by `compare` at `now`, formatted in
/// Berlin time.
fn resolve(preset: &str, compare: &str, now: &str) -> ((String, String), (String, String)) {
    let clock = Clock::new(ZONE).unwrap();
    let taxonomy = CompiledTaxonomy::new(&Taxonomy::default());
    let teams = AgentTeams::new();
    let ctx = Context {
        tenant_clock: &clock,
        zone: &clock,
        taxonomy: &taxonomy,
        now: instant(now),
        earliest: None,
        agent_teams: &teams,
    };
    let body = json!({"measures": ["total_calls"], "range": {"preset": preset}, "compare": compare});
    let q = parse_query(&body, &ctx).unwrap();
    let show = |r: TimeRange| (clock.format(r.start), clock.format(r.end));
    (show(q.range), show(q.compare.unwrap()))
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn today_is_compared_with_yesterday_until_the_same_local_time() {
    // 2026-03-29 is 23 hours long in Berlin (02:00 → 03:00); the day before is 24.
    for (now, until) in [
        ("2026-03-29T00:10:00+01:00", "2026-03-28T00:15:00+01:00"),
        ("2026-03-29T11:07:00+02:00", "2026-03-28T11:15:00+01:00"),
        ("2026-03-29T23:50:00+02:00", "2026-03-29T00:00:00+01:00"),
    ] {
        let (range, cmp) = resolve("today", "previous_period", now);
        assert_eq!(
            range,
            pair("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"),
            "{now}"
        );
        assert_eq!(cmp, pair("2026-03-28T00:00:00+01:00", until), "at {now}");
    }
    // The day after the change compares 11:00 with 11:00, not with 10:00 or 12:00.
    let (_, cmp) = resolve("today", "previous_period", "2026-03-30T10:59:00+02:00");
    assert_eq!(cmp, pair("2026-03-29T00:00:00+01:00", "2026-03-29T11:00:00+02:00"));
    // In autumn the long day compares as far into it as today has gone.
    let (_, cmp) = resolve("today", "previous_period", "2026-10-26T09:20:00+01:00");
    assert_eq!(cmp, pair("2026-10-25T00:00:00+02:00", "2026-10-25T09:30:00+01:00"));
}

#[test]
fn periods_to_date_compare_the_same_elapsed_part() {
    // Thursday afternoon: this week so far against last Monday to Thursday at the same time.
    let (range, cmp) = resolve("this_week", "previous_period", "2026-03-26T15:00:00+01:00");
    assert_eq!(range, pair("2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00"));
    assert_eq!(cmp, pair("2026-03-16T00:00:00+01:00", "2026-03-19T15:15:00+01:00"));
    // The tenth of a month against the tenth of the last; the 31st of March against all of
    // February (it has no more).
    let (_, cmp) = resolve("this_month", "previous_period", "2026-03-10T08:00:00+01:00");
    assert_eq!(cmp, pair("2026-02-01T00:00:00+01:00", "2026-02-10T08:15:00+01:00"));
    let (_, cmp) = resolve("this_month", "previous_period", "2026-03-31T08:00:00+02:00");
    assert_eq!(cmp, pair("2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00"));
    let (_, cmp) = resolve("this_quarter", "previous_period", "2026-05-15T12:30:00+02:00");
    assert_eq!(cmp, pair("2026-01-01T00:00:00+01:00", "2026-02-15T12:45:00+01:00"));
    // Same period last year: the same date and time a year before.
    let (_, cmp) = resolve("today", "same_period_last_year", "2026-03-29T11:07:00+02:00");
    assert_eq!(cmp, pair("2025-03-29T00:00:00+01:00", "2025-03-29T11:15:00+01:00"));
    let (_, cmp) = resolve("this_month", "same_period_last_year", "2026-03-10T08:00:00+01:00");
    assert_eq!(cmp, pair("2025-03-01T00:00:00+01:00", "2025-03-10T08:15:00+01:00"));
}

#[test]
fn finished_periods_compare_whole() {
    let (range, cmp) = resolve("yesterday", "previous_period", "2026-03-30T11:07:00+02:00");
    assert_eq!(range, pair("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"));
    assert_eq!(cmp, pair("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00"));
}
