//! The rule language: every form parses to the plan it says; bad rules are refused at
//! definition time with a line, a column and a hint; window edges, clock skew, late events
//! and absence timers behave as documented.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use strata_rules::{
    Cmp, Event, Expr, Facts, Live, Pos, Rule, Schema, ValueType, check_cycles, compile, describe,
    evaluate, explain,
};

const H: i64 = 3_600_000_000;

fn schema() -> Schema {
    Schema {
        traits: BTreeMap::from([
            ("plan".to_string(), ValueType::Text),
            ("age".to_string(), ValueType::Number),
            ("vip".to_string(), ValueType::Bool),
            ("created_at".to_string(), ValueType::Time),
        ]),
        computed: BTreeMap::from([("rfm_frequency".to_string(), ValueType::Number)]),
        segments: BTreeSet::from(["Champions".to_string(), "Cart abandoners".to_string()]),
        scores: BTreeSet::from(["lead".to_string()]),
    }
}

#[test]
fn every_form_of_the_language_parses() {
    let rules = [
        "trait plan = \"pro\"",
        "trait age >= 30 and trait vip = true",
        "trait plan in (\"pro\", \"team\") or trait plan is missing",
        "trait created_at within last 30d",
        "trait created_at more than 1y ago",
        "computed rfm_frequency >= 3",
        "\"Product Viewed\" at least 3 times within 24h",
        "\"Product Viewed\" with category = \"shoes\", price > 50 at most 2 times within 7d",
        "no \"Order Completed\" within 48h",
        "sum of revenue in \"Order Completed\" >= 100 within 30d",
        "sum of revenue in \"Order Completed\" with category = \"shoes\" >= 200 within 90d",
        "\"Product Viewed\" at least 3 times within 24h\n  and no \"Order Completed\" within 30d",
        "computed rfm_frequency >= 5 and computed rfm_frequency < 60",
        "\"Added to Cart\" then no \"Order Completed\" within 2h",
        "\"Signed Up\" then \"Order Completed\" within 14d",
        "in segment \"Champions\" and not in segment \"Cart abandoners\"",
        "# comments run to the end of the line\n(trait plan = \"pro\" # paying\n or computed rfm_frequency > 1)\nand \"App Opened\" within 90m",
    ];
    for text in rules {
        compile(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e}"));
    }
    let r = compile(
        "\"Added to Cart\" then no \"Order Completed\" within 2h",
        &schema(),
    )
    .unwrap();
    assert!(matches!(r.expr, Expr::ThenNo { window, .. } if window == 2 * H));
    let r = compile("no \"Order Completed\" within 48h", &schema()).unwrap();
    assert!(matches!(r.expr, Expr::Count { cmp: Cmp::Eq, n: 0, window, .. } if window == 48 * H));
}

fn refused(text: &str) -> (Pos, String) {
    let e = compile(text, &schema()).expect_err(text);
    (e.pos, e.to_string())
}

#[test]
fn bad_rules_point_at_the_problem_with_a_hint() {
    // Unknown trait, with the closest name.
    let (pos, msg) = refused("trait plam = \"pro\"");
    assert_eq!(pos, Pos { line: 1, column: 7 });
    assert!(
        msg.contains("no profile has a trait `plam`") && msg.contains("did you mean `plan`?"),
        "{msg}"
    );
    // Type mismatches.
    let (_, msg) = refused("trait age = \"thirty\"");
    assert!(
        msg.contains("trait `age` is a number, but is compared with text"),
        "{msg}"
    );
    let (_, msg) = refused("trait plan > 3");
    assert!(
        msg.contains("is text, but is compared with a number"),
        "{msg}"
    );
    let (_, msg) = refused("trait plan within last 3d");
    assert!(msg.contains("not a time"), "{msg}");
    let (_, msg) = refused("computed rfm_frequencyy >= 3");
    assert!(msg.contains("did you mean `rfm_frequency`?"), "{msg}");
    // Windows of zero, and no unit.
    let (pos, msg) = refused("trait vip = true and\n  \"Product Viewed\" within 0h");
    assert_eq!(
        pos,
        Pos {
            line: 2,
            column: 27
        }
    );
    assert!(
        msg.contains("the window `0h` is zero") && msg.contains("hint"),
        "{msg}"
    );
    let (_, msg) = refused("\"Product Viewed\" within 24");
    assert!(msg.contains("expected a duration"), "{msg}");
    let (_, msg) = refused("\"Product Viewed\" within 3q");
    assert!(msg.contains("`3q` is not a duration"), "{msg}");
    // Syntax.
    let (pos, msg) = refused("(trait vip = true");
    assert_eq!(
        pos,
        Pos {
            line: 1,
            column: 18
        }
    );
    assert!(
        msg.contains("expected `)`, found the end of the rule"),
        "{msg}"
    );
    let (_, msg) = refused("\"Product Viewed\" at least 3 times");
    assert!(
        msg.contains("expected `within`") && msg.contains("needs a window"),
        "{msg}"
    );
    let (_, msg) = refused("trait plan = \"pro");
    assert!(msg.contains("no closing quote"), "{msg}");
    let (_, msg) = refused("in segment \"Champs\"");
    assert!(
        msg.contains("there is no segment \"Champs\"") && msg.contains("Champions"),
        "{msg}"
    );
    let (_, msg) = refused("score leed > 3");
    assert!(
        msg.contains("no scoring plan `leed`") && msg.contains("`lead`"),
        "{msg}"
    );
    let (_, msg) = refused("");
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn segments_that_refer_to_each_other_in_a_cycle_are_refused() {
    let mut s = schema();
    s.segments
        .extend(["a".to_string(), "b".to_string(), "c".to_string()]);
    let rules: BTreeMap<String, Rule> = [
        ("a", "in segment \"b\""),
        ("b", "in segment \"c\" and trait vip = true"),
        ("c", "in segment \"a\" or trait age > 3"),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), compile(t, &s).unwrap()))
    .collect();
    let msg = check_cycles(&rules).unwrap_err().to_string();
    assert!(msg.contains("a → b → c → a"), "{msg}");
    let acyclic: BTreeMap<String, Rule> = [("a", "in segment \"b\""), ("b", "trait vip = true")]
        .into_iter()
        .map(|(n, t)| (n.to_string(), compile(t, &s).unwrap()))
        .collect();
    check_cycles(&acyclic).unwrap();
}

fn event(name: &str, hours: f64) -> Event {
    Event {
        time: (hours * H as f64) as i64,
        name: name.into(),
        properties: json!({}),
    }
}

struct World {
    traits: Map<String, Value>,
    computed: BTreeMap<String, Value>,
    segments: BTreeSet<String>,
    scores: BTreeMap<String, f64>,
}

impl World {
    fn new() -> Self {
        Self {
            traits: Map::new(),
            computed: BTreeMap::new(),
            segments: BTreeSet::new(),
            scores: BTreeMap::new(),
        }
    }
    fn facts(&self) -> Facts<'_> {
        Facts {
            traits: &self.traits,
            computed: &self.computed,
            segments: &self.segments,
            scores: &self.scores,
        }
    }
}

#[test]
fn a_window_is_open_at_its_start_and_closed_at_its_end() {
    let w = World::new();
    let rule = compile("\"Product Viewed\" at least 1 times within 24h", &schema()).unwrap();
    let events = [event("Product Viewed", 10.0)];
    let at = |hours: i64| evaluate(&rule.expr, &w.facts(), &events, hours * H);
    assert!(!at(9)); // not yet happened
    assert!(at(10));
    assert!(evaluate(&rule.expr, &w.facts(), &events, 34 * H - 1));
    assert!(!at(34)); // exactly 24 h later it no longer counts
}

#[test]
fn an_absence_fires_when_its_window_expires_by_the_timer() {
    let w = World::new();
    let rule = compile(
        "\"Added to Cart\" then no \"Order Completed\" within 2h",
        &schema(),
    )
    .unwrap();
    let mut live = Live::new(&rule.expr);
    live.observe(&rule.expr, &event("Added to Cart", 1.0), H);
    assert!(!live.evaluate(&rule.expr, &w.facts(), H));
    // The injected clock: the next change is announced for exactly 2 h after the cart.
    assert_eq!(live.next_change(&rule.expr, &w.facts(), H), Some(3 * H));
    assert!(!live.evaluate(&rule.expr, &w.facts(), 3 * H - 1));
    assert!(live.evaluate(&rule.expr, &w.facts(), 3 * H));
    // An order within the 2 h, arriving late (after the window expired), takes it back.
    live.observe(&rule.expr, &event("Order Completed", 2.5), 3 * H + 5);
    assert!(!live.evaluate(&rule.expr, &w.facts(), 3 * H + 5));
    // A new cart starts over.
    live.observe(&rule.expr, &event("Added to Cart", 4.0), 4 * H);
    assert_eq!(live.next_change(&rule.expr, &w.facts(), 4 * H), Some(6 * H));
    assert!(live.evaluate(&rule.expr, &w.facts(), 6 * H));
}

#[test]
fn late_and_future_dated_events_count_by_their_event_time() {
    let w = World::new();
    let rule = compile("\"Product Viewed\" at least 2 times within 1h", &schema()).unwrap();
    let mut live = Live::new(&rule.expr);
    // A clock 10 minutes ahead: the event counts from its own time on, not before.
    live.observe(
        &rule.expr,
        &event("Product Viewed", 5.0 + 10.0 / 60.0),
        5 * H,
    );
    live.observe(&rule.expr, &event("Product Viewed", 5.0), 5 * H);
    assert!(!live.evaluate(&rule.expr, &w.facts(), 5 * H));
    let when = live.next_change(&rule.expr, &w.facts(), 5 * H).unwrap();
    assert_eq!(when, 5 * H + H / 6);
    assert!(live.evaluate(&rule.expr, &w.facts(), when));
    // A late event older than the window is ignored, as the batch evaluator ignores it.
    live.observe(&rule.expr, &event("Product Viewed", 3.0), 6 * H);
    let all = [
        event("Product Viewed", 5.0 + 10.0 / 60.0),
        event("Product Viewed", 5.0),
        event("Product Viewed", 3.0),
    ];
    for t in [6 * H, 6 * H + H / 6 - 1, 6 * H + H / 6] {
        assert_eq!(
            live.evaluate(&rule.expr, &w.facts(), t),
            evaluate(&rule.expr, &w.facts(), &all, t),
            "at {t}"
        );
    }
}

#[test]
fn traits_computed_traits_and_segments_are_read_from_the_facts() {
    let mut w = World::new();
    w.traits.insert("plan".into(), json!("pro"));
    w.traits.insert("age".into(), json!(41));
    w.computed.insert("rfm_frequency".into(), json!(4));
    w.segments.insert("Champions".into());
    w.scores.insert("lead".into(), 72.5);
    let holds = |text: &str, w: &World| {
        evaluate(&compile(text, &schema()).unwrap().expr, &w.facts(), &[], 0)
    };
    assert!(holds("trait plan = \"pro\" and trait age > 40", &w));
    assert!(holds(
        "trait vip is missing and computed rfm_frequency >= 4",
        &w
    ));
    assert!(holds("in segment \"Champions\"", &w));
    assert!(holds("score lead >= 70 and not score lead > 80", &w));
    assert!(!holds(
        "in segment \"Cart abandoners\" or trait plan in (\"free\", \"team\")",
        &w
    ));
}

#[test]
fn a_rule_explains_each_condition_and_reads_back_as_written() {
    let mut w = World::new();
    w.traits.insert("plan".into(), json!("free"));
    let text = "(\"Product Viewed\" with category = \"shoes\" at least 2 times within 24h or trait plan = \"pro\")\n and \"Added to Cart\" then no \"Order Completed\" within 2h";
    let rule = compile(text, &schema()).unwrap();
    let events = [
        Event {
            time: H,
            name: "Product Viewed".into(),
            properties: json!({ "category": "shoes" }),
        },
        Event {
            time: 2 * H,
            name: "Product Viewed".into(),
            properties: json!({ "category": "hats" }),
        },
        Event {
            time: 3 * H,
            name: "Added to Cart".into(),
            properties: json!({}),
        },
    ];
    let why = explain(&rule.expr, &w.facts(), &events, 4 * H);
    assert!(!why.holds);
    assert_eq!(why.found, "0 of 2 parts hold");
    let views = &why.parts[0].parts[0];
    assert_eq!(
        views.condition,
        "\"Product Viewed\" with category = \"shoes\" at least 2 times within 1d"
    );
    assert!(
        views.found.starts_with("1 matching events in the last 1d"),
        "{}",
        views.found
    );
    assert_eq!(why.parts[0].parts[1].found, "plan is \"free\"");
    assert!(
        why.parts[1]
            .found
            .contains("its 2h end at 1970-01-01T05:00:00Z"),
        "{}",
        why.parts[1].found
    );
    // Two hours after the cart, the abandonment part holds.
    let later = explain(&rule.expr, &w.facts(), &events, 5 * H);
    assert!(later.parts[1].holds);
    // What `describe` writes parses back to the same rule.
    for t in [
        text,
        "not (trait created_at within last 30d) or score lead > 3",
        "sum of revenue in \"Order Completed\" >= 100 within 30d",
    ] {
        let once = describe(&compile(t, &schema()).unwrap().expr);
        let twice = describe(&compile(&once, &schema()).unwrap().expr);
        assert_eq!(once, twice);
    }
}
