//! `strata serve`: the live service on a data directory.

use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use strata_server::{AppState, Settings};
use strata_store::{ApiKey, KeyKind, Store};

/// Adds the keys given on the command line, and creates a first write key and admin key
/// when the store has none. Returns what to tell the operator about keys.
fn prepare_keys(
    state: &AppState,
    data: &Path,
    write_keys: &[String],
    admin_key: Option<&str>,
) -> Result<Vec<String>> {
    let existing = state.store.keys()?;
    let now = chrono_now();
    let mut notes = Vec::new();
    let add = |key: &str, kind: KeyKind, name: &str| -> Result<()> {
        if !existing.iter().any(|k| k.key == key) {
            state
                .add_key(ApiKey {
                    key: key.to_string(),
                    kind,
                    name: name.to_string(),
                    created_at: now,
                })
                .with_context(|| format!("cannot add the {name} key"))?;
        }
        Ok(())
    };
    for k in write_keys {
        add(k, KeyKind::Write, "command line")?;
    }
    if let Some(k) = admin_key {
        add(k, KeyKind::Admin, "command line")?;
    }
    let has = |kind: KeyKind| {
        existing.iter().any(|k| k.kind == kind)
            || match kind {
                KeyKind::Write => !write_keys.is_empty(),
                KeyKind::Admin => admin_key.is_some(),
            }
    };
    if !has(KeyKind::Write) {
        let key = AppState::generate_key(KeyKind::Write);
        add(&key, KeyKind::Write, "first")?;
        notes.push(format!("created a write key: {key}"));
    }
    if !has(KeyKind::Admin) {
        let key = AppState::generate_key(KeyKind::Admin);
        add(&key, KeyKind::Admin, "first")?;
        let file = data.join("admin.key");
        std::fs::write(&file, format!("{key}\n"))
            .with_context(|| format!("cannot write {}", file.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {}", file.display()))?;
        }
        notes.push(format!(
            "created an admin key (saved in {}): {key}",
            file.display()
        ));
    }
    Ok(notes)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

pub fn serve(
    data: &Path,
    listen: &str,
    write_keys: &[String],
    admin_key: Option<&str>,
    threads: Option<usize>,
    model: Option<&Path>,
) -> Result<()> {
    let model = model
        .map(|m| strata_server::clusters::LiveModel::load(m).map(Arc::new))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let clusters = model.as_ref().map(|m| {
        format!(
            "; clusters of {} live: {}",
            m.origin(),
            m.segments().join(", ")
        )
    });
    let store = Store::open(data)?;
    let state = AppState::new(
        store,
        Settings {
            model,
            ..Settings::default()
        },
    )?;
    for note in prepare_keys(&state, data, write_keys, admin_key)? {
        eprintln!("strata serve: {note}");
    }
    let (events, profiles) = (state.store.event_count()?, state.store.profile_count()?);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        // One line on stdout that scripts wait for; the rest goes to stderr.
        println!("listening on http://{addr}");
        eprintln!(
            "strata serve: data {} ({events} events, {profiles} profiles){}; Ctrl-C or SIGTERM stops after the requests in flight",
            data.display(),
            clusters.unwrap_or_default()
        );
        strata_server::serve(listener, Arc::clone(&state), strata_server::shutdown_signal())
            .await
            .context("the server failed")
    })?;
    let stats = state.store.stats();
    drop(state);
    eprintln!(
        "strata serve: stopped; {} events stored in {} commits this run",
        stats.stored, stats.commits
    );
    Ok(())
}
