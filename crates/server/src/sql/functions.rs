//! PostgreSQL's functions as the catalog's SQLite knows them: what clients call at connect and
//! in their catalog queries (`version()`, `current_schema()`, `format_type`, `pg_get_expr`,
//! `pg_table_is_visible`, privileges …). Arrays are JSON arrays in SQLite.

use super::catalog::{format_type, relation_name, relation_oid, type_oid, SessionInfo, SERVER_VERSION};
use super::tables::tables;
use regex::Regex;
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use std::cell::RefCell;
use std::collections::HashMap;

fn text(ctx: &Context, i: usize) -> Option<String> {
    match ctx.get_raw(i) {
        ValueRef::Null => None,
        ValueRef::Integer(v) => Some(v.to_string()),
        ValueRef::Real(v) => Some(v.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    }
}

fn int(ctx: &Context, i: usize) -> Option<i64> {
    match ctx.get_raw(i) {
        ValueRef::Integer(v) => Some(v),
        ValueRef::Real(v) => Some(v as i64),
        ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
        _ => None,
    }
}

const FLAGS: FunctionFlags = FunctionFlags::SQLITE_UTF8;

fn constant(db: &Connection, name: &str, value: Value) -> rusqlite::Result<()> {
    db.create_scalar_function(name, -1, FLAGS | FunctionFlags::SQLITE_DETERMINISTIC, move |_| {
        Ok(value.clone())
    })
}

/// Functions that do not depend on the session.
pub fn register(db: &Connection) -> rusqlite::Result<()> {
    let version = format!(
        "PostgreSQL {SERVER_VERSION} (dialboard {}) on x86_64-pc-linux-gnu, read-only SQL endpoint",
        env!("CARGO_PKG_VERSION")
    );
    constant(db, "version", Value::Text(version))?;
    constant(db, "current_schema", Value::Text("public".into()))?;
    constant(db, "current_schemas", Value::Text(r#"["pg_catalog","public"]"#.into()))?;
    constant(db, "pg_get_userbyid", Value::Text("dialboard".into()))?;
    constant(db, "pg_encoding_to_char", Value::Text("UTF8".into()))?;
    constant(db, "pg_backend_pid", Value::Integer(1))?;
    constant(db, "txid_current", Value::Integer(1))?;
    constant(db, "pg_is_in_recovery", Value::Integer(0))?;
    for visible in [
        "pg_table_is_visible",
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_column_privilege",
        "has_any_column_privilege",
    ] {
        constant(db, visible, Value::Integer(1))?;
    }
    for zero in [
        "pg_total_relation_size",
        "pg_relation_size",
        "pg_table_size",
        "pg_indexes_size",
        "pg_relation_is_updatable",
        "pg_relation_is_publishable",
        "pg_column_is_updatable",
    ] {
        constant(db, zero, Value::Integer(0))?;
    }
    // Definitions of things virtual tables do not have: defaults, indexes, constraints ….
    for none in [
        "pg_get_expr",
        "pg_get_indexdef",
        "pg_get_constraintdef",
        "pg_get_triggerdef",
        "pg_get_viewdef",
        "pg_get_partkeydef",
        "pg_get_statisticsobjdef_columns",
        "pg_get_serial_sequence",
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_ruledef",
        "shobj_description",
        "pg_get_partition_constraintdef",
        "array_upper",
        "array_lower",
    ] {
        constant(db, none, Value::Null)?;
    }
    db.create_scalar_function("format_type", -1, FLAGS, |ctx| {
        Ok(int(ctx, 0).and_then(format_type).map(str::to_string))
    })?;
    let descriptions = descriptions();
    let table_descriptions = descriptions.clone();
    db.create_scalar_function("obj_description", -1, FLAGS, move |ctx| {
        Ok(int(ctx, 0).and_then(|oid| table_descriptions.get(&(oid, 0)).cloned()))
    })?;
    db.create_scalar_function("col_description", 2, FLAGS, move |ctx| {
        Ok(match (int(ctx, 0), int(ctx, 1)) {
            (Some(oid), Some(n)) => descriptions.get(&(oid, n)).cloned(),
            _ => None,
        })
    })?;
    db.create_scalar_function("to_regclass", 1, FLAGS, |ctx| {
        Ok(text(ctx, 0).and_then(|n| relation_oid(&n)))
    })?;
    db.create_scalar_function(
        "to_regtype",
        1,
        FLAGS,
        |ctx| Ok(text(ctx, 0).and_then(|n| type_oid(&n))),
    )?;
    db.create_scalar_function("regclass", 1, FLAGS, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Integer(v) => Some(v),
            _ => text(ctx, 0).and_then(|n| relation_oid(&n)),
        })
    })?;
    db.create_scalar_function("regclass_name", 1, FLAGS, |ctx| Ok(int(ctx, 0).and_then(relation_name)))?;
    db.create_scalar_function("regtype", 1, FLAGS, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Integer(v) => Some(v),
            _ => text(ctx, 0).and_then(|n| type_oid(&n)),
        })
    })?;
    db.create_scalar_function("array_to_string", -1, FLAGS, |ctx| {
        let (Some(array), Some(sep)) = (text(ctx, 0), text(ctx, 1)) else {
            return Ok(None);
        };
        let items: Vec<serde_json::Value> = serde_json::from_str(&array).unwrap_or_default();
        Ok(Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
                .collect::<Vec<_>>()
                .join(&sep),
        ))
    })?;
    db.create_scalar_function("array_length", -1, FLAGS, |ctx| {
        Ok(text(ctx, 0)
            .and_then(|a| serde_json::from_str::<Vec<serde_json::Value>>(&a).ok())
            .filter(|a| !a.is_empty())
            .map(|a| a.len() as i64))
    })?;
    db.create_scalar_function("quote_ident", 1, FLAGS, |ctx| {
        Ok(text(ctx, 0).map(|s| {
            if s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                s
            } else {
                format!("\"{}\"", s.replace('"', "\"\""))
            }
        }))
    })?;
    db.create_scalar_function("pg_regex", 3, FLAGS | FunctionFlags::SQLITE_DETERMINISTIC, |ctx| {
        let (Some(value), Some(pattern)) = (text(ctx, 0), text(ctx, 1)) else {
            return Ok(None);
        };
        let insensitive = int(ctx, 2) == Some(1);
        Ok(Some(regex_match(&value, &pattern, insensitive)))
    })?;
    Ok(())
}

/// Functions that answer for the session: who is connected, to what, with which settings.
pub fn register_session(db: &Connection, session: &SessionInfo) -> rusqlite::Result<()> {
    for (name, value) in [
        ("current_user", &session.user),
        ("session_user", &session.user),
        ("user", &session.user),
        ("current_role", &session.user),
        ("current_database", &session.database),
        ("current_catalog", &session.database),
    ] {
        constant(db, name, Value::Text(value.clone()))?;
    }
    let settings = session.settings.clone();
    db.create_scalar_function("current_setting", -1, FLAGS, move |ctx| {
        Ok(text(ctx, 0).and_then(|n| settings.get(&n.to_lowercase()).cloned()))
    })?;
    db.create_scalar_function("set_config", 3, FLAGS, |ctx| Ok(text(ctx, 1)))?;
    Ok(())
}

/// Table (objsubid 0) and column descriptions by (oid, attnum).
fn descriptions() -> HashMap<(i64, i64), String> {
    let mut out = HashMap::new();
    for t in tables() {
        let Some(oid) = relation_oid(t.name) else { continue };
        out.insert((oid, 0), t.description.to_string());
        for (n, c) in t.columns.iter().enumerate() {
            out.insert((oid, n as i64 + 1), c.description.clone());
        }
    }
    out
}

thread_local! {
    static REGEXES: RefCell<HashMap<(String, bool), Option<Regex>>> = RefCell::new(HashMap::new());
}

/// PostgreSQL's `~` (POSIX regular expressions; the patterns clients send are the common subset).
fn regex_match(value: &str, pattern: &str, insensitive: bool) -> bool {
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 256 {
            cache.clear();
        }
        cache
            .entry((pattern.to_string(), insensitive))
            .or_insert_with(|| {
                regex::RegexBuilder::new(pattern)
                    .case_insensitive(insensitive)
                    .build()
                    .ok()
            })
            .as_ref()
            .is_some_and(|r| r.is_match(value))
    })
}
