//! Checks against frames made by Wazuh's own encoder, round trips, and hostile input.

use proptest::prelude::*;
use serde_json::Value;

use super::*;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/wazuh/wazuh-secure-message-vectors.json"
);

/// Random, global and local counter the vectors were generated with (see their `source`).
const VEC_RAND: u16 = 55555;
const VEC_GLOBAL: u32 = 1234567891;
const VEC_LOCAL: u32 = 227;

struct Vector {
    direction: String,
    plaintext: Vec<u8>,
    secure_block: Vec<u8>,
    frame: Vec<u8>,
}

struct Vectors {
    key_line: String,
    aes_key_ascii: String,
    enc_key_full_ascii: String,
    vectors: Vec<Vector>,
}

fn text(v: &Value, field: &str) -> String {
    match v.get(field).and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => panic!("vectors file: missing string field {field:?}"),
    }
}

fn load() -> Vectors {
    load_from(VECTORS)
}

fn load_from(path: &str) -> Vectors {
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "Wazuh test vectors not found at {path}: {e}. They are required (not optional): \
             restore core/tests/fixtures/wazuh/wazuh-secure-message-vectors.json"
        )
    });
    let doc: Value = serde_json::from_str(&raw).expect("vectors file is not JSON");
    let vectors: Vec<Vector> = doc
        .get("vectors")
        .and_then(Value::as_array)
        .expect("vectors file: no `vectors` array")
        .iter()
        .map(|v| Vector {
            direction: text(v, "direction"),
            plaintext: text(v, "plaintext_event").into_bytes(),
            secure_block: hex::decode(text(v, "secure_block_hex")).expect("secure_block_hex"),
            frame: hex::decode(text(v, "tcp_frame_hex")).expect("tcp_frame_hex"),
        })
        .collect();
    assert!(!vectors.is_empty(), "vectors file has no vectors");
    Vectors {
        key_line: text(&doc, "client_keys_line"),
        aes_key_ascii: text(&doc, "aes_key_ascii"),
        enc_key_full_ascii: text(&doc, "enc_key_full_ascii"),
        vectors,
    }
}

fn agent(line: &str) -> AgentKey {
    AgentKey::parse_line(line)
        .expect("key line parses")
        .expect("key line is not a removed entry")
}

fn test_key() -> AgentKey {
    agent("001 node-a any a3f5c9e1b7d24f6a8c0e2b4d6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a")
}

fn after_aes_tag(payload: &[u8]) -> &[u8] {
    let at = payload
        .windows(5)
        .position(|w| w == b"#AES:")
        .expect("payload has #AES:");
    &payload[at + 5..]
}

#[test]
#[should_panic(expected = "Wazuh test vectors not found")]
fn missing_vectors_file_fails_loudly() {
    load_from(concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-vectors.json"));
}

// ---------------------------------------------------------------- keys

#[test]
fn keys_derive_wazuh_aes_key() {
    let v = load();
    let k = agent(&v.key_line);
    assert_eq!(k.id(), "001");
    assert_eq!(k.name(), "node-a");
    assert_eq!(k.ip(), "any");
    assert_eq!(k.address(), KeyAddress::Any);
    assert_eq!(k.aes_key().as_bytes(), v.aes_key_ascii.as_bytes());
    assert_eq!(
        k.encryption_key_full().as_bytes(),
        v.enc_key_full_ascii.as_bytes()
    );
}

#[test]
fn keys_debug_redacts_secret() {
    let v = load();
    let k = agent(&v.key_line);
    let secret = v.key_line.rsplit(' ').next().expect("key field");
    for shown in [
        format!("{k:?}"),
        format!("{:?}", k.aes_key()),
        format!("{:?}", k.encryption_key_full()),
        format!("{:?}", SecureCodec::new(&k)),
    ] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains(&v.aes_key_ascii), "{shown}");
    }
    assert!(format!("{k:?}").contains("redacted"));
}

#[test]
fn keys_skip_removed_entries_and_parse_file() {
    let key = "a3f5c9e1b7d24f6a8c0e2b4d6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a";
    let file = format!(
        "# comment\n 002 old any {key}\n003 #gone any {key}\n004 !gone any {key}\n\n\
         005 node_b.x-1 10.0.0.7 {key}\r\n00000006 net 10.0.0.0/24 {key}\n007 host 10.0.0.8/32 {key}\n"
    );
    let keys = AgentKey::parse_file(&file).expect("file parses");
    let ids: Vec<&str> = keys.iter().map(AgentKey::id).collect();
    assert_eq!(ids, ["005", "00000006", "007"]);
    assert!(!keys[0].address().needs_id_prefix());
    assert!(keys[1].address().needs_id_prefix());
    assert!(!keys[2].address().needs_id_prefix());
    assert!(test_key().address().needs_id_prefix());
}

#[test]
fn keys_refuse_bad_lines() {
    let key = "a3f5c9e1b7d24f6a8c0e2b4d6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a";
    let long_name = "n".repeat(129);
    let cases = [
        (format!("01 a any {key}"), "BadId"),
        (format!("123456789 a any {key}"), "BadId"),
        (format!("00a a any {key}"), "BadId"),
        (format!("001 a/b any {key}"), "BadName"),
        (format!("001 {long_name} any {key}"), "BadName"),
        (format!("001 a nowhere {key}"), "BadIp"),
        (format!("001 a 10.0.0.0/33 {key}"), "BadIp"),
        ("001 a any abc".to_owned(), "BadKey"),
        (format!("001 a any {}", "g".repeat(64)), "BadKey"),
        ("001 a any".to_owned(), "FieldCount"),
        (format!("001 a any {key} extra"), "FieldCount"),
    ];
    for (line, want) in cases {
        let err = AgentKey::parse_line(&line).expect_err(&line);
        assert!(format!("{err:?}").starts_with(want), "{line}: {err:?}");
        assert!(!err.to_string().contains(key), "error echoes the key");
    }
    assert!(AgentKey::parse_line(&format!("001 {} any {key}", "n".repeat(128))).is_ok());
    let err = AgentKey::parse_file(&format!("001 a any {key}\n002 b any short\n"))
        .expect_err("bad second line");
    assert!(matches!(err, KeyError::Line { line: 2, .. }), "{err:?}");
}

// ---------------------------------------------------------------- vectors

#[test]
fn vectors_decode_every_frame() {
    let v = load();
    let codec = SecureCodec::new(&agent(&v.key_line));
    for vec in &v.vectors {
        let d = codec.decode_frame(&vec.frame).unwrap_or_else(|e| {
            panic!("{} vector does not decode: {e}", vec.direction);
        });
        assert_eq!(d.message, vec.plaintext, "{}", vec.direction);
        assert_eq!(u16::try_from(d.rand).ok(), Some(VEC_RAND));
        assert_eq!(d.global, u64::from(VEC_GLOBAL));
        assert_eq!(d.local, VEC_LOCAL);
        let want_id = (vec.direction == "agent_to_manager").then(|| "001".to_owned());
        assert_eq!(d.agent_id, want_id, "{}", vec.direction);
    }
    let dirs: Vec<&str> = v.vectors.iter().map(|x| x.direction.as_str()).collect();
    assert!(dirs.contains(&"agent_to_manager") && dirs.contains(&"manager_to_agent"));
}

#[test]
fn vectors_encrypt_exactly() {
    // Wazuh's plaintext (its compressed block) encrypts to exactly its ciphertext.
    let v = load();
    let codec = SecureCodec::new(&agent(&v.key_line));
    for vec in &v.vectors {
        let sealed = codec.seal(&vec.secure_block);
        assert_eq!(
            after_aes_tag(&sealed),
            after_aes_tag(&vec.frame[4..]),
            "{}",
            vec.direction
        );
        let (_, bangs) = open_plain(&vec.secure_block).expect("vector block opens");
        assert!((1..=8).contains(&bangs));
        assert_eq!(vec.secure_block.len() % 8, 0);
    }
}

#[test]
fn vectors_encode_agent_frames() {
    let v = load();
    let codec = SecureCodec::new(&agent(&v.key_line));
    // The vectors' "local counter 0227" is the value written into the block, so the saved
    // counters before that message were (global, 226).
    let mut counters = Counters::new(VEC_GLOBAL, VEC_LOCAL - 1);
    let (global, local) = counters.advance();
    assert_eq!((global, local), (VEC_GLOBAL, VEC_LOCAL));
    let header = BlockHeader {
        rand: VEC_RAND,
        global,
        local,
    };
    // Wazuh's QA encoder compresses with zlib at Python's default level 6 (header 78 9c);
    // miniz_oxide's deflate picks different matches, so the compressed bytes are compared
    // by what they inflate to, and everything around them byte for byte.
    let mut checked = 0;
    for vec in v
        .vectors
        .iter()
        .filter(|x| x.direction == "agent_to_manager")
    {
        let block = build_block(header, &vec.plaintext);
        let (wazuh_inner, _) = open_plain(&vec.secure_block).expect("vector block opens");
        let mut inner = super::keys::md5_hex(&block).to_vec();
        inner.extend_from_slice(&block);
        assert_eq!(
            String::from_utf8_lossy(&inner),
            String::from_utf8_lossy(&wazuh_inner),
            "md5hex(block) || block"
        );
        for level in [6, WAZUH_ZLIB_LEVEL] {
            let plain = build_plain(&block, level).expect("compresses");
            let (ours, bangs) = open_plain(&plain).expect("opens");
            assert_eq!(ours, wazuh_inner, "level {level}");
            assert_eq!(plain.len() % 8, 0);
            assert_eq!(bangs, 8 - (plain.len() - bangs) % 8, "padding rule");
            let frame = codec
                .clone()
                .with_compression_level(level)
                .encode_frame(header, &vec.plaintext)
                .expect("encodes");
            assert_eq!(&frame[4..14], &vec.frame[4..14], "`!001!#AES:` prefix");
            let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
            assert_eq!(len as usize, frame.len() - 4);
            let d = codec.decode_frame(&frame).expect("decodes");
            assert_eq!(d.message, vec.plaintext);
            assert_eq!(d.agent_id.as_deref(), Some("001"));
        }
        // With Wazuh's compressed bytes, the rest of the encoder (padding, AES, prefix,
        // length) reproduces the whole TCP frame exactly.
        let payload = codec.seal(&vec.secure_block);
        let mut frame = u32::try_from(payload.len())
            .expect("small")
            .to_le_bytes()
            .to_vec();
        frame.extend_from_slice(&payload);
        assert_eq!(hex::encode(&frame), hex::encode(&vec.frame), "tcp frame");
        checked += 1;
    }
    assert!(checked > 0, "no agent_to_manager vectors");
}

// ---------------------------------------------------------------- counters and sizes

#[test]
fn counters_roll_over() {
    let mut c = Counters::new(5, 9995);
    assert_eq!(c.advance(), (5, 9996));
    assert_eq!(c.advance(), (5, 9997));
    assert_eq!(c.advance(), (6, 1));
    assert_eq!(c.advance(), (6, 2));
    assert_eq!(Counters::new(0, 0).advance(), (0, 1));
    assert_eq!(Counters::new(7, 12000).advance(), (8, 1));
    assert_eq!(Counters::new(u32::MAX, 9997).advance(), (0, 1));
}

#[test]
fn frame_encoder_advances_counters_and_uses_salt() {
    let codec = SecureCodec::new(&test_key());
    let mut enc = FrameEncoder::new(codec.clone(), Counters::new(9, 9996), Box::new(|| 42));
    let a = codec
        .decode_frame(&enc.next_frame(b"1:x:a").expect("encodes"))
        .expect("decodes");
    assert_eq!((a.rand, a.global, a.local), (42, 9, 9997));
    let b = codec
        .decode_frame(&enc.next_frame(b"1:x:b").expect("encodes"))
        .expect("decodes");
    assert_eq!((b.global, b.local), (10, 1));
    let too_big = vec![b'x'; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        enc.next_frame(&too_big),
        Err(CodecError::EventTooLarge { .. })
    ));
    assert_eq!(
        enc.counters(),
        Counters::new(10, 1),
        "refusal leaves no gap"
    );
    let mut real = FrameEncoder::new(codec.clone(), Counters::new(0, 0), default_rand_source());
    let f = real.next_frame(b"1:x:c").expect("encodes");
    assert_eq!(codec.decode_frame(&f).expect("decodes").message, b"1:x:c");
}

#[test]
fn event_size_limit() {
    assert_eq!(MAX_EVENT_BYTES, 65_536 - 128);
    let codec = SecureCodec::new(&test_key());
    let h = BlockHeader {
        rand: 1,
        global: 2,
        local: 3,
    };
    assert!(check_event_size(&vec![b'a'; MAX_EVENT_BYTES]).is_ok());
    assert!(matches!(
        codec.encode_frame(h, &vec![b'a'; MAX_EVENT_BYTES + 1]),
        Err(CodecError::EventTooLarge { len, max }) if len == MAX_EVENT_BYTES + 1 && max == MAX_EVENT_BYTES
    ));
    // The largest incompressible event still fits the decoder's frame bound.
    let mut x: u32 = 0x1234_5678;
    let noise: Vec<u8> = (0..MAX_EVENT_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let frame = codec.encode_frame(h, &noise).expect("encodes");
    assert!(frame.len() - 4 <= MAX_FRAME_PAYLOAD_BYTES);
    assert_eq!(codec.decode_frame(&frame).expect("decodes").message, noise);
}

// ---------------------------------------------------------------- hostile input

#[test]
fn hostile_length_prefix_is_capped() {
    let codec = SecureCodec::new(&test_key());
    let mut frame = u32::MAX.to_le_bytes().to_vec();
    frame.extend_from_slice(b"#AES:");
    assert!(matches!(
        codec.decode_frame(&frame),
        Err(CodecError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        frame_len(&[1, 2]),
        Err(CodecError::Truncated { need: 4, have: 2 })
    ));
    let over = u32::try_from(MAX_FRAME_PAYLOAD_BYTES + 1).expect("fits");
    assert!(frame_len(&over.to_le_bytes()).is_err());
}

#[test]
fn hostile_truncations_and_flips_give_errors() {
    let v = load();
    let codec = SecureCodec::new(&agent(&v.key_line));
    for vec in &v.vectors {
        for cut in 0..vec.frame.len() {
            assert!(codec.decode_frame(&vec.frame[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = vec.frame.clone();
        longer.push(0);
        assert!(matches!(
            codec.decode_frame(&longer),
            Err(CodecError::TrailingBytes(1))
        ));
        for i in 4..vec.frame.len() {
            for bit in [0x01u8, 0x80] {
                let mut f = vec.frame.clone();
                f[i] ^= bit;
                // A flip in the id prefix's digits may still decode (to the same message);
                // no flip may yield a different accepted message.
                if let Ok(d) = codec.decode_frame(&f) {
                    assert_eq!(d.message, vec.plaintext, "flip at {i} changed the message");
                }
            }
        }
    }
    let other =
        agent("001 node-a any 0000000000000000000000000000000000000000000000000000000000000000");
    let wrong = SecureCodec::new(&other);
    for vec in &v.vectors {
        assert!(wrong.decode_frame(&vec.frame).is_err());
    }
}

#[test]
fn hostile_plaintexts_give_typed_errors() {
    let codec = SecureCodec::new(&test_key());
    let seal = |plain: &[u8]| {
        let mut f = Vec::new();
        let p = codec.seal(plain);
        f.extend_from_slice(&u32::try_from(p.len()).expect("small").to_le_bytes());
        f.extend_from_slice(&p);
        f
    };
    let h = BlockHeader {
        rand: 1,
        global: 2,
        local: 3,
    };
    let good = build_plain(&build_block(h, b"1:x:y"), 9).expect("compresses");
    let bangs = good.iter().take_while(|&&b| b == b'!').count();
    assert!(matches!(
        codec.decode_frame(&seal(&good[bangs..])),
        Err(CodecError::MissingBang)
    ));
    let mut bad_zlib = good.clone();
    bad_zlib.truncate(bad_zlib.len() - 3);
    assert!(matches!(
        codec.decode_frame(&seal(&bad_zlib)),
        Err(CodecError::Inflate(_))
    ));
    assert!(matches!(
        codec.decode_frame(&seal(b"!!!!!!!!not zlib")),
        Err(CodecError::Inflate(_))
    ));
    // A well-formed stream with a wrong checksum.
    let mut block = build_block(h, b"1:x:y");
    let mut inner = super::keys::md5_hex(b"something else").to_vec();
    inner.append(&mut block);
    let z = zlib(&inner);
    let mut plain = b"!".to_vec();
    plain.extend_from_slice(&z);
    assert!(matches!(
        codec.decode_frame(&seal(&plain)),
        Err(CodecError::DigestMismatch)
    ));
    // Too short for checksum and header.
    let mut plain = b"!".to_vec();
    plain.extend_from_slice(&zlib(b"abc"));
    assert!(matches!(
        codec.decode_frame(&seal(&plain)),
        Err(CodecError::TooShort(3))
    ));
    // Correct checksum over a malformed header.
    let block = b"5555x1234567891:0227:msg".to_vec();
    let mut inner = super::keys::md5_hex(&block).to_vec();
    inner.extend_from_slice(&block);
    let mut plain = b"!".to_vec();
    plain.extend_from_slice(&zlib(&inner));
    assert!(matches!(
        codec.decode_frame(&seal(&plain)),
        Err(CodecError::BadHeader)
    ));
    // A zlib bomb stops at the bound.
    let mut plain = b"!".to_vec();
    plain.extend_from_slice(&zlib(&vec![b'a'; 4 * OS_MAXSTR]));
    assert!(matches!(
        codec.decode_frame(&seal(&plain)),
        Err(CodecError::InflatedTooLarge(_))
    ));
    // Payload-level damage.
    for (payload, what) in [
        (&b"#AES"[..], "MissingAesTag"),
        (&b"!001#AES:0123456789abcdef"[..], "BadIdPrefix"),
        (&b"!0a1!#AES:0123456789abcdef"[..], "BadIdPrefix"),
        (&b"!001!#AES:"[..], "CiphertextLength"),
        (&b"#AES:0123456789abcde"[..], "CiphertextLength"),
        (&b"#AES:0123456789abcdef"[..], "BadPadding"),
    ] {
        let err = codec.decode_payload(payload).expect_err(what);
        assert!(format!("{err:?}").starts_with(what), "{what}: {err:?}");
    }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(9));
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(
        message in proptest::collection::vec(any::<u8>(), 0..3000),
        rand in any::<u16>(),
        global in any::<u32>(),
        local in 0u32..=9999,
        level in 0u32..=9,
        any_ip in any::<bool>(),
    ) {
        let key = if any_ip {
            test_key()
        } else {
            agent("12345678 h 192.168.1.1 a3f5c9e1b7d24f6a8c0e2b4d6f8a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a")
        };
        let codec = SecureCodec::new(&key).with_compression_level(level);
        let header = BlockHeader { rand, global, local };
        let frame = codec.encode_frame(header, &message).expect("encodes");
        let d = codec.decode_frame(&frame).expect("decodes");
        prop_assert_eq!(&d.message, &message);
        prop_assert_eq!((d.rand, d.global, d.local), (u32::from(rand), u64::from(global), local));
        prop_assert_eq!(d.agent_id.is_some(), any_ip);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let codec = SecureCodec::new(&test_key());
        let _ = codec.decode_frame(&bytes);
        let _ = codec.decode_payload(&bytes);
        let _ = open_plain(&bytes);
        let _ = frame_len(&bytes);
    }

    #[test]
    fn random_ciphertext_never_panics(
        blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..40),
        prefix in any::<bool>(),
    ) {
        let codec = SecureCodec::new(&test_key());
        let mut payload = if prefix { b"!001!#AES:".to_vec() } else { b"#AES:".to_vec() };
        for b in &blocks {
            payload.extend_from_slice(b);
        }
        prop_assert!(codec.decode_payload(&payload).is_err());
    }

    #[test]
    fn random_plaintext_behind_valid_encryption_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        bangs in 0usize..10,
    ) {
        let codec = SecureCodec::new(&test_key());
        let mut plain = vec![b'!'; bangs];
        plain.extend_from_slice(&body);
        let _ = codec.decode_payload(&codec.seal(&plain));
    }

    #[test]
    fn key_lines_never_panic(line in "\\PC{0,200}") {
        let _ = AgentKey::parse_line(&line);
        let _ = AgentKey::parse_file(&line);
    }
}
