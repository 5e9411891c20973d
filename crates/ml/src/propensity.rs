//! Propensity and churn models: gradient-boosted trees (`forust-ml`) with a logistic-regression
//! baseline, stratified train/validation/test splits, k-fold cross-validation, the usual
//! binary-classification metrics, a calibration curve, feature importance and per-row TreeSHAP.
//!
//! Why `forust-ml`: it is a pure-Rust histogram gradient booster that builds on stable Rust,
//! has early stopping on a validation set and exact TreeSHAP contributions. `perpetual` (its
//! successor) needs a nightly compiler in every release up to 3.0-rc (`#![feature]` in its
//! lib.rs); `lightgbm3` builds the C++ library with cmake and libclang; the `xgboost` crate is
//! unmaintained since 2019; `gbdt` has no SHAP and no missing-value handling.
//!
//! Data are column-major `f64` with `NaN` for a missing value. Labels are 0 or 1.

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason, TerminationStatus};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use forust_ml::Matrix;
use forust_ml::gradientbooster::{
    ContributionsMethod, GradientBooster, GrowPolicy, ImportanceMethod, MissingNodeTreatment,
};
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::sampler::SampleMethod;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

#[derive(Debug, thiserror::Error)]
pub enum PropensityError {
    #[error(
        "the labels have a single class ({positives} positive of {rows}): a propensity model needs both outcomes"
    )]
    SingleClass { positives: usize, rows: usize },
    #[error("label {value} at row {row} is not 0 or 1")]
    BadLabel { row: usize, value: f64 },
    #[error("{0}")]
    Shape(String),
    #[error("split: {0}")]
    Split(String),
    #[error("no usable feature: every column is constant or missing on the training rows")]
    NoFeatures,
    #[error("gradient boosting: {0}")]
    Booster(String),
    #[error("logistic regression did not converge: {0}")]
    Logistic(String),
}

/// A labelled table: named feature columns (column-major, `NaN` missing) and 0/1 labels.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub names: Vec<String>,
    pub columns: Vec<Vec<f64>>,
    pub labels: Vec<f64>,
}

impl Dataset {
    /// Checks shapes and labels.
    pub fn new(
        names: Vec<String>,
        columns: Vec<Vec<f64>>,
        labels: Vec<f64>,
    ) -> Result<Self, PropensityError> {
        if names.len() != columns.len() {
            return Err(PropensityError::Shape(format!(
                "{} names for {} columns",
                names.len(),
                columns.len()
            )));
        }
        if let Some((i, c)) = columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.len() != labels.len())
        {
            return Err(PropensityError::Shape(format!(
                "column `{}` has {} rows, the labels {}",
                names[i],
                c.len(),
                labels.len()
            )));
        }
        if let Some((row, &value)) = labels
            .iter()
            .enumerate()
            .find(|(_, v)| **v != 0.0 && **v != 1.0)
        {
            return Err(PropensityError::BadLabel { row, value });
        }
        Ok(Self {
            names,
            columns,
            labels,
        })
    }

    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The given rows, column-major.
    pub fn take(&self, rows: &[usize]) -> Vec<f64> {
        let mut out = Vec::with_capacity(rows.len() * self.columns.len());
        for c in &self.columns {
            out.extend(rows.iter().map(|&r| c[r]));
        }
        out
    }

    pub fn labels_of(&self, rows: &[usize]) -> Vec<f64> {
        rows.iter().map(|&r| self.labels[r]).collect()
    }
}

fn check_two_classes(labels: &[f64]) -> Result<usize, PropensityError> {
    let positives = labels.iter().filter(|&&y| y == 1.0).count();
    if positives == 0 || positives == labels.len() {
        return Err(PropensityError::SingleClass {
            positives,
            rows: labels.len(),
        });
    }
    Ok(positives)
}

/// Which part of the data a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Validation => "validation",
            Self::Test => "test",
        }
    }
}

/// Stratified split: each class is shuffled with the seed and cut by the shares, so every
/// part keeps the positive rate. Deterministic for a seed.
pub fn stratified_split(
    labels: &[f64],
    validation_share: f64,
    test_share: f64,
    seed: u64,
) -> Result<Vec<Split>, PropensityError> {
    if !(validation_share >= 0.0 && test_share > 0.0 && validation_share + test_share < 1.0) {
        return Err(PropensityError::Split(format!(
            "need 0 ≤ validation_share, 0 < test_share and a sum below 1 (got {validation_share} and {test_share})"
        )));
    }
    check_two_classes(labels)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut split = vec![Split::Train; labels.len()];
    for class in [0.0, 1.0] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let n = rows.len() as f64;
        let n_test = (n * test_share).round() as usize;
        let n_valid = (n * validation_share).round() as usize;
        for (j, &r) in rows.iter().enumerate() {
            split[r] = if j < n_test {
                Split::Test
            } else if j < n_test + n_valid {
                Split::Validation
            } else {
                Split::Train
            };
        }
    }
    for part in [Split::Train, Split::Test] {
        let labels: Vec<f64> = (0..labels.len())
            .filter(|&i| split[i] == part)
            .map(|i| labels[i])
            .collect();
        if check_two_classes(&labels).is_err() {
            return Err(PropensityError::Split(format!(
                "the {} part lacks one of the classes: too few rows of the rarer class ({} rows in all)",
                part.as_str(),
                split.len()
            )));
        }
    }
    Ok(split)
}

/// Stratified k-fold assignment of `rows` (fold number per entry of `rows`).
pub fn stratified_folds(labels: &[f64], rows: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut fold = vec![0; rows.len()];
    let mut next = 0;
    for class in [0.0, 1.0] {
        let mut idx: Vec<usize> = (0..rows.len())
            .filter(|&j| labels[rows[j]] == class)
            .collect();
        idx.shuffle(&mut rng);
        for j in idx {
            fold[j] = next % k;
            next += 1;
        }
    }
    fold
}

/// Gradient-boosting settings; the defaults follow scikit-learn's HistGradientBoosting
/// (learning rate 0.1, 31 leaves per tree grown best-first, 255 bins) with early stopping on
/// the validation part.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GbmSettings {
    /// Most trees; early stopping usually ends sooner.
    pub iterations: usize,
    pub learning_rate: f32,
    pub max_leaves: usize,
    pub max_depth: usize,
    /// Smallest hessian sum in a leaf (XGBoost's min_child_weight).
    pub min_leaf_weight: f32,
    pub l2: f32,
    pub bins: u16,
    /// Stop after this many trees without a better validation log-loss.
    pub early_stopping_rounds: usize,
}

impl Default for GbmSettings {
    fn default() -> Self {
        Self {
            iterations: 500,
            learning_rate: 0.1,
            max_leaves: 31,
            max_depth: 12,
            // scikit-learn's min_samples_leaf = 20 in hessian terms at a ~10% base rate
            // (20 × p(1 − p) ≈ 2).
            min_leaf_weight: 2.0,
            l2: 1.0,
            bins: 255,
            early_stopping_rounds: 20,
        }
    }
}

/// A fitted gradient-boosted tree model over the columns it could use.
pub struct Gbm {
    booster: GradientBooster,
    /// Indices of the dataset columns the booster sees (columns constant on the training
    /// rows are left out: they cannot split).
    used: Vec<usize>,
    columns: usize,
}

impl std::fmt::Debug for Gbm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gbm")
            .field("trees", &self.trees())
            .field("used", &self.used)
            .field("columns", &self.columns)
            .finish()
    }
}

fn varying_columns(data: &[f64], rows: usize, cols: usize) -> Vec<usize> {
    (0..cols)
        .filter(|&j| {
            let mut first = None;
            data[j * rows..(j + 1) * rows]
                .iter()
                .filter(|v| !v.is_nan())
                .any(|&v| match first {
                    None => {
                        first = Some(v);
                        false
                    }
                    Some(f) => v != f,
                })
        })
        .collect()
}

fn select_columns(data: &[f64], rows: usize, used: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * used.len());
    for &j in used {
        out.extend_from_slice(&data[j * rows..(j + 1) * rows]);
    }
    out
}

impl Gbm {
    /// Fits on `train` (column-major, `rows` rows), stopping early on `validation` when given.
    pub fn fit(
        train: &[f64],
        labels: &[f64],
        validation: Option<(&[f64], &[f64])>,
        settings: &GbmSettings,
        seed: u64,
    ) -> Result<Self, PropensityError> {
        let rows = labels.len();
        if rows == 0 || !train.len().is_multiple_of(rows) {
            return Err(PropensityError::Shape(format!(
                "{} values for {rows} rows",
                train.len()
            )));
        }
        check_two_classes(labels)?;
        let columns = train.len() / rows;
        let used = varying_columns(train, rows, columns);
        if used.is_empty() {
            return Err(PropensityError::NoFeatures);
        }
        let x = select_columns(train, rows, &used);
        let matrix = Matrix::new(&x, rows, used.len());
        let weights = vec![1.0; rows];
        let to_err = |e: forust_ml::errors::ForustError| PropensityError::Booster(e.to_string());
        let mut booster = GradientBooster::new(
            ObjectiveType::LogLoss,
            settings.iterations,
            settings.learning_rate,
            settings.max_depth,
            settings.max_leaves,
            0.0,
            settings.l2,
            0.0,
            0.0,
            settings.min_leaf_weight,
            0.5,
            settings.bins,
            true,
            true,
            None,
            1.0,
            0.2,
            0.1,
            1.0,
            seed,
            f64::NAN,
            false,
            SampleMethod::None,
            GrowPolicy::LossGuide,
            Some(Metric::LogLoss),
            None,
            true,
            HashSet::new(),
            MissingNodeTreatment::AssignToParent,
            0,
            false,
        )
        .map_err(to_err)?;
        let valid_x;
        let eval_weights;
        let eval = match validation {
            Some((vx, vy)) if !vy.is_empty() && settings.early_stopping_rounds > 0 => {
                valid_x = select_columns(vx, vy.len(), &used);
                eval_weights = vec![1.0; vy.len()];
                booster = booster.set_early_stopping_rounds(Some(settings.early_stopping_rounds));
                Some(vec![(
                    Matrix::new(&valid_x, vy.len(), used.len()),
                    vy,
                    &eval_weights[..],
                )])
            }
            _ => None,
        };
        booster
            .fit(&matrix, labels, &weights, eval)
            .map_err(to_err)?;
        Ok(Self {
            booster,
            used,
            columns,
        })
    }

    /// Trees used for prediction (after early stopping).
    pub fn trees(&self) -> usize {
        self.booster
            .prediction_iteration
            .unwrap_or(self.booster.trees.len())
    }

    fn matrix_rows(&self, data: &[f64]) -> Result<(Vec<f64>, usize), PropensityError> {
        if self.columns == 0 || !data.len().is_multiple_of(self.columns) {
            return Err(PropensityError::Shape(format!(
                "{} values are not rows of {} columns",
                data.len(),
                self.columns
            )));
        }
        let rows = data.len() / self.columns;
        Ok((select_columns(data, rows, &self.used), rows))
    }

    /// Log-odds per row of `data` (column-major, all dataset columns).
    pub fn predict_logit(&self, data: &[f64]) -> Result<Vec<f64>, PropensityError> {
        let (x, rows) = self.matrix_rows(data)?;
        Ok(self
            .booster
            .predict(&Matrix::new(&x, rows, self.used.len()), true))
    }

    pub fn predict_proba(&self, data: &[f64]) -> Result<Vec<f64>, PropensityError> {
        Ok(self.predict_logit(data)?.into_iter().map(sigmoid).collect())
    }

    /// TreeSHAP contributions: per row, one value per dataset column (0 for unused ones)
    /// and the expected log-odds last; each row sums to the row's log-odds.
    pub fn shap(&self, data: &[f64]) -> Result<Vec<Vec<f64>>, PropensityError> {
        let (x, rows) = self.matrix_rows(data)?;
        let k = self.used.len();
        let flat = self.booster.predict_contributions(
            &Matrix::new(&x, rows, k),
            ContributionsMethod::Shapley,
            true,
        );
        Ok(flat
            .chunks(k + 1)
            .map(|c| {
                let mut row = vec![0.0; self.columns + 1];
                for (j, &col) in self.used.iter().enumerate() {
                    row[col] = c[j];
                }
                row[self.columns] = c[k];
                row
            })
            .collect())
    }

    /// Total split gain per dataset column, normalized to sum to 1.
    pub fn importance(&self) -> Vec<f64> {
        let gains = self
            .booster
            .calculate_feature_importance(ImportanceMethod::TotalGain, false);
        let mut out = vec![0.0; self.columns];
        for (j, g) in gains {
            if let Some(&col) = self.used.get(j) {
                out[col] = f64::from(g);
            }
        }
        let total: f64 = out.iter().sum();
        if total > 0.0 {
            out.iter_mut().for_each(|v| *v /= total);
        }
        out
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// log(1 + e^z) without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// L2-penalized logistic regression on z-scored features (missing values at the training
/// mean), fitted with L-BFGS. The penalty is scikit-learn's: ‖w‖² / (2C), intercept free.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Logistic {
    pub means: Vec<f64>,
    pub scales: Vec<f64>,
    pub weights: Vec<f64>,
    pub intercept: f64,
    pub c: f64,
}

#[derive(Clone)]
struct LogisticCost<'a> {
    /// Standardized, column-major.
    x: &'a [f64],
    y: &'a [f64],
    cols: usize,
    inv_c: f64,
}

impl LogisticCost<'_> {
    fn logits(&self, p: &[f64]) -> Vec<f64> {
        let n = self.y.len();
        let mut z = vec![p[self.cols]; n];
        for (j, &w) in p[..self.cols].iter().enumerate() {
            if w != 0.0 {
                for (zi, xi) in z.iter_mut().zip(&self.x[j * n..(j + 1) * n]) {
                    *zi += w * xi;
                }
            }
        }
        z
    }
    fn penalty(&self, p: &[f64]) -> f64 {
        0.5 * self.inv_c * p[..self.cols].iter().map(|w| w * w).sum::<f64>()
    }
}

impl CostFunction for LogisticCost<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        let n = self.y.len() as f64;
        let loss: f64 = self
            .logits(p)
            .iter()
            .zip(self.y)
            .map(|(&z, &y)| softplus(z) - y * z)
            .sum();
        Ok((loss + self.penalty(p)) / n)
    }
}

impl Gradient for LogisticCost<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let n = self.y.len();
        let residual: Vec<f64> = self
            .logits(p)
            .iter()
            .zip(self.y)
            .map(|(&z, &y)| sigmoid(z) - y)
            .collect();
        let mut g: Vec<f64> = (0..self.cols)
            .into_par_iter()
            .map(|j| {
                let col = &self.x[j * n..(j + 1) * n];
                let dot: f64 = col.iter().zip(&residual).map(|(a, b)| a * b).sum();
                (dot + self.inv_c * p[j]) / n as f64
            })
            .collect();
        g.push(residual.iter().sum::<f64>() / n as f64);
        Ok(g)
    }
}

impl Logistic {
    pub fn fit(data: &[f64], labels: &[f64], c: f64) -> Result<Self, PropensityError> {
        let n = labels.len();
        if n == 0 || !data.len().is_multiple_of(n) {
            return Err(PropensityError::Shape(format!(
                "{} values for {n} rows",
                data.len()
            )));
        }
        if !(c > 0.0 && c.is_finite()) {
            return Err(PropensityError::Logistic(format!(
                "C = {c}: the inverse penalty must be positive"
            )));
        }
        check_two_classes(labels)?;
        let cols = data.len() / n;
        let mut means = Vec::with_capacity(cols);
        let mut scales = Vec::with_capacity(cols);
        for j in 0..cols {
            let col = &data[j * n..(j + 1) * n];
            let (mut sum, mut count) = (0.0, 0usize);
            for &v in col.iter().filter(|v| !v.is_nan()) {
                sum += v;
                count += 1;
            }
            let mean = if count > 0 { sum / count as f64 } else { 0.0 };
            let var = col
                .iter()
                .filter(|v| !v.is_nan())
                .map(|v| (v - mean).powi(2))
                .sum::<f64>()
                / count.max(1) as f64;
            means.push(mean);
            // A constant column gets scale 0: it contributes nothing.
            scales.push(if var > 0.0 { var.sqrt() } else { 0.0 });
        }
        let x = standardize(data, n, &means, &scales);
        let cost = LogisticCost {
            x: &x,
            y: labels,
            cols,
            inv_c: 1.0 / c,
        };
        let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
            .with_tolerance_grad(1e-9)
            .and_then(|s| s.with_tolerance_cost(1e-14))
            .map_err(|e| PropensityError::Logistic(e.to_string()))?;
        let res = Executor::new(cost, solver)
            .configure(|s| s.param(vec![0.0; cols + 1]).max_iters(1000))
            .run()
            .map_err(|e| PropensityError::Logistic(e.to_string()))?;
        let state = res.state();
        let converged = matches!(
            state.get_termination_status(),
            TerminationStatus::Terminated(TerminationReason::SolverConverged)
        );
        let Some(p) = state.get_best_param().cloned() else {
            return Err(PropensityError::Logistic("no parameters".into()));
        };
        if !converged || p.iter().any(|v| !v.is_finite()) {
            return Err(PropensityError::Logistic(format!(
                "{:?} after {} iterations",
                state.get_termination_status(),
                state.get_iter()
            )));
        }
        Ok(Self {
            means,
            scales,
            weights: p[..cols].to_vec(),
            intercept: p[cols],
            c,
        })
    }

    pub fn predict_proba(&self, data: &[f64]) -> Result<Vec<f64>, PropensityError> {
        let cols = self.weights.len();
        if cols == 0 || !data.len().is_multiple_of(cols) {
            return Err(PropensityError::Shape(format!(
                "{} values are not rows of {cols} columns",
                data.len()
            )));
        }
        let n = data.len() / cols;
        let x = standardize(data, n, &self.means, &self.scales);
        let mut z = vec![self.intercept; n];
        for (j, w) in self.weights.iter().enumerate() {
            for (zi, xi) in z.iter_mut().zip(&x[j * n..(j + 1) * n]) {
                *zi += w * xi;
            }
        }
        Ok(z.into_iter().map(sigmoid).collect())
    }
}

fn standardize(data: &[f64], n: usize, means: &[f64], scales: &[f64]) -> Vec<f64> {
    let mut x = Vec::with_capacity(data.len());
    for (j, (&m, &s)) in means.iter().zip(scales).enumerate() {
        x.extend(data[j * n..(j + 1) * n].iter().map(|&v| {
            if v.is_nan() || s == 0.0 {
                0.0
            } else {
                (v - m) / s
            }
        }));
    }
    x
}

/// Area under the ROC curve (ties count one half), as the Mann-Whitney statistic.
pub fn roc_auc(labels: &[f64], scores: &[f64]) -> Result<f64, PropensityError> {
    let positives = check_two_classes(labels)? as f64;
    let negatives = labels.len() as f64 - positives;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        // Ranks i+1 ..= j+1 share their mean.
        let mean_rank = (i + j + 2) as f64 / 2.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&r| labels[r] == 1.0).count() as f64;
        i = j + 1;
    }
    Ok((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over the distinct score thresholds, high to low
/// (scikit-learn's `average_precision_score`, the step-wise PR-AUC).
pub fn average_precision(labels: &[f64], scores: &[f64]) -> Result<f64, PropensityError> {
    let positives = check_two_classes(labels)? as f64;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut prev_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] == 1.0 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let recall = tp / positives;
        ap += (recall - prev_recall) * tp / (tp + fp);
        prev_recall = recall;
    }
    Ok(ap)
}

/// Mean binary cross-entropy, probabilities clipped to [ε, 1 − ε] (ε = f64::EPSILON).
pub fn log_loss(labels: &[f64], probabilities: &[f64]) -> f64 {
    let eps = f64::EPSILON;
    labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
        })
        .sum::<f64>()
        / labels.len().max(1) as f64
}

pub fn brier(labels: &[f64], probabilities: &[f64]) -> f64 {
    labels
        .iter()
        .zip(probabilities)
        .map(|(y, p)| (y - p).powi(2))
        .sum::<f64>()
        / labels.len().max(1) as f64
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub rows: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// `bins` equal-width probability bins (a probability on an inner edge goes to the upper
/// bin); empty bins are left out.
pub fn calibration_curve(
    labels: &[f64],
    probabilities: &[f64],
    bins: usize,
) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&y, &p) in labels.iter().zip(probabilities) {
        let b = ((p * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += y;
        count[b] += 1;
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| CalibrationBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            rows: count[b],
            mean_predicted: sum_p[b] / count[b] as f64,
            observed_rate: sum_y[b] / count[b] as f64,
        })
        .collect()
}

/// How well a model's probabilities do on some rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evaluation {
    pub rows: usize,
    pub positive_rate: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    pub calibration: Vec<CalibrationBin>,
}

pub fn evaluate(labels: &[f64], probabilities: &[f64]) -> Result<Evaluation, PropensityError> {
    Ok(Evaluation {
        rows: labels.len(),
        positive_rate: labels.iter().sum::<f64>() / labels.len().max(1) as f64,
        roc_auc: roc_auc(labels, probabilities)?,
        pr_auc: average_precision(labels, probabilities)?,
        log_loss: log_loss(labels, probabilities),
        brier: brier(labels, probabilities),
        calibration: calibration_curve(labels, probabilities, 10),
    })
}

/// Everything [`train`] is told.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PropensitySettings {
    pub validation_share: f64,
    pub test_share: f64,
    /// k of the k-fold cross-validation on the train + validation rows (0 or 1: none).
    pub folds: usize,
    /// Inverse L2 penalty of the logistic baseline.
    pub logistic_c: f64,
    pub gbm: GbmSettings,
}

impl Default for PropensitySettings {
    fn default() -> Self {
        Self {
            validation_share: 0.2,
            test_share: 0.2,
            folds: 5,
            logistic_c: 1.0,
            gbm: GbmSettings::default(),
        }
    }
}

/// Per-fold test ROC-AUC of both models.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrossValidation {
    pub folds: usize,
    pub gbm_roc_auc: Vec<f64>,
    pub logistic_roc_auc: Vec<f64>,
    pub gbm_mean: f64,
    pub gbm_sd: f64,
    pub logistic_mean: f64,
    pub logistic_sd: f64,
}

/// A trained propensity model with its held-out evaluation.
#[derive(Debug)]
pub struct Trained {
    pub split: Vec<Split>,
    pub gbm: Gbm,
    pub logistic: Logistic,
    pub gbm_test: Evaluation,
    pub logistic_test: Evaluation,
    pub cross_validation: Option<CrossValidation>,
    /// (feature, share of total gain), largest first.
    pub importance: Vec<(String, f64)>,
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// Splits, fits both models on the training rows (boosting stops early on the validation
/// rows), scores the test rows and cross-validates on train + validation.
pub fn train(
    data: &Dataset,
    settings: &PropensitySettings,
    seed: u64,
) -> Result<Trained, PropensityError> {
    if data.columns.is_empty() {
        return Err(PropensityError::NoFeatures);
    }
    let split = stratified_split(
        &data.labels,
        settings.validation_share,
        settings.test_share,
        seed,
    )?;
    let rows_of =
        |s: Split| -> Vec<usize> { (0..split.len()).filter(|&i| split[i] == s).collect() };
    let (train_rows, valid_rows, test_rows) = (
        rows_of(Split::Train),
        rows_of(Split::Validation),
        rows_of(Split::Test),
    );
    let (tx, ty) = (data.take(&train_rows), data.labels_of(&train_rows));
    let (vx, vy) = (data.take(&valid_rows), data.labels_of(&valid_rows));
    let (sx, sy) = (data.take(&test_rows), data.labels_of(&test_rows));
    let gbm = Gbm::fit(&tx, &ty, Some((&vx, &vy)), &settings.gbm, seed)?;
    let logistic = Logistic::fit(&tx, &ty, settings.logistic_c)?;
    let gbm_test = evaluate(&sy, &gbm.predict_proba(&sx)?)?;
    let logistic_test = evaluate(&sy, &logistic.predict_proba(&sx)?)?;

    let cross_validation = if settings.folds >= 2 {
        let pool: Vec<usize> = (0..split.len())
            .filter(|&i| split[i] != Split::Test)
            .collect();
        let fold = stratified_folds(&data.labels, &pool, settings.folds, seed);
        // Each fold's booster grows as many trees as early stopping chose for the main model.
        let fixed = GbmSettings {
            iterations: gbm.trees().max(1),
            early_stopping_rounds: 0,
            ..settings.gbm
        };
        let mut gbm_auc = Vec::new();
        let mut logistic_auc = Vec::new();
        for f in 0..settings.folds {
            let fit_rows: Vec<usize> = (0..pool.len())
                .filter(|&j| fold[j] != f)
                .map(|j| pool[j])
                .collect();
            let held: Vec<usize> = (0..pool.len())
                .filter(|&j| fold[j] == f)
                .map(|j| pool[j])
                .collect();
            let (fx, fy) = (data.take(&fit_rows), data.labels_of(&fit_rows));
            let (hx, hy) = (data.take(&held), data.labels_of(&held));
            let g = Gbm::fit(&fx, &fy, None, &fixed, seed)?;
            gbm_auc.push(roc_auc(&hy, &g.predict_proba(&hx)?)?);
            let l = Logistic::fit(&fx, &fy, settings.logistic_c)?;
            logistic_auc.push(roc_auc(&hy, &l.predict_proba(&hx)?)?);
        }
        let (gbm_mean, gbm_sd) = mean_sd(&gbm_auc);
        let (logistic_mean, logistic_sd) = mean_sd(&logistic_auc);
        Some(CrossValidation {
            folds: settings.folds,
            gbm_roc_auc: gbm_auc,
            logistic_roc_auc: logistic_auc,
            gbm_mean,
            gbm_sd,
            logistic_mean,
            logistic_sd,
        })
    } else {
        None
    };
    let mut importance: Vec<(String, f64)> =
        data.names.iter().cloned().zip(gbm.importance()).collect();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Trained {
        split,
        gbm,
        logistic,
        gbm_test,
        logistic_test,
        cross_validation,
        importance,
    })
}
