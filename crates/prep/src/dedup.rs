//! Record linkage inside one table: exact keys, then blocked fuzzy matching scored the
//! Fellegi-Sunter way, then connected components.
//!
//! Each compared pair gets a level per comparison (exact, similar, different, or missing when
//! either side has no value). Under conditional independence a pair's Bayes factor is the
//! product over comparisons of m(level) / u(level), where m is the level's probability among
//! true matches and u among non-matches. u is measured on random record pairs (almost all
//! non-matches); m and the match share λ among compared pairs are estimated by EM over the
//! compared pairs' level patterns. A pair is merged when its posterior match probability
//! λ·Πm / (λ·Πm + (1−λ)·Πu) reaches the threshold. Merged pairs and exact-key groups are
//! joined into clusters with union-find; every edge is kept as the merge's explanation.

use crate::rules::{ComparisonPlan, DedupPlan, KeyPart, Method, Transform};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// One field's values for the records being matched.
#[derive(Debug, Clone)]
pub(crate) enum Col {
    Text(Vec<Option<String>>),
    Num(Vec<Option<f64>>),
    /// µs since the epoch.
    Time(Vec<Option<i64>>),
}

impl Col {
    /// The value as shown in explanations.
    pub(crate) fn show(&self, i: usize) -> Option<String> {
        match self {
            Self::Text(v) => v[i].clone(),
            Self::Num(v) => v[i].map(|x| x.to_string()),
            Self::Time(v) => v[i].map(|m| {
                chrono::DateTime::from_timestamp_micros(m)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|| m.to_string())
            }),
        }
    }
    fn key(&self, i: usize) -> Option<String> {
        match self {
            Self::Text(v) => v[i].clone(),
            Self::Num(v) => v[i].map(|x| x.to_bits().to_string()),
            Self::Time(v) => v[i].map(|x| x.to_string()),
        }
    }
}

/// Agreement level of one comparison on one pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Exact = 0,
    Similar = 1,
    /// Close but short of similar (e.g. a name with two typos): kept apart from different
    /// so that truly different values weigh as much as the data says.
    Partial = 2,
    Different = 3,
    Missing = 7,
}

/// Agreement levels with probabilities: exact, similar, partial, different.
pub(crate) const LEVELS: usize = 4;
/// Bits per comparison in a pattern.
const BITS: usize = 3;
/// A pair's levels, `BITS` per comparison.
type Pattern = u64;

impl Level {
    fn from_bits(b: u8) -> Self {
        match b {
            0 => Self::Exact,
            1 => Self::Similar,
            2 => Self::Partial,
            3 => Self::Different,
            _ => Self::Missing,
        }
    }
    fn graded(sim: f64, similar: f64, partial: f64) -> Self {
        if sim >= similar {
            Self::Similar
        } else if sim >= partial {
            Self::Partial
        } else {
            Self::Different
        }
    }
}

/// The evidence one comparison gave for a merged pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldEvidence {
    pub comparison: String,
    pub level: Level,
    pub a: Option<String>,
    pub b: Option<String>,
    /// log2(m / u) of the level: positive for agreement, negative for disagreement; none for
    /// exact-key merges (which need no weighing).
    pub weight: Option<f64>,
}

/// Why two records were joined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeEdge {
    /// Row positions in the table as it entered deduplication.
    #[serde(skip)]
    pub a: usize,
    #[serde(skip)]
    pub b: usize,
    pub a_id: String,
    pub b_id: String,
    /// `exact:<key>` or `fuzzy`.
    pub rule: String,
    /// Posterior match probability (fuzzy edges).
    pub probability: Option<f64>,
    /// Total match weight, log2 of the Bayes factor (fuzzy edges).
    pub weight: Option<f64>,
    pub evidence: Vec<FieldEvidence>,
}

/// A group of records found to be one entity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MergeCluster {
    pub survivor: String,
    pub merged: Vec<String>,
    pub edges: Vec<MergeEdge>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparisonParams {
    pub comparison: String,
    /// P(level | match) for [exact, similar, partial, different].
    pub m: [f64; LEVELS],
    /// P(level | non-match) for [exact, similar, partial, different].
    pub u: [f64; LEVELS],
}

/// What deduplication did, for the quality report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DedupReport {
    pub records: u64,
    pub exact_edges: u64,
    pub blocks: u64,
    /// Blocks over `max_block` records, not compared.
    pub blocks_skipped: u64,
    pub records_in_skipped_blocks: u64,
    pub pairs_compared: u64,
    pub pairs_matched: u64,
    /// Matched pairs not linked because a pair across the two clusters they would join
    /// scores below the threshold.
    pub links_refused: u64,
    pub clusters: u64,
    pub records_merged: u64,
    pub threshold: f64,
    /// Estimated share of matches among compared pairs.
    pub lambda: Option<f64>,
    pub em_iterations: u32,
    pub em_converged: bool,
    pub parameters: Vec<ComparisonParams>,
    pub seconds: f64,
}

/// The outcome: per row the row it merges into (itself for survivors), the clusters with
/// their explanations, and the report.
#[derive(Debug, Clone)]
pub(crate) struct DedupOutcome {
    pub survivor_of: Vec<usize>,
    pub clusters: Vec<MergeCluster>,
    pub report: DedupReport,
}

/// Pairs to score (i, j, level pattern) and training pattern counts, from some blocks.
type BlockPairs = (Vec<(u32, u32, Pattern)>, HashMap<Pattern, u64>);

/// American Soundex: first letter and three digits (`Robert` → R163).
pub(crate) fn soundex(s: &str) -> Option<String> {
    let letters: Vec<char> = s
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let first = *letters.first()?;
    let code = |c: char| match c {
        'B' | 'F' | 'P' | 'V' => '1',
        'C' | 'G' | 'J' | 'K' | 'Q' | 'S' | 'X' | 'Z' => '2',
        'D' | 'T' => '3',
        'L' => '4',
        'M' | 'N' => '5',
        'R' => '6',
        'H' | 'W' => '-', // transparent: letters on both sides with one code count once
        _ => '0',         // vowels separate equal codes
    };
    let mut out = String::from(first);
    let mut last = code(first);
    for &c in &letters[1..] {
        let d = code(c);
        if d == '-' {
            continue;
        }
        if d != '0' && d != last {
            out.push(d);
            if out.len() == 4 {
                break;
            }
        }
        last = d;
    }
    while out.len() < 4 {
        out.push('0');
    }
    Some(out)
}

fn transform(t: &Transform, v: &str) -> Option<String> {
    match t {
        Transform::Value => Some(v.to_string()),
        Transform::Soundex => soundex(v),
        Transform::Prefix(n) => Some(v.chars().take(*n).collect()),
    }
}

fn part_key(part: &KeyPart, cols: &HashMap<String, Col>, i: usize) -> Option<String> {
    let mut vals: Vec<String> = Vec::with_capacity(part.fields.len());
    for f in &part.fields {
        let v = cols.get(f)?.key(i)?;
        vals.push(transform(&part.transform, &v)?);
    }
    // Two fields are taken in either order: ("Lee", "Ann") and ("Ann", "Lee") share a key.
    vals.sort();
    Some(vals.join("\u{1f}"))
}

fn hash_key(s: &str) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(s)
}

fn text_sim(method: Method, a: &str, b: &str) -> f64 {
    match method {
        Method::Levenshtein => strsim::normalized_levenshtein(a, b),
        _ => strsim::jaro_winkler(a, b),
    }
}

fn compare(c: &ComparisonPlan, cols: &[&Col], i: usize, j: usize) -> Level {
    match (c.method, cols) {
        (Method::JaroWinkler | Method::Levenshtein, [Col::Text(x)]) => match (&x[i], &x[j]) {
            (Some(a), Some(b)) if a == b => Level::Exact,
            (Some(a), Some(b)) => Level::graded(text_sim(c.method, a, b), c.similar, c.partial),
            _ => Level::Missing,
        },
        (Method::JaroWinkler | Method::Levenshtein, [Col::Text(x), Col::Text(y)]) => {
            let (a1, a2, b1, b2) = (&x[i], &y[i], &x[j], &y[j]);
            match (a1, a2, b1, b2) {
                (Some(a1), Some(a2), Some(b1), Some(b2)) => {
                    if (a1 == b1 && a2 == b2) || (a1 == b2 && a2 == b1) {
                        return Level::Exact;
                    }
                    let s = |p: &str, q: &str| text_sim(c.method, p, q);
                    let straight = s(a1, b1).min(s(a2, b2));
                    let swapped = s(a1, b2).min(s(a2, b1));
                    Level::graded(straight.max(swapped), c.similar, c.partial)
                }
                // With a part missing, compare what both have, in place.
                _ => {
                    let pairs = [(a1, b1), (a2, b2)];
                    let mut seen = false;
                    let mut worst = Level::Exact;
                    for (p, q) in pairs {
                        if let (Some(p), Some(q)) = (p, q) {
                            seen = true;
                            let l = if p == q {
                                Level::Exact
                            } else {
                                Level::graded(text_sim(c.method, p, q), c.similar, c.partial)
                            };
                            if l != Level::Missing && l as u8 > worst as u8 {
                                worst = l;
                            }
                        }
                    }
                    if seen { worst } else { Level::Missing }
                }
            }
        }
        (Method::Date, [Col::Time(x)]) => match (x[i], x[j]) {
            (Some(a), Some(b)) => {
                let days = (a - b).unsigned_abs() as f64 / 86_400_000_000.0;
                if a == b {
                    Level::Exact
                } else if days <= c.within {
                    Level::Similar
                } else {
                    Level::Different
                }
            }
            _ => Level::Missing,
        },
        (Method::Numeric, [Col::Num(x)]) => match (x[i], x[j]) {
            (Some(a), Some(b)) if a == b => Level::Exact,
            (Some(a), Some(b)) if (a - b).abs() <= c.within => Level::Similar,
            (Some(_), Some(_)) => Level::Different,
            _ => Level::Missing,
        },
        // Exact on anything, and exact comparison of a field pair in either order.
        (_, cols) => {
            let vals = |r: usize| -> Option<Vec<String>> {
                let mut v = cols.iter().map(|c| c.key(r)).collect::<Option<Vec<_>>>()?;
                v.sort();
                Some(v)
            };
            match (vals(i), vals(j)) {
                (Some(a), Some(b)) if a == b => Level::Exact,
                (Some(_), Some(_)) => Level::Different,
                _ => Level::Missing,
            }
        }
    }
}

fn pattern(plan: &DedupPlan, cols: &[Vec<&Col>], i: usize, j: usize) -> Pattern {
    let mut p: Pattern = 0;
    for (k, c) in plan.compare.iter().enumerate() {
        p |= (compare(c, &cols[k], i, j) as Pattern) << (BITS * k);
    }
    p
}

/// Posterior match probability and weight of a level pattern.
pub fn match_probability_table(
    pattern_levels: &[u8],
    m: &[[f64; LEVELS]],
    u: &[[f64; LEVELS]],
    lambda: f64,
) -> (f64, f64) {
    let mut log2_bf = 0.0;
    for (k, &l) in pattern_levels.iter().enumerate() {
        if (l as usize) < LEVELS {
            log2_bf += (m[k][l as usize] / u[k][l as usize]).log2();
        }
    }
    let prior = (lambda / (1.0 - lambda)).log2();
    let posterior_log2_odds = prior + log2_bf;
    let p = 1.0 / (1.0 + (-posterior_log2_odds).exp2());
    (p, log2_bf)
}

fn levels_of(p: Pattern, k: usize) -> Vec<u8> {
    (0..k).map(|c| ((p >> (BITS * c)) & 7) as u8).collect()
}

/// Floors probabilities so no level has probability zero (a single unseen agreement
/// would otherwise be infinitely strong evidence), then renormalizes.
fn smooth(mut p: [f64; LEVELS]) -> [f64; LEVELS] {
    for x in &mut p {
        *x = x.max(1e-6);
    }
    let s: f64 = p.iter().sum();
    p.map(|x| x / s)
}

struct Em {
    m: Vec<[f64; LEVELS]>,
    lambda: f64,
    iterations: u32,
    converged: bool,
}

/// EM for m and λ with u fixed, over pattern counts.
fn em(patterns: &[(Pattern, u64)], u: &[[f64; LEVELS]], fixed_m: &[Option<[f64; LEVELS]>]) -> Em {
    let k = u.len();
    let mut m: Vec<[f64; LEVELS]> = fixed_m
        .iter()
        .map(|f| f.unwrap_or([0.8, 0.1, 0.05, 0.05]))
        .collect();
    let mut lambda = 0.1;
    let total: u64 = patterns.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return Em {
            m,
            lambda,
            iterations: 0,
            converged: true,
        };
    }
    let levels: Vec<Vec<u8>> = patterns.iter().map(|(p, _)| levels_of(*p, k)).collect();
    for it in 1..=500 {
        let mut num = vec![[0.0f64; LEVELS]; k];
        let mut den = vec![0.0f64; k];
        let mut matches = 0.0;
        for ((_, count), lv) in patterns.iter().zip(&levels) {
            let (mut pm, mut pu) = (lambda, 1.0 - lambda);
            for (c, &l) in lv.iter().enumerate() {
                if (l as usize) < LEVELS {
                    pm *= m[c][l as usize];
                    pu *= u[c][l as usize];
                }
            }
            let g = if pm + pu > 0.0 { pm / (pm + pu) } else { 0.0 };
            let w = g * *count as f64;
            matches += w;
            for (c, &l) in lv.iter().enumerate() {
                if (l as usize) < LEVELS {
                    num[c][l as usize] += w;
                    den[c] += w;
                }
            }
        }
        let new_lambda = (matches / total as f64).clamp(1e-9, 1.0 - 1e-9);
        let mut delta = (new_lambda - lambda).abs();
        for c in 0..k {
            if fixed_m[c].is_some() || den[c] <= 0.0 {
                continue;
            }
            let new = smooth(num[c].map(|x| x / den[c]));
            for l in 0..LEVELS {
                delta = delta.max((new[l] - m[c][l]).abs());
            }
            m[c] = new;
        }
        lambda = new_lambda;
        if delta < 1e-9 {
            return Em {
                m,
                lambda,
                iterations: it,
                converged: true,
            };
        }
    }
    Em {
        m,
        lambda,
        iterations: 500,
        converged: false,
    }
}

/// Finds the duplicates among `n` records. `cols` holds every field the plan names (text
/// already lower-cased where case must not matter); `ids` names rows in explanations.
pub(crate) fn deduplicate(
    plan: &DedupPlan,
    cols: &HashMap<String, Col>,
    ids: &[String],
    n: usize,
) -> DedupOutcome {
    let started = std::time::Instant::now();
    let mut uf = strata_core::DisjointSets::new(n);
    let mut edges: Vec<MergeEdge> = Vec::new();
    let mut report = DedupReport {
        records: n as u64,
        threshold: plan.threshold,
        ..DedupReport::default()
    };

    // 1. Exact keys.
    for key in &plan.exact {
        let name = key.join("+");
        let mut first: HashMap<String, usize, foldhash::fast::FixedState> =
            HashMap::with_hasher(foldhash::fast::FixedState::default());
        for i in 0..n {
            let mut parts = Vec::with_capacity(key.len());
            for f in key {
                match cols.get(f).and_then(|c| c.key(i)) {
                    Some(v) if !v.is_empty() => parts.push(v),
                    _ => break,
                }
            }
            if parts.len() != key.len() {
                continue;
            }
            let k = parts.join("\u{1f}");
            match first.get(&k) {
                Some(&f0) => {
                    if uf.union(f0, i) {
                        report.exact_edges += 1;
                        edges.push(MergeEdge {
                            a: f0,
                            b: i,
                            a_id: ids[f0].clone(),
                            b_id: ids[i].clone(),
                            rule: format!("exact:{name}"),
                            probability: None,
                            weight: None,
                            evidence: key
                                .iter()
                                .map(|f| FieldEvidence {
                                    comparison: f.clone(),
                                    level: Level::Exact,
                                    a: cols.get(f).and_then(|c| c.show(f0)),
                                    b: cols.get(f).and_then(|c| c.show(i)),
                                    weight: None,
                                })
                                .collect(),
                        });
                    }
                }
                None => {
                    first.insert(k, i);
                }
            }
        }
    }

    // 2. Blocking and comparison.
    if !plan.blocking.is_empty() {
        let cmp_cols: Vec<Vec<&Col>> = plan
            .compare
            .iter()
            .map(|c| c.fields.iter().filter_map(|f| cols.get(f)).collect())
            .collect();
        // keys[r][i]: the hash of row i's key under rule r, None when the row has no key or
        // sits in a block too large to compare.
        let mut keys: Vec<Vec<Option<u64>>> = Vec::new();
        let mut blocks: Vec<Vec<Vec<u32>>> = Vec::new();
        for rule in &plan.blocking {
            let mut k: Vec<Option<u64>> = (0..n)
                .into_par_iter()
                .map(|i| {
                    let parts: Option<Vec<String>> =
                        rule.iter().map(|p| part_key(p, cols, i)).collect();
                    parts.map(|p| hash_key(&p.join("\u{1e}")))
                })
                .collect();
            let mut order: Vec<(u64, u32)> = k
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.map(|h| (h, i as u32)))
                .collect();
            order.par_sort_unstable();
            let mut rule_blocks = Vec::new();
            for group in order.chunk_by(|a, b| a.0 == b.0) {
                if group.len() < 2 {
                    continue;
                }
                if group.len() > plan.max_block {
                    report.blocks_skipped += 1;
                    report.records_in_skipped_blocks += group.len() as u64;
                    for &(_, i) in group {
                        k[i as usize] = None;
                    }
                    continue;
                }
                rule_blocks.push(group.iter().map(|&(_, i)| i).collect::<Vec<u32>>());
            }
            report.blocks += rule_blocks.len() as u64;
            keys.push(k);
            blocks.push(rule_blocks);
        }
        // Within a block, the blocking fields agree by construction, so their agreement says
        // nothing about matching there: for EM training, those comparisons count as missing
        // on the pairs that rule produced. Training sees every pair of every rule's blocks
        // (a pair found by an earlier rule too is not a biased leftover); scoring compares
        // each pair once, under the first rule that finds it.
        let masks: Vec<Pattern> = plan
            .blocking
            .iter()
            .map(|rule| {
                let fields: Vec<&String> = rule.iter().flat_map(|p| &p.fields).collect();
                plan.compare
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.fields.iter().any(|f| fields.contains(&f)))
                    .fold(0, |m, (k, _)| m | (7 << (BITS * k)))
            })
            .collect();
        let mut pairs: Vec<(u32, u32, Pattern)> = Vec::new();
        let mut training: HashMap<Pattern, u64> = HashMap::new();
        for (r, rule_blocks) in blocks.iter().enumerate() {
            let earlier = &keys[..r];
            let mask = masks[r];
            let found: Vec<BlockPairs> = rule_blocks
                .par_chunks(64)
                .map(|chunk| {
                    let mut out = Vec::new();
                    let mut counts: HashMap<Pattern, u64> = HashMap::new();
                    for block in chunk {
                        for (x, &i) in block.iter().enumerate() {
                            for &j in &block[x + 1..] {
                                let (i, j) = (i as usize, j as usize);
                                let p = pattern(plan, &cmp_cols, i, j);
                                *counts.entry(p | mask).or_insert(0) += 1;
                                if !earlier.iter().any(|k| k[i].is_some() && k[i] == k[j]) {
                                    out.push((i as u32, j as u32, p));
                                }
                            }
                        }
                    }
                    (out, counts)
                })
                .collect();
            for (out, counts) in found {
                pairs.extend(out);
                for (p, c) in counts {
                    *training.entry(p).or_insert(0) += c;
                }
            }
        }
        report.pairs_compared = pairs.len() as u64;

        // u from random pairs, unless given.
        let kc = plan.compare.len();
        let mut u_counts = vec![[0u64; LEVELS]; kc];
        if n >= 2 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed);
            let sample: Vec<(usize, usize)> = (0..plan.u_sample_pairs)
                .filter_map(|_| {
                    let i = rng.random_range(0..n);
                    let j = rng.random_range(0..n);
                    (i != j).then_some((i, j))
                })
                .collect();
            let pats: Vec<Pattern> = sample
                .par_iter()
                .map(|&(i, j)| pattern(plan, &cmp_cols, i, j))
                .collect();
            for p in pats {
                for (c, l) in levels_of(p, kc).into_iter().enumerate() {
                    if (l as usize) < LEVELS {
                        u_counts[c][l as usize] += 1;
                    }
                }
            }
        }
        let u: Vec<[f64; LEVELS]> = plan
            .compare
            .iter()
            .zip(&u_counts)
            .map(|(c, counts)| {
                c.u.unwrap_or_else(|| {
                    let total: u64 = counts.iter().sum();
                    // Add-one smoothing: a level never seen among random pairs is rare, not
                    // impossible.
                    smooth(counts.map(|x| (x as f64 + 1.0) / (total as f64 + LEVELS as f64)))
                })
            })
            .collect();
        let mut patterns: Vec<(Pattern, u64)> = training.into_iter().collect();
        patterns.sort_unstable();
        let fixed_m: Vec<Option<[f64; LEVELS]>> = plan.compare.iter().map(|c| c.m).collect();
        let fit = em(&patterns, &u, &fixed_m);
        report.lambda = Some(fit.lambda);
        report.em_iterations = fit.iterations;
        report.em_converged = fit.converged;
        report.parameters = plan
            .compare
            .iter()
            .zip(fit.m.iter().zip(&u))
            .map(|(c, (m, u))| ComparisonParams {
                comparison: c.name.clone(),
                m: *m,
                u: *u,
            })
            .collect();
        let mut distinct: Vec<Pattern> = pairs.iter().map(|p| p.2).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let scored: HashMap<Pattern, (f64, f64)> = distinct
            .iter()
            .map(|p| {
                (
                    *p,
                    match_probability_table(&levels_of(*p, kc), &fit.m, &u, fit.lambda),
                )
            })
            .collect();
        // Strongest evidence first. Two clusters are joined only if every pair across them
        // scores at least the threshold too (complete linkage): a record whose phone and
        // email are missing can look like two different people, but it cannot join both.
        let mut matched: Vec<(f64, u32, u32, Pattern, f64)> = pairs
            .iter()
            .filter_map(|&(i, j, p)| {
                let &(prob, weight) = scored.get(&p)?;
                (prob >= plan.threshold).then_some((weight, i, j, p, prob))
            })
            .collect();
        matched.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        report.pairs_matched = matched.len() as u64;
        // Clusters of the exact-key phase (the root is the earliest row, so it comes first).
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..n {
            let r = uf.find(i);
            if r != i {
                members.entry(r).or_insert_with(|| vec![r]).push(i);
            }
        }
        let model_probability = |a: usize, b: usize| {
            match_probability_table(
                &levels_of(pattern(plan, &cmp_cols, a, b), kc),
                &fit.m,
                &u,
                fit.lambda,
            )
            .0
        };
        for (weight, i, j, p, prob) in matched {
            let (i, j) = (i as usize, j as usize);
            let (ri, rj) = (uf.find(i), uf.find(j));
            if ri == rj {
                continue;
            }
            let a = members.get(&ri).cloned().unwrap_or_else(|| vec![ri]);
            let b = members.get(&rj).cloned().unwrap_or_else(|| vec![rj]);
            // Very large clusters (exact keys gone wild) are not re-checked pair by pair.
            if a.len() * b.len() <= 10_000
                && a.iter().any(|&x| {
                    b.iter()
                        .any(|&y| (x, y) != (i, j) && model_probability(x, y) < plan.threshold)
                })
            {
                report.links_refused += 1;
                continue;
            }
            uf.union(i, j);
            let root = uf.find(i);
            members.remove(&ri);
            members.remove(&rj);
            let mut joined = a;
            joined.extend(b);
            members.insert(root, joined);
            let lv = levels_of(p, kc);
            edges.push(MergeEdge {
                a: i,
                b: j,
                a_id: ids[i].clone(),
                b_id: ids[j].clone(),
                rule: "fuzzy".into(),
                probability: Some(prob),
                weight: Some(weight),
                evidence: plan
                    .compare
                    .iter()
                    .enumerate()
                    .map(|(c, cmp)| {
                        let l = lv[c];
                        let show = |r: usize| {
                            let v: Vec<String> =
                                cmp_cols[c].iter().filter_map(|col| col.show(r)).collect();
                            (!v.is_empty()).then(|| v.join(" "))
                        };
                        FieldEvidence {
                            comparison: cmp.name.clone(),
                            level: Level::from_bits(l),
                            a: show(i),
                            b: show(j),
                            weight: Some(if (l as usize) < LEVELS {
                                (fit.m[c][l as usize] / u[c][l as usize]).log2()
                            } else {
                                0.0
                            }),
                        }
                    })
                    .collect(),
            });
        }
    }

    // 3. Clusters: the earliest row of each component survives.
    let survivor_of: Vec<usize> = (0..n).map(|i| uf.find(i)).collect();
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> =
        std::collections::BTreeMap::new();
    for (i, &s) in survivor_of.iter().enumerate() {
        if s != i {
            members.entry(s).or_default().push(i);
        }
    }
    let mut cluster_edges: HashMap<usize, Vec<MergeEdge>> = HashMap::new();
    for e in edges {
        cluster_edges.entry(survivor_of[e.a]).or_default().push(e);
    }
    let clusters: Vec<MergeCluster> = members
        .into_iter()
        .map(|(s, merged)| MergeCluster {
            survivor: ids[s].clone(),
            merged: merged.iter().map(|&i| ids[i].clone()).collect(),
            edges: cluster_edges.remove(&s).unwrap_or_default(),
        })
        .collect();
    report.clusters = clusters.len() as u64;
    report.records_merged = clusters.iter().map(|c| c.merged.len() as u64).sum();
    report.seconds = started.elapsed().as_secs_f64();
    DedupOutcome {
        survivor_of,
        clusters,
        report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soundex_codes() {
        for (name, code) in [
            ("Robert", "R163"),
            ("Rupert", "R163"),
            ("Rubin", "R150"),
            ("Ashcraft", "A261"),
            ("Ashcroft", "A261"),
            ("Tymczak", "T522"),
            ("Pfister", "P236"),
            ("Honeyman", "H555"),
            ("Lee", "L000"),
        ] {
            assert_eq!(soundex(name).as_deref(), Some(code), "{name}");
        }
        assert_eq!(soundex("123"), None);
    }

    #[test]
    fn em_separates_matches_from_non_matches() {
        // Two comparisons; matches agree 90% of the time, non-matches 5–10%.
        let u = vec![[0.05, 0.03, 0.02, 0.9], [0.1, 0.05, 0.05, 0.8]];
        let p = |a: u64, b: u64| a | (b << BITS);
        // 1000 matches mostly (exact, exact); 9000 non-matches mostly (different, different).
        let patterns = vec![
            (p(0, 0), 810),
            (p(3, 0), 90),
            (p(0, 3), 90),
            (p(3, 3), 6520),
        ];
        let fit = em(&patterns, &u, &[None, None]);
        assert!(fit.converged);
        assert!(fit.m[0][0] > 0.8 && fit.m[1][0] > 0.8, "{:?}", fit.m);
        let (p_agree, _) = match_probability_table(&[0, 0], &fit.m, &u, fit.lambda);
        let (p_disagree, _) = match_probability_table(&[3, 3], &fit.m, &u, fit.lambda);
        assert!(
            p_agree > 0.95 && p_disagree < 0.01,
            "{p_agree} {p_disagree}"
        );
    }
}
