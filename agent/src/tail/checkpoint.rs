//! Acknowledged positions, shared between the tailer and its consumers, and
//! their on-disk form.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::fingerprint::Fingerprint;
use super::{FileId, TailError};

/// The checkpoint file format version written, and the only one read.
pub const CHECKPOINT_VERSION: u64 = 1;

/// Most checkpoint entries kept (8,192). A followed file's entry always stays;
/// past the limit, entries of files no longer followed (rotated away, deleted)
/// are evicted, least recently seen first, and the eviction is reported
/// through
/// [`TailObserver::checkpoint_evicted`](super::TailObserver::checkpoint_evicted).
///
/// An evicted entry only matters after a restart: a rotated file still in its
/// directory whose entry is gone is either read again from 0 (duplicates) or,
/// for older rotations, not recognized. So the limit is set well above what
/// one node produces within [`CHECKPOINT_RETENTION`], which drops such entries
/// anyway: 1,000 followed container logs leave room for 7,000 rotations an
/// hour (kubelet rotates at 10 MiB, so about 20 MB/s of logs across the node,
/// sustained). Memory: a few hundred bytes per entry, about 3 MiB when full.
pub const MAX_CHECKPOINT_ENTRIES: usize = 8192;

/// Largest checkpoint file read (8 MiB: [`MAX_CHECKPOINT_ENTRIES`] entries with
/// paths of up to about 900 bytes). A larger file is treated as corrupt, hence
/// as empty.
pub const MAX_CHECKPOINT_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// How long the entry of a file no longer followed (rotated away, or not
/// found at startup) is kept (1 hour), counted from when it was closed or, for
/// entries read from the checkpoint file, from startup: long enough for a path
/// that is briefly missing to resume where it was, short enough that rotated
/// files do not pile up. After that the entry is dropped.
pub const CHECKPOINT_RETENTION: Duration = Duration::from_secs(3600);

#[derive(Serialize, Deserialize)]
struct DiskCheckpoint {
    version: u64,
    files: Vec<DiskEntry>,
}

#[derive(Serialize, Deserialize)]
struct DiskEntry {
    path: String,
    dev: u64,
    ino: u64,
    fingerprint: Option<DiskFingerprint>,
    offset: u64,
    last_seen: u64,
}

#[derive(Serialize, Deserialize)]
struct DiskFingerprint {
    xxh3: String,
    len: u16,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    /// Informational, and tells whether a path was ever followed. Kept lossy
    /// as UTF-8 so that any path can be written to JSON.
    path: String,
    dev: u64,
    ino: u64,
    fingerprint: Option<Fingerprint>,
    generation: u64,
    acked: u64,
    /// Everything before this was emitted; acks beyond it are clamped so a
    /// confused consumer cannot commit unread bytes.
    delivered: u64,
    tracked: bool,
    last_seen: u64,
}

/// Entries dropped by one [`Checkpointer::prune`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Older than [`CHECKPOINT_RETENTION`].
    pub(crate) expired: usize,
    /// Over [`MAX_CHECKPOINT_ENTRIES`].
    pub(crate) evicted: usize,
}

/// What the checkpoint says about a file it no longer follows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Saved {
    pub(crate) slot: u64,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) fingerprint: Option<Fingerprint>,
    /// Where reading would resume: the acknowledged offset.
    pub(crate) offset: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<u64, Entry>,
    next_slot: u64,
}

struct Inner {
    path: PathBuf,
    state: Mutex<State>,
    /// Serializes writers of the one temp file.
    write: Mutex<()>,
}

/// Commits read positions once lines are handed on, and writes them to the
/// checkpoint file. A cheap clone of shared state (`Send + Sync`); get one
/// from [`Tailer::checkpointer`](super::Tailer::checkpointer).
#[derive(Clone)]
pub struct Checkpointer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// A panic elsewhere while holding the lock cannot leave an entry half
/// written in a way that matters (every update is a few field stores), so the
/// state is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checkpointer {
    /// Records that the line of `file` ending at `end` (its
    /// [`Line::end`](super::Line::end)) has been durably handed on, and with
    /// it every earlier line of that file: acks are cumulative, so ack in
    /// order.
    /// Monotonic: a smaller `end` than already acked is ignored, and so is an
    /// id from before a truncation or from another tailer.
    pub fn ack(&self, file: FileId, end: u64) {
        let mut state = lock(&self.inner.state);
        if let Some(entry) = state.entries.get_mut(&file.slot)
            && entry.generation == file.generation
            && entry.fingerprint.is_some()
        {
            entry.acked = entry.acked.max(end.min(entry.delivered));
        }
    }

    /// Writes the acknowledged positions to the checkpoint file: a temp file
    /// in the same directory, fsync'd, renamed over the old file, then the
    /// directory fsync'd.
    pub fn persist(&self) -> Result<(), TailError> {
        let _writer = lock(&self.inner.write);
        let now = unix_now();
        let mut entries: Vec<(u64, Entry)> = lock(&self.inner.state)
            .entries
            .iter()
            .map(|(slot, e)| (*slot, e.clone()))
            .collect();
        // Slots are handed out in the order files are first followed (or
        // recovered), so within one path this lists the oldest file first.
        // Startup recovery relies on that order (see `saved`).
        entries.sort_by(|(a_slot, a), (b_slot, b)| (&a.path, a_slot).cmp(&(&b.path, b_slot)));
        let files: Vec<DiskEntry> = entries
            .into_iter()
            .map(|(_, e)| DiskEntry {
                path: e.path,
                dev: e.dev,
                ino: e.ino,
                fingerprint: e.fingerprint.map(|fp| DiskFingerprint {
                    xxh3: format!("{:016x}", fp.hash),
                    len: fp.len,
                }),
                offset: e.acked,
                last_seen: if e.tracked { now } else { e.last_seen },
            })
            .collect();
        let disk = DiskCheckpoint {
            version: CHECKPOINT_VERSION,
            files,
        };
        let path = &self.inner.path;
        let mut json =
            serde_json::to_vec(&disk).map_err(|e| TailError::io(path, io::Error::other(e)))?;
        json.push(b'\n');
        let tmp = temp_path(path);
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()
        };
        write().map_err(|e| TailError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| TailError::io(path, e))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| TailError::io(dir, e))
    }

    /// Reads the checkpoint file. A missing file is an empty checkpoint; a
    /// corrupt or unknown-version one is an empty checkpoint plus the error to
    /// report. Only a file that exists but cannot be read fails, since
    /// guessing a start position then could skip or repeat a whole file.
    /// Also returns how many entries past [`MAX_CHECKPOINT_ENTRIES`] the file
    /// held and were left out (the least recently seen).
    pub(crate) fn load(path: &Path) -> Result<(Self, Option<TailError>, usize), TailError> {
        let (entries, problem, evicted) = match read_entries(path) {
            Ok((entries, evicted)) => (entries, None, evicted),
            Err(
                e @ (TailError::CheckpointCorrupt { .. } | TailError::CheckpointVersion { .. }),
            ) => (Vec::new(), Some(e), 0),
            Err(e) => return Err(e),
        };
        let mut state = State::default();
        let now = unix_now();
        for entry in entries {
            // Retention counts from startup, so a long downtime does not
            // discard the positions the restart needs.
            state.insert(Entry {
                last_seen: now,
                ..entry
            });
        }
        let checkpointer = Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                state: Mutex::new(state),
                write: Mutex::new(()),
            }),
        };
        Ok((checkpointer, problem, evicted))
    }

    /// Whether the checkpoint has, or had at startup, any entry for `path`.
    pub(crate) fn path_known(&self, path: &str) -> bool {
        lock(&self.inner.state)
            .entries
            .values()
            .any(|e| e.path == path)
    }

    /// The entries of `path` not currently followed (at startup: every entry
    /// of the path read from the checkpoint file), oldest file first.
    pub(crate) fn saved(&self, path: &str) -> Vec<Saved> {
        let state = lock(&self.inner.state);
        let mut saved: Vec<Saved> = state
            .entries
            .iter()
            .filter(|(_, e)| !e.tracked && e.path == path)
            .map(|(slot, e)| Saved {
                slot: *slot,
                dev: e.dev,
                ino: e.ino,
                fingerprint: e.fingerprint,
                offset: e.delivered,
            })
            .collect();
        saved.sort_unstable_by_key(|s| s.slot);
        saved
    }

    /// Whether any entry, of any path, has this fingerprint: the same file,
    /// or a copy of one.
    pub(crate) fn knows(&self, fingerprint: Fingerprint) -> bool {
        lock(&self.inner.state)
            .entries
            .values()
            .any(|e| e.fingerprint == Some(fingerprint))
    }

    /// Moves the entry in `slot` behind every existing one, keeping its
    /// content, so that its place in the age order of its path's entries
    /// stays right when files older than it are re-registered.
    pub(crate) fn requeue(&self, slot: u64) {
        let mut state = lock(&self.inner.state);
        if let Some(entry) = state.entries.remove(&slot) {
            state.insert(entry);
        }
    }

    /// Finds the entry of a file not currently followed that has this
    /// identity, removes it and returns where to resume. Entries for the same
    /// path and inode that do not match (the file was rewritten) go too.
    pub(crate) fn claim(
        &self,
        path: &str,
        dev: u64,
        ino: u64,
        fingerprint: Option<Fingerprint>,
    ) -> Option<u64> {
        let mut state = lock(&self.inner.state);
        let matching = fingerprint.and_then(|fp| {
            state
                .entries
                .iter()
                .filter(|(_, e)| {
                    !e.tracked
                        && e.fingerprint == Some(fp)
                        && e.ino == ino
                        && (e.dev == dev || e.path == path)
                })
                // Prefer the exact device match, then the furthest position.
                .max_by_key(|(_, e)| (e.dev == dev, e.delivered))
                .map(|(slot, e)| (*slot, e.delivered))
        });
        if let Some((slot, _)) = matching {
            state.entries.remove(&slot);
        }
        state
            .entries
            .retain(|_, e| e.tracked || !(e.path == path && e.dev == dev && e.ino == ino));
        matching.map(|(_, offset)| offset)
    }

    /// Starts tracking a followed file at `start`. Returns its slot and id;
    /// acks for the id count once the file is fingerprinted.
    pub(crate) fn register(
        &self,
        path: &str,
        dev: u64,
        ino: u64,
        fingerprint: Option<Fingerprint>,
        start: u64,
    ) -> (u64, FileId) {
        let slot = lock(&self.inner.state).insert(Entry {
            path: path.to_owned(),
            dev,
            ino,
            fingerprint,
            generation: 0,
            acked: start,
            delivered: start,
            tracked: true,
            last_seen: unix_now(),
        });
        (
            slot,
            FileId {
                slot,
                generation: 0,
            },
        )
    }

    /// The followed file in `slot` has a new content identity (its first
    /// fingerprint, or a truncation) and is read from `start`: acks for the
    /// previous id stop counting. Returns the new id.
    pub(crate) fn restart(
        &self,
        slot: u64,
        fingerprint: Option<Fingerprint>,
        start: u64,
    ) -> FileId {
        let mut state = lock(&self.inner.state);
        let Some(entry) = state.entries.get_mut(&slot) else {
            // Entries of followed files are never pruned, so this cannot
            // happen; an id nobody has makes every ack for it a no-op.
            return FileId {
                slot,
                generation: u64::MAX,
            };
        };
        entry.generation += 1;
        entry.fingerprint = fingerprint;
        entry.acked = start;
        entry.delivered = start;
        FileId {
            slot,
            generation: entry.generation,
        }
    }

    /// Everything before `offset` in `slot` has been emitted or skipped.
    pub(crate) fn delivered(&self, slot: u64, offset: u64) {
        if let Some(entry) = lock(&self.inner.state).entries.get_mut(&slot) {
            entry.delivered = entry.delivered.max(offset);
        }
    }

    /// The file in `slot` is closed; its entry ages out from now on. Acks for
    /// its lines still count until then.
    pub(crate) fn untrack(&self, slot: u64) {
        if let Some(entry) = lock(&self.inner.state).entries.get_mut(&slot) {
            entry.tracked = false;
            entry.last_seen = unix_now();
        }
    }

    /// Drops entries of files not followed that were last seen more than
    /// [`CHECKPOINT_RETENTION`] before `now` (unix seconds), then evicts the
    /// least recently seen of them beyond [`MAX_CHECKPOINT_ENTRIES`].
    pub(crate) fn prune(&self, now: u64) -> Pruned {
        let mut state = lock(&self.inner.state);
        let before = state.entries.len();
        let cutoff = now.saturating_sub(CHECKPOINT_RETENTION.as_secs());
        state
            .entries
            .retain(|_, e| e.tracked || e.last_seen >= cutoff);
        let expired = before - state.entries.len();
        let mut evicted = 0;
        if state.entries.len() > MAX_CHECKPOINT_ENTRIES {
            let mut old: Vec<(u64, u64)> = state
                .entries
                .iter()
                .filter(|(_, e)| !e.tracked)
                .map(|(slot, e)| (e.last_seen, *slot))
                .collect();
            old.sort_unstable();
            let excess = state.entries.len() - MAX_CHECKPOINT_ENTRIES;
            for (_, slot) in old.into_iter().take(excess) {
                state.entries.remove(&slot);
                evicted += 1;
            }
        }
        Pruned { expired, evicted }
    }

    /// The acknowledged offset of `file`, if it is still known.
    #[cfg(test)]
    pub(crate) fn acked(&self, file: FileId) -> Option<u64> {
        lock(&self.inner.state)
            .entries
            .get(&file.slot)
            .filter(|e| e.generation == file.generation)
            .map(|e| e.acked)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner.state).entries.len()
    }

    #[cfg(test)]
    pub(crate) fn insert_untracked_for_test(&self, path: &str, ino: u64, last_seen: u64) {
        lock(&self.inner.state).insert(Entry {
            path: path.to_owned(),
            dev: 1,
            ino,
            fingerprint: None,
            generation: 0,
            acked: 0,
            delivered: 0,
            tracked: false,
            last_seen,
        });
    }
}

impl State {
    fn insert(&mut self, entry: Entry) -> u64 {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.entries.insert(slot, entry);
        slot
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The entries of the checkpoint file, at most [`MAX_CHECKPOINT_ENTRIES`], and how
/// many more it held.
fn read_entries(path: &Path) -> Result<(Vec<Entry>, usize), TailError> {
    let corrupt = |reason: String| TailError::CheckpointCorrupt {
        path: path.to_path_buf(),
        reason,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(TailError::io(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_CHECKPOINT_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TailError::io(path, e))?;
    if bytes.len() as u64 > MAX_CHECKPOINT_FILE_BYTES {
        return Err(corrupt(format!(
            "larger than {MAX_CHECKPOINT_FILE_BYTES} bytes"
        )));
    }
    let probe: VersionProbe = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if probe.version != CHECKPOINT_VERSION {
        return Err(TailError::CheckpointVersion {
            path: path.to_path_buf(),
            version: probe.version,
        });
    }
    let disk: DiskCheckpoint =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut entries = disk
        .files
        .into_iter()
        .map(|d| {
            let fingerprint = match d.fingerprint {
                None => None,
                Some(fp) => Some(Fingerprint {
                    hash: u64::from_str_radix(&fp.xxh3, 16)
                        .map_err(|e| corrupt(format!("fingerprint {:?}: {e}", fp.xxh3)))?,
                    len: fp.len,
                }),
            };
            Ok(Entry {
                path: d.path,
                dev: d.dev,
                ino: d.ino,
                fingerprint,
                generation: 0,
                acked: d.offset,
                delivered: d.offset,
                tracked: false,
                last_seen: d.last_seen,
            })
        })
        .collect::<Result<Vec<_>, TailError>>()?;
    let excess = entries.len().saturating_sub(MAX_CHECKPOINT_ENTRIES);
    if excess > 0 {
        // Keep the most recently seen, but in file order: the order of a
        // path's entries is the age order of its files.
        let mut ranked: Vec<(usize, Entry)> = entries.into_iter().enumerate().collect();
        ranked.sort_by_key(|(i, e)| (std::cmp::Reverse(e.last_seen), *i));
        ranked.truncate(MAX_CHECKPOINT_ENTRIES);
        ranked.sort_by_key(|(i, _)| *i);
        entries = ranked.into_iter().map(|(_, e)| e).collect();
    }
    Ok((entries, excess))
}
