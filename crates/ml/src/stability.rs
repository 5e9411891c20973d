//! How stable a segmentation is: refit on random subsamples and compare with the reference
//! labels — the adjusted Rand index overall, and per reference segment the Jaccard similarity
//! of its best-matching cluster (Hennig's clusterwise stability, with subsampling instead of
//! the bootstrap so no row appears twice). Segments with a mean Jaccard under 0.6 are usually
//! called unstable, above 0.75 stable.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use strata_core::FeatureMatrix;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stability {
    pub runs: usize,
    pub sample_share: f64,
    /// ARI between each refit and the reference on the sampled rows.
    pub ari: Vec<f64>,
    pub ari_mean: f64,
    pub ari_sd: f64,
    /// Per reference segment: mean over runs of the best Jaccard similarity.
    pub jaccard: Vec<f64>,
}

/// `fit(sample, seed)` refits the algorithm on a subsample and returns its labels.
pub fn subsample_stability<F>(
    data: &FeatureMatrix,
    reference: &[u32],
    fit: F,
    runs: usize,
    sample_share: f64,
    seed: u64,
) -> Result<Stability, String>
where
    F: Fn(&FeatureMatrix, u64) -> Result<Vec<u32>, String> + Sync,
{
    let n = data.n_rows();
    if reference.len() != n {
        return Err(format!("{} labels for {n} rows", reference.len()));
    }
    if runs == 0 || !(sample_share > 0.0 && sample_share < 1.0) {
        return Err(format!(
            "stability needs runs ≥ 1 and 0 < sample_share < 1 (got {runs} and {sample_share})"
        ));
    }
    let m = ((n as f64) * sample_share).round() as usize;
    if m < 2 {
        return Err(format!("a {sample_share} sample of {n} rows is too small"));
    }
    let k = reference.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    // Runs in sequence (each fit is parallel inside); run r draws from its own stream.
    let results: Vec<(f64, Vec<f64>)> = (0..runs)
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64));
            let mut rows = rand::seq::index::sample(&mut rng, n, m).into_vec();
            rows.sort_unstable();
            let values: Vec<f64> = rows.iter().flat_map(|&i| data.row(i).to_vec()).collect();
            let ids = rows.iter().map(|&i| data.ids()[i].clone()).collect();
            let sample = FeatureMatrix::new(ids, data.names().to_vec(), values)
                .map_err(|e| e.to_string())?;
            let labels = fit(&sample, seed.wrapping_add(r as u64))?;
            let refs: Vec<u32> = rows.iter().map(|&i| reference[i]).collect();
            let ari = crate::adjusted_rand_index(&refs, &labels);
            let kt = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
            // Contingency counts, row sums, column sums.
            let mut both = vec![0usize; k * kt];
            let (mut a, mut b) = (vec![0usize; k], vec![0usize; kt]);
            for (&s, &t) in refs.iter().zip(&labels) {
                both[s as usize * kt + t as usize] += 1;
                a[s as usize] += 1;
                b[t as usize] += 1;
            }
            let jaccard = (0..k)
                .map(|s| {
                    (0..kt)
                        .map(|t| {
                            let i = both[s * kt + t];
                            let u = a[s] + b[t] - i;
                            if u == 0 { 0.0 } else { i as f64 / u as f64 }
                        })
                        .fold(0.0, f64::max)
                })
                .collect();
            Ok((ari, jaccard))
        })
        .collect::<Result<_, String>>()?;
    let ari: Vec<f64> = results.iter().map(|r| r.0).collect();
    let mean = ari.iter().sum::<f64>() / runs as f64;
    let sd =
        (ari.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (runs.max(2) - 1) as f64).sqrt();
    let jaccard = (0..k)
        .map(|s| results.iter().map(|r| r.1[s]).sum::<f64>() / runs as f64)
        .collect();
    Ok(Stability {
        runs,
        sample_share,
        ari,
        ari_mean: mean,
        ari_sd: sd,
        jaccard,
    })
}
