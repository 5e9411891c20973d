//! The gap statistic (Tibshirani, Walther & Hastie 2001): for each k, how much lower the
//! log within-cluster dispersion is on the data than on uniform reference data over the
//! data's bounding box; the chosen k is the smallest with Gap(k) ≥ Gap(k+1) − s(k+1). Unlike
//! the silhouette it can answer "one cluster" (k = 1).

use crate::kmeans::KMeansParams;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use strata_core::FeatureMatrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Gap {
    pub ks: Vec<usize>,
    /// log W_k on the data.
    pub log_w: Vec<f64>,
    pub gap: Vec<f64>,
    /// s_k = sd of the reference log W_k × √(1 + 1/B).
    pub s: Vec<f64>,
    pub chosen: usize,
    pub references: usize,
}

fn wcss(data: &FeatureMatrix, k: usize, seed: u64, n_init: usize) -> Result<f64, String> {
    Ok(KMeansParams::new(k)
        .seed(seed)
        .n_init(n_init)
        .check()
        .map_err(|e| e.to_string())?
        .fit(data)
        .map_err(|e| e.to_string())?
        .inertia())
}

/// A perfect fit (W = 0) would give −∞; a tiny floor keeps the curve finite.
fn log_of(w: f64) -> f64 {
    w.max(f64::MIN_POSITIVE).ln()
}

/// Gap statistic for k in `k_min..=k_max` with `references` uniform reference sets.
pub fn gap_statistic(
    data: &FeatureMatrix,
    k_min: usize,
    k_max: usize,
    references: usize,
    n_init: usize,
    seed: u64,
) -> Result<Gap, String> {
    let n = data.n_rows();
    if k_min == 0 || k_max < k_min || k_max >= n {
        return Err(format!(
            "the gap statistic needs 1 ≤ k_min ≤ k_max < rows (got {k_min}..={k_max} for {n} rows)"
        ));
    }
    if references < 2 {
        return Err("the gap statistic needs at least 2 reference sets".into());
    }
    let inertias = (k_min..=k_max)
        .map(|k| wcss(data, k, seed, n_init))
        .collect::<Result<Vec<f64>, String>>()?;
    gap_statistic_from(data, k_min, &inertias, references, n_init, seed)
}

/// [`gap_statistic`] from the data's own k-means inertias for k = `k_min`, `k_min` + 1, …
/// (fitted with the same `n_init` and `seed`, as model selection already has them): only
/// the reference sets are fitted here.
pub fn gap_statistic_from(
    data: &FeatureMatrix,
    k_min: usize,
    inertias: &[f64],
    references: usize,
    n_init: usize,
    seed: u64,
) -> Result<Gap, String> {
    let (n, d) = (data.n_rows(), data.n_cols());
    let k_max = (k_min + inertias.len()).saturating_sub(1);
    if k_min == 0 || inertias.is_empty() || k_max >= n {
        return Err(format!(
            "the gap statistic needs 1 ≤ k_min ≤ k_max < rows (got {k_min}..={k_max} for {n} rows)"
        ));
    }
    if references < 2 {
        return Err("the gap statistic needs at least 2 reference sets".into());
    }
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for i in 0..n {
        for (j, &v) in data.row(i).iter().enumerate() {
            lo[j] = lo[j].min(v);
            hi[j] = hi[j].max(v);
        }
    }
    let ks: Vec<usize> = (k_min..=k_max).collect();
    let log_w: Vec<f64> = inertias.iter().map(|&w| log_of(w)).collect();
    // refs[b][i]: log W of reference b at ks[i].
    let mut refs = Vec::with_capacity(references);
    for b in 0..references {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6761_7073);
        rng.set_stream(b as u64);
        let values: Vec<f64> = (0..n * d)
            .map(|t| {
                let j = t % d;
                if hi[j] > lo[j] {
                    rng.random_range(lo[j]..hi[j])
                } else {
                    lo[j]
                }
            })
            .collect();
        let reference = data.with_data(values).map_err(|e| e.to_string())?;
        refs.push(
            ks.iter()
                .map(|&k| wcss(&reference, k, seed.wrapping_add(b as u64), n_init).map(log_of))
                .collect::<Result<Vec<f64>, String>>()?,
        );
    }
    let bf = references as f64;
    let mut gap = Vec::with_capacity(ks.len());
    let mut s = Vec::with_capacity(ks.len());
    for (i, lw) in log_w.iter().enumerate() {
        let mean = refs.iter().map(|r| r[i]).sum::<f64>() / bf;
        let var = refs.iter().map(|r| (r[i] - mean).powi(2)).sum::<f64>() / bf;
        gap.push(mean - lw);
        s.push(var.sqrt() * (1.0 + 1.0 / bf).sqrt());
    }
    let chosen = (0..ks.len().saturating_sub(1))
        .find(|&i| gap[i] >= gap[i + 1] - s[i + 1])
        .map_or(k_max, |i| ks[i]);
    Ok(Gap {
        ks,
        log_w,
        gap,
        s,
        chosen,
        references,
    })
}
