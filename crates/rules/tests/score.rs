//! Scoring: the incremental scorer equals the batch score at every instant whatever the
//! order events arrive in; half-lives, caps, negative signals and clamping behave as
//! documented; the explanation adds up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use proptest::prelude::*;
use serde_json::json;
use strata_rules::score::{Plan, Scorer, Signal, score};
use strata_rules::{Event, EventSel};

const H: i64 = 3_600_000_000;

fn sel(name: &str) -> EventSel {
    EventSel {
        name: name.into(),
        filters: Vec::new(),
    }
}

fn plan() -> Plan {
    Plan {
        name: "lead".into(),
        signals: vec![
            Signal {
                label: "viewed pricing".into(),
                event: sel("Pricing Viewed"),
                points: 10.0,
                half_life: Some(24 * H),
                cap: Some(40.0),
            },
            Signal {
                label: "requested demo".into(),
                event: sel("Demo Requested"),
                points: 50.0,
                half_life: Some(7 * 24 * H),
                cap: None,
            },
            Signal {
                label: "opened email".into(),
                event: sel("Email Opened"),
                points: 2.0,
                half_life: None,
                cap: Some(10.0),
            },
            Signal {
                label: "unsubscribed".into(),
                event: sel("Unsubscribed"),
                points: -30.0,
                half_life: Some(30 * 24 * H),
                cap: None,
            },
        ],
        min: 0.0,
        max: 100.0,
    }
}

fn ev(name: &str, time: i64) -> Event {
    Event {
        time,
        name: name.into(),
        properties: json!({}),
    }
}

#[test]
fn points_halve_with_each_half_life_and_caps_hold() {
    let p = plan();
    let events = [ev("Pricing Viewed", 0), ev("Demo Requested", 0)];
    let at = |t: i64| score(&p, &events, t).score;
    assert!((at(0) - 60.0).abs() < 1e-9);
    // A day later pricing is worth 5, the demo 50 · 0.5^(1/7).
    assert!((at(24 * H) - (5.0 + 50.0 * 0.5f64.powf(1.0 / 7.0))).abs() < 1e-9);
    // Six pricing views at once are capped at 40; many email opens at 10.
    let many: Vec<Event> = (0..6)
        .map(|_| ev("Pricing Viewed", 0))
        .chain((0..9).map(|_| ev("Email Opened", 0)))
        .collect();
    let why = score(&p, &many, 0);
    assert!((why.score - 50.0).abs() < 1e-9);
    assert!(why.contributions.iter().all(|c| c.capped == (c.events > 0)));
    // A negative signal lowers the score, and the total is clamped at the plan's minimum.
    let lost = [ev("Email Opened", 0), ev("Unsubscribed", H)];
    let why = score(&p, &lost, H);
    assert_eq!(why.score, 0.0);
    assert!(why.clamped);
    assert_eq!(why.contributions[0].label, "unsubscribed");
    // Events after `now` do not count yet.
    assert_eq!(score(&p, &[ev("Demo Requested", 2 * H)], H).score, 0.0);
}

#[test]
fn bad_plans_are_refused() {
    let mut p = plan();
    p.signals[0].half_life = Some(0);
    assert!(p.validate().unwrap_err().contains("half-life"));
    let mut p = plan();
    p.min = 10.0;
    p.max = 5.0;
    assert!(p.validate().unwrap_err().contains("must not exceed"));
    let mut p = plan();
    p.signals[1].points = 0.0;
    assert!(p.validate().unwrap_err().contains("non-zero"));
    plan().validate().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn the_incremental_scorer_equals_the_batch_score(
        raw in prop::collection::vec((0i64..500, -30i64..20, 0usize..5), 0..60),
        probes in prop::collection::vec(0i64..700, 1..10),
    ) {
        let names = ["Pricing Viewed", "Demo Requested", "Email Opened", "Unsubscribed", "Other"];
        // Arrival in hours; the event time may be earlier (late) or later (clock ahead).
        let mut arrivals: Vec<(i64, Event)> = raw
            .iter()
            .map(|&(arrival, skew, k)| (arrival * H, ev(names[k], arrival * H + skew * H / 4)))
            .collect();
        arrivals.sort_by_key(|(a, _)| *a);
        let p = plan();
        let mut scorer = Scorer::new(p.clone());
        let mut seen: Vec<Event> = Vec::new();
        let mut instants: Vec<i64> = arrivals.iter().map(|(a, _)| *a).chain(probes.iter().map(|x| x * H)).collect();
        instants.sort_unstable();
        let mut fed = 0;
        for now in instants {
            while fed < arrivals.len() && arrivals[fed].0 <= now {
                scorer.observe(&arrivals[fed].1, arrivals[fed].0);
                seen.push(arrivals[fed].1.clone());
                fed += 1;
            }
            let live = scorer.explain(now);
            let batch = score(&p, &seen, now);
            prop_assert!((live.score - batch.score).abs() <= 1e-9 * batch.score.abs().max(1.0), "{} vs {}", live.score, batch.score);
            let total: f64 = batch.contributions.iter().map(|c| c.points).sum();
            prop_assert!((total.clamp(p.min, p.max) - batch.score).abs() < 1e-12);
        }
    }
}

/// A plan of positive signals only, so the score only falls between events.
fn rising_plan() -> Plan {
    let mut p = plan();
    p.signals.retain(|s| s.points > 0.0);
    p
}

#[test]
fn a_decaying_score_leaves_a_rule_segment_on_its_timer() {
    use strata_rules::engine::Engine;
    use strata_rules::{Schema, compile};
    let schema = Schema {
        scores: ["lead".to_string()].into(),
        ..Schema::default()
    };
    let hot = compile("score lead >= 30", &schema).unwrap();
    let mut engine = Engine::new(vec![("Hot".into(), hot)])
        .unwrap()
        .with_scores(vec![rising_plan()]);
    // 50 points halving weekly: below 30 after 7 · log2(5/3) days.
    let entered = engine.observe("ann", &ev("Demo Requested", 0), 0);
    assert_eq!(entered.len(), 1);
    let expected = (7.0 * 24.0 * H as f64 * (50.0f64 / 30.0).log2()) as i64;
    let due = engine.next_timer().unwrap();
    assert!((due - expected).abs() <= 2, "{due} vs {expected}");
    assert!(engine.tick(due - 3).is_empty());
    let left = engine.tick(due);
    assert_eq!(left.len(), 1);
    assert!(!left[0].entered);
    assert_eq!(left[0].at, due);
    assert!(engine.score("ann", "lead", due).unwrap() < 30.0);
    // Nothing more can change without an event.
    assert_eq!(engine.next_timer(), None);
}

#[test]
fn a_negative_signal_that_decays_slower_takes_the_score_under_on_time() {
    use strata_rules::engine::Engine;
    use strata_rules::{Schema, compile};
    let schema = Schema {
        scores: ["lead".to_string()].into(),
        ..Schema::default()
    };
    let rule = compile("score lead > 20", &schema).unwrap();
    let mut p = plan();
    p.min = -100.0;
    let mut engine = Engine::new(vec![("Warm".into(), rule)])
        .unwrap()
        .with_scores(vec![p.clone()]);
    // A demo (50, halving weekly), five email opens (capped at 10, no decay), then an
    // unsubscribe (−30, halving monthly): 30 at first; the demo fades faster than the
    // unsubscribe, so the score falls under 20 within a week and never comes back.
    let events = [
        ev("Demo Requested", 0),
        ev("Email Opened", 0),
        ev("Email Opened", 0),
        ev("Email Opened", 0),
        ev("Email Opened", 0),
        ev("Email Opened", 0),
        ev("Unsubscribed", H),
    ];
    let mut now = 0;
    for e in &events {
        now = e.time;
        engine.observe("bo", e, now);
    }
    // Drive the engine by its timers for a year and compare with the batch score
    // between every pair of timers.
    let year = 365 * 24 * H;
    let mut changes = 0;
    while let Some(t) = engine.next_timer().filter(|t| *t < year) {
        for k in 1..8 {
            let probe = now + (t - now) * k / 8;
            let member = engine.members("Warm").contains(&"bo");
            assert_eq!(member, score(&p, &events, probe).score > 20.0, "at {probe}");
        }
        changes += engine.tick(t).len();
        now = t;
    }
    let member = engine.members("Warm").contains(&"bo");
    assert_eq!(member, score(&p, &events, year).score > 20.0);
    assert_eq!(changes, 1);
    assert!(!member);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// With positive signals, the engine's membership of `score lead >= X` equals the batch
    /// score's answer at every instant: between the timers it announces the batch answer
    /// does not change.
    #[test]
    fn score_thresholds_change_only_on_announced_timers(
        raw in prop::collection::vec((0i64..400, -8i64..8, 0usize..3), 1..25),
        threshold in 1.0f64..90.0,
    ) {
        use strata_rules::engine::Engine;
        use strata_rules::{Schema, compile};
        let names = ["Pricing Viewed", "Demo Requested", "Email Opened"];
        let schema = Schema { scores: ["lead".to_string()].into(), ..Schema::default() };
        let rule = compile(&format!("score lead >= {threshold}"), &schema).unwrap();
        let p = rising_plan();
        let mut engine = Engine::new(vec![("S".into(), rule)]).unwrap().with_scores(vec![p.clone()]);
        let mut arrivals: Vec<(i64, Event)> = raw
            .iter()
            .map(|&(arrival, skew, k)| (arrival * H, ev(names[k], arrival * H + skew * H)))
            .collect();
        arrivals.sort_by_key(|(a, _)| *a);
        let mut seen: Vec<Event> = Vec::new();
        let end = 2_000 * H;
        let mut now = 0;
        let mut fed = 0;
        loop {
            let next_arrival = arrivals.get(fed).map_or(end, |(a, _)| *a);
            let next_timer = engine.next_timer().unwrap_or(end);
            let next = next_arrival.min(next_timer).min(end);
            // Between now and the next instant anything happens, the batch answer holds.
            let member = engine.members("S").contains(&"x");
            for k in 0..6 {
                let probe = now + (next - now) * k / 6;
                if probe > now || k == 0 {
                    prop_assert_eq!(member, score(&p, &seen, probe).score >= threshold, "at {} (now {}, next {})", probe, now, next);
                }
            }
            if next >= end {
                break;
            }
            now = next;
            engine.tick(now);
            while fed < arrivals.len() && arrivals[fed].0 <= now {
                engine.observe("x", &arrivals[fed].1, now);
                seen.push(arrivals[fed].1.clone());
                fed += 1;
            }
        }
    }
}
