//! The containerd source against a real containerd: the `vigil-agent` binary, with only a
//! containerd source, follows a private containerd (started by `tests/engines.sh start` or
//! `tests/engines.sh containerd-start`) while the test drives it with `ctr` in the `k8s.io`
//! namespace, with the labels CRI puts on a pod's containers: a `--privileged` container with
//! `/` bind-mounted read-only, a shell and a plain command exec'd in it, pause, resume, kill,
//! delete; a plain container next to it; a namespace created and removed. Every step must
//! arrive as the normalized event and detections a user would look for.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use vigil_testkit::containerd::Containerd;

use crate::agent::{TestAgent, rules};

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

/// An agent with only the containerd source.
struct Harness(TestAgent);

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl Harness {
    fn new(c: &Containerd) -> Harness {
        Harness(TestAgent::with_sources(&format!(
            "  containerd:\n    address: {}\n    interval: 2\n",
            c.sock
        )))
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

    fn wait_connected(&self) {
        self.wait_metric_line(
            "vigil_containerd_connected 1",
            "the containerd source never connected",
        );
    }
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
    let h = TestAgent::new();
    h.configure(
        &format!(
            "  containerd:\n    address: {}\n    interval: 1\n    attempts: 2\n",
            h.path("missing.sock").display()
        ),
        "",
    );
    let _agent = h.start();
    h.wait_metric_line(
        "vigil_containerd_degraded 1",
        "the source never reported itself degraded",
    );
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
