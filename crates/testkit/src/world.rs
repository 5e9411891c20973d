//! A seeded e-commerce world: customers with latent segments, their orders (repeat purchases
//! with heterogeneous rates, dropout and heavy-tailed spend) and their recent behavioural
//! events in Segment's message shape.
//!
//! Customers are generated in fixed-size chunks, each from its own ChaCha stream derived from
//! the seed and the chunk index, so the output is identical for any thread count.

use crate::names::{CATEGORIES, COUNTRIES, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma, LogNormal, Poisson};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

const CHUNK: usize = 4096;
/// Chunks generated in memory before they are written, bounding peak memory.
const CHUNKS_PER_WAVE: usize = 32;

/// How a latent segment behaves; the truth a clustering should recover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatentSegment {
    pub name: &'static str,
    pub share: f64,
    /// Days between signup and the end of the world, drawn uniformly from this range.
    pub tenure_days: (f64, f64),
    /// Mean purchases per day while active; customer rates are Gamma around it.
    pub purchase_rate: f64,
    /// Probability of becoming inactive after each purchase.
    pub dropout: f64,
    /// Days after signup at which the customer stops buying for good, if it does.
    pub churn_after_days: Option<(f64, f64)>,
    /// Median order value.
    pub order_value: f64,
    /// Web sessions per day during the event window.
    pub session_rate: f64,
}

const SEGMENTS: [LatentSegment; 5] = [
    LatentSegment {
        name: "champions",
        share: 0.12,
        tenure_days: (420.0, 730.0),
        purchase_rate: 2.0 / 30.0,
        dropout: 0.004,
        churn_after_days: None,
        order_value: 220.0,
        session_rate: 0.30,
    },
    LatentSegment {
        name: "loyal",
        share: 0.22,
        tenure_days: (420.0, 730.0),
        purchase_rate: 0.4 / 30.0,
        dropout: 0.01,
        churn_after_days: None,
        order_value: 65.0,
        session_rate: 0.10,
    },
    LatentSegment {
        name: "bargain_hunters",
        share: 0.20,
        tenure_days: (420.0, 730.0),
        purchase_rate: 1.0 / 30.0,
        dropout: 0.005,
        churn_after_days: None,
        order_value: 10.0,
        session_rate: 0.25,
    },
    LatentSegment {
        name: "new",
        share: 0.14,
        tenure_days: (3.0, 75.0),
        purchase_rate: 0.5 / 30.0,
        dropout: 0.05,
        churn_after_days: None,
        order_value: 50.0,
        session_rate: 0.20,
    },
    LatentSegment {
        name: "lapsed",
        share: 0.32,
        tenure_days: (480.0, 730.0),
        purchase_rate: 0.3 / 30.0,
        dropout: 0.3,
        churn_after_days: Some((20.0, 200.0)),
        order_value: 40.0,
        session_rate: 0.005,
    },
];

/// The latent segments of the generated world, in truth-label order.
pub fn latent_segments() -> &'static [LatentSegment] {
    &SEGMENTS
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    pub customers: usize,
    pub seed: u64,
    /// The end of the simulated history; the natural "as of" date for features.
    pub end: DateTime<Utc>,
    /// Days of behavioural events written before `end`.
    pub event_days: u32,
    /// Share of customers that also appear as a second, typo-ridden customer record.
    pub duplicate_rate: f64,
    /// Share of rows given a defect (missing value, unparseable field).
    pub dirty_rate: f64,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            customers: 10_000,
            seed: 42,
            end: Utc
                .with_ymd_and_hms(2026, 7, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            event_days: 21,
            duplicate_rate: 0.02,
            dirty_rate: 0.02,
        }
    }
}

/// Row counts of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorldSummary {
    pub customers: usize,
    pub customer_rows: usize,
    pub orders: usize,
    pub events: usize,
}

#[derive(Default)]
struct ChunkOutput {
    customers: String,
    orders: String,
    events: String,
    truth: String,
    summary: WorldSummary,
}

/// An order placed at the end of a web session: its id and amount.
type Purchase = (String, f64);

/// Writes `customers.csv`, `orders.csv`, `events.jsonl` and `truth.csv` into `out_dir`.
/// `progress` is called with the number of customers written so far.
pub fn generate_world(
    config: &WorldConfig,
    out_dir: &Path,
    progress: &(dyn Fn(usize) + Sync),
) -> io::Result<WorldSummary> {
    std::fs::create_dir_all(out_dir)?;
    let open = |name: &str| -> io::Result<BufWriter<File>> {
        Ok(BufWriter::with_capacity(
            1 << 20,
            File::create(out_dir.join(name))?,
        ))
    };
    let mut customers = open("customers.csv")?;
    let mut orders = open("orders.csv")?;
    let mut events = open("events.jsonl")?;
    let mut truth = open("truth.csv")?;
    writeln!(
        customers,
        "customer_id,first_name,last_name,email,phone,gender,age,country,city,signup_date"
    )?;
    writeln!(
        orders,
        "order_id,customer_id,order_date,amount,quantity,currency"
    )?;
    writeln!(truth, "customer_id,segment,duplicate_of")?;

    let n_chunks = config.customers.div_ceil(CHUNK);
    let mut total = WorldSummary::default();
    for wave in (0..n_chunks).collect::<Vec<_>>().chunks(CHUNKS_PER_WAVE) {
        let outputs: Vec<ChunkOutput> = wave
            .par_iter()
            .map(|&chunk| generate_chunk(config, chunk))
            .collect();
        for out in outputs {
            customers.write_all(out.customers.as_bytes())?;
            orders.write_all(out.orders.as_bytes())?;
            events.write_all(out.events.as_bytes())?;
            truth.write_all(out.truth.as_bytes())?;
            total.customers += out.summary.customers;
            total.customer_rows += out.summary.customer_rows;
            total.orders += out.summary.orders;
            total.events += out.summary.events;
        }
        progress(total.customers);
    }
    for mut w in [customers, orders, events, truth] {
        w.flush()?;
    }
    Ok(total)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn pick_segment(rng: &mut ChaCha8Rng) -> usize {
    let mut u: f64 = rng.random();
    for (i, s) in SEGMENTS.iter().enumerate() {
        if u < s.share {
            return i;
        }
        u -= s.share;
    }
    SEGMENTS.len() - 1
}

/// A typo a person or an OCR step would make: a dropped, doubled or swapped letter.
fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..3) {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, chars[i]),
        _ => chars.swap(i, i + 1),
    }
    chars.into_iter().collect()
}

/// Telephone area codes in use in the US (so that generated numbers are valid NANP
/// numbers: a real area code, an exchange from 200).
const AREA_CODES: &[u32] = &[
    212, 213, 305, 312, 404, 415, 503, 512, 602, 617, 702, 713, 720, 206, 303, 619, 646, 718,
];

/// Currency of orders per country and its value in USD (the rates the generated config uses).
pub const CURRENCIES: &[(&str, &str, f64)] = &[
    ("GB", "GBP", 1.25),
    ("DE", "EUR", 1.10),
    ("FR", "EUR", 1.10),
    ("ES", "EUR", 1.10),
    ("IT", "EUR", 1.10),
    ("NL", "EUR", 1.10),
    ("CA", "CAD", 0.75),
    ("JP", "JPY", 0.0068),
];

fn currency_of(country: &str) -> (&'static str, f64) {
    CURRENCIES
        .iter()
        .find(|(c, _, _)| *c == country)
        .map_or(("USD", 1.0), |(_, cur, rate)| (cur, *rate))
}

struct Phone {
    area: u32,
    exchange: u32,
    line: u32,
}

impl Phone {
    /// The same number written the ways people write it.
    fn format(&self, rng: &mut ChaCha8Rng) -> String {
        let Self {
            area,
            exchange,
            line,
        } = self;
        match rng.random_range(0..10) {
            0..6 => format!("+1{area}{exchange}{line:04}"),
            6..8 => format!("({area}) {exchange}-{line:04}"),
            8 => format!("{area}.{exchange}.{line:04}"),
            _ => format!("1-{area}-{exchange}-{line:04}"),
        }
    }
}

fn format_date(rng: &mut ChaCha8Rng, day: DateTime<Utc>) -> String {
    // Mixed formats on purpose: the loader is told which formats to try, in order.
    match rng.random_range(0..20) {
        0..14 => day.format("%Y-%m-%d").to_string(),
        14..17 => day.format("%d/%m/%Y").to_string(),
        _ => day.format("%Y%m%d").to_string(),
    }
}

fn generate_chunk(config: &WorldConfig, chunk: usize) -> ChunkOutput {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(chunk as u64);
    let mut out = ChunkOutput::default();
    let start = chunk * CHUNK;
    let end_idx = ((chunk + 1) * CHUNK).min(config.customers);
    for index in start..end_idx {
        generate_customer(config, index, &mut rng, &mut out);
    }
    out
}

// `write!` into a String cannot fail; the results are ignored on purpose below.
fn generate_customer(
    config: &WorldConfig,
    index: usize,
    rng: &mut ChaCha8Rng,
    out: &mut ChunkOutput,
) {
    let seg_index = pick_segment(rng);
    let seg = &SEGMENTS[seg_index];
    let id = format!("C{index:07}");
    let end = config.end;
    let tenure = rng.random_range(seg.tenure_days.0..seg.tenure_days.1);
    let signup = end - Duration::seconds((tenure * 86_400.0) as i64);

    // --- customer record (and maybe a duplicate with typos) ---
    let first = *pick(rng, FIRST_NAMES);
    let last = *pick(rng, LAST_NAMES);
    let domain = *pick(rng, EMAIL_DOMAINS);
    // The customer number keeps addresses unique: an email names one person.
    let email = format!(
        "{}.{}{}@{}",
        first.to_lowercase(),
        last.to_lowercase(),
        index,
        domain
    );
    let phone = Phone {
        area: *pick(rng, AREA_CODES),
        exchange: rng.random_range(200..1000),
        line: rng.random_range(0..10_000),
    };
    let phone_field = phone.format(rng);
    let gender = if rng.random_bool(0.5) { "F" } else { "M" };
    let age: u32 = rng.random_range(18..80);
    let (country, cities) = *pick(rng, COUNTRIES);
    let city = *pick(rng, cities);
    let signup_day = signup
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc();
    let dirty = config.dirty_rate;
    let email_field = if rng.random_bool(dirty) {
        String::new()
    } else {
        email.clone()
    };
    let age_field = match rng.random_range(0..1000) {
        x if (x as f64) < dirty * 1000.0 => String::new(),
        x if (x as f64) < dirty * 1100.0 => "unknown".to_string(),
        _ => age.to_string(),
    };
    let date_field = format_date(rng, signup_day);
    let _ = writeln!(
        out.customers,
        "{id},{first},{last},{email_field},{phone_field},{gender},{age_field},{country},{city},{date_field}"
    );
    let _ = writeln!(out.truth, "{id},{},", seg.name);
    out.summary.customers += 1;
    out.summary.customer_rows += 1;
    if rng.random_bool(config.duplicate_rate) {
        let dup_id = format!("D{index:07}");
        let (f, l) = match rng.random_range(0..3) {
            0 => (typo(rng, first), last.to_string()),
            1 => (first.to_string(), typo(rng, last)),
            _ => (last.to_string(), first.to_string()),
        };
        // Half the duplicates carry the email (in other casing, padded), half none; some lose
        // the phone, the age or the city.
        let dup_email = if rng.random_bool(0.5) {
            format!(" {} ", email.to_uppercase())
        } else {
            String::new()
        };
        let dup_phone = if rng.random_bool(0.2) {
            String::new()
        } else {
            phone.format(rng)
        };
        let dup_age = if rng.random_bool(0.15) {
            String::new()
        } else {
            age.to_string()
        };
        let dup_city = if rng.random_bool(0.1) { "" } else { city };
        let date_field = format_date(rng, signup_day);
        let _ = writeln!(
            out.customers,
            "{dup_id},{f},{l},\"{dup_email}\",{dup_phone},{gender},{dup_age},{country},{dup_city},{date_field}"
        );
        let _ = writeln!(out.truth, "{dup_id},{},{id}", seg.name);
        out.summary.customer_rows += 1;
    }

    // --- orders: first purchase right after signup, then a Poisson process with dropout ---
    let rate = Gamma::new(10.0, seg.purchase_rate / 10.0)
        .map(|g| g.sample(rng))
        .unwrap_or(seg.purchase_rate);
    let customer_value = seg.order_value
        * LogNormal::new(0.0, 0.25)
            .map(|d| d.sample(rng))
            .unwrap_or(1.0);
    let order_noise = LogNormal::new(0.0, 0.45).ok();
    let stop_at = match seg.churn_after_days {
        Some((lo, hi)) => signup + Duration::seconds((rng.random_range(lo..hi) * 86_400.0) as i64),
        None => end,
    };
    let first_delay = Exp::new(1.0 / 2.0).map(|d| d.sample(rng)).unwrap_or(1.0);
    let mut t = signup + Duration::seconds((first_delay * 86_400.0) as i64);
    let gap = Exp::new(rate.max(1e-6)).ok();
    let mut order_times = Vec::new();
    while t < stop_at.min(end) {
        order_times.push(t);
        if rng.random_bool(seg.dropout) {
            break;
        }
        let days = gap.as_ref().map(|g| g.sample(rng)).unwrap_or(f64::INFINITY);
        if !days.is_finite() || days > 10_000.0 {
            break;
        }
        t += Duration::seconds((days * 86_400.0) as i64);
    }
    let event_start = end - Duration::days(i64::from(config.event_days));
    let mut purchases_in_window = Vec::new();
    for (n, &when) in order_times.iter().enumerate() {
        let noise = order_noise.as_ref().map(|d| d.sample(rng)).unwrap_or(1.0);
        let amount = (customer_value * noise).max(0.5);
        let quantity = 1 + (amount / 60.0) as u32 + rng.random_range(0..2);
        let order_id = format!("O{index:07}-{n:03}");
        // Amounts are in the customer's local currency; `amount` itself is in USD.
        let (currency, usd_per_unit) = currency_of(country);
        let amount_field = if rng.random_bool(dirty / 40.0) {
            "N/A".to_string()
        } else {
            format!("{:.2}", amount / usd_per_unit)
        };
        let _ = writeln!(
            out.orders,
            "{order_id},{id},{},{amount_field},{quantity},{currency}",
            when.format("%Y-%m-%dT%H:%M:%SZ")
        );
        out.summary.orders += 1;
        if when >= event_start {
            purchases_in_window.push((when, order_id, amount));
        }
    }

    // --- behavioural events in the last `event_days` days ---
    let window_days = f64::from(config.event_days);
    let sessions = Poisson::new((seg.session_rate * window_days).max(1e-9))
        .map(|p| p.sample(rng) as usize)
        .unwrap_or(0);
    let anon = format!("a{:016x}", rng.random::<u64>());
    let mut seq = 0usize;
    let mut emit = |out: &mut ChunkOutput,
                    rng: &mut ChaCha8Rng,
                    when: DateTime<Utc>,
                    kind: &str,
                    name: &str,
                    props: &str| {
        let ts = when.format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let mid = format!("m{index:07}-{seq:05}");
        seq += 1;
        let user = if rng.random_bool(0.9) {
            format!("\"{id}\"")
        } else {
            "null".to_string()
        };
        let name_key = if kind == "track" { "event" } else { "name" };
        let _ = writeln!(
            out.events,
            r#"{{"type":"{kind}","messageId":"{mid}","userId":{user},"anonymousId":"{anon}","{name_key}":"{name}","timestamp":"{ts}","properties":{props},"context":{{"library":{{"name":"strata-generate","version":"1"}}}}}}"#
        );
        out.summary.events += 1;
    };
    if sessions > 0 && rng.random_bool(0.3) {
        let when = event_start + Duration::seconds(rng.random_range(0..86_400));
        let ts = when.format("%Y-%m-%dT%H:%M:%S%.3fZ");
        let _ = writeln!(
            out.events,
            r#"{{"type":"identify","messageId":"m{index:07}-id","userId":"{id}","anonymousId":"{anon}","timestamp":"{ts}","traits":{{"email":"{email}","first_name":"{first}","last_name":"{last}"}}}}"#
        );
        out.summary.events += 1;
    }
    let window_secs = i64::from(config.event_days) * 86_400;
    let mut session_starts: Vec<(DateTime<Utc>, Option<Purchase>)> = (0..sessions)
        .map(|_| {
            (
                event_start + Duration::seconds(rng.random_range(0..window_secs)),
                None,
            )
        })
        .collect();
    // Every purchase in the window happened in a session that ends in Order Completed.
    for (when, order_id, amount) in purchases_in_window {
        session_starts.push((
            when - Duration::minutes(rng.random_range(3..40)),
            Some((order_id, amount)),
        ));
    }
    session_starts.sort_by_key(|s| s.0);
    for (start, purchase) in session_starts {
        let mut when = start;
        let step = |rng: &mut ChaCha8Rng| Duration::seconds(rng.random_range(5..240));
        emit(out, rng, when, "page", "Home", r#"{"path":"/"}"#);
        let views = 1 + rng.random_range(0..4);
        let category = *pick(rng, CATEGORIES);
        let mut last_product = String::new();
        let mut last_price = 0.0;
        for _ in 0..views {
            when += step(rng);
            last_product = format!("P{:05}", rng.random_range(0..20_000));
            last_price = (seg.order_value * rng.random_range(0.3..1.5) * 100.0).round() / 100.0;
            let props = format!(
                r#"{{"product_id":"{last_product}","category":"{category}","price":{last_price}}}"#
            );
            emit(out, rng, when, "track", "Product Viewed", &props);
        }
        let buys = purchase.is_some();
        if buys || rng.random_bool(0.25) {
            when += step(rng);
            let props =
                format!(r#"{{"product_id":"{last_product}","price":{last_price},"quantity":1}}"#);
            emit(out, rng, when, "track", "Product Added", &props);
            if buys || rng.random_bool(0.4) {
                when += step(rng);
                emit(
                    out,
                    rng,
                    when,
                    "track",
                    "Checkout Started",
                    r#"{"currency":"USD"}"#,
                );
            }
        }
        if let Some((order_id, amount)) = purchase {
            when += step(rng);
            let props =
                format!(r#"{{"order_id":"{order_id}","revenue":{amount:.2},"currency":"USD"}}"#);
            emit(out, rng, when, "track", "Order Completed", &props);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap()
    }

    #[test]
    fn same_seed_same_world_different_seed_different_world() {
        let config = WorldConfig {
            customers: 5000,
            ..WorldConfig::default()
        };
        let dirs = [
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        ];
        let (a, b, c) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
        let sa = generate_world(&config, a, &|_| {}).unwrap();
        let sb = generate_world(&config, b, &|_| {}).unwrap();
        let sc = generate_world(&WorldConfig { seed: 7, ..config }, c, &|_| {}).unwrap();
        assert_eq!(sa, sb);
        for f in ["customers.csv", "orders.csv", "events.jsonl", "truth.csv"] {
            assert_eq!(read(a, f), read(b, f), "{f}");
        }
        assert_ne!(read(a, "orders.csv"), read(c, "orders.csv"));
        assert_eq!(sa.customers, 5000);
        assert_eq!(sc.customers, 5000);
        assert!(sa.customer_rows > 5000, "some duplicates are injected");
        assert_eq!(read(a, "truth.csv").lines().count(), sa.customer_rows + 1);
        // Every event line is valid JSON in Segment's shape.
        for line in read(a, "events.jsonl").lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(
                v["type"].is_string() && v["messageId"].is_string() && v["timestamp"].is_string()
            );
        }
    }

    #[test]
    fn segment_shares_add_up_to_one() {
        let total: f64 = SEGMENTS.iter().map(|s| s.share).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
}
