//! Strata's shared vocabulary: the canonical entity schemas, the `FeatureMatrix` models
//! consume, diagnostics for dirty data, and estimator traits.
//!
//! This crate does no I/O; every other crate depends on it and on nothing of each other's
//! vocabulary.

mod diagnostics;
mod estimator;
mod json;
mod matrix;
mod schema;
mod sets;
mod window;

pub use diagnostics::{Location, Quarantined};
pub use estimator::{Fit, ParamError, Predict, Transform};
pub use json::{json_path, json_path_in};
pub use matrix::{FeatureMatrix, MatrixError};
pub use schema::{EntityKind, FieldSpec, FieldType, canonical_fields};
pub use sets::DisjointSets;
pub use window::{WINDOW_UNITS, unit_seconds, window_micros};
