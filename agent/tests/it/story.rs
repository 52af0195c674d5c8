//! The end-to-end story, with the real parts on one machine: the private dockerd and
//! containerd, an audit log written as kube-apiserver writes one (a recorded-style attack
//! among steady noise), pod logs, the `vigil-agent` binary with all those sources, the
//! operator's audit webhook collector, and two managers: the Wazuh stand-in and a real
//! rsyslog.
//!
//! The attack: a service account binds itself to cluster-admin, lists every secret, creates
//! a mutating admission webhook; a privileged container with the node's `/` mounted is
//! started (Docker and containerd) and a shell is exec'd in it; a web shell injection shows
//! in a pod's log; a second cluster-admin binding comes through the webhook. The managers
//! must receive exactly the expected alerts.
//!
//! Then the faults, while the noise goes on: the agent is killed with SIGKILL twice, the
//! audit log is rotated, dockerd is restarted, both managers are away for a minute (the
//! Wazuh output's spool holds everything; the syslog output's 1 MiB spool fills and drops
//! the newest, as configured). Afterwards every audit event is accounted for: at the Wazuh
//! stand-in every one arrived; at rsyslog every one arrived or was counted as dropped by the
//! spool's policy. The duplicates are reported.
//!
//! It restarts the shared dockerd, so it does not run with the other tests:
//! `tests/run.sh` runs it alone (`cargo test -p vigil-agent --test it story -- --ignored`).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_core::outputs::OutputConfig;
use vigil_core::outputs::tls::{DefaultTrust, TlsSettings};
use vigil_operator::webhook::{AUDIT_PATH, WebhookConfig, WebhookMetrics, WebhookServer};
use vigil_testkit::certs::TestPki;
use vigil_testkit::docker::DockerEngine;
use vigil_testkit::process::AgentProcess;
use vigil_testkit::rsyslog::{Listen, Rsyslog};
use vigil_testkit::wazuh::{Mode, PeerConfig, WazuhPeer};

use vigil_testkit::containerd::Containerd;

const APP: &str = "vigil-story";
const TOKEN: &str = "story-webhook-token";
/// Noise written to the audit log per second, all along.
const NOISE_PER_SEC: u64 = 200;
/// How long both managers are away.
const OUTAGE: Duration = Duration::from_secs(60);
/// Duplicates the documented windows allow: per SIGKILL, the batches in flight and one
/// checkpoint interval; per broken connection, one unconfirmed chunk or resend window.
const DUPLICATE_BOUND: usize = 4096;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The audit log writer: noise at a steady rate, with the story's lines injected, reopening
/// the path for every write so that a rotation (rename) is followed by a new file, as
/// kube-apiserver's log rotation does.
struct Writer {
    stop: Arc<AtomicBool>,
    inject: Arc<Mutex<Vec<String>>>,
    written: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn noise(n: u64) -> String {
    json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": format!("noise-{n:07}"), "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/pods/web-7d9fc5b6d-x2k8p", "verb": "get",
        "user": {"username": "dev-carol@example.com", "groups": ["dev", "system:authenticated"]},
        "sourceIPs": ["203.0.113.77"], "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505",
        "objectRef": {"resource": "pods", "namespace": "shop", "name": "web-7d9fc5b6d-x2k8p", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": "2024-07-16T09:40:00.000000Z",
        "stageTimestamp": "2024-07-16T09:40:00.004000Z"
    })
    .to_string()
}

impl Writer {
    fn start(log: PathBuf) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let inject: Arc<Mutex<Vec<String>>> = Arc::default();
        let written: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, i, w) = (stop.clone(), inject.clone(), written.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut n = 0u64;
            while !s.load(Ordering::Relaxed) {
                let due = started.elapsed().as_millis() as u64 * NOISE_PER_SEC / 1000;
                let mut lines: Vec<String> = std::mem::take(&mut *i.lock().unwrap());
                while n < due {
                    lines.push(noise(n));
                    n += 1;
                }
                if !lines.is_empty() {
                    let mut text = String::new();
                    let mut ids = Vec::new();
                    for l in &lines {
                        let v: Value = serde_json::from_str(l).unwrap();
                        ids.push(v["auditID"].as_str().unwrap().to_owned());
                        text.push_str(l);
                        text.push('\n');
                    }
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap();
                    f.write_all(text.as_bytes()).unwrap();
                    w.lock().unwrap().extend(ids);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Writer {
            stop,
            inject,
            written,
            thread: Some(thread),
        }
    }

    fn inject(&self, lines: impl IntoIterator<Item = String>) {
        self.inject.lock().unwrap().extend(lines);
    }

    /// Stops writing; returns every auditID written, in order.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.written.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The story's audit lines: the recorded attack of `examples/audit/attack-story.log`
/// (200 events, most of them ordinary traffic) and a mutating admission webhook created
/// by the same service account.
fn story_audit_lines() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("examples/audit/attack-story.log")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.push(
        json!({
            "apiVersion": "audit.k8s.io/v1", "kind": "Event", "level": "Request",
            "auditID": "story-webhook-0001", "stage": "ResponseComplete",
            "requestURI": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            "verb": "create",
            "user": {"username": "system:serviceaccount:shop:default",
                     "groups": ["system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"]},
            "sourceIPs": ["10.244.1.17"], "userAgent": "curl/8.5.0",
            "objectRef": {"resource": "mutatingwebhookconfigurations", "name": "pod-defaults",
                          "apiGroup": "admissionregistration.k8s.io", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": {"apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration", "metadata": {"name": "pod-defaults"},
                "webhooks": [{"name": "pod-defaults.example.com", "admissionReviewVersions": ["v1"],
                    "sideEffects": "None", "failurePolicy": "Ignore",
                    "clientConfig": {"url": "https://203.0.113.9:8443/mutate"},
                    "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                               "resources": ["pods"], "scope": "*"}]}]},
            "requestReceivedTimestamp": "2024-07-16T09:52:10.100000Z",
            "stageTimestamp": "2024-07-16T09:52:10.120000Z"
        })
        .to_string(),
    );
    lines
}

/// What came through the webhook: a second cluster-admin binding, by another user.
fn webhook_event_list() -> Value {
    json!({
        "kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {},
        "items": [{
            "level": "RequestResponse", "auditID": "story-wh-binding", "stage": "ResponseComplete",
            "requestURI": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            "verb": "create",
            "user": {"username": "mallory@example.com", "groups": ["system:authenticated"]},
            "sourceIPs": ["198.51.100.23"], "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505",
            "objectRef": {"resource": "clusterrolebindings", "name": "mallory-admin",
                          "apiGroup": "rbac.authorization.k8s.io", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "mallory-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "mallory@example.com", "apiGroup": "rbac.authorization.k8s.io"}]},
            "requestReceivedTimestamp": "2024-07-16T09:53:00.000000Z",
            "stageTimestamp": "2024-07-16T09:53:00.020000Z"
        }]
    })
}

/// An event at a manager: its id, its auditID if it is an audit event, its rules.
#[derive(Debug, Clone)]
struct Arrived {
    id: String,
    audit_id: Option<String>,
    source: String,
    /// The container's name and id, for runtime events.
    container: [String; 2],
    rules: Vec<String>,
}

fn arrived(event: &Value) -> Arrived {
    Arrived {
        id: event["id"].as_str().unwrap_or_default().to_owned(),
        audit_id: event["raw"]["auditID"].as_str().map(str::to_owned),
        source: event["source"].as_str().unwrap_or_default().to_owned(),
        container: ["name", "id"].map(|k| {
            event["container"][k]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }),
        rules: event["detections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["rule"].as_str().map(str::to_owned))
            .collect(),
    }
}

fn from_wazuh(peer: &WazuhPeer) -> Vec<Arrived> {
    peer.seen(|s| {
        s.events()
            .iter()
            .filter_map(|m| {
                // `1:<location>:<json>`; every location carries the event under `vigil`.
                let (_, json) = m.strip_prefix("1:")?.split_once(':')?;
                let v: Value = serde_json::from_str(json).ok()?;
                Some(arrived(&v["vigil"]))
            })
            .collect()
    })
}

fn from_rsyslog(r: &Rsyslog) -> Vec<Arrived> {
    r.lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(&l.msg).ok())
        .map(|v| arrived(&v))
        .collect()
}

/// (source, rule) → number of distinct events that fired it. Runtime events count only for
/// the story's own `containers` (names or ids): the engines are shared with other tests.
fn alerts(events: &[Arrived], containers: &[String]) -> BTreeMap<(String, String), usize> {
    let mut seen = HashSet::new();
    let mut out = BTreeMap::new();
    for e in events {
        let runtime = e.source == "docker" || e.source == "containerd";
        if runtime && !e.container.iter().any(|c| containers.contains(c)) {
            continue;
        }
        if e.rules.is_empty() || !seen.insert(e.id.clone()) {
            continue;
        }
        for r in &e.rules {
            *out.entry((e.source.clone(), r.clone())).or_default() += 1;
        }
    }
    out
}

fn metrics(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn engines(step: &str) {
    let status = Command::new(repo().join("tests/engines.sh"))
        .arg(step)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "tests/engines.sh {step} failed");
}

/// Waits for `cond`, checking every `every`; fails with `what` and the last `show`.
async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match cond() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < deadline, "{what}: {why}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Docker containers and containerd tasks the story started, removed at the end whatever
/// happened.
struct Cleanup {
    docker_host: String,
    containers: Vec<String>,
    containerd: Containerd,
    tasks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = vigil_testkit::docker::try_docker_at(&self.docker_host, &["rm", "-f", c]);
        }
        for t in &self.tasks {
            self.containerd.remove(t);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the shared dockerd: tests/run.sh runs it alone, with --ignored"]
async fn the_attack_story_with_faults_reaches_the_managers_with_every_event_accounted_for() {
    let docker = DockerEngine::find_alone();
    let containerd = Containerd::find();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tag = std::process::id();
    let mut cleanup = Cleanup {
        docker_host: docker.host.clone(),
        containers: Vec::new(),
        containerd: Containerd::find(),
        tasks: Vec::new(),
    };

    // The managers.
    let peer = WazuhPeer::start(&d.join("wazuh-pki"), PeerConfig::default()).await;
    let mut rsyslog = Rsyslog::start(d, Listen::Tcp, APP);

    // The operator's webhook collector, shipping to rsyslog.
    let pki = TestPki::create(&d.join("pki"));
    std::fs::write(d.join("token"), format!("{TOKEN}\n")).unwrap();
    let syslog_output: OutputConfig = yaml_serde::from_str(&format!(
        "type: syslog\nname: webhook-syslog\naddress: 127.0.0.1:{}\nprotocol: tcp\napp_name: {APP}\n",
        rsyslog.port
    ))
    .unwrap();
    let mut wh = WebhookConfig::new(
        pki.server_cert.clone(),
        pki.server_key.clone(),
        d.join("webhook-state"),
        vec![syslog_output],
    );
    wh.listen = "127.0.0.1:0".parse().unwrap();
    wh.token_files = vec![d.join("token")];
    let server = WebhookServer::bind(wh, WebhookMetrics::new())
        .await
        .unwrap();
    let webhook_port = server.local_addr().unwrap().port();
    let (stop_webhook, webhook_stopped) = tokio::sync::oneshot::channel::<()>();
    let webhook = tokio::spawn(server.run(async move {
        let _ = webhook_stopped.await;
    }));

    // The agent: every source, both managers.
    let log = d.join("audit/audit.log");
    let pods = d.join("pods");
    for sub in ["audit", "pods", "containers", "docker-logs"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    let metrics_port = free_port();
    let config = format!(
        "node: story-node\nstate_dir: {state}\nmetrics_listen: 127.0.0.1:{metrics_port}\n\
         sources:\n\
         \x20 audit_log:\n    path: {log}\n    start_at: beginning\n    poll_interval_ms: 50\n\
         \x20 docker:\n    endpoint: {docker_host}\n    interval: 2s\n\
         \x20 containerd:\n    address: {containerd_sock}\n\
         \x20 container_logs:\n    pods_dir: {pods}\n    containers_dir: {containers}\n    docker_dir: {docker_logs}\n    start_at: beginning\n\
         outputs:\n\
         \x20 - type: wazuh\n    manager: 127.0.0.1\n    port: {remoted}\n    agent_version: v4.7.0\n    max_eps: 2000\n    keepalive_secs: 1\n    reconnect_secs: 5\n    enrollment:\n      port: {authd}\n      tls: {{ ca_file: {ca}, server_name: localhost }}\n\
         \x20 - type: syslog\n    address: 127.0.0.1:{syslog}\n    protocol: tcp\n    app_name: {APP}\n    spool: {{ max_mib: 1, when_full: drop_newest }}\n\
         pipeline:\n  batch_events: 64\n  checkpoint_interval_ms: 100\n",
        state = d.join("state").display(),
        log = log.display(),
        docker_host = docker.host,
        containerd_sock = containerd.sock,
        pods = pods.display(),
        containers = d.join("containers").display(),
        docker_logs = d.join("docker-logs").display(),
        remoted = peer.remoted.port(),
        authd = peer.authd.port(),
        ca = peer.pki.ca_cert.display(),
        syslog = rsyslog.port,
    );
    let config_path = d.join("agent.yaml");
    std::fs::write(&config_path, config).unwrap();
    let start_agent =
        || AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_vigil-agent")), &config_path);
    let mut agent = start_agent();
    let connected = |m: &str| {
        ["vigil_docker_connected 1", "vigil_containerd_connected 1"]
            .iter()
            .all(|c| m.contains(c))
    };
    wait_until(
        "the agent follows both engines",
        Duration::from_secs(60),
        || {
            let m = metrics(metrics_port);
            if connected(&m) {
                Ok(())
            } else {
                Err("not connected yet".into())
            }
        },
    )
    .await;

    let writer = Writer::start(log.clone());

    // ---- The attack.
    writer.inject(story_audit_lines());
    let priv_name = format!("story-priv-{tag}");
    cleanup.containers.push(priv_name.clone());
    docker.docker(&[
        "run",
        "-d",
        "--name",
        &priv_name,
        "--privileged",
        "-v",
        "/:/host:ro",
        &docker.image,
        "sleep",
        "600",
    ]);
    // An interactive shell (its stdin ends at once: the test has nothing to type).
    docker.docker(&["exec", "-i", &priv_name, "sh"]);
    let task = format!("story-task-{tag}");
    cleanup.tasks.push(task.clone());
    containerd.ctr(&[
        "run",
        "-d",
        "--privileged",
        "--snapshotter",
        &containerd.snapshotter,
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=miner-1",
        "--label",
        "io.kubernetes.pod.uid=5a0e7c2e-0000-4000-8000-00000000beef",
        "--label",
        "io.kubernetes.container.name=miner",
        &containerd.image,
        &task,
        "sleep",
        "600",
    ]);
    let pod_log =
        pods.join("shop_web-7d9fc5b6d-x2k8p_0f1e2d3c-1111-4000-8000-000000000001/web/0.log");
    std::fs::create_dir_all(pod_log.parent().unwrap()).unwrap();
    std::fs::write(
        &pod_log,
        "2024-07-16T09:47:00.100000000Z stdout F 10.244.1.1 - - [16/Jul/2024:09:47:00 +0000] \"GET /healthz HTTP/1.1\" 200 2\n\
         2024-07-16T09:47:05.200000000Z stdout F 203.0.113.9 - - [16/Jul/2024:09:47:05 +0000] \"GET /ping?host=127.0.0.1;id HTTP/1.1\" 200 64\n",
    )
    .unwrap();
    let tls = TlsSettings {
        ca_file: Some(pki.ca_cert.clone()),
        ..TlsSettings::default()
    }
    .client_config(DefaultTrust::SystemRoots)
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap();
    let answer = client
        .post(format!("https://localhost:{webhook_port}{AUDIT_PATH}"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(webhook_event_list().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "the webhook took the EventList");

    let ours = vec![priv_name.clone(), task.clone()];
    // Exactly these alerts: (source, rule) → distinct events.
    let expected_agent: BTreeMap<(String, String), usize> = [
        // examples/audit/attack-story.log, then the admission webhook.
        ("k8s_audit", "rbac.cluster-admin-binding", 1),
        ("k8s_audit", "rbac.binding-changed", 1),
        ("k8s_audit", "secret.enumeration", 1),
        ("k8s_audit", "secret.access", 2),
        ("k8s_audit", "auth.forbidden", 1),
        ("k8s_audit", "container.exec", 2),
        ("k8s_audit", "container.shell", 1),
        ("k8s_audit", "container.sensitive-exec", 1),
        ("k8s_audit", "container.privileged", 1),
        ("k8s_audit", "container.host-path", 1),
        ("k8s_audit", "container.host-namespace", 1),
        ("k8s_audit", "container.dangerous-capability", 1),
        ("k8s_audit", "container.docker-socket", 1),
        ("k8s_audit", "image.untrusted-registry", 1),
        ("k8s_audit", "admission.webhook-changed", 1),
        // docker run --privileged -v /:/host (create, start): the node's `/` holds the
        // runtime's socket too. Then docker exec -i sh (exec_start).
        ("docker", "container.privileged", 2),
        ("docker", "container.host-path", 2),
        ("docker", "container.docker-socket", 2),
        ("docker", "container.exec", 1),
        ("docker", "container.shell", 1),
        // ctr run --privileged in k8s.io (create, start).
        ("containerd", "container.privileged", 2),
        // The pod log's injection.
        ("container_log", "log.web-shell-injection", 1),
    ]
    .into_iter()
    .map(|(s, r, n)| ((s.to_owned(), r.to_owned()), n))
    .collect();
    let mut expected_syslog = expected_agent.clone();
    *expected_syslog
        .entry(("k8s_audit".into(), "rbac.cluster-admin-binding".into()))
        .or_default() += 1;
    *expected_syslog
        .entry(("k8s_audit".into(), "rbac.binding-changed".into()))
        .or_default() += 1;

    wait_until(
        "the story's alerts at the Wazuh manager",
        Duration::from_secs(120),
        || {
            let got = alerts(&from_wazuh(&peer), &ours);
            if got == expected_agent {
                Ok(())
            } else {
                Err(format!("got {got:#?}\nwant {expected_agent:#?}"))
            }
        },
    )
    .await;
    wait_until(
        "the story's alerts at rsyslog",
        Duration::from_secs(120),
        || {
            let got = alerts(&from_rsyslog(&rsyslog), &ours);
            if got == expected_syslog {
                Ok(())
            } else {
                Err(format!("got {got:#?}\nwant {expected_syslog:#?}"))
            }
        },
    )
    .await;

    // ---- The faults.
    drop(agent); // SIGKILL
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent = start_agent();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Rotation under load: kube-apiserver renames the log and writes a new one.
    std::fs::rename(&log, log.with_extension("log.1")).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(agent); // SIGKILL again, soon after the rotation
    tokio::time::sleep(Duration::from_secs(1)).await;
    agent = start_agent();

    engines("stop");
    engines("start");
    let after = format!("story-after-{tag}");
    cleanup.containers.push(after.clone());
    docker.docker(&["run", "-d", "--name", &after, &docker.image, "sleep", "600"]);
    wait_until(
        "the container started after dockerd's restart, at both managers",
        Duration::from_secs(120),
        || {
            let at_wazuh = peer.seen(|s| {
                s.events()
                    .iter()
                    .any(|m| m.starts_with("1:Wazuh-Docker:") && m.contains(&after))
            });
            let at_rsyslog = rsyslog
                .lines()
                .iter()
                .any(|l| l.msg.contains("\"source\":\"docker\"") && l.msg.contains(&after));
            if at_wazuh && at_rsyslog {
                Ok(())
            } else {
                Err(format!(
                    "at the Wazuh manager: {at_wazuh}, at rsyslog: {at_rsyslog}"
                ))
            }
        },
    )
    .await;

    // Both managers away for a minute while the noise goes on.
    peer.set_mode(Mode::Refuse);
    peer.close_connections();
    rsyslog.stop();
    tokio::time::sleep(OUTAGE).await;
    peer.set_mode(Mode::Normal);
    rsyslog.launch();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let written = writer.finish();
    let total: HashSet<&str> = written.iter().map(String::as_str).collect();
    assert_eq!(
        total.len(),
        written.len(),
        "the writer wrote every auditID once"
    );

    // ---- Accounting.
    wait_until(
        "every audit event at the Wazuh manager",
        Duration::from_secs(240),
        || {
            let got: HashSet<String> = from_wazuh(&peer)
                .into_iter()
                .filter_map(|e| e.audit_id)
                .collect();
            let missing = total.iter().filter(|id| !got.contains(**id)).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} of {} missing", total.len()))
            }
        },
    )
    .await;
    let mut dropped = 0;
    wait_until(
        "every audit event at rsyslog, or counted as dropped",
        Duration::from_secs(240),
        || {
            let m = metrics(metrics_port);
            dropped =
                metric(&m, "vigil_output_events_dropped_total{output=\"syslog\"}").unwrap_or(0);
            let got: HashSet<String> = from_rsyslog(&rsyslog)
                .into_iter()
                .filter(|e| e.source == "k8s_audit")
                .filter_map(|e| e.audit_id)
                .filter(|id| total.contains(id.as_str()))
                .collect();
            let accounted = got.len() as u64 + dropped;
            if accounted == total.len() as u64 {
                Ok(())
            } else {
                Err(format!(
                    "{} delivered + {dropped} dropped of {}",
                    got.len(),
                    total.len()
                ))
            }
        },
    )
    .await;
    assert!(
        dropped > 0,
        "the syslog spool never reached its cap: the outage proved nothing"
    );

    assert_eq!(
        alerts(&from_wazuh(&peer), &ours),
        expected_agent,
        "the faults changed the alerts: the noise fires nothing and replays keep their ids"
    );
    let wazuh_audit: Vec<String> = from_wazuh(&peer)
        .into_iter()
        .filter_map(|e| e.audit_id)
        .collect();
    let syslog_audit: Vec<String> = from_rsyslog(&rsyslog)
        .into_iter()
        .filter_map(|e| e.audit_id)
        .collect();
    let dup = |v: &[String]| v.len() - v.iter().collect::<HashSet<_>>().len();
    let (wazuh_dups, syslog_dups) = (dup(&wazuh_audit), dup(&syslog_audit));
    eprintln!(
        "story: {} audit events written; wazuh: all delivered, {wazuh_dups} duplicates; rsyslog: {} delivered, {dropped} dropped by the full spool (drop_newest), {syslog_dups} duplicates",
        total.len(),
        total.len() as u64 - dropped,
    );
    assert!(
        wazuh_dups <= DUPLICATE_BOUND,
        "{wazuh_dups} duplicates at the Wazuh manager"
    );
    assert!(
        syslog_dups <= DUPLICATE_BOUND,
        "{syslog_dups} duplicates at rsyslog"
    );

    agent.terminate();
    let _ = stop_webhook.send(());
    tokio::time::timeout(Duration::from_secs(30), webhook)
        .await
        .unwrap()
        .unwrap();
}
