//! Segment's HTTP Tracking API: `/v1/identify` … `/v1/alias`, `/v1/batch`, `/v1/import`, the
//! browser short paths `/v1/t` … `/v1/b`, telemetry `/v1/m`, and the settings SDKs fetch at
//! start-up.
//!
//! A request passes: size limit (raw and, for gzip, decompressed) → JSON → write key (Basic,
//! Bearer or `writeKey` in the body) → per-message validation → the store's durable commit.
//! Valid messages of a batch are stored even when others are rejected; the answer then is
//! 400 with each rejected message's index, code and reason (SDKs do not resend on 400, and
//! a resend would only meet duplicates).

use crate::{ApiError, AppState};
use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;
use std::io::Read as _;
use std::sync::Arc;
use strata_store::wire::{self, MAX_REQUEST_BYTES, Shape};
use strata_store::{KeyKind, Outcome};

/// What a `/v1/{path}` does.
enum Route {
    Messages(Shape),
    Telemetry,
}

fn route_of(path: &str) -> Option<Route> {
    match path {
        "batch" | "import" | "b" => Some(Route::Messages(Shape::Batch)),
        "m" => Some(Route::Telemetry),
        other => wire::kind_of(other).map(|k| Route::Messages(Shape::Single(Some(k)))),
    }
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!("the {what} is larger than the limit of {MAX_REQUEST_BYTES} bytes"),
    )
}

/// The body, decompressed, at most [`MAX_REQUEST_BYTES`] either way.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES) {
        return Err(too_large("request body"));
    }
    let raw = axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|_| too_large("request body"))?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let decoder: Box<dyn std::io::Read> = match encoding.as_deref() {
        None | Some("" | "identity") => return Ok(raw),
        Some("gzip" | "x-gzip") => Box::new(flate2::read::MultiGzDecoder::new(&raw[..])),
        Some("deflate") => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!("Content-Encoding `{other}` is not supported (gzip, deflate or none)"),
            ));
        }
    };
    // Read one byte past the limit: a body that decompresses beyond it (a gzip bomb) is
    // refused after at most that much work.
    let mut out = Vec::new();
    decoder
        .take(MAX_REQUEST_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::bad_request(
                "invalid_encoding",
                format!("the body could not be decompressed: {e}"),
            )
        })?;
    if out.len() > MAX_REQUEST_BYTES {
        return Err(too_large("decompressed request body"));
    }
    Ok(Bytes::from(out))
}

/// The key an `Authorization` header carries: Basic `key:` or Bearer `key`.
pub(crate) fn offered_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::unauthorized(
            "invalid_authorization",
            "the Authorization header must be `Basic base64(<writeKey>:)` or `Bearer <writeKey>`",
        )
    };
    let value = value.to_str().map_err(|_| bad())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let user = text.split_once(':').map_or(text.as_str(), |(u, _)| u);
        Ok((!user.is_empty()).then(|| user.to_string()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok((!rest.is_empty()).then(|| rest.to_string()))
    } else {
        Err(bad())
    }
}

/// Checks that one of the keys offered is a write key.
fn authorize(state: &AppState, offered: &[Option<String>]) -> Result<(), ApiError> {
    let offered: Vec<&str> = offered.iter().flatten().map(String::as_str).collect();
    if offered.is_empty() {
        return Err(ApiError::unauthorized(
            "missing_write_key",
            "no write key: send it as HTTP Basic user (`<writeKey>:`), as a Bearer token or as `writeKey` in the body",
        ));
    }
    if offered
        .iter()
        .any(|k| state.key_kind(k) == Some(KeyKind::Write))
    {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_write_key",
            "the write key is not known to this server",
        ))
    }
}

/// One rejected message of a request.
#[derive(Debug, Serialize)]
struct Rejected {
    index: usize,
    code: &'static str,
    message: String,
}

/// The answer to an ingestion request.
#[derive(Debug, Serialize)]
struct Reply {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    stored: usize,
    duplicates: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Rejected>,
}

/// `POST /v1/{path}`.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(route) = route_of(&path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no such path: /v1/{path} (identify, track, page, screen, group, alias, batch, import, or t, i, p, s, g, a, b, m)"
            ),
        ));
    };
    let bytes = read_body(&headers, body).await?;
    let shape = match route {
        // Telemetry is accepted and dropped, as Segment does.
        Route::Telemetry => return Ok(Json(json!({ "success": true })).into_response()),
        Route::Messages(shape) => shape,
    };
    let from_header = offered_key(&headers)?;
    // A bad key in the header is refused before the body is parsed.
    if from_header.is_some() {
        authorize(&state, std::slice::from_ref(&from_header))?;
    }
    let request = wire::parse(&bytes, shape, state.now(), state.next_request()).map_err(|r| {
        state.metrics.rejections.add(r.code);
        let status = match r.code {
            "request_too_large" | "batch_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.code, r.message)
    })?;
    if from_header.is_none() {
        authorize(&state, &[request.write_key])?;
    }
    let single = matches!(shape, Shape::Single(_));
    let mut rejected = Vec::new();
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, m) in request.messages.into_iter().enumerate() {
        match m {
            Ok(m) => {
                valid.push(m);
                positions.push(index);
            }
            Err(r) => {
                state.metrics.rejections.add(r.code);
                rejected.push(Rejected {
                    index,
                    code: r.code,
                    message: r.message,
                });
            }
        }
    }
    let (mut stored, mut duplicates) = (0, 0);
    // What live segments need of each message, taken before the store owns them.
    let for_segments: Vec<(Option<strata_rules::Event>, bool)> = if state.live.is_active() {
        valid
            .iter()
            .map(|m| {
                let event = (m.kind == strata_store::Kind::Track).then(|| strata_rules::Event {
                    time: m.timestamp,
                    name: m.event.clone().unwrap_or_default(),
                    properties: m
                        .body
                        .get("properties")
                        .cloned()
                        .unwrap_or(serde_json::Value::Null),
                });
                (event, m.kind == strata_store::Kind::Identify)
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut live_events: Vec<(String, strata_rules::Event)> = Vec::new();
    let mut identified: Vec<String> = Vec::new();
    // Profiles merged by these messages: (survivor, merged away).
    let mut merges: Vec<(String, String)> = Vec::new();
    let mut accepted = None;
    if !valid.is_empty() {
        let _permit = state
            .in_flight
            .try_acquire()
            .map_err(|_| ApiError::overloaded())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        state.store.submit(
            valid,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        let result = rx.await;
        accepted = Some(std::time::Instant::now());
        let outcomes = result
            .map_err(|_| ApiError::unavailable("store_unavailable", "the store's writer stopped"))?
            .map_err(|e| ApiError::store(&e))?;
        for (i, (index, o)) in positions.into_iter().zip(outcomes).enumerate() {
            match o {
                Outcome::Stored {
                    profile, merged, ..
                } => {
                    stored += 1;
                    merges.extend(merged.into_iter().map(|m| (profile.clone(), m)));
                    if let Some((event, identify)) = for_segments.get(i) {
                        if let Some(e) = event {
                            live_events.push((profile.clone(), e.clone()));
                        }
                        if *identify {
                            identified.push(profile);
                        }
                    }
                }
                Outcome::Duplicate { .. } => duplicates += 1,
                Outcome::Rejected(reason) => {
                    state.metrics.rejections.add("blocked_identity");
                    rejected.push(Rejected {
                        index,
                        code: "blocked_identity",
                        message: format!("message {index}: {reason}"),
                    });
                }
            }
        }
    }
    if state.live.is_active()
        && (!live_events.is_empty() || !identified.is_empty() || !merges.is_empty())
    {
        // Membership moves before the answer, so a client that reads its segments after a
        // 2xx sees the event's effect.
        let st = Arc::clone(&state);
        let now = state.now();
        let _ = tokio::task::spawn_blocking(move || {
            let changes = st
                .live
                .on_stored(&st.store, &live_events, &identified, &merges, now);
            if let (Some(at), Ok(mut h)) = (accepted, st.metrics.segment_update.lock()) {
                h.observe(at.elapsed().as_secs_f64());
            }
            crate::webhooks::enqueue(&st, &changes, now);
        })
        .await;
    }
    if rejected.is_empty() {
        return Ok(Json(Reply {
            success: true,
            code: None,
            message: None,
            stored,
            duplicates,
            rejected,
        })
        .into_response());
    }
    rejected.sort_by_key(|r| r.index);
    let (code, message) = if single {
        (rejected[0].code, rejected[0].message.clone())
    } else {
        (
            "invalid_messages",
            format!(
                "{} of {} messages were rejected (listed in `rejected`); the other {} were accepted",
                rejected.len(),
                rejected.len() + stored + duplicates,
                stored + duplicates
            ),
        )
    };
    Ok((
        StatusCode::BAD_REQUEST,
        Json(Reply {
            success: false,
            code: Some(code),
            message: Some(message),
            stored,
            duplicates,
            rejected,
        }),
    )
        .into_response())
}

/// `GET /v1/projects/{writeKey}/settings`: what browser and mobile SDKs fetch at start-up.
/// Its `Segment.io` integration points them back at this server.
pub async fn settings(
    State(state): State<Arc<AppState>>,
    Path(write_key): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if state.key_kind(&write_key) != Some(KeyKind::Write) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_write_key",
            "the write key is not known to this server",
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    Ok(Json(json!({
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": format!("{host}/v1"),
                "unbundledIntegrations": [],
                "addBundledMetadata": false,
            }
        },
        "plan": {
            "track": { "__default": { "enabled": true, "integrations": {} } },
            "identify": { "__default": { "enabled": true } },
            "group": { "__default": { "enabled": true } },
        },
        "edgeFunction": {},
        "analyticsNextEnabled": true,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": { "sampleRate": 0.0 },
        "legacyVideoPluginsEnabled": false,
        "remotePlugins": [],
    }))
    .into_response())
}
