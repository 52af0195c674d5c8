//! The engine: looks at the followed paths and reads their files in turn.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpointer, unix_now};
use super::file::{OpenCx, Outcome, ReadCx, TrackedFile, identity};
use super::recover::{Names, RecoverCx, Step, find_rotated};
use super::watch::{DirWatcher, Wake};
use super::{Line, TailConfig, TailError, TailObserver};

/// Most files open at once for one path (16): the file at the path plus
/// rotated ones not yet read to their end. When full, a new file at the path
/// is not opened until the oldest is drained (reported through
/// [`TailObserver::rotation_backlog_full`]); if it is rotated away before
/// that, it is missed.
pub const MAX_FILES_PER_PATH: usize = 16;

/// Size of the one read buffer of a tailer (64 KiB). Reads are at most this
/// big; longer stretches take several reads.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// One configured path and the files opened from it, oldest first. Only the
/// oldest is read; every file but the newest is no longer at the path and is
/// closed once read to its end.
struct Followed {
    path: Arc<Path>,
    files: VecDeque<TrackedFile>,
    /// The last errors reported for looking at this path and for reading its
    /// file, so a lasting problem is reported once rather than on every pass.
    look_error: Option<io::ErrorKind>,
    read_error: Option<io::ErrorKind>,
    backlog_reported: bool,
}

fn report<O: TailObserver>(
    last: &mut Option<io::ErrorKind>,
    path: &Path,
    observer: &mut O,
    error: io::Error,
) {
    if *last != Some(error.kind()) {
        *last = Some(error.kind());
        observer.io_error(path, &TailError::io(path, error));
    }
}

/// Follows files and yields their lines. See the [module documentation]
/// (super) for behaviour, guarantees and bounds.
pub struct Tailer<O: TailObserver> {
    cfg: TailConfig,
    observer: O,
    followed: Vec<Followed>,
    checkpointer: Checkpointer,
    wake: Arc<Wake>,
    watcher: DirWatcher,
    scratch: Vec<u8>,
    /// Where the next pass starts, rotated for fairness between paths.
    next: usize,
    last_tick: Instant,
}

impl<O: TailObserver> Tailer<O> {
    /// Loads the checkpoint, starts the file watcher and opens the files
    /// present at the configured paths. Fails on an invalid configuration or
    /// a checkpoint file that exists but cannot be read; a corrupt checkpoint
    /// or a watcher that cannot start is only reported to `observer`.
    pub fn new(cfg: TailConfig, observer: O) -> Result<Self, TailError> {
        Self::build(cfg, observer, true)
    }

    /// [`Tailer::new`], with the file watcher left off when `use_watcher` is
    /// false, to exercise the polling fallback.
    pub(crate) fn build(
        cfg: TailConfig,
        mut observer: O,
        use_watcher: bool,
    ) -> Result<Self, TailError> {
        if cfg.paths.is_empty() {
            return Err(TailError::InvalidConfig("no paths to follow"));
        }
        if cfg.max_line_bytes == 0 {
            return Err(TailError::InvalidConfig(
                "max_line_bytes must be at least 1",
            ));
        }
        if cfg.read_budget_bytes == 0 {
            return Err(TailError::InvalidConfig(
                "read_budget_bytes must be at least 1",
            ));
        }
        if cfg.poll_interval.is_zero() {
            return Err(TailError::InvalidConfig("poll_interval must not be zero"));
        }
        if cfg.checkpoint_path.file_name().is_none() {
            return Err(TailError::InvalidConfig("checkpoint_path must name a file"));
        }
        let mut paths: Vec<Arc<Path>> = Vec::new();
        for path in &cfg.paths {
            if !paths.iter().any(|p| **p == **path) {
                paths.push(Arc::from(path.as_path()));
            }
        }
        let (checkpointer, problem) = Checkpointer::load(&cfg.checkpoint_path)?;
        if let Some(error) = problem {
            observer.checkpoint_invalid(&error);
        }
        let wake = Arc::new(Wake::default());
        let (watcher, problem) = DirWatcher::start(&paths, &wake, use_watcher);
        if let Some(error) = problem {
            observer.watch_failed(&error);
        }
        let mut tailer = Self {
            followed: paths
                .into_iter()
                .map(|path| Followed {
                    path,
                    files: VecDeque::new(),
                    look_error: None,
                    read_error: None,
                    backlog_reported: false,
                })
                .collect(),
            cfg,
            observer,
            checkpointer,
            wake,
            watcher,
            scratch: vec![0; READ_CHUNK_BYTES],
            next: 0,
            last_tick: Instant::now(),
        };
        tailer.tick();
        let names: Vec<Option<Names>> =
            tailer.followed.iter().map(|f| Names::of(&f.path)).collect();
        let at_paths: HashSet<(u64, u64)> = tailer
            .followed
            .iter()
            .filter_map(|f| fs::metadata(&f.path).ok())
            .map(|meta| identity(&meta))
            .collect();
        for (i, own) in names.iter().enumerate() {
            // Rotated files go first: they are older than the file at the
            // path, and only the oldest open file of a path is read.
            if let Some(own) = own {
                tailer.recover(i, own, &names, &at_paths);
            }
            tailer.look(i, true);
        }
        Ok(tailer)
    }

    /// A handle to ack lines and persist the checkpoint, for any thread.
    pub fn checkpointer(&self) -> Checkpointer {
        self.checkpointer.clone()
    }

    /// The observer passed to [`Tailer::new`].
    pub fn observer(&self) -> &O {
        &self.observer
    }

    /// The observer passed to [`Tailer::new`], mutably.
    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// Returns up to `max_lines` complete lines, as soon as there are any or
    /// once `wait` has passed (then possibly none). A file notification ends
    /// the wait early; without one, the paths are looked at again every
    /// [`TailConfig::poll_interval`]. Errors on single files are reported to
    /// the observer and retried, so this never fails.
    pub fn read_batch(&mut self, max_lines: usize, wait: Duration) -> Vec<Line> {
        let mut out = Vec::new();
        if max_lines == 0 {
            return out;
        }
        // An unrepresentable deadline means wait for lines indefinitely.
        let deadline = Instant::now().checked_add(wait);
        loop {
            if let Some(error) = self.wake.clear() {
                self.observer.watch_failed(&TailError::Watch(error));
            }
            if self.last_tick.elapsed() >= self.cfg.poll_interval {
                self.tick();
            }
            for i in 0..self.followed.len() {
                self.look(i, false);
            }
            let more = self.read_pass(max_lines, &mut out);
            if !out.is_empty() {
                return out;
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return out;
            }
            if !more {
                self.wake.wait(left.min(self.cfg.poll_interval));
            }
        }
    }

    /// Housekeeping at most once per poll interval.
    fn tick(&mut self) {
        self.last_tick = Instant::now();
        for error in self.watcher.refresh() {
            self.observer.watch_failed(&error);
        }
        let pruned = self.checkpointer.prune(unix_now());
        if pruned > 0 {
            self.observer.checkpoint_pruned(pruned);
        }
    }

    /// Opens, oldest first, the files that were at path `i` and have been
    /// renamed away in its directory with lines left to read or to
    /// acknowledge, including files that came and went at the path while the
    /// tailer was stopped (see [Recovering rotated
    /// files](super#recovering-rotated-files-at-startup)).
    fn recover(
        &mut self,
        i: usize,
        names: &Names,
        all: &[Option<Names>],
        at_paths: &HashSet<(u64, u64)>,
    ) {
        let followed = &mut self.followed[i];
        let steps = find_rotated(RecoverCx {
            path: &followed.path,
            names,
            all,
            at_paths,
            observer: &mut self.observer,
            checkpointer: &self.checkpointer,
        });
        for step in steps {
            let found = match step {
                Step::Keep(slot) => {
                    self.checkpointer.requeue(slot);
                    continue;
                }
                Step::Open(found) => found,
            };
            let cx = OpenCx {
                path: &followed.path,
                initial: true,
                start_at: self.cfg.start_at,
                max_line_bytes: self.cfg.max_line_bytes,
                observer: &mut self.observer,
                checkpointer: &self.checkpointer,
            };
            match TrackedFile::open(found.file, &found.meta, cx) {
                Ok(tracked) => {
                    self.observer.rotated_file_recovered(
                        &followed.path,
                        &found.found,
                        tracked.position(),
                        found.known,
                    );
                    followed.files.push_back(tracked);
                }
                Err(e) => self
                    .observer
                    .io_error(&followed.path, &TailError::io(&found.found, e)),
            }
        }
    }

    /// Opens the file at path `i` if it is not one we already have, and
    /// checks the identity of every open file of the path.
    fn look(&mut self, i: usize, initial: bool) {
        self.look_at_path(i, initial);
        // Files waiting behind the one being read are not read, but their
        // checkpoint entries must follow their content (a first line
        // completed, a truncation): a file rotated away before a restart is
        // found again only by that identity. Errors are left to the read of
        // the file, which reports them.
        let followed = &mut self.followed[i];
        for file in &mut followed.files {
            let _ = file.check_identity(&followed.path, &mut self.observer, &self.checkpointer);
        }
    }

    /// Opens the file at path `i` if it is not the one we already have.
    fn look_at_path(&mut self, i: usize, initial: bool) {
        let followed = &mut self.followed[i];
        // A cheap stat first: nearly always the path still names our file.
        let seen = match fs::metadata(&followed.path) {
            Ok(meta) => identity(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                followed.look_error = None;
                return;
            }
            Err(e) => {
                return report(
                    &mut followed.look_error,
                    &followed.path,
                    &mut self.observer,
                    e,
                );
            }
        };
        let known = |followed: &Followed, id: (u64, u64)| {
            followed.files.iter().any(|f| (f.dev, f.ino) == id)
        };
        if known(followed, seen) {
            followed.look_error = None;
            return;
        }
        if followed.files.len() >= MAX_FILES_PER_PATH {
            if !followed.backlog_reported {
                followed.backlog_reported = true;
                self.observer.rotation_backlog_full(&followed.path);
            }
            return;
        }
        let opened = File::open(&followed.path).and_then(|file| {
            let meta = file.metadata()?;
            Ok((file, meta))
        });
        let (file, meta) = match opened {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                return report(
                    &mut followed.look_error,
                    &followed.path,
                    &mut self.observer,
                    e,
                );
            }
        };
        // The path may have changed between the stat and the open.
        if known(followed, identity(&meta)) {
            return;
        }
        let cx = OpenCx {
            path: &followed.path,
            initial,
            start_at: self.cfg.start_at,
            max_line_bytes: self.cfg.max_line_bytes,
            observer: &mut self.observer,
            checkpointer: &self.checkpointer,
        };
        match TrackedFile::open(file, &meta, cx) {
            Ok(tracked) => {
                if !followed.files.is_empty() {
                    self.observer.file_rotated(&followed.path);
                }
                followed.files.push_back(tracked);
                followed.look_error = None;
                followed.backlog_reported = false;
            }
            Err(e) => report(
                &mut followed.look_error,
                &followed.path,
                &mut self.observer,
                e,
            ),
        }
    }

    /// Reads each path's oldest file, up to the read budget per path, closing
    /// rotated files read to their end. Returns whether some path stopped on
    /// its budget (so there is more to read right away).
    fn read_pass(&mut self, max_lines: usize, out: &mut Vec<Line>) -> bool {
        let count = self.followed.len();
        let first = self.next;
        self.next = (self.next + 1) % count;
        let mut more = false;
        for k in 0..count {
            if out.len() >= max_lines {
                break;
            }
            let followed = &mut self.followed[(first + k) % count];
            let mut budget = self.cfg.read_budget_bytes;
            while let Some(file) = followed.files.front_mut() {
                let mut cx = ReadCx {
                    path: &followed.path,
                    out: &mut *out,
                    max_lines,
                    scratch: &mut self.scratch,
                    observer: &mut self.observer,
                    checkpointer: &self.checkpointer,
                };
                let outcome = file.read(&mut cx, &mut budget);
                if outcome.is_ok() {
                    followed.read_error = None;
                }
                match outcome {
                    Ok(Outcome::AtEnd) if followed.files.len() > 1 => {
                        if let Some(old) = followed.files.pop_front() {
                            old.close(&followed.path, &mut self.observer, &self.checkpointer);
                        }
                    }
                    Ok(Outcome::AtEnd | Outcome::Full) => break,
                    Ok(Outcome::Budget) => {
                        more = true;
                        break;
                    }
                    Err(e) => {
                        report(
                            &mut followed.read_error,
                            &followed.path,
                            &mut self.observer,
                            e,
                        );
                        break;
                    }
                }
            }
        }
        more
    }
}
