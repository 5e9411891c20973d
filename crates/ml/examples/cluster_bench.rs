//! Benchmark drivers for the clustering kernels, run by the `bench/*_vs_sklearn.py` scripts
//! on the same data as scikit-learn. Each prints one JSON line.
//!
//! - `cluster_bench gmm <csv> <iterations> <repeats>`: EM with full covariances from the
//!   labels in the last CSV column, exactly `iterations` steps: median seconds per iteration
//!   and the final mean log-likelihood.
//! - `cluster_bench silhouette <csv> <repeats>`: exact silhouette of the labelling in the last
//!   column: median seconds and the score.
//! - `cluster_bench dbscan <csv> <eps> <min_samples> <repeats>`: DBSCAN on the feature columns:
//!   median seconds, clusters, noise, core rows and the labels.
//! - `cluster_bench ward <csv> <k> <repeats>`: Ward's dendrogram of the feature columns, cut
//!   into k clusters: median seconds, the last merge height and the labels.
//! - `cluster_bench kmeans <npy> <k> <iterations> <repeats> <lloyd|hamerly>`: k-means from the
//!   first k rows as centres, at most `iterations` steps (tol = 0): median seconds per
//!   iteration, iterations and inertia. The data are a little-endian f64 C-order `.npy` matrix.
//! - `cluster_bench kmeans-full <npy> <k> <n_init>`: the whole default fit (k-means++ starts,
//!   `n_init` restarts, Hamerly iterations, tol 1e-4): seconds, inertia and iterations of the
//!   best run.
//! - `cluster_bench kdtree`: radius queries as DBSCAN makes them, our k-d tree against
//!   linfa-nn's (the `kdtree` crate) on blobs 100,000 × 8 (std 1), 5,000 queries at radius 1.5.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark driver prints its result and fails loudly"
)]

use std::time::Instant;
use strata_core::FeatureMatrix;
use strata_ml::{
    Covariance, Dbscan, Dendrogram, Gmm, GmmParams, KMeansAlgorithm, KMeansParams, KdTree, Linkage,
    silhouette,
};

/// Feature columns and the integer labels of the last column.
fn read_csv(path: &str) -> (FeatureMatrix, Vec<u32>) {
    let text = std::fs::read_to_string(path).expect("read the CSV");
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    let mut d = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        d = f.len() - 1;
        values.extend(f[..d].iter().map(|v| v.parse::<f64>().unwrap()));
        labels.push(f[d].parse::<u32>().unwrap());
    }
    let n = labels.len();
    let data = FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..d).map(|j| format!("x{j}")).collect(),
        values,
    )
    .unwrap();
    (data, labels)
}

/// A 2-D little-endian f64 C-order `.npy` file (what `numpy.save` writes for such arrays).
fn read_npy(path: &str) -> FeatureMatrix {
    let bytes = std::fs::read(path).expect("read the .npy file");
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not a .npy file");
    let (header_len, start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        )
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'<f8'") && header.contains("'fortran_order': False"));
    let shape = &header[header.find("'shape': (").unwrap() + 10..];
    let dims: Vec<usize> = shape[..shape.find(')').unwrap()]
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let values: Vec<f64> = bytes[start + header_len..]
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (n, d) = (dims[0], dims[1]);
    assert_eq!(values.len(), n * d);
    FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..d).map(|j| format!("x{j}")).collect(),
        values,
    )
    .unwrap()
}

/// Median of `repeats` timings of `f`, and its last result.
fn timed<T>(repeats: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        out = Some(f());
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], out.unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args[i].as_str();
    match arg(1) {
        "gmm" => {
            let (data, labels) = read_csv(arg(2));
            let iterations: usize = arg(3).parse().unwrap();
            let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
            let params = GmmParams {
                covariance: Covariance::Full,
                max_iter: iterations,
                tol: 0.0,
                ..GmmParams::new(k)
            };
            let (s, model) = timed(arg(4).parse().unwrap(), || {
                Gmm::fit_from_labels(&data, &labels, &params).unwrap()
            });
            assert_eq!(model.n_iter, iterations);
            println!(
                "{{\"seconds_per_iteration\": {}, \"log_likelihood\": {}}}",
                s / iterations as f64,
                model.log_likelihood
            );
        }
        "silhouette" => {
            let (data, labels) = read_csv(arg(2));
            let (s, score) = timed(arg(3).parse().unwrap(), || {
                silhouette(&data, &labels).unwrap()
            });
            println!("{{\"seconds\": {s}, \"silhouette\": {score}}}");
        }
        "dbscan" => {
            let (data, _) = read_csv(arg(2));
            let (eps, min_samples): (f64, usize) =
                (arg(3).parse().unwrap(), arg(4).parse().unwrap());
            let (s, r) = timed(arg(5).parse().unwrap(), || {
                Dbscan::fit(&data, eps, min_samples).unwrap()
            });
            let labels: Vec<String> = r.labels.iter().map(i32::to_string).collect();
            println!(
                "{{\"seconds\": {s}, \"clusters\": {}, \"noise\": {}, \"core\": {}, \"labels\": [{}]}}",
                r.clusters,
                r.noise,
                r.core.iter().filter(|&&c| c).count(),
                labels.join(",")
            );
        }
        "ward" => {
            let (data, _) = read_csv(arg(2));
            let k: usize = arg(3).parse().unwrap();
            let (s, tree) = timed(arg(4).parse().unwrap(), || {
                Dendrogram::fit(&data, Linkage::Ward).unwrap()
            });
            let labels: Vec<String> = tree.cut(k).unwrap().iter().map(u32::to_string).collect();
            println!(
                "{{\"seconds\": {s}, \"top_height\": {}, \"labels\": [{}]}}",
                tree.merges.last().map_or(0.0, |m| m.height),
                labels.join(",")
            );
        }
        "kmeans" => {
            let data = read_npy(arg(2));
            let (k, iterations): (usize, usize) =
                (arg(3).parse().unwrap(), arg(4).parse().unwrap());
            let init = data.data()[..k * data.n_cols()].to_vec();
            let algorithm = match arg(6) {
                "hamerly" => KMeansAlgorithm::Hamerly,
                _ => KMeansAlgorithm::Lloyd,
            };
            let params = KMeansParams::new(k)
                .algorithm(algorithm)
                .max_iter(iterations)
                .tol(0.0)
                .check()
                .unwrap();
            let (s, model) = timed(arg(5).parse().unwrap(), || {
                params.fit_from(&data, init.clone()).unwrap()
            });
            println!(
                "{{\"seconds_per_iteration\": {}, \"iterations\": {}, \"inertia\": {}}}",
                s / model.n_iter() as f64,
                model.n_iter(),
                model.inertia()
            );
        }
        "kmeans-full" => {
            let data = read_npy(arg(2));
            let (k, n_init): (usize, usize) = (arg(3).parse().unwrap(), arg(4).parse().unwrap());
            let mut params = KMeansParams::new(k).n_init(n_init).seed(0);
            // Optional fifth argument: the iterations' algorithm (default: the library's).
            match std::env::args().nth(5).as_deref() {
                Some("lloyd") => params = params.algorithm(KMeansAlgorithm::Lloyd),
                Some("hamerly") => params = params.algorithm(KMeansAlgorithm::Hamerly),
                _ => {}
            }
            let params = params.check().unwrap();
            let (s, model) = timed(1, || params.fit(&data).unwrap());
            println!(
                "{{\"seconds\": {s}, \"inertia\": {}, \"iterations\": {}}}",
                model.inertia(),
                model.n_iter()
            );
        }
        "kdtree" => kdtree_vs_linfa(),
        other => {
            panic!("unknown benchmark `{other}`: gmm, silhouette, dbscan, ward, kmeans or kdtree")
        }
    }
}

fn kdtree_vs_linfa() {
    use linfa_nn::distance::L2Dist;
    use linfa_nn::{CommonNearestNeighbour, NearestNeighbour};
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Normal};
    let (n, d, radius) = (100_000, 8, 1.5);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let normal = Normal::new(0.0, 1.0).unwrap();
    let centres: Vec<f64> = (0..8 * d).map(|_| rng.random_range(-10.0..10.0)).collect();
    let data: Vec<f64> = (0..n)
        .flat_map(|i| {
            let c = i % 8;
            (0..d)
                .map(|j| centres[c * d + j] + normal.sample(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect();
    let queries: Vec<usize> = (0..n).step_by(n / 5000).collect();
    let (ours_s, ours_found) = timed(1, || {
        let tree = KdTree::new(&data, d);
        queries
            .iter()
            .map(|&i| tree.count_within(&data[i * d..(i + 1) * d], radius, usize::MAX))
            .sum::<usize>()
    });
    let array = ndarray::Array2::from_shape_vec((n, d), data).unwrap();
    let (linfa_s, linfa_found) = timed(1, || {
        let index = CommonNearestNeighbour::KdTree
            .from_batch(&array, L2Dist)
            .unwrap();
        queries
            .iter()
            .map(|&i| index.within_range(array.row(i), radius).unwrap().len())
            .sum::<usize>()
    });
    println!(
        "{{\"queries\": {}, \"strata_seconds\": {ours_s}, \"linfa_nn_seconds\": {linfa_s}, \"ratio\": {}, \"strata_found\": {ours_found}, \"linfa_found\": {linfa_found}}}",
        queries.len(),
        linfa_s / ours_s
    );
}
