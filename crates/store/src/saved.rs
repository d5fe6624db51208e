//! Saved items — reports and dashboards (SPEC §7) — with every version kept. An item is a JSON
//! body (what the server validated: name, question, widgets, sharing …) with an owner; every
//! change adds a version, and a restore adds a copy of an older one, so history only grows.
//! The same statements on both databases (see `sql.rs`); run each change in a transaction.
//!
//! Times are epoch seconds passed in by the caller.

use crate::sql::{Row, Sql, Val};
use crate::{Result, StoreError};
use serde::Serialize;
use serde_json::Value;

/// What kind of item: each kind is its own namespace of ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedKind {
    Report,
    Dashboard,
    /// A scheduled delivery of a report or view (SPEC §7); its runs are `schedules`.
    Schedule,
}

impl SavedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SavedKind::Report => "report",
            SavedKind::Dashboard => "dashboard",
            SavedKind::Schedule => "schedule",
        }
    }
}

/// An item's current version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedItem {
    pub id: String,
    /// Who created it (as the server names callers); they, and admins, may change it.
    pub owner: String,
    pub version: i64,
    pub body: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One version of an item, as it was saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavedVersion {
    pub version: i64,
    pub body: Value,
    /// Who saved this version.
    pub author: String,
    pub created_at: i64,
}

fn json(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Database(format!("a saved item's JSON: {e}")))
}

const ITEM_COLUMNS: &str = "id, owner, version, body, created_at, updated_at";

fn item_from_row(r: &Row) -> Result<SavedItem> {
    Ok(SavedItem {
        id: r.text(0)?,
        owner: r.text(1)?,
        version: r.int(2)?,
        body: json(&r.text(3)?)?,
        created_at: r.int(4)?,
        updated_at: r.int(5)?,
    })
}

fn add_version(db: &mut impl Sql, tenant_id: i64, kind: SavedKind, id: &str, version: &SavedVersion) -> Result<()> {
    db.execute(
        "INSERT INTO saved_item_versions (tenant_id, kind, id, version, body, author, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            tenant_id.into(),
            kind.as_str().into(),
            id.into(),
            version.version.into(),
            version.body.to_string().into(),
            version.author.as_str().into(),
            version.created_at.into(),
        ],
    )?;
    Ok(())
}

/// Creates an item at version 1 under a new random id.
pub fn create(
    db: &mut impl Sql,
    tenant_id: i64,
    kind: SavedKind,
    owner: &str,
    body: &Value,
    now: i64,
) -> Result<SavedItem> {
    let id = crate::jobs::new_id();
    db.execute(
        "INSERT INTO saved_items (tenant_id, kind, id, owner, version, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 1, $5, $6, $6)",
        &[
            tenant_id.into(),
            kind.as_str().into(),
            id.as_str().into(),
            owner.into(),
            body.to_string().into(),
            now.into(),
        ],
    )?;
    let first = SavedVersion {
        version: 1,
        body: body.clone(),
        author: owner.to_string(),
        created_at: now,
    };
    add_version(db, tenant_id, kind, &id, &first)?;
    get(db, tenant_id, kind, &id)?.ok_or_else(|| StoreError::Database("a saved item vanished".into()))
}

pub fn get(db: &mut impl Sql, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Option<SavedItem>> {
    db.query_opt(
        &format!("SELECT {ITEM_COLUMNS} FROM saved_items WHERE tenant_id = $1 AND kind = $2 AND id = $3"),
        &[tenant_id.into(), kind.as_str().into(), id.into()],
    )?
    .as_ref()
    .map(item_from_row)
    .transpose()
}

/// Every item of a kind in the tenant, most recently changed first (the server keeps those
/// the caller may see).
pub fn list(db: &mut impl Sql, tenant_id: i64, kind: SavedKind) -> Result<Vec<SavedItem>> {
    db.query(
        &format!(
            "SELECT {ITEM_COLUMNS} FROM saved_items WHERE tenant_id = $1 AND kind = $2 ORDER BY updated_at DESC, id"
        ),
        &[tenant_id.into(), kind.as_str().into()],
    )?
    .iter()
    .map(item_from_row)
    .collect()
}

/// Every tenant's items of a kind, with their tenant (what a server's scheduler walks).
pub fn list_all(db: &mut impl Sql, kind: SavedKind) -> Result<Vec<(i64, SavedItem)>> {
    db.query(
        &format!("SELECT {ITEM_COLUMNS}, tenant_id FROM saved_items WHERE kind = $1 ORDER BY tenant_id, id"),
        &[kind.as_str().into()],
    )?
    .iter()
    .map(|r| Ok((r.int(6)?, item_from_row(r)?)))
    .collect()
}

/// Saves `body` as the item's next version; `None` if there is no such item. The version is
/// taken by the UPDATE itself, so two concurrent edits get two versions, never one twice.
pub fn update(
    db: &mut impl Sql,
    tenant_id: i64,
    kind: SavedKind,
    id: &str,
    author: &str,
    body: &Value,
    now: i64,
) -> Result<Option<SavedItem>> {
    let key: [Val; 3] = [tenant_id.into(), kind.as_str().into(), id.into()];
    let Some(row) = db.query_opt(
        &format!(
            "UPDATE saved_items SET version = version + 1, body = $4, updated_at = $5 \
             WHERE tenant_id = $1 AND kind = $2 AND id = $3 RETURNING {ITEM_COLUMNS}"
        ),
        &[&key[..], &[body.to_string().into(), now.into()]].concat(),
    )?
    else {
        return Ok(None);
    };
    let item = item_from_row(&row)?;
    let version = SavedVersion {
        version: item.version,
        body: body.clone(),
        author: author.to_string(),
        created_at: now,
    };
    add_version(db, tenant_id, kind, id, &version)?;
    Ok(Some(item))
}

/// Deletes an item and its history; `false` if there was none.
pub fn delete(db: &mut impl Sql, tenant_id: i64, kind: SavedKind, id: &str) -> Result<bool> {
    let key: [Val; 3] = [tenant_id.into(), kind.as_str().into(), id.into()];
    db.execute(
        "DELETE FROM saved_item_versions WHERE tenant_id = $1 AND kind = $2 AND id = $3",
        &key,
    )?;
    let n = db.execute(
        "DELETE FROM saved_items WHERE tenant_id = $1 AND kind = $2 AND id = $3",
        &key,
    )?;
    Ok(n > 0)
}

/// An item's versions, newest first (empty if there is no such item).
pub fn versions(db: &mut impl Sql, tenant_id: i64, kind: SavedKind, id: &str) -> Result<Vec<SavedVersion>> {
    db.query(
        "SELECT version, body, author, created_at FROM saved_item_versions \
         WHERE tenant_id = $1 AND kind = $2 AND id = $3 ORDER BY version DESC",
        &[tenant_id.into(), kind.as_str().into(), id.into()],
    )?
    .iter()
    .map(|r| {
        Ok(SavedVersion {
            version: r.int(0)?,
            body: json(&r.text(1)?)?,
            author: r.text(2)?,
            created_at: r.int(3)?,
        })
    })
    .collect()
}

/// One change to a saved item, for [`apply`] (one store method serves them all).
#[derive(Debug, Clone)]
pub enum SavedChange {
    Create { owner: String, body: Value },
    Update { id: String, author: String, body: Value },
    Delete { id: String },
}

/// What a change did: the item as it now is (`None` after a delete, or when there was no
/// such item to change), and whether anything changed.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedOutcome {
    pub item: Option<SavedItem>,
    pub changed: bool,
}

/// Applies a change (run it in a transaction).
pub fn apply(
    db: &mut impl Sql,
    tenant_id: i64,
    kind: SavedKind,
    change: &SavedChange,
    now: i64,
) -> Result<SavedOutcome> {
    Ok(match change {
        SavedChange::Create { owner, body } => SavedOutcome {
            item: Some(create(db, tenant_id, kind, owner, body, now)?),
            changed: true,
        },
        SavedChange::Update { id, author, body } => {
            let item = update(db, tenant_id, kind, id, author, body, now)?;
            SavedOutcome {
                changed: item.is_some(),
                item,
            }
        }
        SavedChange::Delete { id } => SavedOutcome {
            item: None,
            changed: delete(db, tenant_id, kind, id)?,
        },
    })
}
