//! RFM on a five-customer fixture whose every value was computed by hand.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use arrow::array::{
    ArrayRef, AsArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type};
use std::sync::Arc;
use strata_features::FeatureEngine;

fn micros(day: u32, hour: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(2026, 1, day)
        .unwrap()
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

fn orders() -> RecordBatch {
    // (customer, order id, day of January 2026, hour, amount)
    let rows = [
        ("A", "a1", 1, 0, 10.0),
        ("A", "a2", 5, 0, 30.0),
        ("B", "b1", 10, 12, 100.0),
        ("C", "c1", 2, 0, 5.0),
        ("C", "c2", 3, 0, 5.0),
        ("C", "c3", 4, 0, 5.0),
        ("D", "d1", 1, 0, 50.0),
        ("D", "d2", 12, 0, 999.0), // after as-of: ignored
        ("E", "e1", 8, 0, 20.0),   // two line items of one order
        ("E", "e1", 8, 0, 20.0),
    ];
    let customer: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)));
    let order: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)));
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| micros(r.2, r.3)))
            .with_timezone("UTC"),
    );
    let amount: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4)));
    RecordBatch::try_from_iter(vec![
        ("customer_id", customer),
        ("order_id", order),
        ("timestamp", ts),
        ("amount", amount),
    ])
    .unwrap()
}

#[test]
fn rfm_matches_hand_computed_values() {
    let engine = FeatureEngine::new(2).unwrap();
    engine.register("orders", orders()).unwrap();
    let rfm = engine.rfm(micros(11, 0)).unwrap();
    let f64s = |name: &str| -> Vec<f64> {
        rfm.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .values()
            .to_vec()
    };
    let i64s = |name: &str| -> Vec<i64> {
        rfm.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    };
    let ids: Vec<&str> = rfm
        .column_by_name("customer_id")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(ids, ["A", "B", "C", "D", "E"]);
    assert_eq!(f64s("recency_days"), [6.0, 0.5, 7.0, 10.0, 3.0]);
    assert_eq!(i64s("frequency"), [2, 1, 3, 1, 1]);
    assert_eq!(f64s("monetary"), [40.0, 100.0, 15.0, 50.0, 40.0]);
    assert_eq!(f64s("tenure_days"), [10.0, 0.5, 9.0, 10.0, 3.0]);
    assert_eq!(f64s("aov"), [20.0, 100.0, 5.0, 50.0, 40.0]);
    // Ranks with ties sharing the lowest rank; score = 1 + floor(5 (rank − 1) / n).
    assert_eq!(i64s("r_score"), [3, 5, 2, 1, 4]);
    assert_eq!(i64s("f_score"), [4, 1, 5, 1, 1]);
    assert_eq!(i64s("m_score"), [2, 5, 1, 4, 2]);
    let segments: Vec<&str> = rfm
        .column_by_name("rfm_segment")
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(
        segments,
        [
            "Need Attention",
            "New Customers",
            "At Risk",
            "At Risk",
            "Promising"
        ]
    );
}

#[test]
fn missing_orders_table_is_reported() {
    let engine = FeatureEngine::new(1).unwrap();
    let err = engine.rfm(0).unwrap_err();
    assert_eq!(err.to_string(), "table `orders` is not registered");
}
