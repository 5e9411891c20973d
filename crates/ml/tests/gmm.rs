//! Gaussian mixtures: recovery of known components, EM monotonicity, soft memberships, BIC's
//! choice of k, determinism across thread counts, and clear errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use strata_core::FeatureMatrix;
use strata_ml::{Covariance, Gmm, GmmError, GmmParams, adjusted_rand_index};

/// `k` elongated, rotated Gaussian blobs in `d` dimensions (not spherical: k-means's
/// assumption fails, a full-covariance mixture's does not).
fn blobs(n: usize, k: usize, d: usize, seed: u64) -> (FeatureMatrix, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let centres: Vec<Vec<f64>> = (0..k)
        .map(|_| (0..d).map(|_| rng.random_range(-12.0..12.0)).collect())
        .collect();
    let mut values = Vec::with_capacity(n * d);
    let mut truth = Vec::with_capacity(n);
    for i in 0..n {
        let c = i % k;
        let z: Vec<f64> = (0..d).map(|_| normal.sample(&mut rng)).collect();
        for j in 0..d {
            // Stretched along the first axis, sheared into the second.
            let v = match j {
                0 => 2.5 * z[0],
                1 => 0.8 * z[1] + 1.2 * z[0],
                _ => 0.7 * z[j],
            };
            values.push(centres[c][j] + v);
        }
        truth.push(c as u32);
    }
    let ids = (0..n).map(|i| i.to_string()).collect();
    let names = (0..d).map(|j| format!("x{j}")).collect();
    (FeatureMatrix::new(ids, names, values).unwrap(), truth)
}

#[test]
fn full_and_diagonal_mixtures_recover_the_components() {
    let (data, truth) = blobs(3000, 4, 3, 1);
    for covariance in [Covariance::Full, Covariance::Diagonal] {
        let params = GmmParams {
            covariance,
            n_init: 3,
            seed: 7,
            ..GmmParams::new(4)
        };
        let model = Gmm::fit(&data, &params).unwrap();
        assert!(model.converged, "{covariance:?}");
        let ari = adjusted_rand_index(&truth, &model.predict(&data));
        assert!(ari >= 0.9, "{covariance:?}: ARI {ari}");
        let w: f64 = model.weights.iter().sum();
        assert!((w - 1.0).abs() < 1e-9);
        for &wk in &model.weights {
            assert!((wk - 0.25).abs() < 0.05, "{:?}", model.weights);
        }
    }
}

#[test]
fn em_never_lowers_the_likelihood_and_memberships_are_distributions() {
    let (data, _) = blobs(2000, 3, 4, 2);
    let labels: Vec<u32> = (0..2000).map(|i| (i * 7 % 3) as u32).collect();
    let params = GmmParams {
        max_iter: 1,
        tol: 0.0,
        ..GmmParams::new(3)
    };
    let mut model = Gmm::fit_from_labels(&data, &labels, &params).unwrap();
    let mut previous = model.log_likelihood;
    for _ in 0..30 {
        model.em_step(&data, 1e-6).unwrap();
        assert!(
            model.log_likelihood >= previous - 1e-9,
            "{previous} -> {}",
            model.log_likelihood
        );
        previous = model.log_likelihood;
    }
    let proba = model.predict_proba(&data);
    let hard = model.predict(&data);
    for (row, &h) in proba.chunks(3).zip(&hard) {
        let s: f64 = row.iter().sum();
        assert!((s - 1.0).abs() < 1e-12);
        assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
        let arg = row
            .iter()
            .enumerate()
            .fold(0, |b, (c, &p)| if p > row[b] { c } else { b });
        assert_eq!(arg as u32, h);
    }
}

#[test]
fn bic_prefers_the_true_number_of_components() {
    let (data, _) = blobs(2400, 3, 2, 3);
    let bic: Vec<(usize, f64)> = (1..=6)
        .map(|k| {
            let params = GmmParams {
                n_init: 2,
                seed: 1,
                ..GmmParams::new(k)
            };
            (k, Gmm::fit(&data, &params).unwrap().bic(&data))
        })
        .collect();
    let best = bic
        .iter()
        .fold(bic[0], |b, &c| if c.1 < b.1 { c } else { b });
    assert_eq!(best.0, 3, "{bic:?}");
    let model = Gmm::fit(&data, &GmmParams::new(3)).unwrap();
    // 3 components in 2-D with full covariances: 3·3 + 3·2 + 2 parameters.
    assert_eq!(model.n_parameters(), 17);
    // Both criteria charge those parameters against the training log-likelihood.
    let n = data.n_rows() as f64;
    let fit = -2.0 * model.log_likelihood * n;
    assert!((model.bic(&data) - (fit + 17.0 * n.ln())).abs() < 1e-9 * fit.abs());
    assert!((model.aic(&data) - (fit + 34.0)).abs() < 1e-9 * fit.abs());
}

#[test]
fn same_seed_same_mixture_on_any_thread_count() {
    let (data, _) = blobs(20_000, 5, 4, 4);
    let params = GmmParams {
        n_init: 2,
        seed: 3,
        ..GmmParams::new(5)
    };
    let fit = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| Gmm::fit(&data, &params).unwrap())
    };
    let (a, b) = (fit(1), fit(2));
    assert_eq!(a.n_iter, b.n_iter);
    assert!(
        a.means
            .iter()
            .zip(&b.means)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
    assert!(
        a.covariances
            .iter()
            .zip(&b.covariances)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
    assert_eq!(a.log_likelihood.to_bits(), b.log_likelihood.to_bits());
}

#[test]
fn far_from_the_origin_the_covariances_stay_accurate() {
    // Values near 1e8 with unit spread: a one-pass E[x²] − μ² without the shift loses every
    // significant digit.
    let (data, truth) = blobs(2000, 2, 2, 5);
    let shifted = data
        .with_data(data.data().iter().map(|v| v + 1e8).collect())
        .unwrap();
    let a = Gmm::fit(&data, &GmmParams::new(2)).unwrap();
    let b = Gmm::fit(&shifted, &GmmParams::new(2)).unwrap();
    assert!(adjusted_rand_index(&truth, &b.predict(&shifted)) > 0.95);
    for (x, y) in a.covariances.iter().zip(&b.covariances) {
        assert!((x - y).abs() < 1e-4 * x.abs().max(1.0), "{x} vs {y}");
    }
}

#[test]
fn bad_parameters_and_data_are_clear_errors() {
    let (data, _) = blobs(50, 2, 2, 6);
    assert!(matches!(
        Gmm::fit(&data, &GmmParams::new(0)),
        Err(GmmError::BadK { k: 0, n: 50 })
    ));
    assert!(matches!(
        Gmm::fit(&data, &GmmParams::new(51)),
        Err(GmmError::BadK { k: 51, .. })
    ));
    let mut values = data.data().to_vec();
    values[7] = f64::NAN;
    // NaN never reaches the model: the feature matrix refuses it, naming row and feature.
    let e = data.with_data(values).unwrap_err().to_string();
    assert!(e.contains("x1") && e.contains('3'), "{e}");
    // A component on identical rows has a zero covariance: singular without regularization.
    let same = data.with_data(vec![1.0; 100]).unwrap();
    let params = GmmParams {
        reg_covar: 0.0,
        ..GmmParams::new(1)
    };
    let e = Gmm::fit_from_labels(&same, &[0; 50], &params).unwrap_err();
    assert!(e.to_string().contains("not positive definite"), "{e}");
    let e = Gmm::fit_from_labels(&data, &[0, 1], &GmmParams::new(2)).unwrap_err();
    assert!(e.to_string().contains("initial labels"), "{e}");
}
