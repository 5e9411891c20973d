//! Hamerly's accelerated iterations give Lloyd's answer; mini-batch comes close.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::FeatureMatrix;
use strata_ml::{KMeansAlgorithm, KMeansParams};

fn data(n: usize, d: usize, groups: usize, seed: u64) -> FeatureMatrix {
    spread_data(n, d, groups, seed, 3.0)
}

/// Uniform noise of ± `spread` around `groups` centres in a ±5 box.
fn spread_data(n: usize, d: usize, groups: usize, seed: u64, spread: f64) -> FeatureMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<f64> = (0..groups * d)
        .map(|_| rng.random_range(-5.0..5.0))
        .collect();
    let values = (0..n)
        .flat_map(|i| {
            let c = i % groups;
            (0..d)
                .map(|j| centres[c * d + j] + rng.random_range(-spread..spread))
                .collect::<Vec<_>>()
        })
        .collect();
    FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..d).map(|j| format!("x{j}")).collect(),
        values,
    )
    .unwrap()
}

#[test]
fn hamerly_equals_lloyd() {
    for (n, d, k, seed) in [
        (5000, 2, 3, 1),
        (20_000, 8, 8, 2),
        (3000, 5, 12, 3),
        (800, 3, 2, 4),
    ] {
        let x = data(n, d, 6, seed);
        let fit = |algorithm| {
            KMeansParams::new(k)
                .seed(seed)
                .n_init(3)
                .tol(0.0)
                .algorithm(algorithm)
                .check()
                .unwrap()
                .fit(&x)
                .unwrap()
        };
        let (l, h) = (fit(KMeansAlgorithm::Lloyd), fit(KMeansAlgorithm::Hamerly));
        assert_eq!(l.n_iter(), h.n_iter(), "n {n} k {k}");
        assert_eq!(l.labels(), h.labels(), "n {n} k {k}");
        for (a, b) in l.centroids().iter().zip(h.centroids()) {
            assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}");
        }
        assert!((l.inertia() - h.inertia()).abs() <= 1e-9 * l.inertia());
    }
}

#[test]
fn hamerly_handles_empty_clusters_like_lloyd_and_ignores_threads() {
    let x = data(3000, 3, 4, 5);
    // Two identical starting centres: one cluster is empty after the first assignment, so
    // Hamerly hands over to Lloyd's empty-cluster rule before its first update.
    let mut init = x.data()[..9].to_vec();
    init[3..6].copy_from_slice(&x.data()[..3]);
    let run = |algorithm, threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                KMeansParams::new(3)
                    .algorithm(algorithm)
                    .check()
                    .unwrap()
                    .fit_from(&x, init.clone())
                    .unwrap()
            })
    };
    let l = run(KMeansAlgorithm::Lloyd, 2);
    let h1 = run(KMeansAlgorithm::Hamerly, 1);
    let h2 = run(KMeansAlgorithm::Hamerly, 2);
    assert_eq!(l.labels(), h1.labels());
    assert_eq!(l.n_iter(), h1.n_iter());
    assert!(
        h1.centroids()
            .iter()
            .zip(h2.centroids())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert_eq!(h1.labels(), h2.labels());
}

#[test]
fn mini_batch_comes_close_to_lloyd_on_many_rows() {
    // Groups that touch but do not overlap much.
    let x = spread_data(200_000, 4, 6, 7, 1.0);
    let params = KMeansParams::new(6).seed(3).max_iter(300).check().unwrap();
    let full = params.fit(&x).unwrap();
    let mini = params.fit_mini_batch(&x, 1024).unwrap();
    let ari = strata_ml::adjusted_rand_index(full.labels(), mini.labels());
    assert!(ari > 0.9, "ARI {ari}");
    assert!(
        mini.inertia() < full.inertia() * 1.03,
        "{} vs {}",
        mini.inertia(),
        full.inertia()
    );
    // Same seed, same centres, on any number of threads.
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| params.fit_mini_batch(&x, 1024).unwrap());
    assert!(
        mini.centroids()
            .iter()
            .zip(again.centroids())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    let small = data(5, 2, 2, 1);
    assert!(
        KMeansParams::new(6)
            .check()
            .unwrap()
            .fit_mini_batch(&small, 10)
            .is_err()
    );
}
