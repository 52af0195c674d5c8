//! Retention: events leave by age, then by size.
//!
//! Space is reclaimed with SQLite's incremental auto-vacuum (the file is created with
//! `auto_vacuum = INCREMENTAL`): after rows are deleted, `PRAGMA incremental_vacuum` moves
//! the freed pages to the end of the database and truncates it, so the page count, and with
//! it the file after the next checkpoint, really shrinks. The alternative of only counting
//! free pages would keep a file at its high-water mark forever, and a full `VACUUM` would
//! rewrite the whole database (and need as much free disk again) on every pass. The size
//! measured against `max_bytes` is the page count times the page size, which includes what
//! still sits in the write-ahead log; a final `wal_checkpoint(TRUNCATE)` writes it into the
//! file and empties the log, so the file on disk matches.
//!
//! Deletes run in chunks, each its own transaction, so agents' inserts are not held up for
//! the whole pass.

use rusqlite::{Connection, params};
use time::OffsetDateTime;

use crate::Store;
use crate::columns::nanos;
use crate::error::{self, StoreError};
use crate::overview::database_bytes;

/// Events deleted per transaction.
const CHUNK: usize = 5000;

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Plain events (without detections) removed, by age or size.
    pub removed_events: usize,
    /// Events with detections removed, by age or size.
    pub removed_detections: usize,
    /// Of all those, the events removed because the database was over `max_bytes`.
    pub removed_for_size: usize,
    /// Size of the database before the pass, in bytes.
    pub bytes_before: u64,
    /// Size after it.
    pub bytes_after: u64,
}

/// Which events a delete takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Plain,
    Detected,
}

impl Store {
    /// Removes plain events older than `event_retention_secs` and events with detections
    /// older than `detection_retention_secs` (by event time, against `now`); then, while
    /// the database is over `max_bytes`, the oldest plain events, and events with
    /// detections only once no plain event is left. Freed space goes back to the file
    /// system.
    pub fn enforce_retention(&self, now: OffsetDateTime) -> Result<RetentionReport, StoreError> {
        let cfg = &self.config;
        let now_ns = nanos(now);
        let before = |secs: u64| {
            let ns = i128::from(secs) * 1_000_000_000;
            i64::try_from(i128::from(now_ns) - ns).unwrap_or(i64::MIN)
        };
        let plain_cutoff = before(cfg.event_retention_secs);
        let detected_cutoff = before(cfg.detection_retention_secs);

        let mut report = RetentionReport {
            bytes_before: self.write(|c| database_bytes(c))?,
            ..RetentionReport::default()
        };
        loop {
            let n = self.write(|c| delete_older(c, Class::Plain, plain_cutoff))?;
            report.removed_events += n;
            if n < CHUNK {
                break;
            }
        }
        loop {
            let n = self.write(|c| delete_older(c, Class::Detected, detected_cutoff))?;
            report.removed_detections += n;
            if n < CHUNK {
                break;
            }
        }
        self.write(|c| {
            // Stopped containers are kept (as `exited`) only to outvote late events; and a
            // container nothing was heard of for the event retention is gone with its node.
            c.prepare_cached(
                "DELETE FROM containers WHERE (state = 'exited' AND state_ns < ?1)
                     OR last_seen_ns < ?1",
            )?
            .execute([plain_cutoff])?;
            Ok(())
        })?;
        let mut bytes = if report.removed_events + report.removed_detections > 0 {
            self.write(reclaim)?
        } else {
            report.bytes_before
        };

        let mut events: Option<u64> = None;
        while bytes > cfg.max_bytes {
            let count = match events {
                Some(n) => n,
                None => self
                    .read(|c| {
                        Ok(c.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))?)
                    })?
                    .unsigned_abs(),
            };
            if count == 0 {
                tracing::warn!(
                    path = %cfg.path.display(),
                    bytes,
                    max_bytes = cfg.max_bytes,
                    "the store is empty and still over its size cap: the cap is too small"
                );
                break;
            }
            // As many of the oldest events as the excess holds at the average event size,
            // and a few more, since freed rows do not all free whole pages; the next round
            // takes more if that was not enough.
            let per_event = (bytes / count).max(1);
            let excess = (bytes - cfg.max_bytes).div_ceil(per_event);
            let want = excess + excess / 20 + 1;
            let want = usize::try_from(want).unwrap_or(CHUNK).clamp(16, CHUNK);
            let mut n = self.write(|c| delete_oldest(c, Class::Plain, want))?;
            report.removed_events += n;
            if n == 0 {
                n = self.write(|c| delete_oldest(c, Class::Detected, want))?;
                report.removed_detections += n;
            }
            if n == 0 {
                // Emptied meanwhile: the warning above comes on the next pass if the cap
                // is really too small.
                break;
            }
            report.removed_for_size += n;
            events = Some(count.saturating_sub(n as u64));
            bytes = self.write(reclaim)?;
        }

        let removed = report.removed_events + report.removed_detections;
        report.bytes_after = self.write(|c| {
            if removed > 0 {
                // Puts the log's pages into the file (which the vacuum truncated) and empties
                // the log. Readers in the middle of a query may keep it from finishing; the
                // next automatic checkpoint then does the rest.
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
            c.execute_batch("PRAGMA optimize")?;
            database_bytes(c)
        })?;
        if removed > 0 {
            tracing::info!(
                path = %cfg.path.display(),
                removed_events = report.removed_events,
                removed_detections = report.removed_detections,
                removed_for_size = report.removed_for_size,
                bytes_before = report.bytes_before,
                bytes_after = report.bytes_after,
                "retention removed events"
            );
        }
        Ok(report)
    }
}

/// Deletes up to [`CHUNK`] events of `class` older than `cutoff`.
fn delete_older(conn: &mut Connection, class: Class, cutoff: i64) -> error::Result<usize> {
    let sql = match class {
        Class::Plain => {
            "DELETE FROM events WHERE seq IN (
                 SELECT seq FROM events WHERE time_ns < ?1 AND level IS NULL LIMIT ?2)"
        }
        Class::Detected => {
            "DELETE FROM events WHERE seq IN (
                 SELECT seq FROM events WHERE time_ns < ?1 AND level IS NOT NULL LIMIT ?2)"
        }
    };
    let tx = conn.transaction()?;
    let n = tx
        .prepare_cached(sql)?
        .execute(params![cutoff, CHUNK as i64])?;
    tx.commit()?;
    Ok(n)
}

/// Deletes the `n` oldest events of `class`.
fn delete_oldest(conn: &mut Connection, class: Class, n: usize) -> error::Result<usize> {
    let sql = match class {
        Class::Plain => {
            "DELETE FROM events WHERE seq IN (
                 SELECT seq FROM events WHERE level IS NULL ORDER BY time_ns, seq LIMIT ?1)"
        }
        Class::Detected => {
            "DELETE FROM events WHERE seq IN (
                 SELECT seq FROM events WHERE level IS NOT NULL ORDER BY time_ns, seq LIMIT ?1)"
        }
    };
    let tx = conn.transaction()?;
    let n = tx.prepare_cached(sql)?.execute([n as i64])?;
    tx.commit()?;
    Ok(n)
}

/// Hands the free pages back to the file system and returns the database's size.
fn reclaim(conn: &mut Connection) -> error::Result<u64> {
    // The search index keeps deleted rows as tombstones until its segments are merged;
    // a bounded merge step frees them without rewriting the whole index.
    conn.execute(
        "INSERT INTO search (search, rank) VALUES ('merge', 256)",
        [],
    )?;
    // It frees one page per step: run it to the end.
    let mut stmt = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    drop(rows);
    drop(stmt);
    database_bytes(conn)
}
