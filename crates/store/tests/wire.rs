//! Segment request bodies: what is accepted, corrected and refused, message by message.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::json;
use strata_store::wire::{MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES, Shape, parse};
use strata_store::{Kind, Message};

const NOW: i64 = 1_800_000_000_000_000; // µs

fn one(body: &serde_json::Value, kind: Option<Kind>) -> Result<Message, String> {
    let bytes = serde_json::to_vec(body).unwrap();
    let r = parse(&bytes, Shape::Single(kind), NOW, 7).map_err(|e| e.code.to_string())?;
    r.messages
        .into_iter()
        .next()
        .unwrap()
        .map_err(|e| e.code.to_string())
}

#[test]
fn a_track_call_is_read_with_skew_corrected_time_and_a_generated_id() {
    // The client clock is 10 s fast: sentAt − originalTimestamp = 2 s before it was sent.
    let m = one(
        &json!({
            "userId": 42, "event": "Order Completed", "properties": {"revenue": 9.5},
            "originalTimestamp": "2027-01-15T08:00:08Z", "sentAt": "2027-01-15T08:00:10Z"
        }),
        Some(Kind::Track),
    )
    .unwrap();
    assert_eq!(m.kind, Kind::Track);
    assert_eq!(m.user_id.as_deref(), Some("42"));
    assert_eq!(m.event.as_deref(), Some("Order Completed"));
    assert_eq!(m.timestamp, NOW - 2_000_000);
    assert_eq!(m.received_at, NOW);
    assert!(m.message_id.starts_with("strata-"));
    assert_eq!(m.body["messageId"], m.message_id.as_str());
    assert_eq!(m.body["type"], "track");
    assert!(m.body["receivedAt"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_batch_shares_its_context_and_keeps_good_messages_beside_bad_ones() {
    let body = json!({
        "writeKey": "wk",
        "context": {"library": {"name": "analytics-python"}, "ip": "1.2.3.4"},
        "batch": [
            {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "m1",
             "context": {"ip": "5.6.7.8"}},
            {"type": "track", "anonymousId": "a1"},
            {"type": "launch", "userId": "u1"},
            {"type": "page", "userId": null, "anonymousId": null},
            {"type": "alias", "userId": "u1"},
            {"type": "group", "userId": "u1", "groupId": "g1", "traits": "not an object"},
            "not an object",
            {"type": "page", "anonymousId": "a2", "messageId": "x".repeat(101)}
        ]
    });
    let r = parse(&serde_json::to_vec(&body).unwrap(), Shape::Batch, NOW, 1).unwrap();
    assert_eq!(r.write_key.as_deref(), Some("wk"));
    let codes: Vec<&str> = r
        .messages
        .iter()
        .map(|m| m.as_ref().map_or_else(|e| e.code, |_| "ok"))
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "missing_event",
            "invalid_type",
            "missing_identity",
            "missing_field",
            "invalid_field",
            "invalid_message",
            "invalid_field"
        ]
    );
    let m = r.messages[0].as_ref().unwrap();
    assert_eq!(m.traits["plan"], "pro");
    // The message's own context keys win; the batch fills in the rest.
    assert_eq!(m.body["context"]["ip"], "5.6.7.8");
    assert_eq!(m.body["context"]["library"]["name"], "analytics-python");
}

#[test]
fn unreadable_and_oversized_requests_are_refused_whole() {
    let code = |body: &[u8], shape| parse(body, shape, NOW, 1).unwrap_err().code;
    assert_eq!(code(b"{not json", Shape::Batch), "invalid_json");
    assert_eq!(code(b"[1, 2]", Shape::Single(None)), "invalid_json");
    assert_eq!(code(br#"{"batch": {}}"#, Shape::Batch), "invalid_batch");
    let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
    assert_eq!(code(&huge, Shape::Batch), "request_too_large");
    // 10,000 levels of nesting: refused, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(r#"{{"userId": "u", "event": "e", "properties": {{"x": {deep}}}}}"#);
    assert_eq!(
        code(body.as_bytes(), Shape::Single(Some(Kind::Track))),
        "invalid_json"
    );
    let many = json!({"batch": vec![json!({"type": "page", "userId": "u"}); 2_501]});
    assert_eq!(
        code(&serde_json::to_vec(&many).unwrap(), Shape::Batch),
        "batch_too_large"
    );
    // One oversized message in a batch is refused alone.
    let big = json!({"batch": [
        {"type": "track", "userId": "u", "event": "e", "properties": {"blob": "x".repeat(MAX_MESSAGE_BYTES)}},
        {"type": "track", "userId": "u", "event": "e"}
    ]});
    let r = parse(&serde_json::to_vec(&big).unwrap(), Shape::Batch, NOW, 1).unwrap();
    assert_eq!(
        r.messages[0].as_ref().unwrap_err().code,
        "message_too_large"
    );
    assert!(r.messages[1].is_ok());
}

#[test]
fn the_path_gives_the_type_and_messages_keep_their_own_ids() {
    let m = one(
        &json!({"anonymousId": "a", "name": "Home", "messageId": "abc"}),
        Some(Kind::Page),
    )
    .unwrap();
    assert_eq!((m.kind, m.message_id.as_str()), (Kind::Page, "abc"));
    assert_eq!(
        one(&json!({"anonymousId": "a"}), None).unwrap_err(),
        "missing_type"
    );
    assert_eq!(
        one(&json!({"type": 3, "userId": "u"}), None).unwrap_err(),
        "invalid_type"
    );
    assert_eq!(
        one(&json!({"userId": ["u"]}), Some(Kind::Page)).unwrap_err(),
        "invalid_field"
    );
    // Without sentAt the client's timestamp is kept; without any, the server's clock.
    let m = one(
        &json!({"userId": "u", "timestamp": "2027-01-15T08:00:00+01:00"}),
        Some(Kind::Page),
    )
    .unwrap();
    assert_eq!(m.timestamp, chrono_micros("2027-01-15T07:00:00Z"));
    assert_eq!(
        one(&json!({"userId": "u"}), Some(Kind::Screen))
            .unwrap()
            .timestamp,
        NOW
    );
}

fn chrono_micros(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .timestamp_micros()
}

#[test]
fn identify_traits_come_from_traits_and_from_context_traits() {
    // RudderStack's SDKs send an identify's traits in context.traits.
    let m = one(
        &serde_json::json!({
            "type": "identify", "userId": "u1",
            "context": { "traits": { "plan": "pro", "email": "a@b.c" } },
            "traits": { "plan": "enterprise" },
        }),
        None,
    )
    .unwrap();
    assert_eq!(m.traits["plan"], "enterprise");
    assert_eq!(m.traits["email"], "a@b.c");
    // Other calls do not set traits from their context.
    let m = one(
        &serde_json::json!({
            "type": "track", "userId": "u1", "event": "E",
            "context": { "traits": { "plan": "pro" } },
        }),
        None,
    )
    .unwrap();
    assert!(m.traits.is_empty());
}
