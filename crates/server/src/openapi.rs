//! The OpenAPI 3.1 document served at `/openapi.json`. It is written out here, next to the
//! routes, and a test checks that every route of [`crate::router`] is in it and every path in
//! it answers (so neither can drift from the other).

use axum::Json;
use serde_json::{Value, json};

/// The paths of the ingestion API that take one message, by Segment's names and short names.
pub const SINGLE_PATHS: [&str; 12] = [
    "identify", "track", "page", "screen", "group", "alias", "i", "t", "p", "s", "g", "a",
];
/// The batch paths.
pub const BATCH_PATHS: [&str; 3] = ["batch", "import", "b"];

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ingest_operation(path: &str, batch: bool) -> Value {
    let body = if batch { "Batch" } else { "Message" };
    json!({
        "post": {
            "tags": ["ingestion"],
            "summary": if batch {
                format!("Segment batch (`/v1/{path}`): up to 2,500 messages, 500 KB")
            } else {
                format!("One Segment message (`/v1/{path}`), at most 32 KB")
            },
            "security": [{ "writeKeyBasic": [] }, { "writeKeyBearer": [] }, {}],
            "requestBody": {
                "required": true,
                "description": "JSON, sent as application/json or text/plain, optionally gzip- or deflate-encoded. The write key may be `writeKey` in the body.",
                "content": {
                    "application/json": { "schema": { "$ref": format!("#/components/schemas/{body}") } },
                    "text/plain": { "schema": { "$ref": format!("#/components/schemas/{body}") } }
                }
            },
            "responses": {
                "200": {
                    "description": "Every message stored durably or already stored (duplicate messageId).",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IngestReply" } } }
                },
                "400": {
                    "description": "Invalid JSON, or some messages rejected: the valid ones were stored and `rejected` lists the others.",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/IngestReply" } } }
                },
                "401": error("Missing or unknown write key."),
                "413": error("Body, decompressed body or batch over the limit."),
                "415": error("Unsupported Content-Encoding."),
                "429": error("Too many requests in flight; retry after `Retry-After` seconds."),
                "503": error("The store is unavailable or shutting down; retry after `Retry-After` seconds.")
            }
        }
    })
}

fn admin_get(summary: &str, params: &[Value], ok: Value) -> Value {
    let mut op = json!({
        "get": {
            "tags": ["admin"],
            "summary": summary,
            "security": [{ "adminKey": [] }],
            "parameters": params,
            "responses": {
                "400": error("A bad parameter."),
                "401": error("No admin key."),
                "403": error("Not an admin key."),
                "404": error("Not found.")
            }
        }
    });
    op["get"]["responses"]["200"] = ok;
    op
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    let mut q =
        json!({ "name": name, "in": "query", "required": false, "description": description });
    q["schema"] = schema;
    q
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn json_ok(description: &str, schema: Value) -> Value {
    let mut ok = json!({ "description": description });
    ok["content"]["application/json"]["schema"] = schema;
    ok
}

fn parquet_ok(description: &str) -> Value {
    json!({ "description": description, "content": { "application/vnd.apache.parquet": { "schema": { "type": "string", "format": "binary" } } } })
}

/// The whole document.
pub fn spec() -> Value {
    let mut paths = serde_json::Map::new();
    for p in SINGLE_PATHS {
        paths.insert(format!("/v1/{p}"), ingest_operation(p, false));
    }
    for p in BATCH_PATHS {
        paths.insert(format!("/v1/{p}"), ingest_operation(p, true));
    }
    paths.insert(
        "/v1/m".into(),
        json!({ "post": { "tags": ["ingestion"], "summary": "SDK telemetry: accepted and dropped.", "responses": { "200": { "description": "Accepted." }, "413": error("Body over the limit.") } } }),
    );
    paths.insert(
        "/v1/projects/{writeKey}/settings".into(),
        json!({ "get": {
            "tags": ["ingestion"],
            "summary": "Settings browser and mobile SDKs fetch at start-up; they point the SDK back at this server.",
            "parameters": [path_param("writeKey", "A write key.")],
            "responses": { "200": json_ok("Settings.", json!({ "type": "object" })), "404": error("Unknown write key.") }
        } }),
    );
    let key = path_param(
        "key",
        "A profile id (`p000000000001`) or identity (`user:<userId>`, `anon:<anonymousId>`).",
    );
    paths.insert(
        "/api/profiles".into(),
        admin_get(
            "Search profiles (id order, paged).",
            &[
                query("trait.{name}", "The trait must equal this value (strings case-insensitively; numbers and booleans as such). Repeatable with different names.", json!({ "type": "string" })),
                query("seen_after", "Seen at or after this RFC 3339 time.", json!({ "type": "string", "format": "date-time" })),
                query("after", "The `next` of the previous page.", json!({ "type": "string" })),
                query("limit", "1 to 1000 (default 100).", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
            ],
            json_ok("A page of profiles.", json!({ "type": "object", "properties": {
                "profiles": { "type": "array", "items": { "$ref": "#/components/schemas/Profile" } },
                "next": { "type": ["string", "null"] } } })),
        ),
    );
    paths.insert(
        "/api/profiles/{key}".into(),
        admin_get(
            "One profile: traits, identities, consent, recent events and optionally every trait change.",
            &[
                key.clone(),
                query("events", "Recent events to include, 0 to 100 (default 20).", json!({ "type": "integer", "minimum": 0, "maximum": 100 })),
                query("history", "`true` to include every trait change.", json!({ "type": "boolean" })),
            ],
            json_ok("The profile.", json!({ "$ref": "#/components/schemas/Profile" })),
        ),
    );
    paths.insert(
        "/api/profiles/{key}/events".into(),
        admin_get(
            "A profile's most recent events (at most 100), newest first; every event is in /api/export/events.",
            &[key, query("limit", "1 to 100 (default 100).", json!({ "type": "integer", "minimum": 1, "maximum": 100 }))],
            json_ok("Events.", json!({ "type": "object", "properties": { "events": { "type": "array", "items": { "type": "object" } } } })),
        ),
    );
    paths.insert(
        "/api/export/events".into(),
        admin_get("Every event as Parquet.", &[], parquet_ok("events.parquet")),
    );
    paths.insert(
        "/api/export/profiles".into(),
        admin_get(
            "Every profile as Parquet.",
            &[],
            parquet_ok("profiles.parquet"),
        ),
    );
    let mut computed = admin_get(
        "Every computed-trait definition (the built-in RFM ones first).",
        &[],
        json_ok("Definitions.", json!({ "type": "object" })),
    );
    computed["post"] = json!({
        "tags": ["admin"],
        "summary": "Define (or redefine) a computed trait; it is computed over the whole log before the answer.",
        "security": [{ "adminKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ComputedTrait" } } } },
        "responses": { "201": json_ok("Defined.", json!({ "type": "object" })), "400": error("A bad definition."), "401": error("No admin key."), "403": error("Not an admin key."), "503": error("The store is unavailable.") }
    });
    paths.insert("/api/computed-traits".into(), computed);
    let mut segments = admin_get(
        "Every rule segment: rule, version, state and versions; the size of the active ones.",
        &[],
        json_ok("Segments.", json!({ "type": "object" })),
    );
    segments["post"] = json!({
        "tags": ["segments"],
        "summary": "Define a rule segment, or a new version of one (live at once if it is active). The rule is checked first; a refused rule changes nothing.",
        "security": [{ "adminKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["name", "rule"], "additionalProperties": false,
            "properties": { "name": { "type": "string" }, "rule": { "type": "string", "description": "The condition language: docs/rules.md." } } } } } },
        "responses": { "201": json_ok("Defined.", json!({ "type": "object" })), "400": error("A bad rule: `line`, `column` and `hint` say where and how to fix it."), "401": error("No admin key."), "403": error("Not an admin key.") }
    });
    paths.insert("/api/segments".into(), segments);
    let name = path_param("name", "The segment's name.");
    paths.insert(
        "/api/segments/changes".into(),
        json!({ "get": { "tags": ["segments"], "summary": "Server-sent events: `enter` and `exit` changes as they happen.", "security": [{ "adminKey": [] }],
            "responses": { "200": { "description": "An event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } }, "401": error("No admin key."), "403": error("Not an admin key.") } } }),
    );
    paths.insert(
        "/api/segments/{name}/preview".into(),
        admin_get("Size and a sample of members now, computed over the stored history (before activation too).", &[name.clone(), query("sample", "Members to list: 1 to 1000 (default 10).", json!({ "type": "integer", "minimum": 1, "maximum": 1000 }))], json_ok("The preview.", json!({ "type": "object" }))),
    );
    for (action, summary) in [
        (
            "activate",
            "Activate: memberships computed over the history, then kept live.",
        ),
        ("deactivate", "Deactivate."),
    ] {
        paths.insert(
            format!("/api/segments/{{name}}/{action}"),
            json!({ "post": { "tags": ["segments"], "summary": summary, "security": [{ "adminKey": [] }], "parameters": [name.clone()],
                "responses": { "200": json_ok("The segment.", json!({ "type": "object" })), "400": error("The rule no longer checks; nothing changed."), "401": error("No admin key."), "403": error("Not an admin key."), "404": error("No such segment.") } } }),
        );
    }
    paths.insert(
        "/api/segments/{name}/members".into(),
        admin_get(
            "Current members and the size over time of an active segment.",
            &[
                name,
                query(
                    "limit",
                    "Members to list: 1 to 10000 (default 100).",
                    json!({ "type": "integer", "minimum": 1, "maximum": 10000 }),
                ),
            ],
            json_ok("Members.", json!({ "type": "object" })),
        ),
    );
    let mut hooks = admin_get(
        "Webhooks (secrets hidden), with the deliveries waiting and given up.",
        &[],
        json_ok("Webhooks.", json!({ "type": "object" })),
    );
    hooks["post"] = json!({
        "tags": ["segments"],
        "summary": "Add a webhook for enter/exit changes (optionally of some segments). Deliveries are signed (X-Strata-Signature: sha256=HMAC of the body) and retried with backoff until a 2xx. The secret is shown only in this answer.",
        "security": [{ "adminKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["url"], "additionalProperties": false,
            "properties": { "url": { "type": "string", "description": "http://host:port/path" }, "segments": { "type": "array", "items": { "type": "string" } } } } } } },
        "responses": { "201": json_ok("The webhook and its secret.", json!({ "type": "object" })), "400": error("A bad body or URL."), "401": error("No admin key."), "403": error("Not an admin key.") }
    });
    paths.insert("/api/webhooks".into(), hooks);
    paths.insert(
        "/api/webhooks/{id}".into(),
        json!({ "delete": { "tags": ["segments"], "summary": "Remove a webhook and its waiting deliveries.", "security": [{ "adminKey": [] }],
            "parameters": [path_param("id", "The webhook's id.")],
            "responses": { "204": { "description": "Removed." }, "401": error("No admin key."), "403": error("Not an admin key."), "404": error("No such webhook.") } } }),
    );
    let mut scores = admin_get(
        "Every scoring plan.",
        &[],
        json_ok("Plans.", json!({ "type": "object" })),
    );
    scores["post"] = json!({
        "tags": ["segments"],
        "summary": "Define a scoring plan, or replace one: weighted events with half-life decay and caps; rules test it with `score NAME >= X`.",
        "security": [{ "adminKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["name", "signals"], "additionalProperties": false,
            "properties": {
                "name": { "type": "string" },
                "min": { "type": "number", "description": "Default 0." },
                "max": { "type": "number", "description": "Default 100." },
                "signals": { "type": "array", "items": { "type": "object", "required": ["event", "points"], "additionalProperties": false, "properties": {
                    "label": { "type": "string" },
                    "event": { "type": "string", "description": "An event as rules write it: \"Page Viewed\" with path = \"/pricing\"." },
                    "points": { "type": "number" },
                    "half_life": { "type": "string", "description": "e.g. 7d" },
                    "cap": { "type": "number" } } } } } } } } },
        "responses": { "201": json_ok("The plan.", json!({ "type": "object" })), "400": error("A bad plan: the message names the signal and the field."), "401": error("No admin key."), "403": error("Not an admin key.") }
    });
    paths.insert("/api/scores".into(), scores);
    paths.insert(
        "/api/scores/{name}".into(),
        json!({ "delete": { "tags": ["segments"], "summary": "Remove a scoring plan (refused while a segment's rule uses it).", "security": [{ "adminKey": [] }],
            "parameters": [path_param("name", "The plan's name.")],
            "responses": { "204": { "description": "Removed." }, "401": error("No admin key."), "403": error("Not an admin key."), "404": error("No such plan."), "409": error("A segment uses the plan.") } } }),
    );
    let profile_key = path_param("key", "A profile id or identity.");
    paths.insert(
        "/api/profiles/{key}/scores".into(),
        admin_get(
            "Each scoring plan's score now and why (each signal's events, points, cap), over the profile's stored events.",
            std::slice::from_ref(&profile_key),
            json_ok("Scores.", json!({ "type": "object" })),
        ),
    );
    paths.insert(
        "/api/profiles/{key}/segments".into(),
        admin_get(
            "The active segments a profile is in, and its enter/exit history.",
            std::slice::from_ref(&profile_key),
            json_ok("Memberships.", json!({ "type": "object" })),
        ),
    );
    paths.insert(
        "/api/profiles/{key}/segments/{name}/why".into(),
        admin_get(
            "Why the profile is in or not in a segment: each condition's value and what was found.",
            &[profile_key, path_param("name", "The segment's name.")],
            json_ok("The explanation.", json!({ "type": "object" })),
        ),
    );
    paths.insert(
        "/api/computed-traits/{name}".into(),
        json!({ "delete": {
            "tags": ["admin"], "summary": "Remove a computed trait from the definitions and every profile.", "security": [{ "adminKey": [] }],
            "parameters": [path_param("name", "The trait's name.")],
            "responses": { "204": { "description": "Removed." }, "400": error("A built-in trait."), "401": error("No admin key."), "403": error("Not an admin key."), "404": error("No such trait.") }
        } }),
    );
    paths.insert(
        "/api/stats".into(),
        admin_get(
            "Counts of events and profiles, and the writer's counters.",
            &[],
            json_ok("Counts.", json!({ "type": "object" })),
        ),
    );
    let mut keys = admin_get(
        "Every API key (values shortened).",
        &[],
        json_ok("Keys.", json!({ "type": "object" })),
    );
    keys["post"] = json!({
        "tags": ["admin"],
        "summary": "Create a key; its value is shown only in this answer.",
        "security": [{ "adminKey": [] }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": {
            "type": "object", "required": ["kind"], "additionalProperties": false,
            "properties": { "kind": { "enum": ["write", "admin"] }, "name": { "type": "string" } } } } } },
        "responses": { "201": json_ok("The new key.", json!({ "type": "object" })), "400": error("A bad body."), "401": error("No admin key."), "403": error("Not an admin key.") }
    });
    paths.insert("/api/keys".into(), keys);
    paths.insert(
        "/api/keys/{key}".into(),
        json!({ "delete": {
            "tags": ["admin"], "summary": "Revoke a key.", "security": [{ "adminKey": [] }],
            "parameters": [path_param("key", "The key's value.")],
            "responses": { "204": { "description": "Revoked." }, "401": error("No admin key."), "403": error("Not an admin key."), "404": error("No such key.") }
        } }),
    );
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": { "tags": ["operations"], "summary": "This document.", "responses": { "200": json_ok("OpenAPI 3.1.", json!({ "type": "object" })) } } }),
    );
    paths.insert(
        "/metrics".into(),
        json!({ "get": { "tags": ["operations"], "summary": "Prometheus metrics.", "responses": { "200": { "description": "Text exposition format 0.0.4.", "content": { "text/plain": { "schema": { "type": "string" } } } } } } }),
    );
    paths.insert(
        "/health".into(),
        json!({ "get": { "tags": ["operations"], "summary": "Liveness: the process answers.", "responses": { "200": json_ok("Alive.", json!({ "type": "object" })) } } }),
    );
    paths.insert(
        "/ready".into(),
        json!({ "get": { "tags": ["operations"], "summary": "Readiness: the store answers and the server is not shutting down.", "responses": { "200": json_ok("Ready.", json!({ "type": "object" })), "503": error("Not ready.") } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Strata",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Segment-compatible event ingestion (`/v1`) and the admin API (`/api`) of `strata serve`. Errors are JSON `{code, message}`."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "writeKeyBasic": { "type": "http", "scheme": "basic", "description": "The write key as user name, empty password." },
                "writeKeyBearer": { "type": "http", "scheme": "bearer", "description": "The write key as a bearer token." },
                "adminKey": { "type": "http", "scheme": "bearer", "description": "An admin key." }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["code", "message"], "properties": {
                    "code": { "type": "string" }, "message": { "type": "string" } } },
                "Message": { "type": "object", "description": "A Segment message: `type` (or the path), `userId` and/or `anonymousId`, `messageId`, `timestamp`, `context`, and per type `event`/`properties`, `traits`, `name`, `groupId`, `previousId`.",
                    "properties": {
                        "type": { "enum": ["identify", "track", "page", "screen", "group", "alias"] },
                        "userId": { "type": ["string", "number", "null"] },
                        "anonymousId": { "type": ["string", "number", "null"] },
                        "messageId": { "type": "string", "maxLength": 100 },
                        "event": { "type": "string" },
                        "properties": { "type": "object" },
                        "traits": { "type": "object" },
                        "context": { "type": "object" },
                        "timestamp": { "type": "string", "format": "date-time" },
                        "originalTimestamp": { "type": "string", "format": "date-time" },
                        "sentAt": { "type": "string", "format": "date-time" },
                        "writeKey": { "type": "string" }
                    } },
                "Batch": { "type": "object", "required": ["batch"], "properties": {
                    "batch": { "type": "array", "maxItems": 2500, "items": { "$ref": "#/components/schemas/Message" } },
                    "writeKey": { "type": "string" }, "sentAt": { "type": "string", "format": "date-time" },
                    "context": { "type": "object" }, "integrations": { "type": "object" } } },
                "IngestReply": { "type": "object", "required": ["success", "stored", "duplicates"], "properties": {
                    "success": { "type": "boolean" },
                    "code": { "type": "string" }, "message": { "type": "string" },
                    "stored": { "type": "integer" }, "duplicates": { "type": "integer" },
                    "rejected": { "type": "array", "items": { "type": "object", "properties": {
                        "index": { "type": "integer" }, "code": { "type": "string" }, "message": { "type": "string" } } } } } },
                "ComputedTrait": { "type": "object", "required": ["name", "aggregate"], "additionalProperties": false, "properties": {
                    "name": { "type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$" },
                    "aggregate": { "enum": ["count", "sum", "first", "last", "distinct", "first_seen", "last_seen", "days_since_last", "days_since_first"] },
                    "event": { "type": "string", "description": "The track event name; absent: every track event." },
                    "property": { "type": "string", "description": "A property of `properties` (dotted path); `a|b` takes the first present. Needed by sum, first, last and distinct." },
                    "where": { "type": "object", "description": "Property values the event must have." },
                    "window": { "type": "string", "description": "Sliding window: a whole number and s, m, h, d, w or y, e.g. `24h`, `30d`." } } },
                "Profile": { "type": "object", "properties": {
                    "id": { "type": "string" },
                    "identities": { "type": "array", "items": { "type": "string" } },
                    "traits": { "type": "object" },
                    "trait_times": { "type": "object" },
                    "consent": { "type": "object" },
                    "first_seen": { "type": "integer", "description": "µs since the epoch" },
                    "last_seen": { "type": "integer" },
                    "events": { "type": "integer" },
                    "merged_from": { "type": "array", "items": { "type": "string" } },
                    "computed": { "type": "object", "description": "Computed traits at the time of the request." },
                    "recent_events": { "type": "array", "items": { "type": "object" } },
                    "trait_history": { "type": "array", "items": { "type": "object" } } } }
            }
        }
    })
}

pub(crate) async fn document() -> Json<Value> {
    Json(spec())
}
