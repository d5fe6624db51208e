//! The virtual tables (SPEC §13): the rollups, whose columns are the query model's dimensions
//! and measures, the raw calls as a drill-down, and the directory. Built from the engine's
//! catalogue, so a new measure or dimension is a new column without a change here.

use dialboard_engine::cells::{Dim, Fact};
use dialboard_engine::measures::{MeasureDef, Unit, MEASURES};
use dialboard_engine::query::Dimension;
use dialboard_store::listing::RecordKind;
use dialboard_store::DirectoryKind;
use pgwire::api::Type;
use std::sync::LazyLock;

/// What a column of a virtual table is.
#[derive(Debug, Clone, Copy)]
pub enum Role {
    /// A rollup's time bucket (`date_trunc` picks the granularity).
    Time,
    Dimension(Dimension),
    Measure(&'static MeasureDef),
    /// A field of a record (a call, a directory entry), by its JSON name.
    Field(&'static str),
}

#[derive(Debug, Clone)]
pub struct TableColumn {
    pub name: String,
    pub pg_type: Type,
    pub role: Role,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TableKind {
    Rollup,
    Calls,
    /// Conversations or stage changes, drill-downs like `calls`.
    Records(RecordKind),
    Directory(DirectoryKind),
}

#[derive(Debug, Clone)]
pub struct VirtualTable {
    pub name: &'static str,
    pub kind: TableKind,
    pub description: &'static str,
    pub columns: Vec<TableColumn>,
}

impl VirtualTable {
    pub fn column(&self, name: &str) -> Option<&TableColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Every virtual table, in the order clients list them.
pub fn tables() -> &'static [VirtualTable] {
    static TABLES: LazyLock<Vec<VirtualTable>> = LazyLock::new(|| {
        vec![
            rollup(
                "call_metrics",
                "call and agent-activity measures by any call dimension and time",
                &[Fact::Calls, Fact::Activity],
            ),
            rollup(
                "ticket_metrics",
                "ticket and CSAT measures by agent, team, channel, intent and time",
                &[Fact::Tickets, Fact::Csat],
            ),
            rollup(
                "pipeline_metrics",
                "pipeline measures by agent, team, campaign, lead source, stage and time",
                &[Fact::Stages],
            ),
            calls(),
            drill_down(
                "conversations",
                TableKind::Records(RecordKind::Conversations),
                "tickets and chats (current versions), newest first by opened_at",
                CONVERSATION_FIELDS,
            ),
            drill_down(
                "lead_stages",
                TableKind::Records(RecordKind::LeadStages),
                "pipeline stage changes, newest first by at",
                STAGE_FIELDS,
            ),
            directory(
                "agents",
                DirectoryKind::Agent,
                &[
                    ("name", Type::TEXT),
                    ("team_id", Type::TEXT),
                    ("avatar_url", Type::TEXT),
                ],
            ),
            directory("teams", DirectoryKind::Team, &[("name", Type::TEXT)]),
            directory(
                "campaigns",
                DirectoryKind::Campaign,
                &[("name", Type::TEXT), ("cost", Type::FLOAT8), ("currency", Type::TEXT)],
            ),
        ]
    });
    &TABLES
}

pub fn find(name: &str) -> Option<&'static VirtualTable> {
    tables().iter().find(|t| t.name == name)
}

/// The table a measure belongs to: that of its first fact (revenue per call reads calls too,
/// but it is a pipeline measure).
fn home(m: &MeasureDef) -> Fact {
    if m.facts.contains(&Fact::Stages) {
        Fact::Stages
    } else {
        m.facts[0]
    }
}

fn rollup(name: &'static str, description: &'static str, facts: &[Fact]) -> VirtualTable {
    let mut columns = vec![TableColumn {
        name: "time".into(),
        pg_type: Type::TIMESTAMPTZ,
        role: Role::Time,
        description: "the bucket's local start; group by date_trunc('hour'|'day'|'week'|'month'|'quarter', time), or time for 15 minutes".into(),
    }];
    let stored: Vec<Dim> = Dim::ALL
        .into_iter()
        .filter(|d| facts.iter().any(|f| f.dims().contains(d)))
        .collect();
    for d in Dimension::ALL {
        let present = match d {
            Dimension::Key(k) => stored.contains(&k),
            Dimension::DispositionCategory => stored.contains(&Dim::Disposition),
            Dimension::HourOfDay | Dimension::DayOfWeek => true,
        };
        if present {
            let pg_type = match d {
                Dimension::HourOfDay | Dimension::DayOfWeek => Type::INT8,
                _ => Type::TEXT,
            };
            columns.push(TableColumn {
                name: d.name().into(),
                pg_type,
                role: Role::Dimension(d),
                description: format!("dimension {}", d.name()),
            });
        }
    }
    for m in MEASURES.iter().filter(|m| facts.contains(&home(m))) {
        columns.push(TableColumn {
            name: m.name.into(),
            pg_type: measure_type(m),
            role: Role::Measure(m),
            description: m.description.into(),
        });
    }
    VirtualTable {
        name,
        kind: TableKind::Rollup,
        description,
        columns,
    }
}

pub fn measure_type(m: &MeasureDef) -> Type {
    if m.unit == Unit::Count {
        Type::INT8
    } else {
        Type::FLOAT8
    }
}

/// Whether `SUM(m)` over groups is `m` over their union: counts and totals add up; rates,
/// averages and percentiles do not.
pub fn additive(m: &MeasureDef) -> bool {
    matches!(m.unit, Unit::Count | Unit::Hours | Unit::Minutes) || m.name.starts_with("total_") || m.name == "revenue"
}

/// The raw call columns: `(name, type, JSON path in the drill-down's call, dimension it filters)`.
pub const CALL_FIELDS: &[(&str, Type, &str)] = &[
    ("call_id", Type::TEXT, "call_id"),
    ("agent_id", Type::TEXT, "agent_id"),
    ("team_id", Type::TEXT, "team_id"),
    ("campaign_id", Type::TEXT, "campaign_id"),
    ("list_id", Type::TEXT, "list_id"),
    ("contact_id", Type::TEXT, "contact_id"),
    ("lead_source", Type::TEXT, "lead_source"),
    ("direction", Type::TEXT, "direction"),
    ("disposition", Type::TEXT, "disposition"),
    ("disposition_category", Type::TEXT, "disposition_category"),
    ("started_at", Type::TIMESTAMPTZ, "started_at"),
    ("ended_at", Type::TIMESTAMPTZ, "ended_at"),
    ("talk_seconds", Type::INT8, "talk_seconds"),
    ("wait_seconds", Type::INT8, "wait_seconds"),
    ("wrap_seconds", Type::INT8, "wrap_seconds"),
    ("voicemail_dropped", Type::BOOL, "voicemail_dropped"),
    ("is_callback", Type::BOOL, "is_callback"),
    ("abandoned", Type::BOOL, "abandoned"),
    ("score", Type::FLOAT8, "analysis.score"),
    ("sentiment", Type::FLOAT8, "analysis.sentiment"),
    ("prospect_sentiment", Type::FLOAT8, "analysis.prospect_sentiment"),
    ("agent_talk_ratio", Type::FLOAT8, "analysis.agent_talk_ratio"),
    ("filler_words_per_100", Type::FLOAT8, "analysis.filler_words_per_100"),
    ("intent", Type::TEXT, "analysis.intent"),
];

/// A conversation's columns, as [`CALL_FIELDS`].
pub const CONVERSATION_FIELDS: &[(&str, Type, &str)] = &[
    ("conversation_id", Type::TEXT, "conversation_id"),
    ("event_id", Type::TEXT, "event_id"),
    ("channel", Type::TEXT, "channel"),
    ("opened_at", Type::TIMESTAMPTZ, "opened_at"),
    ("agent_id", Type::TEXT, "agent_id"),
    ("team_id", Type::TEXT, "team_id"),
    ("first_response_at", Type::TIMESTAMPTZ, "first_response_at"),
    ("resolved_at", Type::TIMESTAMPTZ, "resolved_at"),
    ("status", Type::TEXT, "status"),
    ("intent", Type::TEXT, "intent"),
];

/// A stage change's columns, as [`CALL_FIELDS`].
pub const STAGE_FIELDS: &[(&str, Type, &str)] = &[
    ("event_id", Type::TEXT, "event_id"),
    ("contact_id", Type::TEXT, "contact_id"),
    ("stage", Type::TEXT, "stage"),
    ("at", Type::TIMESTAMPTZ, "at"),
    ("campaign_id", Type::TEXT, "campaign_id"),
    ("lead_source", Type::TEXT, "lead_source"),
    ("agent_id", Type::TEXT, "agent_id"),
    ("call_id", Type::TEXT, "call_id"),
    ("amount", Type::FLOAT8, "amount"),
    ("currency", Type::TEXT, "currency"),
];

/// How SQL filters a drill-down table: its time column (`WHERE time >= … AND time < …`,
/// `ORDER BY time DESC`) and which of its columns filter by which dimension of the query model
/// (`agent_id` by `agent`).
pub struct DrillFilters {
    pub time: &'static str,
    pub dimensions: &'static [(&'static str, &'static str)],
}

pub fn drill_filters(kind: TableKind) -> Option<DrillFilters> {
    Some(match kind {
        TableKind::Calls => DrillFilters {
            time: "started_at",
            dimensions: &[
                ("agent_id", "agent"),
                ("team_id", "team"),
                ("campaign_id", "campaign"),
                ("list_id", "list"),
                ("lead_source", "lead_source"),
                ("direction", "direction"),
                ("disposition", "disposition"),
                ("disposition_category", "disposition_category"),
            ],
        },
        TableKind::Records(RecordKind::Conversations) => DrillFilters {
            time: "opened_at",
            dimensions: &[
                ("agent_id", "agent"),
                ("team_id", "team"),
                ("channel", "channel"),
                ("intent", "intent"),
            ],
        },
        TableKind::Records(RecordKind::LeadStages) => DrillFilters {
            time: "at",
            dimensions: &[
                ("agent_id", "agent"),
                ("campaign_id", "campaign"),
                ("lead_source", "lead_source"),
                ("stage", "stage"),
            ],
        },
        TableKind::Rollup | TableKind::Directory(_) => return None,
    })
}

impl DrillFilters {
    /// The dimension a column filters by.
    pub fn dimension(&self, column: &str) -> Option<Dimension> {
        let (_, name) = self.dimensions.iter().find(|(c, _)| *c == column)?;
        Dimension::parse(name)
    }
}

fn calls() -> VirtualTable {
    drill_down(
        "calls",
        TableKind::Calls,
        "raw call records, newest first (the drill-down of /calls)",
        CALL_FIELDS,
    )
}

fn drill_down(
    name: &'static str,
    kind: TableKind,
    description: &'static str,
    fields: &[(&str, Type, &'static str)],
) -> VirtualTable {
    let noun = name.trim_end_matches('s').replace('_', " ");
    VirtualTable {
        name,
        kind,
        description,
        columns: fields
            .iter()
            .map(|(column, ty, path)| TableColumn {
                name: (*column).into(),
                pg_type: ty.clone(),
                role: Role::Field(path),
                description: format!("the {noun}'s {column}"),
            })
            .collect(),
    }
}

fn directory(name: &'static str, kind: DirectoryKind, fields: &[(&'static str, Type)]) -> VirtualTable {
    let mut columns = vec![TableColumn {
        name: "id".into(),
        pg_type: Type::TEXT,
        role: Role::Field("id"),
        description: "the id events use".into(),
    }];
    columns.extend(fields.iter().map(|(f, ty)| TableColumn {
        name: (*f).into(),
        pg_type: ty.clone(),
        role: Role::Field(f),
        description: format!("the directory's {f}"),
    }));
    VirtualTable {
        name,
        kind: TableKind::Directory(kind),
        description: "the directory (names for ids)",
        columns,
    }
}
