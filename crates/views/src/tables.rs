//! A view's answer as tables (and charts), the shape every export format renders: the numbers
//! are the answer's own, typed by what they measure (counts, percents, seconds, instants).

use crate::request::{ViewAnswer, ViewRequest};
use crate::types::{Measures, Metric};
use crate::*;
use dialboard_engine::measures::{measure, Unit};
use dialboard_export::{Cell, Chart, ChartKind, Column, ColumnKind, CsvWriter, PdfHeader, Series, Table, XlsxWriter};
use dialboard_store::TenantInfo;

/// What an export of a view (or of a saved report) holds: the header of its PDF, charts and
/// tables; each format renders the same parts.
pub struct ViewFile {
    pub header: PdfHeader,
    pub charts: Vec<Chart>,
    pub tables: Vec<Table>,
}

impl ViewFile {
    /// RFC 4180 CSV of the first (the view's main) table: one table is all CSV can hold.
    pub fn csv(&self) -> dialboard_export::Result<Vec<u8>> {
        let Some(table) = self.tables.first() else {
            return Ok(Vec::new());
        };
        let mut out = CsvWriter::new(Vec::new(), &table.columns, self.header.zone.clone())?;
        for row in &table.rows {
            out.write_row(row)?;
        }
        out.into_inner()
    }

    /// One sheet per table.
    pub fn xlsx(&self) -> dialboard_export::Result<Vec<u8>> {
        let mut book = XlsxWriter::new(self.header.zone.clone(), None)?;
        for table in &self.tables {
            book.start_sheet(&table.title, &table.columns)?;
            for row in &table.rows {
                book.write_row(row)?;
            }
        }
        book.to_bytes()
    }

    pub fn pdf(&self) -> dialboard_export::Result<Vec<u8>> {
        dialboard_export::pdf(&self.header, &self.charts, &self.tables)
    }
}

/// Builds one table column by column kind.
struct Builder {
    title: String,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Builder {
    fn new(title: impl Into<String>, columns: &[(&str, ColumnKind)]) -> Builder {
        Builder {
            title: title.into(),
            columns: columns.iter().map(|(n, k)| Column::new(*n, *k)).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    fn done(self) -> Table {
        Table {
            title: self.title,
            columns: self.columns,
            rows: self.rows,
        }
    }
}

use ColumnKind::{Boolean, DateTime, Integer, Number, Percent, Text};

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Cell {
    s.map_or(Cell::Empty, text)
}

/// A measure's value: integers stay integers.
fn m(v: &Metric) -> Cell {
    match &v.0 {
        None => Cell::Empty,
        Some(n) => match n.as_i64() {
            Some(i) => Cell::Int(i),
            None => n.as_f64().map_or(Cell::Empty, Cell::Number),
        },
    }
}

fn f(v: Option<f64>) -> Cell {
    v.map_or(Cell::Empty, Cell::Number)
}

fn int(v: i64) -> Cell {
    Cell::Int(v)
}

/// An RFC 3339 instant as an instant cell (shown in the file's zone).
fn instant(s: &str) -> Cell {
    s.parse::<jiff::Timestamp>()
        .map_or_else(|_| text(s), |t| Cell::Instant(t.as_second()))
}

fn number(v: &Metric) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// The column kind of a measure, from its unit in the catalogue.
fn kind_of(name: &str) -> ColumnKind {
    match measure(name).map(|m| m.unit) {
        Some(Unit::Count) => Integer,
        Some(Unit::Percent) => Percent,
        Some(Unit::Seconds) => ColumnKind::DurationSeconds,
        _ => Number,
    }
}

/// Measures as rows of (measure, value[, previous, change]).
fn measures_table(title: &str, now: &Measures, before: Option<&Measures>, change: Option<&Measures>) -> Table {
    let mut t = Builder::new(
        title,
        &[
            ("measure", Text),
            ("value", Number),
            ("previous", Number),
            ("change_percent", Percent),
        ],
    );
    for (name, value) in now.iter() {
        let get = |ms: Option<&Measures>| ms.and_then(|ms| ms.get(name)).map_or(Cell::Empty, m);
        t.row(vec![text(name), m(value), get(before), get(change)]);
    }
    t.done()
}

fn line(title: &str, categories: Vec<String>, series: Vec<(&str, Vec<f64>)>) -> Chart {
    Chart {
        title: title.into(),
        kind: ChartKind::Line,
        categories,
        series: series
            .into_iter()
            .map(|(name, values)| Series {
                name: name.into(),
                values,
            })
            .collect(),
    }
}

fn bar(title: &str, categories: Vec<String>, series: Vec<(&str, Vec<f64>)>) -> Chart {
    Chart {
        kind: ChartKind::Bar,
        ..line(title, categories, series)
    }
}

impl ViewAnswer {
    /// The answer as an export: header, charts and tables.
    pub fn file(&self, request: &ViewRequest, tenant: &TenantInfo) -> ViewFile {
        let shared = request.shared();
        let zone_name = shared.timezone.as_deref().unwrap_or(&tenant.settings.timezone);
        let asked = match (&shared.preset, &shared.start, &shared.end) {
            (_, Some(start), Some(end)) => format!("{start} – {end}"),
            (Some(preset), _, _) => preset.replace('_', " "),
            _ => "the view's default range".into(),
        };
        let (title, range, charts, tables) = self.parts();
        ViewFile {
            header: PdfHeader {
                title,
                tenant: tenant.name.clone(),
                range: range.map_or(asked, |r| format!("{} – {}", r.start, r.end)),
                zone: jiff::tz::TimeZone::get(zone_name).unwrap_or(jiff::tz::TimeZone::UTC),
            },
            charts,
            tables,
        }
    }

    /// Title, the resolved range where the answer states one, charts and tables.
    fn parts(&self) -> (String, Option<Range>, Vec<Chart>, Vec<Table>) {
        match self {
            ViewAnswer::Metrics(v) => {
                let mut t = Builder::new(
                    "KPIs",
                    &[
                        ("metric", Text),
                        ("value", Number),
                        ("previous", Number),
                        ("change_percent", Percent),
                    ],
                );
                for k in &v.kpis {
                    t.row(vec![text(&k.metric), m(&k.value), m(&k.previous), m(&k.change_percent)]);
                }
                let chart = bar(
                    "This period and the previous",
                    v.kpis.iter().map(|k| k.metric.clone()).collect(),
                    vec![
                        ("this period", v.kpis.iter().map(|k| number(&k.value)).collect()),
                        ("previous", v.kpis.iter().map(|k| number(&k.previous)).collect()),
                    ],
                );
                (
                    "Today's KPIs".into(),
                    Some(v.range.clone()),
                    vec![chart],
                    vec![t.done()],
                )
            }
            ViewAnswer::CallMetrics(v) => {
                let series = |title: &str, points: &[CallPoint]| {
                    let mut t = Builder::new(
                        title,
                        &[
                            ("time", DateTime),
                            ("total_calls", Integer),
                            ("connected_calls", Integer),
                            ("meetings_booked", Integer),
                            ("connect_rate", Percent),
                        ],
                    );
                    for p in points {
                        t.row(vec![
                            instant(&p.time),
                            m(&p.total_calls),
                            m(&p.connected_calls),
                            m(&p.meetings_booked),
                            m(&p.connect_rate),
                        ]);
                    }
                    t.done()
                };
                let mut tables = vec![series("Call volume", &v.series)];
                if let Some(c) = &v.comparison {
                    tables.push(series("Compared period", &c.series));
                }
                let chart = line(
                    "Calls over time",
                    v.series.iter().map(|p| p.time.clone()).collect(),
                    vec![
                        ("calls", v.series.iter().map(|p| number(&p.total_calls)).collect()),
                        (
                            "connected",
                            v.series.iter().map(|p| number(&p.connected_calls)).collect(),
                        ),
                        (
                            "meetings",
                            v.series.iter().map(|p| number(&p.meetings_booked)).collect(),
                        ),
                    ],
                );
                ("Call metrics".into(), Some(v.period.range.clone()), vec![chart], tables)
            }
            ViewAnswer::Dispositions(v) => {
                let mut t = Builder::new(
                    "Dispositions",
                    &[
                        ("category", Text),
                        ("disposition", Text),
                        ("total_calls", Integer),
                        ("percent", Percent),
                    ],
                );
                for c in &v.categories {
                    for d in &c.dispositions {
                        t.row(vec![
                            text(&c.category),
                            opt_text(d.disposition.as_deref()),
                            int(d.total_calls),
                            f(d.percent),
                        ]);
                    }
                }
                let chart = bar(
                    "Calls by category",
                    v.categories.iter().map(|c| c.category.clone()).collect(),
                    vec![("calls", v.categories.iter().map(|c| c.total_calls as f64).collect())],
                );
                (
                    "Dispositions".into(),
                    Some(v.period.range.clone()),
                    vec![chart],
                    vec![t.done()],
                )
            }
            ViewAnswer::CallTimeHeatmap(v) => {
                let mut t = Builder::new(
                    "Heatmap",
                    &[
                        ("day_of_week", Integer),
                        ("hour_of_day", Integer),
                        ("value", kind_of(&v.metric)),
                        ("total_calls", Integer),
                        ("connect_rate", Percent),
                    ],
                );
                for c in &v.cells {
                    t.row(vec![
                        int(c.day_of_week as i64),
                        int(c.hour_of_day as i64),
                        m(&c.value),
                        m(&c.total_calls),
                        m(&c.connect_rate),
                    ]);
                }
                (
                    "Call-time heatmap".into(),
                    Some(v.period.range.clone()),
                    vec![heatmap_chart(&v.metric, &v.cells)],
                    vec![t.done()],
                )
            }
            ViewAnswer::AgentScorecard(v) => {
                let mut t = Builder::new("Scorecard", &[("measure", Text), ("value", Number)]);
                let rows: [(&str, Cell); 18] = [
                    ("total_calls", m(&v.total_calls)),
                    ("connected_calls", m(&v.connected_calls)),
                    ("connect_rate", m(&v.connect_rate)),
                    ("calls_per_hour", m(&v.calls_per_hour)),
                    ("total_talk_time_minutes", f(v.total_talk_time_minutes)),
                    ("avg_talk_time_seconds", m(&v.avg_talk_time_seconds)),
                    ("meetings_booked", m(&v.meetings_booked)),
                    ("avg_call_score", m(&v.avg_call_score)),
                    ("call_score_trend", f(v.call_score_trend)),
                    ("avg_sentiment_score", m(&v.avg_sentiment_score)),
                    ("filler_word_rate", m(&v.filler_word_rate)),
                    ("avg_talk_ratio", m(&v.avg_talk_ratio)),
                    ("meeting_booked_rate", m(&v.meeting_booked_rate)),
                    ("positive_disposition_rate", m(&v.positive_disposition_rate)),
                    ("callback_conversion_rate", m(&v.callback_conversion_rate)),
                    ("team_rank", v.team_rank.map_or(Cell::Empty, |r| int(r as i64))),
                    ("team_size", v.team_size.map_or(Cell::Empty, |r| int(r as i64))),
                    ("percentile", f(v.percentile)),
                ];
                for (name, value) in rows {
                    t.row(vec![text(name), value]);
                }
                let mut tables = vec![t.done()];
                if let Some(previous) = &v.previous {
                    tables.push(measures_table(
                        "Previous period",
                        previous,
                        None,
                        v.change_percent.as_ref(),
                    ));
                }
                let rates = [
                    ("connect", &v.connect_rate),
                    ("meeting booked", &v.meeting_booked_rate),
                    ("positive disposition", &v.positive_disposition_rate),
                    ("callback conversion", &v.callback_conversion_rate),
                ];
                let chart = bar(
                    "Rates (%)",
                    rates.iter().map(|(n, _)| n.to_string()).collect(),
                    vec![("rate", rates.iter().map(|(_, r)| number(r)).collect())],
                );
                (
                    format!("Scorecard — {}", v.agent_name),
                    Some(v.range.clone()),
                    vec![chart],
                    tables,
                )
            }
            ViewAnswer::Leaderboard(v) => {
                let mut t = Builder::new(
                    "Leaderboard",
                    &[
                        ("rank", Integer),
                        ("agent_id", Text),
                        ("agent_name", Text),
                        ("current_status", Text),
                        ("calls", Integer),
                        ("connects", Integer),
                        ("connect_rate", Percent),
                        ("meetings", Integer),
                        ("talk_time_minutes", Number),
                        ("avg_call_score", Number),
                        ("meeting_streak", Integer),
                        ("calls_today", Integer),
                        ("daily_goal", Number),
                        ("daily_goal_progress", Percent),
                    ],
                );
                for e in &v.entries {
                    t.row(vec![
                        int(e.rank as i64),
                        text(&e.agent_id),
                        text(&e.agent_name),
                        text(&e.current_status),
                        int(e.calls),
                        int(e.connects),
                        m(&e.connect_rate),
                        int(e.meetings),
                        Cell::Number(e.talk_time_minutes),
                        m(&e.avg_call_score),
                        int(e.meeting_streak),
                        int(e.calls_today),
                        Cell::Number(e.daily_goal),
                        f(e.daily_goal_progress),
                    ]);
                }
                let chart = bar(
                    "Calls and meetings",
                    v.entries.iter().take(30).map(|e| e.agent_name.clone()).collect(),
                    vec![
                        ("calls", v.entries.iter().take(30).map(|e| e.calls as f64).collect()),
                        (
                            "meetings",
                            v.entries.iter().take(30).map(|e| e.meetings as f64).collect(),
                        ),
                    ],
                );
                let title = match &v.team_name {
                    Some(team) => format!("Leaderboard — {team}"),
                    None => "Leaderboard".into(),
                };
                (title, Some(v.period.range.clone()), vec![chart], vec![t.done()])
            }
            ViewAnswer::Trends(v) => {
                let mut score = Builder::new(
                    "Call score",
                    &[
                        ("date", Text),
                        ("avg_call_score", Number),
                        ("scored_calls", Integer),
                        ("rolling_7day_avg", Number),
                    ],
                );
                for p in &v.score {
                    score.row(vec![
                        text(&p.date),
                        f(p.avg_call_score),
                        int(p.scored_calls),
                        f(p.rolling_7day_avg),
                    ]);
                }
                let mut talk = Builder::new(
                    "Talk ratio",
                    &[
                        ("time", DateTime),
                        ("avg_talk_ratio", Number),
                        ("analysed_calls", Integer),
                    ],
                );
                for p in &v.talk_ratio {
                    talk.row(vec![instant(&p.time), m(&p.avg_talk_ratio), m(&p.analysed_calls)]);
                }
                let mut sentiment = Builder::new(
                    "Sentiment",
                    &[
                        ("time", DateTime),
                        ("avg_sentiment", Number),
                        ("avg_prospect_sentiment", Number),
                        ("analysed_calls", Integer),
                    ],
                );
                for p in &v.sentiment {
                    sentiment.row(vec![
                        instant(&p.time),
                        m(&p.avg_sentiment),
                        m(&p.avg_prospect_sentiment),
                        m(&p.analysed_calls),
                    ]);
                }
                let chart = line(
                    "Call score, rolling 7 days",
                    v.score.iter().map(|p| p.date.clone()).collect(),
                    vec![(
                        "rolling 7-day average",
                        v.score.iter().map(|p| p.rolling_7day_avg.unwrap_or(0.0)).collect(),
                    )],
                );
                (
                    format!("Trends — {}", v.agent_id),
                    Some(v.range.clone()),
                    vec![chart],
                    vec![score.done(), talk.done(), sentiment.done()],
                )
            }
            ViewAnswer::PipelineFunnel(v) => {
                let tables = funnel_tables(
                    &format!("Funnel by {}", v.group_by),
                    &v.groups,
                    &v.overall,
                    &[],
                    |_| vec![],
                );
                let chart = bar(
                    "Overall funnel",
                    v.overall.stages.keys().cloned().collect(),
                    vec![("overall", v.overall.stages.values().map(|n| *n as f64).collect())],
                );
                ("Pipeline funnel".into(), None, vec![chart], tables)
            }
            ViewAnswer::LeadSources(v) => {
                let funnels: Vec<FunnelMetrics> = v.lead_sources.iter().map(|s| s.funnel.clone()).collect();
                let tables = funnel_tables(
                    "Lead sources",
                    &funnels,
                    &v.overall,
                    &[("total_leads", Integer), ("conversion_rate", Percent)],
                    |i| match i {
                        Some(i) => vec![int(v.lead_sources[i].total_leads), f(v.lead_sources[i].conversion_rate)],
                        None => vec![Cell::Empty, Cell::Empty],
                    },
                );
                let chart = bar(
                    "Leads by source",
                    v.lead_sources
                        .iter()
                        .map(|s| s.funnel.group.clone().unwrap_or_default())
                        .collect(),
                    vec![("leads", v.lead_sources.iter().map(|s| s.total_leads as f64).collect())],
                );
                ("Lead sources".into(), None, vec![chart], tables)
            }
            ViewAnswer::ConversionFunnel(v) => {
                let mut t = Builder::new(
                    "Conversion funnel",
                    &[
                        ("stage", Text),
                        ("contacts", Integer),
                        ("conversion_from_previous", Percent),
                        ("conversion_from_first", Percent),
                    ],
                );
                for s in &v.stages {
                    t.row(vec![
                        text(&s.stage),
                        int(s.contacts),
                        f(s.conversion_from_previous),
                        f(s.conversion_from_first),
                    ]);
                }
                let chart = bar(
                    "Contacts by stage",
                    v.stages.iter().map(|s| s.stage.clone()).collect(),
                    vec![("contacts", v.stages.iter().map(|s| s.contacts as f64).collect())],
                );
                ("Conversion funnel".into(), None, vec![chart], vec![t.done()])
            }
            ViewAnswer::LeadVolume(v) => {
                let mut t = Builder::new(
                    "Lead volume",
                    &[("time", DateTime), ("new_leads", Integer), ("conversions", Integer)],
                );
                for p in &v.series {
                    t.row(vec![instant(&p.time), int(p.new_leads), int(p.conversions)]);
                }
                let chart = line(
                    "New leads and conversions",
                    v.series.iter().map(|p| p.time.clone()).collect(),
                    vec![
                        ("new leads", v.series.iter().map(|p| p.new_leads as f64).collect()),
                        ("conversions", v.series.iter().map(|p| p.conversions as f64).collect()),
                    ],
                );
                ("Lead volume".into(), None, vec![chart], vec![t.done()])
            }
            ViewAnswer::Intents(v) => {
                let mut t = Builder::new(
                    "Intents",
                    &[
                        ("intent", Text),
                        ("calls", Integer),
                        ("conversations", Integer),
                        ("total", Integer),
                        ("percent", Percent),
                    ],
                );
                for i in &v.intents {
                    t.row(vec![
                        text(&i.intent),
                        m(&i.calls),
                        m(&i.conversations),
                        int(i.total),
                        f(i.percent),
                    ]);
                }
                let chart = bar(
                    "Contacts by intent",
                    v.intents.iter().map(|i| i.intent.clone()).collect(),
                    vec![
                        ("calls", v.intents.iter().map(|i| number(&i.calls)).collect()),
                        (
                            "conversations",
                            v.intents.iter().map(|i| number(&i.conversations)).collect(),
                        ),
                    ],
                );
                ("Intents".into(), None, vec![chart], vec![t.done()])
            }
            ViewAnswer::Channels(v) => {
                let names = [
                    "ticket_volume",
                    "avg_first_response_time",
                    "median_first_response_time",
                    "avg_resolution_time",
                    "resolution_rate",
                    "csat_avg",
                    "csat_count",
                    "csat_positive_rate",
                ];
                let mut columns = vec![("channel", Text)];
                columns.extend(names.iter().map(|n| (*n, kind_of(n))));
                columns.extend([("calls", Integer), ("connected_calls", Integer)]);
                let mut t = Builder::new("Channels", &columns);
                for c in &v.channels {
                    t.row(vec![
                        text(&c.channel),
                        m(&c.ticket_volume),
                        m(&c.avg_first_response_time),
                        m(&c.median_first_response_time),
                        m(&c.avg_resolution_time),
                        m(&c.resolution_rate),
                        m(&c.csat_avg),
                        m(&c.csat_count),
                        m(&c.csat_positive_rate),
                        c.calls.as_ref().map_or(Cell::Empty, m),
                        c.connected_calls.as_ref().map_or(Cell::Empty, m),
                    ]);
                }
                let chart = bar(
                    "Volume by channel",
                    v.channels.iter().map(|c| c.channel.clone()).collect(),
                    vec![
                        ("tickets", v.channels.iter().map(|c| number(&c.ticket_volume)).collect()),
                        (
                            "calls",
                            v.channels
                                .iter()
                                .map(|c| c.calls.as_ref().map_or(0.0, number))
                                .collect(),
                        ),
                    ],
                );
                ("Channels".into(), None, vec![chart], vec![t.done()])
            }
            ViewAnswer::Campaigns(v) => {
                let comparison = v.comparison.as_ref();
                let mut metrics = measures_table(
                    "Campaign",
                    &v.metrics,
                    comparison.map(|c| &c.totals),
                    comparison.map(|c| &c.change_percent),
                );
                for (name, value) in [
                    ("cost", f(v.cost)),
                    ("leads", int(v.leads)),
                    ("cost_per_lead", f(v.cost_per_lead)),
                    ("roi_percent", f(v.roi_percent)),
                ] {
                    metrics.rows.push(vec![text(name), value, Cell::Empty, Cell::Empty]);
                }
                let mut journey = Builder::new("Journey", &[("stage", Text), ("contacts", Integer)]);
                for s in &v.journey {
                    journey.row(vec![text(&s.stage), int(s.contacts)]);
                }
                let mut intents = Builder::new("Intents", &[("intent", Text), ("total_calls", Integer)]);
                for i in &v.intents {
                    intents.row(vec![text(&i.intent), m(&i.total_calls)]);
                }
                let chart = bar(
                    "Contacts along the journey",
                    v.journey.iter().map(|s| s.stage.clone()).collect(),
                    vec![("contacts", v.journey.iter().map(|s| s.contacts as f64).collect())],
                );
                (
                    format!("Campaign — {}", v.name),
                    Some(v.range.clone()),
                    vec![chart],
                    vec![metrics, journey.done(), intents.done()],
                )
            }
            ViewAnswer::CoachingOpportunities(v) => {
                let mut t = Builder::new(
                    "Coaching opportunities",
                    &[
                        ("agent_id", Text),
                        ("agent_name", Text),
                        ("issue", Text),
                        ("severity", Text),
                        ("metric", Text),
                        ("current_value", Number),
                        ("target_value", Number),
                        ("previous_value", Number),
                        ("trend", Text),
                    ],
                );
                // The long texts apart, so the numbers stay readable on a page.
                let mut actions = Builder::new(
                    "Actions",
                    &[
                        ("agent_id", Text),
                        ("issue", Text),
                        ("suggested_action", Text),
                        ("related_calls", Text),
                    ],
                );
                for o in &v.opportunities {
                    t.row(vec![
                        text(&o.agent_id),
                        text(&o.agent_name),
                        text(&o.issue),
                        text(&o.severity),
                        text(&o.metric),
                        Cell::Number(o.current_value),
                        Cell::Number(o.target_value),
                        f(o.previous_value),
                        text(&o.trend),
                    ]);
                    actions.row(vec![
                        text(&o.agent_id),
                        text(&o.issue),
                        text(&o.suggested_action),
                        text(&o.related_calls.join(" ")),
                    ]);
                }
                (
                    format!("Coaching — {}", v.team_name),
                    None,
                    vec![opportunities_chart(&v.opportunities)],
                    vec![t.done(), actions.done()],
                )
            }
            ViewAnswer::Compliance(v) => {
                let mut t = Builder::new(
                    "Compliance",
                    &[
                        ("agent_id", Text),
                        ("agent_name", Text),
                        ("calls", Integer),
                        ("connects", Integer),
                        ("talk_minutes", Number),
                        ("idle_minutes", Number),
                        ("dialing_hours", Number),
                        ("overall_compliance", Percent),
                        ("is_compliant", Boolean),
                    ],
                );
                let mut parts = Builder::new(
                    "Compliance by target",
                    &[
                        ("agent_id", Text),
                        ("calls", Percent),
                        ("connects", Percent),
                        ("talk_time", Percent),
                        ("idle", Percent),
                        ("dialing_time", Percent),
                    ],
                );
                for a in &v.agents {
                    t.row(vec![
                        text(&a.agent_id),
                        text(&a.agent_name),
                        int(a.actuals.calls),
                        int(a.actuals.connects),
                        Cell::Number(a.actuals.talk_minutes),
                        f(a.actuals.idle_minutes),
                        f(a.actuals.dialing_hours),
                        Cell::Number(a.overall_compliance),
                        Cell::Bool(a.is_compliant),
                    ]);
                    let c = &a.compliance;
                    parts.row(vec![
                        text(&a.agent_id),
                        Cell::Number(c.calls),
                        Cell::Number(c.connects),
                        Cell::Number(c.talk_time),
                        f(c.idle),
                        f(c.dialing_time),
                    ]);
                }
                let chart = bar(
                    "Overall compliance (%)",
                    v.agents.iter().map(|a| a.agent_name.clone()).collect(),
                    vec![("compliance", v.agents.iter().map(|a| a.overall_compliance).collect())],
                );
                (
                    format!("Compliance — {}", v.date),
                    None,
                    vec![chart],
                    vec![t.done(), parts.done()],
                )
            }
        }
    }
}

/// The heatmap's grid: hours across, a row per day of the week (Monday first).
fn heatmap_chart(metric: &str, cells: &[HeatmapCell]) -> Chart {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut grid = [[0.0f64; 24]; 7];
    for c in cells {
        if let (Some(day), true) = (c.day_of_week.checked_sub(1).filter(|d| *d < 7), c.hour_of_day < 24) {
            grid[day][c.hour_of_day] = number(&c.value);
        }
    }
    Chart {
        title: format!("{} by day and hour", metric.replace('_', " ")),
        kind: ChartKind::Heatmap,
        categories: (0..24).map(|h| h.to_string()).collect(),
        series: DAYS
            .iter()
            .zip(grid)
            .map(|(day, hours)| Series {
                name: day.to_string(),
                values: hours.to_vec(),
            })
            .collect(),
    }
}

/// How many opportunities each agent has, by severity (agents in the answer's order).
fn opportunities_chart(opportunities: &[CoachingOpportunity]) -> Chart {
    let mut agents: Vec<&str> = Vec::new();
    for o in opportunities {
        if !agents.contains(&o.agent_name.as_str()) {
            agents.push(&o.agent_name);
        }
    }
    let count = |severity: &str| -> Vec<f64> {
        agents
            .iter()
            .map(|a| {
                opportunities
                    .iter()
                    .filter(|o| o.agent_name == *a && o.severity == severity)
                    .count() as f64
            })
            .collect()
    };
    bar(
        "Opportunities by agent",
        agents.iter().map(|a| a.to_string()).collect(),
        vec![
            ("high", count("high")),
            ("medium", count("medium")),
            ("low", count("low")),
        ],
    )
}

/// Funnel metrics per group, then the overall row (`total`): contacts by stage (with `extra`
/// cells for each row: by group index, `None` for the overall row), conversion rates and
/// revenue, as three tables (one would be too wide to read on a page).
fn funnel_tables(
    title: &str,
    groups: &[FunnelMetrics],
    overall: &FunnelMetrics,
    extra_columns: &[(&str, ColumnKind)],
    extra: impl Fn(Option<usize>) -> Vec<Cell>,
) -> Vec<Table> {
    let stages: Vec<String> = overall.stages.keys().cloned().collect();
    let rates: Vec<String> = overall.conversion_rates.keys().cloned().collect();
    let all: Vec<(Cell, &FunnelMetrics, Option<usize>)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (opt_text(g.group.as_deref()), g, Some(i)))
        .chain(std::iter::once((text("total"), overall, None)))
        .collect();
    let group = Column::new("group", Text);
    let table =
        |title: String, mut columns: Vec<Column>, cells: &dyn Fn(&FunnelMetrics, Option<usize>) -> Vec<Cell>| {
            columns.insert(0, group.clone());
            Table {
                title,
                columns,
                rows: all
                    .iter()
                    .map(|(name, g, i)| {
                        let mut row = vec![name.clone()];
                        row.extend(cells(g, *i));
                        row
                    })
                    .collect(),
            }
        };
    let mut counts: Vec<Column> = stages.iter().map(|s| Column::new(s.clone(), Integer)).collect();
    counts.extend(extra_columns.iter().map(|(n, k)| Column::new(*n, *k)));
    let revenue = [
        ("avg_days_first_call_to_meeting", Number),
        ("total_closed_won", Number),
        ("deals_won", Integer),
        ("avg_deal_size", Number),
        ("revenue_per_call", Number),
        ("revenue_per_connect", Number),
    ];
    vec![
        table(title.into(), counts, &|g, i| {
            let mut cells: Vec<Cell> = stages
                .iter()
                .map(|s| g.stages.get(s).map_or(Cell::Empty, |n| int(*n)))
                .collect();
            cells.extend(extra(i));
            cells
        }),
        table(
            "Conversion rates".into(),
            rates.iter().map(|r| Column::new(r.clone(), Percent)).collect(),
            &|g, _| {
                rates
                    .iter()
                    .map(|r| f(g.conversion_rates.get(r).copied().flatten()))
                    .collect()
            },
        ),
        table(
            "Revenue".into(),
            revenue.iter().map(|(n, k)| Column::new(*n, *k)).collect(),
            &|g, _| {
                let r = &g.revenue;
                vec![
                    m(&g.avg_days_first_call_to_meeting),
                    m(&r.total_closed_won),
                    m(&r.deals_won),
                    m(&r.avg_deal_size),
                    m(&r.revenue_per_call),
                    m(&r.revenue_per_connect),
                ]
            },
        ),
    ]
}
