//! Clustering quality metrics: within-cluster sum of squares, silhouette (exact and sampled),
//! the adjusted Rand index, and the knee of an elbow curve.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use strata_core::FeatureMatrix;

/// Within-cluster sum of squared distances to the cluster means.
pub fn wcss(data: &FeatureMatrix, labels: &[u32]) -> f64 {
    let d = data.n_cols();
    let k = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0.0; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l as usize] += 1.0;
        for (s, x) in sums[l as usize * d..(l as usize + 1) * d]
            .iter_mut()
            .zip(data.row(i))
        {
            *s += x;
        }
    }
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let c = l as usize;
            data.row(i)
                .iter()
                .enumerate()
                .map(|(j, x)| (x - sums[c * d + j] / counts[c]).powi(2))
                .sum::<f64>()
        })
        .sum()
}

/// Mean silhouette coefficient (Euclidean), as scikit-learn defines it: rows alone in their
/// cluster score 0. `None` when there are fewer than 2 clusters or fewer than 3 rows.
pub fn silhouette(data: &FeatureMatrix, labels: &[u32]) -> Option<f64> {
    silhouette_rows(data.data(), data.n_cols(), labels)
}

fn silhouette_rows(x: &[f64], d: usize, labels: &[u32]) -> Option<f64> {
    let n = labels.len();
    let k = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l as usize] += 1);
    if n < 3 || sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return None;
    }
    let scores: Vec<f64> = (0..n)
        .into_par_iter()
        .map(|i| {
            let own = labels[i] as usize;
            if sizes[own] <= 1 {
                return 0.0;
            }
            let row = &x[i * d..(i + 1) * d];
            let mut sum = vec![0.0; k];
            for (j, other) in x.chunks_exact(d).enumerate() {
                let dist: f64 = row
                    .iter()
                    .zip(other)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                sum[labels[j] as usize] += dist;
            }
            let a = sum[own] / (sizes[own] - 1) as f64;
            let b = (0..k)
                .filter(|&c| c != own && sizes[c] > 0)
                .map(|c| sum[c] / sizes[c] as f64)
                .fold(f64::INFINITY, f64::min);
            if a.max(b) > 0.0 {
                (b - a) / a.max(b)
            } else {
                0.0
            }
        })
        .collect();
    Some(scores.iter().sum::<f64>() / n as f64)
}

/// Silhouette on a seeded random sample of `sample` rows (all rows when n ≤ sample), like
/// scikit-learn's `silhouette_score(sample_size=…)`.
pub fn silhouette_sampled(
    data: &FeatureMatrix,
    labels: &[u32],
    sample: usize,
    seed: u64,
) -> Option<f64> {
    let n = data.n_rows();
    if n <= sample {
        return silhouette(data, labels);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, n, sample).into_vec();
    idx.sort_unstable();
    let x: Vec<f64> = idx.iter().flat_map(|&i| data.row(i).to_vec()).collect();
    // Sampled labels may skip ids; empty clusters are ignored.
    let l: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
    silhouette_rows(&x, data.n_cols(), &l)
}

/// Adjusted Rand index between two labellings of the same rows (1 = identical partitions,
/// about 0 = chance). Labels may be any hashable values.
pub fn adjusted_rand_index<A: Eq + std::hash::Hash, B: Eq + std::hash::Hash>(
    a: &[A],
    b: &[B],
) -> f64 {
    assert_eq!(a.len(), b.len(), "labellings must cover the same rows");
    crate::agreement::Contingency::new(a, b).map_or(f64::NAN, |t| t.adjusted_rand())
}

/// Index of the knee of a decreasing, convex curve (an elbow plot): the point farthest below
/// the chord from the first to the last point, after scaling both axes to [0, 1].
pub fn knee_point(xs: &[f64], ys: &[f64]) -> Option<usize> {
    if xs.len() < 3 || xs.len() != ys.len() {
        return None;
    }
    let (x0, x1) = (xs[0], xs[xs.len() - 1]);
    let (ymin, ymax) = ys
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &y| {
            (lo.min(y), hi.max(y))
        });
    if x1 == x0 || ymax == ymin {
        return None;
    }
    let (y0, y1) = (
        (ys[0] - ymin) / (ymax - ymin),
        (ys[ys.len() - 1] - ymin) / (ymax - ymin),
    );
    let mut best = (0, 0.0);
    for (i, (&x, &y)) in xs.iter().zip(ys).enumerate() {
        let t = (x - x0) / (x1 - x0);
        let chord = y0 + t * (y1 - y0);
        let gap = chord - (y - ymin) / (ymax - ymin);
        if gap > best.1 {
            best = (i, gap);
        }
    }
    (best.1 > 0.0).then_some(best.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: &[[f64; 2]]) -> FeatureMatrix {
        FeatureMatrix::new(
            (0..rows.len()).map(|i| i.to_string()).collect(),
            vec!["x".into(), "y".into()],
            rows.iter().flatten().copied().collect(),
        )
        .unwrap()
    }

    #[test]
    fn silhouette_matches_scikit_learn_on_a_small_case() {
        // sklearn.metrics.silhouette_score(X, [0,0,1,1,1]) for these points = 0.7129064930447255 (computed with scikit-learn 1.x)
        let m = matrix(&[[0.0, 0.0], [0.0, 1.0], [4.0, 0.0], [5.0, 0.0], [4.0, 1.5]]);
        let s = silhouette(&m, &[0, 0, 1, 1, 1]).unwrap();
        assert!((s - 0.7129064930447255).abs() < 1e-12, "{s}");
        assert_eq!(silhouette(&m, &[0, 0, 0, 0, 0]), None);
        let sampled = silhouette_sampled(&m, &[0, 0, 1, 1, 1], 10, 1).unwrap();
        assert_eq!(s, sampled);
    }

    #[test]
    fn ari_known_values() {
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[5, 5, 9, 9]), 1.0);
        // sklearn.metrics.adjusted_rand_score([0,0,1,1,2,2],[0,0,1,2,2,2]) = 0.4444444444444444
        let ari = adjusted_rand_index(&[0, 0, 1, 1, 2, 2], &[0, 0, 1, 2, 2, 2]);
        assert!((ari - 0.4444444444444444).abs() < 1e-12, "{ari}");
    }

    #[test]
    fn wcss_and_knee() {
        let m = matrix(&[[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 2.0]]);
        assert_eq!(wcss(&m, &[0, 0, 1, 1]), 4.0);
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let ys = [100.0, 40.0, 12.0, 10.0, 9.0, 8.5];
        assert_eq!(knee_point(&xs, &ys), Some(2));
        assert_eq!(knee_point(&xs[..2], &ys[..2]), None);
    }
}
