//! The batch and incremental evaluators agree at every instant: after each event arrives
//! (in any order of event times: late and future-dated events included), and between
//! arrivals, where the incremental side's `next_change` must announce every change (so a
//! timer at that instant catches absences and expiring windows).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use strata_rules::{Event, Facts, Live, Schema, ValueType, compile, evaluate};

const S: i64 = 1_000_000;

fn schema() -> Schema {
    Schema {
        traits: BTreeMap::from([
            ("plan".to_string(), ValueType::Text),
            ("created".to_string(), ValueType::Time),
        ]),
        computed: BTreeMap::new(),
        segments: BTreeSet::new(),
        scores: BTreeSet::new(),
    }
}

fn leaf() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["A", "B", "C"]);
    let w = 1u32..60;
    prop_oneof![
        (
            name.clone(),
            0u32..4,
            w.clone(),
            prop::sample::select(vec![
                "at least",
                "at most",
                "exactly",
                "more than",
                "fewer than"
            ])
        )
            .prop_map(|(n, k, w, q)| format!("\"{n}\" {q} {k} times within {w}s")),
        (name.clone(), w.clone()).prop_map(|(n, w)| format!("\"{n}\" within {w}s")),
        (name.clone(), w.clone()).prop_map(|(n, w)| format!("no \"{n}\" within {w}s")),
        (name.clone(), 0u32..3, w.clone())
            .prop_map(|(n, p, w)| format!("\"{n}\" with p >= {p} at least 2 times within {w}s")),
        (name.clone(), 0u32..8, w.clone())
            .prop_map(|(n, x, w)| format!("sum of p in \"{n}\" >= {x} within {w}s")),
        (name.clone(), name.clone(), w.clone())
            .prop_map(|(a, b, w)| format!("\"{a}\" then \"{b}\" within {w}s")),
        (name.clone(), name, w.clone())
            .prop_map(|(a, b, w)| format!("\"{a}\" then no \"{b}\" within {w}s")),
        Just("trait plan = \"pro\"".to_string()),
        w.clone()
            .prop_map(|w| format!("trait created within last {w}s")),
        w.prop_map(|w| format!("trait created more than {w}s ago")),
    ]
}

fn rule() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// (event time, arrival time, name, property p): arrivals at 0..200 s; most events on time,
/// some late (up to 30 s), some from a clock ahead (up to 10 s in the future).
fn history() -> impl Strategy<Value = Vec<(i64, i64, &'static str, u32)>> {
    prop::collection::vec(
        (
            0i64..200,
            -10i64..30,
            prop::sample::select(vec!["A", "B", "C"]),
            0u32..4,
            0u32..10,
        ),
        0..60,
    )
    .prop_map(|raw| {
        let mut v: Vec<(i64, i64, &'static str, u32)> = raw
            .into_iter()
            .map(|(arrival, delay, name, p, kind)| {
                let delay = if kind < 6 { 0 } else { delay };
                (arrival * S - delay * S, arrival * S, name, p)
            })
            .collect();
        v.sort_by_key(|(_, arrival, _, _)| *arrival);
        v
    })
}

fn facts_for(
    plan: &str,
    created: i64,
) -> (
    Map<String, Value>,
    BTreeMap<String, Value>,
    BTreeSet<String>,
) {
    let mut traits = Map::new();
    traits.insert("plan".into(), json!(plan));
    let t = chrono::DateTime::from_timestamp_micros(created).unwrap();
    traits.insert("created".into(), json!(t.to_rfc3339()));
    (traits, BTreeMap::new(), BTreeSet::new())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3_000, ..ProptestConfig::default() })]

    #[test]
    fn batch_and_incremental_agree_at_every_instant(
        text in rule(),
        events in history(),
        plan in prop::sample::select(vec!["pro", "free"]),
        created in 0i64..200,
    ) {
        let rule = compile(&text, &schema()).unwrap();
        let (traits, computed, segments) = facts_for(plan, created * S);
        let scores = BTreeMap::new();
        let facts = Facts { traits: &traits, computed: &computed, segments: &segments, scores: &scores };
        let mut live = Live::new(&rule.expr);
        let mut arrived: Vec<Event> = Vec::new();
        let mut checkpoints: Vec<i64> = events.iter().map(|e| e.1).collect();
        checkpoints.push(260 * S);
        checkpoints.dedup();
        let mut fed = 0;
        for (ci, &now) in checkpoints.iter().enumerate() {
            while fed < events.len() && events[fed].1 <= now {
                let (time, _, name, p) = events[fed];
                let e = Event { time, name: name.into(), properties: json!({ "p": p }) };
                live.observe(&rule.expr, &e, events[fed].1);
                arrived.push(e);
                fed += 1;
            }
            let batch = evaluate(&rule.expr, &facts, &arrived, now);
            prop_assert_eq!(live.evaluate(&rule.expr, &facts, now), batch, "{} at {}s", text, now / S);
            // Until the next arrival, the value changes only at instants next_change names.
            let horizon = checkpoints.get(ci + 1).copied().unwrap_or(400 * S);
            let mut t = now;
            let mut value = batch;
            while t < horizon {
                let next = live.next_change(&rule.expr, &facts, t).unwrap_or(i64::MAX).min(horizon);
                for probe in [t + 1, (t + next) / 2, next - 1] {
                    if probe > t && probe < next {
                        prop_assert_eq!(
                            evaluate(&rule.expr, &facts, &arrived, probe), value,
                            "{}: changed at {}µs, between announced instants {} and {}", text, probe, t, next
                        );
                    }
                }
                if next >= horizon {
                    break;
                }
                value = evaluate(&rule.expr, &facts, &arrived, next);
                prop_assert_eq!(live.evaluate(&rule.expr, &facts, next), value, "{} at timer {}µs", text, next);
                t = next;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    /// Two profiles' states merged at some instant behave as one profile that saw both
    /// histories: the same answer as the batch evaluator over both, at every later arrival
    /// and at every instant `next_change` announces.
    #[test]
    fn a_merged_state_is_the_state_of_both_histories(
        text in rule(),
        mine in history(),
        theirs in history(),
        merge_at in 0i64..220,
    ) {
        let rule = compile(&text, &schema()).unwrap();
        let (traits, computed, segments) = facts_for("pro", 0);
        let scores = BTreeMap::new();
        let facts = Facts { traits: &traits, computed: &computed, segments: &segments, scores: &scores };
        let merge_at = merge_at * S;
        let event = |(time, _, name, p): (i64, i64, &str, u32)| Event { time, name: name.into(), properties: json!({ "p": p }) };
        let (mut a, mut b) = (Live::new(&rule.expr), Live::new(&rule.expr));
        let mut all: Vec<(i64, i64, &str, u32)> = mine.iter().chain(&theirs).copied().collect();
        all.sort_by_key(|e| e.1);
        for e in mine.iter().filter(|e| e.1 <= merge_at) {
            a.observe(&rule.expr, &event(*e), e.1);
        }
        for e in theirs.iter().filter(|e| e.1 <= merge_at) {
            b.observe(&rule.expr, &event(*e), e.1);
        }
        a.absorb(&rule.expr, b, merge_at);
        let mut arrived: Vec<Event> = all.iter().filter(|e| e.1 <= merge_at).map(|e| event(*e)).collect();
        let mut now = merge_at;
        let later: Vec<&(i64, i64, &str, u32)> = all.iter().filter(|e| e.1 > merge_at).collect();
        let mut fed = 0;
        loop {
            prop_assert_eq!(a.evaluate(&rule.expr, &facts, now), evaluate(&rule.expr, &facts, &arrived, now), "{} at {}µs", text, now);
            let next_arrival = later.get(fed).map_or(400 * S, |e| e.1);
            let timer = a.next_change(&rule.expr, &facts, now).unwrap_or(i64::MAX);
            let next = next_arrival.min(timer);
            if next >= 400 * S {
                break;
            }
            let probe = (now + next) / 2;
            if probe > now {
                prop_assert_eq!(a.evaluate(&rule.expr, &facts, now), evaluate(&rule.expr, &facts, &arrived, probe), "{}: changed unannounced at {}µs", text, probe);
            }
            now = next;
            while fed < later.len() && later[fed].1 <= now {
                let e = event(*later[fed]);
                a.observe(&rule.expr, &e, now);
                arrived.push(e);
                fed += 1;
            }
        }
    }
}

#[test]
fn merged_profiles_leave_and_the_survivor_takes_their_events() {
    use strata_rules::engine::Engine;
    let rule = compile("\"A\" at least 2 times within 60s", &schema()).unwrap();
    let mut engine = Engine::new(vec![("Twice".into(), rule)]).unwrap();
    let a = |t: i64| Event {
        time: t,
        name: "A".into(),
        properties: json!({}),
    };
    engine.observe("anon", &a(0), 0);
    engine.observe("anon", &a(S), S);
    assert_eq!(engine.members("Twice"), ["anon"]);
    engine.observe("user", &a(2 * S), 2 * S);
    let changes = engine.merge("user", "anon", 3 * S);
    let got: Vec<(&str, &str, bool)> = changes
        .iter()
        .map(|c| (c.segment.as_str(), c.profile.as_str(), c.entered))
        .collect();
    assert_eq!(got, [("Twice", "anon", false), ("Twice", "user", true)]);
    assert_eq!(engine.profile_count(), 1);
    // The survivor's window holds all three events: it leaves when only one of them is
    // less than 60 s old, at 61 s.
    assert!(engine.tick(61 * S - 1).is_empty());
    assert_eq!(engine.next_timer(), Some(61 * S));
    let left = engine.tick(61 * S);
    assert_eq!(left.len(), 1);
    assert!(!left[0].entered);
}
