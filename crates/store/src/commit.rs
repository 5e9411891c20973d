//! The writer thread and its transactions: identity resolution, profile merging, traits,
//! consent and the event log, for every message of a group in one durable commit.
//!
//! Events are stored as [`crate::StoredEvent`] JSON.

use crate::computed::{self, Definition};
use crate::{
    COMPUTED_DEFS, Consent, EVENTS, HISTORY, IDENTITIES, Kind, MESSAGE_IDS, META, Message, Outcome,
    PROFILES, Profile, RECENT_EVENTS, StoreError, StoredEvent, TraitChange, WriterStats,
    is_blocked_identifier, write_err,
};
use redb::{Database, ReadableTable};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, mpsc};

/// Messages one write transaction takes at most (the rest wait for the next).
const MAX_GROUP: usize = 20_000;
/// Identities one profile may hold; a merge past it is not made.
pub const MAX_IDENTITIES: usize = 100;
/// Distinct traits one profile may hold; new names past it are not kept.
pub const MAX_TRAITS: usize = 1_000;

/// Called once with the outcome of a job's messages, after the commit (or its failure).
pub(crate) type Reply = Box<dyn FnOnce(Result<Vec<Outcome>, StoreError>) + Send>;

pub(crate) struct Job {
    /// The messages without their `body` (the writer needs only `encoded` and `consent`;
    /// building and dropping the body's tree is the caller's work, not the one writer's).
    pub messages: Vec<Message>,
    /// Each message as JSON.
    pub encoded: Vec<Vec<u8>>,
    /// Each message's consent answers.
    pub consent: Vec<Vec<(String, bool)>>,
    /// Each track message's `properties` (for computed traits).
    pub properties: Vec<Option<Value>>,
    pub reply: Reply,
}

/// What the writer is asked to do.
pub(crate) enum Work {
    Messages(Job),
    /// Add (or replace) a computed trait and compute it over the whole log.
    Define(Definition, Box<dyn FnOnce(Result<u64, StoreError>) + Send>),
    /// Remove a computed trait from the definitions and every profile.
    Undefine(String, Box<dyn FnOnce(Result<bool, StoreError>) + Send>),
}

impl Job {
    /// Prepares `messages` for the writer on the caller's thread.
    pub fn new(mut messages: Vec<Message>, reply: Reply) -> Result<Self, (StoreError, Reply)> {
        let mut encoded = Vec::with_capacity(messages.len());
        let mut consent = Vec::with_capacity(messages.len());
        let mut properties = Vec::with_capacity(messages.len());
        for m in &mut messages {
            match serde_json::to_vec(&*m) {
                Ok(e) => encoded.push(e),
                Err(e) => return Err((write_err(e), reply)),
            }
            consent.push(consent_of(m));
            properties.push(if m.kind == Kind::Track {
                m.body.get_mut("properties").map(Value::take)
            } else {
                None
            });
            m.body = Value::Null;
        }
        Ok(Self {
            messages,
            encoded,
            consent,
            properties,
            reply,
        })
    }
}

/// The writer thread: one message job, plus whatever other message jobs are already
/// waiting, per transaction; a definition change in a transaction of its own, in queue
/// order.
pub(crate) fn writer(db: &Database, queue: &mpsc::Receiver<Work>, stats: &Mutex<WriterStats>) {
    let mut held: Option<Work> = None;
    loop {
        let first = match held.take() {
            Some(w) => w,
            None => match queue.recv() {
                Ok(w) => w,
                Err(_) => return,
            },
        };
        let first = match first {
            Work::Messages(job) => job,
            Work::Define(def, reply) => {
                reply(define(db, &def));
                continue;
            }
            Work::Undefine(name, reply) => {
                reply(undefine(db, &name));
                continue;
            }
        };
        let mut jobs = vec![first];
        let mut waiting = jobs[0].messages.len();
        while waiting < MAX_GROUP {
            match queue.try_recv() {
                Ok(Work::Messages(job)) => {
                    waiting += job.messages.len();
                    jobs.push(job);
                }
                Ok(other) => {
                    held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        match commit(db, &jobs) {
            Ok(Committed {
                outcomes,
                limited,
                apply,
                sync,
            }) => {
                if let Ok(mut s) = stats.lock() {
                    s.commits += 1;
                    s.limited += limited;
                    s.apply_seconds += apply;
                    s.commit_seconds += sync;
                    for o in outcomes.iter().flatten() {
                        match o {
                            Outcome::Stored { .. } => s.stored += 1,
                            Outcome::Duplicate { .. } => s.duplicates += 1,
                            Outcome::Rejected(_) => s.rejected += 1,
                        }
                    }
                }
                for (job, out) in jobs.into_iter().zip(outcomes) {
                    (job.reply)(Ok(out));
                }
            }
            Err(e) => {
                // Nothing of the transaction was written: every caller gets the error.
                for job in jobs {
                    (job.reply)(Err(StoreError::Write(e.to_string())));
                }
            }
        }
    }
}

/// A [`crate::StoredEvent`]'s JSON around the message's already encoded JSON.
fn stored_event_json(seq: u64, profile: &str, message: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(message.len() + profile.len() + 40);
    out.extend_from_slice(format!("{{\"seq\":{seq},\"profile\":").as_bytes());
    serde_json::to_writer(&mut out, profile).map_err(write_err)?;
    out.extend_from_slice(b",\"message\":");
    out.extend_from_slice(message);
    out.push(b'}');
    Ok(out)
}

/// Profile ids sort by creation: `p` + a zero-padded counter.
fn profile_id(n: u64) -> String {
    format!("p{n:012}")
}

/// Sets the trait unless the profile already has a value from a later event. False when the
/// profile is at [`MAX_TRAITS`] and this is a new name.
fn set_trait(p: &mut Profile, change: &TraitChange) -> bool {
    if !p.traits.contains_key(&change.name) && p.traits.len() >= MAX_TRAITS {
        return false;
    }
    let newer = p
        .trait_times
        .get(&change.name)
        .is_none_or(|&t| change.timestamp >= t);
    if newer {
        p.traits.insert(change.name.clone(), change.value.clone());
        p.trait_times.insert(change.name.clone(), change.timestamp);
    }
    true
}

/// Folds `other` (and its trait changes, oldest first) into `into`.
fn merge(into: &mut Profile, other: Profile, changes: &[TraitChange], defs: &[Definition]) {
    computed::merge(defs, &mut into.computed_state, other.computed_state);
    for id in other.identities {
        if !into.identities.contains(&id) {
            into.identities.push(id);
        }
    }
    for c in changes {
        set_trait(into, c);
    }
    for (category, c) in other.consent {
        set_consent(into, &category, c);
    }
    into.first_seen = into.first_seen.min(other.first_seen);
    into.last_seen = into.last_seen.max(other.last_seen);
    into.events += other.events;
    // Both profiles' latest events, in log order.
    into.recent_seqs.extend(other.recent_seqs);
    into.recent_seqs.sort_unstable();
    let excess = into.recent_seqs.len().saturating_sub(RECENT_EVENTS);
    into.recent_seqs.drain(..excess);
    into.merged_from.push(other.id);
    into.merged_from.extend(other.merged_from);
}

/// Consent per category: the latest event's answer wins.
fn set_consent(p: &mut Profile, category: &str, c: Consent) {
    let newer = p
        .consent
        .get(category)
        .is_none_or(|old| c.timestamp >= old.timestamp);
    if newer {
        p.consent.insert(category.to_string(), c);
    }
}

/// The consent answers a message carries in `context.consent.categoryPreferences`.
fn consent_of(m: &Message) -> Vec<(String, bool)> {
    match m.body.pointer("/context/consent/categoryPreferences") {
        Some(Value::Object(prefs)) => prefs
            .iter()
            .filter_map(|(k, v)| v.as_bool().map(|b| (k.clone(), b)))
            .collect(),
        _ => Vec::new(),
    }
}

/// Counters of the `meta` table, read once per transaction and written back at its end.
struct Counters {
    seq: u64,
    profile: u64,
    change: u64,
}

const COUNTER_KEYS: [&str; 3] = ["next_seq", "next_profile", "next_change"];

/// One transaction's tables and the profiles it has touched (written once, at the end).
struct Tx<'t> {
    events: redb::Table<'t, u64, &'static [u8]>,
    message_ids: redb::Table<'t, &'static str, u64>,
    identities: redb::Table<'t, &'static str, &'static str>,
    profiles: redb::Table<'t, &'static str, &'static [u8]>,
    history: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    touched: HashMap<String, Profile>,
    /// Computed-trait definitions (built in and stored).
    defs: Vec<Definition>,
    counters: Counters,
    limited: u64,
}

impl Tx<'_> {
    fn profile(&mut self, id: &str) -> Result<Option<Profile>, StoreError> {
        if let Some(p) = self.touched.remove(id) {
            return Ok(Some(p));
        }
        match self.profiles.get(id).map_err(write_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value()).map_err(write_err)?)),
            None => Ok(None),
        }
    }

    fn owner(&self, identity: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .identities
            .get(identity)
            .map_err(write_err)?
            .map(|p| p.value().to_string()))
    }

    /// The identities a message names, blocked values left out.
    fn identities_of(&self, m: &Message) -> Result<Vec<String>, StoreError> {
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
            if self.owner(&anon)?.is_some() && self.owner(&user)?.is_none() {
                out.push(anon);
            } else {
                out.push(user);
            }
        }
        out.dedup();
        Ok(out)
    }

    /// Moves `other`'s identities, trait changes and computed traits onto `into`, and
    /// deletes it.
    fn absorb(&mut self, into: &mut Profile, other: Profile) -> Result<(), StoreError> {
        let other_id = other.id.clone();
        for id in &other.identities {
            self.identities
                .insert(id.as_str(), into.id.as_str())
                .map_err(write_err)?;
        }
        self.profiles.remove(other_id.as_str()).map_err(write_err)?;
        // Its trait changes move to the survivor, keeping their numbers.
        let moved: Vec<(u64, Vec<u8>)> = self
            .history
            .range((other_id.as_str(), 0u64)..=(other_id.as_str(), u64::MAX))
            .map_err(write_err)?
            .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(write_err)?;
        let mut changes = Vec::with_capacity(moved.len());
        for (n, bytes) in &moved {
            self.history
                .remove((other_id.as_str(), *n))
                .map_err(write_err)?;
            self.history
                .insert((into.id.as_str(), *n), bytes.as_slice())
                .map_err(write_err)?;
            changes.push(serde_json::from_slice::<TraitChange>(bytes).map_err(write_err)?);
        }
        changes.sort_by_key(|c| c.timestamp);
        merge(into, other, &changes, &self.defs);
        Ok(())
    }

    /// Stores one message (`encoded` is its JSON).
    fn apply(
        &mut self,
        m: &Message,
        encoded: &[u8],
        consent: &[(String, bool)],
        properties: Option<&Value>,
    ) -> Result<Outcome, StoreError> {
        let ids = self.identities_of(m)?;
        if ids.is_empty() {
            return Ok(Outcome::Rejected(
                "no usable userId or anonymousId (missing, or a blocked value such as \"null\")"
                    .into(),
            ));
        }
        // Claim the messageId with this event's position; one lookup finds a duplicate (whose
        // entry is then put back).
        let seq = self.counters.seq;
        let earlier = self
            .message_ids
            .insert(m.message_id.as_str(), seq)
            .map_err(write_err)?
            .map(|old| old.value());
        if let Some(old) = earlier {
            self.message_ids
                .insert(m.message_id.as_str(), old)
                .map_err(write_err)?;
            return Ok(Outcome::Duplicate { seq: old });
        }
        self.counters.seq += 1;
        // The profiles these identities belong to, oldest first.
        let first_owners: Vec<Option<String>> = ids
            .iter()
            .map(|id| self.owner(id))
            .collect::<Result<_, _>>()?;
        let mut owners: Vec<String> = first_owners.iter().flatten().cloned().collect();
        owners.sort();
        owners.dedup();
        let mut profile = match owners.first() {
            Some(id) => self.profile(id)?.ok_or_else(|| {
                StoreError::Write(format!("identity points at a missing profile {id}"))
            })?,
            None => {
                let id = profile_id(self.counters.profile);
                self.counters.profile += 1;
                Profile {
                    id,
                    identities: Vec::new(),
                    traits: Map::new(),
                    trait_times: BTreeMap::new(),
                    consent: BTreeMap::new(),
                    computed_state: computed::States::new(),
                    first_seen: m.timestamp,
                    last_seen: m.timestamp,
                    events: 0,
                    recent_seqs: Vec::new(),
                    merged_from: Vec::new(),
                }
            }
        };
        let mut absorbed: Vec<&str> = Vec::new();
        for other_id in owners.iter().skip(1) {
            let Some(other) = self.profile(other_id)? else {
                continue;
            };
            if profile.identities.len() + other.identities.len() > MAX_IDENTITIES {
                // Too many identities for one person: keep them apart.
                self.limited += 1;
                self.touched.insert(other.id.clone(), other);
                continue;
            }
            self.absorb(&mut profile, other)?;
            absorbed.push(other_id);
        }
        for (id, first) in ids.iter().zip(&first_owners) {
            // Owned by a profile that could not be merged in: left there.
            if first
                .as_deref()
                .is_some_and(|o| o != profile.id && !absorbed.contains(&o))
            {
                continue;
            }
            if !profile.identities.contains(id) {
                if profile.identities.len() >= MAX_IDENTITIES {
                    self.limited += 1;
                    continue;
                }
                profile.identities.push(id.clone());
            }
            if first.is_none() {
                self.identities
                    .insert(id.as_str(), profile.id.as_str())
                    .map_err(write_err)?;
            }
        }
        if m.kind == Kind::Identify {
            for (name, value) in &m.traits {
                let change = TraitChange {
                    name: name.clone(),
                    value: value.clone(),
                    timestamp: m.timestamp,
                    message_id: m.message_id.clone(),
                };
                if !set_trait(&mut profile, &change) {
                    self.limited += 1;
                    continue;
                }
                let n = self.counters.change;
                self.counters.change += 1;
                let bytes = serde_json::to_vec(&change).map_err(write_err)?;
                self.history
                    .insert((profile.id.as_str(), n), bytes.as_slice())
                    .map_err(write_err)?;
            }
        }
        for (category, granted) in consent {
            set_consent(
                &mut profile,
                category,
                Consent {
                    granted: *granted,
                    timestamp: m.timestamp,
                },
            );
        }
        profile.first_seen = profile.first_seen.min(m.timestamp);
        profile.last_seen = profile.last_seen.max(m.timestamp);
        profile.events += 1;
        let bytes = stored_event_json(seq, &profile.id, encoded)?;
        self.events
            .insert(seq, bytes.as_slice())
            .map_err(write_err)?;
        if m.kind == Kind::Track {
            let event = m.event.as_deref();
            if !computed::apply(
                &self.defs,
                &mut profile.computed_state,
                event,
                properties,
                m.timestamp,
            ) {
                self.limited += 1;
            }
        }
        profile.recent_seqs.push(seq);
        if profile.recent_seqs.len() > RECENT_EVENTS {
            profile.recent_seqs.remove(0);
        }
        let outcome = Outcome::Stored {
            seq,
            profile: profile.id.clone(),
            merged: absorbed.iter().map(|s| s.to_string()).collect(),
        };
        self.touched.insert(profile.id.clone(), profile);
        Ok(outcome)
    }
}

/// What a transaction did.
struct Committed {
    /// Per job, per message.
    outcomes: Vec<Vec<Outcome>>,
    /// Limits hit.
    limited: u64,
    /// Seconds applying the messages, and writing and syncing the commit.
    apply: f64,
    sync: f64,
}

/// One transaction for all `jobs`.
fn commit(db: &Database, jobs: &[Job]) -> Result<Committed, StoreError> {
    let start = std::time::Instant::now();
    let txn = db.begin_write().map_err(write_err)?;
    let mut all = Vec::with_capacity(jobs.len());
    let limited;
    {
        let mut meta = txn.open_table(META).map_err(write_err)?;
        let read = |key: &str| -> Result<u64, StoreError> {
            Ok(meta.get(key).map_err(write_err)?.map_or(0, |v| v.value()))
        };
        let counters = Counters {
            seq: read(COUNTER_KEYS[0])?,
            profile: read(COUNTER_KEYS[1])?,
            change: read(COUNTER_KEYS[2])?,
        };
        let mut tx = Tx {
            events: txn.open_table(EVENTS).map_err(write_err)?,
            message_ids: txn.open_table(MESSAGE_IDS).map_err(write_err)?,
            identities: txn.open_table(IDENTITIES).map_err(write_err)?,
            profiles: txn.open_table(PROFILES).map_err(write_err)?,
            history: txn.open_table(HISTORY).map_err(write_err)?,
            touched: HashMap::new(),
            defs: load_definitions(&txn.open_table(COMPUTED_DEFS).map_err(write_err)?)?,
            counters,
            limited: 0,
        };
        for job in jobs {
            let mut outcomes = Vec::with_capacity(job.messages.len());
            for (i, m) in job.messages.iter().enumerate() {
                outcomes.push(tx.apply(
                    m,
                    &job.encoded[i],
                    &job.consent[i],
                    job.properties[i].as_ref(),
                )?);
            }
            all.push(outcomes);
        }
        for (id, profile) in &tx.touched {
            let bytes = serde_json::to_vec(profile).map_err(write_err)?;
            tx.profiles
                .insert(id.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
        let Counters {
            seq,
            profile,
            change,
        } = tx.counters;
        for (key, value) in COUNTER_KEYS.iter().zip([seq, profile, change]) {
            meta.insert(*key, value).map_err(write_err)?;
        }
        limited = tx.limited;
    }
    let applied = start.elapsed();
    // Durable (fsync) before any caller is answered.
    txn.commit().map_err(write_err)?;
    Ok(Committed {
        outcomes: all,
        limited,
        apply: applied.as_secs_f64(),
        sync: (start.elapsed() - applied).as_secs_f64(),
    })
}

/// The built-in definitions and the stored ones.
pub(crate) fn load_definitions(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<Definition>, StoreError> {
    let mut defs = computed::builtin();
    for entry in table.iter().map_err(write_err)? {
        let (_, v) = entry.map_err(write_err)?;
        defs.push(serde_json::from_slice(v.value()).map_err(write_err)?);
    }
    Ok(defs)
}

/// Stores a definition and computes it over the whole log, in one transaction; returns the
/// number of profiles that have a value.
///
/// The definition was checked by [`crate::Store::define`], the only sender of this work.
fn define(db: &Database, def: &Definition) -> Result<u64, StoreError> {
    let txn = db.begin_write().map_err(write_err)?;
    let profiles_with_values;
    {
        let mut defs = txn.open_table(COMPUTED_DEFS).map_err(write_err)?;
        let bytes = serde_json::to_vec(def).map_err(write_err)?;
        defs.insert(def.name.as_str(), bytes.as_slice())
            .map_err(write_err)?;
        // Every profile starts without this trait (a replaced definition starts over).
        // Events name the profile they were stored on; merges may have folded it into
        // another since.
        let mut profiles = txn.open_table(PROFILES).map_err(write_err)?;
        let mut changed: HashMap<String, Profile> = HashMap::new();
        let mut survivor: HashMap<String, String> = HashMap::new();
        for entry in profiles.iter().map_err(write_err)? {
            let (_, v) = entry.map_err(write_err)?;
            let mut p: Profile = serde_json::from_slice(v.value()).map_err(write_err)?;
            for merged in &p.merged_from {
                survivor.insert(merged.clone(), p.id.clone());
            }
            if p.computed_state.remove(&def.name).is_some() {
                changed.insert(p.id.clone(), p);
            }
        }
        let events = txn.open_table(EVENTS).map_err(write_err)?;
        let one = std::slice::from_ref(def);
        for entry in events.iter().map_err(write_err)? {
            let (_, v) = entry.map_err(write_err)?;
            let e: StoredEvent = serde_json::from_slice(v.value()).map_err(write_err)?;
            if e.message.kind != Kind::Track {
                continue;
            }
            let properties = e.message.body.get("properties");
            let event = e.message.event.as_deref();
            if def.contribution(event, properties).is_none() {
                continue;
            }
            let owner = survivor.get(&e.profile).unwrap_or(&e.profile).clone();
            if !changed.contains_key(&owner) {
                let Some(v) = profiles.get(owner.as_str()).map_err(write_err)? else {
                    continue;
                };
                let p: Profile = serde_json::from_slice(v.value()).map_err(write_err)?;
                changed.insert(owner.clone(), p);
            }
            if let Some(p) = changed.get_mut(&owner) {
                computed::apply(
                    one,
                    &mut p.computed_state,
                    event,
                    properties,
                    e.message.timestamp,
                );
            }
        }
        profiles_with_values = changed
            .values()
            .filter(|p| p.computed_state.contains_key(&def.name))
            .count() as u64;
        for (id, p) in &changed {
            let bytes = serde_json::to_vec(p).map_err(write_err)?;
            profiles
                .insert(id.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
    }
    txn.commit().map_err(write_err)?;
    Ok(profiles_with_values)
}

/// Removes a definition and its state from every profile; false when there was none.
fn undefine(db: &Database, name: &str) -> Result<bool, StoreError> {
    let txn = db.begin_write().map_err(write_err)?;
    let existed;
    {
        let mut defs = txn.open_table(COMPUTED_DEFS).map_err(write_err)?;
        existed = defs.remove(name).map_err(write_err)?.is_some();
        let mut profiles = txn.open_table(PROFILES).map_err(write_err)?;
        let mut changed: Vec<Profile> = Vec::new();
        for entry in profiles.iter().map_err(write_err)? {
            let (_, v) = entry.map_err(write_err)?;
            let mut p: Profile = serde_json::from_slice(v.value()).map_err(write_err)?;
            if p.computed_state.remove(name).is_some() {
                changed.push(p);
            }
        }
        for p in &changed {
            let bytes = serde_json::to_vec(p).map_err(write_err)?;
            profiles
                .insert(p.id.as_str(), bytes.as_slice())
                .map_err(write_err)?;
        }
    }
    txn.commit().map_err(write_err)?;
    Ok(existed)
}
