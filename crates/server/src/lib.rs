//! The dialboard server: HTTP API, command line, demo generator and importer. Numbers are
//! decided in `dialboard-engine`; storage lives in `dialboard-store`.

pub mod access;
pub mod api;
pub mod cli;
pub mod config;
pub mod demo;
pub mod directory;
pub mod import;
pub mod live;
pub mod web;

use dialboard_store::sqlite::{path_from_url, Options, SqliteStore};
use dialboard_store::Store;
use std::sync::Arc;

/// Opens the store a `--database` URL names, creating and migrating it if needed.
pub fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!("--database: PostgreSQL is not supported by this build yet; use sqlite://PATH");
    }
    if !url.starts_with("sqlite:") && url.contains("://") {
        anyhow::bail!("--database: expected sqlite://PATH or postgres://..., got '{url}'");
    }
    let path = path_from_url(url);
    let store = SqliteStore::open(path, Options::default())
        .map_err(|e| anyhow::anyhow!("cannot open database '{path}': {e}"))?;
    Ok(Arc::new(store))
}
