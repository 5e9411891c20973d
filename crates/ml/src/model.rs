//! The saved segmentation model: everything needed to assign a new customer to a segment —
//! feature names, fitted scaler, centres, segment names — with a format version.

use crate::kmeans::{KMeans, KMeansError};
use crate::scale::{ScaleError, Scaler};
use serde::{Deserialize, Serialize};
use std::path::Path;
use strata_core::{FeatureMatrix, Predict, Transform};

/// Bumped when the saved layout changes; older files are read or refused clearly.
pub const MODEL_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("cannot read model {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Strata segmentation model: {message}")]
    Format { path: String, message: String },
    #[error(
        "{path} was written by a newer Strata (model format {found}); this build reads format {supported} or older"
    )]
    TooNew {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("the model expects features [{expected}] but the input has [{got}]")]
    Features { expected: String, got: String },
    #[error(transparent)]
    Scale(#[from] ScaleError),
    #[error(transparent)]
    KMeans(#[from] KMeansError),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentationModel {
    pub format_version: u32,
    pub strata_version: String,
    pub algorithm: String,
    pub features: Vec<String>,
    pub scaler: Scaler,
    pub k: usize,
    /// Row-major `k × features` centres in the scaled space.
    pub centroids: Vec<f64>,
    pub segment_names: Vec<String>,
    pub seed: u64,
    pub trained_rows: usize,
}

impl SegmentationModel {
    pub fn from_kmeans(
        features: Vec<String>,
        scaler: Scaler,
        model: &KMeans,
        names: Vec<String>,
        seed: u64,
        trained_rows: usize,
    ) -> Self {
        Self {
            format_version: MODEL_FORMAT_VERSION,
            strata_version: env!("CARGO_PKG_VERSION").to_string(),
            algorithm: "kmeans".into(),
            features,
            scaler,
            k: model.k(),
            centroids: model.centroids().to_vec(),
            segment_names: names,
            seed,
            trained_rows,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::Format {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| ModelError::Format {
                path: shown.clone(),
                message: "no `format_version` field".into(),
            })?;
        if version > u64::from(MODEL_FORMAT_VERSION) {
            return Err(ModelError::TooNew {
                path: shown,
                found: version as u32,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        let model: Self = serde_json::from_value(value).map_err(|e| ModelError::Format {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let d = model.features.len();
        let s = &model.scaler;
        if s.kinds.len() != d
            || s.mean.len() != d
            || s.std.len() != d
            || model.centroids.len() != model.k * d
            || model.segment_names.len() != model.k
            || model.k == 0
        {
            return Err(ModelError::Format {
                path: shown,
                message: format!(
                    "its parts disagree: {d} features, scaler for {}, k = {} with {} centre values and {} names",
                    s.kinds.len(),
                    model.k,
                    model.centroids.len(),
                    model.segment_names.len()
                ),
            });
        }
        Ok(model)
    }

    /// Assigns raw (unscaled) feature rows to segments.
    pub fn assign(&self, raw: &FeatureMatrix) -> Result<Vec<u32>, ModelError> {
        if raw.names() != self.features.as_slice() {
            return Err(ModelError::Features {
                expected: self.features.join(", "),
                got: raw.names().join(", "),
            });
        }
        let scaled = self.scaler.transform(raw)?;
        let kmeans = KMeans::from_centroids(self.k, self.features.len(), self.centroids.clone())?;
        Ok(kmeans.predict(&scaled))
    }
}
