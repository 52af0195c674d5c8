//! File notifications, folded into a single "look again" flag.

use std::collections::HashSet;
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
    fn signal(&self, error: Option<String>) {
        let mut state = lock(&self.state);
        state.pending = true;
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

/// Runs on the watcher's thread: wakes the tailer for events that concern a
/// followed file name or a watched directory itself, not for every other file
/// in a busy directory such as `/var/log`.
struct Handler {
    wake: Arc<Wake>,
    names: HashSet<OsString>,
    dirs: HashSet<PathBuf>,
}

impl EventHandler for Handler {
    fn handle_event(&mut self, event: notify::Result<Event>) {
        match event {
            Ok(event) => {
                let relevant = event.need_rescan()
                    || event.paths.iter().any(|p| {
                        self.dirs.contains(p)
                            || p.file_name().is_some_and(|n| self.names.contains(n))
                    });
                if relevant {
                    self.wake.signal(None);
                }
            }
            Err(e) => self.wake.signal(Some(e.to_string())),
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
    ) -> (Self, Option<TailError>) {
        let mut dirs: Vec<Dir> = Vec::new();
        for path in paths {
            let dir = parent_dir(path);
            if !dirs.iter().any(|d| d.path == dir) {
                dirs.push(Dir {
                    path: dir,
                    watched: None,
                    reported: false,
                });
            }
        }
        if !enabled {
            return (
                Self {
                    watcher: None,
                    dirs,
                },
                None,
            );
        }
        let handler = Handler {
            wake: Arc::clone(wake),
            names: paths
                .iter()
                .filter_map(|p| p.file_name().map(ToOwned::to_owned))
                .collect(),
            dirs: dirs.iter().map(|d| d.path.clone()).collect(),
        };
        match notify::recommended_watcher(handler) {
            Ok(watcher) => (
                Self {
                    watcher: Some(watcher),
                    dirs,
                },
                None,
            ),
            Err(e) => (
                Self {
                    watcher: None,
                    dirs,
                },
                Some(TailError::Watch(format!("cannot start: {e}"))),
            ),
        }
    }

    /// Watches directories not watched yet (they may not have existed) or
    /// replaced since. Returns failures to report, once per directory until
    /// it is watched.
    pub(crate) fn refresh(&mut self) -> Vec<TailError> {
        let Some(watcher) = self.watcher.as_mut() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for dir in &mut self.dirs {
            let now = std::fs::metadata(&dir.path).ok().map(|m| identity(&m));
            if dir.watched.is_some() && dir.watched == now {
                continue;
            }
            if dir.watched.take().is_some() {
                // The old watch may already be gone with its directory.
                let _ = watcher.unwatch(&dir.path);
            }
            if now.is_none() {
                continue;
            }
            match watcher.watch(&dir.path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    dir.watched = now;
                    dir.reported = false;
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
