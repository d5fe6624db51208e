//! Saved reports and dashboards (SPEC §7), without HTTP: what a report or a dashboard is, how
//! one is validated (every error names its field), who may see or change one ([`Sharing`]),
//! and how a report's question is answered with the *viewer's* reach ([`run`]). The API
//! (api/reports.rs, api/dashboards.rs) is a thin layer over this; schedules and alerts call it
//! directly. Items are stored with their versions by `dialboard_store::saved`.

pub mod run;
pub mod tables;
pub mod views;

use crate::api::auth::{Actor, Principal, Reach};
use dialboard_engine::query::parse_query;
use dialboard_engine::FieldError;
use dialboard_store::access::Role;
use dialboard_store::saved::SavedItem;
use dialboard_store::{Scope, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// How a report's answer is drawn (SPEC §7).
pub const VISUALIZATIONS: [&str; 9] = [
    "table",
    "kpi",
    "line",
    "area",
    "bar",
    "stacked_bar",
    "donut",
    "funnel",
    "heatmap",
];

const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;
const MAX_SHARED_USERS: usize = 200;

/// Who besides the owner (and the tenant's admins) sees an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sharing {
    Private,
    /// These users, by e-mail.
    Users {
        users: Vec<String>,
    },
    /// The members (managers and reps) of a team.
    Team {
        team: String,
    },
    Tenant,
}

/// What a report asks: a general query (SPEC §5) or a built-in view with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum Question {
    Query(Value),
    View { view: String, params: Map<String, Value> },
}

/// A report as saved: everything but its owner and versions.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportDef {
    pub name: String,
    pub description: String,
    pub question: Question,
    pub visualization: String,
    pub sharing: Sharing,
}

/// A dashboard as saved: a grid of widgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DashboardDef {
    pub name: String,
    pub description: String,
    pub widgets: Vec<Widget>,
    pub sharing: Sharing,
}

/// One tile of a dashboard's grid (12 columns wide): a saved report or a built-in view, at
/// `x`, `y` (in grid cells) spanning `w` × `h`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Widget {
    /// The widget's id within the dashboard (the grid library's handle).
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// The view's parameters.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

/// Grid bounds: 12 columns, and a generous number of rows.
const GRID_COLUMNS: i64 = 12;
const GRID_ROWS: i64 = 1_000;
const MAX_WIDGETS: usize = 50;

/// Field errors gathered while checking a body, each with its path (`sharing.users[1]`).
#[derive(Default)]
pub struct Problems(pub Vec<FieldError>);

impl Problems {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

fn text(body: &Value, field: &str, max: usize, required: bool, problems: &mut Problems) -> String {
    match body.get(field) {
        None | Some(Value::Null) if !required => String::new(),
        None | Some(Value::Null) => {
            problems.add(field, "is required");
            String::new()
        }
        Some(Value::String(s)) => {
            if required && s.trim().is_empty() {
                problems.add(field, "must not be empty");
            } else if s.chars().count() > max {
                problems.add(field, format!("must be at most {max} characters"));
            } else if let Some(m) = dialboard_engine::forbidden_char_message(s) {
                problems.add(field, m);
            }
            s.clone()
        }
        Some(_) => {
            problems.add(field, "must be a string");
            String::new()
        }
    }
}

fn unknown_fields(body: &Value, known: &[&str], prefix: &str, problems: &mut Problems) {
    for key in body.as_object().into_iter().flat_map(|o| o.keys()) {
        if !known.contains(&key.as_str()) {
            problems.add(format!("{prefix}{key}"), "unknown field");
        }
    }
}

/// Checks `sharing`: a known kind; named users exist in the tenant; the team exists.
async fn sharing(store: &Arc<dyn Store>, tenant_id: i64, body: &Value, problems: &mut Problems) -> Sharing {
    let value = body.get("sharing").cloned().unwrap_or(json!({"kind": "private"}));
    let sharing: Sharing = match serde_json::from_value(value.clone()) {
        Ok(s) => s,
        Err(_) => {
            // The part at fault: a known kind names what it lacks, else the kind.
            let field = match value["kind"].as_str() {
                Some("users") => "sharing.users",
                Some("team") => "sharing.team",
                Some("private" | "tenant") | None if value.is_object() => "sharing",
                _ => "sharing.kind",
            };
            problems.add(
                field,
                "must be {\"kind\": \"private\"}, {\"kind\": \"users\", \"users\": [e-mails]}, {\"kind\": \"team\", \"team\": id} or {\"kind\": \"tenant\"}",
            );
            return Sharing::Private;
        }
    };
    match &sharing {
        Sharing::Users { users } => {
            if users.is_empty() || users.len() > MAX_SHARED_USERS {
                problems.add("sharing.users", format!("must name 1 to {MAX_SHARED_USERS} users"));
            }
            for (i, email) in users.iter().enumerate() {
                match store.user_by_email(tenant_id, email).await {
                    Ok(Some(_)) => {}
                    Ok(None) => problems.add(
                        format!("sharing.users[{i}]"),
                        format!("no user '{email}' in this tenant"),
                    ),
                    Err(e) => problems.add(format!("sharing.users[{i}]"), e.to_string()),
                }
            }
        }
        Sharing::Team { team } => {
            let teams = store
                .directory(tenant_id, dialboard_store::DirectoryKind::Team)
                .await
                .unwrap_or_default();
            if !teams.iter().any(|(id, _)| id == team) {
                problems.add("sharing.team", format!("no team '{team}' in the directory"));
            }
        }
        Sharing::Private | Sharing::Tenant => {}
    }
    sharing
}

/// Parses and checks a report's body as the API receives it (and as versions store it).
pub async fn report_def(
    store: &Arc<dyn Store>,
    tenant_id: i64,
    now: i64,
    body: &Value,
) -> Result<ReportDef, Vec<FieldError>> {
    let mut problems = Problems::default();
    if !body.is_object() {
        problems.add("body", "must be a JSON object");
        return Err(problems.0);
    }
    unknown_fields(
        body,
        &[
            "name",
            "description",
            "query",
            "view",
            "params",
            "visualization",
            "sharing",
        ],
        "",
        &mut problems,
    );
    let name = text(body, "name", MAX_NAME, true, &mut problems);
    let description = text(body, "description", MAX_DESCRIPTION, false, &mut problems);
    let question = match (body.get("query"), body.get("view")) {
        (Some(query), None) => {
            if body.get("params").is_some() {
                problems.add("params", "goes with a view, not a query");
            }
            check_query(store, tenant_id, now, query, &mut problems).await;
            Question::Query(query.clone())
        }
        (None, Some(view)) => {
            let params = match body.get("params") {
                None => Map::new(),
                Some(Value::Object(p)) => p.clone(),
                Some(_) => {
                    problems.add("params", "must be an object of the view's parameters");
                    Map::new()
                }
            };
            let view = match view.as_str() {
                Some(v) => v.to_string(),
                None => {
                    problems.add("view", "must be a string");
                    String::new()
                }
            };
            views::check(&view, &params, &mut problems);
            Question::View { view, params }
        }
        (Some(_), Some(_)) => {
            problems.add("view", "a report asks either a query or a view, not both");
            Question::Query(Value::Null)
        }
        (None, None) => {
            problems.add("query", "is required (or a view with its params)");
            Question::Query(Value::Null)
        }
    };
    let visualization = match body.get("visualization") {
        None => "table".to_string(),
        Some(Value::String(v)) if VISUALIZATIONS.contains(&v.as_str()) => v.clone(),
        Some(_) => {
            problems.add("visualization", format!("must be one of {}", VISUALIZATIONS.join(", ")));
            String::new()
        }
    };
    let sharing = sharing(store, tenant_id, body, &mut problems).await;
    problems.into_result(ReportDef {
        name,
        description,
        question,
        visualization,
        sharing,
    })
}

/// A stored query must parse in the tenant's context; its errors are named under `query.`.
async fn check_query(store: &Arc<dyn Store>, tenant_id: i64, now: i64, query: &Value, problems: &mut Problems) {
    if !query.is_object() {
        problems.add("query", "must be an object (SPEC §5's query)");
        return;
    }
    let (tenant, teams) = match (store.tenant(tenant_id).await, store.agent_teams(tenant_id).await) {
        (Ok(t), Ok(a)) => (t, a),
        (Err(e), _) | (_, Err(e)) => {
            problems.add("query", e.to_string());
            return;
        }
    };
    if let Err(errors) = parse_query(query, &tenant.context(now, None, &teams)) {
        for e in errors {
            problems.add(format!("query.{}", e.field), e.message);
        }
    }
}

impl ReportDef {
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "name": self.name,
            "description": self.description,
            "visualization": self.visualization,
            "sharing": self.sharing,
        });
        match &self.question {
            Question::Query(q) => out["query"] = q.clone(),
            Question::View { view, params } => {
                out["view"] = json!(view);
                out["params"] = Value::Object(params.clone());
            }
        }
        out
    }

    /// The definition a stored version holds (validated when it was saved).
    pub fn stored(body: &Value) -> ReportDef {
        let question = match body.get("view").and_then(Value::as_str) {
            Some(view) => Question::View {
                view: view.to_string(),
                params: body["params"].as_object().cloned().unwrap_or_default(),
            },
            None => Question::Query(body["query"].clone()),
        };
        ReportDef {
            name: body["name"].as_str().unwrap_or_default().to_string(),
            description: body["description"].as_str().unwrap_or_default().to_string(),
            question,
            visualization: body["visualization"].as_str().unwrap_or("table").to_string(),
            sharing: stored_sharing(body),
        }
    }
}

fn stored_sharing(body: &Value) -> Sharing {
    serde_json::from_value(body["sharing"].clone()).unwrap_or(Sharing::Private)
}

/// Parses and checks a dashboard's body: widgets inside the 12-column grid, each a saved
/// report the saver may see or a built-in view with valid parameters.
pub async fn dashboard_def(
    store: &Arc<dyn Store>,
    principal: &Principal,
    body: &Value,
) -> Result<DashboardDef, Vec<FieldError>> {
    let mut problems = Problems::default();
    if !body.is_object() {
        problems.add("body", "must be a JSON object");
        return Err(problems.0);
    }
    let tenant_id = principal.tenant_id;
    unknown_fields(body, &["name", "description", "widgets", "sharing"], "", &mut problems);
    let name = text(body, "name", MAX_NAME, true, &mut problems);
    let description = text(body, "description", MAX_DESCRIPTION, false, &mut problems);
    let mut widgets = Vec::new();
    match body.get("widgets") {
        None => {}
        Some(Value::Array(list)) if list.len() <= MAX_WIDGETS => {
            for (i, w) in list.iter().enumerate() {
                if let Some(widget) = widget(store, principal, &format!("widgets[{i}]"), w, &mut problems).await {
                    if widgets.iter().any(|o: &Widget| o.id == widget.id) {
                        problems.add(format!("widgets[{i}].id"), "is used by another widget");
                    }
                    widgets.push(widget);
                }
            }
        }
        Some(_) => problems.add("widgets", format!("must be an array of at most {MAX_WIDGETS} widgets")),
    }
    let sharing = sharing(store, tenant_id, body, &mut problems).await;
    problems.into_result(DashboardDef {
        name,
        description,
        widgets,
        sharing,
    })
}

async fn widget(
    store: &Arc<dyn Store>,
    principal: &Principal,
    at: &str,
    body: &Value,
    problems: &mut Problems,
) -> Option<Widget> {
    unknown_fields(
        body,
        &["id", "report", "view", "params", "title", "x", "y", "w", "h"],
        &format!("{at}."),
        problems,
    );
    let widget: Widget = match serde_json::from_value(body.clone()) {
        Ok(w) => w,
        Err(e) => {
            problems.add(
                at.to_string(),
                format!("must be {{id, report or view, params, title, x, y, w, h}}: {e}"),
            );
            return None;
        }
    };
    if widget.id.is_empty() || widget.id.len() > 64 || widget.id.chars().any(dialboard_engine::is_forbidden_char) {
        problems.add(format!("{at}.id"), "must be 1 to 64 printable characters");
    }
    for (field, value, low, high) in [
        ("x", widget.x, 0, GRID_COLUMNS - 1),
        ("w", widget.w, 1, GRID_COLUMNS),
        ("y", widget.y, 0, GRID_ROWS),
        ("h", widget.h, 1, 24),
    ] {
        if !(low..=high).contains(&value) {
            problems.add(format!("{at}.{field}"), format!("must be from {low} to {high}"));
        }
    }
    if widget.x + widget.w > GRID_COLUMNS {
        problems.add(
            format!("{at}.w"),
            format!("x + w must be at most {GRID_COLUMNS} (the grid's width)"),
        );
    }
    if widget.title.chars().count() > MAX_NAME {
        problems.add(format!("{at}.title"), format!("must be at most {MAX_NAME} characters"));
    }
    match (&widget.report, &widget.view) {
        (Some(report), None) => {
            if !widget.params.is_empty() {
                problems.add(format!("{at}.params"), "goes with a view, not a report");
            }
            let item = store
                .saved_item(principal.tenant_id, dialboard_store::saved::SavedKind::Report, report)
                .await
                .ok()
                .flatten();
            if !item.is_some_and(|item| may_see(principal, &item)) {
                problems.add(format!("{at}.report"), format!("no report '{report}'"));
            }
        }
        (None, Some(view)) => {
            let mut view_problems = Problems::default();
            views::check(view, &widget.params, &mut view_problems);
            for e in view_problems.0 {
                problems.add(format!("{at}.{}", e.field), e.message);
            }
        }
        _ => problems.add(format!("{at}.report"), "a widget shows either a report or a view"),
    }
    Some(widget)
}

impl DashboardDef {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a dashboard serializes")
    }
}

/// The teams a caller belongs to (a manager's, a rep's own, a team-bound key's).
fn teams_of(principal: &Principal) -> &[String] {
    match (&principal.actor, &principal.reach) {
        (Actor::User(user), _) => &user.teams,
        (Actor::Key { .. }, Reach::Teams(teams)) => teams,
        (Actor::Key { .. }, Reach::Agent { teams, .. }) => teams,
        (Actor::Key { .. }, Reach::All) => &[],
    }
}

fn is_admin(principal: &Principal) -> bool {
    match &principal.actor {
        Actor::User(user) => user.role == Role::Admin,
        Actor::Key { .. } => principal.scopes.contains(&Scope::Admin),
    }
}

/// Whether `principal` sees a saved item: its owner, the tenant's admins, and whoever it is
/// shared with. Seeing a report is seeing its question: its answer is always the viewer's own.
pub fn may_see(principal: &Principal, item: &SavedItem) -> bool {
    if may_change(principal, item) {
        return true;
    }
    match stored_sharing(&item.body) {
        Sharing::Private => false,
        Sharing::Users { users } => match &principal.actor {
            Actor::User(user) => users.iter().any(|u| u.eq_ignore_ascii_case(&user.email)),
            Actor::Key { .. } => false,
        },
        Sharing::Team { team } => teams_of(principal).contains(&team),
        Sharing::Tenant => true,
    }
}

/// Whether `principal` may edit, restore, re-share or delete an item: its owner or an admin.
pub fn may_change(principal: &Principal, item: &SavedItem) -> bool {
    item.owner == principal.actor_name() || is_admin(principal)
}
