//! Segmentation models: scaling, k-means, PCA, model-selection metrics, segment profiling
//! and naming, and the saved segmentation model that assigns new customers.

mod kmeans;
mod metrics;
mod model;
mod pca;
mod profile;
mod scale;
mod select;

pub use kmeans::{KMeans, KMeansError, KMeansInit, KMeansParams, KMeansValidParams};
pub use metrics::{adjusted_rand_index, knee_point, silhouette, silhouette_sampled, wcss};
pub use model::{MODEL_FORMAT_VERSION, ModelError, SegmentationModel};
pub use pca::{Pca, PcaError};
pub use profile::{FeatureStats, SegmentProfile, profile_segments};
pub use scale::{ScaleError, Scaler, ScalerKind};
pub use select::{KCandidate, Selection, SelectionParams, select_k};
