//! A durable, bounded, on-disk FIFO of opaque records: the spool in front of an output that
//! talks to a remote manager.
//!
//! ```text
//! router ──batch──► Spool::append ──(written, fsynced per policy)──► batch ack completes
//!                         │
//!   sender task ◄── Spool::peek_from ── delivers to the remote side ──► Spool::ack(upto)
//!                                                                      (trims the spool)
//! ```
//!
//! The API is synchronous and does blocking file I/O; an async caller runs it on a blocking
//! thread (or accepts short blocking writes). One [`Spool`] owns its directory: a second
//! `open` of the same directory, in this or another process, fails with
//! [`SpoolError::Locked`] (advisory `flock` on `spool.lock`).
//!
//! # Directory layout and file format
//!
//! ```text
//! <dir>/spool.lock                  empty; held locked while the spool is open
//! <dir>/ack.state                   24 bytes: "VGSPACK1" | acked u64 LE | xxh3-64(first 16 bytes) LE
//! <dir>/00000000000000000001.seg    segment whose first record has sequence number 1
//! <dir>/00000000000000000042.seg    ...
//! ```
//!
//! A segment is the 8-byte magic `VGSPOOL1` followed by records, each framed as
//!
//! ```text
//! u32 LE payload length | u64 LE xxh3-64(payload, seed = length) | payload bytes
//! ```
//!
//! Records are opaque byte blobs (typically one encoded batch). Record `i` (from 0) of a
//! segment has sequence number `first_seq + i`, where `first_seq` is the 20-digit number in
//! the file name; sequence numbers are therefore never stored per record. They start at 1 and
//! only grow; there may be gaps between segments (after a repair), never overlaps.
//! Files in the directory with other names are ignored (a stale `ack.state.tmp` is removed).
//!
//! # Ordering
//!
//! [`Spool::append`] assigns strictly increasing sequence numbers; [`Spool::peek_from`] returns
//! records in sequence order; [`Spool::ack`] is cumulative ("everything up to `upto` is
//! delivered"). A restart replays exactly the records after the persisted ack position, in
//! order, and new appends continue above every sequence number seen before (unless both the
//! state file is damaged and every segment is gone; then numbering restarts at 1).
//!
//! # Durability ([`FsyncPolicy`])
//!
//! - [`FsyncPolicy::EveryAppend`]: `append` returns only after `fdatasync` of the segment
//!   (and of the directory when it created a new segment). A record whose `append` returned
//!   survives a process crash and a power loss. Costs one fsync per append.
//! - [`FsyncPolicy::Never`]: `append` returns once the bytes are in the kernel's page cache.
//!   A process crash loses nothing (the kernel still writes the pages back), but a power loss
//!   or kernel crash can lose appended records whose acks already completed, so the source
//!   will not replay them: those are lost. Recovery still yields a valid prefix (torn tails are
//!   truncated).
//!
//! The ack position is always written durably, whatever the policy: write `ack.state.tmp`,
//! fsync it, rename it over `ack.state`, fsync the directory. A crash therefore leaves either
//! the old or the new position; at worst some delivered records are sent again (at-least-once).
//!
//! # Bounds and what happens when full
//!
//! - A segment is rolled when the next record would make it exceed
//!   [`SpoolConfig::segment_bytes`] (default [`DEFAULT_SEGMENT_BYTES`], 8 MiB).
//! - A record's payload may be at most `segment_bytes - 20` bytes (one record must fit in an
//!   empty segment); a larger one fails with [`SpoolError::RecordTooLarge`] whatever the policy.
//! - The sum of all segment file sizes never exceeds [`SpoolConfig::max_bytes`] (default
//!   [`DEFAULT_MAX_BYTES`], 256 MiB), which must be at least twice `segment_bytes`. Acked
//!   records still count until their whole segment is acked and deleted. When an append would
//!   exceed it, [`FullPolicy`] decides:
//!   - [`FullPolicy::Block`]: the append fails with [`SpoolError::Full`] and nothing is
//!     written; the caller waits and retries, holding the batch (and its ack) back, which
//!     backpressures the source. Nothing is lost.
//!   - [`FullPolicy::DropNewest`]: the append fails with [`SpoolError::DroppedNewest`] and
//!     [`SpoolStats::dropped_newest`] grows by one; the caller treats the record as given up.
//!   - [`FullPolicy::DropOldest`]: whole oldest segments are deleted until the record fits
//!     (unacked records in them count in [`SpoolStats::dropped_oldest`]), then it is appended.
//! - Memory: a few dozen bytes per segment (two neighbouring segments always hold more than
//!   `segment_bytes` together, so there are at most `2 * max_bytes / segment_bytes + 1`: 65 by
//!   default) plus the records one `peek_from` returns (bounded by its `max`).
//!
//! # Crash recovery (at [`Spool::open`])
//!
//! Every segment is scanned and every checksum verified. At the first frame that is short, has
//! a length past the end of the file, or fails its checksum, the segment is truncated to its
//! valid prefix (fsynced) and the repair counted in [`SpoolStats::torn_records`] /
//! [`SpoolStats::torn_bytes`]. This is normal for the last segment after a crash mid-write;
//! in an earlier segment it means damage, is logged as a warning, and loses that segment's
//! remaining records. A segment shorter than its header (crash while creating it) is removed.
//! A segment whose header is not `VGSPOOL1`, or whose sequence numbers overlap the previous
//! segment, makes `open` fail with [`SpoolError::Corrupt`]: the spool never deletes a file it
//! does not understand. A damaged `ack.state` is repaired by replaying every record on disk
//! (counted in [`SpoolStats::state_repairs`]): duplicates rather than loss. Segments entirely
//! at or below the ack position (a crash between persisting the ack and deleting them) are
//! deleted. Nothing in recovery panics.

mod format;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use format::{
    RECORD_HEADER_BYTES, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, Scan, decode_state, encode_record,
    encode_state, parse_segment_name, read_records, scan_segment, segment_name,
};

/// A record's sequence number: assigned by [`Spool::append`], starting at 1, strictly
/// increasing for the life of the directory.
pub type SeqNo = u64;

/// Default segment size: 8 MiB. When the next record would push the open segment past it, a
/// new segment is started; a payload larger than the segment size minus 20 bytes is refused.
pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

/// Default cap on the spool's size on disk: 256 MiB (32 default segments). At the cap the
/// [`FullPolicy`] applies.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Smallest segment size accepted: 64 bytes (useful in tests only). A smaller
/// `segment_bytes` makes [`Spool::open`] fail with [`SpoolError::Config`].
pub const MIN_SEGMENT_BYTES: u64 = 64;

/// Largest segment size accepted: 1 GiB, which keeps every payload length within the frame's
/// u32. A larger `segment_bytes` makes [`Spool::open`] fail with [`SpoolError::Config`].
pub const MAX_SEGMENT_BYTES: u64 = 1024 * 1024 * 1024;

/// Name of the lock file held (advisory `flock`) while a [`Spool`] is open.
const LOCK_FILE: &str = "spool.lock";
/// Name of the ack state file.
const STATE_FILE: &str = "ack.state";
/// Name of the temporary written before being renamed over [`STATE_FILE`].
const STATE_TMP_FILE: &str = "ack.state.tmp";

/// When the spool calls fsync on appended data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// After every append, before it returns: an appended record survives a power loss.
    #[default]
    EveryAppend,
    /// Never for appends (the kernel writes back): survives a process crash, but a power loss
    /// can lose records whose append returned (and whose batch ack therefore completed).
    Never,
}

/// What [`Spool::append`] does when the record would take the spool past
/// [`SpoolConfig::max_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// Refuse with [`SpoolError::Full`]; the caller backs off and retries (backpressure).
    #[default]
    Block,
    /// Refuse with [`SpoolError::DroppedNewest`] and count it in
    /// [`SpoolStats::dropped_newest`].
    DropNewest,
    /// Delete the oldest whole segment(s) until the record fits; count their unacked records
    /// in [`SpoolStats::dropped_oldest`].
    DropOldest,
}

/// How a spool is bounded and synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Roll to a new segment when the open one would exceed this many bytes
    /// ([`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`], default 8 MiB).
    pub segment_bytes: u64,
    /// Cap on the sum of segment file sizes; at least `2 * segment_bytes` (default 256 MiB).
    pub max_bytes: u64,
    /// When to fsync appends.
    pub fsync: FsyncPolicy,
    /// What to do at `max_bytes`.
    pub full: FullPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_bytes: DEFAULT_MAX_BYTES,
            fsync: FsyncPolicy::default(),
            full: FullPolicy::default(),
        }
    }
}

impl SpoolConfig {
    fn validate(&self) -> Result<(), SpoolError> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(SpoolError::Config(format!(
                "segment_bytes {} is outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            )));
        }
        if self.max_bytes < self.segment_bytes.saturating_mul(2) {
            return Err(SpoolError::Config(format!(
                "max_bytes {} must be at least twice segment_bytes {}",
                self.max_bytes, self.segment_bytes
            )));
        }
        Ok(())
    }

    /// The largest payload accepted: `segment_bytes - 20`.
    pub fn max_record_bytes(&self) -> u64 {
        self.segment_bytes
            .saturating_sub(SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES)
    }
}

/// What can go wrong with a spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool I/O on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The configuration is unusable.
    #[error("invalid spool configuration: {0}")]
    Config(String),
    /// Another `Spool` (this process or another) has the directory open.
    #[error("spool directory {0} is locked by another spool")]
    Locked(PathBuf),
    /// A file in the directory is not a valid spool file and was left untouched.
    #[error("spool file {path} is corrupt: {reason}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The payload is larger than a segment can hold.
    #[error("record of {len} bytes exceeds the largest spool record ({max} bytes)")]
    RecordTooLarge {
        /// Payload length.
        len: u64,
        /// [`SpoolConfig::max_record_bytes`].
        max: u64,
    },
    /// [`FullPolicy::Block`]: the record does not fit; nothing was written. Retry later.
    #[error("spool full: {used} of {max} bytes used, record needs {needed}")]
    Full {
        /// Bytes on disk now.
        used: u64,
        /// [`SpoolConfig::max_bytes`].
        max: u64,
        /// Bytes the record would add.
        needed: u64,
    },
    /// [`FullPolicy::DropNewest`]: the spool was full and the record was dropped (counted).
    #[error("spool full: record dropped (drop-newest policy)")]
    DroppedNewest,
    /// `ack` named a sequence number that was never assigned.
    #[error("ack up to {upto} is beyond the last appended sequence number {last}")]
    AckBeyondEnd {
        /// The requested position.
        upto: SeqNo,
        /// The last sequence number assigned (0 if none).
        last: SeqNo,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Counters and sizes, as returned by [`Spool::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Records stored and not yet acked.
    pub records: u64,
    /// Bytes on disk in segment files (acked records count until their segment is deleted).
    pub bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// Unacked records deleted by [`FullPolicy::DropOldest`] since open.
    pub dropped_oldest: u64,
    /// Records refused by [`FullPolicy::DropNewest`] since open.
    pub dropped_newest: u64,
    /// Torn or damaged records truncated away at open (one per repaired segment).
    pub torn_records: u64,
    /// Bytes truncated away at open.
    pub torn_bytes: u64,
    /// 1 if the ack state file was damaged at open and everything on disk is replayed.
    pub state_repairs: u64,
    /// Every sequence number up to this one is acked (0: none).
    pub acked: SeqNo,
    /// The sequence number the next append will get.
    pub next_seq: SeqNo,
}

#[derive(Debug)]
struct Segment {
    first_seq: SeqNo,
    count: u64,
    bytes: u64,
    path: PathBuf,
}

impl Segment {
    /// One past the last sequence number in this segment.
    fn end(&self) -> SeqNo {
        self.first_seq + self.count
    }

    /// Records in this segment above `acked`.
    fn unacked(&self, acked: SeqNo) -> u64 {
        self.end()
            .saturating_sub(self.first_seq.max(acked.saturating_add(1)))
    }
}

/// A durable bounded FIFO of records in a directory. See the [module docs](self).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cfg: SpoolConfig,
    /// Oldest first; the last one is the segment appended to when `active` is `Some`.
    segments: VecDeque<Segment>,
    /// Append handle on `segments.back()`.
    active: Option<File>,
    next_seq: SeqNo,
    acked: SeqNo,
    total_bytes: u64,
    dropped_oldest: u64,
    dropped_newest: u64,
    torn_records: u64,
    torn_bytes: u64,
    state_repairs: u64,
    /// Held for its lock; released when the spool is dropped.
    _lock: File,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovering from any crash: see the
    /// [module docs](self#crash-recovery-at-spoolopen).
    pub fn open(dir: &Path, cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        cfg.validate()?;
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir.into())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }

        let tmp = dir.join(STATE_TMP_FILE);
        if tmp.exists() {
            fs::remove_file(&tmp).map_err(io_err(&tmp))?;
        }
        let state_path = dir.join(STATE_FILE);
        let (state, state_repairs) = match fs::read(&state_path) {
            Ok(bytes) => match decode_state(&bytes) {
                Some(acked) => (Some(acked), 0),
                None => {
                    tracing::warn!(path = %state_path.display(),
                        "spool ack state is damaged; replaying every record on disk");
                    (None, 1)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0),
            Err(e) => return Err(io_err(&state_path)(e)),
        };

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut spool = Spool {
            dir: dir.to_path_buf(),
            cfg,
            segments: VecDeque::new(),
            active: None,
            next_seq: 1,
            acked: 0,
            total_bytes: 0,
            dropped_oldest: 0,
            dropped_newest: 0,
            torn_records: 0,
            torn_bytes: 0,
            state_repairs,
            _lock: lock,
        };
        let n = firsts.len();
        for (i, first) in firsts.into_iter().enumerate() {
            spool.recover_segment(first, i + 1 == n)?;
        }

        let first_on_disk = spool.segments.front().map(|s| s.first_seq);
        spool.acked = match state {
            Some(acked) => acked,
            None => first_on_disk.map_or(0, |f| f.saturating_sub(1)),
        };
        let end_on_disk = spool.segments.back().map_or(1, Segment::end);
        spool.next_seq = end_on_disk.max(spool.acked.saturating_add(1)).max(1);
        spool.delete_acked_segments()?;
        if let Some(seg) = spool.segments.back() {
            let file = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(io_err(&seg.path))?;
            spool.active = Some(file);
        }
        Ok(spool)
    }

    fn recover_segment(&mut self, first: SeqNo, is_last: bool) -> Result<(), SpoolError> {
        let path = self.dir.join(segment_name(first));
        let corrupt = |reason: String| SpoolError::Corrupt {
            path: path.clone(),
            reason,
        };
        if first == 0 {
            return Err(corrupt("sequence numbers start at 1".into()));
        }
        if let Some(prev) = self.segments.back()
            && first < prev.end()
        {
            return Err(corrupt(format!(
                "starts at {first} but the previous segment runs to {}",
                prev.end() - 1
            )));
        }
        // Accept any length a spool could have written (segment_bytes may have shrunk since);
        // allocation stays bounded by the file's size, as a length past EOF is torn.
        let scan = scan_segment(&path, MAX_SEGMENT_BYTES).map_err(io_err(&path))?;
        match scan {
            Scan::BadMagic => Err(corrupt("not a spool segment (bad magic)".into())),
            Scan::NoHeader => {
                tracing::warn!(path = %path.display(), "removing spool segment without header");
                fs::remove_file(&path).map_err(io_err(&path))
            }
            Scan::Valid {
                count,
                valid_len,
                file_len,
                torn,
            } => {
                if let Some(torn) = torn {
                    if is_last {
                        tracing::info!(path = %path.display(), ?torn, cut = file_len - valid_len,
                            "truncating torn tail of spool segment");
                    } else {
                        tracing::warn!(path = %path.display(), ?torn, cut = file_len - valid_len,
                            "spool segment damaged before its end; truncating");
                    }
                    let file = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    file.set_len(valid_len).map_err(io_err(&path))?;
                    file.sync_all().map_err(io_err(&path))?;
                    self.torn_records += 1;
                    self.torn_bytes += file_len - valid_len;
                }
                self.total_bytes += valid_len;
                self.segments.push_back(Segment {
                    first_seq: first,
                    count,
                    bytes: valid_len,
                    path,
                });
                Ok(())
            }
        }
    }

    /// The directory this spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.cfg
    }

    /// Appends `record` and returns its sequence number. When it returns `Ok`, the record is
    /// in the page cache (and on stable storage with [`FsyncPolicy::EveryAppend`]).
    ///
    /// Fails with [`SpoolError::RecordTooLarge`] above [`SpoolConfig::max_record_bytes`], and
    /// at the size cap as the [`FullPolicy`] says. On an I/O error the partial write is cut
    /// off again (best effort; open repairs it otherwise) and no sequence number is used.
    pub fn append(&mut self, record: &[u8]) -> Result<SeqNo, SpoolError> {
        let len = record.len() as u64;
        let max = self.cfg.max_record_bytes();
        if len > max {
            return Err(SpoolError::RecordTooLarge { len, max });
        }
        let frame = RECORD_HEADER_BYTES + len;
        let needed = |spool: &Spool| match (&spool.active, spool.segments.back()) {
            (Some(_), Some(seg)) if seg.bytes + frame <= spool.cfg.segment_bytes => frame,
            _ => SEGMENT_HEADER_BYTES + frame,
        };
        if self.total_bytes + needed(self) > self.cfg.max_bytes {
            match self.cfg.full {
                FullPolicy::Block => {
                    return Err(SpoolError::Full {
                        used: self.total_bytes,
                        max: self.cfg.max_bytes,
                        needed: needed(self),
                    });
                }
                FullPolicy::DropNewest => {
                    self.dropped_newest += 1;
                    return Err(SpoolError::DroppedNewest);
                }
                FullPolicy::DropOldest => {
                    while self.total_bytes + needed(self) > self.cfg.max_bytes {
                        // The open segment goes only when the record needs a new one anyway.
                        let rolling = needed(self) > frame;
                        if self.segments.len() <= 1 && !rolling {
                            return Err(SpoolError::Full {
                                used: self.total_bytes,
                                max: self.cfg.max_bytes,
                                needed: needed(self),
                            });
                        }
                        let Some(seg) = self.segments.pop_front() else {
                            break;
                        };
                        if self.segments.is_empty() {
                            self.active = None;
                        }
                        self.dropped_oldest += seg.unacked(self.acked);
                        tracing::warn!(path = %seg.path.display(), records = seg.unacked(self.acked),
                            "spool full: dropping oldest segment");
                        self.remove_segment_file(seg)?;
                    }
                }
            }
        }
        if needed(self) > frame {
            self.roll()?;
        }
        let mut buf = Vec::with_capacity(frame as usize);
        // `len <= max_record_bytes < MAX_SEGMENT_BYTES < u32::MAX`.
        encode_record(record, len as u32, &mut buf);
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(SpoolError::Corrupt {
                path: self.dir.clone(),
                reason: "no open segment after roll".into(),
            });
        };
        let written = file.write_all(&buf).and_then(|()| match self.cfg.fsync {
            FsyncPolicy::EveryAppend => file.sync_data(),
            FsyncPolicy::Never => Ok(()),
        });
        if let Err(e) = written {
            let _ = file.set_len(seg.bytes);
            return Err(io_err(&seg.path)(e));
        }
        seg.count += 1;
        seg.bytes += frame;
        self.total_bytes += frame;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Starts a new segment named after the next sequence number.
    fn roll(&mut self) -> Result<(), SpoolError> {
        let path = self.dir.join(segment_name(self.next_seq));
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let written = file
            .write_all(&SEGMENT_MAGIC)
            .and_then(|()| match self.cfg.fsync {
                FsyncPolicy::EveryAppend => file.sync_all(),
                FsyncPolicy::Never => Ok(()),
            });
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        if self.cfg.fsync == FsyncPolicy::EveryAppend {
            self.sync_dir()?;
        }
        self.active = Some(file);
        self.total_bytes += SEGMENT_HEADER_BYTES;
        self.segments.push_back(Segment {
            first_seq: self.next_seq,
            count: 0,
            bytes: SEGMENT_HEADER_BYTES,
            path,
        });
        Ok(())
    }

    /// Returns up to `max` records in sequence order: those after `after` (or, with `None`,
    /// the oldest unacked ones), never any at or below the ack position.
    ///
    /// Reads from disk on every call; memory is bounded by `max` records. A record failing
    /// its checksum here (the file changed after open) is [`SpoolError::Corrupt`].
    pub fn peek_from(
        &self,
        after: Option<SeqNo>,
        max: usize,
    ) -> Result<Vec<(SeqNo, Vec<u8>)>, SpoolError> {
        let start = after
            .map_or(0, |a| a.saturating_add(1))
            .max(self.acked.saturating_add(1));
        let mut out = Vec::new();
        for seg in &self.segments {
            if out.len() >= max {
                break;
            }
            if seg.end() <= start {
                continue;
            }
            read_records(&seg.path, seg.first_seq, seg.count, start, max, &mut out).map_err(
                |e| match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => {
                        SpoolError::Corrupt {
                            path: seg.path.clone(),
                            reason: e.to_string(),
                        }
                    }
                    _ => io_err(&seg.path)(e),
                },
            )?;
        }
        Ok(out)
    }

    /// Marks every record up to and including `upto` delivered: persists the position
    /// durably (see the [module docs](self#durability-fsyncpolicy)), then deletes the segments
    /// it covers entirely. Acking at or below the current position does nothing; acking a
    /// sequence number not yet assigned is [`SpoolError::AckBeyondEnd`].
    pub fn ack(&mut self, upto: SeqNo) -> Result<(), SpoolError> {
        if upto <= self.acked {
            return Ok(());
        }
        if upto >= self.next_seq {
            return Err(SpoolError::AckBeyondEnd {
                upto,
                last: self.next_seq - 1,
            });
        }
        self.write_state(upto)?;
        self.acked = upto;
        self.delete_acked_segments()
    }

    /// Writes the state file: temp, fsync, rename, fsync the directory.
    fn write_state(&self, acked: SeqNo) -> Result<(), SpoolError> {
        let tmp = self.dir.join(STATE_TMP_FILE);
        let path = self.dir.join(STATE_FILE);
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&encode_state(acked)).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), SpoolError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    /// Deletes the segments whose records are all acked (including the open one, which is
    /// then recreated by the next append).
    fn delete_acked_segments(&mut self) -> Result<(), SpoolError> {
        while let Some(seg) = self.segments.front() {
            // An empty open segment is kept only if the next append belongs at its start.
            let empty_active =
                seg.count == 0 && self.segments.len() == 1 && seg.first_seq == self.next_seq;
            if empty_active || seg.end() > self.acked.saturating_add(1) {
                break;
            }
            let Some(seg) = self.segments.pop_front() else {
                break;
            };
            if self.segments.is_empty() {
                self.active = None;
            }
            self.remove_segment_file(seg)?;
        }
        Ok(())
    }

    fn remove_segment_file(&mut self, seg: Segment) -> Result<(), SpoolError> {
        self.total_bytes -= seg.bytes;
        match fs::remove_file(&seg.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&seg.path)(e)),
        }
    }

    /// Current sizes and counters.
    pub fn stats(&self) -> SpoolStats {
        SpoolStats {
            records: self.segments.iter().map(|s| s.unacked(self.acked)).sum(),
            bytes: self.total_bytes,
            segments: self.segments.len() as u64,
            dropped_oldest: self.dropped_oldest,
            dropped_newest: self.dropped_newest,
            torn_records: self.torn_records,
            torn_bytes: self.torn_bytes,
            state_repairs: self.state_repairs,
            acked: self.acked,
            next_seq: self.next_seq,
        }
    }
}
