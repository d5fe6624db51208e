//! `/api/v1/reports` and `/api/v1/dashboards` (SPEC §7): one set of handlers for both kinds of
//! saved item (the route carries its kind, as the directory's do). Create, list what the
//! caller may see, read, replace (a new version), delete, list versions, restore one (a new
//! version equal to it). Who sees and who changes an item is `reports::may_see` /
//! `may_change`; what a valid item is, `reports::report_def` / `dashboard_def`. Every change
//! is audited.

use super::auth::Principal;
use super::error::{ApiError, Body, Code};
use super::AppState;
use crate::access::audit;
use crate::reports::{dashboard_def, may_change, may_see, report_def};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use dialboard_store::saved::{SavedChange, SavedItem, SavedKind};
use dialboard_store::Scope;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What every saved item shows besides its definition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SavedMeta {
    /// Whether the caller may change it (its owner or an admin).
    pub can_edit: bool,
    /// RFC 3339.
    #[schema(required = true)]
    pub created_at: Option<String>,
    pub id: String,
    /// Who created it, as the server names callers.
    pub owner: String,
    #[schema(required = true)]
    pub updated_at: Option<String>,
    /// 1 for a new item, one more for each edit.
    pub version: i64,
}

/// An item as the API shows it: its stored definition's fields and [`SavedMeta`]'s.
#[derive(Debug, Serialize)]
pub struct Shown {
    #[serde(flatten)]
    body: Value,
    #[serde(flatten)]
    meta: SavedMeta,
    /// A schedule's next run (RFC 3339; `null` while paused).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_run: Option<Value>,
}

/// A report's definition: a general query (SPEC §5) or a built-in view with its parameters,
/// and how it is drawn and shared (what `reports::report_def` accepts and stores).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReportDef {
    pub name: String,
    pub description: String,
    /// The question as a general query; absent for a view's.
    #[schema(schema_with = super::openapi::query_schema, required = false)]
    pub query: Option<Value>,
    /// The question as a built-in view (`/catalogue`'s views), with its parameters.
    pub view: Option<String>,
    pub params: Option<BTreeMap<String, String>>,
    /// One of `/catalogue`'s visualizations.
    pub visualization: String,
    pub sharing: crate::reports::Sharing,
}

/// A schedule's recurrence, at a local time in a zone.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Recurrence {
    /// `daily`, `weekdays`, `weekly` (on `days`), `monthly` (on `day_of_month`) or `cron`.
    pub frequency: String,
    /// Local time of day, `HH:MM`.
    pub time: Option<String>,
    /// IANA zone.
    pub timezone: String,
    /// `weekly`: each of sun, mon, tue, wed, thu, fri, sat.
    pub days: Option<Vec<String>>,
    /// `monthly`: 1 to 31, or `"last"`.
    pub day_of_month: Option<DayOfMonth>,
    /// `cron`: a cron expression.
    pub cron: Option<String>,
}

/// A monthly recurrence's day: 1 to 31, or `"last"`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum DayOfMonth {
    Day(u8),
    /// `"last"`.
    Last(String),
}

/// Who receives a schedule's copy: an e-mail address, or each member of a team.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Recipient {
    Email(String),
    Team { team: String },
}

/// A schedule's definition (what `schedules::schedule_def` accepts and stores): a saved
/// report or a view, when it runs, to whom, as what.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleDef {
    pub name: String,
    pub description: Option<String>,
    /// The saved report it sends; or `view` with `params`.
    pub report_id: Option<String>,
    pub view: Option<String>,
    pub params: Option<BTreeMap<String, String>>,
    pub recurrence: Recurrence,
    pub recipients: Vec<Recipient>,
    /// `pdf`, `xlsx`, `csv` or `html`.
    pub format: String,
    pub paused: Option<bool>,
    /// A webhook told of each delivery.
    pub webhook_id: Option<String>,
    /// Whose reach the copies are rendered with: the saver's (`{"user": e-mail}`), or a
    /// key's (`{"reach": …}`); set by the server.
    #[schema(value_type = std::collections::BTreeMap<String, serde_json::Value>, required = false)]
    pub run_as: Value,
}

/// The answers of one kind of saved item: the item (its definition's fields and
/// [`SavedMeta`]'s), the list, and the versions. The handlers serve every kind (the route
/// carries it), so these types describe, kind by kind, what [`Shown`] and [`VersionShown`]
/// serialize.
macro_rules! saved_answers {
    ($item:ident, $def:ty, $list:ident, $plural:ident, $version:ident, $one:ident, $versions:ident $(, $extra:ident: $extra_ty:ty)?) => {
        #[derive(Debug, Serialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $item {
            #[serde(flatten)]
            pub def: $def,
            #[serde(flatten)]
            pub meta: SavedMeta,
            $(#[schema(required = true)] pub $extra: $extra_ty,)?
        }

        #[derive(Debug, Serialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $list {
            pub $plural: Vec<$item>,
        }

        /// One saved version, as it was.
        #[derive(Debug, Serialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $version {
            pub author: String,
            #[schema(required = true)]
            pub created_at: Option<String>,
            pub $one: $def,
            pub version: i64,
        }

        /// Every version, newest first.
        #[derive(Debug, Serialize, utoipa::ToSchema)]
        #[allow(dead_code)]
        pub struct $versions {
            pub versions: Vec<$version>,
        }
    };
}

saved_answers!(
    Report,
    ReportDef,
    Reports,
    reports,
    ReportVersion,
    report,
    ReportVersions
);
saved_answers!(
    Dashboard,
    crate::reports::DashboardDef,
    Dashboards,
    dashboards,
    DashboardVersion,
    dashboard,
    DashboardVersions
);
saved_answers!(Schedule, ScheduleDef, Schedules, schedules, ScheduleVersion, schedule, ScheduleVersions, next_run: Option<String>);

/// One version as the API shows it, its definition under the kind's name (`report`, …).
#[derive(Debug, Serialize)]
pub struct VersionShown {
    author: String,
    created_at: Value,
    #[serde(flatten)]
    def: BTreeMap<&'static str, Value>,
    version: i64,
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

fn error_code(kind: SavedKind) -> Code {
    match kind {
        SavedKind::Report => Code::InvalidReport,
        SavedKind::Dashboard => Code::InvalidDashboard,
        SavedKind::Schedule => Code::InvalidSchedule,
    }
}

/// Checks a body as `kind` requires; returns what is stored.
async fn validated(state: &AppState, principal: &Principal, kind: SavedKind, body: &Value) -> Result<Value, ApiError> {
    let checked = match kind {
        SavedKind::Report => report_def(&state.store, principal.tenant_id, state.now(), body)
            .await
            .map(|d| d.to_json()),
        SavedKind::Dashboard => dashboard_def(&state.store, principal, body).await.map(|d| d.to_json()),
        SavedKind::Schedule => crate::schedules::schedule_def(state, principal, body).await,
    };
    checked.map_err(|fields| ApiError::invalid(error_code(kind), fields))
}

fn seconds(s: i64) -> Value {
    jiff::Timestamp::from_second(s).map_or(Value::Null, |t| json!(t.to_string()))
}

fn shown_item(principal: &Principal, item: &SavedItem, next_run: Option<Value>) -> Shown {
    let rfc3339 = |s: i64| seconds(s).as_str().map(str::to_string);
    Shown {
        body: item.body.clone(),
        meta: SavedMeta {
            can_edit: may_change(principal, item),
            created_at: rfc3339(item.created_at),
            id: item.id.clone(),
            owner: item.owner.clone(),
            updated_at: rfc3339(item.updated_at),
            version: item.version,
        },
        next_run,
    }
}

/// An item as the API shows it: its body's fields, and who owns it, its version, whether the
/// caller may change it.
pub fn item_json(principal: &Principal, item: &SavedItem) -> Value {
    serde_json::to_value(shown_item(principal, item, None)).expect("an item serializes")
}

/// After an item was saved: a schedule's next run is stored for the ticker.
async fn saved(state: &AppState, kind: SavedKind, tenant_id: i64, item: &SavedItem) -> Result<(), ApiError> {
    if kind == SavedKind::Schedule {
        crate::schedules::plan(&state.store, tenant_id, item).await?;
    }
    Ok(())
}

/// An item as its kind shows it: a schedule also says when it runs next.
fn shown(state: &AppState, principal: &Principal, kind: SavedKind, item: &SavedItem) -> Shown {
    let next_run = (kind == SavedKind::Schedule).then(|| crate::schedules::next_run(&item.body, state.now()));
    shown_item(principal, item, next_run)
}

fn not_found(kind: SavedKind, id: &str) -> ApiError {
    ApiError::not_found(format!("no {} '{id}'", kind.as_str()))
}

/// The item, if the caller may see it (one they may not see is as absent as a missing one).
pub async fn visible(
    state: &AppState,
    principal: &Principal,
    kind: SavedKind,
    id: &str,
) -> Result<SavedItem, ApiError> {
    principal.require(Scope::Read)?;
    let item = state.store.saved_item(principal.tenant_id, kind, id).await?;
    item.filter(|i| may_see(principal, i))
        .ok_or_else(|| not_found(kind, id))
}

/// The item, if the caller may change it: 404 if they do not see it, 403 if they only see it.
async fn changeable(state: &AppState, principal: &Principal, kind: SavedKind, id: &str) -> Result<SavedItem, ApiError> {
    let item = visible(state, principal, kind, id).await?;
    if !may_change(principal, &item) {
        return Err(super::auth::forbidden(format!(
            "only the {}'s owner or an admin may change it",
            kind.as_str()
        )));
    }
    Ok(item)
}

async fn audited(
    state: &AppState,
    principal: &Principal,
    kind: SavedKind,
    action: &str,
    item: &SavedItem,
) -> Result<(), ApiError> {
    audit(
        &state.store,
        principal.tenant_id,
        &principal.actor_name(),
        &format!("{}_{action}", kind.as_str()),
        Some(&item.id),
        json!({"version": item.version, "name": item.body["name"]}),
    )
    .await?;
    Ok(())
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Body(body): Body,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    principal.require(Scope::Read)?;
    let body = validated(&state, &principal, kind, &json_body(&body)?).await?;
    let change = SavedChange::Create {
        owner: principal.actor_name(),
        body,
    };
    let outcome = state
        .store
        .change_saved(principal.tenant_id, kind, change, state.now())
        .await?;
    let item = outcome
        .item
        .ok_or_else(|| ApiError::not_found("the new item vanished"))?;
    saved(&state, kind, principal.tenant_id, &item).await?;
    audited(&state, &principal, kind, "created", &item).await?;
    Ok((StatusCode::CREATED, Json(shown(&state, &principal, kind, &item))))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
) -> Result<Json<BTreeMap<String, Vec<Shown>>>, ApiError> {
    principal.require(Scope::Read)?;
    let items = state.store.saved_items(principal.tenant_id, kind).await?;
    let shown: Vec<Shown> = items
        .iter()
        .filter(|i| may_see(&principal, i))
        .map(|i| shown(&state, &principal, kind, i))
        .collect();
    let plural = format!("{}s", kind.as_str());
    Ok(Json(BTreeMap::from([(plural, shown)])))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Shown>, ApiError> {
    let item = visible(&state, &principal, kind, &id).await?;
    Ok(Json(shown(&state, &principal, kind, &item)))
}

/// What is stored for `input` as the next version of `item`, checked as `principal` writes it.
/// A schedule runs as its owner (`run_as`, which `schedule_def` sets to whoever saves it, and
/// which is no part of what a caller writes — a restored version carries its own): when someone
/// else changes it (an admin may), it keeps running as its owner, with their reach.
async fn revised(
    state: &AppState,
    principal: &Principal,
    kind: SavedKind,
    item: &SavedItem,
    mut input: Value,
) -> Result<Value, ApiError> {
    if let (SavedKind::Schedule, Some(fields)) = (kind, input.as_object_mut()) {
        fields.remove("run_as");
    }
    let mut body = validated(state, principal, kind, &input).await?;
    if kind == SavedKind::Schedule && item.owner != principal.actor_name() {
        body["run_as"] = item.body["run_as"].clone();
    }
    Ok(body)
}

/// Saves `body` as the item's next version.
async fn save_version(
    state: &AppState,
    principal: &Principal,
    kind: SavedKind,
    id: &str,
    body: Value,
    action: &str,
) -> Result<Json<Shown>, ApiError> {
    let change = SavedChange::Update {
        id: id.to_string(),
        author: principal.actor_name(),
        body,
    };
    let outcome = state
        .store
        .change_saved(principal.tenant_id, kind, change, state.now())
        .await?;
    let item = outcome.item.ok_or_else(|| not_found(kind, id))?;
    saved(state, kind, principal.tenant_id, &item).await?;
    audited(state, principal, kind, action, &item).await?;
    Ok(Json(shown(state, principal, kind, &item)))
}

pub async fn replace(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Path(id): Path<String>,
    Body(body): Body,
) -> Result<Json<Shown>, ApiError> {
    let item = changeable(&state, &principal, kind, &id).await?;
    let body = revised(&state, &principal, kind, &item, json_body(&body)?).await?;
    save_version(&state, &principal, kind, &id, body, "updated").await
}

pub async fn remove(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let item = changeable(&state, &principal, kind, &id).await?;
    let change = SavedChange::Delete { id: id.clone() };
    state
        .store
        .change_saved(principal.tenant_id, kind, change, state.now())
        .await?;
    if kind == SavedKind::Schedule {
        crate::schedules::forget(&state.store, principal.tenant_id, &id).await?;
    }
    audited(&state, &principal, kind, "deleted", &item).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn versions(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<BTreeMap<&'static str, Vec<VersionShown>>>, ApiError> {
    visible(&state, &principal, kind, &id).await?;
    let versions = state.store.saved_versions(principal.tenant_id, kind, &id).await?;
    let shown: Vec<VersionShown> = versions
        .into_iter()
        .map(|v| VersionShown {
            author: v.author,
            created_at: seconds(v.created_at),
            def: BTreeMap::from([(kind.as_str(), v.body)]),
            version: v.version,
        })
        .collect();
    Ok(Json(BTreeMap::from([("versions", shown)])))
}

/// `POST …/versions/{n}/restore`: version `n` becomes the next version (checked again, since
/// what it names — users, teams, reports — may have changed since).
pub async fn restore(
    State(state): State<Arc<AppState>>,
    Extension(kind): Extension<SavedKind>,
    principal: Principal,
    Path((id, n)): Path<(String, String)>,
) -> Result<Json<Shown>, ApiError> {
    let item = changeable(&state, &principal, kind, &id).await?;
    let wanted: Option<i64> = n.parse().ok();
    let versions = state.store.saved_versions(principal.tenant_id, kind, &id).await?;
    let old = versions
        .into_iter()
        .find(|v| Some(v.version) == wanted)
        .ok_or_else(|| ApiError::not_found(format!("{} '{id}' has no version '{n}'", kind.as_str())))?;
    let body = revised(&state, &principal, kind, &item, old.body).await?;
    save_version(&state, &principal, kind, &id, body, "restored").await
}
