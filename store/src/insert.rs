//! Storing events.

use rusqlite::{TransactionBehavior, params};
use vigil_core::event::Event;

use crate::columns::Columns;
use crate::error::{self, StoreError};
use crate::{Store, containers};

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Sent to this operator replica by an agent. Other replicas copy these.
    Local,
    /// Copied from another replica; never offered to replicas again, so nothing echoes.
    Peer,
}

impl Origin {
    pub(crate) fn code(self) -> i64 {
        match self {
            Origin::Local => 0,
            Origin::Peer => 1,
        }
    }
}

/// What an insert did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Indexes into the events given of those that were new, in order.
    pub inserted: Vec<usize>,
    /// Events whose id the store already held (or that repeated an earlier event of the
    /// same call), not stored again.
    pub duplicates: usize,
}

impl Store {
    /// Stores `events` in one transaction: all or none. An event whose id is already
    /// stored is skipped and counted in `duplicates`.
    pub fn insert(&self, events: &[Event], origin: Origin) -> Result<InsertReport, StoreError> {
        if events.is_empty() {
            return Ok(InsertReport::default());
        }
        // Serialized before the write lock is taken: it is the costly part of an insert for
        // events with large raw records, and needs no database.
        let prepared = events
            .iter()
            .map(|ev| {
                let json = serde_json::to_string(ev).map_err(|source| StoreError::Serialize {
                    id: ev.id.clone(),
                    source,
                })?;
                Ok((json, Columns::of(ev)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let report = insert_all(&tx, events, &prepared, origin)?;
            tx.commit()?;
            Ok(report)
        })
    }
}

fn insert_all(
    tx: &rusqlite::Transaction<'_>,
    events: &[Event],
    prepared: &[(String, Columns)],
    origin: Origin,
) -> error::Result<InsertReport> {
    let mut event_row = tx.prepare_cached(
        "INSERT INTO events (id, id_hash, time_ns, time, origin, node, namespace, source, kind, action,
             outcome, level, rules, titles, actor, object, container, image, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19)",
    )?;
    let mut exists = tx.prepare_cached("SELECT 1 FROM events WHERE id_hash = ?1 AND id = ?2")?;
    let mut body = tx.prepare_cached("INSERT INTO bodies (seq, json) VALUES (?1, ?2)")?;
    let mut detection =
        tx.prepare_cached("INSERT INTO detections (seq, rule, time_ns) VALUES (?1, ?2, ?3)")?;
    let mut search = tx.prepare_cached("INSERT INTO search (rowid, text) VALUES (?1, ?2)")?;

    let mut report = InsertReport::default();
    for (i, (ev, (json, col))) in events.iter().zip(prepared).enumerate() {
        let list = |v: &[String]| -> Option<String> {
            // A list of strings always serializes.
            (!v.is_empty()).then(|| serde_json::to_string(v).unwrap_or_default())
        };
        let hash = id_hash(&ev.id);
        if exists.exists(params![hash, ev.id])? {
            report.duplicates += 1;
            continue;
        }
        event_row.execute(params![
            ev.id,
            hash,
            col.time_ns,
            ev.time,
            origin.code(),
            ev.node,
            col.namespace,
            ev.source.as_str(),
            ev.kind.as_str(),
            ev.action,
            ev.outcome.as_str(),
            col.level,
            list(&col.rules),
            list(&col.titles),
            col.actor,
            col.object,
            col.container,
            col.image,
            col.summary,
        ])?;
        let seq = tx.last_insert_rowid();
        body.execute(params![seq, json])?;
        let mut seen: Vec<&str> = Vec::new();
        for rule in &col.rules {
            // Two detections of one rule on one event count once for the rule filter.
            if !seen.contains(&rule.as_str()) {
                seen.push(rule);
                detection.execute(params![seq, rule, col.time_ns])?;
            }
        }
        search.execute(params![seq, col.search])?;
        containers::observe(tx, ev, col.time_ns)?;
        report.inserted.push(i);
    }
    Ok(report)
}

/// The hash an id is indexed by: xxh3's 64 bits as SQLite's signed integer. Stored, so it
/// must never change.
pub(crate) fn id_hash(id: &str) -> i64 {
    i64::from_ne_bytes(xxhash_rust::xxh3::xxh3_64(id.as_bytes()).to_ne_bytes())
}
