//! FreeSWITCH `mod_cdr_csv` files (SPEC §11): one row per call (the a-leg, `legs="a"`, the
//! module's default), its columns given by a template — the stock `example` template, or
//! the one `--template` names as it appears in `cdr_csv.conf.xml`. No IO.

use super::mapping::{CallDraft, Direction, Mapping};
use super::record::{cdr_seconds, local_time, split};
use super::{Converter, Output};
use std::collections::HashMap;

/// `cdr_csv.conf.xml`'s `example` template, the module's `default-template`.
pub const EXAMPLE_TEMPLATE: &str = r#""${caller_id_name}","${caller_id_number}","${destination_number}","${context}","${start_stamp}","${answer_stamp}","${end_stamp}","${duration}","${billsec}","${hangup_cause}","${uuid}","${bleg_uuid}","${accountcode}","${read_codec}","${write_codec}""#;

/// The variables a row must have for a call to be made of it.
const REQUIRED: [&str; 7] = [
    "uuid",
    "start_stamp",
    "hangup_cause",
    "caller_id_number",
    "destination_number",
    "context",
    "billsec",
];

pub struct FreeSwitch {
    mapping: Mapping,
    /// Column of each variable of the template.
    column: HashMap<String, usize>,
    width: usize,
}

impl FreeSwitch {
    /// Reads the template (`${variable}` per column); an error names what is missing.
    pub fn new(mapping: Mapping, template: Option<&str>) -> Result<FreeSwitch, String> {
        let template = template.unwrap_or(EXAMPLE_TEMPLATE).trim();
        let mut fields = Vec::new();
        split(template, &mut fields).map_err(|e| format!("--template: {e}"))?;
        let column: HashMap<String, usize> = fields
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let name = f.trim().strip_prefix("${")?.strip_suffix('}')?;
                Some((name.to_string(), i))
            })
            .collect();
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|v| !column.contains_key(*v)).collect();
        if !missing.is_empty() {
            return Err(format!(
                "--template: needs the variables {} (as ${{name}} columns)",
                missing.join(", ")
            ));
        }
        Ok(FreeSwitch {
            mapping,
            column,
            width: fields.len(),
        })
    }

    fn call(&self, f: &[String]) -> Result<CallDraft, String> {
        let get = |name: &str| self.column.get(name).map(|&i| f[i].trim()).unwrap_or("");
        let zone = &self.mapping.zone;
        let time = |name: &str| match get(name) {
            "" => Ok(None),
            text => local_time(text, zone).map(Some).map_err(|e| format!("{name}: {e}")),
        };
        let uuid = get("uuid");
        if uuid.is_empty() {
            return Err("uuid: empty".into());
        }
        let started = time("start_stamp")?.ok_or("start_stamp: empty")?;
        let answered = time("answer_stamp")?;
        let billsec = cdr_seconds("billsec", get("billsec"))?;
        let context = get("context");
        let direction = self
            .mapping
            .direction(context)
            .ok_or_else(|| self.mapping.unknown_context(context))?;
        let (agent, contact) = match direction {
            Direction::Inbound => (get("destination_number"), get("caller_id_number")),
            Direction::Outbound => (get("caller_id_number"), get("destination_number")),
        };
        if agent.is_empty() {
            return Err(match direction {
                Direction::Inbound => "destination_number: empty (the agent of an inbound call)",
                Direction::Outbound => "caller_id_number: empty (the agent of an outbound call)",
            }
            .into());
        }
        let is_answered = answered.is_some() && billsec > 0;
        let cause = get("hangup_cause");
        let name = get("caller_id_name");
        Ok(CallDraft {
            id: format!("freeswitch:{uuid}"),
            call_id: uuid.to_string(),
            agent_id: self.mapping.agent(agent),
            disposition: self.mapping.disposition(if is_answered { "ANSWERED" } else { cause }),
            direction: Some(direction),
            started: Some(started),
            answered,
            agent_connected: answered.filter(|_| is_answered),
            ended: time("end_stamp")?,
            talk_seconds: is_answered.then_some(billsec),
            contact: (!contact.is_empty()).then(|| contact.to_string()),
            prospect_name: (direction == Direction::Inbound && !name.is_empty() && name != contact)
                .then(|| name.to_string()),
            abandoned: direction == Direction::Inbound && !is_answered,
        })
    }
}

impl Converter for FreeSwitch {
    fn row(&mut self, line: u64, fields: &[String], out: &mut Vec<Output>) {
        if fields.len() != self.width {
            out.push(Output::Rejected {
                line,
                reason: format!("{} columns where the template has {}", fields.len(), self.width),
            });
            return;
        }
        out.push(match self.call(fields) {
            Ok(draft) => Output::Call {
                line,
                value: draft.to_event(),
            },
            Err(reason) => Output::Rejected { line, reason },
        });
    }

    fn finish(&mut self, _: &mut Vec<Output>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;
    use serde_json::json;

    #[test]
    fn an_example_row_is_a_call_and_a_template_needs_its_variables() {
        let mut fs = FreeSwitch::new(Mapping::new(TimeZone::UTC, &[], &[], &[], &[]), None).unwrap();
        let mut fields = Vec::new();
        split(r#""Jane Roe","+15550100","1002","public","2024-03-04 09:00:00","2024-03-04 09:00:07","2024-03-04 09:04:07","247","240","NORMAL_CLEARING","a1b2c3d4-0000-4000-8000-000000000001","","","PCMU","PCMU""#, &mut fields).unwrap();
        let mut out = Vec::new();
        fs.row(1, &fields, &mut out);
        let Output::Call { value, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            value,
            &json!({"id": "freeswitch:a1b2c3d4-0000-4000-8000-000000000001", "type": "call",
                "call_id": "a1b2c3d4-0000-4000-8000-000000000001", "agent_id": "1002", "disposition": "Connected",
                "direction": "inbound", "started_at": "2024-03-04T09:00:00Z", "answered_at": "2024-03-04T09:00:07Z",
                "agent_connected_at": "2024-03-04T09:00:07Z", "ended_at": "2024-03-04T09:04:07Z", "talk_seconds": 240,
                "contact_id": "+15550100", "prospect": {"phone": "+15550100", "name": "Jane Roe"}})
        );
        let err = FreeSwitch::new(
            Mapping::new(TimeZone::UTC, &[], &[], &[], &[]),
            Some(r#""${uuid}","${start_stamp}""#),
        )
        .err()
        .unwrap();
        assert!(err.contains("hangup_cause"), "{err}");
    }
}
