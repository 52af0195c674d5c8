//! The console over real TLS: events arrive through the vigil output (the agents' code) and
//! the audit webhook collector, are stored once, copied between replicas, and shown to a
//! viewer; everyone else is refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vigil_core::event::Event;
use vigil_core::outputs::tls::{DefaultTrust, TlsSettings};
use vigil_core::outputs::vigil::VigilOutputConfig;
use vigil_core::outputs::{BuildContext, OutputConfig};
use vigil_core::pipeline::{Ack, Batch, Router, RouterConfig};
use vigil_operator::console::{
    AuthConfig, ConsoleConfig, ConsoleMetrics, ConsoleServer, IngestConfig, PeersConfig, ServerTls,
};
use vigil_operator::webhook::{AUDIT_PATH, WebhookConfig, WebhookMetrics, WebhookServer};
use vigil_store::{Filter, Store, StoreConfig};
use vigil_testkit::certs::TestPki;

pub const VIEWER: &str = "viewer-token-0123456789";
pub const INGEST: &str = "ingest-token-9876543210";

/// A console on loopback with its own store, PKI and tokens.
pub struct Console {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub pki: Arc<TestPki>,
    pub metrics: Arc<ConsoleMetrics>,
    pub leader: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The configuration of a console whose files live in `dir`.
pub fn config(dir: &Path, pki: &TestPki) -> ConsoleConfig {
    std::fs::create_dir_all(dir).unwrap();
    let viewer = dir.join("viewer-tokens");
    let ingest = dir.join("ingest-tokens");
    std::fs::write(&viewer, format!("{VIEWER}\n")).unwrap();
    std::fs::write(&ingest, format!("{INGEST}\n")).unwrap();
    ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(ServerTls {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
        }),
        store: serde_json::from_value::<StoreConfig>(json!({"path": dir.join("store/events.db")}))
            .unwrap(),
        auth: AuthConfig {
            viewer_token_files: vec![viewer],
            ingest_token_files: vec![ingest],
            token_review: Default::default(),
        },
        ingest: IngestConfig::default(),
        peers: PeersConfig::default(),
        notifications: None,
        retention_interval_secs: 300,
        page_rows: 50,
    }
}

impl Console {
    pub async fn start(
        dir: &Path,
        pki: Arc<TestPki>,
        customize: impl FnOnce(&mut ConsoleConfig),
    ) -> Console {
        Self::start_with(dir, pki, None, customize).await
    }

    /// A console that reaches the API server through `client` (the monitors page).
    pub async fn start_with(
        dir: &Path,
        pki: Arc<TestPki>,
        client: Option<kube::Client>,
        customize: impl FnOnce(&mut ConsoleConfig),
    ) -> Console {
        let mut cfg = config(dir, &pki);
        customize(&mut cfg);
        let leader = Arc::new(AtomicBool::new(true));
        let l = leader.clone();
        let metrics = Arc::new(ConsoleMetrics::default());
        let server = ConsoleServer::bind(
            cfg,
            Arc::new(move || l.load(Ordering::Relaxed)),
            client,
            metrics.clone(),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Console {
            addr,
            dir: dir.to_path_buf(),
            pki,
            metrics,
            leader,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub fn client(&self) -> reqwest::Client {
        let tls = TlsSettings {
            ca_file: Some(self.pki.ca_cert.clone()),
            ..TlsSettings::default()
        }
        .client_config(DefaultTrust::SystemRoots)
        .unwrap();
        reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = self.client().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let code = res.status().as_u16();
        (code, res.text().await.unwrap())
    }

    /// The vigil output an agent would run, sending here.
    pub fn output(&self, state: &Path) -> OutputConfig {
        let token = state.join("agent-token");
        std::fs::create_dir_all(state).unwrap();
        std::fs::write(&token, format!("{INGEST}\n")).unwrap();
        OutputConfig::Vigil(VigilOutputConfig {
            name: None,
            url: format!("https://localhost:{}", self.addr.port()),
            token_file: token,
            tls: TlsSettings {
                ca_file: Some(self.pki.ca_cert.clone()),
                ..TlsSettings::default()
            },
            timeout_ms: 10_000,
            max_batch_events: 500,
            max_body_bytes: 4 << 20,
            spool: Default::default(),
        })
    }

    /// The store, opened beside the running console (SQLite allows readers alongside).
    pub fn store(&self) -> Store {
        let cfg: StoreConfig =
            serde_json::from_value(json!({"path": self.dir.join("store/events.db")})).unwrap();
        Store::open(&cfg).unwrap()
    }

    pub async fn wait_events(&self, want: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let have = self.store().stats().unwrap().events;
            if have >= want || Instant::now() > deadline {
                return have;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
        }
    }
}

/// A runtime event as the Docker source makes them (the fields the console shows).
pub fn runtime_event(
    i: usize,
    action: &str,
    container: &str,
    ns: &str,
    node: &str,
    time: &str,
) -> Event {
    serde_json::from_value(json!({
        "schema": "vigil.event/v1",
        "id": format!("rt-{i:08x}-{action}-{container}"),
        "time": time,
        "ingest_time": time,
        "node": node,
        "source": "docker",
        "kind": "runtime",
        "action": action,
        "outcome": "success",
        "container": {
            "id": format!("{container:0>64}"),
            "name": container,
            "image": format!("registry.example.com/app:1.{}", i % 7),
            "runtime": "docker",
            "pod": {"namespace": ns, "name": format!("{container}-pod")}
        }
    }))
    .unwrap()
}

/// Sends `events` through the vigil output, as an agent's router does, and waits for them
/// to be durable in its spool.
pub async fn send_as_agent(output: &OutputConfig, state: &Path, events: Vec<Event>) -> Router {
    let outputs = vigil_core::outputs::build_all(
        std::slice::from_ref(output),
        &BuildContext {
            state_dir: state.to_path_buf(),
            node: "node-1".into(),
        },
    )
    .unwrap();
    let router = Router::start(outputs, RouterConfig::default());
    router
        .send(Batch::new(events, Ack::detached()))
        .await
        .unwrap();
    router
}

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/audit/eventlist.json"
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_agents_and_the_webhook_are_stored_once_and_shown_to_viewers() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console = Console::start(&dir.path().join("console"), pki.clone(), |_| {}).await;

    // An agent's runtime events, through the agents' own output code.
    let events: Vec<Event> = (0..40)
        .map(|i| {
            runtime_event(
                i,
                "start",
                &format!("web-{i}"),
                "team-a",
                "node-1",
                "2026-11-23T10:00:00Z",
            )
        })
        .collect();
    let output = console.output(&dir.path().join("agent"));
    let router = send_as_agent(&output, &dir.path().join("agent"), events.clone()).await;
    assert_eq!(console.wait_events(40).await, 40);
    // The same events again (an agent replaying its spool after a crash): nothing new.
    router
        .send(Batch::new(events, Ack::detached()))
        .await
        .unwrap();
    router.shutdown(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(console.store().stats().unwrap().events, 40);

    // kube-apiserver's audit webhook → the collector → its vigil output → the console.
    let token_file = dir.path().join("wh-token");
    std::fs::write(&token_file, "apiserver-token\n").unwrap();
    let mut wh = WebhookConfig::new(
        pki.server_cert.clone(),
        pki.server_key.clone(),
        dir.path().join("wh-state"),
        vec![console.output(&dir.path().join("wh-secrets"))],
    );
    wh.listen = "127.0.0.1:0".parse().unwrap();
    wh.token_files = vec![token_file];
    let server = WebhookServer::bind(wh, WebhookMetrics::new())
        .await
        .unwrap();
    let wh_addr = server.local_addr().unwrap();
    let (wh_stop, wh_stopped) = oneshot::channel::<()>();
    let wh_task = tokio::spawn(server.run(async move {
        let _ = wh_stopped.await;
    }));
    let res = console
        .client()
        .post(format!("https://localhost:{}{AUDIT_PATH}", wh_addr.port()))
        .bearer_auth("apiserver-token")
        .body(fixture())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let items = serde_json::from_slice::<Value>(&fixture()).unwrap()["items"]
        .as_array()
        .unwrap()
        .len() as u64;
    assert_eq!(console.wait_events(40 + items).await, 40 + items);
    let _ = wh_stop.send(());
    wh_task.await.unwrap();

    let store = console.store();
    let detections = store
        .query(
            &Filter {
                only_detections: true,
                ..Filter::default()
            },
            100,
            None,
        )
        .unwrap();
    assert!(
        !detections.rows.is_empty(),
        "the fixture's audit events fire built-in rules"
    );

    // A viewer sees them; the page names the fixture's first detection.
    let (code, page) = console.get("/detections", Some(VIEWER)).await;
    assert_eq!(code, 200, "{page}");
    let rule = &detections.rows[0].rules[0];
    assert!(page.contains(rule.as_str()), "{rule} not on the page");
    let (code, page) = console.get("/containers", Some(VIEWER)).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("web-39") && page.contains("registry.example.com/app:1.4"),
        "{page}"
    );
    let id = &detections.rows[0].id;
    let (code, page) = console.get(&format!("/events/{id}"), Some(VIEWER)).await;
    assert_eq!(code, 200);
    assert!(page.contains("The event as received") && page.contains(id.as_str()));

    let metrics = {
        let mut out = String::new();
        console.metrics.render(&mut out);
        out
    };
    assert!(
        metrics.contains(&format!("vigil_console_events_stored_total {}", 40 + items)),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_console_events_duplicate_total 40"),
        "{metrics}"
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_right_tokens_get_in_and_bad_bodies_lose_nothing_good() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console = Console::start(&dir.path().join("console"), pki, |c| {
        c.ingest.max_body_bytes = 64 * 1024;
    })
    .await;
    let client = console.client();
    let post = |token: Option<&'static str>, body: Vec<u8>, gzip: bool| {
        let mut req = client.post(console.url("/api/v1/ingest")).body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if gzip {
            req = req.header("content-encoding", "gzip");
        }
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let line = |i: usize| {
        let mut s = serde_json::to_string(&runtime_event(
            i,
            "start",
            "c",
            "ns",
            "n",
            "2026-11-23T10:00:00Z",
        ))
        .unwrap();
        s.push('\n');
        s
    };

    // Pages: to the login page without a token, refused with a token of another role.
    let (code, _) = console.get("/events", None).await;
    assert_eq!(code, 303);
    let (code, _) = console.get("/events", Some(INGEST)).await;
    assert_eq!(code, 403);
    let (code, _) = console.get("/events", Some("made-up")).await;
    assert_eq!(code, 403);
    // Ingest: a token of the ingest role only.
    assert_eq!(post(None, line(1).into_bytes(), false).await, 401);
    assert_eq!(post(Some(VIEWER), line(1).into_bytes(), false).await, 403);
    // The pages are read-only: no other method is routed.
    let res = client
        .delete(console.url("/events"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);

    // Good lines are kept, bad ones counted; a body of only bad lines is a 400.
    let mixed = format!("{}not json\n{{\"id\":1}}\n{}", line(1), line(2));
    assert_eq!(post(Some(INGEST), mixed.into_bytes(), false).await, 200);
    assert_eq!(post(Some(INGEST), b"garbage\n".to_vec(), false).await, 400);
    assert_eq!(
        post(Some(INGEST), b"\x1f\x8b\x08junk".to_vec(), true).await,
        400
    );
    // Over the cap, plain or inflated from a small gzip body: 413, which the output splits.
    assert_eq!(post(Some(INGEST), vec![b' '; 65 * 1024], false).await, 413);
    let bomb = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'\n'; 10 << 20]).unwrap();
        enc.finish().unwrap()
    };
    assert!(bomb.len() < 64 * 1024);
    assert_eq!(post(Some(INGEST), bomb, true).await, 413);
    assert_eq!(console.store().stats().unwrap().events, 2);
    let mut text = String::new();
    console.metrics.render(&mut text);
    assert!(
        text.contains("vigil_console_lines_malformed_total 3"),
        "{text}"
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_survives_a_restart_and_two_replicas_end_up_with_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let a_dir = dir.path().join("a");
    let b_dir = dir.path().join("b");
    let a = Console::start(&a_dir, pki.clone(), |_| {}).await;
    let events: Vec<Event> = (0..300)
        .map(|i| {
            runtime_event(
                i,
                "start",
                &format!("a-{i}"),
                "team-a",
                "node-1",
                "2026-11-23T10:00:00Z",
            )
        })
        .collect();
    let router = send_as_agent(
        &a.output(&dir.path().join("agent-a")),
        &dir.path().join("agent-a"),
        events,
    )
    .await;
    router.shutdown(Duration::from_secs(10)).await;
    assert_eq!(a.wait_events(300).await, 300);

    // Restart on the same directory: everything is still there.
    a.stop().await;
    let a = Console::start(&a_dir, pki.clone(), |_| {}).await;
    assert_eq!(a.store().stats().unwrap().events, 300);
    let (code, page) = a.get("/events", Some(VIEWER)).await;
    assert_eq!(code, 200);
    assert!(
        page.contains("a-299"),
        "the newest event is on the first page"
    );

    // B copies from A, A from B; each event exists once on each, and copies do not echo.
    let token = dir.path().join("peer-token");
    std::fs::write(&token, format!("{INGEST}\n")).unwrap();
    let peers = |port: u16| PeersConfig {
        urls: vec![format!("https://localhost:{port}")],
        token_file: token.clone(),
        tls: TlsSettings {
            ca_file: Some(pki.ca_cert.clone()),
            ..TlsSettings::default()
        },
        interval_secs: 1,
        ..PeersConfig::default()
    };
    let a_port = a.addr.port();
    let b = Console::start(&b_dir, pki.clone(), |c| c.peers = peers(a_port)).await;
    assert_eq!(b.wait_events(300).await, 300, "B caught up with A");
    let more: Vec<Event> = (0..50)
        .map(|i| {
            runtime_event(
                i,
                "start",
                &format!("b-{i}"),
                "team-b",
                "node-2",
                "2026-11-23T11:00:00Z",
            )
        })
        .collect();
    let router = send_as_agent(
        &b.output(&dir.path().join("agent-b")),
        &dir.path().join("agent-b"),
        more,
    )
    .await;
    router.shutdown(Duration::from_secs(10)).await;
    assert_eq!(b.wait_events(350).await, 350);
    // A is not configured with B as a peer yet: it has only its own.
    assert_eq!(a.store().stats().unwrap().events, 300);
    a.stop().await;
    let b_port = b.addr.port();
    let a = Console::start(&a_dir, pki.clone(), |c| c.peers = peers(b_port)).await;
    assert_eq!(a.wait_events(350).await, 350, "A copied B's own events");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.store().stats().unwrap().events, 350);
    assert_eq!(b.store().stats().unwrap().events, 350);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_event_fields_are_shown_as_text_never_as_markup() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console = Console::start(&dir.path().join("console"), pki, |_| {}).await;
    let mut e = serde_json::to_value(runtime_event(
        1,
        "start",
        "x",
        "team-a",
        "node-1",
        "2026-11-23T10:00:00Z",
    ))
    .unwrap();
    e["id"] = json!("../login?x=<u>");
    e["actor"] = json!({"user": "<script>alert(1)</script>"});
    e["container"]["name"] = json!("\"><img src=x onerror=alert(2)>");
    e["detections"] =
        json!([{"rule": "<i>r</i>", "title": "</td><script>", "level": 12, "severity": "high"}]);
    let event: Event = serde_json::from_value(e).unwrap();
    let state = dir.path().join("agent");
    let router = send_as_agent(&console.output(&state), &state, vec![event]).await;
    router.shutdown(Duration::from_secs(10)).await;
    assert_eq!(console.wait_events(1).await, 1);
    for path in [
        "/events",
        "/detections",
        "/containers",
        "/events/..%2Flogin%3Fx%3D%3Cu%3E",
    ] {
        let (code, page) = console.get(path, Some(VIEWER)).await;
        assert_eq!(code, 200, "{path}: {page}");
        for raw in ["<script>", "<img", "<i>r</i>", "<u>"] {
            assert!(!page.contains(raw), "{path} carries {raw} as markup");
        }
    }
    let (_, page) = console.get("/events", Some(VIEWER)).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            || page.contains("&lt;i&gt;r&lt;/i&gt;"),
        "{page}"
    );
    assert!(
        page.contains("href=\"/events/%2E%2E%2Flogin%3Fx%3D%3Cu%3E\""),
        "the link keeps the id in its segment"
    );
    console.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_its_own_and_keeps_detections_longer() {
    use time::format_description::well_known::Rfc3339;
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console = Console::start(&dir.path().join("console"), pki, |c| {
        c.retention_interval_secs = 1;
        c.store.event_retention_secs = 3600;
        c.store.detection_retention_secs = 7 * 86400;
    })
    .await;
    let now = time::OffsetDateTime::now_utc();
    let at = |ago: time::Duration| (now - ago).format(&Rfc3339).unwrap();
    let old = at(time::Duration::days(2));
    let ancient = at(time::Duration::days(30));
    let fresh = at(time::Duration::minutes(5));
    let with_detection = |mut e: Event| {
        let mut v = serde_json::to_value(&e).unwrap();
        v["detections"] = json!([{"rule": "container.privileged", "title": "t", "level": 12, "severity": "high"}]);
        e = serde_json::from_value(v).unwrap();
        e
    };
    let events = vec![
        runtime_event(1, "start", "old-plain", "ns", "n", &old),
        with_detection(runtime_event(2, "start", "old-detection", "ns", "n", &old)),
        with_detection(runtime_event(
            3,
            "start",
            "ancient-detection",
            "ns",
            "n",
            &ancient,
        )),
        runtime_event(4, "start", "fresh-plain", "ns", "n", &fresh),
    ];
    let state = dir.path().join("agent");
    let router = send_as_agent(&console.output(&state), &state, events).await;
    router.shutdown(Duration::from_secs(10)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left = Vec::new();
    while Instant::now() < deadline {
        let page = console.store().query(&Filter::default(), 10, None).unwrap();
        left = page
            .rows
            .iter()
            .map(|r| r.container.clone().unwrap_or_default())
            .collect();
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, ["fresh-plain", "old-detection"], "newest first");
    let mut text = String::new();
    console.metrics.render(&mut text);
    assert!(
        text.contains("vigil_console_retention_removed_events_total 1"),
        "{text}"
    );
    assert!(
        text.contains("vigil_console_retention_removed_detections_total 1"),
        "{text}"
    );
    console.stop().await;
}

/// `vigil-operator console-cert` prints a Secret whose certificate the console serves and
/// whose CA a client (an agent, a browser behind port-forward) verifies it with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_cert_command_makes_a_secret_the_console_serves_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil-operator"))
        .args(["console-cert", "--namespace", "monitoring", "--days", "3"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secret: Value = yaml_serde::from_slice(&out.stdout).unwrap();
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(secret["metadata"]["namespace"], "monitoring");
    let data = &secret["stringData"];
    for (key, file) in [
        ("tls.crt", "tls.crt"),
        ("tls.key", "tls.key"),
        ("ca.crt", "ca.crt"),
    ] {
        std::fs::write(dir.path().join(file), data[key].as_str().unwrap()).unwrap();
    }
    // The test PKI only for the console's tokens; the certificate is the Secret's.
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let console = Console::start(&dir.path().join("console"), pki, |c| {
        c.tls = Some(ServerTls {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
        });
    })
    .await;
    let tls = TlsSettings {
        ca_file: Some(dir.path().join("ca.crt")),
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap();
    let res = client
        .get(format!("https://localhost:{}/login", console.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The test CA did not sign it: a client trusting only that one refuses the console.
    let refused = console.client().get(console.url("/login")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    console.stop().await;
}

/// Bulky events make smaller sync answers, not larger bodies: a peer copies 40 MiB of
/// events in answers of at most 16 MiB each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulky_events_are_copied_in_answers_of_bounded_size() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let a_dir = dir.path().join("a");
    {
        let cfg: StoreConfig =
            serde_json::from_value(json!({"path": a_dir.join("store/events.db")})).unwrap();
        let store = Store::open(&cfg).unwrap();
        let bulky: Vec<Event> = (0..40)
            .map(|i| {
                let mut v = serde_json::to_value(runtime_event(
                    i,
                    "start",
                    &format!("big-{i}"),
                    "ns",
                    "n",
                    "2026-11-23T10:00:00Z",
                ))
                .unwrap();
                v["kind"] = json!("log");
                v["log"] = json!({"message": "x".repeat(1 << 20)});
                serde_json::from_value(v).unwrap()
            })
            .collect();
        store.insert(&bulky, vigil_store::Origin::Local).unwrap();
    }
    let a = Console::start(&a_dir, pki.clone(), |_| {}).await;
    // One answer, read as a peer reads it: cut by size, and saying more events wait.
    let res = a
        .client()
        .get(a.url("/api/v1/sync?after=0"))
        .bearer_auth(INGEST)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-vigil-more"], "true");
    let body = res.bytes().await.unwrap();
    let lines = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert!(
        body.len() < 18 << 20 && (15..40).contains(&lines),
        "{} bytes, {lines} events",
        body.len()
    );

    let token = dir.path().join("peer-token");
    std::fs::write(&token, format!("{INGEST}\n")).unwrap();
    let a_port = a.addr.port();
    let b = Console::start(&dir.path().join("b"), pki.clone(), |c| {
        c.peers = PeersConfig {
            urls: vec![format!("https://localhost:{a_port}")],
            token_file: token.clone(),
            tls: TlsSettings {
                ca_file: Some(pki.ca_cert.clone()),
                ..TlsSettings::default()
            },
            interval_secs: 1,
            ..PeersConfig::default()
        }
    })
    .await;
    assert_eq!(b.wait_events(40).await, 40, "every bulky event copied");
    a.stop().await;
    b.stop().await;
}
