//! The saved segmentation model: everything needed to assign a new customer to a segment —
//! feature names, fitted scaler, optional PCA, the fitted clustering (centres, mixture, fuzzy
//! centres or labelled rows), segment names — with a format version. Format 1 (k-means only,
//! before other algorithms could be saved) still loads: its missing parts have defaults that
//! mean exactly what format 1 did.

use crate::fuzzy::FuzzyCMeans;
use crate::gmm::Gmm;
use crate::kdtree::KdTree;
use crate::kmeans::{KMeans, KMeansError};
use crate::kprototypes::KPrototypes;
use crate::pca::Pca;
use crate::scale::{ScaleError, Scaler};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;
use strata_core::{FeatureMatrix, Predict, Transform};

/// Bumped when the saved layout changes; older files are read or refused clearly.
pub const MODEL_FORMAT_VERSION: u32 = 2;

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
    #[error(transparent)]
    Matrix(#[from] strata_core::MatrixError),
}

/// How a fitted model places a (scaled, projected) row in one of its clusters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Assigner {
    /// The nearest of `centroids` (k-means).
    #[default]
    NearestCentre,
    /// The most probable mixture component; memberships are the posterior probabilities.
    Mixture(Gmm),
    /// The largest fuzzy membership; memberships are the degrees.
    Fuzzy(FuzzyCMeans),
    /// The cluster of the nearest labelled training row (DBSCAN's core rows; every row of a
    /// hierarchical clustering, whose clusters need not be compact). Beyond `radius` a row is an
    /// outlier and goes to segment `outlier` (DBSCAN's noise) when the model had one.
    NearestRow {
        rows: Vec<f64>,
        labels: Vec<u32>,
        radius: Option<f64>,
        outlier: Option<u32>,
    },
    /// k-prototypes on the numeric features and the categorical ones named in `features`;
    /// `vocabulary[j]` lists feature j's categories (sorted; a category's code is its index).
    Prototypes {
        model: KPrototypes,
        features: Vec<String>,
        vocabulary: Vec<Vec<String>>,
    },
}

impl Assigner {
    /// Categorical features the model needs besides the numeric ones.
    pub fn categorical(&self) -> &[String] {
        match self {
            Self::Prototypes { features, .. } => features,
            _ => &[],
        }
    }
}

/// The value of a categorical feature a customer does not have, as the model saw it in
/// training.
pub const MISSING_CATEGORY: &str = "(missing)";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentationModel {
    pub format_version: u32,
    pub strata_version: String,
    pub algorithm: String,
    pub features: Vec<String>,
    pub scaler: Scaler,
    /// Principal components the model clustered in, when `[segmentation] pca_variance` was set.
    #[serde(default)]
    pub projection: Option<Pca>,
    pub k: usize,
    /// Row-major `k × dims` segment centres in the space the model clustered in (scaled,
    /// then projected), in segment order.
    pub centroids: Vec<f64>,
    #[serde(default)]
    pub assigner: Assigner,
    /// Segment of each cluster of `assigner` (segments are numbered largest first, clusters
    /// in the algorithm's own order); empty means the identity.
    #[serde(default)]
    pub segment_of_cluster: Vec<u32>,
    pub segment_names: Vec<String>,
    pub seed: u64,
    pub trained_rows: usize,
}

/// Segments of new rows, and soft memberships (`n × k`, segment order) for mixtures and fuzzy
/// c-means.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub labels: Vec<u32>,
    pub memberships: Option<Vec<f64>>,
}

impl SegmentationModel {
    /// A model with nearest-centre assignment (k-means); other algorithms set `assigner`,
    /// `segment_of_cluster` and `projection` on the result.
    pub fn from_kmeans(
        features: Vec<String>,
        scaler: Scaler,
        model: &KMeans,
        names: Vec<String>,
        seed: u64,
        trained_rows: usize,
    ) -> Self {
        Self::new(
            "kmeans",
            features,
            scaler,
            model.k(),
            model.centroids().to_vec(),
            names,
            seed,
            trained_rows,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        algorithm: &str,
        features: Vec<String>,
        scaler: Scaler,
        k: usize,
        centroids: Vec<f64>,
        names: Vec<String>,
        seed: u64,
        trained_rows: usize,
    ) -> Self {
        Self {
            format_version: MODEL_FORMAT_VERSION,
            strata_version: env!("CARGO_PKG_VERSION").to_string(),
            algorithm: algorithm.to_string(),
            features,
            scaler,
            projection: None,
            k,
            centroids,
            assigner: Assigner::NearestCentre,
            segment_of_cluster: Vec::new(),
            segment_names: names,
            seed,
            trained_rows,
        }
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Dimensions of the space the model clusters in.
    pub fn dims(&self) -> usize {
        self.projection
            .as_ref()
            .map_or(self.features.len(), Pca::n_components)
    }

    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_json(&text, &shown)
    }

    /// Parses and checks a saved model; `shown` names it in errors.
    pub fn from_json(text: &str, shown: &str) -> Result<Self, ModelError> {
        let format = |message: String| ModelError::Format {
            path: shown.to_string(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format(e.to_string()))?;
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| format("no `format_version` field".into()))?;
        if version > u64::from(MODEL_FORMAT_VERSION) {
            return Err(ModelError::TooNew {
                path: shown.to_string(),
                found: version as u32,
                supported: MODEL_FORMAT_VERSION,
            });
        }
        let model: Self = serde_json::from_value(value).map_err(|e| format(e.to_string()))?;
        let d = model.features.len();
        let s = &model.scaler;
        let dims = model.dims();
        if s.kinds.len() != d
            || s.mean.len() != d
            || s.std.len() != d
            || model.centroids.len() != model.k * dims
            || model.segment_names.len() != model.k
            || model.k == 0
        {
            return Err(format(format!(
                "its parts disagree: {d} features, scaler for {}, k = {} with {} centre values for {dims} dimensions and {} names",
                s.kinds.len(),
                model.k,
                model.centroids.len(),
                model.segment_names.len()
            )));
        }
        if let Some(p) = &model.projection
            && p.input_dims() != d
        {
            return Err(format(format!(
                "its PCA takes {} features, the model has {d}",
                p.input_dims()
            )));
        }
        let clusters = match &model.assigner {
            Assigner::NearestCentre => model.k,
            Assigner::Mixture(g) => {
                if g.d != dims {
                    return Err(format(format!(
                        "mixture of {} dimensions, model of {dims}",
                        g.d
                    )));
                }
                g.k()
            }
            Assigner::Fuzzy(f) => {
                if f.d != dims {
                    return Err(format(format!(
                        "fuzzy centres of {} dimensions, model of {dims}",
                        f.d
                    )));
                }
                f.k()
            }
            Assigner::Prototypes {
                model: p,
                features,
                vocabulary,
            } => {
                let m = features.len();
                // Codes are looked up by binary search: each vocabulary sorted, no repeats.
                let sorted = vocabulary.iter().all(|v| v.windows(2).all(|w| w[0] < w[1]));
                if !sorted
                    || vocabulary.len() != m
                    || p.means.len() != p.k() * dims
                    || p.modes.len() != p.k() * m
                    || p.modes.iter().enumerate().any(|(i, &c)| {
                        vocabulary
                            .get(i % m.max(1))
                            .is_none_or(|v| c as usize >= v.len())
                    })
                {
                    return Err(format(format!(
                        "its prototypes do not fit {dims} numeric and {m} categorical features"
                    )));
                }
                p.k()
            }
            Assigner::NearestRow {
                rows,
                labels,
                outlier,
                radius,
            } => {
                if rows.len() != labels.len() * dims || labels.is_empty() {
                    return Err(format(format!(
                        "{} labelled rows with {} values for {dims} dimensions",
                        labels.len(),
                        rows.len()
                    )));
                }
                if radius.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                    return Err(format("the neighbour radius must be positive".into()));
                }
                if outlier.is_some_and(|o| o as usize >= model.k) {
                    return Err(format("the outlier segment is out of range".into()));
                }
                labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0)
            }
        };
        let mapped = if model.segment_of_cluster.is_empty() {
            // Without a map, clusters are segments: soft memberships need one per segment.
            match model.assigner {
                Assigner::NearestRow { .. } => clusters <= model.k,
                _ => clusters == model.k,
            }
        } else {
            model.segment_of_cluster.len() == clusters
                && model
                    .segment_of_cluster
                    .iter()
                    .all(|&s| (s as usize) < model.k)
        };
        if !mapped {
            return Err(format(format!(
                "{clusters} clusters do not map onto its {} segments",
                model.k
            )));
        }
        Ok(model)
    }

    /// Raw rows into the space the model clusters in: scaled, then projected.
    fn prepare(&self, raw: &FeatureMatrix) -> Result<FeatureMatrix, ModelError> {
        if raw.names() != self.features.as_slice() {
            return Err(ModelError::Features {
                expected: self.features.join(", "),
                got: raw.names().join(", "),
            });
        }
        let scaled = self.scaler.transform(raw)?;
        Ok(match &self.projection {
            Some(p) => p.transform(&scaled)?,
            None => scaled,
        })
    }

    fn segment(&self, cluster: u32) -> u32 {
        self.segment_of_cluster
            .get(cluster as usize)
            .copied()
            .unwrap_or(cluster)
    }

    /// Soft memberships in cluster order → segment order.
    fn to_segments(&self, memberships: Vec<f64>, clusters: usize) -> Vec<f64> {
        if self.segment_of_cluster.is_empty() {
            return memberships;
        }
        let k = self.k;
        let mut out = vec![0.0; memberships.len() / clusters.max(1) * k];
        for (row, o) in memberships.chunks(clusters).zip(out.chunks_mut(k)) {
            for (c, v) in row.iter().enumerate() {
                o[self.segment(c as u32) as usize] += v;
            }
        }
        out
    }

    /// Assigns raw (unscaled) feature rows to segments.
    pub fn assign(&self, raw: &FeatureMatrix) -> Result<Vec<u32>, ModelError> {
        Ok(self.assign_with_memberships(raw)?.labels)
    }

    /// Segments of raw (unscaled) rows, with soft memberships for mixtures and fuzzy models.
    /// A k-prototypes model also needs the categorical values: see [`Self::assign_mixed`].
    pub fn assign_with_memberships(&self, raw: &FeatureMatrix) -> Result<Assignment, ModelError> {
        self.assign_mixed(raw, &[])
    }

    /// Like [`Self::assign_with_memberships`], with each row's values of the model's
    /// categorical features (row-major, `assigner.categorical()` per row; ignored by models
    /// without them). An unseen category matches no segment's mode.
    pub fn assign_mixed(
        &self,
        raw: &FeatureMatrix,
        categories: &[String],
    ) -> Result<Assignment, ModelError> {
        let x = self.prepare(raw)?;
        let (labels, memberships) = match &self.assigner {
            Assigner::NearestCentre => {
                let kmeans = KMeans::from_centroids(self.k, self.dims(), self.centroids.clone())?;
                (kmeans.predict(&x), None)
            }
            Assigner::Mixture(g) => {
                let p = g.predict_proba(&x);
                (argmax_rows(&p, g.k()), Some(self.to_segments(p, g.k())))
            }
            Assigner::Fuzzy(f) => {
                let u = f.memberships(&x);
                (argmax_rows(&u, f.k()), Some(self.to_segments(u, f.k())))
            }
            Assigner::Prototypes {
                model,
                features,
                vocabulary,
            } => {
                let m = features.len();
                if categories.len() != x.n_rows() * m {
                    return Err(ModelError::Features {
                        expected: format!(
                            "{} and the categorical {}",
                            self.features.join(", "),
                            features.join(", ")
                        ),
                        got: format!(
                            "{} category values for {} rows",
                            categories.len(),
                            x.n_rows()
                        ),
                    });
                }
                let codes: Vec<u32> = categories
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        vocabulary[i % m]
                            .binary_search(v)
                            .map_or(u32::MAX, |c| c as u32)
                    })
                    .collect();
                (model.predict(&x, &codes), None)
            }
            Assigner::NearestRow {
                rows,
                labels,
                radius,
                outlier,
            } => {
                let tree = KdTree::new(rows, self.dims());
                let out = (0..x.n_rows())
                    .into_par_iter()
                    .map(|i| {
                        let (j, d2) = tree.nearest(x.row(i)).unwrap_or((0, 0.0));
                        match (outlier, radius) {
                            // Outliers are segment ids already.
                            (Some(o), Some(r)) if d2 > r * r => *o,
                            _ => self.segment(labels[j]),
                        }
                    })
                    .collect();
                return Ok(Assignment {
                    labels: out,
                    memberships: None,
                });
            }
        };
        Ok(Assignment {
            labels: labels.into_iter().map(|c| self.segment(c)).collect(),
            memberships,
        })
    }
}

/// Index of the largest value of each row of `k` (ties: the first).
pub(crate) fn argmax_rows(values: &[f64], k: usize) -> Vec<u32> {
    values
        .chunks(k.max(1))
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (c, &v)| if v > b.1 { (c, v) } else { b },
                )
                .0 as u32
        })
        .collect()
}
