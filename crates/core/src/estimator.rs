//! Estimator traits shared by every model: unchecked params are checked once, fitted into a
//! model, and the model predicts or transforms.

use crate::FeatureMatrix;

/// A parameter set that failed its checks; always a user error (bad config).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameter `{name}`: {reason}")]
pub struct ParamError {
    pub name: &'static str,
    pub reason: String,
}

impl ParamError {
    pub fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}

/// Fits a model from a feature matrix with checked parameters.
pub trait Fit {
    type Model;
    type Error: std::error::Error;
    fn fit(&self, data: &FeatureMatrix) -> Result<Self::Model, Self::Error>;
}

/// Assigns each row to an output (a cluster, a score).
pub trait Predict {
    type Output;
    fn predict(&self, data: &FeatureMatrix) -> Self::Output;
}

/// Maps a feature matrix to another of the same rows.
pub trait Transform {
    type Error: std::error::Error;
    fn transform(&self, data: &FeatureMatrix) -> Result<FeatureMatrix, Self::Error>;
}
