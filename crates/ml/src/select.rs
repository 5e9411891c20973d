//! Choosing k: fit a model over a range of k, score each by WCSS (with its elbow),
//! silhouette, Calinski-Harabasz, Davies-Bouldin, and optionally the gap statistic and (for
//! mixtures) BIC; recommend one k with the reasons: the deciding criterion, what each other
//! criterion prefers, and how many agree.

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
    /// Uniform reference sets for the gap statistic (0: not computed; it costs this many
    /// extra k-means fits per k).
    pub gap_references: usize,
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
            gap_references: 0,
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
    /// Bayesian information criterion of a mixture with k components (lower is better).
    pub bic: Option<f64>,
    /// Gap statistic and its standard error (with `gap_references`).
    pub gap: Option<f64>,
    pub gap_sd: Option<f64>,
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
    #[error("gap statistic: {0}")]
    Gap(String),
}

/// The score that decides k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criterion {
    /// Highest (sampled) silhouette: k-means, hierarchical cuts.
    Silhouette,
    /// Lowest BIC: Gaussian mixtures.
    Bic,
    /// The knee of the cost curve (`wcss`), where adding a segment stops paying: mixed
    /// numeric and categorical data (k-prototypes), where the other indices see only the
    /// numeric part. Without an eligible knee, the silhouette decides.
    Elbow,
}

/// Within-cluster sum of squares of `labels` around their own means.
pub fn within_ss(data: &FeatureMatrix, labels: &[u32], k: usize) -> f64 {
    let d = data.n_cols();
    let mut sums = vec![0.0; k * d];
    let mut counts = vec![0usize; k];
    for (i, &l) in labels.iter().enumerate() {
        counts[l as usize] += 1;
        for (s, v) in sums[l as usize * d..(l as usize + 1) * d]
            .iter_mut()
            .zip(data.row(i))
        {
            *s += v;
        }
    }
    for (c, &m) in counts.iter().enumerate() {
        sums[c * d..(c + 1) * d]
            .iter_mut()
            .for_each(|s| *s /= m.max(1) as f64);
    }
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let c = &sums[l as usize * d..(l as usize + 1) * d];
            data.row(i)
                .iter()
                .zip(c)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        })
        .sum()
}

/// Scores one labelling into `k` segments (`wcss` from the model, or [`within_ss`]).
pub fn score_labels(
    data: &FeatureMatrix,
    labels: &[u32],
    k: usize,
    wcss: f64,
    params: &SelectionParams,
) -> KCandidate {
    let n = data.n_rows().max(1);
    let mut sizes = vec![0usize; k];
    labels.iter().for_each(|&l| sizes[l as usize] += 1);
    let smallest_share = sizes.iter().copied().min().unwrap_or(0) as f64 / n as f64;
    let indices = crate::agreement::internal_indices(data, labels).ok();
    KCandidate {
        k,
        wcss,
        silhouette: silhouette_sampled(data, labels, params.silhouette_sample, params.seed),
        calinski_harabasz: indices.map(|i| i.0),
        davies_bouldin: indices.map(|i| i.1),
        bic: None,
        gap: None,
        gap_sd: None,
        smallest_share,
        eligible: smallest_share >= params.min_segment_share,
    }
}

/// The recommended candidate (its index), the WCSS elbow, and the reasons.
///
/// The deciding criterion picks among candidates whose smallest segment is at least
/// `min_segment_share` of the rows (the rule is waived, and the reason says so, when none
/// is). The reason then names what every other criterion prefers — WCSS elbow, silhouette,
/// Calinski-Harabasz (highest), Davies-Bouldin (lowest), gap (Tibshirani's rule: the
/// smallest k with gap(k) ≥ gap(k+1) − s(k+1)), BIC (lowest) — and counts the agreement.
pub fn recommend(
    candidates: &[KCandidate],
    params: &SelectionParams,
    criterion: Criterion,
) -> (usize, Option<usize>, String) {
    if candidates.is_empty() {
        return (0, None, "no candidates".into());
    }
    let xs: Vec<f64> = candidates.iter().map(|c| c.k as f64).collect();
    let ys: Vec<f64> = candidates.iter().map(|c| c.wcss).collect();
    let elbow_k = knee_point(&xs, &ys).map(|i| candidates[i].k);
    // Higher is better for every criterion after this sign.
    // The elbow is a position, not a score: it wins outright when it is eligible.
    let asked = criterion;
    let criterion = match (criterion, elbow_k) {
        (Criterion::Elbow, Some(e)) if candidates.iter().any(|c| c.k == e && c.eligible) => {
            Criterion::Elbow
        }
        (Criterion::Elbow, _) => Criterion::Silhouette,
        (other, _) => other,
    };
    let value = |c: &KCandidate, which: Criterion| match which {
        Criterion::Silhouette => c.silhouette,
        Criterion::Bic => c.bic.map(|b| -b),
        Criterion::Elbow => Some(if Some(c.k) == elbow_k { 1.0 } else { 0.0 }),
    };
    let best_of = |only_eligible: bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.eligible || !only_eligible)
            .max_by(|a, b| {
                let (va, vb) = (
                    value(a.1, criterion).unwrap_or(f64::NEG_INFINITY),
                    value(b.1, criterion).unwrap_or(f64::NEG_INFINITY),
                );
                va.total_cmp(&vb).then(b.0.cmp(&a.0))
            })
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
    let arg = |f: &dyn Fn(&KCandidate) -> Option<f64>| {
        candidates
            .iter()
            .filter_map(|c| f(c).map(|v| (c.k, v)))
            .fold(None, |b: Option<(usize, f64)>, x| match b {
                Some(bb) if bb.1 >= x.1 => Some(bb),
                _ => Some(x),
            })
            .map(|(k, _)| k)
    };
    // Tibshirani's rule; when no k satisfies it the gap is still rising at the largest k.
    let gap_k = candidates.iter().any(|c| c.gap.is_some()).then(|| {
        candidates
            .windows(2)
            .find_map(|w| {
                let (a, b) = (&w[0], &w[1]);
                match (a.gap, b.gap, b.gap_sd) {
                    (Some(ga), Some(gb), Some(sb)) if ga >= gb - sb => Some(a.k),
                    _ => None,
                }
            })
            .unwrap_or(candidates[candidates.len() - 1].k)
    });
    let mut others: Vec<(&str, Option<usize>)> = Vec::new();
    if criterion != Criterion::Elbow {
        others.push(("the WCSS elbow", elbow_k));
    }
    if criterion != Criterion::Silhouette {
        others.push(("silhouette", arg(&|c| c.silhouette)));
    }
    others.push(("Calinski-Harabasz", arg(&|c| c.calinski_harabasz)));
    others.push(("Davies-Bouldin", arg(&|c| c.davies_bouldin.map(|v| -v))));
    if gap_k.is_some() {
        others.push(("the gap statistic", gap_k));
    }
    if criterion != Criterion::Bic && candidates.iter().any(|c| c.bic.is_some()) {
        others.push(("BIC", arg(&|c| c.bic.map(|v| -v))));
    }
    let mut reason = match criterion {
        Criterion::Silhouette => format!(
            "k = {} has the highest silhouette ({}) of k = {}..{}",
            chosen.k,
            chosen
                .silhouette
                .map_or("undefined: one non-empty segment".to_string(), |s| format!(
                    "{s:.3}"
                )),
            candidates[0].k,
            candidates[candidates.len() - 1].k
        ),
        Criterion::Bic => format!(
            "k = {} has the lowest BIC ({}) of k = {}..{}",
            chosen.k,
            chosen
                .bic
                .map_or("undefined".to_string(), |b| format!("{b:.1}")),
            candidates[0].k,
            candidates[candidates.len() - 1].k
        ),
        Criterion::Elbow => format!(
            "k = {} is the knee of the cost curve over k = {}..{}",
            chosen.k,
            candidates[0].k,
            candidates[candidates.len() - 1].k
        ),
    };
    let mut agree = 1;
    let mut voters = 1;
    for (name, pick) in &others {
        match pick {
            Some(k) if *k == chosen.k => {
                agree += 1;
                voters += 1;
                reason.push_str(&format!("; {name} agrees"));
            }
            Some(k) => {
                voters += 1;
                reason.push_str(&format!("; {name} prefers k = {k}"));
            }
            None => {}
        }
    }
    reason.push_str(&format!(
        "; {agree} of {voters} criteria point at k = {}",
        chosen.k
    ));
    if asked == Criterion::Elbow && criterion != Criterion::Elbow {
        reason.push_str("; the cost curve has no eligible knee, so the silhouette decided");
    }
    reason.push_str(&note);
    (index, elbow_k, reason)
}

/// Fits k-means for k = `k_min..=k_max` on scaled data and recommends one k by silhouette
/// (see [`recommend`]); `progress(k)` is called after each fit.
pub fn select_k(
    data: &FeatureMatrix,
    params: &SelectionParams,
    progress: &dyn Fn(usize),
) -> Result<Selection, SelectError> {
    let k_max = check_range(data, params)?;
    let mut candidates = Vec::new();
    let mut models = Vec::new();
    for k in params.k_min..=k_max {
        let model = KMeansParams::new(k)
            .n_init(params.n_init)
            .seed(params.seed)
            .check()?
            .fit(data)?;
        candidates.push(score_labels(
            data,
            model.labels(),
            k,
            model.inertia(),
            params,
        ));
        models.push(model);
        progress(k);
    }
    if params.gap_references > 0 {
        // The data's own fits are the candidates above; only the references are fitted.
        let inertias: Vec<f64> = candidates.iter().map(|c| c.wcss).collect();
        let gap = crate::gap::gap_statistic_from(
            data,
            params.k_min,
            &inertias,
            params.gap_references.max(2),
            params.n_init,
            params.seed,
        )
        .map_err(SelectError::Gap)?;
        for (c, (g, s)) in candidates.iter_mut().zip(gap.gap.iter().zip(&gap.s)) {
            c.gap = Some(*g);
            c.gap_sd = Some(*s);
        }
    }
    let (index, elbow_k, reason) = recommend(&candidates, params, Criterion::Silhouette);
    Ok(Selection {
        chosen_k: candidates[index].k,
        elbow_k,
        reason,
        model: models.swap_remove(index),
        candidates,
    })
}

/// Checks the k range against the data; returns the largest usable k (below the row count).
pub fn check_range(data: &FeatureMatrix, params: &SelectionParams) -> Result<usize, SelectError> {
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
    Ok(k_max)
}
