//! `vigil-agent run` end to end: the binary tails a real audit log through rotation,
//! copytruncate, restarts and `kill -9`, and every event reaches the file output.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vigil_testkit::process::AgentProcess;

struct Harness {
    dir: tempfile::TempDir,
    next: usize,
    written: Vec<String>,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("audit")).unwrap();
        let config = format!(
            "node: test-node\nstate_dir: {state}\nsources:\n  audit_log:\n    path: {log}\n    start_at: beginning\n    poll_interval_ms: 50\noutputs:\n  - type: file\n    path: {out}\n    fsync: batch\npipeline:\n  batch_events: 64\n  checkpoint_interval_ms: 100\nmetrics_listen: 127.0.0.1:0\n",
            state = dir.path().join("state").display(),
            log = dir.path().join("audit/audit.log").display(),
            out = dir.path().join("out/events.json").display(),
        );
        std::fs::write(dir.path().join("agent.yaml"), config).unwrap();
        Harness {
            dir,
            next: 0,
            written: Vec::new(),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("audit/audit.log")
    }

    fn start(&self) -> AgentProcess {
        AgentProcess::start(
            Path::new(env!("CARGO_BIN_EXE_vigil-agent")),
            &self.dir.path().join("agent.yaml"),
        )
    }

    /// Appends `n` audit events to `path`, each with a unique auditID.
    fn write(&mut self, path: &Path, n: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let mut buf = String::new();
        for _ in 0..n {
            let id = format!("evt-{:06}", self.next);
            self.next += 1;
            buf.push_str(&format!(
                r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/secrets","verb":"list","user":{{"username":"dev-alice@example.com","groups":["system:authenticated"]}},"sourceIPs":["203.0.113.45"],"objectRef":{{"resource":"secrets","namespace":"shop","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-02T10:15:30.412871Z","stageTimestamp":"2024-05-02T10:15:30.420000Z"}}"#
            ));
            buf.push('\n');
            self.written.push(id);
        }
        f.write_all(buf.as_bytes()).unwrap();
    }

    /// auditID → (count, the event ids it was shipped with), from the complete lines of the
    /// output (the agent may be writing the last one).
    fn delivered(&self) -> HashMap<String, (usize, Vec<String>)> {
        self.read_output().0
    }

    /// The delivered events, and the lines that are not events (fragments a kill -9 left).
    fn read_output(&self) -> (HashMap<String, (usize, Vec<String>)>, usize) {
        let text =
            std::fs::read_to_string(self.dir.path().join("out/events.json")).unwrap_or_default();
        let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let mut seen: HashMap<String, (usize, Vec<String>)> = HashMap::new();
        let mut fragments = 0;
        for line in complete.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                fragments += 1;
                continue;
            };
            let audit_id = v["raw"]["auditID"].as_str().unwrap().to_owned();
            let e = seen.entry(audit_id).or_default();
            e.0 += 1;
            e.1.push(v["id"].as_str().unwrap().to_owned());
        }
        (seen, fragments)
    }

    fn wait_for_all(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self.delivered();
            if self.written.iter().all(|id| d.contains_key(id)) {
                return;
            }
            let missing = self
                .written
                .iter()
                .filter(|id| !d.contains_key(*id))
                .count();
            assert!(
                Instant::now() < deadline,
                "{missing} of {} events never arrived",
                self.written.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn duplicates(&self) -> usize {
        self.delivered().values().map(|(n, _)| n - 1).sum()
    }
}

#[test]
fn rotation_copytruncate_and_graceful_restarts_lose_and_repeat_nothing() {
    let mut h = Harness::new();
    let log = h.log();
    h.write(&log, 300);
    let agent = h.start();
    h.wait_for_all();

    // Rotation as kube-apiserver does it: rename, then a new file at the path.
    std::fs::rename(
        &log,
        h.dir.path().join("audit/audit-2024-05-02T10-15-30.000.log"),
    )
    .unwrap();
    h.write(&log, 200);
    h.wait_for_all();

    // copytruncate as logrotate does it.
    std::fs::copy(&log, h.dir.path().join("audit/audit.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    h.write(&log, 150);
    h.wait_for_all();

    // A graceful restart, with events written while the agent is down.
    agent.terminate();
    h.write(&log, 250);
    let agent = h.start();
    h.wait_for_all();
    agent.terminate();

    assert_eq!(
        h.duplicates(),
        0,
        "graceful restarts and rotations must not repeat events"
    );
    assert_eq!(h.delivered().len(), 900);
}

#[test]
fn kill_9_loses_nothing_and_repeats_events_with_their_ids() {
    let mut h = Harness::new();
    let log = h.log();
    let mut agent = h.start();
    for round in 0..2 {
        // Write while the agent reads, then kill it without warning mid-stream.
        for _ in 0..10 {
            h.write(&log, 200);
            std::thread::sleep(Duration::from_millis(15));
        }
        agent.0.kill().unwrap();
        agent.0.wait().unwrap();
        h.write(&log, 100 + round);
        agent = h.start();
    }
    h.wait_for_all();
    agent.terminate();

    let delivered = h.delivered();
    assert_eq!(delivered.len(), h.written.len(), "every event is delivered");
    // Replays carry the same event id as the first delivery.
    for (audit_id, (_, ids)) in &delivered {
        assert!(
            ids.iter().all(|i| i == &ids[0]),
            "{audit_id} was shipped under different ids: {ids:?}"
        );
    }
    // Duplicates are bounded by what can be in flight plus one checkpoint interval, per crash:
    // queue_batches (8) × batch_events (64) + a 100 ms interval of reading; far below 2 × 2,000.
    // A kill in the middle of a write leaves at most one fragment, on a line of its own.
    assert!(
        h.read_output().1 <= 2,
        "{} torn lines after 2 kills",
        h.read_output().1
    );
    let dups = h.duplicates();
    eprintln!("duplicates after 2 kill -9: {dups}");
    assert!(dups <= 2 * (8 * 64 + 2 * 64 + 200), "{dups} duplicates");
}
