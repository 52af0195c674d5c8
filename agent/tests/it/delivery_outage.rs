//! `vigil-agent run` shipping an audit log to each kind of manager — the Wazuh stand-in, a
//! real rsyslog, an HTTP receiver — while the manager goes away under steady load and the
//! agent is killed with SIGKILL in between: when both are back, every event has arrived,
//! first arrivals in the order written.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_testkit::http::NdjsonReceiver;
use vigil_testkit::process::AgentProcess;
use vigil_testkit::rsyslog::{Listen, Rsyslog};
use vigil_testkit::wazuh::{Mode, PeerConfig, WazuhPeer};

const APP: &str = "vigil-outage";

/// A manager that can be taken away and brought back.
enum Manager {
    Wazuh(WazuhPeer),
    Syslog(Rsyslog),
    Http(NdjsonReceiver),
}

impl Manager {
    /// The `outputs:` entry pointing at it.
    fn output_yaml(&self) -> String {
        match self {
            Manager::Wazuh(peer) => format!(
                "  - type: wazuh\n    manager: 127.0.0.1\n    port: {}\n    agent_version: v4.7.0\n    max_eps: 2000\n    keepalive_secs: 1\n    reconnect_secs: 2\n    enrollment:\n      port: {}\n      tls: {{ ca_file: {}, server_name: localhost }}\n",
                peer.remoted.port(),
                peer.authd.port(),
                peer.pki.ca_cert.display()
            ),
            Manager::Syslog(r) => format!(
                "  - type: syslog\n    address: 127.0.0.1:{}\n    protocol: tcp\n    app_name: {APP}\n",
                r.port
            ),
            Manager::Http(h) => format!("  - type: http\n    url: {}\n", h.url()),
        }
    }

    async fn down(&mut self) {
        match self {
            Manager::Wazuh(peer) => {
                peer.set_mode(Mode::Refuse);
                peer.close_connections();
            }
            Manager::Syslog(r) => r.stop(),
            Manager::Http(h) => h.down(),
        }
    }

    async fn up(&mut self) {
        match self {
            Manager::Wazuh(peer) => peer.set_mode(Mode::Normal),
            Manager::Syslog(r) => r.launch(),
            Manager::Http(h) => h.up().await,
        }
    }

    /// auditIDs of the events received, in arrival order.
    fn received(&self) -> Vec<String> {
        let audit_id = |v: &serde_json::Value| v["raw"]["auditID"].as_str().map(str::to_owned);
        match self {
            Manager::Wazuh(peer) => peer.seen(|s| {
                s.events()
                    .iter()
                    .filter_map(|m| {
                        let json = m.strip_prefix("1:vigil-k8s-audit:")?;
                        let v: serde_json::Value = serde_json::from_str(json).ok()?;
                        audit_id(&v["vigil"])
                    })
                    .collect()
            }),
            Manager::Syslog(r) => r
                .lines()
                .iter()
                .filter_map(|l| audit_id(&serde_json::from_str(&l.msg).ok()?))
                .collect(),
            Manager::Http(h) => h
                .lines()
                .iter()
                .filter_map(|l| audit_id(&serde_json::from_str(l).ok()?))
                .collect(),
        }
    }
}

/// Appends audit events `from..to` to the log.
fn write_events(log: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut buf = String::new();
    for n in from..to {
        buf.push_str(&format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"evt-{n:06}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{{"username":"dev-alice@example.com"}},"sourceIPs":["203.0.113.45"],"objectRef":{{"resource":"secrets","namespace":"shop","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-02T10:15:30.412871Z","stageTimestamp":"2024-05-02T10:15:30.420000Z"}}"#
        ));
        buf.push('\n');
    }
    f.write_all(buf.as_bytes()).unwrap();
}

async fn wait_for_count(manager: &Manager, n: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let distinct: std::collections::BTreeSet<String> = manager.received().into_iter().collect();
        if distinct.len() >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {n} events arrived",
            distinct.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(dir: &Path, manager: &Manager) -> PathBuf {
    let text = format!(
        "node: node-7\nstate_dir: {state}\nsources:\n  audit_log:\n    path: {log}\n    start_at: beginning\n    poll_interval_ms: 50\noutputs:\n{output}pipeline:\n  batch_events: 64\n  checkpoint_interval_ms: 100\n",
        state = dir.join("state").display(),
        log = dir.join("audit.log").display(),
        output = manager.output_yaml(),
    );
    let path = dir.join("agent.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The story: 200 events delivered; the manager goes away; 300 more written over ~2 s; the
/// agent is SIGKILLed; 100 written while it is down; it restarts; 100 more; the manager
/// comes back. Returns the duplicate count.
async fn outage_and_kill(mut manager: Manager, dir: &Path) -> usize {
    let cfg = config(dir, &manager);
    let log = dir.join("audit.log");
    let start = || AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_vigil-agent")), &cfg);

    let agent = start();
    write_events(&log, 0, 200);
    wait_for_count(&manager, 200, "before the outage").await;

    manager.down().await;
    for step in 0..6 {
        write_events(&log, 200 + step * 50, 250 + step * 50);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(agent);
    write_events(&log, 500, 600);
    let agent = start();
    write_events(&log, 600, 700);
    tokio::time::sleep(Duration::from_secs(1)).await;
    manager.up().await;
    wait_for_count(&manager, 700, "after the outage").await;

    let got = manager.received();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut first = Vec::new();
    for id in &got {
        let c = counts.entry(id.as_str()).or_default();
        if *c == 0 {
            first.push(id.clone());
        }
        *c += 1;
    }
    let want: Vec<String> = (0..700).map(|n| format!("evt-{n:06}")).collect();
    assert_eq!(
        first, want,
        "every event, first arrivals in the order written"
    );
    drop(agent);
    got.len() - first.len()
}

/// Duplicates stay within what the documented windows allow: the batches in flight at the
/// kill (the pipeline's queue of 8 × 64 events, plus a checkpoint interval) and, per broken
/// connection, one unconfirmed chunk or resend window.
const DUPLICATE_BOUND: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wazuh_manager_outage_and_agent_kill_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let manager = Manager::Wazuh(peer);
    let duplicates = outage_and_kill(manager, dir.path()).await;
    eprintln!("wazuh: {duplicates} duplicates");
    assert!(duplicates <= DUPLICATE_BOUND, "{duplicates} duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsyslog_outage_and_agent_kill_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(dir.path(), Listen::Tcp, APP);
    let duplicates = outage_and_kill(Manager::Syslog(rsyslog), dir.path()).await;
    eprintln!("syslog: {duplicates} duplicates");
    assert!(duplicates <= DUPLICATE_BOUND, "{duplicates} duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_receiver_outage_and_agent_kill_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = NdjsonReceiver::start().await;
    let duplicates = outage_and_kill(Manager::Http(receiver), dir.path()).await;
    eprintln!("http: {duplicates} duplicates");
    assert!(duplicates <= DUPLICATE_BOUND, "{duplicates} duplicates");
}
