//! Every benchmark explains its flags with `--help` (and exits 0), and rejects an unknown flag
//! with a message rather than a stack trace.

use std::process::Command;

const BINARIES: [&str; 5] = [
    env!("CARGO_BIN_EXE_dialboard-bench"),
    env!("CARGO_BIN_EXE_compare"),
    env!("CARGO_BIN_EXE_floor"),
    env!("CARGO_BIN_EXE_live"),
    env!("CARGO_BIN_EXE_rollup_cost"),
];

#[test]
fn every_benchmark_has_help() {
    for bin in BINARIES {
        let out = Command::new(bin).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{bin} --help: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("Usage:") && text.contains("--help"), "{bin}: {text}");
        let wrong = Command::new(bin).arg("--colour").output().unwrap();
        let err = String::from_utf8_lossy(&wrong.stderr);
        assert_eq!(wrong.status.code(), Some(2), "{bin} --colour: {err}");
        assert!(err.contains("--colour") && !err.contains("backtrace"), "{bin}: {err}");
    }
}
