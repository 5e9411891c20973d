//! Prometheus metrics at `/metrics`: requests by route and status, request latency, and the
//! store's writer counters. The text format is a few lines per series, written here rather
//! than through a metrics crate.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Upper bounds of the latency histogram, in seconds.
pub(crate) const BUCKETS: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Cumulative counts per bucket of [`BUCKETS`], as Prometheus keeps them.
#[derive(Debug, Default, Clone)]
pub(crate) struct Histogram {
    pub(crate) counts: [u64; BUCKETS.len()],
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, seconds: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, n) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}\n{name}_sum{braces} {}\n{name}_count{braces} {}",
            self.count, self.sum, self.count
        );
    }
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Acceptance (the store's durable answer) to live segment membership updated, per
    /// ingestion request that moved live segments.
    pub(crate) segment_update: Mutex<Histogram>,
    pub(crate) rejections: Rejections,
}

/// Middleware: counts each request by its route pattern (not its raw path, so the number
/// of series stays bounded) and status, and times it.
pub(crate) async fn track(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    let seconds = start.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    if let Ok(mut r) = state.metrics.requests.lock() {
        *r.entry((route.clone(), status)).or_default() += 1;
    }
    if let Ok(mut l) = state.metrics.latency.lock() {
        l.entry(route).or_default().observe(seconds);
    }
    response
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn exposition(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP strata_http_requests_total HTTP requests by route and status.\n# TYPE strata_http_requests_total counter"
    );
    if let Ok(r) = state.metrics.requests.lock() {
        for ((route, status), n) in r.iter() {
            let _ = writeln!(
                out,
                "strata_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                label(route)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP strata_http_request_duration_seconds Time to answer a request.\n# TYPE strata_http_request_duration_seconds histogram"
    );
    if let Ok(l) = state.metrics.latency.lock() {
        for (route, h) in l.iter() {
            h.write(
                &mut out,
                "strata_http_request_duration_seconds",
                &format!("route=\"{}\"", label(route)),
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP strata_segment_update_seconds From the store's durable acceptance of an ingestion request to live segment membership updated.\n# TYPE strata_segment_update_seconds histogram"
    );
    if let Ok(h) = state.metrics.segment_update.lock() {
        h.write(&mut out, "strata_segment_update_seconds", "");
    }
    let s = state.store.stats();
    for (name, help, value) in [
        (
            "strata_store_commits_total",
            "Durable write transactions.",
            s.commits,
        ),
        ("strata_events_stored_total", "Messages stored.", s.stored),
        (
            "strata_events_duplicate_total",
            "Messages dropped as duplicates of a stored messageId.",
            s.duplicates,
        ),
        (
            "strata_events_store_rejected_total",
            "Messages the store refused (no usable identity).",
            s.rejected,
        ),
        (
            "strata_profile_limits_hit_total",
            "Merges, identities and traits left out by per-profile limits.",
            s.limited,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    for (name, help, value) in [
        (
            "strata_store_apply_seconds_total",
            "Time the writer spent applying messages (identity, profiles, log).",
            s.apply_seconds,
        ),
        (
            "strata_store_commit_seconds_total",
            "Time the writer spent writing and syncing commits.",
            s.commit_seconds,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    let rejected = state
        .metrics
        .rejections
        .snapshot()
        .into_iter()
        .map(|(code, n)| format!("strata_events_rejected_total{{code=\"{code}\"}} {n}\n"))
        .collect::<String>();
    let _ = write!(
        out,
        "# HELP strata_events_rejected_total Messages refused at validation, by code.\n# TYPE strata_events_rejected_total counter\n{rejected}"
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        out,
    )
        .into_response()
}

/// Validation rejections by code.
#[derive(Debug, Default)]
pub(crate) struct Rejections(Mutex<BTreeMap<&'static str, u64>>);

impl Rejections {
    pub(crate) fn add(&self, code: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(code).or_default() += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}
