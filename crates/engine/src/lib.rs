//! Orchestration and the API boundary: a `strata.toml` config drives one pipeline run —
//! load sources, compute features on DataFusion, choose k and fit k-means, profile and name
//! segments, write assignments, `segments.json`, the model, the quarantine and the report.
//!
//! The CLI (and later the server) call only this crate.

mod assign;
mod clv;
mod config;
mod output;
mod pipeline;
mod propensity;
mod segment;

pub use assign::{AssignSummary, assign};
pub use clv::{ClvConfig, ClvSummary, HOLDOUT_OPEN_FREQUENCY, HoldoutRow, clv};
pub use config::{
    Algorithm, Config, FeaturesConfig, RunConfig, Scaling, SegmentationConfig, SourcesConfig,
    generated_world_config, quickstart_config,
};
pub use pipeline::{
    EngineError, NoProgress, PrepSummary, Progress, RunSummary, SubSegments, TimeSplit, prep, run,
};
pub use propensity::{LabelKind, PropensityConfig, PropensitySummary, propensity};
pub use segment::MAX_HIERARCHICAL_ROWS;
pub use strata_ml::{SegmentProfile, SegmentationModel};
pub use strata_report::SourceSummary;
