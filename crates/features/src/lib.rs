//! Feature computation as SQL on DataFusion: the canonical tables are registered once and
//! every feature (RFM now, windows and user SQL later) is a query over them.

mod engine;
mod rfm;

pub use engine::{FeatureEngine, FeatureError};
pub use rfm::{RFM_COLUMNS, RFM_SEGMENTS, rfm_sql};
