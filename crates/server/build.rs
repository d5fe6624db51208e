//! Embeds the web dashboard's build (`web/dist`, made by `npm run build` in `web/` and committed)
//! into the binary, so `dialboard demo` alone serves the UI. Text assets are also embedded
//! gzipped, for browsers that accept it.

use flate2::write::GzEncoder;
use flate2::Compression;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Read at run time, not compiled in: one build script may serve several checkouts.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest).join("../../web/dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = Vec::new();
    if dist.is_dir() {
        collect(&dist, &mut files);
    }
    files.sort();
    let mut code = String::from("/// The web build: (URL path, bytes, gzipped bytes if worth it).\n");
    code.push_str("pub static ASSETS: &[Embedded] = &[\n");
    for (i, file) in files.iter().enumerate() {
        let url = file
            .strip_prefix(&dist)
            .expect("under dist")
            .to_string_lossy()
            .replace('\\', "/");
        let path = file.canonicalize().expect("readable asset");
        let bytes = std::fs::read(&path).expect("readable asset");
        let gzipped = match url.rsplit('.').next() {
            Some("js" | "css" | "html" | "svg" | "json") => {
                let mut gz = GzEncoder::new(Vec::new(), Compression::best());
                gz.write_all(&bytes).expect("gzip");
                let gz = gz.finish().expect("gzip");
                let target = out.join(format!("asset-{i}.gz"));
                std::fs::write(&target, gz).expect("write gzipped asset");
                format!("Some(include_bytes!({:?}))", target.display().to_string())
            }
            _ => "None".into(),
        };
        let raw = format!("include_bytes!({:?})", path.display().to_string());
        writeln!(code, "    (\"/{url}\", {raw}, {gzipped}),").unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("web_assets.rs"), code).expect("write web_assets.rs");
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
