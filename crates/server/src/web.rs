//! The web dashboard (`web/`), embedded at build time: hashed assets are cached for good, text
//! is sent gzipped to browsers that accept it, and every other page path gets `index.html`,
//! whose script routes in the browser.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// An embedded file: its URL path, its bytes, and its bytes gzipped (text only).
type Embedded = (&'static str, &'static [u8], Option<&'static [u8]>);

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

type Asset = (&'static [u8], Option<&'static [u8]>);

fn asset(path: &str) -> Option<Asset> {
    ASSETS.iter().find(|(p, ..)| *p == path).map(|(_, raw, gz)| (*raw, *gz))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Serves the dashboard for any GET outside the API.
pub async fn serve(method: Method, uri: Uri, request: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = uri.path();
    let (path, (raw, gzipped)) = match asset(path) {
        Some(found) if path != "/index.html" => (path, found),
        // Unknown files under /assets are a stale page asking for an old build: a 404, not HTML.
        _ if path.starts_with("/assets/") => return StatusCode::NOT_FOUND.into_response(),
        _ => match asset("/index.html") {
            Some(found) => ("/index.html", found),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    "the web dashboard was not built into this binary: run `npm ci && npm run build` in web/",
                )
                    .into_response()
            }
        },
    };
    let cache = if path.starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let accepts_gzip = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let body = match gzipped {
        Some(gz) if accepts_gzip => gz,
        _ => raw,
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if gzipped.is_some() {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if accepts_gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if path == "/index.html" {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    response
}
