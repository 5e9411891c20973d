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
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
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
        let h = l.entry(route).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
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
            let route = label(route);
            for (b, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "strata_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{b}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "strata_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nstrata_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\nstrata_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
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
