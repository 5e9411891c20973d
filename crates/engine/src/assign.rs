//! `strata assign`: a saved model (model.json of `strata run`) places new customers in its
//! segments. The input is a feature table — CSV or Parquet with `customer_id` and the model's
//! feature columns (the run's assignments.csv has them) — and rows that cannot be read are
//! quarantined with file, line, field and reason instead of failing the batch.

use crate::output::{csv_field, write_files};
use crate::pipeline::EngineError;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type};
use std::path::{Path, PathBuf};
use strata_core::{FeatureMatrix, Location, Quarantined};
use strata_ml::SegmentationModel;

/// What `strata assign` did.
#[derive(Debug, Clone)]
pub struct AssignSummary {
    pub algorithm: String,
    pub assigned: usize,
    pub quarantined: usize,
    /// Customers per segment, in segment order.
    pub sizes: Vec<(String, usize)>,
    pub files: Vec<PathBuf>,
}

fn invalid(path: &Path, message: impl Into<String>) -> EngineError {
    EngineError::Input {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Customer ids, their row-major feature values, and the rows that could not be read.
struct Table {
    ids: Vec<String>,
    values: Vec<f64>,
    /// Row-major values of the model's categorical features (k-prototypes only).
    categories: Vec<String>,
    quarantined: Vec<Quarantined>,
}

/// A categorical cell as the model saw it in training: trimmed, empty → "(missing)".
fn category(v: Option<&str>) -> String {
    match v.map(str::trim) {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => crate::segment::MISSING_CATEGORY.to_string(),
    }
}

/// Reads `customer_id` + `features` from a CSV file; unreadable rows are quarantined.
fn read_csv(
    path: &Path,
    features: &[String],
    categorical: &[String],
) -> Result<Table, EngineError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| invalid(path, e.to_string()))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| invalid(path, format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| {
            invalid(
                path,
                format!(
                    "no `{name}` column (the model needs customer_id and {}); the header is: {}",
                    features.join(", "),
                    header.join(", ")
                ),
            )
        })
    };
    let id_col = column("customer_id")?;
    let cols = features
        .iter()
        .map(|f| column(f))
        .collect::<Result<Vec<_>, _>>()?;
    let cat_cols = categorical
        .iter()
        .map(|f| column(f))
        .collect::<Result<Vec<_>, _>>()?;
    let file = path.display().to_string();
    let (mut ids, mut values, mut quarantined) = (Vec::new(), Vec::new(), Vec::new());
    let mut categories = Vec::new();
    // The line a record starts on, from the reader (a quoted field may span lines).
    let mut next_line = 2u64;
    for record in reader.records() {
        let line = match &record {
            Ok(r) => r.position().map_or(next_line, |p| p.line()),
            Err(e) => e.position().map_or(next_line, |p| p.line()),
        };
        next_line = line + 1;
        let at = |field: Option<&str>| Location {
            file: file.clone(),
            line,
            field: field.map(str::to_string),
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                quarantined.push(Quarantined {
                    location: at(None),
                    reason: format!("unreadable CSV row: {e}"),
                    raw: String::new(),
                });
                continue;
            }
        };
        let raw = record.iter().map(csv_field).collect::<Vec<_>>().join(",");
        let id = record.get(id_col).map(str::trim).unwrap_or_default();
        if id.is_empty() {
            quarantined.push(Quarantined {
                location: at(Some("customer_id")),
                reason: "missing customer_id".into(),
                raw,
            });
            continue;
        }
        let mut row = Vec::with_capacity(cols.len());
        let mut bad = None;
        for (name, &c) in features.iter().zip(&cols) {
            let text = record.get(c).map(str::trim).unwrap_or_default();
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => row.push(v),
                _ => {
                    bad = Some((
                        name,
                        if text.is_empty() {
                            "missing value".to_string()
                        } else {
                            format!("`{text}` is not a finite number")
                        },
                    ));
                    break;
                }
            }
        }
        match bad {
            Some((name, reason)) => quarantined.push(Quarantined {
                location: at(Some(name)),
                reason,
                raw,
            }),
            None => {
                ids.push(id.to_string());
                values.extend(row);
                categories.extend(cat_cols.iter().map(|&c| category(record.get(c))));
            }
        }
    }
    Ok(Table {
        ids,
        values,
        categories,
        quarantined,
    })
}

/// Reads `customer_id` + `features` from a Parquet file; rows with a null or non-finite
/// feature are quarantined (line = row number, counting from 1).
fn read_parquet(
    path: &Path,
    features: &[String],
    categorical: &[String],
) -> Result<Table, EngineError> {
    let file = std::fs::File::open(path).map_err(|e| invalid(path, e.to_string()))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| invalid(path, format!("not a readable Parquet file: {e}")))?;
    let shown = path.display().to_string();
    let (mut ids, mut values, mut quarantined) = (Vec::new(), Vec::new(), Vec::new());
    let mut categories = Vec::new();
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| invalid(path, e.to_string()))?;
        let id_col = batch
            .column_by_name("customer_id")
            .ok_or_else(|| invalid(path, "no `customer_id` column"))?;
        let id_col = arrow::compute::cast(id_col, &DataType::Utf8)
            .map_err(|e| invalid(path, format!("customer_id: {e}")))?;
        let id_col = id_col.as_string::<i32>();
        let cols = features
            .iter()
            .map(|f| {
                let c = batch.column_by_name(f).ok_or_else(|| {
                    invalid(
                        path,
                        format!(
                            "no `{f}` column (the model needs customer_id and {})",
                            features.join(", ")
                        ),
                    )
                })?;
                arrow::compute::cast(c, &DataType::Float64)
                    .map_err(|e| invalid(path, format!("column `{f}` is not numeric: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cols: Vec<_> = cols
            .iter()
            .map(|c| c.as_primitive::<Float64Type>())
            .collect();
        let cat_cols = categorical
            .iter()
            .map(|f| {
                let c = batch.column_by_name(f).ok_or_else(|| {
                    invalid(
                        path,
                        format!("no `{f}` column (a categorical feature of the model)"),
                    )
                })?;
                arrow::compute::cast(c, &DataType::Utf8)
                    .map_err(|e| invalid(path, format!("column `{f}`: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cat_cols: Vec<_> = cat_cols.iter().map(|c| c.as_string::<i32>()).collect();
        for i in 0..batch.num_rows() {
            row_number += 1;
            let at = |field: &str| Location {
                file: shown.clone(),
                line: row_number,
                field: Some(field.to_string()),
            };
            if id_col.is_null(i) || id_col.value(i).trim().is_empty() {
                quarantined.push(Quarantined {
                    location: at("customer_id"),
                    reason: "missing customer_id".into(),
                    raw: String::new(),
                });
                continue;
            }
            let bad = features
                .iter()
                .zip(&cols)
                .find(|(_, c)| c.is_null(i) || !c.value(i).is_finite());
            if let Some((name, _)) = bad {
                quarantined.push(Quarantined {
                    location: at(name),
                    reason: "missing or non-finite value".into(),
                    raw: id_col.value(i).to_string(),
                });
                continue;
            }
            ids.push(id_col.value(i).to_string());
            values.extend(cols.iter().map(|c| c.value(i)));
            categories.extend(
                cat_cols
                    .iter()
                    .map(|c| category((!c.is_null(i)).then(|| c.value(i)))),
            );
        }
    }
    Ok(Table {
        ids,
        values,
        categories,
        quarantined,
    })
}

/// Assigns the customers of `input` with the model at `model_path`; writes `out` (CSV:
/// customer_id, segment_id, segment, and for soft models one membership column per segment)
/// and, when rows were quarantined, `<out stem>.quarantine.csv` beside it.
pub fn assign(model_path: &Path, input: &Path, out: &Path) -> Result<AssignSummary, EngineError> {
    let model = SegmentationModel::load(model_path).map_err(|e| EngineError::Input {
        path: model_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let parquet = input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let categorical = model.assigner.categorical().to_vec();
    let Table {
        ids,
        values,
        categories,
        quarantined,
    } = if parquet {
        read_parquet(input, &model.features, &categorical)?
    } else {
        read_csv(input, &model.features, &categorical)?
    };
    if ids.is_empty() {
        return Err(invalid(
            input,
            format!(
                "no row could be assigned ({} quarantined{})",
                quarantined.len(),
                quarantined
                    .first()
                    .map(|q| format!("; first: {q}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let matrix = FeatureMatrix::new(ids, model.features.clone(), values)?;
    let assignment = model
        .assign_mixed(&matrix, &categories)
        .map_err(|e| EngineError::Model(e.to_string()))?;
    let k = model.k;
    let mut text = String::from("customer_id,segment_id,segment");
    if assignment.memberships.is_some() {
        for name in &model.segment_names {
            text.push_str(&format!(",{}", csv_field(&format!("membership: {name}"))));
        }
    }
    text.push('\n');
    let mut sizes = vec![0usize; k];
    for (i, (id, &l)) in matrix.ids().iter().zip(&assignment.labels).enumerate() {
        sizes[l as usize] += 1;
        let name = model
            .segment_names
            .get(l as usize)
            .map_or("", String::as_str);
        text.push_str(&format!("{},{l},{}", csv_field(id), csv_field(name)));
        if let Some(u) = &assignment.memberships {
            for v in &u[i * k..(i + 1) * k] {
                text.push_str(&format!(",{v:.6}"));
            }
        }
        text.push('\n');
    }
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| invalid(out, "the output must be a file name"))?;
    let mut rendered = vec![(name, text.into_bytes())];
    if !quarantined.is_empty() {
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut q = String::from("file,line,field,reason,raw\n");
        for r in &quarantined {
            q.push_str(&format!(
                "{},{},{},{},{}\n",
                csv_field(&r.location.file),
                r.location.line,
                csv_field(r.location.field.as_deref().unwrap_or("")),
                csv_field(&r.reason),
                csv_field(&r.raw)
            ));
        }
        rendered.push((format!("{stem}.quarantine.csv"), q.into_bytes()));
    }
    let files = write_files(dir, rendered)?;
    Ok(AssignSummary {
        algorithm: model.algorithm.clone(),
        assigned: matrix.n_rows(),
        quarantined: quarantined.len(),
        sizes: model.segment_names.iter().cloned().zip(sizes).collect(),
        files,
    })
}
