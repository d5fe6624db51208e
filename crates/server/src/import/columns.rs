//! Any dialer's CSV export (SPEC §11): a header line, and `--columns field=Column,...` naming
//! the column of each SPEC §3 `call` field (`prospect.name` for the prospect's). Times are
//! RFC 3339, local date-times in the import's zone, or epoch seconds; durations seconds or
//! `h:mm:ss`; dispositions go through the mapping. No IO.

use super::mapping::{content_id, Mapping};
use super::record::{any_time, seconds};
use super::{Converter, Output};
use serde_json::{Map, Value};

const TIMES: [&str; 6] = [
    "started_at",
    "answered_at",
    "agent_connected_at",
    "ended_at",
    "wrap_ended_at",
    "updated_at",
];
const DURATIONS: [&str; 3] = ["talk_seconds", "wait_seconds", "wrap_seconds"];
const FLAGS: [&str; 3] = ["voicemail_dropped", "is_callback", "abandoned"];
const PROSPECT: [&str; 4] = ["name", "phone", "company", "timezone"];

/// A `call` field the columns may fill (`id` and the nested `prospect.*` included).
fn known(field: &str) -> bool {
    if let Some(p) = field.strip_prefix("prospect.") {
        return PROSPECT.contains(&p);
    }
    field == "id" || (field != "prospect" && dialboard_engine::event::known_fields("call").contains(&field))
}

/// Checks `--columns` pairs (field, column header).
pub fn check(columns: &[(String, String)]) -> Result<(), String> {
    if columns.is_empty() {
        return Err("--columns: --format csv needs field=Column pairs (started_at=Start,agent_id=Agent,...)".into());
    }
    for (field, _) in columns {
        if !known(field) {
            return Err(format!("--columns: '{field}' is not a field of a call event"));
        }
    }
    Ok(())
}

pub struct Columns {
    mapping: Mapping,
    wanted: Vec<(String, String)>,
    /// (field, column index), once the header is read.
    fields: Vec<(String, usize)>,
    width: usize,
}

impl Columns {
    pub fn new(mapping: Mapping, wanted: Vec<(String, String)>) -> Columns {
        Columns {
            mapping,
            wanted,
            fields: Vec::new(),
            width: 0,
        }
    }

    /// Reads the header; a missing column fails the whole import.
    fn header(&mut self, header: &[String]) -> Result<(), String> {
        let names: Vec<&str> = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}')).collect();
        for (field, column) in &self.wanted {
            let i = names.iter().position(|h| h == column).ok_or_else(|| {
                format!(
                    "--columns: {field}={column}: the header has no column '{column}' (it has: {})",
                    names.join(", ")
                )
            })?;
            self.fields.push((field.clone(), i));
        }
        self.width = header.len();
        Ok(())
    }

    fn event(&self, f: &[String]) -> Result<Value, String> {
        let mut e = Map::new();
        let mut prospect = Map::new();
        e.insert("type".into(), "call".into());
        for (field, i) in &self.fields {
            let text = f[*i].trim();
            if text.is_empty() {
                continue;
            }
            let column = &self.wanted.iter().find(|(w, _)| w == field).expect("a wanted field").1;
            let bad = |e: String| format!("{field} (column '{column}'): {e}");
            let value: Value = if TIMES.contains(&field.as_str()) {
                any_time(text, &self.mapping.zone).map_err(bad)?.to_string().into()
            } else if DURATIONS.contains(&field.as_str()) {
                seconds(text).map_err(bad)?.into()
            } else if FLAGS.contains(&field.as_str()) {
                match text.to_lowercase().as_str() {
                    "1" | "true" | "yes" | "y" => true.into(),
                    "0" | "false" | "no" | "n" => false.into(),
                    _ => return Err(bad(format!("'{text}' is not true/false, yes/no or 1/0"))),
                }
            } else if field == "disposition" {
                self.mapping.disposition(text).into()
            } else if field == "agent_id" {
                self.mapping.agent(text).into()
            } else {
                text.into()
            };
            match field.strip_prefix("prospect.") {
                Some(p) => prospect.insert(p.into(), value),
                None => e.insert(field.clone(), value),
            };
        }
        if !prospect.is_empty() {
            e.insert("prospect".into(), Value::Object(prospect));
        }
        // The source's own id makes re-imports idempotent; a row without one is its content.
        let own_id = e.get("id").or_else(|| e.get("call_id")).and_then(Value::as_str);
        let id = match own_id {
            Some(id) if e.contains_key("id") => id.to_string(),
            Some(call_id) => format!("csv:{call_id}"),
            None => format!("csv:{}", content_id(&f.join("\u{1f}"))),
        };
        if !e.contains_key("call_id") {
            e.insert("call_id".into(), id.trim_start_matches("csv:").into());
        }
        e.insert("id".into(), id.into());
        Ok(Value::Object(e))
    }
}

impl Converter for Columns {
    fn row(&mut self, line: u64, fields: &[String], out: &mut Vec<Output>) {
        if self.width == 0 {
            if let Err(reason) = self.header(fields) {
                out.push(Output::Fatal(reason));
            }
            return;
        }
        if fields.len() != self.width {
            out.push(Output::Rejected {
                line,
                reason: format!("{} columns where the header has {}", fields.len(), self.width),
            });
            return;
        }
        out.push(match self.event(fields) {
            Ok(value) => Output::Call { line, value },
            Err(reason) => Output::Rejected { line, reason },
        });
    }

    fn finish(&mut self, _: &mut Vec<Output>) {}

    fn column_of(&self, field: &str) -> Option<String> {
        self.wanted.iter().find(|(f, _)| f == field).map(|(_, c)| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::record::split;
    use jiff::tz::TimeZone;
    use serde_json::json;

    #[test]
    fn columns_are_read_by_header_and_converted() {
        let pairs: Vec<(String, String)> = [
            ("call_id", "Call ID"),
            ("started_at", "Start"),
            ("agent_id", "Agent"),
            ("disposition", "Result"),
            ("talk_seconds", "Talk"),
            ("prospect.name", "Lead"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        check(&pairs).unwrap();
        assert!(check(&[("talk".into(), "x".into())]).unwrap_err().contains("'talk'"));
        let mapping = Mapping::new(
            TimeZone::get("America/New_York").unwrap(),
            &[("SALE".into(), "Interested".into())],
            &[],
            &[],
            &[],
        );
        let mut c = Columns::new(mapping, pairs);
        let (mut fields, mut out) = (Vec::new(), Vec::new());
        for (i, line) in [
            "Call ID,Start,Agent,Result,Talk,Lead,Notes",
            r#"C-1,2024-03-04 09:00:00,ana,SALE,0:02:05,"Smith, John","said ""call back""""#,
            "C-2,yesterday,ana,SALE,10,x,y",
        ]
        .iter()
        .enumerate()
        {
            split(line, &mut fields).unwrap();
            c.row(i as u64 + 1, &fields, &mut out);
        }
        let Output::Call { value, line: 2 } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            value,
            &json!({"id": "csv:C-1", "type": "call", "call_id": "C-1", "started_at": "2024-03-04T14:00:00Z",
                "agent_id": "ana", "disposition": "Interested", "talk_seconds": 125, "prospect": {"name": "Smith, John"}})
        );
        assert!(
            matches!(&out[1], Output::Rejected { line: 3, reason } if reason.starts_with("started_at (column 'Start')"))
        );
    }
}
