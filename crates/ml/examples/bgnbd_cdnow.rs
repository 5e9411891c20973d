//! Times the BG/NBD fit on the full CDNOW_master (23,570 customers, calibration to
//! 1997-09-30, weeks) for `bench/clv_vs_lifetimes.py`; prints one JSON line.
#![allow(clippy::print_stdout, reason = "a benchmark prints its result")]

use std::time::Instant;
use strata_ml::{BgNbd, FitSettings, summarize};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/cdnow/CDNOW_master.txt"
        )
        .into()
    });
    let repeats: usize = std::env::args().nth(2).map_or(Ok(7), |s| s.parse())?;
    let origin = chrono::NaiveDate::from_ymd_opt(1997, 1, 1).ok_or("date")?;
    let mut transactions = Vec::new();
    for line in std::fs::read_to_string(&path)?.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let day = chrono::NaiveDate::parse_from_str(f[1], "%Y%m%d")?;
        transactions.push((
            f[0].to_string(),
            (day - origin).num_days(),
            f[3].parse::<f64>()?,
        ));
    }
    let summary = summarize(&transactions, 272, None, 7.0)?;
    let mut times = Vec::new();
    let mut model = None;
    for _ in 0..repeats {
        let started = Instant::now();
        model = Some(BgNbd::fit(&summary, FitSettings::default())?);
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let m = model.ok_or("no run")?;
    println!(
        "{{\"customers\": {}, \"seconds\": {}, \"r\": {}, \"alpha\": {}, \"a\": {}, \"b\": {}, \"log_likelihood\": {}, \"iterations\": {}}}",
        summary.len(),
        times[times.len() / 2],
        m.r,
        m.alpha,
        m.a,
        m.b,
        m.log_likelihood,
        m.iterations
    );
    Ok(())
}
