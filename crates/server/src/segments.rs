//! Rule segments on the live service (issue 7): definitions with versions, preview over the
//! stored history, activation, live membership on every ingested event and on timers, each
//! profile's memberships with their history, "why", and a server-sent-events stream of
//! enter/exit changes.
//!
//! Membership lives in memory ([`strata_rules::engine::Engine`]); at start-up and on every
//! activation the engine is rebuilt by replaying the event log in order, which gives the
//! same memberships and the same history as when the events first arrived.

use crate::admin::blocking_api as blocking;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use strata_rules::engine::{Change, Engine, ProfileFacts};
use strata_rules::{Event, Facts, Schema, ValueType, compile, explain};
use strata_store::computed::Aggregate;
use strata_store::{Kind, Profile, Reader, SegmentRecord, SegmentVersion, StoreError, StoredEvent};

/// Changes kept per profile for its history.
const HISTORY: usize = 100;

/// A membership change as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    pub segment: String,
    pub profile: String,
    pub change: &'static str,
    pub at: String,
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

fn view(c: &Change) -> ChangeView {
    ChangeView {
        segment: c.segment.clone(),
        profile: c.profile.clone(),
        change: if c.entered { "enter" } else { "exit" },
        at: iso(c.at),
    }
}

struct Inner {
    engine: Option<Engine>,
    active: Vec<String>,
    history: HashMap<String, VecDeque<ChangeView>>,
    sizes: BTreeMap<String, (u64, Vec<(i64, u64)>)>,
    /// The latest instant the engine has seen; time never goes back for it.
    now: i64,
}

impl Inner {
    /// The active segments `profile` is in now.
    fn segments_of(&self, profile: &str) -> Vec<String> {
        self.active
            .iter()
            .filter(|s| {
                self.engine
                    .as_ref()
                    .is_some_and(|e| e.is_member(s, profile))
            })
            .cloned()
            .collect()
    }
}

/// The live segment state of a server.
pub struct Live {
    inner: Mutex<Inner>,
    /// Whether any segment is active (read on every ingestion request).
    active: std::sync::atomic::AtomicBool,
    changes: tokio::sync::broadcast::Sender<ChangeView>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Default for Live {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                engine: None,
                active: Vec::new(),
                history: HashMap::new(),
                sizes: BTreeMap::new(),
                now: i64::MIN,
            }),
            changes: tokio::sync::broadcast::channel(4_096).0,
            active: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The type a stored trait value has, for checking rules.
fn value_type(v: &Value) -> Option<ValueType> {
    match v {
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            Some(ValueType::Time)
        }
        Value::String(_) => Some(ValueType::Text),
        Value::Number(_) => Some(ValueType::Number),
        Value::Bool(_) => Some(ValueType::Bool),
        _ => None,
    }
}

/// What rules may refer to: traits seen on profiles (with their types), computed traits and
/// the other segments.
fn schema(reader: &Reader, segments: &[SegmentRecord]) -> Result<Schema, StoreError> {
    let mut traits = BTreeMap::new();
    reader.for_each_profile(|p| {
        for (k, v) in &p.traits {
            if let Some(t) = value_type(v) {
                traits.entry(k.clone()).or_insert(t);
            }
        }
        Ok(())
    })?;
    let computed = reader
        .definitions()?
        .into_iter()
        .map(|d| {
            let t = match d.aggregate {
                Aggregate::FirstSeen | Aggregate::LastSeen => ValueType::Time,
                Aggregate::First | Aggregate::Last => ValueType::Text,
                _ => ValueType::Number,
            };
            (d.name, t)
        })
        .collect();
    Ok(Schema {
        traits,
        computed,
        segments: segments.iter().map(|s| s.name.clone()).collect(),
        scores: BTreeSet::new(),
    })
}

fn as_event(e: &StoredEvent) -> Option<Event> {
    (e.message.kind == Kind::Track).then(|| Event {
        time: e.message.timestamp,
        name: e.message.event.clone().unwrap_or_default(),
        properties: e
            .message
            .body
            .get("properties")
            .cloned()
            .unwrap_or(Value::Null),
    })
}

fn facts_of(reader: &Reader, p: &Profile, now: i64) -> Result<ProfileFacts, StoreError> {
    Ok(ProfileFacts {
        traits: p.traits.clone(),
        computed: reader.computed_of(p, now)?,
        ..ProfileFacts::default()
    })
}

/// Every profile's track events, by the profile it belongs to now (after merges).
fn histories(reader: &Reader) -> Result<BTreeMap<String, Vec<Event>>, StoreError> {
    let survivor = reader.survivors()?;
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    reader.for_each_event(|e| {
        if let Some(ev) = as_event(&e) {
            let owner = survivor.get(&e.profile).unwrap_or(&e.profile).clone();
            out.entry(owner).or_default().push(ev);
        }
        Ok(())
    })?;
    Ok(out)
}

impl Live {
    /// Keeps history and sizes, streams the changes, and returns them.
    fn record(&self, inner: &mut Inner, changes: Vec<Change>) -> Vec<ChangeView> {
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let v = view(&c);
            let h = inner.history.entry(c.profile.clone()).or_default();
            h.push_back(v.clone());
            if h.len() > HISTORY {
                h.pop_front();
            }
            let (count, series) = inner.sizes.entry(c.segment.clone()).or_default();
            *count = if c.entered {
                *count + 1
            } else {
                count.saturating_sub(1)
            };
            series.push((c.at, *count));
            let _ = self.changes.send(v.clone());
            out.push(v);
        }
        out
    }

    /// Rebuilds the engine for the active segments by replaying the log; `now` ends the
    /// replay (timers due by then fire).
    pub fn rebuild(&self, reader: &Reader, now: i64) -> Result<(), ApiError> {
        let store_err = |e: StoreError| ApiError::store(&e);
        let records = reader.segments().map_err(store_err)?;
        // Nothing active (the usual start-up): no scan of the profiles for their traits.
        let sch = if records.iter().any(|r| r.active) {
            schema(reader, &records).map_err(store_err)?
        } else {
            Schema::default()
        };
        let active: Vec<(String, strata_rules::Rule)> = records
            .iter()
            .filter(|r| r.active)
            .map(|r| {
                compile(&r.rule, &sch)
                    .map(|rule| (r.name.clone(), rule))
                    .map_err(|e| {
                        ApiError::bad_request("invalid_rule", format!("segment {}: {e}", r.name))
                    })
            })
            .collect::<Result<_, _>>()?;
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| ApiError::unavailable("internal", "segment state poisoned"))?;
        inner.history.clear();
        inner.sizes.clear();
        inner.active = active.iter().map(|(n, _)| n.clone()).collect();
        self.active
            .store(!active.is_empty(), std::sync::atomic::Ordering::Relaxed);
        if active.is_empty() {
            inner.engine = None;
            return Ok(());
        }
        let mut engine = Engine::new(active)
            .map_err(|e| ApiError::bad_request("invalid_rule", e.to_string()))?;
        let survivor = reader.survivors().map_err(store_err)?;
        let mut clock = i64::MIN;
        let mut replayed = Vec::new();
        reader
            .for_each_event(|e| {
                if let Some(ev) = as_event(&e) {
                    clock = clock.max(e.message.received_at);
                    replayed.extend(engine.tick(clock));
                    let owner = survivor.get(&e.profile).unwrap_or(&e.profile).clone();
                    replayed.extend(engine.observe(&owner, &ev, clock));
                }
                Ok(())
            })
            .map_err(store_err)?;
        let now = now.max(clock);
        replayed.extend(engine.tick(now));
        reader
            .for_each_profile(|p| {
                let facts = facts_of(reader, &p, now)?;
                replayed.extend(engine.set_facts(&p.id, facts, now));
                Ok(())
            })
            .map_err(store_err)?;
        inner.now = now;
        inner.engine = Some(engine);
        // Replayed changes are history: they are not delivered again.
        self.record(&mut inner, replayed);
        Ok(())
    }

    /// Whether any segment is active.
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Events just stored for `profile` (their track events move the profile's segments).
    pub fn on_stored(
        &self,
        reader: &Reader,
        stored: &[(String, Event)],
        identified: &[String],
        now: i64,
    ) -> Vec<ChangeView> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        if inner.engine.is_none() {
            return Vec::new();
        }
        let now = now.max(inner.now);
        inner.now = now;
        let mut changes = Vec::new();
        if let Some(engine) = inner.engine.as_mut() {
            changes.extend(engine.tick(now));
            for (profile, e) in stored {
                changes.extend(engine.observe(profile, e, now));
            }
            for profile in identified
                .iter()
                .chain(stored.iter().map(|(p, _)| p))
                .collect::<BTreeSet<_>>()
            {
                if let Ok(Some(p)) = reader.profile(profile)
                    && let Ok(facts) = facts_of(reader, &p, now)
                {
                    changes.extend(engine.set_facts(profile, facts, now));
                }
            }
        }
        self.record(&mut inner, changes)
    }

    /// Fires the timers due by `now`; returns the changes and when the next timer is due.
    pub fn tick(&self, now: i64) -> (Vec<ChangeView>, Option<i64>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), None);
        };
        let now = now.max(inner.now);
        inner.now = now;
        let (changes, next) = match inner.engine.as_mut() {
            Some(engine) => (engine.tick(now), engine.next_timer()),
            None => (Vec::new(), None),
        };
        (self.record(&mut inner, changes), next)
    }
}

fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    crate::admin::require_admin(state, headers)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSegment {
    name: String,
    rule: String,
}

fn rule_error(e: &strata_rules::RuleError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "code": "invalid_rule",
            "message": e.to_string(),
            "line": e.pos.line,
            "column": e.pos.column,
            "hint": e.hint,
        })),
    )
        .into_response()
}

fn segment_view(r: &SegmentRecord, size: Option<u64>) -> Value {
    json!({
        "name": r.name,
        "rule": r.rule,
        "version": r.version,
        "state": if r.active { "active" } else { "inactive" },
        "updated_at": iso(r.updated_at),
        "versions": r.versions.iter().map(|v| json!({ "version": v.version, "rule": v.rule, "at": iso(v.at) })).collect::<Vec<_>>(),
        "members": size,
    })
}

/// `POST /api/segments {"name", "rule"}`: defines a segment, or a new version of one (an
/// active segment's new version is live at once). The rule is checked first; nothing is
/// stored or activated when it is refused.
pub async fn define(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let new: NewSegment = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"name\", \"rule\"}}: {e}"),
        )
    })?;
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a segment needs a name of 1 to 100 characters",
        ));
    }
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let mut records = store.segments().map_err(|e| ApiError::store(&e))?;
        let mut sch_self = schema(store, &records).map_err(|e| ApiError::store(&e))?;
        sch_self.segments.insert(new.name.clone());
        let rule = match compile(&new.rule, &sch_self) {
            Ok(r) => r,
            Err(e) => return Ok(rule_error(&e)),
        };
        // The whole set must stay free of cycles.
        let mut all: BTreeMap<String, strata_rules::Rule> = BTreeMap::new();
        for r in &records {
            if r.name != new.name
                && let Ok(compiled) = compile(&r.rule, &sch_self)
            {
                all.insert(r.name.clone(), compiled);
            }
        }
        all.insert(new.name.clone(), rule);
        if let Err(e) = strata_rules::check_cycles(&all) {
            return Ok(rule_error(&e));
        }
        let record = match records.iter_mut().find(|r| r.name == new.name) {
            Some(r) => {
                r.version += 1;
                r.rule = new.rule.clone();
                r.updated_at = now;
                r.versions.push(SegmentVersion {
                    version: r.version,
                    rule: new.rule,
                    at: now,
                });
                r.clone()
            }
            None => SegmentRecord {
                name: new.name.clone(),
                rule: new.rule.clone(),
                version: 1,
                active: false,
                updated_at: now,
                versions: vec![SegmentVersion {
                    version: 1,
                    rule: new.rule,
                    at: now,
                }],
            },
        };
        store
            .put_segment(&record)
            .map_err(|e| ApiError::store(&e))?;
        if record.active {
            st.live.rebuild(store, now)?;
        }
        Ok((StatusCode::CREATED, Json(segment_view(&record, None))).into_response())
    })
    .await
}

fn find(store: &Reader, name: &str) -> Result<SegmentRecord, ApiError> {
    store
        .segments()
        .map_err(|e| ApiError::store(&e))?
        .into_iter()
        .find(|r| r.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "segment_not_found",
                format!("no segment {name:?}"),
            )
        })
}

/// A segment's record, its rule checked now, and every profile's track events, for
/// evaluating it over the stored history; a rule that no longer checks is the answer.
#[allow(clippy::type_complexity, reason = "a private helper's plain tuple")]
fn for_history(
    store: &Reader,
    name: &str,
) -> Result<
    Result<
        (
            SegmentRecord,
            strata_rules::Rule,
            BTreeMap<String, Vec<Event>>,
        ),
        Response,
    >,
    ApiError,
> {
    let record = find(store, name)?;
    let records = store.segments().map_err(|e| ApiError::store(&e))?;
    let sch = schema(store, &records).map_err(|e| ApiError::store(&e))?;
    let rule = match compile(&record.rule, &sch) {
        Ok(r) => r,
        Err(e) => return Ok(Err(rule_error(&e))),
    };
    let events = histories(store).map_err(|e| ApiError::store(&e))?;
    Ok(Ok((record, rule, events)))
}

/// `GET /api/segments`: every segment, with the size of the active ones.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let st = Arc::clone(&state);
    blocking(move || {
        let records = st.store.segments().map_err(|e| ApiError::store(&e))?;
        let inner = st
            .live
            .inner
            .lock()
            .map_err(|_| ApiError::unavailable("internal", "poisoned"))?;
        let shown: Vec<Value> = records
            .iter()
            .map(|r| {
                segment_view(
                    r,
                    r.active
                        .then(|| inner.sizes.get(&r.name).map_or(0, |s| s.0)),
                )
            })
            .collect();
        let problem = st.live_problem.lock().ok().and_then(|p| p.clone());
        Ok(Json(json!({ "segments": shown, "problem": problem })).into_response())
    })
    .await
}

/// `GET /api/segments/{name}/preview?sample=N`: the segment's size and a sample of members
/// now, computed over the stored history (before activation, too).
pub async fn preview(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let sample: usize = query
        .get("sample")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .min(1_000);
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let (record, rule, events) = match for_history(store, &name)? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        let (mut size, mut members, mut profiles) = (0u64, Vec::new(), 0u64);
        let empty = Vec::new();
        let segments = BTreeSet::new();
        let scores = BTreeMap::new();
        store
            .for_each_profile(|p| {
                profiles += 1;
                let computed = store.computed_of(&p, now)?;
                let facts = Facts {
                    traits: &p.traits,
                    computed: &computed,
                    segments: &segments,
                    scores: &scores,
                };
                if strata_rules::evaluate(
                    &rule.expr,
                    &facts,
                    events.get(&p.id).unwrap_or(&empty),
                    now,
                ) {
                    size += 1;
                    if members.len() < sample {
                        members.push(p.id.clone());
                    }
                }
                Ok(())
            })
            .map_err(|e| ApiError::store(&e))?;
        Ok(Json(json!({
            "name": record.name, "version": record.version, "size": size, "profiles": profiles,
            "sample": members, "at": iso(now),
        }))
        .into_response())
    })
    .await
}

async fn set_active(
    state: Arc<AppState>,
    headers: &HeaderMap,
    name: String,
    active: bool,
) -> Result<Response, ApiError> {
    require_admin(&state, headers)?;
    let now = state.now();
    blocking(move || {
        let mut record = find(&state.store, &name)?;
        record.active = active;
        record.updated_at = now;
        state
            .store
            .put_segment(&record)
            .map_err(|e| ApiError::store(&e))?;
        if let Err(e) = state.live.rebuild(&state.store, now) {
            // Nothing is activated half-way: put the record back.
            record.active = !active;
            let _ = state.store.put_segment(&record);
            let _ = state.live.rebuild(&state.store, now);
            return Err(e);
        }
        let size = state
            .live
            .inner
            .lock()
            .map(|i| i.sizes.get(&record.name).map_or(0, |s| s.0))
            .unwrap_or(0);
        Ok(Json(segment_view(&record, active.then_some(size))).into_response())
    })
    .await
}

/// `POST /api/segments/{name}/activate`: memberships computed over the history, then live.
pub async fn activate(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_active(state, &headers, name, true).await
}

/// `POST /api/segments/{name}/deactivate`.
pub async fn deactivate(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    set_active(state, &headers, name, false).await
}

/// `GET /api/segments/{name}/members?limit=N`.
pub async fn members(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let limit: usize = query
        .get("limit")
        .and_then(|s| s.parse().ok())
        .unwrap_or(100)
        .min(10_000);
    let inner = state
        .live
        .inner
        .lock()
        .map_err(|_| ApiError::unavailable("internal", "poisoned"))?;
    if !inner.active.contains(&name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "segment_not_active",
            format!("segment {name:?} is not active"),
        ));
    }
    let all = inner
        .engine
        .as_ref()
        .map(|e| e.members(&name))
        .unwrap_or_default();
    let sizes: Vec<Value> = inner
        .sizes
        .get(&name)
        .map(|(_, s)| {
            s.iter()
                .rev()
                .take(1_000)
                .rev()
                .map(|(t, n)| json!([iso(*t), n]))
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(json!({
        "segment": name, "size": all.len(), "members": all.iter().take(limit).collect::<Vec<_>>(),
        "size_over_time": sizes,
    }))
    .into_response())
}

/// `GET /api/profiles/{key}/segments`: the segments a profile is in, and its changes.
pub async fn of_profile(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let store = state.store.clone();
    let profile = crate::admin::blocking(move || store.profile(&key))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "profile_not_found",
                "no profile has this id or identity",
            )
        })?;
    let inner = state
        .live
        .inner
        .lock()
        .map_err(|_| ApiError::unavailable("internal", "poisoned"))?;
    let member_of = inner.segments_of(&profile.id);
    let history: Vec<&ChangeView> = inner
        .history
        .get(&profile.id)
        .map(|h| h.iter().collect())
        .unwrap_or_default();
    Ok(
        Json(json!({ "profile": profile.id, "segments": member_of, "history": history }))
            .into_response(),
    )
}

/// `GET /api/profiles/{key}/segments/{name}/why`: each condition's value for this profile
/// now, over its stored history.
pub async fn why(
    State(state): State<Arc<AppState>>,
    Path((key, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let profile = store
            .profile(&key)
            .map_err(|e| ApiError::store(&e))?
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "profile_not_found", "no profile has this id or identity"))?;
        let (record, rule, events) = match for_history(store, &name)? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        let computed = store.computed_of(&profile, now).map_err(|e| ApiError::store(&e))?;
        let segments: BTreeSet<String> = st
            .live
            .inner
            .lock()
            .map(|i| i.segments_of(&profile.id).into_iter().collect())
            .unwrap_or_default();
        let scores = BTreeMap::new();
        let facts = Facts { traits: &profile.traits, computed: &computed, segments: &segments, scores: &scores };
        let w = explain(&rule.expr, &facts, events.get(&profile.id).map_or(&[][..], Vec::as_slice), now);
        fn to_json(w: &strata_rules::Why) -> Value {
            json!({ "holds": w.holds, "condition": w.condition, "found": w.found, "parts": w.parts.iter().map(to_json).collect::<Vec<_>>() })
        }
        Ok(Json(json!({ "profile": profile.id, "segment": name, "version": record.version, "at": iso(now), "why": to_json(&w) })).into_response())
    })
    .await
}

/// `GET /api/segments/changes`: enter/exit changes as server-sent events (`event: enter` or
/// `exit`, JSON data), from the moment of connection.
pub async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_admin(&state, &headers)?;
    let rx = state.live.changes.subscribe();
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let frame = match rx.recv().await {
            Ok(c) => {
                let data = serde_json::to_string(&c).unwrap_or_default();
                format!("event: {}\ndata: {data}\n\n", c.change)
            }
            // A slow reader missed some: say so, and go on.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                format!("event: lagged\ndata: {{\"missed\": {n}}}\n\n")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(frame)), rx))
    });
    let mut r = axum::body::Body::from_stream(body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    Ok(r)
}
