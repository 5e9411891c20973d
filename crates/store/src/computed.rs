//! Computed traits: per-profile aggregates of events, kept up to date by the writer as each
//! event is stored (incrementally, never by rescanning the log), and read at any `now`.
//!
//! A definition picks events (a `track` event name, or any track event; optional property
//! equalities) and an aggregate of them: a count, a sum of a property, its first or last
//! value, the number of distinct values, when the first or last one happened, or the days
//! since the last one. With a sliding `window` (`"24h"`, `"30d"`, `"2y"`…) only events within
//! the window before `now` count: the state then keeps each matching event's time and
//! value (pruned as the profile's events move past the window, at most
//! [`MAX_WINDOW_ENTRIES`]), and the aggregate is taken when read.
//!
//! The RFM fields are built in ([`builtin`]): `rfm_frequency` (count), `rfm_monetary` (sum of
//! `revenue`, else `total`, else `value`), `rfm_recency_days` and `rfm_tenure_days` of
//! `Order Completed` — the features of the batch pipeline's RFM table, so a saved model can
//! assign live profiles.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Matching events a windowed trait remembers per profile; older ones are dropped.
pub const MAX_WINDOW_ENTRIES: usize = 10_000;
/// Distinct values an unwindowed `distinct` trait remembers per profile.
pub const MAX_DISTINCT: usize = 10_000;
const DAY_MICROS: f64 = 86_400_000_000.0;

/// What is computed over the matching events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    /// Sum of the property (non-numbers are skipped).
    Sum,
    /// The property's value in the earliest / latest matching event.
    First,
    Last,
    /// The number of distinct values of the property.
    Distinct,
    /// When the earliest / latest matching event happened (RFC 3339).
    FirstSeen,
    LastSeen,
    /// Days from the latest matching event to `now`.
    DaysSinceLast,
    /// Days from the earliest matching event to `now` (tenure).
    DaysSinceFirst,
}

impl Aggregate {
    fn needs_property(self) -> bool {
        matches!(self, Self::Sum | Self::First | Self::Last | Self::Distinct)
    }
}

/// A computed trait's definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// Letters, digits and `_`, starting with a letter.
    pub name: String,
    pub aggregate: Aggregate,
    /// The `track` event name; absent: every track event.
    #[serde(default)]
    pub event: Option<String>,
    /// The property aggregated (a dotted path inside `properties`); `a|b` takes the first
    /// present.
    #[serde(default)]
    pub property: Option<String>,
    /// Only events whose properties equal these values.
    #[serde(default, rename = "where")]
    pub filter: BTreeMap<String, Value>,
    /// Sliding window such as `"45s"`, `"90m"`, `"24h"`, `"30d"`, `"12w"`, `"2y"`.
    #[serde(default)]
    pub window: Option<String>,
}

/// The built-in RFM traits of `Order Completed` events.
pub fn builtin() -> Vec<Definition> {
    let order = |name: &str, aggregate, property: Option<&str>| Definition {
        name: name.into(),
        aggregate,
        event: Some("Order Completed".into()),
        property: property.map(str::to_string),
        filter: BTreeMap::new(),
        window: None,
    };
    vec![
        order("rfm_recency_days", Aggregate::DaysSinceLast, None),
        order("rfm_frequency", Aggregate::Count, None),
        order("rfm_monetary", Aggregate::Sum, Some("revenue|total|value")),
        order("rfm_tenure_days", Aggregate::DaysSinceFirst, None),
    ]
}

/// `"24h"` → µs. Units: s, m, h, d, w, y (365 days).
pub fn parse_window(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("window `{text}` has no unit: {}", strata_core::WINDOW_UNITS))?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("window `{text}` must start with a whole number"))?;
    let seconds = strata_core::unit_seconds(unit.trim()).ok_or_else(|| {
        format!(
            "window `{text}`: unknown unit `{}` ({})",
            unit.trim(),
            strata_core::WINDOW_UNITS
        )
    })?;
    if n <= 0 {
        return Err(format!("window `{text}` must be longer than zero"));
    }
    strata_core::window_micros(n, seconds).ok_or_else(|| format!("window `{text}` is too long"))
}

impl Definition {
    /// Checks the definition; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let mut chars = self.name.chars();
        let ok_name = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && self.name.len() <= 64;
        if !ok_name {
            return Err(format!(
                "name `{}`: use letters, digits and _, starting with a letter (at most 64)",
                self.name
            ));
        }
        if builtin().iter().any(|b| b.name == self.name) {
            return Err(format!("`{}` is a built-in trait", self.name));
        }
        if self.aggregate.needs_property() && self.property.as_deref().is_none_or(str::is_empty) {
            return Err(
                format!("aggregate `{:?}` needs a `property`", self.aggregate).to_lowercase(),
            );
        }
        if let Some(w) = &self.window {
            parse_window(w)?;
        }
        Ok(())
    }

    fn window_micros(&self) -> Option<i64> {
        self.window.as_deref().and_then(|w| parse_window(w).ok())
    }

    /// The value this event contributes, if it matches (`Value::Null` for aggregates that
    /// take no property).
    pub(crate) fn contribution(
        &self,
        event: Option<&str>,
        properties: Option<&Value>,
    ) -> Option<Value> {
        if self.event.as_deref().is_some_and(|e| Some(e) != event) || event.is_none() {
            return None;
        }
        let lookup = |path: &str| -> Option<&Value> {
            strata_core::json_path(properties?, path).filter(|v| !v.is_null())
        };
        if !self
            .filter
            .iter()
            .all(|(k, want)| lookup(k).is_some_and(|have| have == want))
        {
            return None;
        }
        match self.property.as_deref() {
            Some(p) if self.aggregate.needs_property() => {
                p.split('|').find_map(|alt| lookup(alt.trim())).cloned()
            }
            _ => Some(Value::Null),
        }
    }
}

/// One profile's state for one trait.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    #[serde(default, skip_serializing_if = "is_zero")]
    count: u64,
    #[serde(default, skip_serializing_if = "is_zero_f")]
    sum: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<(i64, Value)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<(i64, Value)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    distinct: Vec<String>,
    /// Windowed traits: every matching event still inside the window, by time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entries: Vec<(i64, Value)>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

fn distinct_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl State {
    fn add(&mut self, def: &Definition, time: i64, value: Value) -> bool {
        if let Some(window) = def.window_micros() {
            let at = self.entries.partition_point(|(t, _)| *t <= time);
            self.entries.insert(at, (time, value));
            // Entries a window before the latest can never count again.
            let latest = self.entries.last().map_or(time, |(t, _)| *t);
            let keep_from = self
                .entries
                .partition_point(|(t, _)| *t <= latest.saturating_sub(window));
            self.entries.drain(..keep_from);
            let excess = self.entries.len().saturating_sub(MAX_WINDOW_ENTRIES);
            self.entries.drain(..excess);
            return excess == 0;
        }
        // Only what the aggregate reads is kept: profile records stay small.
        match def.aggregate {
            Aggregate::Count => self.count += 1,
            Aggregate::Sum => {
                if let Some(x) = value.as_f64() {
                    self.sum += x;
                }
            }
            Aggregate::First | Aggregate::FirstSeen | Aggregate::DaysSinceFirst => {
                if self.first.as_ref().is_none_or(|(t, _)| time < *t) {
                    self.first = Some((time, value));
                }
            }
            Aggregate::Last | Aggregate::LastSeen | Aggregate::DaysSinceLast => {
                if self.last.as_ref().is_none_or(|(t, _)| time >= *t) {
                    self.last = Some((time, value));
                }
            }
            Aggregate::Distinct => {
                let key = distinct_key(&value);
                if let Err(at) = self.distinct.binary_search(&key) {
                    if self.distinct.len() >= MAX_DISTINCT {
                        return false;
                    }
                    self.distinct.insert(at, key);
                }
            }
        }
        true
    }

    /// Folds `other` (the same trait of a profile merged into this one) in.
    fn merge(&mut self, def: &Definition, other: State) {
        if def.window_micros().is_some() {
            for (t, v) in other.entries {
                self.add(def, t, v);
            }
            return;
        }
        self.count += other.count;
        self.sum += other.sum;
        if let Some((t, v)) = other.first
            && self.first.as_ref().is_none_or(|(mine, _)| t < *mine)
        {
            self.first = Some((t, v));
        }
        if let Some((t, v)) = other.last
            && self.last.as_ref().is_none_or(|(mine, _)| t >= *mine)
        {
            self.last = Some((t, v));
        }
        for key in other.distinct {
            if let Err(at) = self.distinct.binary_search(&key)
                && self.distinct.len() < MAX_DISTINCT
            {
                self.distinct.insert(at, key);
            }
        }
    }

    /// The trait's value at `now` (µs).
    pub fn value(&self, def: &Definition, now: i64) -> Value {
        let (count, sum, first, last, distinct) = match def.window_micros() {
            None => (
                self.count,
                self.sum,
                self.first.as_ref(),
                self.last.as_ref(),
                self.distinct.len(),
            ),
            Some(window) => {
                let inside: Vec<&(i64, Value)> = self
                    .entries
                    .iter()
                    .filter(|(t, _)| *t > now.saturating_sub(window) && *t <= now)
                    .collect();
                let mut keys: Vec<String> = inside.iter().map(|(_, v)| distinct_key(v)).collect();
                keys.sort_unstable();
                keys.dedup();
                (
                    inside.len() as u64,
                    inside.iter().filter_map(|(_, v)| v.as_f64()).sum(),
                    inside.first().copied(),
                    inside.last().copied(),
                    keys.len(),
                )
            }
        };
        let time = |t: i64| {
            chrono::DateTime::from_timestamp_micros(t).map_or(Value::Null, |d| {
                Value::String(d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            })
        };
        let days = |t: i64| {
            serde_json::Number::from_f64(((now - t) as f64 / DAY_MICROS).max(0.0))
                .map_or(Value::Null, Value::Number)
        };
        match def.aggregate {
            Aggregate::Count => Value::from(count),
            Aggregate::Sum => serde_json::Number::from_f64(sum).map_or(Value::Null, Value::Number),
            Aggregate::First => first.map_or(Value::Null, |(_, v)| v.clone()),
            Aggregate::Last => last.map_or(Value::Null, |(_, v)| v.clone()),
            Aggregate::Distinct => Value::from(distinct as u64),
            Aggregate::FirstSeen => first.map_or(Value::Null, |(t, _)| time(*t)),
            Aggregate::LastSeen => last.map_or(Value::Null, |(t, _)| time(*t)),
            Aggregate::DaysSinceLast => last.map_or(Value::Null, |(t, _)| days(*t)),
            Aggregate::DaysSinceFirst => first.map_or(Value::Null, |(t, _)| days(*t)),
        }
    }
}

/// A profile's computed-trait states, by trait name.
pub type States = BTreeMap<String, State>;

/// Applies one event to a profile's states; false when a per-profile limit dropped something.
pub(crate) fn apply(
    defs: &[Definition],
    states: &mut States,
    event: Option<&str>,
    properties: Option<&Value>,
    time: i64,
) -> bool {
    let mut whole = true;
    for def in defs {
        if let Some(value) = def.contribution(event, properties) {
            let state = match states.get_mut(&def.name) {
                Some(s) => s,
                None => states.entry(def.name.clone()).or_default(),
            };
            whole &= state.add(def, time, value);
        }
    }
    whole
}

/// Folds a merged profile's states into the survivor's.
pub(crate) fn merge(defs: &[Definition], into: &mut States, other: States) {
    for (name, state) in other {
        match defs.iter().find(|d| d.name == name) {
            Some(def) => into.entry(name).or_default().merge(def, state),
            None => {
                into.entry(name).or_insert(state);
            }
        }
    }
}

/// Every trait's value at `now`; traits with no state yet read as their empty value.
pub fn values(defs: &[Definition], states: &States, now: i64) -> BTreeMap<String, Value> {
    let empty = State::default();
    defs.iter()
        .map(|d| {
            let state = states.get(&d.name).unwrap_or(&empty);
            (d.name.clone(), state.value(d, now))
        })
        .collect()
}
