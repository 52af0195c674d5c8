//! The watch engine: containers' writable layers, their directory watches, the files they
//! hold, and the changes that are worth an event.
//!
//! A writable layer (overlayfs `upperdir`) holds exactly what the container changed: a new
//! file, an image file copied up on its first write, a whiteout for a deleted image file.
//! Each of its directories gets one non-recursive inotify watch (a watch per directory is
//! what inotify costs anyway; doing it here keeps the count under `max_watches` and lets a
//! directory created later be watched and scanned at once). A notification only marks a path
//! as pending; the path is judged once it has been quiet for `settle` (or after `max_delay`
//! for a file written continuously), so a 100 MiB copy is hashed once, not per write.
//!
//! Judging compares the file with the layer's inventory (size, mtime, mode, inode of every
//! regular file seen, up to `max_tracked_files` per container): an unchanged file gives
//! nothing, a mode change gives `chmod`, a file the image already has gives `modified`.
//! Only changes that matter are reported: an executable (exec bit or ELF) created or
//! modified anywhere (drift), and any change under a sensitive path (integrity). The rest
//! is counted.
//!
//! Bounds, each counted in `vigil_drift_*` when reached: `max_watches` directories in all
//! (deeper directories are not watched), `max_pending` paths waiting to settle (beyond, the
//! container is rescanned instead), `max_tracked_files` files per container, and a token
//! bucket per container (`events_per_sec`, `burst`) on reported changes. The notification
//! queue itself is the kernel's (`fs.inotify.max_queued_events`); when it overflows the
//! kernel says so and every layer is rescanned against its inventory.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use vigil_core::event::{Container, FileChange, FileChangeKind};

use super::DriftMetrics;
use super::inspect::{self, Entry, Stamp};

/// One container's writable layer, as discovery found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Runtime container id.
    pub id: String,
    /// The container as events name it.
    pub container: Container,
    /// The writable layer on this node (host root applied).
    pub upper: PathBuf,
    /// The image's layers, top first, to tell a copied-up image file from a new one.
    pub lowers: Vec<PathBuf>,
}

/// The engine's bounds and choices.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Container paths (`/etc`) under which every change is reported.
    pub sensitive: Vec<String>,
    /// Directories watched at most, all containers together.
    pub max_watches: usize,
    /// Paths waiting to settle at most.
    pub max_pending: usize,
    /// Regular files remembered per container at most.
    pub max_tracked_files: usize,
    /// Larger files are not hashed.
    pub max_hash_bytes: u64,
    /// Quiet time before a path is judged.
    pub settle: Duration,
    /// A path written without pause is judged after this long anyway.
    pub max_delay: Duration,
    /// Reported changes per second per container, sustained.
    pub events_per_sec: f64,
    /// Reported changes per container in a burst.
    pub burst: f64,
    /// Report executables and sensitive files already in a layer when it is first watched.
    pub report_existing: bool,
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The container.
    pub container: Container,
    /// The container id (also in `container`).
    pub id: String,
    /// What changed.
    pub file: FileChange,
    /// Found in the layer when it was first watched, not seen happening.
    pub existing: bool,
}

const H_CREATE: u8 = 1;
const H_WRITE: u8 = 2;
const H_META: u8 = 4;
const H_RENAME_TO: u8 = 8;
const H_GONE: u8 = 16;

struct Pending {
    owner: String,
    hints: u8,
    first: Instant,
    last: Instant,
}

/// A token bucket: `rate` per second, at most `burst` saved up.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Whether a token is there, without taking it.
    fn ready(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        self.tokens >= 1.0
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Watched {
    layer: Layer,
    dirs: HashSet<PathBuf>,
    /// Regular files by path relative to the layer.
    files: HashMap<PathBuf, Stamp>,
    bucket: Bucket,
}

/// Drops the watch of `dir` unless the directory is gone: the kernel removed that watch
/// with the directory and notify forgot it, and asking again only makes notify log a
/// warning per directory (a `docker rm` of a deep tree). A directory renamed away keeps its
/// kernel watch until it is deleted; it is no longer counted, and its events, under a name
/// no container owns, are ignored.
fn unwatch<W: Watcher>(watcher: &mut W, dir: &Path) {
    if std::fs::symlink_metadata(dir).is_ok() {
        let _ = watcher.unwatch(dir);
    }
}

/// The engine, over any `notify` watcher.
pub struct Engine<W: Watcher> {
    cfg: EngineConfig,
    watcher: W,
    containers: HashMap<String, Watched>,
    /// Watched directory → container id.
    dir_owner: HashMap<PathBuf, String>,
    pending: HashMap<PathBuf, Pending>,
    /// Containers to rescan at the next flush (an overflow, a full pending set).
    rescan: HashSet<String>,
    metrics: Arc<DriftMetrics>,
}

impl<W: Watcher> Engine<W> {
    /// An engine watching nothing yet.
    pub fn new(cfg: EngineConfig, watcher: W, metrics: Arc<DriftMetrics>) -> Self {
        let mut cfg = cfg;
        cfg.sensitive = cfg
            .sensitive
            .iter()
            .map(|p| p.trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        Engine {
            cfg,
            watcher,
            containers: HashMap::new(),
            dir_owner: HashMap::new(),
            pending: HashMap::new(),
            rescan: HashSet::new(),
            metrics,
        }
    }

    /// Directories watched now.
    pub fn watches(&self) -> usize {
        self.dir_owner.len()
    }

    /// Containers watched now.
    pub fn containers(&self) -> usize {
        self.containers.len()
    }

    /// Makes the watched set this list: new layers are walked and watched, layers of
    /// containers no longer running are released (their watches, inventory and pending
    /// paths). Returns what `report_existing` asks for.
    pub fn set_layers(&mut self, layers: Vec<Layer>, now: Instant) -> Vec<Finding> {
        let keep: HashSet<&str> = layers.iter().map(|l| l.id.as_str()).collect();
        let gone: Vec<String> = self
            .containers
            .keys()
            .filter(|id| !keep.contains(id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            self.release(&id);
        }
        let mut out = Vec::new();
        for layer in layers {
            if !self.containers.contains_key(&layer.id) {
                out.extend(self.add(layer, now));
            }
        }
        self.publish();
        out
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics
            .watches
            .store(self.dir_owner.len() as u64, Relaxed);
        self.metrics
            .containers
            .store(self.containers.len() as u64, Relaxed);
        self.metrics
            .pending
            .store(self.pending.len() as u64, Relaxed);
    }

    fn add(&mut self, mut layer: Layer, now: Instant) -> Vec<Finding> {
        // Canonical, so that descriptors resolved through /proc compare with it.
        let upper = match std::fs::symlink_metadata(&layer.upper) {
            Ok(m) if m.is_dir() => layer.upper.canonicalize().ok(),
            _ => None,
        };
        let Some(upper) = upper else {
            self.metrics.skip("no_layer");
            tracing::debug!(container = %layer.id, upper = %layer.upper.display(), "drift: writable layer not found");
            return Vec::new();
        };
        layer.upper = upper.clone();
        let id = layer.id.clone();
        self.containers.insert(
            id.clone(),
            Watched {
                layer,
                dirs: HashSet::new(),
                files: HashMap::new(),
                bucket: Bucket {
                    tokens: self.cfg.burst,
                    last: now,
                },
            },
        );
        let (found, others) = self.walk(&id, &upper);
        if !self.cfg.report_existing {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.judge_new(&id, &upper, found, others, H_CREATE, now, &mut out);
        for f in &mut out {
            f.existing = true;
        }
        out
    }

    /// Judges what a walk found as new: regular files (forgotten again by the inventory so
    /// they count as new) and other entries (links, whiteouts).
    #[allow(clippy::too_many_arguments)] // one call site shape, kept flat
    fn judge_new(
        &mut self,
        id: &str,
        upper: &Path,
        files: Vec<PathBuf>,
        others: Vec<PathBuf>,
        hints: u8,
        now: Instant,
        out: &mut Vec<Finding>,
    ) {
        for f in files {
            if let Some(w) = self.containers.get_mut(id)
                && let Ok(r) = f.strip_prefix(upper)
            {
                w.files.remove(r);
            }
            self.judge(id, &f, hints, now, out);
        }
        for o in others {
            self.judge(id, &o, hints, now, out);
        }
    }

    /// Watches `top` and every directory under it not watched yet, records the regular
    /// files found there in the inventory, and returns the files newly recorded and the
    /// other entries (links, devices, whiteouts) met.
    fn walk(&mut self, id: &str, top: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let mut found = Vec::new();
        let mut others = Vec::new();
        let mut stack = vec![top.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Some(w) = self.containers.get_mut(id) else {
                break;
            };
            if !w.dirs.contains(&dir) {
                if self.dir_owner.len() >= self.cfg.max_watches {
                    self.metrics.skip("watch_limit");
                    continue;
                }
                if let Err(e) = self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                    self.metrics.skip("watch_failed");
                    tracing::debug!(dir = %dir.display(), error = %e, "drift: cannot watch");
                    continue;
                }
                w.dirs.insert(dir.clone());
                self.dir_owner.insert(dir.clone(), id.to_owned());
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                // `file_type` of a directory entry does not follow links.
                let Ok(t) = entry.file_type() else { continue };
                if t.is_dir() {
                    stack.push(path);
                } else if !t.is_file() {
                    others.push(path);
                } else {
                    let Entry::File(stamp) = inspect::entry(&path) else {
                        continue;
                    };
                    let Ok(rel) = path.strip_prefix(&w.layer.upper) else {
                        continue;
                    };
                    if w.files.contains_key(rel) {
                        continue;
                    }
                    if w.files.len() >= self.cfg.max_tracked_files {
                        self.metrics.skip("untracked_file");
                    } else {
                        w.files.insert(rel.to_path_buf(), stamp);
                    }
                    found.push(path);
                }
            }
        }
        (found, others)
    }

    /// Stops watching a container and forgets it.
    pub fn release(&mut self, id: &str) {
        let Some(w) = self.containers.remove(id) else {
            return;
        };
        for dir in &w.dirs {
            unwatch(&mut self.watcher, dir);
            self.dir_owner.remove(dir);
        }
        self.pending.retain(|_, p| p.owner != id);
        self.rescan.remove(id);
        self.publish();
    }

    /// Takes one notification.
    pub fn on_event(&mut self, event: notify::Result<notify::Event>, now: Instant) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                self.metrics.skip("notify_error");
                tracing::debug!(error = %e, "drift: watcher error");
                return;
            }
        };
        if event.need_rescan() {
            // The kernel's queue overflowed: events were lost, so every layer is compared
            // with its inventory again.
            self.metrics.skip("queue_overflow");
            self.rescan.extend(self.containers.keys().cloned());
            return;
        }
        let hint = match event.kind {
            EventKind::Create(_) => H_CREATE,
            EventKind::Modify(ModifyKind::Metadata(_)) => H_META,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                // inotify paired the two halves: the old name is gone, the new one arrived.
                if let [from, to] = event.paths.as_slice() {
                    self.touch(from, H_GONE, now);
                    self.touch(to, H_RENAME_TO, now);
                }
                return;
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => H_GONE,
            EventKind::Modify(ModifyKind::Name(_)) => H_RENAME_TO,
            EventKind::Modify(_) => H_WRITE,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => H_WRITE,
            EventKind::Remove(_) => H_GONE,
            _ => return,
        };
        for p in &event.paths {
            self.touch(p, hint, now);
        }
    }

    fn touch(&mut self, path: &Path, hint: u8, now: Instant) {
        let owner = path
            .parent()
            .and_then(|d| self.dir_owner.get(d))
            .or_else(|| self.dir_owner.get(path));
        let Some(owner) = owner.cloned() else {
            // A late event for a released container.
            return;
        };
        if let Some(p) = self.pending.get_mut(path) {
            p.hints |= hint;
            p.last = now;
            return;
        }
        if self.pending.len() >= self.cfg.max_pending {
            // Not lost: the rescan compares the whole layer with its inventory.
            self.metrics.skip("pending_full");
            self.rescan.insert(owner);
            return;
        }
        self.pending.insert(
            path.to_path_buf(),
            Pending {
                owner,
                hints: hint,
                first: now,
                last: now,
            },
        );
    }

    /// When the next pending path settles, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| (p.last + self.cfg.settle).min(p.first + self.cfg.max_delay))
            .min()
    }

    /// Judges the paths that have settled (all of them with `all`) and rescans the layers
    /// that need it.
    pub fn flush(&mut self, now: Instant, all: bool) -> Vec<Finding> {
        let (settle, max_delay) = (self.cfg.settle, self.cfg.max_delay);
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| all || now >= p.last + settle || now >= p.first + max_delay)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for path in due {
            let Some(p) = self.pending.remove(&path) else {
                continue;
            };
            self.judge(&p.owner, &path, p.hints, now, &mut out);
        }
        let rescan: Vec<String> = self.rescan.drain().collect();
        for id in rescan {
            out.extend(self.rescan_layer(&id, now));
        }
        self.publish();
        out
    }

    /// Compares a layer with its inventory: files new, changed or gone are judged.
    fn rescan_layer(&mut self, id: &str, now: Instant) -> Vec<Finding> {
        let Some(w) = self.containers.get(id) else {
            return Vec::new();
        };
        let upper = w.layer.upper.clone();
        let before: Vec<(PathBuf, Stamp)> = w.files.iter().map(|(k, v)| (k.clone(), *v)).collect();
        // Files the walk records are new to the inventory; the others are compared below.
        // Links and whiteouts are not remembered, so they are not judged again here.
        let (new, _) = self.walk(id, &upper);
        let mut out = Vec::new();
        self.judge_new(id, &upper, new, Vec::new(), H_CREATE, now, &mut out);
        for (rel, stamp) in before {
            let abs = upper.join(&rel);
            match inspect::entry(&abs) {
                Entry::File(s) if s == stamp => {}
                _ => self.judge(id, &abs, H_WRITE, now, &mut out),
            }
        }
        out
    }

    fn sensitive(&self, path: &str) -> bool {
        self.cfg.sensitive.iter().any(|p| {
            path == p
                || (path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/'))
        })
    }

    /// The lower layer's entry at `rel`, top layer first.
    fn in_image(w: &Watched, rel: &Path) -> Option<Entry> {
        w.layer
            .lowers
            .iter()
            .map(|l| inspect::entry(&l.join(rel)))
            .find(|e| *e != Entry::Missing)
    }

    /// Judges one settled path of container `id`, adding what is worth reporting to `out`.
    fn judge(&mut self, id: &str, abs: &Path, hints: u8, now: Instant, out: &mut Vec<Finding>) {
        let found = self.judge_one(id, abs, hints, now);
        out.extend(found);
    }

    fn judge_one(&mut self, id: &str, abs: &Path, hints: u8, now: Instant) -> Vec<Finding> {
        let mut out = Vec::new();
        let Some(w) = self.containers.get(id) else {
            return out;
        };
        let upper = w.layer.upper.clone();
        let Some(rel) = abs.strip_prefix(&upper).ok().map(Path::to_path_buf) else {
            return out;
        };
        if rel.as_os_str().is_empty() {
            return out;
        }
        let cpath = format!("/{}", rel.to_string_lossy());
        let sensitive = self.sensitive(&cpath);
        let entry = inspect::entry(abs);
        if entry != Entry::Dir && w.dirs.contains(abs) {
            // A watched directory went away (removed, or renamed out): its watches and
            // inventory go with it; what it held that mattered is reported as deleted.
            self.dir_gone(id, abs, now, &mut out);
            return out;
        }
        let was_watched = w.dirs.contains(abs);
        let prev = w.files.get(&rel).copied();
        let (change, stamp, in_image) = match entry {
            Entry::Dir => {
                if was_watched && hints & H_GONE != 0 {
                    // Removed (or renamed away) and made again within the settle time: the
                    // watch went with the old directory, so the new one starts afresh.
                    self.dir_gone(id, abs, now, &mut out);
                }
                // A new directory: watch it and judge what is already in it (files created
                // before the watch existed would otherwise be missed).
                // Its contents are judged as created whatever brought the directory: overlayfs
                // copies a directory up by renaming it in from its work directory, so a
                // rename says nothing about the files inside.
                let (found, others) = self.walk(id, abs);
                self.judge_new(id, &upper, found, others, H_CREATE, now, &mut out);
                return out;
            }
            Entry::Missing | Entry::Whiteout => {
                let whiteout = entry == Entry::Whiteout;
                let Some(w) = self.containers.get_mut(id) else {
                    return out;
                };
                w.files.remove(&rel);
                let exec_before = prev.is_some_and(|s| s.executable())
                    || (whiteout
                        && matches!(Self::in_image(w, &rel), Some(Entry::File(s)) if s.executable()));
                if !(sensitive || exec_before) {
                    self.metrics.skip("not_reported");
                    return out;
                }
                (FileChangeKind::Deleted, None, whiteout)
            }
            Entry::Other { size } => {
                let Some(w) = self.containers.get_mut(id) else {
                    return out;
                };
                w.files.remove(&rel);
                if !sensitive {
                    self.metrics.skip("not_reported");
                    return out;
                }
                let in_image = Self::in_image(w, &rel).is_some();
                let change = if in_image {
                    FileChangeKind::Modified
                } else {
                    FileChangeKind::Created
                };
                let file = FileChange {
                    path: cpath,
                    change,
                    size: Some(size),
                    hash_skipped: Some("not_regular".into()),
                    sensitive,
                    in_image,
                    ..FileChange::default()
                };
                out.extend(self.report(id, file, now));
                return out;
            }
            Entry::File(stamp) => {
                let Some(w) = self.containers.get_mut(id) else {
                    return out;
                };
                let in_image = Self::in_image(w, &rel).is_some();
                let change = match prev {
                    Some(p) if p == stamp => return out,
                    Some(p) if stamp.only_metadata_changed(&p) => FileChangeKind::Chmod,
                    Some(_) => FileChangeKind::Modified,
                    None if in_image => FileChangeKind::Modified,
                    None if hints & H_RENAME_TO != 0 => FileChangeKind::Renamed,
                    None if hints & (H_CREATE | H_WRITE) == 0 && hints & H_META != 0 => {
                        FileChangeKind::Chmod
                    }
                    None => FileChangeKind::Created,
                };
                if prev.is_some() || w.files.len() < self.cfg.max_tracked_files {
                    w.files.insert(rel.clone(), stamp);
                } else {
                    self.metrics.skip("untracked_file");
                }
                (change, Some(stamp), in_image)
            }
        };
        let mut file = FileChange {
            path: cpath,
            change,
            sensitive,
            in_image,
            ..FileChange::default()
        };
        if let Some(stamp) = stamp {
            let wanted = sensitive || stamp.executable();
            // A finding the rate limit will drop is not worth hashing: a flood of copies
            // costs a few bytes read each, not the whole files.
            let (rate, burst) = (self.cfg.events_per_sec, self.cfg.burst);
            let ready = self
                .containers
                .get_mut(id)
                .is_some_and(|w| w.bucket.ready(now, rate, burst));
            let hash_cap = if ready { self.cfg.max_hash_bytes } else { 0 };
            let c = inspect::content(abs, &upper, &stamp, hash_cap, wanted);
            if !(wanted || c.elf) {
                self.metrics.skip("not_reported");
                return out;
            }
            file.size = Some(stamp.size);
            file.executable = stamp.executable();
            file.elf = c.elf;
            file.sha256 = c.sha256;
            file.hash_skipped = c.skipped.map(str::to_owned);
        }
        out.extend(self.report(id, file, now));
        out
    }

    fn dir_gone(&mut self, id: &str, abs: &Path, now: Instant, out: &mut Vec<Finding>) {
        let Some(w) = self.containers.get_mut(id) else {
            return;
        };
        let upper = w.layer.upper.clone();
        let dirs: Vec<PathBuf> = w
            .dirs
            .iter()
            .filter(|d| d.starts_with(abs))
            .cloned()
            .collect();
        for d in &dirs {
            w.dirs.remove(d);
            self.dir_owner.remove(d);
            unwatch(&mut self.watcher, d);
        }
        let Some(rel_dir) = abs.strip_prefix(&upper).ok().map(Path::to_path_buf) else {
            return;
        };
        let Some(w) = self.containers.get_mut(id) else {
            return;
        };
        let gone: Vec<(PathBuf, Stamp)> = w
            .files
            .iter()
            .filter(|(r, _)| r.starts_with(&rel_dir))
            .map(|(r, s)| (r.clone(), *s))
            .collect();
        for (rel, stamp) in gone {
            if let Some(w) = self.containers.get_mut(id) {
                w.files.remove(&rel);
            }
            let cpath = format!("/{}", rel.to_string_lossy());
            let sensitive = self.sensitive(&cpath);
            if !(sensitive || stamp.executable()) {
                continue;
            }
            let file = FileChange {
                path: cpath,
                change: FileChangeKind::Deleted,
                sensitive,
                ..FileChange::default()
            };
            out.extend(self.report(id, file, now));
        }
    }

    /// Applies the container's rate limit to a finding.
    fn report(&mut self, id: &str, file: FileChange, now: Instant) -> Option<Finding> {
        let (rate, burst) = (self.cfg.events_per_sec, self.cfg.burst);
        let w = self.containers.get_mut(id)?;
        if !w.bucket.take(now, rate, burst) {
            self.metrics.skip("rate_limited");
            return None;
        }
        Some(Finding {
            container: w.layer.container.clone(),
            id: id.to_owned(),
            file,
            existing: false,
        })
    }
}
