//! Reads one source file into an Arrow batch in its canonical schema. Every data row read is
//! either in the batch or in the quarantine list, never both and never neither.

use crate::config::{ColumnRef, SourceConfig, SourceFormat};
use crate::error::LoadError;
use crate::quality::{FieldTally, SourceQuality, column_quality};
use crate::value::{DateRule, Value, parse_json, parse_text};
use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_core::{EntityKind, FieldType, Location, Quarantined, canonical_fields};

/// A source read into Arrow, with the rows that were set aside.
#[derive(Debug, Clone)]
pub struct LoadedSource {
    pub kind: EntityKind,
    pub path: PathBuf,
    pub batch: RecordBatch,
    /// Data rows read (header and blank lines excluded) = batch rows + quarantined rows.
    pub rows_read: u64,
    pub quarantined: Vec<Quarantined>,
    /// Completeness, validity and uniqueness of every mapped field.
    pub quality: SourceQuality,
    /// The file line (Parquet: row) of each batch row, so later steps can quarantine a row
    /// with its location.
    pub lines: Vec<u64>,
    /// (batch row, note) for values nulled because they could not be read, in fields marked
    /// `on_invalid = "null"`.
    pub flags: Vec<(usize, String)>,
}

#[derive(Debug, Clone)]
struct FieldPlan {
    name: String,
    ty: FieldType,
    required: bool,
    /// `None`: not mapped (an optional canonical field), always null.
    column: Option<ColumnRef>,
    dates: DateRule,
}

fn arrow_type(ty: FieldType) -> DataType {
    match ty {
        FieldType::String | FieldType::Json => DataType::Utf8,
        FieldType::Int => DataType::Int64,
        FieldType::Float => DataType::Float64,
        FieldType::Bool => DataType::Boolean,
        FieldType::Date | FieldType::Timestamp => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
    }
}

fn schema_of(plan: &[FieldPlan]) -> SchemaRef {
    Arc::new(Schema::new(
        plan.iter()
            .map(|f| Field::new(&f.name, arrow_type(f.ty), !f.required))
            .collect::<Vec<_>>(),
    ))
}

/// Segment's camelCase names for the event fields, used when an events source has no mapping.
fn default_event_column(field: &str) -> &str {
    match field {
        "message_id" => "messageId",
        "user_id" => "userId",
        "anonymous_id" => "anonymousId",
        other => other,
    }
}

fn plan_fields(kind: EntityKind, config: &SourceConfig) -> Result<Vec<FieldPlan>, LoadError> {
    let table = kind.table_name().to_string();
    let config_error = |message: String| LoadError::Config {
        table: table.clone(),
        message,
    };
    let mut plan = Vec::new();
    for spec in canonical_fields(kind) {
        let mapped = config.columns.get(spec.name);
        if let Some(m) = mapped
            && let Some(ty) = m.ty
            && ty != spec.ty
        {
            return Err(config_error(format!(
                "field `{}` is always {}; remove `type = \"{ty}\"`",
                spec.name, spec.ty
            )));
        }
        let column = match mapped {
            Some(m) => Some(m.column.clone()),
            None if config.columns.is_empty() => {
                let name = match kind {
                    EntityKind::Events => default_event_column(spec.name),
                    _ => spec.name,
                };
                Some(ColumnRef::Name(name.to_string()))
            }
            None if spec.required => {
                return Err(config_error(format!(
                    "field `{}` is required but not mapped: add `{} = \"<your column>\"` under [sources.{table}.columns]",
                    spec.name, spec.name
                )));
            }
            None => None,
        };
        plan.push(FieldPlan {
            name: spec.name.to_string(),
            ty: spec.ty,
            required: spec.required,
            column,
            dates: mapped.map(crate::ColumnSpec::date_rule).unwrap_or_default(),
        });
    }
    for (name, spec) in &config.columns {
        if canonical_fields(kind).iter().any(|f| f.name == name) {
            continue;
        }
        plan.push(FieldPlan {
            name: name.clone(),
            ty: spec.ty.unwrap_or(FieldType::String),
            required: false,
            column: Some(spec.column.clone()),
            dates: spec.date_rule(),
        });
    }
    if let Some(p) = plan
        .iter()
        .find(|p| matches!(p.column, Some(ColumnRef::Position(0))))
    {
        return Err(config_error(format!(
            "field `{}`: column positions start at 1",
            p.name
        )));
    }
    Ok(plan)
}

enum ColumnBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: FieldType) -> Self {
        match ty {
            FieldType::String | FieldType::Json => Self::Str(StringBuilder::new()),
            FieldType::Int => Self::Int(Int64Builder::new()),
            FieldType::Float => Self::Float(Float64Builder::new()),
            FieldType::Bool => Self::Bool(BooleanBuilder::new()),
            FieldType::Date | FieldType::Timestamp => {
                Self::Time(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
        }
    }

    /// Values were parsed for this column's type, so a mismatch can only be null.
    fn append(&mut self, value: &Value) {
        match (self, value) {
            (Self::Str(b), Value::Str(s)) => b.append_value(s),
            (Self::Int(b), Value::Int(v)) => b.append_value(*v),
            (Self::Float(b), Value::Float(v)) => b.append_value(*v),
            (Self::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (Self::Time(b), Value::Micros(v)) => b.append_value(*v),
            (Self::Str(b), _) => b.append_null(),
            (Self::Int(b), _) => b.append_null(),
            (Self::Float(b), _) => b.append_null(),
            (Self::Bool(b), _) => b.append_null(),
            (Self::Time(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Str(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
            Self::Float(b) => Arc::new(b.finish()),
            Self::Bool(b) => Arc::new(b.finish()),
            Self::Time(b) => Arc::new(b.finish()),
        }
    }
}

/// Collects accepted rows into builders and rejected rows into the quarantine.
struct TableBuilder {
    kind: EntityKind,
    file: String,
    plan: Vec<FieldPlan>,
    builders: Vec<ColumnBuilder>,
    rows_read: u64,
    quarantined: Vec<Quarantined>,
    /// No `columns` table was written: fields are read from columns of their own name, and
    /// optional ones may simply be absent from the file.
    default_mapping: bool,
    /// Per field: cells that held a value, and those of them that did not parse.
    present: Vec<u64>,
    invalid: Vec<u64>,
    /// Line (or, until fixed, byte offset) of each kept row.
    lines: Vec<u64>,
    /// Per plan field: unreadable values become null (and a flag) instead of a quarantine.
    null_invalid: Vec<bool>,
    flags: Vec<(usize, String)>,
}

impl TableBuilder {
    fn new(kind: EntityKind, path: &Path, plan: Vec<FieldPlan>, default_mapping: bool) -> Self {
        let builders = plan.iter().map(|f| ColumnBuilder::new(f.ty)).collect();
        let plan_len = plan.len();
        Self {
            kind,
            file: path.display().to_string(),
            plan,
            builders,
            rows_read: 0,
            quarantined: Vec::new(),
            default_mapping,
            present: vec![0; plan_len],
            invalid: vec![0; plan_len],
            lines: Vec::new(),
            null_invalid: vec![false; plan_len],
            flags: Vec::new(),
        }
    }

    fn quarantine(&mut self, line: u64, field: Option<&str>, reason: String, raw: String) {
        self.quarantined.push(Quarantined {
            location: Location {
                file: self.file.clone(),
                line,
                field: field.map(str::to_string),
            },
            reason,
            raw,
        });
    }

    /// Takes one row of per-field parse results (in plan order).
    /// A sink for JSON rows read from elsewhere (the live store).
    pub(crate) fn rows<'a>(&'a mut self, names: &'a [Option<String>]) -> JsonRows<'a> {
        JsonRows { table: self, names }
    }

    fn push_row(
        &mut self,
        line: u64,
        cells: &mut [Result<Value, String>],
        raw: impl FnOnce() -> String,
    ) {
        self.rows_read += 1;
        for (i, cell) in cells.iter().enumerate() {
            match cell {
                Err(_) => {
                    self.present[i] += 1;
                    self.invalid[i] += 1;
                }
                Ok(Value::Null) => {}
                Ok(_) => self.present[i] += 1,
            }
        }
        for (i, cell) in cells.iter_mut().enumerate() {
            if self.null_invalid[i]
                && let Err(reason) = cell
            {
                let note = format!("{}: type: {reason}", self.plan[i].name);
                self.flags.push((self.lines.len(), note));
                *cell = Ok(Value::Null);
            }
        }
        for (plan, cell) in self.plan.iter().zip(cells.iter()) {
            let problem = match cell {
                Err(reason) => Some(reason.clone()),
                Ok(Value::Null) if plan.required => Some("required value is missing".to_string()),
                Ok(_) => None,
            };
            if let Some(reason) = problem {
                let name = plan.name.clone();
                self.quarantine(line, Some(&name), reason, raw());
                return;
            }
        }
        self.lines.push(line);
        for ((plan, cell), builder) in self
            .plan
            .iter()
            .zip(cells.iter_mut())
            .zip(&mut self.builders)
        {
            let mut value = std::mem::replace(cell, Ok(Value::Null)).unwrap_or(Value::Null);
            if self.kind == EntityKind::Orders && plan.name == "order_id" && value == Value::Null {
                // Without an order id, each data row is its own order: stable across re-reads.
                value = Value::Str(format!("{}#{}", self.file, self.rows_read));
            }
            builder.append(&value);
        }
    }

    fn finish(mut self, path: &Path) -> Result<LoadedSource, LoadError> {
        let schema = schema_of(&self.plan);
        let columns: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(ColumnBuilder::finish)
            .collect();
        let batch = RecordBatch::try_new(schema, columns).map_err(|e| LoadError::Config {
            table: self.kind.to_string(),
            message: e.to_string(),
        })?;
        let columns = self
            .plan
            .par_iter()
            .enumerate()
            .filter_map(|(i, plan)| {
                let column = plan.column.as_ref()?.to_string();
                Some(column_quality(
                    self.rows_read,
                    FieldTally {
                        field: &plan.name,
                        column,
                        ty: plan.ty,
                        present: self.present[i],
                        invalid: self.invalid[i],
                        kept: batch.column(i),
                    },
                ))
            })
            .collect();
        let quality = SourceQuality {
            table: self.kind.to_string(),
            file: self.file.clone(),
            rows_read: self.rows_read,
            rows_kept: batch.num_rows() as u64,
            rows_quarantined: self.quarantined.len() as u64,
            rows_merged: 0,
            rows_clean: batch.num_rows() as u64,
            columns,
        };
        Ok(LoadedSource {
            kind: self.kind,
            path: path.to_path_buf(),
            batch,
            rows_read: self.rows_read,
            quarantined: self.quarantined,
            quality,
            lines: self.lines,
            flags: self.flags,
        })
    }
}

/// The fields (canonical and extra) a source yields, with their types, read from its
/// config alone.
pub fn field_types(
    kind: EntityKind,
    config: &SourceConfig,
) -> Result<std::collections::BTreeMap<String, FieldType>, LoadError> {
    Ok(plan_fields(kind, config)?
        .into_iter()
        .map(|f| (f.name, f.ty))
        .collect())
}

/// Reads `config.path` as a table of `kind`.
pub fn load_source(kind: EntityKind, config: &SourceConfig) -> Result<LoadedSource, LoadError> {
    let path = &config.path;
    let format = match config.format.or_else(|| SourceFormat::from_path(path)) {
        Some(f) => f,
        None => {
            return Err(LoadError::Config {
                table: kind.to_string(),
                message: format!(
                    "cannot tell the format of {} from its extension: set `format` to csv, tsv, whitespace, jsonl, parquet or strata_store",
                    path.display()
                ),
            });
        }
    };
    let plan = plan_fields(kind, config)?;
    if format == SourceFormat::StrataStore {
        let mut table = TableBuilder::new(kind, path, plan, config.columns.is_empty());
        for (i, f) in table.plan.iter().enumerate() {
            table.null_invalid[i] = !f.required && config.null_invalid.contains(&f.name);
        }
        let names = json_names(&table)?;
        crate::store_source::read(&mut table.rows(&names), kind, path)?;
        return table.finish(path);
    }
    let io = |source| LoadError::Io {
        path: path.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Err(LoadError::Empty { path: path.clone() });
    }
    let mut table = TableBuilder::new(kind, path, plan, config.columns.is_empty());
    for (i, f) in table.plan.iter().enumerate() {
        table.null_invalid[i] = !f.required && config.null_invalid.contains(&f.name);
    }
    match format {
        SourceFormat::Csv | SourceFormat::Tsv => {
            let delimiter = match (format, config.delimiter) {
                (_, Some(c)) if c.is_ascii() => c as u8,
                (_, Some(c)) => {
                    return Err(LoadError::Config {
                        table: kind.to_string(),
                        message: format!("delimiter `{c}` must be a single ASCII character"),
                    });
                }
                (SourceFormat::Tsv, None) => b'\t',
                _ => b',',
            };
            read_delimited(&mut table, file, path, config.header, delimiter)?;
        }
        SourceFormat::Whitespace => read_whitespace(&mut table, file, path, config.header)?,
        SourceFormat::Jsonl => read_jsonl(&mut table, file, path)?,
        SourceFormat::Parquet => read_parquet(&mut table, file, path)?,
        SourceFormat::StrataStore => {
            return Err(LoadError::Internal {
                table: kind.to_string(),
                message: "store sources are read above".into(),
            });
        }
    }
    table.finish(path)
}

/// Resolves each planned column to a position in the row, given the header (if any).
fn resolve_positions(
    table: &TableBuilder,
    path: &Path,
    header: Option<&[String]>,
) -> Result<Vec<Option<usize>>, LoadError> {
    table
        .plan
        .iter()
        .map(|f| match (&f.column, header) {
            (None, _) => Ok(None),
            (Some(ColumnRef::Position(p)), _) => Ok(Some(p - 1)),
            (Some(ColumnRef::Name(name)), Some(header)) => {
                match header.iter().position(|h| h == name) {
                    Some(i) => Ok(Some(i)),
                    None if !f.required && table.default_mapping => Ok(None),
                    None => Err(LoadError::MissingColumn {
                        path: path.to_path_buf(),
                        table: table.kind.to_string(),
                        field: f.name.clone(),
                        column: name.clone(),
                        available: header.join(", "),
                        defaulted: table.default_mapping,
                    }),
                }
            }
            (Some(ColumnRef::Name(name)), None) => Err(LoadError::Config {
                table: table.kind.to_string(),
                message: if table.default_mapping {
                    format!(
                        "the file has no header (header = false), so its columns must be mapped by position under [sources.{}.columns], e.g. {} = 3",
                        table.kind, f.name
                    )
                } else {
                    format!(
                        "field `{}` is mapped to column `{name}`, but the file has no header (header = false): map it by position, e.g. {} = 3",
                        f.name, f.name
                    )
                },
            }),
        })
        .collect()
}

fn header_names(fields: &[&[u8]], path: &Path) -> Result<Vec<String>, LoadError> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let s = std::str::from_utf8(f).map_err(|_| LoadError::HeaderEncoding {
                path: path.to_path_buf(),
            })?;
            let s = if i == 0 {
                s.trim_start_matches('\u{feff}')
            } else {
                s
            };
            Ok(s.trim().to_string())
        })
        .collect()
}

fn parse_row(
    table: &TableBuilder,
    positions: &[Option<usize>],
    fields: &[&[u8]],
) -> Vec<Result<Value, String>> {
    table
        .plan
        .iter()
        .zip(positions)
        .map(|(f, pos)| match pos {
            None => Ok(Value::Null),
            Some(i) => match fields.get(*i) {
                None => Err(format!(
                    "the row has no column {} ({} fields found)",
                    i + 1,
                    fields.len()
                )),
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => parse_text(f.ty, &f.dates, text),
                    Err(e) => Err(format!(
                        "not valid UTF-8 (byte {} of the field); re-encode the file as UTF-8",
                        e.valid_up_to()
                    )),
                },
            },
        })
        .collect()
}

fn read_delimited(
    table: &mut TableBuilder,
    file: File,
    path: &Path,
    has_header: bool,
    delimiter: u8,
) -> Result<(), LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(BufReader::with_capacity(1 << 20, file));
    let mut record = csv::ByteRecord::new();
    let io = |e: csv::Error| LoadError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    };
    let mut expected_len = None;
    let positions = if has_header {
        if !reader.read_byte_record(&mut record).map_err(io)? {
            return Err(LoadError::Empty {
                path: path.to_path_buf(),
            });
        }
        let header = header_names(&record.iter().collect::<Vec<_>>(), path)?;
        expected_len = Some(header.len());
        resolve_positions(table, path, Some(&header))?
    } else {
        resolve_positions(table, path, None)?
    };
    let delim = char::from(delimiter).to_string();
    // The csv crate's line numbers drift on CRLF files and after blank lines, so quarantined
    // rows carry their byte offset until `fix_line_numbers` turns offsets into lines.
    let first_new = table.quarantined.len();
    let first_kept = table.lines.len();
    while reader.read_byte_record(&mut record).map_err(io)? {
        let offset = record.position().map_or(0, csv::Position::byte);
        let fields: Vec<&[u8]> = record.iter().collect();
        let raw = || {
            fields
                .iter()
                .map(|f| String::from_utf8_lossy(f))
                .collect::<Vec<_>>()
                .join(&delim)
        };
        if let Some(n) = expected_len.filter(|&n| n != fields.len()) {
            table.rows_read += 1;
            let reason = format!(
                "expected {n} fields as in the header, found {}",
                fields.len()
            );
            let raw = raw();
            table.quarantine(offset, None, reason, raw);
            continue;
        }
        let mut cells = parse_row(table, &positions, &fields);
        table.push_row(offset, &mut cells, raw);
    }
    fix_line_numbers(
        table.quarantined[first_new..]
            .iter_mut()
            .map(|q| &mut q.location.line),
        path,
    )?;
    fix_line_numbers(table.lines[first_kept..].iter_mut(), path)
}

/// Replaces byte offsets (ascending) by 1-based line numbers, reading the file once.
fn fix_line_numbers<'a>(
    offsets: impl Iterator<Item = &'a mut u64>,
    path: &Path,
) -> Result<(), LoadError> {
    let mut offsets = offsets.peekable();
    if offsets.peek().is_none() {
        return Ok(());
    }
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path).map_err(io)?);
    let (mut pos, mut newlines) = (0u64, 0u64);
    loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() || offsets.peek().is_none() {
            break;
        }
        for &b in buf {
            // A record never starts with a line break: an offset that lands on one (CRLF, blank
            // lines) belongs to the first byte after it.
            while b != b'\r' && b != b'\n' && offsets.peek().is_some_and(|o| pos >= **o) {
                if let Some(o) = offsets.next() {
                    *o = newlines + 1;
                }
            }
            newlines += u64::from(b == b'\n');
            pos += 1;
        }
        let used = buf.len();
        reader.consume(used);
    }
    for o in offsets {
        *o = newlines + 1;
    }
    Ok(())
}

/// Calls `each(line_number, bytes)` for every non-blank line, without its line ending.
fn for_each_line(
    file: File,
    path: &Path,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| LoadError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let mut text = buf.trim_ascii_end();
        if line == 1 {
            // A UTF-8 byte-order mark is not part of the first field.
            text = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
        }
        if text.is_empty() {
            continue;
        }
        each(line, text)?;
    }
}

fn read_whitespace(
    table: &mut TableBuilder,
    file: File,
    path: &Path,
    has_header: bool,
) -> Result<(), LoadError> {
    let mut positions = if has_header {
        None
    } else {
        Some(resolve_positions(table, path, None)?)
    };
    let mut expected_len = None;
    for_each_line(file, path, |line, bytes| {
        let fields: Vec<&[u8]> = bytes
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty())
            .collect();
        let Some(pos) = &positions else {
            let header = header_names(&fields, path)?;
            expected_len = Some(header.len());
            positions = Some(resolve_positions(table, path, Some(&header))?);
            return Ok(());
        };
        let raw = || String::from_utf8_lossy(bytes).into_owned();
        if let Some(n) = expected_len.filter(|&n| n != fields.len()) {
            table.rows_read += 1;
            let reason = format!(
                "expected {n} fields as in the header, found {}",
                fields.len()
            );
            table.quarantine(line, None, reason, raw());
            return Ok(());
        }
        let mut cells = parse_row(table, pos, &fields);
        table.push_row(line, &mut cells, raw);
        Ok(())
    })?;
    if positions.is_none() {
        return Err(LoadError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Rows given as JSON objects, each with a position for messages about it.
pub(crate) struct JsonRows<'a> {
    table: &'a mut TableBuilder,
    names: &'a [Option<String>],
}

impl JsonRows<'_> {
    pub(crate) fn push(&mut self, line: u64, value: &serde_json::Value) {
        push_json_row(self.table, self.names, line, value, || value.to_string());
    }
}

/// The JSON key (a dotted path is allowed) each planned field is read from.
fn json_names(table: &TableBuilder) -> Result<Vec<Option<String>>, LoadError> {
    table
        .plan
        .iter()
        .map(|f| match &f.column {
            Some(ColumnRef::Name(n)) => Ok(Some(n.clone())),
            None => Ok(None),
            Some(ColumnRef::Position(_)) => Err(LoadError::Config {
                table: table.kind.to_string(),
                message: format!(
                    "field `{}`: JSON fields are mapped by name, not position",
                    f.name
                ),
            }),
        })
        .collect()
}

/// One JSON object as a row: each planned field read from its key.
fn push_json_row(
    table: &mut TableBuilder,
    names: &[Option<String>],
    line: u64,
    value: &serde_json::Value,
    raw: impl FnOnce() -> String,
) {
    let mut cells: Vec<Result<Value, String>> = table
        .plan
        .iter()
        .zip(names)
        .map(|(f, name)| {
            match name
                .as_deref()
                .and_then(|n| strata_core::json_path(value, n))
            {
                None => Ok(Value::Null),
                Some(v) => parse_json(f.ty, &f.dates, v),
            }
        })
        .collect();
    table.push_row(line, &mut cells, raw);
}

fn read_jsonl(table: &mut TableBuilder, file: File, path: &Path) -> Result<(), LoadError> {
    let names = json_names(table)?;
    for_each_line(file, path, |line, bytes| {
        let raw = || String::from_utf8_lossy(bytes).into_owned();
        let value: serde_json::Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                table.rows_read += 1;
                let reason = if std::str::from_utf8(bytes).is_err() {
                    "line is not valid UTF-8; re-encode the file as UTF-8".to_string()
                } else {
                    format!("invalid JSON: {e}")
                };
                table.quarantine(line, None, reason, raw());
                return Ok(());
            }
        };
        if !value.is_object() {
            table.rows_read += 1;
            table.quarantine(line, None, "expected a JSON object".into(), raw());
            return Ok(());
        }
        push_json_row(table, &names, line, &value, raw);
        Ok(())
    })
}

/// Whether an Arrow cast from `source` into `ty` keeps every value exactly.
fn lossless_cast(source: &DataType, ty: FieldType, dates: &DateRule) -> bool {
    use DataType as D;
    match ty {
        FieldType::String | FieldType::Json => {
            !matches!(source, D::Utf8 | D::LargeUtf8 | D::Utf8View) && !matches!(source, D::Null)
        }
        FieldType::Int => matches!(
            source,
            D::Int8 | D::Int16 | D::Int32 | D::Int64 | D::UInt8 | D::UInt16 | D::UInt32
        ),
        FieldType::Float => matches!(
            source,
            D::Float16
                | D::Float32
                | D::Float64
                | D::Int8
                | D::Int16
                | D::Int32
                | D::UInt8
                | D::UInt16
                | D::UInt32
        ),
        FieldType::Bool => matches!(source, D::Boolean),
        FieldType::Date | FieldType::Timestamp => {
            dates.formats.is_empty()
                && dates.timezone.is_none()
                && matches!(source, D::Date32 | D::Date64 | D::Timestamp(..))
        }
    }
}

fn read_parquet(table: &mut TableBuilder, file: File, path: &Path) -> Result<(), LoadError> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let perr = |e: &dyn std::fmt::Display| LoadError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| perr(&e))?;
    let header: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let positions = resolve_positions(table, path, Some(&header))?;
    let reader = builder
        .with_batch_size(64 * 1024)
        .build()
        .map_err(|e| perr(&e))?;
    let mut row_number = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| perr(&e))?;
        // Each planned column as an array of its target type (strings are parsed like text).
        let mut columns: Vec<Option<(ArrayRef, bool)>> = Vec::new();
        for (f, pos) in table.plan.iter().zip(&positions) {
            let Some(i) = *pos else {
                columns.push(None);
                continue;
            };
            let Some(source) = batch.columns().get(i) else {
                return Err(perr(&format!("no column at position {}", i + 1)));
            };
            // Arrow casts only where they cannot lose or reinterpret a value; everything else
            // is read as text by the same parser as CSV, so 2.7 → int or an epoch number →
            // timestamp is a reported error, not a silent truncation or a 1970 date.
            let as_text = !lossless_cast(source.data_type(), f.ty, &f.dates);
            let target = if as_text {
                DataType::Utf8
            } else {
                arrow_type(f.ty)
            };
            let converted = cast(source, &target).map_err(|e| {
                perr(&format!(
                    "field `{}`: cannot convert {} to {}: {e}",
                    f.name,
                    source.data_type(),
                    f.ty
                ))
            })?;
            columns.push(Some((converted, as_text)));
        }
        for r in 0..batch.num_rows() {
            row_number += 1;
            let mut cells: Vec<Result<Value, String>> = table
                .plan
                .iter()
                .zip(&columns)
                .map(|(f, col)| {
                    let Some((array, as_text)) = col else {
                        return Ok(Value::Null);
                    };
                    if array.is_null(r) {
                        return Ok(Value::Null);
                    }
                    if *as_text {
                        return parse_text(f.ty, &f.dates, array.as_string::<i32>().value(r));
                    }
                    Ok(match f.ty {
                        FieldType::String | FieldType::Json => {
                            Value::Str(array.as_string::<i32>().value(r).to_string())
                        }
                        FieldType::Int => Value::Int(array.as_primitive::<Int64Type>().value(r)),
                        FieldType::Float => {
                            let v = array.as_primitive::<Float64Type>().value(r);
                            if !v.is_finite() {
                                return Err(format!("`{v}` is not a finite number"));
                            }
                            Value::Float(v)
                        }
                        FieldType::Bool => Value::Bool(array.as_boolean().value(r)),
                        FieldType::Date | FieldType::Timestamp => {
                            Value::Micros(array.as_primitive::<TimestampMicrosecondType>().value(r))
                        }
                    })
                })
                .collect();
            // Source nulls that the cast could not turn into values are caught as missing.
            let raw = || format!("row {row_number}");
            table.push_row(row_number, &mut cells, raw);
        }
    }
    Ok(())
}
