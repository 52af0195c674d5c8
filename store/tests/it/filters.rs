//! The timeline: every filter narrows to exactly the events it names, alone and combined;
//! pages cover every row once, newest first.

use serde_json::json;
use vigil_core::event::Event;
use vigil_store::{Count, Filter, Origin};

use crate::common::*;

const NAMESPACES: [&str; 3] = ["shop", "payments", "ops"];

/// What the test knows about each event it stored.
#[derive(Debug, Clone)]
struct Fact {
    id: String,
    secs: i64,
    namespace: Option<&'static str>,
    node: &'static str,
    source: &'static str,
    kind: &'static str,
    action: &'static str,
    rules: Vec<&'static str>,
    level: Option<u8>,
    words: String,
}

/// 120 events of four kinds over two hours, a fifth of them with detections.
fn dataset() -> (Vec<Event>, Vec<Fact>) {
    let mut events = Vec::new();
    let mut facts = Vec::new();
    for i in 0..120usize {
        let secs = i as i64 * 60;
        let id = format!("ev-{i:03}");
        let ns = NAMESPACES[i % 3];
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        let mut rules = Vec::new();
        let mut detections = Vec::new();
        if i % 5 == 0 {
            rules.push("r.exec");
            detections.push(detection("r.exec", 8));
        }
        if i % 10 == 0 {
            rules.push("r.privileged");
            detections.push(detection("r.privileged", 14));
        }
        let level = match (i % 5 == 0, i % 10 == 0) {
            (_, true) => Some(14),
            (true, false) => Some(8),
            _ => None,
        };
        let container = json!({"id": format!("{i:064x}"), "name": format!("app-{}", i % 7),
            "image": format!("registry.example.com/app:{}", i % 4),
            "pod": {"namespace": ns, "name": format!("app-{}-pod", i % 7)}});
        let (source, kind, action, fields, words) = match i % 4 {
            0 => {
                let action = ["get", "exec", "delete"][i % 3];
                (
                    "k8s_audit",
                    "audit",
                    action,
                    json!({"actor": {"user": format!("user-{}", i % 6)},
                           "object": {"resource": "pods", "namespace": ns, "name": format!("web-{i}"),
                                      "subresource": if action == "exec" { Some("exec") } else { None }}}),
                    format!("user-{} pods web-{i}", i % 6),
                )
            }
            1 => (
                "docker",
                "runtime",
                if i % 8 == 1 { "start" } else { "create" },
                json!({"container": container}),
                format!("app-{}", i % 7),
            ),
            2 => {
                let msg = if i == 42 || i == 86 {
                    "found the needle in the haystack".to_owned()
                } else {
                    format!("request {i} served in 3 ms")
                };
                (
                    "container_log",
                    "log",
                    "log",
                    json!({"container": container, "log": {"message": msg}}),
                    msg,
                )
            }
            _ => (
                "process",
                "process",
                "exec",
                json!({"container": container, "process": {"command_line": format!("/bin/sh -c job-{}", i % 9)}}),
                format!("sh job-{}", i % 9),
            ),
        };
        let mut fields = fields;
        let m = fields.as_object_mut().unwrap();
        m.insert("source".into(), json!(source));
        m.insert("kind".into(), json!(kind));
        m.insert("action".into(), json!(action));
        m.insert("node".into(), json!(node));
        if !detections.is_empty() {
            m.insert("detections".into(), json!(detections));
        }
        events.push(event(&id, secs, fields));
        facts.push(Fact {
            id,
            secs,
            namespace: Some(ns),
            node,
            source,
            kind,
            action,
            rules,
            level,
            words,
        });
    }
    (events, facts)
}

fn seeded() -> (TestStore, Vec<Fact>) {
    let s = TestStore::new();
    let (events, facts) = dataset();
    // Inserted out of time order, in uneven batches: the timeline sorts by event time.
    let mut shuffled: Vec<Event> = events.clone();
    shuffled.reverse();
    shuffled.rotate_left(37);
    for chunk in shuffled.chunks(23) {
        s.insert(chunk);
    }
    (s, facts)
}

/// The ids the filter should give, newest first.
fn expected(facts: &[Fact], keep: impl Fn(&Fact) -> bool) -> Vec<String> {
    let mut f: Vec<&Fact> = facts.iter().filter(|f| keep(f)).collect();
    f.sort_by_key(|f| std::cmp::Reverse(f.secs));
    f.into_iter().map(|f| f.id.clone()).collect()
}

#[test]
fn each_filter_narrows_to_exactly_the_matching_events() {
    let (s, facts) = seeded();
    let all = s.ids(&Filter::default());
    assert_eq!(
        all,
        expected(&facts, |_| true),
        "no filter: everything, newest first"
    );

    type Check = (Filter, Box<dyn Fn(&Fact) -> bool>);
    let checks: Vec<(&str, Check)> = vec![
        (
            "namespace",
            (
                Filter {
                    namespace: Some("payments".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.namespace == Some("payments")),
            ),
        ),
        (
            "node",
            (
                Filter {
                    node: Some("node-b".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.node == "node-b"),
            ),
        ),
        (
            "source",
            (
                Filter {
                    source: Some("container_log".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.source == "container_log"),
            ),
        ),
        (
            "kind",
            (
                Filter {
                    kind: Some("runtime".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.kind == "runtime"),
            ),
        ),
        (
            "action",
            (
                Filter {
                    action: Some("exec".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.action == "exec"),
            ),
        ),
        (
            "rule",
            (
                Filter {
                    rule: Some("r.privileged".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.rules.contains(&"r.privileged")),
            ),
        ),
        (
            "min_level",
            (
                Filter {
                    min_level: Some(10),
                    ..Filter::default()
                },
                Box::new(|f| f.level.is_some_and(|l| l >= 10)),
            ),
        ),
        (
            "min_level 0 still needs a detection",
            (
                Filter {
                    min_level: Some(0),
                    ..Filter::default()
                },
                Box::new(|f| f.level.is_some()),
            ),
        ),
        (
            "only_detections",
            (
                Filter {
                    only_detections: true,
                    ..Filter::default()
                },
                Box::new(|f| f.level.is_some()),
            ),
        ),
        (
            "from",
            (
                Filter {
                    from: Some(instant(60 * 100)),
                    ..Filter::default()
                },
                Box::new(|f| f.secs >= 60 * 100),
            ),
        ),
        (
            "to",
            (
                Filter {
                    to: Some(instant(60 * 10)),
                    ..Filter::default()
                },
                Box::new(|f| f.secs < 60 * 10),
            ),
        ),
        (
            "text",
            (
                Filter {
                    text: Some("needle".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.words.contains("needle")),
            ),
        ),
        (
            "text, any case, two words",
            (
                Filter {
                    text: Some("HAYSTACK Needle".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.words.contains("needle")),
            ),
        ),
        (
            "text of a command line",
            (
                Filter {
                    text: Some("job-4".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.words.contains("job-4")),
            ),
        ),
        (
            "text of an actor",
            (
                Filter {
                    text: Some("user-2".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.words.contains("user-2 ")),
            ),
        ),
        (
            "text of a rule title",
            (
                Filter {
                    text: Some("r.privileged".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.rules.contains(&"r.privileged")),
            ),
        ),
        (
            "combined: namespace + kind + from",
            (
                Filter {
                    namespace: Some("shop".into()),
                    kind: Some("audit".into()),
                    from: Some(instant(60 * 30)),
                    ..Filter::default()
                },
                Box::new(|f| f.namespace == Some("shop") && f.kind == "audit" && f.secs >= 60 * 30),
            ),
        ),
        (
            "combined: node + only_detections + to",
            (
                Filter {
                    node: Some("node-a".into()),
                    only_detections: true,
                    to: Some(instant(60 * 80)),
                    ..Filter::default()
                },
                Box::new(|f| f.node == "node-a" && f.level.is_some() && f.secs < 60 * 80),
            ),
        ),
        (
            "combined: rule + namespace + source",
            (
                Filter {
                    rule: Some("r.exec".into()),
                    namespace: Some("ops".into()),
                    source: Some("k8s_audit".into()),
                    ..Filter::default()
                },
                Box::new(|f| {
                    f.rules.contains(&"r.exec")
                        && f.namespace == Some("ops")
                        && f.source == "k8s_audit"
                }),
            ),
        ),
        (
            "combined: text + node",
            (
                Filter {
                    text: Some("served".into()),
                    node: Some("node-a".into()),
                    ..Filter::default()
                },
                Box::new(|f| f.words.contains("served") && f.node == "node-a"),
            ),
        ),
        (
            "nothing matches",
            (
                Filter {
                    namespace: Some("nowhere".into()),
                    ..Filter::default()
                },
                Box::new(|_| false),
            ),
        ),
    ];
    for (name, (filter, keep)) in checks {
        let want = expected(&facts, keep);
        assert_eq!(s.ids(&filter), want, "{name}");
        if name != "nothing matches" {
            assert!(
                !want.is_empty() && want.len() < all.len(),
                "{name} must narrow: {}",
                want.len()
            );
        }
        // Counts agree with the rows.
        let counts = s.store.counts(&filter).unwrap();
        let total: u64 = counts.iter().map(|c| c.events).sum();
        assert_eq!(total as usize, want.len(), "{name}: counts");
    }
}

#[test]
fn rows_carry_what_the_timeline_shows() {
    let (s, _) = seeded();
    let row = |id: &str| s.store.event(id).unwrap().unwrap().row;
    let exec = row("ev-040");
    assert_eq!(exec.kind, "audit");
    assert_eq!(exec.action, "exec");
    assert_eq!(exec.source, "k8s_audit");
    assert_eq!(exec.outcome, "success");
    assert_eq!(exec.namespace.as_deref(), Some("payments"));
    assert_eq!(exec.node.as_deref(), Some("node-a"));
    assert_eq!(exec.actor.as_deref(), Some("user-4"));
    assert_eq!(exec.object.as_deref(), Some("pods/web-40/exec"));
    assert_eq!(exec.level, Some(14));
    assert_eq!(exec.rules, ["r.exec", "r.privileged"]);
    assert_eq!(exec.titles, ["Title of r.exec", "Title of r.privileged"]);
    assert_eq!(exec.summary, "user-4 exec pods/web-40/exec");
    assert_eq!(exec.time, at(2400));

    let log = row("ev-042");
    assert_eq!(
        log.namespace.as_deref(),
        Some("shop"),
        "the pod's namespace"
    );
    assert_eq!(log.container.as_deref(), Some("app-0"));
    assert_eq!(log.image.as_deref(), Some("registry.example.com/app:2"));
    assert_eq!(log.summary, "app-0: found the needle in the haystack");
    assert_eq!(log.level, None);
    assert!(log.rules.is_empty());
}

#[test]
fn counts_group_by_kind_and_action_largest_first() {
    let (s, facts) = seeded();
    let counts = s.store.counts(&Filter::default()).unwrap();
    let mut want: Vec<Count> = Vec::new();
    for f in &facts {
        match want
            .iter_mut()
            .find(|c| c.kind == f.kind && c.action == f.action)
        {
            Some(c) => {
                c.events += 1;
                c.detections += u64::from(f.level.is_some());
            }
            None => want.push(Count {
                kind: f.kind.into(),
                action: f.action.into(),
                events: 1,
                detections: u64::from(f.level.is_some()),
            }),
        }
    }
    want.sort_by(|a, b| {
        b.events
            .cmp(&a.events)
            .then(a.kind.cmp(&b.kind))
            .then(a.action.cmp(&b.action))
    });
    assert_eq!(counts, want);
    assert!(counts.windows(2).all(|w| w[0].events >= w[1].events));
}

#[test]
fn facets_list_the_values_stored_events_have() {
    let (s, _) = seeded();
    let f = s.store.facets().unwrap();
    assert_eq!(f.namespaces, ["ops", "payments", "shop"]);
    assert_eq!(f.nodes, ["node-a", "node-b"]);
    assert_eq!(
        f.sources,
        ["container_log", "docker", "k8s_audit", "process"]
    );
    assert_eq!(f.rules, ["r.exec", "r.privileged"]);
}

#[test]
fn pages_cover_every_row_once_newest_first() {
    let (s, facts) = seeded();
    let want = expected(&facts, |_| true);
    for page in [1, 7, 50, 119, 120, 121, 1000] {
        let ids: Vec<String> = s
            .all(&Filter::default(), page)
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, want, "pages of {page}");
    }
    // Filtered pages too.
    let f = Filter {
        namespace: Some("ops".into()),
        ..Filter::default()
    };
    let ids: Vec<String> = s.all(&f, 3).into_iter().map(|r| r.id).collect();
    assert_eq!(ids, expected(&facts, |f| f.namespace == Some("ops")));
    // The last page says so.
    let p = s.store.query(&Filter::default(), 120, None).unwrap();
    assert_eq!(p.rows.len(), 120);
    assert!(p.next.is_none());
    assert!(
        s.store
            .query(&Filter::default(), 0, None)
            .unwrap()
            .rows
            .is_empty()
    );
}

#[test]
fn events_of_the_same_instant_are_paged_without_loss_or_repeat() {
    let s = TestStore::new();
    let events: Vec<_> = (0..25)
        .map(|i| event(&format!("same-{i:02}"), 100, json!({})))
        .collect();
    s.insert(&events[..10]);
    s.insert(&[
        event("older", 50, json!({})),
        event("newer", 150, json!({})),
    ]);
    s.insert(&events[10..]);
    let ids: Vec<String> = s
        .all(&Filter::default(), 4)
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut want = vec!["newer".to_owned()];
    // Among equal times, the later arrival first.
    want.extend((0..25).rev().map(|i| format!("same-{i:02}")));
    want.push("older".into());
    assert_eq!(ids, want);
}

#[test]
fn a_cursor_stays_valid_while_new_events_arrive() {
    let (s, facts) = seeded();
    let first = s.store.query(&Filter::default(), 30, None).unwrap();
    s.store
        .insert(
            &[event("late-newest", 10_000_000, json!({}))],
            Origin::Local,
        )
        .unwrap();
    let second = s
        .store
        .query(&Filter::default(), 30, first.next.as_ref())
        .unwrap();
    let want = expected(&facts, |_| true);
    let got: Vec<String> = first
        .rows
        .iter()
        .chain(&second.rows)
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(got, want[..60]);
    // The cursor travels as a URL parameter.
    let param = first.next.unwrap().to_param();
    let again = vigil_store::Cursor::from_param(&param).unwrap();
    assert_eq!(
        s.store.query(&Filter::default(), 30, Some(&again)).unwrap(),
        second
    );
}
