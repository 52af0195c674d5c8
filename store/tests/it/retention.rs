//! Retention by age and by size.

use serde_json::json;
use vigil_core::event::Event;
use vigil_store::{Filter, Origin};

use crate::common::*;

const DAY: i64 = 86_400;

fn plain(id: &str, secs: i64) -> Event {
    event(id, secs, json!({}))
}

fn detected(id: &str, secs: i64) -> Event {
    event(id, secs, json!({"detections": [detection("r.keep", 12)]}))
}

/// A log event of about `kib` KiB.
fn bulky(id: &str, secs: i64, kib: usize, detection: bool) -> Event {
    let mut fields = json!({"kind": "log", "source": "container_log", "action": "log",
        "log": {"message": format!("{id} {}", "lorem ipsum dolor sit amet ".repeat(kib * 1024 / 27))}});
    if detection {
        fields["detections"] = json!([detection_value()]);
    }
    event(id, secs, fields)
}

fn detection_value() -> serde_json::Value {
    detection("r.bulky", 10)
}

#[test]
fn plain_events_go_after_their_retention_and_detections_stay_until_theirs() {
    // Defaults: 7 days for plain events, 90 for events with detections.
    let s = TestStore::new();
    let now = 200 * DAY;
    s.insert(&[
        plain("plain-1d", now - DAY),
        plain("plain-6d", now - 6 * DAY),
        plain("plain-8d", now - 8 * DAY),
        plain("plain-100d", now - 100 * DAY),
        detected("det-1d", now - DAY),
        detected("det-8d", now - 8 * DAY),
        detected("det-89d", now - 89 * DAY),
        detected("det-91d", now - 91 * DAY),
    ]);
    let r = s.store.enforce_retention(instant(now)).unwrap();
    assert_eq!(
        (r.removed_events, r.removed_detections, r.removed_for_size),
        (2, 1, 0)
    );
    let mut left = s.ids(&Filter::default());
    left.sort();
    assert_eq!(
        left,
        ["det-1d", "det-89d", "det-8d", "plain-1d", "plain-6d"]
    );
    // Gone for good: the event page, the search index and the rule filter agree.
    assert!(s.store.event("plain-8d").unwrap().is_none());
    assert_eq!(
        s.ids(&Filter {
            rule: Some("r.keep".into()),
            ..Filter::default()
        })
        .len(),
        3
    );
    // Nothing more to do on a second pass.
    let again = s.store.enforce_retention(instant(now)).unwrap();
    assert_eq!((again.removed_events, again.removed_detections), (0, 0));
}

#[test]
fn retention_periods_come_from_the_config() {
    let s = TestStore::with(|c| {
        c.event_retention_secs = 60;
        c.detection_retention_secs = 600;
    });
    s.insert(&[
        plain("p-30s", 970),
        plain("p-2m", 880),
        detected("d-5m", 700),
        detected("d-20m", -200),
    ]);
    s.store.enforce_retention(instant(1000)).unwrap();
    let mut left = s.ids(&Filter::default());
    left.sort();
    assert_eq!(left, ["d-5m", "p-30s"]);
}

#[test]
fn over_the_size_cap_the_oldest_plain_events_go_first_and_the_file_shrinks() {
    const CAP: u64 = 3 << 20;
    let s = TestStore::with(|c| c.max_bytes = CAP);
    let now = 10 * DAY;
    // ~12 MiB of 32 KiB events over the last 3 hours; every tenth has a detection, the
    // oldest among them first.
    let events: Vec<Event> = (0..384)
        .map(|i| {
            let secs = now - 3 * 3600 + i as i64 * 28;
            bulky(&format!("e{i:03}"), secs, 32, i % 10 == 0)
        })
        .collect();
    for chunk in events.chunks(50) {
        s.insert(chunk);
    }
    let before = s.store.stats().unwrap();
    assert!(before.bytes > 3 * CAP, "filled to {} bytes", before.bytes);

    let r = s.store.enforce_retention(instant(now)).unwrap();
    assert!(r.bytes_before > 3 * CAP && r.bytes_after <= CAP, "{r:?}");
    assert_eq!(r.removed_for_size, r.removed_events + r.removed_detections);
    assert_eq!(r.removed_detections, 0, "plain events remained: {r:?}");
    // The file itself is under the cap, and the log was emptied into it.
    assert!(
        file_len(&s.path()) <= CAP,
        "file {} > {CAP}",
        file_len(&s.path())
    );
    assert!(
        wal_len(&s.path()) <= 64 * 1024,
        "wal {}",
        wal_len(&s.path())
    );
    assert_eq!(s.store.stats().unwrap().bytes, r.bytes_after);

    let left = s.ids(&Filter::default());
    assert_eq!(left[0], "e383", "the newest is kept");
    // Every detection is still there; the plain events left are the newest ones.
    let detections = s.ids(&Filter {
        only_detections: true,
        ..Filter::default()
    });
    assert_eq!(detections.len(), 39);
    let plain_left: Vec<&String> = left.iter().filter(|id| !detections.contains(id)).collect();
    let expected_plain: Vec<String> = (0..384)
        .rev()
        .filter(|i| i % 10 != 0)
        .take(plain_left.len())
        .map(|i| format!("e{i:03}"))
        .collect();
    assert_eq!(plain_left, expected_plain.iter().collect::<Vec<_>>());
    assert!(!plain_left.is_empty());

    // Still usable and still capped after more arrive.
    let more: Vec<Event> = (384..500)
        .map(|i| bulky(&format!("e{i:03}"), now - 60 + i as i64 / 10, 32, false))
        .collect();
    s.store.insert(&more, Origin::Local).unwrap();
    let r = s.store.enforce_retention(instant(now)).unwrap();
    assert!(r.bytes_after <= CAP && file_len(&s.path()) <= CAP, "{r:?}");
    assert_eq!(s.ids(&Filter::default())[0], "e499");
}

#[test]
fn detections_go_by_size_only_when_no_plain_event_is_left() {
    const CAP: u64 = 2 << 20;
    let s = TestStore::with(|c| c.max_bytes = CAP);
    let now = 10 * DAY;
    let mut events: Vec<Event> = (0..200)
        .map(|i| bulky(&format!("d{i:03}"), now - 3600 + i as i64, 32, true))
        .collect();
    // A few small plain events, older than every detection.
    events.extend((0..5).map(|i| plain(&format!("p{i}"), now - 7200 + i)));
    for chunk in events.chunks(40) {
        s.insert(chunk);
    }
    let r = s.store.enforce_retention(instant(now)).unwrap();
    assert_eq!(r.removed_events, 5, "{r:?}");
    assert!(r.removed_detections > 0, "{r:?}");
    assert!(file_len(&s.path()) <= CAP, "{}", file_len(&s.path()));
    let left = s.ids(&Filter::default());
    assert_eq!(left[0], "d199", "the newest detection is kept");
    // The oldest detections went: what is left is a contiguous run of the newest.
    let n = left.len();
    let want: Vec<String> = (200 - n..200).rev().map(|i| format!("d{i:03}")).collect();
    assert_eq!(left, want);
}

#[test]
fn retention_drops_what_it_removed_from_every_view() {
    let s = TestStore::with(|c| c.event_retention_secs = 100);
    s.insert(&[
        event(
            "old",
            0,
            json!({"node": "old-node", "object": {"namespace": "old-ns"},
            "log": {"message": "forgotten words"}, "kind": "log", "source": "container_log"}),
        ),
        event("new", 1000, json!({"node": "new-node"})),
    ]);
    s.store.enforce_retention(instant(1050)).unwrap();
    assert!(
        s.ids(&Filter {
            text: Some("forgotten".into()),
            ..Filter::default()
        })
        .is_empty()
    );
    let f = s.store.facets().unwrap();
    assert_eq!(f.nodes, ["new-node"]);
    assert!(f.namespaces.is_empty());
    let st = s.store.stats().unwrap();
    assert_eq!((st.events, st.oldest), (1, Some(at(1000))));
    // A new event reusing nothing of the old: search still works for new words.
    s.insert(&[event(
        "later",
        1100,
        json!({"kind": "log", "source": "container_log",
        "log": {"message": "forgotten again"}}),
    )]);
    assert_eq!(
        s.ids(&Filter {
            text: Some("forgotten".into()),
            ..Filter::default()
        }),
        ["later"]
    );
}

#[test]
fn stopped_containers_are_forgotten_after_the_event_retention() {
    let s = TestStore::with(|c| c.event_retention_secs = 100);
    let rt = |id: &str, c: &str, action: &str, secs: i64| {
        event(
            id,
            secs,
            json!({"kind": "runtime", "source": "docker", "action": action,
            "container": {"id": c}}),
        )
    };
    s.insert(&[
        rt("1", "gone", "start", 0),
        rt("2", "gone", "die", 10),
        rt("3", "live", "start", 900),
    ]);
    s.store.enforce_retention(instant(1000)).unwrap();
    // The stopped container's record goes; one heard of within the retention stays.
    let ids: Vec<String> = s
        .store
        .containers()
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, ["live"]);
}
