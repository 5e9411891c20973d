//! Writes a run's outputs. Each file is written to a temporary name and renamed into place,
//! so a failed run never leaves a half-written file behind.

use crate::config::Config;
use crate::pipeline::{EngineError, RunSummary};
use crate::pipeline::{SubSegments, TimeSplit};
use crate::segment::Fitted;
use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_core::{EntityKind, Quarantined};
use strata_ml::{SegmentationModel, Stability};
use strata_prep::{PreparedSource, SourceQuality};
use strata_report::{DedupSummary, QualityRow, ReportInput, render_report};

pub(crate) struct Outputs<'a> {
    pub config: &'a Config,
    pub summary: &'a RunSummary,
    pub rfm: &'a RecordBatch,
    pub labels: &'a [u32],
    pub model: &'a SegmentationModel,
    pub fitted: &'a Fitted,
    pub stability: Option<&'a Stability>,
    /// `[features] categorical` values, written beside the features in assignments.
    pub categories: Option<&'a crate::segment::Categories>,
    pub time_split: Option<&'a TimeSplit>,
    pub sub_segments: Option<&'a SubSegments>,
    pub quarantined: &'a [(EntityKind, &'a Quarantined)],
    pub quality: Vec<&'a SourceQuality>,
    pub prepared: &'a [PreparedSource],
    pub projection: Vec<[f64; 2]>,
    pub projection_labels: Vec<u32>,
    pub explained: [f64; 2],
    pub rfm_grid: [[u64; 5]; 5],
    pub rfm_segments: Vec<(String, u64)>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let err = |source| EngineError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let written = (|| {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        // Durable before it is visible under its real name.
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(source));
    }
    std::fs::rename(&tmp, path).map_err(err)
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Model(e.to_string())
}

/// The RFM batch with `segment_id` and `segment` inserted after `customer_id`.
fn assignments(o: &Outputs<'_>) -> Result<RecordBatch, EngineError> {
    let names = &o.model.segment_names;
    let ids: ArrayRef = Arc::new(UInt32Array::from(o.labels.to_vec()));
    let segment: ArrayRef = Arc::new(StringArray::from_iter_values(
        o.labels
            .iter()
            .map(|&l| names.get(l as usize).map_or("", String::as_str)),
    ));
    let schema = o.rfm.schema();
    let mut fields: Vec<Arc<Field>> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        fields.push(f.clone());
        columns.push(o.rfm.column(i).clone());
        if f.name() == "customer_id" {
            fields.push(Arc::new(Field::new("segment_id", DataType::UInt32, false)));
            columns.push(ids.clone());
            fields.push(Arc::new(Field::new("segment", DataType::Utf8, false)));
            columns.push(segment.clone());
        }
    }
    if let Some(c) = o.categories {
        let values = c.values(&o.rfm_ids());
        let m = c.names.len();
        for (j, name) in c.names.iter().enumerate() {
            fields.push(Arc::new(Field::new(name, DataType::Utf8, false)));
            columns.push(Arc::new(StringArray::from_iter_values(
                values.iter().skip(j).step_by(m.max(1)),
            )));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

fn csv_bytes(batch: &RecordBatch) -> Result<Vec<u8>, EngineError> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        writer.write(batch).map_err(internal)?;
    }
    Ok(buf)
}

fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>, EngineError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(internal)?;
    writer.write(batch).map_err(internal)?;
    writer.close().map_err(internal)?;
    Ok(buf)
}

fn quarantine_batch(rows: &[(EntityKind, &Quarantined)]) -> Result<RecordBatch, EngineError> {
    let col = |f: &dyn Fn(&(EntityKind, &Quarantined)) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let line: ArrayRef = Arc::new(UInt64Array::from_iter_values(
        rows.iter().map(|r| r.1.location.line),
    ));
    let fields = ["source", "file", "line", "field", "reason", "raw"];
    let schema = Schema::new(
        fields
            .iter()
            .map(|n| {
                Field::new(
                    *n,
                    if *n == "line" {
                        DataType::UInt64
                    } else {
                        DataType::Utf8
                    },
                    false,
                )
            })
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            col(&|r| r.0.to_string()),
            col(&|r| r.1.location.file.clone()),
            line,
            col(&|r| r.1.location.field.clone().unwrap_or_default()),
            col(&|r| r.1.reason.clone()),
            col(&|r| r.1.raw.clone()),
        ],
    )
    .map_err(internal)
}

fn segments_json(o: &Outputs<'_>) -> serde_json::Value {
    let s = o.summary;
    let c = o.config;
    json!({
        "strata_version": env!("CARGO_PKG_VERSION"),
        "run": {
            "name": s.title,
            "seed": c.run.seed,
            "config_sha256": c.hash,
            "as_of": s.as_of,
            "customers": s.customers,
        },
        "sources": s.sources.iter().map(|x| json!({
            "table": x.table, "path": x.path, "rows_read": x.rows_read,
            "rows_kept": x.rows_kept, "quarantined": x.quarantined,
        })).collect::<Vec<_>>(),
        "model": {
            "algorithm": s.algorithm,
            "details": o.fitted.details,
            "k": s.chosen_k,
            "features": o.model.features,
            "scaling": c.features.scaling,
            "pca_components": o.model.projection.as_ref().map(|p| p.n_components()),
            "centroids": o.model.centroids.chunks(o.model.dims().max(1)).collect::<Vec<_>>(),
            "noise_segment": o.fitted.noise_segment,
        },
        "validation": {
            "stability": o.stability,
            "time_split": o.time_split,
        },
        "sub_segments": o.sub_segments,
        "selection": {
            "chosen_k": s.chosen_k,
            "elbow_k": o.fitted.elbow_k,
            "reason": s.reason,
            "min_segment_share": c.segmentation.min_segment_share,
            "candidates": s.candidates,
        },
        "segments": s.segments,
    })
}

pub(crate) fn quality_rows(quality: &[&SourceQuality]) -> Vec<QualityRow> {
    quality
        .iter()
        .flat_map(|src| {
            src.columns.iter().map(|c| QualityRow {
                table: src.table.clone(),
                field: c.field.clone(),
                column: c.column.clone(),
                ty: c.ty.to_string(),
                completeness: c.completeness,
                validity: c.validity,
                uniqueness: c.uniqueness,
                consistency: c.consistency,
                normalized: c.normalized,
                imputed: c.imputed,
            })
        })
        .collect()
}

/// `quality.json`: per source the row accounting, per field the quality measures, and the
/// deduplication figures.
pub(crate) fn quality_json(prepared: &[PreparedSource]) -> Result<Vec<u8>, EngineError> {
    let v: Vec<serde_json::Value> = prepared
        .iter()
        .map(|p| {
            let mut q = serde_json::to_value(&p.quality).unwrap_or_default();
            if let Some(obj) = q.as_object_mut() {
                obj.insert(
                    "dedup".into(),
                    serde_json::to_value(&p.dedup).unwrap_or_default(),
                );
            }
            q
        })
        .collect();
    Ok(serde_json::to_string_pretty(&v)
        .map_err(internal)?
        .into_bytes())
}

/// `merges.jsonl`: one line per merged cluster with the edges that joined it.
pub(crate) fn merges_jsonl(prepared: &[PreparedSource]) -> Result<Vec<u8>, EngineError> {
    let mut out = Vec::new();
    for p in prepared {
        for c in &p.merges {
            let mut v = serde_json::to_value(c).map_err(internal)?;
            if let Some(obj) = v.as_object_mut() {
                obj.insert("table".into(), json!(p.kind.to_string()));
            }
            serde_json::to_writer(&mut out, &v).map_err(internal)?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn levels(p: &[f64; 4]) -> String {
    p.iter()
        .map(|x| format!("{x:.4}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

pub(crate) fn dedup_summaries(prepared: &[PreparedSource]) -> Vec<DedupSummary> {
    prepared
        .iter()
        .filter_map(|p| {
            let d = p.dedup.as_ref()?;
            let mut figures = format!(
                "{} records: {} exact-key merges; {} blocks, {} pairs compared, {} matched at P(match) ≥ {}; {} clusters, {} records merged in {:.1} s.",
                d.records, d.exact_edges, d.blocks, d.pairs_compared, d.pairs_matched, d.threshold, d.clusters, d.records_merged, d.seconds
            );
            if let Some(l) = d.lambda {
                figures.push_str(&format!(
                    " EM: match share among compared pairs {} after {} iterations{}.",
                    pct(l),
                    d.em_iterations,
                    if d.em_converged { "" } else { " (not converged)" }
                ));
            }
            if d.blocks_skipped > 0 {
                figures.push_str(&format!(
                    " {} blocks over the size limit ({} records) were not compared.",
                    d.blocks_skipped, d.records_in_skipped_blocks
                ));
            }
            let examples = p
                .merges
                .iter()
                .take(5)
                .map(|c| {
                    let edges: Vec<String> = c
                        .edges
                        .iter()
                        .map(|e| {
                            let agreed: Vec<String> = e
                                .evidence
                                .iter()
                                .filter(|f| matches!(f.level, strata_prep::Level::Exact
                                            | strata_prep::Level::Similar
                                            | strata_prep::Level::Partial))
                                .map(|f| format!("{} {:?}", f.comparison, f.level).to_lowercase())
                                .collect();
                            match e.probability {
                                Some(pr) => format!("{} ~ {} (P = {:.4}; agree: {})", e.a_id, e.b_id, pr, agreed.join(", ")),
                                None => format!("{} = {} ({})", e.a_id, e.b_id, e.rule),
                            }
                        })
                        .collect();
                    format!("{} ← {}: {}", c.survivor, c.merged.join(", "), edges.join("; "))
                })
                .collect();
            Some(DedupSummary {
                table: p.kind.to_string(),
                figures,
                parameters: d
                    .parameters
                    .iter()
                    .map(|c| (c.comparison.clone(), levels(&c.m), levels(&c.u)))
                    .collect(),
                examples,
            })
        })
        .collect()
}

/// `sub_segments.csv`: the split segment's customers and their sub-segments.
fn sub_segments_csv(o: &Outputs<'_>, sub: &SubSegments) -> Vec<u8> {
    let mut out = String::from("customer_id,segment_id,sub_segment_id,sub_segment\n");
    let ids = o.rfm_ids();
    for &(row, l) in &sub.rows {
        let name = sub.profiles.get(l as usize).map_or("", |p| p.name.as_str());
        out.push_str(&format!(
            "{},{},{},{}\n",
            csv_field(ids.get(row).map_or("", String::as_str)),
            sub.parent,
            l,
            csv_field(name)
        ));
    }
    out.into_bytes()
}

/// `memberships.csv`: every customer's membership in every segment (mixtures: posterior
/// probabilities; fuzzy c-means: degrees), columns in segment order.
fn memberships_csv(o: &Outputs<'_>, u: &[f64]) -> Vec<u8> {
    let k = o.model.k;
    let mut out = String::from("customer_id,segment_id");
    for name in &o.model.segment_names {
        out.push(',');
        out.push_str(&csv_field(name));
    }
    out.push('\n');
    for ((id, row), l) in o.rfm_ids().iter().zip(u.chunks(k)).zip(o.labels) {
        out.push_str(&csv_field(id));
        out.push_str(&format!(",{l}"));
        for v in row {
            out.push_str(&format!(",{v:.6}"));
        }
        out.push('\n');
    }
    out.into_bytes()
}

fn time_split_note(t: &TimeSplit) -> String {
    match (&t.note, t.ari) {
        (Some(note), _) => format!(
            "Time split at {} ({} days earlier): not computed — {note}.",
            t.earlier_as_of, t.days
        ),
        (None, Some(ari)) => format!(
            "Refitted on features as of {} ({} days earlier, {} customers): agreement with today's segments ARI = {ari:.3}; {} of {} customers present at both dates changed segment.",
            t.earlier_as_of,
            t.days,
            t.earlier_customers,
            t.moved_share.map_or("—".to_string(), pct),
            t.common_customers
        ),
        (None, None) => String::new(),
    }
}

impl Outputs<'_> {
    /// Customer ids in row order (the RFM batch's).
    fn rfm_ids(&self) -> Vec<String> {
        crate::pipeline::customer_ids(self.rfm).unwrap_or_default()
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
pub(crate) fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// Writes rendered outputs into `dir`, each atomically; returns the paths.
pub(crate) fn write_files<N: AsRef<str>>(
    dir: &Path,
    rendered: Vec<(N, Vec<u8>)>,
) -> Result<Vec<PathBuf>, EngineError> {
    std::fs::create_dir_all(dir).map_err(|source| EngineError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for (name, bytes) in rendered {
        let path = dir.join(name.as_ref());
        write_atomic(&path, &bytes)?;
        files.push(path);
    }
    Ok(files)
}

/// Writes the outputs of `strata prep`: each cleaned table as Parquet, the quarantine, the
/// quality profile and the merges.
pub(crate) fn write_prep(
    dir: &Path,
    prepared: &[PreparedSource],
) -> Result<Vec<PathBuf>, EngineError> {
    let mut rendered: Vec<(String, Vec<u8>)> = Vec::new();
    for p in prepared {
        rendered.push((format!("{}.parquet", p.kind), parquet_bytes(&p.batch)?));
    }
    let quarantined: Vec<(EntityKind, &Quarantined)> = prepared
        .iter()
        .flat_map(|s| s.quarantined.iter().map(move |q| (s.kind, q)))
        .collect();
    rendered.push((
        "quarantine.csv".into(),
        csv_bytes(&quarantine_batch(&quarantined)?)?,
    ));
    rendered.push(("quality.json".into(), quality_json(prepared)?));
    rendered.push(("merges.jsonl".into(), merges_jsonl(prepared)?));
    write_files(dir, rendered)
}

/// Writes every output; returns the paths written.
pub(crate) fn write_all(dir: &Path, o: &Outputs<'_>) -> Result<Vec<PathBuf>, EngineError> {
    // Everything is rendered in memory first, so a failure while rendering (a plot, the
    // template) leaves the previous outputs untouched instead of a mix of old and new.
    let mut rendered: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut put = |name: &'static str, bytes: Vec<u8>| rendered.push((name, bytes));
    let batch = assignments(o)?;
    put("assignments.parquet", parquet_bytes(&batch)?);
    put("assignments.csv", csv_bytes(&batch)?);
    let segments = serde_json::to_string_pretty(&segments_json(o)).map_err(internal)?;
    put("segments.json", segments.into_bytes());
    put(
        "model.json",
        o.model.to_json().map_err(internal)?.into_bytes(),
    );
    if let Some(sub) = o.sub_segments {
        put("sub_segments.csv", sub_segments_csv(o, sub));
    }
    if let Some(u) = &o.fitted.memberships {
        put("memberships.csv", memberships_csv(o, u));
    }
    put(
        "quarantine.csv",
        csv_bytes(&quarantine_batch(o.quarantined)?)?,
    );
    put("quality.json", quality_json(o.prepared)?);
    put("merges.jsonl", merges_jsonl(o.prepared)?);
    let s = o.summary;
    let report = render_report(&ReportInput {
        title: s.title.clone(),
        run_note: format!(
            "{} customers · features as of {} · seed {} · config sha256 {} · Strata {}",
            s.customers,
            s.as_of,
            o.config.run.seed,
            o.config.hash.get(..12).unwrap_or_default(),
            env!("CARGO_PKG_VERSION")
        ),
        sources: s.sources.clone(),
        quality: quality_rows(&o.quality),
        dedup: dedup_summaries(o.prepared),
        customers: s.customers,
        candidates: &s.candidates,
        chosen_k: s.chosen_k,
        elbow_k: o.fitted.elbow_k,
        algorithm: s.algorithm.clone(),
        dendrogram: o.fitted.dendrogram.as_ref(),
        k_distance: o.fitted.k_distance.as_ref().map(|c| {
            (
                c,
                o.fitted
                    .details
                    .get("eps")
                    .and_then(serde_json::Value::as_f64)
                    .unwrap_or(c.suggested_eps),
            )
        }),
        stability: o.stability,
        time_split: o.time_split.map(time_split_note),
        sub_segments: o
            .sub_segments
            .map(|x| (x.reason.as_str(), x.profiles.as_slice())),
        reason: s.reason.clone(),
        profiles: &s.segments,
        projection: o.projection.clone(),
        projection_labels: o.projection_labels.clone(),
        explained: o.explained,
        rfm_grid: o.rfm_grid,
        rfm_segments: o.rfm_segments.clone(),
    })?;
    put("report.html", report.into_bytes());
    write_files(dir, rendered)
}
