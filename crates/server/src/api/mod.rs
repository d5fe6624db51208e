//! The HTTP API (SPEC §5). [`app`] builds the router, so tests drive the real thing.

pub mod admin;
pub mod admission;
pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod badges;
pub mod catalogue;
pub mod directory;
pub mod error;
pub mod events;
pub mod exports;
pub mod guard;
pub mod imports;
pub mod live;
pub mod openapi;
pub mod ops;
pub mod query;
pub mod reports;
pub mod retention;
pub mod saved;
pub mod schedules;
pub mod session;
pub mod staffing;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Router};
use dialboard_store::access::RateLimits;
use dialboard_store::saved::SavedKind;
use dialboard_store::DirectoryKind;
use dialboard_store::Store;
use openapi::{op, Routes};
use std::sync::Arc;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: auth::KeyCache,
    pub metrics: ops::ServerMetrics,
    pub hub: Arc<crate::live::Hub>,
    pub limiter: auth::RateLimiter,
    /// Rate limits of credentials that set none of their own.
    pub rate_limits: RateLimits,
    /// The instant presets and comparisons resolve against.
    pub now: Now,
    /// The public origin, trusted proxies and metrics token (`serve` options).
    pub security: guard::Security,
    /// Queries running at once, per credential and per tenant.
    pub admission: Arc<admission::Admission>,
    /// Exports of more rows than this are jobs (`202 Accepted`); tests lower it.
    pub export_sync_limit: i64,
    /// The SMTP server schedules and alerts send through (`--smtp-url`), if configured.
    pub mailer: Option<crate::mail::Mailer>,
}

/// The current instant in epoch seconds: the wall clock, or a test's.
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The real "now".
pub fn wall_clock() -> Now {
    Arc::new(|| jiff::Timestamp::now().as_second())
}

impl AppState {
    /// The state of a running server; starts the live hub on the current runtime.
    pub fn new(store: Arc<dyn Store>) -> Arc<AppState> {
        Self::with_live_queue(store, crate::live::QUEUE_CAPACITY)
    }

    /// A server whose live subscribers may have `queue` messages waiting (tests use few).
    pub fn with_live_queue(store: Arc<dyn Store>, queue: usize) -> Arc<AppState> {
        Self::configured(store, queue, guard::Security::default(), wall_clock())
    }

    /// A server deployed as `security` says (its public URL, proxies, metrics token) whose
    /// "now" is `now` (tests set the time of day without waiting for it).
    pub fn configured(store: Arc<dyn Store>, queue: usize, security: guard::Security, now: Now) -> Arc<AppState> {
        Arc::new(AppState {
            store: store.clone(),
            keys: auth::KeyCache::default(),
            metrics: ops::ServerMetrics::default(),
            hub: crate::live::Hub::start(store.clone(), queue),
            limiter: auth::RateLimiter::default(),
            rate_limits: RateLimits::default(),
            now,
            security,
            admission: admission::Admission::new(admission::AdmissionLimits::default()),
            export_sync_limit: crate::exports::SYNC_LIMIT,
            mailer: None,
        })
    }

    pub fn now(&self) -> i64 {
        (self.now)()
    }
}

/// What the analytics views take besides their own parameters.
const SHARED: &str = "shared";

pub fn app(state: Arc<AppState>) -> Router {
    let api = Routes::default()
        .add(
            "/events",
            post(events::ingest).layer(DefaultBodyLimit::max(events::MAX_BODY_BYTES)),
            vec![op("post", "ingest", "ingest events: a JSON array or NDJSON (SPEC §3)")
                .body()
                .answers(openapi::answer::<events::IngestAnswer>())],
        )
        .add(
            "/query",
            post(query::query),
            vec![op("post", "read", "the general query (SPEC §5)")
                .body()
                .answers(openapi::answer::<query::QueryAnswer>())],
        )
        .add(
            "/calls",
            get(query::calls),
            vec![op("get", "read", "raw calls behind any view, newest first; with format=csv|xlsx|pdf every matching row (202 and an export job past 100,000)").params(&[SHARED, "cursor", "limit"])
                .files()
                .answers(openapi::answer::<query::CallsPage>())
                .or_job(openapi::answer::<exports::ExportJob>())],
        )
        .add(
            "/exports",
            get(exports::list).post(exports::create),
            vec![
                op("get", "read", "the caller's export jobs (an admin's: the tenant's)")
                    .answers(openapi::answer::<exports::ExportJobs>()),
                op("post", "read", "queue an export job: {source, format, query}")
                    .body()
                    .status(202)
                    .answers(openapi::answer::<exports::ExportJob>()),
            ],
        )
        .add(
            "/imports",
            get(imports::list).post(imports::create),
            vec![
                op("get", "ingest", "the caller's import jobs (an admin's: the tenant's)").answers(openapi::answer::<imports::ImportJobs>()),
                op("post", "ingest", "upload a file to import as a job: the body is the file; format, timezone, utc, columns, template, map_disposition, map_agent, inbound_context, outbound_context and name as `dialboard import` takes them").params(&["format", "timezone", "utc", "columns", "template", "map_disposition", "map_agent", "inbound_context", "outbound_context", "name"]).body()
                    .status(202)
                    .answers(openapi::answer::<imports::ImportJob>()),
            ],
        )
        .add(
            "/imports/{id}",
            get(imports::get),
            vec![op("get", "ingest", "an import job: status, progress in bytes, its summary when done").answers(openapi::answer::<imports::ImportJob>())],
        )
        .add(
            "/imports/{id}/rejects",
            get(imports::rejects),
            vec![op("get", "ingest", "an import's rejected rows as CSV: line, reason, text").media("text/csv")],
        )
        .add(
            "/exports/{id}",
            get(exports::get),
            vec![op("get", "read", "an export job: status, progress, the file's URL when done")
                .answers(openapi::answer::<exports::ExportJob>())],
        )
        .add(
            "/exports/{id}/file",
            get(exports::file),
            vec![op("get", "read", "a finished export's file, until it expires").file()],
        )
        .add(
            "/calls/{call_id}",
            get(query::call),
            vec![op("get", "read", "one call with its analysis and versions").answers(openapi::answer::<query::CallDetail>())],
        )
        .add(
            "/live",
            get(live::websocket),
            vec![op(
                "get",
                "read",
                "WebSocket of live metric updates and activity (SPEC §6)",
            )
            .upgrade(openapi::answer::<live::LiveMessage>())],
        )
        .add(
            "/live/sse",
            get(live::sse),
            vec![op("get", "read", "the live stream as Server-Sent Events: each event's data is a message")
                .params(&["scope", "scope_id"])
                .stream("text/event-stream", openapi::answer::<live::LiveMessage>())],
        )
        .add(
            "/auth/login",
            post(session::login).layer(DefaultBodyLimit::max(session::MAX_LOGIN_BODY_BYTES)),
            vec![op("post", "public", "log in: sets the session cookie")
                .body()
                .answers(openapi::answer::<session::LoginAnswer>())],
        )
        .add(
            "/auth/logout",
            post(session::logout),
            vec![op("post", "read", "end the session").no_content()],
        )
        .add(
            "/auth/password",
            post(session::change_password),
            vec![op(
                "post",
                "read",
                "the signed-in user changes their own password ({\"current_password\", \"new_password\"}); their other sessions end",
            )
            .body()
            .no_content()],
        )
        .add(
            "/auth/me",
            get(session::me),
            vec![op(
                "get",
                "read",
                "the caller's identity, role and reach; without a credential, 200 with {\"user\": null} (signed out); 401 for an unknown key or an ended session",
            )
            .answers(openapi::answer::<session::MeAnswer>())],
        )
        .add(
            "/users",
            get(admin::list_users).post(admin::add_user),
            vec![
                op("get", "admin", "list users").answers(openapi::answer::<admin::UsersAnswer>()),
                op("post", "admin", "add a user").body().status(201).answers(openapi::answer::<admin::UserAnswer>()),
            ],
        )
        .add(
            "/users/{id}",
            delete(admin::delete_user),
            vec![op("delete", "admin", "delete a user and end their sessions").no_content()],
        )
        .add(
            "/users/{id}/password",
            put(admin::reset_password),
            vec![op("put", "admin", "set a user's password ({\"password\"}); their sessions end").body().no_content()],
        )
        .add(
            "/keys",
            get(admin::list_keys).post(admin::add_key),
            vec![
                op("get", "admin", "list API keys").answers(openapi::answer::<admin::KeysAnswer>()),
                op("post", "admin", "create an API key (shown once)").body().status(201).answers(openapi::answer::<admin::NewKeyAnswer>()),
            ],
        )
        .add(
            "/keys/{id}",
            delete(admin::revoke_key),
            vec![op("delete", "admin", "revoke an API key").no_content()],
        )
        .add(
            "/audit",
            get(admin::audit_log),
            vec![op("get", "admin", "the audit log, newest first").params(&["before", "limit"]).answers(openapi::answer::<admin::AuditPage>())],
        )
        .add(
            "/settings",
            get(directory::get_settings).put(directory::put_settings),
            vec![
                op("get", "read", "tenant settings").answers(openapi::answer::<directory::SettingsAnswer>()),
                op("put", "admin", "change settings (only the fields given)")
                    .body()
                    .answers(openapi::answer::<directory::SettingsAnswer>()),
            ],
        )
        .add(
            "/retention/dry-run",
            get(retention::dry_run),
            vec![op("get", "admin", "what a purge now would delete, by kind, and before when")
                .answers(openapi::answer::<crate::retention::DryRun>())],
        )
        .add(
            "/retention/purge",
            post(retention::purge),
            vec![op("post", "admin", "queue a purge by the tenant's retention policy now (a job)")
                .status(202)
                .answers(openapi::answer::<retention::JobAnswer>())],
        )
        .add(
            "/retention/purges",
            get(retention::purges),
            vec![op("get", "admin", "the tenant's purge jobs, newest first").answers(openapi::answer::<retention::PurgesAnswer>())],
        )
        .add(
            "/contacts/{id}",
            delete(retention::erase_contact),
            vec![op("delete", "admin", "erase a contact's personal data from every stored event; metrics stay")
                .answers(openapi::answer::<retention::ErasedAnswer>())],
        );
    // Each collection's routes carry its kind, so one set of handlers serves all three.
    use openapi::answer;
    let api = [
        (
            "/agents",
            "/agents/{id}",
            DirectoryKind::Agent,
            answer::<directory::AgentsAnswer>(),
            answer::<directory::AgentEntry>(),
        ),
        (
            "/teams",
            "/teams/{id}",
            DirectoryKind::Team,
            answer::<directory::TeamsAnswer>(),
            answer::<directory::TeamEntry>(),
        ),
        (
            "/campaigns",
            "/campaigns/{id}",
            DirectoryKind::Campaign,
            answer::<directory::CampaignsAnswer>(),
            answer::<directory::CampaignEntry>(),
        ),
    ]
    .into_iter()
    .fold(api, |api, (collection, entry, kind, list, one)| {
        api.add(
            collection,
            get(directory::list).layer(Extension(kind)),
            vec![op("get", "read", "list the directory's entries").answers(list)],
        )
        .add(
            entry,
            put(directory::put).delete(directory::remove).layer(Extension(kind)),
            vec![
                op("put", "admin", "create or replace an entry").body().answers(one),
                op("delete", "admin", "delete an entry").no_content(),
            ],
        )
    });
    let api = alert_routes(webhook_routes(saved_routes(staffing::routes(badges::routes(
        analytics_routes(api),
    )))))
    .finish()
    .fallback(|| async { error::ApiError::not_found("no such endpoint") });
    // Alerts are evaluated as this server's committed events change the numbers.
    crate::alerts::spawn(state.clone());
    crate::badges::spawn(state.clone());
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(crate::web::serve)
        .with_state(state)
}

/// A view's route: its JSON answer's schema is derived from its type `T`, and it answers
/// files too (`format=csv|xlsx|pdf`).
fn view<T: utoipa::ToSchema>(summary: &'static str, params: &'static [&'static str]) -> Vec<openapi::Op> {
    vec![op("get", "read", summary)
        .params(params)
        .files()
        .answers(openapi::answer::<T>())]
}

fn analytics_routes(api: Routes) -> Routes {
    use dialboard_views as v;
    api.add(
        "/analytics/metrics",
        get(analytics::metrics),
        view::<v::MetricsView>(
            "today's KPIs with change against the previous period",
            &[SHARED, "compare"],
        ),
    )
    .add(
        "/analytics/call-metrics",
        get(analytics::call_metrics),
        view::<v::CallMetricsView>(
            "call volume, connects, meetings and connect rate over time, with comparison",
            &[SHARED, "compare", "granularity"],
        ),
    )
    .add(
        "/analytics/dispositions",
        get(analytics::dispositions),
        view::<v::DispositionsView>("calls by disposition category and disposition", &[SHARED]),
    )
    .add(
        "/analytics/agent-scorecard/{agent_id}",
        get(analytics::scorecard),
        view::<v::RepScorecard>(
            "a rep's scorecard for a day, week or month (period=daily|weekly|monthly)",
            &["period", "date"],
        ),
    )
    .add(
        "/analytics/team-leaderboard/{team_id}",
        get(analytics::team_leaderboard),
        view::<v::LeaderboardView>("a team's leaderboard for a day", &[SHARED, "date", "sort_by"]),
    )
    .add(
        "/analytics/leaderboard",
        get(analytics::tenant_leaderboard),
        view::<v::LeaderboardView>(
            "the tenant's leaderboard (period=today|week|month|all_time)",
            &[SHARED, "period", "sort_by"],
        ),
    )
    .add(
        "/analytics/call-time-heatmap",
        get(analytics::heatmap),
        view::<v::HeatmapView>("day of week × hour of day", &[SHARED, "metric"]),
    )
    .add(
        "/analytics/trends/{agent_id}",
        get(analytics::trends),
        view::<v::TrendsView>(
            "daily talk ratio, weekly sentiment, rolling 7-day call score",
            &["days"],
        ),
    )
    .add(
        "/analytics/pipeline-funnel",
        get(analytics::pipeline_funnel),
        view::<v::PipelineFunnelView>(
            "calls to closed-won by campaign, lead source or agent",
            &[SHARED, "group_by"],
        ),
    )
    .add(
        "/analytics/lead-sources",
        get(analytics::lead_sources),
        view::<v::LeadSourcesView>("the lead source report", &[SHARED]),
    )
    .add(
        "/analytics/conversion-funnel",
        get(analytics::conversion_funnel),
        view::<v::ConversionFunnelView>(
            "contacts through the tenant's stages (period=today|week|month|quarter)",
            &[SHARED, "period"],
        ),
    )
    .add(
        "/analytics/lead-volume",
        get(analytics::lead_volume),
        view::<v::LeadVolumeView>(
            "new leads and conversions over time (period=24h|7d|30d)",
            &[SHARED, "period"],
        ),
    )
    .add(
        "/analytics/intents",
        get(analytics::intents),
        view::<v::IntentsView>("calls and conversations by intent", &[SHARED]),
    )
    .add(
        "/analytics/channels",
        get(analytics::channels),
        view::<v::ChannelsView>("volume, response, resolution and CSAT per channel", &[SHARED]),
    )
    .add(
        "/analytics/campaigns/{id}",
        get(analytics::campaign),
        view::<v::CampaignView>(
            "one campaign: outcomes, journey, intents, cost per lead, ROI",
            &[SHARED, "compare"],
        ),
    )
    .add(
        "/analytics/coaching-opportunities/{team_id}",
        get(analytics::coaching),
        view::<v::CoachingView>("the coaching rules over a team's reps", &["date"]),
    )
    .add(
        "/analytics/compliance",
        get(analytics::compliance),
        view::<v::ComplianceView>("each rep's day against activity targets", &[SHARED, "date"]),
    )
}

/// Saved reports and dashboards: one set of handlers, the kind carried by the route.
fn saved_routes(api: Routes) -> Routes {
    let api = api
        .add(
            "/catalogue",
            get(catalogue::catalogue),
            vec![op("get", "read", "what questions are made of: measures, dimensions, granularities, presets, comparisons, visualizations, views")
                .answers(openapi::answer::<catalogue::Catalogue>())],
        )
        .add(
            "/reports/preview",
            post(reports::preview),
            vec![op("post", "read", "an unsaved report's answer, with the caller's reach (the builder's preview); with format=csv|xlsx|pdf, as a file")
                .body()
                .files()
                .answers(openapi::answer::<reports::PreviewAnswer>())],
        )
        .add(
            "/reports/{id}/result",
            get(reports::result),
            vec![op("get", "read", "a report's answer with the caller's own reach, a range, zone or dimension filters given applied to its question; with format=csv|xlsx|pdf, as a file").params(&[SHARED])
                .files()
                .answers(openapi::answer::<reports::ReportResultAnswer>())],
        )
        .add(
            "/reports/{id}/calls",
            get(reports::calls),
            vec![op("get", "read", "the raw calls behind a report, with the caller's own reach and the filters given (as /calls)")
                .params(&[SHARED, "cursor", "limit"])
                .files()
                .answers(openapi::answer::<query::CallsPage>())
                .or_job(openapi::answer::<exports::ExportJob>())],
        )
        .add(
            "/schedules/{id}/run",
            post(schedules::run_now),
            vec![op("post", "read", "run a schedule now (its owner or an admin); 202 with the run")
                .status(202)
                .answers(openapi::answer::<schedules::RunAnswer>())],
        )
        .add(
            "/schedules/{id}/runs",
            get(schedules::runs),
            vec![op("get", "read", "a schedule's runs, newest first: scheduled for, started, finished, status, attempts, recipients, size, error")
                .answers(openapi::answer::<schedules::RunsAnswer>())],
        );
    /// A kind of saved item's routes, with the types of its answers.
    struct Kind {
        paths: [&'static str; 4],
        kind: SavedKind,
        answers: [openapi::Answer; 3],
    }
    fn kind<Item: utoipa::ToSchema, List: utoipa::ToSchema, Versions: utoipa::ToSchema>(
        paths: [&'static str; 4],
        kind: SavedKind,
    ) -> Kind {
        use openapi::answer;
        Kind {
            paths,
            kind,
            answers: [answer::<Item>(), answer::<List>(), answer::<Versions>()],
        }
    }
    use saved::{Dashboard, DashboardVersions, Dashboards, Report, ReportVersions, Reports};
    use saved::{Schedule, ScheduleVersions, Schedules};
    [
        kind::<Report, Reports, ReportVersions>(
            [
                "/reports",
                "/reports/{id}",
                "/reports/{id}/versions",
                "/reports/{id}/versions/{n}/restore",
            ],
            SavedKind::Report,
        ),
        kind::<Dashboard, Dashboards, DashboardVersions>(
            [
                "/dashboards",
                "/dashboards/{id}",
                "/dashboards/{id}/versions",
                "/dashboards/{id}/versions/{n}/restore",
            ],
            SavedKind::Dashboard,
        ),
        kind::<Schedule, Schedules, ScheduleVersions>(
            [
                "/schedules",
                "/schedules/{id}",
                "/schedules/{id}/versions",
                "/schedules/{id}/versions/{n}/restore",
            ],
            SavedKind::Schedule,
        ),
    ]
    .into_iter()
    .fold(
        api,
        |api,
         Kind {
             paths: [collection, item, versions, restore],
             kind,
             answers: [one, list, history],
         }| {
            api.add(
                collection,
                get(saved::list).post(saved::create).layer(Extension(kind)),
                vec![
                    op(
                        "get",
                        "read",
                        "the items the caller may see: their own, those shared with them, all for an admin",
                    )
                    .answers(list),
                    op("post", "read", "save a new item (version 1); 201 with it")
                        .body()
                        .status(201)
                        .answers(one),
                ],
            )
            .add(
                item,
                get(saved::get)
                    .put(saved::replace)
                    .delete(saved::remove)
                    .layer(Extension(kind)),
                vec![
                    op("get", "read", "one item").answers(one),
                    op("put", "read", "replace an item (its owner or an admin): a new version")
                        .body()
                        .answers(one),
                    op(
                        "delete",
                        "read",
                        "delete an item and its history (its owner or an admin)",
                    )
                    .no_content(),
                ],
            )
            .add(
                versions,
                get(saved::versions).layer(Extension(kind)),
                vec![op("get", "read", "every version of an item, newest first").answers(history)],
            )
            .add(
                restore,
                post(saved::restore).layer(Extension(kind)),
                vec![op(
                    "post",
                    "read",
                    "make version n the item's next version (its owner or an admin)",
                )
                .answers(one)],
            )
        },
    )
}

/// Webhook endpoints and their deliveries (admins).
fn webhook_routes(api: Routes) -> Routes {
    use openapi::answer;
    api.add(
        "/webhooks",
        get(webhooks::list).post(webhooks::create),
        vec![
            op("get", "admin", "the tenant's webhook endpoints").answers(answer::<webhooks::WebhooksAnswer>()),
            op(
                "post",
                "admin",
                "register an endpoint ({url, description, failure_limit}); 201 with its signing secret, shown once",
            )
            .body()
            .status(201)
            .answers(answer::<webhooks::WebhookAnswer>()),
        ],
    )
    .add(
        "/webhooks/{id}",
        get(webhooks::get).put(webhooks::replace).delete(webhooks::remove),
        vec![
            op("get", "admin", "one endpoint").answers(answer::<webhooks::WebhookAnswer>()),
            op(
                "put",
                "admin",
                "replace an endpoint's settings; \"enabled\": true re-enables one that failures disabled",
            )
            .body()
            .answers(answer::<webhooks::WebhookAnswer>()),
            op("delete", "admin", "delete an endpoint and its delivery log").no_content(),
        ],
    )
    .add(
        "/webhooks/{id}/deliveries",
        get(webhooks::deliveries),
        vec![op(
            "get",
            "admin",
            "every delivery attempt, newest first: outcome, status code, latency, error",
        )
        .answers(answer::<webhooks::DeliveriesAnswer>())],
    )
    .add(
        "/webhooks/{id}/ping",
        post(webhooks::ping),
        vec![op("post", "admin", "queue a test delivery (event `ping`); 202")
            .status(202)
            .answers(answer::<webhooks::PingAnswer>())],
    )
}

/// Alerts, their firings and the coaching templates.
fn alert_routes(api: Routes) -> Routes {
    use openapi::answer;
    api.add(
        "/alerts",
        get(alerts::list).post(alerts::create),
        vec![
            op("get", "read", "the alerts the caller may see (a manager: their teams'; a rep: their own), with their states")
                .answers(answer::<alerts::AlertsAnswer>()),
            op("post", "read", "create an alert: measure, scope, window, condition, thresholds, minimum volume, re-arm interval, e-mails, webhooks; 201")
                .body()
                .status(201)
                .answers(answer::<alerts::AlertAnswer>()),
        ],
    )
    .add(
        "/alerts/templates",
        get(alerts::templates),
        vec![op("get", "read", "the seed's coaching rules as alerts over each agent of a team")
            .params(&["team"])
            .answers(answer::<alerts::AlertTemplatesAnswer>())],
    )
    .add(
        "/alerts/{id}",
        get(alerts::get).put(alerts::replace).delete(alerts::remove),
        vec![
            op("get", "read", "one alert with its states").answers(answer::<alerts::AlertAnswer>()),
            op("put", "read", "replace an alert's definition (its owner or an admin); its state starts over")
                .body()
                .answers(answer::<alerts::AlertAnswer>()),
            op("delete", "read", "delete an alert and its history (its owner or an admin)").no_content(),
        ],
    )
    .add(
        "/alerts/{id}/events",
        get(alerts::events),
        vec![op("get", "read", "every firing and recovery, newest first: value, threshold, volume, subject")
            .answers(answer::<alerts::AlertEventsAnswer>())],
    )
}
