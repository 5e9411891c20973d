//! Runs the `[prep]` steps over loaded sources: customers first (other tables check against
//! them and follow their merges), then orders, then events. Per table:
//! normalize → convert currency → validate → cross-field checks → deduplicate (and re-point
//! other tables at the surviving ids) → impute → pseudonymize → quality.
//!
//! Conservation holds for every table: rows read = rows kept + rows quarantined + rows merged.

use crate::dedup::{Col, DedupReport, MergeCluster, deduplicate};
use crate::error::LoadError;
use crate::impute::{knn_impute, mean, median, mode};
use crate::load::LoadedSource;
use crate::normalize::{apply, has_format};
use crate::pseudo::{mask, pseudonym};
use crate::quality::{distinct_count, ratio};
use crate::rules::{
    Bound, CheckPlan, FieldPlan, Impute, OnInvalid, Operand, PrepPlan, Survivorship, TablePlan,
};
use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimestampMicrosecondType};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_core::{EntityKind, Location, Quarantined};

/// A source after preparation.
#[derive(Debug, Clone)]
pub struct PreparedSource {
    pub kind: EntityKind,
    pub path: PathBuf,
    pub batch: RecordBatch,
    pub rows_read: u64,
    /// Rows set aside at load or by a rule, in file order per step.
    pub quarantined: Vec<Quarantined>,
    /// Rows merged into another record.
    pub rows_merged: u64,
    pub quality: crate::SourceQuality,
    /// Deduplication clusters with their explanations.
    pub merges: Vec<MergeCluster>,
    pub dedup: Option<DedupReport>,
}

/// All prepared sources, in the order they were given.
#[derive(Debug, Clone)]
pub struct PreparedTables {
    pub sources: Vec<PreparedSource>,
}

/// A table being worked on: its columns, each row's file line, and the row flags.
struct Work {
    kind: EntityKind,
    file: String,
    batch: RecordBatch,
    lines: Vec<u64>,
    /// (row, note) for values nulled or rows flagged by a rule; sparse, since most rows
    /// have none.
    flags: Vec<(usize, String)>,
    quarantined: Vec<Quarantined>,
    stats: HashMap<String, FieldStats>,
    masked: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default)]
struct FieldStats {
    rule_failures: u64,
    normalized: u64,
    check_failures: u64,
    imputed: u64,
}

fn internal(kind: EntityKind, e: impl std::fmt::Display) -> LoadError {
    LoadError::Internal {
        table: kind.to_string(),
        message: e.to_string(),
    }
}

impl Work {
    fn col(&self, name: &str) -> Option<&ArrayRef> {
        self.batch.column_by_name(name)
    }

    fn texts(&self, name: &str) -> Option<Vec<Option<String>>> {
        let c = self.col(name)?.as_string_opt::<i32>()?;
        Some(c.iter().map(|v| v.map(str::to_string)).collect())
    }

    fn numbers(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let c = self.col(name)?;
        match c.data_type() {
            DataType::Int64 => Some(
                c.as_primitive::<Int64Type>()
                    .iter()
                    .map(|v| v.map(|x| x as f64))
                    .collect(),
            ),
            DataType::Float64 => Some(c.as_primitive::<Float64Type>().iter().collect()),
            _ => None,
        }
    }

    fn times(&self, name: &str) -> Option<Vec<Option<i64>>> {
        let c = self
            .col(name)?
            .as_primitive_opt::<TimestampMicrosecondType>()?;
        Some(c.iter().collect())
    }

    /// Replaces (or appends) a column, keeping the others.
    fn set(&mut self, name: &str, array: ArrayRef) -> Result<(), LoadError> {
        let schema = self.batch.schema();
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        let mut columns: Vec<ArrayRef> = self.batch.columns().to_vec();
        let field = Arc::new(Field::new(name, array.data_type().clone(), true));
        match schema.index_of(name) {
            Ok(i) => {
                fields[i] = Arc::new(
                    fields[i]
                        .as_ref()
                        .clone()
                        .with_nullable(true)
                        .with_data_type(array.data_type().clone()),
                );
                columns[i] = array;
            }
            Err(_) => {
                fields.push(field);
                columns.push(array);
            }
        }
        self.batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| internal(self.kind, e))?;
        Ok(())
    }

    /// Keeps the rows where `keep` is true.
    fn retain(&mut self, keep: &[bool]) -> Result<(), LoadError> {
        if keep.iter().all(|&k| k) {
            return Ok(());
        }
        let mask = BooleanArray::from(keep.to_vec());
        self.batch = arrow::compute::filter_record_batch(&self.batch, &mask)
            .map_err(|e| internal(self.kind, e))?;
        let mut it = keep.iter();
        self.lines.retain(|_| *it.next().unwrap_or(&false));
        if !self.flags.is_empty() {
            let mut new_index = Vec::with_capacity(keep.len());
            let mut next = 0usize;
            for &k in keep {
                new_index.push(next);
                next += usize::from(k);
            }
            self.flags
                .retain(|(row, _)| keep.get(*row).copied().unwrap_or(false));
            for (row, _) in &mut self.flags {
                *row = new_index[*row];
            }
        }
        Ok(())
    }

    /// The row as `field=value` pairs (PII fields masked when pseudonymizing).
    fn render_row(&self, i: usize) -> String {
        use arrow::util::display::{ArrayFormatter, FormatOptions};
        let options = FormatOptions::default();
        let schema = self.batch.schema();
        let mut parts = Vec::new();
        for (f, c) in schema.fields().iter().zip(self.batch.columns()) {
            let value = ArrayFormatter::try_new(c.as_ref(), &options)
                .map(|fmt| fmt.value(i).to_string())
                .unwrap_or_default();
            let value = if self.masked.contains(f.name()) {
                mask(&value)
            } else {
                value
            };
            parts.push(format!("{}={}", f.name(), value));
        }
        parts.join("; ")
    }

    fn show(&self, field: &str, value: &str) -> String {
        if self.masked.iter().any(|m| m == field) {
            mask(value)
        } else {
            value.to_string()
        }
    }

    fn quarantine(&mut self, i: usize, field: &str, reason: String) {
        let raw = self.render_row(i);
        self.quarantined.push(Quarantined {
            location: Location {
                file: self.file.clone(),
                line: self.lines[i],
                field: Some(field.to_string()),
            },
            reason,
            raw,
        });
    }

    fn stats(&mut self, field: &str) -> &mut FieldStats {
        self.stats.entry(field.to_string()).or_default()
    }
}

fn num_bound(b: &Bound) -> f64 {
    match b {
        Bound::Num(x) => *x,
        Bound::Micros(m) => *m as f64,
    }
}

fn show_bound(b: &Bound) -> String {
    match b {
        Bound::Num(x) => x.to_string(),
        Bound::Micros(m) => chrono::DateTime::from_timestamp_micros(*m)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
    }
}

/// Outcome of the field rules on one row: the first failure decides.
struct Failure {
    field: String,
    rule: String,
    message: String,
    on_invalid: OnInvalid,
}

/// Normalizes and validates text fields, and validates numbers and dates, per the plan.
fn field_rules(w: &mut Work, plan: &TablePlan) -> Result<(), LoadError> {
    let n = w.batch.num_rows();
    let mut failures: Vec<Option<Failure>> = (0..n).map(|_| None).collect();
    for f in &plan.fields {
        let Some(col) = w.col(&f.field).cloned() else {
            continue;
        };
        match col.data_type() {
            DataType::Utf8 => text_field(w, f, &col, &mut failures)?,
            DataType::Int64 | DataType::Float64 | DataType::Timestamp(..) => {
                numeric_field(w, f, &col, &mut failures)?;
            }
            _ => {
                if f.required {
                    for (i, fail) in failures.iter_mut().enumerate() {
                        if col.is_null(i) && fail.is_none() {
                            *fail = Some(Failure {
                                field: f.field.clone(),
                                rule: "required".into(),
                                message: "required value is missing".into(),
                                on_invalid: OnInvalid::Quarantine,
                            });
                        }
                    }
                }
            }
        }
    }
    let mut keep = vec![true; n];
    for (i, fail) in failures.into_iter().enumerate() {
        if let Some(fail) = fail {
            // Nulling was already done in place; only quarantines remain to act on.
            if fail.on_invalid == OnInvalid::Quarantine {
                keep[i] = false;
                w.quarantine(
                    i,
                    &fail.field,
                    format!("rule {}: {}", fail.rule, fail.message),
                );
            }
        }
    }
    w.retain(&keep)
}

fn record_failure(
    w: &mut Work,
    failures: &mut [Option<Failure>],
    i: usize,
    f: &FieldPlan,
    rule: &str,
    message: String,
) -> bool {
    w.stats(&f.field).rule_failures += 1;
    if f.on_invalid == OnInvalid::Null {
        w.flags.push((i, format!("{}: {rule}: {message}", f.field)));
    }
    if failures[i].is_none()
        || f.on_invalid == OnInvalid::Quarantine
            && failures[i]
                .as_ref()
                .is_some_and(|x| x.on_invalid == OnInvalid::Null)
    {
        failures[i] = Some(Failure {
            field: f.field.clone(),
            rule: rule.into(),
            message,
            on_invalid: f.on_invalid,
        });
    }
    f.on_invalid == OnInvalid::Null
}

fn text_field(
    w: &mut Work,
    f: &FieldPlan,
    col: &ArrayRef,
    failures: &mut [Option<Failure>],
) -> Result<(), LoadError> {
    let values = col.as_string::<i32>();
    let mut out: Vec<Option<String>> = Vec::with_capacity(values.len());
    let mut changed = 0u64;
    for i in 0..values.len() {
        let Some(raw) = values.is_valid(i).then(|| values.value(i)) else {
            if f.required {
                record_failure(
                    w,
                    failures,
                    i,
                    f,
                    "required",
                    "required value is missing".into(),
                );
            }
            out.push(None);
            continue;
        };
        let mut v = match apply(&f.normalize, f.phone_region, raw) {
            Ok(v) => v,
            Err(reason) => {
                let shown = w.show(&f.field, raw);
                let null = record_failure(
                    w,
                    failures,
                    i,
                    f,
                    "normalize",
                    format!("{reason} (value `{shown}`)"),
                );
                out.push(if null { None } else { Some(raw.to_string()) });
                continue;
            }
        };
        if let Some(mapped) = f.map.get(&v) {
            v = mapped.clone();
        }
        if v != raw {
            changed += 1;
        }
        if v.is_empty() {
            if f.required {
                record_failure(
                    w,
                    failures,
                    i,
                    f,
                    "required",
                    "required value is empty after normalization".into(),
                );
            }
            out.push(None);
            continue;
        }
        let shown = w.show(&f.field, &v);
        let problem = if let Some(fmt) = f.format.filter(|fmt| !has_format(*fmt, &v)) {
            Some((
                "format",
                format!(
                    "`{shown}` is not a valid {}",
                    format!("{fmt:?}").to_lowercase()
                ),
            ))
        } else if let Some(re) = f.regex.as_ref().filter(|re| !re.is_match(&v)) {
            Some((
                "regex",
                format!("`{shown}` does not match /{}/", re.as_str()),
            ))
        } else {
            f.allowed
                .as_ref()
                .filter(|a| !a.contains(&v))
                .map(|allowed| {
                    (
                        "allowed",
                        format!("`{shown}` is not one of {}", allowed.join(", ")),
                    )
                })
        };
        match problem {
            Some((rule, message)) => {
                let null = record_failure(w, failures, i, f, rule, message);
                out.push(if null { None } else { Some(v) });
            }
            None => out.push(Some(v)),
        }
    }
    w.stats(&f.field).normalized += changed;
    w.set(&f.field, Arc::new(StringArray::from(out)))
}

fn numeric_field(
    w: &mut Work,
    f: &FieldPlan,
    col: &ArrayRef,
    failures: &mut [Option<Failure>],
) -> Result<(), LoadError> {
    let n = col.len();
    let mut nulled = vec![false; n];
    #[allow(
        clippy::needless_range_loop,
        reason = "i indexes the column, failures and nulled alike"
    )]
    for i in 0..n {
        if col.is_null(i) {
            if f.required {
                record_failure(
                    w,
                    failures,
                    i,
                    f,
                    "required",
                    "required value is missing".into(),
                );
            }
            continue;
        }
        let (x, shown) = match col.data_type() {
            DataType::Int64 => {
                let v = col.as_primitive::<Int64Type>().value(i);
                (v as f64, v.to_string())
            }
            DataType::Float64 => {
                let v = col.as_primitive::<Float64Type>().value(i);
                (v, v.to_string())
            }
            _ => {
                let v = col.as_primitive::<TimestampMicrosecondType>().value(i);
                (v as f64, show_bound(&Bound::Micros(v)))
            }
        };
        if let Some((lo, hi)) = &f.range
            && (x < num_bound(lo) || x > num_bound(hi))
        {
            let msg = format!(
                "{shown} is outside [{}, {}]",
                show_bound(lo),
                show_bound(hi)
            );
            nulled[i] = record_failure(w, failures, i, f, "range", msg);
            continue;
        }
        if let Some(allowed) = &f.allowed
            && !allowed.contains(&shown)
        {
            let msg = format!("{shown} is not one of {}", allowed.join(", "));
            nulled[i] = record_failure(w, failures, i, f, "allowed", msg);
        }
    }
    if nulled.iter().any(|&x| x) {
        let mask = BooleanArray::from(nulled.iter().map(|x| !x).collect::<Vec<_>>());
        let kept = arrow::compute::nullif(
            col,
            &arrow::compute::not(&mask).map_err(|e| internal(w.kind, e))?,
        )
        .map_err(|e| internal(w.kind, e))?;
        w.set(&f.field, kept)?;
    }
    Ok(())
}

/// Converts `amount` into the target currency; unknown currencies quarantine the row.
fn convert_currency(w: &mut Work, plan: &TablePlan) -> Result<(), LoadError> {
    let Some(c) = &plan.currency else {
        return Ok(());
    };
    let (Some(amounts), Some(currencies)) = (w.numbers("amount"), w.col("currency").cloned())
    else {
        return Ok(());
    };
    let Some(currencies) = currencies.as_string_opt::<i32>().cloned() else {
        return Ok(());
    };
    let n = amounts.len();
    let mut keep = vec![true; n];
    let mut out = Vec::with_capacity(n);
    let mut changed = 0;
    // Rates by the currency text as written, so the common case allocates nothing.
    let mut memo: HashMap<&str, Option<(String, f64)>> = HashMap::new();
    for i in 0..n {
        let written = if currencies.is_valid(i) {
            currencies.value(i)
        } else {
            ""
        };
        let found = memo.entry(written).or_insert_with(|| {
            let code = Some(written.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| c.default.clone());
            let rate = c.rates.get(&code).copied();
            Some((code, rate?))
        });
        match found {
            Some((code, rate)) => {
                if *code != c.to {
                    changed += 1;
                }
                out.push(amounts[i].map(|a| a * *rate));
            }
            None => {
                keep[i] = false;
                out.push(amounts[i]);
                w.stats("currency").rule_failures += 1;
                let known = c.rates.keys().cloned().collect::<Vec<_>>().join(", ");
                let code = written.trim().to_ascii_uppercase();
                w.quarantine(
                    i,
                    "currency",
                    format!("rule currency: no rate for `{code}` (rates for {known})"),
                );
            }
        }
    }
    w.stats("amount").normalized += changed;
    w.stats("currency").normalized += changed;
    w.set("amount", Arc::new(Float64Array::from(out)))?;
    w.set(
        "currency",
        Arc::new(StringArray::from(vec![Some(c.to.clone()); n])),
    )?;
    w.retain(&keep)
}

/// A typed cell for comparisons.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Num(f64),
    Text(String),
    Bool(bool),
}

fn cell(col: &ArrayRef, i: usize) -> Option<Cell> {
    if col.is_null(i) {
        return None;
    }
    Some(match col.data_type() {
        DataType::Int64 => Cell::Num(col.as_primitive::<Int64Type>().value(i) as f64),
        DataType::Float64 => Cell::Num(col.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(..) => {
            Cell::Num(col.as_primitive::<TimestampMicrosecondType>().value(i) as f64)
        }
        DataType::Boolean => Cell::Bool(col.as_boolean().value(i)),
        _ => Cell::Text(
            col.as_string_opt::<i32>()
                .map(|s| s.value(i).to_string())
                .unwrap_or_default(),
        ),
    })
}

fn compare_cells(a: &Cell, b: &Cell) -> Option<Ordering> {
    match (a, b) {
        (Cell::Num(x), Cell::Num(y)) => x.partial_cmp(y),
        (Cell::Text(x), Cell::Text(y)) => Some(x.cmp(y)),
        (Cell::Bool(x), Cell::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The customers table by id, for `customers.<field>` operands.
struct CustomerIndex<'a> {
    rows: HashMap<String, usize>,
    batch: &'a RecordBatch,
}

fn operand(
    o: &Operand,
    w: &Work,
    i: usize,
    customer_row: Option<usize>,
    customers: Option<&CustomerIndex<'_>>,
) -> Option<Cell> {
    match o {
        Operand::Field(f) => cell(w.col(f)?, i),
        Operand::Customer(f) => cell(customers?.batch.column_by_name(f)?, customer_row?),
        Operand::Num(x) => Some(Cell::Num(*x)),
        Operand::Micros(m) => Some(Cell::Num(*m as f64)),
        Operand::Text(s) => Some(Cell::Text(s.clone())),
    }
}

fn field_of(c: &CheckPlan) -> String {
    match (&c.left, &c.right) {
        (Operand::Field(f), _) | (_, Operand::Field(f)) => f.clone(),
        (Operand::Customer(f), _) | (_, Operand::Customer(f)) => format!("customers.{f}"),
        _ => String::new(),
    }
}

/// Cross-field checks; a check with a missing operand does not apply to the row.
fn run_checks(
    w: &mut Work,
    plan: &TablePlan,
    customers: Option<&CustomerIndex<'_>>,
) -> Result<(), LoadError> {
    if plan.checks.is_empty() {
        return Ok(());
    }
    let n = w.batch.num_rows();
    let ids = w
        .col("customer_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .cloned();
    let mut keep = vec![true; n];
    #[allow(
        clippy::needless_range_loop,
        reason = "i indexes the table, the ids and keep alike"
    )]
    for i in 0..n {
        let customer_row = ids
            .as_ref()
            .filter(|ids| ids.is_valid(i))
            .and_then(|ids| customers.and_then(|c| c.rows.get(ids.value(i)).copied()));
        for c in &plan.checks {
            let (Some(l), Some(r)) = (
                operand(&c.left, w, i, customer_row, customers),
                operand(&c.right, w, i, customer_row, customers),
            ) else {
                continue;
            };
            if compare_cells(&l, &r).is_some_and(|o| c.op.holds(o)) {
                continue;
            }
            let field = field_of(c);
            for side in [&c.left, &c.right] {
                if let Operand::Field(f) = side {
                    w.stats(f).check_failures += 1;
                }
            }
            let show = |x: &Cell| match x {
                Cell::Num(v) => {
                    if matches!(c.left, Operand::Micros(_))
                        || matches!(c.right, Operand::Micros(_))
                        || is_time(w, customers, c)
                    {
                        show_bound(&Bound::Micros(*v as i64))
                    } else {
                        v.to_string()
                    }
                }
                Cell::Text(s) => w.show(&field, s),
                Cell::Bool(b) => b.to_string(),
            };
            let message = format!(
                "`{}` fails: {} {} {} is false",
                c.text,
                show(&l),
                c.op.symbol(),
                show(&r)
            );
            match c.on_invalid {
                OnInvalid::Quarantine => {
                    if keep[i] {
                        keep[i] = false;
                        w.quarantine(i, &field, format!("check {message}"));
                    }
                }
                OnInvalid::Null => w.flags.push((i, format!("check {message}"))),
            }
        }
    }
    w.retain(&keep)
}

fn is_time(w: &Work, customers: Option<&CustomerIndex<'_>>, c: &CheckPlan) -> bool {
    let ty = |o: &Operand| match o {
        Operand::Field(f) => w
            .col(f)
            .map(|c| matches!(c.data_type(), DataType::Timestamp(..))),
        Operand::Customer(f) => customers
            .and_then(|cs| cs.batch.column_by_name(f))
            .map(|c| matches!(c.data_type(), DataType::Timestamp(..))),
        _ => None,
    };
    ty(&c.left).or(ty(&c.right)).unwrap_or(false)
}

/// Compares two non-null cells of one column.
fn cmp_in(col: &ArrayRef, a: usize, b: usize) -> Ordering {
    match (cell(col, a), cell(col, b)) {
        (Some(x), Some(y)) => compare_cells(&x, &y).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    }
}

/// Clusters with explanations, the report, old id → surviving id, and rows merged.
type Deduped = (
    Vec<MergeCluster>,
    Option<DedupReport>,
    HashMap<String, String>,
    u64,
);

/// Deduplicates, merges clusters by survivorship, and returns old id → surviving id.
fn dedup(w: &mut Work, plan: &TablePlan) -> Result<Deduped, LoadError> {
    let Some(d) = &plan.dedup else {
        return Ok((Vec::new(), None, HashMap::new(), 0));
    };
    let n = w.batch.num_rows();
    let mut needed: Vec<String> = d.exact.iter().flatten().cloned().collect();
    needed.extend(d.blocking.iter().flatten().flat_map(|p| p.fields.clone()));
    needed.extend(d.compare.iter().flat_map(|c| c.fields.clone()));
    needed.sort();
    needed.dedup();
    let mut cols = HashMap::new();
    for f in &needed {
        let Some(c) = w.col(f) else { continue };
        let col = match c.data_type() {
            // Case and surrounding space never make two people different.
            DataType::Utf8 => Col::Text(
                c.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()))
                    .collect(),
            ),
            DataType::Timestamp(..) => Col::Time(w.times(f).unwrap_or_default()),
            _ => Col::Num(w.numbers(f).unwrap_or_default()),
        };
        cols.insert(f.clone(), col);
    }
    let ids: Vec<String> = match d.id_field.as_deref().and_then(|f| w.texts(f)) {
        Some(v) => v
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.unwrap_or_else(|| format!("row {}", w.lines[i])))
            .collect(),
        None => w.lines.iter().map(|l| format!("line {l}")).collect(),
    };
    let outcome = deduplicate(d, &cols, &ids, n);

    // Survivorship: for every survivor, which member supplies each field.
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, &s) in outcome.survivor_of.iter().enumerate() {
        if s != i {
            members.entry(s).or_insert_with(|| vec![s]).push(i);
        }
    }
    let schema = w.batch.schema();
    let completeness: Vec<usize> = (0..n)
        .map(|i| w.batch.columns().iter().filter(|c| c.is_valid(i)).count())
        .collect();
    let recency = d.recency_field.as_deref().and_then(|f| w.col(f)).cloned();
    let mut new_columns = Vec::with_capacity(schema.fields().len());
    for (field, col) in schema.fields().iter().zip(w.batch.columns()) {
        let name = field.name();
        if members.is_empty() || d.id_field.as_deref() == Some(name.as_str()) {
            new_columns.push(col.clone());
            continue;
        }
        let rule = d
            .survivorship
            .get(name)
            .copied()
            .unwrap_or(d.default_survivorship);
        let mut take: Vec<u32> = (0..n as u32).collect();
        for (&s, group) in &members {
            let present: Vec<usize> = group.iter().copied().filter(|&i| col.is_valid(i)).collect();
            let Some(&first_present) = present.first() else {
                continue;
            };
            let pick = match rule {
                Survivorship::First => first_present,
                Survivorship::Last => *present.last().unwrap_or(&first_present),
                Survivorship::MostComplete => {
                    let best = group
                        .iter()
                        .copied()
                        .max_by(|&a, &b| completeness[a].cmp(&completeness[b]).then(b.cmp(&a)))
                        .unwrap_or(s);
                    if col.is_valid(best) {
                        best
                    } else {
                        first_present
                    }
                }
                Survivorship::MostRecent => {
                    let best = recency.as_ref().and_then(|r| {
                        group
                            .iter()
                            .copied()
                            .max_by(|&a, &b| cmp_in(r, a, b).then(b.cmp(&a)))
                    });
                    best.filter(|&b| col.is_valid(b)).unwrap_or(first_present)
                }
                Survivorship::Max => present
                    .iter()
                    .copied()
                    .max_by(|&a, &b| cmp_in(col, a, b).then(b.cmp(&a)))
                    .unwrap_or(first_present),
                Survivorship::Min => present
                    .iter()
                    .copied()
                    .min_by(|&a, &b| cmp_in(col, a, b).then(a.cmp(&b)))
                    .unwrap_or(first_present),
                Survivorship::Longest => {
                    let len = |i: usize| {
                        col.as_string_opt::<i32>()
                            .map_or(0, |s| s.value(i).chars().count())
                    };
                    present
                        .iter()
                        .copied()
                        .max_by(|&a, &b| len(a).cmp(&len(b)).then(b.cmp(&a)))
                        .unwrap_or(first_present)
                }
            };
            take[s] = pick as u32;
        }
        let idx = arrow::array::UInt32Array::from(take);
        new_columns
            .push(arrow::compute::take(col.as_ref(), &idx, None).map_err(|e| internal(w.kind, e))?);
    }
    w.batch = RecordBatch::try_new(schema, new_columns).map_err(|e| internal(w.kind, e))?;
    // Flags of merged rows follow their survivor.
    for (row, _) in &mut w.flags {
        *row = outcome.survivor_of[*row];
    }
    let keep: Vec<bool> = outcome
        .survivor_of
        .iter()
        .enumerate()
        .map(|(i, &s)| s == i)
        .collect();
    let merged = keep.iter().filter(|&&k| !k).count() as u64;
    let mut remap = HashMap::new();
    for (i, &s) in outcome.survivor_of.iter().enumerate() {
        if s != i && ids[i] != ids[s] {
            remap.insert(ids[i].clone(), ids[s].clone());
        }
    }
    w.retain(&keep)?;
    Ok((outcome.clusters, Some(outcome.report), remap, merged))
}

/// Points `field` at surviving ids.
fn remap_ids(w: &mut Work, field: &str, remap: &HashMap<String, String>) -> Result<(), LoadError> {
    if remap.is_empty() {
        return Ok(());
    }
    let Some(ids) = w.col(field).and_then(|c| c.as_string_opt::<i32>()).cloned() else {
        return Ok(());
    };
    let mut changed = 0u64;
    let out: StringArray = ids
        .iter()
        .map(|v| {
            v.map(|id| match remap.get(id) {
                Some(s) => {
                    changed += 1;
                    s.as_str()
                }
                None => id,
            })
        })
        .collect();
    let out = Arc::new(out);
    w.stats(field).normalized += changed;
    w.set(field, out)
}

fn impute(w: &mut Work, plan: &TablePlan) -> Result<(), LoadError> {
    let knn_features: Vec<Vec<Option<f64>>> = plan
        .knn_features
        .iter()
        .filter_map(|f| w.numbers(f))
        .collect();
    for f in &plan.fields {
        let Some(col) = w.col(&f.field).cloned() else {
            continue;
        };
        if f.missing_indicator {
            let missing: BooleanArray = (0..col.len()).map(|i| Some(col.is_null(i))).collect();
            w.set(&format!("{}_missing", f.field), Arc::new(missing))?;
        }
        let Some(method) = &f.impute else { continue };
        let missing = col.null_count() as u64;
        if missing == 0 {
            continue;
        }
        let filled: ArrayRef = match col.data_type() {
            DataType::Int64 | DataType::Float64 => {
                let values = w.numbers(&f.field).unwrap_or_default();
                let column: Option<Vec<Option<f64>>> = match method {
                    Impute::Mean => {
                        mean(&values).map(|m| values.iter().map(|v| Some(v.unwrap_or(m))).collect())
                    }
                    Impute::Median => median(&values)
                        .map(|m| values.iter().map(|v| Some(v.unwrap_or(m))).collect()),
                    Impute::Mode => mode(values.iter().map(|v| v.map(f64::to_bits).map(ordered)))
                        .map(|b| {
                            let m = f64::from_bits(unordered(b));
                            values.iter().map(|v| Some(v.unwrap_or(m))).collect()
                        }),
                    Impute::Constant(c) => {
                        let m = c
                            .as_float()
                            .or_else(|| c.as_integer().map(|i| i as f64))
                            .unwrap_or(0.0);
                        Some(values.iter().map(|v| Some(v.unwrap_or(m))).collect())
                    }
                    Impute::Knn => knn_impute(&knn_features, &values, plan.knn_k),
                };
                let Some(column) = column else { continue };
                if col.data_type() == &DataType::Int64 {
                    Arc::new(Int64Array::from(
                        column
                            .iter()
                            .map(|v| v.map(|x| x.round() as i64))
                            .collect::<Vec<_>>(),
                    ))
                } else {
                    Arc::new(Float64Array::from(column))
                }
            }
            DataType::Utf8 => {
                let values = w.texts(&f.field).unwrap_or_default();
                let fill = match method {
                    Impute::Mode => mode(values.iter().cloned()),
                    Impute::Constant(c) => c.as_str().map(str::to_string),
                    _ => None,
                };
                let Some(fill) = fill else { continue };
                Arc::new(StringArray::from(
                    values
                        .into_iter()
                        .map(|v| Some(v.unwrap_or_else(|| fill.clone())))
                        .collect::<Vec<_>>(),
                ))
            }
            DataType::Boolean => {
                let values: Vec<Option<bool>> = col.as_boolean().iter().collect();
                let fill = match method {
                    Impute::Mode => mode(values.iter().copied()),
                    Impute::Constant(c) => c.as_bool(),
                    _ => None,
                };
                let Some(fill) = fill else { continue };
                Arc::new(BooleanArray::from(
                    values
                        .into_iter()
                        .map(|v| Some(v.unwrap_or(fill)))
                        .collect::<Vec<_>>(),
                ))
            }
            DataType::Timestamp(..) => {
                let values = w.times(&f.field).unwrap_or_default();
                let Some(fill) = (match method {
                    Impute::Mode => mode(values.iter().copied()),
                    _ => None,
                }) else {
                    continue;
                };
                Arc::new(
                    TimestampMicrosecondArray::from(
                        values
                            .into_iter()
                            .map(|v| Some(v.unwrap_or(fill)))
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                )
            }
            _ => continue,
        };
        w.stats(&f.field).imputed += missing;
        w.set(&f.field, filled)?;
    }
    Ok(())
}

/// f64 bits in an order that sorts like the numbers (for the mode's tie-break).
fn ordered(bits: u64) -> u64 {
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}
fn unordered(key: u64) -> u64 {
    if key >> 63 == 1 {
        key & !(1 << 63)
    } else {
        !key
    }
}

fn pseudonymize(w: &mut Work, fields: &[String], key: &[u8]) -> Result<(), LoadError> {
    for f in fields {
        let Some(values) = w.texts(f) else { continue };
        let out: Vec<Option<String>> = values
            .iter()
            .map(|v| v.as_deref().map(|s| pseudonym(key, s)))
            .collect();
        w.set(f, Arc::new(StringArray::from(out)))?;
    }
    Ok(())
}

fn finish_quality(w: &Work, loaded: &LoadedSource, merged: u64) -> crate::SourceQuality {
    let mut q = loaded.quality.clone();
    q.rows_kept = w.batch.num_rows() as u64;
    q.rows_quarantined = w.quarantined.len() as u64;
    q.rows_merged = merged;
    let mut flagged: Vec<usize> = w.flags.iter().map(|(r, _)| *r).collect();
    flagged.sort_unstable();
    flagged.dedup();
    q.rows_clean = (w.batch.num_rows() - flagged.len()) as u64;
    for c in &mut q.columns {
        let s = w.stats.get(&c.field).copied().unwrap_or_default();
        c.rule_failures = s.rule_failures;
        c.normalized = s.normalized;
        c.check_failures = s.check_failures;
        c.imputed = s.imputed;
        let valid = c.present - c.invalid;
        c.validity = ratio(valid.saturating_sub(s.rule_failures), c.present);
        c.consistency = ratio(valid.saturating_sub(s.normalized + s.check_failures), valid);
        if let Some(col) = w.batch.column_by_name(&c.field)
            && c.ty != strata_core::FieldType::Json
        {
            let (non_null, distinct) = distinct_count(col);
            c.distinct = distinct;
            c.uniqueness = ratio(distinct, non_null);
        }
    }
    q
}

/// Masks the raw text of load-time quarantined rows when PII is pseudonymized: the file and
/// line still say where the row is.
fn withhold_raw(q: &mut [Quarantined]) {
    for row in q {
        row.raw = format!(
            "[withheld: {} characters; PII columns are pseudonymized]",
            row.raw.chars().count()
        );
    }
}

/// Runs the plan over the loaded sources (any order; customers are prepared first).
pub fn prepare(loaded: Vec<LoadedSource>, plan: &PrepPlan) -> Result<PreparedTables, LoadError> {
    let mut order: Vec<usize> = (0..loaded.len()).collect();
    order.sort_by_key(|&i| match loaded[i].kind {
        EntityKind::Customers => 0,
        EntityKind::Orders => 1,
        EntityKind::Events => 2,
    });
    let mut prepared: Vec<Option<PreparedSource>> = (0..loaded.len()).map(|_| None).collect();
    let mut remap: HashMap<String, String> = HashMap::new();
    let mut customers_batch: Option<RecordBatch> = None;
    let mut loaded: Vec<Option<LoadedSource>> = loaded.into_iter().map(Some).collect();
    for i in order {
        let Some(mut source) = loaded[i].take() else {
            continue;
        };
        let table = plan.table(source.kind);
        let mut pseudo_fields = table.pseudonymize.clone();
        if source.kind != EntityKind::Customers
            && plan
                .customers
                .pseudonymize
                .iter()
                .any(|f| f == "customer_id")
            && source.batch.column_by_name("customer_id").is_some()
            && !pseudo_fields.iter().any(|f| f == "customer_id")
        {
            // Pseudonymized customer ids are pseudonymized wherever they join.
            pseudo_fields.push("customer_id".into());
        }
        let touches_ids = !remap.is_empty() && source.batch.column_by_name("customer_id").is_some();
        if table.is_empty() && pseudo_fields.is_empty() && !touches_ids && source.flags.is_empty() {
            // Nothing to do: the loaded table is the prepared one.
            let mut quarantined = source.quarantined;
            if plan.key.is_some() {
                withhold_raw(&mut quarantined);
            }
            prepared[i] = Some(PreparedSource {
                kind: source.kind,
                path: source.path,
                batch: source.batch,
                rows_read: source.rows_read,
                quarantined,
                rows_merged: 0,
                quality: source.quality,
                merges: Vec::new(),
                dedup: None,
            });
            continue;
        }
        let mut w = Work {
            kind: source.kind,
            file: source.path.display().to_string(),
            batch: source.batch.clone(),
            lines: std::mem::take(&mut source.lines),
            flags: Vec::new(),
            quarantined: std::mem::take(&mut source.quarantined),
            stats: HashMap::new(),
            masked: pseudo_fields.clone(),
        };
        w.flags.extend(source.flags.iter().cloned());
        if plan.key.is_some() {
            withhold_raw(&mut w.quarantined);
        }
        convert_currency(&mut w, table)?;
        field_rules(&mut w, table)?;
        if source.kind != EntityKind::Customers {
            remap_ids(&mut w, "customer_id", &remap)?;
        }
        let index = customers_batch.as_ref().map(|b| CustomerIndex {
            rows: b
                .column_by_name("customer_id")
                .and_then(|c| c.as_string_opt::<i32>())
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .filter_map(|(i, v)| v.map(|v| (v.to_string(), i)))
                        .collect()
                })
                .unwrap_or_default(),
            batch: b,
        });
        run_checks(&mut w, table, index.as_ref())?;
        let (mut merges, report, table_remap, merged) = dedup(&mut w, table)?;
        if source.kind == EntityKind::Customers {
            remap = table_remap;
            customers_batch = Some(w.batch.clone());
        }
        impute(&mut w, table)?;
        if let Some(key) = &plan.key {
            pseudonymize(&mut w, &pseudo_fields, key)?;
            let id_pseudo = pseudo_fields.iter().any(|f| {
                Some(f.as_str()) == table.dedup.as_ref().and_then(|d| d.id_field.as_deref())
            });
            for c in &mut merges {
                if id_pseudo {
                    c.survivor = pseudonym(key, &c.survivor);
                    c.merged = c.merged.iter().map(|m| pseudonym(key, m)).collect();
                }
                for e in &mut c.edges {
                    if id_pseudo {
                        e.a_id = pseudonym(key, &e.a_id);
                        e.b_id = pseudonym(key, &e.b_id);
                    }
                    for ev in &mut e.evidence {
                        if ev
                            .comparison
                            .split('+')
                            .any(|f| pseudo_fields.iter().any(|p| p == f))
                        {
                            ev.a = ev.a.as_deref().map(mask);
                            ev.b = ev.b.as_deref().map(mask);
                        }
                    }
                }
            }
        }
        if !w.flags.is_empty() {
            let mut per_row: Vec<Option<String>> = vec![None; w.batch.num_rows()];
            w.flags.sort_by_key(|(r, _)| *r);
            for (r, note) in &w.flags {
                match &mut per_row[*r] {
                    Some(s) => {
                        s.push_str("; ");
                        s.push_str(note);
                    }
                    slot => *slot = Some(note.clone()),
                }
            }
            w.set("prep_flags", Arc::new(StringArray::from(per_row)))?;
        }
        let quality = finish_quality(&w, &source, merged);
        prepared[i] = Some(PreparedSource {
            kind: source.kind,
            path: source.path.clone(),
            batch: w.batch,
            rows_read: source.rows_read,
            quarantined: w.quarantined,
            rows_merged: merged,
            quality,
            merges,
            dedup: report,
        });
    }
    Ok(PreparedTables {
        sources: prepared.into_iter().flatten().collect(),
    })
}
