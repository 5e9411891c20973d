//! Choosing k: fit k-means over a range of k, score each by silhouette and WCSS, and pick one
//! with a stated reason.

use crate::kmeans::{KMeans, KMeansError, KMeansParams};
use crate::metrics::{knee_point, silhouette_sampled};
use serde::Serialize;
use strata_core::{FeatureMatrix, ParamError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SelectionParams {
    pub k_min: usize,
    pub k_max: usize,
    pub n_init: usize,
    pub seed: u64,
    /// Rows used for the silhouette of each k (exact when n is at most this).
    pub silhouette_sample: usize,
    /// A k whose smallest segment holds less than this share of customers is not chosen.
    pub min_segment_share: f64,
}

impl Default for SelectionParams {
    fn default() -> Self {
        Self {
            k_min: 2,
            k_max: 8,
            n_init: 10,
            seed: 42,
            silhouette_sample: 4000,
            min_segment_share: 0.01,
        }
    }
}

/// Scores of one k.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KCandidate {
    pub k: usize,
    pub wcss: f64,
    pub silhouette: Option<f64>,
    /// Higher is better (None when every row is in one segment).
    pub calinski_harabasz: Option<f64>,
    /// Lower is better.
    pub davies_bouldin: Option<f64>,
    pub smallest_share: f64,
    pub eligible: bool,
}

/// The outcome of model selection: every candidate, the chosen k, the elbow, and the model.
#[derive(Debug, Clone)]
pub struct Selection {
    pub candidates: Vec<KCandidate>,
    pub chosen_k: usize,
    pub elbow_k: Option<usize>,
    pub reason: String,
    pub model: KMeans,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    KMeans(#[from] KMeansError),
}

/// Fits k = `k_min..=k_max` on scaled data; `progress(k)` is called after each fit.
pub fn select_k(
    data: &FeatureMatrix,
    params: &SelectionParams,
    progress: &dyn Fn(usize),
) -> Result<Selection, SelectError> {
    if params.k_min < 2 {
        return Err(ParamError::new(
            "k_min",
            "must be at least 2 (silhouette needs two segments)",
        )
        .into());
    }
    if params.k_max < params.k_min {
        return Err(ParamError::new("k_max", format!("must be ≥ k_min = {}", params.k_min)).into());
    }
    if !(0.0..0.5).contains(&params.min_segment_share) {
        return Err(ParamError::new("min_segment_share", "must be in [0, 0.5)").into());
    }
    let n = data.n_rows();
    let k_max = params.k_max.min(n.saturating_sub(1));
    if k_max < params.k_min {
        return Err(KMeansError::TooFewRows {
            k: params.k_min + 1,
            n,
        }
        .into());
    }
    let mut candidates = Vec::new();
    let mut models = Vec::new();
    for k in params.k_min..=k_max {
        let model = KMeansParams::new(k)
            .n_init(params.n_init)
            .seed(params.seed)
            .check()?
            .fit(data)?;
        let mut sizes = vec![0usize; k];
        model.labels().iter().for_each(|&l| sizes[l as usize] += 1);
        let smallest_share = sizes.iter().copied().min().unwrap_or(0) as f64 / n as f64;
        let silhouette =
            silhouette_sampled(data, model.labels(), params.silhouette_sample, params.seed);
        candidates.push(KCandidate {
            k,
            wcss: model.inertia(),
            silhouette,
            calinski_harabasz: crate::calinski_harabasz(data, model.labels()).ok(),
            davies_bouldin: crate::davies_bouldin(data, model.labels()).ok(),
            smallest_share,
            eligible: smallest_share >= params.min_segment_share,
        });
        models.push(model);
        progress(k);
    }
    let xs: Vec<f64> = candidates.iter().map(|c| c.k as f64).collect();
    let ys: Vec<f64> = candidates.iter().map(|c| c.wcss).collect();
    let elbow_k = knee_point(&xs, &ys).map(|i| candidates[i].k);
    let score = |c: &KCandidate| c.silhouette.unwrap_or(f64::NEG_INFINITY);
    let best_of = |only_eligible: bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.eligible || !only_eligible)
            .max_by(|a, b| score(a.1).total_cmp(&score(b.1)).then(b.0.cmp(&a.0)))
            .map(|(i, _)| i)
    };
    let (index, note) = match best_of(true) {
        Some(i) => (i, String::new()),
        None => (
            best_of(false).unwrap_or(0),
            format!(
                "; no k kept every segment above {:.1}% of customers, so the size rule was waived",
                params.min_segment_share * 100.0
            ),
        ),
    };
    let chosen = &candidates[index];
    let elbow = match elbow_k {
        Some(e) if e == chosen.k => "; the WCSS elbow agrees".to_string(),
        Some(e) => format!("; the WCSS elbow is at k = {e}"),
        None => String::new(),
    };
    let silhouette = chosen
        .silhouette
        .map_or("undefined: one non-empty segment".to_string(), |s| {
            format!("{s:.3}")
        });
    // What the other indices prefer, among the same candidates.
    let prefer = |name: &str, pick: Option<usize>| match pick {
        Some(k) if k == chosen.k => format!("; {name} agrees"),
        Some(k) => format!("; {name} prefers k = {k}"),
        None => String::new(),
    };
    let arg = |f: &dyn Fn(&KCandidate) -> Option<f64>, higher: bool| {
        candidates
            .iter()
            .filter_map(|c| f(c).map(|v| (c.k, if higher { v } else { -v })))
            .fold(None, |b: Option<(usize, f64)>, x| match b {
                Some(bb) if bb.1 >= x.1 => Some(bb),
                _ => Some(x),
            })
            .map(|(k, _)| k)
    };
    let ch = prefer("Calinski-Harabasz", arg(&|c| c.calinski_harabasz, true));
    let db = prefer("Davies-Bouldin", arg(&|c| c.davies_bouldin, false));
    let reason = format!(
        "k = {} has the highest silhouette ({}) of k = {}..{}{}{}{}{}",
        chosen.k, silhouette, params.k_min, k_max, elbow, ch, db, note
    );
    Ok(Selection {
        chosen_k: chosen.k,
        elbow_k,
        reason,
        model: models.swap_remove(index),
        candidates,
    })
}
