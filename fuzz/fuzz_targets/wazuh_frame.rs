//! The Wazuh secure-message decoder on arbitrary bytes, with the key of the test vectors
//! (`core/tests/fixtures/wazuh`), at each of its layers: random bytes almost never survive
//! AES, so the input is also taken as the plaintext (encrypted here), as the zlib stream, and
//! as the block, to reach the checks behind the decryption. Also authd's enrollment answer
//! and `client.keys`, the other bytes the manager side hands the agent.
//!
//! The first byte picks the layer; the rest is the input. Invariants, besides never
//! panicking and never allocating on a peer's word:
//! - a decoded block is exactly its header fields, formatted back, and its message;
//! - a decoded message encodes into a frame that decodes to it again;
//! - a block with a header of the right shape always decodes, to itself;
//! - a key that parses writes back to a line that parses to it, and its codec round-trips.

#![no_main]

use std::io::Write;
use std::sync::LazyLock;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use vigil_core::outputs::wazuh::enroll::parse_answer;
use vigil_core::outputs::wazuh::{
    AgentKey, BlockHeader, CodecError, Decoded, MAX_FRAME_PAYLOAD_BYTES, SecureCodec,
    WAZUH_ZLIB_LEVEL, build_plain, frame_len, open_plain,
};

/// The key line of the test vectors: address `any`, so frames carry the `!001!` prefix.
const KEY_LINE: &str =
    "001 node-a any a3f5c9e1b7d24f6a8c0e2b4d6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a";

static KEY: LazyLock<AgentKey> = LazyLock::new(|| {
    AgentKey::parse_line(KEY_LINE)
        .expect("the test key parses")
        .expect("the test key is an entry")
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let agent = SecureCodec::new(&KEY);
    let manager = SecureCodec::new(&KEY).without_id_prefix();
    match mode % 6 {
        // A TCP frame as read from the socket, and the same bytes as a bare payload.
        0 => {
            for codec in [&agent, &manager] {
                if let Ok(d) = codec.decode_frame(data) {
                    check_decoded(codec, &d);
                }
                if let Ok(d) = codec.decode_payload(data) {
                    check_decoded(codec, &d);
                }
            }
        }
        // A stream of frames, cut the way the connection cuts the manager's answers.
        1 => {
            let mut rest = data;
            while let Ok(len) = frame_len(rest) {
                assert!(len <= MAX_FRAME_PAYLOAD_BYTES);
                let Some(payload) = rest.get(4..4 + len) else {
                    break;
                };
                if let Ok(d) = manager.decode_payload(payload) {
                    check_decoded(&manager, &d);
                }
                rest = &rest[4 + len..];
            }
        }
        // The decrypted plaintext: `!`s and a zlib stream.
        2 => {
            let payload = manager.seal(data);
            let opened = open_plain(data);
            match manager.decode_payload(&payload) {
                Ok(d) => {
                    let (inflated, _) = opened.expect("a decoded plaintext opens");
                    check_block(&inflated[32..], &d);
                    check_decoded(&manager, &d);
                }
                Err(CodecError::MissingBang | CodecError::Inflate(_)) => {
                    assert!(opened.is_err());
                }
                Err(_) => {}
            }
        }
        // The inflated text: md5 (as sent, any case) and block.
        3 => {
            let mut z = ZlibEncoder::new(Vec::new(), Compression::fast());
            z.write_all(data).expect("writes to memory");
            let mut plain = b"!!!!!!!!".to_vec();
            plain.extend_from_slice(&z.finish().expect("writes to memory"));
            if let Ok(d) = manager.decode_payload(&manager.seal(&plain)) {
                let (sum, block) = data.split_at(32);
                assert!(sum.eq_ignore_ascii_case(md5_hex(block).as_bytes()));
                check_block(block, &d);
            }
        }
        // The block: header and message, with a correct checksum.
        4 => {
            let plain = build_plain(data, WAZUH_ZLIB_LEVEL).expect("compresses");
            let decoded = manager.decode_payload(&manager.seal(&plain));
            if header_shaped(data) {
                let d = decoded.expect("a block with a well-formed header decodes");
                check_block(data, &d);
                check_decoded(&manager, &d);
            } else {
                assert!(decoded.is_err(), "a malformed header was accepted");
            }
        }
        // authd's answer and client.keys.
        _ => {
            let text = String::from_utf8_lossy(data);
            if let Ok(key) = parse_answer(&text) {
                check_key(&key);
            }
            if let Ok(keys) = AgentKey::parse_file(&text) {
                for key in keys.iter().take(4) {
                    check_key(key);
                }
            }
        }
    }
});

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `%05u %010u : %04u :`, the shape the decoder accepts.
fn header_shaped(block: &[u8]) -> bool {
    block.len() >= 21
        && block[..15].iter().all(u8::is_ascii_digit)
        && block[15] == b':'
        && block[16..20].iter().all(u8::is_ascii_digit)
        && block[20] == b':'
}

/// The block is its fields formatted back and the message, byte for byte.
fn check_block(block: &[u8], d: &Decoded) {
    let mut again = format!("{:05}{:010}:{:04}:", d.rand, d.global, d.local).into_bytes();
    again.extend_from_slice(&d.message);
    assert_eq!(again, block);
}

/// Encoding the decoded message again gives a frame that decodes to it.
fn check_decoded(codec: &SecureCodec, d: &Decoded) {
    let (Ok(rand), Ok(global)) = (u16::try_from(d.rand), u32::try_from(d.global)) else {
        // Counters the peer may send but this encoder never writes.
        return;
    };
    let header = BlockHeader {
        rand,
        global,
        local: d.local,
    };
    let Ok(frame) = codec.encode_frame(header, &d.message) else {
        // Only an event over the manager's limit is refused.
        assert!(d.message.len() > vigil_core::outputs::wazuh::MAX_EVENT_BYTES);
        return;
    };
    let again = codec
        .decode_frame(&frame)
        .expect("an encoded frame decodes");
    assert_eq!(
        (again.rand, again.global, again.local, &again.message),
        (d.rand, d.global, d.local, &d.message)
    );
}

fn check_key(key: &AgentKey) {
    let again = AgentKey::parse_line(&key.to_line())
        .expect("a key's line parses")
        .expect("a key's line is an entry");
    assert_eq!(&again, key);
    let codec = SecureCodec::new(key);
    let header = BlockHeader {
        rand: 1,
        global: 2,
        local: 3,
    };
    let frame = codec
        .encode_frame(header, b"#!-agent ack ")
        .expect("encodes");
    let d = codec
        .decode_frame(&frame)
        .expect("decodes with its own key");
    assert_eq!(d.message, b"#!-agent ack ");
    assert_eq!(d.agent_id.is_some(), key.address().needs_id_prefix());
}
