//! Validity and agreement indices equal scikit-learn's to 1e-9 relative on a committed
//! fixture (tests/fixtures/cluster_metrics.py wrote it with scikit-learn 1.9.1).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use strata_core::FeatureMatrix;
use strata_ml::{agreement, calinski_harabasz, davies_bouldin, silhouette};

struct Fixture {
    data: FeatureMatrix,
    truth: Vec<u32>,
    pred: Vec<u32>,
    noise: Vec<String>,
    expected: serde_json::Value,
}

fn fixture() -> Fixture {
    let text = include_str!("fixtures/cluster_metrics.csv");
    let (mut values, mut truth, mut pred, mut noise) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        values.extend(f[..5].iter().map(|v| v.parse::<f64>().unwrap()));
        truth.push(f[5].parse().unwrap());
        pred.push(f[6].parse().unwrap());
        noise.push(f[7].to_string());
    }
    let ids = (0..truth.len()).map(|i| i.to_string()).collect();
    let names = (0..5).map(|j| format!("x{j}")).collect();
    Fixture {
        data: FeatureMatrix::new(ids, names, values).unwrap(),
        truth,
        pred,
        noise,
        expected: serde_json::from_str(include_str!("fixtures/cluster_metrics.json")).unwrap(),
    }
}

fn assert_close(got: f64, want: &serde_json::Value, what: &str) {
    let want = want.as_f64().unwrap();
    let rel = (got - want).abs() / want.abs().max(1e-300);
    assert!(
        rel <= 1e-9,
        "{what}: {got} vs scikit-learn {want} (relative {rel:e})"
    );
}

#[test]
fn internal_indices_equal_scikit_learn() {
    let f = fixture();
    for (name, labels) in [("truth", &f.truth), ("pred", &f.pred)] {
        let e = &f.expected[name];
        assert_close(
            silhouette(&f.data, labels).unwrap(),
            &e["silhouette"],
            "silhouette",
        );
        assert_close(
            calinski_harabasz(&f.data, labels).unwrap(),
            &e["calinski_harabasz"],
            "calinski_harabasz",
        );
        assert_close(
            davies_bouldin(&f.data, labels).unwrap(),
            &e["davies_bouldin"],
            "davies_bouldin",
        );
    }
}

#[test]
fn agreement_scores_equal_scikit_learn() {
    let f = fixture();
    let cases = [
        ("truth_pred", agreement(&f.truth, &f.pred).unwrap()),
        ("truth_noise", agreement(&f.truth, &f.noise).unwrap()),
    ];
    for (name, a) in cases {
        let e = &f.expected[name];
        assert_close(a.adjusted_rand, &e["adjusted_rand"], "ARI");
        assert_close(a.mutual_information, &e["mutual_information"], "MI");
        assert_close(
            a.adjusted_mutual_information,
            &e["adjusted_mutual_information"],
            "AMI",
        );
        assert_close(
            a.normalized_mutual_information,
            &e["normalized_mutual_information"],
            "NMI",
        );
        assert_close(a.homogeneity, &e["homogeneity"], "homogeneity");
        assert_close(a.completeness, &e["completeness"], "completeness");
        assert_close(a.v_measure, &e["v_measure"], "V-measure");
    }
}

#[test]
fn identical_and_degenerate_labellings() {
    let f = fixture();
    let same = agreement(&f.truth, &f.truth).unwrap();
    assert!((same.adjusted_mutual_information - 1.0).abs() < 1e-12);
    assert!((same.adjusted_rand - 1.0).abs() < 1e-12);
    // Renaming clusters changes nothing.
    let renamed: Vec<String> = f
        .truth
        .iter()
        .map(|l| format!("segment {}", 9 - l))
        .collect();
    assert_eq!(
        agreement(&f.truth, &renamed).unwrap().v_measure,
        same.v_measure
    );
    // One cluster everywhere: both perfect by convention, as in scikit-learn.
    let one = vec![0u8; 10];
    let a = agreement(&one, &one).unwrap();
    assert_eq!(
        (
            a.adjusted_mutual_information,
            a.normalized_mutual_information
        ),
        (1.0, 1.0)
    );
    assert!(
        agreement(&one, &[0u8; 9])
            .unwrap_err()
            .contains("10 and 9 rows")
    );
    // Internal indices need 2 ≤ clusters < rows.
    let e = calinski_harabasz(&f.data, &vec![0u32; 600]).unwrap_err();
    assert!(e.contains("1 clusters among 600 rows"), "{e}");
    let all: Vec<usize> = (0..600).collect();
    assert!(davies_bouldin(&f.data, &all).is_err());
}

#[test]
fn model_selection_reports_every_index_and_what_each_prefers() {
    let f = fixture();
    let params = strata_ml::SelectionParams {
        k_min: 2,
        k_max: 7,
        n_init: 3,
        ..strata_ml::SelectionParams::default()
    };
    let s = strata_ml::select_k(&f.data, &params, &|_| {}).unwrap();
    for c in &s.candidates {
        let labels = s.model.labels();
        assert!(
            c.calinski_harabasz.is_some() && c.davies_bouldin.is_some(),
            "{c:?}"
        );
        assert!(!labels.is_empty());
    }
    // The chosen model's indices equal the standalone functions on its labels.
    let chosen = s.candidates.iter().find(|c| c.k == s.chosen_k).unwrap();
    assert_eq!(
        chosen.calinski_harabasz.unwrap(),
        calinski_harabasz(&f.data, s.model.labels()).unwrap()
    );
    assert!(
        s.reason.contains("Calinski-Harabasz") && s.reason.contains("Davies-Bouldin"),
        "{}",
        s.reason
    );
}
