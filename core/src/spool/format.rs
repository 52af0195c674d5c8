//! On-disk encoding of segments and of the ack state file.
//!
//! Everything here is pure encoding/decoding plus the scan that recovers a segment at open;
//! the policy (what to delete, when to fsync) lives in [`super::Spool`].

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// The 8 bytes every segment file starts with (`VGSPOOL1`). A segment whose first 8 bytes
/// differ is not ours: opening the spool fails with [`super::SpoolError::Corrupt`] rather than
/// deleting a file we do not understand.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"VGSPOOL1";

/// Size of the segment header: 8 bytes (the magic). A segment shorter than this is an
/// interrupted creation and is removed at open.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 8;

/// Size of a record's frame header: 12 bytes (u32 LE length + u64 LE xxh3-64 checksum). A
/// record occupies this plus its payload length on disk.
pub(crate) const RECORD_HEADER_BYTES: u64 = 12;

/// The 8 bytes the state file starts with (`VGSPACK1`).
pub(crate) const STATE_MAGIC: [u8; 8] = *b"VGSPACK1";

/// Exact size of the state file: 24 bytes (magic, u64 LE acked sequence number, u64 LE xxh3-64
/// of the first 16 bytes). Any other size is treated as a damaged state file and repaired.
pub(crate) const STATE_BYTES: usize = 24;

/// The checksum of a record: xxh3-64 of the payload, seeded with its length so that a
/// damaged length field is caught even when the payload bytes happen to match.
pub(crate) fn checksum(payload: &[u8]) -> u64 {
    xxh3_64_with_seed(payload, payload.len() as u64)
}

/// Appends the framed record (header + payload) to `out`.
pub(crate) fn encode_record(payload: &[u8], len: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits a 12-byte record header into (length, checksum).
pub(crate) fn decode_header(h: &[u8; RECORD_HEADER_BYTES as usize]) -> (u32, u64) {
    let mut len = [0u8; 4];
    let mut sum = [0u8; 8];
    len.copy_from_slice(&h[..4]);
    sum.copy_from_slice(&h[4..]);
    (u32::from_le_bytes(len), u64::from_le_bytes(sum))
}

/// Why the valid prefix of a segment ends before its end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Torn {
    /// Fewer than 12 bytes remain: a partial frame header.
    ShortHeader,
    /// The length runs past the end of the file (or past the largest record allowed).
    LengthPastEof,
    /// The checksum does not match the payload.
    BadChecksum,
}

/// What a scan of one segment found.
#[derive(Debug)]
pub(crate) enum Scan {
    /// Shorter than the segment header: an interrupted creation.
    NoHeader,
    /// The header is not [`SEGMENT_MAGIC`]: not a spool segment.
    BadMagic,
    /// A segment with `count` valid records in its first `valid_len` bytes, and `torn` set
    /// when bytes after them do not form a valid record.
    Valid {
        count: u64,
        valid_len: u64,
        file_len: u64,
        torn: Option<Torn>,
    },
}

/// Reads a whole segment, verifying every record's frame and checksum.
pub(crate) fn scan_segment(path: &Path, max_record: u64) -> io::Result<Scan> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    if file_len < SEGMENT_HEADER_BYTES {
        return Ok(Scan::NoHeader);
    }
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if magic != SEGMENT_MAGIC {
        return Ok(Scan::BadMagic);
    }
    let mut pos = SEGMENT_HEADER_BYTES;
    let mut count = 0u64;
    let mut payload = Vec::new();
    let torn = loop {
        let remaining = file_len - pos;
        if remaining == 0 {
            break None;
        }
        if remaining < RECORD_HEADER_BYTES {
            break Some(Torn::ShortHeader);
        }
        let mut h = [0u8; RECORD_HEADER_BYTES as usize];
        r.read_exact(&mut h)?;
        let (len, sum) = decode_header(&h);
        let len = u64::from(len);
        if len > max_record || len > remaining - RECORD_HEADER_BYTES {
            break Some(Torn::LengthPastEof);
        }
        payload.clear();
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload)?;
        if checksum(&payload) != sum {
            break Some(Torn::BadChecksum);
        }
        pos += RECORD_HEADER_BYTES + len;
        count += 1;
    };
    Ok(Scan::Valid {
        count,
        valid_len: pos,
        file_len,
        torn,
    })
}

/// Reads records of a segment whose first record has sequence number `first_seq`: skips
/// those below `start`, returns at most `max` records, and never reads past record `count`.
///
/// Returns `Err(InvalidData)` if a record fails its checksum (the file changed under us).
pub(crate) fn read_records(
    path: &Path,
    first_seq: u64,
    count: u64,
    start: u64,
    max: usize,
    out: &mut Vec<(u64, Vec<u8>)>,
) -> io::Result<()> {
    let file = File::open(path)?;
    let mut r = BufReader::new(file);
    r.seek(SeekFrom::Start(SEGMENT_HEADER_BYTES))?;
    for i in 0..count {
        if out.len() >= max {
            return Ok(());
        }
        let seq = first_seq + i;
        let mut h = [0u8; RECORD_HEADER_BYTES as usize];
        r.read_exact(&mut h)?;
        let (len, sum) = decode_header(&h);
        if seq < start {
            r.seek_relative(i64::from(len))?;
            continue;
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload)?;
        if checksum(&payload) != sum {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record {seq} fails its checksum"),
            ));
        }
        out.push((seq, payload));
    }
    Ok(())
}

/// Encodes the state file for "every sequence number up to `acked` is delivered".
pub(crate) fn encode_state(acked: u64) -> [u8; STATE_BYTES] {
    let mut out = [0u8; STATE_BYTES];
    out[..8].copy_from_slice(&STATE_MAGIC);
    out[8..16].copy_from_slice(&acked.to_le_bytes());
    let sum = xxh3_64(&out[..16]);
    out[16..].copy_from_slice(&sum.to_le_bytes());
    out
}

/// Decodes a state file; `None` when it is damaged (wrong size, magic or checksum).
pub(crate) fn decode_state(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != STATE_BYTES || bytes[..8] != STATE_MAGIC {
        return None;
    }
    let mut acked = [0u8; 8];
    let mut sum = [0u8; 8];
    acked.copy_from_slice(&bytes[8..16]);
    sum.copy_from_slice(&bytes[16..24]);
    if xxh3_64(&bytes[..16]) != u64::from_le_bytes(sum) {
        return None;
    }
    Some(u64::from_le_bytes(acked))
}

/// The file name of the segment whose first record is `first_seq`: 20 zero-padded digits.
pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number of a segment file name, `None` if it is not one.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
