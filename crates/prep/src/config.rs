//! The declarative description of one source file: where it is, how it is encoded, and which
//! of its columns feed which fields of the canonical schema.

use crate::value::{DateOrder, DateRule};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use strata_core::FieldType;

/// How a file is laid out. When omitted it is inferred from the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    Csv,
    Tsv,
    /// Columns separated by runs of spaces or tabs (CDNOW's layout).
    Whitespace,
    Jsonl,
    Parquet,
    /// The live store of `strata serve`: `path` is its data directory. Orders are its
    /// `Order Completed` events, customers its profiles, events its log.
    StrataStore,
}

impl SourceFormat {
    pub fn from_path(path: &Path) -> Option<Self> {
        if path.join("strata.redb").is_file() {
            return Some(Self::StrataStore);
        }
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "csv" => Self::Csv,
            "tsv" | "tab" => Self::Tsv,
            "txt" | "dat" => Self::Whitespace,
            "jsonl" | "ndjson" | "json" => Self::Jsonl,
            "parquet" | "pq" => Self::Parquet,
            _ => return None,
        })
    }
}

/// Where a field's value comes from: a column name (a dotted path in JSON Lines) or a 1-based
/// column position for files without a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnRef {
    Name(String),
    Position(usize),
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Position(p) => write!(f, "#{p}"),
        }
    }
}

/// How one field is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub column: ColumnRef,
    /// Overrides the canonical type; required for fields outside the canonical schema
    /// (defaults to string there).
    pub ty: Option<FieldType>,
    /// chrono formats tried in order for dates and timestamps (`epoch_seconds` and
    /// `epoch_millis` are accepted too).
    pub formats: Vec<String>,
    /// How day/month dates are read when `formats` is empty.
    pub date_order: DateOrder,
    /// The zone of date-times written without a UTC offset (UTC when unset).
    pub timezone: Option<chrono_tz::Tz>,
}

impl ColumnSpec {
    pub(crate) fn date_rule(&self) -> DateRule {
        DateRule {
            formats: self.formats.clone(),
            order: self.date_order,
            timezone: self.timezone,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumnSpec {
    Name(String),
    Position(usize),
    Table(RawColumnTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumnTable {
    column: RawColumnRef,
    #[serde(rename = "type")]
    ty: Option<FieldType>,
    format: Option<String>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(default)]
    date_order: DateOrder,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumnRef {
    Name(String),
    Position(usize),
}

impl From<RawColumnRef> for ColumnRef {
    fn from(raw: RawColumnRef) -> Self {
        match raw {
            RawColumnRef::Name(n) => Self::Name(n),
            RawColumnRef::Position(p) => Self::Position(p),
        }
    }
}

impl ColumnSpec {
    /// A column read with the defaults.
    pub fn plain(column: ColumnRef) -> Self {
        Self {
            column,
            ty: None,
            formats: vec![],
            date_order: DateOrder::default(),
            timezone: None,
        }
    }
}

impl<'de> Deserialize<'de> for ColumnSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match RawColumnSpec::deserialize(d)? {
            RawColumnSpec::Name(n) => Self::plain(ColumnRef::Name(n)),
            RawColumnSpec::Position(p) => Self::plain(ColumnRef::Position(p)),
            RawColumnSpec::Table(t) => {
                let mut formats: Vec<String> = t.format.into_iter().collect();
                formats.extend(t.formats);
                let timezone = match t.timezone {
                    None => None,
                    Some(name) => Some(name.parse::<chrono_tz::Tz>().map_err(|_| {
                        serde::de::Error::custom(format!(
                            "unknown time zone `{name}`: use an IANA name such as \"Europe/Berlin\" or \"America/New_York\""
                        ))
                    })?),
                };
                Self {
                    column: t.column.into(),
                    ty: t.ty,
                    formats,
                    date_order: t.date_order,
                    timezone,
                }
            }
        })
    }
}

/// One input file and its mapping onto a canonical table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub path: PathBuf,
    pub format: Option<SourceFormat>,
    /// Whether the first line names the columns (text formats). Default: true.
    #[serde(default = "default_true")]
    pub header: bool,
    /// Field delimiter for `csv` (default `,`).
    pub delimiter: Option<char>,
    /// Canonical or extra field name → where its value comes from. When empty, every
    /// canonical field is read from the column of the same name (for events: Segment's
    /// camelCase names).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Fields whose unreadable values are nulled and flagged instead of quarantining the
    /// row (set from `on_invalid = "null"` in `[prep]`, not written here).
    #[serde(skip)]
    pub null_invalid: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl SourceConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: None,
            header: true,
            delimiter: None,
            columns: BTreeMap::new(),
            null_invalid: Vec::new(),
        }
    }
}
