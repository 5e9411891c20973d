//! k-prototypes (Huang 1997) for mixed data: numeric features (squared Euclidean distance to
//! the cluster mean) and categorical features (a mismatch with the cluster's most frequent
//! value costs γ). Seeded restarts from k distinct random rows; the run with the lowest cost
//! wins. Ties between modes go to the smaller code, between clusters to the smaller index, so
//! results are deterministic.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_core::FeatureMatrix;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KPrototypesError {
    #[error("k = {k} with {n} rows: k-prototypes needs 1 ≤ k ≤ rows")]
    BadK { k: usize, n: usize },
    #[error("{0}")]
    Setting(String),
    #[error(transparent)]
    Data(#[from] strata_core::MatrixError),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct KPrototypesParams {
    pub k: usize,
    /// Weight of one categorical mismatch; `None`: half the mean standard deviation of the
    /// numeric features (Huang's suggestion), or 1 without numeric features.
    pub gamma: Option<f64>,
    pub n_init: usize,
    pub max_iter: usize,
    pub seed: u64,
}

impl KPrototypesParams {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            gamma: None,
            n_init: 5,
            max_iter: 100,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KPrototypes {
    pub k_clusters: usize,
    pub gamma: f64,
    /// k × numeric features.
    pub means: Vec<f64>,
    /// k × categorical features.
    pub modes: Vec<u32>,
    /// The training rows' clusters (not kept in saved models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<u32>,
    pub cost: f64,
    pub n_iter: usize,
}

struct Data<'a> {
    x: &'a [f64],
    d: usize,
    cats: &'a [u32],
    m: usize,
    gamma: f64,
}

impl Data<'_> {
    fn cost(&self, i: usize, c: usize, means: &[f64], modes: &[u32]) -> f64 {
        let (d, m) = (self.d, self.m);
        let num: f64 = self.x[i * d..(i + 1) * d]
            .iter()
            .zip(&means[c * d..(c + 1) * d])
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        let mismatches = self.cats[i * m..(i + 1) * m]
            .iter()
            .zip(&modes[c * m..(c + 1) * m])
            .filter(|(a, b)| a != b)
            .count();
        num + self.gamma * mismatches as f64
    }

    /// Best cluster per row and the total cost.
    fn assign(&self, k: usize, means: &[f64], modes: &[u32], n: usize) -> (Vec<u32>, f64) {
        let per_row: Vec<(u32, f64)> = (0..n)
            .into_par_iter()
            .map(|i| {
                (0..k)
                    .map(|c| (c as u32, self.cost(i, c, means, modes)))
                    .fold((0, f64::INFINITY), |b, x| if x.1 < b.1 { x } else { b })
            })
            .collect();
        let cost = per_row.iter().map(|r| r.1).sum();
        (per_row.into_iter().map(|r| r.0).collect(), cost)
    }

    /// Means and modes of the clusters (an empty cluster keeps its prototype).
    fn update(&self, k: usize, labels: &[u32], means: &mut [f64], modes: &mut [u32]) {
        let (d, m) = (self.d, self.m);
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        let mut freq: Vec<std::collections::BTreeMap<u32, usize>> =
            vec![std::collections::BTreeMap::new(); k * m];
        for (i, &l) in labels.iter().enumerate() {
            let c = l as usize;
            counts[c] += 1;
            for (s, v) in sums[c * d..(c + 1) * d]
                .iter_mut()
                .zip(&self.x[i * d..(i + 1) * d])
            {
                *s += v;
            }
            for (j, &v) in self.cats[i * m..(i + 1) * m].iter().enumerate() {
                *freq[c * m + j].entry(v).or_default() += 1;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                continue;
            }
            for j in 0..d {
                means[c * d + j] = sums[c * d + j] / counts[c] as f64;
            }
            for j in 0..m {
                // Most frequent value; the BTreeMap's order makes the smaller code win ties.
                if let Some((&v, _)) =
                    freq[c * m + j]
                        .iter()
                        .fold(None, |b: Option<(&u32, &usize)>, x| match b {
                            Some(bb) if bb.1 >= x.1 => Some(bb),
                            _ => Some(x),
                        })
                {
                    modes[c * m + j] = v;
                }
            }
        }
    }
}

impl KPrototypes {
    pub fn k(&self) -> usize {
        self.k_clusters
    }

    /// The cheapest prototype of each row (`codes` row-major like `fit`'s `categorical`; a
    /// code no prototype has, such as an unseen category, mismatches every mode).
    pub fn predict(&self, numeric: &FeatureMatrix, codes: &[u32]) -> Vec<u32> {
        let n = numeric.n_rows();
        let data = Data {
            x: numeric.data(),
            d: numeric.n_cols(),
            cats: codes,
            m: codes.len().checked_div(n).unwrap_or(0),
            gamma: self.gamma,
        };
        data.assign(self.k_clusters, &self.means, &self.modes, n).0
    }

    /// `numeric`: rows × numeric features; `categorical`: the same rows' category codes,
    /// row-major with `categorical.len() / rows` features.
    pub fn fit(
        numeric: &FeatureMatrix,
        categorical: &[u32],
        params: &KPrototypesParams,
    ) -> Result<Self, KPrototypesError> {
        let (n, d) = (numeric.n_rows(), numeric.n_cols());
        if params.k == 0 || params.k > n {
            return Err(KPrototypesError::BadK { k: params.k, n });
        }
        numeric.check_varying()?;
        if !categorical.len().is_multiple_of(n) {
            return Err(KPrototypesError::Setting(format!(
                "{} category codes are not a whole number of rows of {n}",
                categorical.len()
            )));
        }
        if params.n_init == 0 || params.max_iter == 0 {
            return Err(KPrototypesError::Setting(
                "n_init and max_iter must be at least 1".into(),
            ));
        }
        let m = categorical.len() / n;
        let gamma = match params.gamma {
            Some(g) if g.is_finite() && g >= 0.0 => g,
            Some(g) => {
                return Err(KPrototypesError::Setting(format!(
                    "gamma = {g}: it must be a finite number ≥ 0"
                )));
            }
            None if d > 0 => {
                let sd: f64 = (0..d)
                    .map(|j| {
                        let mean = numeric.column(j).sum::<f64>() / n as f64;
                        (numeric.column(j).map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64)
                            .sqrt()
                    })
                    .sum::<f64>()
                    / d as f64;
                0.5 * sd
            }
            None => 1.0,
        };
        let data = Data {
            x: numeric.data(),
            d,
            cats: categorical,
            m,
            gamma,
        };
        let k = params.k;
        let mut best: Option<Self> = None;
        for run in 0..params.n_init {
            let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
            rng.set_stream(run as u64);
            let mut rows = rand::seq::index::sample(&mut rng, n, k).into_vec();
            rows.sort_unstable();
            let mut means: Vec<f64> = rows.iter().flat_map(|&i| numeric.row(i).to_vec()).collect();
            let mut modes: Vec<u32> = rows
                .iter()
                .flat_map(|&i| categorical[i * m..(i + 1) * m].to_vec())
                .collect();
            let (mut labels, mut cost) = data.assign(k, &means, &modes, n);
            let mut n_iter = 0;
            for _ in 0..params.max_iter {
                n_iter += 1;
                data.update(k, &labels, &mut means, &mut modes);
                let (next, next_cost) = data.assign(k, &means, &modes, n);
                let changed = next != labels;
                labels = next;
                cost = next_cost;
                if !changed {
                    break;
                }
            }
            if best.as_ref().is_none_or(|b| cost < b.cost) {
                best = Some(Self {
                    k_clusters: k,
                    gamma,
                    means,
                    modes,
                    labels,
                    cost,
                    n_iter,
                });
            }
        }
        best.ok_or(KPrototypesError::BadK { k, n })
    }
}
