//! `strata clv`: purchase (BG/NBD) and spend (Gamma-Gamma) models fitted on the orders
//! source, and per-customer P(alive), expected purchases and discounted lifetime value.

use crate::config::Config;
use crate::output::{csv_field, write_files};
use crate::pipeline::{
    DAY_MICROS, EngineError, Progress, format_micros, load_and_prepare, with_threads,
};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use strata_core::EntityKind;
use strata_ml::{
    BgNbd, CustomerSummary, FitSettings, GammaGamma, customer_lifetime_value, summarize,
};
use strata_prep::PreparedSource;

/// `[clv]` in strata.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClvConfig {
    /// Last day of the calibration period (`YYYY-MM-DD`); default: the day before `[run]
    /// as_of`, or the last order day.
    pub calibration_end: Option<String>,
    /// Last day of an optional holdout period, compared with the model's expectation.
    pub holdout_end: Option<String>,
    /// The time unit of the models, in days (7: weeks).
    #[serde(default = "default_unit")]
    pub unit_days: f64,
    /// CLV horizon: this many periods of `period_units` units each, discounted per period.
    #[serde(default = "default_periods")]
    pub periods: usize,
    #[serde(default = "default_period_units")]
    pub period_units: f64,
    #[serde(default = "default_discount")]
    pub discount_rate: f64,
    /// Share of revenue that is margin.
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Modified BG/NBD instead of BG/NBD.
    #[serde(default)]
    pub modified: bool,
}

fn default_unit() -> f64 {
    7.0
}
fn default_periods() -> usize {
    12
}
fn default_period_units() -> f64 {
    4.345
}
fn default_discount() -> f64 {
    0.01
}
fn default_margin() -> f64 {
    1.0
}

impl Default for ClvConfig {
    fn default() -> Self {
        Self {
            calibration_end: None,
            holdout_end: None,
            unit_days: default_unit(),
            periods: default_periods(),
            period_units: default_period_units(),
            discount_rate: default_discount(),
            margin: default_margin(),
            modified: false,
        }
    }
}

impl ClvConfig {
    /// Checks the settings (called when the config is read).
    pub(crate) fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("calibration_end", &self.calibration_end),
            ("holdout_end", &self.holdout_end),
        ] {
            if let Some(d) = v
                && strata_prep::parse_timestamp_micros(d, &["%Y-%m-%d".to_string()]).is_none()
            {
                return Err(format!(
                    "[clv] {name} = \"{d}\" is not a date (use YYYY-MM-DD)"
                ));
            }
        }
        if !(self.unit_days > 0.0 && self.period_units > 0.0) {
            return Err("[clv] unit_days and period_units must be positive".into());
        }
        if !(0.0..1.0).contains(&self.discount_rate) || !(0.0..=1.0).contains(&self.margin) {
            return Err("[clv] needs 0 ≤ discount_rate < 1 and 0 ≤ margin ≤ 1".into());
        }
        if self.periods == 0 {
            return Err("[clv] periods must be at least 1".into());
        }
        Ok(())
    }
}

/// What `strata clv` produced.
#[derive(Debug, Clone, Serialize)]
pub struct ClvSummary {
    pub customers: usize,
    pub calibration_end: String,
    pub purchases: BgNbd,
    pub spend: Option<GammaGamma>,
    /// (expected, actual) repeat purchases in the holdout period, summed over customers.
    pub holdout: Option<(f64, f64)>,
    /// Calibration vs holdout by calibration-period frequency (with a holdout period).
    pub holdout_by_frequency: Vec<HoldoutRow>,
    pub files: Vec<PathBuf>,
}

fn day_of(text: &str) -> Option<i64> {
    strata_prep::parse_timestamp_micros(text, &["%Y-%m-%d".to_string()])
        .map(|m| m.div_euclid(DAY_MICROS))
}

/// The holdout row that gathers this many calibration-period repeat purchases and more.
pub const HOLDOUT_OPEN_FREQUENCY: u32 = 7;

/// Mean holdout purchases of the customers with `frequency` repeat purchases in the
/// calibration period (the last row gathers [`HOLDOUT_OPEN_FREQUENCY`] and more), observed
/// and expected.
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutRow {
    pub frequency: u32,
    pub customers: usize,
    pub observed: f64,
    pub expected: f64,
}

/// The fitted purchase and spend models with the summaries they were fitted on.
pub(crate) struct ClvFit {
    pub summary: Vec<CustomerSummary>,
    pub purchases: BgNbd,
    pub spend: Option<GammaGamma>,
    pub calibration_end: i64,
    pub holdout_end: Option<i64>,
}

impl ClvFit {
    /// Discounted CLV of one customer (None without a spend model).
    pub fn value(&self, c: &ClvConfig, s: &CustomerSummary) -> Option<f64> {
        self.spend.as_ref().map(|g| {
            customer_lifetime_value(
                &self.purchases,
                g,
                s,
                c.periods,
                c.period_units,
                c.discount_rate,
                c.margin,
            )
        })
    }

    /// The calibration-vs-holdout table and the (expected, actual) totals, in one pass.
    fn holdout(&self, c: &ClvConfig) -> Option<(Vec<HoldoutRow>, (f64, f64))> {
        let end = self.holdout_end?;
        let span = (end - self.calibration_end) as f64 / c.unit_days;
        let mut rows: Vec<HoldoutRow> = (0..=HOLDOUT_OPEN_FREQUENCY)
            .map(|frequency| HoldoutRow {
                frequency,
                customers: 0,
                observed: 0.0,
                expected: 0.0,
            })
            .collect();
        let (mut expected, mut actual) = (0.0, 0.0);
        for s in &self.summary {
            let e = self
                .purchases
                .conditional_expected_purchases(span, s.x, s.t_x, s.t);
            let r = &mut rows[(s.x as u32).min(HOLDOUT_OPEN_FREQUENCY) as usize];
            r.customers += 1;
            r.observed += s.holdout_x;
            r.expected += e;
            expected += e;
            actual += s.holdout_x;
        }
        rows.retain(|r| r.customers > 0);
        for r in &mut rows {
            r.observed /= r.customers as f64;
            r.expected /= r.customers as f64;
        }
        Some((rows, (expected, actual)))
    }
}

/// Fits the purchase model (and the spend model when there are enough repeat buyers) on the
/// orders source.
pub(crate) fn fit_clv(
    config: &Config,
    c: &ClvConfig,
    prepared: &[PreparedSource],
    progress: &dyn Progress,
) -> Result<ClvFit, EngineError> {
    let orders = prepared
        .iter()
        .find(|p| p.kind == EntityKind::Orders)
        .ok_or(EngineError::NoOrdersSource)?;
    let b = &orders.batch;
    let (Some(ids), Some(ts), Some(amount)) = (
        b.column_by_name("customer_id")
            .and_then(|c| c.as_string_opt::<i32>()),
        b.column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
        b.column_by_name("amount")
            .and_then(|c| c.as_primitive_opt::<Float64Type>()),
    ) else {
        return Err(EngineError::Model(
            "orders lack customer_id, timestamp or amount".into(),
        ));
    };
    let transactions: Vec<(String, i64, f64)> = (0..b.num_rows())
        .filter(|&i| ids.is_valid(i) && ts.is_valid(i))
        .map(|i| {
            (
                ids.value(i).to_string(),
                ts.value(i).div_euclid(DAY_MICROS),
                if amount.is_valid(i) {
                    amount.value(i)
                } else {
                    0.0
                },
            )
        })
        .collect();
    let last_day = transactions.iter().map(|t| t.1).max().unwrap_or(0);
    let calibration_end = match (&c.calibration_end, config.as_of_micros) {
        (Some(d), _) => day_of(d).unwrap_or(last_day),
        (None, Some(as_of)) => as_of.div_euclid(DAY_MICROS) - 1,
        (None, None) => last_day,
    };
    let holdout_end = c.holdout_end.as_deref().and_then(day_of);
    let to_model = |e: strata_ml::ClvError| EngineError::Clv(e.to_string());
    progress.start("fitting purchase and spend models", 1);
    let summary =
        summarize(&transactions, calibration_end, holdout_end, c.unit_days).map_err(to_model)?;
    let settings = FitSettings::default();
    let purchases = if c.modified {
        BgNbd::fit_modified(&summary, settings)
    } else {
        BgNbd::fit(&summary, settings)
    }
    .map_err(to_model)?;
    // Without enough repeat buyers with positive spend, CLV is reported as missing rather
    // than failing the purchase model.
    let spend = GammaGamma::fit(&summary, settings).ok();
    progress.finish();
    Ok(ClvFit {
        summary,
        purchases,
        spend,
        calibration_end,
        holdout_end,
    })
}

/// Fits the CLV models on the orders source and writes `clv.csv` and `clv.json` (and
/// `clv_holdout.svg` with a holdout period).
pub fn clv(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<ClvSummary, EngineError> {
    with_threads(config.run.threads, || write_clv(config, out_dir, progress))
}

fn write_clv(
    config: &Config,
    out_dir: &Path,
    progress: &dyn Progress,
) -> Result<ClvSummary, EngineError> {
    let c = &config.clv.clone().unwrap_or_default();
    let prepared = load_and_prepare(config, progress)?;
    let fit = fit_clv(config, c, &prepared, progress)?;
    let (summary, purchases) = (&fit.summary, &fit.purchases);
    let horizon = c.periods as f64 * c.period_units;
    let (holdout_by_frequency, holdout) = match fit.holdout(c) {
        Some((rows, totals)) => (rows, Some(totals)),
        None => (Vec::new(), None),
    };
    let mut csv = String::from(
        "customer_id,frequency,recency,T,monetary,p_alive,expected_purchases,expected_spend,clv\n",
    );
    for s in summary {
        let e = purchases.conditional_expected_purchases(horizon, s.x, s.t_x, s.t);
        let (spend_v, clv_v) = match (&fit.spend, fit.value(c, s)) {
            (Some(g), Some(v)) => (
                format!("{:.4}", g.expected_spend(s.x, s.monetary)),
                format!("{v:.4}"),
            ),
            _ => (String::new(), String::new()),
        };
        csv.push_str(&format!(
            "{},{},{:.4},{:.4},{:.4},{:.6},{:.4},{spend_v},{clv_v}\n",
            csv_field(&s.id),
            s.x,
            s.t_x,
            s.t,
            s.monetary,
            purchases.p_alive(s.x, s.t_x, s.t),
            e
        ));
    }
    let mut result = ClvSummary {
        customers: summary.len(),
        calibration_end: format_micros(fit.calibration_end * DAY_MICROS),
        purchases: fit.purchases.clone(),
        spend: fit.spend.clone(),
        holdout,
        holdout_by_frequency,
        files: Vec::new(),
    };
    let json =
        serde_json::to_string_pretty(&result).map_err(|e| EngineError::Model(e.to_string()))?;
    let mut files = vec![
        ("clv.csv", csv.into_bytes()),
        ("clv.json", json.into_bytes()),
    ];
    if !result.holdout_by_frequency.is_empty() {
        let rows: Vec<(u32, f64, f64)> = result
            .holdout_by_frequency
            .iter()
            .map(|r| (r.frequency, r.observed, r.expected))
            .collect();
        files.push((
            "clv_holdout.svg",
            strata_report::holdout_svg(&rows)?.into_bytes(),
        ));
    }
    result.files = write_files(out_dir, files)?;
    Ok(result)
}
