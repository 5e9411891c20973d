//! Builds the report's view model (every number pre-formatted) and renders the template.

use crate::plots::{self, Grid};
use askama::Template;
use strata_ml::{KCandidate, SegmentProfile};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    #[error("cannot draw the `{plot}` plot: {message}")]
    Plot { plot: &'static str, message: String },
    #[error("cannot render the report: {0}")]
    Template(#[from] askama::Error),
}

/// Rows read, kept and quarantined for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSummary {
    pub table: String,
    pub path: String,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub quarantined: u64,
    /// Rows merged into another record by deduplication.
    pub merged: u64,
    /// Kept rows with no value nulled or flagged by a rule.
    pub clean: u64,
}

/// What deduplication did on one table, pre-formatted by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupSummary {
    pub table: String,
    /// One line of figures: records, pairs compared, matches, clusters, EM estimates.
    pub figures: String,
    /// Comparison parameters: (comparison, m exact/similar/different, u exact/similar/different).
    pub parameters: Vec<(String, String, String)>,
    /// A few merges, each explained in one line.
    pub examples: Vec<String>,
}

/// Quality of one field of one source (shares in [0, 1]; `None` where undefined).
#[derive(Debug, Clone, PartialEq)]
pub struct QualityRow {
    pub table: String,
    pub field: String,
    pub column: String,
    pub ty: String,
    pub completeness: Option<f64>,
    pub validity: Option<f64>,
    pub uniqueness: Option<f64>,
    pub consistency: Option<f64>,
    pub normalized: u64,
    pub imputed: u64,
}

/// Everything the report shows; built by the engine from a run.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub title: String,
    /// One line about the run: as-of date, seed, config hash.
    pub run_note: String,
    pub sources: Vec<SourceSummary>,
    pub quality: Vec<QualityRow>,
    pub dedup: Vec<DedupSummary>,
    pub customers: usize,
    pub candidates: &'a [KCandidate],
    pub chosen_k: usize,
    pub elbow_k: Option<usize>,
    pub reason: String,
    pub profiles: &'a [SegmentProfile],
    /// Projected sample of customers and their segments.
    pub projection: Vec<[f64; 2]>,
    pub projection_labels: Vec<u32>,
    pub explained: [f64; 2],
    /// Customers per (R score, F score), `rfm_grid[r-1][f-1]`.
    pub rfm_grid: [[u64; 5]; 5],
    /// Named RFM segments and their customer counts, best first.
    pub rfm_segments: Vec<(String, u64)>,
    /// `[segmentation] algorithm`.
    pub algorithm: String,
    /// Hierarchical clustering's tree.
    pub dendrogram: Option<&'a strata_ml::Dendrogram>,
    /// DBSCAN's k-distance curve and the eps used.
    pub k_distance: Option<(&'a strata_ml::KDistance, f64)>,
    /// Subsample stability (ARI overall, Jaccard per segment).
    pub stability: Option<&'a strata_ml::Stability>,
    /// The time-split check, in a sentence.
    pub time_split: Option<String>,
    /// Sub-segments of one segment: how their k was chosen, and their profiles.
    pub sub_segments: Option<(&'a str, &'a [SegmentProfile])>,
}

struct SegmentRow {
    color: String,
    name: String,
    size: String,
    share: String,
    cells: Vec<String>,
    /// Mean CLV, P(alive), propensity when those models ran.
    predictions: Vec<String>,
    /// Soft memberships (mixtures, fuzzy): soft share and confident members.
    membership: String,
    distinguishing: String,
}

struct QualityView {
    table: String,
    field: String,
    column: String,
    ty: String,
    completeness: String,
    validity: String,
    uniqueness: String,
    consistency: String,
    normalized: String,
    imputed: String,
    /// Completeness or validity below 95%.
    flagged: bool,
}

struct CandidateRow {
    k: usize,
    wcss: String,
    silhouette: String,
    calinski_harabasz: String,
    davies_bouldin: String,
    bic: String,
    gap: String,
    smallest: String,
    chosen: bool,
    eligible: bool,
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    title: &'a str,
    run_note: &'a str,
    customers: String,
    segments: usize,
    quarantined: String,
    reason: &'a str,
    sources: Vec<(String, String, String, String, String, String, String)>,
    quality: Vec<QualityView>,
    dedup: &'a [DedupSummary],
    feature_names: Vec<String>,
    prediction_names: Vec<String>,
    segment_rows: Vec<SegmentRow>,
    candidate_rows: Vec<CandidateRow>,
    rfm_rows: Vec<(String, String, String)>,
    svg_sizes: String,
    svg_heatmap: String,
    svg_scatter: String,
    svg_elbow: String,
    svg_silhouette: String,
    svg_rfm: String,
    algorithm: &'a str,
    soft: bool,
    show_bic: bool,
    show_gap: bool,
    /// Algorithm-specific plots: dendrogram, k-distance curve, BIC, memberships.
    svg_model: Vec<(&'static str, String)>,
    stability_note: String,
    svg_stability: String,
    time_split: String,
    sub_reason: String,
    sub_rows: Vec<SegmentRow>,
}

/// Thousands separators for counts.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn plot(name: &'static str, r: Result<String, String>) -> Result<String, ReportError> {
    r.map_err(|message| ReportError::Plot {
        plot: name,
        message,
    })
}

/// A row of a segment table: sizes, feature means / medians, prediction means, memberships.
fn segment_row(i: usize, p: &SegmentProfile) -> SegmentRow {
    SegmentRow {
        color: plots::segment_hex(i),
        name: p.name.clone(),
        size: count(p.size as u64),
        share: format!("{:.1}%", p.share * 100.0),
        cells: p
            .features
            .iter()
            .map(|f| format!("{} / {}", number(f.mean), number(f.median)))
            .collect(),
        predictions: p
            .predictions
            .iter()
            .map(|m| match m.name.as_str() {
                _ if m.mean.is_nan() => "–".to_string(),
                "CLV" => number(m.mean),
                _ => format!("{:.1}%", 100.0 * m.mean),
            })
            .collect(),
        membership: membership_cell(p),
        distinguishing: p.distinguishing.join("; "),
    }
}

fn membership_cell(p: &SegmentProfile) -> String {
    p.membership.as_ref().map_or(String::new(), |m| {
        format!(
            "{:.1}% / {:.0}%",
            m.soft_share * 100.0,
            m.confident_share * 100.0
        )
    })
}

/// Renders the whole report as one HTML document.
pub fn render_report(input: &ReportInput<'_>) -> Result<String, ReportError> {
    let names: Vec<String> = input.profiles.iter().map(|p| p.name.clone()).collect();
    let feature_names: Vec<String> = input
        .profiles
        .first()
        .map(|p| p.features.iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default();

    let svg_sizes = plot(
        "sizes",
        plots::sizes(
            &names,
            &input.profiles.iter().map(|p| p.size).collect::<Vec<_>>(),
        ),
    )?;
    // Plot rows run bottom-up; reverse so the heatmap reads in the table's order.
    let z: Vec<Vec<f64>> = input
        .profiles
        .iter()
        .rev()
        .map(|p| p.features.iter().map(|f| f.z).collect())
        .collect();
    let heat_rows: Vec<String> = names.iter().rev().cloned().collect();
    let z_labels: Vec<Vec<String>> = z
        .iter()
        .map(|row| row.iter().map(|v| format!("{v:+.2}")).collect())
        .collect();
    let svg_heatmap = plot(
        "heatmap",
        plots::grid(&Grid {
            title: "Segment profiles: mean of each scaled feature (σ from the average customer)",
            x_desc: "feature",
            y_desc: "",
            columns: &feature_names,
            rows: &heat_rows,
            values: &z,
            labels: &z_labels,
            diverging: true,
        }),
    )?;
    let svg_scatter = plot(
        "projection",
        plots::scatter(
            &input.projection,
            &input.projection_labels,
            &names,
            input.explained,
        ),
    )?;
    let wcss: Vec<(usize, f64)> = input.candidates.iter().map(|c| (c.k, c.wcss)).collect();
    let svg_elbow = plot(
        "elbow",
        plots::line_over_k(
            "Elbow: within-cluster sum of squares",
            "WCSS",
            &wcss,
            input.elbow_k.unwrap_or(input.chosen_k),
        ),
    )?;
    let sil: Vec<(usize, f64)> = input
        .candidates
        .iter()
        .filter_map(|c| c.silhouette.map(|s| (c.k, s)))
        .collect();
    let svg_silhouette = plot(
        "silhouette",
        plots::line_over_k(
            "Silhouette by k (higher is better)",
            "mean silhouette",
            &sil,
            input.chosen_k,
        ),
    )?;
    let scores: Vec<String> = (1..=5).map(|s| s.to_string()).collect();
    let rfm_values: Vec<Vec<f64>> = input
        .rfm_grid
        .iter()
        .map(|row| row.iter().map(|&c| c as f64).collect())
        .collect();
    let rfm_labels: Vec<Vec<String>> = input
        .rfm_grid
        .iter()
        .map(|row| row.iter().map(|&c| count(c)).collect())
        .collect();
    let svg_rfm = plot(
        "rfm grid",
        plots::grid(&Grid {
            title: "RFM grid: customers by recency score (rows) and frequency score (columns)",
            x_desc: "frequency score (5 = most orders)",
            y_desc: "recency score (5 = most recent)",
            columns: &scores,
            rows: &scores,
            values: &rfm_values,
            labels: &rfm_labels,
            diverging: false,
        }),
    )?;

    let mut svg_model: Vec<(&'static str, String)> = Vec::new();
    if let Some(tree) = input.dendrogram {
        svg_model.push((
            "plot-dendrogram",
            // At least one leaf more than the chosen k, so the cut crosses the drawn tree.
            plot(
                "dendrogram",
                plots::dendrogram(tree, input.chosen_k, 30.max(input.chosen_k + 1)),
            )?,
        ));
    }
    if let Some((curve, eps)) = input.k_distance {
        svg_model.push((
            "plot-k-distance",
            plot("k-distance", plots::k_distance(curve, eps))?,
        ));
    }
    let bic: Vec<(usize, f64)> = input
        .candidates
        .iter()
        .filter_map(|c| c.bic.map(|b| (c.k, b)))
        .collect();
    if bic.len() > 1 {
        svg_model.push((
            "plot-bic",
            plot(
                "bic",
                plots::line_over_k("BIC by k (lower is better)", "BIC", &bic, input.chosen_k),
            )?,
        ));
    }
    let soft = input.profiles.iter().any(|p| p.membership.is_some());
    if soft {
        let series: Vec<(&str, Vec<(f64, f64)>)> = input
            .profiles
            .iter()
            .filter_map(|p| {
                let m = p.membership.as_ref()?;
                let total = m.histogram.iter().sum::<u64>().max(1) as f64;
                Some((
                    p.name.as_str(),
                    m.histogram
                        .iter()
                        .enumerate()
                        .map(|(b, &c)| (b as f64 / 10.0 + 0.05, c as f64 / total))
                        .collect(),
                ))
            })
            .collect();
        svg_model.push((
            "plot-memberships",
            plot(
                "memberships",
                plots::lines(
                    "Members' membership in their own segment",
                    (
                        "membership (probability or degree)",
                        "share of the segment's customers",
                    ),
                    &series,
                    false,
                ),
            )?,
        ));
    }
    let (stability_note, svg_stability) = match input.stability {
        Some(st) => {
            let labels: Vec<String> = st.jaccard.iter().map(|j| format!(" {j:.2}")).collect();
            (
                format!(
                    "{} refits on random {:.0}% subsamples: adjusted Rand index with the full fit {:.3} ± {:.3} (1 = the same segments). Jaccard per segment is the mean overlap of each segment with its best match in the refits; below 0.6 a segment is not reproducible, above 0.75 it is stable.",
                    st.runs,
                    st.sample_share * 100.0,
                    st.ari_mean,
                    st.ari_sd
                ),
                plot(
                    "stability",
                    plots::bars(
                        "Stability: mean Jaccard of each segment over the refits",
                        "Jaccard (1 = found again exactly)",
                        &names,
                        &st.jaccard,
                        &labels,
                        1.12,
                        Some(0.75),
                    ),
                )?,
            )
        }
        None => (String::new(), String::new()),
    };
    let quarantined: u64 = input.sources.iter().map(|s| s.quarantined).sum();
    let total_rfm: u64 = input.rfm_segments.iter().map(|s| s.1).sum::<u64>().max(1);
    let page = ReportPage {
        title: &input.title,
        run_note: &input.run_note,
        customers: count(input.customers as u64),
        segments: input.profiles.len(),
        quarantined: count(quarantined),
        reason: &input.reason,
        sources: input
            .sources
            .iter()
            .map(|s| {
                (
                    s.table.clone(),
                    s.path.clone(),
                    count(s.rows_read),
                    count(s.rows_kept),
                    count(s.quarantined),
                    count(s.merged),
                    count(s.clean),
                )
            })
            .collect(),
        dedup: &input.dedup,
        quality: input
            .quality
            .iter()
            .map(|q| {
                let pct =
                    |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{:.1}%", v * 100.0));
                QualityView {
                    table: q.table.clone(),
                    field: q.field.clone(),
                    column: q.column.clone(),
                    ty: q.ty.clone(),
                    completeness: pct(q.completeness),
                    validity: pct(q.validity),
                    uniqueness: pct(q.uniqueness),
                    consistency: pct(q.consistency),
                    normalized: count(q.normalized),
                    imputed: count(q.imputed),
                    flagged: q.completeness.is_some_and(|v| v < 0.95)
                        || q.validity.is_some_and(|v| v < 0.95),
                }
            })
            .collect(),
        segment_rows: input
            .profiles
            .iter()
            .enumerate()
            .map(|(i, p)| segment_row(i, p))
            .collect(),
        sub_rows: input
            .sub_segments
            .map(|(_, profiles)| {
                profiles
                    .iter()
                    .enumerate()
                    .map(|(i, p)| segment_row(i, p))
                    .collect()
            })
            .unwrap_or_default(),
        sub_reason: input
            .sub_segments
            .map_or(String::new(), |(r, _)| r.to_string()),
        algorithm: &input.algorithm,
        soft,
        show_bic: input.candidates.iter().any(|c| c.bic.is_some()),
        show_gap: input.candidates.iter().any(|c| c.gap.is_some()),
        svg_model,
        stability_note,
        svg_stability,
        time_split: input.time_split.clone().unwrap_or_default(),
        feature_names,
        prediction_names: input
            .profiles
            .first()
            .map(|p| {
                p.predictions
                    .iter()
                    .map(|m| match m.name.as_str() {
                        "CLV" => "mean CLV".to_string(),
                        n => format!("mean {n}"),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        candidate_rows: input
            .candidates
            .iter()
            .map(|c| CandidateRow {
                k: c.k,
                wcss: number(c.wcss),
                silhouette: c.silhouette.map_or("–".into(), |s| format!("{s:.4}")),
                calinski_harabasz: c.calinski_harabasz.map_or("–".into(), number),
                davies_bouldin: c.davies_bouldin.map_or("–".into(), |v| format!("{v:.3}")),
                bic: c.bic.map_or("–".into(), number),
                gap: match (c.gap, c.gap_sd) {
                    (Some(g), Some(sd)) => format!("{g:.3} ± {sd:.3}"),
                    _ => "–".into(),
                },
                smallest: format!("{:.1}%", c.smallest_share * 100.0),
                chosen: c.k == input.chosen_k,
                eligible: c.eligible,
            })
            .collect(),
        rfm_rows: input
            .rfm_segments
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    count(*c),
                    format!("{:.1}%", *c as f64 * 100.0 / total_rfm as f64),
                )
            })
            .collect(),
        svg_sizes,
        svg_heatmap,
        svg_scatter,
        svg_elbow,
        svg_silhouette,
        svg_rfm,
    };
    Ok(page.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_counts_with_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(23570), "23,570");
        assert_eq!(count(1234567), "1,234,567");
    }
}
