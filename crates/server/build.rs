//! Embeds the web dashboard's build (`web/dist`, made by `npm run build` in `web/` and committed)
//! into the binary, so `dialboard demo` alone serves the UI.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    // Read at run time, not compiled in: one build script may serve several checkouts.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest).join("../../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    }
    files.sort();
    let mut code = String::from("/// The web build: (URL path, bytes).\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for file in &files {
        let url = file
            .strip_prefix(&dist)
            .expect("under dist")
            .to_string_lossy()
            .replace('\\', "/");
        let path = file.canonicalize().expect("readable asset");
        writeln!(
            code,
            "    (\"/{url}\", include_bytes!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("web_assets.rs");
    std::fs::write(out, code).expect("write web_assets.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read web/dist") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
