//! Agglomerative clustering against the textbook O(n³) algorithm, recovery of known groups,
//! determinism and errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use strata_core::FeatureMatrix;
use strata_ml::{Dendrogram, HierarchicalError, Linkage, adjusted_rand_index};

mod common;
use common::matrix;

/// Repeatedly merge the closest pair of clusters, with cluster distances recomputed from
/// their rows: Ward as √(2·|A||B|/(|A|+|B|))·‖c_A − c_B‖. Returns the sorted heights.
fn naive_heights(data: &FeatureMatrix, linkage: Linkage) -> Vec<f64> {
    let n = data.n_rows();
    let d = data.n_cols();
    let dist = |a: usize, b: usize| -> f64 {
        data.row(a)
            .iter()
            .zip(data.row(b))
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut clusters: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let cluster_dist = |a: &[usize], b: &[usize]| -> f64 {
        match linkage {
            Linkage::Single => a
                .iter()
                .flat_map(|&i| b.iter().map(move |&j| (i, j)))
                .map(|(i, j)| dist(i, j))
                .fold(f64::INFINITY, f64::min),
            Linkage::Complete => a
                .iter()
                .flat_map(|&i| b.iter().map(move |&j| (i, j)))
                .map(|(i, j)| dist(i, j))
                .fold(0.0, f64::max),
            Linkage::Average => {
                a.iter()
                    .flat_map(|&i| b.iter().map(move |&j| (i, j)))
                    .map(|(i, j)| dist(i, j))
                    .sum::<f64>()
                    / (a.len() * b.len()) as f64
            }
            Linkage::Ward => {
                let c = |s: &[usize]| -> Vec<f64> {
                    (0..d)
                        .map(|j| s.iter().map(|&i| data.row(i)[j]).sum::<f64>() / s.len() as f64)
                        .collect()
                };
                let (ca, cb) = (c(a), c(b));
                let s: f64 = ca.iter().zip(&cb).map(|(x, y)| (x - y).powi(2)).sum();
                let (na, nb) = (a.len() as f64, b.len() as f64);
                (2.0 * na * nb / (na + nb) * s).sqrt()
            }
        }
    };
    let mut heights = Vec::new();
    while clusters.len() > 1 {
        let mut best = (f64::INFINITY, 0, 0);
        for a in 0..clusters.len() {
            for b in a + 1..clusters.len() {
                let v = cluster_dist(&clusters[a], &clusters[b]);
                if v < best.0 {
                    best = (v, a, b);
                }
            }
        }
        let merged = clusters.remove(best.2);
        clusters[best.1].extend(merged);
        heights.push(best.0);
    }
    heights.sort_by(f64::total_cmp);
    heights
}

#[test]
fn every_linkage_equals_the_textbook_algorithm() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let data = matrix(
        (0..60 * 3).map(|_| rng.random_range(-5.0..5.0)).collect(),
        3,
    );
    for linkage in [
        Linkage::Ward,
        Linkage::Complete,
        Linkage::Average,
        Linkage::Single,
    ] {
        let tree = Dendrogram::fit(&data, linkage).unwrap();
        assert_eq!(tree.merges.len(), 59);
        let want = naive_heights(&data, linkage);
        for (got, want) in tree.heights().iter().zip(&want) {
            assert!(
                (got - want).abs() < 1e-9 * want.max(1.0),
                "{linkage:?}: {got} vs {want}"
            );
        }
        // SciPy's convention: new clusters are n, n+1, …; children come before parents; the
        // last merge holds every row.
        for (i, m) in tree.merges.iter().enumerate() {
            assert!(m.a < m.b && m.b < 60 + i, "{m:?}");
        }
        assert_eq!(tree.merges.last().unwrap().size, 60);
        assert!(tree.heights().windows(2).all(|w| w[0] <= w[1]));
    }
}

/// Well-separated groups of points.
fn groups(n: usize, k: usize, seed: u64) -> (FeatureMatrix, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres: Vec<[f64; 4]> = (0..k)
        .map(|_| std::array::from_fn(|_| rng.random_range(-20.0..20.0)))
        .collect();
    let mut v = Vec::new();
    let mut truth = Vec::new();
    for i in 0..n {
        let c = i % k;
        v.extend(centres[c].iter().map(|x| x + rng.random_range(-1.5..1.5)));
        truth.push(c as u32);
    }
    (matrix(v, 4), truth)
}

#[test]
fn cuts_recover_the_groups_and_do_not_depend_on_threads() {
    let (data, truth) = groups(1500, 5, 1);
    for linkage in [
        Linkage::Ward,
        Linkage::Complete,
        Linkage::Average,
        Linkage::Single,
    ] {
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| Dendrogram::fit(&data, linkage).unwrap())
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.merges, two.merges, "{linkage:?}");
        let labels = one.cut(5).unwrap();
        let ari = adjusted_rand_index(&truth, &labels);
        assert!(ari > 0.99, "{linkage:?}: ARI {ari}");
        // Labels are numbered by first row.
        assert_eq!(labels[0], 0);
        assert_eq!(one.cut(1).unwrap(), vec![0; 1500]);
        let all = one.cut(1500).unwrap();
        assert_eq!(all, (0..1500).collect::<Vec<u32>>());
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let one = matrix(vec![1.0, 2.0], 2);
    assert_eq!(
        Dendrogram::fit(&one, Linkage::Ward).unwrap_err(),
        HierarchicalError::TooFewRows(1)
    );
    let (data, _) = groups(10, 2, 2);
    let tree = Dendrogram::fit(&data, Linkage::Average).unwrap();
    assert_eq!(
        tree.cut(0).unwrap_err(),
        HierarchicalError::BadK { k: 0, n: 10 }
    );
    assert!(tree.cut(11).is_err());
    let big = matrix((0..2 * 25_001).map(f64::from).collect(), 2);
    let e = Dendrogram::fit(&big, Linkage::Complete).unwrap_err();
    assert!(e.to_string().contains("use ward or single"), "{e}");
}
