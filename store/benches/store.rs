//! The console's queries on a store of 100,000 events.
//!
//! `cargo bench -p vigil-store --bench store`. Inserts 100,000 synthetic events (audit,
//! runtime, log and process events, 5% with detections, 20 namespaces, 10 nodes) in
//! batches of 500, then times each console query several times. Targets: every query
//! within 50 ms, inserts at 20,000 events/s or more.

#![allow(clippy::unwrap_used)] // a benchmark program: a failed unwrap is a failed run

use std::time::{Duration, Instant};

use serde_json::json;
use time::OffsetDateTime;
use vigil_core::event::Event;
use vigil_store::{Filter, Origin, Store, StoreConfig};

const EVENTS: usize = 100_000;
const BATCH: usize = 500;
const RUNS: usize = 15;
const NAMESPACES: usize = 20;
const NODES: usize = 10;
const START: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
/// Events span six days, one every ~5 s.
const STEP_NS: i64 = 6 * 86_400 * 1_000_000_000 / EVENTS as i64;

const RULES: &[(&str, &str, u8)] = &[
    ("k8s.exec_into_pod", "Exec into a pod", 10),
    ("container.privileged", "Privileged container started", 12),
    (
        "process.shell_in_container",
        "Shell spawned in a container",
        8,
    ),
    ("k8s.secret_read", "Secret read by an unusual user", 6),
    (
        "container.unexpected_image",
        "Image from an unapproved registry",
        14,
    ),
];
const IMAGES: &[&str] = &[
    "docker.io/library/nginx:1.27",
    "registry.example.com/shop/api:2.4.1",
    "registry.example.com/shop/worker:2.4.1",
    "docker.io/library/redis:7.2",
    "quay.io/prometheus/node-exporter:v1.8.0",
    "ghcr.io/example/payments:0.9.3",
];
const RUNTIME_ACTIONS: &[&str] = &["start", "die", "pause", "unpause", "create", "destroy"];
const MESSAGES: &[&str] = &[
    "GET /healthz 200 0.4ms",
    "connection from 10.0.3.17 accepted",
    "order 4411 paid, forwarding to fulfilment",
    "WARN cache miss ratio above 0.3 for 5m",
    "ERROR upstream timed out after 30s (payments-api)",
    "user login succeeded for account 88123",
];
const COMMANDS: &[&str] = &[
    "/usr/sbin/nginx -g daemon off;",
    "sh -c cat /etc/passwd",
    "python3 /app/worker.py --queue orders",
    "/bin/bash",
    "curl -s http://metadata.internal/latest",
    "redis-server *:6379",
];

/// A deterministic pseudo-random number from `i` and a salt (no RNG dependency).
fn pick(i: usize, salt: u64) -> usize {
    let mut x =
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 29;
    x as usize
}

fn time_of(i: usize) -> String {
    let ns = i128::from(START) * 1_000_000_000 + i128::from(i as i64 * STEP_NS);
    let t = OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
    vigil_core::timestamp::format_nanos(t)
}

fn event(i: usize) -> Event {
    let ns = format!("team-{:02}", pick(i, 1) % NAMESPACES);
    let node = format!("node-{:02}", pick(i, 2) % NODES);
    let t = time_of(i);
    let pod = format!(
        "{}-{:x}",
        ["api", "web", "worker", "cache"][pick(i, 3) % 4],
        pick(i, 4) % 50
    );
    let image = IMAGES[pick(i, 5) % IMAGES.len()];
    let cid = format!("{:064x}", pick(i, 6) % 2000);
    let container = json!({
        "id": cid, "name": pod.split('-').next(), "image": image, "runtime": "containerd",
        "pod": {"namespace": ns, "name": pod}
    });
    let mut ev = match pick(i, 7) % 20 {
        // 40% audit
        0..=7 => {
            let (verb, resource, sub) = match pick(i, 8) % 5 {
                0 => ("get", "secrets", None),
                1 => ("create", "pods", Some("exec")),
                2 => ("list", "configmaps", None),
                3 => ("patch", "deployments", None),
                _ => ("watch", "pods", None),
            };
            let user = format!("system:serviceaccount:{ns}:deployer-{}", pick(i, 9) % 5);
            json!({
                "source": "k8s_audit", "kind": "audit",
                "action": if sub.is_some() { "exec" } else { verb },
                "outcome": "success",
                "actor": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                          "source_ips": ["10.0.1.4"], "user_agent": "kubectl/v1.31.0 (linux/amd64)"},
                "object": {"resource": resource, "namespace": ns, "name": pod, "subresource": sub,
                           "api_version": "v1", "request_uri": format!("/api/v1/namespaces/{ns}/{resource}/{pod}")},
                "raw": {
                    "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                    "auditID": format!("{:032x}", pick(i, 10)), "stage": "ResponseComplete",
                    "requestURI": format!("/api/v1/namespaces/{ns}/{resource}/{pod}"), "verb": verb,
                    "user": {"username": user, "groups": ["system:serviceaccounts", "system:authenticated"]},
                    "sourceIPs": ["10.0.1.4"], "userAgent": "kubectl/v1.31.0 (linux/amd64)",
                    "objectRef": {"resource": resource, "namespace": ns, "name": pod, "apiVersion": "v1"},
                    "responseStatus": {"metadata": {}, "code": 200},
                    "requestReceivedTimestamp": t, "stageTimestamp": t,
                    "annotations": {"authorization.k8s.io/decision": "allow",
                                    "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding"}
                }
            })
        }
        // 15% runtime
        8..=10 => json!({
            "source": "containerd", "kind": "runtime",
            "action": RUNTIME_ACTIONS[pick(i, 11) % RUNTIME_ACTIONS.len()],
            "outcome": "success", "container": container,
            "object": {"resource": "tasks", "namespace": "k8s.io", "name": cid},
            "raw": {"topic": "/tasks/start", "namespace": "k8s.io", "event": {"container_id": cid, "pid": 4242}}
        }),
        // 30% logs
        11..=16 => json!({
            "source": "container_log", "kind": "log", "action": "log", "outcome": "unknown",
            "container": container,
            "log": {"stream": "stdout", "message": MESSAGES[pick(i, 12) % MESSAGES.len()],
                    "file": format!("/var/log/pods/{ns}_{pod}/app/0.log"), "offset": i * 120}
        }),
        // 15% process
        _ => json!({
            "source": "process", "kind": "process", "action": "exec", "outcome": "success",
            "container": container,
            "process": {"command_line": COMMANDS[pick(i, 13) % COMMANDS.len()], "pid": 1000 + i % 30000,
                        "ppid": 1, "uid": 0, "exe": "/bin/sh", "in_container": true}
        }),
    };
    let obj = ev.as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut full = json!({
        "schema": "vigil.event/v1", "id": format!("{:032x}", pick(i, 99) ^ i), "time": t,
        "ingest_time": t, "cluster": "prod", "node": node
    });
    if let Some(m) = full.as_object_mut() {
        m.extend(obj.into_iter().filter(|(_, v)| !v.is_null()));
        if let Some(o) = m.get_mut("object").and_then(|o| o.as_object_mut()) {
            o.retain(|_, v| !v.is_null());
        }
        if i.is_multiple_of(20) {
            let (rule, title, level) = RULES[pick(i, 14) % RULES.len()];
            m.insert(
                "detections".into(),
                json!([{"rule": rule, "title": title, "level": level, "severity": "high",
                        "mitre": ["T1609"], "tags": ["attack.execution"]}]),
            );
        }
    }
    serde_json::from_value(full).unwrap()
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(f());
        times.push(started.elapsed());
    }
    times.sort();
    let out = last.unwrap();
    (times[times.len() / 2], times[times.len() - 1], out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = Store::open(&StoreConfig::new(&path)).unwrap();

    let events: Vec<Event> = (0..EVENTS).map(event).collect();
    let started = Instant::now();
    for batch in events.chunks(BATCH) {
        let report = store.insert(batch, Origin::Local).unwrap();
        assert_eq!(report.inserted.len(), batch.len());
    }
    let insert = started.elapsed();
    let rate = EVENTS as f64 / insert.as_secs_f64();
    // Planner statistics as a long-running store has them after its first retention pass.
    let now = OffsetDateTime::from_unix_timestamp(START + 6 * 86_400).unwrap();
    store.enforce_retention(now).unwrap();

    let store = &store;
    let q = |f: Filter| move || store.query(&f, 50, None).unwrap().rows.len();
    let mid = OffsetDateTime::from_unix_timestamp(START + 3 * 86_400).unwrap();
    let mut table: Vec<(&str, Duration, Duration, String)> = Vec::new();
    let mut row = |name: &'static str, (median, max, out): (Duration, Duration, String)| {
        table.push((name, median, max, out));
    };
    let rows = |n: usize| format!("{n} rows");
    row("first page (50 rows)", {
        let (a, b, n) = time(RUNS, q(Filter::default()));
        (a, b, rows(n))
    });
    row("pages 1-20 by cursor, per page", {
        let (a, b, n) = time(RUNS, || {
            let mut page = store.query(&Filter::default(), 50, None).unwrap();
            for _ in 1..20 {
                page = store
                    .query(&Filter::default(), 50, page.next.as_ref())
                    .unwrap();
            }
            page.rows.len()
        });
        (a / 20, b / 20, format!("{n} rows"))
    });
    let ns = Filter {
        namespace: Some("team-07".into()),
        ..Filter::default()
    };
    row("namespace filter", {
        let (a, b, n) = time(RUNS, q(ns.clone()));
        (a, b, rows(n))
    });
    let level = Filter {
        min_level: Some(12),
        ..Filter::default()
    };
    row("min_level ≥ 12", {
        let (a, b, n) = time(RUNS, q(level.clone()));
        (a, b, rows(n))
    });
    row("rule filter", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                rule: Some("k8s.exec_into_pod".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("node filter", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                node: Some("node-03".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("source filter", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                source: Some("process".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("kind + action filter", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                kind: Some("audit".into()),
                action: Some("exec".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("only detections, pages 1-10, per page", {
        let f = Filter {
            only_detections: true,
            ..Filter::default()
        };
        let (a, b, n) = time(RUNS, || {
            let mut page = store.query(&f, 50, None).unwrap();
            for _ in 1..10 {
                page = store.query(&f, 50, page.next.as_ref()).unwrap();
            }
            page.rows.len()
        });
        (a / 10, b / 10, format!("{n} rows"))
    });
    let text = Filter {
        text: Some("payments timed out".into()),
        ..Filter::default()
    };
    row("free text (3 words)", {
        let (a, b, n) = time(RUNS, q(text.clone()));
        (a, b, rows(n))
    });
    row("free text (common word)", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                text: Some("nginx".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("free text (rare word)", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                text: Some("k8s.exec_into_pod".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("free text (no match)", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                text: Some("zanzibar".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("free text + time range", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                text: Some("passwd".into()),
                to: Some(OffsetDateTime::from_unix_timestamp(START + 86_400).unwrap()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    row("free text + namespace", {
        let (a, b, n) = time(
            RUNS,
            q(Filter {
                text: Some("passwd".into()),
                namespace: Some("team-03".into()),
                ..Filter::default()
            }),
        );
        (a, b, rows(n))
    });
    let range = Filter {
        from: Some(mid),
        to: Some(mid + time::Duration::hours(1)),
        ..Filter::default()
    };
    row("time range (1 h)", {
        let (a, b, n) = time(RUNS, q(range.clone()));
        (a, b, rows(n))
    });
    row("counts (all)", {
        let (a, b, n) = time(RUNS, || store.counts(&Filter::default()).unwrap().len());
        (a, b, format!("{n} groups"))
    });
    for (name, f) in [
        ("counts (namespace)", ns),
        ("counts (min_level)", level),
        ("counts (free text)", text),
        ("counts (time range)", range),
    ] {
        row(name, {
            let (a, b, n) = time(RUNS, || store.counts(&f).unwrap().len());
            (a, b, format!("{n} groups"))
        });
    }
    row("containers", {
        let (a, b, n) = time(RUNS, || store.containers().unwrap().len());
        (a, b, format!("{n} running"))
    });
    row("facets", {
        let (a, b, f) = time(RUNS, || store.facets().unwrap());
        (
            a,
            b,
            format!(
                "{}+{}+{}+{} values",
                f.namespaces.len(),
                f.nodes.len(),
                f.sources.len(),
                f.rules.len()
            ),
        )
    });
    row("event by id", {
        let id = events[EVENTS / 2].id.clone();
        let (a, b, e) = time(RUNS, || store.event(&id).unwrap().is_some());
        (a, b, format!("found: {e}"))
    });
    row("stats", {
        let (a, b, s) = time(RUNS, || store.stats().unwrap());
        (a, b, format!("{} events", s.events))
    });

    row("retention pass, nothing due", {
        let (a, b, r) = time(3, || store.enforce_retention(now).unwrap());
        (
            a,
            b,
            format!("{} removed", r.removed_events + r.removed_detections),
        )
    });
    let file = |suffix: &str| {
        std::fs::metadata(format!("{}{suffix}", path.display()))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    println!("vigil-store on {EVENTS} events ({RUNS} runs each)");
    println!();
    println!("| what | median ms | max ms | result |");
    println!("|---|---:|---:|---|");
    println!(
        "| insert, batches of {BATCH} | {:.0} events/s | | {:.1} s total |",
        rate,
        insert.as_secs_f64()
    );
    let mut slow = Vec::new();
    for (name, median, max, out) in &table {
        println!("| {name} | {:.2} | {:.2} | {out} |", ms(*median), ms(*max));
        if ms(*median) > 50.0 {
            slow.push(*name);
        }
    }
    println!(
        "| database file | {:.1} MiB (+ {:.1} MiB WAL) | | |",
        file("") as f64 / 1_048_576.0,
        file("-wal") as f64 / 1_048_576.0
    );
    println!();
    println!(
        "targets: queries ≤ 50 ms: {}; insert ≥ 20000 events/s: {}",
        if slow.is_empty() {
            "met".to_owned()
        } else {
            format!("MISSED by {slow:?}")
        },
        if rate >= 20_000.0 { "met" } else { "MISSED" }
    );
}
