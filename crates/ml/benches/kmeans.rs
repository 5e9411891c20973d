//! Why k-means is our own kernel: the same Lloyd iterations from the same initial centres,
//! ours against linfa-clustering 0.8, on one data set. Run with
//! `cargo bench -p strata-ml --bench kmeans`; results are recorded in BENCHMARKS.md.

#![allow(clippy::expect_used, reason = "a benchmark with bad setup should stop")]

use criterion::{Criterion, criterion_group, criterion_main};
use linfa::prelude::*;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use strata_core::FeatureMatrix;
use strata_ml::KMeansParams;

const N: usize = 200_000;
const D: usize = 8;
const K: usize = 8;
const ITERS: usize = 10;

/// Eight Gaussian-ish blobs in 8 dimensions.
fn blobs() -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let centres: Vec<f64> = (0..K * D).map(|_| rng.random_range(-10.0..10.0)).collect();
    let mut data = Vec::with_capacity(N * D);
    for i in 0..N {
        let c = i % K;
        for j in 0..D {
            let noise: f64 = (0..4).map(|_| rng.random_range(-1.0..1.0)).sum();
            data.push(centres[c * D + j] + noise);
        }
    }
    data
}

fn bench(c: &mut Criterion) {
    let data = blobs();
    // Start every centre inside the first blob (rows 0, K, 2K, …) so that all iterations do
    // real work instead of converging at once.
    let init: Vec<f64> = (0..K)
        .flat_map(|c| data[c * K * D..c * K * D + D].to_vec())
        .collect();
    let matrix = FeatureMatrix::new(
        (0..N).map(|i| i.to_string()).collect(),
        (0..D).map(|j| format!("x{j}")).collect(),
        data.clone(),
    )
    .expect("finite data");
    let ours = KMeansParams::new(K)
        .max_iter(ITERS)
        .tol(0.0)
        .check()
        .expect("valid params");
    let array = Array2::from_shape_vec((N, D), data).expect("shape");
    let dataset = DatasetBase::from(array);
    let init_array = Array2::from_shape_vec((K, D), init.clone()).expect("shape");
    let linfa_params = linfa_clustering::KMeans::params(K)
        .init_method(linfa_clustering::KMeansInit::Precomputed(init_array))
        .max_n_iterations(ITERS as u64)
        .tolerance(1e-30)
        .n_runs(1);

    // Same work on both sides: print both inertias once so a faster answer is never a worse one.
    let a = ours.fit_from(&matrix, init.clone()).expect("fit");
    let b = linfa_params.fit(&dataset).expect("fit");
    // linfa reports the mean squared distance; scale it to a sum to compare. Its figure is
    // taken before the last centre update, ours after a final assignment pass.
    eprintln!(
        "inertia after {} iterations: strata {:.9e}, linfa {:.9e}",
        a.n_iter(),
        a.inertia(),
        b.inertia() * N as f64
    );

    let mut group = c.benchmark_group(format!(
        "kmeans {ITERS} Lloyd iterations, n={N} d={D} k={K}"
    ));
    group.sample_size(10);
    group.bench_function("strata", |bench| {
        bench.iter(|| black_box(ours.fit_from(&matrix, init.clone()).expect("fit")));
    });
    group.bench_function("linfa", |bench| {
        bench.iter(|| black_box(linfa_params.fit(&dataset).expect("fit")));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
