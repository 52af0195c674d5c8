//! Container log files on arbitrary bytes: each line through the CRI and the Docker
//! json-file parsers, then the lines of the file's format (told by its first line, as the
//! source and `scan` do) through the reassembler with a small cap, and every message made
//! into an event.
//!
//! Invariants, besides never panicking:
//! - a parsed CRI line is a prefix of its time and a suffix of its content, and a json-file
//!   line written back as JSON parses to the same line;
//! - the reassembler gives what a plain model of it gives: per stream, the parts from the
//!   first partial line to the final one, joined, cut at the cap; a message never exceeds the
//!   cap, and is marked cut exactly when something was dropped;
//! - a normalized time is `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` and normalizes to itself.

#![no_main]

use std::borrow::Cow;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vigil_core::logs::{
    LogContext, LogFormat, LogLine, LogPath, Message, Reassembler, Stream, is_restart_log_name,
    message_event, normalize_time, parse_cri, parse_docker_json,
};
use vigil_core::outputs::encode_json_line;

const INGEST_TIME: &str = "2024-05-02T10:15:31.000000000Z";

/// A line of exactly this text stands for the file being truncated: the source then forgets
/// unfinished messages.
const TRUNCATE: &[u8] = b"~~truncate~~";

fuzz_target!(|data: &[u8]| {
    // The first byte sets the cap (1 to 64 bytes), so that messages cross it all the time.
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let max = 1 + usize::from(first % 64);
    let mut lines = data.split(|&b| b == b'\n');
    let Some(head) = lines.next() else {
        return;
    };

    // The first line doubles as a path, for the path parser.
    if let Ok(path) = std::str::from_utf8(head) {
        if let Some(p) = LogPath::parse(Path::new(path)) {
            let _ = p.container();
        }
        if let Some(name) = Path::new(path).file_name().and_then(|n| n.to_str()) {
            let _ = is_restart_log_name(name);
        }
    }

    let format = LogFormat::detect(head).unwrap_or(LogFormat::Cri);
    let ctx = LogContext {
        cluster: Some("fuzz".into()),
        node: Some("node".into()),
        container: None,
        file: "/var/log/pods/ns_pod_uid/c/0.log".into(),
        origin: "fuzz".into(),
    };
    let mut reassembler = Reassembler::new(max);
    let mut model = Model::default();
    let mut offset = 0u64;
    for line in std::iter::once(head).chain(lines) {
        let start = offset;
        offset += line.len() as u64 + 1;
        if line == TRUNCATE {
            reassembler.reset();
            model.reset();
            continue;
        }
        check_cri(line);
        check_docker_json(line);
        let this = LogFormat::detect(line).unwrap_or(format);
        let Ok(parsed) = this.parse(line) else {
            continue;
        };
        let expected = model.push(&parsed, start);
        let got = reassembler.push(&parsed, start);
        check_message(got.as_ref(), expected.as_ref(), max);
        if let Some(msg) = got {
            check_event(&msg, &ctx);
        }
        assert_eq!(reassembler.pending_offset(), model.pending_offset());
        assert_eq!(reassembler.is_pending(), model.pending_offset().is_some());
    }
    for stream in [Stream::Stdout, Stream::Stderr] {
        let expected = model.finish(stream);
        let got = reassembler.finish(stream);
        check_message(got.as_ref(), expected.as_ref(), max);
        if let Some(msg) = got {
            check_event(&msg, &ctx);
        }
    }
    assert!(!reassembler.is_pending());
});

fn check_cri(line: &[u8]) {
    let Ok(l) = parse_cri(line) else {
        return;
    };
    assert!(line.starts_with(l.time.as_bytes()));
    assert!(line.ends_with(&l.content));
    assert!(matches!(l.time, Cow::Borrowed(_)) && matches!(l.content, Cow::Borrowed(_)));
}

fn check_docker_json(line: &[u8]) {
    let Ok(l) = parse_docker_json(line) else {
        return;
    };
    // The content came from a JSON string, so it is UTF-8.
    let content = std::str::from_utf8(&l.content).expect("json-file content is UTF-8");
    let log = if l.partial {
        content.to_owned()
    } else {
        format!("{content}\n")
    };
    let again = serde_json::json!({"log": log, "stream": l.stream.as_str(), "time": l.time});
    let again = serde_json::to_vec(&again).expect("serializes");
    let reparsed = parse_docker_json(&again).expect("a json-file line written back parses");
    assert_eq!(reparsed, l);
}

fn check_message(got: Option<&Message<'_>>, expected: Option<&Expected>, max: usize) {
    match (got, expected) {
        (None, None) => {}
        (Some(m), Some(e)) => {
            assert!(m.text.len() <= max, "{} > cap {max}", m.text.len());
            assert_eq!(m.text, &e.text[..e.text.len().min(max)]);
            assert_eq!(m.original_len, e.text.len() as u64);
            assert_eq!(m.cut, e.unfinished || e.text.len() > max);
            assert_eq!(m.time, e.time);
            assert_eq!(m.stream, e.stream);
            assert_eq!(m.offset, e.offset);
        }
        (got, expected) => panic!("reassembler gave {got:?}, the model {expected:?}"),
    }
}

fn check_event(msg: &Message<'_>, ctx: &LogContext) {
    let Ok(event) = message_event(msg, ctx, INGEST_TIME) else {
        assert!(normalize_time(msg.time).is_err());
        return;
    };
    check_time(msg.time, &event.time);
    let log = event.log.as_ref().expect("a log event has `log`");
    assert_eq!(log.partial, msg.cut);
    let mut line = Vec::new();
    encode_json_line(&event, &mut line).expect("an event serializes");
    serde_json::from_slice::<serde_json::Value>(&line).expect("an event's line is JSON");
}

fn check_time(written: &str, normalized: &str) {
    let b = normalized.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    let shape = b.len() == 30
        && digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[20..29].iter().all(u8::is_ascii_digit)
        && [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (29, b'Z'),
        ]
        .iter()
        .all(|&(i, c)| b[i] == c);
    assert!(shape, "{written:?} normalized to {normalized:?}");
    assert_eq!(
        normalize_time(normalized).as_deref(),
        Ok(normalized),
        "{written:?} normalized to {normalized:?}, which does not normalize to itself"
    );
}

/// What a message should be.
#[derive(Debug)]
struct Expected {
    time: String,
    stream: Stream,
    text: Vec<u8>,
    unfinished: bool,
    offset: u64,
}

/// The reassembler's contract, without its cap on memory: keep every part, cut at the end.
#[derive(Default)]
struct Model {
    pending: [Option<Expected>; 2],
}

impl Model {
    fn slot(stream: Stream) -> usize {
        match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    fn push(&mut self, line: &LogLine<'_>, offset: u64) -> Option<Expected> {
        let slot = &mut self.pending[Self::slot(line.stream)];
        let msg = slot.get_or_insert_with(|| Expected {
            time: line.time.to_string(),
            stream: line.stream,
            text: Vec::new(),
            unfinished: false,
            offset,
        });
        msg.text.extend_from_slice(&line.content);
        if line.partial {
            return None;
        }
        slot.take()
    }

    fn finish(&mut self, stream: Stream) -> Option<Expected> {
        let mut msg = self.pending[Self::slot(stream)].take()?;
        msg.unfinished = true;
        Some(msg)
    }

    fn pending_offset(&self) -> Option<u64> {
        self.pending.iter().flatten().map(|m| m.offset).min()
    }

    fn reset(&mut self) {
        self.pending = [None, None];
    }
}
