//! Fixtures and seeded generators for tests, benchmarks and `strata generate`.
//!
//! The generator writes a realistic e-commerce world with known latent customer segments so
//! that cluster recovery can be measured, and dirty rows so that cleaning can be tested.

mod names;
mod world;

pub use world::{LatentSegment, WorldConfig, WorldSummary, generate_world, latent_segments};
