//! Event sources besides HTTP (SPEC §11): brokers that `dialboard serve` consumes, each
//! configured by a `[[sources]]` table in the TOML file. Each message's events go through the
//! same validation and `Store::ingest` as `POST /events`; a message is acknowledged only once
//! its events are committed, so a redelivery after a crash counts nothing twice (event ids).
//! NATS JetStream is the one broker so far (`nats.rs`).

pub mod nats;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// One `[[sources]]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// `nats` (the default and only kind for now).
    #[serde(default = "nats_kind")]
    pub kind: String,
    /// `nats://host:port`.
    pub url: String,
    /// The JetStream stream holding the subject.
    pub stream: String,
    /// The subject the tenant's events are published on.
    pub subject: String,
    /// The tenant (by name) the events are for.
    pub tenant: String,
    /// The durable consumer's name (default `dialboard-<tenant>`).
    #[serde(default)]
    pub durable: Option<String>,
    /// Where invalid messages go, with the reasons (default `<subject>.dead`).
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// Messages per fetch (default 500): also how many are in flight at most.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Seconds before an unacknowledged message is delivered again (default 30).
    #[serde(default)]
    pub ack_wait_seconds: Option<u64>,
}

fn nats_kind() -> String {
    "nats".into()
}

impl SourceConfig {
    pub fn check(&self) -> Result<(), String> {
        let at = |field: &str, message: &str| Err(format!("[[sources]] {field}: {message}"));
        if self.kind != "nats" {
            return at("kind", "must be 'nats'");
        }
        for (field, value) in [
            ("url", &self.url),
            ("stream", &self.stream),
            ("subject", &self.subject),
            ("tenant", &self.tenant),
        ] {
            if value.trim().is_empty() {
                return at(field, "required");
            }
        }
        if self.batch.is_some_and(|b| b == 0 || b > 10_000) {
            return at("batch", "must be 1 to 10000");
        }
        Ok(())
    }

    pub fn durable(&self) -> String {
        self.durable
            .clone()
            .unwrap_or_else(|| format!("dialboard-{}", self.tenant))
    }

    pub fn dead_letter(&self) -> String {
        self.dead_letter
            .clone()
            .unwrap_or_else(|| format!("{}.dead", self.subject))
    }

    /// The name `/metrics` labels it with.
    pub fn label(&self) -> String {
        format!("{}/{}", self.stream, self.subject)
    }
}

/// A source's counters and gauges, as `/metrics` shows them.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub label: String,
    pub tenant: String,
    pub messages: AtomicU64,
    pub events_accepted: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub dead_letters: AtomicU64,
    /// Messages in the stream not yet delivered to the consumer.
    pub lag: AtomicU64,
    /// Delivered and not yet acknowledged.
    pub ack_pending: AtomicU64,
    pub connected: AtomicU64,
}

/// A `/metrics` series of each source: name, type, help, and where its value is.
type Series = (&'static str, &'static str, &'static str, fn(&SourceStats) -> &AtomicU64);

/// Every source of this server (empty for tests and servers without `[[sources]]`).
#[derive(Debug, Default)]
pub struct Registry {
    sources: Mutex<Vec<Arc<SourceStats>>>,
}

impl Registry {
    pub fn add(&self, config: &SourceConfig) -> Arc<SourceStats> {
        let stats = Arc::new(SourceStats {
            label: config.label(),
            tenant: config.tenant.clone(),
            ..SourceStats::default()
        });
        self.sources.lock().expect("sources lock").push(stats.clone());
        stats
    }

    /// Prometheus text for every source.
    pub fn render(&self, out: &mut String) {
        let sources = self.sources.lock().expect("sources lock");
        if sources.is_empty() {
            return;
        }
        let series: [Series; 7] = [
            (
                "dialboard_source_lag_messages",
                "gauge",
                "Messages in the stream the consumer has not been delivered yet.",
                |s| &s.lag,
            ),
            (
                "dialboard_source_ack_pending_messages",
                "gauge",
                "Messages delivered and not yet acknowledged.",
                |s| &s.ack_pending,
            ),
            (
                "dialboard_source_connected",
                "gauge",
                "1 while the consumer is connected.",
                |s| &s.connected,
            ),
            (
                "dialboard_source_messages_total",
                "counter",
                "Messages consumed and acknowledged.",
                |s| &s.messages,
            ),
            (
                "dialboard_source_events_accepted_total",
                "counter",
                "Events from the source stored.",
                |s| &s.events_accepted,
            ),
            (
                "dialboard_source_events_duplicate_total",
                "counter",
                "Events from the source already known (redeliveries).",
                |s| &s.events_duplicate,
            ),
            (
                "dialboard_source_dead_letters_total",
                "counter",
                "Messages sent to the dead-letter subject.",
                |s| &s.dead_letters,
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for s in sources.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{source=\"{}\",tenant=\"{}\"}} {}",
                    escape(&s.label),
                    escape(&s.tenant),
                    value(s).load(Relaxed)
                );
            }
        }
    }
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A message's events as JSON texts: one JSON object, a JSON array of them, or NDJSON.
/// `Err` when the payload is none of these (the whole message is invalid).
pub fn split_payload(payload: &[u8]) -> Result<Vec<&str>, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "the message is not UTF-8 text".to_string())?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the message is empty".into());
    }
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(trimmed).map_err(|e| format!("the message is not a JSON array of events: {e}"))?;
        return Ok(items.into_iter().map(RawValue::get).collect());
    }
    if serde_json::from_str::<&RawValue>(trimmed).is_ok() {
        return Ok(vec![trimmed]);
    }
    let lines: Vec<&str> = trimmed.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.iter().all(|l| serde_json::from_str::<&RawValue>(l).is_err()) {
        return Err("the message is not JSON: an event, an array of events, or NDJSON".into());
    }
    Ok(lines)
}

/// Starts a consumer per source; their stats go to `registry` (for `/metrics`).
pub fn spawn_all(
    store: Arc<dyn dialboard_store::Store>,
    sources: &[SourceConfig],
    registry: &Registry,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    sources
        .iter()
        .map(|config| {
            let stats = registry.add(config);
            tokio::spawn(nats::run(store.clone(), config.clone(), stats, stop.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_an_event_an_array_or_ndjson() {
        assert_eq!(split_payload(br#" {"id": "a"} "#).unwrap(), vec![r#"{"id": "a"}"#]);
        assert_eq!(split_payload(br#"[{"id": "a"}, {"id": "b"}]"#).unwrap().len(), 2);
        assert_eq!(
            split_payload(b"{\"id\": \"a\"}\n{\"id\": \"b\"}\nnot json")
                .unwrap()
                .len(),
            3
        );
        assert!(split_payload(b"garbage").is_err());
        assert!(split_payload(b"").is_err());
        assert!(split_payload(b"[1,").is_err());
    }

    #[test]
    fn a_source_needs_its_keys() {
        let config: SourceConfig = toml::from_str(
            "url = \"nats://127.0.0.1:4222\"\nstream = \"EVENTS\"\nsubject = \"events.acme\"\ntenant = \"acme\"",
        )
        .unwrap();
        config.check().unwrap();
        assert_eq!(config.durable(), "dialboard-acme");
        assert_eq!(config.dead_letter(), "events.acme.dead");
        let bad = SourceConfig {
            batch: Some(0),
            ..config
        };
        assert!(bad.check().unwrap_err().contains("batch"));
    }
}
