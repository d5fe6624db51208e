//! What a request must show besides its credential: where it comes from (the client's
//! address, through configured proxies only) and, when a browser session cookie is its
//! credential, that the page sending it is this server's own (no cross-origin writes or live
//! reads riding on the cookie).

use super::auth::forbidden;
use super::error::{ApiError, Code};
use super::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The session cookie's name over plain HTTP, and behind `https` (`__Host-`: the browser
/// keeps it only if it is `Secure`, host-only and for `/`, so no sibling host can set it).
pub const SESSION_COOKIE: &str = "dialboard_session";
pub const SECURE_SESSION_COOKIE: &str = "__Host-dialboard_session";

/// The server's deployment as far as requests are concerned (`serve` options).
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// `scheme://host[:port]` of `--public-url`; `https` makes the session cookie `Secure`.
    pub public_origin: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    pub trusted_proxies: Vec<IpAddr>,
    /// The bearer token `/metrics` asks for; without one only loopback clients read it.
    pub metrics_token: Option<String>,
    /// Whether webhooks may target private, loopback and link-local addresses
    /// (`--webhook-allow-private`); refused by default.
    pub webhook_allow_private: bool,
}

impl Security {
    /// The origin (`scheme://host[:port]`) of a public URL, or why it is not one.
    pub fn origin_of(url: &str) -> Result<String, String> {
        let lower = url.to_ascii_lowercase();
        let (scheme, rest) = lower
            .split_once("://")
            .filter(|(s, _)| *s == "http" || *s == "https")
            .ok_or_else(|| format!("'{url}' must start with http:// or https://"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("'{url}' must name a host (and no user)"));
        }
        Ok(format!("{scheme}://{authority}"))
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_origin.as_deref().is_some_and(|o| o.starts_with("https://"))
    }

    pub fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the last address
    /// of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(&self, parts: &Parts) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|a| a.trim().parse::<IpAddr>())
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.into_iter().rev() {
            match hop {
                Ok(ip) if self.trusted_proxies.contains(&ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client, // an unparseable hop: trust nothing before it
            }
        }
        client
    }

    /// Whether a request authenticated by the session cookie comes from this server's own
    /// pages. `Sec-Fetch-Site` (every current browser) must say `same-origin` (or `none`: the
    /// user typed the address); `Origin`, when sent, must be this server's. A request that
    /// changes something, or opens a live stream, must carry one of the two: browsers always
    /// do, and only browsers carry the cookie by themselves.
    pub fn check_same_origin(&self, parts: &Parts, live: bool) -> Result<(), ApiError> {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let site = header("sec-fetch-site");
        if let Some(site) = site {
            if site != "same-origin" && site != "none" {
                return Err(cross_origin(&format!("Sec-Fetch-Site is '{site}'")));
            }
        }
        let origin = header("origin");
        if let Some(origin) = origin {
            if !self.is_own_origin(origin, header("host")) {
                return Err(cross_origin(&format!("Origin '{origin}' is not this server")));
            }
        }
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if (changes || live) && site.is_none() && origin.is_none() {
            return Err(cross_origin("neither Origin nor Sec-Fetch-Site was sent"));
        }
        Ok(())
    }

    fn is_own_origin(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.to_ascii_lowercase();
        if self.public_origin.as_deref() == Some(origin.as_str()) {
            return true;
        }
        let authority = origin.split_once("://").map(|(_, a)| a);
        authority.is_some() && authority == host.map(str::to_ascii_lowercase).as_deref()
    }
}

fn cross_origin(why: &str) -> ApiError {
    forbidden(format!(
        "a request authenticated by the session cookie must come from this server's own pages ({why}); \
         other clients use an API key"
    ))
}

/// A body sent with the session cookie must be JSON (or NDJSON), or a file upload
/// (`application/octet-stream`, `POST /imports`): the types an HTML form can send without
/// asking (`text/plain`, form encodings) would let another page write, and these need a CORS
/// preflight this server never grants.
pub fn check_json_body(parts: &Parts) -> Result<(), ApiError> {
    let has_body = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|l| l.as_bytes() != b"0")
        || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return Ok(());
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let allowed = ["application/json", "application/x-ndjson", "application/octet-stream"];
    if allowed.iter().any(|a| essence.eq_ignore_ascii_case(a)) {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!("Content-Type: a body must be application/json, not '{content_type}'"),
        ))
    }
}

/// The client's address (see [`Security::client_ip`]).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        Ok(ClientIp(state.security.client_ip(parts)))
    }
}

/// A browser login: JSON from this server's own pages (no logging a victim into an
/// attacker's account from another page).
pub struct SameOriginJson;

impl FromRequestParts<Arc<AppState>> for SameOriginJson {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        check_json_body(parts)?;
        if parts.headers.contains_key(header::ORIGIN) || parts.headers.contains_key("sec-fetch-site") {
            state.security.check_same_origin(parts, false)?;
        }
        Ok(SameOriginJson)
    }
}

/// Access to `/metrics`: the configured bearer token, or, without one, a loopback client.
pub struct MetricsAccess;

impl FromRequestParts<Arc<AppState>> for MetricsAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let security = &state.security;
        match &security.metrics_token {
            Some(token) => {
                let given = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                let matches =
                    given.is_some_and(|g| crate::access::hash_secret(g.trim()) == crate::access::hash_secret(token));
                if matches {
                    Ok(MetricsAccess)
                } else {
                    Err(ApiError::new(
                        Code::Unauthorized,
                        "/metrics needs Authorization: Bearer <the --metrics-token>",
                    ))
                }
            }
            None if security.client_ip(parts).is_loopback() => Ok(MetricsAccess),
            None => Err(forbidden(
                "/metrics answers only loopback clients unless the server has a --metrics-token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(peer: &str, headers: &[(&str, &str)]) -> Parts {
        let mut r = Request::builder().method("POST").uri("/api/v1/users");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let (mut parts, ()) = r.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let s = Security {
            trusted_proxies: vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()],
            ..Security::default()
        };
        let xff = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.2")];
        assert_eq!(s.client_ip(&parts("10.0.0.1:5", &xff)).to_string(), "203.0.113.9");
        assert_eq!(s.client_ip(&parts("198.51.100.7:5", &xff)).to_string(), "198.51.100.7");
        assert_eq!(s.client_ip(&parts("10.0.0.1:5", &[])).to_string(), "10.0.0.1");
    }

    #[test]
    fn cookie_requests_must_come_from_the_own_origin() {
        let s = Security::default();
        let own = [("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")];
        assert!(s.check_same_origin(&parts("127.0.0.1:1", &own), false).is_ok());
        let other = [("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:9090")];
        assert!(s.check_same_origin(&parts("127.0.0.1:1", &other), false).is_err());
        let site = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")];
        assert!(s.check_same_origin(&parts("127.0.0.1:1", &site), false).is_err());
        assert!(s.check_same_origin(&parts("127.0.0.1:1", &[]), false).is_err());
        assert_eq!(
            Security::origin_of("HTTPS://Board.Example.com:8443/x?y").unwrap(),
            "https://board.example.com:8443"
        );
        assert!(Security::origin_of("ftp://x").is_err());
    }
}
