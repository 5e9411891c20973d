//! DBSCAN: density-based clusters of any shape, with noise, and the k-distance curve that
//! suggests `eps`.
//!
//! Definitions as scikit-learn's: a row is a core row when at least `min_samples` rows (itself
//! included) lie within `eps` (inclusive, Euclidean); clusters are the connected components of
//! core rows linked within `eps`; a non-core row within `eps` of a core row is a border row and
//! joins the cluster of its nearest core row (scikit-learn takes whichever cluster reaches it
//! first, which depends on the visiting order); the rest is noise (label −1). Clusters are
//! numbered by their smallest row index, so labels do not depend on the thread count.
//!
//! Neighbourhoods are never stored (scikit-learn keeps them all, the bulk of its memory): one
//! parallel pass counts them to find core rows, a second links core rows with union-find, a
//! third attaches border rows.

use crate::kdtree::KdTree;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_core::{DisjointSets, FeatureMatrix};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DbscanError {
    #[error("eps = {0}: it must be a positive, finite distance")]
    BadEps(f64),
    #[error("min_samples must be at least 1")]
    BadMinSamples,
    #[error(transparent)]
    Data(#[from] strata_core::MatrixError),
}

/// A DBSCAN result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dbscan {
    pub eps: f64,
    pub min_samples: usize,
    /// Cluster per row, −1 for noise.
    pub labels: Vec<i32>,
    pub core: Vec<bool>,
    pub clusters: usize,
    pub noise: usize,
}

impl Dbscan {
    pub fn fit(data: &FeatureMatrix, eps: f64, min_samples: usize) -> Result<Self, DbscanError> {
        if !(eps.is_finite() && eps > 0.0) {
            return Err(DbscanError::BadEps(eps));
        }
        if min_samples == 0 {
            return Err(DbscanError::BadMinSamples);
        }
        data.check_varying()?;
        let (n, d) = (data.n_rows(), data.n_cols());
        let tree = KdTree::new(data.data(), d);
        let core: Vec<bool> = (0..n)
            .into_par_iter()
            .map(|i| tree.count_within(data.row(i), eps, min_samples) >= min_samples)
            .collect();
        // Link core rows: a few chunks of core rows each build their own sets (the partition
        // does not depend on how rows are chunked), merged afterwards.
        let core_rows: Vec<usize> = (0..n).filter(|&i| core[i]).collect();
        // One piece per worker: every piece holds sets over all n rows.
        let pieces = rayon::current_num_threads().max(1);
        let chunk = core_rows.len().div_ceil(pieces).max(1);
        let partial: Vec<DisjointSets> = core_rows
            .par_chunks(chunk)
            .map(|rows| {
                let mut s = DisjointSets::new(n);
                for &i in rows {
                    tree.for_each_index_within(data.row(i), eps, |j| {
                        if j < i && core[j] {
                            s.union(i, j);
                        }
                    });
                }
                s
            })
            .collect();
        let mut sets = DisjointSets::new(n);
        for mut p in partial {
            sets.merge(&mut p);
        }
        // Cluster ids in order of each cluster's smallest core row.
        let mut id_of_root = vec![-1i32; n];
        let mut clusters = 0;
        let mut labels = vec![-1i32; n];
        for i in 0..n {
            if core[i] {
                let r = sets.find(i);
                if id_of_root[r] < 0 {
                    id_of_root[r] = clusters;
                    clusters += 1;
                }
                labels[i] = id_of_root[r];
            }
        }
        // Border rows join their nearest core row's cluster (ties: the smaller row).
        let border: Vec<(usize, i32)> = (0..n)
            .into_par_iter()
            .filter(|&i| !core[i])
            .filter_map(|i| {
                let mut best: Option<(f64, usize)> = None;
                tree.for_each_within(data.row(i), eps, |j, d2| {
                    if core[j] && best.is_none_or(|(bd, bj)| d2 < bd || (d2 == bd && j < bj)) {
                        best = Some((d2, j));
                    }
                });
                best.map(|(_, j)| (i, labels[j]))
            })
            .collect();
        for (i, l) in border {
            labels[i] = l;
        }
        let noise = labels.iter().filter(|&&l| l < 0).count();
        Ok(Self {
            eps,
            min_samples,
            labels,
            core,
            clusters: clusters as usize,
            noise,
        })
    }
}

/// The sorted k-distance curve and the `eps` at its knee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KDistance {
    pub k: usize,
    /// Distance of each (sampled) row to its k-th nearest row (itself counted first), largest
    /// first — the usual k-distance plot.
    pub distances: Vec<f64>,
    /// The distance at the knee of the curve: a row whose k-distance is at most this is a
    /// core row when `eps` is set to it and `min_samples = k`.
    pub suggested_eps: f64,
}

/// k-distances of up to `sample` rows (a seeded sample when there are more) against all rows.
pub fn k_distance(
    data: &FeatureMatrix,
    k: usize,
    sample: usize,
    seed: u64,
) -> Result<KDistance, DbscanError> {
    use rand::SeedableRng;
    if k == 0 {
        return Err(DbscanError::BadMinSamples);
    }
    let n = data.n_rows();
    let tree = KdTree::new(data.data(), data.n_cols());
    let rows: Vec<usize> = if n > sample {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut idx = rand::seq::index::sample(&mut rng, n, sample).into_vec();
        idx.sort_unstable();
        idx
    } else {
        (0..n).collect()
    };
    let mut distances: Vec<f64> = rows
        .par_iter()
        .filter_map(|&i| tree.kth_distance(data.row(i), k))
        .collect();
    distances.sort_by(|a, b| b.total_cmp(a));
    let xs: Vec<f64> = (0..distances.len()).map(|i| i as f64).collect();
    let knee = crate::knee_point(&xs, &distances).unwrap_or(0);
    let suggested_eps = distances.get(knee).copied().unwrap_or(0.0);
    Ok(KDistance {
        k,
        distances,
        suggested_eps,
    })
}
