//! Whole runs through the engine API on generated and bundled data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use std::collections::HashMap;
use std::path::PathBuf;
use strata_engine::{Config, EngineError, NoProgress, SegmentationModel};

mod common;
use common::{config_error, generated_config, read_csv};

#[test]
fn recovers_the_latent_segments_of_a_generated_world() {
    let dir = tempfile::tempdir().unwrap();
    let config = generated_config(dir.path(), 20_000, 1);
    let out = dir.path().join("out");
    let summary = strata_engine::run(&config, &out, &NoProgress).unwrap();
    let true_k = strata_testkit::latent_segments().len();
    assert_eq!(summary.chosen_k, true_k, "{}", summary.reason);

    let truth: HashMap<String, String> = read_csv(&dir.path().join("truth.csv"))
        .into_iter()
        .map(|r| (r["customer_id"].clone(), r["segment"].clone()))
        .collect();
    let assigned = read_csv(&out.join("assignments.csv"));
    let (found, expected): (Vec<String>, Vec<String>) = assigned
        .iter()
        .map(|r| (r["segment_id"].clone(), truth[&r["customer_id"]].clone()))
        .unzip();
    let ari = strata_ml::adjusted_rand_index(&found, &expected);
    assert!(ari >= 0.8, "ARI {ari}");

    // Every segment got a distinct, readable name, and the shares add up.
    let mut names: Vec<&str> = summary.segments.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), true_k);
    let share: f64 = summary.segments.iter().map(|s| s.share).sum();
    assert!((share - 1.0).abs() < 1e-9);
    // Dirty rows of the generated world were quarantined or merged, not lost.
    for s in &summary.sources {
        assert_eq!(
            s.rows_read,
            s.rows_kept + s.quarantined + s.merged,
            "{}",
            s.table
        );
    }
    assert!(
        summary
            .sources
            .iter()
            .any(|s| s.table == "customers" && s.merged > 300)
    );
    assert!(summary.quarantined > 0);
    assert_eq!(
        read_csv(&out.join("quarantine.csv")).len(),
        summary.quarantined
    );

    // The quality profile sees the generator's injected defects.
    let quality: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("quality.json")).unwrap()).unwrap();
    let field = |table: &str, field: &str| -> serde_json::Value {
        let source = quality
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["table"] == table)
            .unwrap();
        source["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field"] == field)
            .unwrap()
            .clone()
    };
    let completeness = field("customers", "email")["completeness"]
        .as_f64()
        .unwrap();
    assert!(
        (0.95..1.0).contains(&completeness),
        "missing emails: {completeness}"
    );
    let age = field("customers", "age");
    assert!(
        age["validity"].as_f64().unwrap() < 1.0,
        "`unknown` ages are invalid"
    );
    assert_eq!(field("customers", "customer_id")["uniqueness"], 1.0);
    let amount = field("orders", "amount");
    assert!(
        amount["invalid"].as_u64().unwrap() > 0,
        "`N/A` amounts are counted"
    );
}

#[test]
fn same_seed_same_segments_and_the_saved_model_reassigns_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = generated_config(dir.path(), 3_000, 9);
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    strata_engine::run(&config, &a, &NoProgress).unwrap();
    // The second run uses one worker thread: results must not depend on the thread count.
    let mut one_thread = config;
    one_thread.run.threads = 1;
    strata_engine::run(&one_thread, &b, &NoProgress).unwrap();
    for file in [
        "assignments.csv",
        "segments.json",
        "model.json",
        "quarantine.csv",
    ] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file}"
        );
    }
    let model = SegmentationModel::load(&a.join("model.json")).unwrap();
    let rows = read_csv(&a.join("assignments.csv"));
    let ids: Vec<String> = rows.iter().map(|r| r["customer_id"].clone()).collect();
    let data: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            model
                .features
                .iter()
                .map(|f| r[f].parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let raw = strata_core::FeatureMatrix::new(ids, model.features.clone(), data).unwrap();
    let reassigned = model.assign(&raw).unwrap();
    let saved: Vec<u32> = rows
        .iter()
        .map(|r| r["segment_id"].parse().unwrap())
        .collect();
    assert_eq!(reassigned, saved);

    // A model whose parts disagree (hand-edited, truncated) is refused, not used.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("model.json")).unwrap()).unwrap();
    json["centroids"].as_array_mut().unwrap().pop();
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, json.to_string()).unwrap();
    let err = SegmentationModel::load(&broken).unwrap_err().to_string();
    assert!(err.contains("parts disagree"), "{err}");
}

#[test]
fn a_model_from_a_newer_version_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    std::fs::write(&path, r#"{"format_version": 99, "k": 2}"#).unwrap();
    let err = SegmentationModel::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("newer Strata") && err.contains("format 99"),
        "{err}"
    );
    std::fs::write(&path, "not json").unwrap();
    assert!(
        SegmentationModel::load(&path)
            .unwrap_err()
            .to_string()
            .contains("not a Strata segmentation model")
    );
}

const ORDERS: &str = "[sources.orders]\npath = \"orders.csv\"\n";

#[test]
fn bad_configs_are_rejected_before_any_data_is_read() {
    let e = config_error(&format!(
        "{ORDERS}[features]\nsegment_on = [\"recency_days\", \"wealth\"]\n"
    ));
    assert!(
        e.contains("unknown feature `wealth`") && e.contains("recency_days, frequency"),
        "{e}"
    );
    let e = config_error(&format!("{ORDERS}[segmentation]\nk_min = 6\nk_max = 3\n"));
    assert!(e.contains("k_min = 6, k_max = 3"), "{e}");
    let e = config_error(&format!("{ORDERS}[run]\nas_of = \"last tuesday\"\n"));
    assert!(e.contains("as_of"), "{e}");
    // Syntax and unknown keys: the message names the line.
    let e = config_error(&format!("{ORDERS}[segmentation]\nk_max = eight\n"));
    assert!(e.contains("strata.toml") && e.contains("line 4"), "{e}");
    let e = config_error(&format!("{ORDERS}[segmentation]\nkmax = 8\n"));
    assert!(
        e.contains("unknown field `kmax`") && e.contains("line 4"),
        "{e}"
    );
    let e = config_error("[run]\nseed = 1\n");
    assert!(e.contains("missing field `sources`"), "{e}");
}

#[test]
fn a_source_with_no_usable_rows_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orders.csv"),
        "customer_id,timestamp,amount\n1,2026-01-01,oops\n",
    )
    .unwrap();
    let path = dir.path().join("strata.toml");
    std::fs::write(&path, ORDERS).unwrap();
    let config = Config::load(&path).unwrap();
    let err = strata_engine::run(&config, &dir.path().join("out"), &NoProgress).unwrap_err();
    assert!(matches!(err, EngineError::NoRows { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("no usable rows")
            && msg.contains("orders.csv:2 field `amount`")
            && msg.contains("oops"),
        "{msg}"
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing is written for a failed run"
    );

    std::fs::write(
        dir.path().join("orders.csv"),
        "customer_id,timestamp,amount\n",
    )
    .unwrap();
    let err = strata_engine::run(&config, &dir.path().join("out"), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("no usable rows (0 quarantined)"),
        "{err}"
    );

    let missing = Config::load(&dir.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.toml"), "{missing}");
}

#[test]
fn quickstart_config_runs_on_the_bundled_cdnow_data() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cdnow");
    let text = strata_engine::quickstart_config("CDNOW_master.txt");
    let config = Config::parse(&text, &data.join("strata.toml"), &data).unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = strata_engine::run(&config, out.path(), &NoProgress).unwrap();
    assert_eq!(summary.customers, 23_570);
    assert_eq!(summary.as_of, "1998-07-01");
    assert_eq!(summary.sources[0].rows_read, 69_659);
    assert!((2..=8).contains(&summary.chosen_k));
    for file in [
        "assignments.parquet",
        "assignments.csv",
        "segments.json",
        "model.json",
        "quarantine.csv",
        "quality.json",
        "report.html",
    ] {
        assert!(
            out.path().join(file).metadata().unwrap().len() > 0,
            "{file}"
        );
    }
    let segments: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("segments.json")).unwrap()).unwrap();
    assert_eq!(segments["run"]["customers"], 23_570);
    assert_eq!(
        segments["segments"].as_array().unwrap().len(),
        summary.chosen_k
    );
    assert!(
        segments["selection"]["candidates"]
            .as_array()
            .unwrap()
            .len()
            == 7
    );
    // The quality section: row accounting and per-field measures.
    let report = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for needle in [
        "<td>orders</td><td>amount</td>",
        "<td>orders</td><td>timestamp</td>",
    ] {
        assert!(report.contains(needle), "report lacks {needle}");
    }
    let quality: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("quality.json")).unwrap()).unwrap();
    assert_eq!(quality[0]["rows_read"], 69_659);
    assert_eq!(quality[0]["rows_merged"], 0);
    assert!(quality[0]["columns"][0]["consistency"].as_f64().is_some());
}

#[test]
fn clv_on_cdnow_master_matches_the_reference_fit() {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/cdnow");
    let mut text = strata_engine::quickstart_config("CDNOW_master.txt");
    text.push_str("\n[clv]\ncalibration_end = \"1997-09-30\"\nholdout_end = \"1998-06-30\"\n");
    let config = Config::parse(&text, &data.join("strata.toml"), &data).unwrap();
    let out = tempfile::tempdir().unwrap();
    let s = strata_engine::clv(&config, out.path(), &NoProgress).unwrap();
    assert_eq!(s.customers, 23_570);
    // lifetimes 0.11.3 on the same summary (bench/clv_vs_lifetimes.py).
    assert!((s.purchases.r - 0.251624).abs() < 1e-5, "{}", s.purchases.r);
    assert!((s.purchases.log_likelihood - -95368.4439).abs() < 1e-3);
    let (expected, actual) = s.holdout.unwrap();
    assert!(expected > 0.0 && actual > 0.0);
    // Calibration vs holdout by frequency 0..=7+: every customer in one row, and the model's
    // mean holdout purchases track the observed ones where there are many customers.
    let rows = &s.holdout_by_frequency;
    assert_eq!(rows.iter().map(|r| r.customers).sum::<usize>(), 23_570);
    assert_eq!(rows.first().unwrap().frequency, 0);
    assert_eq!(rows.last().unwrap().frequency, 7);
    for r in rows.iter().filter(|r| r.customers >= 500) {
        assert!(
            (r.expected - r.observed).abs() < 0.35 * r.observed.max(0.1),
            "{r:?}"
        );
    }
    assert!(rows.windows(2).all(|w| w[1].expected > w[0].expected));
    let svg = std::fs::read_to_string(out.path().join("clv_holdout.svg")).unwrap();
    assert!(svg.contains("observed") && svg.contains("model"));
    let csv = std::fs::read_to_string(out.path().join("clv.csv")).unwrap();
    assert_eq!(csv.lines().count(), 23_571);
    assert!(csv.starts_with(
        "customer_id,frequency,recency,T,monetary,p_alive,expected_purchases,expected_spend,clv\n"
    ));
    let bad = format!("{text}\n").replace(
        "calibration_end = \"1997-09-30\"",
        "calibration_end = \"soon\"",
    );
    let e = Config::parse(&bad, &data.join("strata.toml"), &data)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[clv] calibration_end"), "{e}");
}

#[test]
fn bad_propensity_configs_are_rejected_before_any_data_is_read() {
    let customers = "[sources.customers]\npath = \"c.csv\"\n";
    let orders = "[sources.orders]\npath = \"o.csv\"\n";
    for (text, expected) in [
        (
            format!("{customers}[propensity]\nlabel = \"column\"\n"),
            "needs label_column",
        ),
        (
            format!("{orders}[propensity]\nlabel = \"column\"\nlabel_column = \"x\"\n"),
            "add [sources.customers]",
        ),
        (
            format!("{orders}[propensity]\nlabel = \"purchase_within\"\nhorizon_days = 0\n"),
            "needs horizon_days ≥ 1",
        ),
        (
            format!("{customers}[propensity]\nlabel = \"no_order_within\"\nhorizon_days = 30\n"),
            "needs [sources.orders]",
        ),
        (
            format!("{orders}[propensity]\nlabel = \"churned\"\n"),
            "unknown variant `churned`",
        ),
        (
            format!(
                "{orders}[propensity]\nlabel = \"purchase_within\"\nhorizon_days = 30\ntest_share = 0.7\nvalidation_share = 0.3\n"
            ),
            "sum below 0.9",
        ),
        (
            format!(
                "{orders}[propensity]\nlabel = \"purchase_within\"\nhorizon_days = 30\nfolds = 1\n"
            ),
            "folds must be 0",
        ),
        (
            format!(
                "{orders}[propensity]\nlabel = \"purchase_within\"\nhorizon_days = 30\n[propensity.gbm]\nlearning_rate = 0.0\n"
            ),
            "learning_rate",
        ),
        (
            format!(
                "{orders}[propensity]\nlabel = \"purchase_within\"\nhorizon_days = 30\ncutoff = \"last week\"\n"
            ),
            "cutoff = \"last week\" is not a date",
        ),
        ("[run]\nseed = 1\n[sources]\n".to_string(), "names no table"),
    ] {
        let e = config_error(&text);
        assert!(e.contains(expected), "{expected}: {e}");
    }
}
