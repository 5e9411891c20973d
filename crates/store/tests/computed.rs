//! Computed traits: the values kept incrementally by the writer, and those computed over the
//! log when a trait is defined after its events, both equal a direct computation from the
//! events; windows slide with `now`; merges combine states; bad definitions are refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::{Value, json};
use std::collections::BTreeMap;
use strata_store::computed::{self, Aggregate, Definition};
use strata_store::{Kind, Message, Store, StoreError};

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_795_521_600_000_000;

fn def(
    name: &str,
    aggregate: Aggregate,
    event: Option<&str>,
    property: Option<&str>,
) -> Definition {
    Definition {
        name: name.into(),
        aggregate,
        event: event.map(str::to_string),
        property: property.map(str::to_string),
        filter: BTreeMap::new(),
        window: None,
    }
}

/// The definitions under test, with a name prefix (defined before or after the events).
fn definitions(prefix: &str) -> Vec<Definition> {
    let mut v = vec![
        def("views", Aggregate::Count, Some("Product Viewed"), None),
        def(
            "spend",
            Aggregate::Sum,
            Some("Order Completed"),
            Some("revenue"),
        ),
        def(
            "categories",
            Aggregate::Distinct,
            Some("Product Viewed"),
            Some("category"),
        ),
        def(
            "first_category",
            Aggregate::First,
            Some("Product Viewed"),
            Some("category"),
        ),
        def(
            "last_category",
            Aggregate::Last,
            Some("Product Viewed"),
            Some("category"),
        ),
        def(
            "first_view",
            Aggregate::FirstSeen,
            Some("Product Viewed"),
            None,
        ),
        def(
            "last_order",
            Aggregate::LastSeen,
            Some("Order Completed"),
            None,
        ),
        def("any_track", Aggregate::Count, None, None),
    ];
    let mut views_week = def("views_week", Aggregate::Count, Some("Product Viewed"), None);
    views_week.window = Some("7d".into());
    let mut shoes_day = def("shoes_day", Aggregate::Count, Some("Product Viewed"), None);
    shoes_day.window = Some("24h".into());
    shoes_day.filter.insert("category".into(), json!("shoes"));
    let mut spend_month = def(
        "spend_month",
        Aggregate::Sum,
        Some("Order Completed"),
        Some("revenue"),
    );
    spend_month.window = Some("30d".into());
    let mut categories_week = def(
        "categories_week",
        Aggregate::Distinct,
        Some("Product Viewed"),
        Some("category"),
    );
    categories_week.window = Some("7d".into());
    v.extend([views_week, shoes_day, spend_month, categories_week]);
    for d in &mut v {
        d.name = format!("{prefix}{}", d.name);
    }
    v
}

struct Event {
    user: String,
    name: &'static str,
    props: Value,
    time: i64,
}

fn message(i: usize, e: &Event) -> Message {
    Message {
        message_id: format!("m{i}"),
        kind: Kind::Track,
        user_id: Some(e.user.clone()),
        anonymous_id: None,
        previous_id: None,
        event: Some(e.name.into()),
        traits: serde_json::Map::new(),
        timestamp: e.time,
        received_at: e.time,
        body: json!({ "type": "track", "event": e.name, "userId": e.user, "properties": e.props }),
    }
}

/// A direct computation of `d` over `events` at `now`.
fn reference(d: &Definition, events: &[&Event], now: i64) -> Value {
    let window = d
        .window
        .as_deref()
        .map(|w| computed::parse_window(w).unwrap());
    let mut matching: Vec<(i64, Value)> = events
        .iter()
        .filter(|e| d.event.as_deref().is_none_or(|n| n == e.name))
        .filter(|e| d.filter.iter().all(|(k, v)| e.props.get(k) == Some(v)))
        .filter(|e| window.is_none_or(|w| e.time > now - w && e.time <= now))
        .filter_map(|e| match d.property.as_deref() {
            Some(p) => e.props.get(p).cloned().map(|v| (e.time, v)),
            None => Some((e.time, Value::Null)),
        })
        .collect();
    // Ties in time: the stored order (stable sort keeps it).
    matching.sort_by_key(|(t, _)| *t);
    let iso = |t: i64| {
        json!(
            chrono::DateTime::from_timestamp_micros(t)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        )
    };
    match d.aggregate {
        Aggregate::Count => json!(matching.len()),
        Aggregate::Sum => json!(matching.iter().filter_map(|(_, v)| v.as_f64()).sum::<f64>()),
        Aggregate::Distinct => {
            let mut keys: Vec<String> = matching.iter().map(|(_, v)| v.to_string()).collect();
            keys.sort();
            keys.dedup();
            json!(keys.len())
        }
        Aggregate::First => matching.first().map_or(Value::Null, |(_, v)| v.clone()),
        Aggregate::Last => matching.last().map_or(Value::Null, |(_, v)| v.clone()),
        Aggregate::FirstSeen => matching.first().map_or(Value::Null, |(t, _)| iso(*t)),
        Aggregate::LastSeen => matching.last().map_or(Value::Null, |(t, _)| iso(*t)),
        Aggregate::DaysSinceLast | Aggregate::DaysSinceFirst => unreachable!("not under test"),
    }
}

#[test]
fn incremental_and_backfilled_values_equal_a_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for d in definitions("live_") {
        store.define(d).unwrap();
    }
    // 2,000 events of 25 users over 60 days, out of order, in batches; a linear congruential
    // generator keeps the test free of extra dependencies.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let categories = ["shoes", "hats", "bags", "socks"];
    let events: Vec<Event> = (0..2_000)
        .map(|_| {
            let user = format!("u{}", next(25));
            let time = NOW - next(60 * 24) as i64 * HOUR;
            if next(5) == 0 {
                Event {
                    user,
                    name: "Order Completed",
                    props: json!({ "revenue": next(20_000) as f64 / 100.0 }),
                    time,
                }
            } else {
                let mut props = json!({ "category": categories[next(4) as usize] });
                if next(10) == 0 {
                    props = json!({}); // no category at all
                }
                Event {
                    user,
                    name: "Product Viewed",
                    props,
                    time,
                }
            }
        })
        .collect();
    let messages: Vec<Message> = events
        .iter()
        .enumerate()
        .map(|(i, e)| message(i, e))
        .collect();
    for chunk in messages.chunks(150) {
        store.append(chunk.to_vec()).unwrap();
    }
    for d in definitions("later_") {
        store.define(d).unwrap();
    }
    for u in 0..25 {
        let user = format!("u{u}");
        let mine: Vec<&Event> = events.iter().filter(|e| e.user == user).collect();
        let values = store
            .computed(&format!("user:{user}"), NOW)
            .unwrap()
            .unwrap();
        for prefix in ["live_", "later_"] {
            for d in definitions(prefix) {
                let want = reference(&d, &mine, NOW);
                let got = &values[&d.name];
                let close = match (got.as_f64(), want.as_f64()) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    _ => got == &want,
                };
                assert!(close, "{user} {}: {got} != {want}", d.name);
            }
        }
        // The built-in RFM traits.
        let orders: Vec<&&Event> = mine
            .iter()
            .filter(|e| e.name == "Order Completed")
            .collect();
        assert_eq!(values["rfm_frequency"], json!(orders.len()));
        if let Some(last) = orders.iter().map(|e| e.time).max() {
            let days = values["rfm_recency_days"].as_f64().unwrap();
            assert!((days - (NOW - last) as f64 / DAY as f64).abs() < 1e-9);
        }
        if let Some(first) = orders.iter().map(|e| e.time).min() {
            let days = values["rfm_tenure_days"].as_f64().unwrap();
            assert!((days - (NOW - first) as f64 / DAY as f64).abs() < 1e-9);
        }
    }
}

#[test]
fn windows_slide_with_now_and_merges_combine_states() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut d = def("views_day", Aggregate::Count, Some("Product Viewed"), None);
    d.window = Some("24h".into());
    store.define(d).unwrap();
    store
        .define(def("views", Aggregate::Count, Some("Product Viewed"), None))
        .unwrap();
    let ev = |user: &str, hours_ago: i64| Event {
        user: user.into(),
        name: "Product Viewed",
        props: json!({}),
        time: NOW - hours_ago * HOUR,
    };
    let events = [
        ev("a", 30),
        ev("a", 20),
        ev("a", 2),
        ev("b", 1),
        ev("b", 25),
    ];
    let msgs: Vec<Message> = events
        .iter()
        .enumerate()
        .map(|(i, e)| message(i, e))
        .collect();
    store.append(msgs).unwrap();
    let at = |user: &str, now: i64| {
        store
            .computed(&format!("user:{user}"), now)
            .unwrap()
            .unwrap()
    };
    assert_eq!(at("a", NOW)["views_day"], 2);
    // Exactly 24 hours after an event it no longer counts; a moment before, it does.
    assert_eq!(at("a", NOW - 2 * HOUR + DAY - 1)["views_day"], 1);
    assert_eq!(at("a", NOW - 2 * HOUR + DAY)["views_day"], 0);
    // An alias merges b into a: both profiles' events count, windowed and not.
    let mut alias = message(99, &ev("a", 0));
    alias.kind = Kind::Alias;
    alias.event = None;
    alias.previous_id = Some("b".into());
    store.append(vec![alias]).unwrap();
    let merged = at("b", NOW);
    assert_eq!(merged["views"], 5);
    assert_eq!(merged["views_day"], 3);
    // Removing a trait removes it everywhere.
    assert!(store.undefine("views").unwrap());
    assert!(!store.undefine("views").unwrap());
    assert!(!at("a", NOW).contains_key("views"));
}

#[test]
fn bad_definitions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let with_window = |w: &str| {
        let mut d = def("x", Aggregate::Count, None, None);
        d.window = Some(w.into());
        d
    };
    for (d, words) in [
        (with_window("0d"), "longer than zero"),
        (with_window("3 fortnights"), "unknown unit"),
        (with_window("d"), "whole number"),
        (
            def("total", Aggregate::Sum, None, None),
            "needs a `property`",
        ),
        (
            def("9lives", Aggregate::Count, None, None),
            "starting with a letter",
        ),
        (
            def("rfm_frequency", Aggregate::Count, None, None),
            "built-in",
        ),
    ] {
        match store.define(d) {
            Err(StoreError::Invalid(m)) => assert!(m.contains(words), "{m}"),
            other => panic!("expected a refusal mentioning {words}: {other:?}"),
        }
    }
    assert_eq!(
        store.definitions().unwrap().len(),
        computed::builtin().len()
    );
}
