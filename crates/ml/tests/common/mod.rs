//! Helpers shared by the ml test files.

#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

use strata_core::FeatureMatrix;

/// A matrix of row-major `values` with `d` columns named `x0`, `x1`, … and rows `0`, `1`, ….
pub fn matrix(values: Vec<f64>, d: usize) -> FeatureMatrix {
    let n = values.len() / d;
    FeatureMatrix::new(
        (0..n).map(|i| i.to_string()).collect(),
        (0..d).map(|j| format!("x{j}")).collect(),
        values,
    )
    .unwrap()
}
