//! The audit webhook collector over real TLS, as kube-apiserver's webhook backend uses it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vigil_core::outputs::tls::{DefaultTrust, TlsSettings};
use vigil_core::outputs::{FileOutputConfig, FsyncPolicy, OutputConfig};
use vigil_operator::webhook::{AUDIT_PATH, WebhookConfig, WebhookMetrics, WebhookServer};
use vigil_testkit::certs::TestPki;

const TOKEN: &str = "s3cret-token-for-the-apiserver";

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/fixtures/audit/eventlist.json"
    ))
    .unwrap()
}

struct Collector {
    addr: SocketAddr,
    metrics: Arc<WebhookMetrics>,
    events_file: PathBuf,
    pki: TestPki,
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Collector {
    async fn start(customize: impl FnOnce(&mut WebhookConfig, &Path)) -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::create(&dir.path().join("pki"));
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let events_file = dir.path().join("out/events.jsonl");
        let mut config = WebhookConfig::new(
            pki.server_cert.clone(),
            pki.server_key.clone(),
            dir.path().join("state"),
            vec![OutputConfig::File(FileOutputConfig {
                path: events_file.clone(),
                fsync: FsyncPolicy::Never,
            })],
        );
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.client_ca_file = Some(pki.ca_cert.clone());
        config.token_files = vec![token_file];
        customize(&mut config, dir.path());
        Self::run(config, dir, pki, events_file).await
    }

    async fn run(
        config: WebhookConfig,
        dir: tempfile::TempDir,
        pki: TestPki,
        events_file: PathBuf,
    ) -> Collector {
        let metrics = WebhookMetrics::new();
        let server = WebhookServer::bind(config, metrics.clone()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Collector {
            addr,
            metrics,
            events_file,
            pki,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}{AUDIT_PATH}", self.addr.port())
    }

    /// A client that trusts the test CA, with the test client certificate or without one.
    fn client(&self, with_cert: bool) -> reqwest::Client {
        let (cert, key) = if with_cert {
            (
                Some(self.pki.client_cert.clone()),
                Some(self.pki.client_key.clone()),
            )
        } else {
            (None, None)
        };
        client_with(self.pki.ca_cert.clone(), cert, key)
    }

    fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.events_file) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn stop(mut self) -> (tempfile::TempDir, TestPki) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap();
        }
        let Collector { dir, pki, .. } = self;
        (dir, pki)
    }
}

fn client_with(ca: PathBuf, cert: Option<PathBuf>, key: Option<PathBuf>) -> reqwest::Client {
    let tls = TlsSettings {
        ca_file: Some(ca),
        cert_file: cert,
        key_file: key,
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap()
}

/// A client certificate for `kube-apiserver` signed by a CA the collector does not trust.
fn rogue_identity(dir: &Path) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "rogue CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["kube-apiserver".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let cert_path = dir.join("rogue.pem");
    let key_path = dir.join("rogue-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn rules_of(event: &Value) -> Vec<String> {
    event["detections"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["rule"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// An `EventList` of `n` distinct audit events (about 1 KiB each), a mix of reads, writes,
/// secret reads and execs into a shell.
fn event_list(batch: usize, n: usize) -> String {
    let items: Vec<Value> = (0..n)
        .map(|i| {
            let (verb, resource, sub, uri) = match i % 4 {
                0 => ("get", "pods", None, "/api/v1/namespaces/shop/pods/web-0"),
                1 => ("list", "secrets", None, "/api/v1/namespaces/shop/secrets"),
                2 => (
                    "create",
                    "pods",
                    Some("exec"),
                    "/api/v1/namespaces/shop/pods/web-0/exec?command=sh&container=web&stdin=true&tty=true",
                ),
                _ => ("update", "configmaps", None, "/api/v1/namespaces/shop/configmaps/settings"),
            };
            let mut object = json!({"resource": resource, "namespace": "shop", "name": "web-0", "apiVersion": "v1"});
            if let Some(sub) = sub {
                object["subresource"] = json!(sub);
            }
            json!({
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "Metadata",
                "auditID": format!("00000000-0000-4000-8000-{batch:06}{i:06}"),
                "stage": "ResponseComplete",
                "requestURI": uri,
                "verb": verb,
                "user": {"username": "alice@example.com", "groups": ["developers", "system:authenticated"]},
                "sourceIPs": ["10.0.3.41"],
                "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
                "objectRef": object,
                "responseStatus": {"metadata": {}, "code": 200},
                "requestReceivedTimestamp": "2024-05-02T10:16:00.204117Z",
                "stageTimestamp": "2024-05-02T10:16:00.223017Z",
                "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding \"developers\" of ClusterRole \"edit\" to Group \"developers\""}
            })
        })
        .collect();
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_event_list_over_mutual_tls_reaches_the_output_with_detections() {
    let c = Collector::start(|_, _| {}).await;
    let client = c.client(true);
    let res = client.post(c.url()).body(fixture()).send().await.unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // The answer came after the events were written: they are there now.
    let events = c.events();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e["schema"], "vigil.event/v1");
        assert_eq!(e["source"], "k8s_audit");
        assert_eq!(e["raw"]["kind"], "Event");
    }
    let secret_read = events
        .iter()
        .find(|e| e["object"]["resource"] == "secrets")
        .unwrap();
    assert!(
        rules_of(secret_read).contains(&"secret.access".to_owned()),
        "{:?}",
        rules_of(secret_read)
    );
    let binding = events
        .iter()
        .find(|e| e["object"]["resource"] == "rolebindings")
        .unwrap();
    assert!(
        rules_of(binding).contains(&"rbac.binding-changed".to_owned()),
        "{:?}",
        rules_of(binding)
    );

    // kube-apiserver sends a batch again when it did not get a 2xx: same events, same ids.
    let res = client.post(c.url()).body(fixture()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let events = c.events();
    assert_eq!(events.len(), 6);
    for i in 0..3 {
        assert_eq!(events[i]["id"], events[i + 3]["id"]);
    }

    let text = c.metrics.render();
    assert!(
        text.contains("vigil_webhook_requests_total{code=\"200\"} 2"),
        "{text}"
    );
    assert!(text.contains("vigil_webhook_events_accepted_total 6"));
    assert!(text.contains("vigil_webhook_detections_total{rule=\"secret.access\"}"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused() {
    let c = Collector::start(|_, _| {}).await;
    let (cert, key) = rogue_identity(c.dir.path());
    let client = client_with(c.pki.ca_cert.clone(), Some(cert), Some(key));
    let res = client.post(c.url()).body(fixture()).send().await;
    assert!(res.is_err(), "the handshake must fail: {res:?}");
    assert!(c.events().is_empty());
    // The client may see the refusal before the server's task has counted it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c
        .metrics
        .render()
        .contains("vigil_webhook_tls_handshake_failures_total 1")
    {
        assert!(
            Instant::now() < deadline,
            "the failed handshake was not counted: {}",
            c.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_401_and_the_right_one_is_accepted() {
    let c = Collector::start(|_, _| {}).await;
    let client = c.client(false);

    let res = client.post(c.url()).body(fixture()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");

    let res = client
        .post(c.url())
        .bearer_auth("not-the-token")
        .body(fixture())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(c.events().is_empty());

    let res = client
        .post(c.url())
        .bearer_auth(TOKEN)
        .body(fixture())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.events().len(), 3);
    assert_eq!(c.metrics.requests(401), 2);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_takes_effect_without_a_restart() {
    let c = Collector::start(|cfg, _| cfg.token_reload_secs = 1).await;
    let client = c.client(false);
    let token_file = c.dir.path().join("token");
    let staged = c.dir.path().join("token.next");
    std::fs::write(&staged, "the-next-token\n").unwrap();
    std::fs::rename(&staged, &token_file).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = client
            .post(c.url())
            .bearer_auth("the-next-token")
            .body(fixture())
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new token was never accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let res = client
        .post(c.url())
        .bearer_auth(TOKEN)
        .body(fixture())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the replaced token no longer works");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_without_an_allowed_name_is_403() {
    let c = Collector::start(|cfg, _| cfg.client_names = vec!["kube-apiserver".into()]).await;
    let res = c
        .client(true)
        .post(c.url())
        .body(fixture())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(c.events().is_empty());
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413() {
    let c = Collector::start(|cfg, _| cfg.max_body_bytes = 64 * 1024).await;
    let body = event_list(0, 120);
    // Over the cap, and within the twice-the-cap the collector reads to the end so the
    // client sees the 413 rather than a broken pipe.
    assert!(
        body.len() > 64 * 1024 && body.len() <= 128 * 1024,
        "{}",
        body.len()
    );
    let res = c
        .client(true)
        .post(c.url())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert!(c.events().is_empty());
    assert!(
        c.metrics
            .render()
            .contains("vigil_webhook_bodies_refused_total{kind=\"too_large\"} 1")
    );

    // Under the cap, fine.
    let res = c
        .client(true)
        .post(c.url())
        .body(event_list(1, 10))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(c.events().len(), 10);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400_with_a_clear_message() {
    let c = Collector::start(|_, _| {}).await;
    let client = c.client(true);
    let res = client
        .post(c.url())
        .body(r#"{"kind":"EventList","items":[{"kind":"Event""#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let message = res.text().await.unwrap();
    assert!(
        message.contains("not a JSON audit EventList") && message.contains("line 1"),
        "{message}"
    );

    let res = client
        .post(c.url())
        .body(r#"{"kind":"PodList","apiVersion":"v1","items":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("expected `EventList`"));

    let text = c.metrics.render();
    assert!(
        text.contains("vigil_webhook_bodies_refused_total{kind=\"invalid_json\"} 1"),
        "{text}"
    );
    assert!(text.contains("vigil_webhook_bodies_refused_total{kind=\"not_event_list\"} 1"));
    assert!(c.events().is_empty());

    let res = client.get(c.url()).send().await.unwrap();
    assert_eq!(res.status(), 405);
    c.stop().await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_answered_and_nothing_is_lost() {
    const REQUESTS: usize = 200;
    const EVENTS: usize = 100;
    let c = Collector::start(|_, _| {}).await;
    let client = c.client(true);
    let bodies: Vec<String> = (0..REQUESTS).map(|b| event_list(b, EVENTS)).collect();
    let body_bytes: usize = bodies.iter().map(String::len).sum();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for body in bodies {
        let client = client.clone();
        let url = c.url();
        tasks.push(tokio::spawn(async move {
            // As kube-apiserver does: a 503 is sent again after its Retry-After.
            let t = Instant::now();
            let mut retries = 0;
            loop {
                let res = client.post(&url).body(body.clone()).send().await.unwrap();
                if res.status() != 503 || retries == 20 {
                    return (res.status().as_u16(), t.elapsed(), retries);
                }
                retries += 1;
                let wait = res.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut retried = 0;
    for t in tasks {
        let (status, took, retries) = t.await.unwrap();
        assert_eq!(status, 200);
        latencies.push(took);
        retried += retries;
    }
    let wall = started.elapsed();
    latencies.sort();
    let events = c.events();
    eprintln!(
        "flood: {REQUESTS} concurrent requests x {EVENTS} events ({:.1} MiB) in {wall:?}: \
         {:.0} events/s; answer latency p50 {:?}, p99 {:?}, max {:?}; {retried} answered 503 \
         and sent again",
        body_bytes as f64 / 1048576.0,
        (REQUESTS * EVENTS) as f64 / wall.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
    );

    // A batch answered 503 may have been written before its retry: duplicates, never a loss,
    // and the duplicates carry the same ids.
    let mut unique = HashSet::new();
    let shells = events
        .iter()
        .filter(|e| unique.insert(e["id"].as_str().unwrap().to_owned()))
        .filter(|e| rules_of(e).contains(&"container.shell".to_owned()))
        .count();
    assert_eq!(
        unique.len(),
        REQUESTS * EVENTS,
        "every event is in the output"
    );
    if retried == 0 {
        assert_eq!(events.len(), REQUESTS * EVENTS, "and each once");
    }
    assert_eq!(shells, REQUESTS * EVENTS / 4);
    assert!(c.metrics.events_accepted() >= (REQUESTS * EVENTS) as u64);

    // At the pace kube-apiserver sends (one batch after another on a kept-alive
    // connection), the answer latency is the time to parse, detect and write one batch.
    let mut latencies = Vec::new();
    for b in 0..100 {
        let body = event_list(REQUESTS + b, EVENTS);
        let t = Instant::now();
        let res = client.post(c.url()).body(body).send().await.unwrap();
        assert_eq!(res.status(), 200);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    eprintln!(
        "one batch of {EVENTS} events at a time: answer latency p50 {:?}, p99 {:?}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
    );
    let ids: HashSet<String> = c
        .events()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), (REQUESTS + 100) * EVENTS);
    c.stop().await;
}

/// An NDJSON receiver standing in for a manager's HTTP intake.
async fn ndjson_receiver() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    let app = axum::Router::new().route(
        "/intake",
        post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let mut store = store.lock().unwrap();
                for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    store.push(serde_json::from_slice::<Value>(line).unwrap());
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spooled_for_an_unreachable_manager_survive_a_restart() {
    // Nothing listens on this port while the collector first runs.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let http = |addr: SocketAddr| -> OutputConfig {
        serde_json::from_value(json!({
            "type": "http",
            "name": "manager",
            "url": format!("http://{addr}/intake"),
            "timeout_ms": 1000,
        }))
        .unwrap()
    };
    let c = Collector::start(|cfg, _| cfg.outputs = vec![http(dead_addr)]).await;
    let res = c
        .client(true)
        .post(c.url())
        .body(event_list(7, 50))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "acknowledged once spooled, with the manager down"
    );
    let state_dir = c.dir.path().join("state");
    let (dir, pki) = c.stop().await;

    // The same state directory, the manager back at another address.
    let (addr, received) = ndjson_receiver().await;
    let mut config = WebhookConfig::new(
        pki.server_cert.clone(),
        pki.server_key.clone(),
        state_dir,
        vec![http(addr)],
    );
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.client_ca_file = Some(pki.ca_cert.clone());
    let events_file = dir.path().join("unused");
    let c = Collector::run(config, dir, pki, events_file).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while received.lock().unwrap().len() < 50 {
        assert!(
            Instant::now() < deadline,
            "only {} of 50 spooled events delivered after the restart",
            received.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = received.lock().unwrap().clone();
    let ids: HashSet<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 50);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_tuning_from_the_mounted_configmap_applies_live() {
    let c = Collector::start(|config, dir| {
        let tuning = dir.join("agent-config");
        std::fs::create_dir_all(&tuning).unwrap();
        config.tuning_dir = Some(tuning);
    })
    .await;
    let client = c.client(true);
    let post = |batch: usize| {
        let (client, url) = (client.clone(), c.url());
        async move {
            let res = client
                .post(url)
                .body(event_list(batch, 4))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        }
    };
    let of = |events: &[Value], batch: usize, resource: &str| -> Value {
        events
            .iter()
            .find(|e| {
                e["raw"]["auditID"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("-8000-{batch:06}"))
                    && e["object"]["resource"] == resource
                    && (resource != "pods" || e["object"]["subresource"] == "exec")
            })
            .unwrap()
            .clone()
    };

    post(1).await;
    let untuned_exec = rules_of(&of(&c.events(), 1, "pods"));
    let untuned_secret = of(&c.events(), 1, "secrets");
    assert!(!untuned_exec.is_empty(), "an exec into a shell fires rules");
    let secret_rule = rules_of(&untuned_secret)[0].clone();

    // The operator publishes the namespace's tuning: the exec rules off, a level changed.
    let disabled: Vec<String> = untuned_exec.iter().map(|r| format!("\"{r}\"")).collect();
    std::fs::write(
        c.dir.path().join("agent-config/shop.yaml"),
        format!(
            "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: shop\nmonitors: []\ndetections:\n  disabled: [{}]\n  levels: {{\"{secret_rule}\": 1}}\n",
            disabled.join(", ")
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c
        .metrics
        .render()
        .contains("vigil_webhook_tuning_reloads_total 2")
    {
        assert!(Instant::now() < deadline, "{}", c.metrics.render());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(2).await;
    let events = c.events();
    let exec = of(&events, 2, "pods");
    assert!(rules_of(&exec).is_empty(), "{untuned_exec:?} {exec:#}");
    let secret = of(&events, 2, "secrets");
    let tuned = secret["detections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["rule"] == secret_rule.as_str())
        .unwrap();
    assert_eq!(tuned["level"], 1);
    c.stop().await;
}
