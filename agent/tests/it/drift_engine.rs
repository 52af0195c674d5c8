//! Drift and file integrity against real containers: the `vigil-agent` binary, with only a
//! `drift` source, watches the writable layers of the private dockerd's (overlay2) and
//! containerd's (overlayfs snapshotter) containers (`tests/engines.sh start`) while the test
//! does inside a container what an intruder would: `cp /bin/busybox /tmp/x && /tmp/x`
//! (drift), appending a user to `/etc/passwd` (integrity), and writes a plain data file
//! that must stay quiet. The events must carry the container, the path as the container
//! sees it, the change, the size and the SHA-256 the container itself computes, and fire
//! `container.drift` / `container.file-integrity`.

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;

use vigil_testkit::containerd::Containerd;

use crate::agent::{ContainerdCleanup, TestAgent, rules};

/// An agent with only the drift source.
struct Harness(TestAgent);

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl Harness {
    /// `runtime` is the block's runtime lines.
    fn new(runtime: &str) -> Harness {
        Harness(TestAgent::with_sources(&format!(
            "  drift:\n    rescan_interval_ms: 300\n    settle_ms: 150\n{runtime}"
        )))
    }

    /// The file events of container `id` for `path`.
    fn file_events(&self, id: &str, path: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["container"]["id"] == id && e["file"]["path"] == path)
            .collect()
    }

    /// Runs `act` until an event for `path` of `id` arrives (the container is watched
    /// within a listing interval of its start; until then a change is not seen).
    fn until_event(&self, id: &str, path: &str, mut act: impl FnMut()) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            act();
            let inner = Instant::now() + Duration::from_secs(2);
            while Instant::now() < inner {
                if let Some(e) = self.file_events(id, path).pop() {
                    return e;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                Instant::now() < deadline,
                "no file event for {path} in {id} after 30 s; events: {:#?}\nmetrics:\n{}",
                self.events(),
                self.metrics()
            );
        }
    }

    /// Waits for an event for `path` of `id` that satisfies `pred`.
    fn wait_event(&self, id: &str, path: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.file_events(id, path).into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no matching file event for {path} in {id}; its events: {:#?}",
                self.file_events(id, path)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

struct DockerCleanup<'a>(&'a DockerEngine, String);

impl Drop for DockerCleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_docker(&["rm", "-f", &self.1]);
    }
}

#[test]
fn docker_drift_and_passwd_changes_are_seen_with_their_hashes() {
    let engine = DockerEngine::find();
    let driver = engine.docker(&["info", "--format", "{{.Driver}}"]);
    assert_eq!(
        driver, "overlay2",
        "the private dockerd runs with {driver}; drift needs overlay2 (tests/engines.sh tries it first)"
    );
    let h = Harness::new(&format!(
        "    docker_endpoint: {}\n    containerd: false\n",
        engine.host
    ));
    let agent = h.start();
    let name = format!("vigil-drift-{}", std::process::id());
    let id = engine.docker(&["run", "-d", "--name", &name, &engine.image, "sleep", "3600"]);
    let _cleanup = DockerCleanup(&engine, id.clone());
    let exec = |script: &str| engine.try_docker(&["exec", &id, "sh", "-c", script]);

    // The container is watched within a listing interval of its start; a probe under /etc
    // is written until its change is seen, so the steps below happen under watch.
    h.until_event(&id, "/etc/vigil-probe", || {
        exec("echo probe >> /etc/vigil-probe").unwrap();
    });
    // Drift: busybox copied and run under another name. (`/tmp/x` is not an applet name, so
    // busybox answers "applet not found": the run fails, the copy is what counts.)
    let _ = exec("cp /bin/busybox /tmp/x && /tmp/x");
    let drift = h.wait_event(&id, "/tmp/x", |_| true);
    let expected = exec("/bin/busybox sha256sum /tmp/x").unwrap();
    let expected = expected.split_whitespace().next().unwrap();
    let size: u64 = exec("/bin/busybox stat -c %s /tmp/x")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(drift["source"], "file");
    assert_eq!(drift["kind"], "file");
    assert_eq!(drift["container"]["name"], name.as_str());
    assert_eq!(drift["container"]["runtime"], "docker");
    assert_eq!(drift["file"]["change"], "created");
    assert_eq!(drift["file"]["elf"], true);
    assert_eq!(drift["file"]["executable"], true);
    assert_eq!(drift["file"]["size"], size);
    assert_eq!(drift["file"]["sha256"], expected);
    assert!(
        rules(&drift).contains(&"container.drift".to_owned()),
        "{drift:#}"
    );
    assert!(!rules(&drift).contains(&"container.file-integrity".to_owned()));

    // Integrity: a user appended to the image's /etc/passwd.
    exec("echo 'evil:x:0:0::/:/bin/sh' >> /etc/passwd").unwrap();
    let passwd = h.wait_event(&id, "/etc/passwd", |e| e["file"]["change"] == "modified");
    let expected = exec("/bin/busybox sha256sum /etc/passwd").unwrap();
    assert_eq!(
        passwd["file"]["sha256"],
        expected.split_whitespace().next().unwrap()
    );
    assert_eq!(passwd["file"]["in_image"], true);
    assert_eq!(passwd["file"]["sensitive"], true);
    let size: u64 = exec("/bin/busybox stat -c %s /etc/passwd")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(passwd["file"]["size"], size);
    assert_eq!(rules(&passwd), ["container.file-integrity"], "{passwd:#}");

    // A plain data file and a deleted copy of nothing sensitive stay quiet.
    exec("echo hello > /tmp/notes.txt && mkdir -p /var/cache/app && echo x > /var/cache/app/c")
        .unwrap();
    // A marker after them: once it is seen, the quiet ones were judged too.
    exec("echo 'x' >> /etc/motd").unwrap();
    h.wait_event(&id, "/etc/motd", |_| true);
    assert!(h.file_events(&id, "/tmp/notes.txt").is_empty());
    assert!(h.file_events(&id, "/var/cache/app/c").is_empty());

    let m = h.metrics();
    assert!(
        m.contains("vigil_drift_skipped_total{reason=\"not_reported\"}"),
        "{m}"
    );
    agent.terminate();
}

#[test]
fn containerd_overlayfs_drift_is_seen() {
    let c = Containerd::find();
    assert_eq!(
        c.snapshotter, "overlayfs",
        "the private containerd uses the {:?} snapshotter; drift needs overlayfs",
        c.snapshotter
    );
    let h = Harness::new(&format!(
        "    docker: false\n    containerd_address: {}\n    containerd_namespaces: [k8s.io]\n",
        c.sock
    ));
    let agent = h.start();
    let id = format!("vigil-drift-cd-{}", std::process::id());
    c.ctr(&[
        "run",
        "-d",
        "--snapshotter",
        "overlayfs",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=web-0",
        "--label",
        "io.kubernetes.container.name=web",
        &c.image,
        &id,
        "sleep",
        "3600",
    ]);
    let _cleanup = ContainerdCleanup(&c, vec![id.clone()]);
    let mut n = 0;
    let drift = h.until_event(&id, "/tmp/x", || {
        n += 1;
        let _ = c.try_ctr(&[
            "tasks",
            "exec",
            "--exec-id",
            &format!("cp{n}"),
            &id,
            "sh",
            "-c",
            "cp /bin/busybox /tmp/x && /tmp/x",
        ]);
    });
    assert_eq!(drift["container"]["runtime"], "containerd");
    assert_eq!(drift["container"]["pod"]["namespace"], "shop");
    assert_eq!(drift["container"]["name"], "web");
    assert_eq!(drift["file"]["elf"], true);
    assert_eq!(drift["file"]["sha256"].as_str().map(str::len), Some(64));
    assert!(
        rules(&drift).contains(&"container.drift".to_owned()),
        "{drift:#}"
    );
    agent.terminate();
}
