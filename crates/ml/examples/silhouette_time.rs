//! `silhouette_time <csv> <repeats>`: exact silhouette of the labelling in the last CSV column;
//! prints the median seconds and the score as JSON. Driven by bench/silhouette_vs_sklearn.py.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    reason = "a benchmark driver prints its result and fails loudly"
)]

use std::time::Instant;
use strata_core::FeatureMatrix;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let text = std::fs::read_to_string(&args[1]).expect("read the CSV");
    let repeats: usize = args[2].parse().unwrap();
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
    let mut times = Vec::new();
    let mut score = 0.0;
    for _ in 0..repeats {
        let t = Instant::now();
        score = strata_ml::silhouette(&data, &labels).unwrap();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"seconds\": {}, \"silhouette\": {score}}}",
        times[times.len() / 2]
    );
}
