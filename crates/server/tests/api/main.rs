//! HTTP tests against the real router on a temporary SQLite database, and against the real
//! binary for crash durability.

mod access;
mod analytics;
mod directory;
mod exports;
mod helpers;
mod ingest;
mod live;
mod nodes;
mod process;
mod query;
mod web;
