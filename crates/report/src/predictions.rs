//! Plots of the predictive models: calibration of propensity probabilities and the
//! calibration-vs-holdout comparison of the purchase model.

use crate::ReportError;
use crate::plots::lines;
use strata_ml::CalibrationBin;

/// Reliability diagram: observed positive rate against mean predicted probability per bin,
/// one line per model.
pub fn calibration_svg(
    models: &[(&str, &[CalibrationBin])],
    title: &str,
) -> Result<String, ReportError> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = models
        .iter()
        .map(|(name, bins)| {
            (
                *name,
                bins.iter()
                    .map(|b| (b.mean_predicted, b.observed_rate))
                    .collect(),
            )
        })
        .collect();
    lines(
        title,
        ("mean predicted probability", "observed rate"),
        &series,
        true,
    )
    .map_err(|message| ReportError::Plot {
        plot: "calibration",
        message,
    })
}

/// Mean holdout purchases per calibration-period frequency, as observed and as the model
/// expects (rows: frequency, observed mean, expected mean).
pub fn holdout_svg(rows: &[(u32, f64, f64)]) -> Result<String, ReportError> {
    let observed = rows.iter().map(|r| (f64::from(r.0), r.1)).collect();
    let expected = rows.iter().map(|r| (f64::from(r.0), r.2)).collect();
    lines(
        "Holdout purchases by calibration-period repeat purchases",
        (
            "repeat purchases in the calibration period",
            "mean purchases in the holdout",
        ),
        &[("observed", observed), ("model", expected)],
        false,
    )
    .map_err(|message| ReportError::Plot {
        plot: "calibration vs holdout",
        message,
    })
}
