//! File notifications, folded into a single "look again" flag.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use notify::{Event, EventHandler, RecommendedWatcher, RecursiveMode, Watcher};

use super::TailError;
use super::file::identity;

#[derive(Default)]
struct WakeState {
    pending: bool,
    /// Something changed in a watched directory that is not a followed file: a new file
    /// or directory the tailer's user may want to follow.
    discovery: bool,
    /// Only the latest watcher error is kept; it is a diagnostic.
    error: Option<String>,
}

/// Set by the watcher thread, waited on by the tailer. A flag rather than a
/// queue, so a burst of events costs no memory and one look covers them all.
#[derive(Default)]
pub(crate) struct Wake {
    state: Mutex<WakeState>,
    changed: Condvar,
}

fn lock(mutex: &Mutex<WakeState>) -> MutexGuard<'_, WakeState> {
    // Two plain fields; nothing a panicking holder could leave inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Wake {
    fn signal(&self, error: Option<String>, discovery: bool) {
        let mut state = lock(&self.state);
        state.pending = true;
        state.discovery |= discovery;
        if error.is_some() {
            state.error = error;
        }
        self.changed.notify_all();
    }

    /// Clears the flag before a look, so that events during the look cause
    /// another one. Returns a watcher error reported since the last call.
    pub(crate) fn clear(&self) -> Option<String> {
        let mut state = lock(&self.state);
        state.pending = false;
        state.error.take()
    }

    /// Whether a change that is not a followed file was seen since the last call.
    pub(crate) fn take_discovery(&self) -> bool {
        std::mem::take(&mut lock(&self.state).discovery)
    }

    /// Waits until the flag is set or `timeout` passes.
    pub(crate) fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        while !state.pending {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
        }
    }
}

/// The names and directories the handler filters on; shared with the tailer, which adds
/// and removes paths while running.
#[derive(Default)]
struct Filter {
    names: HashMap<OsString, usize>,
    dirs: HashSet<PathBuf>,
    /// Directories watched only so that new entries in them are noticed.
    extra: HashSet<PathBuf>,
}

fn lock_filter(mutex: &Mutex<Filter>) -> MutexGuard<'_, Filter> {
    // Plain sets; a panicking holder cannot leave them inconsistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs on the watcher's thread: wakes the tailer for events that concern a
/// followed file name or a watched directory itself, not for every other file
/// in a busy directory such as `/var/log`.
struct Handler {
    wake: Arc<Wake>,
    filter: Arc<Mutex<Filter>>,
}

impl EventHandler for Handler {
    fn handle_event(&mut self, event: notify::Result<Event>) {
        match event {
            Ok(event) => {
                let filter = lock_filter(&self.filter);
                let mut relevant = event.need_rescan();
                let mut discovery = event.need_rescan();
                for p in &event.paths {
                    let followed = p.file_name().is_some_and(|n| filter.names.contains_key(n));
                    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
                    relevant |= followed || filter.dirs.contains(p);
                    discovery |= filter.extra.contains(p)
                        || filter.extra.contains(&parent)
                        || (!followed && filter.dirs.contains(&parent));
                }
                drop(filter);
                if relevant || discovery {
                    self.wake.signal(None, discovery);
                }
            }
            Err(e) => self.wake.signal(Some(e.to_string()), true),
        }
    }
}

struct Dir {
    path: PathBuf,
    /// Device and inode of the directory when the watch was set; a watch dies
    /// with its directory, so a changed identity means watch again.
    watched: Option<(u64, u64)>,
    reported: bool,
}

/// Watches the parent directories of the followed paths, when it can.
pub(crate) struct DirWatcher {
    watcher: Option<RecommendedWatcher>,
    dirs: Vec<Dir>,
    filter: Arc<Mutex<Filter>>,
    /// Most directories watched at once; beyond it, directories are polled.
    max_dirs: usize,
    limit_reported: bool,
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl DirWatcher {
    /// Starts a watcher for the directories of `paths` (none if `enabled` is
    /// false). Returns the error to report if the watcher cannot start.
    pub(crate) fn start(
        paths: &[Arc<Path>],
        wake: &Arc<Wake>,
        enabled: bool,
        max_dirs: usize,
    ) -> (Self, Option<TailError>) {
        let filter = Arc::new(Mutex::new(Filter::default()));
        let mut this = Self {
            watcher: None,
            dirs: Vec::new(),
            filter,
            max_dirs,
            limit_reported: false,
        };
        for path in paths {
            this.add_path(path);
        }
        if !enabled {
            return (this, None);
        }
        let handler = Handler {
            wake: Arc::clone(wake),
            filter: Arc::clone(&this.filter),
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => {
                this.watcher = Some(watcher);
                (this, None)
            }
            Err(e) => (this, Some(TailError::Watch(format!("cannot start: {e}")))),
        }
    }

    /// Follows changes to `path` (watching its directory on the next refresh).
    pub(crate) fn add_path(&mut self, path: &Path) {
        let dir = parent_dir(path);
        let mut filter = lock_filter(&self.filter);
        if let Some(name) = path.file_name() {
            *filter.names.entry(name.to_owned()).or_default() += 1;
        }
        if filter.dirs.insert(dir.clone()) && !filter.extra.contains(&dir) {
            self.dirs.push(Dir {
                path: dir,
                watched: None,
                reported: false,
            });
        }
    }

    /// Stops following `path`; its directory is unwatched when no other path needs it.
    pub(crate) fn remove_path(&mut self, path: &Path, dir_still_used: bool) {
        let dir = parent_dir(path);
        let mut filter = lock_filter(&self.filter);
        if let Some(name) = path.file_name()
            && let Some(n) = filter.names.get_mut(name)
        {
            *n -= 1;
            if *n == 0 {
                filter.names.remove(name);
            }
        }
        if !dir_still_used {
            filter.dirs.remove(&dir);
            if !filter.extra.contains(&dir) {
                drop(filter);
                self.drop_dir(&dir);
            }
        }
    }

    /// Watches `dir` for new entries only (see [`Wake::take_discovery`]).
    pub(crate) fn add_extra(&mut self, dir: &Path) {
        let mut filter = lock_filter(&self.filter);
        if filter.extra.insert(dir.to_path_buf()) && !filter.dirs.contains(dir) {
            self.dirs.push(Dir {
                path: dir.to_path_buf(),
                watched: None,
                reported: false,
            });
        }
    }

    /// Stops watching `dir` for new entries.
    pub(crate) fn remove_extra(&mut self, dir: &Path) {
        let mut filter = lock_filter(&self.filter);
        if filter.extra.remove(dir) && !filter.dirs.contains(dir) {
            drop(filter);
            self.drop_dir(dir);
        }
    }

    fn drop_dir(&mut self, dir: &Path) {
        if let Some(i) = self.dirs.iter().position(|d| d.path == dir) {
            let gone = self.dirs.swap_remove(i);
            if gone.watched.is_some()
                && let Some(w) = self.watcher.as_mut()
            {
                // The watch may already be gone with its directory.
                let _ = w.unwatch(&gone.path);
            }
        }
    }

    /// Directories watched, and directories that are only polled.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let watched = self.dirs.iter().filter(|d| d.watched.is_some()).count();
        (watched, self.dirs.len() - watched)
    }

    /// Watches directories not watched yet (they may not have existed) or
    /// replaced since. Returns failures to report, once per directory until
    /// it is watched.
    pub(crate) fn refresh(&mut self) -> Vec<TailError> {
        let Some(watcher) = self.watcher.as_mut() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let mut watched = self.dirs.iter().filter(|d| d.watched.is_some()).count();
        for dir in &mut self.dirs {
            let now = std::fs::metadata(&dir.path).ok().map(|m| identity(&m));
            if dir.watched.is_some() && dir.watched == now {
                continue;
            }
            if dir.watched.take().is_some() {
                // The old watch may already be gone with its directory.
                let _ = watcher.unwatch(&dir.path);
                watched -= 1;
            }
            if now.is_none() {
                continue;
            }
            if watched >= self.max_dirs {
                if !self.limit_reported {
                    self.limit_reported = true;
                    errors.push(TailError::Watch(format!(
                        "{} directories watched, the configured maximum; the others are polled",
                        self.max_dirs
                    )));
                }
                continue;
            }
            match watcher.watch(&dir.path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    dir.watched = now;
                    dir.reported = false;
                    watched += 1;
                }
                Err(e) if !dir.reported => {
                    dir.reported = true;
                    errors.push(TailError::Watch(format!(
                        "cannot watch {}: {e}",
                        dir.path.display()
                    )));
                }
                Err(_) => {}
            }
        }
        errors
    }
}
