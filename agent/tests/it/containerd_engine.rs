//! The containerd source against a real containerd: the `vigil-agent` binary, with only a
//! containerd source, follows a private containerd (started by `tests/engines.sh start` or
//! `tests/engines.sh containerd-start`) while the test drives it with `ctr` in the `k8s.io`
//! namespace, with the labels CRI puts on a pod's containers: a `--privileged` container with
//! `/` bind-mounted read-only, a shell and a plain command exec'd in it, pause, resume, kill,
//! delete; a plain container next to it; a namespace created and removed. Every step must
//! arrive as the normalized event and detections a user would look for.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::process::AgentProcess;

const WELL_KNOWN_SOCK: &str = "/tmp/vigil-engines/containerd/containerd.sock";
const DEFAULT_IMAGE: &str = "docker.io/vigil-test/busybox:latest";
const HOW: &str = "start it with `tests/engines.sh containerd-start` (as root; it installs \
                   containerd, runc and busybox-static from Debian, starts a private containerd \
                   and imports a busybox image into the k8s.io namespace)";

/// The private containerd, or a failure that says how to start it.
pub(crate) struct Containerd {
    pub(crate) sock: String,
    pub(crate) image: String,
    pub(crate) snapshotter: String,
}

impl Containerd {
    pub(crate) fn find() -> Containerd {
        let sock =
            std::env::var("VIGIL_TEST_CONTAINERD_SOCK").unwrap_or_else(|_| WELL_KNOWN_SOCK.into());
        let image =
            std::env::var("VIGIL_TEST_CONTAINERD_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
        assert!(Path::new(&sock).exists(), "no containerd at {sock}: {HOW}");
        // The engines script probes which snapshotter the kernel allows and records it.
        let snapshotter = Path::new(&sock)
            .parent()
            .map(|d| d.join("snapshotter"))
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "overlayfs".into());
        let c = Containerd {
            sock,
            image,
            snapshotter,
        };
        let version = c.try_ctr(&["version"]);
        assert!(
            version.is_ok(),
            "containerd at {} does not answer ({}): {HOW}",
            c.sock,
            version.unwrap_err()
        );
        let images = c.ctr(&["images", "ls", "-q"]);
        assert!(
            images.lines().any(|l| l == c.image),
            "the test image {} is missing from namespace k8s.io: {HOW}",
            c.image
        );
        c
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.args(["-a", &self.sock, "-n", "k8s.io"]).args(args);
        cmd
    }

    pub(crate) fn try_ctr(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ctr ({e}); install containerd"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub(crate) fn ctr(&self, args: &[&str]) -> String {
        self.try_ctr(args)
            .unwrap_or_else(|e| panic!("ctr {}: {e}", args.join(" ")))
    }

    /// Removes a container and its task, whatever state they are in.
    pub(crate) fn remove(&self, id: &str) {
        let _ = self.try_ctr(&["tasks", "kill", "-s", "KILL", id]);
        for _ in 0..50 {
            if self.try_ctr(&["tasks", "rm", "-f", id]).is_ok()
                || self
                    .try_ctr(&["tasks", "ls", "-q"])
                    .is_ok_and(|l| !l.lines().any(|t| t == id))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.try_ctr(&["containers", "rm", id]);
    }
}

/// Removes the test's containers even when an assertion fails half-way.
struct Cleanup<'a>(&'a Containerd, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            self.0.remove(id);
        }
        let _ = Command::new("ctr")
            .args(["-a", &self.0.sock, "namespaces", "rm", "vigil-test-ns"])
            .stderr(Stdio::null())
            .status();
    }
}

struct Harness {
    dir: tempfile::TempDir,
    metrics_port: u16,
}

impl Harness {
    fn new(c: &Containerd) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "node: test-node\nstate_dir: {state}\nsources:\n  audit_log:\n    enabled: false\n  containerd:\n    address: {sock}\n    interval: 2\noutputs:\n  - type: file\n    path: {out}\n    fsync: batch\nmetrics_listen: 127.0.0.1:{metrics_port}\n",
            state = dir.path().join("state").display(),
            sock = c.sock,
            out = dir.path().join("events.json").display(),
        );
        std::fs::write(dir.path().join("agent.yaml"), config).unwrap();
        Harness { dir, metrics_port }
    }

    fn start(&self) -> AgentProcess {
        AgentProcess::start(
            &PathBuf::from(env!("CARGO_BIN_EXE_vigil-agent")),
            &self.dir.path().join("agent.yaml"),
        )
    }

    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("events.json")).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits for the event of `topic` about `object` (a container id, or the name an image
    /// or namespace event carries) that `also` accepts.
    fn wait_for(&self, topic: &str, object: &str, also: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let matches = |e: &Value| {
            let p = &e["raw"]["event"];
            e["raw"]["topic"] == topic
                && (p["container_id"] == object || p["id"] == object || p["name"] == object)
                && also(e)
        };
        loop {
            if let Some(e) = self.events().into_iter().find(|e| matches(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "the event {topic} of {object} never arrived; got: {:#?}",
                self.events()
                    .iter()
                    .map(|e| format!(
                        "{} {} {}",
                        e["raw"]["namespace"], e["raw"]["topic"], e["raw"]["event"]
                    ))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn metrics(&self) -> String {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn wait_connected(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.metrics().contains("vigil_containerd_connected 1") {
            assert!(
                Instant::now() < deadline,
                "the containerd source never connected"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rules(e: &Value) -> Vec<String> {
    e["detections"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["rule"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_ctr_story_in_k8s_io_gives_the_normalized_events_and_detections() {
    let c = Containerd::find();
    let h = Harness::new(&c);
    let _agent = h.start();
    h.wait_connected();

    let tag = std::process::id();
    let priv_id = format!("vigil-cd-priv-{tag}");
    let plain_id = format!("vigil-cd-plain-{tag}");
    let _cleanup = Cleanup(&c, vec![priv_id.clone(), plain_id.clone()]);

    // A privileged pod container, the node's `/` mounted read-only at /host.
    c.ctr(&[
        "run",
        "-d",
        "--privileged",
        "--snapshotter",
        &c.snapshotter,
        "--mount",
        "type=bind,src=/,dst=/host,options=rbind:ro",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=web-1",
        "--label",
        "io.kubernetes.pod.uid=0f1e2d3c-0000-4000-8000-000000000001",
        "--label",
        "io.kubernetes.container.name=app",
        &c.image,
        &priv_id,
        "sleep",
        "300",
    ]);
    // A plain container: a look-alike that must not be reported as privileged.
    c.ctr(&[
        "run",
        "-d",
        "--snapshotter",
        &c.snapshotter,
        &c.image,
        &plain_id,
        "sleep",
        "300",
    ]);

    let create = h.wait_for("/containers/create", &priv_id, |_| true);
    assert_eq!(create["source"], "containerd");
    assert_eq!(create["kind"], "runtime");
    assert_eq!(create["action"], "create");
    assert_eq!(create["raw"]["namespace"], "k8s.io");
    assert_eq!(
        create["raw"]["event"]["@type"],
        "containerd.events.ContainerCreate"
    );
    assert_eq!(create["container"]["id"], priv_id.as_str());
    assert_eq!(create["container"]["runtime"], "containerd");
    assert_eq!(create["container"]["name"], "app");
    assert_eq!(create["container"]["image"], c.image.as_str());
    assert_eq!(create["container"]["pod"]["namespace"], "shop");
    assert_eq!(create["container"]["pod"]["name"], "web-1");
    assert_eq!(
        create["container"]["pod"]["uid"],
        "0f1e2d3c-0000-4000-8000-000000000001"
    );
    assert_eq!(create["workload"]["privileged"], true);
    assert_eq!(create["workload"]["namespace"], "shop");
    assert!(
        create["workload"]["host_paths"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!({"path": "/", "read_only": true})),
        "{}",
        create["workload"]
    );
    let r = rules(&create);
    assert!(r.contains(&"container.privileged".to_owned()), "{r:?}");
    assert!(r.contains(&"container.host-path".to_owned()), "{r:?}");

    let start = h.wait_for("/tasks/start", &priv_id, |_| true);
    assert_eq!(start["action"], "start");
    assert!(start["raw"]["event"]["pid"].as_u64().unwrap() > 0);
    assert!(rules(&start).contains(&"container.privileged".to_owned()));

    let plain = h.wait_for("/tasks/start", &plain_id, |_| true);
    assert_eq!(
        plain["workload"]["privileged"],
        Value::Null,
        "{}",
        plain["workload"]
    );
    assert!(rules(&plain).is_empty(), "{:?}", rules(&plain));

    // A shell, kept alive by its open stdin long enough for the agent to read its command.
    let mut shell = c
        .command(&["tasks", "exec", "--exec-id", "shell1", &priv_id, "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let exec = h.wait_for("/tasks/exec-started", &priv_id, |e| {
        e["raw"]["event"]["exec_id"] == "shell1"
    });
    drop(shell.stdin.take());
    assert!(shell.wait().unwrap().success());
    assert_eq!(exec["action"], "exec");
    assert_eq!(exec["process"]["exec_id"], "shell1");
    assert_eq!(exec["process"]["command_line"], "sh");
    let r = rules(&exec);
    assert!(r.contains(&"container.exec".to_owned()), "{r:?}");
    assert!(r.contains(&"container.shell".to_owned()), "{r:?}");
    let added = h.wait_for("/tasks/exec-added", &priv_id, |e| {
        e["raw"]["event"]["exec_id"] == "shell1"
    });
    assert_eq!(added["action"], "exec_create");
    let done = h.wait_for("/tasks/exit", &priv_id, |e| {
        e["raw"]["event"]["id"] == "shell1"
    });
    assert_eq!(done["action"], "exec_die");
    assert_eq!(done["outcome"], "success");
    assert_eq!(
        done["process"]["command_line"], "sh",
        "the exit names the command too"
    );

    // A plain command: an exec, not a shell.
    // Alive for two seconds: time enough on a loaded machine for the event to be handled
    // while its process can still be read.
    c.ctr(&["tasks", "exec", "--exec-id", "cmd1", &priv_id, "sleep", "2"]);
    let cmd = h.wait_for("/tasks/exec-started", &priv_id, |e| {
        e["raw"]["event"]["exec_id"] == "cmd1"
    });
    assert_eq!(cmd["process"]["command_line"], "sleep 2");
    assert_eq!(cmd["process"]["args"], serde_json::json!(["sleep", "2"]));
    let r = rules(&cmd);
    assert!(r.contains(&"container.exec".to_owned()), "{r:?}");
    assert!(!r.contains(&"container.shell".to_owned()), "{r:?}");

    c.ctr(&["tasks", "pause", &priv_id]);
    assert_eq!(
        h.wait_for("/tasks/paused", &priv_id, |_| true)["action"],
        "pause"
    );
    c.ctr(&["tasks", "resume", &priv_id]);
    assert_eq!(
        h.wait_for("/tasks/resumed", &priv_id, |_| true)["action"],
        "unpause"
    );

    c.ctr(&["tasks", "kill", "-s", "KILL", &priv_id]);
    let die = h.wait_for("/tasks/exit", &priv_id, |e| {
        e["raw"]["event"]["id"] == priv_id.as_str()
    });
    assert_eq!(die["action"], "die");
    assert_eq!(die["outcome"], "failure");
    assert_eq!(die["raw"]["event"]["exit_status"], 137);
    c.ctr(&["tasks", "rm", &priv_id]);
    assert_eq!(
        h.wait_for("/tasks/delete", &priv_id, |_| true)["action"],
        "task_delete"
    );
    c.ctr(&["containers", "rm", &priv_id]);
    let destroy = h.wait_for("/containers/delete", &priv_id, |_| true);
    assert_eq!(destroy["action"], "destroy");
    assert_eq!(
        destroy["container"]["pod"]["namespace"], "shop",
        "a deleted container keeps the facts known before"
    );

    // Events of namespaces other than k8s.io arrive too.
    let status = Command::new("ctr")
        .args(["-a", &c.sock, "namespaces", "create", "vigil-test-ns"])
        .status()
        .unwrap();
    assert!(status.success());
    let ns = h.wait_for("/namespaces/create", "vigil-test-ns", |_| true);
    assert_eq!(ns["action"], "create");
    assert_eq!(ns["object"]["resource"], "namespaces");

    let m = h.metrics();
    assert!(m.contains("vigil_containerd_connected 1"), "{m}");
    assert!(m.contains("vigil_containerd_degraded 0"), "{m}");
}

#[test]
fn an_unreachable_socket_is_reported_degraded_not_silent() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "state_dir: {state}\nsources:\n  audit_log:\n    enabled: false\n  containerd:\n    address: {sock}\n    interval: 1\n    attempts: 2\noutputs:\n  - type: file\n    path: {out}\nmetrics_listen: 127.0.0.1:{port}\n",
        state = dir.path().join("state").display(),
        sock = dir.path().join("missing.sock").display(),
        out = dir.path().join("events.json").display(),
    );
    std::fs::write(dir.path().join("agent.yaml"), config).unwrap();
    let h = Harness {
        dir,
        metrics_port: port,
    };
    let _agent = h.start();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.metrics().contains("vigil_containerd_degraded 1") {
        assert!(
            Instant::now() < deadline,
            "the source never reported itself degraded: {}",
            h.metrics()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(h.metrics().contains("vigil_containerd_connected 0"));
}

/// containerd answers an event subscription only with its first event: the source must not
/// wait for one to count as connected, nor to stop.
#[test]
fn the_source_connects_and_stops_without_waiting_for_an_event() {
    let c = Containerd::find();
    let h = Harness::new(&c);
    let agent = h.start();
    h.wait_connected();
    let asked = Instant::now();
    agent.terminate();
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the agent took {:?} to stop",
        asked.elapsed()
    );
}
