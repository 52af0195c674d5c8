//! The timeline and single events.

use rusqlite::{OptionalExtension, params, params_from_iter};

use crate::Store;
use crate::cursor::Cursor;
use crate::error::StoreError;
use crate::filter::{Filter, TextPlan, fts_query};

/// Most rows of one page, whatever the caller asks.
pub const MAX_PAGE_ROWS: usize = 5000;

/// One event as a timeline row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Local sequence number in this store.
    pub seq: i64,
    /// The event id.
    pub id: String,
    /// Event time, as the event gave it.
    pub time: String,
    /// The node it was seen on.
    pub node: Option<String>,
    /// Its Kubernetes namespace (the API object's, else its pod's).
    pub namespace: Option<String>,
    /// Its source (`k8s_audit`, `docker` ...).
    pub source: String,
    /// Its kind (`audit`, `runtime` ...).
    pub kind: String,
    /// Its action.
    pub action: String,
    /// `success`, `failure` or `unknown`.
    pub outcome: String,
    /// The highest level of its detections; `None` without detections.
    pub level: Option<u8>,
    /// Rules it fired, in the event's order.
    pub rules: Vec<String>,
    /// Their titles, in the same order.
    pub titles: Vec<String>,
    /// Who did it (user or service account).
    pub actor: Option<String>,
    /// The API object, `resource/name/subresource` (`pods/web-1/exec`).
    pub object: Option<String>,
    /// The container (its name, else a short id).
    pub container: Option<String>,
    /// The container's image.
    pub image: Option<String>,
    /// One line for the timeline.
    pub summary: String,
}

/// One page of the timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Newest first.
    pub rows: Vec<Row>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// An event with everything received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its timeline row.
    pub row: Row,
    /// The whole event as JSON, as it was received.
    pub json: String,
}

/// Free-text matches from which a page walks the timeline rather than looking each match
/// up: with fewer, looking them up and sorting is cheaper than walking past the events
/// that do not match (measured on the bench's 100,000 events; the cross-over is near a
/// few hundred).
const PROBE_ABOVE: i64 = 1000;

pub(crate) const ROW_COLUMNS: &str = "e.seq, e.id, e.time, e.node, e.namespace, e.source, \
    e.kind, e.action, e.outcome, e.level, e.rules, e.titles, e.actor, e.object, e.container, \
    e.image, e.summary, e.time_ns";

/// A row of [`ROW_COLUMNS`], with its time in nanoseconds.
pub(crate) fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Row, i64)> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: Option<String> = r.get(i)?;
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    };
    let level: Option<i64> = r.get(9)?;
    Ok((
        Row {
            seq: r.get(0)?,
            id: r.get(1)?,
            time: r.get(2)?,
            node: r.get(3)?,
            namespace: r.get(4)?,
            source: r.get(5)?,
            kind: r.get(6)?,
            action: r.get(7)?,
            outcome: r.get(8)?,
            level: level.and_then(|l| u8::try_from(l).ok()),
            rules: list(10)?,
            titles: list(11)?,
            actor: r.get(12)?,
            object: r.get(13)?,
            container: r.get(14)?,
            image: r.get(15)?,
            summary: r.get(16)?,
        },
        r.get(17)?,
    ))
}

impl Store {
    /// Events matching `filter`, newest first (by event time, then arrival), at most
    /// `limit` (capped at [`MAX_PAGE_ROWS`]), starting after `before` when given.
    pub fn query(
        &self,
        filter: &Filter,
        limit: usize,
        before: Option<&Cursor>,
    ) -> Result<Page, StoreError> {
        let limit = limit.min(MAX_PAGE_ROWS);
        if limit == 0 {
            return Ok(Page::default());
        }
        let plan = match filter.text.as_deref().and_then(fts_query) {
            Some(q) => {
                let matches = self.read(|conn| {
                    Ok(conn
                        .prepare_cached(
                            "SELECT count(*) FROM (SELECT 1 FROM search WHERE search MATCH ?1 LIMIT ?2)",
                        )?
                        .query_row(params![q, PROBE_ABOVE], |r| r.get::<_, i64>(0))?)
                })?;
                if matches >= PROBE_ABOVE {
                    TextPlan::Probe
                } else {
                    TextPlan::Drive
                }
            }
            None => TextPlan::Drive,
        };
        let mut cond = filter.condition(plan);
        if let Some(c) = before {
            cond.sql.push_str(" AND (e.time_ns, e.seq) < (?, ?)");
            cond.values.push(c.time_ns.into());
            cond.values.push(c.seq.into());
        }
        // One row more than asked tells whether there is a next page.
        cond.values
            .push(i64::try_from(limit + 1).unwrap_or(i64::MAX).into());
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM events e WHERE {} ORDER BY e.time_ns DESC, e.seq DESC LIMIT ?",
            cond.sql
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt
                .query_map(params_from_iter(&cond.values), row)?
                .collect::<Result<Vec<_>, _>>()?;
            let next = if rows.len() > limit {
                rows.truncate(limit);
                rows.last().map(|(r, time_ns)| Cursor {
                    time_ns: *time_ns,
                    seq: r.seq,
                })
            } else {
                None
            };
            Ok(Page {
                rows: rows.into_iter().map(|(r, _)| r).collect(),
                next,
            })
        })
    }

    /// The event with this id, with its JSON as received; `None` when not stored (or
    /// removed by retention).
    pub fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        self.read(|conn| {
            let sql = format!(
                "SELECT {ROW_COLUMNS}, b.json FROM events e JOIN bodies b ON b.seq = e.seq
                 WHERE e.id_hash = ?1 AND e.id = ?2"
            );
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params![crate::insert::id_hash(id), id], |r| {
                    Ok(StoredEvent {
                        row: row(r)?.0,
                        json: r.get(18)?,
                    })
                })
                .optional()?)
        })
    }
}
