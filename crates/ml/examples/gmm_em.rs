//! `gmm_em <csv> <iterations> <repeats>`: EM with full covariances from the labels in the last
//! CSV column, exactly `iterations` steps; prints the median seconds per iteration and the
//! final mean log-likelihood as JSON. Driven by bench/gmm_vs_sklearn.py.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark driver prints its result and fails loudly"
)]

use std::time::Instant;
use strata_core::FeatureMatrix;
use strata_ml::{Covariance, Gmm, GmmParams};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("read the CSV");
    let iterations: usize = args[2].parse().unwrap();
    let repeats: usize = args[3].parse().unwrap();
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    let mut d = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split(',').collect();
        d = f.len() - 1;
        values.extend(f[..d].iter().map(|v| v.parse::<f64>().unwrap()));
        labels.push(f[d].parse::<u32>().unwrap());
    }
    let n = labels.len();
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let data = FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..d).map(|j| format!("x{j}")).collect(),
        values,
    )
    .unwrap();
    let params = GmmParams {
        covariance: Covariance::Full,
        max_iter: iterations,
        tol: 0.0,
        ..GmmParams::new(k)
    };
    let mut times = Vec::new();
    let mut ll = 0.0;
    for _ in 0..repeats {
        let t = Instant::now();
        let model = Gmm::fit_from_labels(&data, &labels, &params).unwrap();
        times.push(t.elapsed().as_secs_f64() / iterations as f64);
        assert_eq!(model.n_iter, iterations);
        ll = model.log_likelihood;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"seconds_per_iteration\": {}, \"log_likelihood\": {ll}}}",
        times[times.len() / 2]
    );
}
