//! The live store behind `strata serve` (issue 6, first part): an append-only event log with
//! `messageId` deduplication, identity resolution into stable profiles, and profile traits
//! with their history — all in one redb file, so an acknowledged event survives a crash.
//!
//! Writes from any number of callers go through one writer thread that drains whatever is
//! waiting and commits it in a single durable transaction (group commit): a caller's
//! [`Store::append`] returns only after the transaction holding its messages is on disk, and
//! under load one fsync covers many callers.
//!
//! Identity: `userId` and `anonymousId` (and `previousId` of an alias) are identities
//! `user:<id>` / `anon:<id>`; every identity belongs to one profile. A message whose
//! identities belong to different profiles merges them into the oldest, which keeps its id
//! (profile ids never change for the surviving profile; merged ones are listed in
//! `merged_from`). Blocked values (`null`, `undefined`, `anonymous`, `0`, `-1`, empty,
//! only zeros or dashes) are never identities.
//!
//! **Invariant:** a `messageId` is stored at most once, and a message is in the log if and only
//! if [`Store::append`] reported it [`Outcome::Stored`] (or a later append reported it a
//! duplicate).

mod commit;
pub mod computed;
pub mod export;
pub mod wire;

pub use commit::{MAX_IDENTITIES, MAX_TRAITS};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const MESSAGE_IDS: TableDefinition<&str, u64> = TableDefinition::new("message_ids");
const IDENTITIES: TableDefinition<&str, &str> = TableDefinition::new("identities");
const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Trait changes by (profile, change number): kept out of the profile record so that an
/// event does not rewrite a profile's whole history.
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("trait_history");
/// Positions of a profile's latest events kept in its record (for [`Reader::recent_events`];
/// every event is in the log). An index of all events by profile was measured to cost a
/// fifth of ingestion throughput: each commit dirtied a page per profile touched.
pub const RECENT_EVENTS: usize = 100;
/// API keys by their secret value.
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// Webhook subscriptions by id.
const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");
/// Deliveries not yet acknowledged by their receiver, by number.
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Rule segments by name.
const SEGMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("segments");
/// Scoring plans by name, as the JSON the admin API was given (the server checks them).
const SCORING: TableDefinition<&str, &[u8]> = TableDefinition::new("scoring_plans");
/// Computed-trait definitions by name (the built-in ones are not stored).
const COMPUTED_DEFS: TableDefinition<&str, &[u8]> = TableDefinition::new("computed_defs");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open the store {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    #[error("store write failed: {0}")]
    Write(String),
    #[error("store read failed: {0}")]
    Read(String),
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("{0}")]
    Invalid(String),
}

fn write_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Write(e.to_string())
}

fn read_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Read(e.to_string())
}

/// Segment's message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Identify,
    Track,
    Page,
    Screen,
    Group,
    Alias,
}

impl Kind {
    /// The name Segment uses in `type`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Identify => "identify",
            Kind::Track => "track",
            Kind::Page => "page",
            Kind::Screen => "screen",
            Kind::Group => "group",
            Kind::Alias => "alias",
        }
    }
}

/// A validated message, as the ingestion API hands it to the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub message_id: String,
    pub kind: Kind,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// `alias`: the identity being linked to `user_id`.
    pub previous_id: Option<String>,
    /// `track`: the event name.
    pub event: Option<String>,
    /// `identify` traits (merged into the profile).
    #[serde(default)]
    pub traits: Map<String, Value>,
    /// When it happened (skew-corrected), µs since the epoch.
    pub timestamp: i64,
    /// When the server received it, µs since the epoch.
    pub received_at: i64,
    /// The whole message as received (with the fields set by the server).
    pub body: Value,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored at this position of the log, on this profile; `merged` are the profiles this
    /// message merged into it (they no longer exist).
    Stored {
        seq: u64,
        profile: String,
        merged: Vec<String>,
    },
    /// A message with this `messageId` is already stored (at `seq`).
    Duplicate { seq: u64 },
    /// Not stored: the reason.
    Rejected(String),
}

/// One change of one trait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraitChange {
    pub name: String,
    pub value: Value,
    /// When the identify that set it happened.
    pub timestamp: i64,
    pub message_id: String,
}

/// A profile: identities and current traits (last write by event time wins); the changes
/// are in [`Reader::history`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub identities: Vec<String>,
    pub traits: Map<String, Value>,
    /// Event time of each trait's current value.
    pub trait_times: BTreeMap<String, i64>,
    /// Consent per category, from `context.consent.categoryPreferences` (latest event wins).
    #[serde(default)]
    pub consent: BTreeMap<String, Consent>,
    /// The computed traits' state (read their values with [`Reader::computed`]). Kept in the
    /// record the writer rewrites anyway: a table of its own was measured to cost a fifth of
    /// ingestion throughput.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub computed_state: computed::States,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u64,
    /// Log positions of the latest [`RECENT_EVENTS`] events, oldest first.
    #[serde(default)]
    pub recent_seqs: Vec<u64>,
    pub merged_from: Vec<String>,
}

/// One consent answer and when it was given (event time, µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub granted: bool,
    pub timestamp: i64,
}

/// A rule segment as stored: its current rule, whether it is active, and every version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub name: String,
    /// The current rule's text.
    pub rule: String,
    pub version: u32,
    pub active: bool,
    /// µs since the epoch.
    pub updated_at: i64,
    /// Every version's rule, oldest first.
    pub versions: Vec<SegmentVersion>,
}

/// A webhook: where membership changes are posted, and the secret that signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub secret: String,
    /// Only changes of these segments; empty: every segment.
    #[serde(default)]
    pub segments: Vec<String>,
    pub created_at: i64,
}

/// A delivery waiting for its receiver's 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub webhook: String,
    /// The JSON body.
    pub payload: String,
    pub attempts: u32,
    /// µs since the epoch.
    pub next_attempt: i64,
    pub last_error: Option<String>,
    /// Given up after too many attempts (kept to be seen and retried).
    #[serde(default)]
    pub failed: bool,
}

/// One version of a segment's rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentVersion {
    pub version: u32,
    pub rule: String,
    pub at: i64,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Send events to `/v1/...`.
    Write,
    /// Read profiles and manage keys under `/api/...`.
    Admin,
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key: String,
    pub kind: KeyKind,
    pub name: String,
    /// µs since the epoch.
    pub created_at: i64,
}

/// A stored event: the message, its position and its profile at the time it was stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub seq: u64,
    pub profile: String,
    pub message: Message,
}

/// True for identifier values that must not identify anyone.
pub fn is_blocked_identifier(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || ["null", "undefined", "anonymous", "nil", "none"]
            .iter()
            .any(|b| v.eq_ignore_ascii_case(b))
        || v == "-1"
        || v.chars().all(|c| c == '0')
        || v.chars().all(|c| c == '-')
}

/// Counters of the writer, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriterStats {
    /// Durable transactions committed.
    pub commits: u64,
    /// Messages stored (duplicates and rejections not counted).
    pub stored: u64,
    /// Messages whose `messageId` was already stored.
    pub duplicates: u64,
    /// Messages refused by the store (no usable identity).
    pub rejected: u64,
    /// Merges, identities and traits left out by the per-profile limits.
    pub limited: u64,
    /// Seconds the writer spent applying messages to its transactions.
    pub apply_seconds: f64,
    /// Seconds the writer spent writing and syncing commits (durability).
    pub commit_seconds: f64,
}

/// A profile search: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// Trait name and the value it must equal (strings compare case-insensitively).
    pub traits: Vec<(String, Value)>,
    /// Seen at or after this time (µs).
    pub seen_after: Option<i64>,
    /// Only profiles whose id sorts after this one (the previous page's last id).
    pub after: Option<String>,
    pub limit: usize,
}

/// The store: cheap to clone, safe to share between threads. When the last clone is
/// dropped, the writer finishes what it was given and the database file is closed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    reader: Reader,
}

/// Every read of a [`Reader`] works on a [`Store`] too.
impl std::ops::Deref for Store {
    type Target = Reader;

    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// redb settings shared by the writer and read-only handles: one writing process, any
/// number of reading ones following its commits.
fn builder() -> redb::Builder {
    let mut b = redb::Builder::new();
    b.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
    b
}

struct Inner {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<commit::Work>>,
    writer: Option<std::thread::JoinHandle<()>>,
    stats: Arc<Mutex<WriterStats>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop; joining it releases its database handle.
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) `dir/strata.redb` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let open_err = |message: String| StoreError::Open {
            path: dir.to_path_buf(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let db = builder()
            .create(dir.join("strata.redb"))
            .map_err(|e| open_err(e.to_string()))?;
        // Create the tables, so readers never meet a missing one.
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        {
            txn.open_table(EVENTS)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(MESSAGE_IDS)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(IDENTITIES)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(PROFILES)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(META).map_err(|e| open_err(e.to_string()))?;
            txn.open_table(HISTORY)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(KEYS).map_err(|e| open_err(e.to_string()))?;
            txn.open_table(COMPUTED_DEFS)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(SEGMENTS)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(SCORING)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(WEBHOOKS)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(OUTBOX)
                .map_err(|e| open_err(e.to_string()))?;
        }
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(db);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let (jobs, queue) = mpsc::channel::<commit::Work>();
        let writer_db = Arc::clone(&db);
        let writer_stats = Arc::clone(&stats);
        let writer = std::thread::Builder::new()
            .name("strata-store-writer".into())
            .spawn(move || commit::writer(&writer_db, &queue, &writer_stats))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            reader: Reader {
                db: Arc::clone(&db) as Arc<dyn ReadableDatabase + Send + Sync>,
            },
            inner: Arc::new(Inner {
                db,
                jobs: Some(jobs),
                writer: Some(writer),
                stats,
            }),
        })
    }

    /// Stores `messages` durably; returns one outcome per message, in order, once the
    /// transaction holding them is committed.
    pub fn append(&self, messages: Vec<Message>) -> Result<Vec<Outcome>, StoreError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.submit(
            messages,
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        );
        done.recv().map_err(|_| StoreError::Stopped)?
    }

    /// Like [`Store::append`] without waiting: `reply` is called with the outcomes once the
    /// transaction holding them is durable (or with the error), on the writer's thread.
    pub fn submit(
        &self,
        messages: Vec<Message>,
        reply: Box<dyn FnOnce(Result<Vec<Outcome>, StoreError>) + Send>,
    ) {
        let Some(jobs) = self.inner.jobs.as_ref() else {
            reply(Err(StoreError::Stopped));
            return;
        };
        let job = match commit::Job::new(messages, reply) {
            Ok(job) => job,
            Err((e, reply)) => {
                reply(Err(e));
                return;
            }
        };
        if let Err(mpsc::SendError(commit::Work::Messages(job))) =
            jobs.send(commit::Work::Messages(job))
        {
            (job.reply)(Err(StoreError::Stopped));
        }
    }

    /// Adds (or replaces) a computed trait and computes it over the whole log before
    /// returning (events stored meanwhile wait, so none is counted twice or missed); returns
    /// how many profiles have a value.
    pub fn define(&self, def: computed::Definition) -> Result<u64, StoreError> {
        def.validate().map_err(StoreError::Invalid)?;
        let (reply, done) = mpsc::sync_channel(1);
        self.send(commit::Work::Define(
            def,
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        ))?;
        done.recv().map_err(|_| StoreError::Stopped)?
    }

    /// Removes a computed trait; false when there was none by that name.
    pub fn undefine(&self, name: &str) -> Result<bool, StoreError> {
        let (reply, done) = mpsc::sync_channel(1);
        self.send(commit::Work::Undefine(
            name.to_string(),
            Box::new(move |r| {
                let _ = reply.send(r);
            }),
        ))?;
        done.recv().map_err(|_| StoreError::Stopped)?
    }

    fn send(&self, work: commit::Work) -> Result<(), StoreError> {
        self.inner
            .jobs
            .as_ref()
            .ok_or(StoreError::Stopped)?
            .send(work)
            .map_err(|_| StoreError::Stopped)
    }

    pub fn stats(&self) -> WriterStats {
        self.inner.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Adds an API key (`key` is its secret value; at least 16 characters).
    pub fn add_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        if key.key.trim().len() < 16 || key.key.chars().any(char::is_whitespace) {
            return Err(StoreError::Write(
                "an API key needs at least 16 characters and no spaces".into(),
            ));
        }
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut keys = txn.open_table(KEYS).map_err(write_err)?;
            let bytes = serde_json::to_vec(key).map_err(write_err)?;
            keys.insert(key.key.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    /// Stores a segment (replacing the record of that name).
    pub fn put_segment(&self, segment: &SegmentRecord) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(SEGMENTS).map_err(write_err)?;
            let bytes = serde_json::to_vec(segment).map_err(write_err)?;
            table
                .insert(segment.name.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    /// Stores a scoring plan (replacing the plan of that name).
    pub fn put_scoring_plan(&self, name: &str, plan: &Value) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(SCORING).map_err(write_err)?;
            let bytes = serde_json::to_vec(plan).map_err(write_err)?;
            table.insert(name, bytes.as_slice()).map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    /// Removes a scoring plan; false when there was none.
    pub fn remove_scoring_plan(&self, name: &str) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        let existed = txn
            .open_table(SCORING)
            .map_err(write_err)?
            .remove(name)
            .map_err(write_err)?
            .is_some();
        txn.commit().map_err(write_err)?;
        Ok(existed)
    }

    /// Adds or replaces a webhook.
    pub fn put_webhook(&self, hook: &Webhook) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut table = txn.open_table(WEBHOOKS).map_err(write_err)?;
            let bytes = serde_json::to_vec(hook).map_err(write_err)?;
            table
                .insert(hook.id.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
        txn.commit().map_err(write_err)
    }

    /// Removes a webhook and its pending deliveries; false when there was none.
    pub fn remove_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        let existed;
        {
            let mut table = txn.open_table(WEBHOOKS).map_err(write_err)?;
            existed = table.remove(id).map_err(write_err)?.is_some();
            let mut outbox = txn.open_table(OUTBOX).map_err(write_err)?;
            let mine: Vec<u64> = outbox
                .iter()
                .map_err(write_err)?
                .filter_map(|e| {
                    let (k, v) = e.ok()?;
                    let d: Delivery = serde_json::from_slice(v.value()).ok()?;
                    (d.webhook == id).then(|| k.value())
                })
                .collect();
            for k in mine {
                outbox.remove(k).map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)?;
        Ok(existed)
    }

    /// Queues deliveries durably (they are sent until acknowledged).
    pub fn enqueue(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(write_err)?;
            let first = outbox
                .last()
                .map_err(write_err)?
                .map_or(0, |(k, _)| k.value() + 1);
            for (n, d) in (first..).zip(deliveries) {
                let bytes = serde_json::to_vec(d).map_err(write_err)?;
                outbox.insert(n, bytes.as_slice()).map_err(write_err)?;
            }
        }
        txn.commit().map_err(write_err)
    }

    /// Records a delivery attempt: acknowledged (removed), or its next attempt.
    pub fn settle(&self, number: u64, outcome: Option<&Delivery>) -> Result<(), StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(write_err)?;
            match outcome {
                None => {
                    outbox.remove(number).map_err(write_err)?;
                }
                Some(d) => {
                    let bytes = serde_json::to_vec(d).map_err(write_err)?;
                    outbox.insert(number, bytes.as_slice()).map_err(write_err)?;
                }
            }
        }
        txn.commit().map_err(write_err)
    }

    /// Removes a key; false when there was none.
    pub fn revoke_key(&self, key: &str) -> Result<bool, StoreError> {
        let txn = self.inner.db.begin_write().map_err(write_err)?;
        let existed = {
            let mut keys = txn.open_table(KEYS).map_err(write_err)?;
            keys.remove(key).map_err(write_err)?.is_some()
        };
        txn.commit().map_err(write_err)?;
        Ok(existed)
    }
}

/// Read access to a store: from a [`Store`] (through `Deref`) or, with [`Reader::open`], from
/// another process while `strata serve` writes (redb's single-writer mode: readers follow the
/// writer's commits).
#[derive(Clone)]
pub struct Reader {
    db: Arc<dyn ReadableDatabase + Send + Sync>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl Reader {
    /// Opens `dir/strata.redb` read-only; works while a server has the store open.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("strata.redb");
        let open_err = |message: String| StoreError::Open {
            path: path.clone(),
            message,
        };
        if !path.is_file() {
            return Err(open_err(
                "no store here (`strata serve --data DIR` creates one)".into(),
            ));
        }
        let db = builder()
            .open_read_only(&path)
            .map_err(|e| open_err(e.to_string()))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// True when the database answers a read.
    pub fn ready(&self) -> bool {
        self.db
            .begin_read()
            .is_ok_and(|t| t.open_table(META).is_ok())
    }

    /// Events stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(EVENTS).map_err(read_err)?;
        table.len().map_err(read_err)
    }

    /// Up to `limit` events from position `from` on.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(EVENTS).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in table.range(from..).map_err(read_err)?.take(limit) {
            let (_, v) = entry.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }

    /// Every trait change of the profile with this id or identity, in the order recorded
    /// (a merged profile's changes come along).
    pub fn history(&self, key: &str) -> Result<Vec<TraitChange>, StoreError> {
        match self.profile(key)? {
            Some(p) => self.history_of(&p),
            None => Ok(Vec::new()),
        }
    }

    /// [`Reader::history`] of a profile already read.
    pub fn history_of(&self, profile: &Profile) -> Result<Vec<TraitChange>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(HISTORY).map_err(read_err)?;
        let id = profile.id.as_str();
        let mut out = Vec::new();
        for entry in table.range((id, 0u64)..=(id, u64::MAX)).map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }

    /// The profile with this id, or holding this identity (`user:<id>`, `anon:<id>`).
    pub fn profile(&self, key: &str) -> Result<Option<Profile>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let identities = txn.open_table(IDENTITIES).map_err(read_err)?;
        let profiles = txn.open_table(PROFILES).map_err(read_err)?;
        let id = match identities.get(key).map_err(read_err)? {
            Some(p) => p.value().to_string(),
            None => key.to_string(),
        };
        match profiles.get(id.as_str()).map_err(read_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// The `limit` most recent events (at most [`RECENT_EVENTS`]) of the profile with this id
    /// or identity, newest first.
    pub fn recent_events(&self, key: &str, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        match self.profile(key)? {
            Some(p) => self.recent_events_of(&p, limit),
            None => Ok(Vec::new()),
        }
    }

    /// [`Reader::recent_events`] of a profile already read.
    pub fn recent_events_of(
        &self,
        profile: &Profile,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let events = txn.open_table(EVENTS).map_err(read_err)?;
        let mut out = Vec::new();
        for seq in profile.recent_seqs.iter().rev().take(limit) {
            if let Some(v) = events.get(*seq).map_err(read_err)? {
                out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
            }
        }
        Ok(out)
    }

    /// Profiles in id order that pass every filter of `search`, at most `search.limit`.
    pub fn search(&self, search: &Search) -> Result<Vec<Profile>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let profiles = txn.open_table(PROFILES).map_err(read_err)?;
        let range = match search.after.as_deref() {
            Some(after) => profiles
                .range::<&str>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            None => profiles.range::<&str>(..),
        }
        .map_err(read_err)?;
        let mut out = Vec::new();
        for entry in range {
            if out.len() >= search.limit {
                break;
            }
            let (_, v) = entry.map_err(read_err)?;
            let p: Profile = serde_json::from_slice(v.value()).map_err(read_err)?;
            if search.seen_after.is_some_and(|t| p.last_seen < t) {
                continue;
            }
            let traits_match = search.traits.iter().all(|(name, want)| {
                p.traits.get(name).is_some_and(|have| match (have, want) {
                    (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
                    (a, b) => a == b,
                })
            });
            if traits_match {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Calls `each` with every profile, in id order.
    pub fn for_each_profile(
        &self,
        mut each: impl FnMut(Profile) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let profiles = txn.open_table(PROFILES).map_err(read_err)?;
        for entry in profiles.iter().map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            each(serde_json::from_slice(v.value()).map_err(read_err)?)?;
        }
        Ok(())
    }

    /// Calls `each` with every event, in log order.
    pub fn for_each_event(
        &self,
        mut each: impl FnMut(StoredEvent) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let events = txn.open_table(EVENTS).map_err(read_err)?;
        for entry in events.iter().map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            each(serde_json::from_slice(v.value()).map_err(read_err)?)?;
        }
        Ok(())
    }

    /// Every computed-trait definition: the built-in ones first.
    pub fn definitions(&self) -> Result<Vec<computed::Definition>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(COMPUTED_DEFS).map_err(read_err)?;
        commit::load_definitions(&table).map_err(|e| StoreError::Read(e.to_string()))
    }

    /// The computed traits of the profile with this id or identity, at `now` (µs).
    pub fn computed(
        &self,
        key: &str,
        now: i64,
    ) -> Result<Option<BTreeMap<String, Value>>, StoreError> {
        match self.profile(key)? {
            Some(p) => self.computed_of(&p, now).map(Some),
            None => Ok(None),
        }
    }

    /// [`Reader::computed`] of a profile already read.
    pub fn computed_of(
        &self,
        profile: &Profile,
        now: i64,
    ) -> Result<BTreeMap<String, Value>, StoreError> {
        let defs = self.definitions()?;
        Ok(computed::values(&defs, &profile.computed_state, now))
    }

    /// Where each merged-away profile went: its id → the surviving profile's id. An event
    /// names the profile it was stored on, which a later merge may have folded into another.
    pub fn survivors(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut out = HashMap::new();
        self.for_each_profile(|p| {
            for merged in p.merged_from {
                out.insert(merged, p.id.clone());
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Profiles stored.
    pub fn profile_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(PROFILES).map_err(read_err)?;
        table.len().map_err(read_err)
    }

    /// Every webhook.
    pub fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(WEBHOOKS).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }

    /// Deliveries waiting, in order: all of them, or those due by `now` (not given up).
    pub fn outbox(
        &self,
        due_by: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(u64, Delivery)>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(OUTBOX).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(read_err)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = entry.map_err(read_err)?;
            let d: Delivery = serde_json::from_slice(v.value()).map_err(read_err)?;
            if due_by.is_none_or(|now| !d.failed && d.next_attempt <= now) {
                out.push((k.value(), d));
            }
        }
        Ok(out)
    }

    /// Every scoring plan (name, JSON), by name.
    pub fn scoring_plans(&self) -> Result<Vec<(String, Value)>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(SCORING).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(read_err)? {
            let (k, v) = entry.map_err(read_err)?;
            out.push((
                k.value().to_string(),
                serde_json::from_slice(v.value()).map_err(read_err)?,
            ));
        }
        Ok(out)
    }

    /// Every rule segment, by name.
    pub fn segments(&self) -> Result<Vec<SegmentRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(SEGMENTS).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }

    /// Every API key.
    pub fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let keys = txn.open_table(KEYS).map_err(read_err)?;
        let mut out = Vec::new();
        for entry in keys.iter().map_err(read_err)? {
            let (_, v) = entry.map_err(read_err)?;
            out.push(serde_json::from_slice(v.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}
