//! An in-process server over a temporary store, called through the router without a socket.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly on purpose"
)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use strata_server::{AppState, Settings};
use strata_store::{ApiKey, KeyKind, Store};
use tower::ServiceExt as _;

pub const WRITE_KEY: &str = "sk_test_write_key_0001";
pub const ADMIN_KEY: &str = "ak_test_admin_key_0001";
/// The injected clock: 2026-11-24T12:00:00Z.
pub const NOW: i64 = 1_795_521_600_000_000;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub state: Arc<AppState>,
    pub router: Router,
}

pub fn server_with(settings: Settings) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for (key, kind) in [(WRITE_KEY, KeyKind::Write), (ADMIN_KEY, KeyKind::Admin)] {
        store
            .add_key(&ApiKey {
                key: key.into(),
                kind,
                name: "test".into(),
                created_at: 0,
            })
            .unwrap();
    }
    let state = AppState::new(store, settings).unwrap();
    let router = strata_server::router(Arc::clone(&state));
    Server { dir, state, router }
}

pub fn server() -> Server {
    server_with(Settings {
        clock: Arc::new(|| NOW),
        ..Settings::default()
    })
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.bytes)))
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

impl Server {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let response = self
            .router
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        // An event stream never ends: its body is left unread.
        let streaming = headers
            .get("content-type")
            .is_some_and(|v| v == "text/event-stream");
        let bytes = if streaming {
            Vec::new()
        } else {
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec()
        };
        Reply {
            status,
            headers,
            bytes,
        }
    }

    /// POST JSON with the write key as HTTP Basic user, as Segment's server SDKs do.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let auth = format!("Basic {}", basic(WRITE_KEY));
        self.request(
            Method::POST,
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    /// GET with the admin key.
    pub async fn admin_get(&self, path: &str) -> Reply {
        let auth = format!("Bearer {ADMIN_KEY}");
        self.request(
            Method::GET,
            path,
            &[("authorization", &auth)],
            Body::empty(),
        )
        .await
    }
}

pub fn basic(key: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
}
