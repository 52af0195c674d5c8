use std::fs::File;
use std::io;

use xxhash_rust::xxh3::xxh3_64;

use super::file::read_full_at;

/// Most bytes of a file's first line that go into its fingerprint (256). A
/// file whose first line is longer is fingerprinted by this many bytes; one
/// shorter than this with no newline yet is not fingerprinted until it grows.
pub const FINGERPRINT_BYTES: usize = 256;

/// The identity of a file's content: the xxh3-64 hash of its first `len`
/// bytes, which are its first line including the newline, or
/// [`FINGERPRINT_BYTES`] bytes if that line is longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Fingerprint {
    pub(crate) hash: u64,
    pub(crate) len: u16,
}

impl Fingerprint {
    /// The fingerprint of a file starting with `head`, or `None` if `head`
    /// holds no newline and is shorter than [`FINGERPRINT_BYTES`].
    pub(crate) fn of_head(head: &[u8]) -> Option<Self> {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        let len = match head.iter().position(|&b| b == b'\n') {
            Some(newline) => newline + 1,
            None if head.len() == FINGERPRINT_BYTES => FINGERPRINT_BYTES,
            None => return None,
        };
        Some(Self {
            hash: xxh3_64(&head[..len]),
            // len <= FINGERPRINT_BYTES, which fits in u16.
            len: u16::try_from(len).unwrap_or(u16::MAX),
        })
    }

    /// Reads the start of `file` and fingerprints it.
    pub(crate) fn of_file(file: &File) -> io::Result<Option<Self>> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let n = read_full_at(file, &mut head, 0)?;
        Ok(Self::of_head(&head[..n]))
    }

    /// Whether `file` still starts with the bytes this fingerprint was made
    /// from. A file now shorter than them does not.
    pub(crate) fn matches_file(&self, file: &File) -> io::Result<bool> {
        let mut head = [0u8; FINGERPRINT_BYTES];
        let want = usize::from(self.len).min(FINGERPRINT_BYTES);
        let n = read_full_at(file, &mut head[..want], 0)?;
        Ok(n == want && xxh3_64(&head[..n]) == self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_the_fingerprint() {
        let a = Fingerprint::of_head(b"first\nsecond\n");
        let b = Fingerprint::of_head(b"first\nother\n");
        assert_eq!(a, b);
        assert_eq!(a.map(|f| f.len), Some(6));
        assert_ne!(a, Fingerprint::of_head(b"frist\n"));
    }

    #[test]
    fn incomplete_short_first_line_is_not_fingerprinted() {
        assert_eq!(Fingerprint::of_head(b""), None);
        assert_eq!(Fingerprint::of_head(b"no newline yet"), None);
        let long = vec![b'x'; FINGERPRINT_BYTES - 1];
        assert_eq!(Fingerprint::of_head(&long), None);
    }

    #[test]
    fn long_first_line_uses_the_first_bytes() {
        let mut long = vec![b'x'; FINGERPRINT_BYTES];
        let fp = Fingerprint::of_head(&long);
        assert_eq!(fp.map(|f| f.len), Some(FINGERPRINT_BYTES as u16));
        long.extend_from_slice(b"more\n");
        assert_eq!(Fingerprint::of_head(&long), fp);
    }
}
