//! Throughput benchmark of `strata serve` (issue 6): a load generator on loopback.
//!
//! Without `--target`, it starts the server as a child process (this same binary with
//! `--serve <dir>`), on a fresh data directory, so server and load generator are separate
//! processes sharing the machine's cores. Phases:
//! 1. ingest: `--connections` keep-alive connections send 100-event `/v1/batch` requests
//!    (pre-built, unique messageIds, 90% track / 10% identify over `--users` users) in a
//!    closed loop until `--batches` are sent; each 200 is a durable acknowledgement;
//! 2. reads: the same connections read random profiles (`GET /api/profiles/user:<id>`) for
//!    `--read-seconds`.
//!
//! Reports events/s and request latency percentiles for each phase, and the store's events
//! per commit (group commit). Run: `cargo run --release -p strata-server --example
//! serve_load -- --batches 6000`.
//!
//! With `--segments` (issue 7), the 50 segments of `live_bench` are defined and activated
//! first, and the ingest phase is split: `--warm-batches` batches give every user a profile
//! (the first `--users` messages go to each user in turn), then `--batches` more are the
//! measured, sustained load. The server's own histogram of the time from durable acceptance
//! to membership updated (`strata_segment_update_seconds`, one observation per request) is
//! read before and after the measured part; the server's resident memory is read from /proc.
//! `--rate N` paces the measured part at N events/s (each connection sends on a fixed
//! schedule, and a batch's latency counts from its scheduled time, so a late server is not
//! hidden by the client waiting); without it the connections send as fast as answered.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark binary: prints its results and stops loudly on a broken setup"
)]

use base64::Engine as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::io::BufRead as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strata_server::{AppState, Settings};
use strata_store::{ApiKey, KeyKind, Store};

#[path = "../../rules/examples/shared/fifty.rs"]
mod fifty;

const WRITE_KEY: &str = "sk_bench_write_key_0001";
const ADMIN_KEY: &str = "ak_bench_admin_key_0001";
const BATCH: usize = 100;

struct Args {
    batches: usize,
    warm_batches: usize,
    segments: bool,
    rate: Option<f64>,
    connections: usize,
    users: usize,
    read_seconds: f64,
    server_threads: usize,
    target: Option<String>,
    serve: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        batches: 3_000,
        warm_batches: 0,
        segments: false,
        rate: None,
        connections: 32,
        users: 100_000,
        read_seconds: 10.0,
        server_threads: 2,
        target: None,
        serve: None,
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == "--segments" {
            a.segments = true;
            i += 1;
            continue;
        }
        let value = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--warm-batches" => a.warm_batches = value.parse().expect("--warm-batches N"),
            "--rate" => a.rate = Some(value.parse().expect("--rate EVENTS_PER_S")),
            "--batches" => a.batches = value.parse().expect("--batches N"),
            "--connections" => a.connections = value.parse().expect("--connections N"),
            "--users" => a.users = value.parse().expect("--users N"),
            "--read-seconds" => a.read_seconds = value.parse().expect("--read-seconds S"),
            "--server-threads" => a.server_threads = value.parse().expect("--server-threads N"),
            "--target" => a.target = Some(value),
            "--serve" => a.serve = Some(value),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    a
}

/// Server mode: the child process.
fn serve(dir: &str, threads: usize) {
    let store = Store::open(std::path::Path::new(dir)).unwrap();
    for (key, kind) in [(WRITE_KEY, KeyKind::Write), (ADMIN_KEY, KeyKind::Admin)] {
        store
            .add_key(&ApiKey {
                key: key.into(),
                kind,
                name: "bench".into(),
                created_at: 0,
            })
            .unwrap();
    }
    let state = AppState::new(store, Settings::default()).unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("listening on http://{}", listener.local_addr().unwrap());
            strata_server::serve(listener, state, strata_server::shutdown_signal())
                .await
                .unwrap();
        });
}

/// Pre-built request bodies: batches `from..to` of 100 messages with unique ids.
fn bodies(from: usize, to: usize, users: usize) -> Vec<Bytes> {
    let events = fifty::EVENTS;
    (from..to)
        .map(|b| {
            let batch: Vec<serde_json::Value> = (0..BATCH)
                .map(|i| {
                    let n = b * BATCH + i;
                    // Each user in turn first, so that every user has a profile; then a
                    // multiplicative hash spreads consecutive messages over the users.
                    let user = if n < users { n } else { (n.wrapping_mul(2_654_435_761) >> 3) % users };
                    if n.is_multiple_of(10) {
                        json!({
                            "type": "identify", "messageId": format!("bench-{n}"),
                            "userId": format!("user-{user}"),
                            "traits": { "email": format!("user-{user}@example.com"), "plan": if n.is_multiple_of(2) { "free" } else { "pro" }, "visits": n % 97 },
                            "timestamp": "2026-11-24T10:00:00.000Z",
                            "context": { "library": { "name": "analytics-python", "version": "2.4.0" }, "ip": "10.1.2.3" },
                        })
                    } else {
                        json!({
                            "type": "track", "messageId": format!("bench-{n}"),
                            "userId": format!("user-{user}"), "event": events[n % events.len()],
                            "properties": properties(events[n % events.len()], n),
                            "timestamp": "2026-11-24T10:00:00.000Z",
                            "context": { "library": { "name": "analytics-python", "version": "2.4.0" }, "ip": "10.1.2.3" },
                        })
                    }
                })
                .collect();
            Bytes::from(serde_json::to_vec(&json!({ "batch": batch, "sentAt": "2026-11-24T10:00:01.000Z" })).unwrap())
        })
        .collect()
}

/// An event's properties: what the 50 segments test, plus a product and a category.
fn properties(event: &str, n: usize) -> serde_json::Value {
    let mut p = fifty::properties(event, (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40);
    if let Some(m) = p.as_object_mut() {
        m.insert("product_id".into(), json!(format!("sku-{}", n % 5_000)));
        m.insert("category".into(), json!("shoes"));
    }
    p
}

/// Resident memory of a process, from /proc (bytes; 0 where unreadable).
fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: &str) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn send(
    sender: &mut Sender,
    addr: &str,
    method: Method,
    path: &str,
    auth: &str,
    body: Bytes,
) -> (u16, Bytes) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("content-type", "application/json")
        .header("authorization", auth)
        .body(Full::new(body))
        .unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

struct Phase {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Phase {
    /// Waits for the workers (each returns its request latencies, µs) of a phase begun at
    /// `start`.
    async fn of(workers: Vec<tokio::task::JoinHandle<Vec<u64>>>, start: Instant) -> Self {
        let mut latencies_us = Vec::new();
        for w in workers {
            latencies_us.extend(w.await.unwrap());
        }
        let seconds = start.elapsed().as_secs_f64();
        latencies_us.sort_unstable();
        Phase {
            requests: latencies_us.len(),
            seconds,
            latencies_us,
        }
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64 / 1_000.0
    }
}

async fn ingest(
    addr: &str,
    connections: usize,
    bodies: Arc<Vec<Bytes>>,
    rate: Option<f64>,
) -> Phase {
    // Each connection's interval between batches at the given rate.
    let interval = rate.map(|r| Duration::from_secs_f64(connections as f64 * BATCH as f64 / r));
    let next = Arc::new(AtomicUsize::new(0));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, next, bodies, auth) = (
                addr.to_string(),
                Arc::clone(&next),
                Arc::clone(&bodies),
                auth.clone(),
            );
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut lat = Vec::new();
                // Connections start spread over one interval.
                let mut due = interval.map(|d| {
                    tokio::time::Instant::from_std(start) + d * c as u32 / connections as u32
                });
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let t = match (due, interval) {
                        (Some(at), Some(d)) => {
                            tokio::time::sleep_until(at).await;
                            due = Some(at + d);
                            at.into_std()
                        }
                        _ => Instant::now(),
                    };
                    let (status, reply) = send(
                        &mut sender,
                        &addr,
                        Method::POST,
                        "/v1/batch",
                        &auth,
                        body.clone(),
                    )
                    .await;
                    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    Phase::of(workers, start).await
}

async fn reads(addr: &str, connections: usize, users: usize, seconds: f64) -> Phase {
    let auth = format!("Bearer {ADMIN_KEY}");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|c| {
            let (addr, auth) = (addr.to_string(), auth.clone());
            tokio::spawn(async move {
                let mut sender = connect(&addr).await;
                let mut lat = Vec::new();
                let mut n = c;
                while Instant::now() < deadline {
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let path = format!("/api/profiles/user:user-{}?events=0", (n >> 33) % users);
                    let t = Instant::now();
                    let (status, _) =
                        send(&mut sender, &addr, Method::GET, &path, &auth, Bytes::new()).await;
                    assert!(status == 200 || status == 404, "status {status}");
                    lat.push(t.elapsed().as_micros() as u64);
                }
                lat
            })
        })
        .collect();
    Phase::of(workers, start).await
}

async fn admin(
    addr: &str,
    method: Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let mut s = connect(addr).await;
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let (status, reply) = send(
        &mut s,
        addr,
        method,
        path,
        &format!("Bearer {ADMIN_KEY}"),
        body,
    )
    .await;
    assert!(
        status < 300,
        "{path}: {status} {}",
        String::from_utf8_lossy(&reply)
    );
    serde_json::from_slice(&reply).unwrap_or(serde_json::Value::Null)
}

/// Defines and activates the 50 benchmark segments (a first profile gives the schema its
/// `plan` trait).
async fn define_segments(addr: &str) {
    let mut s = connect(addr).await;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WRITE_KEY}:"))
    );
    let first = json!({ "type": "identify", "userId": "schema-seed", "traits": { "plan": "pro" } });
    let (status, _) = send(
        &mut s,
        addr,
        Method::POST,
        "/v1/identify",
        &auth,
        Bytes::from(first.to_string()),
    )
    .await;
    assert_eq!(status, 200);
    for (name, rule) in fifty::rule_texts() {
        admin(
            addr,
            Method::POST,
            "/api/segments",
            json!({ "name": name, "rule": rule }),
        )
        .await;
        admin(
            addr,
            Method::POST,
            &format!("/api/segments/{name}/activate"),
            serde_json::Value::Null,
        )
        .await;
    }
}

/// `(count, sum s, [(bound s, cumulative count)])` of the server's acceptance → membership
/// histogram.
fn segment_histogram(stats: &serde_json::Value) -> (u64, f64, Vec<(f64, u64)>) {
    let h = &stats["segment_updates"];
    let buckets = h["within_seconds"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_f64().unwrap_or(f64::NAN),
                        p[1].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        h["count"].as_u64().unwrap_or(0),
        h["sum_seconds"].as_f64().unwrap_or(0.0),
        buckets,
    )
}

fn main() {
    let a = args();
    if let Some(dir) = &a.serve {
        serve(dir, a.server_threads);
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut child: Option<std::process::Child> = None;
    let addr = match &a.target {
        Some(t) => t.clone(),
        None => {
            let mut c = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--serve", &data.path().to_string_lossy()])
                .args(["--server-threads", &a.server_threads.to_string()])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufReader::new(c.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            child = Some(c);
            line.trim()
                .trim_start_matches("listening on http://")
                .to_string()
        }
    };
    println!(
        "building {} + {} batches of {BATCH} events over {} users…",
        a.warm_batches, a.batches, a.users
    );
    let warm = Arc::new(bodies(0, a.warm_batches, a.users));
    let bodies = Arc::new(bodies(a.warm_batches, a.warm_batches + a.batches, a.users));
    let pid = child.as_ref().map(std::process::Child::id);
    let rss = || pid.map_or(0, rss_of);
    let mean_kb =
        bodies.iter().map(Bytes::len).sum::<usize>() as f64 / bodies.len() as f64 / 1024.0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stats_path = "/api/stats";
        let rss_start = rss();
        if a.segments {
            define_segments(&addr).await;
            println!("50 segments defined and active");
        }
        if !warm.is_empty() {
            let w = ingest(&addr, a.connections, Arc::clone(&warm), None).await;
            let stats = admin(&addr, Method::GET, stats_path, serde_json::Value::Null).await;
            let profiles = stats["profiles"].as_f64().unwrap_or(f64::NAN);
            println!(
                "warm-up: {} events in {:.1} s ({:.0} events/s); {profiles} profiles; server resident {:.2} GB, {:.0} bytes per profile over the empty server",
                w.requests * BATCH,
                w.seconds,
                (w.requests * BATCH) as f64 / w.seconds,
                rss() as f64 / 1e9,
                rss().saturating_sub(rss_start) as f64 / profiles,
            );
        }
        let before = segment_histogram(&admin(&addr, Method::GET, stats_path, serde_json::Value::Null).await);
        let w = ingest(&addr, a.connections, bodies, a.rate).await;
        let events = w.requests * BATCH;
        println!(
            "ingest: {events} events in {} batches ({mean_kb:.1} KB each) over {} connections: {:.2} s, {:.0} events/s; batch latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            w.requests,
            a.connections,
            w.seconds,
            events as f64 / w.seconds,
            w.percentile(0.5),
            w.percentile(0.99),
            w.percentile(1.0),
        );
        let (_, stats) = {
            let mut s = connect(&addr).await;
            send(&mut s, &addr, Method::GET, "/api/stats", &format!("Bearer {ADMIN_KEY}"), Bytes::new()).await
        };
        let stats: serde_json::Value = serde_json::from_slice(&stats).unwrap();
        let commits = stats["commits"].as_f64().unwrap_or(f64::NAN);
        println!(
            "store: {} events, {} profiles, {} commits ({:.0} events per durable commit); writer busy {:.2} s applying, {:.2} s writing and syncing",
            stats["events"], stats["profiles"], stats["commits"],
            stats["events"].as_f64().unwrap_or(f64::NAN) / commits,
            stats["writer_apply_seconds"].as_f64().unwrap_or(f64::NAN),
            stats["writer_commit_seconds"].as_f64().unwrap_or(f64::NAN),
        );
        if a.segments {
            let (count, sum, after) = segment_histogram(&stats);
            let n = count - before.0;
            print!("acceptance → membership updated, {n} requests of {BATCH} events:");
            for (i, (bound, c)) in after.iter().enumerate() {
                let c = c - before.2.get(i).map_or(0, |b| b.1);
                if (0.0005..=0.05).contains(bound) {
                    print!(" ≤{:.1} ms {:.2}%", bound * 1e3, 100.0 * c as f64 / n.max(1) as f64);
                }
            }
            println!("; mean {:.2} ms", (sum - before.1) * 1e3 / n.max(1) as f64);
            let list = admin(&addr, Method::GET, "/api/segments", serde_json::Value::Null).await;
            println!("segments: {}", list.to_string().chars().take(600).collect::<String>());
            println!("server resident {:.2} GB", rss() as f64 / 1e9);
        }
        let r = reads(&addr, a.connections, a.users, a.read_seconds).await;
        println!(
            "profile reads: {} in {:.2} s over {} connections: {:.0} reads/s; p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            r.requests,
            r.seconds,
            a.connections,
            r.requests as f64 / r.seconds,
            r.percentile(0.5),
            r.percentile(0.99),
            r.percentile(1.0),
        );
    });
    if let Some(mut c) = child {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
}
