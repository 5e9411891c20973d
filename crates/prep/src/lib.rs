//! Data preparation: reading sources (CSV, whitespace-separated text, JSON Lines, Parquet)
//! into Arrow record batches in Strata's canonical schemas, through a declarative column
//! mapping. Rows that cannot be parsed are quarantined with their location and reason;
//! problems that make a whole source unusable are errors naming the file and the field. Every
//! load also profiles its fields' completeness, validity and uniqueness.

mod config;
mod error;
mod load;
mod quality;
mod value;

pub use config::{ColumnRef, ColumnSpec, SourceConfig, SourceFormat};
pub use error::LoadError;
pub use load::{LoadedSource, load_source};
pub use quality::{ColumnQuality, SourceQuality};
pub use value::parse_timestamp_micros;
