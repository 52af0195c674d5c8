//! Model-based test: random file operations are applied to a real file
//! followed by the engine, and to a model of what the engine must emit.
//!
//! What the model specifies (see the module documentation for why):
//! * every complete line is emitted once, in write order, old files first;
//! * an unterminated line is never emitted in pieces; it is lost if its file
//!   is rotated, deleted or truncated before it is completed;
//! * a truncation (`copytruncate`, or truncate and regrow before the tailer
//!   looks) loses the lines of the file the tailer had not read yet;
//! * a restart (after acking and persisting) loses nothing of the files still
//!   in the directory, whether at the path or rotated away by rename (also
//!   while the tailer is stopped), and replays nothing; files deleted before
//!   it lose their unread rest;
//! * a crash (restart without acking the last lines) additionally replays the
//!   unacked lines of those files, and nothing else.
//!
//! Rotation renames logrotate-style (`a.log.2` -> `a.log.3`, `a.log.1` ->
//! `a.log.2`, `a.log` -> `a.log.1`), so rotated files keep their inode under
//! changing names; while stopped, files may come and be rotated away without
//! the tailer ever seeing them.
//!
//! The harness reads once after every operation (with a random batch size,
//! and a small read budget so reads stop mid-line), so the engine has looked
//! at every file before it is rotated away; files rotated away unseen are an
//! inherent loss that the model does not cover.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tempfile::TempDir;

use super::tests::{Recorder, append};
use super::*;

const MAX_LINE: usize = 64;

#[derive(Clone, Debug)]
enum Op {
    /// Append complete lines (the first completes a pending partial line).
    Append(u8),
    /// Append one line longer than the line limit.
    AppendLong(u8),
    /// Start (or extend) an unterminated line.
    AppendPartial,
    /// Terminate the pending partial line.
    CompletePartial,
    /// `mv a.log.N a.log.N+1 ... && mv a.log a.log.1 && touch a.log`.
    Rotate,
    /// `cp a.log a.log.1 && truncate -s0 a.log`.
    CopyTruncate,
    /// Truncate and append lines before the tailer looks.
    TruncateAndRegrow(u8),
    /// `rm a.log && touch a.log`.
    DeleteRecreate,
    /// Ack everything read, persist, start a new tailer.
    Restart,
    /// Ack all but the last few lines read, persist, start a new tailer.
    Crash(u8),
    /// Like `Crash`, but while the tailer is stopped append lines to the
    /// file at the path, then rotate it away `rotations` times, appending
    /// `lines` lines to each new file.
    RotateWhileStopped {
        unacked: u8,
        before: u8,
        rotations: u8,
        lines: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u8..=4).prop_map(Op::Append),
        1 => (1u8..=100).prop_map(Op::AppendLong),
        2 => Just(Op::AppendPartial),
        2 => Just(Op::CompletePartial),
        1 => Just(Op::Rotate),
        1 => Just(Op::CopyTruncate),
        1 => (1u8..=6).prop_map(Op::TruncateAndRegrow),
        1 => Just(Op::DeleteRecreate),
        1 => Just(Op::Restart),
        1 => (0u8..=5).prop_map(Op::Crash),
        1 => (0u8..=5, 0u8..=2, 1u8..=3, 0u8..=2).prop_map(|(unacked, before, rotations, lines)| {
            Op::RotateWhileStopped { unacked, before, rotations, lines }
        }),
    ]
}

/// A line the engine must emit, and which file content generation of the
/// path holds it.
#[derive(Clone, Debug)]
struct Expected {
    bytes: Vec<u8>,
    truncated: bool,
    generation: u64,
}

struct Harness {
    _dir: TempDir,
    cfg: TailConfig,
    path: PathBuf,
    /// `None` only while stopped.
    tailer: Option<Tailer<Recorder>>,
    seq: u64,
    /// Changes whenever the content at the path is replaced or truncated.
    generation: u64,
    /// Generations rotated away by rename: still in the directory.
    rotated: HashSet<u64>,
    /// How many `a.log.N` there are.
    numbered: u32,
    partial: Option<Vec<u8>>,
    /// Everything the engine must emit, in order; `delivered` of them were.
    expected: Vec<Expected>,
    delivered: usize,
    /// Lines emitted by the current tailer and not acked yet.
    unacked: Vec<Line>,
}

impl Harness {
    fn new(initial: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = TailConfig {
            paths: vec![dir.path().join("a.log")],
            checkpoint_path: dir.path().join("checkpoint.json"),
            start_at: StartAt::Beginning,
            max_line_bytes: MAX_LINE,
            poll_interval: Duration::from_millis(5),
            read_budget_bytes: 100,
            max_open_files: usize::MAX,
            idle_close: None,
            max_watched_dirs: usize::MAX,
        };
        let path = cfg.paths[0].clone();
        File::create(&path).unwrap();
        let tailer = Tailer::new(cfg.clone(), Recorder::default()).unwrap();
        let mut h = Self {
            _dir: dir,
            cfg,
            path,
            tailer: Some(tailer),
            seq: 0,
            generation: 0,
            rotated: HashSet::new(),
            numbered: 0,
            partial: None,
            expected: Vec::new(),
            delivered: 0,
            unacked: Vec::new(),
        };
        for _ in 0..initial {
            h.write_line(0);
        }
        h
    }

    fn next_text(&mut self, prefix: char, pad: usize) -> Vec<u8> {
        self.seq += 1;
        // Unique, so every file has a distinct first line and fingerprint.
        let mut text = format!("{prefix}{:05}-", self.seq).into_bytes();
        text.extend(std::iter::repeat_n(b'a' + (self.seq % 26) as u8, pad));
        text
    }

    fn write_line(&mut self, pad: usize) {
        let text = self.next_text('L', pad);
        let mut written = text.clone();
        written.push(b'\n');
        append(&self.path, &written);
        let mut line = self.partial.take().unwrap_or_default();
        line.extend_from_slice(&text);
        self.expect(line);
    }

    fn expect(&mut self, line: Vec<u8>) {
        let truncated = line.len() > MAX_LINE;
        self.expected.push(Expected {
            bytes: line[..line.len().min(MAX_LINE)].to_vec(),
            truncated,
            generation: self.generation,
        });
    }

    /// The content at the path is gone: its pending partial line, and its
    /// lines the tailer has not emitted yet.
    fn lose_current_content(&mut self) {
        self.partial = None;
        let (generation, delivered) = (self.generation, self.delivered);
        let mut i = 0;
        self.expected.retain(|e| {
            i += 1;
            i <= delivered || e.generation != generation
        });
        self.generation += 1;
    }

    fn truncate(&self) {
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Append(n) => {
                for i in 0..n {
                    self.write_line(usize::from(i) * 7);
                }
            }
            Op::AppendLong(extra) => self.write_line(MAX_LINE + usize::from(extra)),
            Op::AppendPartial => {
                let text = self.next_text('P', 3);
                append(&self.path, &text);
                self.partial
                    .get_or_insert_default()
                    .extend_from_slice(&text);
            }
            Op::CompletePartial => {
                if let Some(mut line) = self.partial.take() {
                    append(&self.path, b"-end\n");
                    line.extend_from_slice(b"-end");
                    self.expect(line);
                }
            }
            Op::Rotate => self.rotate(),
            Op::CopyTruncate => {
                // A fresh name: copying over a rotated file the tailer still
                // drains would rewrite that file under it.
                self.seq += 1;
                let copy = self.path.with_extension(format!("log.copy{}", self.seq));
                fs::copy(&self.path, copy).unwrap();
                self.truncate();
                self.lose_current_content();
            }
            Op::TruncateAndRegrow(n) => {
                self.truncate();
                self.lose_current_content();
                for i in 0..n {
                    self.write_line(usize::from(i) * 5);
                }
            }
            Op::DeleteRecreate => {
                fs::remove_file(&self.path).unwrap();
                File::create(&self.path).unwrap();
                self.partial = None;
                self.generation += 1;
            }
            Op::Restart => self.restart(0, |_| {}),
            Op::Crash(unacked) => self.restart(usize::from(unacked), |_| {}),
            Op::RotateWhileStopped {
                unacked,
                before,
                rotations,
                lines,
            } => self.restart(usize::from(unacked), |h| {
                for i in 0..before {
                    h.write_line(usize::from(i) * 3);
                }
                for _ in 0..rotations {
                    h.rotate();
                    for i in 0..lines {
                        h.write_line(usize::from(i) * 3);
                    }
                }
            }),
        }
        Ok(())
    }

    fn rotate(&mut self) {
        let numbered = |n: u32| self.path.with_extension(format!("log.{n}"));
        for n in (1..=self.numbered).rev() {
            fs::rename(numbered(n), numbered(n + 1)).unwrap();
        }
        fs::rename(&self.path, numbered(1)).unwrap();
        File::create(&self.path).unwrap();
        self.numbered += 1;
        self.partial = None;
        self.rotated.insert(self.generation);
        self.generation += 1;
    }

    fn tailer(&mut self) -> &mut Tailer<Recorder> {
        self.tailer.as_mut().unwrap()
    }

    /// Acks all emitted lines but the last `unacked`, persists, and stops
    /// the tailer, as a crash right after the persist would; runs `stopped`
    /// and starts a new tailer.
    fn restart(&mut self, unacked: usize, stopped: impl FnOnce(&mut Self)) {
        let keep = unacked.min(self.unacked.len());
        let acked = self.unacked.len() - keep;
        let checkpointer = self.tailer().checkpointer();
        for line in &self.unacked[..acked] {
            checkpointer.ack(line.file, line.end);
        }
        checkpointer.persist().unwrap();
        self.tailer = None;
        // The new tailer resumes every file of the checkpoint still in the
        // directory (at the path or rotated away) after its last acked line:
        // it emits again their unacked lines, then the rest, oldest file
        // first. Deleted files and truncated content are gone.
        let current = self.generation;
        let replay_from = self.delivered - keep;
        let replayed: Vec<Expected> = self.expected[replay_from..]
            .iter()
            .filter(|e| e.generation == current || self.rotated.contains(&e.generation))
            .cloned()
            .collect();
        self.expected.truncate(self.delivered);
        self.expected.extend(replayed);
        self.unacked.clear();
        // Files written and rotated now were never seen; they come after
        // the ones above, which is the order their lines are expected in.
        stopped(self);
        self.tailer = Some(Tailer::new(self.cfg.clone(), Recorder::default()).unwrap());
    }

    fn check(&mut self, lines: Vec<Line>) -> Result<(), TestCaseError> {
        for line in lines {
            let Some(want) = self.expected.get(self.delivered) else {
                return Err(TestCaseError::fail(format!(
                    "unexpected line {:?}",
                    String::from_utf8_lossy(&line.bytes)
                )));
            };
            prop_assert_eq!(
                String::from_utf8_lossy(&line.bytes),
                String::from_utf8_lossy(&want.bytes),
                "line {} of the stream",
                self.delivered
            );
            prop_assert_eq!(line.truncated, want.truncated);
            prop_assert!(line.end > line.offset);
            self.delivered += 1;
            self.unacked.push(line);
        }
        Ok(())
    }

    fn read(&mut self, max_lines: usize) -> Result<(), TestCaseError> {
        // The model assumes the engine looked at the files after every operation.
        self.tailer().look_on_next_read();
        let lines = self.tailer().read_batch(max_lines, Duration::ZERO);
        self.check(lines)
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        let start = Instant::now();
        while self.delivered < self.expected.len() {
            prop_assert!(
                start.elapsed() < Duration::from_secs(3),
                "missing lines: {:?}",
                self.expected[self.delivered..]
                    .iter()
                    .map(|e| String::from_utf8_lossy(&e.bytes).into_owned())
                    .collect::<Vec<_>>()
            );
            let lines = self.tailer().read_batch(64, Duration::from_millis(10));
            self.check(lines)?;
        }
        let lines = self.tailer().read_batch(64, Duration::from_millis(5));
        self.check(lines)
    }
}

fn run(initial: u8, steps: &[(Op, usize)]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(initial);
    for (op, max_lines) in steps {
        h.apply(op)?;
        h.read(*max_lines)?;
    }
    h.drain()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_matches_the_model(
        initial in 0u8..3,
        steps in vec((op(), 1usize..=6), 1..40),
    ) {
        run(initial, &steps)?;
    }
}

#[test]
fn model_crash_replays_unacked_lines_of_rotated_and_current_files() {
    let steps = [
        (Op::Append(3), 6),
        (Op::Rotate, 1),
        (Op::Append(2), 6),
        (Op::Crash(3), 6),
        (Op::Append(1), 6),
    ];
    run(1, &steps).unwrap();
}

#[test]
fn model_rotations_while_stopped_lose_nothing() {
    let stopped = |unacked, before, rotations, lines| Op::RotateWhileStopped {
        unacked,
        before,
        rotations,
        lines,
    };
    let steps = [
        (Op::Append(3), 2),
        (Op::AppendPartial, 1),
        (stopped(1, 1, 2, 2), 1),
        (Op::Append(1), 1),
        (Op::Rotate, 1),
        (stopped(0, 0, 1, 1), 6),
        (Op::CopyTruncate, 1),
        (stopped(2, 1, 3, 0), 3),
    ];
    run(2, &steps).unwrap();
}
