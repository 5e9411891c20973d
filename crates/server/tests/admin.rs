//! The admin API: profiles with identities, traits, consent and events; search; Parquet
//! export; key management; and the operational routes (OpenAPI, metrics, health).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{ADMIN_KEY, WRITE_KEY, basic, server};
use serde_json::json;

async fn journey(s: &common::Server) {
    // An anonymous visitor browses, signs up (identify with the anonymousId), and an alias
    // links an old user id: one profile with every identity.
    let batch = json!({ "batch": [
        { "type": "page", "messageId": "j1", "anonymousId": "anon-1", "name": "Home",
          "timestamp": "2026-11-20T10:00:00Z",
          "context": { "consent": { "categoryPreferences": { "marketing": false, "analytics": true } } } },
        { "type": "identify", "messageId": "j2", "anonymousId": "anon-1", "userId": "ada",
          "timestamp": "2026-11-20T10:05:00Z",
          "traits": { "email": "Ada@Example.com", "plan": "free", "age": 36 } },
        { "type": "identify", "messageId": "j3", "userId": "ada",
          "timestamp": "2026-11-21T09:00:00Z", "traits": { "plan": "pro" },
          "context": { "consent": { "categoryPreferences": { "marketing": true } } } },
        // An older identify arriving late does not overwrite the newer plan.
        { "type": "identify", "messageId": "j4", "userId": "ada",
          "timestamp": "2026-11-19T09:00:00Z", "traits": { "plan": "trial" } },
        { "type": "track", "messageId": "j5", "userId": "ada", "event": "Order Completed",
          "timestamp": "2026-11-21T09:30:00Z", "properties": { "revenue": 42.5 } },
        { "type": "alias", "messageId": "j6", "userId": "ada", "previousId": "ada-legacy",
          "timestamp": "2026-11-21T10:00:00Z" },
        { "type": "identify", "messageId": "j7", "userId": "grace",
          "timestamp": "2026-11-22T10:00:00Z", "traits": { "email": "grace@example.com", "plan": "pro", "age": 45 } },
    ] });
    let r = s.post("/v1/batch", &batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}

#[tokio::test]
async fn a_profile_shows_identities_traits_consent_history_and_events() {
    let s = server();
    journey(&s).await;
    let p = s.admin_get("/api/profiles/user:ada?history=true").await;
    assert_eq!(p.status, StatusCode::OK);
    let p = p.json();
    let mut ids: Vec<&str> = p["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["anon:anon-1", "user:ada", "user:ada-legacy"]);
    assert_eq!(p["traits"]["plan"], "pro");
    assert_eq!(p["traits"]["age"], 36);
    assert_eq!(p["consent"]["marketing"]["granted"], true);
    assert_eq!(p["consent"]["analytics"]["granted"], true);
    assert_eq!(p["events"], 6);
    assert_eq!(p["trait_history"].as_array().unwrap().len(), 5);
    let recent: Vec<&str> = p["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"]["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(recent, ["j6", "j5", "j4", "j3", "j2", "j1"]);
    // The same profile by its id and by any identity.
    let id = p["id"].as_str().unwrap();
    for key in [id, "anon:anon-1", "user:ada-legacy"] {
        let other = s
            .admin_get(&format!("/api/profiles/{key}?events=0"))
            .await
            .json();
        assert_eq!(other["id"], id);
        assert!(other.get("recent_events").is_none());
    }
    let r = s.admin_get("/api/profiles/user:nobody").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "profile_not_found")
    );
    let r = s.admin_get("/api/profiles/user:ada?events=5000").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );
}

#[tokio::test]
async fn profiles_are_searched_by_traits_and_paged() {
    let s = server();
    journey(&s).await;
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["traits"]["email"].as_str().unwrap().to_lowercase())
            .collect()
    };
    let r = s.admin_get("/api/profiles?trait.plan=pro").await.json();
    assert_eq!(ids(&r), ["ada@example.com", "grace@example.com"]);
    let r = s
        .admin_get("/api/profiles?trait.email=ada@example.com")
        .await
        .json();
    assert_eq!(ids(&r), ["ada@example.com"]);
    let r = s.admin_get("/api/profiles?trait.age=45").await.json();
    assert_eq!(ids(&r), ["grace@example.com"]);
    let r = s
        .admin_get("/api/profiles?seen_after=2026-11-22T00:00:00Z")
        .await
        .json();
    assert_eq!(ids(&r), ["grace@example.com"]);
    // Pages of one.
    let first = s.admin_get("/api/profiles?limit=1").await.json();
    let next = first["next"].as_str().unwrap().to_string();
    let second = s
        .admin_get(&format!("/api/profiles?limit=1&after={next}"))
        .await
        .json();
    assert_eq!(ids(&first), ["ada@example.com"]);
    assert_eq!(ids(&second), ["grace@example.com"]);
    let r = s.admin_get("/api/profiles?colour=red").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );
}

#[tokio::test]
async fn events_and_profiles_export_as_parquet() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let s = server();
    journey(&s).await;
    for (path, rows) in [("/api/export/events", 7), ("/api/export/profiles", 2)] {
        let r = s.admin_get(path).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.headers["content-type"], "application/vnd.apache.parquet");
        let reader = SerializedFileReader::new(axum::body::Bytes::from(r.bytes)).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), rows, "{path}");
    }
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_and_admin_routes_need_an_admin_key() {
    let s = server();
    let auth = format!("Bearer {ADMIN_KEY}");
    let created = s
        .request(
            Method::POST,
            "/api/keys",
            &[("authorization", &auth)],
            serde_json::to_vec(&json!({ "kind": "write", "name": "web" })).unwrap(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.json()["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_") && key.len() == 35);
    let m = json!({ "type": "track", "userId": "u", "event": "E", "writeKey": key });
    let send = |m: serde_json::Value| {
        let s = &s;
        async move {
            s.request(
                Method::POST,
                "/v1/track",
                &[],
                serde_json::to_vec(&m).unwrap(),
            )
            .await
        }
    };
    assert_eq!(send(m.clone()).await.status, StatusCode::OK);
    let listed = s.admin_get("/api/keys").await.json();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    assert!(
        !listed.to_string().contains(&key),
        "key values are not listed"
    );
    let r = s
        .request(
            Method::DELETE,
            &format!("/api/keys/{key}"),
            &[("authorization", &auth)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(send(m).await.code(), "invalid_write_key");
    let r = s
        .request(
            Method::DELETE,
            &format!("/api/keys/{key}"),
            &[("authorization", &auth)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.code(), "key_not_found");
    let r = s
        .request(
            Method::POST,
            "/api/keys",
            &[("authorization", &auth)],
            b"{\"kind\":\"root\"}".to_vec(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    // No key, a write key, a wrong key.
    let write_basic = format!("Basic {}", basic(WRITE_KEY));
    for (headers, status, code) in [
        (vec![], StatusCode::UNAUTHORIZED, "missing_admin_key"),
        (
            vec![("authorization", write_basic.as_str())],
            StatusCode::FORBIDDEN,
            "invalid_admin_key",
        ),
        (
            vec![("authorization", "Bearer ak_wrong_wrong_wrong")],
            StatusCode::FORBIDDEN,
            "invalid_admin_key",
        ),
    ] {
        let r = s
            .request(Method::GET, "/api/stats", &headers, Body::empty())
            .await;
        assert_eq!((r.status, r.code().as_str()), (status, code));
    }
}

#[tokio::test]
async fn every_documented_path_answers_and_health_metrics_work() {
    let s = server();
    let spec = s
        .request(Method::GET, "/openapi.json", &[], Body::empty())
        .await
        .json();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 27, "{} paths", paths.len());
    let auth = format!("Bearer {ADMIN_KEY}");
    for (path, ops) in paths {
        let concrete = path
            .replace("{writeKey}", WRITE_KEY)
            .replace("{key}", "user:nobody");
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = s
                .request(
                    method.clone(),
                    &concrete,
                    &[("authorization", &auth)],
                    Body::empty(),
                )
                .await;
            let unrouted = r.status == StatusCode::METHOD_NOT_ALLOWED
                || (r.status == StatusCode::NOT_FOUND && r.code() == "not_found");
            assert!(
                !unrouted,
                "{method} {path} is documented but not routed: {}",
                r.status
            );
            // Every documented answer is documented: the status is among the responses.
            let documented = ops[method.as_str().to_lowercase()]["responses"]
                .as_object()
                .unwrap();
            assert!(
                documented.contains_key(r.status.as_str()),
                "{method} {path} answered {} which is not documented",
                r.status
            );
        }
    }
    assert_eq!(
        s.request(Method::GET, "/health", &[], Body::empty())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        s.request(Method::GET, "/ready", &[], Body::empty())
            .await
            .json()["status"],
        "ready"
    );
    let metrics = String::from_utf8(
        s.request(Method::GET, "/metrics", &[], Body::empty())
            .await
            .bytes,
    )
    .unwrap();
    assert!(metrics.contains("# TYPE strata_http_request_duration_seconds histogram"));
    assert!(
        metrics.contains("strata_http_requests_total{route=\"/health\",status=\"200\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("strata_store_commits_total"));
}

#[tokio::test]
async fn computed_traits_are_defined_computed_over_history_and_shown_on_profiles() {
    let s = server();
    journey(&s).await;
    let auth = format!("Bearer {ADMIN_KEY}");
    let post = |body: serde_json::Value| {
        let (s, auth) = (&s, auth.clone());
        async move {
            s.request(
                Method::POST,
                "/api/computed-traits",
                &[("authorization", &auth)],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    // Defined after the events: computed over the log before the answer.
    let r = post(json!({ "name": "orders_week", "aggregate": "count", "event": "Order Completed", "window": "7d" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["profiles_with_values"], 1);
    let r = post(json!({ "name": "pages", "aggregate": "count", "event": "Page Viewed" })).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Later events update it incrementally.
    let order = json!({ "type": "track", "userId": "ada", "event": "Order Completed", "messageId": "j8",
        "timestamp": "2026-11-24T11:00:00Z", "properties": { "total": 7.5 } });
    assert_eq!(s.post("/v1/track", &order).await.status, StatusCode::OK);
    let ada = s.admin_get("/api/profiles/user:ada?events=0").await.json();
    let c = &ada["computed"];
    assert!(
        ada.get("computed_state").is_none(),
        "internal state is not shown"
    );
    assert_eq!(c["orders_week"], 2);
    assert_eq!(c["rfm_frequency"], 2);
    assert_eq!(c["rfm_monetary"], 50.0);
    assert_eq!(c["rfm_recency_days"], 1.0 / 24.0);
    assert_eq!(c["pages"], 0);
    let grace = s
        .admin_get("/api/profiles/user:grace?events=0")
        .await
        .json();
    assert_eq!(grace["computed"]["rfm_frequency"], 0);
    assert_eq!(
        grace["computed"]["rfm_recency_days"],
        serde_json::Value::Null
    );
    let listed = s.admin_get("/api/computed-traits").await.json();
    let names: Vec<(&str, bool)> = listed["traits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["builtin"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("rfm_recency_days", true),
            ("rfm_frequency", true),
            ("rfm_monetary", true),
            ("rfm_tenure_days", true),
            ("orders_week", false),
            ("pages", false)
        ]
    );
    // Bad definitions, and removal.
    for (body, code) in [
        (
            json!({ "name": "w", "aggregate": "count", "window": "0h" }),
            "invalid_definition",
        ),
        (
            json!({ "name": "s", "aggregate": "sum" }),
            "invalid_definition",
        ),
        (
            json!({ "name": "s", "aggregate": "median", "property": "x" }),
            "invalid_body",
        ),
    ] {
        let r = post(body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::BAD_REQUEST, code.to_string())
        );
    }
    let delete = |name: &str| {
        let (s, auth, path) = (&s, auth.clone(), format!("/api/computed-traits/{name}"));
        async move {
            s.request(
                Method::DELETE,
                &path,
                &[("authorization", &auth)],
                Body::empty(),
            )
            .await
        }
    };
    assert_eq!(delete("rfm_frequency").await.code(), "builtin_trait");
    assert_eq!(delete("pages").await.status, StatusCode::NO_CONTENT);
    assert_eq!(delete("pages").await.code(), "trait_not_found");
    let ada = s.admin_get("/api/profiles/user:ada?events=0").await.json();
    assert!(ada["computed"].get("pages").is_none());
}
