//! Live membership: enter and exit changes on events and on timers (injected clock, and once
//! the real clock on a 1-second window), segments that refer to other segments, and facts.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use strata_rules::engine::{Change, Engine, ProfileFacts};
use strata_rules::{Event, Schema, ValueType, compile};

const H: i64 = 3_600_000_000;

fn schema() -> Schema {
    Schema {
        traits: BTreeMap::from([("plan".to_string(), ValueType::Text)]),
        computed: BTreeMap::new(),
        segments: BTreeSet::from([
            "Buyers".to_string(),
            "Abandoners".to_string(),
            "k-means 2".to_string(),
        ]),
        scores: BTreeSet::new(),
    }
}

fn engine(rules: &[(&str, &str)]) -> Engine {
    Engine::new(
        rules
            .iter()
            .map(|(n, t)| (n.to_string(), compile(t, &schema()).unwrap()))
            .collect(),
    )
    .unwrap()
}

fn ev(name: &str, time: i64) -> Event {
    Event {
        time,
        name: name.into(),
        properties: json!({}),
    }
}

fn change(segment: &str, profile: &str, entered: bool, at: i64) -> Change {
    Change {
        segment: segment.into(),
        profile: profile.into(),
        entered,
        at,
    }
}

#[test]
fn an_absence_enters_by_timer_at_the_instant_its_window_expires() {
    let mut e = engine(&[(
        "Abandoners",
        "\"Added to Cart\" then no \"Order Completed\" within 2h",
    )]);
    assert!(e.observe("p1", &ev("Added to Cart", H), H).is_empty());
    assert_eq!(e.next_timer(), Some(3 * H));
    assert!(e.tick(3 * H - 1).is_empty());
    // A late tick still reports the change at the instant it happened.
    assert_eq!(
        e.tick(3 * H + 250_000),
        [change("Abandoners", "p1", true, 3 * H)]
    );
    assert_eq!(e.members("Abandoners"), ["p1"]);
    // A new cart takes the profile out until its own 2 hours pass.
    assert_eq!(
        e.observe("p1", &ev("Added to Cart", 4 * H), 4 * H),
        [change("Abandoners", "p1", false, 4 * H)]
    );
    assert!(
        e.observe("p1", &ev("Order Completed", 5 * H), 5 * H)
            .is_empty()
    );
    assert!(e.tick(10 * H).is_empty());
    assert!(e.members("Abandoners").is_empty());
}

#[test]
fn segments_built_on_segments_change_together_in_dependency_order() {
    // Listed before what it uses: the engine orders them.
    let mut e = engine(&[
        (
            "Pro buyers",
            "in segment \"Buyers\" and trait plan = \"pro\"",
        ),
        ("Buyers", "\"Order Completed\" within 1d"),
        ("Cluster two", "in segment \"k-means 2\""),
    ]);
    let facts = ProfileFacts {
        traits: serde_json::Map::from_iter([("plan".to_string(), json!("pro"))]),
        segments: BTreeSet::from(["k-means 2".to_string()]),
        ..ProfileFacts::default()
    };
    assert_eq!(
        e.set_facts("p1", facts, 0),
        [change("Cluster two", "p1", true, 0)]
    );
    assert_eq!(
        e.observe("p1", &ev("Order Completed", H), H),
        [
            change("Buyers", "p1", true, H),
            change("Pro buyers", "p1", true, H)
        ]
    );
    // A day later the order leaves the window: both exit at that instant, by timer.
    assert_eq!(
        e.tick(30 * H),
        [
            change("Buyers", "p1", false, 25 * H),
            change("Pro buyers", "p1", false, 25 * H)
        ]
    );
    // Cycles are refused when the engine is built.
    let mut s = schema();
    s.segments.extend(["a".to_string(), "b".to_string()]);
    let cyclic = vec![
        ("a".to_string(), compile("in segment \"b\"", &s).unwrap()),
        ("b".to_string(), compile("in segment \"a\"", &s).unwrap()),
    ];
    assert!(
        Engine::new(cyclic)
            .unwrap_err()
            .to_string()
            .contains("cycle")
    );
}

#[test]
fn with_the_real_clock_an_absence_fires_within_a_second_of_its_window() {
    let clock = || chrono::Utc::now().timestamp_micros();
    let mut e = engine(&[(
        "Abandoners",
        "\"Added to Cart\" then no \"Order Completed\" within 1s",
    )]);
    let start = clock();
    e.observe("p1", &ev("Added to Cart", start), start);
    let due = e.next_timer().unwrap();
    assert_eq!(due, start + 1_000_000);
    // The driver: sleep until the timer is due, then tick with the real clock.
    loop {
        let now = clock();
        if now >= due {
            let fired = e.tick(now);
            assert_eq!(fired, [change("Abandoners", "p1", true, due)]);
            assert!(now - due < 1_000_000, "fired {} µs late", now - due);
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(
            u64::try_from(due - now).unwrap(),
        ));
    }
}
