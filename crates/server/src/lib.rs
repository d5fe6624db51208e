//! The dialboard server: HTTP API, command line, demo generator and importer. Numbers are
//! decided in `dialboard-engine`; storage lives in `dialboard-store`.

pub mod access;
pub mod alerts;
pub mod api;
pub mod badges;
pub mod cli;
pub mod config;
pub mod demo;
pub mod directory;
pub mod exports;
pub mod import;
pub mod jobs;
pub mod live;
pub mod mail;
pub mod reports;
pub mod retention;
pub mod schedules;
pub mod serve;
pub mod sources;
pub mod sql;
pub mod web;
pub mod webhooks;

use dialboard_store::pg::PgStore;
use dialboard_store::sqlite::{path_from_url, Options, SqliteStore};
use dialboard_store::Store;
use std::sync::Arc;

/// Opens the store a `--database` URL names, creating and migrating it if needed.
pub fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PgStore::open(url).map_err(|e| anyhow::anyhow!("cannot open database '{}': {e}", redacted(url)))?;
        return Ok(Arc::new(store));
    }
    if !url.starts_with("sqlite:") && url.contains("://") {
        anyhow::bail!("--database: expected sqlite://PATH or postgres://..., got '{url}'");
    }
    let path = path_from_url(url);
    let store = SqliteStore::open(path, Options::default())
        .map_err(|e| anyhow::anyhow!("cannot open database '{path}': {e}"))?;
    Ok(Arc::new(store))
}

/// `dialboard backup`: SQLite's online backup of the database a `--database` URL names, while
/// a server may be writing to it. PostgreSQL has its own tools (docs/OPERATIONS.md).
pub fn backup(url: &str, to: &std::path::Path) -> anyhow::Result<()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        anyhow::bail!(
            "--database: a PostgreSQL database is backed up with pg_dump (or a replica), not dialboard backup; see docs/OPERATIONS.md"
        );
    }
    let path = path_from_url(url);
    dialboard_store::sqlite::backup::backup(std::path::Path::new(path), to)
        .map_err(|e| anyhow::anyhow!("backup of {path} to {}: {e}", to.display()))?;
    Ok(())
}

/// A database URL without its password, for messages and logs.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redacted("postgres://me:secret@db/x"), "postgres://me:***@db/x");
        assert_eq!(super::redacted("postgres://me@db/x"), "postgres://me@db/x");
        assert_eq!(super::redacted("sqlite://a.db"), "sqlite://a.db");
    }
}
