//! Replica copies: what one replica serves to the other, and where it stopped.

use serde_json::json;
use vigil_core::event::Event;
use vigil_store::Origin;

use crate::common::*;

fn batch(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| event(&format!("{prefix}-{i}"), i as i64, json!({})))
        .collect()
}

#[test]
fn local_after_serves_only_events_received_here_in_sequence_order() {
    let s = TestStore::new();
    s.store.insert(&batch("local-a", 3), Origin::Local).unwrap();
    s.store.insert(&batch("peer", 4), Origin::Peer).unwrap();
    s.store.insert(&batch("local-b", 2), Origin::Local).unwrap();

    let all = s.store.local_after(0, 100).unwrap();
    let ids: Vec<String> = all
        .iter()
        .map(|(_, json)| serde_json::from_str::<Event>(json).unwrap().id)
        .collect();
    assert_eq!(
        ids,
        [
            "local-a-0",
            "local-a-1",
            "local-a-2",
            "local-b-0",
            "local-b-1"
        ]
    );
    assert!(
        all.windows(2).all(|w| w[0].0 < w[1].0),
        "ascending sequence"
    );

    // Resuming after a sequence number, in limited batches.
    let first = s.store.local_after(0, 2).unwrap();
    assert_eq!(first.len(), 2);
    let rest = s.store.local_after(first[1].0, 100).unwrap();
    assert_eq!(rest, all[2..]);
    assert!(s.store.local_after(all[4].0, 100).unwrap().is_empty());
    assert!(s.store.local_after(0, 0).unwrap().is_empty());
}

#[test]
fn a_copied_event_is_never_served_again_even_when_it_arrives_locally_too() {
    let s = TestStore::new();
    s.store.insert(&batch("x", 2), Origin::Peer).unwrap();
    // An agent retrying to this replica what the other replica already had.
    let r = s.store.insert(&batch("x", 2), Origin::Local).unwrap();
    assert_eq!(r.duplicates, 2);
    assert!(s.store.local_after(0, 10).unwrap().is_empty());
}

#[test]
fn the_json_served_is_the_event_received() {
    let s = TestStore::new();
    let ev = event(
        "full",
        5,
        json!({"node": "n1", "detections": [detection("r.a", 9)],
               "raw": {"kind": "Event", "nested": {"deep": [1, 2, 3]}}}),
    );
    s.store
        .insert(std::slice::from_ref(&ev), Origin::Local)
        .unwrap();
    let (_, json) = &s.store.local_after(0, 1).unwrap()[0];
    assert_eq!(serde_json::from_str::<Event>(json).unwrap(), ev);
    assert_eq!(s.store.event("full").unwrap().unwrap().json, *json);
}

#[test]
fn peer_cursors_start_at_zero_and_are_kept_per_peer_across_restarts() {
    let s = TestStore::new();
    assert_eq!(s.store.peer_cursor("replica-b").unwrap(), 0);
    s.store.set_peer_cursor("replica-b", 41).unwrap();
    s.store.set_peer_cursor("replica-c", 7).unwrap();
    s.store.set_peer_cursor("replica-b", 42).unwrap();
    let s = s.reopen();
    assert_eq!(s.store.peer_cursor("replica-b").unwrap(), 42);
    assert_eq!(s.store.peer_cursor("replica-c").unwrap(), 7);
    assert_eq!(s.store.peer_cursor("replica-d").unwrap(), 0);
}
