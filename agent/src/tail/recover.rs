//! Startup recovery of rotated files: finds, in the directory of a followed
//! path, the files that were at the path and have been renamed since, so the
//! tailer can read their rest before the file now at the path. See [Recovering
//! rotated files](super#recovering-rotated-files-at-startup) for the rules.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpointer, Saved};
use super::file::identity;
use super::fingerprint::Fingerprint;
use super::tailer::MAX_FILES_PER_PATH;
use super::watch::parent_dir;
use super::{TailError, TailObserver};

/// Most directory entries looked at when searching a followed path's
/// directory for its rotated files at startup (1,000), whatever their names.
/// Entries come in the file system's order, not by name or age; a rotated
/// file past the first 1,000 is not found, and
/// [`RecoveryLimit::ScanLimit`] is reported. Keeps startup cheap in a busy
/// directory such as `/var/log`.
pub const MAX_RECOVERY_SCAN_ENTRIES: usize = 1000;

/// Most rotated files recovered for one path at startup (15): one less than
/// [`MAX_FILES_PER_PATH`], so the file now at the path can still be opened.
/// Beyond it the newest of the rotated files to recover are not read, and
/// [`RecoveryLimit::TooManyFiles`] is reported.
pub const MAX_RECOVERED_FILES_PER_PATH: usize = MAX_FILES_PER_PATH - 1;

/// Name extensions (compared case-insensitively) of compressed files, which
/// rotation tools write (`audit.log.2.gz`) and the tailer cannot read: such
/// names are never candidates.
const COMPRESSED_EXTENSIONS: &[&str] = &[
    "gz", "tgz", "bz2", "xz", "zst", "zstd", "lz4", "lzma", "lzo", "z", "zip", "br", "7z", "sz",
];

/// A startup search stopped at a bound; see
/// [`TailObserver::recovery_limited`](super::TailObserver::recovery_limited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryLimit {
    /// The directory has more than [`MAX_RECOVERY_SCAN_ENTRIES`] entries; the
    /// others were not looked at.
    ScanLimit,
    /// More than [`MAX_RECOVERED_FILES_PER_PATH`] rotated files were found;
    /// the `skipped` newest of them are not read.
    TooManyFiles {
        /// How many were left unread.
        skipped: usize,
    },
}

/// The parts of a followed path's name its rotated files are recognized by.
#[derive(Debug)]
pub(crate) struct Names {
    dir: PathBuf,
    /// The file name, `audit.log`.
    base: Vec<u8>,
    /// The file name without its last extension, `audit`: kube-apiserver
    /// (lumberjack) rotates `audit.log` to `audit-<timestamp>.log`.
    stem: Vec<u8>,
}

impl Names {
    /// `None` for a path without a file name, which cannot be followed anyway.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        Some(Self {
            dir: parent_dir(path),
            base: path.file_name()?.as_bytes().to_vec(),
            stem: path.file_stem()?.as_bytes().to_vec(),
        })
    }

    /// Whether a directory entry named `name` is worth a `stat`: it starts
    /// with the stem, is not the path itself, and is not compressed.
    fn candidate(&self, name: &[u8]) -> bool {
        name.starts_with(&self.stem) && name != self.base.as_slice() && !compressed(name)
    }

    /// If `name` looks like a rotated name of this path, the length of the
    /// name part it extends: the file name or the stem, followed by `.`, `-`
    /// or `_` and a digit (`audit.log.1`, `audit.log-20240502`,
    /// `audit-2024-05-02T10-15-30.123.log`). `audit-extra.log` does not.
    fn rotation_prefix(&self, name: &[u8]) -> Option<usize> {
        [&self.base, &self.stem].into_iter().find_map(|prefix| {
            let rest = name.strip_prefix(prefix.as_slice())?;
            match rest {
                [sep, digit, ..] if b".-_".contains(sep) && digit.is_ascii_digit() => {
                    Some(prefix.len())
                }
                _ => None,
            }
        })
    }

    /// `N` for logrotate's numbered name `<file name>.N`, where a larger
    /// number is an older file.
    fn number(&self, name: &[u8]) -> Option<u64> {
        let digits = name
            .strip_prefix(self.base.as_slice())?
            .strip_prefix(b".")?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    }
}

fn compressed(name: &[u8]) -> bool {
    let Some(dot) = name.iter().rposition(|&b| b == b'.') else {
        return false;
    };
    let ext = &name[dot + 1..];
    COMPRESSED_EXTENSIONS
        .iter()
        .any(|c| ext.eq_ignore_ascii_case(c.as_bytes()))
}

fn mtime(meta: &Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

/// A rotated file to read before the file at the path, opened.
pub(crate) struct Found {
    pub(crate) file: File,
    pub(crate) meta: Metadata,
    /// Where it was found, for the observer.
    pub(crate) found: PathBuf,
    /// Whether the checkpoint identified it.
    pub(crate) known: bool,
}

/// What to do at startup, in age order (oldest first): open a rotated file,
/// or keep the entry of one that has nothing left to read.
pub(crate) enum Step {
    Open(Found),
    /// Moves the checkpoint entry in this slot behind those registered before
    /// it, so the age order of the path's entries survives.
    Keep(u64),
}

/// A directory entry that may be a rotated file of the path.
struct Candidate {
    path: PathBuf,
    name: Vec<u8>,
    /// From `lstat`: symbolic links are not followed.
    meta: Metadata,
    used: bool,
}

/// What the search needs besides the path.
pub(crate) struct RecoverCx<'a, O> {
    /// The followed path searched for.
    pub(crate) path: &'a Path,
    /// Its names; `all` holds those of every followed path, to tell whose
    /// rotated file a name is when several followed paths share a directory.
    pub(crate) names: &'a Names,
    pub(crate) all: &'a [Option<Names>],
    /// Device and inode of the files now at the followed paths: never
    /// rotated files.
    pub(crate) at_paths: &'a HashSet<(u64, u64)>,
    pub(crate) observer: &'a mut O,
    pub(crate) checkpointer: &'a Checkpointer,
}

/// Finds the files the checkpoint has for `cx.path` that were renamed away in
/// its directory, and (when the file last at the path was one of them) the
/// files that came and went at the path after it while the tailer was
/// stopped. Returns them oldest first, at most
/// [`MAX_RECOVERED_FILES_PER_PATH`] to open.
pub(crate) fn find_rotated<O: TailObserver>(mut cx: RecoverCx<'_, O>) -> Vec<Step> {
    let saved = cx.checkpointer.saved(&cx.path.to_string_lossy());
    // A file whose inode is still at the path is not lost: either it is the
    // same file, resumed as usual, or its content was rewritten in place and
    // is gone. Only entries whose inode left the path can be elsewhere.
    let current = fs::metadata(cx.path).ok().map(|m| m.ino());
    let lost: Vec<Saved> = saved
        .iter()
        .filter(|s| current != Some(s.ino))
        .copied()
        .collect();
    if lost.is_empty() {
        return Vec::new();
    }
    let mut candidates = scan(&mut cx);
    let mut steps = Vec::new();
    // The modification time of the file last at the path, if it was renamed
    // away and found: files that came after it are newer.
    let mut last_found = None;
    for entry in &lost {
        let newest = saved.last().is_some_and(|s| s.slot == entry.slot);
        let Some((k, file, meta, fingerprint)) = match_entry(&mut cx, &candidates, entry, newest)
        else {
            continue;
        };
        candidates[k].used = true;
        if newest {
            last_found = Some(mtime(&meta));
        }
        // A file with a complete first line is read if it changed since the
        // checkpoint: grown past the acknowledged offset, or (the newest
        // entry only, see `match_entry`) rewritten, which opening turns into
        // a read from 0. Otherwise only the entry stays.
        let changed = meta.len() != entry.offset || fingerprint != entry.fingerprint;
        if changed && fingerprint.is_some() {
            steps.push(Step::Open(Found {
                file,
                meta,
                found: candidates[k].path.clone(),
                known: true,
            }));
        } else {
            steps.push(Step::Keep(entry.slot));
        }
    }
    if let Some(since) = last_found {
        steps.extend(
            unknown_newer(&mut cx, &mut candidates, since)
                .into_iter()
                .map(Step::Open),
        );
    }
    cap(steps, cx.path, cx.observer)
}

/// Keeps at most [`MAX_RECOVERED_FILES_PER_PATH`] files to open, the oldest.
fn cap<O: TailObserver>(steps: Vec<Step>, path: &Path, observer: &mut O) -> Vec<Step> {
    let mut opened = 0;
    let mut skipped = 0;
    let kept = steps
        .into_iter()
        .filter(|step| match step {
            Step::Open(_) if opened == MAX_RECOVERED_FILES_PER_PATH => {
                skipped += 1;
                false
            }
            Step::Open(_) => {
                opened += 1;
                true
            }
            Step::Keep(_) => true,
        })
        .collect();
    if skipped > 0 {
        observer.recovery_limited(path, RecoveryLimit::TooManyFiles { skipped });
    }
    kept
}

/// Lists the directory entries that may be rotated files of the path, looking
/// at no more than [`MAX_RECOVERY_SCAN_ENTRIES`].
fn scan<O: TailObserver>(cx: &mut RecoverCx<'_, O>) -> Vec<Candidate> {
    let dir = &cx.names.dir;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            // A missing directory is a path not created yet; nothing to find.
            if e.kind() != io::ErrorKind::NotFound {
                cx.observer.io_error(cx.path, &TailError::io(dir, e));
            }
            return Vec::new();
        }
    };
    let mut candidates = Vec::new();
    for (examined, entry) in entries.enumerate() {
        if examined == MAX_RECOVERY_SCAN_ENTRIES {
            cx.observer
                .recovery_limited(cx.path, RecoveryLimit::ScanLimit);
            break;
        }
        // An entry that cannot be read or stat'ed is skipped: it may have
        // been removed meanwhile, and it cannot be opened either way.
        let Ok(entry) = entry else { continue };
        let name = entry.file_name().as_bytes().to_vec();
        if !cx.names.candidate(&name) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || cx.at_paths.contains(&identity(&meta)) {
            continue;
        }
        candidates.push(Candidate {
            path: entry.path(),
            name,
            meta,
            used: false,
        });
    }
    candidates
}

/// Opens a candidate and makes sure it is still the file that was stat'ed.
fn open<O: TailObserver>(
    cx: &mut RecoverCx<'_, O>,
    candidate: &Candidate,
) -> Option<(File, Metadata, Option<Fingerprint>)> {
    let opened = File::open(&candidate.path).and_then(|file| {
        let meta = file.metadata()?;
        let fingerprint = Fingerprint::of_file(&file)?;
        Ok((file, meta, fingerprint))
    });
    match opened {
        Ok((file, meta, fingerprint)) if identity(&meta) == identity(&candidate.meta) => {
            Some((file, meta, fingerprint))
        }
        // Renamed over, or removed (compressed) since the scan.
        Ok(_) => None,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            cx.observer
                .io_error(cx.path, &TailError::io(&candidate.path, e));
            None
        }
    }
}

/// Finds the candidate holding the file of checkpoint entry `entry`: same
/// inode and fingerprint (the device may differ, as when resuming, since
/// some file systems renumber devices across reboots; the directory is the
/// same). Returns the candidate's index, opened.
///
/// The `newest` entry of the path (the file last at it) also matches a file
/// with its device and inode and a rotated name whose fingerprint differs or
/// that had none (its first line was not complete): its content was written
/// or rewritten after the checkpoint, and opening it reads it from 0, as for
/// a rewritten file still at the path. Its inode may have been reused since,
/// but only by a file created after it, which is one to read from 0 anyway;
/// for an older entry, a reused inode could put a newer file before older
/// ones, so older entries need their fingerprint.
fn match_entry<O: TailObserver>(
    cx: &mut RecoverCx<'_, O>,
    candidates: &[Candidate],
    entry: &Saved,
    newest: bool,
) -> Option<(usize, File, Metadata, Option<Fingerprint>)> {
    candidates.iter().enumerate().find_map(|(k, c)| {
        if c.used || c.meta.ino() != entry.ino {
            return None;
        }
        let by_inode =
            newest && c.meta.dev() == entry.dev && cx.names.rotation_prefix(&c.name).is_some();
        if entry.fingerprint.is_none() && !by_inode {
            return None;
        }
        let (file, meta, fingerprint) = open(cx, c)?;
        (by_inode || fingerprint == entry.fingerprint).then_some((k, file, meta, fingerprint))
    })
}

/// The files whose fingerprint no checkpoint entry has (neither files the
/// tailer followed nor copies of them) that have a rotated name of this path
/// (and of no followed path with a longer matching name in the same
/// directory), were modified no earlier than `since`, and have a complete
/// first line: files that came to the path and were rotated away while the
/// tailer was stopped. Oldest first: by modification time, then logrotate
/// numbers downwards, then by name (timestamped names sort by age).
fn unknown_newer<O: TailObserver>(
    cx: &mut RecoverCx<'_, O>,
    candidates: &mut [Candidate],
    since: (i64, i64),
) -> Vec<Found> {
    let mut found = Vec::new();
    for c in candidates.iter_mut().filter(|c| !c.used) {
        let Some(mine) = cx.names.rotation_prefix(&c.name) else {
            continue;
        };
        let claimed_by_other = cx.all.iter().flatten().any(|other| {
            !std::ptr::eq(other, cx.names)
                && other.dir == cx.names.dir
                && other
                    .rotation_prefix(&c.name)
                    .is_some_and(|len| len >= mine)
        });
        if claimed_by_other || mtime(&c.meta) < since {
            continue;
        }
        let Some((file, meta, Some(fingerprint))) = open(cx, &*c) else {
            continue;
        };
        // A file the checkpoint knows, under another name or as a copy
        // (`cp audit.log.1 audit.log.1-bak`, logrotate's `copy`), was read.
        if cx.checkpointer.knows(fingerprint) {
            continue;
        }
        c.used = true;
        let key = (
            mtime(&meta),
            cx.names.number(&c.name).map(Reverse),
            c.name.clone(),
        );
        found.push((
            key,
            Found {
                file,
                meta,
                found: c.path.clone(),
                known: false,
            },
        ));
    }
    found.sort_by(|(a, _), (b, _)| a.cmp(b));
    found.into_iter().map(|(_, f)| f).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str) -> Names {
        Names::of(Path::new(path)).unwrap()
    }

    #[test]
    fn candidates_start_with_the_stem_and_are_not_compressed() {
        let n = names("/var/log/audit.log");
        for name in [
            "audit.log.1",
            "audit-2024-05-02T10-15-30.123.log",
            "audit.log-20240502",
            "auditd.log",
        ] {
            assert!(n.candidate(name.as_bytes()), "{name}");
        }
        for name in [
            "audit.log",
            "audit.log.2.gz",
            "audit-2024-05-02T10-15-30.123.log.GZ",
            "audit.log.3.zst",
            "kube-audit.log",
            "syslog",
        ] {
            assert!(!n.candidate(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn rotated_names_extend_the_name_or_stem_with_a_number() {
        let n = names("/var/log/audit.log");
        assert_eq!(n.rotation_prefix(b"audit.log.1"), Some(9));
        assert_eq!(n.rotation_prefix(b"audit.log-20240502"), Some(9));
        assert_eq!(
            n.rotation_prefix(b"audit-2024-05-02T10-15-30.123.log"),
            Some(5)
        );
        assert_eq!(n.rotation_prefix(b"audit-extra.log"), None);
        assert_eq!(n.rotation_prefix(b"auditd.log"), None);
        assert_eq!(n.rotation_prefix(b"audit.log.old"), None);
        assert_eq!(n.number(b"audit.log.12"), Some(12));
        assert_eq!(n.number(b"audit.log-20240502"), None);
        // A file without an extension: the stem is the whole name.
        let m = names("messages");
        assert_eq!(m.rotation_prefix(b"messages.1"), Some(8));
        assert_eq!(m.dir, PathBuf::from("."));
    }
}
