//! One open followed file: how it is opened and placed, and how it is read.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use super::checkpoint::Checkpointer;
use super::fingerprint::Fingerprint;
use super::lines::{Completed, LineAssembler};
use super::{FileId, Line, StartAt, TailObserver};

/// Reads at `offset` without touching the file cursor, retrying interrupts.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Fills `buf` from `offset` unless the file ends first; returns the bytes read.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_at(file, &mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Device and inode: which file a path names right now.
pub(crate) fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Why a read of a file stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything there was has been read (or the file cannot be read yet
    /// because it has no fingerprint).
    AtEnd,
    /// The read budget is used up; there may be more.
    Budget,
    /// The batch is full.
    Full,
}

/// What reading needs besides the file itself.
pub(crate) struct ReadCx<'a, O> {
    pub(crate) path: &'a Arc<Path>,
    pub(crate) out: &'a mut Vec<Line>,
    pub(crate) max_lines: usize,
    pub(crate) scratch: &'a mut [u8],
    pub(crate) observer: &'a mut O,
    pub(crate) checkpointer: &'a Checkpointer,
}

/// How to place a newly opened file.
pub(crate) struct OpenCx<'a, O> {
    pub(crate) path: &'a Path,
    /// Found by the tailer's first look, so `start_at` may apply.
    pub(crate) initial: bool,
    pub(crate) start_at: StartAt,
    pub(crate) max_line_bytes: usize,
    pub(crate) observer: &'a mut O,
    pub(crate) checkpointer: &'a Checkpointer,
}

#[derive(Debug)]
pub(crate) struct TrackedFile {
    file: File,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    slot: u64,
    id: FileId,
    /// `None` until the first line is complete (or long enough); nothing is
    /// read before, so the identity cannot shift under emitted lines.
    fingerprint: Option<Fingerprint>,
    /// Next byte to read; bytes between the pending line's start and here are
    /// held (up to the line limit) by `lines`.
    read_pos: u64,
    lines: LineAssembler,
}

/// A file closed to free its descriptor, with everything needed to carry on
/// where it stopped once it is reopened.
#[derive(Debug)]
pub(crate) struct Parked {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    slot: u64,
    id: FileId,
    fingerprint: Option<Fingerprint>,
    read_pos: u64,
    lines: LineAssembler,
    /// Size and modification time when parked: a change means new content.
    pub(crate) size: u64,
    pub(crate) mtime: (i64, i64),
}

pub(crate) fn mtime(meta: &Metadata) -> (i64, i64) {
    (meta.mtime(), meta.mtime_nsec())
}

impl Parked {
    /// Takes `file` (the same device and inode, checked by the caller) back.
    pub(crate) fn reopen(self, file: File) -> TrackedFile {
        TrackedFile {
            file,
            dev: self.dev,
            ino: self.ino,
            slot: self.slot,
            id: self.id,
            fingerprint: self.fingerprint,
            read_pos: self.read_pos,
            lines: self.lines,
        }
    }

    /// Whether the file changed since it was parked.
    pub(crate) fn changed(&self, meta: &Metadata) -> bool {
        meta.len() != self.size || mtime(meta) != self.mtime
    }

    /// Gives the file up for good (it is gone); its entry is kept until pruned.
    pub(crate) fn forget<O: TailObserver>(
        self,
        path: &Path,
        observer: &mut O,
        checkpointer: &Checkpointer,
    ) {
        checkpointer.untrack(self.slot);
        observer.file_closed(path, self.read_pos);
    }
}

impl TrackedFile {
    /// Closes the descriptor, keeping the position; gives the file back if
    /// its metadata cannot be read.
    pub(crate) fn park(self) -> Result<Parked, Box<Self>> {
        let Ok(meta) = self.file.metadata() else {
            return Err(Box::new(self));
        };
        Ok(Parked {
            dev: self.dev,
            ino: self.ino,
            slot: self.slot,
            id: self.id,
            fingerprint: self.fingerprint,
            read_pos: self.read_pos,
            lines: self.lines,
            size: meta.len(),
            mtime: mtime(&meta),
        })
    }

    /// Takes over `file`, just opened at `cx.path`, and decides where to
    /// start: the checkpoint position if the checkpoint has this file,
    /// `start_at` if this is the first look and the checkpoint never saw the
    /// path, else 0.
    pub(crate) fn open<O: TailObserver>(
        file: File,
        meta: &Metadata,
        cx: OpenCx<'_, O>,
    ) -> io::Result<Self> {
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let (dev, ino) = identity(meta);
        let size = meta.len();
        let fingerprint = Fingerprint::of_file(&file)?;
        let name = cx.path.to_string_lossy();
        let known = cx.checkpointer.path_known(&name);
        let (start, resumed) = match cx.checkpointer.claim(&name, dev, ino, fingerprint) {
            Some(offset) if offset <= size => (offset, true),
            Some(offset) => {
                cx.observer.file_truncated(cx.path, offset, size);
                (0, false)
            }
            None if cx.initial
                && !known
                && fingerprint.is_some()
                && cx.start_at == StartAt::End =>
            {
                (size, false)
            }
            None => (0, false),
        };
        let inside_line = start > 0 && {
            let mut before = [0u8; 1];
            read_full_at(&file, &mut before, start - 1)? == 1 && before[0] != b'\n'
        };
        let (slot, id) = cx
            .checkpointer
            .register(&name, dev, ino, fingerprint, start);
        cx.observer.file_opened(cx.path, start, resumed);
        Ok(Self {
            file,
            dev,
            ino,
            slot,
            id,
            fingerprint,
            read_pos: start,
            lines: LineAssembler::new(cx.max_line_bytes, start, inside_line),
        })
    }

    /// Where the next read starts.
    pub(crate) fn position(&self) -> u64 {
        self.read_pos
    }

    /// Reads complete lines into `cx.out` until the file's end, the batch
    /// limit, or `budget` bytes (which it decreases).
    pub(crate) fn read<O: TailObserver>(
        &mut self,
        cx: &mut ReadCx<'_, O>,
        budget: &mut usize,
    ) -> io::Result<Outcome> {
        let outcome = self.read_lines(cx, budget);
        cx.checkpointer
            .delivered(self.slot, self.lines.line_start());
        outcome
    }

    fn read_lines<O: TailObserver>(
        &mut self,
        cx: &mut ReadCx<'_, O>,
        budget: &mut usize,
    ) -> io::Result<Outcome> {
        if !self.check_identity(cx.path, cx.observer, cx.checkpointer)? {
            return Ok(Outcome::AtEnd);
        }
        while *budget > 0 {
            if cx.out.len() >= cx.max_lines {
                return Ok(Outcome::Full);
            }
            let want = cx.scratch.len().min(*budget);
            let n = read_at(&self.file, &mut cx.scratch[..want], self.read_pos)?;
            if n == 0 {
                return Ok(Outcome::AtEnd);
            }
            *budget -= n;
            let mut used = 0;
            while used < n && cx.out.len() < cx.max_lines {
                let (consumed, completed) = self
                    .lines
                    .feed(&cx.scratch[used..n], self.read_pos + used as u64);
                used += consumed;
                if let Some(completed) = completed {
                    self.emit(completed, cx);
                }
            }
            // Bytes after the batch's last line are read again next time, so
            // no complete line is ever held back inside the tailer.
            self.read_pos += used as u64;
            if used < n {
                return Ok(Outcome::Full);
            }
        }
        Ok(Outcome::Budget)
    }

    /// Makes sure the file still holds the content we were reading, and that
    /// it has a fingerprint. Returns whether it can be read.
    ///
    /// Called before every read, and on every look at the path for files
    /// waiting behind older ones too: the checkpoint entry must identify a
    /// file by its current content even before it is read, since a file
    /// rotated away before a restart is found again only by that identity.
    pub(crate) fn check_identity<O: TailObserver>(
        &mut self,
        path: &Path,
        observer: &mut O,
        checkpointer: &Checkpointer,
    ) -> io::Result<bool> {
        let size = self.file.metadata()?.len();
        if size < self.read_pos {
            self.restart_from_zero(path, observer, checkpointer, size, true);
        } else if let Some(fingerprint) = self.fingerprint
            && !fingerprint.matches_file(&self.file)?
        {
            // The first line changed: rewritten in place and regrown to or
            // past our offset before we looked, which the size cannot show.
            // Checked on every pass, not only on growth, so content that
            // ends exactly at the old offset is not left unread.
            let report = self.read_pos > 0;
            self.restart_from_zero(path, observer, checkpointer, size, report);
        }
        if self.fingerprint.is_none() {
            let Some(fingerprint) = Fingerprint::of_file(&self.file)? else {
                return Ok(false);
            };
            self.fingerprint = Some(fingerprint);
            self.id = checkpointer.restart(self.slot, Some(fingerprint), self.read_pos);
        }
        Ok(true)
    }

    fn restart_from_zero<O: TailObserver>(
        &mut self,
        path: &Path,
        observer: &mut O,
        checkpointer: &Checkpointer,
        size: u64,
        report: bool,
    ) {
        if report {
            observer.file_truncated(path, self.read_pos, size);
        }
        self.drop_partial(path, observer);
        self.read_pos = 0;
        self.lines.reset(0, false);
        self.fingerprint = None;
        self.id = checkpointer.restart(self.slot, None, 0);
    }

    fn drop_partial<O: TailObserver>(&self, path: &Path, observer: &mut O) {
        if self.lines.has_partial(self.read_pos) {
            let start = self.lines.line_start();
            observer.partial_line_dropped(path, start, self.read_pos - start);
        }
    }

    fn emit<O: TailObserver>(&self, completed: Completed, cx: &mut ReadCx<'_, O>) {
        match completed {
            Completed::Line {
                offset,
                end,
                bytes,
                original_len,
            } => {
                if let Some(len) = original_len {
                    cx.observer.line_truncated(cx.path, offset, len);
                }
                cx.out.push(Line {
                    file: self.id,
                    fingerprint: self.fingerprint.map_or(0, |f| f.hash),
                    path: Arc::clone(cx.path),
                    offset,
                    end,
                    bytes,
                    truncated: original_len.is_some(),
                });
            }
            Completed::Skipped { offset, end } => {
                cx.observer.bytes_skipped(cx.path, offset, end - offset);
            }
        }
    }

    /// Closes a file that is no longer at its path and has been read to its
    /// end; an unterminated last line is lost with it.
    pub(crate) fn close<O: TailObserver>(
        self,
        path: &Path,
        observer: &mut O,
        checkpointer: &Checkpointer,
    ) {
        if self.fingerprint.is_some() {
            self.drop_partial(path, observer);
        } else if let Ok(meta) = self.file.metadata()
            && meta.len() > 0
        {
            // Never fingerprinted: its only content is an unfinished first line.
            observer.partial_line_dropped(path, 0, meta.len());
        }
        checkpointer.untrack(self.slot);
        observer.file_closed(path, self.read_pos);
    }
}
