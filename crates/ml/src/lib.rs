//! Segmentation models: scaling, k-means, PCA, model-selection metrics, segment profiling
//! and naming, the saved segmentation model that assigns new customers, and customer
//! lifetime value models (BG/NBD, Gamma-Gamma), and propensity models (boosted trees, logistic).

mod agreement;
mod clv;
mod dbscan;
mod fuzzy;
mod gap;
mod gmm;
mod hierarchical;
mod kdtree;
mod kmeans;
mod kprototypes;
mod metrics;
mod model;
mod pca;
mod profile;
mod propensity;
mod scale;
mod select;
mod stability;

pub use agreement::{Agreement, agreement, calinski_harabasz, davies_bouldin, internal_indices};
pub use clv::{
    BgNbd, ClvError, CustomerSummary, FitSettings, GammaGamma, ParetoNbd, Variant,
    customer_lifetime_value, hyp2f1, summarize,
};
pub use dbscan::{Dbscan, DbscanError, KDistance, k_distance};
pub use fuzzy::{FuzzyCMeans, FuzzyError, FuzzyParams};
pub use gap::{Gap, gap_statistic, gap_statistic_from};
pub use gmm::{Covariance, Gmm, GmmError, GmmParams};
pub use hierarchical::{Dendrogram, HierarchicalError, Linkage, MAX_MATRIX_ROWS, Merge};
pub use kdtree::KdTree;
pub use kmeans::{
    HAMERLY_FROM_DIMS, KMeans, KMeansAlgorithm, KMeansError, KMeansInit, KMeansParams,
    KMeansValidParams,
};
pub use kprototypes::{KPrototypes, KPrototypesError, KPrototypesParams};
pub use metrics::{adjusted_rand_index, knee_point, silhouette, silhouette_sampled, wcss};
pub use model::{
    Assigner, Assignment, MISSING_CATEGORY, MODEL_FORMAT_VERSION, ModelError, SegmentationModel,
};
pub use pca::{Pca, PcaError};
pub use profile::{
    FeatureStats, MembershipSummary, PredictionMean, SegmentProfile, membership_summaries,
    profile_segments,
};
pub use propensity::{
    CalibrationBin, CrossValidation, Dataset, Evaluation, Gbm, GbmSettings, Logistic,
    PropensityError, PropensitySettings, Split, Trained, average_precision, brier,
    calibration_curve, evaluate, log_loss, roc_auc, stratified_folds, stratified_split, train,
};
pub use scale::{ScaleError, Scaler, ScalerKind};
pub use select::{
    Criterion, KCandidate, SelectError, Selection, SelectionParams, check_range, recommend,
    score_labels, select_k, within_ss,
};
pub use stability::{Stability, subsample_stability};
