//! The clustering stage of `strata run`: the `[segmentation] algorithm`, k chosen the way
//! that algorithm is judged (silhouette for k-means and dendrogram cuts, BIC for mixtures,
//! the k-distance knee for DBSCAN), segments numbered largest first, the parts of the saved
//! model, subsample stability and sub-segments.
//!
//! Invariant: `Fitted::labels` are segment ids `0..k` (largest segment first, DBSCAN's noise
//! always last), and the saved model assigns every training row to the segment it has here.

use crate::config::{Algorithm, SegmentationConfig};
use crate::pipeline::{EngineError, Progress};
use serde_json::json;
use std::collections::HashMap;
use strata_core::FeatureMatrix;
use strata_ml::{
    Assigner, Criterion, Dbscan, Dendrogram, FuzzyCMeans, FuzzyParams, Gmm, GmmParams, KCandidate,
    KDistance, KMeansParams, KPrototypes, KPrototypesParams, SelectionParams, Stability,
    k_distance, recommend, score_labels, select_k, subsample_stability, within_ss,
};

/// The categorical features of k-prototypes: each customer's values, and their codes.
#[derive(Debug, Clone)]
pub(crate) struct Categories {
    pub names: Vec<String>,
    /// Sorted distinct values per feature; a value's code is its index.
    pub vocabulary: Vec<Vec<String>>,
    /// Each customer's values (customers missing from the customers table: "(missing)").
    pub by_customer: HashMap<String, Vec<String>>,
}

pub(crate) use strata_ml::MISSING_CATEGORY;

impl Categories {
    /// The values of `ids`, row-major.
    pub fn values(&self, ids: &[String]) -> Vec<String> {
        let missing = vec![MISSING_CATEGORY.to_string(); self.names.len()];
        ids.iter()
            .flat_map(|id| self.by_customer.get(id).unwrap_or(&missing).clone())
            .collect()
    }

    /// The codes of `ids`, row-major (a value outside the vocabulary: `u32::MAX`).
    pub fn codes(&self, ids: &[String]) -> Vec<u32> {
        let m = self.names.len().max(1);
        self.values(ids)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                self.vocabulary[i % m]
                    .binary_search(v)
                    .map_or(u32::MAX, |c| c as u32)
            })
            .collect()
    }
}

/// Hierarchical clustering above this many customers is refused (its time grows as n²).
pub const MAX_HIERARCHICAL_ROWS: usize = 50_000;
/// Rows whose k-distance is computed for DBSCAN's curve and suggested eps.
const K_DISTANCE_SAMPLE: usize = 20_000;

/// A fitted segmentation in segment order.
#[derive(Debug, Clone)]
pub(crate) struct Fitted {
    pub algorithm: Algorithm,
    pub labels: Vec<u32>,
    pub k: usize,
    /// Row-major `k × dims` segment centres (member means; k-means' own centres).
    pub centroids: Vec<f64>,
    pub assigner: Assigner,
    pub segment_of_cluster: Vec<u32>,
    /// `n × k` soft memberships in segment order (mixtures, fuzzy c-means).
    pub memberships: Option<Vec<f64>>,
    /// DBSCAN's noise segment (always the last).
    pub noise_segment: Option<usize>,
    pub candidates: Vec<KCandidate>,
    pub elbow_k: Option<usize>,
    pub reason: String,
    /// Algorithm-specific figures for segments.json (inertia, log-likelihood, eps, …).
    pub details: serde_json::Value,
    pub dendrogram: Option<Dendrogram>,
    pub k_distance: Option<KDistance>,
}

/// Raw output of one algorithm before segments are ordered.
struct Clusters {
    /// Cluster ids `0..c`, or `c` for noise.
    labels: Vec<u32>,
    clusters: usize,
    noise: bool,
    /// k-means' centres (cluster order); others use member means.
    centres: Option<Vec<f64>>,
    assigner: Assigner,
    memberships: Option<Vec<f64>>,
    candidates: Vec<KCandidate>,
    elbow_k: Option<usize>,
    reason: String,
    details: serde_json::Value,
    dendrogram: Option<Dendrogram>,
    k_distance: Option<KDistance>,
}

fn model_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Model(e.to_string())
}

fn selection_params(seg: &SegmentationConfig, seed: u64) -> SelectionParams {
    SelectionParams {
        k_min: seg.k_min,
        k_max: seg.k_max,
        n_init: seg.n_init,
        seed,
        silhouette_sample: seg.silhouette_sample,
        min_segment_share: seg.min_segment_share,
        gap_references: seg.gap_references,
    }
}

/// DBSCAN's `min_samples`: configured, or twice the dimensions (a common rule of thumb).
fn min_samples(seg: &SegmentationConfig, d: usize) -> usize {
    seg.min_samples.unwrap_or(2 * d).max(1)
}

/// Fits the configured algorithm on `data` (scaled, possibly projected). `fixed_k` (or
/// `[segmentation] k`) skips the choice of k; `fixed_eps` does the same for DBSCAN.
pub(crate) fn fit(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    categories: Option<&Categories>,
    seed: u64,
    fixed: Option<(usize, f64)>,
    progress: &dyn Progress,
) -> Result<Fitted, EngineError> {
    let fixed_k = fixed.map(|f| f.0).or(seg.k);
    if let Some(k) = fixed_k
        && k > data.n_rows()
    {
        return Err(EngineError::Model(format!(
            "k = {k} segments asked for, but there are only {} customers",
            data.n_rows()
        )));
    }
    let c = match seg.algorithm {
        Algorithm::Kmeans => kmeans(seg, data, seed, fixed_k, progress)?,
        Algorithm::Gmm => gmm(seg, data, seed, fixed_k, progress)?,
        Algorithm::Fuzzy => fuzzy(seg, data, seed, fixed_k, progress)?,
        Algorithm::Dbscan => dbscan(seg, data, seed, fixed.map(|f| f.1), progress)?,
        Algorithm::Kprototypes => {
            let categories = categories.ok_or_else(|| {
                EngineError::Model("k-prototypes without categorical features".into())
            })?;
            kprototypes(seg, data, categories, seed, fixed_k, progress)?
        }
        a => hierarchical(seg, a, data, seed, fixed_k, progress)?,
    };
    Ok(order(seg.algorithm, data, c))
}

fn kmeans(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    seed: u64,
    fixed_k: Option<usize>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let params = selection_params(seg, seed);
    let (model, candidates, elbow_k, reason) = match fixed_k {
        Some(k) => {
            progress.start("k-means at the configured k", 1);
            let model = KMeansParams::new(k)
                .n_init(seg.n_init)
                .seed(seed)
                .check()
                .map_err(model_err)?
                .fit(data)
                .map_err(model_err)?;
            progress.finish();
            let c = score_labels(data, model.labels(), k, model.inertia(), &params);
            (
                model,
                vec![c],
                None,
                format!("k = {k} is set in [segmentation]"),
            )
        }
        None => {
            let s = select_k_with_progress(data, &params, progress)?;
            (s.model, s.candidates, s.elbow_k, s.reason)
        }
    };
    Ok(Clusters {
        labels: model.labels().to_vec(),
        clusters: model.k(),
        noise: false,
        centres: Some(model.centroids().to_vec()),
        assigner: Assigner::NearestCentre,
        memberships: None,
        details: json!({
            "init": "k-means++",
            "n_init": seg.n_init,
            "inertia": model.inertia(),
            "iterations": model.n_iter(),
        }),
        candidates,
        elbow_k,
        reason,
        dendrogram: None,
        k_distance: None,
    })
}

fn select_k_with_progress(
    data: &FeatureMatrix,
    params: &SelectionParams,
    progress: &dyn Progress,
) -> Result<strata_ml::Selection, EngineError> {
    let k_count =
        (params.k_max.min(data.n_rows().saturating_sub(1)) + 1).saturating_sub(params.k_min) as u64;
    progress.start("choosing k (k-means per k)", k_count);
    let s = select_k(data, params, &|_| progress.step()).map_err(model_err)?;
    progress.finish();
    Ok(s)
}

/// The recommended candidate (see [`recommend`]), or the only one when k is fixed.
fn choose(
    candidates: &[KCandidate],
    params: &SelectionParams,
    fixed: bool,
    criterion: Criterion,
) -> (usize, Option<usize>, String) {
    if fixed {
        let k = candidates.first().map_or(0, |c| c.k);
        (0, None, format!("k = {k} is set in [segmentation]"))
    } else {
        recommend(candidates, params, criterion)
    }
}

/// The k range of the selection, capped below the row count; an error when it is empty.
fn k_range(
    seg: &SegmentationConfig,
    n: usize,
    fixed_k: Option<usize>,
) -> Result<Vec<usize>, EngineError> {
    let ks: Vec<usize> = match fixed_k {
        Some(k) => vec![k],
        None => (seg.k_min..=seg.k_max.min(n.saturating_sub(1))).collect(),
    };
    if ks.is_empty() {
        return Err(EngineError::TooFewCustomers {
            customers: n,
            k_min: seg.k_min,
        });
    }
    Ok(ks)
}

fn gmm(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    seed: u64,
    fixed_k: Option<usize>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let params = selection_params(seg, seed);
    let ks = k_range(seg, data.n_rows(), fixed_k)?;
    progress.start("choosing k (Gaussian mixture per k)", ks.len() as u64);
    let mut fits = Vec::new();
    let mut candidates = Vec::new();
    let mut failed = Vec::new();
    for &k in &ks {
        let mut p = GmmParams::new(k);
        p.covariance = seg.covariance;
        p.seed = seed;
        match Gmm::fit(data, &p) {
            Ok(g) => {
                let labels = g.predict(data);
                let mut c = score_labels(data, &labels, k, within_ss(data, &labels, k), &params);
                c.bic = Some(g.bic(data));
                candidates.push(c);
                fits.push((g, labels));
            }
            Err(e) => failed.push(format!("k = {k}: {e}")),
        }
        progress.step();
    }
    progress.finish();
    if fits.is_empty() {
        return Err(EngineError::Model(format!(
            "no Gaussian mixture could be fitted ({})",
            failed.join("; ")
        )));
    }
    let (index, elbow_k, mut reason) =
        choose(&candidates, &params, fixed_k.is_some(), Criterion::Bic);
    if !failed.is_empty() {
        reason.push_str(&format!("; not fitted: {}", failed.join("; ")));
    }
    let (g, labels) = fits.swap_remove(index);
    let memberships = g.predict_proba(data);
    Ok(Clusters {
        clusters: g.k(),
        labels,
        noise: false,
        centres: None,
        memberships: Some(memberships),
        details: json!({
            "covariance": seg.covariance,
            "log_likelihood": g.log_likelihood,
            "iterations": g.n_iter,
            "converged": g.converged,
            "bic": candidates[index].bic,
            "aic": g.aic(data),
            "weights": g.weights,
        }),
        assigner: Assigner::Mixture(g),
        candidates,
        elbow_k,
        reason,
        dendrogram: None,
        k_distance: None,
    })
}

fn fuzzy(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    seed: u64,
    fixed_k: Option<usize>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let params = selection_params(seg, seed);
    let (k, candidates, elbow_k, reason) = match fixed_k {
        Some(k) => (
            k,
            Vec::new(),
            None,
            format!("k = {k} is set in [segmentation]"),
        ),
        None => {
            let s = select_k_with_progress(data, &params, progress)?;
            let reason = format!("the k-means selection: {}", s.reason);
            (s.chosen_k, s.candidates, s.elbow_k, reason)
        }
    };
    progress.start("fuzzy c-means", 1);
    let mut p = FuzzyParams::new(k);
    p.m = seg.fuzzifier;
    p.seed = seed;
    let f = FuzzyCMeans::fit(data, &p).map_err(model_err)?;
    progress.finish();
    let memberships = f.memberships(data);
    let labels = f.predict(data);
    let mut candidates = candidates;
    if candidates.is_empty() {
        candidates.push(score_labels(
            data,
            &labels,
            k,
            within_ss(data, &labels, k),
            &params,
        ));
    }
    Ok(Clusters {
        clusters: f.k(),
        labels,
        noise: false,
        centres: None,
        memberships: Some(memberships),
        details: json!({
            "fuzzifier": f.m,
            "objective": f.objective,
            "iterations": f.n_iter,
            "converged": f.converged,
        }),
        assigner: Assigner::Fuzzy(f),
        candidates,
        elbow_k,
        reason: format!("fuzzy c-means (m = {}) with k from {reason}", seg.fuzzifier),
        dendrogram: None,
        k_distance: None,
    })
}

fn hierarchical(
    seg: &SegmentationConfig,
    algorithm: Algorithm,
    data: &FeatureMatrix,
    seed: u64,
    fixed_k: Option<usize>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let n = data.n_rows();
    if n > MAX_HIERARCHICAL_ROWS {
        return Err(EngineError::Model(format!(
            "{} clustering of {n} customers: hierarchical clustering is limited to {MAX_HIERARCHICAL_ROWS} customers (its time grows as n²); use algorithm = \"kmeans\" or \"gmm\"",
            algorithm.name()
        )));
    }
    let linkage = algorithm.linkage().unwrap_or(strata_ml::Linkage::Ward);
    progress.start(&format!("{} linkage dendrogram", algorithm.name()), 1);
    let tree = Dendrogram::fit(data, linkage).map_err(model_err)?;
    progress.finish();
    let params = selection_params(seg, seed);
    let ks = k_range(seg, n, fixed_k)?;
    progress.start("choosing k (cuts of the dendrogram)", ks.len() as u64);
    let mut cuts = Vec::new();
    let mut candidates = Vec::new();
    for &k in &ks {
        let labels = tree.cut(k).map_err(model_err)?;
        candidates.push(score_labels(
            data,
            &labels,
            k,
            within_ss(data, &labels, k),
            &params,
        ));
        cuts.push(labels);
        progress.step();
    }
    progress.finish();
    let (index, elbow_k, reason) = choose(
        &candidates,
        &params,
        fixed_k.is_some(),
        Criterion::Silhouette,
    );
    let labels = cuts.swap_remove(index);
    let k = ks[index];
    // New customers join their nearest training customer's cluster: a training customer
    // is its own nearest, so the saved model reproduces the cut exactly, and clusters of any
    // shape (single linkage's chains) are respected.
    let assigner = Assigner::NearestRow {
        rows: data.data().to_vec(),
        labels: labels.clone(),
        radius: None,
        outlier: None,
    };
    Ok(Clusters {
        clusters: k,
        labels,
        noise: false,
        centres: None,
        assigner,
        memberships: None,
        details: json!({
            "linkage": linkage,
            "cut_height": tree.merges.get(n - k).map(|m| m.height),
        }),
        candidates,
        elbow_k,
        reason,
        dendrogram: Some(tree),
        k_distance: None,
    })
}

fn kprototypes(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    categories: &Categories,
    seed: u64,
    fixed_k: Option<usize>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let params = selection_params(seg, seed);
    let ks = k_range(seg, data.n_rows(), fixed_k)?;
    let codes = categories.codes(data.ids());
    progress.start("choosing k (k-prototypes per k)", ks.len() as u64);
    let mut fits = Vec::new();
    let mut candidates = Vec::new();
    for &k in &ks {
        let mut p = KPrototypesParams::new(k);
        p.n_init = seg.n_init;
        p.seed = seed;
        let model = KPrototypes::fit(data, &codes, &p).map_err(model_err)?;
        // The indices see the numeric part only; the cost (numeric + γ × mismatches) is
        // the curve whose knee decides.
        candidates.push(score_labels(data, &model.labels, k, model.cost, &params));
        fits.push(model);
        progress.step();
    }
    progress.finish();
    let (index, elbow_k, reason) =
        choose(&candidates, &params, fixed_k.is_some(), Criterion::Elbow);
    let mut model = fits.swap_remove(index);
    let labels = std::mem::take(&mut model.labels);
    let m = categories.names.len();
    let modes: Vec<Vec<&str>> = model
        .modes
        .chunks(m.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, &c)| categories.vocabulary[j][c as usize].as_str())
                .collect()
        })
        .collect();
    Ok(Clusters {
        clusters: model.k(),
        labels,
        noise: false,
        centres: None,
        memberships: None,
        details: json!({
            "categorical": categories.names,
            "gamma": model.gamma,
            "cost": model.cost,
            "iterations": model.n_iter,
            "modes": modes,
        }),
        assigner: Assigner::Prototypes {
            model,
            features: categories.names.clone(),
            vocabulary: categories.vocabulary.clone(),
        },
        candidates,
        elbow_k,
        reason: format!("{reason} (k-prototypes: numeric cost plus γ per categorical mismatch)"),
        dendrogram: None,
        k_distance: None,
    })
}

fn dbscan(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    seed: u64,
    fixed_eps: Option<f64>,
    progress: &dyn Progress,
) -> Result<Clusters, EngineError> {
    let m = min_samples(seg, data.n_cols());
    progress.start("k-distance curve", 1);
    let curve = k_distance(data, m, K_DISTANCE_SAMPLE, seed).map_err(model_err)?;
    progress.finish();
    let eps = fixed_eps.or(seg.eps).unwrap_or(curve.suggested_eps);
    let source = if fixed_eps.is_some() {
        "the main run's eps"
    } else if seg.eps.is_some() {
        "set in [segmentation]"
    } else {
        "the knee of the k-distance curve"
    };
    if !(eps.is_finite() && eps > 0.0) {
        return Err(EngineError::Model(format!(
            "the k-distance curve suggests eps = {eps}: too many identical customers; set [segmentation] eps"
        )));
    }
    progress.start("DBSCAN", 1);
    let db = Dbscan::fit(data, eps, m).map_err(model_err)?;
    progress.finish();
    if db.clusters == 0 {
        return Err(EngineError::Model(format!(
            "DBSCAN at eps = {eps:.4}, min_samples = {m} found no cluster: every customer is noise; raise eps or lower min_samples"
        )));
    }
    let c = db.clusters;
    let labels: Vec<u32> = db
        .labels
        .iter()
        .map(|&l| if l < 0 { c as u32 } else { l as u32 })
        .collect();
    let d = data.n_cols();
    let mut core_rows = Vec::new();
    let mut core_labels = Vec::new();
    for (i, &is_core) in db.core.iter().enumerate() {
        if is_core {
            core_rows.extend_from_slice(data.row(i));
            core_labels.push(labels[i]);
        }
    }
    debug_assert_eq!(core_rows.len(), core_labels.len() * d);
    let params = selection_params(seg, seed);
    let k = c + usize::from(db.noise > 0);
    let candidate = score_labels(data, &labels, k, within_ss(data, &labels, k), &params);
    let reason = format!(
        "DBSCAN with eps = {eps:.4} ({source}) and min_samples = {m}: {c} clusters and {} noise customers ({:.1}%)",
        db.noise,
        db.noise as f64 * 100.0 / data.n_rows().max(1) as f64
    );
    Ok(Clusters {
        clusters: c,
        noise: db.noise > 0,
        labels,
        centres: None,
        assigner: Assigner::NearestRow {
            rows: core_rows,
            labels: core_labels,
            radius: Some(eps),
            // The noise segment's id is filled in by `order`.
            outlier: None,
        },
        memberships: None,
        details: json!({
            "eps": eps,
            "eps_source": source,
            "min_samples": m,
            "clusters": c,
            "noise": db.noise,
            "core_rows": db.core.iter().filter(|&&x| x).count(),
        }),
        candidates: vec![candidate],
        elbow_k: None,
        reason,
        dendrogram: None,
        k_distance: Some(curve),
    })
}

/// Numbers segments largest first (ties by centre coordinates; noise last) and expresses
/// centres, memberships and the assigner in that order.
fn order(algorithm: Algorithm, data: &FeatureMatrix, c: Clusters) -> Fitted {
    let d = data.n_cols();
    let clusters = c.clusters;
    let k = clusters + usize::from(c.noise);
    let mut sizes = vec![0usize; k];
    let mut sums = vec![0.0; k * d];
    for (i, &l) in c.labels.iter().enumerate() {
        sizes[l as usize] += 1;
        for (s, v) in sums[l as usize * d..(l as usize + 1) * d]
            .iter_mut()
            .zip(data.row(i))
        {
            *s += v;
        }
    }
    let centres: Vec<f64> = match &c.centres {
        Some(centres) => centres.clone(),
        None => (0..clusters)
            .flat_map(|cl| {
                let m = sizes[cl].max(1) as f64;
                sums[cl * d..(cl + 1) * d]
                    .iter()
                    .map(move |s| s / m)
                    .collect::<Vec<_>>()
            })
            .collect(),
    };
    let mut by_size: Vec<usize> = (0..clusters).collect();
    by_size.sort_by(|&a, &b| {
        sizes[b].cmp(&sizes[a]).then_with(|| {
            let (ca, cb) = (&centres[a * d..(a + 1) * d], &centres[b * d..(b + 1) * d]);
            ca.iter()
                .zip(cb)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        })
    });
    // segment_of[cluster] (noise, cluster id `clusters`, stays last).
    let mut segment_of = vec![0u32; k];
    for (segment, &cl) in by_size.iter().enumerate() {
        segment_of[cl] = segment as u32;
    }
    if c.noise {
        segment_of[clusters] = clusters as u32;
    }
    let labels: Vec<u32> = c.labels.iter().map(|&l| segment_of[l as usize]).collect();
    let mut centroids: Vec<f64> = by_size
        .iter()
        .flat_map(|&cl| centres[cl * d..(cl + 1) * d].to_vec())
        .collect();
    if c.noise {
        let m = sizes[clusters].max(1) as f64;
        centroids.extend(sums[clusters * d..].iter().map(|s| s / m));
    }
    let memberships = c.memberships.map(|u| {
        let mut out = vec![0.0; u.len()];
        for (row, o) in u.chunks(clusters).zip(out.chunks_mut(clusters)) {
            for (cl, v) in row.iter().enumerate() {
                o[segment_of[cl] as usize] = *v;
            }
        }
        out
    });
    let (assigner, segment_of_cluster) = match c.assigner {
        // Centres are stored in segment order: no mapping.
        Assigner::NearestCentre => (Assigner::NearestCentre, Vec::new()),
        Assigner::NearestRow {
            rows,
            labels,
            radius,
            ..
        } => (
            Assigner::NearestRow {
                rows,
                labels,
                radius,
                outlier: c.noise.then_some(clusters as u32),
            },
            segment_of[..clusters].to_vec(),
        ),
        other => (other, segment_of[..clusters].to_vec()),
    };
    Fitted {
        algorithm,
        labels,
        k,
        centroids,
        assigner,
        segment_of_cluster,
        memberships,
        noise_segment: c.noise.then_some(clusters),
        candidates: c.candidates,
        elbow_k: c.elbow_k,
        reason: c.reason,
        details: c.details,
        dendrogram: c.dendrogram,
        k_distance: c.k_distance,
    }
}

/// Refits on random subsamples with the same k (DBSCAN: the same eps) and compares each
/// refit with the full fit on the rows they share.
pub(crate) fn stability(
    seg: &SegmentationConfig,
    data: &FeatureMatrix,
    categories: Option<&Categories>,
    fitted: &Fitted,
    seed: u64,
    progress: &dyn Progress,
) -> Result<Stability, EngineError> {
    let eps = fitted
        .details
        .get("eps")
        .and_then(serde_json::Value::as_f64);
    let fixed = (
        fitted.k - usize::from(fitted.noise_segment.is_some()),
        eps.unwrap_or(1.0),
    );
    progress.start(
        "stability (refits on subsamples)",
        seg.stability_runs as u64,
    );
    let quiet = crate::pipeline::NoProgress;
    let result = subsample_stability(
        data,
        &fitted.labels,
        |sample, s| {
            let refit =
                fit(seg, sample, categories, s, Some(fixed), &quiet).map_err(|e| e.to_string())?;
            progress.step();
            Ok(refit.labels)
        },
        seg.stability_runs,
        seg.stability_sample,
        seed,
    )
    .map_err(|e| EngineError::Model(format!("stability: {e}")));
    progress.finish();
    result
}
