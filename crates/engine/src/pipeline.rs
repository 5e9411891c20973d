//! One batch run, stage by stage: load → features → scale → choose k → profile → outputs.

use crate::config::Config;
use crate::output::{self, Outputs};
use crate::segment::{self, Categories, Fitted, MISSING_CATEGORY};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_core::{EntityKind, FeatureMatrix, MatrixError, Quarantined, Transform};
use strata_features::{FeatureEngine, FeatureError, RFM_SEGMENTS};
use strata_ml::{
    KCandidate, Pca, PcaError, ScaleError, Scaler, SegmentProfile, SegmentationModel,
    adjusted_rand_index, membership_summaries, profile_segments,
};
use strata_prep::{LoadError, LoadedSource, PreparedSource, SourceConfig, load_source, prepare};
use strata_report::{ReportError, SourceSummary};

pub(crate) const DAY_MICROS: i64 = 86_400_000_000;
/// Customers drawn in the projection plot; enough to see structure, small enough to open fast.
const PROJECTION_POINTS: usize = 4000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("cannot read config {}: {source}", path.display())]
    ConfigRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {}: {message}", path.display())]
    ConfigInvalid { path: PathBuf, message: String },
    #[error(transparent)]
    Load(Box<LoadError>),
    #[error("{table} source {}: no usable rows ({quarantined} quarantined{})", path.display(), first.as_ref().map(|q| format!("; first: {q}")).unwrap_or_default())]
    NoRows {
        table: EntityKind,
        path: PathBuf,
        quarantined: usize,
        first: Option<Box<Quarantined>>,
    },
    #[error("no orders before the as-of date {as_of}: nothing to segment")]
    NothingBeforeAsOf { as_of: String },
    #[error(
        "{customers} customers with orders are too few to segment into at least {k_min} segments"
    )]
    TooFewCustomers { customers: usize, k_min: usize },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error("feature computation failed (a bug in Strata): {0}")]
    Features(#[from] FeatureError),
    #[error("model fitting failed: {0}")]
    Model(String),
    #[error("nothing to segment: every customer has the same {features} ({customers} customers)")]
    NothingToSegment { features: String, customers: usize },
    #[error(
        "this command needs an orders table: add [sources.orders] with customer_id, timestamp and amount"
    )]
    NoOrdersSource,
    #[error("customer lifetime value: {0}")]
    Clv(String),
    #[error("propensity model: {0}")]
    Propensity(String),
    #[error(transparent)]
    Report(#[from] ReportError),
}

impl EngineError {
    /// True for problems the user can fix (input, config, file system); false for bugs.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Features(_) | Self::Model(_) | Self::Report(_))
    }
}

impl From<LoadError> for EngineError {
    fn from(e: LoadError) -> Self {
        Self::Load(Box::new(e))
    }
}

impl From<MatrixError> for EngineError {
    fn from(e: MatrixError) -> Self {
        Self::Model(e.to_string())
    }
}
impl From<ScaleError> for EngineError {
    fn from(e: ScaleError) -> Self {
        Self::Model(e.to_string())
    }
}
impl From<PcaError> for EngineError {
    fn from(e: PcaError) -> Self {
        Self::Model(e.to_string())
    }
}

/// Receives progress of long stages (the CLI draws bars from it).
pub trait Progress: Sync {
    fn start(&self, _stage: &str, _steps: u64) {}
    fn step(&self) {}
    fn finish(&self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub title: String,
    pub customers: usize,
    pub as_of: String,
    pub chosen_k: usize,
    /// `[segmentation] algorithm`.
    pub algorithm: String,
    pub reason: String,
    pub candidates: Vec<KCandidate>,
    pub segments: Vec<SegmentProfile>,
    pub sources: Vec<SourceSummary>,
    pub quarantined: usize,
    pub output_dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub seconds: f64,
}

fn load(
    kind: EntityKind,
    source: &SourceConfig,
    config: &Config,
    progress: &dyn Progress,
) -> Result<LoadedSource, EngineError> {
    progress.start(&format!("loading {kind}"), 1);
    let mut resolved = source.clone();
    resolved.path = config.resolve(&source.path);
    resolved.null_invalid = config.prep_plan.table(kind).null_invalid_fields();
    let loaded = load_source(kind, &resolved)?;
    progress.finish();
    Ok(loaded)
}

/// Loads every source and runs the `[prep]` steps; the result is in config order (orders
/// first). A source left with no usable rows is an error.
pub(crate) fn load_and_prepare(
    config: &Config,
    progress: &dyn Progress,
) -> Result<Vec<PreparedSource>, EngineError> {
    let mut loaded = Vec::new();
    for (kind, source) in config.sources() {
        loaded.push(load(kind, source, config, progress)?);
    }
    progress.start("preparing data (rules, dedup, imputation)", 1);
    let prepared = prepare(loaded, &config.prep_plan)?.sources;
    progress.finish();
    for p in &prepared {
        if p.batch.num_rows() == 0 {
            return Err(EngineError::NoRows {
                table: p.kind,
                path: p.path.clone(),
                quarantined: p.quarantined.len(),
                first: p.quarantined.first().cloned().map(Box::new),
            });
        }
    }
    Ok(prepared)
}

/// Midnight UTC after the latest order.
pub(crate) fn default_as_of(orders: &RecordBatch) -> Option<i64> {
    let ts = orders
        .column_by_name("timestamp")?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    let max = arrow::compute::max(ts)?;
    max.div_euclid(DAY_MICROS)
        .checked_add(1)?
        .checked_mul(DAY_MICROS)
}

pub(crate) fn format_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| {
            if micros % DAY_MICROS == 0 {
                d.format("%Y-%m-%d").to_string()
            } else {
                d.to_rfc3339()
            }
        })
        .unwrap_or_else(|| micros.to_string())
}

/// The `customer_id` column of a batch, in row order.
pub(crate) fn customer_ids(batch: &RecordBatch) -> Option<Vec<String>> {
    batch
        .column_by_name("customer_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .map(|c| {
            c.iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect()
        })
}

/// The feature matrix the model sees, from the RFM batch.
fn feature_matrix(rfm: &RecordBatch, names: &[String]) -> Result<FeatureMatrix, EngineError> {
    let ids = customer_ids(rfm)
        .ok_or_else(|| EngineError::Model("RFM result has no customer_id column".into()))?;
    let columns: Vec<Vec<f64>> = names
        .iter()
        .map(|name| {
            let col = rfm
                .column_by_name(name)
                .ok_or_else(|| EngineError::Model(format!("RFM result has no `{name}` column")))?;
            Ok(match col.data_type() {
                arrow::datatypes::DataType::Int64 => col
                    .as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(0) as f64)
                    .collect(),
                _ => col
                    .as_primitive::<Float64Type>()
                    .iter()
                    .map(|v| v.unwrap_or(f64::NAN))
                    .collect(),
            })
        })
        .collect::<Result<_, EngineError>>()?;
    let n = ids.len();
    let mut data = Vec::with_capacity(n * names.len());
    for i in 0..n {
        data.extend(columns.iter().map(|c| c[i]));
    }
    Ok(FeatureMatrix::new(ids, names.to_vec(), data)?)
}

/// What `strata prep` produced.
#[derive(Debug, Clone)]
pub struct PrepSummary {
    pub sources: Vec<SourceSummary>,
    /// Deduplication figures per table that was deduplicated.
    pub dedup: Vec<(EntityKind, strata_prep::DedupReport)>,
    pub files: Vec<PathBuf>,
    pub seconds: f64,
}

fn summaries(prepared: &[PreparedSource]) -> Vec<SourceSummary> {
    prepared
        .iter()
        .map(|s| SourceSummary {
            table: s.kind.to_string(),
            path: s.path.display().to_string(),
            rows_read: s.rows_read,
            rows_kept: s.batch.num_rows() as u64,
            quarantined: s.quarantined.len() as u64,
            merged: s.rows_merged,
            clean: s.quality.rows_clean,
        })
        .collect()
}

/// Runs only the preparation stage: loads the sources, applies `[prep]`, and writes the
/// cleaned tables (`<table>.parquet`), `quarantine.csv`, `quality.json` and `merges.jsonl`.
pub fn prep(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<PrepSummary, EngineError> {
    let started = Instant::now();
    let work = || -> Result<PrepSummary, EngineError> {
        let prepared = load_and_prepare(config, progress)?;
        progress.start("writing prepared tables", 1);
        let files = output::write_prep(out_dir, &prepared)?;
        progress.finish();
        Ok(PrepSummary {
            sources: summaries(&prepared),
            dedup: prepared
                .iter()
                .filter_map(|p| p.dedup.clone().map(|d| (p.kind, d)))
                .collect(),
            files,
            seconds: started.elapsed().as_secs_f64(),
        })
    };
    with_threads(config.run.threads, work)
}

/// Runs `work` on a pool of `threads` workers (0 = rayon's global pool, all cores).
pub(crate) fn with_threads<T: Send>(
    threads: usize,
    work: impl FnOnce() -> Result<T, EngineError> + Send,
) -> Result<T, EngineError> {
    if threads == 0 {
        return work();
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| EngineError::Model(format!("cannot start {threads} worker threads: {e}")))?;
    pool.install(work)
}

/// Runs the whole pipeline described by `config`, writing into `out_dir`.
/// All parallel work (SQL, k-means, metrics) uses `[run] threads` workers (0 = all cores).
pub fn run(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<RunSummary, EngineError> {
    with_threads(config.run.threads, || run_stages(config, out_dir, progress))
}

fn run_stages(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<RunSummary, EngineError> {
    let started = Instant::now();
    let loaded = load_and_prepare(config, progress)?;

    progress.start("computing RFM features", 1);
    let engine = FeatureEngine::new(config.run.threads)?;
    for source in &loaded {
        engine.register(source.kind.table_name(), source.batch.clone())?;
    }
    let orders = &loaded
        .iter()
        .find(|p| p.kind == EntityKind::Orders)
        .ok_or(EngineError::NoOrdersSource)?
        .batch;
    let as_of = match config.as_of_micros {
        Some(micros) => micros,
        None => default_as_of(orders).unwrap_or(0),
    };
    let as_of_text = format_micros(as_of);
    let rfm = engine.rfm(as_of)?;
    progress.finish();
    if rfm.num_rows() == 0 {
        return Err(EngineError::NothingBeforeAsOf { as_of: as_of_text });
    }
    let seg = &config.segmentation;
    if rfm.num_rows() <= seg.k_min {
        return Err(EngineError::TooFewCustomers {
            customers: rfm.num_rows(),
            k_min: seg.k_min,
        });
    }

    let all_features = feature_matrix(&rfm, &config.features.segment_on)?;
    let (raw, dropped) = drop_constant_features(all_features)?;
    let Space {
        scaler,
        scaled,
        projection: pca_space,
        clustered,
    } = space(config, &raw)?;

    let categories = categories(config, &loaded)?;
    let mut fitted = segment::fit(
        seg,
        &clustered,
        categories.as_ref(),
        config.run.seed,
        None,
        progress,
    )?;
    if !dropped.is_empty() {
        fitted.reason.push_str(&format!(
            "; constant features left out: {}",
            dropped.join(", ")
        ));
    }
    if let Some(p) = &pca_space {
        fitted.reason.push_str(&format!(
            "; clustered in {} principal components ({:.1}% of the variance)",
            p.n_components(),
            p.explained_variance_ratio().iter().sum::<f64>() * 100.0
        ));
    }
    let k = fitted.k;
    let labels = fitted.labels.clone();

    progress.start("profiling segments", 1);
    let mut profiles = profile_segments(&raw, &scaled, &labels, k);
    if let Some(noise) = fitted.noise_segment {
        profiles[noise].name = "Noise (no dense cluster)".into();
    }
    if let Some(c) = &categories {
        describe_categories(c, raw.ids(), &labels, &mut profiles);
    }
    if let Some(u) = &fitted.memberships {
        for (p, m) in profiles.iter_mut().zip(membership_summaries(u, &labels, k)) {
            p.membership = Some(m);
        }
    }
    progress.finish();
    add_predictions(config, &loaded, raw.ids(), &labels, &mut profiles, progress)?;
    progress.start("projecting customers", 1);
    let pca = Pca::fit(&scaled, 2.min(scaled.n_cols()))?;
    let stride = scaled.n_rows().div_ceil(PROJECTION_POINTS).max(1);
    let mut projection = Vec::new();
    let mut projection_labels = Vec::new();
    for i in (0..scaled.n_rows()).step_by(stride) {
        let p = pca.project(scaled.row(i));
        projection.push([p[0], p.get(1).copied().unwrap_or(0.0)]);
        projection_labels.push(labels[i]);
    }
    let ratio = pca.explained_variance_ratio();
    let explained = [ratio[0], ratio.get(1).copied().unwrap_or(0.0)];
    let (rfm_grid, rfm_segments) = rfm_counts(&rfm);
    progress.finish();

    let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
    let model = build_model(
        &fitted,
        scaler,
        pca_space,
        raw.names().to_vec(),
        names,
        config.run.seed,
    );
    // A validation that cannot be computed (a subsample with a constant feature, a DBSCAN
    // refit that finds no cluster) is reported, not fatal.
    let stability = if seg.stability_runs > 0 {
        match segment::stability(
            seg,
            &clustered,
            categories.as_ref(),
            &fitted,
            config.run.seed,
            progress,
        ) {
            Ok(s) => Some(s),
            Err(e) => {
                fitted
                    .reason
                    .push_str(&format!("; stability not measured: {e}"));
                None
            }
        }
    } else {
        None
    };
    let time_split = match seg.time_split_days {
        Some(days) => Some(time_split(
            config,
            &engine,
            &raw,
            categories.as_ref(),
            &model,
            &fitted,
            as_of,
            days,
            progress,
        )?),
        None => None,
    };
    let sub_segments = match &seg.split {
        Some(which) => Some(sub_segments(
            config, which, &raw, &scaled, &clustered, &labels, &profiles,
        )?),
        None => None,
    };
    let sources = summaries(&loaded);
    let quarantined: Vec<(EntityKind, &Quarantined)> = loaded
        .iter()
        .flat_map(|s| s.quarantined.iter().map(move |q| (s.kind, q)))
        .collect();

    progress.start("writing outputs", 1);
    let mut summary = RunSummary {
        title: config.run.name.clone(),
        customers: raw.n_rows(),
        as_of: as_of_text,
        chosen_k: k,
        algorithm: seg.algorithm.name().to_string(),
        reason: fitted.reason.clone(),
        candidates: fitted.candidates.clone(),
        segments: profiles,
        sources,
        quarantined: quarantined.len(),
        output_dir: out_dir.to_path_buf(),
        files: Vec::new(),
        seconds: 0.0,
    };
    let outputs = Outputs {
        config,
        summary: &summary,
        rfm: &rfm,
        labels: &labels,
        model: &model,
        fitted: &fitted,
        stability: stability.as_ref(),
        categories: categories.as_ref(),
        time_split: time_split.as_ref(),
        sub_segments: sub_segments.as_ref(),
        quarantined: &quarantined,
        quality: loaded.iter().map(|s| &s.quality).collect(),
        prepared: &loaded,
        projection,
        projection_labels,
        explained,
        rfm_grid,
        rfm_segments,
    };
    summary.files = output::write_all(out_dir, &outputs)?;
    progress.finish();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Leaves out features with one value for every customer (they cannot separate segments);
/// an error when no feature varies.
fn drop_constant_features(m: FeatureMatrix) -> Result<(FeatureMatrix, Vec<String>), EngineError> {
    let d = m.n_cols();
    let constant: Vec<usize> = m.constant_columns().collect();
    if constant.is_empty() {
        return Ok((m, Vec::new()));
    }
    let dropped: Vec<String> = constant.iter().map(|&j| m.names()[j].clone()).collect();
    if constant.len() == d {
        return Err(EngineError::NothingToSegment {
            features: dropped.join(", "),
            customers: m.n_rows(),
        });
    }
    let keep: Vec<usize> = (0..d).filter(|j| !constant.contains(j)).collect();
    let values = (0..m.n_rows())
        .flat_map(|i| keep.iter().map(move |&j| (i, j)))
        .map(|(i, j)| m.row(i)[j])
        .collect();
    let names = keep.iter().map(|&j| m.names()[j].clone()).collect();
    Ok((
        FeatureMatrix::new(m.ids().to_vec(), names, values)?,
        dropped,
    ))
}

/// The spaces a segmentation works in: raw features scaled, then optionally projected.
struct Space {
    scaler: Scaler,
    scaled: FeatureMatrix,
    projection: Option<Pca>,
    /// What the algorithm sees: `scaled`, or its principal components.
    clustered: FeatureMatrix,
}

fn space(config: &Config, raw: &FeatureMatrix) -> Result<Space, EngineError> {
    let kinds: Vec<_> = raw
        .names()
        .iter()
        .map(|n| config.features.scaling.kind_for(n))
        .collect();
    let scaler = Scaler::fit(raw, &kinds)?;
    let scaled = scaler.transform(raw)?;
    let projection = match config.segmentation.pca_variance {
        Some(share) => Some(Pca::fit_variance(&scaled, share)?),
        None => None,
    };
    let clustered = match &projection {
        Some(p) => p.transform(&scaled)?,
        None => scaled.clone(),
    };
    Ok(Space {
        scaler,
        scaled,
        projection,
        clustered,
    })
}

/// The saved model of a fitted segmentation.
fn build_model(
    fitted: &Fitted,
    scaler: Scaler,
    projection: Option<Pca>,
    features: Vec<String>,
    names: Vec<String>,
    seed: u64,
) -> SegmentationModel {
    let mut model = SegmentationModel::new(
        fitted.algorithm.name(),
        features,
        scaler,
        fitted.k,
        fitted.centroids.clone(),
        names,
        seed,
        fitted.labels.len(),
    );
    model.projection = projection;
    model.assigner = fitted.assigner.clone();
    model.segment_of_cluster = fitted.segment_of_cluster.clone();
    model
}

/// Time-split stability: the same segmentation fitted on features as of `days` before
/// `as_of`, compared with today's on today's customers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimeSplit {
    pub days: u32,
    pub earlier_as_of: String,
    /// Customers with orders before the earlier date.
    pub earlier_customers: usize,
    /// Agreement (ARI) between today's segments and the earlier model's segments of today's
    /// customers: 1 when the earlier model would have drawn the same boundaries.
    pub ari: Option<f64>,
    /// Of the customers present at both dates, the share whose segment (today's model on
    /// their earlier and current features) changed.
    pub moved_share: Option<f64>,
    pub common_customers: usize,
    /// Why the comparison could not be made, when it could not.
    pub note: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn time_split(
    config: &Config,
    engine: &FeatureEngine,
    raw: &FeatureMatrix,
    categories: Option<&Categories>,
    model: &SegmentationModel,
    fitted: &Fitted,
    as_of: i64,
    days: u32,
    progress: &dyn Progress,
) -> Result<TimeSplit, EngineError> {
    let earlier = as_of - i64::from(days) * DAY_MICROS;
    let mut out = TimeSplit {
        days,
        earlier_as_of: format_micros(earlier),
        earlier_customers: 0,
        ari: None,
        moved_share: None,
        common_customers: 0,
        note: None,
    };
    progress.start("time-split stability", 1);
    let rfm = engine.rfm(earlier)?;
    out.earlier_customers = rfm.num_rows();
    let seg = &config.segmentation;
    if rfm.num_rows() <= fitted.k.max(seg.k_min) {
        out.note = Some(format!(
            "{} customers had orders before {}: too few to refit",
            rfm.num_rows(),
            out.earlier_as_of
        ));
        progress.finish();
        return Ok(out);
    }
    let early_raw = feature_matrix(&rfm, raw.names())?;
    if let Some((j, _)) = early_raw.constant_column() {
        out.note = Some(format!(
            "`{}` is constant among the earlier customers",
            early_raw.names()[j]
        ));
        progress.finish();
        return Ok(out);
    }
    let Space {
        scaler,
        projection,
        clustered,
        ..
    } = space(config, &early_raw)?;
    // The same number of clusters; DBSCAN picks its own eps in the earlier data's scale.
    let fixed = (fitted.algorithm != crate::config::Algorithm::Dbscan).then_some((fitted.k, 1.0));
    let early = match segment::fit(
        seg,
        &clustered,
        categories,
        config.run.seed,
        fixed,
        &NoProgress,
    ) {
        Ok(f) => f,
        Err(e) => {
            out.note = Some(format!("the earlier refit failed: {e}"));
            progress.finish();
            return Ok(out);
        }
    };
    let early_model = build_model(
        &early,
        scaler,
        projection,
        raw.names().to_vec(),
        vec![String::new(); early.k],
        config.run.seed,
    );
    let again = assign_all(&early_model, raw, categories)?;
    out.ari = Some(adjusted_rand_index(&fitted.labels, &again));
    let then = assign_all(model, &early_raw, categories)?;
    let position: HashMap<&str, usize> = raw
        .ids()
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let (mut common, mut moved) = (0usize, 0usize);
    for (id, &segment) in early_raw.ids().iter().zip(&then) {
        if let Some(&i) = position.get(id.as_str()) {
            common += 1;
            moved += usize::from(fitted.labels[i] != segment);
        }
    }
    out.common_customers = common;
    out.moved_share = (common > 0).then(|| moved as f64 / common as f64);
    progress.finish();
    Ok(out)
}

/// Segments of `raw`'s customers under `model` (with their categorical values, if any).
fn assign_all(
    model: &SegmentationModel,
    raw: &FeatureMatrix,
    categories: Option<&Categories>,
) -> Result<Vec<u32>, EngineError> {
    let values = categories.map(|c| c.values(raw.ids())).unwrap_or_default();
    model
        .assign_mixed(raw, &values)
        .map(|a| a.labels)
        .map_err(|e| EngineError::Model(e.to_string()))
}

/// `[features] categorical`: each customer's values from the customers table, and every
/// feature's sorted vocabulary ("(missing)" for customers without a value or a row).
fn categories(
    config: &Config,
    loaded: &[PreparedSource],
) -> Result<Option<Categories>, EngineError> {
    let names = &config.features.categorical;
    if names.is_empty() {
        return Ok(None);
    }
    let customers = loaded
        .iter()
        .find(|p| p.kind == EntityKind::Customers)
        .ok_or_else(|| {
            EngineError::Model("no customers table for [features] categorical".into())
        })?;
    let batch = &customers.batch;
    let ids = customer_ids(batch).ok_or_else(|| EngineError::Input {
        path: customers.path.clone(),
        message: "the customers table has no customer_id".into(),
    })?;
    let columns = names
        .iter()
        .map(|name| {
            let column = batch.column_by_name(name).ok_or_else(|| EngineError::Input {
                path: customers.path.clone(),
                message: format!(
                    "[features] categorical names `{name}`, which the customers table does not have; its fields: {}",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
            arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)
                .map_err(|e| EngineError::Model(format!("categorical `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let columns: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
    let mut by_customer = HashMap::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let values = columns
            .iter()
            .map(|c| {
                if c.is_null(i) || c.value(i).trim().is_empty() {
                    MISSING_CATEGORY.to_string()
                } else {
                    c.value(i).trim().to_string()
                }
            })
            .collect();
        by_customer.insert(id, values);
    }
    let vocabulary = (0..names.len())
        .map(|j| {
            let mut v: Vec<String> = by_customer
                .values()
                .map(|r: &Vec<String>| r[j].clone())
                .collect();
            v.push(MISSING_CATEGORY.to_string());
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    Ok(Some(Categories {
        names: names.clone(),
        vocabulary,
        by_customer,
    }))
}

/// Adds each categorical feature's most common value in a segment to what sets it apart.
fn describe_categories(
    c: &Categories,
    ids: &[String],
    labels: &[u32],
    profiles: &mut [SegmentProfile],
) {
    let m = c.names.len();
    let values = c.values(ids);
    for p in profiles.iter_mut() {
        for (j, name) in c.names.iter().enumerate() {
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for (i, &l) in labels.iter().enumerate() {
                if l as usize == p.id {
                    *counts.entry(values[i * m + j].as_str()).or_default() += 1;
                }
            }
            let total: usize = counts.values().sum();
            if let Some((value, n)) =
                counts
                    .iter()
                    .fold(None, |b: Option<(&&str, &usize)>, x| match b {
                        Some(bb) if bb.1 >= x.1 => Some(bb),
                        _ => Some(x),
                    })
            {
                p.distinguishing.push(format!(
                    "{name}: {value} ({:.0}%)",
                    100.0 * *n as f64 / total.max(1) as f64
                ));
            }
        }
    }
}

/// Sub-segments of one segment: k-means with k chosen by silhouette inside it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubSegments {
    pub parent: usize,
    pub parent_name: String,
    pub reason: String,
    pub candidates: Vec<KCandidate>,
    pub profiles: Vec<SegmentProfile>,
    /// (row of the run's matrix, sub-segment) for the parent's customers.
    #[serde(skip)]
    pub rows: Vec<(usize, u32)>,
}

fn sub_segments(
    config: &Config,
    which: &str,
    raw: &FeatureMatrix,
    scaled: &FeatureMatrix,
    clustered: &FeatureMatrix,
    labels: &[u32],
    profiles: &[SegmentProfile],
) -> Result<SubSegments, EngineError> {
    let parent = profiles
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(which.trim()) || p.id.to_string() == which.trim())
        .ok_or_else(|| {
            EngineError::Model(format!(
                "[segmentation] split = \"{which}\" names no segment; segments are: {}",
                profiles
                    .iter()
                    .map(|p| format!("{} ({})", p.id, p.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
    let rows: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] as usize == parent.id)
        .collect();
    let pick = |m: &FeatureMatrix| -> Result<FeatureMatrix, EngineError> {
        Ok(FeatureMatrix::new(
            rows.iter().map(|&i| m.ids()[i].clone()).collect(),
            m.names().to_vec(),
            rows.iter().flat_map(|&i| m.row(i).to_vec()).collect(),
        )?)
    };
    let (sub_raw, sub_scaled, sub_clustered) = (pick(raw)?, pick(scaled)?, pick(clustered)?);
    let seg = &config.segmentation;
    if rows.len() <= 2 || sub_clustered.constant_column().is_some() {
        return Err(EngineError::Model(format!(
            "segment {} ({}) has {} customers that do not vary enough to split",
            parent.id,
            parent.name,
            rows.len()
        )));
    }
    // k-means inside the segment, k chosen and segments numbered as for the whole run.
    let inner = crate::config::SegmentationConfig {
        algorithm: crate::config::Algorithm::Kmeans,
        k: None,
        k_min: 2,
        k_max: seg.split_k_max,
        gap_references: 0,
        ..seg.clone()
    };
    let fitted = segment::fit(
        &inner,
        &sub_clustered,
        None,
        config.run.seed,
        None,
        &NoProgress,
    )
    .map_err(|e| EngineError::Model(format!("sub-segments of {}: {e}", parent.name)))?;
    let (k, sub_labels) = (fitted.k, fitted.labels);
    let mut sub_profiles = profile_segments(&sub_raw, &sub_scaled, &sub_labels, k);
    for p in &mut sub_profiles {
        p.name = format!("{} · {}", parent.name, p.name);
    }
    Ok(SubSegments {
        parent: parent.id,
        parent_name: parent.name.clone(),
        reason: fitted.reason,
        candidates: fitted.candidates,
        profiles: sub_profiles,
        rows: rows.into_iter().zip(sub_labels).collect(),
    })
}

/// Mean CLV and P(alive) (with `[clv]`) and propensity (with `[propensity]`) per segment.
fn add_predictions(
    config: &Config,
    loaded: &[PreparedSource],
    ids: &[String],
    labels: &[u32],
    profiles: &mut [SegmentProfile],
    progress: &dyn Progress,
) -> Result<(), EngineError> {
    let mut columns: Vec<(String, HashMap<String, f64>)> = Vec::new();
    if let Some(c) = &config.clv {
        let fit = crate::clv::fit_clv(config, c, loaded, progress)?;
        columns.push((
            "P(alive)".into(),
            fit.summary
                .iter()
                .map(|s| (s.id.clone(), fit.purchases.p_alive(s.x, s.t_x, s.t)))
                .collect(),
        ));
        if fit.spend.is_some() {
            columns.push((
                "CLV".into(),
                fit.summary
                    .iter()
                    .filter_map(|s| fit.value(c, s).map(|v| (s.id.clone(), v)))
                    .collect(),
            ));
        }
    }
    if let Some(scores) = crate::propensity::scores(config, loaded, progress)? {
        columns.push((scores.name, scores.by_customer));
    }
    if columns.is_empty() {
        return Ok(());
    }
    for (name, values) in &columns {
        let mut sum = vec![0.0; profiles.len()];
        let mut count = vec![0usize; profiles.len()];
        for (id, &l) in ids.iter().zip(labels) {
            if let Some(v) = values.get(id) {
                sum[l as usize] += v;
                count[l as usize] += 1;
            }
        }
        for p in profiles.iter_mut() {
            p.predictions.push(strata_ml::PredictionMean {
                name: name.clone(),
                mean: if count[p.id] > 0 {
                    sum[p.id] / count[p.id] as f64
                } else {
                    f64::NAN
                },
                customers: count[p.id],
            });
        }
    }
    Ok(())
}

/// Customers per (R, F) score cell and per named RFM segment (in the canonical order).
fn rfm_counts(rfm: &RecordBatch) -> ([[u64; 5]; 5], Vec<(String, u64)>) {
    let mut grid = [[0u64; 5]; 5];
    let mut named = vec![0u64; RFM_SEGMENTS.len()];
    let r = rfm
        .column_by_name("r_score")
        .and_then(|c| c.as_primitive_opt::<Int64Type>());
    let f = rfm
        .column_by_name("f_score")
        .and_then(|c| c.as_primitive_opt::<Int64Type>());
    let s = rfm
        .column_by_name("rfm_segment")
        .and_then(|c| c.as_string_opt::<i32>());
    if let (Some(r), Some(f), Some(s)) = (r, f, s) {
        for i in 0..rfm.num_rows() {
            let (ri, fi) = (
                r.value(i).clamp(1, 5) as usize - 1,
                f.value(i).clamp(1, 5) as usize - 1,
            );
            grid[ri][fi] += 1;
            if let Some(pos) = RFM_SEGMENTS.iter().position(|n| *n == s.value(i)) {
                named[pos] += 1;
            }
        }
    }
    let named = RFM_SEGMENTS
        .iter()
        .zip(named)
        .filter(|(_, c)| *c > 0)
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    (grid, named)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_defaults_to_the_midnight_after_the_last_order() {
        assert_eq!(format_micros(10 * DAY_MICROS), "1970-01-11");
        assert!(format_micros(10 * DAY_MICROS + 1).starts_with("1970-01-11T"));
    }
}
