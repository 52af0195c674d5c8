//! Events and stores for the tests.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;
use vigil_core::event::Event;
use vigil_store::{Filter, Origin, Row, Store, StoreConfig};

/// 2026-01-01T00:00:00Z.
pub const BASE: i64 = 1_767_225_600;

/// The RFC 3339 time `secs` after [`BASE`], with nanoseconds as the agents write it.
pub fn at(secs: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp(BASE + secs).unwrap();
    vigil_core::timestamp::format_nanos(t)
}

pub fn instant(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(BASE + secs).unwrap()
}

/// An event from JSON fields laid over the required ones.
pub fn event(id: &str, secs: i64, fields: Value) -> Event {
    let mut v = json!({
        "schema": "vigil.event/v1", "id": id, "time": at(secs), "ingest_time": at(secs),
        "source": "k8s_audit", "kind": "audit", "action": "get", "outcome": "success"
    });
    let m = v.as_object_mut().unwrap();
    for (k, f) in fields.as_object().unwrap() {
        m.insert(k.clone(), f.clone());
    }
    serde_json::from_value(v).unwrap()
}

pub fn detection(rule: &str, level: u8) -> Value {
    json!({"rule": rule, "title": format!("Title of {rule}"), "level": level, "severity": "high"})
}

pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

impl TestStore {
    pub fn new() -> TestStore {
        Self::with(|_| {})
    }

    pub fn with(change: impl FnOnce(&mut StoreConfig)) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path().join("nested/dir/events.db"));
        change(&mut cfg);
        let store = Store::open(&cfg).unwrap();
        TestStore { dir, store }
    }

    pub fn path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    pub fn reopen(self) -> TestStore {
        let cfg = self.store.config().clone();
        drop(self.store);
        TestStore {
            dir: self.dir,
            store: Store::open(&cfg).unwrap(),
        }
    }

    pub fn insert(&self, events: &[Event]) {
        let report = self.store.insert(events, Origin::Local).unwrap();
        assert_eq!(report.inserted.len(), events.len(), "all new");
    }

    /// Every row matching `filter`, page by page (`page` rows each), newest first.
    pub fn all(&self, filter: &Filter, page: usize) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let p = self.store.query(filter, page, before.as_ref()).unwrap();
            assert!(p.rows.len() <= page);
            rows.extend(p.rows);
            match p.next {
                Some(c) => before = Some(c),
                None => return rows,
            }
        }
    }

    pub fn ids(&self, filter: &Filter) -> Vec<String> {
        self.all(filter, 1000).into_iter().map(|r| r.id).collect()
    }
}

pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub fn wal_len(path: &Path) -> u64 {
    file_len(&PathBuf::from(format!("{}-wal", path.display())))
}
