//! Model-based test of the container-log source: random sequences of writes, partial
//! lines, rotations, truncations, pod deletions and agent restarts are applied to real
//! files read by a [`ContainerLogsSource`], and to a model of what a consumer must see.
//!
//! What the model specifies (the rules of `agent/src/tail/mod.rs` and of this source):
//! * every message arrives whole, and first arrivals keep each container's write order;
//! * a message arrives twice only after a crash, and only if it was first delivered after
//!   the last persisted checkpoint (the documented crash window);
//! * rotations lose nothing: kubelet's `0.log` → `0.log.<time>` (the previous rotation
//!   compressed to `.gz` and removed) and json-file's `-json.log` → `.1` → `.2` (the
//!   oldest removed) are read to their end through the descriptor the agent holds, even
//!   when they are compressed or removed before it finished;
//! * a pod deleted while the agent runs (its directory removed) loses nothing: its files
//!   are drained through their descriptors, then closed and forgotten;
//! * a restart (graceful or not) loses only the unread rest of files that are no longer
//!   in their directory as they were (compressed, removed, or in a deleted pod);
//! * a line is never read before its newline (a write can stop mid-line).
//!
//! copytruncate is applied after the agent has read the file: what it had not read when
//! the file was truncated is lost by design, which the tail engine's own model test
//! covers line by line.
//!
//! The harness drives the source synchronously: after every operation it reads one to
//! three batches of [`BATCH`] lines without waiting (so reads stop mid-message, mid-file
//! and behind rotations), and it lists the directories itself where kubelet's
//! notifications would have made the source do so. Nothing waits for a clock, so a case
//! takes milliseconds.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;

use super::tests::{append, config, messages};
use super::*;

/// Lines per read: small, so reads stop inside messages and files.
const BATCH: usize = 4;

/// Rules play no part in the model; an empty set keeps a case fast.
static NO_RULES: LazyLock<Arc<RuleSet>> =
    LazyLock::new(|| Arc::new(RuleSet::from_documents(&[]).unwrap()));

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    /// A pod container: CRI lines in `/var/log/pods/<ns>_<pod>_<uid>/<c>/0.log`.
    Cri,
    /// A Docker container: json-file lines in `<docker>/<id>/<id>-json.log`.
    Docker,
}

/// The containers of a case: two pod containers and one Docker container.
const RUNTIMES: [Runtime; 3] = [Runtime::Cri, Runtime::Cri, Runtime::Docker];

#[derive(Clone, Debug)]
enum Op {
    /// One message of `container`, in `parts` lines (CRI `P` ... `F`, json-file parts
    /// without a newline); with `split`, the write stops inside its last line and the
    /// agent reads before the rest is written.
    Write {
        container: usize,
        parts: u8,
        split: bool,
    },
    /// Rotation as the container's runtime does it.
    Rotate(usize),
    /// `cp 0.log 0.log.<n>.gz && truncate -s0 0.log`, after the agent read the file.
    CopyTruncate(usize),
    /// The pod (or Docker container) is deleted: its directory removed. The next write to
    /// the slot creates a new pod.
    Delete(usize),
    /// The agent stops after committing what it delivered, and starts again.
    Restart,
    /// The agent crashes: nothing since the last persisted checkpoint is committed.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let container = 0..RUNTIMES.len();
    prop_oneof![
        8 => (container.clone(), 1u8..=3, any::<bool>())
            .prop_map(|(container, parts, split)| Op::Write { container, parts, split }),
        2 => container.clone().prop_map(Op::Rotate),
        1 => container.clone().prop_map(Op::CopyTruncate),
        1 => container.prop_map(Op::Delete),
        1 => Just(Op::Restart),
        1 => Just(Op::Crash),
    ]
}

/// One container slot: where its files are, and which model file each holds.
struct Slot {
    runtime: Runtime,
    /// How many pods (or Docker containers) the slot has had; names the current one.
    incarnation: u32,
    /// The directory a deletion removes.
    top: PathBuf,
    /// The followed file.
    path: PathBuf,
    alive: bool,
    /// The model file at `path`.
    file: u64,
    /// kubelet: the latest rotated file, still uncompressed, and its model file.
    rotated: Option<(PathBuf, u64)>,
    /// json-file: the model files of `-json.log.1` and `-json.log.2`.
    numbered: [Option<u64>; 2],
    rotations: u32,
    /// The model file at `path` when the checkpoint was last persisted, if any.
    persisted: Option<u64>,
}

/// A message written, and the model file holding it.
struct Written {
    text: String,
    container: usize,
    file: u64,
}

struct Harness {
    dir: TempDir,
    cfg: ContainerLogsConfig,
    src: Option<ContainerLogsSource>,
    slots: Vec<Slot>,
    next_file: u64,
    /// Model files no longer readable by a new agent (removed, compressed, truncated).
    gone: HashSet<u64>,
    written: Vec<Written>,
    /// Messages of removed files that a restart found unread: lost, as documented.
    lost: HashSet<String>,
    /// Every delivery, in order.
    all: Vec<String>,
    first: HashSet<String>,
    /// Messages first delivered since the last persisted checkpoint.
    since_persist: Vec<String>,
    may_repeat: HashSet<String>,
    lines_written: u64,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        for d in [&cfg.pods_dir, &cfg.docker_dir, &cfg.containers_dir] {
            fs::create_dir_all(d).unwrap();
        }
        let mut h = Self {
            dir,
            cfg,
            src: None,
            slots: Vec::new(),
            next_file: 0,
            gone: HashSet::new(),
            written: Vec::new(),
            lost: HashSet::new(),
            all: Vec::new(),
            first: HashSet::new(),
            since_persist: Vec::new(),
            may_repeat: HashSet::new(),
            lines_written: 0,
        };
        for (i, runtime) in RUNTIMES.into_iter().enumerate() {
            let slot = h.create(i, runtime, 0);
            h.slots.push(slot);
        }
        h.start();
        h
    }

    fn new_file(&mut self) -> u64 {
        self.next_file += 1;
        self.next_file
    }

    /// Creates the pod (or Docker container) of slot `i` with an empty log file.
    fn create(&mut self, i: usize, runtime: Runtime, incarnation: u32) -> Slot {
        let (top, path) = match runtime {
            Runtime::Cri => {
                let top = self
                    .cfg
                    .pods_dir
                    .join(format!("ns{i}_pod{i}-{incarnation}_uid-{i}-{incarnation}"));
                (top.clone(), top.join("app").join("0.log"))
            }
            Runtime::Docker => {
                let id = format!("{i:x}{incarnation:x}").repeat(32);
                let top = self.cfg.docker_dir.join(&id);
                (top.clone(), top.join(format!("{id}-json.log")))
            }
        };
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::File::create(&path).unwrap();
        Slot {
            runtime,
            incarnation,
            top,
            path,
            alive: true,
            file: self.new_file(),
            rotated: None,
            numbered: [None, None],
            rotations: 0,
            persisted: None,
        }
    }

    fn start(&mut self) {
        let src = ContainerLogsSource::new(
            &self.cfg,
            &PipelineConfig {
                batch_events: BATCH,
                ..PipelineConfig::default()
            },
            None,
            Some("node-1".into()),
            &self.dir.path().join("state"),
            Arc::clone(&NO_RULES),
            Arc::new(Metrics::default()),
            false,
        )
        .unwrap();
        self.src = Some(src);
    }

    fn src(&mut self) -> &mut ContainerLogsSource {
        self.src.as_mut().unwrap()
    }

    /// One batch, acked at once as an output that wrote it would. Returns whether any
    /// line came.
    fn read_once(&mut self) -> bool {
        let src = self.src();
        // The model assumes the agent looked at the files after every operation, as
        // kubelet's notifications make it do.
        src.tailer.look_on_next_read();
        let Some((events, position)) = src.read_events(Duration::ZERO) else {
            return false;
        };
        let checkpointer = src.checkpointer();
        for (file, end) in position {
            checkpointer.ack(file, end);
        }
        for m in messages(&events) {
            if self.first.insert(m.clone()) {
                self.since_persist.push(m.clone());
            }
            self.all.push(m);
        }
        true
    }

    /// Reads until a read finds no line: everything written has been read.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if !self.read_once() {
                return Ok(());
            }
        }
        Err(TestCaseError::fail("the source never ran dry"))
    }

    /// What kubelet's notifications make the source do: list the directories again.
    fn rescan(&mut self) {
        self.src().rescan();
    }

    fn line(&mut self, runtime: Runtime, part: &str, last: bool) -> String {
        // Runtimes stamp every line to the nanosecond, so no two files share a first
        // line (a file is known by its first line).
        self.lines_written += 1;
        let time = format!("2024-05-02T10:15:30.{:09}Z", self.lines_written);
        match runtime {
            Runtime::Cri => {
                let tag = if last { "F" } else { "P" };
                format!("{time} stdout {tag} {part}\n")
            }
            Runtime::Docker => {
                let newline = if last { "\\n" } else { "" };
                format!(
                    "{{\"log\":\"{part}{newline}\",\"stream\":\"stdout\",\"time\":\"{time}\"}}\n"
                )
            }
        }
    }

    fn write(&mut self, i: usize, parts: u8, split: bool) -> Result<(), TestCaseError> {
        if !self.slots[i].alive {
            let (runtime, incarnation) = (self.slots[i].runtime, self.slots[i].incarnation + 1);
            self.slots[i] = self.create(i, runtime, incarnation);
            self.rescan();
        }
        let slot = &self.slots[i];
        let (runtime, path, file) = (slot.runtime, slot.path.clone(), slot.file);
        let text = format!(
            "c{i}-m{} {}",
            self.written.len(),
            "x".repeat(usize::from(parts) * 4)
        );
        let chunk = text.len().div_ceil(usize::from(parts));
        let pieces: Vec<&str> = (0..text.len())
            .step_by(chunk)
            .map(|at| &text[at..(at + chunk).min(text.len())])
            .collect();
        let mut bytes = String::new();
        for (k, piece) in pieces.iter().enumerate() {
            bytes.push_str(&self.line(runtime, piece, k + 1 == pieces.len()));
        }
        self.written.push(Written {
            text,
            container: i,
            file,
        });
        if split {
            // Inside the last line: the agent must hold it back until its newline.
            let cut = bytes.len() - 5;
            append(&path, &bytes[..cut]);
            self.read_once();
            append(&path, &bytes[cut..]);
        } else {
            append(&path, &bytes);
        }
        Ok(())
    }

    fn rotate(&mut self, i: usize) {
        if !self.slots[i].alive {
            return;
        }
        let new_file = self.new_file();
        let slot = &mut self.slots[i];
        slot.rotations += 1;
        match slot.runtime {
            Runtime::Cri => {
                // kubelet compresses the previous rotation (a new file, the old one
                // removed), then renames the log and has the runtime reopen it.
                if let Some((old, file)) = slot.rotated.take() {
                    let mut gz = old.clone().into_os_string();
                    gz.push(".gz");
                    fs::write(&gz, b"\x1f\x8b compressed").unwrap();
                    fs::remove_file(&old).unwrap();
                    self.gone.insert(file);
                }
                let rotated = slot
                    .path
                    .with_file_name(format!("0.log.20240502-1015{:04}", slot.rotations));
                fs::rename(&slot.path, &rotated).unwrap();
                slot.rotated = Some((rotated, slot.file));
            }
            Runtime::Docker => {
                // json-file keeps three files: `.2` removed, `.1` → `.2`, the log → `.1`.
                let numbered = |n: u32| {
                    let mut name = slot.path.clone().into_os_string();
                    name.push(format!(".{n}"));
                    PathBuf::from(name)
                };
                if let Some(file) = slot.numbered[1].take() {
                    fs::remove_file(numbered(2)).unwrap();
                    self.gone.insert(file);
                }
                if let Some(file) = slot.numbered[0].take() {
                    fs::rename(numbered(1), numbered(2)).unwrap();
                    slot.numbered[1] = Some(file);
                }
                fs::rename(&slot.path, numbered(1)).unwrap();
                slot.numbered[0] = Some(slot.file);
            }
        }
        fs::File::create(&slot.path).unwrap();
        slot.file = new_file;
    }

    /// The file keeps its inode, and its content before the truncation was all read, so
    /// the model file stays the same.
    fn copy_truncate(&mut self, i: usize) -> Result<(), TestCaseError> {
        if !self.slots[i].alive {
            return Ok(());
        }
        self.drain()?;
        let slot = &mut self.slots[i];
        slot.rotations += 1;
        let copy = slot
            .path
            .with_file_name(format!("copy-{}.log.gz", slot.rotations));
        fs::copy(&slot.path, copy).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&slot.path)
            .unwrap();
        Ok(())
    }

    fn delete(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.alive {
            return;
        }
        slot.alive = false;
        fs::remove_dir_all(&slot.top).unwrap();
        let files = [Some(slot.file), slot.rotated.as_ref().map(|r| r.1)]
            .into_iter()
            .chain(slot.numbered)
            .flatten();
        self.gone.extend(files);
        self.rescan();
    }

    /// Stops the agent (persisting what was acked unless it crashes) and starts a new
    /// one. What was not read of a file gone from its directory is lost. After a crash,
    /// so is what was not read of the files rotated away after the file the checkpoint
    /// last saw at the path, when that file is gone too (nothing tells where they
    /// start), or of every rotated file when the checkpoint never saw the path.
    fn restart(&mut self, crash: bool) {
        let src = self.src.take().unwrap();
        if crash {
            self.may_repeat.extend(self.since_persist.drain(..));
        } else {
            src.checkpointer().persist().unwrap();
            self.since_persist.clear();
            for slot in &mut self.slots {
                slot.persisted = slot.alive.then_some(slot.file);
            }
        }
        drop(src);
        for w in &self.written {
            let slot = &self.slots[w.container];
            let unrecoverable = match slot.persisted {
                _ if !crash || w.file == slot.file => false,
                None => true,
                Some(p) => self.gone.contains(&p) && w.file > p,
            };
            if !self.first.contains(&w.text) && (self.gone.contains(&w.file) || unrecoverable) {
                self.lost.insert(w.text.clone());
            }
        }
        self.start();
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Write {
                container,
                parts,
                split,
            } => self.write(container, parts, split)?,
            Op::Rotate(i) => self.rotate(i),
            Op::CopyTruncate(i) => self.copy_truncate(i)?,
            Op::Delete(i) => self.delete(i),
            Op::Restart => self.restart(false),
            Op::Crash => self.restart(true),
        }
        Ok(())
    }

    /// Drains, lets deleted pods go, and holds the deliveries against the model.
    fn check(&mut self) -> Result<(), TestCaseError> {
        self.drain()?;
        // Deleted pods are retired by a listing, closed once read, then forgotten.
        self.rescan();
        self.drain()?;
        self.rescan();
        for (i, slot) in self.slots.iter().enumerate() {
            let want: Vec<&str> = self
                .written
                .iter()
                .filter(|w| w.container == i && !self.lost.contains(&w.text))
                .map(|w| w.text.as_str())
                .collect();
            let mut seen = HashSet::new();
            let got: Vec<&str> = self
                .all
                .iter()
                .filter(|m| m.starts_with(&format!("c{i}-")) && seen.insert(m.as_str()))
                .map(String::as_str)
                .collect();
            prop_assert_eq!(got, want, "container {} ({:?})", i, slot.runtime);
        }
        let known: HashSet<&str> = self.written.iter().map(|w| w.text.as_str()).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for m in &self.all {
            prop_assert!(known.contains(m.as_str()), "{:?} was never written", m);
            *counts.entry(m.as_str()).or_default() += 1;
        }
        for (m, n) in counts {
            prop_assert!(
                n == 1 || self.may_repeat.contains(m),
                "{} arrived {} times outside a crash window",
                m,
                n
            );
        }
        // Drained, then closed: only the live containers' files are followed and open.
        let alive = self.slots.iter().filter(|s| s.alive).count();
        let stats = self.src().stats();
        prop_assert_eq!(stats.paths, alive, "{:?}", stats);
        prop_assert_eq!(stats.open_files, alive, "{:?}", stats);
        Ok(())
    }
}

fn run(ops: &[(Op, u8)]) -> Result<(), TestCaseError> {
    let mut h = Harness::new();
    for (op, reads) in ops {
        h.apply(op)?;
        for _ in 0..*reads {
            h.read_once();
        }
    }
    h.check()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_is_delivered_once_or_within_the_crash_window(
        ops in proptest::collection::vec((op(), 1u8..=3), 1..40),
    ) {
        run(&ops)?;
    }
}

#[test]
fn a_deleted_pod_is_drained_then_closed() {
    let w = |container, parts| Op::Write {
        container,
        parts,
        split: false,
    };
    // Written, rotated and written again, then deleted before the agent read it all.
    let ops = [
        (w(0, 3), 1),
        (Op::Rotate(0), 1),
        (w(0, 2), 1),
        (w(0, 3), 1),
        (Op::Delete(0), 1),
        (w(1, 1), 1),
        (w(0, 1), 1),
    ];
    run(&ops).unwrap();
}

#[test]
fn rotations_compressed_or_removed_before_they_are_read_lose_nothing() {
    let w = |container| Op::Write {
        container,
        parts: 2,
        split: true,
    };
    let mut ops = Vec::new();
    for container in [0, 2] {
        for _ in 0..3 {
            ops.push((w(container), 1));
            ops.push((Op::Rotate(container), 1));
        }
    }
    ops.push((Op::Crash, 1));
    ops.push((w(2), 1));
    run(&ops).unwrap();
}
