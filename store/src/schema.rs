//! The database layout, its version, and the settings every connection gets.
//!
//! Tables:
//! - `events`: one row per event with the columns the console filters, sorts and shows;
//!   `seq` is the local sequence (AUTOINCREMENT, so a number is never handed out twice, even
//!   after retention removed the newest rows: replicas copy by it).
//! - `bodies`: the event's JSON, apart so that scans of `events` do not wade through raw
//!   records of several kilobytes.
//! - `detections`: one row per rule an event fired, for the rule filter and its facet.
//! - `search`: the FTS5 index of each event's searchable text (contentless: only row ids
//!   are kept, the text is in `events` and `bodies` already).
//! - `containers`: the last known state of every container, from runtime events.
//! - `peers`: how far this store has copied from each other replica.
//! - `meta`: `schema_version`.
//!
//! Triggers remove an event's body, detections and search entry with it, so every path that
//! deletes events (retention by age or by size) keeps them consistent.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Inner, Result, StoreError};

/// The version this build writes. Raise it with a new step in [`MIGRATIONS`].
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Marks the file as a Vigil store in the SQLite header ("VIGL").
const APPLICATION_ID: i64 = 0x5649_474c;

/// How long a statement waits for a lock another connection (or process) holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of each connection, in KiB (negative `cache_size` means KiB). Each of the
/// up to five connections (one writer, four idle readers) has its own, so this times five
/// is what the caches may hold in the operator; the kernel's page cache keeps the rest of
/// the hot pages close, and the queries stay well under their budget with it (store bench).
const CACHE_KIB: i64 = 4 * 1024;

/// Pages in the write-ahead log that start an automatic checkpoint.
const WAL_CHECKPOINT_PAGES: i64 = 8192;

const V1: &str = r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL,
    id_hash   INTEGER NOT NULL,
    time_ns   INTEGER NOT NULL,
    time      TEXT NOT NULL,
    origin    INTEGER NOT NULL,
    node      TEXT,
    namespace TEXT,
    source    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    level     INTEGER,
    rules     TEXT,
    titles    TEXT,
    actor     TEXT,
    object    TEXT,
    container TEXT,
    image     TEXT,
    summary   TEXT NOT NULL
);
-- Duplicate checks and look-ups by id. Ids are hashes, so a batch lands all over this
-- index: a 64-bit hash of the id keeps it a third of the size of an index of the text,
-- and with it the pages each insert rewrites. Collisions are told apart by the id itself.
CREATE INDEX events_id ON events (id_hash);
-- The timeline: newest first, keyset pagination on (time_ns, seq).
CREATE INDEX events_time ON events (time_ns, seq);
-- Filters that narrow a lot, each still in timeline order so a page stops after `limit`.
CREATE INDEX events_namespace ON events (namespace, time_ns, seq);
CREATE INDEX events_node ON events (node, time_ns, seq);
CREATE INDEX events_source ON events (source, time_ns, seq);
-- The counts' links filter by kind and action: in timeline order here. Counts by kind and
-- action read only this index (`level` is there for their detection counts).
CREATE INDEX events_kind ON events (kind, action, time_ns, seq, level);
-- Events with detections are few: the detections page and level filters walk this
-- small index in timeline order instead of the whole timeline.
CREATE INDEX events_detected ON events (time_ns, seq, level) WHERE level IS NOT NULL;

CREATE TABLE bodies (seq INTEGER PRIMARY KEY, json TEXT NOT NULL);

CREATE TABLE detections (
    seq     INTEGER NOT NULL,
    rule    TEXT NOT NULL,
    time_ns INTEGER NOT NULL
);
CREATE INDEX detections_rule ON detections (rule, time_ns, seq);
CREATE INDEX detections_seq ON detections (seq);

CREATE VIRTUAL TABLE search USING fts5 (
    text,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER events_delete AFTER DELETE ON events BEGIN
    DELETE FROM bodies WHERE seq = old.seq;
    DELETE FROM detections WHERE seq = old.seq;
    DELETE FROM search WHERE rowid = old.seq;
END;

CREATE TABLE containers (
    node         TEXT NOT NULL,
    id           TEXT NOT NULL,
    name         TEXT,
    image        TEXT,
    image_id     TEXT,
    runtime      TEXT,
    namespace    TEXT,
    pod          TEXT,
    state        TEXT NOT NULL,
    state_ns     INTEGER NOT NULL,
    since        TEXT NOT NULL,
    last_seen    TEXT NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (node, id)
) WITHOUT ROWID;
CREATE INDEX containers_state ON containers (state);

CREATE TABLE peers (peer TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
"#;

/// Steps from each version to the next: `MIGRATIONS[n]` takes a store of version `n` to
/// `n + 1` (version 0 is an empty file).
const MIGRATIONS: &[&str] = &[V1];

/// Opens a connection with the settings every connection needs.
pub(crate) fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable across a crash of the process in WAL mode; only a power loss may
    // lose the last transactions, which agents send again from their spools.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Checkpoints copy the log into the file; the index pages every batch of events
    // touches are copied once per checkpoint, however often they changed, so a larger log
    // between checkpoints (32 MiB instead of 4) costs less copying and fewer fsyncs.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Brings the database to [`SCHEMA_VERSION`]: creates it in an empty file, migrates an
/// older one, refuses a newer one or a database of another program.
pub(crate) fn prepare(conn: &mut Connection, path: &Path) -> Result<()> {
    // Read-only checks first: a file that is not a database, a database of another
    // program or a newer store is refused before any setting is written to it.
    let found = checked_version(conn, path)?;
    if found == 0 {
        // Both only take effect before the first table exists. INCREMENTAL auto-vacuum lets
        // retention hand freed pages back to the file system (see retention.rs).
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "page_size", 4096)?;
    }
    // WAL: the console reads while agents' events are written. The mode is kept in the file.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "the store could not switch to WAL mode");
    }
    // A WAL file left large by a burst is cut back at the next checkpoint.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Again under the write lock: another process may have created or migrated it since.
    let found = checked_version(&tx, path)?;
    for (from, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tracing::info!(path = %path.display(), from, to = from + 1, "migrating the store");
        tx.execute_batch(step)?;
    }
    if found < SCHEMA_VERSION {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The schema version of the file, refusing one newer than this build knows.
fn checked_version(conn: &Connection, path: &Path) -> Result<i64> {
    let found = version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }
        .into());
    }
    Ok(found)
}

/// The schema version of the file: 0 for an empty one.
fn version(conn: &Connection, path: &Path) -> Result<i64> {
    let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta')",
        [],
        |r| r.get(0),
    )?;
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
        [],
        |r| r.get(0),
    )?;
    if !has_meta {
        if tables == 0 && app == 0 {
            return Ok(0);
        }
        return Err(Inner::Store(StoreError::Foreign {
            path: path.to_path_buf(),
        }));
    }
    if app != APPLICATION_ID {
        return Err(Inner::Store(StoreError::Foreign {
            path: path.to_path_buf(),
        }));
    }
    let text: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match text.as_deref().map(str::parse::<i64>) {
        Some(Ok(v)) if v >= 1 => Ok(v),
        _ => Err(Inner::Store(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("schema_version is {text:?}"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_sqlite_has_fts5() {
        let conn = Connection::open_in_memory().unwrap();
        let fts5: bool = conn
            .query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(fts5);
    }

    #[test]
    fn a_new_file_gets_incremental_auto_vacuum_wal_and_the_current_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut conn = connect(&path).unwrap();
        prepare(&mut conn, &path).unwrap();
        let auto: i64 = conn
            .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
            .unwrap();
        assert_eq!(auto, 2, "INCREMENTAL");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(version(&conn, &path).unwrap(), SCHEMA_VERSION);
        // Preparing again changes nothing.
        prepare(&mut conn, &path).unwrap();
        assert_eq!(version(&conn, &path).unwrap(), SCHEMA_VERSION);
    }
}
