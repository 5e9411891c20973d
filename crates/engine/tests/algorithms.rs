//! `[segmentation] algorithm` end to end: every algorithm through `strata run`, its saved
//! model through `strata assign`, validation (subsample and time-split stability),
//! sub-segments, and the errors for bad settings and data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use std::path::Path;
use strata_engine::{Config, EngineError, NoProgress, SegmentationModel};

mod common;
use common::{config_error, generated_text, read_csv};

/// A generated world's config with `[segmentation]` settings replaced by `settings`.
fn config_with(dir: &Path, customers: usize, settings: &str) -> Config {
    let keys: Vec<&str> = settings
        .lines()
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .collect();
    let text: String = generated_text(dir, customers, 3)
        .lines()
        .filter(|l| {
            let key = l.split('=').next().unwrap_or_default().trim();
            key == "algorithm" || !keys.contains(&key)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replace("algorithm = \"kmeans\"", settings);
    std::fs::write(dir.join("strata.toml"), &text).unwrap();
    Config::load(&dir.join("strata.toml")).unwrap()
}

/// Assigns the run's own assignments.csv with its model.json and checks every customer
/// lands in the segment the run gave it.
fn reassign_matches(out: &Path) -> strata_engine::AssignSummary {
    let again = out.join("again.csv");
    let summary = strata_engine::assign(
        &out.join("model.json"),
        &out.join("assignments.csv"),
        &again,
    )
    .unwrap();
    let saved = read_csv(&out.join("assignments.csv"));
    let assigned = read_csv(&again);
    assert_eq!(saved.len(), assigned.len());
    for (s, a) in saved.iter().zip(&assigned) {
        assert_eq!(s["customer_id"], a["customer_id"]);
        assert_eq!(s["segment_id"], a["segment_id"], "{}", s["customer_id"]);
        assert_eq!(s["segment"], a["segment"]);
    }
    summary
}

#[test]
fn every_algorithm_runs_and_its_saved_model_reassigns_every_customer() {
    let cases = [
        (
            "algorithm = \"gmm\"\npca_variance = 0.95",
            &["plot-bic", "plot-memberships"][..],
        ),
        (
            "algorithm = \"gmm\"\ncovariance = \"diagonal\"",
            &["plot-bic"][..],
        ),
        (
            "algorithm = \"fuzzy\"\nfuzzifier = 1.6",
            &["plot-memberships"][..],
        ),
        ("algorithm = \"ward\"", &["plot-dendrogram"][..]),
        ("algorithm = \"average\"", &["plot-dendrogram"][..]),
        (
            "algorithm = \"single\"\nstability_runs = 0",
            &["plot-dendrogram"][..],
        ),
        ("algorithm = \"dbscan\"", &["plot-k-distance"][..]),
        ("algorithm = \"kmeans\"\nk = 3", &[][..]),
    ];
    for (settings, plots) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = config_with(dir.path(), 1_500, settings);
        let out = dir.path().join("out");
        let summary = strata_engine::run(&config, &out, &NoProgress)
            .unwrap_or_else(|e| panic!("{settings}: {e}"));
        // The same seed on one worker thread gives the same segments and model, byte for byte.
        let mut one_thread = config.clone();
        one_thread.run.threads = 1;
        let out1 = dir.path().join("one-thread");
        strata_engine::run(&one_thread, &out1, &NoProgress).unwrap();
        for file in ["assignments.csv", "model.json", "segments.json"] {
            assert!(
                std::fs::read(out.join(file)).unwrap() == std::fs::read(out1.join(file)).unwrap(),
                "{settings}: {file} depends on the thread count"
            );
        }
        let algorithm = config.segmentation.algorithm.name();
        assert_eq!(summary.algorithm, algorithm);
        assert_eq!(
            summary.segments.iter().map(|s| s.size).sum::<usize>(),
            summary.customers,
            "{settings}"
        );
        assert_eq!(summary.segments.len(), summary.chosen_k);
        // Segments are numbered largest first (DBSCAN's noise, if any, comes last).
        let clustered: Vec<usize> = summary
            .segments
            .iter()
            .filter(|s| !s.name.starts_with("Noise"))
            .map(|s| s.size)
            .collect();
        assert!(
            clustered.windows(2).all(|w| w[0] >= w[1]),
            "{settings}: {clustered:?}"
        );

        let model = SegmentationModel::load(&out.join("model.json")).unwrap();
        assert_eq!(model.algorithm, algorithm);
        assert_eq!(
            model.projection.is_some(),
            settings.contains("pca_variance")
        );
        let assigned = reassign_matches(&out);
        assert_eq!(assigned.assigned, summary.customers);

        let report = std::fs::read_to_string(out.join("report.html")).unwrap();
        for id in plots {
            assert!(
                report.contains(&format!("id=\"{id}\"><svg")),
                "{settings}: {id}"
            );
        }
        let stability = !settings.contains("stability_runs = 0");
        assert_eq!(
            report.contains("id=\"plot-stability\"><svg"),
            stability,
            "{settings}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("segments.json")).unwrap()).unwrap();
        assert_eq!(json["model"]["algorithm"], algorithm);
        if stability {
            let s = &json["validation"]["stability"];
            let ari = s["ari_mean"].as_f64().unwrap();
            assert!((-1.0..=1.0).contains(&ari), "{settings}: {ari}");
            assert_eq!(
                s["jaccard"].as_array().unwrap().len(),
                summary.chosen_k,
                "{settings}"
            );
        }

        let soft = matches!(algorithm, "gmm" | "fuzzy");
        assert_eq!(out.join("memberships.csv").exists(), soft, "{settings}");
        if soft {
            let rows = read_csv(&out.join("memberships.csv"));
            assert_eq!(rows.len(), summary.customers);
            for r in &rows {
                let total: f64 = summary
                    .segments
                    .iter()
                    .map(|s| r[&s.name].parse::<f64>().unwrap())
                    .sum();
                assert!((total - 1.0).abs() < 1e-4, "{settings}: {total}");
            }
            assert!(summary.segments.iter().all(|s| s.membership.is_some()));
            let soft_total: f64 = summary
                .segments
                .iter()
                .map(|s| s.membership.as_ref().unwrap().soft_share)
                .sum();
            assert!((soft_total - 1.0).abs() < 1e-9, "{soft_total}");
        }
        if algorithm == "dbscan" {
            let eps = json["model"]["details"]["eps"].as_f64().unwrap();
            assert!(eps > 0.0);
            assert!(summary.reason.contains("k-distance"), "{}", summary.reason);
        }
        if algorithm == "gmm" {
            assert!(summary.reason.contains("lowest BIC"), "{}", summary.reason);
        }
    }
}

#[test]
fn k_prototypes_clusters_numeric_and_categorical_features_and_assigns_both() {
    let dir = tempfile::tempdir().unwrap();
    let text = generated_text(dir.path(), 1_500, 5)
        .replace(
            "[features]\n",
            "[features]\ncategorical = [\"country\", \"gender\"]\n",
        )
        .replace(
            "algorithm = \"kmeans\"",
            "algorithm = \"kprototypes\"\nk_max = 6",
        );
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("k_max = 8"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("strata.toml"), &text).unwrap();
    let config = Config::load(&dir.path().join("strata.toml")).unwrap();
    let out = dir.path().join("out");
    let summary = strata_engine::run(&config, &out, &NoProgress).unwrap();
    assert_eq!(summary.algorithm, "kprototypes");
    assert!(
        summary.reason.contains("knee of the cost curve") || summary.reason.contains("silhouette"),
        "{}",
        summary.reason
    );
    // Every segment names its most common country and gender.
    for s in &summary.segments {
        assert!(
            s.distinguishing.iter().any(|d| d.starts_with("country: ")),
            "{s:?}"
        );
        assert!(
            s.distinguishing.iter().any(|d| d.starts_with("gender: ")),
            "{s:?}"
        );
    }
    let model = SegmentationModel::load(&out.join("model.json")).unwrap();
    assert_eq!(model.assigner.categorical(), ["country", "gender"]);
    // assignments.csv carries the categorical columns, so the model reassigns from it.
    let rows = read_csv(&out.join("assignments.csv"));
    assert!(rows[0].contains_key("country") && rows[0].contains_key("gender"));
    reassign_matches(&out);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("segments.json")).unwrap()).unwrap();
    assert_eq!(
        json["model"]["details"]["modes"].as_array().unwrap().len(),
        summary.chosen_k
    );

    // A table without the categorical column is refused with its name.
    let input = dir.path().join("numeric_only.csv");
    let header = format!("customer_id,{}", model.features.join(","));
    std::fs::write(
        &input,
        format!(
            "{header}\nx,{}\n",
            vec!["1"; model.features.len()].join(",")
        ),
    )
    .unwrap();
    let err = strata_engine::assign(&out.join("model.json"), &input, &dir.path().join("o.csv"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `country` column"), "{err}");
    // An unseen country still gets a segment.
    std::fs::write(
        &input,
        format!(
            "{header},country,gender\nx,{},Atlantis,\n",
            vec!["1"; model.features.len()].join(",")
        ),
    )
    .unwrap();
    let s =
        strata_engine::assign(&out.join("model.json"), &input, &dir.path().join("o.csv")).unwrap();
    assert_eq!((s.assigned, s.quarantined), (1, 0));
}

#[test]
fn time_split_sub_segments_and_gap_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        2_000,
        "algorithm = \"kmeans\"\ntime_split_days = 120\nsplit = \"0\"\nsplit_k_max = 3\ngap_references = 3\nstability_runs = 3",
    );
    let out = dir.path().join("out");
    let summary = strata_engine::run(&config, &out, &NoProgress).unwrap();
    assert!(
        summary.reason.contains("the gap statistic"),
        "{}",
        summary.reason
    );
    assert!(
        summary.reason.contains("criteria point at"),
        "{}",
        summary.reason
    );
    assert!(summary.candidates.iter().all(|c| c.gap.is_some()));

    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("segments.json")).unwrap()).unwrap();
    let t = &json["validation"]["time_split"];
    assert!(t["note"].is_null(), "{t}");
    let ari = t["ari"].as_f64().unwrap();
    assert!((-1.0..=1.0).contains(&ari));
    let moved = t["moved_share"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&moved));
    assert!(t["common_customers"].as_u64().unwrap() > 0);
    assert!(t["earlier_customers"].as_u64().unwrap() < summary.customers as u64);

    let sub = &json["sub_segments"];
    assert_eq!(sub["parent"], 0);
    let profiles = sub["profiles"].as_array().unwrap();
    assert!((2..=3).contains(&profiles.len()));
    let rows = read_csv(&out.join("sub_segments.csv"));
    assert_eq!(rows.len(), summary.segments[0].size);
    assert!(rows.iter().all(|r| r["segment_id"] == "0"));
    let sizes: u64 = profiles.iter().map(|p| p["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes as usize, rows.len());

    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("<section id=\"sub-segments\">"));
    assert!(report.contains("<p id=\"time-split\">Refitted on features as of"));

    // A split naming no segment is a clear error that lists the segments.
    let bad = config_with(dir.path(), 2_000, "split = \"Nobody\"");
    let err = strata_engine::run(&bad, &dir.path().join("bad"), &NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("names no segment") && err.contains("0 ("),
        "{err}"
    );
}

#[test]
fn assign_quarantines_bad_rows_and_reads_older_models() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        dir.path(),
        800,
        "algorithm = \"kmeans\"\nstability_runs = 0",
    );
    let out = dir.path().join("out");
    strata_engine::run(&config, &out, &NoProgress).unwrap();
    let model_path = out.join("model.json");
    let model = SegmentationModel::load(&model_path).unwrap();

    // Three good rows, a non-number, a missing id and a missing value; the first row's
    // note spans two lines, so every later row starts a line further down.
    let header = format!("customer_id,{},note", model.features.join(","));
    let good = |id: &str| format!("{id},{},", vec!["3"; model.features.len()].join(","));
    let mut bad_value = vec!["3"; model.features.len()];
    bad_value[1] = "lots";
    let mut missing = vec!["3"; model.features.len()];
    missing[0] = "";
    let text = [
        header,
        format!("{}\"two\nlines\"", good("a")),
        format!("b,{},", bad_value.join(",")),
        good(""),
        format!("c,{},", missing.join(",")),
        good("d"),
        good("e"),
    ]
    .join("\n");
    let input = dir.path().join("new.csv");
    std::fs::write(&input, text).unwrap();
    let result = dir.path().join("new.segments.csv");
    let s = strata_engine::assign(&model_path, &input, &result).unwrap();
    assert_eq!((s.assigned, s.quarantined), (3, 3));
    let rows = read_csv(&result);
    assert_eq!(
        rows.iter()
            .map(|r| r["customer_id"].as_str())
            .collect::<Vec<_>>(),
        ["a", "d", "e"]
    );
    let q = read_csv(&dir.path().join("new.segments.quarantine.csv"));
    let where_: Vec<(&str, &str)> = q
        .iter()
        .map(|r| (r["line"].as_str(), r["field"].as_str()))
        .collect();
    assert_eq!(
        where_,
        [
            ("4", model.features[1].as_str()),
            ("5", "customer_id"),
            ("6", model.features[0].as_str())
        ]
    );
    assert!(q[0]["reason"].contains("`lots` is not a finite number"));

    // A table without the model's features is refused with what is missing.
    std::fs::write(&input, "customer_id,recency_days\nx,3\n").unwrap();
    let err = strata_engine::assign(&model_path, &input, &result)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `frequency` column"), "{err}");

    // A format-1 model (k-means only, before the other algorithms) still assigns the same.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&model_path).unwrap()).unwrap();
    let obj = json.as_object_mut().unwrap();
    for field in ["assigner", "segment_of_cluster", "projection"] {
        obj.remove(field);
    }
    obj.insert("format_version".into(), 1.into());
    let old = dir.path().join("old.json");
    std::fs::write(&old, json.to_string()).unwrap();
    let again = dir.path().join("old.csv");
    strata_engine::assign(&old, &out.join("assignments.csv"), &again).unwrap();
    let a = read_csv(&again);
    let b = read_csv(&out.join("assignments.csv"));
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x["segment_id"] == y["segment_id"])
    );
}

#[test]
fn constant_features_are_left_out_and_identical_customers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let orders = "[sources.orders]\npath = \"orders.csv\"\n[sources.orders.columns]\ncustomer_id = \"customer_id\"\ntimestamp = \"timestamp\"\namount = \"amount\"\n";
    // Everyone ordered once: frequency is 1 for all and cannot separate anyone.
    let mut text = String::from("customer_id,timestamp,amount\n");
    for i in 0..60 {
        text.push_str(&format!(
            "c{i},2026-01-{:02},{}\n",
            i % 28 + 1,
            10 + i * 7 % 90
        ));
    }
    std::fs::write(dir.path().join("orders.csv"), text).unwrap();
    let path = dir.path().join("strata.toml");
    std::fs::write(&path, format!("{orders}[segmentation]\nk_max = 4\n")).unwrap();
    let config = Config::load(&path).unwrap();
    let summary = strata_engine::run(&config, &dir.path().join("out"), &NoProgress).unwrap();
    assert!(
        summary
            .reason
            .contains("constant features left out: frequency"),
        "{}",
        summary.reason
    );
    let model = SegmentationModel::load(&dir.path().join("out/model.json")).unwrap();
    assert!(!model.features.contains(&"frequency".to_string()));

    // Identical customers: nothing to segment, said plainly.
    let mut text = String::from("customer_id,timestamp,amount\n");
    for i in 0..12 {
        text.push_str(&format!("c{i},2026-01-01,10\n"));
    }
    std::fs::write(dir.path().join("orders.csv"), text).unwrap();
    let config = Config::load(&path).unwrap();
    let err = strata_engine::run(&config, &dir.path().join("out2"), &NoProgress).unwrap_err();
    assert!(matches!(err, EngineError::NothingToSegment { .. }), "{err}");
    assert!(err.is_user_error());
    assert!(
        err.to_string().contains("same recency_days, frequency"),
        "{err}"
    );
}

#[test]
fn bad_segmentation_settings_are_refused_before_reading_data() {
    let base = "[sources.orders]\npath = \"o.csv\"\n[sources.orders.columns]\ncustomer_id = \"c\"\ntimestamp = \"t\"\namount = \"a\"\n[segmentation]\n";
    for (setting, expected) in [
        ("algorithm = \"kmedoids\"", "unknown variant `kmedoids`"),
        ("k = 0", "k = 0"),
        ("algorithm = \"dbscan\"\neps = 0.0", "eps = 0"),
        ("algorithm = \"dbscan\"\nmin_samples = 0", "min_samples"),
        ("algorithm = \"dbscan\"\nk = 3", "does not apply to DBSCAN"),
        ("eps = 0.5", "eps and min_samples are DBSCAN settings"),
        ("algorithm = \"fuzzy\"\nfuzzifier = 1.0", "fuzzifier = 1"),
        ("pca_variance = 1.5", "pca_variance = 1.5"),
        ("covariance = \"spherical\"", "unknown variant `spherical`"),
        ("stability_sample = 1.0", "stability_sample"),
        ("gap_references = 1", "gap_references"),
        ("time_split_days = 0", "time_split_days"),
        (
            "algorithm = \"kprototypes\"",
            "needs [features] categorical",
        ),
        ("split_k_max = 1", "split_k_max"),
    ] {
        let err = config_error(&format!("{base}{setting}\n"));
        assert!(err.contains(expected), "{setting}: {err}");
    }
    let err = config_error(&base.replace(
        "[segmentation]\n",
        "[features]\ncategorical = [\"country\"]\n[segmentation]\n",
    ));
    assert!(err.contains("only by algorithm = \"kprototypes\""), "{err}");
    let err = config_error(&base.replace(
        "[segmentation]\n",
        "[features]\ncategorical = [\"country\"]\n[segmentation]\nalgorithm = \"kprototypes\"\n",
    ));
    assert!(err.contains("add [sources.customers]"), "{err}");
}
