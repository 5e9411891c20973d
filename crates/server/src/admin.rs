//! The admin API under `/api`: profiles (traits, identities, consent, trait history and
//! recent events), search, Parquet export of events and profiles, API keys, and counts.
//! Every route needs an admin key: `Authorization: Bearer <adminKey>` (or Basic user).

use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use strata_store::computed;
use strata_store::{
    ApiKey, KeyKind, Profile, RECENT_EVENTS, Reader, Search, StoredEvent, TraitChange,
};

/// Events a profile answer includes unless `?events=` says otherwise.
const DEFAULT_RECENT: usize = 20;
/// The largest page of a search.
const MAX_PAGE: usize = 1_000;

pub(crate) fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = crate::ingest::offered_key(headers)?.ok_or_else(|| {
        ApiError::unauthorized(
            "missing_admin_key",
            "this route needs an admin key: `Authorization: Bearer <adminKey>`",
        )
    })?;
    if state.key_kind(&key) == Some(KeyKind::Admin) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_admin_key",
            "the key is not an admin key of this server",
        ))
    }
}

/// Runs a store read off the async threads.
/// Runs store work on the blocking pool; its errors become API errors.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, strata_store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    blocking_api(move || f().map_err(|e| ApiError::store(&e))).await
}

/// Runs work that answers with API errors on the blocking pool.
pub(crate) async fn blocking_api<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::unavailable("internal", format!("the task failed: {e}")))?
}

pub(crate) fn parse_limit(
    name: &str,
    raw: Option<&String>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_parameter",
                format!("`{name}` must be a whole number from 1 to {max}, not `{s}`"),
            )),
        },
    }
}

/// The profile a key names (its id or an identity), or 404 `profile_not_found`.
pub(crate) fn profile_or_404(store: &Reader, key: &str) -> Result<Profile, ApiError> {
    store
        .profile(key)
        .map_err(|e| ApiError::store(&e))?
        .ok_or_else(ApiError::no_profile)
}

/// A profile as the API shows it.
#[derive(Debug, Serialize)]
pub struct ProfileView {
    #[serde(flatten, serialize_with = "without_state")]
    pub profile: Profile,
    /// Computed traits at the time of the request.
    pub computed: BTreeMap<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_events: Option<Vec<StoredEvent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trait_history: Option<Vec<TraitChange>>,
}

/// A profile as JSON without its computed-trait state (internal; the values are shown).
fn shown(profile: &Profile) -> Value {
    let mut v = serde_json::to_value(profile).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("computed_state");
    }
    v
}

fn without_state<S: serde::Serializer>(profile: &Profile, s: S) -> Result<S::Ok, S::Error> {
    Serialize::serialize(&shown(profile), s)
}

/// `GET /api/profiles/{key}`: `key` is a profile id or an identity (`user:<id>`,
/// `anon:<id>`). `?events=N` recent events (default 20, 0 for none), `?history=true` every
/// trait change.
pub async fn profile(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let events = match query.get("events").map(String::as_str) {
        Some("0") => 0,
        other => parse_limit(
            "events",
            other.map(str::to_string).as_ref(),
            DEFAULT_RECENT,
            RECENT_EVENTS,
        )?,
    };
    let history = matches!(query.get("history").map(String::as_str), Some("true" | "1"));
    let store = state.store.clone();
    let now = state.now();
    let view = blocking(move || {
        let Some(profile) = store.profile(&key)? else {
            return Ok(None);
        };
        let computed = store.computed_of(&profile, now)?;
        let recent_events = if events > 0 {
            Some(store.recent_events_of(&profile, events)?)
        } else {
            None
        };
        let trait_history = if history {
            Some(store.history_of(&profile)?)
        } else {
            None
        };
        Ok(Some(ProfileView {
            profile,
            computed,
            recent_events,
            trait_history,
        }))
    })
    .await?;
    match view {
        Some(v) => Ok(Json(v).into_response()),
        None => Err(ApiError::no_profile()),
    }
}

/// `GET /api/profiles/{key}/events?limit=N`: the profile's most recent events (up to
/// [`RECENT_EVENTS`]), newest first. Every event is in `/api/export/events`.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let limit = parse_limit("limit", query.get("limit"), RECENT_EVENTS, RECENT_EVENTS)?;
    let store = state.store.clone();
    let events = blocking(move || store.recent_events(&key, limit)).await?;
    Ok(Json(json!({ "events": events })).into_response())
}

/// `GET /api/profiles?trait.<name>=<value>&seen_after=<RFC 3339>&after=<id>&limit=N`:
/// profiles in id order; `next` is the `after` for the following page.
pub async fn search(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let mut search = Search {
        limit: parse_limit("limit", query.get("limit"), 100, MAX_PAGE)?,
        after: query.get("after").cloned(),
        ..Search::default()
    };
    for (k, v) in &query {
        if let Some(name) = k.strip_prefix("trait.") {
            // Numbers and booleans compare as such; anything else as a string.
            let value = serde_json::from_str::<Value>(v)
                .ok()
                .filter(|x| x.is_number() || x.is_boolean() || x.is_null())
                .unwrap_or_else(|| Value::String(v.clone()));
            search.traits.push((name.to_string(), value));
        } else if k == "seen_after" {
            let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                ApiError::bad_request(
                    "invalid_parameter",
                    format!("`seen_after` must be an RFC 3339 time ({e}), not `{v}`"),
                )
            })?;
            search.seen_after = Some(t.timestamp_micros());
        } else if !matches!(k.as_str(), "limit" | "after") {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                format!("unknown parameter `{k}` (trait.<name>, seen_after, after, limit)"),
            ));
        }
    }
    search.traits.sort_by(|a, b| a.0.cmp(&b.0));
    let limit = search.limit;
    let store = state.store.clone();
    let profiles = blocking(move || store.search(&search)).await?;
    let next = (profiles.len() == limit)
        .then(|| profiles.last().map(|p| p.id.clone()))
        .flatten();
    let profiles: Vec<Value> = profiles.iter().map(shown).collect();
    Ok(Json(json!({ "profiles": profiles, "next": next })).into_response())
}

fn parquet(bytes: Vec<u8>, name: &str) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apache.parquet"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// Writes a whole table as Parquet off the async threads and answers with the file.
async fn export(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    write: fn(&Reader, &mut Vec<u8>) -> Result<u64, strata_store::StoreError>,
) -> Result<Response, ApiError> {
    require_admin(state, headers)?;
    let store = state.store.clone();
    let bytes = blocking(move || {
        let mut out = Vec::new();
        write(&store, &mut out)?;
        Ok(out)
    })
    .await?;
    Ok(parquet(bytes, name))
}

/// `GET /api/export/events`: every event as one Parquet file.
pub async fn export_events(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    export(&state, &headers, "events.parquet", |s, out| {
        strata_store::export::events_parquet(s, out)
    })
    .await
}

/// `GET /api/export/profiles`: every profile as one Parquet file.
pub async fn export_profiles(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    export(&state, &headers, "profiles.parquet", |s, out| {
        strata_store::export::profiles_parquet(s, out)
    })
    .await
}

/// `GET /api/keys`: every key, values shown only by their first characters.
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let store = state.store.clone();
    let keys = blocking(move || store.keys()).await?;
    let shown: Vec<Value> = keys
        .into_iter()
        .map(|k| {
            json!({
                "key_prefix": k.key.chars().take(7).collect::<String>(),
                "kind": k.kind,
                "name": k.name,
                "created_at": k.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "keys": shown })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    kind: KeyKind,
    #[serde(default)]
    name: String,
}

/// `POST /api/keys` `{"kind": "write"|"admin", "name": "..."}`: a new key; its value is
/// shown only in this answer.
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let new: NewKey = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"kind\": \"write\" or \"admin\", \"name\": \"...\"}}: {e}"),
        )
    })?;
    let key = ApiKey {
        key: AppState::generate_key(new.kind),
        kind: new.kind,
        name: new.name,
        created_at: state.now(),
    };
    let shown = key.clone();
    let st = Arc::clone(&state);
    blocking(move || st.add_key(key)).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `DELETE /api/keys/{key}`: revokes a key at once.
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let st = Arc::clone(&state);
    if blocking(move || st.revoke_key(&key)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            "no such key",
        ))
    }
}

/// `GET /api/stats`: events and profiles stored, and the writer's counters.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let store = state.store.clone();
    let (events, profiles) =
        blocking(move || Ok((store.event_count()?, store.profile_count()?))).await?;
    let s = state.store.stats();
    let segment_update = state
        .metrics
        .segment_update
        .lock()
        .map(|h| h.clone())
        .unwrap_or_default();
    Ok(Json(json!({
        "events": events,
        "profiles": profiles,
        "commits": s.commits,
        "stored": s.stored,
        "duplicates": s.duplicates,
        "rejected": s.rejected,
        "limits_hit": s.limited,
        "writer_apply_seconds": s.apply_seconds,
        "writer_commit_seconds": s.commit_seconds,
        "segment_updates": {
            "count": segment_update.count,
            "sum_seconds": segment_update.sum,
            "within_seconds": crate::metrics::BUCKETS
                .iter()
                .zip(segment_update.counts)
                .map(|(b, n)| json!([b, n]))
                .collect::<Vec<_>>(),
        },
    }))
    .into_response())
}

/// `GET /api/computed-traits`: every definition, the built-in RFM ones first.
pub async fn list_computed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let store = state.store.clone();
    let defs = blocking(move || store.definitions()).await?;
    let builtin: Vec<String> = computed::builtin().into_iter().map(|d| d.name).collect();
    let shown: Vec<Value> = defs
        .into_iter()
        .map(|d| {
            let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
            v["builtin"] = Value::Bool(builtin.contains(&d.name));
            v
        })
        .collect();
    Ok(Json(json!({ "traits": shown })).into_response())
}

/// `POST /api/computed-traits`: defines (or redefines) a trait and computes it over the whole
/// log before answering.
pub async fn define_computed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let def: computed::Definition = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "expected {{\"name\", \"aggregate\", \"event\"?, \"property\"?, \"where\"?, \"window\"?}}: {e}"
            ),
        )
    })?;
    // `Store::define` checks it; its refusal is a 400 `invalid_definition` (ApiError::store).
    let store = state.store.clone();
    let shown = def.clone();
    let profiles = blocking(move || store.define(def)).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "trait": shown, "profiles_with_values": profiles })),
    )
        .into_response())
}

/// `DELETE /api/computed-traits/{name}`.
pub async fn undefine_computed(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    if computed::builtin().iter().any(|d| d.name == name) {
        return Err(ApiError::bad_request(
            "builtin_trait",
            format!("`{name}` is built in and cannot be removed"),
        ));
    }
    let store = state.store.clone();
    if blocking(move || store.undefine(&name)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "trait_not_found",
            "no computed trait by that name",
        ))
    }
}
