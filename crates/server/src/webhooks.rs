//! Webhooks for segment membership changes: each enter/exit is queued durably in the
//! store's outbox for every matching webhook, and posted until the receiver answers 2xx
//! (at least once), with exponential backoff between attempts. Bodies are signed:
//! `X-Strata-Signature: sha256=<hex HMAC-SHA256 of the body with the webhook's secret>`;
//! `X-Strata-Delivery` is a stable id a receiver can deduplicate on.
//!
//! Only `http://` receivers are supported (no TLS client is built in; put a TLS-terminating
//! proxy in front of an https receiver).

use crate::segments::ChangeView;
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use strata_store::{Delivery, Webhook};

/// Attempts before a delivery is given up (it stays in the outbox, marked failed).
const MAX_ATTEMPTS: u32 = 20;
/// The longest wait between attempts, µs.
const MAX_BACKOFF: i64 = 60_000_000;

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // `new_from_slice` accepts any key length for HMAC; the error arm cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Queues `changes` for every webhook that wants them.
pub(crate) fn enqueue(state: &AppState, changes: &[ChangeView], now: i64) {
    if changes.is_empty() {
        return;
    }
    let Ok(hooks) = state.store.webhooks() else {
        return;
    };
    let deliveries: Vec<Delivery> = hooks
        .iter()
        .flat_map(|h| {
            changes
                .iter()
                .filter(|c| h.segments.is_empty() || h.segments.contains(&c.segment))
                .map(|c| Delivery {
                    webhook: h.id.clone(),
                    payload: json!({
                        "id": format!("{}|{}|{}|{}", c.segment, c.profile, c.change, c.at),
                        "segment": c.segment, "profile": c.profile, "change": c.change, "at": c.at,
                    })
                    .to_string(),
                    attempts: 0,
                    next_attempt: now,
                    last_error: None,
                    failed: false,
                })
        })
        .collect();
    if let Err(e) = state.store.enqueue(&deliveries)
        && let Ok(mut p) = state.live_problem.lock()
    {
        *p = Some(format!("webhook deliveries could not be queued: {e}"));
    }
}

/// Posts one delivery; `Err` says why it did not get a 2xx.
async fn post(hook: &Webhook, number: u64, payload: &str) -> Result<(), String> {
    let rest = hook
        .url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported".to_string())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(conn);
    let req = axum::http::Request::post(path)
        .header("host", authority)
        .header("content-type", "application/json")
        .header(
            "x-strata-signature",
            signature(&hook.secret, payload.as_bytes()),
        )
        .header("x-strata-delivery", number.to_string())
        .body(http_body_util::Full::new(Bytes::from(payload.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", resp.status()))
    }
}

/// One pass over the due deliveries; returns how many were acknowledged and how many wait.
pub async fn deliver_due(state: &AppState) -> (usize, usize) {
    let now = state.now();
    let Ok(due) = state.store.outbox(Some(now), 256) else {
        return (0, 0);
    };
    let hooks = state.store.webhooks().unwrap_or_default();
    let (mut done, mut waiting) = (0, 0);
    for (number, mut d) in due {
        let Some(hook) = hooks.iter().find(|h| h.id == d.webhook) else {
            let _ = state.store.settle(number, None);
            continue;
        };
        let attempt = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            post(hook, number, &d.payload),
        )
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()));
        match attempt {
            Ok(()) => {
                if state.store.settle(number, None).is_ok() {
                    done += 1;
                }
            }
            Err(why) => {
                d.attempts += 1;
                let backoff = state
                    .settings
                    .webhook_retry_base
                    .saturating_mul(1i64 << d.attempts.min(30))
                    .min(MAX_BACKOFF);
                d.next_attempt = state.now() + backoff;
                d.last_error = Some(why);
                d.failed = d.attempts >= MAX_ATTEMPTS;
                let _ = state.store.settle(number, Some(&d));
                waiting += 1;
            }
        }
    }
    (done, waiting)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWebhook {
    url: String,
    #[serde(default)]
    segments: Vec<String>,
}

/// `POST /api/webhooks {"url", "segments"?}`: the secret is shown only in this answer.
pub async fn create(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    crate::admin::require_admin(&state, &headers)?;
    let new: NewWebhook = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"url\", \"segments\"?}}: {e}"),
        )
    })?;
    let authority = new
        .url
        .strip_prefix("http://")
        .map(|r| r.split('/').next().unwrap_or(""));
    if authority.is_none_or(|a| a.is_empty() || !a.contains(':')) {
        return Err(ApiError::bad_request(
            "invalid_url",
            "a webhook URL must be http://host:port/path (https receivers need a TLS-terminating proxy)",
        ));
    }
    let hook = Webhook {
        id: AppState::generate_key(strata_store::KeyKind::Write).replacen("sk_", "wh_", 1),
        url: new.url,
        secret: AppState::generate_key(strata_store::KeyKind::Admin).replacen("ak_", "whsec_", 1),
        segments: new.segments,
        created_at: state.now(),
    };
    let st = Arc::clone(&state);
    let shown = hook.clone();
    crate::admin::blocking(move || st.store.put_webhook(&hook)).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// `GET /api/webhooks`: webhooks (secrets hidden) and the deliveries waiting or given up.
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::admin::require_admin(&state, &headers)?;
    let store = state.store.clone();
    let (hooks, outbox) =
        crate::admin::blocking(move || Ok((store.webhooks()?, store.outbox(None, 1_000)?))).await?;
    let shown: Vec<_> = hooks
        .iter()
        .map(|h| {
            let mine = outbox.iter().filter(|(_, d)| d.webhook == h.id);
            let failed = mine.clone().filter(|(_, d)| d.failed).count();
            json!({ "id": h.id, "url": h.url, "segments": h.segments, "waiting": mine.count() - failed, "failed": failed })
        })
        .collect();
    Ok(Json(json!({ "webhooks": shown })).into_response())
}

/// `DELETE /api/webhooks/{id}`: removes it and its waiting deliveries.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::admin::require_admin(&state, &headers)?;
    let store = state.store.clone();
    if crate::admin::blocking(move || store.remove_webhook(&id)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "webhook_not_found",
            "no such webhook",
        ))
    }
}
