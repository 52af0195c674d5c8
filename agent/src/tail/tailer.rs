//! The engine: looks at the followed paths and reads their files in turn.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{Checkpointer, unix_now};
use super::file::{OpenCx, Outcome, Parked, ReadCx, TrackedFile, identity};
use super::recover::{Names, RecoverCx, Step, find_rotated};
use super::watch::{DirWatcher, Wake, parent_dir};
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

/// While the caller is behind (its last [`Tailer::read_batch`] came back full,
/// or a path stopped on its read budget), the paths are looked at no more than
/// every 100 ms (or every poll interval, if shorter) instead of on every call.
/// A look is a `stat` per path plus a `fstat` and a short `pread` per open
/// file: at a thousand files, looking on every call of a few hundred lines
/// cost more than the reading. Open files are read to their end regardless;
/// only noticing new files and parked files that grew is delayed, by at most
/// this much. Paths waiting for a descriptor are the exception: those paths
/// alone are looked at again as soon as a pass gave a descriptor back, so that
/// they take their turns at the pace of the reading, not of this interval.
pub const BUSY_LOOK_INTERVAL: Duration = Duration::from_millis(100);

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
    /// The file at the path, closed to save a descriptor; only when `files`
    /// is empty.
    parked: Option<Parked>,
    /// Read to the end, then forgotten: no new file at the path is opened.
    retired: bool,
    /// When a read last returned something.
    last_active: Instant,
    /// The last look found a file to open (or a parked file to reopen) and no
    /// descriptor free for it.
    wants_descriptor: bool,
}

impl Followed {
    fn new(path: Arc<Path>) -> Self {
        Self {
            path,
            files: VecDeque::new(),
            look_error: None,
            read_error: None,
            backlog_reported: false,
            parked: None,
            retired: false,
            last_active: Instant::now(),
            wants_descriptor: false,
        }
    }
}

/// What a tailer holds, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TailStats {
    /// Paths followed.
    pub paths: usize,
    /// Files open (descriptors held).
    pub open_files: usize,
    /// Files closed while idle, their positions kept.
    pub parked_files: usize,
    /// Directories with a file watch.
    pub watched_dirs: usize,
    /// Directories seen by polling only (over the watch limit, or the watch failed).
    pub polled_dirs: usize,
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
    /// Files open across all paths.
    open: usize,
    limit_reported: bool,
    /// A file waited for a descriptor in the last round of looks.
    starved: bool,
    /// A descriptor was given back since the last round of looks.
    freed: bool,
    /// Where [`Tailer::look_waiting`] starts.
    wait_cursor: usize,
    /// When the paths were last looked at.
    last_look: Instant,
    /// The last [`Tailer::read_batch`] left lines to read: see
    /// [`BUSY_LOOK_INTERVAL`].
    behind: bool,
}

impl<O: TailObserver> Tailer<O> {
    /// Loads the checkpoint, starts the file watcher and opens the files
    /// present at the configured paths. Fails on an invalid configuration or
    /// a checkpoint file that exists but cannot be read; a corrupt checkpoint
    /// or a watcher that cannot start is only reported to `observer`.
    pub fn new(cfg: TailConfig, observer: O) -> Result<Self, TailError> {
        Self::build(cfg, observer, true)
    }

    /// [`Tailer::new`] for a caller that adds paths as it finds them
    /// ([`Tailer::add_path`]): `cfg.paths` may be empty.
    pub fn new_dynamic(cfg: TailConfig, observer: O) -> Result<Self, TailError> {
        Self::build_with(cfg, observer, true, true)
    }

    /// [`Tailer::new`], with the file watcher left off when `use_watcher` is
    /// false, to exercise the polling fallback.
    pub(crate) fn build(
        cfg: TailConfig,
        observer: O,
        use_watcher: bool,
    ) -> Result<Self, TailError> {
        Self::build_with(cfg, observer, use_watcher, false)
    }

    fn build_with(
        cfg: TailConfig,
        mut observer: O,
        use_watcher: bool,
        allow_empty: bool,
    ) -> Result<Self, TailError> {
        if cfg.max_open_files == 0 {
            return Err(TailError::InvalidConfig(
                "max_open_files must be at least 1",
            ));
        }
        if cfg.paths.is_empty() && !allow_empty {
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
        // A set: with a thousand paths, a linear search each is half a million
        // comparisons of paths, component by component.
        let mut seen: HashSet<&Path> = HashSet::new();
        for path in &cfg.paths {
            if seen.insert(path.as_path()) {
                paths.push(Arc::from(path.as_path()));
            }
        }
        let (checkpointer, problem, evicted) = Checkpointer::load(&cfg.checkpoint_path)?;
        if let Some(error) = problem {
            observer.checkpoint_invalid(&error);
        }
        if evicted > 0 {
            observer.checkpoint_evicted(evicted);
        }
        let wake = Arc::new(Wake::default());
        let (watcher, problem) =
            DirWatcher::start(&paths, &wake, use_watcher, cfg.max_watched_dirs);
        if let Some(error) = problem {
            observer.watch_failed(&error);
        }
        let mut tailer = Self {
            followed: paths.into_iter().map(Followed::new).collect(),
            cfg,
            observer,
            checkpointer,
            wake,
            watcher,
            scratch: vec![0; READ_CHUNK_BYTES],
            next: 0,
            last_tick: Instant::now(),
            open: 0,
            limit_reported: false,
            starved: false,
            freed: false,
            wait_cursor: 0,
            last_look: Instant::now(),
            behind: false,
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

    /// Follows `path` too, from now on (a no-op if it is followed). Rotated
    /// files of the path are recovered as at startup when the checkpoint
    /// knows the path; a file there is read from its checkpointed position,
    /// else from 0.
    pub fn add_path(&mut self, path: PathBuf) {
        if let Some(f) = self.followed.iter_mut().find(|f| *f.path == *path) {
            f.retired = false;
            return;
        }
        let path: Arc<Path> = Arc::from(path.as_path());
        self.watcher.add_path(&path);
        self.followed.push(Followed::new(Arc::clone(&path)));
        let i = self.followed.len() - 1;
        if self.checkpointer.path_known(&path.to_string_lossy())
            && let Some(own) = Names::of(&path)
        {
            // Only the paths of the same directory can claim its rotated files.
            let dir = parent_dir(&path);
            let same_dir: Vec<usize> = (0..self.followed.len())
                .filter(|&k| parent_dir(&self.followed[k].path) == dir)
                .collect();
            let names: Vec<Option<Names>> = (0..self.followed.len())
                .map(|k| {
                    if same_dir.contains(&k) {
                        Names::of(&self.followed[k].path)
                    } else {
                        None
                    }
                })
                .collect();
            let at_paths: HashSet<(u64, u64)> = same_dir
                .iter()
                .filter_map(|&k| fs::metadata(&self.followed[k].path).ok())
                .map(|meta| identity(&meta))
                .collect();
            self.recover(i, &own, &names, &at_paths);
        }
        self.look(i, false);
    }

    /// Stops following `path` once what is there has been read: the files
    /// open for it are read to their end, then closed, and the path is
    /// forgotten. For the files of a deleted container, say.
    pub fn retire_path(&mut self, path: &Path) {
        if let Some(f) = self.followed.iter_mut().find(|f| *f.path == *path) {
            f.retired = true;
        }
    }

    /// The followed paths.
    pub fn paths(&self) -> impl Iterator<Item = &Arc<Path>> {
        self.followed.iter().map(|f| &f.path)
    }

    /// Watches `dir` for new entries; see [`Tailer::take_discovery`].
    pub fn watch_dir(&mut self, dir: &Path) {
        self.watcher.add_extra(dir);
    }

    /// Stops watching `dir` for new entries.
    pub fn unwatch_dir(&mut self, dir: &Path) {
        self.watcher.remove_extra(dir);
    }

    /// Whether an entry appeared or went in a watched directory that is not a
    /// followed file, since the last call (or the watcher lost events): time
    /// for the caller to look for new files.
    pub fn take_discovery(&self) -> bool {
        self.wake.take_discovery()
    }

    /// Counts of paths, descriptors and watches.
    pub fn stats(&self) -> TailStats {
        let (watched_dirs, polled_dirs) = self.watcher.counts();
        TailStats {
            paths: self.followed.len(),
            open_files: self.open,
            parked_files: self.followed.iter().filter(|f| f.parked.is_some()).count(),
            watched_dirs,
            polled_dirs,
        }
    }

    /// Returns up to `max_lines` complete lines, as soon as there are any or
    /// once `wait` has passed (then possibly none). A file notification ends
    /// the wait early; without one, the paths are looked at again every
    /// [`TailConfig::poll_interval`]. A call looks at the paths before reading
    /// unless the caller is behind (see [`BUSY_LOOK_INTERVAL`]). Errors on
    /// single files are reported to the observer and retried, so this never
    /// fails.
    pub fn read_batch(&mut self, max_lines: usize, wait: Duration) -> Vec<Line> {
        let mut out = Vec::new();
        if max_lines == 0 {
            return out;
        }
        // An unrepresentable deadline means wait for lines indefinitely.
        let deadline = Instant::now().checked_add(wait);
        let busy_look = self.cfg.poll_interval.min(BUSY_LOOK_INTERVAL);
        let mut again = false;
        loop {
            if let Some(error) = self.wake.clear() {
                self.observer.watch_failed(&TailError::Watch(error));
            }
            if self.last_tick.elapsed() >= self.cfg.poll_interval {
                self.tick();
            }
            let looked = again || !self.behind || self.last_look.elapsed() >= busy_look;
            if looked {
                self.look_all();
            } else if self.starved && self.freed {
                // Paths waiting for a descriptor get one as soon as one is free, not
                // after the busy interval: otherwise a noisy file, read on every call,
                // would be read to its end before they got a turn.
                self.look_waiting();
            }
            let more = self.read_pass(max_lines, &mut out);
            self.drop_retired();
            if !out.is_empty() {
                self.behind = more || out.len() >= max_lines;
                return out;
            }
            // Caught up: the next pass looks, as every pass that follows a wait.
            self.behind = false;
            again = true;
            if !looked {
                // Files may wait for the descriptors this pass freed: look before waiting.
                continue;
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

    /// Looks at every path (see [`Tailer::look`]).
    fn look_all(&mut self) {
        self.starved = false;
        self.freed = false;
        for i in 0..self.followed.len() {
            self.look(i, false);
        }
        if !self.starved {
            self.limit_reported = false;
        }
        self.last_look = Instant::now();
    }

    /// Looks again at the paths that waited for a descriptor, while descriptors
    /// are free, starting after the last one served so that they take turns;
    /// the others are left to the next round of looks.
    fn look_waiting(&mut self) {
        self.freed = false;
        let count = self.followed.len();
        let mut waiting = false;
        let start = self.wait_cursor;
        for k in 0..count {
            let i = (start + k) % count;
            if !self.followed[i].wants_descriptor {
                continue;
            }
            if self.open >= self.cfg.max_open_files {
                waiting = true;
                break;
            }
            self.look(i, false);
            if self.followed[i].wants_descriptor {
                waiting = true;
            } else {
                self.wait_cursor = (i + 1) % count;
            }
        }
        self.starved = waiting;
    }

    /// Makes the next [`Tailer::read_batch`] look at every path even if the
    /// last one came back full, for a test that needs every operation on the
    /// files to be seen before the next one.
    #[cfg(test)]
    pub(crate) fn look_on_next_read(&mut self) {
        self.behind = false;
    }

    /// Housekeeping at most once per poll interval.
    fn tick(&mut self) {
        self.last_tick = Instant::now();
        for error in self.watcher.refresh() {
            self.observer.watch_failed(&error);
        }
        let pruned = self.checkpointer.prune(unix_now());
        if pruned.expired > 0 {
            self.observer.checkpoint_pruned(pruned.expired);
        }
        if pruned.evicted > 0 {
            self.observer.checkpoint_evicted(pruned.evicted);
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
                    self.open += 1;
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

    /// Opens the file at path `i` if it is not the one we already have, and
    /// reopens its parked file if that changed.
    fn look_at_path(&mut self, i: usize, initial: bool) {
        let followed = &mut self.followed[i];
        followed.wants_descriptor = false;
        if followed.retired && followed.parked.is_none() {
            return;
        }
        // A cheap stat first: nearly always the path still names our file.
        let meta = match fs::metadata(&followed.path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                followed.look_error = None;
                None
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
        if followed.parked.is_some() {
            self.unpark(i, meta.as_ref());
        }
        let followed = &mut self.followed[i];
        let Some(meta) = meta.filter(|_| !followed.retired) else {
            return;
        };
        let seen = identity(&meta);
        let known = |followed: &Followed, id: (u64, u64)| {
            followed.files.iter().any(|f| (f.dev, f.ino) == id)
                || followed
                    .parked
                    .as_ref()
                    .is_some_and(|p| (p.dev, p.ino) == id)
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
        if self.open >= self.cfg.max_open_files {
            self.starved = true;
            followed.wants_descriptor = true;
            if !self.limit_reported {
                self.limit_reported = true;
                self.observer.open_files_limited(&followed.path, self.open);
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
                self.open += 1;
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

    /// Reopens the parked file of path `i` if it has something new: at the
    /// path (`at_path` is what is there now), or renamed away in the path's
    /// directory, in which case it is read to its end before the new file.
    fn unpark(&mut self, i: usize, at_path: Option<&fs::Metadata>) {
        let followed = &mut self.followed[i];
        let Some(parked) = followed.parked.take() else {
            return;
        };
        let id = (parked.dev, parked.ino);
        if let Some(meta) = at_path.filter(|m| identity(m) == id) {
            if !parked.changed(meta) {
                followed.parked = Some(parked);
                return;
            }
            if self.open >= self.cfg.max_open_files {
                self.starved = true;
                followed.wants_descriptor = true;
                followed.parked = Some(parked);
                return;
            }
            match File::open(&followed.path) {
                Ok(file) if file.metadata().is_ok_and(|m| identity(&m) == id) => {
                    followed.files.push_back(parked.reopen(file));
                    self.open += 1;
                }
                // Replaced between the stat and the open: the next look sees it.
                _ => followed.parked = Some(parked),
            }
            return;
        }
        // Renamed or deleted while parked. Draining it is not optional (it
        // holds the path's older lines), so the descriptor limit is not
        // applied; the file is closed again once read to its end.
        match find_by_inode(&parent_dir(&followed.path), id) {
            Some((file, meta)) if parked.changed(&meta) => {
                followed.files.push_back(parked.reopen(file));
                self.open += 1;
            }
            _ => parked.forget(&followed.path, &mut self.observer, &self.checkpointer),
        }
    }

    /// Reads each path's oldest file, up to the read budget per path, closing
    /// rotated files read to their end. Returns whether some path stopped on
    /// its budget (so there is more to read right away).
    fn read_pass(&mut self, max_lines: usize, out: &mut Vec<Line>) -> bool {
        let count = self.followed.len();
        if count == 0 {
            return false;
        }
        let first = self.next % count;
        self.next = (self.next + 1) % count;
        let open_before = self.open;
        let mut more = false;
        for k in 0..count {
            if out.len() >= max_lines {
                break;
            }
            let followed = &mut self.followed[(first + k) % count];
            let mut budget = self.cfg.read_budget_bytes;
            let before = out.len();
            let mut at_end = false;
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
                            // Every close gives its descriptor back to the limit, or
                            // rotations would use it up and starve new files for good.
                            self.open -= 1;
                        }
                    }
                    Ok(Outcome::AtEnd) => {
                        at_end = true;
                        break;
                    }
                    Ok(Outcome::Full) => break,
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
            if out.len() > before {
                followed.last_active = Instant::now();
            }
            if !at_end || followed.files.len() != 1 {
                continue;
            }
            let idle = self
                .cfg
                .idle_close
                .is_some_and(|d| followed.last_active.elapsed() >= d);
            if followed.retired {
                if let Some(old) = followed.files.pop_front() {
                    old.close(&followed.path, &mut self.observer, &self.checkpointer);
                    self.open -= 1;
                }
            } else if (idle || self.starved)
                && let Some(file) = followed.files.pop_front()
            {
                // A file that cannot be parked (its metadata unreadable) stays open.
                match file.park() {
                    Ok(parked) => {
                        followed.parked = Some(parked);
                        self.open -= 1;
                    }
                    Err(file) => followed.files.push_front(*file),
                }
            }
        }
        self.freed |= self.open < open_before;
        more
    }

    /// Forgets retired paths with nothing left open.
    fn drop_retired(&mut self) {
        let mut gone = Vec::new();
        self.followed.retain_mut(|f| {
            let done = f.retired && f.files.is_empty();
            if done {
                if let Some(parked) = f.parked.take() {
                    parked.forget(&f.path, &mut self.observer, &self.checkpointer);
                }
                gone.push(Arc::clone(&f.path));
            }
            !done
        });
        for path in gone {
            let dir = parent_dir(&path);
            let used = self.followed.iter().any(|f| parent_dir(&f.path) == dir);
            self.watcher.remove_path(&path, used);
        }
    }
}

/// The file with device and inode `id` among the first
/// [`MAX_RECOVERY_SCAN_ENTRIES`](super::MAX_RECOVERY_SCAN_ENTRIES) entries of
/// `dir`, opened.
fn find_by_inode(dir: &Path, id: (u64, u64)) -> Option<(File, fs::Metadata)> {
    use std::os::unix::fs::DirEntryExt;
    let entries = fs::read_dir(dir).ok()?;
    for entry in entries
        .take(super::MAX_RECOVERY_SCAN_ENTRIES)
        .filter_map(Result::ok)
    {
        if entry.ino() != id.1 {
            continue;
        }
        let file = File::open(entry.path()).ok()?;
        let meta = file.metadata().ok()?;
        if identity(&meta) == id && meta.is_file() {
            return Some((file, meta));
        }
    }
    None
}
