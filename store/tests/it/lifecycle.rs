//! Opening, inserting, restarting, and the files the store refuses.

use std::sync::Arc;

use serde_json::json;
use vigil_store::{Filter, Origin, Store, StoreConfig, StoreError};

use crate::common::*;

#[test]
fn duplicates_are_ignored_and_reported() {
    let s = TestStore::new();
    let a = event("a", 1, json!({}));
    let b = event("b", 2, json!({}));
    let c = event("c", 3, json!({}));
    let r = s
        .store
        .insert(&[a.clone(), b.clone()], Origin::Local)
        .unwrap();
    assert_eq!((r.inserted, r.duplicates), (vec![0, 1], 0));

    // Already stored, new, and repeated within the same call.
    let mut b_changed = b.clone();
    b_changed.action = "delete".into();
    let r = s
        .store
        .insert(&[b_changed, c.clone(), a.clone(), c.clone()], Origin::Local)
        .unwrap();
    assert_eq!((r.inserted, r.duplicates), (vec![1], 3));
    assert_eq!(s.store.stats().unwrap().events, 3);
    assert_eq!(
        s.store.event("b").unwrap().unwrap().row.action,
        "get",
        "the first copy stays"
    );
    assert_eq!(
        s.store.insert(&[], Origin::Local).unwrap(),
        vigil_store::InsertReport::default()
    );
}

#[test]
fn stats_count_events_detections_and_span() {
    let s = TestStore::new();
    let empty = s.store.stats().unwrap();
    assert_eq!(
        (empty.events, empty.detections, empty.oldest, empty.newest),
        (0, 0, None, None)
    );
    assert!(empty.bytes > 0);
    s.insert(&[
        event("x", 500, json!({})),
        event("y", 100, json!({"detections": [detection("r", 3)]})),
        event("z", 300, json!({})),
    ]);
    let st = s.store.stats().unwrap();
    assert_eq!((st.events, st.detections), (3, 1));
    assert_eq!(st.oldest, Some(at(100)));
    assert_eq!(st.newest, Some(at(500)));
}

#[test]
fn the_store_survives_a_restart() {
    let s = TestStore::new();
    let events: Vec<_> = (0..40)
        .map(|i| event(&format!("e{i}"), i, json!({"node": "n1", "detections": if i % 4 == 0 { json!([detection("r", 5)]) } else { json!([]) }})))
        .collect();
    s.insert(&events);
    s.store.set_peer_cursor("peer-1", 1234).unwrap();
    let before = s.all(&Filter::default(), 7);
    let last_seq = before.iter().map(|r| r.seq).max().unwrap();
    let facets = s.store.facets().unwrap();

    let s = s.reopen();
    assert_eq!(s.all(&Filter::default(), 7), before);
    assert_eq!(s.store.peer_cursor("peer-1").unwrap(), 1234);
    assert_eq!(s.store.facets().unwrap(), facets);
    // Sequence numbers go on from where they were, never reused: replicas copy by them.
    s.insert(&[event("after", 1000, json!({}))]);
    let seq = s.store.event("after").unwrap().unwrap().row.seq;
    assert!(seq > last_seq, "{seq} > {last_seq}");
}

#[test]
fn sequence_numbers_are_not_reused_after_the_newest_events_are_removed() {
    let s = TestStore::with(|c| c.event_retention_secs = 10);
    s.insert(&[event("old", 0, json!({}))]);
    let old_seq = s.store.event("old").unwrap().unwrap().row.seq;
    let r = s.store.enforce_retention(instant(100)).unwrap();
    assert_eq!(r.removed_events, 1);
    let s = s.reopen();
    s.insert(&[event("new", 200, json!({}))]);
    assert!(s.store.event("new").unwrap().unwrap().row.seq > old_seq);
}

#[test]
fn the_directory_is_created() {
    let s = TestStore::new();
    assert!(s.path().exists());
    assert!(s.path().ends_with("nested/dir/events.db"));
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    std::fs::write(&path, "this is a text file, not SQLite\n".repeat(200)).unwrap();
    let err = Store::open(&StoreConfig::new(&path)).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a SQLite database"), "{msg}");
    // And it was left as it was.
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("this is a text file")
    );
}

#[test]
fn a_database_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    drop(conn);
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&StoreConfig::new(&path)).unwrap_err();
    assert!(matches!(err, StoreError::Foreign { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the file is left untouched"
    );
    assert!(!std::path::Path::new(&format!("{}-wal", path.display())).exists());
}

#[test]
fn a_store_of_a_newer_version_is_refused() {
    let s = TestStore::new();
    let path = s.path();
    drop(s.store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = Store::open(&StoreConfig::new(&path)).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            found, supported, ..
        } => {
            assert_eq!(*found, 99);
            assert!(*supported < 99);
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("99") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
}

#[test]
fn a_damaged_database_gives_an_error_not_a_panic() {
    let s = TestStore::new();
    let events: Vec<_> = (0..300)
        .map(|i| {
            event(
                &format!("e{i}"),
                i,
                json!({"log": {"message": "x".repeat(500)}}),
            )
        })
        .collect();
    s.insert(&events);
    let path = s.path();
    let cfg = s.store.config().clone();
    drop(s.store);
    // Checkpointed into the file by the close; now overwrite pages in the middle.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 64 * 1024, "{}", bytes.len());
    let end = bytes.len() - 4096;
    for b in &mut bytes[8192..end] {
        *b = 0xA5;
    }
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(format!("{}-wal", path.display()));
    let _ = std::fs::remove_file(format!("{}-shm", path.display()));
    let result = Store::open(&cfg).and_then(|store| {
        store.query(&Filter::default(), 50, None)?;
        store.insert(&[event("new", 1, json!({}))], Origin::Local)?;
        Ok(())
    });
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn two_handles_on_one_file_see_each_other() {
    // The operator's tests open a second store beside the running console.
    let s = TestStore::new();
    let other = Store::open(s.store.config()).unwrap();
    s.insert(&[event("a", 1, json!({}))]);
    assert_eq!(other.stats().unwrap().events, 1);
    other
        .insert(&[event("b", 2, json!({}))], Origin::Local)
        .unwrap();
    assert_eq!(s.store.stats().unwrap().events, 2);
}

#[test]
fn readers_and_writers_work_at_once_from_many_threads() {
    let s = TestStore::new();
    let store = Arc::new(s.store);
    let mut threads = Vec::new();
    for t in 0..4 {
        let store = store.clone();
        threads.push(std::thread::spawn(move || {
            for b in 0..20 {
                let events: Vec<_> = (0..25)
                    .map(|i| {
                        event(
                            &format!("t{t}-{b}-{i}"),
                            (b * 25 + i) as i64,
                            json!({"node": format!("n{t}")}),
                        )
                    })
                    .collect();
                store.insert(&events, Origin::Local).unwrap();
                let page = store.query(&Filter::default(), 50, None).unwrap();
                assert!(!page.rows.is_empty());
                store.counts(&Filter::default()).unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.stats().unwrap().events, 4 * 20 * 25);
}
