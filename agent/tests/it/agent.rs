//! The `vigil-agent` binary as the engine tests run it: a directory of its own, a
//! configuration with the test's sources, a file output read back as a user reads it, and a
//! metrics port of its own.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::containerd::Containerd;
use vigil_testkit::process::AgentProcess;

pub struct TestAgent {
    dir: tempfile::TempDir,
    metrics_port: u16,
}

impl TestAgent {
    /// A fresh directory and a free metrics port; `configure` writes the configuration.
    pub fn new() -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        TestAgent { dir, metrics_port }
    }

    /// An agent whose `sources:` block holds, besides the audit-log source turned off,
    /// `sources` (entries indented by two spaces, each line ending in a newline).
    pub fn with_sources(sources: &str) -> TestAgent {
        let agent = TestAgent::new();
        agent.configure(sources, "");
        agent
    }

    /// `name` in the agent's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `agent.yaml`: node `test-node`, `sources` as for `with_sources`, the events
    /// to `events.json` (fsynced per batch, so a reader sees whole batches), and `extra`
    /// top-level lines.
    pub fn configure(&self, sources: &str, extra: &str) {
        let config = format!(
            "node: test-node\nstate_dir: {state}\nsources:\n  audit_log:\n    enabled: false\n{sources}outputs:\n  - type: file\n    path: {out}\n    fsync: batch\n{extra}metrics_listen: 127.0.0.1:{port}\n",
            state = self.path("state").display(),
            out = self.path("events.json").display(),
            port = self.metrics_port,
        );
        std::fs::write(self.path("agent.yaml"), config).unwrap();
    }

    pub fn start(&self) -> AgentProcess {
        AgentProcess::start(
            Path::new(env!("CARGO_BIN_EXE_vigil-agent")),
            &self.path("agent.yaml"),
        )
    }

    /// The complete lines of the output, as events.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path("events.json")).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The `/metrics` page, empty while the agent does not listen (yet).
    pub fn metrics(&self) -> String {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of the first series whose line starts with `line_prefix`.
    pub fn metric(&self, line_prefix: &str) -> Option<f64> {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// Waits (30 s at most) until the metrics page has the line `line`; `what` says what
    /// that means when it never comes.
    pub fn wait_metric_line(&self, line: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.metrics().lines().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "{what}: no `{line}` in the metrics after 30 s:\n{}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The names of the rules an event fired, sorted.
pub fn rules(e: &Value) -> Vec<String> {
    let mut names: Vec<String> = e["detections"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|d| d["rule"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Removes a test's containerd containers even when an assertion fails half-way.
pub struct ContainerdCleanup<'a>(pub &'a Containerd, pub Vec<String>);

impl Drop for ContainerdCleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            self.0.remove(id);
        }
    }
}
