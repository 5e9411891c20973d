//! `strata`: customer segmentation from the command line.
#![allow(clippy::print_stdout, reason = "a CLI prints its results")]

mod serve;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;
use strata_engine::{Config, Progress, RunSummary};

/// The bundled CDNOW transactions (see data/cdnow/PROVENANCE.md).
const CDNOW_MASTER: &[u8] = include_bytes!("../../../data/cdnow/CDNOW_master.txt");

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Customer segmentation and personalization engine",
    long_about = "Strata cleans customer data, engineers features (RFM, tenure, order value), clusters \
customers into validated, named segments, and writes a report you can open in a browser.\n\n\
Start with `strata quickstart`: it segments the bundled CDNOW customers and writes ./strata-out.",
    after_help = "Examples:\n  strata quickstart\n  strata generate --customers 100000 --seed 7 --out world\n  strata run --config world/strata.toml"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment the bundled CDNOW customers with default settings (writes ./strata-out).
    Quickstart {
        /// Output directory.
        #[arg(long, default_value = "strata-out")]
        out: PathBuf,
    },
    /// Run the pipeline described by a strata.toml.
    Run {
        /// The pipeline config.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (default: `[run] output` in the config, relative to the config).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Only prepare the data: load the sources, apply the `[prep]` rules (validation,
    /// normalization, deduplication, imputation, pseudonymization) and write the cleaned
    /// tables as Parquet with quarantine.csv, quality.json and merges.jsonl.
    Prep {
        /// The pipeline config.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (default: `prep` inside `[run] output`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fit customer lifetime value models on the orders source (BG/NBD or modified BG/NBD
    /// for purchases, Gamma-Gamma for spend; settings under `[clv]`) and write clv.csv
    /// (per customer: P(alive), expected purchases, expected spend, CLV) and clv.json.
    Clv {
        /// The pipeline config.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (default: `[run] output` in the config).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Train a propensity / churn model (`[propensity]`: a label column, or "purchase within
    /// N days" / "no order within N days" built from the orders): gradient-boosted trees and a
    /// logistic baseline, evaluated on a held-out test split and by k-fold cross-validation.
    /// Writes propensity.csv (per customer: probability, top SHAP reasons), shap.csv,
    /// propensity.json and propensity_calibration.svg.
    Propensity {
        /// The pipeline config.
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (default: `[run] output` in the config).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Assign customers to the segments of a saved model (model.json of `strata run`). The
    /// input is CSV or Parquet with customer_id and the model's feature columns (the run's
    /// assignments.csv has them). Writes customer_id, segment_id, segment (and memberships for
    /// mixtures and fuzzy models); unreadable rows go to `<out stem>.quarantine.csv`.
    Assign {
        /// The saved model.
        #[arg(long, short)]
        model: PathBuf,
        /// Customers' features (.csv or .parquet).
        #[arg(long, short)]
        input: PathBuf,
        /// Output CSV (default: <input stem>.segments.csv beside the input).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the live service on a data directory: Segment-compatible event ingestion under
    /// /v1 (point a Segment or RudderStack SDK's host here), the admin API under /api,
    /// /openapi.json, /metrics, /health and /ready. On first start it creates a write key
    /// and an admin key (saved in DATA/admin.key) unless given.
    Serve {
        /// Data directory (created if missing): the store strata.redb lives here.
        #[arg(long, default_value = "strata-data")]
        data: PathBuf,
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// A write key to accept (added to the store if new); repeatable.
        #[arg(long = "write-key")]
        write_keys: Vec<String>,
        /// An admin key to accept (added to the store if new); default: $STRATA_ADMIN_KEY.
        #[arg(long)]
        admin_key: Option<String>,
        /// Async worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// A clustering model saved by `strata run` (model.json): every profile with an order
        /// is assigned to one of its segments live, and rules can use them.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Generate a realistic e-commerce world with known latent segments.
    Generate {
        /// Number of customers.
        #[arg(long, default_value_t = 10_000)]
        customers: usize,
        /// Random seed: the same seed always gives the same files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output directory (customers.csv, orders.csv, events.jsonl, truth.csv, strata.toml).
        #[arg(long)]
        out: PathBuf,
        /// Days of behavioural events to write before the end of the history.
        #[arg(long, default_value_t = 21)]
        event_days: u32,
    },
}

/// Draws one indicatif bar per stage on stderr (hidden when stderr is not a terminal).
struct Bars {
    current: Mutex<Option<ProgressBar>>,
}

impl Bars {
    fn new() -> Self {
        Self {
            current: Mutex::new(None),
        }
    }
}

impl Progress for Bars {
    fn start(&self, stage: &str, steps: u64) {
        let bar = if steps > 1 {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} {msg:<28} [{bar:30.cyan/blue}] {pos}/{len} {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        } else {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg:<28} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        };
        bar.set_message(stage.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut slot) = self.current.lock() {
            *slot = Some(bar);
        }
    }

    fn step(&self) {
        if let Ok(slot) = self.current.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Ok(mut slot) = self.current.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish();
        }
    }
}

fn median_of(p: &strata_engine::SegmentProfile, feature: &str) -> String {
    p.median(feature).map_or("–".into(), |v| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    })
}

fn print_summary(s: &RunSummary) {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    let features: Vec<String> = s
        .segments
        .first()
        .map(|p| p.features.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();
    let mut header = vec![
        Cell::new("#"),
        Cell::new("segment"),
        Cell::new("customers"),
        Cell::new("share"),
    ];
    header.extend(features.iter().map(|f| Cell::new(format!("median {f}"))));
    header.push(Cell::new("what sets it apart"));
    table.set_header(header);
    for p in &s.segments {
        let mut row = vec![
            Cell::new(p.id),
            Cell::new(&p.name),
            Cell::new(p.size).set_alignment(CellAlignment::Right),
            Cell::new(format!("{:.1}%", p.share * 100.0)).set_alignment(CellAlignment::Right),
        ];
        row.extend(
            features
                .iter()
                .map(|f| Cell::new(median_of(p, f)).set_alignment(CellAlignment::Right)),
        );
        row.push(Cell::new(p.distinguishing.join("; ")));
        table.add_row(row);
    }
    println!(
        "\n{}  ({} customers, features as of {})",
        s.title, s.customers, s.as_of
    );
    println!("{table}");
    println!("{}.", s.reason);
    for src in &s.sources {
        println!(
            "{}: {} rows read, {} kept, {} quarantined ({})",
            src.table, src.rows_read, src.rows_kept, src.quarantined, src.path
        );
    }
    println!(
        "Finished in {:.1} s. Outputs in {}:",
        s.seconds,
        s.output_dir.display()
    );
    for f in &s.files {
        println!("  {}", f.display());
    }
}

fn run_config(config: &Config, out: &Path) -> Result<()> {
    let summary = strata_engine::run(config, out, &Bars::new())?;
    print_summary(&summary);
    Ok(())
}

fn quickstart(out: &Path) -> Result<()> {
    let data_dir = out.join("data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let data = data_dir.join("CDNOW_master.txt");
    std::fs::write(&data, CDNOW_MASTER)
        .with_context(|| format!("cannot write {}", data.display()))?;
    let config_path = out.join("strata.toml");
    let text = strata_engine::quickstart_config("data/CDNOW_master.txt");
    std::fs::write(&config_path, &text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    println!(
        "Segmenting the bundled CDNOW customers; config written to {}",
        config_path.display()
    );
    let config = Config::parse(&text, &config_path, out)?;
    run_config(&config, out)
}

fn generate(customers: usize, seed: u64, out: &Path, event_days: u32) -> Result<()> {
    if customers == 0 {
        bail!("--customers must be at least 1");
    }
    if !(1..=366).contains(&event_days) {
        bail!("--event-days must be between 1 and 366, got {event_days}");
    }
    let config = strata_testkit::WorldConfig {
        customers,
        seed,
        event_days,
        ..Default::default()
    };
    let bar = ProgressBar::new(customers as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.cyan} generating customers [{bar:30.cyan/blue}] {pos}/{len} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let summary =
        strata_testkit::generate_world(&config, out, &|done| bar.set_position(done as u64))
            .with_context(|| format!("cannot write the generated world to {}", out.display()))?;
    bar.finish_and_clear();
    let as_of = config.end.format("%Y-%m-%d").to_string();
    let toml_path = out.join("strata.toml");
    std::fs::write(
        &toml_path,
        strata_engine::generated_world_config(&as_of, seed),
    )
    .with_context(|| format!("cannot write {}", toml_path.display()))?;
    println!(
        "Generated {} customers ({} customer rows with duplicates), {} orders, {} events in {:.1} s into {}",
        summary.customers,
        summary.customer_rows,
        summary.orders,
        summary.events,
        started.elapsed().as_secs_f64(),
        out.display()
    );
    println!(
        "Latent segments are in truth.csv. Segment it with: strata run --config {}",
        toml_path.display()
    );
    Ok(())
}

fn prep_config(config: &Config, out: &Path) -> Result<()> {
    let bars = Bars::new();
    let summary = strata_engine::prep(config, out, &bars)?;
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header([
            "table",
            "rows read",
            "kept",
            "quarantined",
            "merged",
            "clean",
        ]);
    for s in &summary.sources {
        table.add_row(vec![
            Cell::new(&s.table),
            Cell::new(s.rows_read).set_alignment(CellAlignment::Right),
            Cell::new(s.rows_kept).set_alignment(CellAlignment::Right),
            Cell::new(s.quarantined).set_alignment(CellAlignment::Right),
            Cell::new(s.merged).set_alignment(CellAlignment::Right),
            Cell::new(s.clean).set_alignment(CellAlignment::Right),
        ]);
    }
    println!("{table}");
    for (kind, d) in &summary.dedup {
        println!(
            "{kind}: {} pairs compared, {} matched, {} clusters, {} records merged ({:.1} s)",
            d.pairs_compared, d.pairs_matched, d.clusters, d.records_merged, d.seconds
        );
    }
    println!(
        "Prepared in {:.1} s; wrote to {}:",
        summary.seconds,
        out.display()
    );
    for f in &summary.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn clv_config(config: &Config, out: &Path) -> Result<()> {
    let bars = Bars::new();
    let s = strata_engine::clv(config, out, &bars)?;
    let m = &s.purchases;
    println!(
        "{} customers, calibration to {}: {:?} r = {:.4}, alpha = {:.4}, a = {:.4}, b = {:.4}, log-likelihood {:.2}",
        s.customers, s.calibration_end, m.variant, m.r, m.alpha, m.a, m.b, m.log_likelihood
    );
    match &s.spend {
        Some(g) => println!(
            "spend (Gamma-Gamma on {} repeat buyers): p = {:.4}, q = {:.4}, gamma = {:.4}; frequency-spend correlation {:.3}",
            g.customers, g.p, g.q, g.gamma, g.frequency_spend_correlation
        ),
        None => println!(
            "spend model not fitted (too few repeat buyers with positive spend): CLV left empty"
        ),
    }
    if let Some((expected, actual)) = s.holdout {
        println!("holdout: expected {expected:.1} repeat purchases, actual {actual:.0}");
        println!("  repeat purchases  customers  holdout mean: observed  model");
        for r in &s.holdout_by_frequency {
            let label = if r.frequency == strata_engine::HOLDOUT_OPEN_FREQUENCY {
                "7+".to_string()
            } else {
                r.frequency.to_string()
            };
            println!(
                "  {label:>16}  {:>9}  {:>21.3}  {:.3}",
                r.customers, r.observed, r.expected
            );
        }
    }
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn propensity_config(config: &Config, out: &Path) -> Result<()> {
    let bars = Bars::new();
    let s = strata_engine::propensity(config, out, &bars)?;
    println!(
        "label: {} — {} rows, {:.1}% positive, {} features, {} trees",
        s.label,
        s.rows,
        100.0 * s.positive_rate,
        s.features.len(),
        s.trees
    );
    let (g, l) = (&s.gbm_test, &s.logistic_test);
    println!(
        "test ({} rows)      ROC-AUC  PR-AUC  log-loss  Brier",
        g.rows
    );
    println!(
        "  boosted trees    {:.4}   {:.4}  {:.4}    {:.4}",
        g.roc_auc, g.pr_auc, g.log_loss, g.brier
    );
    println!(
        "  logistic         {:.4}   {:.4}  {:.4}    {:.4}",
        l.roc_auc, l.pr_auc, l.log_loss, l.brier
    );
    if let Some(cv) = &s.cross_validation {
        println!(
            "{}-fold cross-validation ROC-AUC: boosted trees {:.4} ± {:.4}, logistic {:.4} ± {:.4}",
            cv.folds, cv.gbm_mean, cv.gbm_sd, cv.logistic_mean, cv.logistic_sd
        );
    }
    let top: Vec<String> = s
        .importance
        .iter()
        .take(5)
        .map(|(n, v)| format!("{n} {:.0}%", 100.0 * v))
        .collect();
    println!("most important: {}", top.join(", "));
    for (name, why) in &s.dropped {
        println!("note: {name}: {why}");
    }
    println!("{} customers scored", s.scored);
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn assign(model: &Path, input: &Path, out: &Path) -> Result<()> {
    let s = strata_engine::assign(model, input, out)?;
    println!(
        "Assigned {} customers with the {} model ({} rows quarantined):",
        s.assigned, s.algorithm, s.quarantined
    );
    for (name, n) in &s.sizes {
        println!("  {name}: {n}");
    }
    for f in &s.files {
        println!("  {}", f.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result =
        match &cli.command {
            Command::Quickstart { out } => quickstart(out),
            Command::Run { config, out } => Config::load(config)
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let out = out.clone().unwrap_or_else(|| c.resolve(&c.run.output));
                    run_config(&c, &out)
                }),
            Command::Prep { config, out } => Config::load(config)
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let out = out
                        .clone()
                        .unwrap_or_else(|| c.resolve(&c.run.output).join("prep"));
                    prep_config(&c, &out)
                }),
            Command::Clv { config, out } => Config::load(config)
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let out = out.clone().unwrap_or_else(|| c.resolve(&c.run.output));
                    clv_config(&c, &out)
                }),
            Command::Propensity { config, out } => Config::load(config)
                .map_err(anyhow::Error::from)
                .and_then(|c| {
                    let out = out.clone().unwrap_or_else(|| c.resolve(&c.run.output));
                    propensity_config(&c, &out)
                }),
            Command::Assign { model, input, out } => {
                let out = out.clone().unwrap_or_else(|| {
                    let stem = input
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "customers".into());
                    input.with_file_name(format!("{stem}.segments.csv"))
                });
                assign(model, input, &out)
            }
            Command::Serve {
                data,
                listen,
                write_keys,
                admin_key,
                threads,
                model,
            } => {
                let admin = admin_key
                    .clone()
                    .or_else(|| std::env::var("STRATA_ADMIN_KEY").ok());
                serve::serve(
                    data,
                    listen,
                    write_keys,
                    admin.as_deref(),
                    *threads,
                    model.as_deref(),
                )
            }
            Command::Generate {
                customers,
                seed,
                out,
                event_days,
            } => generate(*customers, *seed, out, *event_days),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
