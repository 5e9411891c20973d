//! Benchmark of live rule-segment membership (issue 7): `--profiles` profiles (default 1 M)
//! under 50 active segments of every kind of condition.
//!
//! 1. One event per profile creates its state; resident memory before and after gives the
//!    memory per profile.
//! 2. `--events` more events (default 2 M) to random profiles, time moving forward 1 ms per
//!    event, each handled as the server will: `observe` (which re-evaluates the profile's 50
//!    segments and reports changes), then `tick` for timers come due. The time of each is the
//!    latency from acceptance to membership change.
//! 3. Batch evaluation of one segment over every profile's history (five events each).
//!
//! `cargo run --release -p strata-rules --example live_bench -- --profiles 1000000`

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: prints its results and stops loudly on a broken setup"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use strata_rules::engine::Engine;
use strata_rules::{Event, Facts, Schema, ValueType, compile, evaluate};

#[path = "shared/fifty.rs"]
mod fifty;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The 50 benchmark segments, checked.
fn segments(schema: &Schema) -> Vec<(String, strata_rules::Rule)> {
    fifty::rule_texts()
        .into_iter()
        .map(|(name, text)| (name, compile(&text, schema).unwrap()))
        .collect()
}

fn event(rng: &mut u64, time: i64) -> Event {
    *rng = rng
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let r = *rng >> 33;
    let name = fifty::EVENTS[(r % 6) as usize];
    let properties = fifty::properties(name, r);
    Event {
        time,
        name: name.into(),
        properties,
    }
}

fn main() {
    let profiles = arg("--profiles", 1_000_000);
    let n_events = arg("--events", 2_000_000);
    let mut schema = Schema {
        traits: BTreeMap::from([("plan".to_string(), ValueType::Text)]),
        computed: BTreeMap::new(),
        segments: BTreeSet::new(),
        scores: BTreeSet::new(),
    };
    for w in 0..5 {
        schema.segments.insert(format!("s{w}-0"));
    }
    let segs = segments(&schema);
    let one_rule = segs[2].1.clone();
    let mut engine = Engine::new(segs).unwrap();
    let ids: Vec<String> = (0..profiles).map(|i| format!("p{i:012}")).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut now: i64 = 1_795_521_600_000_000;
    let before = rss_bytes();
    let start = Instant::now();
    for id in &ids {
        now += 10;
        let e = event(&mut rng, now);
        engine.observe(id, &e, now);
    }
    let warm = start.elapsed();
    let per_profile = (rss_bytes().saturating_sub(before)) as f64 / profiles as f64;
    println!(
        "{profiles} profiles × 50 segments: state built in {:.1} s; {:.0} bytes per profile resident",
        warm.as_secs_f64(),
        per_profile
    );
    let mut latencies: Vec<u32> = Vec::with_capacity(n_events);
    let mut changes = 0usize;
    let start = Instant::now();
    for _ in 0..n_events {
        now += 1_000;
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let id = &ids[((rng >> 33) % profiles as u64) as usize];
        let e = event(&mut rng, now);
        let t = Instant::now();
        changes += engine.observe(id, &e, now).len();
        changes += engine.tick(now).len();
        latencies.push(t.elapsed().as_micros() as u32);
    }
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1_000.0;
    println!(
        "{n_events} events: {:.0} events/s on one thread, {changes} membership changes; acceptance → membership p50 {:.3} ms, p99 {:.3} ms, max {:.1} ms",
        n_events as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    // Batch: one segment over every profile's five-event history.
    drop(engine);
    let histories: Vec<Vec<Event>> = (0..profiles)
        .map(|i| {
            (0..5)
                .map(|k| event(&mut rng, now - (i as i64 % 1_000 + k) * 60_000_000))
                .collect()
        })
        .collect();
    let (traits, computed, segments, scores) = (
        serde_json::Map::new(),
        BTreeMap::new(),
        BTreeSet::new(),
        BTreeMap::new(),
    );
    let facts = Facts {
        traits: &traits,
        computed: &computed,
        segments: &segments,
        scores: &scores,
    };
    let start = Instant::now();
    let members = histories
        .iter()
        .filter(|h| evaluate(&one_rule.expr, &facts, h, now))
        .count();
    println!(
        "batch: one segment (\"Added to Cart\" then no \"Order Completed\" within 1h) over {profiles} profiles' histories: {:.2} s, {members} members",
        start.elapsed().as_secs_f64()
    );
}
