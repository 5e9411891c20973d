//! Lead and engagement scoring: weighted events whose points decay with a half-life, with
//! caps, negative signals, and a "why this score" explanation. A score is a profile fact
//! that rules test with `score NAME >= 50`.
//!
//! At instant `now` an event of time `t ≤ now` contributes `points × 0.5^((now − t) /
//! half_life)` (no decay without a half-life). A signal's total is capped in magnitude at
//! its `cap`; the score is the sum of the signals, clamped to `[min, max]`.
//!
//! [`Scorer`] keeps each signal's total incrementally: it is stored as its value at a
//! reference time and decayed on read, so an event costs O(1) whatever its order of
//! arrival. Events stamped after `now` wait until their time.

use crate::eval::Event;
use crate::lang::{Cmp, EventSel};

/// One kind of event and what it is worth.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// A label for explanations, e.g. "viewed pricing".
    pub label: String,
    pub event: EventSel,
    /// Points per event; negative for signals that lower the score (e.g. "Unsubscribed").
    pub points: f64,
    /// µs for the points to halve; `None`: no decay.
    pub half_life: Option<i64>,
    /// Largest magnitude of this signal's total.
    pub cap: Option<f64>,
}

/// A scoring plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub name: String,
    pub signals: Vec<Signal>,
    /// The score is clamped to `[min, max]`.
    pub min: f64,
    pub max: f64,
}

impl Plan {
    /// Checks the plan; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.signals.is_empty() {
            return Err(format!("scoring plan `{}` has no signals", self.name));
        }
        if self.min.is_nan() || self.max.is_nan() || self.min > self.max {
            return Err(format!(
                "scoring plan `{}`: min ({}) must not exceed max ({})",
                self.name, self.min, self.max
            ));
        }
        for s in &self.signals {
            if !s.points.is_finite() || s.points == 0.0 {
                return Err(format!(
                    "signal `{}`: points must be a non-zero number",
                    s.label
                ));
            }
            if s.half_life.is_some_and(|h| h <= 0) {
                return Err(format!(
                    "signal `{}`: the half-life must be longer than zero",
                    s.label
                ));
            }
            if s.cap.is_some_and(|c| c.is_nan() || c <= 0.0) {
                return Err(format!("signal `{}`: a cap must be above zero", s.label));
            }
        }
        Ok(())
    }
}

fn decay(half_life: Option<i64>, from: i64, to: i64) -> f64 {
    match half_life {
        Some(h) => (-((to - from) as f64) / h as f64 * std::f64::consts::LN_2).exp(),
        None => 1.0,
    }
}

/// One signal's share of a score, for "why this score".
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub label: String,
    /// Events counted so far.
    pub events: u64,
    /// The decayed total before the cap.
    pub raw: f64,
    /// After the cap.
    pub points: f64,
    pub capped: bool,
}

/// A score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub score: f64,
    /// Largest magnitude first.
    pub contributions: Vec<Contribution>,
    /// Clamped to the plan's min or max.
    pub clamped: bool,
}

fn combine(plan: &Plan, raws: &[(f64, u64)]) -> Explanation {
    let mut contributions: Vec<Contribution> = plan
        .signals
        .iter()
        .zip(raws)
        .map(|(s, &(raw, events))| {
            let points = s.cap.map_or(raw, |c| raw.clamp(-c, c));
            Contribution {
                label: s.label.clone(),
                events,
                raw,
                points,
                capped: points != raw,
            }
        })
        .collect();
    let total: f64 = contributions.iter().map(|c| c.points).sum();
    let score = total.clamp(plan.min, plan.max);
    contributions.sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
    Explanation {
        score,
        contributions,
        clamped: score != total,
    }
}

/// Batch: the score of a whole history at `now`.
pub fn score(plan: &Plan, events: &[Event], now: i64) -> Explanation {
    let raws: Vec<(f64, u64)> = plan
        .signals
        .iter()
        .map(|s| {
            events
                .iter()
                .filter(|e| e.time <= now && s.event.matches(e))
                .fold((0.0, 0u64), |(sum, n), e| {
                    (sum + s.points * decay(s.half_life, e.time, now), n + 1)
                })
        })
        .collect();
    combine(plan, &raws)
}

/// A profile's incremental score under one plan, without the plan (an engine keeps one
/// per profile and plan, and the plan once).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Per signal: total as of `at`, events counted.
    totals: Vec<(f64, i64, u64)>,
    /// Events stamped after the clock at arrival: (time, signal index).
    pending: Vec<(i64, usize)>,
}

impl State {
    pub fn new(plan: &Plan) -> Self {
        Self {
            totals: vec![(0.0, 0, 0); plan.signals.len()],
            pending: Vec::new(),
        }
    }

    fn add(&mut self, plan: &Plan, i: usize, time: i64) {
        let s = &plan.signals[i];
        let (total, at, n) = self.totals[i];
        // Move the reference time forward to the later of the two, so numbers stay small.
        let at_new = at.max(time);
        self.totals[i] = (
            total * decay(s.half_life, at, at_new) + s.points * decay(s.half_life, time, at_new),
            at_new,
            n + 1,
        );
    }

    /// Takes an event that arrived at `now`.
    pub fn observe(&mut self, plan: &Plan, e: &Event, now: i64) {
        for (i, signal) in plan.signals.iter().enumerate() {
            if signal.event.matches(e) {
                if e.time > now {
                    self.pending.push((e.time, i));
                } else {
                    self.add(plan, i, e.time);
                }
            }
        }
    }

    /// Takes in the state of a profile merged into this one (same plan): the totals add up
    /// (each decayed to the later reference time), pending events join.
    pub fn absorb(&mut self, plan: &Plan, other: State) {
        for ((mine, theirs), s) in self.totals.iter_mut().zip(other.totals).zip(&plan.signals) {
            let at = mine.1.max(theirs.1);
            *mine = (
                mine.0 * decay(s.half_life, mine.1, at)
                    + theirs.0 * decay(s.half_life, theirs.1, at),
                at,
                mine.2 + theirs.2,
            );
        }
        self.pending.extend(other.pending);
    }

    /// Counts the pending events whose time has come.
    fn settle(&mut self, plan: &Plan, now: i64) {
        if self.pending.iter().all(|(t, _)| *t > now) {
            return;
        }
        let due: Vec<(i64, usize)> = self
            .pending
            .iter()
            .copied()
            .filter(|(t, _)| *t <= now)
            .collect();
        self.pending.retain(|(t, _)| *t > now);
        for (t, i) in due {
            self.add(plan, i, t);
        }
    }

    /// The score and why, at `now`.
    pub fn explain(&mut self, plan: &Plan, now: i64) -> Explanation {
        self.settle(plan, now);
        let raws: Vec<(f64, u64)> = plan
            .signals
            .iter()
            .zip(&self.totals)
            .map(|(s, &(total, at, n))| (total * decay(s.half_life, at, now), n))
            .collect();
        combine(plan, &raws)
    }

    /// The score at `now`.
    pub fn value(&mut self, plan: &Plan, now: i64) -> f64 {
        self.settle(plan, now);
        self.value_at(plan, now)
    }

    /// The score at `t ≥` the last settled instant, counting no pending event.
    fn value_at(&self, plan: &Plan, t: i64) -> f64 {
        let total: f64 = plan
            .signals
            .iter()
            .zip(&self.totals)
            .map(|(s, &(total, at, _))| {
                let raw = total * decay(s.half_life, at, t);
                s.cap.map_or(raw, |c| raw.clamp(-c, c))
            })
            .sum();
        total.clamp(plan.min, plan.max)
    }

    /// The first instant after `now` at which one of `tests` (comparisons of the score with
    /// a threshold, as rules make them) changes its answer without a new event: a decaying
    /// score falling below a threshold, or a future-stamped event coming due. `None` when
    /// no answer changes.
    ///
    /// Each signal's capped total moves monotonically towards zero as it decays. When they
    /// all have one sign the score is monotone, and the crossing is found by bisection to
    /// the microsecond. With signals of both signs it may turn once per pair; it is then
    /// searched on a grid of an eighth of the shortest half-life (over 64 of the longest)
    /// before bisection, so two crossings closer than that step can be seen as none.
    /// `=` and `!=` tests hold at single instants and set no timer.
    pub fn next_crossing(&self, plan: &Plan, tests: &[(Cmp, f64)], now: i64) -> Option<i64> {
        let pending = self
            .pending
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t > now)
            .min();
        let tests: Vec<(Cmp, f64)> = tests
            .iter()
            .copied()
            .filter(|(c, _)| !matches!(c, Cmp::Eq | Cmp::Ne))
            .collect();
        let lives: Vec<i64> = plan
            .signals
            .iter()
            .zip(&self.totals)
            .filter(|(_, (total, _, _))| *total != 0.0)
            .filter_map(|(s, _)| s.half_life)
            .collect();
        let (Some(&shortest), Some(&longest)) = (lives.iter().min(), lives.iter().max()) else {
            return pending;
        };
        if tests.is_empty() {
            return pending;
        }
        let answers = |t: i64| -> Vec<bool> {
            let v = self.value_at(plan, t);
            tests.iter().map(|(c, x)| c.holds(v, *x)).collect()
        };
        let start = answers(now);
        let signs: Vec<bool> = plan
            .signals
            .iter()
            .zip(&self.totals)
            .filter(|(s, (total, _, _))| *total != 0.0 && s.half_life.is_some())
            .map(|(_, (total, _, _))| *total > 0.0)
            .collect();
        let monotone = signs.iter().all(|&p| p) || signs.iter().all(|&p| !p);
        let horizon = now.saturating_add(longest.saturating_mul(64));
        let step = if monotone {
            horizon - now
        } else {
            (shortest / 8).max(1)
        };
        // The first grid point whose answers differ from now's, then bisection.
        let (mut lo, mut hi) = (now, None);
        let mut t = now;
        while t < horizon {
            let next = t.saturating_add(step).min(horizon);
            if answers(next) != start {
                lo = t;
                hi = Some(next);
                break;
            }
            t = next;
        }
        let crossing = hi.map(|mut hi| {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if answers(mid) == start {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            hi
        });
        match (crossing, pending) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Incremental: fed events as they arrive.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorer {
    plan: Plan,
    state: State,
}

impl Scorer {
    pub fn new(plan: Plan) -> Self {
        let state = State::new(&plan);
        Self { plan, state }
    }

    /// Takes an event that arrived at `now`.
    pub fn observe(&mut self, e: &Event, now: i64) {
        self.state.observe(&self.plan, e, now);
    }

    /// The score and why, at `now`.
    pub fn explain(&mut self, now: i64) -> Explanation {
        self.state.explain(&self.plan, now)
    }

    /// See [`State::next_crossing`].
    pub fn next_crossing(&self, tests: &[(Cmp, f64)], now: i64) -> Option<i64> {
        self.state.next_crossing(&self.plan, tests, now)
    }
}
