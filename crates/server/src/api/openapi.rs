//! The OpenAPI document (`GET /api/v1/openapi.json`), generated from the routes themselves:
//! every route is registered through [`Routes::add`] together with its description, so the
//! document lists exactly what the router serves. Measure and dimension names come from the
//! engine's catalogue.

use super::AppState;
use axum::routing::MethodRouter;
use axum::Router;
use dialboard_engine::measures::MEASURES;
use dialboard_engine::query::{Dimension, PRESETS};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// One documented operation of a path.
pub struct Op {
    pub method: &'static str,
    pub summary: &'static str,
    /// Query-string parameters: the view's own, and `"shared"` for the range, zone and filters.
    pub params: &'static [&'static str],
    /// The scope a credential needs (`public` for none).
    pub scope: &'static str,
    /// Whether it takes a JSON body.
    pub body: bool,
    /// The schema of its JSON answer, derived from the answer's type.
    pub answer: Option<Answer>,
    /// Whether it also answers files (`format=csv|xlsx|pdf`).
    pub files: bool,
    /// The success status: 200, 201 (created), 202 (accepted: a job) or 204 (no content).
    pub status: u16,
    /// What it answers instead of JSON (a file, an event stream), and the schema of its
    /// messages if it has one; `None` with status 101 is a protocol upgrade.
    pub other: Option<(&'static str, Option<Answer>)>,
    /// A large request is queued as a job instead: `202` with this answer.
    pub job: Option<Answer>,
}

/// A typed answer's schema: its name, and how to collect it with the schemas it refers to.
#[derive(Clone, Copy)]
pub struct Answer {
    name: fn() -> std::borrow::Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
}

/// The schema of answers of type `T`.
pub fn answer<T: ToSchema>() -> Answer {
    Answer {
        name: T::name,
        collect: |out| {
            out.push((T::name().into_owned(), T::schema()));
            T::schemas(out);
        },
    }
}

/// The general query's schema (`Query`, written out in the document's components), for a
/// field of a typed answer that holds one.
pub fn query_schema() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("Query")
}

pub const fn op(method: &'static str, scope: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        summary,
        params: &[],
        scope,
        body: false,
        answer: None,
        files: false,
        status: 200,
        other: None,
        job: None,
    }
}

impl Op {
    pub const fn params(mut self, params: &'static [&'static str]) -> Op {
        self.params = params;
        self
    }

    pub const fn body(mut self) -> Op {
        self.body = true;
        self
    }

    pub fn answers(mut self, answer: Answer) -> Op {
        self.answer = Some(answer);
        self
    }

    /// It also answers `format=csv|xlsx|pdf` with a file.
    pub const fn files(mut self) -> Op {
        self.files = true;
        self
    }

    /// It succeeds with `status` (201 created, 202 accepted) rather than 200.
    pub const fn status(mut self, status: u16) -> Op {
        self.status = status;
        self
    }

    /// It succeeds with 204 and no body.
    pub const fn no_content(self) -> Op {
        self.status(204)
    }

    /// It answers a file: CSV, XLSX or PDF (as its `format` was).
    pub const fn file(self) -> Op {
        self.media(ANY_FILE)
    }

    /// Past a size it queues a job instead and answers `202` with `job`.
    pub fn or_job(mut self, job: Answer) -> Op {
        self.job = Some(job);
        self
    }

    /// It answers `media_type` (a file, a stream) instead of JSON.
    pub const fn media(mut self, media_type: &'static str) -> Op {
        self.other = Some((media_type, None));
        self
    }

    /// It answers a stream of `media_type` whose messages are each an `answer`.
    pub fn stream(mut self, media_type: &'static str, messages: Answer) -> Op {
        self.other = Some((media_type, Some(messages)));
        self
    }

    /// It switches protocols (101: a WebSocket) and exchanges messages of `messages`.
    pub fn upgrade(mut self, messages: Answer) -> Op {
        self.status = 101;
        self.answer = Some(messages);
        self
    }
}

/// The API router and the description of every route added to it.
pub struct Routes {
    pub router: Router<Arc<AppState>>,
    paths: Vec<(&'static str, Vec<Op>)>,
}

impl Default for Routes {
    fn default() -> Routes {
        Routes {
            router: Router::new(),
            paths: Vec::new(),
        }
    }
}

impl Routes {
    pub fn add(mut self, path: &'static str, handler: MethodRouter<Arc<AppState>>, ops: Vec<Op>) -> Routes {
        self.router = self.router.route(path, handler);
        self.paths.push((path, ops));
        self
    }

    /// The router, with `/openapi.json` serving the document of every route added.
    pub fn finish(self) -> Router<Arc<AppState>> {
        // Serialized once: the router (with this handler) is cloned for every connection.
        let doc = axum::body::Bytes::from(document(&self.paths).to_string());
        let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
        self.router
            .route("/openapi.json", axum::routing::get(move || async move { (json, doc) }))
    }
}

fn parameter(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "description": description,
           "schema": {"type": "string"}})
}

fn shared_parameters() -> Vec<Value> {
    let mut out = vec![
        parameter("preset", "query", &format!("date range preset: {}", PRESETS.join(", "))),
        parameter(
            "start",
            "query",
            "range start: a local date (YYYY-MM-DD) or RFC 3339 instant",
        ),
        parameter("end", "query", "range end (exclusive)"),
        parameter(
            "timezone",
            "query",
            "IANA zone of the range and buckets; default the tenant's",
        ),
    ];
    for d in Dimension::names() {
        out.push(parameter(d, "query", &format!("filter: comma-separated {d} values")));
    }
    out
}

fn own_parameter(name: &str) -> Value {
    let description = match name {
        "compare" => "previous_period (default), same_period_last_year or none",
        "period" => "the period the view covers (see the summary)",
        "date" => "local date (YYYY-MM-DD); default today",
        "sort_by" => "calls, connects, meetings or score",
        "metric" => "connect_rate or calls",
        "group_by" => "campaign, lead_source or agent",
        "granularity" => "15m, hour, day, week, month or quarter",
        "days" => "how many days, up to today (default 30)",
        "cursor" => "the next_cursor of the previous page",
        "limit" => "rows per page",
        "format" => "csv, xlsx or pdf: the answer as a file instead of JSON",
        "scope" | "scope_id" => "the live scope: tenant, team, agent or campaign, and its id",
        _ => "",
    };
    parameter(name, "query", description)
}

/// A file's content: bytes.
fn binary() -> Value {
    json!({"schema": {"type": "string", "format": "binary"}})
}

/// Stands for any of [`FILES`] in [`Op::file`].
const ANY_FILE: &str = "file";

/// The file types of answers with `format=`.
const FILES: [&str; 3] = [
    "text/csv",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/pdf",
];

fn document(paths: &[(&'static str, Vec<Op>)]) -> Value {
    let mut out = Map::new();
    let mut schemas = Vec::new();
    for (path, ops) in paths {
        let path_params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| parameter(name, "path", name))
            .collect();
        let mut item = Map::new();
        for op in ops {
            let mut params = path_params.clone();
            for p in op.params {
                if *p == "shared" {
                    params.extend(shared_parameters());
                } else {
                    params.push(own_parameter(p));
                }
            }
            let mut content = Map::new();
            let mut schema_of = |answer: &Answer| {
                (answer.collect)(&mut schemas);
                json!({"schema": {"$ref": format!("#/components/schemas/{}", (answer.name)())}})
            };
            match (&op.other, &op.answer) {
                (Some((ANY_FILE, _)), _) => {
                    for file in FILES {
                        content.insert(file.into(), binary());
                    }
                }
                (Some((media_type, messages)), _) => {
                    content.insert(
                        (*media_type).into(),
                        messages.as_ref().map_or_else(binary, &mut schema_of),
                    );
                }
                (None, Some(answer)) => {
                    content.insert("application/json".into(), schema_of(answer));
                }
                (None, None) => {}
            }
            if op.files {
                params.push(own_parameter("format"));
                for file in FILES {
                    content.insert(file.into(), binary());
                }
            }
            let success = match op.status {
                // A WebSocket: the schema is that of its messages, both ways.
                101 => json!({"description": "switching to the WebSocket protocol; messages as the schema says",
                              "x-messages": content.remove("application/json").map(|c| c["schema"].clone())}),
                204 => json!({"description": "done; no content"}),
                _ => json!({"description": "success", "content": content}),
            };
            let job = op.job.as_ref().map(|job| {
                json!({"description": "queued as a job; `Location` is its URL",
                       "content": {"application/json": schema_of(job)}})
            });
            let mut operation = json!({
                "summary": op.summary,
                "parameters": params,
                "x-scope": op.scope,
                "responses": {
                    op.status.to_string(): success,
                    "400": {"$ref": "#/components/responses/Error"},
                    "401": {"$ref": "#/components/responses/Error"},
                    "403": {"$ref": "#/components/responses/Error"},
                    "429": {"$ref": "#/components/responses/Error"},
                },
            });
            if let Some(job) = job {
                operation["responses"]["202"] = job;
            }
            if op.scope != "public" {
                operation["security"] = json!([{"bearer": []}, {"session": []}]);
            }
            if op.body {
                let schema = if *path == "/query" {
                    json!({"$ref": "#/components/schemas/Query"})
                } else {
                    json!({"type": "object"})
                };
                operation["requestBody"] =
                    json!({"required": true, "content": {"application/json": {"schema": schema}}});
            }
            item.insert(op.method.to_string(), operation);
        }
        out.insert(format!("/api/v1{path}"), Value::Object(item));
    }
    let measures: Vec<&str> = MEASURES.iter().map(|m| m.name).collect();
    let mut components = Map::new();
    for (name, schema) in schemas {
        components.insert(name, serde_json::to_value(schema).expect("a schema serializes"));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "dialboard", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Exact real-time analytics for contact centers and sales dialers."},
        "paths": out,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE},
            },
            "responses": {"Error": {"description": "{\"error\": {\"code\", \"message\"}}, with the fields at fault",
                "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "object"}}}}}}},
            "schemas": {"Query": {
                "type": "object", "required": ["measures", "range"],
                "properties": {
                    "measures": {"type": "array", "items": {"enum": measures}},
                    "dimensions": {"type": "array", "items": {"enum": Dimension::names()}},
                    "granularity": {"enum": ["15m", "hour", "day", "week", "month", "quarter"]},
                    "filters": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                    "range": {"type": "object", "description": "a preset, or start and end (local dates or RFC 3339)",
                              "properties": {"preset": {"enum": PRESETS}, "start": {"type": "string"}, "end": {"type": "string"}}},
                    "timezone": {"type": "string"},
                    "compare": {"description": "previous_period, same_period_last_year, or a range to compare with"},
                    "order_by": {"type": "array", "description": "[column, asc|desc] pairs",
                                 "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}},
                    "limit": {"type": "integer", "minimum": 1},
                },
            }},
        },
    });
    let schemas = doc["components"]["schemas"].as_object_mut().expect("schemas");
    schemas.extend(components);
    doc
}
