//! Filling missing numeric values: simple statistics and k-nearest-neighbour imputation.

use rayon::prelude::*;

/// Mean of the present values.
pub(crate) fn mean(values: &[Option<f64>]) -> Option<f64> {
    let (sum, n) = values
        .iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Median of the present values (mean of the middle two for an even count).
pub(crate) fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// The most frequent present value; the smallest among equally frequent ones.
pub(crate) fn mode<T: Ord + Clone>(values: impl Iterator<Item = Option<T>>) -> Option<T> {
    let mut counts = std::collections::BTreeMap::new();
    for v in values.flatten() {
        *counts.entry(v).or_insert(0usize) += 1;
    }
    // BTreeMap iterates in ascending order; keeping only strictly larger counts keeps the
    // smallest value among ties.
    let mut best: Option<(T, usize)> = None;
    for (v, c) in counts {
        if best.as_ref().is_none_or(|(_, b)| c > *b) {
            best = Some((v, c));
        }
    }
    best.map(|(v, _)| v)
}

/// KNN imputation of `target`: each missing value becomes the mean of `target` over the `k`
/// nearest donors, where donors are the rows with `target` and every feature present, and
/// the distance is Euclidean over the features the row itself has, each z-scored with the
/// donors' mean and standard deviation. Ties in distance go to the earlier row. A row with
/// none of the features gets the donors' mean. Returns the filled column (present values
/// untouched) or `None` when there is no donor.
///
/// Cost is (missing rows × donors × features), spread over the rayon pool: fine for the
/// tens of thousands of missing values of a million-row table, not for millions of them.
pub fn knn_impute(
    features: &[Vec<Option<f64>>],
    target: &[Option<f64>],
    k: usize,
) -> Option<Vec<Option<f64>>> {
    let n = target.len();
    let donors: Vec<usize> = (0..n)
        .filter(|&i| target[i].is_some() && features.iter().all(|f| f[i].is_some()))
        .collect();
    if donors.is_empty() || k == 0 {
        return None;
    }
    // Scaling from the donors.
    let scale: Vec<(f64, f64)> = features
        .iter()
        .map(|f| {
            let vals: Vec<f64> = donors.iter().filter_map(|&i| f[i]).collect();
            let m = vals.iter().sum::<f64>() / vals.len() as f64;
            let var = vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64;
            let sd = var.sqrt();
            (m, if sd > 0.0 { sd } else { 1.0 })
        })
        .collect();
    let d = features.len();
    // Donor rows as a dense scaled matrix, for a tight inner loop.
    let mut donor_x = Vec::with_capacity(donors.len() * d);
    for &i in &donors {
        for (f, (m, s)) in features.iter().zip(&scale) {
            donor_x.push((f[i].unwrap_or(0.0) - m) / s);
        }
    }
    let donor_y: Vec<f64> = donors.iter().filter_map(|&i| target[i]).collect();
    let donor_mean = donor_y.iter().sum::<f64>() / donor_y.len() as f64;
    let k = k.min(donors.len());
    let filled: Vec<Option<f64>> = (0..n)
        .into_par_iter()
        .map(|i| {
            if target[i].is_some() {
                return target[i];
            }
            let q: Vec<Option<f64>> = features
                .iter()
                .zip(&scale)
                .map(|(f, (m, s))| f[i].map(|v| (v - m) / s))
                .collect();
            if q.iter().all(Option::is_none) {
                return Some(donor_mean);
            }
            // The k best (distance², donor position), kept sorted; ties keep the earlier donor.
            let mut best: Vec<(f64, usize)> = Vec::with_capacity(k + 1);
            for (j, row) in donor_x.chunks_exact(d).enumerate() {
                let mut dist = 0.0;
                for (qv, x) in q.iter().zip(row) {
                    if let Some(qv) = qv {
                        dist += (qv - x) * (qv - x);
                    }
                }
                if best.len() == k && dist >= best[k - 1].0 {
                    continue;
                }
                let pos = best.partition_point(|&(bd, _)| bd <= dist);
                best.insert(pos, (dist, j));
                best.truncate(k);
            }
            Some(best.iter().map(|&(_, j)| donor_y[j]).sum::<f64>() / best.len() as f64)
        })
        .collect();
    Some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The obvious implementation: every distance, a full sort, the first k.
    fn naive(features: &[Vec<Option<f64>>], target: &[Option<f64>], k: usize) -> Vec<Option<f64>> {
        let n = target.len();
        let donors: Vec<usize> = (0..n)
            .filter(|&i| target[i].is_some() && features.iter().all(|f| f[i].is_some()))
            .collect();
        let stats: Vec<(f64, f64)> = features
            .iter()
            .map(|f| {
                let v: Vec<f64> = donors.iter().map(|&i| f[i].unwrap()).collect();
                let m = v.iter().sum::<f64>() / v.len() as f64;
                let sd = (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
                (m, if sd > 0.0 { sd } else { 1.0 })
            })
            .collect();
        (0..n)
            .map(|i| {
                if target[i].is_some() {
                    return target[i];
                }
                let mut dists: Vec<(f64, usize)> = donors
                    .iter()
                    .map(|&j| {
                        let mut d = 0.0;
                        for (f, (m, s)) in features.iter().zip(&stats) {
                            if let Some(a) = f[i] {
                                let b = f[j].unwrap();
                                d += ((a - m) / s - (b - m) / s).powi(2);
                            }
                        }
                        (d, j)
                    })
                    .collect();
                dists.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let kk = k.min(dists.len());
                Some(
                    dists[..kk]
                        .iter()
                        .map(|&(_, j)| target[j].unwrap())
                        .sum::<f64>()
                        / kk as f64,
                )
            })
            .collect()
    }

    #[test]
    fn knn_matches_the_naive_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 400;
        let mut features = vec![vec![None; n]; 3];
        let mut target = vec![None; n];
        for i in 0..n {
            let base: f64 = rng.random_range(0.0..10.0);
            for (f, col) in features.iter_mut().enumerate() {
                if rng.random_bool(0.9) {
                    // Integers make exact distance ties common, which exercises tie-breaking.
                    col[i] =
                        Some((base * (f as f64 + 1.0)).round() + rng.random_range(0..3) as f64);
                }
            }
            if rng.random_bool(0.8) {
                target[i] = Some(base * 3.0 + rng.random_range(0.0..1.0));
            }
        }
        for k in [1, 3, 5, 50] {
            let got = knn_impute(&features, &target, k).unwrap();
            let want = naive(&features, &target, k);
            for i in 0..n {
                let (g, w) = (got[i].unwrap(), want[i].unwrap());
                assert!(
                    (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "row {i}, k={k}: {g} vs {w}"
                );
            }
        }
        // Nothing to learn from: no donor.
        assert!(knn_impute(&features, &vec![None; n], 3).is_none());
    }

    #[test]
    fn simple_statistics() {
        let v = [Some(1.0), None, Some(3.0), Some(10.0), Some(3.0)];
        assert_eq!(mean(&v), Some(17.0 / 4.0));
        assert_eq!(median(&v), Some(3.0));
        assert_eq!(median(&[Some(1.0), Some(2.0)]), Some(1.5));
        assert_eq!(median(&[None]), None);
        assert_eq!(
            mode([Some(2), Some(1), Some(2), Some(1), None].into_iter()),
            Some(1)
        );
        assert_eq!(mode(["b", "a", "b"].map(Some).into_iter()), Some("b"));
    }
}
