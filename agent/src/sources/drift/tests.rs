//! The watch engine on real directories with a real inotify watcher: a fake writable layer
//! and a fake image layer under a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use notify::{RecommendedWatcher, Watcher};
use vigil_core::event::{Container, FileChangeKind};

use super::layer::{Engine, EngineConfig, Finding, Layer};
use super::*;

struct Rig {
    _dir: tempfile::TempDir,
    upper: PathBuf,
    lower: PathBuf,
    engine: Engine<RecommendedWatcher>,
    rx: Receiver<notify::Result<notify::Event>>,
    metrics: Arc<DriftMetrics>,
}

fn cfg() -> EngineConfig {
    EngineConfig {
        sensitive: default_sensitive_paths(),
        max_watches: 1000,
        max_pending: 1000,
        max_tracked_files: 1000,
        max_hash_bytes: 1 << 20,
        settle: Duration::from_millis(50),
        max_delay: Duration::from_millis(500),
        events_per_sec: 1000.0,
        burst: 1000.0,
        report_existing: false,
    }
}

impl Rig {
    fn new(cfg: EngineConfig) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        let lower = dir.path().join("lower");
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        let (tx, rx) = channel();
        let watcher = notify::recommended_watcher(move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        let metrics = Arc::new(DriftMetrics::default());
        let engine = Engine::new(cfg, watcher, metrics.clone());
        Rig {
            upper: upper.canonicalize().unwrap(),
            lower,
            _dir: dir,
            engine,
            rx,
            metrics,
        }
    }

    fn layer(&self) -> Layer {
        Layer {
            id: "c1".into(),
            container: Container {
                id: Some("c1".into()),
                name: Some("web".into()),
                ..Container::default()
            },
            upper: self.upper.clone(),
            lowers: vec![self.lower.clone()],
        }
    }

    fn start(&mut self) -> Vec<Finding> {
        let l = self.layer();
        self.engine.set_layers(vec![l], Instant::now())
    }

    /// Feeds notifications until `quiet` passes without any, then flushes everything.
    fn settle(&mut self) -> Vec<Finding> {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.rx.recv_timeout(Duration::from_millis(150)) {
                Ok(e) => self.engine.on_event(e, Instant::now()),
                Err(_) => break,
            }
            out.extend(self.engine.flush(Instant::now(), false));
        }
        out.extend(
            self.engine
                .flush(Instant::now() + Duration::from_secs(10), true),
        );
        out
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.upper.join(rel)
    }
}

fn paths(f: &[Finding]) -> Vec<(String, FileChangeKind)> {
    let mut v: Vec<_> = f
        .iter()
        .map(|f| (f.file.path.clone(), f.file.change))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn write_exec(p: &Path, bytes: &[u8]) {
    std::fs::write(p, bytes).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_new_executable_in_a_new_directory_is_drift_with_its_hash() {
    let mut r = Rig::new(cfg());
    assert!(r.start().is_empty());
    // As a copy-up makes it: the directory first, then the file in it, before any watch
    // on the directory can exist.
    std::fs::create_dir(r.path("tmp")).unwrap();
    write_exec(&r.path("tmp/x"), b"\x7fELF\x02\x01\x01 a binary");
    std::fs::write(r.path("tmp/notes.txt"), b"plain").unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/tmp/x".to_owned(), FileChangeKind::Created)]
    );
    let f = &found[0].file;
    assert!(f.elf && f.executable && !f.sensitive && !f.in_image);
    assert_eq!(f.size, Some(16));
    assert_eq!(f.sha256.as_ref().map(String::len), Some(64));
    assert!(r.metrics.skipped("not_reported") >= 1);
}

#[test]
fn an_elf_without_exec_bit_is_still_reported() {
    let mut r = Rig::new(cfg());
    r.start();
    std::fs::write(r.path("payload"), b"\x7fELF....").unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/payload".to_owned(), FileChangeKind::Created)]
    );
    assert!(found[0].file.elf && !found[0].file.executable);
    // Then made executable: a mode change.
    std::fs::set_permissions(r.path("payload"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/payload".to_owned(), FileChangeKind::Chmod)]
    );
}

#[test]
fn an_image_file_changed_under_etc_is_a_modified_sensitive_file() {
    let mut r = Rig::new(cfg());
    r.start();
    std::fs::create_dir(r.path("etc")).unwrap();
    std::fs::write(
        r.path("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n",
    )
    .unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/etc/passwd".to_owned(), FileChangeKind::Modified)]
    );
    let f = &found[0].file;
    assert!(f.sensitive && f.in_image && !f.executable);
    assert!(f.sha256.is_some());
    // Appending again: modified, against the layer's own copy now.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(r.path("etc/passwd"))
        .unwrap();
    std::io::Write::write_all(&mut file, b"more:x:0:0::/:/bin/sh\n").unwrap();
    drop(file);
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/etc/passwd".to_owned(), FileChangeKind::Modified)]
    );
    // Deleted: reported, sensitive.
    std::fs::remove_file(r.path("etc/passwd")).unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/etc/passwd".to_owned(), FileChangeKind::Deleted)]
    );
}

#[test]
fn symlinks_in_the_layer_are_reported_not_followed() {
    let mut r = Rig::new(cfg());
    r.start();
    std::fs::create_dir(r.path("etc")).unwrap();
    // A link to the host's shadow file, a loop, and a directory link out of the layer.
    std::os::unix::fs::symlink("/etc/shadow", r.path("etc/shadow")).unwrap();
    std::os::unix::fs::symlink("loop", r.path("etc/loop")).unwrap();
    std::os::unix::fs::symlink("/", r.path("rootlink")).unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [
            ("/etc/loop".to_owned(), FileChangeKind::Created),
            ("/etc/shadow".to_owned(), FileChangeKind::Created)
        ]
    );
    for f in &found {
        assert_eq!(f.file.hash_skipped.as_deref(), Some("not_regular"));
        assert_eq!(f.file.sha256, None);
    }
    // Nothing under the link to / was watched or walked.
    assert!(r.engine.watches() <= 3, "{}", r.engine.watches());
}

#[test]
fn watches_are_bounded_and_released() {
    let mut c = cfg();
    c.max_watches = 3;
    let mut r = Rig::new(c);
    for d in ["a/b/c/d", "e/f"] {
        std::fs::create_dir_all(r.path(d)).unwrap();
    }
    r.start();
    assert_eq!(r.engine.watches(), 3);
    assert!(r.metrics.skipped("watch_limit") >= 1);
    r.engine.set_layers(Vec::new(), Instant::now());
    assert_eq!(r.engine.watches(), 0);
    assert_eq!(r.engine.containers(), 0);
    // Changes after release give nothing.
    write_exec(&r.path("late"), b"#!/bin/sh\n");
    assert!(r.settle().is_empty());
}

#[test]
fn a_flood_is_rate_limited_and_counted() {
    let mut c = cfg();
    c.events_per_sec = 1.0;
    c.burst = 5.0;
    let mut r = Rig::new(c);
    r.start();
    for i in 0..50 {
        write_exec(&r.path(&format!("x{i}")), b"#!/bin/sh\n");
    }
    let found = r.settle();
    assert_eq!(found.len(), 5, "{:?}", paths(&found));
    assert_eq!(r.metrics.skipped("rate_limited"), 45);
}

#[test]
fn an_overflow_rescans_against_the_inventory() {
    let mut c = cfg();
    c.max_pending = 2;
    let mut r = Rig::new(c);
    std::fs::create_dir(r.path("bin")).unwrap();
    write_exec(&r.path("bin/tool"), b"#!/bin/sh\necho 1\n");
    r.start();
    // The kernel's queue overflowed: the engine is told so and must find the changes by
    // comparing the layer with what it knew.
    write_exec(&r.path("bin/tool"), b"#!/bin/sh\necho 2 changed\n");
    write_exec(&r.path("new"), b"#!/bin/sh\n");
    while r.rx.recv_timeout(Duration::from_millis(100)).is_ok() {}
    r.engine.on_event(
        Ok(notify::Event::new(notify::EventKind::Other).set_flag(notify::event::Flag::Rescan)),
        Instant::now(),
    );
    let found = r.engine.flush(Instant::now(), false);
    assert_eq!(
        paths(&found),
        [
            ("/bin/tool".to_owned(), FileChangeKind::Modified),
            ("/new".to_owned(), FileChangeKind::Created)
        ]
    );
    assert_eq!(r.metrics.skipped("queue_overflow"), 1);
    // A full pending set also falls back to a rescan, without losing the change.
    for i in 0..5 {
        write_exec(&r.path(&format!("p{i}")), b"#!/bin/sh\n");
    }
    let found = r.settle();
    assert_eq!(found.len(), 5, "{:?}", paths(&found));
    assert!(r.metrics.skipped("pending_full") >= 1);
    // Garbage from the watcher is counted, not fatal.
    r.engine
        .on_event(Err(notify::Error::generic("boom")), Instant::now());
    assert_eq!(r.metrics.skipped("notify_error"), 1);
}

#[test]
fn existing_files_are_reported_only_when_asked() {
    let mut c = cfg();
    c.report_existing = true;
    let mut r = Rig::new(c);
    std::fs::create_dir(r.path("etc")).unwrap();
    std::fs::write(r.path("etc/passwd"), "x").unwrap();
    write_exec(&r.path("miner"), b"\x7fELF");
    std::fs::write(r.path("data.txt"), "x").unwrap();
    let found = r.start();
    assert_eq!(found.len(), 2, "{:?}", paths(&found));
    assert!(found.iter().all(|f| f.existing));
    let e = finding_event(found[0].clone(), "2026-01-01T00:00:00.000000000Z", 1, 0);
    assert_eq!(e.action, "existing");
}

#[test]
fn a_renamed_directory_takes_its_watches_with_it() {
    let mut r = Rig::new(cfg());
    std::fs::create_dir_all(r.path("opt/app")).unwrap();
    write_exec(&r.path("opt/app/run"), b"#!/bin/sh\n");
    r.start();
    let before = r.engine.watches();
    std::fs::rename(r.path("opt/app"), r.path("opt/app2")).unwrap();
    let found = r.settle();
    // The executable is reported gone from its old place and new in its new one.
    assert_eq!(
        paths(&found),
        [
            ("/opt/app/run".to_owned(), FileChangeKind::Deleted),
            ("/opt/app2/run".to_owned(), FileChangeKind::Created)
        ]
    );
    assert_eq!(r.engine.watches(), before);
}

#[test]
fn a_directory_removed_and_made_again_is_watched_again() {
    let mut r = Rig::new(cfg());
    std::fs::create_dir_all(r.path("opt/app")).unwrap();
    write_exec(&r.path("opt/app/old"), b"#!/bin/sh\n");
    r.start();
    // Within one settle time, as `rm -rf d && mkdir d` does.
    std::fs::remove_dir_all(r.path("opt/app")).unwrap();
    std::fs::create_dir(r.path("opt/app")).unwrap();
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/opt/app/old".to_owned(), FileChangeKind::Deleted)]
    );
    // What is written into the new directory afterwards is seen.
    write_exec(&r.path("opt/app/new"), b"\x7fELF\x02\x01\x01 a binary");
    let found = r.settle();
    assert_eq!(
        paths(&found),
        [("/opt/app/new".to_owned(), FileChangeKind::Created)]
    );
}

#[test]
fn file_events_are_valid_events() {
    let f = Finding {
        container: Container {
            id: Some("c1".into()),
            ..Container::default()
        },
        id: "c1".into(),
        file: vigil_core::event::FileChange {
            path: "/tmp/x".into(),
            change: FileChangeKind::Created,
            size: Some(3),
            sha256: Some("ab".repeat(32)),
            executable: true,
            elf: true,
            ..Default::default()
        },
        existing: false,
    };
    let e = finding_event(f, "2026-01-01T00:00:00.000000000Z", 7, 0);
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["kind"], "file");
    assert_eq!(v["source"], "file");
    assert_eq!(v["file"]["change"], "created");
    let schema = vigil_core::event::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&v), "{v}");
}

#[test]
fn config_defaults_and_errors() {
    let c = crate::config::AgentConfig::parse("sources:\n  drift: {}\n").unwrap();
    assert_eq!(c.sources.drift, Some(DriftConfig::default()));
    let err =
        crate::config::AgentConfig::parse("sources:\n  drift:\n    settle_ms: 1\n").unwrap_err();
    assert!(err.starts_with("sources.drift.settle_ms"), "{err}");
    let err = crate::config::AgentConfig::parse("sources:\n  drift:\n    sensitive_paths: [etc]\n")
        .unwrap_err();
    assert!(err.starts_with("sources.drift.sensitive_paths"), "{err}");
    let err =
        crate::config::AgentConfig::parse("sources:\n  drift:\n    max_wathces: 1\n").unwrap_err();
    assert!(err.contains("max_wathces"), "{err}");
}

// Keeps the watcher trait in scope for `unwatch` in the engine's generic code paths.
#[allow(dead_code)]
fn _assert_watcher<W: Watcher>() {}
