//! Fuzzy c-means: every row belongs to every cluster with a degree in [0, 1] (summing to 1),
//! the fuzzifier m > 1 setting how soft the memberships are (m → 1: k-means).
//!
//! Centres start from a k-means fit (one k-means++ start) with the seed; iterations alternate memberships
//! u_ik = 1 / Σ_j (d_ik / d_ij)^(2/(m−1)) and centres c_k = Σ u_ik^m x_i / Σ u_ik^m until no
//! centre moves more than `tol`. Row chunks are reduced in chunk order: bit-identical results
//! on any number of threads.

use crate::kmeans::{KMeansError, KMeansParams};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use strata_core::FeatureMatrix;

const CHUNK: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum FuzzyError {
    #[error("k = {k} with {n} rows: fuzzy c-means needs 1 ≤ k ≤ rows")]
    BadK { k: usize, n: usize },
    #[error("fuzzifier m = {0}: it must be greater than 1")]
    BadFuzzifier(f64),
    #[error("{0}")]
    Setting(String),
    #[error("initialization: {0}")]
    Init(#[from] KMeansError),
    #[error(transparent)]
    Data(#[from] strata_core::MatrixError),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FuzzyParams {
    pub k: usize,
    /// The fuzzifier (2 is the usual choice).
    pub m: f64,
    pub max_iter: usize,
    /// Stop when no centre moves farther than this.
    pub tol: f64,
    pub seed: u64,
}

impl FuzzyParams {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            m: 2.0,
            max_iter: 300,
            tol: 1e-6,
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FuzzyCMeans {
    pub m: f64,
    pub d: usize,
    /// k × d, row-major.
    pub centres: Vec<f64>,
    /// Σ u^m · d² at the final centres.
    pub objective: f64,
    pub n_iter: usize,
    pub converged: bool,
}

impl FuzzyCMeans {
    pub fn k(&self) -> usize {
        self.centres.len() / self.d.max(1)
    }

    /// Memberships of one row into `out` (k values summing to 1).
    fn row_memberships(&self, x: &[f64], dist2: &mut [f64], out: &mut [f64]) {
        let d = self.d;
        let mut zeros = 0;
        for (t, centre) in dist2.iter_mut().zip(self.centres.chunks_exact(d)) {
            let s: f64 = x.iter().zip(centre).map(|(a, b)| (a - b) * (a - b)).sum();
            *t = s;
            zeros += usize::from(s == 0.0);
        }
        if zeros > 0 {
            // On a centre: full membership there (shared between coinciding centres).
            for (o, &t) in out.iter_mut().zip(dist2.iter()) {
                *o = if t == 0.0 { 1.0 / zeros as f64 } else { 0.0 };
            }
            return;
        }
        // 1 / Σ_j (d²_ik/d²_ij)^(1/(m−1)) = w_k / Σ_j w_j with w_j = (d²_min/d²_j)^(1/(m−1))
        // ∈ (0, 1] (no overflow): k powers per row instead of k².
        let p = 1.0 / (self.m - 1.0);
        let nearest = dist2.iter().copied().fold(f64::INFINITY, f64::min);
        let mut total = 0.0;
        for (o, &dc) in out.iter_mut().zip(dist2.iter()) {
            *o = (nearest / dc).powf(p);
            total += *o;
        }
        out.iter_mut().for_each(|o| *o /= total);
    }

    /// Memberships of every row: n × k.
    pub fn memberships(&self, data: &FeatureMatrix) -> Vec<f64> {
        let (k, d) = (self.k(), self.d);
        let mut out = vec![0.0; data.n_rows() * k];
        data.data()
            .par_chunks(CHUNK * d)
            .zip(out.par_chunks_mut(CHUNK * k))
            .for_each(|(rows, u)| {
                let mut dist2 = vec![0.0; k];
                for (x, ur) in rows.chunks_exact(d).zip(u.chunks_exact_mut(k)) {
                    self.row_memberships(x, &mut dist2, ur);
                }
            });
        out
    }

    /// The cluster of highest membership per row.
    pub fn predict(&self, data: &FeatureMatrix) -> Vec<u32> {
        crate::model::argmax_rows(&self.memberships(data), self.k())
    }

    /// Σ u^m x, Σ u^m and the objective, for the next centres.
    fn sums(&self, data: &FeatureMatrix) -> (Vec<f64>, Vec<f64>, f64) {
        let (k, d) = (self.k(), self.d);
        let parts: Vec<(Vec<f64>, Vec<f64>, f64)> = data
            .data()
            .par_chunks(CHUNK * d)
            .map(|rows| {
                let (mut sx, mut sw, mut obj) = (vec![0.0; k * d], vec![0.0; k], 0.0);
                let (mut dist2, mut u) = (vec![0.0; k], vec![0.0; k]);
                for x in rows.chunks_exact(d) {
                    self.row_memberships(x, &mut dist2, &mut u);
                    for c in 0..k {
                        let w = u[c].powf(self.m);
                        sw[c] += w;
                        obj += w * dist2[c];
                        for (a, v) in sx[c * d..(c + 1) * d].iter_mut().zip(x) {
                            *a += w * v;
                        }
                    }
                }
                (sx, sw, obj)
            })
            .collect();
        parts.into_iter().fold(
            (vec![0.0; k * d], vec![0.0; k], 0.0),
            |(mut ax, mut aw, ao), (bx, bw, bo)| {
                ax.iter_mut().zip(&bx).for_each(|(a, b)| *a += b);
                aw.iter_mut().zip(&bw).for_each(|(a, b)| *a += b);
                (ax, aw, ao + bo)
            },
        )
    }

    pub fn fit(data: &FeatureMatrix, params: &FuzzyParams) -> Result<Self, FuzzyError> {
        let (n, d) = (data.n_rows(), data.n_cols());
        if params.k == 0 || params.k > n {
            return Err(FuzzyError::BadK { k: params.k, n });
        }
        data.check_varying()?;
        if !(params.m.is_finite() && params.m > 1.0) {
            return Err(FuzzyError::BadFuzzifier(params.m));
        }
        if params.max_iter == 0 || params.tol.is_nan() || params.tol < 0.0 {
            return Err(FuzzyError::Setting(
                "max_iter must be at least 1 and tol non-negative".into(),
            ));
        }
        let init = KMeansParams::new(params.k)
            .seed(params.seed)
            .n_init(1)
            .check()
            .map_err(|e| FuzzyError::Setting(e.to_string()))?
            .fit(data)?;
        let mut model = Self {
            m: params.m,
            d,
            centres: init.centroids().to_vec(),
            objective: f64::INFINITY,
            n_iter: 0,
            converged: false,
        };
        for it in 1..=params.max_iter {
            let (sx, sw, _) = model.sums(data);
            let mut shift: f64 = 0.0;
            for c in 0..params.k {
                if sw[c] > 0.0 {
                    for j in 0..d {
                        let v = sx[c * d + j] / sw[c];
                        shift = shift.max((v - model.centres[c * d + j]).abs());
                        model.centres[c * d + j] = v;
                    }
                }
            }
            model.n_iter = it;
            if shift <= params.tol {
                model.converged = true;
                break;
            }
        }
        model.objective = model.sums(data).2;
        Ok(model)
    }
}
