//! Feature scaling: an optional signed log transform for skewed money and counts, then a
//! z-score. Fitted parameters are saved with the model so new customers scale identically.

use serde::{Deserialize, Serialize};
use strata_core::{FeatureMatrix, MatrixError, Transform};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalerKind {
    /// z-score only.
    ZScore,
    /// `sign(x)·ln(1+|x|)` then z-score.
    LogZScore,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaleError {
    #[error("scaler was fitted on {expected} features, got {got}")]
    Width { expected: usize, got: usize },
    #[error(transparent)]
    Matrix(#[from] MatrixError),
}

/// A fitted scaler: per-column transform, mean and standard deviation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub kinds: Vec<ScalerKind>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

impl Scaler {
    /// Fits on `data`; a constant column gets std 1 so it scales to zero, not NaN.
    pub fn fit(data: &FeatureMatrix, kinds: &[ScalerKind]) -> Result<Self, ScaleError> {
        let d = data.n_cols();
        if kinds.len() != d {
            return Err(ScaleError::Width {
                expected: kinds.len(),
                got: d,
            });
        }
        let n = data.n_rows().max(1) as f64;
        let mut mean = vec![0.0; d];
        let mut std = vec![0.0; d];
        for (j, kind) in kinds.iter().enumerate() {
            let pre = |x: f64| {
                if *kind == ScalerKind::LogZScore {
                    signed_log1p(x)
                } else {
                    x
                }
            };
            let m = data.column(j).map(pre).sum::<f64>() / n;
            let var = data.column(j).map(|x| (pre(x) - m).powi(2)).sum::<f64>() / n;
            mean[j] = m;
            std[j] = if var > 1e-24 { var.sqrt() } else { 1.0 };
        }
        Ok(Self {
            kinds: kinds.to_vec(),
            mean,
            std,
        })
    }

    pub fn width(&self) -> usize {
        self.kinds.len()
    }
}

impl Transform for Scaler {
    type Error = ScaleError;

    fn transform(&self, data: &FeatureMatrix) -> Result<FeatureMatrix, ScaleError> {
        let d = self.width();
        if data.n_cols() != d {
            return Err(ScaleError::Width {
                expected: d,
                got: data.n_cols(),
            });
        }
        let out = data
            .data()
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let j = i % d;
                let x = if self.kinds[j] == ScalerKind::LogZScore {
                    signed_log1p(x)
                } else {
                    x
                };
                (x - self.mean[j]) / self.std[j]
            })
            .collect();
        Ok(data.with_data(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_scores_have_zero_mean_unit_variance_and_constants_scale_to_zero() {
        let m = FeatureMatrix::new(
            (0..4).map(|i| i.to_string()).collect(),
            vec!["a".into(), "b".into(), "c".into()],
            vec![1.0, 5.0, 0.0, 2.0, 5.0, 9.0, 3.0, 5.0, 99.0, 4.0, 5.0, -3.0],
        )
        .unwrap();
        let s = Scaler::fit(
            &m,
            &[
                ScalerKind::ZScore,
                ScalerKind::ZScore,
                ScalerKind::LogZScore,
            ],
        )
        .unwrap();
        let t = s.transform(&m).unwrap();
        let a: Vec<f64> = t.column(0).collect();
        assert!(a.iter().sum::<f64>().abs() < 1e-12);
        assert!((a.iter().map(|x| x * x).sum::<f64>() / 4.0 - 1.0).abs() < 1e-12);
        assert!(t.column(1).all(|x| x == 0.0));
        let c: Vec<f64> = t.column(2).collect();
        assert!(
            c.iter().all(|x| x.is_finite()),
            "negative values survive the log"
        );
        assert!(
            c[2] > c[1] && c[1] > c[0] && c[0] > c[3],
            "order is preserved"
        );
    }
}
