//! A DataFusion session holding the canonical tables, driven from synchronous code.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeatureError {
    /// The query or a table registration failed inside DataFusion.
    #[error("feature query failed: {0}")]
    Query(#[from] DataFusionError),
    #[error("cannot start the query runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("table `{0}` is not registered")]
    MissingTable(String),
}

/// Owns the SQL session and the runtime its queries run on.
pub struct FeatureEngine {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for FeatureEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureEngine").finish_non_exhaustive()
    }
}

impl FeatureEngine {
    /// A session using `threads` worker threads (0 = all cores).
    pub fn new(threads: usize) -> Result<Self, FeatureError> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .build()?;
        let config = SessionConfig::new()
            .with_target_partitions(threads)
            .with_information_schema(false);
        Ok(Self {
            ctx: SessionContext::new_with_config(config),
            runtime,
        })
    }

    /// Registers (or replaces) an in-memory table.
    pub fn register(&self, name: &str, batch: RecordBatch) -> Result<(), FeatureError> {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    pub fn has_table(&self, name: &str) -> bool {
        self.ctx.table_exist(name).unwrap_or(false)
    }

    /// Runs a query and returns its result as one batch.
    pub fn query(&self, sql: &str) -> Result<RecordBatch, FeatureError> {
        self.runtime.block_on(async {
            let df = self.ctx.sql(sql).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            Ok(concat_batches(&schema, &batches).map_err(DataFusionError::from)?)
        })
    }

    /// RFM features as of `as_of_micros` (see [`crate::rfm_sql`]); needs an `orders` table.
    pub fn rfm(&self, as_of_micros: i64) -> Result<RecordBatch, FeatureError> {
        if !self.has_table("orders") {
            return Err(FeatureError::MissingTable("orders".into()));
        }
        self.query(&crate::rfm_sql(as_of_micros))
    }
}
