//! HTTP tests against the real router on a temporary SQLite database, and against the real
//! binary for crash durability.

mod access;
mod alerts;
mod analytics;
mod answers;
mod backup;
mod badges;
mod comparisons;
mod directory;
mod exports;
mod hardening_auth;
mod hardening_query;
mod helpers;
mod imports;
mod ingest;
mod live;
mod nats;
mod nodes;
mod process;
mod query;
mod reports;
mod retention;
mod schedule_nodes;
mod schedules;
mod smtp;
mod sql;
mod staffing;
mod team_facts;
mod view_exports;
mod web;
mod webhooks;
