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
use dialboard_views::ViewSpec;
use serde::Serialize;

/// A measure as the builder offers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeasureInfo {
    /// What it counts, in words.
    pub description: &'static str,
    pub name: &'static str,
    /// `count`, `percent`, `seconds`, `hours`, `minutes`, `score`, `currency`, `ratio`,
    /// `per_hour` or `days`.
    pub unit: &'static str,
}

/// `GET /catalogue`. Fields in name order, as the JSON object it was before it was typed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Catalogue {
    pub comparisons: [&'static str; 2],
    pub dimensions: Vec<&'static str>,
    pub granularities: Vec<&'static str>,
    pub measures: Vec<MeasureInfo>,
    pub presets: Vec<&'static str>,
    pub views: Vec<ViewSpec>,
    pub visualizations: Vec<&'static str>,
}

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

pub async fn catalogue(principal: Principal) -> Result<Json<Catalogue>, ApiError> {
    principal.require(Scope::Read)?;
    let measures = MEASURES
        .iter()
        .map(|m| MeasureInfo {
            description: m.description,
            name: m.name,
            unit: unit_name(m.unit),
        })
        .collect();
    let granularities = ["15m", "hour", "day", "week", "month", "quarter"]
        .into_iter()
        .filter(|g| Granularity::parse(g).is_some())
        .collect();
    Ok(Json(Catalogue {
        comparisons: ["previous_period", "same_period_last_year"],
        dimensions: Dimension::names(),
        granularities,
        measures,
        presets: PRESETS.to_vec(),
        views: VIEWS.to_vec(),
        visualizations: VISUALIZATIONS.to_vec(),
    }))
}
