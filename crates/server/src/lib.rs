//! `strata serve`: an HTTP server over the live store (issue 6).
//!
//! - `/v1/...`: Segment's HTTP Tracking API, wire-compatible, so Segment and RudderStack SDKs
//!   work by changing only their host ([`ingest`]).
//! - `/api/...`: the admin API (profiles, search, computed traits, Parquet export, keys),
//!   behind an admin key
//!   ([`admin`]).
//! - `/openapi.json`, `/metrics` (Prometheus text), `/health` and `/ready`.
//!
//! Every error is JSON `{code, message}` with a 4xx status for what the client must fix and
//! 429/503 (with `Retry-After`) for what a retry will fix, because SDKs drop on other 4xx and
//! retry on those.
//!
//! **Invariant:** a 2xx from an ingestion path means every message it reports as stored is
//! durable (the store answers only after its commit is on disk).

pub mod admin;
pub mod clusters;
mod error;
pub mod ingest;
mod metrics;
pub mod openapi;
pub mod scores;
pub mod segments;
pub mod webhooks;

pub use error::ApiError;

use axum::Router;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use strata_store::{ApiKey, KeyKind, Store, StoreError};
use tokio::sync::Semaphore;

/// The server's clock: µs since the epoch. Tests inject a fixed one.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp_micros())
}

/// Settings of a server.
#[derive(Clone)]
pub struct Settings {
    /// Ingestion requests handled at once; more are answered 429 with `Retry-After`.
    pub max_in_flight: usize,
    /// µs before a failed webhook delivery's first retry; each retry waits twice as long
    /// (at most a minute).
    pub webhook_retry_base: i64,
    pub clock: Clock,
    /// A saved clustering model that assigns profiles live (`strata serve --model`).
    pub model: Option<Arc<clusters::LiveModel>>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_in_flight: 1_024,
            webhook_retry_base: 500_000,
            clock: system_clock(),
            model: None,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    settings: Settings,
    /// API keys by value, mirrored from the store so that a request's check reads memory.
    keys: RwLock<HashMap<String, KeyKind>>,
    in_flight: Semaphore,
    requests: AtomicU64,
    shutting_down: AtomicBool,
    metrics: metrics::Metrics,
    /// Live rule-segment membership.
    pub(crate) live: segments::Live,
    /// Why the active segments could not be restored at start-up, if they could not.
    pub(crate) live_problem: std::sync::Mutex<Option<String>>,
}

impl AppState {
    /// State over `store`, with the keys it holds.
    pub fn new(store: Store, settings: Settings) -> Result<Arc<Self>, StoreError> {
        let keys = store.keys()?.into_iter().map(|k| (k.key, k.kind)).collect();
        let state = Arc::new(Self {
            store,
            in_flight: Semaphore::new(settings.max_in_flight),
            keys: RwLock::new(keys),
            requests: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            metrics: metrics::Metrics::default(),
            live: segments::Live::new(settings.model.clone()),
            live_problem: std::sync::Mutex::new(None),
            settings,
        });
        // Active segments are restored by replaying the log. A segment whose rule no longer
        // checks does not stop the server: the problem is shown by `GET /api/segments`.
        if let Err(e) = state.live.rebuild(&state.store, state.now())
            && let Ok(mut p) = state.live_problem.lock()
        {
            *p = Some(e.message);
        }
        Ok(state)
    }

    fn now(&self) -> i64 {
        (self.settings.clock)()
    }

    fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed)
    }

    /// The kind of this key, if it is one.
    fn key_kind(&self, key: &str) -> Option<KeyKind> {
        self.keys.read().ok()?.get(key).copied()
    }

    /// Fires the segment timers due by `now` (the server's timer task calls this; tests with
    /// an injected clock call it themselves); returns when the next one is due.
    pub fn tick_segments(&self, now: i64) -> Option<i64> {
        let (changes, next) = self.live.tick(&self.store, now);
        webhooks::enqueue(self, &changes, now);
        next
    }

    /// Posts the webhook deliveries that are due (the server's delivery task calls this);
    /// returns how many were acknowledged and how many wait for a retry.
    pub async fn deliver_webhooks(&self) -> (usize, usize) {
        webhooks::deliver_due(self).await
    }

    /// Adds a key to the store and to the in-memory mirror.
    pub fn add_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.store.add_key(&key)?;
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key.key, key.kind);
        }
        Ok(())
    }

    /// Removes a key; false when there was none.
    pub fn revoke_key(&self, key: &str) -> Result<bool, StoreError> {
        let existed = self.store.revoke_key(key)?;
        if let Ok(mut keys) = self.keys.write() {
            keys.remove(key);
        }
        Ok(existed)
    }

    /// A new random key value: `sk_` (write) or `ak_` (admin) and 32 hex digits from the
    /// thread's cryptographically secure generator (seeded by the OS).
    pub fn generate_key(kind: KeyKind) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let prefix = match kind {
            KeyKind::Write => "sk_",
            KeyKind::Admin => "ak_",
        };
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}{hex}")
    }
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/projects/{write_key}/settings", get(ingest::settings))
        .route("/v1/{path}", post(ingest::ingest))
        .route("/api/profiles", get(admin::search))
        .route("/api/profiles/{key}", get(admin::profile))
        .route("/api/profiles/{key}/events", get(admin::events))
        .route("/api/export/events", get(admin::export_events))
        .route("/api/export/profiles", get(admin::export_profiles))
        .route("/api/keys", get(admin::list_keys).post(admin::create_key))
        .route("/api/keys/{key}", axum::routing::delete(admin::revoke_key))
        .route("/api/stats", get(admin::stats))
        .route("/api/segments", get(segments::list).post(segments::define))
        .route("/api/scores", get(scores::list).post(scores::define))
        .route("/api/scores/{name}", axum::routing::delete(scores::remove))
        .route("/api/profiles/{key}/scores", get(scores::of_profile))
        .route("/api/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/api/webhooks/{id}",
            axum::routing::delete(webhooks::remove),
        )
        .route("/api/segments/changes", get(segments::stream))
        .route("/api/segments/{name}/preview", get(segments::preview))
        .route("/api/segments/{name}/activate", post(segments::activate))
        .route(
            "/api/segments/{name}/deactivate",
            post(segments::deactivate),
        )
        .route("/api/segments/{name}/members", get(segments::members))
        .route("/api/profiles/{key}/segments", get(segments::of_profile))
        .route(
            "/api/profiles/{key}/segments/{name}/why",
            get(segments::why),
        )
        .route(
            "/api/computed-traits",
            get(admin::list_computed).post(admin::define_computed),
        )
        .route(
            "/api/computed-traits/{name}",
            axum::routing::delete(admin::undefine_computed),
        )
        .route("/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics::exposition))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            metrics::track,
        ))
        .with_state(state)
}

async fn health() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::unavailable(
            "shutting_down",
            "the server is shutting down",
        ));
    }
    if !state.store.ready() {
        return Err(ApiError::unavailable(
            "store_unavailable",
            "the store does not answer",
        ));
    }
    Ok(axum::Json(serde_json::json!({ "status": "ready" })))
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no such path: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Serves `state` on `listener` until `shutdown` completes; then stops taking requests,
/// finishes those in flight, and returns (the store flushes when its last handle drops).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let flag = Arc::clone(&state);
    // Segment timers: fire what is due, then sleep until the next one (at most a second, so
    // a new timer set by an event is never waited on for long).
    let timers = Arc::clone(&state);
    let timer_task = tokio::spawn(async move {
        loop {
            let now = timers.now();
            let next = timers.tick_segments(now);
            let wait = next.map_or(1_000_000, |t| (t - now).clamp(1_000, 1_000_000));
            tokio::time::sleep(std::time::Duration::from_micros(wait.unsigned_abs())).await;
        }
    });
    // Webhook deliveries: post what is due, then look again shortly.
    let outbox = Arc::clone(&state);
    let delivery_task = tokio::spawn(async move {
        loop {
            let (done, _) = outbox.deliver_webhooks().await;
            if done == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            flag.shutting_down.store(true, Ordering::Relaxed);
        })
        .await;
    timer_task.abort();
    delivery_task.abort();
    served
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
