//! The web dashboard in a real browser: runs `web/tests/` (playwright-core driving Chromium)
//! against this build's `dialboard demo`. Needs Node.js and Chromium (`apt-get install chromium`,
//! or `CHROMIUM=/path/to/chrome`); installs `web/node_modules` with `npm ci` when it is missing.
//! Screenshots of every page land in `web/test-artifacts/`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_dashboard_works_in_a_browser() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: install it (apt-get install chromium) or set CHROMIUM"
    );
    if !web.join("node_modules/playwright-core").exists() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&web)
            .status()
            .expect("the browser tests need Node.js and npm");
        assert!(npm.success(), "npm ci failed in web/");
    }
    let run = Command::new("node")
        .args(["--test", "--test-reporter=spec", "tests/"])
        .current_dir(&web)
        .env("DIALBOARD_BIN", env!("CARGO_BIN_EXE_dialboard"))
        .env("CHROMIUM", &chromium)
        .output()
        .expect("the browser tests need Node.js");
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "browser tests failed:\n{report}");
}
