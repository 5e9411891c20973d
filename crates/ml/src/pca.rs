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
    #[error("the share of variance to keep is {0}: it must be in (0, 1]")]
    BadShare(f64),
}

/// A fitted PCA: centred projection onto the top components.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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

    /// The fewest components whose explained variance reaches `share` of the total (for
    /// instance 0.9 for 90%).
    pub fn fit_variance(data: &FeatureMatrix, share: f64) -> Result<Self, PcaError> {
        if !(share > 0.0 && share <= 1.0) {
            return Err(PcaError::BadShare(share));
        }
        let mut full = Self::fit(data, data.n_cols())?;
        let mut cumulative = 0.0;
        let mut keep = full.explained_variance_ratio.len();
        for (i, r) in full.explained_variance_ratio.iter().enumerate() {
            cumulative += r;
            // A hair of slack so that share = 1 keeps components up to rounding.
            if cumulative >= share - 1e-12 {
                keep = i + 1;
                break;
            }
        }
        let d = full.mean.len();
        full.components.truncate(keep * d);
        full.explained_variance.truncate(keep);
        full.explained_variance_ratio.truncate(keep);
        Ok(full)
    }

    /// Every row projected onto the components, as a matrix with columns `pc1`, `pc2`, ….
    pub fn transform(
        &self,
        data: &FeatureMatrix,
    ) -> Result<FeatureMatrix, strata_core::MatrixError> {
        let values = (0..data.n_rows())
            .flat_map(|i| self.project(data.row(i)))
            .collect();
        FeatureMatrix::new(
            data.ids().to_vec(),
            (1..=self.n_components())
                .map(|c| format!("pc{c}"))
                .collect(),
            values,
        )
    }

    /// Features it takes.
    pub fn input_dims(&self) -> usize {
        self.mean.len()
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

    #[test]
    fn keeps_the_fewest_components_reaching_a_variance_share() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // Three columns driven by one factor plus small noise, and one pure-noise column.
        let n = 500;
        let mut values = Vec::with_capacity(n * 4);
        for _ in 0..n {
            let f: f64 = rng.random_range(-10.0..10.0);
            values.extend([
                f + rng.random_range(-0.1..0.1),
                2.0 * f + rng.random_range(-0.1..0.1),
                -f + rng.random_range(-0.1..0.1),
                rng.random_range(-1.0..1.0),
            ]);
        }
        let data = FeatureMatrix::new(
            (0..n).map(|i| i.to_string()).collect(),
            (0..4).map(|j| format!("x{j}")).collect(),
            values,
        )
        .unwrap();
        let one = Pca::fit_variance(&data, 0.95).unwrap();
        assert_eq!(one.n_components(), 1);
        assert!(one.explained_variance_ratio()[0] > 0.95);
        let two = Pca::fit_variance(&data, 0.9999).unwrap();
        assert_eq!(two.n_components(), 2);
        assert_eq!(Pca::fit_variance(&data, 1.0).unwrap().n_components(), 4);
        let t = one.transform(&data).unwrap();
        assert_eq!((t.n_rows(), t.names()), (n, &["pc1".to_string()][..]));
        assert!(matches!(
            Pca::fit_variance(&data, 0.0),
            Err(PcaError::BadShare(_))
        ));
        assert!(Pca::fit_variance(&data, 1.5).is_err());
    }
}
