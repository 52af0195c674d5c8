//! Hardening checks against the real Docker engine: the `vigil-agent` binary, with only a
//! `hardening` source running every 2 seconds, judges the private dockerd
//! (`tests/engines.sh start`) and two containers: one with no limits running as root, one
//! locked down. The posture events must say pass or fail per check as `docker inspect`
//! shows the containers; then the daemon's configuration file is weakened (a check turns
//! from pass to fail: the `posture.regression` detection) and finally made invalid JSON
//! (the checks that need it become `unknown`, no detection, no crash).

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;

use crate::agent::TestAgent;

/// A daemon configuration that passes check 1.6 (default ulimits set).
const GOOD_DAEMON_JSON: &str = r#"{"default-ulimits": {"nofile": {"Name": "nofile", "Hard": 65536, "Soft": 65536}}, "live-restore": false}"#;

/// An agent with only the hardening source.
struct Harness(TestAgent);

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl Harness {
    fn daemon_json(&self) -> std::path::PathBuf {
        self.path("daemon.json")
    }

    fn posture(&self, target: &str, check: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == "posture" && e["posture"]["check"] == check)
            .filter(|e| match target {
                "daemon" => e["posture"]["target"] == "daemon",
                id => e["container"]["id"] == id,
            })
            .collect()
    }

    fn wait(&self, what: &str, pred: impl Fn(&Harness) -> Option<Value>) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = pred(self) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not seen after 30 s; last events: {:#?}",
                self.events().iter().rev().take(5).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

struct DockerCleanup<'a>(&'a DockerEngine, Vec<String>);

impl Drop for DockerCleanup<'_> {
    fn drop(&mut self) {
        for c in &self.1 {
            let _ = self.0.try_docker(&["rm", "-f", c]);
        }
    }
}

fn status(e: &Value) -> &str {
    e["posture"]["status"].as_str().unwrap_or("")
}

#[test]
fn containers_and_daemon_are_judged_and_a_regression_is_detected() {
    let engine = DockerEngine::find();
    let h = Harness(TestAgent::new());
    std::fs::write(h.daemon_json(), GOOD_DAEMON_JSON).unwrap();
    h.configure(
        &format!(
            "  hardening:\n    docker_endpoint: {}\n    daemon_json: {}\n    schedule:\n      interval: 2s\n",
            engine.host,
            h.daemon_json().display()
        ),
        "",
    );
    let tag = std::process::id();
    let loose = engine.docker(&[
        "run",
        "-d",
        "--name",
        &format!("vigil-hard-loose-{tag}"),
        &engine.image,
        "sleep",
        "3600",
    ]);
    let tight = engine.docker(&[
        "run",
        "-d",
        "--name",
        &format!("vigil-hard-tight-{tag}"),
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--user",
        "1000:1000",
        "--read-only",
        "--pids-limit",
        "50",
        "--security-opt",
        "no-new-privileges",
        "--health-cmd",
        "true",
        "--health-interval",
        "30s",
        &engine.image,
        "sleep",
        "3600",
    ]);
    let _cleanup = DockerCleanup(&engine, vec![loose.clone(), tight.clone()]);
    let agent = h.start();

    // The container with no limits, running as root.
    let check = |target: &str, id: &str| {
        h.wait(&format!("{id} on {target}"), |h| {
            h.posture(target, id).into_iter().next()
        })
    };
    for (id, want) in [
        ("vigil-hard-2.1", "pass"),
        ("vigil-hard-2.2", "fail"),
        ("vigil-hard-2.3", "fail"),
        ("vigil-hard-2.4", "fail"),
        ("vigil-hard-2.5", "fail"),
        ("vigil-hard-2.6", "pass"),
        ("vigil-hard-2.11", "pass"),
        ("vigil-hard-2.12", "fail"),
        ("vigil-hard-2.13", "fail"),
    ] {
        let e = check(&loose, id);
        assert_eq!(status(&e), want, "{id} on the loose container: {e:#}");
        assert_eq!(e["source"], "hardening");
        assert_eq!(e["posture"]["target"], "container");
        assert!(
            e["posture"]["benchmark"]
                .as_str()
                .unwrap()
                .starts_with("CIS Docker Benchmark")
        );
        if want == "fail" {
            assert_eq!(e["outcome"], "failure");
            assert!(e["posture"]["reason"].is_string(), "{e:#}");
        }
    }
    let root = check(&loose, "vigil-hard-2.4");
    assert_eq!(root["posture"]["reason"], "runs as root (no user set)");
    let no_mem = check(&loose, "vigil-hard-2.2");
    assert!(
        no_mem["container"]["name"]
            .as_str()
            .unwrap()
            .starts_with("vigil-hard-loose")
    );
    // The locked-down one.
    for id in [
        "vigil-hard-2.2",
        "vigil-hard-2.3",
        "vigil-hard-2.4",
        "vigil-hard-2.5",
        "vigil-hard-2.12",
        "vigil-hard-2.13",
        "vigil-hard-2.14",
    ] {
        assert_eq!(
            status(&check(&tight, id)),
            "pass",
            "{id} on the tight container"
        );
    }
    // The daemon: this dockerd runs with --userland-proxy=false on its command line, and
    // the configuration file sets default ulimits.
    assert_eq!(status(&check("daemon", "vigil-hard-1.8")), "pass");
    assert_eq!(status(&check("daemon", "vigil-hard-1.6")), "pass");
    assert_eq!(status(&check("daemon", "vigil-hard-1.3")), "fail");
    // Failures of a first run are not regressions.
    assert!(
        h.events().iter().all(|e| e["detections"].is_null()),
        "a first run raised a detection"
    );

    // Weakened: default ulimits removed. The next run turns 1.6 from pass to fail.
    std::fs::write(h.daemon_json(), r#"{"live-restore": false}"#).unwrap();
    let regressed = h.wait("the 1.6 regression", |h| {
        h.posture("daemon", "vigil-hard-1.6")
            .into_iter()
            .find(|e| e["posture"]["regressed"] == true)
    });
    assert_eq!(status(&regressed), "fail");
    assert_eq!(regressed["posture"]["previous_status"], "pass");
    assert_eq!(regressed["detections"][0]["rule"], "posture.regression");
    // Still failing next time: no second detection.
    let again = h.wait("1.6 failing again", |h| {
        h.posture("daemon", "vigil-hard-1.6")
            .into_iter()
            .find(|e| e["posture"]["previous_status"] == "fail")
    });
    assert!(again["detections"].is_null(), "{again:#}");

    // Broken: not JSON. The checks that need the file become unknown, nothing fires, and
    // the agent keeps running.
    std::fs::write(h.daemon_json(), b"{\"live-restore\": tr\xff").unwrap();
    let unknown = h.wait("1.6 unknown", |h| {
        h.posture("daemon", "vigil-hard-1.6")
            .into_iter()
            .find(|e| status(e) == "unknown")
    });
    assert!(
        unknown["posture"]["reason"]
            .as_str()
            .unwrap()
            .contains("daemon.json")
    );
    assert!(unknown["detections"].is_null());

    // An unknown result in between keeps the last known one: pass, then unknown, then fail
    // is a regression.
    let daemon_16_after = |mark: usize, what: &str, want: &str| {
        h.wait(what, |h| {
            h.events().into_iter().skip(mark).find(|e| {
                e["kind"] == "posture"
                    && e["posture"]["target"] == "daemon"
                    && e["posture"]["check"] == "vigil-hard-1.6"
                    && status(e) == want
            })
        })
    };
    let mark = h.events().len();
    std::fs::write(h.daemon_json(), GOOD_DAEMON_JSON).unwrap();
    daemon_16_after(mark, "1.6 passing again", "pass");
    let mark = h.events().len();
    std::fs::write(h.daemon_json(), b"{\"live-restore\": tr\xff").unwrap();
    daemon_16_after(mark, "1.6 unknown again", "unknown");
    let mark = h.events().len();
    std::fs::write(h.daemon_json(), r#"{"live-restore": false}"#).unwrap();
    let second = daemon_16_after(mark, "1.6 failing after unknown", "fail");
    assert_eq!(second["posture"]["regressed"], true, "{second:#}");
    assert_eq!(second["posture"]["previous_status"], "pass");

    let regressions = h
        .events()
        .iter()
        .filter(|e| !e["detections"].is_null())
        .count();
    assert_eq!(
        regressions, 2,
        "exactly two regression detections in the whole run"
    );
    assert!(
        h.path("state/hardening-state.json").exists(),
        "results are kept for the next start"
    );
    agent.terminate();
}
