//! Rule segments on the live service (issue 7): definitions with versions, preview over the
//! stored history, activation, live membership on every ingested event and on timers, each
//! profile's memberships with their history, "why", and a server-sent-events stream of
//! enter/exit changes.
//!
//! Membership lives in memory ([`strata_rules::engine::Engine`]); at start-up and on every
//! activation the engine is rebuilt by replaying the event log in order, which gives the
//! same memberships and the same history as when the events first arrived.
//!
//! With a saved clustering model ([`crate::clusters`]), each profile's cluster is a segment
//! too: re-assigned whenever the profile's traits or computed traits change, and once a day
//! between its events (its recency and tenure grow with time). Cluster changes are enter/exit
//! changes like any other, and rules see the cluster as a segment the profile is in.

use crate::admin::blocking_api as blocking;
use crate::admin::parse_limit;
use crate::clusters::LiveModel;
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
/// Points of each segment's size over time kept (the older half is dropped at the limit).
const SIZE_POINTS: usize = 100_000;
/// A clustered profile without events is re-assigned this often (µs): its recency and tenure
/// grow by a day.
const REASSIGN_EVERY: i64 = 86_400_000_000;

/// A membership change as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeView {
    pub segment: String,
    pub profile: String,
    pub change: &'static str,
    pub at: String,
}

pub(crate) fn iso(t: i64) -> String {
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
    /// Each profile's latest changes: (segment number in `names`, entered, µs), 16 bytes
    /// each, so that a million profiles' histories stay small.
    history: HashMap<String, VecDeque<(u32, bool, i64)>>,
    /// Segment names by number, for `history`.
    names: Vec<String>,
    sizes: BTreeMap<String, (u64, Vec<(i64, u64)>)>,
    /// The latest instant the engine has seen; time never goes back for it.
    now: i64,
    model: Option<Arc<LiveModel>>,
    /// Whether a track event can change what the live segments read of a profile's facts
    /// (an active rule tests a computed trait, or a model reads them); otherwise only an
    /// identify refreshes the facts.
    events_move_facts: bool,
    /// Each clustered profile's cluster, and when it is re-assigned next.
    clusters: HashMap<String, (String, i64)>,
    reassign: BTreeSet<(i64, String)>,
}

impl Inner {
    /// The active segments `profile` is in now, its cluster included.
    fn segments_of(&self, profile: &str) -> Vec<String> {
        self.active
            .iter()
            .filter(|s| {
                self.engine
                    .as_ref()
                    .is_some_and(|e| e.is_member(s, profile))
            })
            .cloned()
            .chain(self.clusters.get(profile).map(|(c, _)| c.clone()))
            .collect()
    }

    /// Re-reads a profile's facts at `now`, re-assigns its cluster, and re-evaluates its
    /// segments; returns the changes.
    fn refresh(
        &mut self,
        reader: &Reader,
        p: &Profile,
        now: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let mut facts = facts_of(reader, p, now)?;
        let mut changes = Vec::new();
        if let Some(model) = &self.model {
            let new = model
                .assign(&facts.traits, &facts.computed)
                .map(str::to_string);
            let old = self.clusters.remove(&p.id).map(|(c, due)| {
                self.reassign.remove(&(due, p.id.clone()));
                c
            });
            if old != new {
                let change = |segment: String, entered| Change {
                    segment,
                    profile: p.id.clone(),
                    entered,
                    at: now,
                };
                changes.extend(old.map(|c| change(c, false)));
                changes.extend(new.clone().map(|c| change(c, true)));
            }
            if let Some(c) = new {
                let due = now.saturating_add(REASSIGN_EVERY);
                self.reassign.insert((due, p.id.clone()));
                facts.segments.insert(c.clone());
                self.clusters.insert(p.id.clone(), (c, due));
            }
        }
        if let Some(engine) = self.engine.as_mut() {
            changes.extend(engine.set_facts(&p.id, facts, now));
        }
        Ok(changes)
    }

    /// Re-assigns the clustered profiles due by `now`, at `now` (the engine's time only
    /// moves forward; the server's timer task ticks when the first one is due).
    fn reassign_due(&mut self, reader: &Reader, now: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some((due, id)) = self.reassign.first().cloned() {
            if due > now {
                break;
            }
            self.reassign.remove(&(due, id.clone()));
            // A profile merged away or unreadable keeps its cluster until it is seen again.
            if let Ok(Some(p)) = reader.profile(&id) {
                changes.extend(self.refresh(reader, &p, now).unwrap_or_default());
            }
        }
        changes
    }

    /// When the next re-assignment is due.
    fn next_reassign(&self) -> Option<i64> {
        self.reassign.first().map(|(t, _)| *t)
    }

    fn cluster_names(&self) -> Vec<String> {
        self.model
            .as_ref()
            .map(|m| m.segments().to_vec())
            .unwrap_or_default()
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
        Self::new(None)
    }
}

impl Live {
    /// Live segments, with a clustering model's segments when there is one.
    pub fn new(model: Option<Arc<LiveModel>>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                engine: None,
                active: Vec::new(),
                history: HashMap::new(),
                names: Vec::new(),
                sizes: BTreeMap::new(),
                now: i64::MIN,
                events_move_facts: model.is_some(),
                model,
                clusters: HashMap::new(),
                reassign: BTreeSet::new(),
            }),
            changes: tokio::sync::broadcast::channel(4_096).0,
            active: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The clustering model's segment names (empty without a model).
    pub fn cluster_names(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.cluster_names())
            .unwrap_or_default()
    }

    /// The model's description, if there is one.
    pub fn model(&self) -> Option<Arc<LiveModel>> {
        self.inner.lock().ok().and_then(|i| i.model.clone())
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

/// What rules may refer to: traits seen on profiles (with their types), computed traits, the
/// other segments and the clustering model's segments.
fn schema(
    reader: &Reader,
    segments: &[SegmentRecord],
    clusters: &[String],
) -> Result<Schema, StoreError> {
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
        segments: segments
            .iter()
            .map(|s| s.name.clone())
            .chain(clusters.iter().cloned())
            .collect(),
        scores: crate::scores::plans(reader)?
            .into_iter()
            .map(|p| p.name)
            .collect(),
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

/// Scores of a history at `now`, by plan name (batch).
fn scores_of(
    plans: &[strata_rules::score::Plan],
    events: &[Event],
    now: i64,
) -> BTreeMap<String, f64> {
    plans
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                strata_rules::score::score(p, events, now).score,
            )
        })
        .collect()
}

/// One profile's track events, its merged-away profiles' included (a scan of the log).
pub(crate) fn history_of(reader: &Reader, profile: &str) -> Result<Vec<Event>, StoreError> {
    let mut out = Vec::new();
    for_each_track_event(reader, |owner, _, ev| {
        if owner == profile {
            out.push(ev);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Every profile's track events, by the profile it belongs to now (after merges).
fn histories(reader: &Reader) -> Result<BTreeMap<String, Vec<Event>>, StoreError> {
    let mut out: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for_each_track_event(reader, |owner, _, ev| {
        out.entry(owner.to_string()).or_default().push(ev);
        Ok(())
    })?;
    Ok(out)
}

/// Every stored track event in log order, with the profile it belongs to now (after
/// merges) and when it was received.
fn for_each_track_event(
    reader: &Reader,
    mut f: impl FnMut(&str, i64, Event) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let survivor = reader.survivors()?;
    reader.for_each_event(|e| match as_event(&e) {
        Some(ev) => f(
            survivor.get(&e.profile).unwrap_or(&e.profile),
            e.message.received_at,
            ev,
        ),
        None => Ok(()),
    })
}

impl Live {
    /// Keeps history and sizes, streams the changes, and returns them.
    fn record(&self, inner: &mut Inner, changes: Vec<Change>) -> Vec<ChangeView> {
        let mut out = Vec::with_capacity(changes.len());
        for c in changes {
            let v = view(&c);
            let number = match inner.names.iter().position(|n| *n == c.segment) {
                Some(i) => i,
                None => {
                    inner.names.push(c.segment.clone());
                    inner.names.len() - 1
                }
            };
            let change = (number as u32, c.entered, c.at);
            match inner.history.get_mut(&c.profile) {
                Some(h) => {
                    if h.len() >= HISTORY {
                        h.pop_front();
                    }
                    h.push_back(change);
                }
                None => {
                    inner
                        .history
                        .insert(c.profile.clone(), VecDeque::from([change]));
                }
            }
            if !inner.sizes.contains_key(&c.segment) {
                inner.sizes.insert(c.segment.clone(), (0, Vec::new()));
            }
            let Some((count, series)) = inner.sizes.get_mut(&c.segment) else {
                continue;
            };
            *count = if c.entered {
                *count + 1
            } else {
                count.saturating_sub(1)
            };
            // One point per second: the last size of each second with a change.
            match series.last_mut() {
                Some(last) if last.0.div_euclid(1_000_000) == c.at.div_euclid(1_000_000) => {
                    *last = (c.at, *count);
                }
                _ => series.push((c.at, *count)),
            }
            if series.len() > SIZE_POINTS {
                series.drain(..SIZE_POINTS / 2);
            }
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
        let clusters = self.cluster_names();
        // Nothing active (the usual start-up): no scan of the profiles for their traits.
        let sch = if records.iter().any(|r| r.active) {
            schema(reader, &records, &clusters).map_err(store_err)?
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
        inner.clusters.clear();
        inner.reassign.clear();
        inner.active = active.iter().map(|(n, _)| n.clone()).collect();
        inner.events_move_facts = inner.model.is_some()
            || active.iter().any(|(_, r)| {
                r.expr
                    .any_condition(|c| matches!(c, strata_rules::Expr::Computed { .. }))
            });
        let live = !active.is_empty() || inner.model.is_some();
        self.active
            .store(live, std::sync::atomic::Ordering::Relaxed);
        if !live {
            inner.engine = None;
            return Ok(());
        }
        let replay = !active.is_empty();
        let plans = crate::scores::plans(reader).map_err(store_err)?;
        let mut engine = Engine::new(active)
            .map_err(|e| ApiError::bad_request("invalid_rule", e.to_string()))?
            .with_scores(plans);
        let mut clock = i64::MIN;
        let mut replayed = Vec::new();
        // Only rule segments need the history; clusters need only each profile's facts.
        if replay {
            for_each_track_event(reader, |owner, received_at, ev| {
                clock = clock.max(received_at);
                replayed.extend(engine.tick(clock));
                replayed.extend(engine.observe(owner, &ev, clock));
                Ok(())
            })
            .map_err(store_err)?;
        }
        let now = now.max(clock);
        replayed.extend(engine.tick(now));
        inner.engine = Some(engine);
        reader
            .for_each_profile(|p| {
                replayed.extend(inner.refresh(reader, &p, now)?);
                Ok(())
            })
            .map_err(store_err)?;
        inner.now = now;
        // Replayed changes are history: they are not delivered again.
        self.record(&mut inner, replayed);
        Ok(())
    }

    /// Whether any segment is active.
    pub fn is_active(&self) -> bool {
        self.active.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Messages just stored: track events by the profile they were stored on (they move its
    /// segments), identified profiles (their facts are re-read), and merges (survivor,
    /// merged away): the merged-away profile leaves its segments and cluster, and its event
    /// state joins the survivor's.
    pub fn on_stored(
        &self,
        reader: &Reader,
        stored: &[(String, Event)],
        identified: &[String],
        merges: &[(String, String)],
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
        // Where each merged-away profile's events go now (merges may chain in one batch).
        let mut survivor: HashMap<&str, &str> = HashMap::new();
        for (into, from) in merges {
            survivor.insert(from.as_str(), into.as_str());
        }
        let owner = |p: &str| -> String {
            let mut at = p.to_string();
            for _ in 0..=merges.len() {
                match survivor.get(at.as_str()) {
                    Some(next) => at = (*next).to_string(),
                    None => break,
                }
            }
            at
        };
        if let Some(engine) = inner.engine.as_mut() {
            changes.extend(engine.tick(now));
            for (into, from) in merges {
                changes.extend(engine.merge(into, from, now));
            }
        }
        for (_, from) in merges {
            inner.history.remove(from);
            if let Some((cluster, due)) = inner.clusters.remove(from) {
                inner.reassign.remove(&(due, from.clone()));
                changes.push(Change {
                    segment: cluster,
                    profile: from.clone(),
                    entered: false,
                    at: now,
                });
            }
        }
        if let Some(engine) = inner.engine.as_mut() {
            for (profile, e) in stored {
                if merges.is_empty() {
                    changes.extend(engine.observe(profile, e, now));
                } else {
                    changes.extend(engine.observe(&owner(profile), e, now));
                }
            }
        }
        changes.extend(inner.reassign_due(reader, now));
        let moved = inner.events_move_facts;
        for profile in identified
            .iter()
            .chain(stored.iter().filter(|_| moved).map(|(p, _)| p))
            .chain(merges.iter().map(|(into, _)| into))
            .map(|p| owner(p))
            .collect::<BTreeSet<_>>()
        {
            if let Ok(Some(p)) = reader.profile(&profile)
                && let Ok(c) = inner.refresh(reader, &p, now)
            {
                changes.extend(c);
            }
        }
        self.record(&mut inner, changes)
    }

    /// Fires the timers due by `now` (rule timers and cluster re-assignments); returns the
    /// changes and when the next timer is due.
    pub fn tick(&self, reader: &Reader, now: i64) -> (Vec<ChangeView>, Option<i64>) {
        let Ok(mut inner) = self.inner.lock() else {
            return (Vec::new(), None);
        };
        let now = now.max(inner.now);
        inner.now = now;
        let (mut changes, next) = match inner.engine.as_mut() {
            Some(engine) => (engine.tick(now), engine.next_timer()),
            None => (Vec::new(), None),
        };
        changes.extend(inner.reassign_due(reader, now));
        let next = match (next, inner.next_reassign()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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
        let clusters = st.live.cluster_names();
        if clusters.contains(&new.name) {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!(
                    "{:?} is a segment of the clustering model; give the rule segment another name",
                    new.name
                ),
            ));
        }
        let mut records = store.segments().map_err(|e| ApiError::store(&e))?;
        let mut sch_self = schema(store, &records, &clusters).map_err(|e| ApiError::store(&e))?;
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

/// A segment's record and its rule checked now, for evaluating it over the stored history;
/// a rule that no longer checks is the answer.
fn checked(
    store: &Reader,
    live: &Live,
    name: &str,
) -> Result<Result<(SegmentRecord, strata_rules::Rule), Response>, ApiError> {
    let record = find(store, name)?;
    let records = store.segments().map_err(|e| ApiError::store(&e))?;
    let sch = schema(store, &records, &live.cluster_names()).map_err(|e| ApiError::store(&e))?;
    let rule = match compile(&record.rule, &sch) {
        Ok(r) => r,
        Err(e) => return Ok(Err(rule_error(&e))),
    };
    Ok(Ok((record, rule)))
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
        // The clustering model's segments, with their live sizes.
        let model = inner.model.as_ref().map(|m| {
            let mut d = m.describe();
            d["members"] = m
                .segments()
                .iter()
                .map(|c| (c.clone(), json!(inner.sizes.get(c).map_or(0, |s| s.0))))
                .collect::<serde_json::Map<_, _>>()
                .into();
            d
        });
        Ok(Json(json!({ "segments": shown, "problem": problem, "model": model })).into_response())
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
    let sample = parse_limit("sample", query.get("sample"), 10, 1_000)?;
    let now = state.now();
    let st = Arc::clone(&state);
    blocking(move || {
        let store = &st.store;
        let (record, rule) = match checked(store, &st.live, &name)? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        let events = histories(store).map_err(|e| ApiError::store(&e))?;
        let (mut size, mut members, mut profiles) = (0u64, Vec::new(), 0u64);
        let empty = Vec::new();
        // Only the plans the rule tests are scored, over every profile's history.
        let plans: Vec<_> = crate::scores::plans(store)
            .map_err(|e| ApiError::store(&e))?
            .into_iter()
            .filter(|p| {
                rule.expr.any_condition(
                    |c| matches!(c, strata_rules::Expr::Score { name, .. } if *name == p.name),
                )
            })
            .collect();
        store
            .for_each_profile(|p| {
                profiles += 1;
                let computed = store.computed_of(&p, now)?;
                // The segments it refers to are as they are live now (its cluster included).
                let segments: BTreeSet<String> = st
                    .live
                    .inner
                    .lock()
                    .map(|i| i.segments_of(&p.id).into_iter().collect())
                    .unwrap_or_default();
                let history = events.get(&p.id).unwrap_or(&empty);
                let scores = scores_of(&plans, history, now);
                let facts = Facts {
                    traits: &p.traits,
                    computed: &computed,
                    segments: &segments,
                    scores: &scores,
                };
                if strata_rules::evaluate(&rule.expr, &facts, history, now) {
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
    let limit = parse_limit("limit", query.get("limit"), 100, 10_000)?;
    let inner = state
        .live
        .inner
        .lock()
        .map_err(|_| ApiError::unavailable("internal", "poisoned"))?;
    let is_cluster = inner.cluster_names().contains(&name);
    if !inner.active.contains(&name) && !is_cluster {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "segment_not_active",
            format!("segment {name:?} is not active"),
        ));
    }
    let all: Vec<&str> = if is_cluster {
        let mut v: Vec<&str> = inner
            .clusters
            .iter()
            .filter(|(_, (c, _))| *c == name)
            .map(|(p, _)| p.as_str())
            .collect();
        v.sort_unstable();
        v
    } else {
        inner
            .engine
            .as_ref()
            .map(|e| e.members(&name))
            .unwrap_or_default()
    };
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
        .ok_or_else(ApiError::no_profile)?;
    let inner = state
        .live
        .inner
        .lock()
        .map_err(|_| ApiError::unavailable("internal", "poisoned"))?;
    let member_of = inner.segments_of(&profile.id);
    let cluster = inner.clusters.get(&profile.id).map(|(c, _)| c.clone());
    let history: Vec<ChangeView> = inner
        .history
        .get(&profile.id)
        .map(|h| {
            h.iter()
                .map(|&(number, entered, at)| {
                    view(&Change {
                        segment: inner
                            .names
                            .get(number as usize)
                            .cloned()
                            .unwrap_or_default(),
                        profile: profile.id.clone(),
                        entered,
                        at,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(
        Json(json!({ "profile": profile.id, "segments": member_of, "cluster": cluster, "history": history }))
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
        let profile = crate::admin::profile_or_404(store, &key)?;
        let (record, rule) = match checked(store, &st.live, &name)? {
            Ok(found) => found,
            Err(refused) => return Ok(refused),
        };
        // This profile's events only: the whole log's histories are not kept in memory.
        let history = history_of(store, &profile.id).map_err(|e| ApiError::store(&e))?;
        let computed = store.computed_of(&profile, now).map_err(|e| ApiError::store(&e))?;
        let segments: BTreeSet<String> = st
            .live
            .inner
            .lock()
            .map(|i| i.segments_of(&profile.id).into_iter().collect())
            .unwrap_or_default();
        let plans = crate::scores::plans(store).map_err(|e| ApiError::store(&e))?;
        let scores = scores_of(&plans, &history, now);
        let facts = Facts { traits: &profile.traits, computed: &computed, segments: &segments, scores: &scores };
        let w = explain(&rule.expr, &facts, &history, now);
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
