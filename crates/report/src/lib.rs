//! The self-contained HTML report of a run: data summary, segment table and profiles, and SVG
//! plots (elbow, silhouette by k, 2-D PCA projection, profile heatmap, sizes, RFM grid).
//! Everything is inline: the file opens anywhere, offline.
//!
//! This crate renders `strata-ml`'s outputs (segment profiles, k candidates), which is why it
//! depends on that domain crate; see ARCHITECTURE.md.

mod html;
mod plots;
mod predictions;

pub use html::{DedupSummary, QualityRow, ReportError, ReportInput, SourceSummary, render_report};
pub use predictions::{calibration_svg, holdout_svg};
