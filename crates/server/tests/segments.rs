//! Rule segments on the live service: definition with checks and versions, preview over
//! history, activation, live membership on ingestion and on timers, a profile's memberships
//! and history, "why", the server-sent-events stream, and restoration after a restart.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{ADMIN_KEY, NOW, server_with};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use strata_server::{AppState, Settings};

const H: i64 = 3_600_000_000;

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_micros(t)
        .unwrap()
        .to_rfc3339()
}

/// A server whose clock the test moves.
fn server() -> (common::Server, Arc<AtomicI64>) {
    server_retrying_after(Settings::default().webhook_retry_base)
}

/// A server whose clock the test moves, retrying webhooks after `base` µs.
fn server_retrying_after(base: i64) -> (common::Server, Arc<AtomicI64>) {
    let clock = Arc::new(AtomicI64::new(NOW));
    let c = Arc::clone(&clock);
    let s = server_with(Settings {
        clock: Arc::new(move || c.load(Ordering::Relaxed)),
        webhook_retry_base: base,
        ..Settings::default()
    });
    (s, clock)
}

async fn admin(
    s: &common::Server,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> common::Reply {
    let auth = format!("Bearer {ADMIN_KEY}");
    let body = body.map_or_else(Vec::new, |b| serde_json::to_vec(&b).unwrap());
    s.request(method, path, &[("authorization", &auth)], body)
        .await
}

/// `POST /api/segments` with a name and a rule.
async fn define(s: &common::Server, name: &str, rule: &str) -> common::Reply {
    let body = json!({ "name": name, "rule": rule });
    admin(s, Method::POST, "/api/segments", Some(body)).await
}

/// `POST /api/segments/{name}/activate` (`name` as it appears in the path).
async fn activate(s: &common::Server, name: &str) -> common::Reply {
    let path = format!("/api/segments/{name}/activate");
    admin(s, Method::POST, &path, None).await
}

async fn track(s: &common::Server, user: &str, event: &str, at: i64, id: &str) {
    let m = json!({ "type": "track", "userId": user, "event": event, "messageId": id, "timestamp": iso(at) });
    let r = s.post("/v1/track", &m).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

#[tokio::test]
async fn a_segment_is_checked_previewed_activated_and_kept_live() {
    let (s, clock) = server();
    let identify = json!({ "type": "identify", "userId": "ada", "traits": { "plan": "pro" }, "messageId": "i1", "timestamp": iso(NOW - 5 * H) });
    assert_eq!(
        s.post("/v1/identify", &identify).await.status,
        StatusCode::OK
    );
    track(&s, "ada", "Product Viewed", NOW - 3 * H, "e1").await;
    track(&s, "ada", "Product Viewed", NOW - 2 * H, "e2").await;
    track(&s, "bob", "Product Viewed", NOW - 2 * H, "e3").await;
    track(&s, "bob", "Order Completed", NOW - H, "e4").await;

    // A bad rule is refused with its position, and nothing is stored.
    let r = define(&s, "Shoppers", "trait plam = \"pro\"").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let body = r.json();
    assert_eq!(
        (
            body["code"].as_str(),
            body["line"].as_u64(),
            body["column"].as_u64()
        ),
        (Some("invalid_rule"), Some(1), Some(7))
    );
    assert!(body["hint"].as_str().unwrap().contains("plan"));
    assert_eq!(
        admin(&s, Method::GET, "/api/segments", None).await.json()["segments"],
        json!([])
    );

    let rule =
        "\"Product Viewed\" at least 2 times within 1d and no \"Order Completed\" within 30d";
    let r = define(&s, "Window shoppers", rule).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["state"], "inactive");
    // Preview over the history, before activation.
    let p = admin(
        &s,
        Method::GET,
        "/api/segments/Window%20shoppers/preview",
        None,
    )
    .await
    .json();
    assert_eq!(
        (p["size"].as_u64(), p["profiles"].as_u64()),
        (Some(1), Some(2))
    );
    let ada = p["sample"][0].as_str().unwrap().to_string();
    // A sample or limit that is not a whole number in range is refused, naming it.
    for (path, name) in [
        (
            "/api/segments/Window%20shoppers/preview?sample=ten",
            "sample",
        ),
        (
            "/api/segments/Window%20shoppers/preview?sample=1001",
            "sample",
        ),
        ("/api/segments/Window%20shoppers/members?limit=0", "limit"),
        ("/api/segments/Window%20shoppers/members?limit=-3", "limit"),
    ] {
        let r = admin(&s, Method::GET, path, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.code(), "invalid_parameter", "{path}");
        let message = r.json()["message"].to_string();
        assert!(message.contains(&format!("`{name}`")), "{path}: {message}");
    }
    // Not active: no members endpoint yet.
    let r = admin(
        &s,
        Method::GET,
        "/api/segments/Window%20shoppers/members",
        None,
    )
    .await;
    assert_eq!(r.code(), "segment_not_active");

    let a = activate(&s, "Window%20shoppers").await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.json());
    assert_eq!(a.json()["members"], 1);
    // Live: a new shopper's second view puts her in at once.
    clock.store(NOW + H, Ordering::Relaxed);
    track(&s, "cyd", "Product Viewed", NOW + H - 10, "e5").await;
    track(&s, "cyd", "Product Viewed", NOW + H - 5, "e6").await;
    let m = admin(
        &s,
        Method::GET,
        "/api/segments/Window%20shoppers/members",
        None,
    )
    .await
    .json();
    assert_eq!(m["size"], 2);
    let cyd = admin(&s, Method::GET, "/api/profiles/user:cyd/segments", None)
        .await
        .json();
    assert_eq!(cyd["segments"], json!(["Window shoppers"]));
    assert_eq!(cyd["history"][0]["change"], "enter");
    // Ada's first view leaves the 1-day window at NOW − 3h + 1d, leaving one: the timer
    // takes her out at that instant.
    assert_eq!(s.state.tick_segments(NOW + 22 * H - 1), Some(NOW + 22 * H));
    s.state.tick_segments(NOW + 22 * H);
    let hist = admin(
        &s,
        Method::GET,
        &format!("/api/profiles/{ada}/segments"),
        None,
    )
    .await
    .json();
    assert_eq!(hist["segments"], json!([]));
    assert_eq!(hist["history"][1]["change"], "exit");
    assert_eq!(
        hist["history"][1]["at"],
        json!(iso(NOW + 21 * H).replace("+00:00", ".000000Z"))
    );
    // Why she is out now.
    clock.store(NOW + 22 * H, Ordering::Relaxed);
    let why = admin(
        &s,
        Method::GET,
        "/api/profiles/user:ada/segments/Window%20shoppers/why",
        None,
    )
    .await
    .json();
    assert_eq!(why["why"]["holds"], false);
    assert!(
        why["why"]["parts"][0]["found"]
            .as_str()
            .unwrap()
            .starts_with("0 matching events"),
        "{why}"
    );
    // A new version is live at once; the versions are kept.
    let r = define(
        &s,
        "Window shoppers",
        "\"Product Viewed\" at least 1 times within 2d",
    )
    .await;
    assert_eq!(r.json()["version"], 2);
    let listed = admin(&s, Method::GET, "/api/segments", None).await.json();
    assert_eq!(
        listed["segments"][0]["versions"].as_array().unwrap().len(),
        2
    );
    assert_eq!(listed["segments"][0]["members"], 3);
    // Deactivated: out of the live set.
    admin(
        &s,
        Method::POST,
        "/api/segments/Window%20shoppers/deactivate",
        None,
    )
    .await;
    assert_eq!(
        admin(&s, Method::GET, "/api/profiles/user:cyd/segments", None)
            .await
            .json()["segments"],
        json!([])
    );
}

#[tokio::test]
async fn an_absence_enters_on_its_timer_and_active_segments_survive_a_restart() {
    let (s, clock) = server();
    let rule = "\"Added to Cart\" then no \"Order Completed\" within 2h";
    define(&s, "Abandoners", rule).await;
    activate(&s, "Abandoners").await;
    track(&s, "dan", "Added to Cart", NOW - H, "c1").await;
    assert_eq!(s.state.tick_segments(NOW), Some(NOW + H));
    clock.store(NOW + H, Ordering::Relaxed);
    s.state.tick_segments(NOW + H);
    let dan = admin(&s, Method::GET, "/api/profiles/user:dan/segments", None)
        .await
        .json();
    assert_eq!(dan["segments"], json!(["Abandoners"]));
    // A restart replays the log and restores the same membership and history.
    let again = AppState::new(
        s.state.store.clone(),
        Settings {
            clock: Arc::new(move || NOW + H),
            ..Settings::default()
        },
    )
    .unwrap();
    let router = strata_server::router(again);
    let auth = format!("Bearer {ADMIN_KEY}");
    let req = axum::http::Request::get("/api/profiles/user:dan/segments")
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["segments"], json!(["Abandoners"]));
    assert_eq!(body["history"][0]["change"], "enter");
}

#[tokio::test]
async fn changes_stream_as_server_sent_events() {
    let (s, _clock) = server();
    define(&s, "Viewers", "\"Product Viewed\" within 1h").await;
    activate(&s, "Viewers").await;
    let auth = format!("Bearer {ADMIN_KEY}");
    let req = axum::http::Request::get("/api/segments/changes")
        .header("authorization", auth)
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(s.router.clone(), req)
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    track(&s, "eve", "Product Viewed", NOW - 10, "v1").await;
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8(frame.to_vec()).unwrap();
    assert!(text.starts_with("event: enter\ndata: {"), "{text}");
    assert!(text.contains("\"segment\":\"Viewers\""), "{text}");
}

/// A receiver that fails every other request, and records what it acknowledged.
async fn flaky_receiver() -> (String, Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use std::sync::atomic::AtomicUsize;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (g, c) = (Arc::clone(&got), Arc::clone(&calls));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, c) = (Arc::clone(&g), Arc::clone(&c));
                async move {
                    if c.fetch_add(1, Ordering::Relaxed) % 2 == 0 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers["x-strata-signature"].to_str().unwrap().to_string();
                    g.lock()
                        .unwrap()
                        .push((String::from_utf8(body.to_vec()).unwrap(), sig));
                    StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn a_webhook_that_fails_half_the_time_still_gets_every_change_signed() {
    let (s, clock) = server_retrying_after(1);
    let (url, got) = flaky_receiver().await;
    let r = admin(
        &s,
        Method::POST,
        "/api/webhooks",
        Some(json!({ "url": url, "segments": ["Viewers"] })),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    let r = admin(
        &s,
        Method::POST,
        "/api/webhooks",
        Some(json!({ "url": "https://example.com/x" })),
    )
    .await;
    assert_eq!(r.code(), "invalid_url");
    define(&s, "Viewers", "\"Product Viewed\" within 1h").await;
    activate(&s, "Viewers").await;
    // 12 people enter; an hour later the timer takes them out: 24 changes.
    for i in 0..12 {
        track(
            &s,
            &format!("u{i}"),
            "Product Viewed",
            NOW - 10,
            &format!("w{i}"),
        )
        .await;
    }
    clock.store(NOW + 2 * H, Ordering::Relaxed);
    s.state.tick_segments(NOW + 2 * H);
    // The delivery loop, as the server's task runs it, until nothing waits.
    for _ in 0..200 {
        let (_, waiting) = s.state.deliver_webhooks().await;
        if waiting == 0
            && admin(&s, Method::GET, "/api/webhooks", None).await.json()["webhooks"][0]["waiting"]
                == 0
        {
            break;
        }
        clock.fetch_add(1_000_000, Ordering::Relaxed);
    }
    let got = got.lock().unwrap().clone();
    let mut ids: Vec<String> = got
        .iter()
        .map(|(body, sig)| {
            assert_eq!(
                sig,
                &strata_server::webhooks::signature(&secret, body.as_bytes())
            );
            serde_json::from_str::<Value>(body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24, "every enter and exit arrives at least once");
    assert_eq!(ids.iter().filter(|i| i.contains("|enter|")).count(), 12);
}

/// A k-means model over recency and monetary value, saved as `strata run` saves one: "Big
/// spenders" near 15 days / 200, "Lapsed" near 60 days / 50 (z-scores around 30 days / 100).
/// A customer who spent 20 is a big spender until their last order is 6 days old.
fn saved_model(dir: &std::path::Path) -> std::path::PathBuf {
    let model = strata_ml::SegmentationModel::new(
        "kmeans",
        vec!["recency_days".into(), "monetary".into()],
        strata_ml::Scaler {
            kinds: vec![strata_ml::ScalerKind::ZScore; 2],
            mean: vec![30.0, 100.0],
            std: vec![30.0, 100.0],
        },
        2,
        vec![-0.5, 1.0, 1.0, -0.5],
        vec!["Big spenders".into(), "Lapsed".into()],
        42,
        1_000,
    );
    let path = dir.join("model.json");
    std::fs::write(&path, model.to_json().unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_saved_model_assigns_clusters_live_and_rules_use_them() {
    const DAY: i64 = 24 * H;
    let models = tempfile::tempdir().unwrap();
    let model = strata_server::clusters::LiveModel::load(&saved_model(models.path())).unwrap();
    let clock = Arc::new(AtomicI64::new(NOW));
    let c = Arc::clone(&clock);
    let s = server_with(Settings {
        clock: Arc::new(move || c.load(Ordering::Relaxed)),
        model: Some(Arc::new(model)),
        ..Settings::default()
    });
    // A rule segment may not take a cluster's name; rules may refer to clusters.
    let taken = define(&s, "Lapsed", "\"Email Opened\" within 1d").await;
    assert_eq!(taken.status, StatusCode::BAD_REQUEST, "{}", taken.json());
    let rule = "in segment \"Lapsed\" and not (\"Email Opened\" within 1d)";
    let r = define(&s, "Winback", rule).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    activate(&s, "Winback").await;
    let order = |user: &str, amount: f64, id: &str| {
        json!({ "type": "track", "userId": user, "event": "Order Completed", "messageId": id,
            "timestamp": iso(NOW - H), "properties": { "revenue": amount } })
    };
    for (user, amount, id) in [("ada", 250.0, "o1"), ("bob", 20.0, "o2")] {
        assert_eq!(
            s.post("/v1/track", &order(user, amount, id)).await.status,
            StatusCode::OK
        );
    }
    // A profile without an order is in no cluster.
    track(&s, "cy", "Product Viewed", NOW - H, "v1").await;
    let of = |user: &'static str| {
        let s = &s;
        async move {
            admin(
                s,
                Method::GET,
                &format!("/api/profiles/user:{user}/segments"),
                None,
            )
            .await
            .json()
        }
    };
    assert_eq!(of("ada").await["cluster"], "Big spenders");
    assert_eq!(of("bob").await["segments"], json!(["Big spenders"]));
    assert_eq!(of("cy").await["cluster"], Value::Null);
    // A week later Bob's last order is over 6 days old: the daily re-assignment moves him,
    // and the rule segment over the cluster follows; Ada spent enough to stay.
    clock.store(NOW + 7 * DAY, Ordering::Relaxed);
    s.state.tick_segments(NOW + 7 * DAY);
    let bob = of("bob").await;
    assert_eq!(bob["segments"], json!(["Winback", "Lapsed"]), "{bob}");
    let changes: Vec<(&str, &str)> = bob["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["segment"].as_str().unwrap(),
                c["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("Big spenders", "enter"),
            ("Big spenders", "exit"),
            ("Lapsed", "enter"),
            ("Winback", "enter")
        ]
    );
    assert_eq!(of("ada").await["cluster"], "Big spenders");
    let bob_id = admin(&s, Method::GET, "/api/profiles/user:bob?events=0", None)
        .await
        .json()["id"]
        .clone();
    let lapsed = admin(&s, Method::GET, "/api/segments/Lapsed/members", None)
        .await
        .json();
    assert_eq!(lapsed["members"], json!([bob_id]));
    let listed = admin(&s, Method::GET, "/api/segments", None).await.json();
    assert_eq!(
        listed["model"]["members"],
        json!({ "Big spenders": 1, "Lapsed": 1 })
    );
    // A new order brings Bob back at once, out of the rule segment too.
    let again = json!({ "type": "track", "userId": "bob", "event": "Order Completed", "messageId": "o3",
        "timestamp": iso(NOW + 7 * DAY - 60_000_000), "properties": { "revenue": 20.0 } });
    assert_eq!(s.post("/v1/track", &again).await.status, StatusCode::OK);
    assert_eq!(of("bob").await["segments"], json!(["Big spenders"]));
}

#[tokio::test]
async fn a_scoring_plan_scores_profiles_and_a_decaying_score_leaves_its_segment_on_time() {
    let (s, clock) = server();
    // Bad plans are refused with the signal and field named.
    for (plan, words) in [
        (
            json!({ "name": "lead", "signals": [{ "event": "Demo Requested", "points": 5 }] }),
            "signals[0]: event",
        ),
        (
            json!({ "name": "lead", "signals": [{ "event": "\"Demo\"", "points": 5, "half_life": "0d" }] }),
            "signals[0]: half_life",
        ),
        (
            json!({ "name": "lead", "signals": [{ "event": "\"Demo\"", "points": 0 }] }),
            "non-zero",
        ),
        (
            json!({ "name": "9 lives", "signals": [{ "event": "\"Demo\"", "points": 1 }] }),
            "starting with a letter",
        ),
    ] {
        let r = admin(&s, Method::POST, "/api/scores", Some(plan)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let body = r.json();
        assert_eq!(body["code"], "invalid_plan");
        assert!(body["message"].as_str().unwrap().contains(words), "{body}");
    }
    let plan = json!({ "name": "lead", "signals": [
        { "label": "requested a demo", "event": "\"Demo Requested\"", "points": 50, "half_life": "7d" },
        { "label": "viewed pricing", "event": "\"Page Viewed\" with path = \"/pricing\"", "points": 10, "half_life": "1d", "cap": 20 },
        { "label": "unsubscribed", "event": "\"Unsubscribed\"", "points": -30 }
    ] });
    let r = admin(&s, Method::POST, "/api/scores", Some(plan)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    // Rules see the plan; an unknown plan is refused.
    let unknown = define(&s, "Hot", "score leads >= 30").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let r = define(&s, "Hot", "score lead >= 30").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    activate(&s, "Hot").await;
    track(&s, "ann", "Demo Requested", NOW, "d1").await;
    let pricing = json!({ "type": "track", "userId": "ann", "event": "Page Viewed", "messageId": "p1",
        "timestamp": iso(NOW), "properties": { "path": "/pricing" } });
    assert_eq!(s.post("/v1/track", &pricing).await.status, StatusCode::OK);
    let scores = admin(&s, Method::GET, "/api/profiles/user:ann/scores", None)
        .await
        .json();
    assert_eq!(scores["scores"][0]["score"], 60.0);
    assert_eq!(
        scores["scores"][0]["signals"][0]["label"],
        "requested a demo"
    );
    let ann = admin(&s, Method::GET, "/api/profiles/user:ann/segments", None)
        .await
        .json();
    assert_eq!(ann["segments"], json!(["Hot"]));
    // 50 halving weekly plus 10 halving daily fall under 30 a little after 7·log2(5/3)
    // days; the timer fires at that instant.
    let due = s.state.tick_segments(NOW).unwrap();
    let lower = NOW + (7.0 * 24.0 * H as f64 * (50.0f64 / 30.0).log2()) as i64;
    assert!(due > lower && due < lower + 24 * H, "{due} vs {lower}");
    clock.store(due, Ordering::Relaxed);
    s.state.tick_segments(due);
    let ann = admin(&s, Method::GET, "/api/profiles/user:ann/segments", None)
        .await
        .json();
    assert_eq!(ann["segments"], json!([]));
    assert_eq!(ann["history"][1]["change"], "exit");
    let at = chrono::DateTime::parse_from_rfc3339(ann["history"][1]["at"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    assert_eq!(at, due);
    let scores = admin(&s, Method::GET, "/api/profiles/user:ann/scores", None)
        .await
        .json();
    let now_score = scores["scores"][0]["score"].as_f64().unwrap();
    assert!(now_score < 30.0 && now_score > 29.99, "{now_score}");
    // A plan in use is not removed.
    let r = admin(&s, Method::DELETE, "/api/scores/lead", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["code"], "plan_in_use");
}

#[tokio::test]
async fn a_merge_moves_the_merged_profiles_events_to_the_survivor_at_once() {
    let (s, _clock) = server();
    admin(
        &s,
        Method::POST,
        "/api/segments",
        Some(
            json!({ "name": "Browsers", "rule": "\"Product Viewed\" at least 2 times within 1h" }),
        ),
    )
    .await;
    activate(&s, "Browsers").await;
    let view = |who: (&str, &str), id: &str, at: i64| json!({ "type": "track", who.0: who.1, "event": "Product Viewed", "messageId": id, "timestamp": iso(at) });
    for (who, id, at) in [
        (("anonymousId", "a-1"), "v1", NOW - 120_000_000),
        (("anonymousId", "a-2"), "v2", NOW - 110_000_000),
        (("anonymousId", "a-2"), "v3", NOW - 100_000_000),
        (("userId", "ada"), "v4", NOW - 60_000_000),
    ] {
        assert_eq!(
            s.post("/v1/track", &view(who, id, at)).await.status,
            StatusCode::OK
        );
    }
    let members = || async {
        admin(&s, Method::GET, "/api/segments/Browsers/members", None)
            .await
            .json()["members"]
            .clone()
    };
    let a2 = admin(&s, Method::GET, "/api/profiles/anon:a-2?events=0", None)
        .await
        .json()["id"]
        .clone();
    assert_eq!(members().await, json!([a2]));
    // Ada logs in on both devices: each identify merges an anonymous profile into hers.
    for (anon, id) in [("a-1", "i1"), ("a-2", "i2")] {
        let login = json!({ "type": "identify", "userId": "ada", "anonymousId": anon, "messageId": id, "timestamp": iso(NOW) });
        assert_eq!(s.post("/v1/identify", &login).await.status, StatusCode::OK);
    }
    let ada = admin(&s, Method::GET, "/api/profiles/user:ada/segments", None)
        .await
        .json();
    assert_eq!(ada["segments"], json!(["Browsers"]), "{ada}");
    let survivor = ada["profile"].clone();
    assert_eq!(members().await, json!([survivor]));
    // A restart replays the log by survivor: the same answer.
    let again = AppState::new(
        s.state.store.clone(),
        Settings {
            clock: Arc::new(|| NOW),
            ..Settings::default()
        },
    )
    .unwrap();
    let router = strata_server::router(again);
    let req = axum::http::Request::get("/api/segments/Browsers/members")
        .header("authorization", format!("Bearer {ADMIN_KEY}"))
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(router, req).await.unwrap();
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["members"], json!([survivor]));
}
