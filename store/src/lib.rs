//! Vigil's event store: the events agents send the operator, kept in an embedded SQLite
//! database for the web console.
//!
//! The console needs a timeline with filters and free-text search, counts by kind and
//! action, the containers running now and each event as it was received; replicas copy
//! each other's events by local sequence number. Retention keeps the file under an age and
//! a size limit, keeping events with detections longer than plain ones.
//!
//! Everything here blocks: the operator calls it from `spawn_blocking`. A [`Store`] is
//! `Send + Sync`; writes go through one connection, reads through a small pool of others,
//! so the pages stay responsive while events arrive (the database is in WAL mode).
//!
//! ```no_run
//! use vigil_store::{Filter, Origin, Store, StoreConfig};
//! # fn main() -> Result<(), vigil_store::StoreError> {
//! let store = Store::open(&StoreConfig::new("/var/lib/vigil/console/events.db"))?;
//! let report = store.insert(&[], Origin::Local)?;
//! let page = store.query(&Filter::default(), 50, None)?;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod columns;
mod config;
mod containers;
mod cursor;
mod error;
mod filter;
mod insert;
mod overview;
mod query;
mod retention;
mod schema;
mod sync;

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

pub use config::StoreConfig;
pub use containers::ContainerState;
pub use cursor::Cursor;
pub use error::StoreError;
pub use filter::Filter;
pub use insert::{InsertReport, Origin};
pub use overview::{Count, Facets, MAX_FACET_VALUES, Stats};
pub use query::{MAX_PAGE_ROWS, Page, Row, StoredEvent};
pub use retention::RetentionReport;

/// Idle read connections kept for reuse; more are opened when more readers come at once.
const IDLE_READERS: usize = 4;

/// The event store. See the crate documentation.
pub struct Store {
    config: StoreConfig,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.config.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store at `config.path`, creating the file and its directory, or migrating
    /// a store of an older version. A file that is not a SQLite database, a database of
    /// another program, or a store of a newer version is refused with an error naming it.
    pub fn open(config: &StoreConfig) -> Result<Store, StoreError> {
        let path = config.path.as_path();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let writer = (|| {
            let mut conn = schema::connect(path)?;
            schema::prepare(&mut conn, path)?;
            // Planner statistics of the indexes, refreshed when the tables have grown.
            conn.execute_batch("PRAGMA optimize = 0x10002")?;
            Ok(conn)
        })()
        .map_err(|e: error::Inner| e.at(path))?;
        tracing::debug!(path = %path.display(), "store open");
        Ok(Store {
            config: config.clone(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// The settings the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// Runs `f` with the write connection, held alone.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> error::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while the lock was held left no transaction open (rusqlite rolls back a
        // dropped one), so the connection is still sound.
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn).map_err(|e| e.at(&self.config.path))
    }

    /// Runs `f` with a read connection of the pool.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> error::Result<T>) -> Result<T, StoreError> {
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => self.open_reader().map_err(|e| e.at(&self.config.path))?,
        };
        let out = f(&conn).map_err(|e| e.at(&self.config.path));
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    fn open_reader(&self) -> error::Result<Connection> {
        let conn = schema::connect(&self.config.path)?;
        // Readers never write: a bug that tried would fail instead of taking the write lock.
        conn.pragma_update(None, "query_only", true)?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_store_can_be_shared_between_threads() {
        fn is<T: Send + Sync>() {}
        is::<super::Store>();
    }
}
