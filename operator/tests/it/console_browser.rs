//! The console in a real headless Chromium (Debian's), against a running console whose store
//! holds 100,000 events: log in, filter by each field, open a detection's raw event, the
//! containers and the monitors. Screenshots are written to the test's output directory and
//! their paths printed.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use vigil_core::event::Event;
use vigil_store::{Origin, Store, StoreConfig};
use vigil_testkit::browser;
use vigil_testkit::certs::TestPki;

use super::console::{Console, VIEWER, runtime_event};

const EVENTS: usize = 100_000;
const NAMESPACES: [&str; 10] = [
    "team-a", "team-b", "payments", "search", "ml", "web", "batch", "infra", "data", "edge",
];

const ACTIONS: [&str; 5] = ["get", "list", "create", "update", "delete"];

/// Event `i` of the seeded store: audit requests across namespaces and nodes, one in 20
/// with a detection, spread over the ten hours before 2026-11-23T10:00Z (newest last).
fn seeded(i: usize) -> Event {
    let ns = NAMESPACES[i % NAMESPACES.len()];
    let node = format!("node-{}", i % 8);
    let secs = 36_000 - (EVENTS - i) * 36_000 / EVENTS;
    let time = format!(
        "2026-11-23T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    let mut v = json!({
        "schema": "vigil.event/v1",
        "id": format!("seed-{i:08}"),
        "time": time,
        "ingest_time": time,
        "node": node,
        "source": "k8s_audit",
        "kind": "audit",
        "action": ACTIONS[i % ACTIONS.len()],
        "outcome": "success",
        "actor": {"user": format!("user-{}@example.com", i % 50)},
        "object": {"resource": "configmaps", "namespace": ns, "name": format!("cm-{i}")},
    });
    if i.is_multiple_of(20) {
        let (rule, title, level) = if i.is_multiple_of(40) {
            ("container.privileged", "Privileged container started", 12)
        } else {
            ("secrets.read", "Secret read by a user", 8)
        };
        v["action"] = json!("create");
        v["object"]["resource"] = json!("pods");
        v["detections"] =
            json!([{"rule": rule, "title": title, "level": level, "severity": "high"}]);
    }
    serde_json::from_value(v).unwrap()
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(r: &Value) -> &str {
    r["text"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_logs_in_filters_and_opens_a_detection_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console_dir = dir.path().join("console");
    {
        let cfg: StoreConfig =
            serde_json::from_value(json!({"path": console_dir.join("store/events.db")})).unwrap();
        let store = Store::open(&cfg).unwrap();
        let started = std::time::Instant::now();
        for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(1000) {
            let events: Vec<Event> = chunk.iter().map(|&i| seeded(i)).collect();
            store.insert(&events, Origin::Local).unwrap();
        }
        let running: Vec<Event> = (0..12)
            .map(|i| {
                runtime_event(
                    i,
                    "start",
                    &format!("api-{i}"),
                    NAMESPACES[i % 3],
                    "node-1",
                    "2026-11-23T09:30:00Z",
                )
            })
            .collect();
        store.insert(&running, Origin::Local).unwrap();
        println!(
            "seeded {} events in {:.1} s",
            EVENTS + 12,
            started.elapsed().as_secs_f64()
        );
    }
    let console = Console::start(&console_dir, pki, |_| {}).await;
    let base = console.url("");
    let shots = shots_dir();
    let shot = |name: &str| json!({"screenshot": shots.join(name).to_string_lossy()});

    let steps = vec![
        // 0: no cookie yet: the console sends the browser to the login page.
        json!({"goto": format!("{base}/events")}),
        json!({"url": null}),
        // 2: a wrong token is refused on the login page.
        json!({"fill": ["#token", "not-a-token"]}),
        json!({"submit": "form.login"}),
        json!({"text": "#login-error"}),
        // 5: the viewer token opens the timeline: the page's rows, newest first.
        json!({"fill": ["#token", VIEWER]}),
        json!({"submit": "form.login"}),
        json!({"url": null}),
        json!({"count": "#events tbody tr"}),
        json!({"texts": "#events tbody tr td:first-child"}),
        json!({"timing": null}),
        shot("01-timeline.png"),
        // 12: filter by namespace: every row is of it.
        json!({"fill": ["#f-namespace", "payments"]}),
        json!({"submit": "#filters"}),
        json!({"texts": "#events tbody tr td:nth-child(3)"}),
        json!({"timing": null}),
        // 16: add a free-text search for one user.
        json!({"fill": ["#f-q", "user-7@example.com"]}),
        json!({"submit": "#filters"}),
        json!({"count": "#events tbody tr"}),
        json!({"text": "#events tbody tr"}),
        json!({"timing": null}),
        // 21: the detections page, level 10 or more, on one node, in a time range.
        json!({"goto": format!("{base}/detections")}),
        json!({"fill": ["#f-level", "10"]}),
        json!({"fill": ["#f-node", "node-0"]}),
        json!({"fill": ["#f-from", "2026-11-23T05:00"]}),
        json!({"fill": ["#f-to", "2026-11-23T06:00"]}),
        json!({"submit": "#filters"}),
        json!({"texts": "#events tbody tr td:nth-child(2)"}),
        json!({"texts": "#events tbody tr td:first-child"}),
        json!({"texts": "#events tbody tr td:nth-child(4)"}),
        json!({"timing": null}),
        shot("02-detections.png"),
        // 32: the counts by type and action, of the filtered set.
        json!({"texts": "#counts tbody tr"}),
        // 33: a detection's page with its raw event.
        json!({"click": "#events tbody tr a"}),
        json!({"text": "#detections"}),
        json!({"text": "#raw"}),
        shot("03-event.png"),
        // 37: the containers running now and their images, then the monitors page.
        json!({"goto": format!("{base}/containers")}),
        json!({"count": "#containers tbody tr"}),
        json!({"count": "#images tbody tr"}),
        shot("04-containers.png"),
        json!({"goto": format!("{base}/monitors")}),
        json!({"text": "main"}),
        // 43: paging back: the next page holds older events.
        json!({"goto": format!("{base}/events")}),
        json!({"click": "#older"}),
        json!({"texts": "#events tbody tr td:first-child"}),
        // 46: logging out clears the cookie.
        json!({"submit": "header form"}),
        json!({"goto": format!("{base}/events")}),
        json!({"url": null}),
    ];
    let r = tokio::task::spawn_blocking(move || browser::run(&steps, true))
        .await
        .unwrap();

    assert!(
        r[1]["url"].as_str().unwrap().ends_with("/login"),
        "{:?}",
        r[1]
    );
    assert!(text(&r[4]).contains("may not"), "{:?}", r[4]);
    assert!(
        r[7]["url"].as_str().unwrap().ends_with("/events"),
        "{:?}",
        r[7]
    );
    assert_eq!(r[8]["count"], 50, "one page of rows");
    let times: Vec<&str> = r[9]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    assert_eq!(times[0], "2026-11-23 10:00:00");

    let namespaces = r[14]["texts"].as_array().unwrap();
    assert_eq!(namespaces.len(), 50);
    assert!(namespaces.iter().all(|n| n == "payments"), "{namespaces:?}");
    // user-7 acts on i ≡ 7 (mod 50); payments is i ≡ 2 (mod 10): they never meet.
    assert_eq!(
        r[18]["count"], 0,
        "no payments event by user-7: {:?}",
        r[19]
    );

    let levels = r[27]["texts"].as_array().unwrap();
    assert!(
        !levels.is_empty(),
        "level-12 detections exist on node-0 in that hour"
    );
    assert!(levels.iter().all(|l| l == "12"), "{levels:?}");
    let det_times = r[28]["texts"].as_array().unwrap();
    assert!(
        det_times.iter().all(|t| {
            let t = t.as_str().unwrap();
            ("2026-11-23 05:00:00"..="2026-11-23 06:00:00").contains(&t)
        }),
        "{det_times:?}"
    );
    assert!(
        r[29]["texts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n == "node-0")
    );
    let counts: Vec<&str> = r[32]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        counts.len(),
        1,
        "only pod creations are level-12 detections: {counts:?}"
    );
    assert!(counts[0].starts_with("audit\tcreate"), "{counts:?}");

    assert!(text(&r[34]).contains("container.privileged"), "{:?}", r[34]);
    assert!(
        text(&r[35]).contains("\"schema\": \"vigil.event/v1\""),
        "the raw event: {:?}",
        r[35]
    );
    assert_eq!(r[38]["count"], 12, "the twelve started containers");
    assert_eq!(r[39]["count"], 7, "seven image tags among them");
    assert!(
        text(&r[42]).contains("without access to the Kubernetes API"),
        "{:?}",
        r[42]
    );
    let older: Vec<&str> = r[45]["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        older.first().unwrap() <= times.last().unwrap(),
        "older page: {older:?}"
    );
    assert!(r[48]["url"].as_str().unwrap().ends_with("/login"));

    for (step, name) in [
        (11, "timeline"),
        (31, "detections"),
        (36, "event"),
        (40, "containers"),
    ] {
        let path = PathBuf::from(r[step]["png"].as_str().unwrap());
        let s = browser::shot(&path);
        println!(
            "screenshot {name}: {} ({}x{}, {} bytes)",
            path.display(),
            s.width,
            s.height,
            s.bytes
        );
        assert!(s.width >= 1000 && s.height >= 300, "{name}: {s:?}");
        // A page of tables and text; a blank or error page compresses to a few KiB.
        assert!(s.bytes > 20_000, "{name} looks empty: {s:?}");
    }
    for (step, what) in [
        (10, "timeline"),
        (15, "namespace filter"),
        (20, "text search"),
        (30, "detections filters"),
    ] {
        println!(
            "page load, {what}, {} events stored: {:.0} ms",
            EVENTS + 12,
            r[step]["ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    console.stop().await;
}
