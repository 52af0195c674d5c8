//! A file tail engine: follows a few exact file paths across rotation,
//! truncation and restarts (including rotations while it was stopped), and
//! yields complete lines with their byte positions. It is written in the style of Vector's `file-source` crate but
//! is much smaller.
//!
//! The engine knows nothing about the Kubernetes audit log or about metrics.
//! It takes file paths and a checkpoint file path, hands out [`Line`]s, and
//! tells a [`TailObserver`] what happened (rotations, truncations, cut lines,
//! a bad checkpoint file, a file watcher that could not start). It is
//! synchronous: run the [`Tailer`] on a blocking thread and call
//! [`Tailer::read_batch`] in a loop. Acknowledge lines through a
//! [`Checkpointer`] (a cheap, `Send + Sync` clone) once they have been handed
//! on durably, and call [`Checkpointer::persist`] now and then.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use vigil_agent::tail::{StartAt, TailConfig, Tailer};
//! # fn main() -> Result<(), vigil_agent::tail::TailError> {
//! let mut cfg = TailConfig::new(
//!     vec!["/var/log/audit.log".into()],
//!     "/var/lib/vigil/tail.json".into(),
//! );
//! cfg.start_at = StartAt::End;
//! let mut tailer = Tailer::new(cfg, ())?;
//! let checkpointer = tailer.checkpointer();
//! loop {
//!     for line in tailer.read_batch(500, Duration::from_millis(500)) {
//!         // ... ship `line.bytes` ...
//!         checkpointer.ack(line.file, line.end);
//!     }
//!     checkpointer.persist()?;
//! }
//! # }
//! ```
//!
//! # Following files
//!
//! Each configured path is followed on its own. The file found at a path is
//! opened and kept open *by handle*, so a rename or a delete does not take it
//! away from us. When another file shows up at the path (rotation by rename
//! and create, or delete and re-create), the old handle is read to its end
//! first, then closed, and only then is the new file read, from offset 0. A
//! path that vanishes with no successor keeps its last file open (one
//! descriptor per path), so late writes through a writer's still-open
//! descriptor are not lost. Files renamed away before a restart are found
//! again in the path's directory when the tailer starts (see [Recovering
//! rotated files](#recovering-rotated-files-at-startup)).
//!
//! If a file shrinks below the read offset (`copytruncate`, `> file`), or its
//! first line changes under us (see below), reading restarts at 0 and
//! [`TailObserver::file_truncated`] is called.
//!
//! Changes are noticed through `notify` (inotify on Linux) watches on the
//! parent directories, which wake [`Tailer::read_batch`] early; every call
//! also looks at the paths at least every [`TailConfig::poll_interval`], so
//! missed events, a watch on a directory that did not exist yet, or a watcher
//! that failed to start (reported through [`TailObserver::watch_failed`]) only
//! cost latency.
//!
//! # File identity
//!
//! A followed file is known by its device and inode number *and* by a
//! fingerprint: the xxh3-64 hash of its first line including the newline, or
//! of its first [`FINGERPRINT_BYTES`] bytes if the first line is longer. A file
//! whose first line is not complete yet and that is shorter than that is not
//! fingerprinted and not read until it is: the fingerprint must not change
//! under us.
//!
//! * While a file is open, device and inode alone tell whether the path still
//!   names it: an open handle keeps the inode from being reused.
//! * Across restarts, a checkpoint entry is resumed only if fingerprint *and*
//!   inode match, and device or path match (device numbers of some file
//!   systems change across reboots). A reused inode holding new content has a
//!   different first line, so it is read from 0 instead of from a stale offset.
//! * At run time, on every look at a path, every open file of it has its
//!   size checked and its first fingerprinted bytes read again (one read of
//!   at most [`FINGERPRINT_BYTES`]) and compared, including rotated files
//!   waiting to be read. That catches a truncation followed by growth to or
//!   past the old offset before the tailer looked, which the size alone
//!   cannot show, and keeps every checkpoint entry naming its file's current
//!   content, which recovery after a restart relies on.
//!
//! Hashing the first line rather than a fixed byte count means a short first
//! line is enough to identify a file (an audit log event is one long line with
//! a unique `auditID` and timestamp, so a single line is distinctive). The
//! limit of this choice: a file rewritten in place with the *same* first line
//! and regrown past the old offset before we look is indistinguishable from an
//! appended-to file, and the lines before the old offset are skipped.
//!
//! # Checkpoint file and the crash window
//!
//! Positions are committed only after the consumer acknowledges them
//! ([`Checkpointer::ack`]), and [`Checkpointer::persist`] writes the
//! acknowledged offsets to a versioned JSON file:
//!
//! ```json
//! {"version":1,"files":[{"path":"/var/log/audit.log","dev":2049,"ino":1234,
//!   "fingerprint":{"xxh3":"9f86d081884c7d65","len":87},"offset":12345,
//!   "last_seen":1700000000}]}
//! ```
//!
//! `fingerprint` is `null` for a file seen but not fingerprinted yet; `offset`
//! is always the end of an acknowledged line (or the start position). The
//! entries of one path are listed oldest file first; recovery relies on that
//! order to know which file was last at the path. The file
//! is written to `<name>.tmp` in the same directory, fsync'd, renamed over the
//! old one, and the directory is fsync'd, so a crash leaves either the old or
//! the new checkpoint. A corrupt or unknown-version file is reported through
//! [`TailObserver::checkpoint_invalid`] (with [`TailError::CheckpointCorrupt`]
//! or [`TailError::CheckpointVersion`]) and treated as empty.
//!
//! On startup a file at a configured path resumes at its checkpointed offset.
//! A file with no matching entry is read from offset 0 if the checkpoint knows
//! the path (the file was replaced while we were down), and from
//! [`TailConfig::start_at`] only if the path is new to the checkpoint. Files
//! that appear later, while running, are always read from 0. Before the file
//! at the path, rotated files of the path are recovered, as described next.
//!
//! # Recovering rotated files at startup
//!
//! A file renamed away from its path (rotated) is still read after a restart
//! if it stayed in the path's directory: the rest of a file the tailer had
//! not finished reading or that the consumer had not acknowledged, late
//! writes through a writer's kept descriptor, and files that came to the path
//! and were rotated away while the tailer was stopped. For kube-apiserver
//! this is `audit.log` renamed to `audit-2024-05-02T10-15-30.123.log`; for
//! logrotate, `audit.log.1`, `audit.log.2`, ... (compressed ones cannot be
//! read). [`Tailer::new`] looks for them once per path:
//!
//! * Only when the checkpoint has an entry of the path whose inode is no
//!   longer at the path; then the directory is listed, looking at no more
//!   than [`MAX_RECOVERY_SCAN_ENTRIES`] entries. Candidates are regular files
//!   (not symbolic links) whose names start with the path's stem (the file
//!   name without its last extension: `audit` for `audit.log`), other than
//!   the path itself, not with a compression extension (`.gz`, `.bz2`,
//!   `.xz`, `.zst`, `.lz4`, `.zip`, ...), and not the file now at any
//!   followed path.
//! * A checkpointed file is recognized by inode and fingerprint (the device
//!   may differ, as for resuming). If it changed since (grew past its
//!   acknowledged offset, or shrank) it is opened and read from that offset
//!   as usual, so its lines carry the same fingerprint and offsets as before
//!   the restart (hence the same event ids), and acks for them commit its
//!   entry, which is recognized again after another restart. A file with
//!   nothing new keeps its entry and is not opened.
//! * The path's newest entry (the file at the path when the checkpoint was
//!   written) is also recognized by device, inode and a *rotated name* if
//!   its fingerprint differs or was not taken (first line incomplete): it was
//!   written or rewritten after the checkpoint, and is read from 0.
//! * If that newest file was found renamed, the files the path held after it
//!   are read too, from 0: candidates with a rotated name of the path, a
//!   modification time no earlier than the newest file's, a complete first
//!   line, and a fingerprint no checkpoint entry has (so neither a followed
//!   file nor a copy of one is read again). A *rotated name* is the path's
//!   file name or stem followed by `.`, `-` or `_` and a digit:
//!   `audit.log.1`, `audit.log-20240502`, `audit-2024-05-02T10-15-30.123.log`,
//!   but not `audit-extra.log` or `audit.log.old`. A name that is a rotated
//!   name of several followed paths of the directory goes to the one with the
//!   longest matching name part (`audit-2-2024….log` to `audit-2.log`, not
//!   `audit.log`); on a tie, to none.
//! * Recovered files are read oldest first, all before the file now at the
//!   path (as for a rotation seen while running), and closed when read to
//!   their end: checkpointed files in the order of their entries, then the
//!   others by modification time (ties: logrotate's `.N` numbers downwards,
//!   then by name). At most [`MAX_RECOVERED_FILES_PER_PATH`] per path are
//!   opened, the oldest.
//!
//! Each recovered file is reported through
//! [`TailObserver::rotated_file_recovered`], and a bound that was hit through
//! [`TailObserver::recovery_limited`].
//!
//! # Guarantees and limits
//!
//! Guarantees, given that the consumer acks each file's lines in order:
//!
//! * Every complete line of a followed file is emitted, in file order, older
//!   (rotated) files of a path before newer ones; none is emitted twice by one
//!   [`Tailer`], and none in two pieces.
//! * The crash window: after a crash (or any restart), the lines after the
//!   last *persisted* ack of each file resumed (the file at the path and the
//!   recovered rotated files) are emitted again; nothing else is. Persist
//!   often to keep the window small; acked but unpersisted lines are part of
//!   it.
//!
//! `model_tests.rs` checks these guarantees and the limits below against a
//! model, on random sequences of appends, partial lines, rotations (while
//! running and while stopped), truncations, deletions, restarts and crashes.
//!
//! Inherent limits (documented, not bugs):
//!
//! * Lines written to a file between the tailer's last read and a truncation
//!   (for `copytruncate`: between the copy and the truncate) are lost; so is
//!   an unterminated last line when its file is rotated or truncated (reported
//!   through [`TailObserver::partial_line_dropped`]).
//! * Across a restart, the unread or unacknowledged rest of a rotated file is
//!   lost if, when the tailer starts, the file is no longer a regular,
//!   uncompressed file in the path's directory: deleted, compressed (for
//!   example rotated twice, `audit.log` → `.1` → `.2.gz`, while the tailer
//!   was stopped), moved to another directory, or replaced by a copy (a new
//!   inode). If it was the newest file of its path, the files that came to
//!   the path after it while the tailer was stopped are lost too: nothing
//!   tells where they start. So are they when the checkpoint had no entry of
//!   the path (first start, or a corrupt checkpoint).
//! * Files that came and went at the path while the tailer was stopped are
//!   also lost when their names are not rotated names of the path (a
//!   `dateformat` without a digit right after the separator, `audit.log.old`),
//!   when they were last modified before the newest checkpointed file (a
//!   writer's clock going back, or writes through a descriptor kept on the
//!   newest file after they were written), when they have no complete first
//!   line, or when their first line equals that of a file the checkpoint
//!   knows. A copy of such a file under a rotated name is read as well
//!   (logrotate's `copy` mode is not supported across restarts).
//! * A rotated file that is not the newest of its path is recognized only by
//!   its checkpointed fingerprint: it is lost across a restart if its
//!   content was rewritten after the checkpoint, or if its first line was
//!   completed after the tailer's last look before the checkpoint was
//!   written. Entries of files read to their end are dropped after
//!   [`CHECKPOINT_RETENTION`]; late writes to such a file after that are
//!   lost.
//! * Recovery bounds: rotated files past the first
//!   [`MAX_RECOVERY_SCAN_ENTRIES`] directory entries (in the file system's
//!   order) are not found, and beyond [`MAX_RECOVERED_FILES_PER_PATH`] files
//!   to recover for one path the newest are not read; both are reported.
//! * While running, a file that appears and is rotated away between two looks
//!   at the path is never seen. Looks happen at the start of every
//!   [`Tailer::read_batch`] and after every wait in it (which a notify event
//!   or the poll interval ends); while the caller is behind, at most every
//!   [`BUSY_LOOK_INTERVAL`]. So is one rotated away while
//!   [`MAX_FILES_PER_PATH`] older files of its path still wait to be drained.
//! * A truncation racing with a read, with the file regrown past the old
//!   offset, can yield one line made of new bytes read from the old offset.
//! * Configured paths must not be rotation targets of each other (for example
//!   `a.log` and `a.log.1`): the rotated file would be read again from 0.
//! * Lines are split on `\n` only; a `\r` before it stays in the line.
//!
//! # Many files
//!
//! Paths can be added ([`Tailer::add_path`]) and retired
//! ([`Tailer::retire_path`]: read to the end, then closed and forgotten)
//! while the tailer runs, and directories watched only for new entries
//! ([`Tailer::watch_dir`], [`Tailer::take_discovery`]), so a caller can
//! discover files itself. For thousands of files:
//!
//! * Watches are per directory, not per file, and at most
//!   [`TailConfig::max_watched_dirs`]; directories past it are polled.
//! * A path whose only file was read to its end is *parked* (its descriptor
//!   closed, its position, pending partial line and checkpoint entry kept)
//!   when it has been idle for [`TailConfig::idle_close`], or at once while
//!   [`TailConfig::max_open_files`] descriptors are in use. A look at the path
//!   reopens it when the same file (device and inode) changed size or
//!   modification time. If the path names another file by then (rotated
//!   while parked), the parked file is looked for by inode in the path's
//!   directory and read to its end first; if it is gone (deleted or
//!   compressed), what was written to it after it was parked and before it
//!   went away is lost, like a rotated file lost across a restart.
//! * While the limit is reached, a new file at a path is not opened until a
//!   descriptor is free; [`TailObserver::open_files_limited`] reports it once
//!   per episode.
//! * A look at the paths costs a `stat` per path (and a `fstat` and a short
//!   `pread` per open file), so while the caller is behind they are looked at
//!   at most every [`BUSY_LOOK_INTERVAL`], not on every call.
//!
//! # Bounds
//!
//! Memory does not grow with the size of files or lines:
//!
//! * per open file, at most [`TailConfig::max_line_bytes`] of a pending line;
//!   the rest of a longer line is skipped while scanning for its newline;
//! * one read buffer of [`READ_CHUNK_BYTES`] per tailer, and at most
//!   [`TailConfig::read_budget_bytes`] read from one path per pass;
//! * at most [`MAX_FILES_PER_PATH`] open files per path, of which at most
//!   [`MAX_RECOVERED_FILES_PER_PATH`] recovered at startup, found by looking
//!   at no more than [`MAX_RECOVERY_SCAN_ENTRIES`] directory entries per
//!   path;
//! * at most [`MAX_CHECKPOINT_ENTRIES`] checkpoint entries, or one per followed
//!   file (open or parked) if there are more (only entries of files no longer followed are
//!   evicted, least recently seen first, reported through
//!   [`TailObserver::checkpoint_evicted`]), a checkpoint file of at most
//!   [`MAX_CHECKPOINT_FILE_BYTES`], and entries of files no longer followed
//!   are pruned after [`CHECKPOINT_RETENTION`];
//! * file notifications are folded into one "look again" flag, never queued;
//! * a [`Tailer::read_batch`] result holds at most `max_lines` lines.
//!
//! The module is Unix-only: identity uses device and inode numbers, and reads
//! are positional (`pread`).

#![cfg(unix)]

mod checkpoint;
mod error;
mod file;
mod fingerprint;
mod lines;
mod observer;
mod recover;
mod tailer;
mod watch;

// Tests may unwrap: a panic is how they fail.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod model_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use checkpoint::{
    CHECKPOINT_RETENTION, CHECKPOINT_VERSION, Checkpointer, MAX_CHECKPOINT_ENTRIES,
    MAX_CHECKPOINT_FILE_BYTES,
};
pub use error::TailError;
pub use fingerprint::FINGERPRINT_BYTES;
pub use observer::TailObserver;
pub use recover::{MAX_RECOVERED_FILES_PER_PATH, MAX_RECOVERY_SCAN_ENTRIES, RecoveryLimit};
pub use tailer::{BUSY_LOOK_INTERVAL, MAX_FILES_PER_PATH, READ_CHUNK_BYTES, TailStats, Tailer};

/// Where to start reading a file that the checkpoint knows nothing about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Read the whole file.
    Beginning,
    /// Skip what is in the file when the tailer starts; a partly written last
    /// line is skipped up to its newline.
    End,
}

/// What to follow and how. Build with [`TailConfig::new`] and adjust fields.
#[derive(Clone, Debug)]
pub struct TailConfig {
    /// Exact file paths to follow; they need not exist yet. Duplicates are
    /// followed once.
    pub paths: Vec<PathBuf>,
    /// The checkpoint file. Its directory must exist when persisting.
    pub checkpoint_path: PathBuf,
    /// Where to start in a file present at startup whose path the checkpoint
    /// does not know. Files that appear later are always read from 0.
    pub start_at: StartAt,
    /// Longest line kept, in bytes (at least 1; default 1 MiB). A longer
    /// line is emitted cut to this many bytes with [`Line::truncated`] set,
    /// and the rest up to its newline is skipped without being buffered.
    pub max_line_bytes: usize,
    /// How often paths are looked at when no file notification arrives
    /// (non-zero; default 1 s). The only way changes are seen when the file
    /// watcher is unavailable.
    pub poll_interval: Duration,
    /// Most bytes read from one path per pass of [`Tailer::read_batch`] (at
    /// least 1; default 1 MiB), so one busy file cannot starve the others.
    /// When it is used up the pass moves on to the next path.
    pub read_budget_bytes: usize,
    /// Most files kept open at once (at least 1; default: no limit). When
    /// reached, files read to their end are closed ("parked", keeping their
    /// position) and reopened when their path shows new content, so the
    /// followed files take turns; a new file waits for a free descriptor.
    /// See [Many files](self#many-files).
    pub max_open_files: usize,
    /// Close a file read to its end that has not grown for this long
    /// (default: never), so idle files hold no descriptor.
    pub idle_close: Option<Duration>,
    /// Most directories given a file watch (default: no limit); beyond it,
    /// changes there are seen by polling only. Keeps a node with many
    /// containers from exhausting `fs.inotify.max_user_watches`.
    pub max_watched_dirs: usize,
}

impl TailConfig {
    /// A configuration with the defaults documented on each field:
    /// start at the end, 1 MiB lines, poll every second, 1 MiB per pass.
    pub fn new(paths: Vec<PathBuf>, checkpoint_path: PathBuf) -> Self {
        Self {
            paths,
            checkpoint_path,
            start_at: StartAt::End,
            max_line_bytes: 1024 * 1024,
            poll_interval: Duration::from_secs(1),
            read_budget_bytes: 1024 * 1024,
            max_open_files: usize::MAX,
            idle_close: None,
            max_watched_dirs: usize::MAX,
        }
    }
}

/// One complete line read from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The file (and content generation) the line came from; pass it back to
    /// [`Checkpointer::ack`].
    pub file: FileId,
    /// The file's fingerprint (xxh3-64 of its first line, see [File
    /// identity](self#file-identity)): unlike `file`, stable across restarts
    /// and renames, so it can name the line's origin in output.
    pub fingerprint: u64,
    /// The configured path the file was found at (it may have been renamed or
    /// deleted since).
    pub path: Arc<Path>,
    /// Byte offset of the first byte of the line.
    pub offset: u64,
    /// Byte offset just past the line's newline: acking it commits the line.
    pub end: u64,
    /// The line without its newline, at most [`TailConfig::max_line_bytes`].
    pub bytes: Vec<u8>,
    /// Whether the line was longer than [`TailConfig::max_line_bytes`] and
    /// `bytes` holds only its beginning.
    pub truncated: bool,
}

/// Names one file as it was read by one [`Tailer`]: a new id is handed out
/// when a file is first fingerprinted and again after it is truncated, so an
/// ack for a line from before a truncation cannot move the new content's
/// checkpoint. Opaque; only meaningful to the [`Checkpointer`] of the tailer
/// that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    slot: u64,
    generation: u64,
}
