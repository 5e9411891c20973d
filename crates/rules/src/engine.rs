//! Live membership of many rule segments over many profiles: each event re-evaluates its
//! profile's segments (in dependency order, so `in segment` sees this instant's answers) and
//! reports who entered and who left; timers re-evaluate a profile exactly when its answer can
//! change without an event (an absence elapsing, a window expiring).
//!
//! Time is injected: [`Engine::observe`] and [`Engine::tick`] take `now`, which must not go
//! backwards. A driver calls `tick` when [`Engine::next_timer`] comes due.
//!
//! With scoring plans ([`Engine::with_scores`]) the engine keeps every profile's scores
//! itself, from the events it observes, and times the instant a decaying score crosses a
//! threshold a rule tests, so `score lead >= 50` leaves on time too.

use crate::eval::{Event, Facts, Live};
use crate::lang::{Cmp, Expr, Pos, RuleError, error};
use crate::plan::{Rule, check_cycles};
use crate::score;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A profile entered or left a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub segment: String,
    pub profile: String,
    pub entered: bool,
    /// The instant of the change (µs).
    pub at: i64,
}

/// A profile's facts, owned by the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFacts {
    pub traits: Map<String, Value>,
    pub computed: BTreeMap<String, Value>,
    pub scores: BTreeMap<String, f64>,
    /// Segments decided elsewhere, such as the profile's cluster of a batch model.
    pub segments: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
struct ProfileState {
    lives: Vec<Live>,
    member: Vec<bool>,
    facts: ProfileFacts,
    timer: Option<i64>,
    /// One per scoring plan.
    scores: Vec<score::State>,
}

/// Every active segment and every profile's state.
#[derive(Debug, Clone)]
pub struct Engine {
    names: Vec<String>,
    rules: Vec<Expr>,
    /// Segment indices, each after the segments it refers to.
    order: Vec<usize>,
    profiles: HashMap<String, ProfileState>,
    timers: BTreeSet<(i64, String)>,
    plans: Vec<score::Plan>,
    /// Per plan: the comparisons rules make of its score.
    thresholds: Vec<Vec<(Cmp, f64)>>,
}

impl Engine {
    /// An engine for these segments (name, checked rule). Refuses two segments of one name
    /// and cycles of `in segment` references. A reference to a segment that is not here
    /// (a cluster of a batch model) reads the profile's facts.
    pub fn new(segments: Vec<(String, Rule)>) -> Result<Self, RuleError> {
        let names: Vec<String> = segments.iter().map(|(n, _)| n.clone()).collect();
        let set: BTreeMap<String, Rule> = segments.iter().cloned().collect();
        if set.len() != names.len() {
            return Err(error(
                Pos::default(),
                "two segments have the same name",
                None,
            ));
        }
        check_cycles(&set)?;
        // Depth-first: a segment after everything it uses.
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut order = Vec::with_capacity(names.len());
        let mut placed = vec![false; names.len()];
        fn place(
            i: usize,
            rules: &[(String, Rule)],
            index: &HashMap<&str, usize>,
            placed: &mut Vec<bool>,
            order: &mut Vec<usize>,
        ) {
            if placed[i] {
                return;
            }
            placed[i] = true;
            let mut used = Vec::new();
            rules[i].1.expr.for_each_condition(&mut |c| {
                if let Expr::InSegment { name, .. } = c {
                    used.push(name.as_str());
                }
            });
            for u in used {
                if let Some(&j) = index.get(u) {
                    place(j, rules, index, placed, order);
                }
            }
            order.push(i);
        }
        for i in 0..names.len() {
            place(i, &segments, &index, &mut placed, &mut order);
        }
        let rules = segments.into_iter().map(|(_, r)| r.expr).collect();
        Ok(Self {
            names,
            rules,
            order,
            profiles: HashMap::new(),
            timers: BTreeSet::new(),
            plans: Vec::new(),
            thresholds: Vec::new(),
        })
    }

    /// Keeps these scoring plans' scores per profile (before any profile is seen): they
    /// replace the `scores` of [`ProfileFacts`].
    pub fn with_scores(mut self, plans: Vec<score::Plan>) -> Self {
        let mut tests = Vec::new();
        for rule in &self.rules {
            rule.for_each_condition(&mut |c| {
                if let Expr::Score {
                    name, cmp, value, ..
                } = c
                {
                    tests.push((name.as_str(), *cmp, *value));
                }
            });
        }
        self.thresholds = plans
            .iter()
            .map(|p| {
                tests
                    .iter()
                    .filter(|(name, _, _)| *name == p.name.as_str())
                    .map(|(_, c, v)| (*c, *v))
                    .collect()
            })
            .collect();
        self.plans = plans;
        self
    }

    fn state(&mut self, profile: &str) -> &mut ProfileState {
        let n = self.rules.len();
        let (rules, plans) = (&self.rules, &self.plans);
        self.profiles
            .entry(profile.to_string())
            .or_insert_with(|| ProfileState {
                lives: rules.iter().map(Live::new).collect(),
                member: vec![false; n],
                facts: ProfileFacts::default(),
                timer: None,
                scores: plans.iter().map(score::State::new).collect(),
            })
    }

    /// A profile's score under a plan at `now`, if the engine keeps it.
    pub fn score(&mut self, profile: &str, plan: &str, now: i64) -> Option<f64> {
        let i = self.plans.iter().position(|p| p.name == plan)?;
        let state = self.profiles.get_mut(profile)?;
        Some(state.scores[i].value(&self.plans[i], now))
    }

    /// Re-evaluates one profile at `now`; returns its changes and re-arms its timer.
    fn evaluate(&mut self, profile: &str, now: i64) -> Vec<Change> {
        let Some(state) = self.profiles.get_mut(profile) else {
            return Vec::new();
        };
        let mut changes = Vec::new();
        let mut next: Option<i64> = None;
        // Only the scores a rule tests are worked out on the event path.
        for (i, plan) in self.plans.iter().enumerate() {
            if self.thresholds[i].is_empty() {
                continue;
            }
            let value = state.scores[i].value(plan, now);
            state.facts.scores.insert(plan.name.clone(), value);
            if let Some(t) = state.scores[i].next_crossing(plan, &self.thresholds[i], now) {
                next = Some(next.map_or(t, |n: i64| n.min(t)));
            }
        }
        let mut inside: BTreeSet<String> = self
            .names
            .iter()
            .zip(&state.member)
            .filter(|(_, m)| **m)
            .map(|(n, _)| n.clone())
            .chain(state.facts.segments.iter().cloned())
            .collect();
        for &i in &self.order {
            let facts = Facts {
                traits: &state.facts.traits,
                computed: &state.facts.computed,
                segments: &inside,
                scores: &state.facts.scores,
            };
            let now_in = state.lives[i].evaluate(&self.rules[i], &facts, now);
            if let Some(t) = state.lives[i].next_change(&self.rules[i], &facts, now) {
                next = Some(next.map_or(t, |n: i64| n.min(t)));
            }
            if now_in != state.member[i] {
                state.member[i] = now_in;
                if now_in {
                    inside.insert(self.names[i].clone());
                } else {
                    inside.remove(&self.names[i]);
                }
                changes.push(Change {
                    segment: self.names[i].clone(),
                    profile: profile.to_string(),
                    entered: now_in,
                    at: now,
                });
            }
        }
        if state.timer != next {
            if let Some(old) = state.timer.take() {
                self.timers.remove(&(old, profile.to_string()));
            }
            if let Some(t) = next {
                self.timers.insert((t, profile.to_string()));
            }
            state.timer = next;
        }
        changes
    }

    /// An event of `profile` accepted at `now`.
    pub fn observe(&mut self, profile: &str, event: &Event, now: i64) -> Vec<Change> {
        self.state(profile);
        if let Some(state) = self.profiles.get_mut(profile) {
            for (live, rule) in state.lives.iter_mut().zip(&self.rules) {
                live.observe(rule, event, now);
            }
            for (s, plan) in state.scores.iter_mut().zip(&self.plans) {
                s.observe(plan, event, now);
            }
        }
        self.evaluate(profile, now)
    }

    /// `from` was merged into `into` at `now`: `from` leaves its segments and is forgotten,
    /// and `into` takes in its event state (as if it had seen both profiles' events) and is
    /// re-evaluated. Facts are the survivor's; the caller refreshes them.
    pub fn merge(&mut self, into: &str, from: &str, now: i64) -> Vec<Change> {
        let Some(gone) = self.profiles.remove(from) else {
            return Vec::new();
        };
        if let Some(t) = gone.timer {
            self.timers.remove(&(t, from.to_string()));
        }
        let mut changes: Vec<Change> = self
            .names
            .iter()
            .zip(&gone.member)
            .filter(|(_, m)| **m)
            .map(|(segment, _)| Change {
                segment: segment.clone(),
                profile: from.to_string(),
                entered: false,
                at: now,
            })
            .collect();
        self.state(into);
        if let Some(state) = self.profiles.get_mut(into) {
            for ((live, theirs), rule) in state.lives.iter_mut().zip(gone.lives).zip(&self.rules) {
                live.absorb(rule, theirs, now);
            }
            for ((s, theirs), plan) in state.scores.iter_mut().zip(gone.scores).zip(&self.plans) {
                s.absorb(plan, theirs);
            }
        }
        changes.extend(self.evaluate(into, now));
        changes
    }

    /// A profile's traits, computed traits, scores (of plans the engine does not keep) or
    /// external memberships changed.
    pub fn set_facts(&mut self, profile: &str, facts: ProfileFacts, now: i64) -> Vec<Change> {
        self.state(profile).facts = facts;
        self.evaluate(profile, now)
    }

    /// Fires every timer due by `now`.
    pub fn tick(&mut self, now: i64) -> Vec<Change> {
        let mut changes = Vec::new();
        while let Some((t, profile)) = self.timers.first().cloned() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, profile.clone()));
            if let Some(s) = self.profiles.get_mut(&profile) {
                s.timer = None;
            }
            // The change happened at the timer's instant, even if the tick is a little late.
            let mut fired = self.evaluate(&profile, t);
            for c in &mut fired {
                c.at = t;
            }
            changes.extend(fired);
        }
        changes
    }

    /// When the earliest timer is due.
    pub fn next_timer(&self) -> Option<i64> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// The profiles in a segment now.
    pub fn members(&self, segment: &str) -> Vec<&str> {
        let Some(i) = self.names.iter().position(|n| n == segment) else {
            return Vec::new();
        };
        let mut v: Vec<&str> = self
            .profiles
            .iter()
            .filter(|(_, s)| s.member[i])
            .map(|(p, _)| p.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// Whether `profile` is in `segment` now.
    pub fn is_member(&self, segment: &str, profile: &str) -> bool {
        let Some(i) = self.names.iter().position(|n| n == segment) else {
            return false;
        };
        self.profiles.get(profile).is_some_and(|s| s.member[i])
    }

    /// Profiles the engine keeps state for.
    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }
}
