//! What can go wrong with the store.

use std::path::PathBuf;

/// An error of the store. Errors that concern the database file name it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory of the database could not be created.
    #[error("cannot create the store's directory {}: {source}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a SQLite database.
    #[error(
        "{} is not a SQLite database (another kind of file, or encrypted); move it away or set store.path to another file",
        path.display()
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },
    /// The file is a damaged SQLite database.
    #[error(
        "{} is a damaged SQLite database ({detail}); move it away to start an empty store",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// The file is a SQLite database of some other program.
    #[error(
        "{} is a SQLite database that is not a Vigil store; refusing to write into it",
        path.display()
    )]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// The store was written by a newer Vigil.
    #[error(
        "{} has store schema version {found}, newer than the {supported} this Vigil knows; run a newer Vigil or move the file away",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The version found in it.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// An event could not be turned into JSON.
    #[error("event {id} cannot be stored as JSON: {source}")]
    Serialize {
        /// The event's id.
        id: String,
        /// Why.
        source: serde_json::Error,
    },
    /// SQLite failed.
    #[error("store {}: {source}", path.display())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
}

/// An error of the modules below [`crate::Store`], before the file's name is attached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Inner {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Inner {
    /// The public error, naming the file; the two SQLite codes that mean "this file is not
    /// usable" get errors of their own so an operator reading the log knows what to do.
    pub(crate) fn at(self, path: &std::path::Path) -> StoreError {
        let e = match self {
            Inner::Store(e) => return e,
            Inner::Sqlite(e) => e,
        };
        let path = path.to_path_buf();
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => StoreError::NotADatabase { path },
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                detail: e.to_string(),
            },
            _ => StoreError::Sqlite { path, source: e },
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, Inner>;
