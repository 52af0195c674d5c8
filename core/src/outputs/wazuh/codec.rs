//! Wazuh secure messages: the encrypted, compressed frames an agent exchanges with the
//! manager on TCP 1514.
//!
//! ```text
//! TCP frame  = u32 LE length of payload ‖ payload
//! payload    = ["!" id "!"] "#AES:" AES-256-CBC(key, IV "FEDCBA0987654321", PKCS#7)(plain)
//! plain      = "!" × (1..=8) ‖ zlib(md5hex(block) ‖ block)   — total a multiple of 8
//! block      = %05hu rand ‖ %010u global ‖ ":" ‖ %04u local ‖ ":" ‖ message
//! ```
//!
//! The manager drops frames it cannot decode without telling the agent, so the encoder
//! follows Wazuh byte for byte, and the decoder (for what the manager sends back) treats every
//! byte as hostile: it never panics, bounds every allocation, and reports what was wrong.

use std::io::{Read, Write};

use aes::Aes256;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

use super::keys::{AesKey, AgentKey, md5_hex};

/// Wazuh's `OS_MAXSTR`: the largest message the manager handles.
pub const OS_MAXSTR: usize = 65_536;

/// Largest event text the manager accepts (`OS_MAXSTR` − 128); it drops anything larger, so
/// [`check_event_size`] refuses it here, where the caller can still count and report it.
pub const MAX_EVENT_BYTES: usize = OS_MAXSTR - 128;

/// Largest payload (the bytes after the length prefix) the decoder accepts.
///
/// A peer could announce up to 4 GiB; allocating that on its word is a denial of service.
/// The bound is the manager's `OS_MAXSTR` of message plus headroom for everything the
/// protocol adds to it: 53 bytes of md5 and counters, zlib's worst-case growth on
/// incompressible data (16 bytes at this size), up to 8 `!`, up to 16 bytes of AES padding
/// and a 15-byte `!<8-digit id>!#AES:` prefix — about 110 bytes, rounded up to 1 KiB.
pub const MAX_FRAME_PAYLOAD_BYTES: usize = OS_MAXSTR + 1024;

/// Largest inflated `md5 ‖ block` the decoder accepts; bounds a zlib bomb.
const MAX_INFLATED_BYTES: usize = OS_MAXSTR + 1024;

/// The fixed CBC IV Wazuh uses for every message.
pub const AES_IV: &[u8; 16] = b"FEDCBA0987654321";

/// The marker in front of the ciphertext.
const AES_TAG: &[u8] = b"#AES:";

/// Length of the block header `rand(5) global(10) ':' local(4) ':'`.
const HEADER_LEN: usize = 5 + 10 + 1 + 4 + 1;

/// Length of md5hex.
const MD5_HEX_LEN: usize = 32;

/// zlib level Wazuh's C agent uses (`Z_BEST_COMPRESSION`).
pub const WAZUH_ZLIB_LEVEL: u32 = 9;

/// Why a message could not be encoded or a frame decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The event is longer than the manager accepts.
    #[error("event of {len} bytes exceeds the manager's limit of {max} bytes")]
    EventTooLarge {
        /// Length of the event.
        len: usize,
        /// [`MAX_EVENT_BYTES`].
        max: usize,
    },
    /// Fewer bytes than the frame needs.
    #[error("truncated frame: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// The length prefix announces more than [`MAX_FRAME_PAYLOAD_BYTES`].
    #[error("frame announces {len} bytes, over the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: usize,
        /// [`MAX_FRAME_PAYLOAD_BYTES`].
        max: usize,
    },
    /// Bytes after the frame's announced end.
    #[error("{0} unexpected bytes after the frame")]
    TrailingBytes(usize),
    /// An `!<id>!` prefix that is not closed or whose id is not 3 to 8 digits.
    #[error("malformed `!<id>!` prefix")]
    BadIdPrefix,
    /// The payload does not carry `#AES:` where expected.
    #[error("payload does not start with `#AES:`")]
    MissingAesTag,
    /// The ciphertext is empty or not a whole number of AES blocks.
    #[error("ciphertext of {0} bytes is not a positive multiple of 16")]
    CiphertextLength(usize),
    /// Decryption gave invalid PKCS#7 padding (wrong key or damaged frame).
    #[error("bad PKCS#7 padding after decryption (wrong key or damaged frame)")]
    BadPadding,
    /// The decrypted text does not start with `!`.
    #[error("decrypted message does not start with `!`")]
    MissingBang,
    /// The zlib stream is invalid.
    #[error("invalid zlib data: {0}")]
    Inflate(std::io::Error),
    /// The zlib stream inflates beyond the bound.
    #[error("message inflates beyond {0} bytes")]
    InflatedTooLarge(usize),
    /// The inflated text is too short for md5 and header.
    #[error("inflated message of {0} bytes is too short for checksum and header")]
    TooShort(usize),
    /// md5hex of the block does not match the one sent.
    #[error("checksum mismatch")]
    DigestMismatch,
    /// The block header is not `5 digits, 10 digits ':' 4 digits ':'`.
    #[error("malformed block header")]
    BadHeader,
    /// Compressing failed (it writes to memory, so this means a bug in the deflater).
    #[error("cannot compress: {0}")]
    Deflate(std::io::Error),
}

/// The per-message counters Wazuh puts in every block, so that replayed or reordered frames
/// can be spotted (when the manager's `remoted.verify_msg_id` is on). Persist them across
/// restarts to stay monotonic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    global: u32,
    local: u32,
}

/// Local counter value at which Wazuh rolls over to the next global counter.
pub const LOCAL_ROLLOVER: u32 = 9997;

impl Counters {
    /// Starts from saved values (the values of the last message sent; `new(0, 0)` for a
    /// fresh agent).
    pub fn new(global: u32, local: u32) -> Self {
        Counters { global, local }
    }

    /// The counters of the last message.
    pub fn current(&self) -> (u32, u32) {
        (self.global, self.local)
    }

    /// Advances for the next message and returns `(global, local)` to put in it: if local
    /// ≥ 9997 then local = 0 and global += 1 (wrapping, as Wazuh's unsigned int); then
    /// local += 1.
    pub fn advance(&mut self) -> (u32, u32) {
        if self.local >= LOCAL_ROLLOVER {
            self.local = 0;
            self.global = self.global.wrapping_add(1);
        }
        self.local += 1;
        (self.global, self.local)
    }
}

/// The fields before the message in a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Random salt (`%05hu`), so equal messages encrypt differently.
    pub rand: u16,
    /// Global counter (`%010u`).
    pub global: u32,
    /// Local counter (`%04u`); 1..=9997 in practice.
    pub local: u32,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The `!<id>!` prefix's id, when the frame had one.
    pub agent_id: Option<String>,
    /// Random salt (up to 5 digits; not range-checked, a peer may send 99999).
    pub rand: u32,
    /// Global counter (up to 10 digits).
    pub global: u64,
    /// Local counter (up to 4 digits).
    pub local: u32,
    /// The message (event or control message), as bytes: Wazuh does not promise UTF-8.
    pub message: Vec<u8>,
}

/// Refuses an event longer than [`MAX_EVENT_BYTES`]. Refusing, not trimming: a trimmed JSON
/// event no longer parses in the manager's JSON decoder and would raise no rule, so the caller
/// should count and report the loss instead of sending a silently broken event.
pub fn check_event_size(message: &[u8]) -> Result<(), CodecError> {
    if message.len() > MAX_EVENT_BYTES {
        return Err(CodecError::EventTooLarge {
            len: message.len(),
            max: MAX_EVENT_BYTES,
        });
    }
    Ok(())
}

/// Builds `header ‖ message` (the block whose md5 is checked).
pub fn build_block(header: BlockHeader, message: &[u8]) -> Vec<u8> {
    let mut block = Vec::with_capacity(HEADER_LEN + message.len());
    block.extend_from_slice(
        format!(
            "{:05}{:010}:{:04}:",
            header.rand, header.global, header.local
        )
        .as_bytes(),
    );
    block.extend_from_slice(message);
    block
}

/// Builds the plaintext that gets encrypted: `"!"` × n ‖ zlib(md5hex(block) ‖ block), n in
/// 1..=8 so the total is a multiple of 8 (n = 8 when the zlib output already is one).
pub fn build_plain(block: &[u8], level: u32) -> Result<Vec<u8>, CodecError> {
    let mut enc = ZlibEncoder::new(
        Vec::with_capacity(block.len() + 64),
        Compression::new(level.min(9)),
    );
    enc.write_all(&md5_hex(block))
        .map_err(CodecError::Deflate)?;
    enc.write_all(block).map_err(CodecError::Deflate)?;
    let compressed = enc.finish().map_err(CodecError::Deflate)?;
    let pad = 8 - compressed.len() % 8;
    let mut plain = Vec::with_capacity(pad + compressed.len());
    plain.resize(pad, b'!');
    plain.extend_from_slice(&compressed);
    Ok(plain)
}

/// Encodes and decodes frames for one agent key.
#[derive(Debug, Clone)]
pub struct SecureCodec {
    key: AesKey,
    id_prefix: Option<String>,
    level: u32,
}

impl SecureCodec {
    /// A codec for `agent`: the `!<id>!` prefix is sent when its key is not bound to one
    /// host, as Wazuh does; compression is level 9 like Wazuh's C agent.
    pub fn new(agent: &AgentKey) -> Self {
        SecureCodec {
            key: agent.aes_key(),
            id_prefix: agent
                .address()
                .needs_id_prefix()
                .then(|| agent.id().to_owned()),
            level: WAZUH_ZLIB_LEVEL,
        }
    }

    /// Overrides the zlib level (0–9). The manager inflates any level; this exists to
    /// reproduce encoders that use another one (Wazuh's Python QA encoder uses 6).
    pub fn with_compression_level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Leaves out the `!<id>!` prefix: what the manager does for the frames it sends to an
    /// agent.
    pub fn without_id_prefix(mut self) -> Self {
        self.id_prefix = None;
        self
    }

    /// Encrypts a plaintext built by [`build_plain`] and prefixes `[!id!]#AES:`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let ct = cbc::Encryptor::<Aes256>::new(self.key.as_bytes().into(), AES_IV.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain);
        let mut payload = Vec::with_capacity(ct.len() + 16);
        if let Some(id) = &self.id_prefix {
            payload.push(b'!');
            payload.extend_from_slice(id.as_bytes());
            payload.push(b'!');
        }
        payload.extend_from_slice(AES_TAG);
        payload.extend_from_slice(&ct);
        payload
    }

    /// Encodes a message into a payload (no length prefix). Refuses events over
    /// [`MAX_EVENT_BYTES`].
    pub fn encode_payload(
        &self,
        header: BlockHeader,
        message: &[u8],
    ) -> Result<Vec<u8>, CodecError> {
        check_event_size(message)?;
        let plain = build_plain(&build_block(header, message), self.level)?;
        Ok(self.seal(&plain))
    }

    /// Encodes a message into a complete TCP frame (`u32` LE length ‖ payload).
    pub fn encode_frame(&self, header: BlockHeader, message: &[u8]) -> Result<Vec<u8>, CodecError> {
        let payload = self.encode_payload(header, message)?;
        // The payload is bounded by MAX_EVENT_BYTES plus overhead, far below u32::MAX.
        let len = u32::try_from(payload.len()).map_err(|_| CodecError::FrameTooLarge {
            len: payload.len(),
            max: MAX_FRAME_PAYLOAD_BYTES,
        })?;
        let mut frame = Vec::with_capacity(4 + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&payload);
        Ok(frame)
    }

    /// Decodes a payload (the bytes after the length prefix): optional `!<id>!`, `#AES:`,
    /// decrypt, leading `!`s, inflate, checksum, header.
    pub fn decode_payload(&self, payload: &[u8]) -> Result<Decoded, CodecError> {
        if payload.len() > MAX_FRAME_PAYLOAD_BYTES {
            return Err(CodecError::FrameTooLarge {
                len: payload.len(),
                max: MAX_FRAME_PAYLOAD_BYTES,
            });
        }
        let (agent_id, rest) = split_id_prefix(payload)?;
        let ct = rest
            .strip_prefix(AES_TAG)
            .ok_or(CodecError::MissingAesTag)?;
        if ct.is_empty() || ct.len() % 16 != 0 {
            return Err(CodecError::CiphertextLength(ct.len()));
        }
        let plain = cbc::Decryptor::<Aes256>::new(self.key.as_bytes().into(), AES_IV.into())
            .decrypt_padded_vec_mut::<Pkcs7>(ct)
            .map_err(|_| CodecError::BadPadding)?;
        let (inflated, _) = open_plain(&plain)?;
        let (header, message) = split_checked_block(&inflated)?;
        Ok(Decoded {
            agent_id,
            rand: header.0,
            global: header.1,
            local: header.2,
            message: message.to_vec(),
        })
    }

    /// Decodes exactly one TCP frame; bytes after it are an error (use [`frame_len`] to cut a
    /// stream into frames).
    pub fn decode_frame(&self, frame: &[u8]) -> Result<Decoded, CodecError> {
        let len = frame_len(frame)?;
        let have = frame.len() - 4;
        if have < len {
            return Err(CodecError::Truncated {
                need: 4 + len,
                have: frame.len(),
            });
        }
        if have > len {
            return Err(CodecError::TrailingBytes(have - len));
        }
        self.decode_payload(&frame[4..])
    }
}

/// Reads a frame's length prefix, refusing one over [`MAX_FRAME_PAYLOAD_BYTES`] before
/// anything is allocated for it.
pub fn frame_len(buf: &[u8]) -> Result<usize, CodecError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Err(CodecError::Truncated {
            need: 4,
            have: buf.len(),
        });
    };
    let len = u32::from_le_bytes(*prefix) as usize;
    if len > MAX_FRAME_PAYLOAD_BYTES {
        return Err(CodecError::FrameTooLarge {
            len,
            max: MAX_FRAME_PAYLOAD_BYTES,
        });
    }
    Ok(len)
}

/// Splits an optional `!<id>!` prefix off a payload.
fn split_id_prefix(payload: &[u8]) -> Result<(Option<String>, &[u8]), CodecError> {
    let Some(rest) = payload.strip_prefix(b"!") else {
        return Ok((None, payload));
    };
    let end = rest
        .iter()
        .take(9)
        .position(|&b| b == b'!')
        .ok_or(CodecError::BadIdPrefix)?;
    let id = &rest[..end];
    if !(3..=8).contains(&id.len()) || !id.iter().all(u8::is_ascii_digit) {
        return Err(CodecError::BadIdPrefix);
    }
    // All ASCII digits, so this is valid UTF-8.
    let id = String::from_utf8_lossy(id).into_owned();
    Ok((Some(id), &rest[end + 1..]))
}

/// Checks and strips the leading `!`s of a decrypted plaintext and inflates the rest (bounded).
/// Returns the inflated `md5 ‖ block` and the number of `!` found.
pub fn open_plain(plain: &[u8]) -> Result<(Vec<u8>, usize), CodecError> {
    if plain.first() != Some(&b'!') {
        return Err(CodecError::MissingBang);
    }
    let bangs = plain.iter().take_while(|&&b| b == b'!').count();
    let mut out = Vec::new();
    ZlibDecoder::new(&plain[bangs..])
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(CodecError::Inflate)?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(CodecError::InflatedTooLarge(MAX_INFLATED_BYTES));
    }
    Ok((out, bangs))
}

/// Parsed header fields: rand, global, local.
type HeaderFields = (u32, u64, u32);

/// Verifies md5hex(block) against the first 32 bytes and splits the block header off.
fn split_checked_block(inflated: &[u8]) -> Result<(HeaderFields, &[u8]), CodecError> {
    if inflated.len() < MD5_HEX_LEN + HEADER_LEN {
        return Err(CodecError::TooShort(inflated.len()));
    }
    let (sum, block) = inflated.split_at(MD5_HEX_LEN);
    if !sum.eq_ignore_ascii_case(&md5_hex(block)) {
        return Err(CodecError::DigestMismatch);
    }
    let (header, message) = block.split_at(HEADER_LEN);
    if header[15] != b':' || header[20] != b':' {
        return Err(CodecError::BadHeader);
    }
    let rand = digits(&header[..5])?;
    let global = digits(&header[5..15])?;
    let local = digits(&header[16..20])?;
    Ok((
        (
            u32::try_from(rand).map_err(|_| CodecError::BadHeader)?,
            global,
            u32::try_from(local).map_err(|_| CodecError::BadHeader)?,
        ),
        message,
    ))
}

/// Parses a fixed-width run of ASCII digits.
fn digits(s: &[u8]) -> Result<u64, CodecError> {
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u64::from(b - b'0'))
        } else {
            Err(CodecError::BadHeader)
        }
    })
}

/// Where the 5-digit salt of each block comes from; a function so tests can fix it.
pub type RandSource = Box<dyn FnMut() -> u16 + Send>;

/// A salt source for production. The salt only makes equal messages encrypt differently
/// (Wazuh uses `os_random()`), it is not a secret, so std's randomly keyed SipHash over a
/// sequence number is enough and spares a dependency.
pub fn default_rand_source() -> RandSource {
    use std::hash::BuildHasher;
    let state = std::collections::hash_map::RandomState::new();
    let mut n: u64 = 0;
    Box::new(move || {
        n = n.wrapping_add(1);
        // Truncation to 16 bits is the point: Wazuh prints `%05hu` of a u16.
        (state.hash_one(n) & 0xffff) as u16
    })
}

/// Turns messages into frames for one agent: owns the codec, the counters and the salt, so
/// every frame gets the next counters exactly once.
pub struct FrameEncoder {
    codec: SecureCodec,
    counters: Counters,
    rand: RandSource,
}

impl std::fmt::Debug for FrameEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameEncoder")
            .field("codec", &self.codec)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl FrameEncoder {
    /// An encoder starting after `counters` (the saved counters of the last message sent).
    pub fn new(codec: SecureCodec, counters: Counters, rand: RandSource) -> Self {
        FrameEncoder {
            codec,
            counters,
            rand,
        }
    }

    /// The counters of the last frame produced; persist them to stay monotonic.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Encodes the next message into a TCP frame. Counters advance only when the message is
    /// accepted, so a refused oversized event leaves no gap.
    pub fn next_frame(&mut self, message: &[u8]) -> Result<Vec<u8>, CodecError> {
        check_event_size(message)?;
        let mut next = self.counters;
        let (global, local) = next.advance();
        let header = BlockHeader {
            rand: (self.rand)(),
            global,
            local,
        };
        let frame = self.codec.encode_frame(header, message)?;
        self.counters = next;
        Ok(frame)
    }
}
