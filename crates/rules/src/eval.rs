//! The two evaluators. They must agree at every instant (property-tested):
//!
//! - [`evaluate`] (batch) reads a profile's whole event history;
//! - [`Live`] (incremental) is fed events as they arrive, in any order of their event times,
//!   and keeps per condition only what can still matter; [`Live::next_change`] says when its
//!   answer can next change without a new event (a window expiring, an absence elapsing), so
//!   a timer can re-evaluate exactly then.
//!
//! Semantics at instant `now` (µs). Events timed after `now` do not count yet.
//! - Windows are `(now − window, now]`: an event exactly one window old no longer counts.
//! - `A then B within w`: some A is followed by a B, later than it and at most `w` after it.
//! - `A then no B within w`: the latest A is at least `w` old, and no B came in the `w`
//!   after it.
//! - A trait time `within last w` lies in `(now − w, now]`; `more than w ago` is `≤ now − w`.

use crate::lang::{Cmp, EventSel, Expr, TraitTest};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An event as the evaluators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Event time, µs.
    pub time: i64,
    /// The `track` event name.
    pub name: String,
    pub properties: Value,
}

/// What a profile is, besides its events.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub traits: &'a Map<String, Value>,
    pub computed: &'a BTreeMap<String, Value>,
    /// The segments the profile is in now.
    pub segments: &'a BTreeSet<String>,
    /// Scores at the instant of evaluation (see [`crate::score`]).
    pub scores: &'a BTreeMap<String, f64>,
}

pub(crate) fn property<'a>(props: &'a Value, path: &str) -> Option<&'a Value> {
    strata_core::json_path(props, path).filter(|v| !v.is_null())
}

fn compare(have: &Value, cmp: Cmp, want: &Value) -> bool {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => cmp.holds(a, b),
            _ => false,
        },
        (Value::String(a), Value::String(b)) => match cmp {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            _ => false,
        },
        (Value::Bool(a), Value::Bool(b)) => match cmp {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

impl EventSel {
    /// True when the event is of this name and passes every property test.
    pub fn matches(&self, e: &Event) -> bool {
        e.name == self.name
            && self.filters.iter().all(|(path, cmp, want)| {
                property(&e.properties, path).is_some_and(|have| compare(have, *cmp, want))
            })
    }
}

fn time_of(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn trait_holds(facts: &Facts<'_>, path: &str, test: &TraitTest, now: i64) -> bool {
    let value = strata_core::json_path_in(facts.traits, path).filter(|v| !v.is_null());
    match test {
        TraitTest::Exists => value.is_some(),
        TraitTest::Missing => value.is_none(),
        TraitTest::Compare(cmp, want) => value.is_some_and(|v| compare(v, *cmp, want)),
        TraitTest::OneOf(options) => {
            value.is_some_and(|v| options.iter().any(|o| compare(v, Cmp::Eq, o)))
        }
        TraitTest::WithinLast(w) => value
            .and_then(time_of)
            .is_some_and(|t| t <= now && t > now - w),
        TraitTest::MoreThanAgo(w) => value.and_then(time_of).is_some_and(|t| t <= now - w),
    }
}

/// A condition on the profile's facts (traits, computed traits, segments), the same for
/// both evaluators; false for event conditions.
fn fact_holds(expr: &Expr, facts: &Facts<'_>, now: i64) -> bool {
    match expr {
        Expr::Trait { path, test, .. } => trait_holds(facts, path, test, now),
        Expr::Computed {
            name, cmp, value, ..
        } => facts
            .computed
            .get(name)
            .is_some_and(|have| compare(have, *cmp, value)),
        Expr::InSegment { name, .. } => facts.segments.contains(name),
        Expr::Score {
            name, cmp, value, ..
        } => facts
            .scores
            .get(name)
            .is_some_and(|s| cmp.holds(*s, *value)),
        _ => false,
    }
}

/// Batch evaluation of `expr` over a profile's whole history at `now`.
pub fn evaluate(expr: &Expr, facts: &Facts<'_>, events: &[Event], now: i64) -> bool {
    let known = |sel: &EventSel| -> Vec<&Event> {
        let mut v: Vec<&Event> = events
            .iter()
            .filter(|e| e.time <= now && sel.matches(e))
            .collect();
        v.sort_by_key(|e| e.time);
        v
    };
    match expr {
        Expr::And(parts) => parts.iter().all(|p| evaluate(p, facts, events, now)),
        Expr::Or(parts) => parts.iter().any(|p| evaluate(p, facts, events, now)),
        Expr::Not(inner) => !evaluate(inner, facts, events, now),
        Expr::Trait { .. }
        | Expr::Computed { .. }
        | Expr::InSegment { .. }
        | Expr::Score { .. } => fact_holds(expr, facts, now),
        Expr::Count {
            sel,
            cmp,
            n,
            window,
        } => {
            let count = known(sel).iter().filter(|e| e.time > now - window).count();
            cmp.holds(count as f64, *n as f64)
        }
        Expr::Sum {
            sel,
            property: p,
            cmp,
            value,
            window,
        } => {
            let sum: f64 = known(sel)
                .iter()
                .filter(|e| e.time > now - window)
                .filter_map(|e| property(&e.properties, p).and_then(Value::as_f64))
                .sum();
            cmp.holds(sum, *value)
        }
        Expr::Then {
            first,
            second,
            window,
        } => {
            let firsts = known(first);
            let seconds = known(second);
            firsts.iter().any(|a| {
                seconds
                    .iter()
                    .any(|b| b.time > a.time && b.time <= a.time + window)
            })
        }
        Expr::ThenNo {
            first,
            second,
            window,
        } => {
            let Some(latest) = known(first).last().map(|e| e.time) else {
                return false;
            };
            latest + window <= now
                && !known(second)
                    .iter()
                    .any(|b| b.time > latest && b.time <= latest + window)
        }
    }
}

/// What the incremental evaluator keeps for one event condition.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    /// Count and Sum: (time, value) of matching events that can still fall in the window.
    Window { entries: Vec<(i64, f64)> },
    /// `then`: every matching first and second, until a pair is found.
    Then {
        firsts: Vec<i64>,
        seconds: Vec<i64>,
        found_at: Option<i64>,
    },
    /// `then no`: firsts from the latest one already past on, and seconds after it.
    ThenNo { firsts: Vec<i64>, seconds: Vec<i64> },
}

fn insert_sorted(v: &mut Vec<i64>, t: i64) {
    let at = v.partition_point(|x| *x <= t);
    v.insert(at, t);
}

/// The incremental evaluator of one rule for one profile: what it keeps per event
/// condition. The rule itself is passed to each call (one copy serves every profile).
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    slots: Vec<Slot>,
}

/// Whether a condition keeps per-event state (a slot of [`Live`]).
fn is_event_condition(c: &Expr) -> bool {
    matches!(
        c,
        Expr::Count { .. } | Expr::Sum { .. } | Expr::Then { .. } | Expr::ThenNo { .. }
    )
}

/// The event conditions of `expr`, in a fixed order (depth first).
fn leaves<'a>(expr: &'a Expr, out: &mut Vec<&'a Expr>) {
    expr.for_each_condition(&mut |c| {
        if is_event_condition(c) {
            out.push(c);
        }
    });
}

impl Live {
    pub fn new(expr: &Expr) -> Self {
        let mut ls = Vec::new();
        leaves(expr, &mut ls);
        let slots = ls
            .iter()
            .map(|l| match l {
                Expr::Then { .. } => Slot::Then {
                    firsts: Vec::new(),
                    seconds: Vec::new(),
                    found_at: None,
                },
                Expr::ThenNo { .. } => Slot::ThenNo {
                    firsts: Vec::new(),
                    seconds: Vec::new(),
                },
                _ => Slot::Window {
                    entries: Vec::new(),
                },
            })
            .collect();
        Self { slots }
    }

    /// Takes an event that arrived at `now` (its own time may be earlier: a late event, or
    /// later: a clock ahead), and drops what can no longer matter.
    pub fn observe(&mut self, expr: &Expr, e: &Event, now: i64) {
        // A walk, not a list of the conditions: this runs for every segment on every event.
        let mut slots = self.slots.iter_mut();
        expr.for_each_condition(&mut |leaf| {
            if is_event_condition(leaf)
                && let Some(slot) = slots.next()
            {
                observe_one(leaf, slot, e, now);
            }
        });
    }

    /// Takes in the state of a profile merged into this one (same rule): afterwards it is
    /// as if this profile had observed both profiles' events.
    pub fn absorb(&mut self, expr: &Expr, other: Live, now: i64) {
        let mut ls = Vec::new();
        leaves(expr, &mut ls);
        for ((leaf, slot), theirs) in ls.iter().copied().zip(&mut self.slots).zip(other.slots) {
            match (&mut *slot, theirs) {
                (Slot::Window { entries }, Slot::Window { entries: more }) => {
                    entries.extend(more);
                    entries.sort_by_key(|(t, _)| *t);
                }
                (
                    Slot::Then {
                        firsts,
                        seconds,
                        found_at,
                    },
                    Slot::Then {
                        firsts: more_firsts,
                        seconds: more_seconds,
                        found_at: theirs_found,
                    },
                ) => {
                    let done = [*found_at, theirs_found]
                        .into_iter()
                        .flatten()
                        .filter(|t| *t <= now)
                        .min();
                    if done.is_some() {
                        *found_at = done;
                        firsts.clear();
                        seconds.clear();
                        continue;
                    }
                    firsts.extend(more_firsts);
                    firsts.sort_unstable();
                    seconds.extend(more_seconds);
                    seconds.sort_unstable();
                    *found_at = None;
                }
                (
                    Slot::ThenNo { firsts, seconds },
                    Slot::ThenNo {
                        firsts: more_firsts,
                        seconds: more_seconds,
                    },
                ) => {
                    firsts.extend(more_firsts);
                    firsts.sort_unstable();
                    seconds.extend(more_seconds);
                    seconds.sort_unstable();
                }
                _ => {}
            }
            settle(leaf, slot, now);
        }
    }

    /// The rule's value at `now` (not before the last event observed).
    pub fn evaluate(&self, expr: &Expr, facts: &Facts<'_>, now: i64) -> bool {
        let mut next = 0;
        self.eval(expr, facts, now, &mut next)
    }

    fn eval(&self, expr: &Expr, facts: &Facts<'_>, now: i64, next: &mut usize) -> bool {
        // Every leaf is visited (no short-circuit) so slots stay aligned with leaves.
        let mut slot = || {
            let s = &self.slots[*next];
            *next += 1;
            s
        };
        match expr {
            Expr::And(parts) => parts
                .iter()
                .map(|p| self.eval(p, facts, now, next))
                .fold(true, |a, b| a & b),
            Expr::Or(parts) => parts
                .iter()
                .map(|p| self.eval(p, facts, now, next))
                .fold(false, |a, b| a | b),
            Expr::Not(inner) => !self.eval(inner, facts, now, next),
            Expr::Trait { .. }
            | Expr::Computed { .. }
            | Expr::InSegment { .. }
            | Expr::Score { .. } => fact_holds(expr, facts, now),
            Expr::Count { cmp, n, window, .. } => match slot() {
                Slot::Window { entries } => {
                    let count = entries
                        .iter()
                        .filter(|(t, _)| *t <= now && *t > now - window)
                        .count();
                    cmp.holds(count as f64, *n as f64)
                }
                _ => false,
            },
            Expr::Sum {
                cmp, value, window, ..
            } => match slot() {
                Slot::Window { entries } => {
                    let sum: f64 = entries
                        .iter()
                        .filter(|(t, _)| *t <= now && *t > now - window)
                        .map(|(_, x)| x)
                        .sum();
                    cmp.holds(sum, *value)
                }
                _ => false,
            },
            Expr::Then { window, .. } => match slot() {
                Slot::Then {
                    firsts,
                    seconds,
                    found_at,
                } => match found_at {
                    Some(t) => *t <= now,
                    None => {
                        let upto =
                            |v: &[i64]| v.iter().copied().filter(|t| *t <= now).collect::<Vec<_>>();
                        earliest_pair(&upto(firsts), &upto(seconds), *window).is_some()
                    }
                },
                _ => false,
            },
            Expr::ThenNo { window, .. } => match slot() {
                Slot::ThenNo { firsts, seconds } => {
                    let Some(latest) = firsts.iter().copied().rfind(|t| *t <= now) else {
                        return false;
                    };
                    latest + window <= now
                        && !seconds.iter().any(|b| *b > latest && *b <= latest + window)
                }
                _ => false,
            },
        }
    }

    /// The first instant after `now` at which the rule's value can change without a new
    /// event (a window expiring, an absence elapsing, a future-dated event or trait time
    /// coming due); `None` if it cannot.
    pub fn next_change(&self, expr: &Expr, facts: &Facts<'_>, now: i64) -> Option<i64> {
        let mut candidates: Vec<i64> = Vec::new();
        let mut ls = Vec::new();
        leaves(expr, &mut ls);
        for (leaf, slot) in ls.iter().copied().zip(&self.slots) {
            match (leaf, slot) {
                (
                    Expr::Count { window, .. } | Expr::Sum { window, .. },
                    Slot::Window { entries },
                ) => {
                    for (t, _) in entries {
                        candidates.push(if *t > now { *t } else { t + window });
                    }
                }
                (
                    Expr::Then { .. },
                    Slot::Then {
                        firsts,
                        seconds,
                        found_at,
                    },
                ) => {
                    candidates.extend(found_at.iter().copied());
                    candidates.extend(firsts.iter().chain(seconds).copied());
                }
                (Expr::ThenNo { window, .. }, Slot::ThenNo { firsts, seconds }) => {
                    for t in firsts.iter().chain(seconds) {
                        candidates.push(*t);
                        candidates.push(t + window);
                    }
                }
                _ => {}
            }
        }
        trait_deadlines(expr, facts, &mut candidates);
        candidates.into_iter().filter(|t| *t > now).min()
    }
}

/// One event condition takes an event that arrived at `now`.
fn observe_one(leaf: &Expr, slot: &mut Slot, e: &Event, now: i64) {
    match (leaf, &mut *slot) {
        (Expr::Count { sel, .. }, Slot::Window { entries }) if sel.matches(e) => {
            let at = entries.partition_point(|(t, _)| *t <= e.time);
            entries.insert(at, (e.time, 0.0));
        }
        (
            Expr::Sum {
                sel, property: p, ..
            },
            Slot::Window { entries },
        ) if sel.matches(e) => {
            let x = property(&e.properties, p)
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
            let at = entries.partition_point(|(t, _)| *t <= e.time);
            entries.insert(at, (e.time, x));
        }
        (
            Expr::Then { first, second, .. },
            Slot::Then {
                firsts,
                seconds,
                found_at,
            },
        ) => {
            // Once a pair is complete by `now`, the condition holds for good.
            if found_at.is_some_and(|t| t <= now) {
                return;
            }
            keep_pair_events(first, second, firsts, seconds, e);
        }
        (Expr::ThenNo { first, second, .. }, Slot::ThenNo { firsts, seconds }) => {
            keep_pair_events(first, second, firsts, seconds, e);
        }
        _ => {}
    }
    settle(leaf, slot, now);
}

/// Keeps the event's time among a sequence's firsts and seconds, where it matches them.
fn keep_pair_events(
    first: &EventSel,
    second: &EventSel,
    firsts: &mut Vec<i64>,
    seconds: &mut Vec<i64>,
    e: &Event,
) {
    if first.matches(e) {
        insert_sorted(firsts, e.time);
    }
    if second.matches(e) {
        insert_sorted(seconds, e.time);
    }
}

/// Drops what can no longer matter to one event condition at `now`.
fn settle(leaf: &Expr, slot: &mut Slot, now: i64) {
    match (leaf, slot) {
        (Expr::Count { window, .. } | Expr::Sum { window, .. }, Slot::Window { entries }) => {
            let dead = entries.partition_point(|(t, _)| *t <= now - window);
            entries.drain(..dead);
        }
        (
            Expr::Then { window, .. },
            Slot::Then {
                firsts,
                seconds,
                found_at,
            },
        ) => {
            if found_at.is_some_and(|t| t <= now) {
                return;
            }
            // The earliest second that completes a pair (a late event can make it
            // earlier, so the events stay until it is past).
            *found_at = earliest_pair(firsts, seconds, *window);
            if found_at.is_some_and(|t| t <= now) {
                firsts.clear();
                seconds.clear();
            }
        }
        (Expr::ThenNo { .. }, Slot::ThenNo { firsts, seconds }) => {
            // Firsts before the latest one already past are superseded for good, and so
            // are seconds not after it.
            let past = firsts.partition_point(|t| *t <= now);
            if past > 1 {
                firsts.drain(..past - 1);
            }
            if let Some(&latest) = firsts.first().filter(|t| **t <= now) {
                let stale = seconds.partition_point(|t| *t <= latest);
                seconds.drain(..stale);
            }
        }
        _ => {}
    }
}

/// The earliest time a second completes a pair with a first at most `window` before it.
fn earliest_pair(firsts: &[i64], seconds: &[i64], window: i64) -> Option<i64> {
    seconds.iter().copied().find(|b| {
        // The latest first strictly before b.
        let i = firsts.partition_point(|a| *a < *b);
        i > 0 && *b <= firsts[i - 1] + window
    })
}

fn trait_deadlines(expr: &Expr, facts: &Facts<'_>, out: &mut Vec<i64>) {
    match expr {
        Expr::And(parts) | Expr::Or(parts) => {
            parts.iter().for_each(|p| trait_deadlines(p, facts, out));
        }
        Expr::Not(inner) => trait_deadlines(inner, facts, out),
        Expr::Trait {
            path,
            test: TraitTest::WithinLast(w) | TraitTest::MoreThanAgo(w),
            ..
        } => {
            if let Some(t) = facts.traits.get(path).and_then(time_of) {
                out.push(t);
                out.push(t + w);
            }
        }
        _ => {}
    }
}
