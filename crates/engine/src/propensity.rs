//! `strata propensity`: a gradient-boosted propensity (or churn) model with a logistic
//! baseline, trained on a label that is either a column of the customers table or built from
//! the order history ("purchase within 30 days", "no order within 90 days").
//!
//! With a history label the model learns from RFM features at a cutoff and the orders in the
//! `horizon_days` after it, then scores every customer on the features at the as-of date.

use crate::config::Config;
use crate::output::{csv_field, write_files};
use crate::pipeline::{
    DAY_MICROS, EngineError, Progress, default_as_of, format_micros, load_and_prepare, with_threads,
};
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use strata_core::EntityKind;
use strata_features::{FeatureEngine, RFM_COLUMNS};
use strata_ml::{Dataset, Evaluation, GbmSettings, PropensitySettings, Split};
use strata_prep::PreparedSource;

/// Where the label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelKind {
    /// A column of the customers table (`label_column`, positive values in `positive`).
    Column,
    /// 1 when the customer orders within `horizon_days` after the cutoff.
    PurchaseWithin,
    /// 1 when a customer who ordered before the cutoff does not order within `horizon_days`.
    NoOrderWithin,
}

/// `[propensity]` in strata.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropensityConfig {
    pub label: LabelKind,
    pub label_column: Option<String>,
    /// Values of `label_column` that mean 1 (compared case-insensitively); every other
    /// non-empty value is 0.
    #[serde(default = "default_positive")]
    pub positive: Vec<String>,
    pub horizon_days: Option<u32>,
    /// History labels: the day the features stop and the label window starts (`YYYY-MM-DD`).
    /// Default: `horizon_days` before the as-of date.
    pub cutoff: Option<String>,
    /// Customer columns to use (default: every mapped column but the id, email, name and
    /// the label).
    pub features: Option<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    /// A text column becomes one indicator per value, for its `max_levels` most frequent
    /// values.
    #[serde(default = "default_levels")]
    pub max_levels: usize,
    #[serde(default = "default_validation")]
    pub validation_share: f64,
    #[serde(default = "default_test")]
    pub test_share: f64,
    #[serde(default = "default_folds")]
    pub folds: usize,
    #[serde(default = "default_c")]
    pub logistic_c: f64,
    /// SHAP reasons listed per customer in propensity.csv.
    #[serde(default = "default_reasons")]
    pub reasons: usize,
    #[serde(default)]
    pub gbm: GbmSettings,
}

fn default_positive() -> Vec<String> {
    ["1", "yes", "true", "y", "t"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn default_levels() -> usize {
    32
}
fn default_validation() -> f64 {
    0.2
}
fn default_test() -> f64 {
    0.2
}
fn default_folds() -> usize {
    5
}
fn default_c() -> f64 {
    1.0
}
fn default_reasons() -> usize {
    3
}

impl PropensityConfig {
    pub(crate) fn check(&self, has_customers: bool, has_orders: bool) -> Result<(), String> {
        match self.label {
            LabelKind::Column => {
                if self.label_column.is_none() {
                    return Err(
                        "[propensity] label = \"column\" needs label_column = \"<column>\"".into(),
                    );
                }
                if !has_customers {
                    return Err(
                        "[propensity] label = \"column\" reads the customers table: add [sources.customers]"
                            .into(),
                    );
                }
                if self.positive.is_empty() {
                    return Err("[propensity] positive lists no value".into());
                }
            }
            LabelKind::PurchaseWithin | LabelKind::NoOrderWithin => {
                match self.horizon_days {
                    Some(d) if d > 0 => {}
                    _ => {
                        return Err(format!(
                            "[propensity] label = \"{}\" needs horizon_days ≥ 1",
                            if self.label == LabelKind::PurchaseWithin {
                                "purchase_within"
                            } else {
                                "no_order_within"
                            }
                        ));
                    }
                }
                if !has_orders {
                    return Err(
                        "[propensity] a label built from history needs [sources.orders]".into(),
                    );
                }
            }
        }
        if let Some(d) = &self.cutoff
            && strata_prep::parse_timestamp_micros(d, &["%Y-%m-%d".to_string()]).is_none()
        {
            return Err(format!(
                "[propensity] cutoff = \"{d}\" is not a date (use YYYY-MM-DD)"
            ));
        }
        if !(self.validation_share >= 0.0
            && self.test_share > 0.0
            && self.validation_share + self.test_share < 0.9)
        {
            return Err(
                "[propensity] needs validation_share ≥ 0, test_share > 0 and their sum below 0.9"
                    .into(),
            );
        }
        if self.folds == 1 {
            return Err("[propensity] folds must be 0 (no cross-validation) or at least 2".into());
        }
        if !(self.logistic_c > 0.0 && self.logistic_c.is_finite()) {
            return Err("[propensity] logistic_c must be positive".into());
        }
        let g = &self.gbm;
        if g.iterations == 0 || g.max_leaves < 2 || g.max_depth == 0 || g.bins < 2 {
            return Err(
                "[propensity.gbm] needs iterations ≥ 1, max_leaves ≥ 2, max_depth ≥ 1 and bins ≥ 2"
                    .into(),
            );
        }
        if !(g.learning_rate > 0.0 && g.learning_rate <= 1.0)
            || g.l2 < 0.0
            || g.min_leaf_weight < 0.0
        {
            return Err(
                "[propensity.gbm] needs 0 < learning_rate ≤ 1, l2 ≥ 0 and min_leaf_weight ≥ 0"
                    .into(),
            );
        }
        Ok(())
    }

    fn settings(&self) -> PropensitySettings {
        PropensitySettings {
            validation_share: self.validation_share,
            test_share: self.test_share,
            folds: self.folds,
            logistic_c: self.logistic_c,
            gbm: self.gbm,
        }
    }
}

/// How customer columns become model features; fitted on the training table and applied
/// unchanged to the table that is scored.
#[derive(Debug, Clone, Default)]
struct Encoder {
    numeric: Vec<String>,
    /// Date and time columns, used as days before the reference instant (the cutoff for
    /// training rows, the as-of date for scored ones): `signup_date` becomes a tenure.
    dates: Vec<String>,
    /// Column and the values that get an indicator, most frequent first.
    categorical: Vec<(String, Vec<String>)>,
    /// Columns left out, with the reason.
    dropped: Vec<(String, String)>,
}

fn as_f64(col: &ArrayRef) -> Option<Vec<f64>> {
    let numeric = matches!(
        col.data_type(),
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Float32
            | DataType::Float64
            | DataType::Boolean
    );
    if !numeric {
        return None;
    }
    let cast = arrow::compute::cast(col, &DataType::Float64).ok()?;
    let a = cast.as_primitive::<Float64Type>();
    Some(
        (0..a.len())
            .map(|i| if a.is_valid(i) { a.value(i) } else { f64::NAN })
            .collect(),
    )
}

fn as_text(col: &ArrayRef) -> Option<Vec<Option<String>>> {
    let cast = arrow::compute::cast(col, &DataType::Utf8).ok()?;
    let a = cast.as_string::<i32>();
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i).trim().to_string()))
            .collect(),
    )
}

/// A date or timestamp column as µs since the epoch.
fn micros(col: &ArrayRef) -> Option<Vec<Option<i64>>> {
    let cast = arrow::compute::cast(
        col,
        &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
    )
    .ok()?;
    let a = cast.as_primitive::<TimestampMicrosecondType>();
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect(),
    )
}

/// The latest value over the date columns of `batch` (the default reference instant).
fn latest_date(batch: &RecordBatch, dates: &[String]) -> Option<i64> {
    dates
        .iter()
        .filter_map(|d| batch.column_by_name(d).and_then(micros))
        .flat_map(|v| v.into_iter().flatten())
        .max()
}

const NEVER_FEATURES: &[&str] = &["customer_id", "email", "name", "prep_flags"];

impl Encoder {
    fn fit(batch: &RecordBatch, chosen: &[String], max_levels: usize, explicit: bool) -> Self {
        let mut e = Encoder {
            numeric: Vec::new(),
            dates: Vec::new(),
            categorical: Vec::new(),
            dropped: Vec::new(),
        };
        for name in chosen {
            let Some(col) = batch.column_by_name(name) else {
                continue;
            };
            if col.null_count() == col.len() {
                // An unmapped canonical field (signup_date, say) is an all-null column.
                if explicit {
                    e.dropped.push((name.clone(), "no values".into()));
                }
                continue;
            }
            match col.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    let values = as_text(col).unwrap_or_default();
                    let mut counts: HashMap<&str, usize> = HashMap::new();
                    for v in values.iter().flatten().filter(|v| !v.is_empty()) {
                        *counts.entry(v).or_default() += 1;
                    }
                    if counts.len() < 2 {
                        e.dropped
                            .push((name.clone(), "fewer than two distinct values".into()));
                        continue;
                    }
                    if counts.len() > max_levels {
                        e.dropped.push((
                            name.clone(),
                            format!(
                                "{} distinct values, more than max_levels = {max_levels} (an identifier?): raise max_levels or exclude it",
                                counts.len()
                            ),
                        ));
                        continue;
                    }
                    let mut levels: Vec<(&str, usize)> = counts.into_iter().collect();
                    levels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                    e.categorical.push((
                        name.clone(),
                        levels.into_iter().map(|(v, _)| v.to_string()).collect(),
                    ));
                }
                DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => {
                    e.dates.push(name.clone());
                }
                _ if as_f64(col).is_some() => e.numeric.push(name.clone()),
                other => e
                    .dropped
                    .push((name.clone(), format!("type {other} is not a feature type"))),
            }
        }
        e
    }

    fn names(&self) -> Vec<String> {
        let mut out = self.numeric.clone();
        out.extend(self.dates.iter().map(|d| format!("{d}_days_before")));
        for (c, levels) in &self.categorical {
            out.extend(levels.iter().map(|l| format!("{c}={l}")));
        }
        out
    }

    /// Feature columns of `batch` (a missing column gives missing values); dates count the
    /// days before `reference` (µs since the epoch).
    fn apply(&self, batch: &RecordBatch, reference: i64) -> Vec<Vec<f64>> {
        let n = batch.num_rows();
        let mut out = Vec::new();
        for name in &self.numeric {
            out.push(
                batch
                    .column_by_name(name)
                    .and_then(as_f64)
                    .unwrap_or_else(|| vec![f64::NAN; n]),
            );
        }
        for name in &self.dates {
            out.push(
                batch
                    .column_by_name(name)
                    .and_then(micros)
                    .map(|m| {
                        m.into_iter()
                            .map(|v| {
                                v.map_or(f64::NAN, |v| (reference - v) as f64 / DAY_MICROS as f64)
                            })
                            .collect()
                    })
                    .unwrap_or_else(|| vec![f64::NAN; n]),
            );
        }
        for (name, levels) in &self.categorical {
            let values = batch
                .column_by_name(name)
                .and_then(as_text)
                .unwrap_or_else(|| vec![None; n]);
            for level in levels {
                out.push(
                    values
                        .iter()
                        .map(|v| match v {
                            Some(v) if v == level => 1.0,
                            _ => 0.0,
                        })
                        .collect(),
                );
            }
        }
        out
    }
}

pub(crate) fn ids_of(batch: &RecordBatch) -> Result<Vec<String>, EngineError> {
    let col = batch
        .column_by_name("customer_id")
        .and_then(as_text)
        .ok_or_else(|| EngineError::Propensity("the table has no customer_id".into()))?;
    Ok(col.into_iter().map(Option::unwrap_or_default).collect())
}

/// The rows of `columns` (one `Vec` per feature) that belong to `ids`, by customer id;
/// customers without a row get missing values.
fn gather(columns: &[Vec<f64>], index: &HashMap<String, usize>, ids: &[String]) -> Vec<Vec<f64>> {
    columns
        .iter()
        .map(|c| {
            ids.iter()
                .map(|id| index.get(id).map_or(f64::NAN, |&r| c[r]))
                .collect()
        })
        .collect()
}

fn day_text(day: i64) -> String {
    format_micros(day * DAY_MICROS)
}

/// The model's training table and the customers it scores.
struct Problem {
    label: String,
    cutoff: Option<String>,
    names: Vec<String>,
    encoder: Encoder,
    /// Training rows: ids, columns, labels.
    ids: Vec<String>,
    columns: Vec<Vec<f64>>,
    labels: Vec<f64>,
    /// Scored rows (`None`: the training rows themselves).
    scoring: Option<(Vec<String>, Vec<Vec<f64>>)>,
}

fn customer_columns(
    p: &PropensityConfig,
    customers: &RecordBatch,
    label: Option<&str>,
) -> Vec<String> {
    let names: Vec<String> = match &p.features {
        Some(f) => f.clone(),
        None => customers
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect(),
    };
    names
        .into_iter()
        .filter(|n| !NEVER_FEATURES.contains(&n.as_str()))
        .filter(|n| Some(n.as_str()) != label && !p.exclude.contains(n))
        .collect()
}

fn column_problem(
    p: &PropensityConfig,
    customers: &RecordBatch,
    as_of: Option<i64>,
) -> Result<Problem, EngineError> {
    let label_name = p.label_column.as_deref().unwrap_or_default();
    let col = customers.column_by_name(label_name).ok_or_else(|| {
        EngineError::Propensity(format!(
            "label_column `{label_name}` is not a column of the customers table; map it under [sources.customers.columns]"
        ))
    })?;
    let text = as_text(col).unwrap_or_default();
    let positive: Vec<String> = p.positive.iter().map(|v| v.to_lowercase()).collect();
    let chosen = customer_columns(p, customers, Some(label_name));
    check_features_exist(p, customers)?;
    let encoder = Encoder::fit(customers, &chosen, p.max_levels, p.features.is_some());
    // Dates count days before the as-of date (default: the latest date in the table).
    let reference = as_of
        .or_else(|| latest_date(customers, &encoder.dates).map(|m| m + DAY_MICROS))
        .unwrap_or(0);
    let all = encoder.apply(customers, reference);
    let ids_all = ids_of(customers)?;
    // Rows without a label cannot be learnt from; they are scored all the same.
    let keep: Vec<usize> = (0..text.len())
        .filter(|&i| text[i].as_deref().is_some_and(|v| !v.is_empty()))
        .collect();
    let labels = keep
        .iter()
        .map(|&i| {
            let v = text[i].as_deref().unwrap_or_default().to_lowercase();
            f64::from(u8::from(positive.contains(&v)))
        })
        .collect();
    let columns = all
        .iter()
        .map(|c| keep.iter().map(|&i| c[i]).collect())
        .collect();
    let ids = keep.iter().map(|&i| ids_all[i].clone()).collect();
    let scoring = (keep.len() < ids_all.len()).then_some((ids_all, all));
    Ok(Problem {
        label: format!("{label_name} ∈ {{{}}}", p.positive.join(", ")),
        cutoff: None,
        names: encoder.names(),
        encoder,
        ids,
        columns,
        labels,
        scoring,
    })
}

fn check_features_exist(p: &PropensityConfig, customers: &RecordBatch) -> Result<(), EngineError> {
    for f in p.features.iter().flatten() {
        if customers.column_by_name(f).is_none() {
            return Err(EngineError::Propensity(format!(
                "feature `{f}` is not a column of the customers table"
            )));
        }
    }
    Ok(())
}

fn history_problem(
    config: &Config,
    p: &PropensityConfig,
    prepared: &[PreparedSource],
) -> Result<Problem, EngineError> {
    let orders = prepared
        .iter()
        .find(|s| s.kind == EntityKind::Orders)
        .ok_or(EngineError::NoOrdersSource)?;
    let customers = prepared.iter().find(|s| s.kind == EntityKind::Customers);
    let horizon = i64::from(p.horizon_days.unwrap_or(1));
    let b = &orders.batch;
    let (Some(ids), Some(ts)) = (
        b.column_by_name("customer_id")
            .and_then(|c| c.as_string_opt::<i32>()),
        b.column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
    ) else {
        return Err(EngineError::Propensity(
            "orders lack customer_id or timestamp".into(),
        ));
    };
    let end = config
        .as_of_micros
        .or_else(|| default_as_of(b))
        .unwrap_or(DAY_MICROS);
    let cutoff = match &p.cutoff {
        Some(d) => strata_prep::parse_timestamp_micros(d, &["%Y-%m-%d".to_string()])
            .unwrap_or(end - horizon * DAY_MICROS),
        None => end - horizon * DAY_MICROS,
    };
    let window_end = cutoff + horizon * DAY_MICROS;
    if window_end > end {
        return Err(EngineError::Propensity(format!(
            "the label window {} .. {} runs past the data (as-of {}): move cutoff back",
            day_text(cutoff.div_euclid(DAY_MICROS)),
            day_text(window_end.div_euclid(DAY_MICROS)),
            day_text(end.div_euclid(DAY_MICROS))
        )));
    }
    let mut bought = std::collections::HashSet::new();
    for i in 0..b.num_rows() {
        if ids.is_valid(i) && ts.is_valid(i) && (cutoff..window_end).contains(&ts.value(i)) {
            bought.insert(ids.value(i).to_string());
        }
    }
    let engine = FeatureEngine::new(config.run.threads)?;
    for s in prepared {
        engine.register(s.kind.table_name(), s.batch.clone())?;
    }
    let rfm_at = |at: i64| -> Result<(Vec<String>, Vec<Vec<f64>>), EngineError> {
        let rfm = engine.rfm(at)?;
        let ids = ids_of(&rfm)?;
        let cols = RFM_COLUMNS
            .iter()
            .map(|c| {
                rfm.column_by_name(c)
                    .and_then(as_f64)
                    .unwrap_or_else(|| vec![f64::NAN; ids.len()])
            })
            .collect();
        Ok((ids, cols))
    };
    let (train_ids, mut train_cols) = rfm_at(cutoff)?;
    if train_ids.is_empty() {
        return Err(EngineError::Propensity(format!(
            "no customer ordered before the cutoff {}",
            day_text(cutoff.div_euclid(DAY_MICROS))
        )));
    }
    let (score_ids, mut score_cols) = rfm_at(end)?;
    let mut names: Vec<String> = RFM_COLUMNS.iter().map(|s| s.to_string()).collect();
    let encoder = match customers {
        Some(c) => {
            check_features_exist(p, &c.batch)?;
            let chosen = customer_columns(p, &c.batch, None);
            let encoder = Encoder::fit(&c.batch, &chosen, p.max_levels, p.features.is_some());
            let index: HashMap<String, usize> = ids_of(&c.batch)?
                .into_iter()
                .enumerate()
                .map(|(i, id)| (id, i))
                .collect();
            let at_cutoff = encoder.apply(&c.batch, cutoff);
            train_cols.extend(gather(&at_cutoff, &index, &train_ids));
            let at_end = encoder.apply(&c.batch, end);
            score_cols.extend(gather(&at_end, &index, &score_ids));
            names.extend(encoder.names());
            encoder
        }
        None => Encoder::default(),
    };
    let purchase = p.label == LabelKind::PurchaseWithin;
    let labels = train_ids
        .iter()
        .map(|id| f64::from(u8::from(bought.contains(id) == purchase)))
        .collect();
    let what = if purchase {
        "orders within"
    } else {
        "no order within"
    };
    Ok(Problem {
        label: format!(
            "{what} {horizon} days after {}",
            day_text(cutoff.div_euclid(DAY_MICROS))
        ),
        cutoff: Some(day_text(cutoff.div_euclid(DAY_MICROS))),
        names,
        encoder,
        ids: train_ids,
        columns: train_cols,
        labels,
        scoring: Some((score_ids, score_cols)),
    })
}

/// What `strata propensity` produced.
#[derive(Debug, Clone, Serialize)]
pub struct PropensitySummary {
    pub label: String,
    pub cutoff: Option<String>,
    pub rows: usize,
    pub positive_rate: f64,
    pub features: Vec<String>,
    pub dropped: Vec<(String, String)>,
    pub trees: usize,
    pub gbm_test: Evaluation,
    pub logistic_test: Evaluation,
    pub cross_validation: Option<strata_ml::CrossValidation>,
    pub importance: Vec<(String, f64)>,
    pub scored: usize,
    pub files: Vec<PathBuf>,
}

/// Per-customer scores, for the segment profiles of `strata run`.
pub(crate) struct Scores {
    /// What the probability is of, e.g. "P(no order in 90d)".
    pub name: String,
    pub by_customer: HashMap<String, f64>,
}

fn column_major(columns: &[Vec<f64>]) -> Vec<f64> {
    columns.iter().flatten().copied().collect()
}

struct Fitted {
    problem: Problem,
    trained: strata_ml::Trained,
    /// Scored ids, GBM and logistic probabilities, SHAP rows (the last two empty when the
    /// fit was not asked to explain itself).
    scored_ids: Vec<String>,
    gbm: Vec<f64>,
    logistic: Vec<f64>,
    shap: Vec<Vec<f64>>,
    scored_x: Vec<Vec<f64>>,
}

/// Trains the models and scores the customers. With `explain` false (the segment means of
/// `strata run`) only the boosted trees' probabilities are needed: no cross-validation, no
/// baseline scores and no SHAP values — the same probabilities, as the model is the same.
fn fit(
    config: &Config,
    p: &PropensityConfig,
    prepared: &[PreparedSource],
    explain: bool,
    progress: &dyn Progress,
) -> Result<Fitted, EngineError> {
    let problem = match p.label {
        LabelKind::Column => {
            let customers = prepared
                .iter()
                .find(|s| s.kind == EntityKind::Customers)
                .ok_or_else(|| EngineError::Propensity("no customers table".into()))?;
            column_problem(p, &customers.batch, config.as_of_micros)?
        }
        _ => history_problem(config, p, prepared)?,
    };
    let model_err = |e: strata_ml::PropensityError| EngineError::Propensity(e.to_string());
    let data = Dataset::new(
        problem.names.clone(),
        problem.columns.clone(),
        problem.labels.clone(),
    )
    .map_err(model_err)?;
    progress.start(
        "training propensity models (boosted trees, logistic, cross-validation)",
        1,
    );
    let mut settings = p.settings();
    if !explain {
        settings.folds = 0;
    }
    let trained = strata_ml::train(&data, &settings, config.run.seed).map_err(model_err)?;
    progress.finish();
    let (scored_ids, scored_x) = match &problem.scoring {
        Some((ids, cols)) => (ids.clone(), cols.clone()),
        None => (problem.ids.clone(), problem.columns.clone()),
    };
    let x = column_major(&scored_x);
    let gbm = trained.gbm.predict_proba(&x).map_err(model_err)?;
    let (logistic, shap) = if explain {
        (
            trained.logistic.predict_proba(&x).map_err(model_err)?,
            trained.gbm.shap(&x).map_err(model_err)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Fitted {
        problem,
        trained,
        scored_ids,
        gbm,
        logistic,
        shap,
        scored_x,
    })
}

pub(crate) fn scores(
    config: &Config,
    prepared: &[PreparedSource],
    progress: &dyn Progress,
) -> Result<Option<Scores>, EngineError> {
    let Some(p) = &config.propensity else {
        return Ok(None);
    };
    let f = fit(config, p, prepared, false, progress)?;
    let h = p.horizon_days.unwrap_or(0);
    let name = match p.label {
        LabelKind::Column => format!("P({})", p.label_column.as_deref().unwrap_or("label")),
        LabelKind::PurchaseWithin => format!("P(order in {h}d)"),
        LabelKind::NoOrderWithin => format!("P(no order in {h}d)"),
    };
    Ok(Some(Scores {
        name,
        by_customer: f.scored_ids.into_iter().zip(f.gbm).collect(),
    }))
}

/// Trains the models and writes `propensity.csv` (per customer: probability, baseline,
/// split, label, top SHAP reasons), `shap.csv` and `propensity.json`.
pub fn propensity(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PropensitySummary, EngineError> {
    with_threads(config.run.threads, || {
        write_propensity(config, out_dir, progress)
    })
}

fn write_propensity(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PropensitySummary, EngineError> {
    let p = config.propensity.as_ref().ok_or_else(|| {
        EngineError::Propensity(
            "the config has no [propensity] section (see docs/propensity.md)".into(),
        )
    })?;
    let prepared = load_and_prepare(config, progress)?;
    let f = fit(config, p, &prepared, true, progress)?;
    let names = &f.problem.names;
    let label_of: HashMap<&str, (f64, Split)> = f
        .problem
        .ids
        .iter()
        .zip(&f.problem.labels)
        .zip(&f.trained.split)
        .map(|((id, &y), &s)| (id.as_str(), (y, s)))
        .collect();
    let history = f.problem.cutoff.is_some();
    let mut csv = String::from("customer_id,probability,logistic_probability,split,label");
    for r in 1..=p.reasons {
        let _ = write!(csv, ",reason_{r}");
    }
    csv.push('\n');
    let mut shap_csv = String::from("customer_id,expected_log_odds");
    for n in names {
        csv_push(&mut shap_csv, n);
    }
    shap_csv.push('\n');
    for (i, id) in f.scored_ids.iter().enumerate() {
        // With a history label the scored rows are today's features; the labels belong to
        // the cutoff rows, so they are not repeated here.
        let (split, label) = match (history, label_of.get(id.as_str())) {
            (false, Some((y, s))) => (s.as_str(), format!("{y}")),
            (false, None) => ("unlabelled", String::new()),
            (true, _) => ("scored", String::new()),
        };
        let _ = write!(
            csv,
            "{},{:.6},{:.6},{split},{label}",
            csv_field(id),
            f.gbm[i],
            f.logistic[i]
        );
        let row = &f.shap[i];
        let mut order: Vec<usize> = (0..names.len()).filter(|&j| row[j] != 0.0).collect();
        order.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()).then(a.cmp(&b)));
        for r in 0..p.reasons {
            match order.get(r) {
                Some(&j) => {
                    let v = f.scored_x[j][i];
                    let reason = format!("{}={} ({:+.3})", names[j], fmt_value(v), row[j]);
                    csv_push(&mut csv, &reason);
                }
                None => csv.push(','),
            }
        }
        csv.push('\n');
        shap_csv.push_str(&csv_field(id));
        let _ = write!(shap_csv, ",{:.6}", row[names.len()]);
        for v in &row[..names.len()] {
            let _ = write!(shap_csv, ",{v:.6}");
        }
        shap_csv.push('\n');
    }
    let t = &f.trained;
    let positives: f64 = f.problem.labels.iter().sum();
    let mut summary = PropensitySummary {
        label: f.problem.label.clone(),
        cutoff: f.problem.cutoff.clone(),
        rows: f.problem.labels.len(),
        positive_rate: positives / f.problem.labels.len().max(1) as f64,
        features: names.clone(),
        dropped: f.problem.encoder.dropped.clone(),
        trees: t.gbm.trees(),
        gbm_test: t.gbm_test.clone(),
        logistic_test: t.logistic_test.clone(),
        cross_validation: t.cross_validation.clone(),
        importance: t.importance.clone(),
        scored: f.scored_ids.len(),
        files: Vec::new(),
    };
    let json = serde_json::to_string_pretty(&summary)
        .map_err(|e| EngineError::Propensity(e.to_string()))?;
    let svg = strata_report::calibration_svg(
        &[
            ("boosted trees", &t.gbm_test.calibration),
            ("logistic", &t.logistic_test.calibration),
        ],
        "Calibration on the test rows",
    )?;
    let mut files = vec![
        ("propensity.csv", csv.into_bytes()),
        ("shap.csv", shap_csv.into_bytes()),
        ("propensity.json", json.into_bytes()),
        ("propensity_calibration.svg", svg.into_bytes()),
    ];
    if history {
        // The labels built from the orders, per training customer, to audit them.
        let mut labels = String::from("customer_id,label,split\n");
        for ((id, y), s) in f.problem.ids.iter().zip(&f.problem.labels).zip(&t.split) {
            let _ = writeln!(labels, "{},{y},{}", csv_field(id), s.as_str());
        }
        files.push(("propensity_labels.csv", labels.into_bytes()));
    }
    summary.files = write_files(out_dir, files)?;
    Ok(summary)
}

fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "missing".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn csv_push(out: &mut String, field: &str) {
    out.push(',');
    out.push_str(&csv_field(field));
}
