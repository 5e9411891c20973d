//! Principal component analysis via the eigendecomposition of the covariance matrix (faer),
//! used for the 2-D projection plot and explained-variance reporting.

use strata_core::FeatureMatrix;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PcaError {
    #[error(
        "PCA needs at least 2 rows and 1 ≤ components ≤ {max} features, got {rows} rows and {components} components"
    )]
    Shape {
        rows: usize,
        components: usize,
        max: usize,
    },
    #[error("eigendecomposition did not converge")]
    NoConvergence,
}

/// A fitted PCA: centred projection onto the top components.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    mean: Vec<f64>,
    /// Row-major `components × d`, unit length, largest variance first.
    components: Vec<f64>,
    explained_variance: Vec<f64>,
    explained_variance_ratio: Vec<f64>,
}

impl Pca {
    pub fn fit(data: &FeatureMatrix, components: usize) -> Result<Self, PcaError> {
        let (n, d) = (data.n_rows(), data.n_cols());
        if n < 2 || components == 0 || components > d {
            return Err(PcaError::Shape {
                rows: n,
                components,
                max: d,
            });
        }
        let mean: Vec<f64> = (0..d)
            .map(|j| data.column(j).sum::<f64>() / n as f64)
            .collect();
        let mut cov = vec![0.0; d * d];
        for i in 0..n {
            let row = data.row(i);
            for a in 0..d {
                let da = row[a] - mean[a];
                for b in a..d {
                    cov[a * d + b] += da * (row[b] - mean[b]);
                }
            }
        }
        for a in 0..d {
            for b in a..d {
                cov[a * d + b] /= (n - 1) as f64;
                cov[b * d + a] = cov[a * d + b];
            }
        }
        let matrix = faer::Mat::<f64>::from_fn(d, d, |i, j| cov[i * d + j]);
        let eigen = matrix
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|_| PcaError::NoConvergence)?;
        let values = eigen.S().column_vector();
        let vectors = eigen.U();
        let total: f64 = (0..d).map(|i| values[i].max(0.0)).sum();
        // faer sorts eigenvalues ascending; take them from the top.
        let mut comps = Vec::with_capacity(components * d);
        let mut explained = Vec::with_capacity(components);
        for c in 0..components {
            let col = d - 1 - c;
            let mut v: Vec<f64> = (0..d).map(|i| vectors[(i, col)]).collect();
            // Fix the sign so the result does not depend on the solver: largest |entry| > 0.
            let pivot = v
                .iter()
                .copied()
                .fold(0.0_f64, |m, x| if x.abs() > m.abs() { x } else { m });
            if pivot < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
            comps.extend(v);
            explained.push(values[col].max(0.0));
        }
        let ratio = explained
            .iter()
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect();
        Ok(Self {
            mean,
            components: comps,
            explained_variance: explained,
            explained_variance_ratio: ratio,
        })
    }

    pub fn n_components(&self) -> usize {
        self.explained_variance.len()
    }

    pub fn explained_variance(&self) -> &[f64] {
        &self.explained_variance
    }

    pub fn explained_variance_ratio(&self) -> &[f64] {
        &self.explained_variance_ratio
    }

    /// Projects one row onto the components.
    pub fn project(&self, row: &[f64]) -> Vec<f64> {
        let d = self.mean.len();
        self.components
            .chunks_exact(d)
            .map(|c| {
                c.iter()
                    .zip(row)
                    .zip(&self.mean)
                    .map(|((w, x), m)| w * (x - m))
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_direction_of_largest_variance() {
        // Points along y = x with a little noise across it.
        let rows: Vec<[f64; 2]> = (0..50)
            .map(|i| {
                let t = i as f64;
                [t + if i % 2 == 0 { 0.1 } else { -0.1 }, t]
            })
            .collect();
        let m = FeatureMatrix::new(
            (0..50).map(|i| i.to_string()).collect(),
            vec!["x".into(), "y".into()],
            rows.iter().flatten().copied().collect(),
        )
        .unwrap();
        let pca = Pca::fit(&m, 2).unwrap();
        let first = &pca.components[..2];
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!(
            (first[0] - s).abs() < 1e-3 && (first[1] - s).abs() < 1e-3,
            "{first:?}"
        );
        assert!(pca.explained_variance_ratio()[0] > 0.999);
        let r: f64 = pca.explained_variance_ratio().iter().sum();
        assert!((r - 1.0).abs() < 1e-12);
        assert!(Pca::fit(&m, 3).is_err());
    }
}
