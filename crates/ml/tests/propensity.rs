//! Propensity models: metric parity with scikit-learn, TreeSHAP additivity, what each model
//! can learn, determinism, and clear errors on degenerate labels.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_ml::{
    Dataset, Gbm, GbmSettings, Logistic, PropensityError, PropensitySettings, Split,
    average_precision, brier, calibration_curve, log_loss, roc_auc, stratified_split, train,
};

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

#[test]
fn metrics_equal_scikit_learn_on_tied_scores() {
    // Produced by tests/fixtures/classification_metrics.py with scikit-learn 1.9.1.
    let text = include_str!("fixtures/classification_metrics.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let floats = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (y, p) = (floats("labels"), floats("scores"));
    let want = |k: &str| v[k].as_f64().unwrap();
    let got_auc = roc_auc(&y, &p).unwrap();
    assert!(close(got_auc, want("roc_auc"), 1e-12), "{got_auc}");
    let got_ap = average_precision(&y, &p).unwrap();
    assert!(close(got_ap, want("average_precision"), 1e-12), "{got_ap}");
    assert!(close(log_loss(&y, &p), want("log_loss"), 1e-12));
    assert!(close(brier(&y, &p), want("brier"), 1e-12));
    let curve = calibration_curve(&y, &p, 10);
    let (obs, pred) = (
        floats("calibration_observed"),
        floats("calibration_predicted"),
    );
    assert_eq!(curve.len(), obs.len());
    for (bin, (o, m)) in curve.iter().zip(obs.iter().zip(&pred)) {
        assert!(close(bin.observed_rate, *o, 1e-12) || (*o == 0.0 && bin.observed_rate == 0.0));
        assert!(close(bin.mean_predicted, *m, 1e-12));
    }
    assert_eq!(curve.iter().map(|b| b.rows).sum::<usize>(), y.len());
}

/// Rows with an interaction (xor of two signs) a linear model cannot express, a monotone
/// signal, noise columns, a constant column and missing values.
fn interaction_data(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut cols: Vec<Vec<f64>> = (0..5).map(|_| Vec::with_capacity(n)).collect();
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let a: f64 = rng.random_range(-1.0..1.0);
        let b: f64 = rng.random_range(-1.0..1.0);
        let c: f64 = rng.random_range(0.0..10.0);
        let noise: f64 = rng.random_range(0.0..1.0);
        let logit = 3.0 * if (a > 0.0) == (b > 0.0) { 1.0 } else { -1.0 } + 0.3 * (c - 5.0);
        let y = f64::from(u8::from(rng.random::<f64>() < 1.0 / (1.0 + (-logit).exp())));
        cols[0].push(a);
        cols[1].push(if rng.random::<f64>() < 0.05 {
            f64::NAN
        } else {
            b
        });
        cols[2].push(c);
        cols[3].push(noise);
        cols[4].push(7.0);
        labels.push(y);
    }
    let names = ["a", "b", "c", "noise", "constant"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Dataset::new(names, cols, labels).unwrap()
}

#[test]
fn boosted_trees_learn_an_interaction_the_logistic_baseline_cannot() {
    let data = interaction_data(4000, 1);
    let settings = PropensitySettings {
        folds: 3,
        ..PropensitySettings::default()
    };
    let t = train(&data, &settings, 7).unwrap();
    assert!(t.gbm_test.roc_auc > 0.85, "gbm {}", t.gbm_test.roc_auc);
    assert!(
        t.logistic_test.roc_auc < 0.75,
        "logistic {}",
        t.logistic_test.roc_auc
    );
    let cv = t.cross_validation.as_ref().unwrap();
    assert_eq!(cv.gbm_roc_auc.len(), 3);
    assert!(cv.gbm_mean > cv.logistic_mean + 0.1);
    // The interaction features carry the gain; the constant column none.
    let top: Vec<&str> = t.importance[..2].iter().map(|(n, _)| n.as_str()).collect();
    assert!(top.contains(&"a") && top.contains(&"b"), "{top:?}");
    let constant = t.importance.iter().find(|(n, _)| n == "constant").unwrap();
    assert_eq!(constant.1, 0.0);
    let total: f64 = t.importance.iter().map(|(_, v)| v).sum();
    assert!((total - 1.0).abs() < 1e-9);
    // Early stopping ended before the cap.
    assert!(t.gbm.trees() < settings.gbm.iterations);
    // Calibration bins cover the test rows.
    let rows: usize = t.gbm_test.calibration.iter().map(|b| b.rows).sum();
    assert_eq!(rows, t.gbm_test.rows);
}

#[test]
fn shap_values_of_each_row_sum_to_the_model_output() {
    let data = interaction_data(1500, 2);
    let rows: Vec<usize> = (0..data.rows()).collect();
    let x = data.take(&rows);
    let gbm = Gbm::fit(&x, &data.labels, None, &GbmSettings::default(), 3).unwrap();
    let logits = gbm.predict_logit(&x).unwrap();
    let shap = gbm.shap(&x).unwrap();
    assert_eq!(shap.len(), data.rows());
    let mut nonzero = 0;
    for (row, &logit) in shap.iter().zip(&logits) {
        assert_eq!(row.len(), data.columns.len() + 1);
        let sum: f64 = row.iter().sum();
        // forust keeps node values as f32: the two sums round differently near 1e-8.
        assert!(
            (sum - logit).abs() <= 1e-6 * logit.abs().max(1.0),
            "{sum} vs {logit}"
        );
        // The constant column never splits: no contribution.
        assert_eq!(row[4], 0.0);
        nonzero += usize::from(row[0] != 0.0);
    }
    assert!(nonzero > data.rows() / 2);
    // The expected value is the same for every row.
    assert!(shap.iter().all(|r| r[5] == shap[0][5]));
}

#[test]
fn same_seed_same_model_on_any_thread_count() {
    let data = interaction_data(2000, 3);
    let settings = PropensitySettings {
        folds: 2,
        ..PropensitySettings::default()
    };
    let probs = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let t = train(&data, &settings, 11).unwrap();
            let rows: Vec<usize> = (0..data.rows()).collect();
            let x = data.take(&rows);
            (
                t.split.clone(),
                t.gbm.predict_proba(&x).unwrap(),
                t.logistic.predict_proba(&x).unwrap(),
            )
        })
    };
    let one = probs(1);
    let two = probs(2);
    assert_eq!(one.0, two.0);
    assert!(
        one.1
            .iter()
            .zip(&two.1)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(
        one.2
            .iter()
            .zip(&two.2)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}

#[test]
fn the_split_is_stratified_and_seeded() {
    let labels: Vec<f64> = (0..1000)
        .map(|i| f64::from(u8::from(i % 10 == 0)))
        .collect();
    let s = stratified_split(&labels, 0.2, 0.2, 5).unwrap();
    for part in [Split::Train, Split::Validation, Split::Test] {
        let rows: Vec<usize> = (0..1000).filter(|&i| s[i] == part).collect();
        let pos = rows.iter().filter(|&&i| labels[i] == 1.0).count();
        let expected = if part == Split::Train { 600 } else { 200 };
        assert_eq!(rows.len(), expected, "{part:?}");
        assert_eq!(pos * 10, rows.len(), "{part:?}");
    }
    assert_eq!(s, stratified_split(&labels, 0.2, 0.2, 5).unwrap());
    assert_ne!(s, stratified_split(&labels, 0.2, 0.2, 6).unwrap());
}

#[test]
fn degenerate_labels_and_features_are_clear_errors() {
    let ones = vec![1.0; 50];
    let x = vec![vec![1.0; 50], (0..50).map(f64::from).collect()];
    let names = vec!["a".to_string(), "b".to_string()];
    let data = Dataset::new(names.clone(), x.clone(), ones.clone()).unwrap();
    let err = train(&data, &PropensitySettings::default(), 1).unwrap_err();
    assert!(matches!(
        err,
        PropensityError::SingleClass {
            positives: 50,
            rows: 50
        }
    ));
    assert!(err.to_string().contains("single class"));
    assert!(roc_auc(&ones, &ones).is_err());
    assert!(Logistic::fit(&ones, &ones, 1.0).is_err());

    let bad = Dataset::new(names.clone(), x, vec![2.0; 50]).unwrap_err();
    assert!(bad.to_string().contains("not 0 or 1"), "{bad}");
    let short = Dataset::new(names, vec![vec![1.0; 3], vec![1.0; 50]], ones).unwrap_err();
    assert!(
        short.to_string().contains("column `a` has 3 rows"),
        "{short}"
    );

    // Every feature constant on the training rows.
    let labels: Vec<f64> = (0..50).map(|i| f64::from(i % 2)).collect();
    let err = Gbm::fit(&vec![3.0; 100], &labels, None, &GbmSettings::default(), 1).unwrap_err();
    assert!(matches!(err, PropensityError::NoFeatures));

    // Too few of the rarer class to put one in every part.
    let mut labels = vec![0.0; 100];
    labels[0] = 1.0;
    let err = stratified_split(&labels, 0.2, 0.2, 1).unwrap_err();
    assert!(
        err.to_string().contains("lacks one of the classes"),
        "{err}"
    );
    assert!(stratified_split(&labels, 0.5, 0.5, 1).is_err());
}
