//! The slot parser of `event::parse_event_text` accepts, rejects and stores exactly what the
//! `Value`-tree validation before it did (kept in `legacy/`): the same event, the same raw
//! text, the same errors in the same order — on generated events full of what clients really
//! send wrong: escapes, duplicate keys, numbers for text, nulls, arrays and objects where text
//! goes, unknown keys, keys spelled with escapes, texts that are not objects or not JSON.

mod legacy;

use dialboard_engine::event::{known_fields, parse_event, parse_event_text, ParsedEvent, Rejection, EVENT_TYPES};
use dialboard_engine::taxonomy::{CompiledTaxonomy, Taxonomy};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

/// Every field of SPEC §3, so that each type is generated with its own fields and others'.
fn all_fields() -> Vec<&'static str> {
    let mut fields: Vec<&str> = EVENT_TYPES.iter().flat_map(|t| known_fields(t)).copied().collect();
    fields.sort_unstable();
    fields.dedup();
    fields
}

/// A JSON value as text: mostly the kinds a field expects, often not.
fn value() -> impl Strategy<Value = String> {
    fn quoted(s: &str) -> String {
        serde_json::to_string(s).unwrap()
    }
    prop_oneof![
        // Texts: ids, labels, enum values, dispositions in any case.
        prop::sample::select(vec![
            "a1",
            "c-1",
            "team-2",
            "outbound",
            "inbound",
            "human",
            "Busy",
            "meeting booked",
            "MEETING BOOKED",
            "Maybe",
            "idle",
            "on_call",
            "fax",
            "email",
            "voice",
            "call",
            "csat",
            "lead_stage",
            "",
            " ",
        ])
        .prop_map(quoted),
        // Timestamps, valid and not.
        prop::sample::select(vec![
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:02:07.100Z",
            "2026-03-01T11:00:00+01:00",
            "2026-02-28T09:00:00Z",
            "1969-12-31T23:59:59Z",
            "2201-01-01T00:00:00Z",
            "yesterday",
            "2026-03-01",
        ])
        .prop_map(quoted),
        // Escapes: a text equal to a plain one, a forbidden character, an accent, a quote.
        prop::sample::select(vec![
            r#""a\u0031""#,
            r#""e\u202E1""#,
            r#""\u00e9-1""#,
            r#""say \"hi\"""#,
            r#""line\nbreak""#,
            r#""Busy\u0007""#,
            r#""2026-03-01T10:00:00\u005a""#,
        ])
        .prop_map(str::to_string),
        "[a-z]{250,260}".prop_map(|s| quoted(&s)),
        // Numbers: ids as numbers, durations, scores, fractions, out of range, exponent forms.
        prop::sample::select(vec![
            "0",
            "1",
            "5",
            "7",
            "-3",
            "1.5",
            "0.25",
            "-0.5",
            "100",
            "101",
            "1e3",
            "2.0",
            "18446744073709551615",
            "-9223372036854775808",
            "12345678901234567890.5",
            "1e13",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_string),
        // Arrays and objects, where text, labels or a prospect goes.
        prop::sample::select(vec![
            "[]",
            r#"["vip","x"]"#,
            "[1,2]",
            "{}",
            r#"{"name":"Ana","phone":"+1"}"#,
            r#"{"name":"Ana","blob":"y"}"#,
            r#"{"name":"Ana","name":"Bo"}"#,
            r#"{"a":[{"b":null}]}"#,
        ])
        .prop_map(str::to_string),
    ]
}

/// A key as text: a known field, sometimes spelled with an escape, or a key no type defines.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(all_fields()).prop_map(|k| format!("\"{k}\"")),
        1 => prop::sample::select(all_fields()).prop_map(|k| format!("\"\\u{:04x}{}\"", k.as_bytes()[0], &k[1..])),
        1 => prop::sample::select(vec!["junk", "Call_id", "id ", "types", "extra"]).prop_map(|k| format!("\"{k}\"")),
    ]
}

/// The fields that make a valid event of each type, so that generated events are often
/// accepted (and then kept verbatim or rewritten) rather than always refused.
const VALID: [(&str, &str); 6] = [
    (
        "call",
        r#""call_id":"c1","agent_id":"a1","started_at":"2026-03-01T10:00:00Z","disposition":"Busy""#,
    ),
    ("call_analysis", r#""call_id":"c1","updated_at":"2026-03-01T10:05:00Z""#),
    (
        "agent_status",
        r#""agent_id":"a1","status":"idle","at":"2026-03-01T10:00:00Z""#,
    ),
    (
        "lead_stage",
        r#""contact_id":"k1","stage":"won","at":"2026-03-01T10:00:00Z""#,
    ),
    (
        "conversation",
        r#""conversation_id":"v1","channel":"email","opened_at":"2026-03-01T10:00:00Z""#,
    ),
    ("csat", r#""score":4,"at":"2026-03-01T10:00:00Z""#),
];

/// An event's text: an `id` and `type` (usually valid, sometimes not, missing or repeated),
/// the fields of a valid event of the type or not, and any others, in any order, with any
/// spacing.
fn event() -> impl Strategy<Value = String> {
    let id = prop_oneof![
        6 => Just(r#""e1""#.to_string()),
        1 => value(),
    ];
    let type_name = prop_oneof![
        8 => prop::sample::select(VALID.to_vec()).prop_map(|(t, fields)| (format!("\"{t}\""), Some(fields))),
        1 => prop::sample::select(VALID.to_vec()).prop_map(|(t, _)| (format!("\"{t}\""), None)),
        1 => value().prop_map(|t| (t, None)),
    ];
    (
        prop::option::weighted(0.95, id),
        prop::option::weighted(0.95, type_name),
        prop::collection::vec((key(), value()), 0..6),
        any::<bool>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(id, type_name, fields, spaced, at, valid_at)| {
            let mut members: Vec<String> = fields.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
            if let Some((t, valid)) = type_name {
                if let Some(valid) = valid {
                    members.insert(valid_at.index(members.len() + 1), valid.to_string());
                }
                members.insert(at.index(members.len() + 1), format!("\"type\":{t}"));
            }
            if let Some(id) = id {
                members.insert(0, format!("\"id\":{id}"));
            }
            match spaced {
                true => format!("{{ {} }}\n", members.join(" , ")),
                false => format!("{{{}}}", members.join(",")),
            }
        })
}

/// Texts that are not one event object.
fn not_an_event() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "[1]",
            "\"call\"",
            "null",
            "{",
            "{\"id\":\"e1\",}",
            "{\"id\":\"e1\"} x",
            "{\"id\":\"e\\ud800\"}",
            "{\"id\":1e999}",
        ])
        .prop_map(str::to_string),
        event().prop_map(|e| format!("[{e}]")),
        event().prop_map(|e| e[..e.len() / 2].to_string()),
    ]
}

fn taxonomy() -> CompiledTaxonomy {
    CompiledTaxonomy::new(&Taxonomy::default())
}

/// What a parse leaves, comparably.
fn outcome(parsed: Result<ParsedEvent, Rejection>) -> Result<String, Rejection> {
    parsed.map(|p| format!("{} {:?} {} {:?}", p.id, p.event, p.raw, p.owner))
}

fn same_as_before(text: &str) -> Result<(), TestCaseError> {
    let taxonomy = taxonomy();
    let now = outcome(parse_event_text(text, &taxonomy));
    prop_assert_eq!(&now, &outcome(legacy::parse_event_text(text, &taxonomy)), "{}", text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        prop_assert_eq!(
            outcome(parse_event(&value, &taxonomy)),
            outcome(legacy::parse_event(&value, &taxonomy)),
            "{}",
            text
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn events_parse_as_they_did(text in event()) {
        same_as_before(&text)?;
    }

    #[test]
    fn texts_that_are_no_event_are_refused_as_they_were(text in not_an_event()) {
        same_as_before(&text)?;
    }
}

/// The generator reaches the cases that matter: accepted events of every type, kept verbatim
/// and rewritten, and rejections — else the properties above could pass on nothing.
#[test]
fn the_generated_events_cover_acceptance_and_rejection() {
    let taxonomy = taxonomy();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = event();
    let (mut verbatim, mut rewritten, mut rejected) = (0, 0, 0);
    let mut types = std::collections::BTreeSet::new();
    for _ in 0..20_000 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        match parse_event_text(&text, &taxonomy) {
            Ok(p) if p.raw == text => {
                verbatim += 1;
                types.insert(p.event.type_name());
            }
            Ok(_) => rewritten += 1,
            Err(_) => rejected += 1,
        }
    }
    assert!(
        verbatim > 0 && rewritten > 0 && rejected > 0,
        "{verbatim} {rewritten} {rejected}"
    );
    assert_eq!(types.len(), EVENT_TYPES.len(), "{types:?}");
}
