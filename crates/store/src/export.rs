//! The live store's events and profiles as Parquet, for the analytical engine and for
//! export through the admin API. Times are UTC microseconds; nested fields (properties,
//! context, traits, consent) are JSON text so the schema never changes with the data.

use crate::{Profile, Reader, StoreError, StoredEvent};
use arrow::array::{
    ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::io::Write;
use std::sync::Arc;

/// Rows per record batch written.
const BATCH_ROWS: usize = 8_192;

fn export_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Read(format!("export failed: {e}"))
}

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        false,
    )
}

/// The columns of `events.parquet`.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::UInt64, false),
        Field::new("message_id", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("anonymous_id", DataType::Utf8, true),
        Field::new("event", DataType::Utf8, true),
        timestamp("timestamp"),
        timestamp("received_at"),
        Field::new("properties", DataType::Utf8, true),
        Field::new("traits", DataType::Utf8, true),
        Field::new("context", DataType::Utf8, true),
    ]))
}

/// The columns of `profiles.parquet`.
pub fn profile_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("identities", DataType::Utf8, false),
        Field::new("traits", DataType::Utf8, false),
        Field::new("consent", DataType::Utf8, false),
        timestamp("first_seen"),
        timestamp("last_seen"),
        Field::new("events", DataType::Int64, false),
        Field::new("merged_from", DataType::Utf8, false),
    ]))
}

fn writer<W: Write + Send>(out: W, schema: SchemaRef) -> Result<ArrowWriter<W>, StoreError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    ArrowWriter::try_new(out, schema, Some(props)).map_err(export_err)
}

fn json_field(body: &serde_json::Value, field: &str) -> Option<String> {
    body.get(field)
        .filter(|v| !v.is_null())
        .map(serde_json::Value::to_string)
}

#[derive(Default)]
struct EventColumns {
    seq: UInt64Builder,
    message_id: StringBuilder,
    kind: StringBuilder,
    profile: StringBuilder,
    user_id: StringBuilder,
    anonymous_id: StringBuilder,
    event: StringBuilder,
    timestamp: TimestampMicrosecondBuilder,
    received_at: TimestampMicrosecondBuilder,
    properties: StringBuilder,
    traits: StringBuilder,
    context: StringBuilder,
    rows: usize,
}

impl Columns<StoredEvent> for EventColumns {
    fn rows(&self) -> usize {
        self.rows
    }

    fn push(&mut self, e: &StoredEvent) -> Result<(), StoreError> {
        let m = &e.message;
        self.seq.append_value(e.seq);
        self.message_id.append_value(&m.message_id);
        self.kind.append_value(m.kind.name());
        self.profile.append_value(&e.profile);
        self.user_id.append_option(m.user_id.as_deref());
        self.anonymous_id.append_option(m.anonymous_id.as_deref());
        self.event.append_option(m.event.as_deref());
        self.timestamp.append_value(m.timestamp);
        self.received_at.append_value(m.received_at);
        self.properties
            .append_option(json_field(&m.body, "properties"));
        self.traits.append_option(json_field(&m.body, "traits"));
        self.context.append_option(json_field(&m.body, "context"));
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, StoreError> {
        self.rows = 0;
        let utc = |b: &mut TimestampMicrosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.seq.finish()),
            Arc::new(self.message_id.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.profile.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.anonymous_id.finish()),
            Arc::new(self.event.finish()),
            utc(&mut self.timestamp),
            utc(&mut self.received_at),
            Arc::new(self.properties.finish()),
            Arc::new(self.traits.finish()),
            Arc::new(self.context.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(export_err)
    }
}

/// Column builders that turn rows of `T` into record batches.
trait Columns<T>: Default {
    fn push(&mut self, row: &T) -> Result<(), StoreError>;
    fn rows(&self) -> usize;
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, StoreError>;
}

/// Writes the rows `visit` produces as Parquet in batches of [`BATCH_ROWS`]; returns how
/// many.
fn write_rows<T, C: Columns<T>, W: Write + Send>(
    out: W,
    schema: &SchemaRef,
    visit: impl FnOnce(&mut dyn FnMut(T) -> Result<(), StoreError>) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut w = writer(out, Arc::clone(schema))?;
    let mut cols = C::default();
    let mut total = 0u64;
    visit(&mut |row: T| {
        cols.push(&row)?;
        total += 1;
        if cols.rows() == BATCH_ROWS {
            w.write(&cols.finish(schema)?).map_err(export_err)?;
        }
        Ok(())
    })?;
    if cols.rows() > 0 {
        w.write(&cols.finish(schema)?).map_err(export_err)?;
    }
    w.close().map_err(export_err)?;
    Ok(total)
}

/// Writes every event of the log, in order, as Parquet; returns the number written.
pub fn events_parquet<W: Write + Send>(store: &Reader, out: W) -> Result<u64, StoreError> {
    write_rows::<_, EventColumns, _>(out, &event_schema(), |each| store.for_each_event(each))
}

#[derive(Default)]
struct ProfileColumns {
    id: StringBuilder,
    identities: StringBuilder,
    traits: StringBuilder,
    consent: StringBuilder,
    first_seen: TimestampMicrosecondBuilder,
    last_seen: TimestampMicrosecondBuilder,
    events: Int64Builder,
    merged_from: StringBuilder,
    rows: usize,
}

impl Columns<Profile> for ProfileColumns {
    fn rows(&self) -> usize {
        self.rows
    }

    fn push(&mut self, p: &Profile) -> Result<(), StoreError> {
        self.id.append_value(&p.id);
        self.identities.append_value(json(&p.identities)?);
        self.traits.append_value(json(&p.traits)?);
        self.consent.append_value(json(&p.consent)?);
        self.first_seen.append_value(p.first_seen);
        self.last_seen.append_value(p.last_seen);
        self.events
            .append_value(i64::try_from(p.events).unwrap_or(i64::MAX));
        self.merged_from.append_value(json(&p.merged_from)?);
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, StoreError> {
        self.rows = 0;
        let utc = |b: &mut TimestampMicrosecondBuilder| -> ArrayRef {
            Arc::new(b.finish().with_timezone("UTC"))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.identities.finish()),
            Arc::new(self.traits.finish()),
            Arc::new(self.consent.finish()),
            utc(&mut self.first_seen),
            utc(&mut self.last_seen),
            Arc::new(self.events.finish()),
            Arc::new(self.merged_from.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(export_err)
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(export_err)
}

/// Writes every profile, in id order, as Parquet; returns the number written.
pub fn profiles_parquet<W: Write + Send>(store: &Reader, out: W) -> Result<u64, StoreError> {
    write_rows::<_, ProfileColumns, _>(out, &profile_schema(), |each| store.for_each_profile(each))
}
