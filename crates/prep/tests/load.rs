//! Loading real and deliberately broken files: counts, quarantine, and clear errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_core::EntityKind;
use strata_prep::{ColumnRef, ColumnSpec, LoadError, SourceConfig, SourceFormat, load_source};

fn cdnow(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/cdnow")
        .join(file)
}

fn col(name: &str) -> ColumnSpec {
    ColumnSpec::plain(ColumnRef::Name(name.into()))
}

fn col_fmt(name: &str, format: &str) -> ColumnSpec {
    ColumnSpec {
        formats: vec![format.into()],
        ..col(name)
    }
}

fn pos(p: usize) -> ColumnSpec {
    ColumnSpec::plain(ColumnRef::Position(p))
}

fn cdnow_orders_config(path: PathBuf) -> SourceConfig {
    let mut c = SourceConfig::new(path);
    c.format = Some(SourceFormat::Whitespace);
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), col("customer_id")),
        ("timestamp".to_string(), col_fmt("date", "%Y%m%d")),
        ("amount".to_string(), col("dollar_value")),
        ("quantity".to_string(), col("number_of_cds")),
    ]);
    c
}

fn distinct_customers(batch: &arrow::array::RecordBatch) -> usize {
    let ids = batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>();
    ids.iter().flatten().collect::<HashSet<_>>().len()
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn write_parquet(path: &Path, batch: &arrow::array::RecordBatch) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
}

#[test]
fn cdnow_master_has_the_published_totals() {
    let loaded = load_source(
        EntityKind::Orders,
        &cdnow_orders_config(cdnow("CDNOW_master.txt")),
    )
    .unwrap();
    assert_eq!(loaded.rows_read, 69_659);
    assert_eq!(loaded.batch.num_rows(), 69_659);
    assert!(loaded.quarantined.is_empty());
    assert_eq!(distinct_customers(&loaded.batch), 23_570);
    let ts = loaded
        .batch
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let (min, max) = (
        arrow::compute::min(ts).unwrap(),
        arrow::compute::max(ts).unwrap(),
    );
    let day = |s: &str| strata_prep::parse_timestamp_micros(s, &[]).unwrap();
    assert_eq!((min, max), (day("1997-01-01"), day("1998-06-30")));
    let amount = loaded
        .batch
        .column_by_name("amount")
        .unwrap()
        .as_primitive::<Float64Type>();
    let total: f64 = amount.iter().flatten().sum();
    assert!((total - 2_500_315.63).abs() < 0.01, "total spend {total}");
}

#[test]
fn cdnow_sample_without_header_maps_by_position() {
    let mut c = SourceConfig::new(cdnow("CDNOW_sample.txt"));
    c.header = false;
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), pos(1)),
        (
            "timestamp".to_string(),
            ColumnSpec {
                formats: vec!["%Y%m%d".into()],
                ..pos(3)
            },
        ),
        ("quantity".to_string(), pos(4)),
        ("amount".to_string(), pos(5)),
    ]);
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    assert_eq!(loaded.batch.num_rows(), 6_919);
    assert_eq!(distinct_customers(&loaded.batch), 2_357);
    // Mapping by name in a file without a header is a config error, not a crash.
    c.columns.insert("amount".into(), col("dollar_value"));
    let err = load_source(EntityKind::Orders, &c).unwrap_err().to_string();
    assert!(
        err.contains("no header") && err.contains("amount = 3"),
        "{err}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = load_source(
        EntityKind::Orders,
        &cdnow_orders_config("/nonexistent/orders.txt".into()),
    )
    .unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/orders.txt"), "{err}");
}

#[test]
fn wrong_column_name_lists_the_columns_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "o.txt",
        b"customer_id date number_of_cds dollar_value\n1 19970101 1 9.99\n",
    );
    let mut c = cdnow_orders_config(path);
    c.columns.insert("amount".into(), col("dolar_value"));
    let err = load_source(EntityKind::Orders, &c).unwrap_err().to_string();
    for fragment in [
        "o.txt",
        "`dolar_value`",
        "field `amount`",
        "customer_id, date, number_of_cds, dollar_value",
    ] {
        assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
    }
}

#[test]
fn unmapped_required_field_is_a_config_error() {
    let mut c = cdnow_orders_config(cdnow("CDNOW_master.txt"));
    c.columns.remove("amount");
    let err = load_source(EntityKind::Orders, &c).unwrap_err().to_string();
    assert!(err.contains("`amount` is required but not mapped"), "{err}");
}

#[test]
fn malformed_rows_are_quarantined_with_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = "customer_id date number_of_cds dollar_value\n\
                1 19970101 1 9.99\n\
                2 19970102 1\n\
                3 1997013X 1 5.00\n\
                \n\
                4 19970104 2 N/A\n\
                5 19970105 1 12.50\n";
    let path = write_file(dir.path(), "orders.txt", text.as_bytes());
    let loaded = load_source(EntityKind::Orders, &cdnow_orders_config(path)).unwrap();
    assert_eq!(loaded.rows_read, 5, "the blank line is not a row");
    assert_eq!(loaded.batch.num_rows(), 2);
    let q: Vec<(u64, Option<&str>, &str)> = loaded
        .quarantined
        .iter()
        .map(|q| {
            (
                q.location.line,
                q.location.field.as_deref(),
                q.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        q[0],
        (3, None, "expected 4 fields as in the header, found 3")
    );
    assert_eq!(q[1].0, 4);
    assert_eq!(q[1].1, Some("timestamp"));
    assert!(
        q[1].2.contains("1997013X") && q[1].2.contains("%Y%m%d"),
        "{}",
        q[1].2
    );
    assert_eq!(q[2], (6, Some("amount"), "cannot read `N/A` as a number"));
    assert_eq!(loaded.quarantined[2].raw, "4 19970104 2 N/A");
    assert!(
        loaded.quarantined[2]
            .to_string()
            .contains("orders.txt:6 field `amount`")
    );

    // Quality, by hand: 5 rows read; line 3 (a field short) holds no usable cell.
    let q = &loaded.quality;
    assert_eq!((q.rows_read, q.rows_kept, q.rows_quarantined), (5, 2, 3));
    let col = |f: &str| q.columns.iter().find(|c| c.field == f).unwrap();
    let amount = col("amount");
    assert_eq!((amount.present, amount.invalid), (4, 1)); // 9.99, 5.00, N/A, 12.50
    assert_eq!(amount.completeness, Some(0.8));
    assert_eq!(amount.validity, Some(0.75));
    let ts = col("timestamp");
    assert_eq!((ts.present, ts.invalid, ts.column.as_str()), (4, 1, "date"));
    let id = col("customer_id");
    assert_eq!(
        (id.validity, id.distinct, id.uniqueness),
        (Some(1.0), 2, Some(1.0))
    );
    assert!(
        q.columns.iter().all(|c| c.field != "order_id"),
        "unmapped fields are not profiled"
    );
}

#[test]
fn empty_file_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for (name, format) in [
        ("e.txt", SourceFormat::Whitespace),
        ("e.csv", SourceFormat::Csv),
        ("e.jsonl", SourceFormat::Jsonl),
    ] {
        let path = write_file(dir.path(), name, b"");
        let mut c = cdnow_orders_config(path);
        c.format = Some(format);
        let err = load_source(EntityKind::Orders, &c).unwrap_err();
        assert!(matches!(err, LoadError::Empty { .. }), "{name}: {err}");
        assert!(err.to_string().contains("is empty"));
    }
    // Only blank lines: still no header.
    let path = write_file(dir.path(), "blank.txt", b"\n\n");
    let err = load_source(EntityKind::Orders, &cdnow_orders_config(path)).unwrap_err();
    assert!(matches!(err, LoadError::Empty { .. }), "{err}");
}

#[test]
fn non_utf8_rows_are_quarantined_and_a_non_utf8_header_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"customer_id,name,timestamp,amount\n1,Ann,2026-01-01,3.5\n".to_vec();
    bytes.extend_from_slice(b"2,M\xfcller,2026-01-02,4.0\n"); // Latin-1 ü
    let path = write_file(dir.path(), "latin1.csv", &bytes);
    let mut c = SourceConfig::new(path);
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), col("customer_id")),
        ("timestamp".to_string(), col("timestamp")),
        ("amount".to_string(), col("amount")),
        ("buyer".to_string(), col("name")),
    ]);
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    assert_eq!(loaded.batch.num_rows(), 1);
    assert_eq!(loaded.quarantined.len(), 1);
    assert!(
        loaded.quarantined[0].reason.contains("UTF-8"),
        "{}",
        loaded.quarantined[0].reason
    );
    assert_eq!(loaded.quarantined[0].location.line, 3);

    let path = write_file(
        dir.path(),
        "binary.csv",
        b"\xff\xfe\x00c\x00u\x00s\x00t\n\x01\x02\n",
    );
    let err = load_source(EntityKind::Orders, &SourceConfig { path, ..c }).unwrap_err();
    assert!(matches!(err, LoadError::HeaderEncoding { .. }), "{err}");
    assert!(err.to_string().contains("UTF-8"));
}

#[test]
fn segment_events_from_json_lines_with_default_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let text = concat!(
        r#"{"type":"track","event":"Order Completed","userId":"u1","messageId":"m1","timestamp":"2026-01-01T10:00:00Z","properties":{"revenue":12.5}}"#,
        "\n",
        r#"{"type":"page","anonymousId":"a1","name":"Home","timestamp":"2026-01-01T10:00:00+01:00"}"#,
        "\n",
        "{not json\n",
        r#"{"type":"track","event":"x"}"#,
        "\n",
        "[1,2]\n",
    );
    let path = write_file(dir.path(), "events.jsonl", text.as_bytes());
    let loaded = load_source(EntityKind::Events, &SourceConfig::new(path)).unwrap();
    assert_eq!(loaded.rows_read, 5);
    assert_eq!(loaded.batch.num_rows(), 2);
    let reasons: Vec<&str> = loaded
        .quarantined
        .iter()
        .map(|q| q.reason.as_str())
        .collect();
    assert!(reasons[0].starts_with("invalid JSON"), "{reasons:?}");
    assert_eq!(
        loaded.quarantined[1].location.field.as_deref(),
        Some("timestamp")
    );
    assert_eq!(reasons[2], "expected a JSON object");
    let props = loaded
        .batch
        .column_by_name("properties")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(props.value(0), r#"{"revenue":12.5}"#);
    assert!(props.is_null(1));
    let users = loaded
        .batch
        .column_by_name("user_id")
        .unwrap()
        .as_string::<i32>();
    assert_eq!((users.value(0), users.is_null(1)), ("u1", true));
    // Extra fields by dotted path.
    let mut c = SourceConfig::new(dir.path().join("events.jsonl"));
    c.columns = BTreeMap::from([
        ("type".to_string(), col("type")),
        ("timestamp".to_string(), col("timestamp")),
        (
            "revenue".to_string(),
            ColumnSpec {
                ty: Some(strata_core::FieldType::Float),
                ..col("properties.revenue")
            },
        ),
    ]);
    let loaded = load_source(EntityKind::Events, &c).unwrap();
    let revenue = loaded
        .batch
        .column_by_name("revenue")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(revenue.value(0), 12.5);
}

#[test]
fn parquet_round_trip_with_mapping_and_quarantine() {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.parquet");
    let batch = RecordBatch::try_from_iter(vec![
        (
            "cust",
            Arc::new(Int64Array::from(vec![Some(1), Some(2), None])) as ArrayRef,
        ),
        (
            "day",
            Arc::new(StringArray::from(vec![
                "20260101",
                "2026-01-0X",
                "20260103",
            ])) as ArrayRef,
        ),
        (
            "value",
            Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&path, &batch);
    let mut c = SourceConfig::new(&path);
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), col("cust")),
        ("timestamp".to_string(), col_fmt("day", "%Y%m%d")),
        ("amount".to_string(), col("value")),
    ]);
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    assert_eq!(
        (
            loaded.rows_read,
            loaded.batch.num_rows(),
            loaded.quarantined.len()
        ),
        (3, 1, 2)
    );
    assert_eq!(
        loaded
            .batch
            .column_by_name("customer_id")
            .unwrap()
            .as_string::<i32>()
            .value(0),
        "1"
    );
    assert_eq!(
        loaded.quarantined[0].location.field.as_deref(),
        Some("timestamp")
    );
    assert_eq!(loaded.quarantined[1].reason, "required value is missing");
    // Not a Parquet file at all.
    let bogus = write_file(dir.path(), "bogus.parquet", b"definitely not parquet");
    let err = load_source(EntityKind::Orders, &SourceConfig { path: bogus, ..c }).unwrap_err();
    assert!(matches!(err, LoadError::Parquet { .. }), "{err}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Conservation: every data row read is either kept or quarantined, whatever the input.
    #[test]
    fn every_row_is_kept_or_quarantined(rows in proptest::collection::vec("[0-9a-z ,.\"]{0,24}", 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("customer_id,timestamp,amount\n");
        for r in &rows {
            text.push_str(r);
            text.push('\n');
        }
        let path = write_file(dir.path(), "o.csv", text.as_bytes());
        if let Ok(loaded) = load_source(EntityKind::Orders, &SourceConfig::new(path)) {
            proptest::prop_assert_eq!(loaded.rows_read, (loaded.batch.num_rows() + loaded.quarantined.len()) as u64);
        }
    }
}

#[test]
fn csv_line_numbers_survive_crlf_blank_lines_and_quoted_newlines() {
    let dir = tempfile::tempdir().unwrap();
    let text = "customer_id,timestamp,amount\r\n\
                1,2026-01-01,1.0\r\n\
                \r\n\
                2,2026-01-02,bad\r\n\
                \"3\r\nwith a newline\",2026-01-03,2.0\r\n\
                4,2026-01-04,worse\r\n";
    let path = write_file(dir.path(), "crlf.csv", text.as_bytes());
    let loaded = load_source(EntityKind::Orders, &SourceConfig::new(path)).unwrap();
    let lines: Vec<u64> = loaded.quarantined.iter().map(|q| q.location.line).collect();
    assert_eq!(lines, [4, 7], "{:?}", loaded.quarantined);
    assert_eq!(loaded.batch.num_rows(), 2);
}

#[test]
fn parquet_values_are_never_silently_truncated_or_reinterpreted() {
    use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.parquet");
    let batch = RecordBatch::try_from_iter(vec![
        (
            "cust",
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
        (
            "epoch",
            Arc::new(Int64Array::from(vec![1_767_225_600, 1_767_312_000])) as ArrayRef,
        ),
        (
            "value",
            Arc::new(Float64Array::from(vec![1.5, 2.5])) as ArrayRef,
        ),
        (
            "qty",
            Arc::new(Float64Array::from(vec![2.0, 2.7])) as ArrayRef,
        ),
    ])
    .unwrap();
    write_parquet(&path, &batch);
    let mut c = SourceConfig::new(&path);
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), col("cust")),
        ("timestamp".to_string(), col("epoch")),
        ("amount".to_string(), col("value")),
    ]);
    // An integer is never taken as microseconds: without a format, 9–11 digits are detected
    // as epoch seconds...
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    assert_eq!(loaded.batch.num_rows(), 2, "{:?}", loaded.quarantined);
    let ts = loaded
        .batch
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(ts.value(0), 1_767_225_600_000_000);
    // ...and with `epoch_seconds` it is read as seconds explicitly.
    c.columns
        .insert("timestamp".into(), col_fmt("epoch", "epoch_seconds"));
    c.columns.insert("quantity".into(), col("qty"));
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    assert_eq!(loaded.batch.num_rows(), 1, "{:?}", loaded.quarantined);
    let ts = loaded
        .batch
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        ts.value(0),
        strata_prep::parse_timestamp_micros("2026-01-01", &[]).unwrap()
    );
    // 2.7 is not truncated into the integer quantity.
    assert_eq!(
        loaded.quarantined[0].location.field.as_deref(),
        Some("quantity")
    );
    assert!(
        loaded.quarantined[0].reason.contains("2.7"),
        "{}",
        loaded.quarantined[0].reason
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"\xef\xbb\xbf".to_vec();
    bytes.extend_from_slice(br#"{"type":"track","event":"x","timestamp":"2026-01-01T00:00:00Z"}"#);
    bytes.push(b'\n');
    let path = write_file(dir.path(), "bom.jsonl", &bytes);
    let loaded = load_source(EntityKind::Events, &SourceConfig::new(path)).unwrap();
    assert_eq!(loaded.batch.num_rows(), 1, "{:?}", loaded.quarantined);

    let path = write_file(
        dir.path(),
        "bom.txt",
        b"\xef\xbb\xbf00001 19970101 1 9.99\n",
    );
    let mut c = SourceConfig::new(path);
    c.header = false;
    c.columns = BTreeMap::from([
        ("customer_id".to_string(), pos(1)),
        (
            "timestamp".to_string(),
            ColumnSpec {
                formats: vec!["%Y%m%d".into()],
                ..pos(2)
            },
        ),
        ("amount".to_string(), pos(4)),
    ]);
    let loaded = load_source(EntityKind::Orders, &c).unwrap();
    let id = loaded
        .batch
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>()
        .value(0)
        .to_string();
    assert_eq!(id, "00001");
}

#[test]
fn without_a_mapping_errors_say_the_column_name_was_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "o.csv", b"cust,when,value\n1,2026-01-01,2\n");
    let err = load_source(EntityKind::Orders, &SourceConfig::new(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the default column for field `customer_id`")
            && err.contains("[sources.orders.columns] is not given"),
        "{err}"
    );
    let mut c = SourceConfig::new(&path);
    c.header = false;
    let err = load_source(EntityKind::Orders, &c).unwrap_err().to_string();
    assert!(
        err.contains("must be mapped by position under [sources.orders.columns]"),
        "{err}"
    );
}
