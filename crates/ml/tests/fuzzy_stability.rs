//! Fuzzy c-means, k-prototypes, subsample stability and the gap statistic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::FeatureMatrix;
use strata_ml::{
    FuzzyCMeans, FuzzyError, FuzzyParams, KMeansParams, adjusted_rand_index, subsample_stability,
};

fn blobs(n: usize, k: usize, spread: f64, seed: u64) -> (FeatureMatrix, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<[f64; 3]> = (0..k)
        .map(|_| std::array::from_fn(|_| rng.random_range(-10.0..10.0)))
        .collect();
    let (mut v, mut truth) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % k;
        v.extend(
            centres[c]
                .iter()
                .map(|x| x + rng.random_range(-spread..spread)),
        );
        truth.push(c as u32);
    }
    let m = FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..3).map(|j| format!("x{j}")).collect(),
        v,
    )
    .unwrap();
    (m, truth)
}

#[test]
fn fuzzy_c_means_recovers_groups_with_soft_memberships() {
    let (data, truth) = blobs(1200, 4, 1.5, 1);
    let model = FuzzyCMeans::fit(&data, &FuzzyParams::new(4)).unwrap();
    assert!(model.converged);
    let labels = model.predict(&data);
    assert!(adjusted_rand_index(&truth, &labels) > 0.95);
    let u = model.memberships(&data);
    for row in u.chunks(4) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
    // A row midway between two centres is shared; a larger fuzzifier softens everything.
    let mid: Vec<f64> = (0..3)
        .map(|j| (model.centres[j] + model.centres[3 + j]) / 2.0)
        .collect();
    let probe = FeatureMatrix::new(vec!["p".into()], data.names().to_vec(), mid).unwrap();
    let pu = model.memberships(&probe);
    assert!((pu[0] - pu[1]).abs() < 1e-9, "{pu:?}");
    let soft = FuzzyCMeans::fit(
        &data,
        &FuzzyParams {
            m: 3.0,
            ..FuzzyParams::new(4)
        },
    )
    .unwrap();
    let max_hard: f64 = u
        .chunks(4)
        .map(|r| r.iter().copied().fold(0.0, f64::max))
        .sum();
    let max_soft: f64 = soft
        .memberships(&data)
        .chunks(4)
        .map(|r| r.iter().copied().fold(0.0, f64::max))
        .sum();
    assert!(max_soft < max_hard);
    // A row exactly on a centre belongs to it fully.
    let on = FeatureMatrix::new(
        vec!["c".into()],
        data.names().to_vec(),
        model.centres[..3].to_vec(),
    )
    .unwrap();
    assert_eq!(model.memberships(&on)[0], 1.0);
}

#[test]
fn fuzzy_results_do_not_depend_on_threads_and_bad_parameters_fail() {
    let (data, _) = blobs(10_000, 3, 2.0, 2);
    let fit = |t: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
            .install(|| FuzzyCMeans::fit(&data, &FuzzyParams::new(3)).unwrap())
    };
    let (a, b) = (fit(1), fit(2));
    assert!(
        a.centres
            .iter()
            .zip(&b.centres)
            .all(|(x, y)| x.to_bits() == y.to_bits())
    );
    assert!(matches!(
        FuzzyCMeans::fit(
            &data,
            &FuzzyParams {
                m: 1.0,
                ..FuzzyParams::new(3)
            }
        ),
        Err(FuzzyError::BadFuzzifier(_))
    ));
    assert!(matches!(
        FuzzyCMeans::fit(&data, &FuzzyParams::new(0)),
        Err(FuzzyError::BadK { k: 0, .. })
    ));
}

fn kmeans_labels(data: &FeatureMatrix, k: usize, seed: u64) -> Result<Vec<u32>, String> {
    KMeansParams::new(k)
        .seed(seed)
        .n_init(3)
        .check()
        .map_err(|e| e.to_string())?
        .fit(data)
        .map(|m| m.labels().to_vec())
        .map_err(|e| e.to_string())
}

#[test]
fn stability_separates_real_structure_from_forced_splits() {
    // Four clear groups: k = 4 is stable.
    let (data, _) = blobs(2000, 4, 1.0, 3);
    let reference = kmeans_labels(&data, 4, 1).unwrap();
    let s = subsample_stability(
        &data,
        &reference,
        |d, seed| kmeans_labels(d, 4, seed),
        10,
        0.8,
        7,
    )
    .unwrap();
    assert_eq!(s.ari.len(), 10);
    assert!(s.ari_mean > 0.99, "{s:?}");
    assert!(s.jaccard.iter().all(|&j| j > 0.95), "{:?}", s.jaccard);
    // One uniform cloud cut into 7: the cuts move between subsamples.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let cloud = FeatureMatrix::new(
        (0..2000).map(|i| i.to_string()).collect(),
        vec!["x".into(), "y".into()],
        (0..4000).map(|_| rng.random_range(0.0..1.0)).collect(),
    )
    .unwrap();
    let reference = kmeans_labels(&cloud, 7, 1).unwrap();
    let u = subsample_stability(
        &cloud,
        &reference,
        |d, seed| kmeans_labels(d, 7, seed),
        10,
        0.8,
        7,
    )
    .unwrap();
    assert!(
        u.ari_mean < s.ari_mean - 0.1,
        "{} vs {}",
        u.ari_mean,
        s.ari_mean
    );
    assert!(u.jaccard.iter().any(|&j| j < 0.85), "{:?}", u.jaccard);
    // Same seed, same answer.
    let again = subsample_stability(
        &data,
        &kmeans_labels(&data, 4, 1).unwrap(),
        |d, seed| kmeans_labels(d, 4, seed),
        10,
        0.8,
        7,
    )
    .unwrap();
    assert_eq!(again.ari, s.ari);
    assert!(
        subsample_stability(&data, &[0], |d, seed| kmeans_labels(d, 4, seed), 10, 0.8, 7).is_err()
    );
    assert!(
        subsample_stability(
            &data,
            &kmeans_labels(&data, 4, 1).unwrap(),
            |d, seed| kmeans_labels(d, 4, seed),
            0,
            0.8,
            7
        )
        .is_err()
    );
}

#[test]
fn the_gap_statistic_finds_the_groups_and_says_one_for_a_uniform_cloud() {
    let (data, _) = blobs(900, 3, 1.0, 5);
    let g = strata_ml::gap_statistic(&data, 1, 6, 8, 2, 1).unwrap();
    assert_eq!(g.chosen, 3, "{g:?}");
    assert_eq!(g.ks, vec![1, 2, 3, 4, 5, 6]);
    // From the data's own inertias (as model selection passes them): the same statistic.
    let inertias: Vec<f64> = (1..=6)
        .map(|k| {
            KMeansParams::new(k)
                .seed(1)
                .n_init(2)
                .check()
                .unwrap()
                .fit(&data)
                .unwrap()
                .inertia()
        })
        .collect();
    let from = strata_ml::gap_statistic_from(&data, 1, &inertias, 8, 2, 1).unwrap();
    assert_eq!(
        (from.gap, from.s, from.chosen),
        (g.gap.clone(), g.s.clone(), g.chosen)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let cloud = FeatureMatrix::new(
        (0..600).map(|i| i.to_string()).collect(),
        vec!["x".into(), "y".into()],
        (0..1200).map(|_| rng.random_range(0.0..1.0)).collect(),
    )
    .unwrap();
    let u = strata_ml::gap_statistic(&cloud, 1, 5, 8, 2, 1).unwrap();
    assert_eq!(u.chosen, 1, "{u:?}");
    assert!(strata_ml::gap_statistic(&cloud, 0, 5, 8, 2, 1).is_err());
    assert!(strata_ml::gap_statistic(&cloud, 1, 5, 1, 2, 1).is_err());
}

#[test]
fn k_prototypes_uses_both_numeric_and_categorical_signal() {
    use strata_ml::{KPrototypes, KPrototypesError, KPrototypesParams};
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let n = 1200;
    // Four groups: numeric tells {0,1} from {2,3}; only the categories tell 0 from 1 and 2 from 3.
    let mut numeric = Vec::new();
    let mut cats = Vec::new();
    let mut truth = Vec::new();
    for i in 0..n {
        let g = (i % 4) as u32;
        let centre = if g < 2 { -5.0 } else { 5.0 };
        numeric.push(centre + rng.random_range(-1.0..1.0));
        numeric.push(rng.random_range(-1.0..1.0));
        // Two categorical features tied to the group 90% of the time.
        for f in 0..2u32 {
            let v = if rng.random::<f64>() < 0.9 {
                g % 2 + 10 * f
            } else {
                rng.random_range(0..4) + 10 * f
            };
            cats.push(v);
        }
        truth.push(g);
    }
    let data = FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        vec!["a".into(), "b".into()],
        numeric,
    )
    .unwrap();
    let params = KPrototypesParams {
        gamma: Some(3.0),
        seed: 2,
        ..KPrototypesParams::new(4)
    };
    let model = KPrototypes::fit(&data, &cats, &params).unwrap();
    let ari = adjusted_rand_index(&truth, &model.labels);
    assert!(ari > 0.7, "ARI {ari}");
    // Without the categories (gamma = 0) only two groups are separable.
    let blind = KPrototypes::fit(
        &data,
        &cats,
        &KPrototypesParams {
            gamma: Some(0.0),
            ..params
        },
    )
    .unwrap();
    assert!(adjusted_rand_index(&truth, &blind.labels) < ari - 0.2);
    // Deterministic, and clear errors.
    assert_eq!(
        KPrototypes::fit(&data, &cats, &params).unwrap().labels,
        model.labels
    );
    assert_eq!(
        KPrototypes::fit(&data, &cats, &KPrototypesParams::new(0)).unwrap_err(),
        KPrototypesError::BadK { k: 0, n }
    );
    assert!(KPrototypes::fit(&data, &cats[..7], &params).is_err());
    assert!(
        KPrototypes::fit(
            &data,
            &cats,
            &KPrototypesParams {
                gamma: Some(-1.0),
                ..params
            }
        )
        .is_err()
    );
}
