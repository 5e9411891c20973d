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

/// How `DD/MM/YYYY`-style dates (any of `/`, `.`, `-` between a 1–2 digit day and month and a
/// 4-digit year) are read when no explicit format is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// Read a date when only one reading is a valid date (`31/12/2025`); reject one that could
    /// be either (`03/04/2025`) as ambiguous.
    #[default]
    Unambiguous,
    /// Day first: `03/04/2025` is 3 April.
    Dmy,
    /// Month first: `03/04/2025` is 4 March.
    Mdy,
}

/// How a date or timestamp cell is read: explicit chrono formats, or (when there are none)
/// automatic detection of ISO 8601 / RFC 3339, `YYYYMMDD`, epoch seconds (9–11 digits) and
/// milliseconds (12–14 digits), and day/month dates under `order`. Values without a UTC
/// offset are local times in `timezone` (UTC when unset).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DateRule {
    pub formats: Vec<String>,
    pub order: DateOrder,
    pub timezone: Option<chrono_tz::Tz>,
}

impl DateRule {
    pub fn formats(formats: &[String]) -> Self {
        Self {
            formats: formats.to_vec(),
            ..Self::default()
        }
    }
}

/// Why a date cell could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DateFailure {
    Unreadable,
    Ambiguous,
    /// A local time skipped by a daylight-saving change.
    NonexistentLocal,
}

/// Parses a date or timestamp with the given chrono formats tried in order (automatic ISO,
/// `YYYYMMDD` and epoch detection when none are given). Formats without a zone are read as
/// UTC; a date alone is midnight UTC.
pub fn parse_timestamp_micros(text: &str, formats: &[String]) -> Option<i64> {
    parse_date(text, &DateRule::formats(formats)).ok()
}

/// A naive local date-time in `tz` as µs since the epoch (UTC). In an autumn fold the
/// earlier instant is taken.
fn localize(naive: NaiveDateTime, tz: Option<chrono_tz::Tz>) -> Result<i64, DateFailure> {
    use chrono::TimeZone;
    use chrono::offset::LocalResult;
    let Some(tz) = tz else {
        return Ok(naive.and_utc().timestamp_micros());
    };
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(d) => Ok(d.timestamp_micros()),
        LocalResult::Ambiguous(a, _) => Ok(a.timestamp_micros()),
        LocalResult::None => Err(DateFailure::NonexistentLocal),
    }
}

fn day_month_year(text: &str, order: DateOrder) -> Result<NaiveDate, DateFailure> {
    let sep = text
        .chars()
        .find(|c| matches!(c, '/' | '.' | '-'))
        .ok_or(DateFailure::Unreadable)?;
    let parts: Vec<&str> = text.split(sep).collect();
    let [a, b, y] = parts.as_slice() else {
        return Err(DateFailure::Unreadable);
    };
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit())
    };
    if !digits(a, 1..=2) || !digits(b, 1..=2) || !digits(y, 4..=4) {
        return Err(DateFailure::Unreadable);
    }
    let (a, b, y): (u32, u32, i32) = (
        a.parse().map_err(|_| DateFailure::Unreadable)?,
        b.parse().map_err(|_| DateFailure::Unreadable)?,
        y.parse().map_err(|_| DateFailure::Unreadable)?,
    );
    let dmy = NaiveDate::from_ymd_opt(y, b, a);
    let mdy = NaiveDate::from_ymd_opt(y, a, b);
    match order {
        DateOrder::Dmy => dmy.ok_or(DateFailure::Unreadable),
        DateOrder::Mdy => mdy.ok_or(DateFailure::Unreadable),
        DateOrder::Unambiguous => match (dmy, mdy) {
            (Some(d), Some(m)) if d == m => Ok(d),
            (Some(_), Some(_)) => Err(DateFailure::Ambiguous),
            (Some(d), None) | (None, Some(d)) => Ok(d),
            (None, None) => Err(DateFailure::Unreadable),
        },
    }
}

fn detect(text: &str, rule: &DateRule) -> Result<i64, DateFailure> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.timestamp_micros());
    }
    if text.bytes().all(|c| c.is_ascii_digit()) {
        let n: i64 = text.parse().map_err(|_| DateFailure::Unreadable)?;
        return match text.len() {
            8 => {
                let d = NaiveDate::parse_from_str(text, "%Y%m%d")
                    .map_err(|_| DateFailure::Unreadable)?;
                localize(d.and_time(chrono::NaiveTime::MIN), rule.timezone)
            }
            9..=11 => n.checked_mul(1_000_000).ok_or(DateFailure::Unreadable),
            12..=14 => n.checked_mul(1_000).ok_or(DateFailure::Unreadable),
            _ => Err(DateFailure::Unreadable),
        };
    }
    for f in DEFAULT_TIMESTAMP_FORMATS {
        if let Some(naive) = naive_with(text, f) {
            return localize(naive, rule.timezone);
        }
    }
    // A trailing time after a day/month date: `31/12/2025 14:30`.
    let (date_part, time_part) = match text.split_once(' ') {
        Some((d, t)) => (d, Some(t.trim())),
        None => (text, None),
    };
    let date = day_month_year(date_part, rule.order)?;
    let time = match time_part {
        None => chrono::NaiveTime::MIN,
        Some(t) => chrono::NaiveTime::parse_from_str(t, "%H:%M:%S")
            .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M"))
            .map_err(|_| DateFailure::Unreadable)?,
    };
    localize(date.and_time(time), rule.timezone)
}

/// Reads a date/time cell under `rule`.
pub(crate) fn parse_date(text: &str, rule: &DateRule) -> Result<i64, DateFailure> {
    let text = text.trim();
    if rule.formats.is_empty() {
        return detect(text, rule);
    }
    let mut failure = DateFailure::Unreadable;
    for f in &rule.formats {
        match parse_with(text, f, rule.timezone) {
            Ok(m) => return Ok(m),
            Err(DateFailure::NonexistentLocal) => failure = DateFailure::NonexistentLocal,
            Err(_) => {}
        }
    }
    Err(failure)
}

/// A zone-less date or date-time in `format`.
fn naive_with(text: &str, format: &str) -> Option<NaiveDateTime> {
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
        return Some(dt);
    }
    // Trailing `Z` on an otherwise zone-less format means UTC.
    if let Some(stripped) = text.strip_suffix('Z')
        && let Ok(dt) = NaiveDateTime::parse_from_str(stripped, format)
    {
        return Some(dt);
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .map(|d| d.and_time(chrono::NaiveTime::MIN))
}

fn parse_with(text: &str, format: &str, tz: Option<chrono_tz::Tz>) -> Result<i64, DateFailure> {
    let none = || DateFailure::Unreadable;
    match format {
        "epoch_seconds" => {
            return text
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(1_000_000))
                .ok_or_else(none);
        }
        "epoch_millis" => {
            return text
                .parse::<i64>()
                .ok()
                .and_then(|n| n.checked_mul(1_000))
                .ok_or_else(none);
        }
        "rfc3339" => {
            return DateTime::parse_from_rfc3339(text)
                .map(|d| d.timestamp_micros())
                .map_err(|_| none());
        }
        _ => {}
    }
    if format.contains("%z") || format.contains("%:z") || format.contains("%#z") {
        return DateTime::parse_from_str(text, format)
            .map(|d| d.timestamp_micros())
            .map_err(|_| none());
    }
    // A trailing `Z` is UTC whatever the configured zone.
    if let Some(stripped) = text.strip_suffix('Z')
        && let Ok(dt) = NaiveDateTime::parse_from_str(stripped, format)
    {
        return Ok(dt.and_utc().timestamp_micros());
    }
    let naive = naive_with(text, format).ok_or_else(none)?;
    localize(naive, tz)
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parses text into `ty`. Empty (after trimming) is null; a failure says what was expected.
pub(crate) fn parse_text(ty: FieldType, dates: &DateRule, raw: &str) -> Result<Value, String> {
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
        FieldType::Date | FieldType::Timestamp => match parse_date(text, dates) {
            Ok(m) => Ok(Value::Micros(m)),
            Err(DateFailure::Ambiguous) => fail(
                "a date: day and month could be either way round (set `date_order = \"dmy\"` or \"mdy\" for this column)",
            ),
            Err(DateFailure::NonexistentLocal) => fail(&format!(
                "a local time in {}: it falls in a daylight-saving gap",
                dates.timezone.map(|t| t.name()).unwrap_or("UTC")
            )),
            Err(DateFailure::Unreadable) if dates.formats.is_empty() => {
                fail("a date/time (ISO 8601, YYYYMMDD, epoch or DD/MM/YYYY expected)")
            }
            Err(DateFailure::Unreadable) => fail(&format!(
                "a date/time in format {}",
                dates.formats.join(" or ")
            )),
        },
    }
}

/// Converts a JSON value into `ty`; strings go through the text parser.
pub(crate) fn parse_json(
    ty: FieldType,
    dates: &DateRule,
    value: &serde_json::Value,
) -> Result<Value, String> {
    use serde_json::Value as J;
    match (ty, value) {
        (_, J::Null) => Ok(Value::Null),
        (FieldType::Json, v) => Ok(Value::Str(v.to_string())),
        (_, J::String(s)) => parse_text(ty, dates, s),
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
        (FieldType::Date | FieldType::Timestamp, J::Number(n)) if n.is_i64() => {
            parse_text(ty, dates, &n.to_string())
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
        let got = parse_text(ty, &DateRule::formats(&formats), text);
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
        check(Date, &["%Y%m%d"], "2025-01-01", Err("in format %Y%m%d"));
    }

    fn parse_json_t(
        ty: FieldType,
        formats: &[String],
        v: &serde_json::Value,
    ) -> Result<Value, String> {
        parse_json(ty, &DateRule::formats(formats), v)
    }

    /// Text, day/month policy, zone, expected µs or failure.
    type DateCase<'a> = (
        &'a str,
        DateOrder,
        Option<chrono_tz::Tz>,
        Result<i64, DateFailure>,
    );

    /// Every date shape the detector knows, with the ambiguous and invalid ones.
    #[test]
    fn normalizes_mixed_date_formats() {
        use DateOrder::*;
        let d = |y, m, day| Ok(micros(y, m, day, 0, 0, 0));
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let cases: Vec<DateCase<'_>> = vec![
            ("2025-12-31", Unambiguous, None, d(2025, 12, 31)),
            (
                "2025-12-31T10:00:00",
                Unambiguous,
                None,
                Ok(micros(2025, 12, 31, 10, 0, 0)),
            ),
            (
                "2025-12-31 10:00:00.5",
                Unambiguous,
                None,
                Ok(micros(2025, 12, 31, 10, 0, 0) + 500_000),
            ),
            (
                "2025-12-31T10:00:00+02:00",
                Unambiguous,
                None,
                Ok(micros(2025, 12, 31, 8, 0, 0)),
            ),
            (
                "2025-12-31T10:00:00Z",
                Unambiguous,
                Some(ny),
                Ok(micros(2025, 12, 31, 10, 0, 0)),
            ),
            ("20251231", Unambiguous, None, d(2025, 12, 31)),
            ("20251331", Unambiguous, None, Err(DateFailure::Unreadable)),
            ("1735603200", Unambiguous, None, d(2024, 12, 31)),
            ("1735603200000", Unambiguous, None, d(2024, 12, 31)),
            ("31/12/2025", Unambiguous, None, d(2025, 12, 31)),
            ("12/31/2025", Unambiguous, None, d(2025, 12, 31)),
            ("31.12.2025", Unambiguous, None, d(2025, 12, 31)),
            ("05/05/2025", Unambiguous, None, d(2025, 5, 5)),
            ("03/04/2025", Unambiguous, None, Err(DateFailure::Ambiguous)),
            ("03/04/2025", Dmy, None, d(2025, 4, 3)),
            ("03/04/2025", Mdy, None, d(2025, 3, 4)),
            ("12/31/2025", Dmy, None, Err(DateFailure::Unreadable)),
            ("31/12/2025", Mdy, None, Err(DateFailure::Unreadable)),
            (
                "31/12/2025 14:30",
                Unambiguous,
                None,
                Ok(micros(2025, 12, 31, 14, 30, 0)),
            ),
            ("30/02/2025", Dmy, None, Err(DateFailure::Unreadable)),
            ("1/2/25", Dmy, None, Err(DateFailure::Unreadable)),
            (
                "2025/12/31x",
                Unambiguous,
                None,
                Err(DateFailure::Unreadable),
            ),
            ("", Unambiguous, None, Err(DateFailure::Unreadable)),
            // Local times: New York is UTC−5 in winter, UTC−4 in summer.
            (
                "2025-01-15 09:00:00",
                Unambiguous,
                Some(ny),
                Ok(micros(2025, 1, 15, 14, 0, 0)),
            ),
            (
                "2025-07-15 09:00:00",
                Unambiguous,
                Some(ny),
                Ok(micros(2025, 7, 15, 13, 0, 0)),
            ),
            (
                "2025-03-09 02:30:00",
                Unambiguous,
                Some(ny),
                Err(DateFailure::NonexistentLocal),
            ),
            // The autumn fold: 01:30 happens twice; the earlier (EDT) instant is taken.
            (
                "2025-11-02 01:30:00",
                Unambiguous,
                Some(ny),
                Ok(micros(2025, 11, 2, 5, 30, 0)),
            ),
        ];
        for (text, order, timezone, expected) in cases {
            let rule = DateRule {
                formats: vec![],
                order,
                timezone,
            };
            assert_eq!(
                parse_date(text, &rule),
                expected,
                "{text:?} under {order:?}"
            );
        }
        let explicit = DateRule {
            formats: vec!["%d/%m/%Y %H:%M".into()],
            order: Unambiguous,
            timezone: Some(ny),
        };
        assert_eq!(
            parse_date("15/01/2025 09:00", &explicit),
            Ok(micros(2025, 1, 15, 14, 0, 0))
        );
        check(
            FieldType::Date,
            &[],
            "03/04/2025",
            Err("day and month could be either way round"),
        );
    }

    #[test]
    fn converts_json_values() {
        use serde_json::json;
        assert_eq!(
            parse_json_t(FieldType::Float, &[], &json!(3)),
            Ok(Value::Float(3.0))
        );
        assert_eq!(
            parse_json_t(FieldType::Float, &[], &json!("3.5")),
            Ok(Value::Float(3.5))
        );
        assert!(parse_json_t(FieldType::Int, &[], &json!(3.5)).is_err());
        assert_eq!(
            parse_json_t(FieldType::Json, &[], &json!({"a": 1})),
            Ok(Value::Str("{\"a\":1}".into()))
        );
        assert!(parse_json_t(FieldType::String, &[], &json!([1])).is_err());
        assert_eq!(
            parse_json_t(FieldType::String, &[], &json!(null)),
            Ok(Value::Null)
        );
    }
}
