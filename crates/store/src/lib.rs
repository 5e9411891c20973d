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

pub mod wire;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const MESSAGE_IDS: TableDefinition<&str, u64> = TableDefinition::new("message_ids");
const IDENTITIES: TableDefinition<&str, &str> = TableDefinition::new("identities");
const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Trait changes by (profile, change number): kept out of the profile record so that an
/// event does not rewrite a profile's whole history.
const HISTORY: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("trait_history");

/// Messages one write transaction takes at most (the rest wait for the next).
const MAX_GROUP: usize = 20_000;

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
    /// Stored at this position of the log, on this profile.
    Stored { seq: u64, profile: String },
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
/// are in [`Store::history`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub identities: Vec<String>,
    pub traits: Map<String, Value>,
    /// Event time of each trait's current value.
    pub trait_times: BTreeMap<String, i64>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub events: u64,
    pub merged_from: Vec<String>,
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Durable transactions committed.
    pub commits: u64,
    /// Messages stored (duplicates and rejections not counted).
    pub stored: u64,
}

struct Job {
    messages: Vec<Message>,
    reply: mpsc::SyncSender<Result<Vec<Outcome>, StoreError>>,
}

/// The store: cheap to clone, safe to share between threads. When the last clone is
/// dropped, the writer finishes what it was given and the database file is closed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    jobs: Option<mpsc::Sender<Job>>,
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
        let db = Database::create(dir.join("strata.redb")).map_err(|e| open_err(e.to_string()))?;
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
        }
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        let db = Arc::new(db);
        let stats = Arc::new(Mutex::new(WriterStats::default()));
        let (jobs, queue) = mpsc::channel::<Job>();
        let writer_db = Arc::clone(&db);
        let writer_stats = Arc::clone(&stats);
        let writer = std::thread::Builder::new()
            .name("strata-store-writer".into())
            .spawn(move || writer(&writer_db, &queue, &writer_stats))
            .map_err(|e| open_err(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
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
        self.inner
            .jobs
            .as_ref()
            .ok_or(StoreError::Stopped)?
            .send(Job { messages, reply })
            .map_err(|_| StoreError::Stopped)?;
        done.recv().map_err(|_| StoreError::Stopped)?
    }

    pub fn stats(&self) -> WriterStats {
        self.inner.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Events stored.
    pub fn event_count(&self) -> Result<u64, StoreError> {
        let txn = self.inner.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(EVENTS).map_err(read_err)?;
        table.len().map_err(read_err)
    }

    /// Up to `limit` events from position `from` on.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let txn = self.inner.db.begin_read().map_err(read_err)?;
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
        let Some(profile) = self.profile(key)? else {
            return Ok(Vec::new());
        };
        let txn = self.inner.db.begin_read().map_err(read_err)?;
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
        let txn = self.inner.db.begin_read().map_err(read_err)?;
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
}

/// The writer thread: one job, plus whatever else is already waiting, per transaction.
fn writer(db: &Database, queue: &mpsc::Receiver<Job>, stats: &Mutex<WriterStats>) {
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        let mut waiting = jobs[0].messages.len();
        while waiting < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => {
                    waiting += job.messages.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        match commit(db, &jobs) {
            Ok(outcomes) => {
                if let Ok(mut s) = stats.lock() {
                    s.commits += 1;
                    s.stored += outcomes
                        .iter()
                        .flatten()
                        .filter(|o| matches!(o, Outcome::Stored { .. }))
                        .count() as u64;
                }
                for (job, out) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(out));
                }
            }
            Err(e) => {
                // Nothing of the transaction was written: every caller gets the error.
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Write(e.to_string())));
                }
            }
        }
    }
}

fn next(meta: &mut redb::Table<'_, &str, u64>, key: &str) -> Result<u64, StoreError> {
    let n = meta.get(key).map_err(write_err)?.map_or(0, |v| v.value());
    meta.insert(key, n + 1).map_err(write_err)?;
    Ok(n)
}

fn load_profile(
    profiles: &redb::Table<'_, &str, &[u8]>,
    id: &str,
) -> Result<Option<Profile>, StoreError> {
    match profiles.get(id).map_err(write_err)? {
        Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(write_err)?)),
        None => Ok(None),
    }
}

/// Profile ids sort by creation: `p` + a zero-padded counter.
fn profile_id(n: u64) -> String {
    format!("p{n:012}")
}

/// Sets the trait unless the profile already has a value from a later event.
fn set_trait(p: &mut Profile, change: &TraitChange) {
    let newer = p
        .trait_times
        .get(&change.name)
        .is_none_or(|&t| change.timestamp >= t);
    if newer {
        p.traits.insert(change.name.clone(), change.value.clone());
        p.trait_times.insert(change.name.clone(), change.timestamp);
    }
}

/// Folds `other` (and its trait changes) into `into`: identities, traits by event time,
/// counters.
fn merge(into: &mut Profile, other: Profile, changes: &[TraitChange]) {
    for id in other.identities {
        if !into.identities.contains(&id) {
            into.identities.push(id);
        }
    }
    for c in changes {
        set_trait(into, c);
    }
    into.first_seen = into.first_seen.min(other.first_seen);
    into.last_seen = into.last_seen.max(other.last_seen);
    into.events += other.events;
    into.merged_from.push(other.id);
    into.merged_from.extend(other.merged_from);
}

/// The identities a message names, blocked values left out.
fn identities_of(
    m: &Message,
    identities: &redb::Table<'_, &str, &str>,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    if let Some(u) = m.user_id.as_deref().filter(|u| !is_blocked_identifier(u)) {
        out.push(format!("user:{}", u.trim()));
    }
    if let Some(a) = m
        .anonymous_id
        .as_deref()
        .filter(|a| !is_blocked_identifier(a))
    {
        out.push(format!("anon:{}", a.trim()));
    }
    if let Some(prev) = m
        .previous_id
        .as_deref()
        .filter(|p| !is_blocked_identifier(p))
    {
        // Either kind of identity: whichever is known, else a user id.
        let (user, anon) = (
            format!("user:{}", prev.trim()),
            format!("anon:{}", prev.trim()),
        );
        if identities.get(anon.as_str()).map_err(write_err)?.is_some()
            && identities.get(user.as_str()).map_err(write_err)?.is_none()
        {
            out.push(anon);
        } else {
            out.push(user);
        }
    }
    out.dedup();
    Ok(out)
}

/// One transaction for all `jobs`; outcomes per job, per message.
fn commit(db: &Database, jobs: &[Job]) -> Result<Vec<Vec<Outcome>>, StoreError> {
    let txn = db.begin_write().map_err(write_err)?;
    let mut all = Vec::with_capacity(jobs.len());
    {
        let mut events = txn.open_table(EVENTS).map_err(write_err)?;
        let mut message_ids = txn.open_table(MESSAGE_IDS).map_err(write_err)?;
        let mut identities = txn.open_table(IDENTITIES).map_err(write_err)?;
        let mut profiles = txn.open_table(PROFILES).map_err(write_err)?;
        let mut meta = txn.open_table(META).map_err(write_err)?;
        let mut history = txn.open_table(HISTORY).map_err(write_err)?;
        for job in jobs {
            let mut outcomes = Vec::with_capacity(job.messages.len());
            for m in &job.messages {
                if let Some(seq) = message_ids.get(m.message_id.as_str()).map_err(write_err)? {
                    outcomes.push(Outcome::Duplicate { seq: seq.value() });
                    continue;
                }
                let ids = identities_of(m, &identities)?;
                if ids.is_empty() {
                    outcomes.push(Outcome::Rejected(
                        "no usable userId or anonymousId (missing, or a blocked value such as \"null\")"
                            .into(),
                    ));
                    continue;
                }
                // The profiles these identities belong to, oldest first.
                let mut owners: Vec<String> = Vec::new();
                for id in &ids {
                    if let Some(p) = identities.get(id.as_str()).map_err(write_err)? {
                        let p = p.value().to_string();
                        if !owners.contains(&p) {
                            owners.push(p);
                        }
                    }
                }
                owners.sort();
                let mut profile = match owners.first() {
                    Some(id) => load_profile(&profiles, id)?.ok_or_else(|| {
                        StoreError::Write(format!("identity points at a missing profile {id}"))
                    })?,
                    None => Profile {
                        id: profile_id(next(&mut meta, "next_profile")?),
                        identities: Vec::new(),
                        traits: Map::new(),
                        trait_times: BTreeMap::new(),
                        first_seen: m.timestamp,
                        last_seen: m.timestamp,
                        events: 0,
                        merged_from: Vec::new(),
                    },
                };
                for other_id in owners.iter().skip(1) {
                    if let Some(other) = load_profile(&profiles, other_id)? {
                        for id in &other.identities {
                            identities
                                .insert(id.as_str(), profile.id.as_str())
                                .map_err(write_err)?;
                        }
                        profiles.remove(other_id.as_str()).map_err(write_err)?;
                        // Its trait changes move to the survivor, keeping their numbers.
                        let moved: Vec<(u64, Vec<u8>)> = history
                            .range((other_id.as_str(), 0u64)..=(other_id.as_str(), u64::MAX))
                            .map_err(write_err)?
                            .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
                            .collect::<Result<_, _>>()
                            .map_err(write_err)?;
                        let mut changes = Vec::with_capacity(moved.len());
                        for (n, bytes) in &moved {
                            history.remove((other_id.as_str(), *n)).map_err(write_err)?;
                            history
                                .insert((profile.id.as_str(), *n), bytes.as_slice())
                                .map_err(write_err)?;
                            changes.push(
                                serde_json::from_slice::<TraitChange>(bytes).map_err(write_err)?,
                            );
                        }
                        changes.sort_by_key(|c| c.timestamp);
                        merge(&mut profile, other, &changes);
                    }
                }
                for id in &ids {
                    if !profile.identities.contains(id) {
                        profile.identities.push(id.clone());
                    }
                    identities
                        .insert(id.as_str(), profile.id.as_str())
                        .map_err(write_err)?;
                }
                if m.kind == Kind::Identify {
                    for (name, value) in &m.traits {
                        let change = TraitChange {
                            name: name.clone(),
                            value: value.clone(),
                            timestamp: m.timestamp,
                            message_id: m.message_id.clone(),
                        };
                        set_trait(&mut profile, &change);
                        let n = next(&mut meta, "next_change")?;
                        let bytes = serde_json::to_vec(&change).map_err(write_err)?;
                        history
                            .insert((profile.id.as_str(), n), bytes.as_slice())
                            .map_err(write_err)?;
                    }
                }
                profile.first_seen = profile.first_seen.min(m.timestamp);
                profile.last_seen = profile.last_seen.max(m.timestamp);
                profile.events += 1;
                let seq = next(&mut meta, "next_seq")?;
                let stored = StoredEvent {
                    seq,
                    profile: profile.id.clone(),
                    message: m.clone(),
                };
                let bytes = serde_json::to_vec(&stored).map_err(write_err)?;
                events.insert(seq, bytes.as_slice()).map_err(write_err)?;
                message_ids
                    .insert(m.message_id.as_str(), seq)
                    .map_err(write_err)?;
                let bytes = serde_json::to_vec(&profile).map_err(write_err)?;
                profiles
                    .insert(profile.id.as_str(), bytes.as_slice())
                    .map_err(write_err)?;
                outcomes.push(Outcome::Stored {
                    seq,
                    profile: profile.id.clone(),
                });
            }
            all.push(outcomes);
        }
    }
    // Durable (fsync) before any caller is answered.
    txn.commit().map_err(write_err)?;
    Ok(all)
}
