//! Scoring plans on the live service (issue 7): lead and engagement scores defined over the
//! admin API, kept per profile by the live engine from the events it sees, usable in rules
//! (`score lead >= 50`, which leaves on time as the score decays), and explained per profile.
//!
//! A plan is stored as the JSON it was given, after the checks:
//!
//! ```json
//! {"name": "lead", "min": 0, "max": 100, "signals": [
//!   {"label": "viewed pricing", "event": "\"Page Viewed\" with path = \"/pricing\"",
//!    "points": 10, "half_life": "7d", "cap": 40},
//!   {"label": "unsubscribed", "event": "\"Unsubscribed\"", "points": -30}]}
//! ```

use crate::admin::blocking_api as blocking;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use strata_rules::score::{self, Plan, Signal};
use strata_store::{Reader, StoreError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanInput {
    name: String,
    signals: Vec<SignalInput>,
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalInput {
    #[serde(default)]
    label: Option<String>,
    /// An event as rules write it: `"Page Viewed" with path = "/pricing"`.
    event: String,
    points: f64,
    #[serde(default)]
    half_life: Option<String>,
    #[serde(default)]
    cap: Option<f64>,
}

/// Checks a plan's JSON; the message says what to fix and where.
pub(crate) fn parse_plan(body: &Value) -> Result<Plan, String> {
    let input: PlanInput = serde_json::from_value(body.clone()).map_err(|e| {
        format!("expected {{\"name\", \"signals\": [{{\"event\", \"points\", \"half_life\"?, \"cap\"?, \"label\"?}}], \"min\"?, \"max\"?}}: {e}")
    })?;
    let name_ok = input
        .name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && input
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok || input.name.len() > 64 {
        return Err(format!(
            "plan name {:?}: letters, digits and `_`, starting with a letter (rules write `score NAME`)",
            input.name
        ));
    }
    let signals = input
        .signals
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let at = |m: String| format!("signals[{i}]: {m}");
            let event =
                strata_rules::parse_event(&s.event).map_err(|e| at(format!("event: {e}")))?;
            let half_life = s
                .half_life
                .as_deref()
                .map(strata_store::computed::parse_window)
                .transpose()
                .map_err(|e| at(format!("half_life: {e}")))?;
            Ok(Signal {
                label: s.label.unwrap_or_else(|| s.event.clone()),
                event,
                points: s.points,
                half_life,
                cap: s.cap,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let plan = Plan {
        name: input.name,
        signals,
        min: input.min.unwrap_or(0.0),
        max: input.max.unwrap_or(100.0),
    };
    plan.validate()?;
    Ok(plan)
}

/// Every stored plan, checked (a plan that no longer checks is left out).
pub(crate) fn plans(reader: &Reader) -> Result<Vec<Plan>, StoreError> {
    Ok(reader
        .scoring_plans()?
        .iter()
        .filter_map(|(_, v)| parse_plan(v).ok())
        .collect())
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    crate::admin::require_admin(state, headers)
}

/// `GET /api/scores`: every plan.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let st = Arc::clone(&state);
    blocking(move || {
        let plans = st.store.scoring_plans().map_err(|e| ApiError::store(&e))?;
        let shown: Vec<&Value> = plans.iter().map(|(_, v)| v).collect();
        Ok(Json(json!({ "plans": shown })).into_response())
    })
    .await
}

/// `POST /api/scores`: defines a plan, or replaces one; live segments restart from the log
/// so that every profile's score follows the new plan.
pub async fn define(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("not JSON: {e}")))?;
    let plan = parse_plan(&value).map_err(|m| ApiError::bad_request("invalid_plan", m))?;
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        st.store
            .put_scoring_plan(&plan.name, &value)
            .map_err(|e| ApiError::store(&e))?;
        st.live.rebuild(&st.store, now)?;
        Ok((StatusCode::CREATED, Json(value)).into_response())
    })
    .await
}

/// `DELETE /api/scores/{name}`: refused (409) while a segment's rule uses the plan.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let users: Vec<String> = store
            .segments()
            .map_err(|e| ApiError::store(&e))?
            .into_iter()
            .filter(|r| {
                strata_rules::parse(&r.rule).is_ok_and(|e| {
                    e.any_condition(
                        |c| matches!(c, strata_rules::Expr::Score { name: n, .. } if *n == name),
                    )
                })
            })
            .map(|r| r.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "plan_in_use",
                format!(
                    "scoring plan {name:?} is used by segment(s) {}: change them first",
                    users.join(", ")
                ),
            ));
        }
        if !store
            .remove_scoring_plan(&name)
            .map_err(|e| ApiError::store(&e))?
        {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "plan_not_found",
                format!("no scoring plan {name:?}"),
            ));
        }
        st.live.rebuild(store, now)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

/// `GET /api/profiles/{key}/scores`: each plan's score now and why, over the profile's
/// stored events.
pub async fn of_profile(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let profile = crate::admin::profile_or_404(store, &key)?;
        let events = crate::segments::history_of(store, &profile.id).map_err(|e| ApiError::store(&e))?;
        let shown: Vec<Value> = plans(store)
            .map_err(|e| ApiError::store(&e))?
            .iter()
            .map(|plan| {
                let why = score::score(plan, &events, now);
                json!({
                    "plan": plan.name,
                    "score": why.score,
                    "clamped": why.clamped,
                    "signals": why.contributions.iter().map(|c| json!({
                        "label": c.label, "events": c.events, "raw": c.raw, "points": c.points, "capped": c.capped,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(Json(json!({ "profile": profile.id, "at": crate::segments::iso(now), "scores": shown })).into_response())
    })
    .await
}
