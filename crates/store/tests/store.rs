//! The live store: deduplication across restarts, identity merging, traits by event time,
//! blocked identifiers, and group commit under concurrent writers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on purpose"
)]

use serde_json::json;
use strata_store::{Kind, Message, Outcome, RECENT_EVENTS, Store, is_blocked_identifier};

fn message(id: &str, kind: Kind, user: Option<&str>, anon: Option<&str>, ts: i64) -> Message {
    Message {
        message_id: id.into(),
        kind,
        user_id: user.map(str::to_string),
        anonymous_id: anon.map(str::to_string),
        previous_id: None,
        event: (kind == Kind::Track).then(|| "Product Viewed".to_string()),
        traits: serde_json::Map::new(),
        timestamp: ts,
        received_at: ts + 5,
        body: json!({ "messageId": id }),
    }
}

fn identify(
    id: &str,
    user: Option<&str>,
    anon: Option<&str>,
    ts: i64,
    traits: serde_json::Value,
) -> Message {
    let mut m = message(id, Kind::Identify, user, anon, ts);
    if let serde_json::Value::Object(t) = traits {
        m.traits = t;
    }
    m
}

fn stored_profile(o: &Outcome) -> String {
    match o {
        Outcome::Stored { profile, .. } => profile.clone(),
        other => panic!("not stored: {other:?}"),
    }
}

#[test]
fn a_message_id_is_stored_once_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let out = store
            .append(vec![
                message("m1", Kind::Track, Some("u1"), None, 10),
                message("m1", Kind::Track, Some("u1"), None, 10),
                message("m2", Kind::Page, None, Some("a1"), 11),
            ])
            .unwrap();
        assert!(matches!(out[0], Outcome::Stored { seq: 0, .. }));
        assert_eq!(out[1], Outcome::Duplicate { seq: 0 });
        assert!(matches!(out[2], Outcome::Stored { seq: 1, .. }));
    }
    let store = Store::open(dir.path()).unwrap();
    let out = store
        .append(vec![message("m2", Kind::Page, None, Some("a1"), 11)])
        .unwrap();
    assert_eq!(out[0], Outcome::Duplicate { seq: 1 });
    assert_eq!(store.event_count().unwrap(), 2);
    let events = store.events(0, 10).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e.message.message_id.as_str())
            .collect::<Vec<_>>(),
        ["m1", "m2"]
    );
}

#[test]
fn anonymous_then_identified_then_aliased_is_one_profile_with_a_stable_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // An anonymous visitor, and separately a known user on another device.
    let anon = stored_profile(
        &store
            .append(vec![message("e1", Kind::Page, None, Some("anon-1"), 100)])
            .unwrap()[0],
    );
    let user = stored_profile(
        &store
            .append(vec![identify(
                "e2",
                Some("u-7"),
                None,
                200,
                json!({"plan": "pro"}),
            )])
            .unwrap()[0],
    );
    assert_ne!(anon, user);
    // Identify links the anonymous visitor to the user: one profile, the older id survives.
    let merged = stored_profile(
        &store
            .append(vec![identify(
                "e3",
                Some("u-7"),
                Some("anon-1"),
                300,
                json!({"email": "a@x.io"}),
            )])
            .unwrap()[0],
    );
    assert_eq!(merged, anon);
    let p = store.profile("user:u-7").unwrap().unwrap();
    assert_eq!(p.id, anon);
    assert_eq!(store.profile("anon:anon-1").unwrap().unwrap().id, anon);
    assert_eq!(p.merged_from, std::slice::from_ref(&user));
    assert!(store.profile(&user).unwrap().is_none());
    assert_eq!(p.traits["plan"], "pro");
    assert_eq!(p.traits["email"], "a@x.io");
    // The merged profile's trait changes came along.
    let history = store.history(&anon).unwrap();
    assert_eq!(
        history.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["plan", "email"]
    );
    assert_eq!((p.first_seen, p.last_seen, p.events), (100, 300, 3));
    // An alias from an old user id attaches it to the same profile.
    let mut alias = message("e4", Kind::Alias, Some("u-7"), None, 400);
    alias.previous_id = Some("legacy-42".into());
    assert_eq!(stored_profile(&store.append(vec![alias]).unwrap()[0]), anon);
    assert_eq!(store.profile("user:legacy-42").unwrap().unwrap().id, anon);
}

#[test]
fn traits_keep_the_value_of_the_latest_event_and_the_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .append(vec![
            identify(
                "t1",
                Some("u"),
                None,
                200,
                json!({"plan": "pro", "city": "Oslo"}),
            ),
            // Arrives later, happened earlier: it must not overwrite.
            identify("t2", Some("u"), None, 100, json!({"plan": "free"})),
            identify("t3", Some("u"), None, 300, json!({"city": "Bergen"})),
        ])
        .unwrap();
    let p = store.profile("user:u").unwrap().unwrap();
    assert_eq!(p.traits["plan"], "pro");
    assert_eq!(p.traits["city"], "Bergen");
    let history = store.history("user:u").unwrap();
    assert_eq!(history.len(), 4);
    assert!(
        history
            .iter()
            .any(|c| c.name == "plan" && c.value == "free")
    );
}

#[test]
fn blocked_identifiers_never_identify_anyone() {
    for v in [
        "",
        " ",
        "null",
        "NULL",
        "undefined",
        "anonymous",
        "0",
        "000",
        "-1",
        "---",
    ] {
        assert!(is_blocked_identifier(v), "{v:?}");
    }
    for v in ["u1", "0a", "-12", "anon-1"] {
        assert!(!is_blocked_identifier(v), "{v:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let out = store
        .append(vec![
            message("b1", Kind::Track, Some("null"), Some("undefined"), 1),
            // Two different users both sending userId "0" must not become one person.
            message("b2", Kind::Track, Some("0"), Some("real-a"), 2),
            message("b3", Kind::Track, Some("0"), Some("real-b"), 3),
        ])
        .unwrap();
    assert!(matches!(&out[0], Outcome::Rejected(r) if r.contains("blocked")));
    assert_ne!(stored_profile(&out[1]), stored_profile(&out[2]));
    assert_eq!(store.event_count().unwrap(), 2);
    assert!(store.profile("user:0").unwrap().is_none());
}

#[test]
fn concurrent_writers_share_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for b in 0..25 {
                    let batch = (0..20)
                        .map(|i| {
                            message(
                                &format!("c-{t}-{b}-{i}"),
                                Kind::Track,
                                Some(&format!("user-{}", i % 7)),
                                None,
                                i64::from(i),
                            )
                        })
                        .collect();
                    let out = store.append(batch).unwrap();
                    assert!(out.iter().all(|o| matches!(o, Outcome::Stored { .. })));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.event_count().unwrap(), 8 * 25 * 20);
    let stats = store.stats();
    assert_eq!(stats.stored, 4000);
    assert!(stats.commits <= 200, "{stats:?}");
    // Seven users, all events accounted for on their profiles.
    let total: u64 = (0..7)
        .map(|u| {
            store
                .profile(&format!("user:user-{u}"))
                .unwrap()
                .unwrap()
                .events
        })
        .sum();
    assert_eq!(total, 4000);
    drop(store);
    let reopened = Store::open(dir.path()).unwrap();
    assert_eq!(reopened.event_count().unwrap(), 4000);
}

#[test]
fn a_profile_keeps_its_latest_events_across_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 150 events of an anonymous visitor, then 30 of a known user, then an identify that
    // links the two: the survivor lists the latest RECENT_EVENTS of both, newest first.
    let mut batch: Vec<Message> = (0..150)
        .map(|i| message(&format!("a{i}"), Kind::Track, None, Some("anon-7"), i))
        .collect();
    batch.extend((0..30).map(|i| message(&format!("u{i}"), Kind::Page, Some("u7"), None, 200 + i)));
    store.append(batch).unwrap();
    assert_eq!(
        store.recent_events("anon:anon-7", 1_000).unwrap().len(),
        RECENT_EVENTS
    );
    store
        .append(vec![identify(
            "link",
            Some("u7"),
            Some("anon-7"),
            300,
            json!({}),
        )])
        .unwrap();
    let recent = store.recent_events("user:u7", 1_000).unwrap();
    assert_eq!(recent.len(), RECENT_EVENTS);
    let seqs: Vec<u64> = recent.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (81..=180).rev().collect();
    assert_eq!(seqs, expected);
    assert_eq!(recent[0].message.message_id, "link");
    assert_eq!(store.profile("anon:anon-7").unwrap().unwrap().events, 181);
    assert_eq!(store.recent_events("user:u7", 3).unwrap().len(), 3);
}

#[test]
fn per_profile_limits_keep_identities_and_traits_bounded() {
    use strata_store::{MAX_IDENTITIES, MAX_TRAITS};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // One identify with more traits than a profile may hold.
    let traits: serde_json::Map<String, serde_json::Value> = (0..MAX_TRAITS + 5)
        .map(|i| (format!("t{i:04}"), json!(i)))
        .collect();
    store
        .append(vec![identify(
            "many",
            Some("u"),
            None,
            1,
            serde_json::Value::Object(traits),
        )])
        .unwrap();
    assert_eq!(
        store.profile("user:u").unwrap().unwrap().traits.len(),
        MAX_TRAITS
    );
    // Anonymous ids linked to the user one by one: the profile stops at the limit, and the
    // messages are still stored on it.
    let links: Vec<Message> = (0..MAX_IDENTITIES + 10)
        .map(|i| {
            message(
                &format!("l{i}"),
                Kind::Page,
                Some("u"),
                Some(&format!("a{i}")),
                2,
            )
        })
        .collect();
    store.append(links).unwrap();
    let p = store.profile("user:u").unwrap().unwrap();
    assert_eq!(p.identities.len(), MAX_IDENTITIES);
    assert_eq!(p.events, 1 + MAX_IDENTITIES as u64 + 10);
    // A profile that a full one would absorb stays apart.
    let other = store
        .append(vec![message("x1", Kind::Page, None, Some("stranger"), 3)])
        .unwrap();
    store
        .append(vec![message(
            "x2",
            Kind::Page,
            Some("u"),
            Some("stranger"),
            4,
        )])
        .unwrap();
    assert_eq!(
        store.profile("anon:stranger").unwrap().unwrap().id,
        stored_profile(&other[0])
    );
    assert_ne!(stored_profile(&other[0]), p.id);
    // Left out: 5 traits, 11 anonymous ids (the user id took one of the 100 places), 1 merge.
    assert_eq!(store.stats().limited, 5 + 11 + 1);
}
