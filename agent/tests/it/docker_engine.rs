//! The Docker source against a real engine: the `vigil-agent` binary follows a private
//! dockerd (started by `tests/engines.sh start`) while the test drives it with the docker
//! CLI: a `--privileged` container with `/` bind-mounted, a shell and a plain command
//! exec'd in it, pause, unpause, kill, rm, a volume, a network, an image tagged into an
//! unknown registry and removed; then the agent is stopped while events happen, and dockerd
//! itself is restarted while the agent runs. Every event must arrive exactly once, with the
//! facts and detections a user would look for.
//!
//! Also `vigil-agent scan` of a `docker events --format '{{json .}}'` dump recorded from the
//! same engine (`agent/tests/fixtures/docker-events.jsonl`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;

use crate::agent::{TestAgent, rules};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Stops and starts the private dockerd with the project's script.
fn restart_dockerd() {
    for step in ["stop", "start"] {
        let status = Command::new(root().join("tests/engines.sh"))
            .arg(step)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tests/engines.sh {step} failed");
    }
}

/// An agent with only the Docker source.
struct Harness {
    agent: TestAgent,
    /// The engine's socket, which the agent reaches through a link the test can take away.
    socket: PathBuf,
}

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.agent
    }
}

impl Harness {
    fn new(engine: &DockerEngine) -> Harness {
        let agent = TestAgent::new();
        let socket = PathBuf::from(engine.host.strip_prefix("unix://").unwrap_or(&engine.host));
        let link = agent.path("docker.sock");
        std::os::unix::fs::symlink(&socket, &link).unwrap();
        agent.configure(
            &format!(
                "  docker:\n    endpoint: unix://{}\n    interval: 2s\n",
                link.display()
            ),
            "pipeline:\n  checkpoint_interval_ms: 100\n",
        );
        Harness { agent, socket }
    }

    /// Takes the agent's way to the engine away (`false`) or gives it back (`true`).
    fn reachable(&self, yes: bool) {
        let link = self.path("docker.sock");
        if yes {
            std::os::unix::fs::symlink(&self.socket, &link).unwrap();
        } else {
            std::fs::remove_file(&link).unwrap();
        }
    }

    /// Waits until an event matches `what` (type, action as sent, actor name or id).
    fn wait_for(&self, what: &Expected) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| what.matches(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "the event {what:?} never arrived; got: {:#?}",
                self.events().iter().map(key).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the source says it follows the engine.
    fn wait_connected(&self) {
        self.wait_metric_line(
            "vigil_docker_connected 1",
            "the docker source never connected",
        );
    }
}

/// An engine event the test caused: its `Type`, its `Action` as sent, and its actor (the
/// `name` attribute, or the actor id).
#[derive(Debug, Clone)]
struct Expected {
    typ: &'static str,
    action: String,
    actor: String,
}

fn ev(typ: &'static str, action: &str, actor: &str) -> Expected {
    Expected {
        typ,
        action: action.into(),
        actor: actor.into(),
    }
}

impl Expected {
    fn matches(&self, e: &Value) -> bool {
        let raw = &e["raw"];
        raw["Type"] == self.typ
            && raw["Action"] == self.action.as_str()
            && (raw["Actor"]["Attributes"]["name"] == self.actor.as_str()
                || raw["Actor"]["ID"] == self.actor.as_str())
    }
}

fn key(e: &Value) -> String {
    let raw = &e["raw"];
    format!(
        "{} {} {}",
        raw["Type"].as_str().unwrap_or("?"),
        raw["Action"].as_str().unwrap_or("?"),
        raw["Actor"]["Attributes"]["name"]
            .as_str()
            .or(raw["Actor"]["ID"].as_str())
            .unwrap_or("?")
    )
}

#[test]
fn the_docker_source_reports_a_real_engine_and_survives_restarts() {
    let engine = DockerEngine::find_alone();
    let h = Harness::new(&engine);
    let tag = format!(
        "{}{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos() % 1000
    );
    let name = format!("vigil-priv-{tag}");
    let mut expected: Vec<Expected> = Vec::new();

    let agent = h.start();
    h.wait_connected();
    let probe = format!("vigil-probe-{tag}");
    engine.docker(&["volume", "create", &probe]);
    h.wait_for(&ev("volume", "create", &probe));
    expected.push(ev("volume", "create", &probe));

    // A privileged container with the node's / mounted, as kubelet would label it.
    engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--privileged",
        "-v",
        "/:/host",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=web-7d9f",
        "--label",
        "io.kubernetes.container.name=app",
        &engine.image,
        "sleep",
        "300",
    ]);
    engine.docker(&["exec", &name, "sh"]);
    engine.docker(&["exec", &name, "ls", "/host"]);
    engine.docker(&["pause", &name]);
    engine.docker(&["unpause", &name]);
    engine.docker(&["kill", &name]);
    engine.docker(&["rm", &name]);
    for a in [
        "create",
        "start",
        "exec_start: sh ",
        "exec_start: ls /host",
        "pause",
        "unpause",
        "kill",
        "die",
        "destroy",
    ] {
        expected.push(ev("container", a, &name));
    }
    let vol = format!("vigil-vol-{tag}");
    let net = format!("vigil-net-{tag}");
    engine.docker(&["volume", "create", &vol]);
    engine.docker(&["volume", "rm", &vol]);
    engine.docker(&["network", "create", &net]);
    engine.docker(&["network", "rm", &net]);
    let untrusted = format!("registry.evil.example:5000/tools/bb:{tag}");
    engine.docker(&["tag", &engine.image, &untrusted]);
    engine.docker(&["rmi", &untrusted]);
    // An untag names the image by id, not by the reference removed.
    let image_id = engine.docker(&["image", "inspect", "--format", "{{.Id}}", &engine.image]);
    expected.extend([
        ev("volume", "create", &vol),
        ev("volume", "destroy", &vol),
        ev("network", "create", &net),
        ev("network", "destroy", &net),
        ev("image", "tag", &untrusted),
        ev("image", "untag", &image_id),
    ]);
    h.wait_for(&ev("image", "untag", &image_id));

    // What happens while the agent is down is read from the checkpoint on its return.
    agent.terminate();
    let offline = format!("vigil-offline-{tag}");
    engine.docker(&["volume", "create", &offline]);
    engine.docker(&["volume", "rm", &offline]);
    expected.push(ev("volume", "create", &offline));
    expected.push(ev("volume", "destroy", &offline));
    let agent = h.start();
    h.wait_for(&ev("volume", "destroy", &offline));

    // dockerd stops and starts under the running agent; what it does right after its
    // restart, before the agent is back, must still arrive once. The agent's link to the
    // socket is held back meanwhile, so that those events can only come from the engine's
    // replay.
    h.reachable(false);
    restart_dockerd();
    let after = format!("vigil-after-restart-{tag}");
    engine.docker(&["volume", "create", &after]);
    engine.docker(&["network", "create", &after]);
    engine.docker(&["network", "rm", &after]);
    engine.docker(&["volume", "rm", &after]);
    // Cut off, the agent has not seen them...
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !h.events()
            .iter()
            .any(|e| ev("volume", "create", &after).matches(e)),
        "the agent read events while it could not reach the engine"
    );
    // ...and once back, it reads them from the engine's replay.
    h.reachable(true);
    expected.extend([
        ev("volume", "create", &after),
        ev("network", "create", &after),
        ev("network", "destroy", &after),
        ev("volume", "destroy", &after),
    ]);
    h.wait_for(&ev("volume", "destroy", &after));
    let metrics = h.metrics();
    agent.terminate();

    // Nothing lost, nothing twice.
    let events = h.events();
    for want in &expected {
        let n = events.iter().filter(|e| want.matches(e)).count();
        assert_eq!(n, 1, "{want:?} arrived {n} times");
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *ids.entry(e["id"].as_str().unwrap()).or_default() += 1;
    }
    let repeated: Vec<_> = ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "events delivered twice: {repeated:?}");
    assert!(
        metrics.contains("vigil_docker_connected 1"),
        "the source is not connected after the restart:\n{metrics}"
    );
    let reconnects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_docker_reconnects_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(reconnects >= 1, "{metrics}");
    // The restarted agent asked the engine for events since its checkpoint, which replays
    // the last event it had shipped: dropped as already read, not shipped twice.
    let skipped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_docker_duplicates_skipped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(skipped >= 1, "{metrics}");

    // What a user checks on the events themselves.
    let find = |want: Expected| events.iter().find(|e| want.matches(e)).unwrap().clone();
    let start = find(ev("container", "start", &name));
    assert_eq!(start["source"], "docker");
    assert_eq!(start["kind"], "runtime");
    assert_eq!(start["action"], "start");
    assert_eq!(start["node"], "test-node");
    assert_eq!(start["workload"]["privileged"], true);
    assert!(
        start["workload"]["host_paths"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"path": "/", "read_only": false})),
        "{start}"
    );
    assert_eq!(start["container"]["name"], "app");
    assert_eq!(start["container"]["pod"]["namespace"], "shop");
    assert_eq!(start["container"]["pod"]["name"], "web-7d9f");
    assert!(
        start["container"]["image_id"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(
        rules(&start),
        [
            "container.docker-socket",
            "container.host-path",
            "container.privileged"
        ]
    );

    let shell = find(ev("container", "exec_start: sh ", &name));
    assert_eq!(shell["action"], "exec");
    assert_eq!(shell["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(shell["process"]["tty"], false);
    assert_eq!(rules(&shell), ["container.exec", "container.shell"]);
    // The engine's bytes are forwarded unchanged, trailing space included.
    assert_eq!(shell["raw"]["Action"], "exec_start: sh ");

    let ls = find(ev("container", "exec_start: ls /host", &name));
    assert_eq!(ls["process"]["command_line"], "ls /host");
    assert_eq!(ls["process"]["args"], serde_json::json!(["ls", "/host"]));
    assert_eq!(rules(&ls), ["container.exec"]);

    for (action, normalized) in [
        ("pause", "pause"),
        ("unpause", "unpause"),
        ("kill", "kill"),
        ("die", "die"),
        ("destroy", "destroy"),
    ] {
        assert_eq!(find(ev("container", action, &name))["action"], normalized);
    }
    assert_eq!(
        find(ev("container", "die", &name))["outcome"],
        "failure",
        "killed: exit 137"
    );
    assert_eq!(
        find(ev("volume", "create", &vol))["object"]["resource"],
        "volumes"
    );
    assert_eq!(
        find(ev("network", "destroy", &net))["object"]["name"],
        net.as_str()
    );
    let tagged = find(ev("image", "tag", &untrusted));
    assert_eq!(tagged["workload"]["images"], serde_json::json!([untrusted]));
    let checkpoint = std::fs::read_to_string(h.path("state/docker.checkpoint.json")).unwrap();
    assert!(checkpoint.contains("\"time_nano\""), "{checkpoint}");
}

#[test]
fn scan_reads_a_recorded_docker_events_dump() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["scan", "agent/tests/fixtures/docker-events.jsonl"])
        .current_dir(root())
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without `docker inspect`"), "{stderr}");
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 26, "one event per line of the dump");
    assert!(
        events
            .iter()
            .all(|e| e["source"] == "docker" && e["kind"] == "runtime")
    );
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "create", "start", "exec", "pause", "unpause", "kill", "die", "destroy", "tag", "untag",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let shell = events
        .iter()
        .find(|e| e["raw"]["Action"] == "exec_start: sh ")
        .unwrap();
    assert_eq!(rules(shell), ["container.exec", "container.shell"]);
    assert_eq!(shell["container"]["pod"]["namespace"], "shop");

    let text = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args([
            "scan",
            "--format",
            "text",
            "agent/tests/fixtures/docker-events.jsonl",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&text.stdout);
    assert!(report.contains("container.shell"), "{report}");
    assert!(report.contains("without `docker inspect`"), "{report}");
}
