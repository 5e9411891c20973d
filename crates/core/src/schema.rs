//! The canonical schemas every source is mapped onto: customers, orders and events.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The three kinds of table Strata knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Customers,
    Orders,
    Events,
}

impl EntityKind {
    pub fn table_name(self) -> &'static str {
        match self {
            Self::Customers => "customers",
            Self::Orders => "orders",
            Self::Events => "events",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.table_name())
    }
}

/// The type a field is parsed into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Int,
    Float,
    Bool,
    /// A calendar date, stored as a UTC timestamp at midnight.
    Date,
    /// An instant, stored as microseconds since the epoch in UTC.
    Timestamp,
    /// A JSON value kept as its compact text.
    Json,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::String => "string",
            Self::Int => "int",
            Self::Float => "float",
            Self::Bool => "bool",
            Self::Date => "date",
            Self::Timestamp => "timestamp",
            Self::Json => "json",
        };
        f.write_str(s)
    }
}

/// One canonical field: its name, type, and whether a row without it is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub required: bool,
}

const fn field(name: &'static str, ty: FieldType, required: bool) -> FieldSpec {
    FieldSpec { name, ty, required }
}

const CUSTOMERS: &[FieldSpec] = &[
    field("customer_id", FieldType::String, true),
    field("email", FieldType::String, false),
    field("name", FieldType::String, false),
    field("signup_date", FieldType::Date, false),
];

const ORDERS: &[FieldSpec] = &[
    field("customer_id", FieldType::String, true),
    field("order_id", FieldType::String, false),
    field("timestamp", FieldType::Timestamp, true),
    field("amount", FieldType::Float, true),
    field("quantity", FieldType::Int, false),
    field("currency", FieldType::String, false),
];

/// The Segment message shape (see SEGMENT_API.md), flattened to columns.
const EVENTS: &[FieldSpec] = &[
    field("type", FieldType::String, true),
    field("message_id", FieldType::String, false),
    field("user_id", FieldType::String, false),
    field("anonymous_id", FieldType::String, false),
    field("event", FieldType::String, false),
    field("name", FieldType::String, false),
    field("timestamp", FieldType::Timestamp, true),
    field("properties", FieldType::Json, false),
    field("traits", FieldType::Json, false),
    field("context", FieldType::Json, false),
];

/// The fields Strata itself reads from a table of this kind. Sources may map extra fields
/// (customer traits, for instance); those are carried along untouched.
pub fn canonical_fields(kind: EntityKind) -> &'static [FieldSpec] {
    match kind {
        EntityKind::Customers => CUSTOMERS,
        EntityKind::Orders => ORDERS,
        EntityKind::Events => EVENTS,
    }
}
