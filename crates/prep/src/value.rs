//! Parsing one textual (or JSON) cell into a typed value, with a reason when it fails.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use strata_core::FieldType;

/// A parsed cell, ready to append to an Arrow builder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the Unix epoch, UTC.
    Micros(i64),
}

const DEFAULT_TIMESTAMP_FORMATS: &[&str] =
    &["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d"];

/// Parses a date or timestamp with the given chrono formats tried in order (RFC 3339 and
/// ISO forms when none are given). Formats without a zone are read as UTC; a date alone is
/// midnight UTC.
pub fn parse_timestamp_micros(text: &str, formats: &[String]) -> Option<i64> {
    let text = text.trim();
    if formats.is_empty() {
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Some(dt.timestamp_micros());
        }
        return DEFAULT_TIMESTAMP_FORMATS
            .iter()
            .find_map(|f| parse_with(text, f));
    }
    formats.iter().find_map(|f| parse_with(text, f))
}

fn parse_with(text: &str, format: &str) -> Option<i64> {
    match format {
        "epoch_seconds" => return text.parse::<i64>().ok()?.checked_mul(1_000_000),
        "epoch_millis" => return text.parse::<i64>().ok()?.checked_mul(1_000),
        "rfc3339" => {
            return DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|d| d.timestamp_micros());
        }
        _ => {}
    }
    if format.contains("%z") || format.contains("%:z") || format.contains("%#z") {
        return DateTime::parse_from_str(text, format)
            .ok()
            .map(|d| d.timestamp_micros());
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
        return Some(dt.and_utc().timestamp_micros());
    }
    // Trailing `Z` on an otherwise zone-less format means UTC.
    if let Some(stripped) = text.strip_suffix('Z')
        && let Ok(dt) = NaiveDateTime::parse_from_str(stripped, format)
    {
        return Some(dt.and_utc().timestamp_micros());
    }
    let date = NaiveDate::parse_from_str(text, format).ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parses text into `ty`. Empty (after trimming) is null; a failure says what was expected.
pub(crate) fn parse_text(ty: FieldType, formats: &[String], raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Ok(Value::Null);
    }
    let fail = |what: &str| Err(format!("cannot read `{}` as {what}", truncate(text)));
    match ty {
        FieldType::String | FieldType::Json => Ok(Value::Str(text.to_string())),
        FieldType::Int => match text.parse::<i64>() {
            Ok(v) => Ok(Value::Int(v)),
            // "2.0" is the integer 2 (spreadsheets and Parquet floats write counts that way).
            Err(_) => match text.parse::<f64>() {
                Ok(v) if v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(Value::Int(v as i64)),
                _ => fail("an integer"),
            },
        },
        FieldType::Float => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Value::Float(v)),
            _ => fail("a number"),
        },
        FieldType::Bool => match parse_bool(text) {
            Some(b) => Ok(Value::Bool(b)),
            None => fail("true/false"),
        },
        FieldType::Date | FieldType::Timestamp => match parse_timestamp_micros(text, formats) {
            Some(m) => Ok(Value::Micros(m)),
            None if formats.is_empty() => fail("a date/time (ISO 8601 expected)"),
            None => fail(&format!("a date/time in format {}", formats.join(" or "))),
        },
    }
}

/// Converts a JSON value into `ty`; strings go through the text parser.
pub(crate) fn parse_json(
    ty: FieldType,
    formats: &[String],
    value: &serde_json::Value,
) -> Result<Value, String> {
    use serde_json::Value as J;
    match (ty, value) {
        (_, J::Null) => Ok(Value::Null),
        (FieldType::Json, v) => Ok(Value::Str(v.to_string())),
        (_, J::String(s)) => parse_text(ty, formats, s),
        (FieldType::String, J::Number(n)) => Ok(Value::Str(n.to_string())),
        (FieldType::String, J::Bool(b)) => Ok(Value::Str(b.to_string())),
        (FieldType::Int, J::Number(n)) => n
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| format!("cannot read `{n}` as an integer")),
        (FieldType::Float, J::Number(n)) => n
            .as_f64()
            .map(Value::Float)
            .ok_or_else(|| format!("cannot read `{n}` as a number")),
        (FieldType::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (FieldType::Date | FieldType::Timestamp, J::Number(n)) if !formats.is_empty() => {
            parse_text(ty, formats, &n.to_string())
        }
        (ty, other) => Err(format!(
            "cannot read {} as {ty}",
            truncate(&other.to_string())
        )),
    }
}

fn truncate(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, s))
            .map(|d| d.and_utc().timestamp_micros())
            .unwrap()
    }

    fn check(ty: FieldType, formats: &[&str], text: &str, expected: Result<Value, &str>) {
        let formats: Vec<String> = formats.iter().map(|s| s.to_string()).collect();
        let got = parse_text(ty, &formats, text);
        match expected {
            Ok(v) => assert_eq!(got, Ok(v), "{text:?}"),
            Err(fragment) => {
                let err = got.expect_err(text);
                assert!(
                    err.contains(fragment),
                    "{err:?} should contain {fragment:?}"
                );
            }
        }
    }

    #[test]
    fn parses_cells_by_type() {
        use FieldType::*;
        check(Int, &[], " 42 ", Ok(Value::Int(42)));
        check(Int, &[], "4.2", Err("as an integer"));
        check(Int, &[], "4.0", Ok(Value::Int(4)));
        check(Int, &[], "1e300", Err("as an integer"));
        check(Float, &[], "29.33", Ok(Value::Float(29.33)));
        check(Float, &[], "N/A", Err("cannot read `N/A` as a number"));
        check(Float, &[], "inf", Err("as a number"));
        check(Float, &[], "", Ok(Value::Null));
        check(Bool, &[], "Yes", Ok(Value::Bool(true)));
        check(Bool, &[], "maybe", Err("true/false"));
        check(String, &[], "  Ann ", Ok(Value::Str("Ann".into())));
        check(
            Date,
            &["%Y%m%d"],
            "19970101",
            Ok(Value::Micros(micros(1997, 1, 1, 0, 0, 0))),
        );
        check(Date, &["%Y%m%d"], "19971301", Err("in format %Y%m%d"));
        check(
            Date,
            &["%Y-%m-%d", "%d/%m/%Y"],
            "31/12/2025",
            Ok(Value::Micros(micros(2025, 12, 31, 0, 0, 0))),
        );
        check(
            Timestamp,
            &[],
            "2026-03-04T05:06:07Z",
            Ok(Value::Micros(micros(2026, 3, 4, 5, 6, 7))),
        );
        check(
            Timestamp,
            &[],
            "2026-03-04T07:06:07+02:00",
            Ok(Value::Micros(micros(2026, 3, 4, 5, 6, 7))),
        );
        check(
            Timestamp,
            &[],
            "2026-03-04",
            Ok(Value::Micros(micros(2026, 3, 4, 0, 0, 0))),
        );
        check(
            Timestamp,
            &["epoch_seconds"],
            "86400",
            Ok(Value::Micros(86_400_000_000)),
        );
        check(Timestamp, &[], "yesterday", Err("ISO 8601"));
    }

    #[test]
    fn converts_json_values() {
        use serde_json::json;
        assert_eq!(
            parse_json(FieldType::Float, &[], &json!(3)),
            Ok(Value::Float(3.0))
        );
        assert_eq!(
            parse_json(FieldType::Float, &[], &json!("3.5")),
            Ok(Value::Float(3.5))
        );
        assert!(parse_json(FieldType::Int, &[], &json!(3.5)).is_err());
        assert_eq!(
            parse_json(FieldType::Json, &[], &json!({"a": 1})),
            Ok(Value::Str("{\"a\":1}".into()))
        );
        assert!(parse_json(FieldType::String, &[], &json!([1])).is_err());
        assert_eq!(
            parse_json(FieldType::String, &[], &json!(null)),
            Ok(Value::Null)
        );
    }
}
