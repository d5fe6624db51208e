//! `GET /api/v1/catalogue`: what a question can be made of — the measures (with unit and
//! definition), dimensions, granularities, range presets, comparisons, visualizations and the
//! built-in views with their parameters — read from the engine's catalogue and the report
//! model, so the web app's report builder offers exactly what the server accepts.

use super::auth::Principal;
use super::error::ApiError;
use crate::reports::views::VIEWS;
use crate::reports::VISUALIZATIONS;
use axum::Json;
use dialboard_engine::clock::Granularity;
use dialboard_engine::measures::{Unit, MEASURES};
use dialboard_engine::query::{Dimension, PRESETS};
use dialboard_store::Scope;
use serde_json::{json, Value};

fn unit_name(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "count",
        Unit::Percent => "percent",
        Unit::Seconds => "seconds",
        Unit::Hours => "hours",
        Unit::Minutes => "minutes",
        Unit::Score => "score",
        Unit::Currency => "currency",
        Unit::Ratio => "ratio",
        Unit::PerHour => "per_hour",
        Unit::Days => "days",
    }
}

pub async fn catalogue(principal: Principal) -> Result<Json<Value>, ApiError> {
    principal.require(Scope::Read)?;
    let measures: Vec<Value> = MEASURES
        .iter()
        .map(|m| json!({"name": m.name, "unit": unit_name(m.unit), "description": m.description}))
        .collect();
    let granularities: Vec<&str> = ["15m", "hour", "day", "week", "month", "quarter"]
        .into_iter()
        .filter(|g| Granularity::parse(g).is_some())
        .collect();
    Ok(Json(json!({
        "measures": measures,
        "dimensions": Dimension::names(),
        "granularities": granularities,
        "presets": PRESETS,
        "comparisons": ["previous_period", "same_period_last_year"],
        "visualizations": VISUALIZATIONS,
        "views": VIEWS,
    })))
}
