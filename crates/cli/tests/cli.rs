//! The `strata` binary as a user runs it: commands, output, exit codes, and the report
//! rendered by a real browser.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn strata(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_the_commands_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata(&["--help"], dir.path());
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "quickstart",
        "run",
        "prep",
        "clv",
        "generate",
        "Examples:",
        "strata run --config",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

/// Chromium to render with: `STRATA_TEST_CHROMIUM` (required to exist when set, as in CI),
/// else /usr/bin/chromium if installed.
fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("STRATA_TEST_CHROMIUM") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "STRATA_TEST_CHROMIUM={} does not exist",
            path.display()
        );
        return Some(path);
    }
    let default = PathBuf::from("/usr/bin/chromium");
    default.exists().then_some(default)
}

fn headless(chromium: &Path, profile: &Path, extra: &[&str], url: &str) -> Output {
    Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap()
}

#[test]
fn quickstart_prints_a_segment_table_and_the_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let out = strata(&["quickstart"], dir.path());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for fragment in [
        "CDNOW customer segments",
        "23570 customers",
        "segment",
        "customers",
        "share",
        "highest silhouette",
        "69659 rows read",
    ] {
        assert!(
            stdout.contains(fragment),
            "{fragment} missing from:\n{stdout}"
        );
    }
    let report = dir.path().join("strata-out/report.html");
    assert!(report.exists());
    // The run can be repeated from the config it wrote.
    let again = strata(
        &[
            "run",
            "--config",
            "strata-out/strata.toml",
            "--out",
            "again",
        ],
        dir.path(),
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(
        std::fs::read(dir.path().join("again/assignments.csv")).unwrap(),
        std::fs::read(dir.path().join("strata-out/assignments.csv")).unwrap()
    );

    let Some(chromium) = chromium() else {
        eprintln!(
            "skipped: rendering the report in Chromium (no chromium; set STRATA_TEST_CHROMIUM)"
        );
        return;
    };
    let url = format!("file://{}", report.display());
    let profile = tempfile::tempdir().unwrap();
    let dom = headless(&chromium, profile.path(), &["--dump-dom"], &url);
    let dom_text = text(&dom.stdout);
    assert!(dom.status.success(), "{}", text(&dom.stderr));
    for plot in [
        "plot-sizes",
        "plot-heatmap",
        "plot-projection",
        "plot-elbow",
        "plot-silhouette",
        "plot-rfm",
    ] {
        let start = dom_text
            .find(&format!("id=\"{plot}\""))
            .unwrap_or_else(|| panic!("{plot} not in the rendered DOM"));
        let figure = &dom_text[start..];
        let end = figure.find("</figure>").unwrap();
        let figure = &figure[..end];
        assert!(figure.contains("<svg"), "{plot} has no SVG");
        assert!(figure.matches('<').count() > 20, "{plot} is nearly empty");
    }
    assert!(
        dom_text.matches("<circle").count() > 1000,
        "the projection scatter has its points"
    );
    assert!(
        dom_text.contains("id=\"quality\"") && dom_text.contains("dollar_value"),
        "the data quality table is rendered"
    );
    let png = dir.path().join("report.png");
    let shot = headless(
        &chromium,
        profile.path(),
        &[
            "--window-size=1280,2400",
            "--hide-scrollbars",
            &format!("--screenshot={}", png.display()),
        ],
        &url,
    );
    assert!(shot.status.success(), "{}", text(&shot.stderr));
    assert!(
        png.metadata().unwrap().len() > 50_000,
        "the screenshot has content"
    );
}

#[test]
fn generate_then_run_on_the_generated_world() {
    let dir = tempfile::tempdir().unwrap();
    let generated = strata(
        &[
            "generate",
            "--customers",
            "2000",
            "--seed",
            "3",
            "--out",
            "world",
        ],
        dir.path(),
    );
    assert!(generated.status.success(), "{}", text(&generated.stderr));
    assert!(text(&generated.stdout).contains("Generated 2000 customers"));
    for f in [
        "customers.csv",
        "orders.csv",
        "events.jsonl",
        "truth.csv",
        "strata.toml",
    ] {
        assert!(dir.path().join("world").join(f).exists(), "{f}");
    }
    let run = strata(&["run", "--config", "world/strata.toml"], dir.path());
    assert!(run.status.success(), "{}", text(&run.stderr));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("quarantined") && stdout.contains("events:"),
        "{stdout}"
    );
    assert!(dir.path().join("world/strata-out/report.html").exists());
    // `strata prep` alone: the cleaned tables, the accounting, the dedup figures.
    let prep = strata(
        &["prep", "--config", "world/strata.toml", "--out", "prepared"],
        dir.path(),
    );
    assert!(prep.status.success(), "{}", text(&prep.stderr));
    let stdout = text(&prep.stdout);
    assert!(
        stdout.contains("merged")
            && stdout.contains("customers: ")
            && stdout.contains("pairs compared"),
        "{stdout}"
    );
    for f in [
        "customers.parquet",
        "orders.parquet",
        "events.parquet",
        "quarantine.csv",
        "quality.json",
        "merges.jsonl",
    ] {
        assert!(dir.path().join("prepared").join(f).exists(), "{f}");
    }
    let clv = strata(
        &["clv", "--config", "world/strata.toml", "--out", "clv"],
        dir.path(),
    );
    assert!(clv.status.success(), "{}", text(&clv.stderr));
    let stdout = text(&clv.stdout);
    assert!(
        stdout.contains("r = ") && stdout.contains("Gamma-Gamma"),
        "{stdout}"
    );
    assert!(dir.path().join("clv/clv.csv").exists());
    let zero = strata(&["generate", "--customers", "0", "--out", "w0"], dir.path());
    assert!(!zero.status.success());
    assert!(text(&zero.stderr).contains("--customers must be at least 1"));
    let days = strata(
        &[
            "generate",
            "--customers",
            "5",
            "--event-days",
            "0",
            "--out",
            "w0",
        ],
        dir.path(),
    );
    assert!(!days.status.success());
    assert!(text(&days.stderr).contains("--event-days must be between 1 and 366"));
}

#[test]
fn user_errors_are_one_clear_line_and_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--config", "missing.toml"],
            "cannot read config missing.toml",
        ),
        (vec!["run", "--config", "bad.toml"], "unknown field `kmax`"),
        (
            vec!["run", "--config", "wrongcol.toml"],
            "column `dolar_value` (mapped to field `amount`",
        ),
        (vec!["run", "--config", "empty.toml"], "is empty"),
    ];
    std::fs::write(
        dir.path().join("bad.toml"),
        "[sources.orders]\npath = \"o.txt\"\n[segmentation]\nkmax = 3\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("o.txt"),
        "customer_id date dollar_value\n1 19970101 3.5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("wrongcol.toml"),
        "[sources.orders]\npath = \"o.txt\"\n[sources.orders.columns]\ncustomer_id = \"customer_id\"\ntimestamp = { column = \"date\", format = \"%Y%m%d\" }\namount = \"dolar_value\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.txt"), "").unwrap();
    std::fs::write(
        dir.path().join("empty.toml"),
        "[sources.orders]\npath = \"empty.txt\"\n",
    )
    .unwrap();
    for (args, expected) in cases {
        let out = strata(&args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
