//! Data preparation: reading sources (CSV, whitespace-separated text, JSON Lines, Parquet)
//! into Arrow record batches in Strata's canonical schemas, through a declarative column
//! mapping, then the cleaning steps declared under `[prep]`: normalization, validation,
//! currency conversion, cross-field checks, exact and fuzzy deduplication, imputation and
//! pseudonymization. Rows that cannot be used are quarantined with their location and
//! reason; every run accounts for each row read (kept, quarantined or merged) and profiles
//! each field's completeness, validity, uniqueness and consistency.

mod config;
mod dedup;
mod error;
mod impute;
mod load;
mod normalize;
mod prepare;
mod pseudo;
mod quality;
mod rules;
mod store_source;
mod value;

pub use config::{ColumnRef, ColumnSpec, SourceConfig, SourceFormat};
pub use dedup::{
    ComparisonParams, DedupReport, FieldEvidence, Level, MergeCluster, MergeEdge,
    match_probability_table,
};
pub use error::LoadError;
pub use impute::knn_impute;
pub use load::{LoadedSource, field_types, load_source};
pub use normalize::{normalize_email, normalize_phone};
pub use prepare::{PreparedSource, PreparedTables, prepare};
pub use pseudo::pseudonym;
pub use quality::{ColumnQuality, SourceQuality};
pub use rules::{PrepConfig, PrepPlan, RuleError, Sources, line_of};
pub use value::{DateOrder, DateRule, parse_timestamp_micros};
