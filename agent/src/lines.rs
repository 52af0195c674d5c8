//! Reading newline-terminated records without unbounded memory.

use std::io::{self, BufRead};

/// Reads one record up to and including `\n` into `line` (without the newline), keeping at
/// most `cap` bytes: the rest of an oversize record is consumed and discarded, never
/// buffered. Returns the bytes consumed from the reader (0 at end of input) and whether the
/// record was cut.
pub fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, bool)> {
    line.clear();
    let mut consumed = 0;
    let mut truncated = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed, truncated));
        }
        let (chunk, done) = match memchr_newline(buf) {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = cap.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        consumed += used;
        if done.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Ok((consumed, truncated));
        }
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], cap: usize) -> Vec<(Vec<u8>, usize, bool)> {
        let mut r = io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        let mut line = Vec::new();
        loop {
            let (n, t) = read_line_capped(&mut r, &mut line, cap).unwrap();
            if n == 0 {
                return out;
            }
            out.push((line.clone(), n, t));
        }
    }

    #[test]
    fn splits_caps_and_keeps_the_unterminated_tail() {
        let got = all(b"ab\r\n0123456789abcdef\n\nlast", 10);
        assert_eq!(got[0], (b"ab".to_vec(), 4, false));
        assert_eq!(got[1], (b"0123456789".to_vec(), 17, true));
        assert_eq!(got[2], (b"".to_vec(), 1, false));
        assert_eq!(got[3], (b"last".to_vec(), 4, false));
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn a_huge_line_costs_only_the_cap() {
        let mut input = vec![b'x'; 10 * 1024 * 1024];
        input.push(b'\n');
        input.extend_from_slice(b"{}\n");
        let got = all(&input, 1024);
        assert_eq!(got[0].0.len(), 1024);
        assert!(got[0].2);
        assert_eq!(got[0].1, 10 * 1024 * 1024 + 1);
        assert_eq!(got[1].0, b"{}");
    }
}
