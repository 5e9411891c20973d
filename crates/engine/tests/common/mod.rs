//! Helpers shared by the engine's test files: generated worlds, reading our outputs, and
//! configs that must be refused.

#![allow(dead_code, reason = "each test file uses some of these helpers")]

use std::collections::HashMap;
use std::path::Path;
use strata_engine::Config;
use strata_testkit::{WorldConfig, generate_world};

/// Generates a world of `customers` into `dir`, writes its `strata.toml` and returns the text.
pub fn generated_text(dir: &Path, customers: usize, seed: u64) -> String {
    let world = WorldConfig {
        customers,
        seed,
        ..WorldConfig::default()
    };
    generate_world(&world, dir, &|_| {}).unwrap();
    let text =
        strata_engine::generated_world_config(&world.end.format("%Y-%m-%d").to_string(), seed);
    std::fs::write(dir.join("strata.toml"), &text).unwrap();
    text
}

/// A generated world and its loaded config.
pub fn generated_config(dir: &Path, customers: usize, seed: u64) -> Config {
    generated_text(dir, customers, seed);
    Config::load(&dir.join("strata.toml")).unwrap()
}

/// The records of a CSV file (quoted fields may hold commas), header first.
pub fn csv_records(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            let mut fields = Vec::new();
            let (mut cur, mut quoted) = (String::new(), false);
            for ch in line.chars() {
                match ch {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

/// The rows of a CSV file as column → value maps.
pub fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut records = csv_records(path);
    let header = records.remove(0);
    records
        .into_iter()
        .map(|row| header.iter().cloned().zip(row).collect())
        .collect()
}

/// The first record batch of a Parquet file.
pub fn read_parquet(path: &Path) -> arrow::array::RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

/// The message of a config that must be refused before any data is read (paths point
/// nowhere).
pub fn config_error(text: &str) -> String {
    match Config::parse(text, Path::new("strata.toml"), Path::new("/nonexistent")) {
        Err(e) => {
            assert!(e.is_user_error());
            e.to_string()
        }
        Ok(_) => panic!("config should be rejected: {text}"),
    }
}
