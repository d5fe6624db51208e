//! Webhook deliveries (SPEC §7): JSON POSTs signed with HMAC-SHA256, sent by the job mechanism
//! (retried with its exponential backoff), every attempt logged, the endpoint disabled after
//! its limit of consecutive failures.
//!
//! **Signature.** Each delivery carries `Dialboard-Signature: t=<unix seconds>,v1=<hex>`, where
//! the hex is HMAC-SHA256 with the endpoint's secret over `"<t>.<body>"`. A receiver recomputes
//! it over the raw body and refuses a timestamp older than a few minutes (a replay);
//! [`verify`] is that check (docs/WEBHOOKS.md shows it in Python too).
//!
//! **Address guard.** Only `http`/`https` URLs. Private, loopback, link-local, unspecified,
//! multicast and other special addresses are refused when the endpoint is saved (for literal
//! addresses) and again at every delivery after DNS resolution — the connection goes to the
//! checked address, so a name that later resolves elsewhere cannot slip through — unless the
//! operator allows them (`serve --webhook-allow-private`).

use crate::jobs::{Handler, JobContext};
use axum::http::Uri;
use dialboard_store::alerting::{self, DeliveryAttempt};
use dialboard_store::jobs::NewJob;
use dialboard_store::{Store, StoreError};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const JOB_KIND: &str = "webhook_delivery";
pub const SIGNATURE_HEADER: &str = "dialboard-signature";
/// Attempts per delivery: the first and four retries (2 s, 4 s, 8 s, 16 s later).
pub const MAX_ATTEMPTS: i64 = 5;
/// Consecutive failed attempts after which an endpoint is disabled, unless it sets its own.
pub const DEFAULT_FAILURE_LIMIT: i64 = 10;
/// How long a receiver should accept a signature's timestamp.
pub const TOLERANCE_SECONDS: i64 = 300;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a receiver's error answer is kept in the log.
const MAX_LOGGED_ERROR: usize = 300;

type HmacSha256 = Hmac<sha2_hmac::Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Dialboard-Signature` header for `body` sent at `timestamp` (epoch seconds).
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    Malformed,
    /// The timestamp is further than the tolerance from now: a replay, or a wrong clock.
    Stale,
    BadSignature,
}

/// What a receiver does: checks `header` against the raw `body` with the endpoint's secret,
/// and refuses a timestamp more than `tolerance` seconds from `now` (epoch seconds).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", s)) => signature = decode_hex(s),
            _ => {}
        }
    }
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(VerifyError::Malformed);
    };
    if (now - timestamp).abs() > tolerance {
        return Err(VerifyError::Stale);
    }
    mac(secret, timestamp, body)
        .verify_slice(&signature)
        .map_err(|_| VerifyError::BadSignature)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Which targets deliveries may reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct AddressPolicy {
    pub allow_private: bool,
}

/// Whether an address is one webhooks may not reach by default: loopback, private (RFC 1918,
/// unique local), link-local (cloud metadata lives there), unspecified, carrier-grade NAT,
/// multicast, broadcast and documentation ranges, and IPv4 mapped into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// A checked target: scheme, host and port, and the request path.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// Checks a target URL as an endpoint is saved: http(s), a host, no credentials, and — when
/// the host is a literal address — not an internal one (names are checked at delivery, after
/// resolution).
pub fn check_url(url: &str, policy: AddressPolicy) -> Result<Target, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| "must be an absolute http:// or https:// URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("must start with http:// or https://".into()),
    };
    let authority = uri.authority().ok_or("must name a host")?;
    if authority.as_str().contains('@') {
        return Err("must not carry a user or password".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err("must name a host".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if is_internal(ip) && !policy.allow_private {
            return Err(format!(
                "{ip} is a private, loopback or link-local address, which webhooks may not reach (the operator can allow it: --webhook-allow-private)"
            ));
        }
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

/// Resolves the target and picks the first address the policy allows; refuses if any is
/// internal (a name that mixes public and private answers is not trusted either).
async fn resolve(target: &Target, policy: AddressPolicy) -> Result<SocketAddr, String> {
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("could not resolve {}: {e}", target.host))?
        .collect();
    if !policy.allow_private {
        if let Some(bad) = addresses.iter().find(|a| is_internal(a.ip())) {
            return Err(format!(
                "{} resolves to {}, a private, loopback or link-local address",
                target.host,
                bad.ip()
            ));
        }
    }
    addresses
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no address", target.host))
}

/// POSTs `body` to the target at the checked address: the status code, or why it failed.
async fn post(target: &Target, address: SocketAddr, signature: &str, body: Vec<u8>) -> Result<u16, String> {
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| format!("could not connect to {address}: {e}"))?;
    let host_header = if (target.https && target.port == 443) || (!target.https && target.port == 80) {
        target.host.clone()
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let request = axum::http::Request::post(target.path.as_str())
        .header("host", host_header)
        .header("content-type", "application/json")
        .header("user-agent", "dialboard-webhooks")
        .header(SIGNATURE_HEADER, signature)
        .body(Full::new(bytes::Bytes::from(body)))
        .map_err(|e| format!("could not build the request: {e}"))?;
    async fn send<S>(io: S, request: axum::http::Request<Full<bytes::Bytes>>) -> Result<(u16, String), String>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        tokio::spawn(connection);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let text = match response.into_body().collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        Ok((status, text))
    }
    let sent = if target.https {
        let tls = tls_connector()
            .connect(server_name(&target.host)?, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", target.host))?;
        tokio::time::timeout(TIMEOUT, send(tls, request)).await
    } else {
        tokio::time::timeout(TIMEOUT, send(tcp, request)).await
    };
    let (status, text) = sent.map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))??;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        let text: String = text.chars().take(MAX_LOGGED_ERROR).collect();
        Err(format!("answered {status}: {text}"))
    }
}

fn server_name(host: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, String> {
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))
}

/// TLS with the system's root certificates (built once).
fn tls_connector() -> tokio_rustls::TlsConnector {
    use std::sync::OnceLock;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// Whether `id` names one of the tenant's webhook endpoints (what alerts and schedules may
/// name to be told through).
pub async fn exists(store: &Arc<dyn Store>, tenant_id: i64, id: &str) -> Result<bool, StoreError> {
    let id = id.to_string();
    Ok(alerting::run(&**store, move |db| alerting::webhook(db, tenant_id, &id))
        .await?
        .is_some())
}

/// Queues one delivery of `payload` (`{"event": …, "data": …}`) to an endpoint.
pub async fn enqueue(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    webhook_id: &str,
    event: &str,
    data: Value,
) -> Result<String, StoreError> {
    let delivery = dialboard_store::jobs::new_id();
    let payload = json!({
        "webhook_id": webhook_id,
        "delivery_id": delivery,
        "body": {"id": delivery, "event": event, "created_at": jiff::Timestamp::now().to_string(), "data": data},
    });
    let job = NewJob {
        kind: JOB_KIND.into(),
        payload,
        max_attempts: MAX_ATTEMPTS,
    };
    store.enqueue_job(tenant_id, job, crate::jobs::now_ms()).await?;
    Ok(delivery)
}

/// The failure limit an endpoint set, or the default.
pub fn failure_limit(body: &Value) -> i64 {
    body["failure_limit"].as_i64().unwrap_or(DEFAULT_FAILURE_LIMIT)
}

/// The delivery job: one attempt, logged; an error makes the job mechanism retry it.
pub fn job_handler(policy: AddressPolicy) -> Handler {
    Arc::new(move |cx: JobContext| Box::pin(deliver(cx, policy)))
}

async fn deliver(cx: JobContext, policy: AddressPolicy) -> Result<Value, String> {
    let job = &cx.job;
    let tenant_id = job.tenant_id;
    let webhook_id = job.payload["webhook_id"].as_str().unwrap_or_default().to_string();
    let body = job.payload["body"].clone();
    let event = body["event"].as_str().unwrap_or_default().to_string();
    let wid = webhook_id.clone();
    let hook = alerting::run(&*cx.store, move |db| alerting::webhook(db, tenant_id, &wid))
        .await
        .map_err(|e| e.to_string())?;
    let mut attempt = DeliveryAttempt {
        id: job.payload["delivery_id"].as_str().unwrap_or(&job.id).to_string(),
        attempt: job.attempts,
        event,
        at: crate::jobs::now_ms(),
        outcome: "skipped".into(),
        status_code: None,
        latency_ms: None,
        error: None,
    };
    let Some(hook) = hook.filter(|h| h.enabled) else {
        // A disabled or deleted endpoint: nothing to retry.
        attempt.error = Some("the endpoint is disabled or gone".into());
        record(&cx, &webhook_id, attempt, DEFAULT_FAILURE_LIMIT).await?;
        return Ok(json!({"skipped": true}));
    };
    let limit = failure_limit(&hook.body);
    let url = hook.body["url"].as_str().unwrap_or_default();
    let bytes = body.to_string().into_bytes();
    let started = Instant::now();
    let sent = async {
        let target = check_url(url, policy)?;
        let address = resolve(&target, policy).await?;
        let signature = signature_header(&hook.secret, jiff::Timestamp::now().as_second(), &bytes);
        post(&target, address, &signature, bytes.clone()).await
    }
    .await;
    attempt.latency_ms = Some(started.elapsed().as_millis() as i64);
    match sent {
        Ok(status) => {
            attempt.outcome = "delivered".into();
            attempt.status_code = Some(status.into());
            record(&cx, &webhook_id, attempt, limit).await?;
            Ok(json!({"status_code": status}))
        }
        Err(error) => {
            attempt.outcome = "failed".into();
            attempt.status_code = error
                .strip_prefix("answered ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse().ok());
            attempt.error = Some(error.clone());
            let now = record(&cx, &webhook_id, attempt, limit).await?;
            if now.is_some_and(|h| !h.enabled) {
                // Disabled by this failure: further retries would be skipped anyway.
                return Ok(json!({"failed": error, "endpoint_disabled": true}));
            }
            Err(error)
        }
    }
}

async fn record(
    cx: &JobContext,
    webhook_id: &str,
    attempt: DeliveryAttempt,
    limit: i64,
) -> Result<Option<alerting::Webhook>, String> {
    let (tenant_id, webhook_id) = (cx.job.tenant_id, webhook_id.to_string());
    alerting::run(&*cx.store, move |db| {
        alerting::record_attempt(db, tenant_id, &webhook_id, &attempt, limit)
    })
    .await
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_replay_or_a_change_does_not() {
        let header = signature_header("s3cret", 1_000, b"{\"a\":1}");
        assert_eq!(verify("s3cret", &header, b"{\"a\":1}", 1_010, 300), Ok(()));
        assert_eq!(
            verify("s3cret", &header, b"{\"a\":2}", 1_010, 300),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("other", &header, b"{\"a\":1}", 1_010, 300),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify("s3cret", &header, b"{\"a\":1}", 1_400, 300),
            Err(VerifyError::Stale)
        );
        assert_eq!(verify("s3cret", "v1=zz", b"", 0, 300), Err(VerifyError::Malformed));
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy::default();
        for url in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://[::1]:8080/",
            "http://[::ffff:192.168.0.1]/",
            "http://[fd00::1]/",
        ] {
            assert!(check_url(url, strict).is_err(), "{url}");
            assert!(check_url(url, AddressPolicy { allow_private: true }).is_ok(), "{url}");
        }
        assert!(check_url("ftp://example.com/", strict).is_err());
        assert!(check_url("https://user:pw@example.com/", strict).is_err());
        let t = check_url("https://hooks.example.com/in?x=1", strict).unwrap();
        assert_eq!(
            (t.https, t.host.as_str(), t.port, t.path.as_str()),
            (true, "hooks.example.com", 443, "/in?x=1")
        );
    }
}
