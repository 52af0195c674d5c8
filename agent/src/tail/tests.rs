use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::*;

/// Everything the observer was told, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Ev {
    Opened {
        offset: u64,
        resumed: bool,
    },
    Recovered {
        found: String,
        offset: u64,
        known: bool,
    },
    RecoveryLimited(RecoveryLimit),
    Rotated,
    Closed {
        offset: u64,
    },
    Truncated {
        old: u64,
        new: u64,
    },
    LineCut {
        offset: u64,
        len: u64,
    },
    PartialDropped {
        offset: u64,
        len: u64,
    },
    Skipped {
        offset: u64,
        len: u64,
    },
    Backlog,
    Io(String),
    CheckpointInvalid(String),
    Pruned(usize),
    Evicted(usize),
    WatchFailed(String),
}

#[derive(Default, Debug)]
pub(super) struct Recorder(pub(super) Vec<Ev>);

impl Recorder {
    pub(super) fn has(&self, f: impl Fn(&Ev) -> bool) -> bool {
        self.0.iter().any(f)
    }
}

impl TailObserver for Recorder {
    fn file_opened(&mut self, _: &Path, offset: u64, resumed: bool) {
        self.0.push(Ev::Opened { offset, resumed });
    }
    fn rotated_file_recovered(&mut self, _: &Path, found: &Path, offset: u64, known: bool) {
        let found = found.file_name().unwrap().to_string_lossy().into_owned();
        self.0.push(Ev::Recovered {
            found,
            offset,
            known,
        });
    }
    fn recovery_limited(&mut self, _: &Path, limit: RecoveryLimit) {
        self.0.push(Ev::RecoveryLimited(limit));
    }
    fn file_rotated(&mut self, _: &Path) {
        self.0.push(Ev::Rotated);
    }
    fn file_closed(&mut self, _: &Path, offset: u64) {
        self.0.push(Ev::Closed { offset });
    }
    fn file_truncated(&mut self, _: &Path, old: u64, new: u64) {
        self.0.push(Ev::Truncated { old, new });
    }
    fn line_truncated(&mut self, _: &Path, offset: u64, len: u64) {
        self.0.push(Ev::LineCut { offset, len });
    }
    fn partial_line_dropped(&mut self, _: &Path, offset: u64, len: u64) {
        self.0.push(Ev::PartialDropped { offset, len });
    }
    fn bytes_skipped(&mut self, _: &Path, offset: u64, len: u64) {
        self.0.push(Ev::Skipped { offset, len });
    }
    fn rotation_backlog_full(&mut self, _: &Path) {
        self.0.push(Ev::Backlog);
    }
    fn io_error(&mut self, _: &Path, error: &TailError) {
        self.0.push(Ev::Io(error.to_string()));
    }
    fn checkpoint_invalid(&mut self, error: &TailError) {
        let kind = match error {
            TailError::CheckpointCorrupt { .. } => "corrupt",
            TailError::CheckpointVersion { .. } => "version",
            _ => "other",
        };
        self.0.push(Ev::CheckpointInvalid(kind.into()));
    }
    fn checkpoint_pruned(&mut self, count: usize) {
        self.0.push(Ev::Pruned(count));
    }
    fn checkpoint_evicted(&mut self, count: usize) {
        self.0.push(Ev::Evicted(count));
    }
    fn watch_failed(&mut self, error: &TailError) {
        self.0.push(Ev::WatchFailed(error.to_string()));
    }
}

pub(super) fn config(dir: &Path, names: &[&str]) -> TailConfig {
    TailConfig {
        paths: names.iter().map(|n| dir.join(n)).collect(),
        checkpoint_path: dir.join("checkpoint.json"),
        start_at: StartAt::Beginning,
        max_line_bytes: 1024,
        poll_interval: Duration::from_millis(10),
        read_budget_bytes: 64 * 1024,
        max_open_files: usize::MAX,
        idle_close: None,
        max_watched_dirs: usize::MAX,
    }
}

pub(super) fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(bytes).unwrap();
}

fn text(line: &Line) -> String {
    String::from_utf8(line.bytes.clone()).unwrap()
}

fn texts(lines: &[Line]) -> Vec<String> {
    lines.iter().map(text).collect()
}

/// Reads until `n` lines came (failing after 5 s), then makes sure no more
/// are pending.
fn collect<O: TailObserver>(tailer: &mut Tailer<O>, n: usize) -> Vec<Line> {
    let start = Instant::now();
    let mut lines = Vec::new();
    while lines.len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "got only {:?}",
            texts(&lines)
        );
        lines.extend(tailer.read_batch(n - lines.len(), Duration::from_millis(20)));
    }
    let extra = tailer.read_batch(100, Duration::from_millis(30));
    assert!(extra.is_empty(), "unexpected {:?}", texts(&extra));
    lines
}

fn new_tailer(cfg: &TailConfig) -> Tailer<Recorder> {
    Tailer::new(cfg.clone(), Recorder::default()).unwrap()
}

fn ack_all(tailer: &Tailer<Recorder>, lines: &[Line]) {
    let checkpointer = tailer.checkpointer();
    for line in lines {
        checkpointer.ack(line.file, line.end);
    }
    checkpointer.persist().unwrap();
}

fn read_checkpoint(dir: &TempDir) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.path().join("checkpoint.json")).unwrap()).unwrap()
}

fn setup(names: &[&str]) -> (TempDir, TailConfig, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), names);
    let path = cfg.paths[0].clone();
    (dir, cfg, path)
}

#[test]
fn reads_complete_lines_with_positions() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"one\ntwo\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 2);
    assert_eq!(texts(&lines), ["one", "two"]);
    assert_eq!((lines[0].offset, lines[0].end), (0, 4));
    assert_eq!((lines[1].offset, lines[1].end), (4, 8));
    assert_eq!(&*lines[0].path, path.as_path());
    assert!(!lines[0].truncated);
    assert_eq!(lines[0].file, lines[1].file);
    append(&path, b"three\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["three"]);
}

#[test]
fn partial_line_is_held_until_complete() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"first\nsec");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["first"]);
    append(&path, b"ond");
    assert!(t.read_batch(10, Duration::from_millis(30)).is_empty());
    append(&path, b"\n");
    let lines = collect(&mut t, 1);
    assert_eq!(texts(&lines), ["second"]);
    assert_eq!((lines[0].offset, lines[0].end), (6, 13));
}

#[test]
fn long_lines_are_cut_and_the_rest_skipped() {
    let (_dir, mut cfg, path) = setup(&["a.log"]);
    cfg.max_line_bytes = 1024;
    let mut big = vec![b'x'; 10 * 1024 * 1024];
    big.push(b'\n');
    append(&path, b"short\n");
    append(&path, &big);
    append(&path, b"after\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 3);
    assert_eq!(texts(&lines)[0], "short");
    assert_eq!(lines[1].bytes, vec![b'x'; 1024]);
    assert!(lines[1].truncated);
    assert_eq!(lines[1].end, 6 + big.len() as u64);
    assert_eq!(texts(&lines)[2], "after");
    assert!(!lines[2].truncated);
    assert!(t.observer().has(|e| *e
        == Ev::LineCut {
            offset: 6,
            len: 10 * 1024 * 1024
        }));
}

#[test]
fn rename_rotation_drains_the_old_file_first() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"a1\na2\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&t.read_batch(1, Duration::ZERO)), ["a1"]);
    append(&path, b"a3\npart");
    let rotated = dir.path().join("a.log.1");
    fs::rename(&path, &rotated).unwrap();
    append(&path, b"b1\n");
    // A writer still holding the old file finishes its line after the rename.
    append(&rotated, b"ial\n");
    let lines = collect(&mut t, 4);
    assert_eq!(texts(&lines), ["a2", "a3", "partial", "b1"]);
    assert_eq!(lines[3].offset, 0);
    assert_ne!(lines[2].file, lines[3].file);
    let events = &t.observer().0;
    assert!(events.contains(&Ev::Rotated));
    assert!(events.contains(&Ev::Closed { offset: 17 }));
    append(&rotated, b"too late\n");
    append(&path, b"b2\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["b2"]);
}

#[test]
fn closing_rotated_files_gives_their_descriptors_back() {
    let (dir, mut cfg, path) = setup(&["a.log", "b.log"]);
    cfg.max_open_files = 2;
    let other = cfg.paths[1].clone();
    append(&path, b"r0\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["r0"]);
    // Far more rotations than descriptors: each rotated file is closed once read.
    for i in 1..=5 {
        fs::rename(&path, dir.path().join(format!("a.log.{i}"))).unwrap();
        append(&path, format!("r{i}\n").as_bytes());
        assert_eq!(texts(&collect(&mut t, 1)), [format!("r{i}")]);
        assert_eq!(t.stats().open_files, 1);
    }
    // So a file appearing later still gets one.
    append(&other, b"b1\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["b1"]);
    assert_eq!(t.stats().open_files, 2);
}

#[test]
fn unfinished_line_of_a_rotated_file_is_dropped_and_reported() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"a1\nnever finished");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["a1"]);
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    append(&path, b"b1\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["b1"]);
    assert!(
        t.observer()
            .has(|e| *e == Ev::PartialDropped { offset: 3, len: 14 })
    );
}

#[test]
fn copytruncate_restarts_from_zero_and_is_reported() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"one\ntwo\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 2)), ["one", "two"]);
    fs::copy(&path, dir.path().join("a.log.1")).unwrap();
    File::create(&path).unwrap();
    append(&path, b"3\n");
    let lines = collect(&mut t, 1);
    assert_eq!(texts(&lines), ["3"]);
    assert_eq!(lines[0].offset, 0);
    assert!(t.observer().has(|e| *e == Ev::Truncated { old: 8, new: 2 }));
}

#[test]
fn truncate_then_regrow_past_the_offset_is_caught_by_the_fingerprint() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"one\ntwo\n");
    let mut t = new_tailer(&cfg);
    let old = collect(&mut t, 2);
    File::create(&path).unwrap();
    append(&path, b"three\nfour\nfive\n");
    let lines = collect(&mut t, 3);
    assert_eq!(texts(&lines), ["three", "four", "five"]);
    assert!(
        t.observer()
            .has(|e| *e == Ev::Truncated { old: 8, new: 16 })
    );
    assert_ne!(old[0].file, lines[0].file);
}

#[test]
fn delete_and_recreate_drains_then_reads_the_new_file() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"a1\na2\na3\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&t.read_batch(1, Duration::ZERO)), ["a1"]);
    fs::remove_file(&path).unwrap();
    append(&path, b"b1\n");
    let lines = collect(&mut t, 3);
    assert_eq!(texts(&lines), ["a2", "a3", "b1"]);
    assert_eq!(lines[2].offset, 0);
}

#[test]
fn deleted_file_without_successor_is_still_read_through_its_handle() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writer.write_all(b"a1\n").unwrap();
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["a1"]);
    fs::remove_file(&path).unwrap();
    writer.write_all(b"a2\n").unwrap();
    assert_eq!(texts(&collect(&mut t, 1)), ["a2"]);
    append(&path, b"b1\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["b1"]);
}

#[test]
fn restart_resumes_at_the_acked_offset_not_the_read_offset() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"l1\nl2\nl3\nl4\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 4);
    // Only the first two were handed on before the crash.
    ack_all(&t, &lines[..2]);
    drop(t);
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 2)), ["l3", "l4"]);
    assert!(t.observer().has(|e| *e
        == Ev::Opened {
            offset: 6,
            resumed: true
        }));
}

#[test]
fn checkpoint_file_is_versioned_json() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"hello\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 1);
    ack_all(&t, &lines);
    let json = read_checkpoint(&dir);
    assert_eq!(json["version"], 1);
    let entry = &json["files"][0];
    assert_eq!(entry["path"], path.to_str().unwrap());
    assert_eq!(entry["offset"], 6);
    assert_eq!(entry["fingerprint"]["len"], 6);
    assert_eq!(entry["fingerprint"]["xxh3"].as_str().unwrap().len(), 16);
    assert!(entry["dev"].is_u64() && entry["ino"].is_u64() && entry["last_seen"].is_u64());
    assert!(!dir.path().join("checkpoint.json.tmp").exists());
}

#[test]
fn corrupt_or_unknown_version_checkpoint_is_reported_and_ignored() {
    for (content, kind) in [
        (&b"{not json"[..], "corrupt"),
        (b"{\"version\":1,\"files\":[{\"path\":3}]}", "corrupt"),
        (b"{\"version\":99,\"files\":[]}", "version"),
    ] {
        let (dir, cfg, path) = setup(&["a.log"]);
        fs::write(dir.path().join("checkpoint.json"), content).unwrap();
        append(&path, b"x\n");
        let mut t = new_tailer(&cfg);
        assert!(
            t.observer()
                .has(|e| *e == Ev::CheckpointInvalid(kind.into()))
        );
        assert_eq!(texts(&collect(&mut t, 1)), ["x"]);
        // The next persist replaces the bad file.
        t.checkpointer().persist().unwrap();
        assert_eq!(read_checkpoint(&dir)["version"], 1);
    }
}

#[test]
fn unreadable_checkpoint_fails_startup() {
    let (dir, cfg, _) = setup(&["a.log"]);
    fs::create_dir(dir.path().join("checkpoint.json")).unwrap();
    assert!(matches!(Tailer::new(cfg, ()), Err(TailError::Io { .. })));
}

#[test]
fn start_at_end_skips_existing_content_and_a_partial_tail() {
    let (_dir, mut cfg, path) = setup(&["a.log"]);
    cfg.start_at = StartAt::End;
    append(&path, b"old1\nold2\nhalf");
    let mut t = new_tailer(&cfg);
    append(&path, b"-written\nnew\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["new"]);
    assert!(
        t.observer()
            .has(|e| *e == Ev::Skipped { offset: 14, len: 9 })
    );
    // The start position is committed even before any ack.
    t.checkpointer().persist().unwrap();
    drop(t);
    append(&path, b"while down\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 2)), ["new", "while down"]);
}

#[test]
fn start_at_end_applies_only_to_paths_the_checkpoint_does_not_know() {
    let (dir, mut cfg, path) = setup(&["a.log"]);
    cfg.start_at = StartAt::End;
    append(&path, b"skipped\n");
    let mut t = new_tailer(&cfg);
    append(&path, b"kept\n");
    let lines = collect(&mut t, 1);
    ack_all(&t, &lines);
    drop(t);
    // Rotated while the agent was down: the new file is read whole.
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    append(&path, b"new1\nnew2\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 2)), ["new1", "new2"]);
}

#[test]
fn files_appearing_later_are_read_from_the_beginning() {
    let (_dir, mut cfg, path) = setup(&["a.log"]);
    cfg.start_at = StartAt::End;
    let mut t = new_tailer(&cfg);
    assert!(t.read_batch(10, Duration::from_millis(20)).is_empty());
    append(&path, b"first\nsecond\n");
    assert_eq!(texts(&collect(&mut t, 2)), ["first", "second"]);
}

#[test]
fn rewritten_file_with_the_same_inode_is_read_from_zero_after_restart() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"old1\nold2\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 2);
    ack_all(&t, &lines);
    drop(t);
    // Same inode, new first line, already past the old offset.
    fs::write(&path, b"new1\nnew2\nnew3\n").unwrap();
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 3)), ["new1", "new2", "new3"]);
    assert!(t.observer().has(|e| *e
        == Ev::Opened {
            offset: 0,
            resumed: false
        }));
}

#[test]
fn file_truncated_while_down_with_the_same_first_line_is_read_from_zero() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"same\nold2\nold3\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 3);
    ack_all(&t, &lines);
    drop(t);
    fs::write(&path, b"same\nb\n").unwrap();
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 2)), ["same", "b"]);
    assert!(
        t.observer()
            .has(|e| *e == Ev::Truncated { old: 15, new: 7 })
    );
}

#[test]
fn resume_tolerates_a_changed_device_number() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"l1\nl2\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 2);
    ack_all(&t, &lines[..1]);
    drop(t);
    let mut json = read_checkpoint(&dir);
    json["files"][0]["dev"] = serde_json::json!(424242);
    fs::write(dir.path().join("checkpoint.json"), json.to_string()).unwrap();
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["l2"]);
}

#[test]
fn file_without_a_complete_first_line_is_not_fingerprinted_or_read() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"abc");
    let mut t = new_tailer(&cfg);
    assert!(t.read_batch(10, Duration::from_millis(20)).is_empty());
    t.checkpointer().persist().unwrap();
    let json = read_checkpoint(&dir);
    assert!(json["files"][0]["fingerprint"].is_null());
    assert_eq!(json["files"][0]["offset"], 0);
    append(&path, b"def\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["abcdef"]);
}

#[test]
fn notify_wakes_read_batch_before_the_poll_interval() {
    let (_dir, mut cfg, path) = setup(&["a.log"]);
    cfg.poll_interval = Duration::from_secs(20);
    append(&path, b"x\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["x"]);
    if t.observer().has(|e| matches!(e, Ev::WatchFailed(_))) {
        eprintln!("file watcher unavailable here; skipping the wake-up check");
        return;
    }
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        append(&path, b"y\n");
    });
    let start = Instant::now();
    let lines = t.read_batch(10, Duration::from_secs(10));
    writer.join().unwrap();
    assert_eq!(texts(&lines), ["y"]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn polling_works_without_a_watcher() {
    let (dir, mut cfg, path) = setup(&["a.log"]);
    cfg.poll_interval = Duration::from_millis(20);
    let mut t = Tailer::build(cfg, Recorder::default(), false).unwrap();
    let write_later = |bytes: &'static [u8]| {
        let path = path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            append(&path, bytes);
        })
    };
    // Each write lands while read_batch waits, so only polling can see it.
    let writer = write_later(b"polled\n");
    let start = Instant::now();
    let lines = t.read_batch(10, Duration::from_secs(5));
    writer.join().unwrap();
    assert_eq!(texts(&lines), ["polled"]);
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    let writer = write_later(b"rotated\n");
    let lines = t.read_batch(10, Duration::from_secs(5));
    writer.join().unwrap();
    assert_eq!(texts(&lines), ["rotated"]);
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn rotated_file_with_only_an_unfinished_first_line_is_reported() {
    let (dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"abc");
    let mut t = new_tailer(&cfg);
    fs::rename(&path, dir.path().join("a.log.1")).unwrap();
    append(&path, b"x\n");
    assert_eq!(texts(&collect(&mut t, 1)), ["x"]);
    assert!(
        t.observer()
            .has(|e| *e == Ev::PartialDropped { offset: 0, len: 3 })
    );
}

#[test]
fn busy_path_does_not_starve_another() {
    let (_dir, mut cfg, _) = setup(&["busy.log", "quiet.log"]);
    cfg.read_budget_bytes = 256;
    let busy: String = (0..1000).map(|i| format!("busy {i:04}\n")).collect();
    append(&cfg.paths[0], busy.as_bytes());
    append(&cfg.paths[1], b"quiet\n");
    let mut t = new_tailer(&cfg);
    let first = t.read_batch(10_000, Duration::ZERO);
    assert!(texts(&first).contains(&"quiet".to_string()));
    assert!(
        first.len() < 100,
        "the budget bounds one pass: {}",
        first.len()
    );
    let mut all = first;
    all.extend(collect(&mut t, 1001 - all.len()));
    let busy_lines: Vec<String> = texts(&all).into_iter().filter(|l| l != "quiet").collect();
    let want: Vec<String> = (0..1000).map(|i| format!("busy {i:04}")).collect();
    assert_eq!(busy_lines, want);
}

#[test]
fn acks_are_monotonic_clamped_and_ignore_stale_ids() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"one\ntwo\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 2);
    let c = t.checkpointer();
    let id = lines[0].file;
    c.ack(id, 8);
    c.ack(id, 4);
    assert_eq!(c.acked(id), Some(8));
    c.ack(id, 1_000_000);
    assert_eq!(c.acked(id), Some(8), "cannot ack beyond what was read");
    File::create(&path).unwrap();
    append(&path, b"fresh line\n");
    let fresh = collect(&mut t, 1);
    c.ack(id, 8);
    assert_eq!(
        c.acked(fresh[0].file),
        Some(0),
        "stale id moved the new content"
    );
    c.ack(fresh[0].file, fresh[0].end);
    assert_eq!(c.acked(fresh[0].file), Some(11));
}

#[test]
fn entries_of_files_gone_are_pruned_by_age_and_count() {
    let (_dir, cfg, path) = setup(&["a.log"]);
    append(&path, b"x\n");
    let t = new_tailer(&cfg);
    let c = t.checkpointer();
    let now = checkpoint::unix_now();
    let hour = CHECKPOINT_RETENTION.as_secs();
    c.insert_untracked_for_test("/gone/old", 1, now - hour - 10);
    c.insert_untracked_for_test("/gone/recent", 2, now - 10);
    assert_eq!(c.len(), 3);
    assert_eq!(
        c.prune(now),
        checkpoint::Pruned {
            expired: 1,
            evicted: 0
        }
    );
    assert_eq!(c.len(), 2);
    for i in 0..MAX_CHECKPOINT_ENTRIES as u64 + 5 {
        c.insert_untracked_for_test("/gone/many", 100 + i, now - 5);
    }
    // The least recently seen go first: `/gone/recent` (seen 10 s ago) before the others.
    assert_eq!(
        c.prune(now),
        checkpoint::Pruned {
            expired: 0,
            evicted: 7
        }
    );
    assert_eq!(c.len(), MAX_CHECKPOINT_ENTRIES);
    assert!(!c.path_known("/gone/recent"));
    // The followed file's entry survives any pruning.
    assert!(c.path_known(&path.to_string_lossy()));
    // A checkpoint file over the limit (written before a prune) loads its most recently
    // seen entries, and says how many it left out.
    for i in 0..10 {
        c.insert_untracked_for_test("/gone/extra", 10_000 + i, now - 1);
    }
    c.persist().unwrap();
    drop(t);
    let mut t = new_tailer(&cfg);
    assert!(t.observer().has(|e| *e == Ev::Evicted(10)));
    assert!(
        t.checkpointer().path_known("/gone/extra"),
        "the most recent stay"
    );
    assert_eq!(t.checkpointer().len(), MAX_CHECKPOINT_ENTRIES);
    // Pruning and eviction on the tailer's tick reach the observer.
    t.checkpointer()
        .insert_untracked_for_test("/gone/old", 9, now - hour - 10);
    for i in 0..3 {
        t.checkpointer()
            .insert_untracked_for_test("/gone/more", 20_000 + i, now - 1);
    }
    std::thread::sleep(Duration::from_millis(20));
    t.read_batch(1, Duration::from_millis(30));
    assert!(t.observer().has(|e| *e == Ev::Pruned(1)));
    assert!(t.observer().has(|e| *e == Ev::Evicted(3)));
    assert_eq!(t.checkpointer().len(), MAX_CHECKPOINT_ENTRIES);
}

#[test]
fn rotation_backlog_is_bounded_and_reported() {
    let (dir, mut cfg, path) = setup(&["a.log"]);
    cfg.read_budget_bytes = 16;
    let first: String = (0..200).map(|i| format!("f{i:03}\n")).collect();
    append(&path, first.as_bytes());
    let mut t = new_tailer(&cfg);
    let mut got = Vec::new();
    for r in 0..MAX_FILES_PER_PATH + 2 {
        // Every rotation is looked at, although each read comes back full.
        t.look_on_next_read();
        got.extend(t.read_batch(1, Duration::ZERO));
        fs::rename(&path, dir.path().join(format!("a.log.{r}"))).unwrap();
        append(&path, format!("r{r}\n").as_bytes());
    }
    assert!(t.observer().has(|e| *e == Ev::Backlog));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) && !texts(&got).contains(&"r17".into()) {
        got.extend(t.read_batch(1000, Duration::from_millis(10)));
    }
    let got = texts(&got);
    let first_lines: Vec<String> = (0..200).map(|i| format!("f{i:03}")).collect();
    assert_eq!(got[..200], first_lines[..]);
    // Files rotated away while the backlog was full were never opened.
    let rest: Vec<String> = (0..MAX_FILES_PER_PATH - 1)
        .map(|r| format!("r{r}"))
        .collect();
    assert_eq!(got[200..215], rest[..]);
    assert_eq!(got.last().map(String::as_str), Some("r17"));
}

#[test]
fn invalid_config_is_rejected() {
    let (_dir, cfg, _) = setup(&["a.log"]);
    let mut bad = vec![cfg.clone(); 4];
    bad[0].paths.clear();
    bad[1].max_line_bytes = 0;
    bad[2].read_budget_bytes = 0;
    bad[3].poll_interval = Duration::ZERO;
    for cfg in bad {
        assert!(matches!(
            Tailer::new(cfg, ()),
            Err(TailError::InvalidConfig(_))
        ));
    }
}

#[test]
fn duplicate_paths_are_followed_once() {
    let (_dir, mut cfg, path) = setup(&["a.log"]);
    cfg.paths.push(path.clone());
    append(&path, b"once\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["once"]);
}

#[test]
fn persist_into_a_missing_directory_is_an_error() {
    let (dir, mut cfg, _) = setup(&["a.log"]);
    cfg.checkpoint_path = dir.path().join("missing/checkpoint.json");
    let t = new_tailer(&cfg);
    assert!(matches!(
        t.checkpointer().persist(),
        Err(TailError::Io { .. })
    ));
}

#[test]
fn checkpointer_and_tailer_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<Checkpointer>();
    assert_send::<Tailer<Recorder>>();
}

// Startup recovery of files rotated away (renamed in the same directory)
// before a restart.

/// What kube-apiserver renames `audit.log` to when it rotates it.
const KUBE_ROTATED: &str = "audit-2024-05-02T10-15-30.123.log";

fn set_mtime(path: &Path, ago: Duration) {
    let file = OpenOptions::new().append(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - ago)
        .unwrap();
}

fn recovered(t: &Tailer<Recorder>) -> Vec<(String, u64, bool)> {
    t.observer()
        .0
        .iter()
        .filter_map(|e| match e {
            Ev::Recovered {
                found,
                offset,
                known,
            } => Some((found.clone(), *offset, *known)),
            _ => None,
        })
        .collect()
}

/// Acks everything, persists, and checks that a restart emits nothing.
fn assert_nothing_after_restart(t: Tailer<Recorder>, lines: &[Line], cfg: &TailConfig) {
    ack_all(&t, lines);
    drop(t);
    let mut t = new_tailer(cfg);
    let again = t.read_batch(100, Duration::from_millis(30));
    assert!(again.is_empty(), "read again: {:?}", texts(&again));
}

#[test]
fn rest_of_a_file_renamed_while_down_is_read_before_the_new_file() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    append(&path, b"l1\nl2\nl3\nl4\n");
    let mut t = new_tailer(&cfg);
    let before = t.read_batch(3, Duration::ZERO);
    assert_eq!(texts(&before), ["l1", "l2", "l3"]);
    // l3 is read but not acked, l4 not read at all.
    ack_all(&t, &before[..2]);
    drop(t);
    fs::rename(&path, dir.path().join(KUBE_ROTATED)).unwrap();
    append(&path, b"n1\nn2\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 4);
    assert_eq!(texts(&lines), ["l3", "l4", "n1", "n2"]);
    // Same origin and position as before the restart, hence the same ids.
    assert_eq!(
        (lines[0].fingerprint, lines[0].offset, lines[0].end),
        (before[2].fingerprint, before[2].offset, before[2].end)
    );
    assert_eq!(&*lines[0].path, path.as_path());
    assert_ne!(lines[1].fingerprint, lines[2].fingerprint);
    assert_eq!(recovered(&t), [(KUBE_ROTATED.into(), 6, true)]);
    // Acks for the recovered file commit its entry like any other.
    assert_nothing_after_restart(t, &lines, &cfg);
}

#[test]
fn writes_after_the_rename_through_a_kept_descriptor_are_recovered() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    let mut writer = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    writer.write_all(b"l1\nl2\n").unwrap();
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 2);
    ack_all(&t, &before[..1]);
    drop(t);
    fs::rename(&path, dir.path().join(KUBE_ROTATED)).unwrap();
    append(&path, b"n1\n");
    // The writer still holds the renamed file.
    writer.write_all(b"w1\n").unwrap();
    writer.write_all(b"w2\n").unwrap();
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 4);
    assert_eq!(texts(&lines), ["l2", "w1", "w2", "n1"]);
    assert_nothing_after_restart(t, &lines, &cfg);
}

#[test]
fn two_rotations_while_down_recover_the_checkpointed_file_and_the_one_between() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    let numbered = |n: u32| dir.path().join(format!("audit.log.{n}"));
    append(&path, b"f1\nf2\n");
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 2);
    ack_all(&t, &before[..1]);
    drop(t);
    // logrotate, twice: audit.log -> .1 -> .2, with a file in between that
    // the checkpoint never saw.
    fs::rename(&path, numbered(1)).unwrap();
    append(&path, b"g1\ng2\n");
    fs::rename(numbered(1), numbered(2)).unwrap();
    fs::rename(&path, numbered(1)).unwrap();
    append(&path, b"h1\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 4);
    assert_eq!(texts(&lines), ["f2", "g1", "g2", "h1"]);
    assert_eq!(
        recovered(&t),
        [
            ("audit.log.2".into(), 3, true),
            ("audit.log.1".into(), 0, false)
        ]
    );
    assert_eq!(lines[0].fingerprint, before[0].fingerprint);
    assert_nothing_after_restart(t, &lines, &cfg);
}

#[test]
fn files_rotated_entirely_while_down_are_read_oldest_first_by_modification_time() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    let named = |hour: u32| {
        dir.path()
            .join(format!("audit-2024-05-02T{hour:02}-00-00.000.log"))
    };
    append(&path, b"f1\n");
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 1);
    ack_all(&t, &before);
    drop(t);
    fs::rename(&path, named(10)).unwrap();
    set_mtime(&named(10), Duration::from_secs(300));
    // Named against their age on purpose: the modification time decides.
    append(&named(12), b"g1\n");
    set_mtime(&named(12), Duration::from_secs(200));
    append(&named(11), b"k1\n");
    set_mtime(&named(11), Duration::from_secs(100));
    // Older than the checkpointed file: rotated before the agent last ran
    // (its entry aged out of the checkpoint), so not read again.
    append(&named(9), b"old\n");
    set_mtime(&named(9), Duration::from_secs(3600));
    append(&path, b"h1\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 3);
    assert_eq!(texts(&lines), ["g1", "k1", "h1"]);
    // The checkpointed file had nothing left: only its entry is kept.
    let found: Vec<String> = recovered(&t).into_iter().map(|r| r.0).collect();
    assert_eq!(
        found,
        [
            "audit-2024-05-02T12-00-00.000.log",
            "audit-2024-05-02T11-00-00.000.log"
        ]
    );
    assert_nothing_after_restart(t, &lines, &cfg);
}

#[test]
fn files_after_a_checkpointed_file_that_is_gone_are_not_read() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    append(&path, b"f1\nf2\n");
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 2);
    ack_all(&t, &before[..1]);
    drop(t);
    // Rotated, then compressed (gone as a plain file), then the next file
    // rotated too: there is no checkpointed file to start from.
    let first = dir.path().join("audit.log.1");
    fs::rename(&path, &first).unwrap();
    append(&path, b"g1\n");
    fs::remove_file(&first).unwrap();
    fs::write(dir.path().join("audit.log.2.gz"), b"f1\nf2\n").unwrap();
    fs::rename(&path, &first).unwrap();
    append(&path, b"h1\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&collect(&mut t, 1)), ["h1"]);
    assert!(recovered(&t).is_empty());
}

#[test]
fn unrelated_files_in_the_directory_are_ignored() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    append(&path, b"f1\nf2\n");
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 2);
    ack_all(&t, &before[..1]);
    drop(t);
    let p = |name: &str| dir.path().join(name);
    // All newer than the checkpointed file and holding complete lines.
    for name in [
        "auditd.log",
        "audit-extra.log",
        "other.log.1",
        "audit.log.2.gz",
        "audit.log.3.ZST",
        "audit.log.old",
        "audit.log.copy",
    ] {
        append(&p(name), format!("{name}\n").as_bytes());
    }
    // A copy of the checkpointed file, under a rotated name.
    fs::copy(&path, p("audit.log.1-backup")).unwrap();
    std::os::unix::fs::symlink(p("auditd.log"), p("audit.log.4")).unwrap();
    fs::create_dir(p("audit.log.5")).unwrap();
    fs::rename(&path, p("audit.log.1")).unwrap();
    append(&path, b"h1\n");
    // Another name for the file now at the path is not a rotated file.
    fs::hard_link(&path, p("audit.log.9")).unwrap();
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 2);
    assert_eq!(texts(&lines), ["f2", "h1"]);
    assert_eq!(recovered(&t), [("audit.log.1".into(), 3, true)]);
}

#[test]
fn rotated_files_go_to_the_followed_path_with_the_longest_matching_name() {
    let (dir, cfg, _) = setup(&["audit.log", "audit-2.log"]);
    for path in &cfg.paths {
        append(path, format!("first of {}\n", path.display()).as_bytes());
    }
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 2);
    ack_all(&t, &before);
    drop(t);
    let p = |name: &str| dir.path().join(name);
    // Each path rotated twice; `audit-2-…` also starts like a rotated
    // `audit.log` (`audit-2…`), but belongs to the longer name.
    fs::rename(p("audit.log"), p("audit-2024-05-02T10-00-00.000.log")).unwrap();
    fs::rename(p("audit-2.log"), p("audit-2-2024-05-02T10-00-00.000.log")).unwrap();
    append(&p("audit.log"), b"a-between\n");
    append(&p("audit-2.log"), b"b-between\n");
    fs::rename(p("audit.log"), p("audit-2024-05-02T11-00-00.000.log")).unwrap();
    fs::rename(p("audit-2.log"), p("audit-2-2024-05-02T11-00-00.000.log")).unwrap();
    append(&p("audit.log"), b"a-now\n");
    append(&p("audit-2.log"), b"b-now\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, 4);
    let of = |path: &str| -> Vec<String> {
        let path = p(path);
        lines
            .iter()
            .filter(|l| *l.path == *path)
            .map(text)
            .collect()
    };
    assert_eq!(of("audit.log"), ["a-between", "a-now"]);
    assert_eq!(of("audit-2.log"), ["b-between", "b-now"]);
}

#[test]
fn recovery_stops_at_its_bounds_and_says_so() {
    let (dir, cfg, path) = setup(&["audit.log"]);
    append(&path, b"f1\n");
    let mut t = new_tailer(&cfg);
    let before = collect(&mut t, 1);
    ack_all(&t, &before);
    drop(t);
    let named = |i: usize| {
        dir.path()
            .join(format!("audit-2024-05-02T10-00-{i:02}.000.log"))
    };
    fs::rename(&path, named(0)).unwrap();
    set_mtime(&named(0), Duration::from_secs(1000));
    // More files rotated while down than can be opened at once.
    let extra = MAX_RECOVERED_FILES_PER_PATH + 2;
    for i in 1..=extra {
        append(&named(i), format!("r{i:02}\n").as_bytes());
        set_mtime(&named(i), Duration::from_secs(1000 - i as u64));
    }
    append(&path, b"now\n");
    let mut t = new_tailer(&cfg);
    let lines = collect(&mut t, MAX_RECOVERED_FILES_PER_PATH + 1);
    let mut want: Vec<String> = (1..=MAX_RECOVERED_FILES_PER_PATH)
        .map(|i| format!("r{i:02}"))
        .collect();
    want.push("now".into());
    // The oldest are read; the newest two are skipped and reported.
    assert_eq!(texts(&lines), want);
    assert!(
        t.observer()
            .has(|e| *e == Ev::RecoveryLimited(RecoveryLimit::TooManyFiles { skipped: 2 }))
    );
    drop(t);

    // A directory too large to look through whole.
    let (dir, cfg, path) = setup(&["audit.log"]);
    append(&path, b"f1\n");
    let t = new_tailer(&cfg);
    ack_all(&t, &[]);
    drop(t);
    fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    for i in 0..MAX_RECOVERY_SCAN_ENTRIES {
        File::create(dir.path().join(format!("x{i}"))).unwrap();
    }
    let t = new_tailer(&cfg);
    assert!(
        t.observer()
            .has(|e| *e == Ev::RecoveryLimited(RecoveryLimit::ScanLimit))
    );
}

#[test]
fn waiting_files_are_fingerprinted_and_entries_persisted_oldest_first() {
    let (dir, mut cfg, path) = setup(&["audit.log"]);
    cfg.read_budget_bytes = 8;
    append(&path, b"f1\nf2\nf3\n");
    let mut t = new_tailer(&cfg);
    assert_eq!(texts(&t.read_batch(1, Duration::ZERO)), ["f1"]);
    fs::rename(&path, dir.path().join("audit.log.1")).unwrap();
    append(&path, b"g1");
    // Each read comes back full, which alone would let the next skip its look.
    t.look_on_next_read();
    assert_eq!(texts(&t.read_batch(1, Duration::ZERO)), ["f2"]);
    append(&path, b"\n");
    // The old file is still being read, but the waiting one is identified.
    t.look_on_next_read();
    assert_eq!(texts(&t.read_batch(1, Duration::ZERO)), ["f3"]);
    t.checkpointer().persist().unwrap();
    let json = read_checkpoint(&dir);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
    assert_eq!(files[0]["ino"], ino(&dir.path().join("audit.log.1")));
    assert_eq!(files[1]["ino"], ino(&path));
    assert!(!files[1]["fingerprint"].is_null());
}
