//! Errors that make a whole source unusable. All are user errors: they name the file (and,
//! where it applies, the line and field) and say what to change.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is empty: expected a header line and data rows", path.display())]
    Empty { path: PathBuf },
    #[error("{}:1: the header line is not valid UTF-8 (is the file text, and in UTF-8?)", path.display())]
    HeaderEncoding { path: PathBuf },
    #[error(
        "{}: column `{column}` (mapped to field `{field}` in [sources.{table}.columns]) is not in the file; columns found: {available}",
        path.display()
    )]
    MissingColumn {
        path: PathBuf,
        table: String,
        field: String,
        column: String,
        available: String,
    },
    #[error("{}: invalid Parquet file: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("[sources.{table}]: {message}")]
    Config { table: String, message: String },
}
