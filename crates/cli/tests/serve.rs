//! `strata serve` as a process: SIGKILL in the middle of a load loses no acknowledged event,
//! SIGTERM finishes the requests in flight, and the real Segment and RudderStack Python SDKs
//! work against it (when `STRATA_TEST_PYTHON` names a Python with both installed; `.ci/run`
//! installs them from PyPI).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strata_store::Store;

const WRITE_KEY: &str = "sk_serve_test_write_0001";
const ADMIN_KEY: &str = "ak_serve_test_admin_0001";

/// One HTTP/1.1 request on its own connection: (status, body).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let status = std::str::from_utf8(&raw[..split])
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// Runs a command to completion and fails the test with its output unless it succeeds.
fn succeeds(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn admin_json(addr: &str, path: &str) -> Value {
    let auth = format!("Bearer {ADMIN_KEY}");
    let (status, body) = http(addr, "GET", path, &[("Authorization", &auth)], b"").unwrap();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

struct Served {
    child: Child,
    addr: String,
}

impl Served {
    fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&std::ffi::OsStr]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--write-key",
                WRITE_KEY,
                "--admin-key",
                ADMIN_KEY,
                "--data",
            ])
            .arg(data)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        Self { child, addr }
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(mut self) -> (bool, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status.success(), err)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn batch_body(thread: usize, batch: usize) -> Vec<u8> {
    let messages: Vec<Value> = (0..50)
        .map(|i| {
            json!({
                "type": "track",
                "messageId": format!("t{thread}-b{batch}-{i}"),
                "userId": format!("user-{thread}"),
                "event": "Product Viewed",
                "properties": { "i": i },
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "batch": messages, "writeKey": WRITE_KEY })).unwrap()
}

/// Sends batches from `threads` threads until `stop` or an error; returns, per thread, the
/// batches acknowledged with a 2xx.
fn load(
    addr: &str,
    threads: usize,
    stop: &Arc<AtomicBool>,
    acked: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<usize>>> {
    (0..threads)
        .map(|t| {
            let (addr, stop, acked) = (addr.to_string(), Arc::clone(stop), Arc::clone(acked));
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                for b in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match http(
                        &addr,
                        "POST",
                        "/v1/batch",
                        &[("Content-Type", "application/json")],
                        &batch_body(t, b),
                    ) {
                        Ok((200, _)) => {
                            ok.push(b);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((status, body)) => {
                            panic!("batch {b}: {status} {}", String::from_utf8_lossy(&body))
                        }
                        // The server is gone: this batch's fate is unknown, as for an SDK.
                        Err(_) => break,
                    }
                }
                ok
            })
        })
        .collect()
}

fn wait_for(acked: &AtomicUsize, n: usize) {
    let start = Instant::now();
    while acked.load(Ordering::Relaxed) < n {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the load is stuck"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every message id in the store and how often it occurs.
fn stored_ids(data: &Path) -> HashMap<String, usize> {
    let store = Store::open(data).unwrap();
    let mut ids = HashMap::new();
    store
        .for_each_event(|e| {
            *ids.entry(e.message.message_id).or_insert(0) += 1;
            Ok(())
        })
        .unwrap();
    ids
}

#[test]
fn sigkill_in_the_middle_of_a_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path());
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let threads = load(&served.addr, 4, &stop, &acked);
    wait_for(&acked, 40);
    drop(served); // SIGKILL while batches are in flight
    let per_thread: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let acknowledged: usize = per_thread.iter().map(Vec::len).sum();
    assert!(acknowledged >= 40);

    // After a restart every acknowledged event is there; SDK-style retries of every batch
    // (acknowledged or not) store the missing ones and duplicate nothing.
    let served = Served::start(dir.path());
    let stats = admin_json(&served.addr, "/api/stats");
    assert!(stats["events"].as_u64().unwrap() >= (acknowledged * 50) as u64);
    let sent: Vec<(usize, usize)> = per_thread
        .iter()
        .enumerate()
        .flat_map(|(t, ok)| (0..=ok.last().map_or(0, |l| l + 1)).map(move |b| (t, b)))
        .collect();
    for &(t, b) in &sent {
        let (status, body) =
            http(&served.addr, "POST", "/v1/batch", &[], &batch_body(t, b)).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        if per_thread[t].contains(&b) {
            let reply: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                reply["duplicates"], 50,
                "acknowledged batch {t}/{b} was not all there"
            );
        }
    }
    let (clean, _) = served.terminate();
    assert!(clean);
    let ids = stored_ids(dir.path());
    for (t, ok) in per_thread.iter().enumerate() {
        for b in ok {
            for i in 0..50 {
                assert_eq!(ids.get(&format!("t{t}-b{b}-{i}")), Some(&1));
            }
        }
    }
    assert!(ids.values().all(|&n| n == 1));
    assert_eq!(ids.len(), sent.len() * 50);
}

#[test]
fn sigterm_finishes_the_requests_in_flight_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path());
    let (stop, acked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let threads = load(&served.addr, 3, &stop, &acked);
    wait_for(&acked, 20);
    let (clean, stderr) = served.terminate();
    stop.store(true, Ordering::Relaxed);
    assert!(clean, "{stderr}");
    assert!(stderr.contains("strata serve: stopped;"), "{stderr}");
    let per_thread: Vec<Vec<usize>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ids = stored_ids(dir.path());
    for (t, ok) in per_thread.iter().enumerate() {
        for b in ok {
            assert!(
                ids.contains_key(&format!("t{t}-b{b}-49")),
                "acknowledged {t}/{b} lost"
            );
        }
    }
}

#[test]
fn the_segment_and_rudderstack_python_sdks_work_unchanged() {
    let Ok(python) = std::env::var("STRATA_TEST_PYTHON") else {
        eprintln!(
            "skipped: set STRATA_TEST_PYTHON to a Python with segment-analytics-python and rudder-sdk-python (.ci/run does)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/send_with_sdks.py");
    succeeds(
        Command::new(python)
            .arg(&script)
            .arg(format!("http://{}", served.addr))
            .arg(WRITE_KEY),
    );
    // Ada: visitor-1's page and product view, the identify that linked them, the order, the
    // alias, group and screen (Segment SDK), and a later identify (RudderStack SDK).
    let ada = admin_json(
        &served.addr,
        "/api/profiles/user:ada?events=100&history=true",
    );
    let identities: BTreeSet<&str> = ada["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        identities,
        BTreeSet::from(["anon:visitor-1", "user:ada", "user:ada-legacy-id"])
    );
    assert_eq!(ada["traits"]["email"], "ada@example.com");
    assert_eq!(ada["traits"]["plan"], "pro");
    assert_eq!(ada["consent"]["marketing"]["granted"], true);
    let kinds: BTreeSet<&str> = ada["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["alias", "group", "identify", "page", "screen", "track"])
    );
    assert_eq!(ada["events"], 8);
    // The SDK's own context came through.
    let library = &ada["recent_events"][0]["message"]["body"]["context"]["library"]["name"];
    assert!(library.is_string(), "{library}");
    // Grace: 121 events through gzip batches.
    let grace = admin_json(&served.addr, "/api/profiles/user:grace?events=0");
    assert_eq!(grace["events"], 121);
    assert_eq!(grace["traits"]["plan"], "pro");
    let found = admin_json(&served.addr, "/api/profiles?trait.plan=pro");
    assert_eq!(found["profiles"].as_array().unwrap().len(), 2);
    let (clean, _) = served.terminate();
    assert!(clean);
}

#[test]
fn strata_run_segments_the_live_store_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = Served::start(&data);
    // 120 customers in three kinds: frequent big spenders, occasional small buyers and
    // one-off buyers long ago; each has an identify and Order Completed events. Times are
    // relative to today (the server's clock is the real one), `as_of` is today's midnight.
    let day = 86_400i64;
    let end = chrono::Utc::now().timestamp().div_euclid(day) * day;
    let as_of = chrono::DateTime::from_timestamp(end, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let mut batch = Vec::new();
    for c in 0..120usize {
        let user = format!("shopper-{c}");
        batch.push(json!({ "type": "identify", "userId": user, "messageId": format!("id-{c}"),
            "timestamp": "2025-01-01T00:00:00Z",
            "traits": { "email": format!("{user}@example.com"), "firstName": "Shop", "lastName": format!("Per {c}") } }));
        let (orders, spend, last_days_ago) = match c % 3 {
            0 => (12, 150.0, 3),
            1 => (3, 20.0, 60),
            _ => (1, 35.0, 300),
        };
        for o in 0..orders {
            let t = end - (last_days_ago + o * 9 + (c as i64 % 5)) * day;
            let when = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
            batch.push(json!({ "type": "track", "userId": user, "event": "Order Completed",
                "messageId": format!("o-{c}-{o}"), "timestamp": when,
                "properties": { "order_id": format!("{c}-{o}"), "revenue": spend + (o as f64), "currency": "USD" } }));
        }
    }
    for chunk in batch.chunks(500) {
        let body = serde_json::to_vec(&json!({ "batch": chunk, "writeKey": WRITE_KEY })).unwrap();
        let (status, reply) = http(&served.addr, "POST", "/v1/batch", &[], &body).unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    }
    let config = dir.path().join("strata.toml");
    std::fs::write(
        &config,
        format!("[run]\nas_of = \"{as_of}\"\n\n[sources.orders]\npath = \"data\"\nformat = \"strata_store\"\n\n\
         [sources.customers]\npath = \"data\"\n\n[segmentation]\nstability_runs = 0\n"),
    )
    .unwrap();
    succeeds(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["run", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(dir.path().join("out")),
    );
    let assignments = std::fs::read_to_string(dir.path().join("out/assignments.csv")).unwrap();
    let rows: Vec<&str> = assignments.lines().skip(1).collect();
    assert_eq!(rows.len(), 120);
    // Customer ids are the store's profile ids.
    assert!(rows.iter().all(|r| r.starts_with('p')), "{}", rows[0]);
    // The server kept serving meanwhile.
    let stats = admin_json(&served.addr, "/api/stats");
    assert_eq!(stats["profiles"], 120);
    let (clean, _) = served.terminate();
    assert!(clean);
    // The model that run saved assigns the live profiles: restarted with `--model`, the
    // server puts every customer in the segment the batch run gave it (the features differ
    // only by the hours since `as_of`).
    let model_path = dir.path().join("out/model.json");
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let names: Vec<&str> = model["segment_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let served = Served::start_with(&data, &["--model".as_ref(), model_path.as_os_str()]);
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for row in &rows {
        let mut cells = row.split(',');
        let (id, segment_id) = (cells.next().unwrap(), cells.next().unwrap());
        let batch = names[segment_id.parse::<usize>().unwrap()];
        let live = admin_json(&served.addr, &format!("/api/profiles/{id}/segments"));
        assert_eq!(live["cluster"], batch, "{id}: {live}");
        *sizes.entry(batch).or_default() += 1;
    }
    let listed = admin_json(&served.addr, "/api/segments");
    for (name, n) in sizes {
        assert_eq!(listed["model"]["members"][name], n, "{listed}");
    }
    let (clean, _) = served.terminate();
    assert!(clean);
}
