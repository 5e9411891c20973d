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
        "{}: column `{column}` ({}) is not in the file; columns found: {available}",
        path.display(),
        mapping_note(*defaulted, field, table)
    )]
    MissingColumn {
        path: PathBuf,
        table: String,
        field: String,
        column: String,
        available: String,
        /// No mapping was written: the column name is the field's default.
        defaulted: bool,
    },
    #[error("{}: invalid Parquet file: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: cannot read the store: {message}", path.display())]
    Store { path: PathBuf, message: String },
    #[error("[sources.{table}]: {message}")]
    Config { table: String, message: String },
    #[error("preparing {table} failed (a bug in Strata): {message}")]
    Internal { table: String, message: String },
}

fn mapping_note(defaulted: bool, field: &str, table: &str) -> String {
    if defaulted {
        format!(
            "the default column for field `{field}`, as [sources.{table}.columns] is not given; add it to map your own column names"
        )
    } else {
        format!("mapped to field `{field}` in [sources.{table}.columns]")
    }
}
