//! Segment's HTTP Tracking API bodies → validated [`Message`]s: one message (`/v1/track`,
//! `/v1/t`, …) or a batch (`/v1/batch`, `/v1/import`, `/v1/b`). Limits are Segment's (32 KB a
//! message, 500 KB a request, 2,500 messages a batch). A bad message is rejected on its own
//! with a reason; only a body that cannot be read at all rejects the whole request.
//!
//! Time: `receivedAt` is the server's clock; with `sentAt`, the client's clock skew is
//! removed: `timestamp = receivedAt − (sentAt − originalTimestamp)`.

use crate::{Kind, Message};
use serde_json::{Map, Value};

pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;
pub const MAX_REQUEST_BYTES: usize = 500 * 1024;
pub const MAX_BATCH_MESSAGES: usize = 2_500;

/// Why a request or a message was refused: a stable code and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub message: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// What the body holds: one message (its type from the path, if the path says) or a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Single(Option<Kind>),
    Batch,
}

/// A parsed request: the write key found in the body, and each message or its rejection.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub write_key: Option<String>,
    pub messages: Vec<Result<Message, Rejection>>,
}

/// The type of a message from its `type` field or the path's first letter.
pub fn kind_of(name: &str) -> Option<Kind> {
    Some(match name {
        "identify" | "i" => Kind::Identify,
        "track" | "t" => Kind::Track,
        "page" | "p" => Kind::Page,
        "screen" | "s" => Kind::Screen,
        "group" | "g" => Kind::Group,
        "alias" | "a" => Kind::Alias,
        _ => return None,
    })
}

/// RFC 3339 / ISO 8601 with a zone → µs since the epoch.
fn parse_time(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn format_time(micros: i64) -> Value {
    chrono::DateTime::from_timestamp_micros(micros).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    })
}

/// An identifier: a non-empty string, or a number written as one.
fn identifier(m: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(reject(
            "invalid_field",
            format!("`{field}` must be a string, not {}", type_name(other)),
        )),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses a request body (already decompressed). `received_at` is the server clock (µs);
/// `request_id` makes generated message ids unique per request.
pub fn parse(
    body: &[u8],
    shape: Shape,
    received_at: i64,
    request_id: u64,
) -> Result<Request, Rejection> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(reject(
            "request_too_large",
            format!(
                "the request body is {} bytes; the limit is {MAX_REQUEST_BYTES}",
                body.len()
            ),
        ));
    }
    // serde_json refuses nesting deeper than 128 levels, so a hostile body cannot exhaust
    // the stack.
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| reject("invalid_json", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(reject("invalid_json", "the body must be a JSON object"));
    };
    let write_key = top
        .get("writeKey")
        .and_then(Value::as_str)
        .map(str::to_string);
    let raw: Vec<(Value, Option<Kind>)> = match shape {
        Shape::Single(kind) => vec![(Value::Object(top), kind)],
        Shape::Batch => {
            let Some(Value::Array(items)) = top.remove("batch") else {
                return Err(reject("invalid_batch", "a batch needs a `batch` array"));
            };
            if items.len() > MAX_BATCH_MESSAGES {
                return Err(reject(
                    "batch_too_large",
                    format!(
                        "{} messages in one batch; the limit is {MAX_BATCH_MESSAGES}",
                        items.len()
                    ),
                ));
            }
            // Batch-level context, integrations and sentAt apply to every message.
            let shared: Vec<(String, Value)> = ["context", "integrations", "sentAt"]
                .iter()
                .filter_map(|k| top.get(*k).map(|v| (k.to_string(), v.clone())))
                .collect();
            items
                .into_iter()
                .map(|mut item| {
                    if let Value::Object(m) = &mut item {
                        for (k, v) in &shared {
                            merge_into(m, k, v);
                        }
                    }
                    (item, None)
                })
                .collect()
        }
    };
    let messages = raw
        .into_iter()
        .enumerate()
        .map(|(i, (v, kind))| message(v, kind, received_at, request_id, i))
        .collect();
    Ok(Request {
        write_key,
        messages,
    })
}

/// Bytes of `value` as compact JSON, counted without building the text (the store encodes
/// each message once, later).
fn encoded_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    serde_json::to_writer(&mut n, value).map_or(usize::MAX, |()| n.0)
}

/// Adds a batch-level field to a message; for objects, the message's own keys win.
fn merge_into(m: &mut Map<String, Value>, key: &str, shared: &Value) {
    match (m.get_mut(key), shared) {
        (None, _) => {
            m.insert(key.to_string(), shared.clone());
        }
        (Some(Value::Object(own)), Value::Object(base)) => {
            for (k, v) in base {
                own.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        _ => {}
    }
}

fn message(
    value: Value,
    path_kind: Option<Kind>,
    received_at: i64,
    request_id: u64,
    index: usize,
) -> Result<Message, Rejection> {
    let size = encoded_len(&value);
    if size > MAX_MESSAGE_BYTES {
        return Err(reject(
            "message_too_large",
            format!("message {index} is {size} bytes; the limit is {MAX_MESSAGE_BYTES}"),
        ));
    }
    let Value::Object(mut m) = value else {
        return Err(reject(
            "invalid_message",
            format!("message {index} is not a JSON object"),
        ));
    };
    let kind = match m.get("type") {
        Some(Value::String(t)) => kind_of(t).ok_or_else(|| {
            reject(
                "invalid_type",
                format!("message {index}: unknown type `{t}` (identify, track, page, screen, group or alias)"),
            )
        })?,
        Some(other) => {
            return Err(reject(
                "invalid_type",
                format!("message {index}: `type` must be a string, not {}", type_name(other)),
            ));
        }
        None => path_kind.ok_or_else(|| {
            reject("missing_type", format!("message {index} has no `type`"))
        })?,
    };
    let user_id = identifier(&m, "userId")?;
    let anonymous_id = identifier(&m, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(reject(
            "missing_identity",
            format!("message {index} has neither `userId` nor `anonymousId`"),
        ));
    }
    let text = |m: &Map<String, Value>, field: &str| -> Result<Option<String>, Rejection> {
        match m.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(reject(
                "invalid_field",
                format!(
                    "message {index}: `{field}` must be a string, not {}",
                    type_name(other)
                ),
            )),
        }
    };
    let event = text(&m, "event")?;
    if kind == Kind::Track && event.as_deref().is_none_or(|e| e.trim().is_empty()) {
        return Err(reject(
            "missing_event",
            format!("message {index}: a track call needs an `event` name"),
        ));
    }
    let previous_id = identifier(&m, "previousId")?;
    if kind == Kind::Alias && (previous_id.is_none() || user_id.is_none()) {
        return Err(reject(
            "missing_field",
            format!("message {index}: an alias needs `previousId` and `userId`"),
        ));
    }
    if kind == Kind::Group && identifier(&m, "groupId")?.is_none() {
        return Err(reject(
            "missing_field",
            format!("message {index}: a group call needs a `groupId`"),
        ));
    }
    for field in ["traits", "properties", "context"] {
        if let Some(v) = m.get(field)
            && !(v.is_object() || v.is_null())
        {
            return Err(reject(
                "invalid_field",
                format!(
                    "message {index}: `{field}` must be an object, not {}",
                    type_name(v)
                ),
            ));
        }
    }
    // An identify's traits: top-level `traits`, plus `context.traits` (where RudderStack's
    // SDKs put them); the top-level value wins for a name in both.
    let mut traits = Map::new();
    if kind == Kind::Identify {
        if let Some(Value::Object(t)) = m.get("context").and_then(|c| c.get("traits")) {
            traits.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(Value::Object(t)) = m.get("traits") {
            traits.extend(t.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    // The client's clock: originalTimestamp, else timestamp; corrected by sentAt.
    let original = m
        .get("originalTimestamp")
        .and_then(parse_time)
        .or_else(|| m.get("timestamp").and_then(parse_time));
    let sent = m.get("sentAt").and_then(parse_time);
    let timestamp = match (original, sent) {
        (Some(o), Some(s)) => received_at - (s - o),
        (Some(o), None) => o,
        (None, _) => received_at,
    };
    let message_id = match m.get("messageId") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 100 => s.clone(),
        Some(Value::String(s)) if s.len() > 100 => {
            return Err(reject(
                "invalid_field",
                format!("message {index}: `messageId` is longer than 100 characters"),
            ));
        }
        _ => format!("strata-{received_at:x}-{request_id:x}-{index}"),
    };
    m.insert("messageId".into(), Value::String(message_id.clone()));
    m.insert("receivedAt".into(), format_time(received_at));
    m.insert("timestamp".into(), format_time(timestamp));
    m.entry("type")
        .or_insert_with(|| Value::String(kind.name().into()));
    Ok(Message {
        message_id,
        kind,
        user_id,
        anonymous_id,
        previous_id,
        event,
        traits,
        timestamp,
        received_at,
        body: Value::Object(m),
    })
}
