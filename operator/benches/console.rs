//! The console on a store of 100,000 events: how long each page takes to answer, and how
//! fast the ingest endpoint stores batches.
//!
//! `cargo bench -p vigil-operator --bench console` (release). Plain HTTP on loopback, one
//! client, requests one after the other: the figures are the server's work per request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark: failures abort

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_core::event::Event;
use vigil_operator::console::{AuthConfig, ConsoleConfig, ConsoleMetrics, ConsoleServer};
use vigil_store::{Origin, Store, StoreConfig};

const EVENTS: usize = 100_000;
const ROUNDS: usize = 30;
const NAMESPACES: [&str; 20] = [
    "team-a", "team-b", "payments", "search", "ml", "web", "batch", "infra", "data", "edge",
    "auth", "billing", "cart", "catalog", "mail", "media", "ops", "reports", "shop", "users",
];

const AUDIT_ACTIONS: [&str; 5] = ["get", "list", "create", "update", "delete"];
const RUNTIME_ACTIONS: [&str; 3] = ["start", "die", "exec"];
const RULES: [&str; 4] = [
    "container.privileged",
    "exec.shell",
    "rbac.cluster-admin-binding",
    "secrets.list",
];

/// A mix like a real cluster's: audit requests, runtime events, logs, 5% with a detection.
fn event(i: usize) -> Event {
    let ns = NAMESPACES[i % NAMESPACES.len()];
    let secs = i * 6 / 10; // 100,000 events over 16.7 hours
    let time = format!(
        "2026-11-23T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        i
    );
    let mut v = match i % 4 {
        0 | 1 => json!({
            "source": "k8s_audit", "kind": "audit",
            "action": AUDIT_ACTIONS[i % 5],
            "actor": {"user": format!("system:serviceaccount:{ns}:app-{}", i % 30)},
            "object": {"resource": "pods", "namespace": ns, "name": format!("web-{}", i % 500)},
        }),
        2 => json!({
            "source": "docker", "kind": "runtime", "action": RUNTIME_ACTIONS[i % 3],
            "container": {"id": format!("{:064x}", i % 2000), "name": format!("c-{}", i % 2000),
                "image": format!("registry.example.com/app-{}:1.{}", i % 40, i % 9),
                "pod": {"namespace": ns, "name": format!("web-{}", i % 500)}},
        }),
        _ => json!({
            "source": "container_log", "kind": "log", "action": "log",
            "container": {"name": format!("c-{}", i % 2000), "pod": {"namespace": ns, "name": format!("web-{}", i % 500)}},
            "log": {"message": format!("GET /api/items/{i} 200 {} ms user=u{}", i % 97, i % 1000)},
        }),
    };
    v["schema"] = json!("vigil.event/v1");
    v["id"] = json!(format!("{i:016x}"));
    v["time"] = json!(time);
    v["ingest_time"] = json!(time);
    v["node"] = json!(format!("node-{}", i % 10));
    v["outcome"] = json!("success");
    if i.is_multiple_of(20) {
        v["detections"] = json!([{"rule": RULES[i / 20 % 4],
            "title": "a detection", "level": 6 + (i / 20 % 10), "severity": "high"}]);
    }
    serde_json::from_value(v).unwrap()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    // The plain-HTTP client still wants a TLS provider chosen; the workspace's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let store_cfg: StoreConfig =
        serde_json::from_value(json!({"path": dir.path().join("events.db")})).unwrap();
    {
        let store = Store::open(&store_cfg).unwrap();
        let started = Instant::now();
        for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
            let events: Vec<Event> = chunk.iter().map(|&i| event(i)).collect();
            store.insert(&events, Origin::Local).unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "seed: {EVENTS} events into the store directly in {secs:.1} s = {:.0} events/s; {:.1} MB on disk",
            EVENTS as f64 / secs,
            store.stats().unwrap().bytes as f64 / 1e6
        );
    }
    let token = dir.path().join("tokens");
    std::fs::write(&token, "bench-token\n").unwrap();
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        store: store_cfg,
        auth: AuthConfig {
            viewer_token_files: vec![token.clone()],
            ingest_token_files: vec![token],
            token_review: Default::default(),
        },
        ingest: Default::default(),
        peers: Default::default(),
        notifications: None,
        retention_interval_secs: 3600,
        page_rows: 100,
    };
    let server = ConsoleServer::bind(
        config,
        Arc::new(|| true),
        None,
        Arc::new(ConsoleMetrics::default()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let pages = [
        ("timeline, newest 100", "/events".to_owned()),
        (
            "timeline, one namespace",
            "/events?namespace=payments".to_owned(),
        ),
        ("detections, level >= 12", "/detections?level=12".to_owned()),
        ("timeline, free text", "/events?q=u419".to_owned()),
        (
            "timeline, one hour",
            "/events?from=2026-11-23T05:00&to=2026-11-23T06:00".to_owned(),
        ),
        ("timeline, page 50 (cursor)", String::new()),
        ("event with raw", format!("/events/{:016x}", 5_000)),
        ("containers", "/containers".to_owned()),
    ];
    // The cursor of the 50th page, found by following "Older" links.
    let mut deep = "/events".to_owned();
    for _ in 0..49 {
        let page = client
            .get(format!("{base}{deep}"))
            .bearer_auth("bench-token")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page.find("id=\"older\" href=\"").expect("an older page")
            + "id=\"older\" href=\"".len();
        deep = page[at..].split('"').next().unwrap().replace("&amp;", "&");
    }
    println!("| page (100,000 events) | median | p95 | bytes |");
    println!("|---|---|---|---|");
    for (name, path) in pages {
        let path = if path.is_empty() { deep.clone() } else { path };
        let mut times = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let res = client
                .get(format!("{base}{path}"))
                .bearer_auth("bench-token")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            bytes = res.bytes().await.unwrap().len();
            times.push(started.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {bytes} |",
            percentile(&times, 0.5),
            percentile(&times, 0.95)
        );
    }
    // Ingest: batches of 500 new events, NDJSON, one request at a time.
    let batches = 40;
    let bodies: Vec<String> = (0..batches)
        .map(|b| {
            (0..500)
                .map(|k| serde_json::to_string(&event(EVENTS + b * 500 + k)).unwrap() + "\n")
                .collect()
        })
        .collect();
    let started = Instant::now();
    for body in bodies {
        let res = client
            .post(format!("{base}/api/v1/ingest"))
            .bearer_auth("bench-token")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "ingest: {} events in batches of 500 over HTTP: {:.0} events/s ({:.1} ms per batch)",
        batches * 500,
        (batches * 500) as f64 / secs,
        secs * 1e3 / batches as f64
    );
    // The whole process: the console, the client and what seeding left; an upper bound of
    // what the console adds to the operator with this store.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    println!(
        "memory: bench process after the pages and the ingest: RSS {:.1} MiB, peak {:.1} MiB",
        field("VmRSS:"),
        field("VmHWM:")
    );
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
