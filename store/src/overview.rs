//! Summaries: counts by kind and action, the values the filters offer, the store's size.

use rusqlite::params_from_iter;

use crate::Store;
use crate::error::{self, StoreError};
use crate::filter::{Filter, TextPlan};

/// Most values of each facet.
pub const MAX_FACET_VALUES: usize = 500;

/// How many events of one kind and action match a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// The kind (`audit`, `runtime` ...).
    pub kind: String,
    /// The action.
    pub action: String,
    /// Matching events.
    pub events: u64,
    /// Of them, those that fired a detection.
    pub detections: u64,
}

/// The values stored events have, for the filters' drop-downs: each sorted, at most
/// [`MAX_FACET_VALUES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facets {
    /// Namespaces.
    pub namespaces: Vec<String>,
    /// Nodes.
    pub nodes: Vec<String>,
    /// Sources.
    pub sources: Vec<String>,
    /// Rules that fired.
    pub rules: Vec<String>,
}

/// The store's size and span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events stored.
    pub events: u64,
    /// Of them, those that fired a detection.
    pub detections: u64,
    /// Size of the database in bytes (its pages, written or still in the write-ahead log).
    pub bytes: u64,
    /// Time of the oldest event.
    pub oldest: Option<String>,
    /// Time of the newest event.
    pub newest: Option<String>,
}

impl Store {
    /// Events matching `filter` by kind and action, most events first.
    pub fn counts(&self, filter: &Filter) -> Result<Vec<Count>, StoreError> {
        // Counts visit every match anyway.
        let cond = filter.condition(TextPlan::Drive);
        let sql = format!(
            "SELECT e.kind, e.action, count(*), count(e.level) FROM events e WHERE {}
             GROUP BY e.kind, e.action ORDER BY 3 DESC, 1, 2",
            cond.sql
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(&cond.values), |r| {
                Ok(Count {
                    kind: r.get(0)?,
                    action: r.get(1)?,
                    events: r.get::<_, i64>(2)?.unsigned_abs(),
                    detections: r.get::<_, i64>(3)?.unsigned_abs(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// The namespaces, nodes, sources and rules of the stored events.
    pub fn facets(&self) -> Result<Facets, StoreError> {
        self.read(|conn| {
            Ok(Facets {
                namespaces: distinct(conn, Column::Namespace)?,
                nodes: distinct(conn, Column::Node)?,
                sources: distinct(conn, Column::Source)?,
                rules: distinct(conn, Column::Rule)?,
            })
        })
    }

    /// How many events, how many bytes, from when to when.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        self.read(|conn| {
            let (events, detections): (i64, i64) = conn.query_row(
                "SELECT (SELECT count(*) FROM events),
                        (SELECT count(*) FROM events WHERE level IS NOT NULL)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let edge = |order: &str| -> error::Result<Option<String>> {
                let sql = format!(
                    "SELECT time FROM events ORDER BY time_ns {order}, seq {order} LIMIT 1"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let mut rows = stmt.query([])?;
                Ok(match rows.next()? {
                    Some(r) => Some(r.get(0)?),
                    None => None,
                })
            };
            Ok(Stats {
                events: events.unsigned_abs(),
                detections: detections.unsigned_abs(),
                bytes: database_bytes(conn)?,
                oldest: edge("ASC")?,
                newest: edge("DESC")?,
            })
        })
    }
}

/// The size of the database: its page count times the page size. It includes changes not
/// yet copied from the write-ahead log into the file, so it is what the file will be after
/// the next checkpoint.
pub(crate) fn database_bytes(conn: &rusqlite::Connection) -> error::Result<u64> {
    let (pages, size): (i64, i64) = conn.query_row(
        "SELECT page_count, page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(pages.unsigned_abs() * size.unsigned_abs())
}

#[derive(Clone, Copy)]
enum Column {
    Namespace,
    Node,
    Source,
    Rule,
}

/// The distinct values of an indexed column, by skipping from one value to the next along
/// its index: a few index seeks per value instead of a scan of every event.
fn distinct(conn: &rusqlite::Connection, column: Column) -> error::Result<Vec<String>> {
    // Fixed statements, one per column: the column name is never user input.
    let sql = match column {
        Column::Namespace => {
            "WITH RECURSIVE v(x) AS (
                 SELECT min(namespace) FROM events
                 UNION ALL
                 SELECT (SELECT min(namespace) FROM events WHERE namespace > x) FROM v
                 WHERE x IS NOT NULL)
             SELECT x FROM v WHERE x IS NOT NULL LIMIT ?1"
        }
        Column::Node => {
            "WITH RECURSIVE v(x) AS (
                 SELECT min(node) FROM events
                 UNION ALL
                 SELECT (SELECT min(node) FROM events WHERE node > x) FROM v
                 WHERE x IS NOT NULL)
             SELECT x FROM v WHERE x IS NOT NULL LIMIT ?1"
        }
        Column::Source => {
            "WITH RECURSIVE v(x) AS (
                 SELECT min(source) FROM events
                 UNION ALL
                 SELECT (SELECT min(source) FROM events WHERE source > x) FROM v
                 WHERE x IS NOT NULL)
             SELECT x FROM v WHERE x IS NOT NULL LIMIT ?1"
        }
        Column::Rule => {
            "WITH RECURSIVE v(x) AS (
                 SELECT min(rule) FROM detections
                 UNION ALL
                 SELECT (SELECT min(rule) FROM detections WHERE rule > x) FROM v
                 WHERE x IS NOT NULL)
             SELECT x FROM v WHERE x IS NOT NULL LIMIT ?1"
        }
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([MAX_FACET_VALUES as i64], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}
