//! Constant columns are refused by every algorithm, and every kind of saved model survives
//! JSON and assigns as the fitted model does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::FeatureMatrix;
use strata_ml::{
    Assigner, Dbscan, Dendrogram, FuzzyCMeans, FuzzyParams, Gmm, GmmParams, KMeansParams,
    KPrototypes, KPrototypesParams, Linkage, Scaler, ScalerKind, SegmentationModel,
};

mod common;
use common::matrix;

/// Three separated groups in two dimensions.
fn groups(n: usize, seed: u64) -> FeatureMatrix {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]];
    let values = (0..n)
        .flat_map(|i| {
            let c = centres[i % 3];
            [
                c[0] + rng.random_range(-1.0..1.0),
                c[1] + rng.random_range(-1.0..1.0),
            ]
        })
        .collect();
    matrix(values, 2)
}

#[test]
fn a_constant_column_is_a_clear_error_for_every_algorithm() {
    let mut values = groups(60, 1).data().to_vec();
    // Add a third column, 7 for everyone.
    let values: Vec<f64> = values
        .chunks_mut(2)
        .flat_map(|r| [r[0], r[1], 7.0])
        .collect();
    let data = FeatureMatrix::new(
        (0..60).map(|i| format!("c{i}")).collect(),
        vec!["x".into(), "y".into(), "flat".into()],
        values,
    )
    .unwrap();
    let expect = |e: String| {
        assert!(e.contains("`flat` is constant") && e.contains('7'), "{e}");
    };
    expect(
        KMeansParams::new(3)
            .check()
            .unwrap()
            .fit(&data)
            .unwrap_err()
            .to_string(),
    );
    expect(
        KMeansParams::new(3)
            .check()
            .unwrap()
            .fit_mini_batch(&data, 16)
            .unwrap_err()
            .to_string(),
    );
    expect(Gmm::fit(&data, &GmmParams::new(3)).unwrap_err().to_string());
    expect(
        FuzzyCMeans::fit(&data, &FuzzyParams::new(3))
            .unwrap_err()
            .to_string(),
    );
    expect(Dbscan::fit(&data, 1.0, 3).unwrap_err().to_string());
    expect(
        Dendrogram::fit(&data, Linkage::Ward)
            .unwrap_err()
            .to_string(),
    );
    expect(
        KPrototypes::fit(&data, &vec![0u32; 60], &KPrototypesParams::new(2))
            .unwrap_err()
            .to_string(),
    );
}

fn scaler(data: &FeatureMatrix) -> Scaler {
    Scaler::fit(data, &vec![ScalerKind::ZScore; data.n_cols()]).unwrap()
}

/// Saves and reloads through JSON, as `strata assign` does.
fn round_trip(model: &SegmentationModel) -> SegmentationModel {
    SegmentationModel::from_json(&model.to_json().unwrap(), "model.json").unwrap()
}

#[test]
fn mixture_and_fuzzy_models_assign_as_fitted_with_memberships_in_segment_order() {
    let raw = groups(300, 2);
    let s = scaler(&raw);
    let scaled = strata_core::Transform::transform(&s, &raw).unwrap();
    let mut p = GmmParams::new(3);
    p.seed = 5;
    let g = Gmm::fit(&scaled, &p).unwrap();
    let fitted = g.predict(&scaled);
    let proba = g.predict_proba(&scaled);
    // Segments numbered in reverse of the components.
    let mapping = vec![2u32, 1, 0];
    let mut model = SegmentationModel::new(
        "gmm",
        raw.names().to_vec(),
        s.clone(),
        3,
        g.means.clone(),
        vec!["a".into(), "b".into(), "c".into()],
        5,
        300,
    );
    model.assigner = Assigner::Mixture(g);
    model.segment_of_cluster = mapping.clone();
    let model = round_trip(&model);
    let a = model.assign_with_memberships(&raw).unwrap();
    let expected: Vec<u32> = fitted.iter().map(|&c| mapping[c as usize]).collect();
    assert_eq!(a.labels, expected);
    let u = a.memberships.unwrap();
    for (i, row) in u.chunks(3).enumerate() {
        for c in 0..3 {
            assert!((row[mapping[c] as usize] - proba[i * 3 + c]).abs() < 1e-12);
        }
    }

    let f = FuzzyCMeans::fit(&scaled, &FuzzyParams::new(3)).unwrap();
    let fitted = f.predict(&scaled);
    let mut model = SegmentationModel::new(
        "fuzzy",
        raw.names().to_vec(),
        s,
        3,
        f.centres.clone(),
        vec!["a".into(), "b".into(), "c".into()],
        0,
        300,
    );
    model.assigner = Assigner::Fuzzy(f);
    let model = round_trip(&model);
    let a = model.assign_with_memberships(&raw).unwrap();
    assert_eq!(a.labels, fitted);
    assert!(
        a.memberships
            .unwrap()
            .chunks(3)
            .all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12)
    );
}

#[test]
fn nearest_row_models_send_far_customers_to_the_outlier_segment() {
    // Two labelled rows; segment 2 is the outliers'.
    let raw = matrix(vec![0.0, 0.0, 10.0, 10.0], 2);
    let s = Scaler {
        kinds: vec![ScalerKind::ZScore; 2],
        mean: vec![0.0, 0.0],
        std: vec![1.0, 1.0],
    };
    let mut model = SegmentationModel::new(
        "dbscan",
        raw.names().to_vec(),
        s,
        3,
        vec![0.0, 0.0, 10.0, 10.0, 5.0, 5.0],
        vec!["left".into(), "right".into(), "Noise".into()],
        0,
        2,
    );
    model.assigner = Assigner::NearestRow {
        rows: vec![0.0, 0.0, 10.0, 10.0],
        labels: vec![0, 1],
        radius: Some(1.5),
        outlier: Some(2),
    };
    // Cluster 0 is segment 1 and cluster 1 is segment 0.
    model.segment_of_cluster = vec![1, 0];
    let model = round_trip(&model);
    let new = matrix(vec![0.5, 0.5, 9.0, 10.0, 5.0, 5.0, -0.2, 0.0], 2);
    assert_eq!(model.assign(&new).unwrap(), [1, 0, 2, 1]);

    // A model whose outlier segment does not exist is refused.
    let mut json: serde_json::Value = serde_json::from_str(&model.to_json().unwrap()).unwrap();
    json["assigner"]["outlier"] = 7.into();
    let err = SegmentationModel::from_json(&json.to_string(), "m.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("outlier segment is out of range"), "{err}");
    // So is one whose cluster mapping does not cover its clusters.
    let mut json: serde_json::Value = serde_json::from_str(&model.to_json().unwrap()).unwrap();
    json["segment_of_cluster"] = serde_json::json!([0]);
    let err = SegmentationModel::from_json(&json.to_string(), "m.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("do not map onto"), "{err}");
}
