//! Dirty data is not an error: rows that cannot be used are quarantined with a reason and a
//! precise location, and the run goes on.

use serde::Serialize;
use std::fmt;

/// Where a problem was found: file, 1-based line (or row for Parquet), and field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    pub line: u64,
    pub field: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(field) = &self.field {
            write!(f, " field `{field}`")?;
        }
        Ok(())
    }
}

/// A source row set aside with the reason it could not be used, and its raw text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    pub location: Location,
    pub reason: String,
    pub raw: String,
}

impl fmt::Display for Quarantined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.reason)
    }
}
