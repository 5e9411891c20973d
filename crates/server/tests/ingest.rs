//! The Segment-compatible ingestion API: every path, every way of sending the write key,
//! encodings, deduplication, clock skew, and the bad-input matrix of issue 6 (each a 4xx with
//! a JSON body, nothing else of the batch lost).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN_KEY, NOW, WRITE_KEY, basic, server, server_with};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::Arc;
use strata_server::Settings;
use strata_server::openapi::{BATCH_PATHS, SINGLE_PATHS};

fn message(kind: &str, id: &str, user: &str) -> Value {
    let mut m = json!({ "type": kind, "messageId": id, "userId": user });
    match kind {
        "track" => m["event"] = json!("Product Viewed"),
        "identify" => m["traits"] = json!({ "email": format!("{user}@example.com") }),
        "group" => m["groupId"] = json!("g1"),
        "alias" => m["previousId"] = json!(format!("old-{user}")),
        _ => {}
    }
    m
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn event_count(s: &common::Server) -> u64 {
    s.admin_get("/api/stats").await.json()["events"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn every_segment_path_stores_its_messages() {
    let s = server();
    for (i, path) in SINGLE_PATHS.iter().enumerate() {
        let kind = match *path {
            "i" => "identify",
            "t" => "track",
            "p" => "page",
            "s" => "screen",
            "g" => "group",
            "a" => "alias",
            full => full,
        };
        // The type comes from the path when the body has none.
        let mut m = message(kind, &format!("single-{i}"), &format!("u{i}"));
        m.as_object_mut().unwrap().remove("type");
        let r = s.post(&format!("/v1/{path}"), &m).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json());
        assert_eq!(r.json()["stored"], 1, "{path}");
    }
    for (i, path) in BATCH_PATHS.iter().enumerate() {
        let batch = json!({ "batch": [
            message("track", &format!("b{i}-1"), "u1"),
            message("page", &format!("b{i}-2"), "u2"),
        ] });
        let r = s.post(&format!("/v1/{path}"), &batch).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.json());
        assert_eq!(r.json()["stored"], 2, "{path}");
    }
    // Telemetry is accepted and dropped.
    let r = s.post("/v1/m", &json!({ "series": [] })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        event_count(&s).await,
        (SINGLE_PATHS.len() + 2 * BATCH_PATHS.len()) as u64
    );
}

#[tokio::test]
async fn the_write_key_is_read_from_basic_bearer_or_the_body() {
    let s = server();
    let body = |id: &str, key: Option<&str>| {
        let mut m = message("track", id, "u1");
        if let Some(k) = key {
            m["writeKey"] = json!(k);
        }
        serde_json::to_vec(&m).unwrap()
    };
    let basic_auth = format!("Basic {}", basic(WRITE_KEY));
    let bearer = format!("Bearer {WRITE_KEY}");
    for (id, headers, key) in [
        ("k1", vec![("authorization", basic_auth.as_str())], None),
        ("k2", vec![("authorization", bearer.as_str())], None),
        ("k3", vec![], Some(WRITE_KEY)),
        // A browser's text/plain body with the key inside.
        ("k4", vec![("content-type", "text/plain")], Some(WRITE_KEY)),
    ] {
        let r = s
            .request(Method::POST, "/v1/t", &headers, body(id, key))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.json());
    }
    let refused = [
        (vec![], None, "missing_write_key"),
        (
            vec![],
            Some("sk_not_a_key_of_this_server"),
            "invalid_write_key",
        ),
        (
            vec![("authorization", "Basic %%%not-base64")],
            None,
            "invalid_authorization",
        ),
        // An admin key does not send events.
        (vec![], Some(ADMIN_KEY), "invalid_write_key"),
    ];
    for (i, (headers, key, code)) in refused.into_iter().enumerate() {
        let r = s
            .request(
                Method::POST,
                "/v1/track",
                &headers,
                body(&format!("x{i}"), key),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code}");
        assert_eq!(r.code(), code);
    }
    assert_eq!(event_count(&s).await, 4);
}

#[tokio::test]
async fn gzip_bodies_are_read_and_a_gzip_bomb_is_refused() {
    let s = server();
    // Kotlin's way: gzip, text/plain, the key only in the body, on /v1/b.
    let batch = json!({ "writeKey": WRITE_KEY, "batch": [message("track", "g1", "u1")] });
    let r = s
        .request(
            Method::POST,
            "/v1/b",
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            gzip(&serde_json::to_vec(&batch).unwrap()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    // 50 MB of spaces compress to about 50 KB: refused after reading just past the limit.
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(b"{\"batch\":[").unwrap();
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..50 {
        bomb.write_all(&spaces).unwrap();
    }
    bomb.write_all(b"]}").unwrap();
    let bomb = bomb.finish().unwrap();
    assert!(bomb.len() < 100_000);
    let auth = format!("Basic {}", basic(WRITE_KEY));
    let r = s
        .request(
            Method::POST,
            "/v1/batch",
            &[("authorization", &auth), ("content-encoding", "gzip")],
            bomb,
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "request_too_large");
    // Not gzip at all, and an encoding we do not speak.
    for (encoding, status, code) in [
        ("gzip", StatusCode::BAD_REQUEST, "invalid_encoding"),
        (
            "br",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_encoding",
        ),
    ] {
        let r = s
            .request(
                Method::POST,
                "/v1/track",
                &[("authorization", &auth), ("content-encoding", encoding)],
                b"plain text".to_vec(),
            )
            .await;
        assert_eq!(r.status, status, "{encoding}");
        assert_eq!(r.code(), code);
    }
    assert_eq!(event_count(&s).await, 1);
}

#[tokio::test]
async fn a_message_id_is_stored_once_and_a_missing_one_is_generated() {
    let s = server();
    let batch =
        json!({ "batch": [message("track", "same", "u1"), message("track", "same", "u1")] });
    let r = s.post("/v1/batch", &batch).await;
    assert_eq!(
        (r.json()["stored"].clone(), r.json()["duplicates"].clone()),
        (json!(1), json!(1))
    );
    // An SDK's retry of the same request is a duplicate, and still a success.
    let r = s.post("/v1/batch", &batch).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["duplicates"], 2);
    let mut m = message("track", "", "u1");
    m.as_object_mut().unwrap().remove("messageId");
    for _ in 0..2 {
        assert_eq!(s.post("/v1/track", &m).await.json()["stored"], 1);
    }
    assert_eq!(event_count(&s).await, 3);
    let events = s.admin_get("/api/profiles/user:u1/events").await.json();
    let ids: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0].starts_with("strata-") && ids[1].starts_with("strata-") && ids[0] != ids[1]);
}

#[tokio::test]
async fn client_clock_skew_is_corrected_and_received_at_set() {
    let s = server();
    // The client's clock is an hour fast: it stamped the event at 12:59:50 and sent it at
    // 13:00:00 by its clock; the server received it at 12:00:00, so it happened at 11:59:50.
    let mut m = message("track", "skew", "u1");
    m["originalTimestamp"] = json!("2026-11-24T12:59:50Z");
    m["sentAt"] = json!("2026-11-24T13:00:00Z");
    assert_eq!(s.post("/v1/track", &m).await.status, StatusCode::OK);
    let events = s.admin_get("/api/profiles/user:u1/events").await.json();
    let e = &events["events"][0]["message"];
    assert_eq!(e["timestamp"], NOW - 10_000_000);
    assert_eq!(e["received_at"], NOW);
    assert_eq!(e["body"]["receivedAt"], "2026-11-24T12:00:00.000Z");
    assert_eq!(e["body"]["timestamp"], "2026-11-24T11:59:50.000Z");
}

/// Each bad input: its status and code, a JSON body, and the valid messages sent with it kept.
#[tokio::test]
async fn the_bad_input_matrix() {
    let s = server();
    let auth = format!("Basic {}", basic(WRITE_KEY));
    let raw = |path: &'static str, body: Vec<u8>| {
        let auth = auth.clone();
        let s = &s;
        async move {
            s.request(
                Method::POST,
                path,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    // Invalid JSON, and JSON that is not an object.
    for body in [&b"{\"type\": \"track\","[..], b"[1, 2]", b""] {
        let r = raw("/v1/track", body.to_vec()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "invalid_json");
    }
    // 10,000-deep nesting: refused, no stack overflow.
    let deep = format!(
        "{{\"type\":\"track\",\"userId\":\"u\",\"event\":\"e\",\"properties\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = raw("/v1/track", deep.into_bytes()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_json");
    // One message with wrong types, one without identities, one oversized, one of an
    // unknown type, among valid ones: the valid ones are stored, each bad one is reported.
    let big = "x".repeat(40 * 1024);
    let batch = json!({ "batch": [
        message("track", "ok-1", "u1"),
        { "type": "track", "messageId": "bad-type", "userId": ["u1"], "event": "E" },
        { "type": "track", "messageId": "bad-props", "userId": "u1", "event": "E", "properties": "nope" },
        { "type": "track", "messageId": "no-ids", "event": "E" },
        { "type": "track", "messageId": "blocked", "userId": "undefined", "event": "E" },
        message("page", "ok-2", "u2"),
        { "type": "track", "messageId": "huge", "userId": "u1", "event": "E", "properties": { "blob": big } },
        { "type": "teleport", "messageId": "weird", "userId": "u1" },
        { "type": "track", "messageId": "no-event", "userId": "u1" },
        message("identify", "ok-3", "u3"),
    ] });
    let r = s.post("/v1/batch", &batch).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let body = r.json();
    assert_eq!(body["code"], "invalid_messages");
    assert_eq!(body["stored"], 3);
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "invalid_field"),
            (2, "invalid_field"),
            (3, "missing_identity"),
            (4, "blocked_identity"),
            (6, "message_too_large"),
            (7, "invalid_type"),
            (8, "missing_event"),
        ]
    );
    assert_eq!(event_count(&s).await, 3);
    // A single message on its own path: its own code.
    let r = s
        .post("/v1/identify", &json!({ "traits": { "a": 1 } }))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "missing_identity");
    // Oversized request and too many messages: 413, nothing stored.
    let many: Vec<Value> = (0..2_501)
        .map(|i| json!({ "type": "page", "userId": "u", "messageId": format!("m{i}") }))
        .collect();
    let r = s.post("/v1/batch", &json!({ "batch": many })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "batch_too_large");
    let fat: Vec<Value> = (0..20)
        .map(|i| json!({ "type": "page", "userId": "u", "messageId": format!("f{i}"), "properties": { "p": "y".repeat(30_000) } }))
        .collect();
    let r = s.post("/v1/batch", &json!({ "batch": fat })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "request_too_large");
    // A batch without `batch`.
    let r = s.post("/v1/batch", &json!({ "messages": [] })).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_batch")
    );
    // Unknown paths and methods.
    for (method, path, status, code) in [
        (Method::POST, "/v1/nope", StatusCode::NOT_FOUND, "not_found"),
        (Method::GET, "/nope", StatusCode::NOT_FOUND, "not_found"),
        (
            Method::POST,
            "/v2/track",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/v1/track",
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
    ] {
        let r = s
            .request(method, path, &[("authorization", &auth)], Vec::new())
            .await;
        assert_eq!(r.status, status, "{path}");
        assert_eq!(r.code(), code, "{path}");
    }
    assert_eq!(event_count(&s).await, 3);
    // Every refusal was counted by code.
    let metrics = String::from_utf8(
        s.request(Method::GET, "/metrics", &[], Vec::new())
            .await
            .bytes,
    )
    .unwrap();
    assert!(
        metrics.contains("strata_events_rejected_total{code=\"missing_identity\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("strata_http_requests_total{route=\"/v1/{path}\",status=\"400\"}"));
}

#[tokio::test]
async fn overload_is_a_429_with_retry_after() {
    let s = server_with(Settings {
        max_in_flight: 0,
        clock: Arc::new(|| NOW),
        ..Settings::default()
    });
    let r = s.post("/v1/track", &message("track", "m", "u")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.code(), "overloaded");
}

#[tokio::test]
async fn sdks_get_settings_that_point_back_here() {
    let s = server();
    let r = s
        .request(
            Method::GET,
            &format!("/v1/projects/{WRITE_KEY}/settings"),
            &[("host", "strata.example:8088")],
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let io = &r.json()["integrations"]["Segment.io"];
    assert_eq!(io["apiKey"], WRITE_KEY);
    assert_eq!(io["apiHost"], "strata.example:8088/v1");
    let r = s
        .request(
            Method::GET,
            "/v1/projects/sk_unknown_key_000000/settings",
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "unknown_write_key")
    );
}
