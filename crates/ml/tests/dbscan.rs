//! DBSCAN: agreement with a brute-force reference, non-convex shapes, the k-distance
//! suggestion, determinism and parameter errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::FeatureMatrix;
use strata_ml::{Dbscan, DbscanError, KMeansParams, adjusted_rand_index, k_distance};

mod common;
use common::matrix;

/// Two interleaved half-moons with a little jitter, plus uniform noise.
fn moons(n: usize, noise: usize, seed: u64) -> (FeatureMatrix, Vec<i32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut v, mut truth) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = std::f64::consts::PI * rng.random::<f64>();
        let (x, y) = if i % 2 == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        v.push(x + rng.random_range(-0.05..0.05));
        v.push(y + rng.random_range(-0.05..0.05));
        truth.push((i % 2) as i32);
    }
    for _ in 0..noise {
        v.push(rng.random_range(-1.5..2.5));
        v.push(rng.random_range(-1.0..1.5));
        truth.push(-1);
    }
    (matrix(v, 2), truth)
}

/// The textbook algorithm on all pairs, with the same border rule (nearest core row).
fn brute_force(data: &FeatureMatrix, eps: f64, min_samples: usize) -> Vec<i32> {
    let n = data.n_rows();
    let dist2 = |a: usize, b: usize| -> f64 {
        data.row(a)
            .iter()
            .zip(data.row(b))
            .map(|(x, y)| (x - y).powi(2))
            .sum()
    };
    let core: Vec<bool> = (0..n)
        .map(|i| (0..n).filter(|&j| dist2(i, j) <= eps * eps).count() >= min_samples)
        .collect();
    let mut labels = vec![-1i32; n];
    let mut next = 0;
    for s in 0..n {
        if !core[s] || labels[s] >= 0 {
            continue;
        }
        let mut stack = vec![s];
        labels[s] = next;
        while let Some(i) = stack.pop() {
            for j in 0..n {
                if core[j] && labels[j] < 0 && dist2(i, j) <= eps * eps {
                    labels[j] = next;
                    stack.push(j);
                }
            }
        }
        next += 1;
    }
    for i in 0..n {
        if !core[i] {
            let nearest = (0..n)
                .filter(|&j| core[j] && dist2(i, j) <= eps * eps)
                .min_by(|&a, &b| dist2(i, a).total_cmp(&dist2(i, b)).then(a.cmp(&b)));
            if let Some(j) = nearest {
                labels[i] = labels[j];
            }
        }
    }
    labels
}

#[test]
fn equals_the_brute_force_algorithm() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // Clumped integer-ish grid values: many ties at exactly eps.
    let values: Vec<f64> = (0..900 * 3)
        .map(|_| f64::from(rng.random_range(0..12u8)) * 0.5)
        .collect();
    let data = matrix(values, 3);
    for (eps, min_samples) in [(0.5, 3), (0.75, 5), (1.0, 12), (0.3, 1)] {
        let got = Dbscan::fit(&data, eps, min_samples).unwrap();
        let want = brute_force(&data, eps, min_samples);
        assert_eq!(got.labels, want, "eps {eps} min_samples {min_samples}");
        assert_eq!(got.noise, want.iter().filter(|&&l| l < 0).count());
    }
}

#[test]
fn finds_non_convex_clusters_that_k_means_cannot() {
    let (data, truth) = moons(1000, 40, 1);
    let db = Dbscan::fit(&data, 0.15, 8).unwrap();
    assert_eq!(db.clusters, 2);
    let shapes: Vec<usize> = (0..1000).collect();
    let moon_truth: Vec<i32> = shapes.iter().map(|&i| truth[i]).collect();
    let moon_db: Vec<i32> = shapes.iter().map(|&i| db.labels[i]).collect();
    let ari = adjusted_rand_index(&moon_truth, &moon_db);
    assert!(ari > 0.95, "DBSCAN ARI {ari}");
    // Most scattered points are noise (a few land on a moon and rightly join it).
    let noise_found = (1000..1040).filter(|&i| db.labels[i] < 0).count();
    assert!(noise_found >= 25, "{noise_found}");
    let km = KMeansParams::new(2)
        .seed(1)
        .check()
        .unwrap()
        .fit(&data)
        .unwrap();
    let km_labels: Vec<u32> = shapes.iter().map(|&i| km.labels()[i]).collect();
    assert!(adjusted_rand_index(&moon_truth, &km_labels) < 0.6);
}

#[test]
fn k_distance_suggests_a_working_eps() {
    let (data, truth) = moons(1000, 40, 2);
    let kd = k_distance(&data, 8, 10_000, 1).unwrap();
    assert_eq!(kd.distances.len(), 1040);
    assert!(kd.distances.windows(2).all(|w| w[0] >= w[1]));
    let db = Dbscan::fit(&data, kd.suggested_eps, 8).unwrap();
    // A row is core exactly when its k-distance is within eps.
    let cores = kd
        .distances
        .iter()
        .filter(|&&v| v <= kd.suggested_eps)
        .count();
    assert_eq!(cores, db.core.iter().filter(|&&c| c).count());
    let moon_db: Vec<i32> = db.labels[..1000].to_vec();
    assert!(
        adjusted_rand_index(&truth[..1000], &moon_db) > 0.9,
        "eps {}",
        kd.suggested_eps
    );
    // A sample gives the requested number of rows.
    assert_eq!(k_distance(&data, 8, 100, 1).unwrap().distances.len(), 100);
}

#[test]
fn same_labels_on_any_thread_count() {
    let (data, _) = moons(5000, 300, 3);
    let run = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| Dbscan::fit(&data, 0.08, 6).unwrap().labels)
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(2), run(3));
}

#[test]
fn bad_parameters_are_clear_errors() {
    let (data, _) = moons(20, 0, 4);
    assert_eq!(
        Dbscan::fit(&data, 0.0, 5).unwrap_err(),
        DbscanError::BadEps(0.0)
    );
    assert!(Dbscan::fit(&data, -1.0, 5).is_err());
    assert!(Dbscan::fit(&data, f64::NAN, 5).is_err());
    assert_eq!(
        Dbscan::fit(&data, 0.1, 0).unwrap_err(),
        DbscanError::BadMinSamples
    );
    assert_eq!(
        Dbscan::fit(&data, 0.0, 5).unwrap_err().to_string(),
        "eps = 0: it must be a positive, finite distance"
    );
    assert!(k_distance(&data, 0, 10, 1).is_err());
}
