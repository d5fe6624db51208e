//! The directory (agents, teams, campaigns) and tenant settings as requests see them: what a
//! client may send, validated field by field, and a snapshot the analytics views read names,
//! membership, goals and costs from.

use dialboard_engine::clock::Clock;
use dialboard_engine::taxonomy::Taxonomy;
use dialboard_engine::FieldError;
use dialboard_store::{ActivityTargets, CoachingThresholds, DirectoryKind, TenantSettings};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashSet;

pub use dialboard_views::directory::{Agent, Campaign, Directory, Team};

/// Reads one field as `T`, or records why it cannot be.
fn field<T: DeserializeOwned>(obj: &Map<String, Value>, name: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    let v = obj.get(name)?;
    match serde_json::from_value(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(FieldError::new(name, e.to_string()));
            None
        }
    }
}

fn non_negative(errors: &mut Vec<FieldError>, field: &str, values: &[(&str, f64)]) {
    for (name, v) in values {
        if !(v.is_finite() && *v >= 0.0) {
            errors.push(FieldError::new(format!("{field}.{name}"), "must be a number ≥ 0"));
        }
    }
}

fn check_targets(t: &ActivityTargets, field: &str, errors: &mut Vec<FieldError>) {
    non_negative(
        errors,
        field,
        &[
            ("min_calls", t.min_calls),
            ("min_connects", t.min_connects),
            ("min_talk_minutes", t.min_talk_minutes),
            ("max_idle_minutes", t.max_idle_minutes),
            ("min_dialing_hours", t.min_dialing_hours),
        ],
    );
}

/// Validates a directory entry's body; every problem names its field.
pub fn validate_entry(kind: DirectoryKind, body: &Value) -> Result<Value, Vec<FieldError>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![FieldError::new("", "must be a JSON object")]);
    };
    let known: &[&str] = match kind {
        DirectoryKind::Agent => &["name", "team_id", "avatar_url", "daily_goal", "leaderboard_opt_out"],
        DirectoryKind::Team => &["name", "targets"],
        DirectoryKind::Campaign => &["name", "cost", "currency"],
    };
    let mut errors: Vec<FieldError> = obj
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| FieldError::new(k.clone(), format!("unknown field; known: {}", known.join(", "))))
        .collect();
    match obj.get("name").and_then(Value::as_str).map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 256 => {
            if let Some(message) = dialboard_engine::forbidden_char_message(n) {
                errors.push(FieldError::new("name", message));
            }
        }
        _ => errors.push(FieldError::new("name", "is required: a string of 1 to 256 characters")),
    }
    for name in ["team_id", "avatar_url", "currency"] {
        let text = field::<Option<String>>(obj, name, &mut errors).flatten();
        if let Some(message) = text.as_deref().and_then(dialboard_engine::forbidden_char_message) {
            errors.push(FieldError::new(name, message));
        }
    }
    field::<Option<u32>>(obj, "daily_goal", &mut errors);
    field::<Option<bool>>(obj, "leaderboard_opt_out", &mut errors);
    if let Some(Some(t)) = field::<Option<ActivityTargets>>(obj, "targets", &mut errors) {
        check_targets(&t, "targets", &mut errors);
    }
    if let Some(Some(cost)) = field::<Option<f64>>(obj, "cost", &mut errors) {
        non_negative(&mut errors, "", &[("cost", cost)]);
    }
    if errors.is_empty() {
        Ok(body.clone())
    } else {
        Err(errors)
    }
}

/// The tenant's holiday calendar: local dates (`YYYY-MM-DD`), at most 2,000, kept sorted and
/// without repeats; the forecast treats them as holidays.
fn holidays(days: &[String]) -> Result<Vec<String>, String> {
    if days.len() > 2_000 {
        return Err("must list at most 2000 dates".into());
    }
    let mut out = std::collections::BTreeSet::new();
    for d in days {
        let date = dialboard_engine::clock::parse_date(d).map_err(|m| format!("{d:?}: {m}"))?;
        out.insert(date.to_string());
    }
    Ok(out.into_iter().collect())
}

/// What is wrong with a tenant's badge rules, if anything: at most 100, ids unique and
/// non-empty (an award is keyed by its badge's id), names non-empty.
fn badge_problem(badges: &[dialboard_engine::gamification::Badge]) -> Option<String> {
    if badges.len() > 100 {
        return Some("must list at most 100 badges".into());
    }
    let mut ids = HashSet::new();
    for b in badges {
        if b.id.trim().is_empty() || b.name.trim().is_empty() {
            return Some("every badge needs a non-empty id and name".into());
        }
        if !ids.insert(b.id.as_str()) {
            return Some(format!("badge id {:?} is listed twice", b.id));
        }
    }
    None
}

/// Applies a partial settings change (only the fields given change); every problem names its
/// field.
pub fn apply_settings(current: &TenantSettings, change: &Value) -> Result<TenantSettings, Vec<FieldError>> {
    let Some(obj) = change.as_object() else {
        return Err(vec![FieldError::new("", "must be a JSON object")]);
    };
    let mut s = current.clone();
    let mut errors = Vec::new();
    for key in obj.keys() {
        match key.as_str() {
            "timezone" => {
                if let Some(tz) = field::<String>(obj, key, &mut errors) {
                    match Clock::new(&tz) {
                        Ok(_) => s.timezone = tz,
                        Err(message) => errors.push(FieldError::new(key, message)),
                    }
                }
            }
            "taxonomy" => {
                if let Some(t) = field::<Taxonomy>(obj, key, &mut errors) {
                    let mut seen = HashSet::new();
                    for (_, dispositions) in &t.categories {
                        for d in dispositions {
                            if d.trim().is_empty() || !seen.insert(d.to_lowercase()) {
                                errors.push(FieldError::new(
                                    "taxonomy.categories",
                                    format!("disposition '{d}' is empty or listed twice"),
                                ));
                            }
                        }
                    }
                    s.taxonomy = t;
                }
            }
            "stages" => {
                if let Some(stages) = field::<Vec<String>>(obj, key, &mut errors) {
                    let unique: HashSet<&String> = stages.iter().collect();
                    if stages.is_empty() || unique.len() != stages.len() || stages.iter().any(|x| x.trim().is_empty()) {
                        errors.push(FieldError::new(key, "must list one or more distinct, non-empty stages"));
                    }
                    s.stages = stages;
                }
            }
            "targets" => {
                if let Some(t) = field::<ActivityTargets>(obj, key, &mut errors) {
                    check_targets(&t, key, &mut errors);
                    s.targets = t;
                }
            }
            "coaching" => {
                if let Some(c) = field::<CoachingThresholds>(obj, key, &mut errors) {
                    s.coaching = c;
                }
            }
            "retention" => {
                if let Some(policy) = field::<dialboard_store::retention::RetentionPolicy>(obj, key, &mut errors) {
                    errors.extend(policy.problems());
                    s.retention = policy;
                }
            }
            "leaderboard_privacy" => {
                if let Some(p) = field::<bool>(obj, key, &mut errors) {
                    s.leaderboard_privacy = p;
                }
            }
            "holidays" => {
                if let Some(days) = field::<Vec<String>>(obj, key, &mut errors) {
                    match holidays(&days) {
                        Ok(days) => s.holidays = days,
                        Err(e) => errors.push(FieldError::new(key, e)),
                    }
                }
            }
            "fair_ranking" => {
                if let Some(f) = field::<dialboard_store::FairRanking>(obj, key, &mut errors) {
                    s.fair_ranking = f;
                }
            }
            "badges" => {
                if let Some(badges) = field::<Option<Vec<dialboard_engine::gamification::Badge>>>(obj, key, &mut errors) {
                    match badges.as_deref().map(badge_problem) {
                        Some(Some(problem)) => errors.push(FieldError::new(key, problem)),
                        _ => s.badges = badges,
                    }
                }
            }
            other => errors.push(FieldError::new(
                other,
                "unknown field; known: timezone, taxonomy, stages, targets, coaching, retention, leaderboard_privacy, holidays, fair_ranking, badges",
            )),
        }
    }
    if errors.is_empty() {
        Ok(s)
    } else {
        Err(errors)
    }
}
