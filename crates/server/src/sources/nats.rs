//! A NATS JetStream source: a durable pull consumer on the tenant's subject. Each fetched batch
//! (at most `batch` messages: the backpressure — nothing more is pulled until they are
//! committed) is validated, stored in one `Store::ingest`, and only then acknowledged. A
//! message with invalid events (or that is no JSON at all) is published to the dead-letter
//! subject with the reasons before it is acknowledged; its valid events are stored. When the
//! store fails, the batch is not acknowledged (negatively, so it comes back at once), and a
//! crash leaves it unacknowledged: JetStream delivers it again and the event ids make the
//! second delivery count nothing.

use super::{split_payload, SourceConfig, SourceStats};
use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use dialboard_engine::event::parse_event_text;
use dialboard_store::Store;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_BATCH: usize = 500;
/// How long one pull waits for messages before the consumer looks at its lag and stop signal.
const PULL_WAIT: Duration = Duration::from_millis(500);

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Consumes until `stop` is set, reconnecting with backoff after a failure.
pub async fn run(
    store: Arc<dyn Store>,
    config: SourceConfig,
    stats: Arc<SourceStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    while !*stop.borrow() {
        match consume(&store, &config, &stats, &stop).await {
            Ok(()) => break,
            Err(error) => {
                stats.connected.store(0, Relaxed);
                tracing::warn!(source = %config.label(), %error, retry_in = ?backoff, "event source failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
    stats.connected.store(0, Relaxed);
}

async fn consume(
    store: &Arc<dyn Store>,
    config: &SourceConfig,
    stats: &SourceStats,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(), String> {
    let tenant = store
        .tenant_by_name(&config.tenant)
        .await
        .map_err(text)?
        .ok_or_else(|| format!("[[sources]] tenant: no tenant named '{}'", config.tenant))?;
    let client = async_nats::connect(&config.url)
        .await
        .map_err(|e| format!("connecting to {}: {e}", config.url))?;
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| format!("stream '{}': {e}", config.stream))?;
    let batch = config.batch.unwrap_or(DEFAULT_BATCH);
    let durable = config.durable();
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: config.subject.clone(),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(config.ack_wait_seconds.unwrap_or(30)),
                // Never more in flight than two batches, whatever the stream holds.
                max_ack_pending: (batch * 2) as i64,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("consumer '{durable}': {e}"))?;
    stats.connected.store(1, Relaxed);
    tracing::info!(source = %config.label(), tenant = %config.tenant, %durable, "consuming events");
    while !*stop.borrow() {
        let mut pulled = consumer
            .batch()
            .max_messages(batch)
            .expires(PULL_WAIT)
            .messages()
            .await
            .map_err(text)?;
        let mut messages = Vec::with_capacity(batch);
        while let Some(message) = pulled.next().await {
            messages.push(message.map_err(text)?);
        }
        if !messages.is_empty() {
            handle(store, tenant.id, &js, config, stats, messages).await?;
        }
        let info = consumer.get_info().await.map_err(text)?;
        stats.lag.store(info.num_pending, Relaxed);
        stats.ack_pending.store(info.num_ack_pending as u64, Relaxed);
    }
    Ok(())
}

/// Stores a batch's events, dead-letters its invalid messages, then acknowledges them all.
async fn handle(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    js: &jetstream::Context,
    config: &SourceConfig,
    stats: &SourceStats,
    messages: Vec<jetstream::Message>,
) -> Result<(), String> {
    // The taxonomy as it is now (settings may change while the consumer runs).
    let tenant = store.tenant(tenant_id).await.map_err(text)?;
    let mut events = Vec::new();
    let mut problems: Vec<Vec<Value>> = vec![Vec::new(); messages.len()];
    for (m, message) in messages.iter().enumerate() {
        match split_payload(&message.payload) {
            Err(reason) => problems[m].push(json!({"errors": [{"field": "", "message": reason}]})),
            Ok(texts) => {
                for (index, event) in texts.into_iter().enumerate() {
                    match parse_event_text(event, &tenant.taxonomy) {
                        Ok(event) => events.push(event),
                        Err((id, errors)) => problems[m].push(json!({"index": index, "id": id, "errors": errors})),
                    }
                }
            }
        }
    }
    let stored = match store.ingest(tenant.id, events).await {
        Ok(stored) => stored,
        Err(e) => {
            for message in &messages {
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
            return Err(format!("storing events: {e}"));
        }
    };
    stats.events_accepted.fetch_add(stored.accepted as u64, Relaxed);
    stats.events_duplicate.fetch_add(stored.duplicates as u64, Relaxed);
    for (message, problems) in messages.iter().zip(problems) {
        if !problems.is_empty() {
            dead_letter(js, config, message, problems).await?;
            stats.dead_letters.fetch_add(1, Relaxed);
        }
        message.ack().await.map_err(|e| format!("acknowledging: {e}"))?;
        stats.messages.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Publishes an invalid message to the dead-letter subject: the original payload, where it came
/// from, and why each of its events was refused. Waits for JetStream to store it when a stream
/// holds the subject; a plain publish otherwise.
async fn dead_letter(
    js: &jetstream::Context,
    config: &SourceConfig,
    message: &jetstream::Message,
    reasons: Vec<Value>,
) -> Result<(), String> {
    let info = message.info().ok();
    let body = json!({
        "subject": message.subject.as_str(),
        "stream": config.stream,
        "stream_sequence": info.as_ref().map(|i| i.stream_sequence),
        "delivered": info.as_ref().map(|i| i.delivered),
        "rejected": reasons,
        "payload": String::from_utf8_lossy(&message.payload),
    });
    let first = reasons_summary(&body["rejected"]);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Dialboard-Reason", first.as_str());
    let subject = config.dead_letter();
    let payload: axum::body::Bytes = body.to_string().into();
    match js
        .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
        .await
    {
        Ok(ack) => match ack.await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() != jetstream::context::PublishErrorKind::StreamNotFound => {
                return Err(format!("dead-lettering to {subject}: {e}"))
            }
            Err(_) => {}
        },
        Err(e) => return Err(format!("dead-lettering to {subject}: {e}")),
    }
    // No stream keeps the subject: a plain publish, for whoever subscribes.
    let client = js.client();
    client
        .publish_with_headers(subject.clone(), headers, payload)
        .await
        .map_err(|e| format!("dead-lettering to {subject}: {e}"))?;
    client
        .flush()
        .await
        .map_err(|e| format!("dead-lettering to {subject}: {e}"))
}

/// The first refusal, on one line (a header value).
fn reasons_summary(rejected: &Value) -> String {
    let first = &rejected[0]["errors"][0];
    let line = match first["field"].as_str() {
        Some("") | None => first["message"].as_str().unwrap_or("invalid").to_string(),
        Some(field) => format!("{field}: {}", first["message"].as_str().unwrap_or("invalid")),
    };
    line.replace(['\r', '\n'], " ")
}
