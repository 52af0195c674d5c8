use std::path::Path;

use super::{RecoveryLimit, TailError};

/// Receives the tail engine's internal events, one method per kind, so the
/// engine needs no metrics or logging policy of its own. Every method has an
/// empty default body; implement the ones you care about. `()` is an observer
/// that ignores everything.
///
/// Methods are called on the thread that calls
/// [`Tailer::read_batch`](super::Tailer::read_batch) (and
/// [`Tailer::new`](super::Tailer::new)); they should be quick.
pub trait TailObserver {
    /// A file at `path` was opened and will be read from `offset`; `resumed`
    /// tells whether the offset came from the checkpoint.
    fn file_opened(&mut self, path: &Path, offset: u64, resumed: bool) {
        let _ = (path, offset, resumed);
    }

    /// Another file appeared at `path` while the previous one is still open;
    /// the previous one is read to its end first.
    fn file_rotated(&mut self, path: &Path) {
        let _ = path;
    }

    /// At startup, `found` was recognized as a file that was at `path` and
    /// has been renamed in the same directory since (rotated away while the
    /// tailer was stopped, or before it had read and acknowledged all of it);
    /// it is read from `offset` before the file now at `path`. `known` tells
    /// whether it matched a checkpoint entry (`offset` is then its
    /// acknowledged position, or 0 if it was rewritten since) or it appeared
    /// and was rotated away while the tailer was stopped (read from 0). See
    /// [Recovering rotated
    /// files](super#recovering-rotated-files-at-startup).
    fn rotated_file_recovered(&mut self, path: &Path, found: &Path, offset: u64, known: bool) {
        let _ = (path, found, offset, known);
    }

    /// The startup search for rotated files of `path` stopped at one of its
    /// bounds; rotated files it did not get to are not read.
    fn recovery_limited(&mut self, path: &Path, limit: RecoveryLimit) {
        let _ = (path, limit);
    }

    /// A file no longer at `path` was read to its end (`offset`) and closed.
    fn file_closed(&mut self, path: &Path, offset: u64) {
        let _ = (path, offset);
    }

    /// The file at `path` shrank below the read offset `old_offset` (its size
    /// is now `new_size`) or its first line changed; it is read again from 0.
    fn file_truncated(&mut self, path: &Path, old_offset: u64, new_size: u64) {
        let _ = (path, old_offset, new_size);
    }

    /// The line at `offset` was `original_len` bytes long, more than
    /// `max_line_bytes`; it was emitted cut.
    fn line_truncated(&mut self, path: &Path, offset: u64, original_len: u64) {
        let _ = (path, offset, original_len);
    }

    /// An unterminated last line of `len` bytes at `offset` was discarded
    /// because its file was rotated away or truncated before it was completed.
    fn partial_line_dropped(&mut self, path: &Path, offset: u64, len: u64) {
        let _ = (path, offset, len);
    }

    /// Reading began inside a line (start at the end of a file, or a
    /// checkpoint offset not after a newline); `len` bytes at `offset` up to
    /// the next newline were skipped.
    fn bytes_skipped(&mut self, path: &Path, offset: u64, len: u64) {
        let _ = (path, offset, len);
    }

    /// [`MAX_FILES_PER_PATH`](super::MAX_FILES_PER_PATH) files are already
    /// open for `path`; the new file there is not opened until one is drained.
    fn rotation_backlog_full(&mut self, path: &Path) {
        let _ = path;
    }

    /// [`TailConfig::max_open_files`](super::TailConfig::max_open_files)
    /// descriptors are in use; a new file at `path` waits for one to be
    /// freed. Reported once until the limit is no longer reached.
    fn open_files_limited(&mut self, path: &Path, open: usize) {
        let _ = (path, open);
    }

    /// An I/O error on the followed `path`; it is tried again on the next
    /// pass. Reported once until the error kind changes or the path recovers.
    fn io_error(&mut self, path: &Path, error: &TailError) {
        let _ = (path, error);
    }

    /// The checkpoint file was corrupt or of an unknown version and was
    /// treated as empty.
    fn checkpoint_invalid(&mut self, error: &TailError) {
        let _ = error;
    }

    /// `count` checkpoint entries of files no longer followed were dropped
    /// because they were older than
    /// [`CHECKPOINT_RETENTION`](super::CHECKPOINT_RETENTION).
    fn checkpoint_pruned(&mut self, count: usize) {
        let _ = count;
    }

    /// `count` checkpoint entries of files no longer followed were evicted,
    /// least recently seen first, to stay within
    /// [`MAX_CHECKPOINT_ENTRIES`](super::MAX_CHECKPOINT_ENTRIES) (while
    /// running, or when loading a larger checkpoint file). A restart may read
    /// such a file again from its start if it is still in its directory.
    fn checkpoint_evicted(&mut self, count: usize) {
        let _ = count;
    }

    /// The file watcher could not start, or could not watch a directory;
    /// changes there are seen by polling only (a directory watch is retried).
    fn watch_failed(&mut self, error: &TailError) {
        let _ = error;
    }
}

impl TailObserver for () {}
