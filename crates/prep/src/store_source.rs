//! `format = "strata_store"`: the live store of `strata serve` as a source, read while the
//! server runs (a read-only handle follows its commits).
//!
//! - **customers**: one row per profile. `customer_id` is the profile id; `email` and `name`
//!   come from its traits (`name`, else `firstName lastName`); `signup_date` is the trait
//!   `createdAt` when it is a date, else the first time the profile was seen. Every trait is
//!   under `traits.<name>`, and `first_seen`, `last_seen`, `events` and `identities` are
//!   there to map as well.
//! - **orders**: one row per `Order Completed` track event, on the profile it belongs to
//!   now (after merges). `order_id` is `properties.order_id` (else the messageId), `amount`
//!   is `properties.revenue`, else `total`, else `value`; `quantity` and `currency` come from
//!   the properties of those names. The event's `properties` and `context` can be mapped too.
//! - **events**: the log, each message as received plus `profileId`.
//!
//! Rows are numbered by their position in the log (events, orders) or in profile order
//! (customers), so quarantine entries point at them.

use crate::error::LoadError;
use crate::load::JsonRows;
use serde_json::{Map, Value, json};
use std::path::Path;
use strata_core::EntityKind;
use strata_store::{Kind, Profile, Reader, StoredEvent};

fn store_err(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Store {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn iso(micros: i64) -> Value {
    chrono::DateTime::from_timestamp_micros(micros).map_or(Value::Null, |t| {
        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    })
}

fn customer_row(p: &Profile) -> Value {
    let text = |k: &str| p.traits.get(k).and_then(Value::as_str).map(str::to_string);
    let name = text("name").or_else(|| {
        let parts: Vec<String> = [text("firstName"), text("lastName")]
            .into_iter()
            .flatten()
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let created = text("createdAt")
        .or_else(|| text("created_at"))
        .and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&t)
                .map(|d| d.date_naive())
                .or_else(|_| chrono::NaiveDate::parse_from_str(&t, "%Y-%m-%d"))
                .ok()
        });
    let first_seen = chrono::DateTime::from_timestamp_micros(p.first_seen).map(|t| t.date_naive());
    let signup = created
        .or(first_seen)
        .map(|d| Value::String(d.format("%Y-%m-%d").to_string()));
    json!({
        "customer_id": p.id,
        "email": text("email"),
        "name": name,
        "signup_date": signup,
        "traits": p.traits,
        "first_seen": iso(p.first_seen),
        "last_seen": iso(p.last_seen),
        "events": p.events,
        "identities": p.identities,
    })
}

fn order_row(e: &StoredEvent, profile: &str) -> Value {
    let empty = Map::new();
    let props = e
        .message
        .body
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let amount = ["revenue", "total", "value"]
        .iter()
        .find_map(|k| props.get(*k).filter(|v| !v.is_null()));
    let order_id = props
        .get("order_id")
        .or_else(|| props.get("orderId"))
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| Value::String(e.message.message_id.clone()));
    json!({
        "customer_id": profile,
        "order_id": order_id,
        "timestamp": iso(e.message.timestamp),
        "amount": amount,
        "quantity": props.get("quantity"),
        "currency": props.get("currency"),
        "properties": props,
        "context": e.message.body.get("context"),
    })
}

/// Reads the store in `dir` into `rows` as a table of `kind`.
pub(crate) fn read(rows: &mut JsonRows<'_>, kind: EntityKind, dir: &Path) -> Result<(), LoadError> {
    let reader = Reader::open(dir).map_err(|e| store_err(dir, e))?;
    if kind == EntityKind::Customers {
        let mut line = 0;
        return reader
            .for_each_profile(|p| {
                line += 1;
                rows.push(line, &customer_row(&p));
                Ok(())
            })
            .map_err(|e| store_err(dir, e));
    }
    let survivor = reader.survivors().map_err(|e| store_err(dir, e))?;
    reader
        .for_each_event(|e| {
            let profile = survivor.get(&e.profile).unwrap_or(&e.profile).clone();
            let line = e.seq + 1;
            match kind {
                EntityKind::Orders => {
                    let completed = e.message.kind == Kind::Track
                        && e.message.event.as_deref() == Some("Order Completed");
                    if completed {
                        rows.push(line, &order_row(&e, &profile));
                    }
                }
                _ => {
                    let mut body = e.message.body;
                    if let Value::Object(m) = &mut body {
                        m.insert("profileId".into(), Value::String(profile));
                    }
                    rows.push(line, &body);
                }
            }
            Ok(())
        })
        .map_err(|e| store_err(dir, e))
}
