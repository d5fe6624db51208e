//! The embedded dashboard: page paths get the app, assets are cached for good and gzipped for
//! browsers that accept it, and the API keeps its own JSON 404s.

use crate::helpers::TestApp;
use std::io::Read;

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

#[tokio::test]
async fn the_dashboard_is_served_at_every_page_path() {
    let app = TestApp::spawn("UTC").await;
    let get = |path: &str, gzip: bool| {
        let request = app.client.get(format!("{}{path}", app.url));
        let request = if gzip {
            request.header("accept-encoding", "gzip, deflate")
        } else {
            request
        };
        async move { request.send().await.unwrap() }
    };
    let index = get("/", false).await;
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    assert!(index.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'self'"));
    let html = index.text().await.unwrap();
    // Any page path (a shared link to a view) gets the same app.
    let team = get("/team?team=t1&preset=last_7_days", false).await;
    assert_eq!(team.status(), 200);
    assert_eq!(team.text().await.unwrap(), html);
    // The script it names is served, cached for good, gzipped when accepted.
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a script in index.html");
    assert!(script.starts_with("/assets/"), "{script}");
    let plain = get(script, false).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(plain.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let zipped = get(script, true).await;
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zipped = zipped.bytes().await.unwrap();
    assert!(zipped.len() * 2 < plain.len(), "gzip should at least halve the script");
    assert_eq!(gunzip(&zipped), plain.to_vec());
    // A stale asset name is a 404, not the app's HTML; the API keeps its JSON errors.
    assert_eq!(get("/assets/index-gone.js", false).await.status(), 404);
    let api = get("/api/v1/nothing-here", false).await;
    assert_eq!(api.status(), 404);
    assert_eq!(
        api.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let post = app.client.post(format!("{}/team", app.url)).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
