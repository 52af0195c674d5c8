//! The audit-log reader on arbitrary bytes, the way `vigil-agent scan` reads a file: line by
//! line (every envelope: plain events, `EventList`, EKS, AKS, GKE, S3 export lines), Docker
//! engine events told apart record by record, and a first record that does not end on its
//! line read as a stream of JSON documents. The built-in rules run on every event, and every
//! event goes through the outputs' encoders.
//!
//! Invariants, besides never panicking:
//! - a line the fast path takes gives what the DOM path gives for the same event: the same
//!   raw document, raw fields, detections and normalized event (the fast path is only an
//!   optimization, and a difference is a rule that fires on one path and not the other, or a
//!   Secret that escapes redaction);
//! - every event encodes as exactly one line of valid JSON;
//! - a Wazuh message never exceeds the manager's limit, and an event trimmed to any budget
//!   stays within it and is still a `vigil.event/v1` event.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rsigma_eval::event::Event as _;
use serde_json::Value;
use vigil_core::audit::{
    AuditConfig, AuditError, AuditParser, AuditRecord, DEFAULT_MAX_OBJECT_BYTES, Position,
    StageFilter,
};
use vigil_core::detect::{DetectConfig, RawSource, RuleSet, RuleView};
use vigil_core::event::Event;
use vigil_core::outputs::encode_json_line;
use vigil_core::outputs::remote::MessageEncoder;
use vigil_core::outputs::trim;
use vigil_core::outputs::wazuh::{MAX_EVENT_BYTES, WazuhEncoder};
use vigil_core::runtime::docker::looks_like_docker_event;
use vigil_core::runtime::{DockerError, DockerParser};

/// Compiled once per process: compiling the rules costs far more than one input.
static RULES: LazyLock<RuleSet> =
    LazyLock::new(|| RuleSet::builtin().expect("the built-in rules load"));

const INGEST_TIME: &str = "2024-05-02T10:15:31.000000000Z";

/// The prefix of a CloudWatch export to S3. It sends a line to the DOM path without changing
/// the event in it, which is what the differential check needs.
const S3_PREFIX: &[u8] = b"2024-05-02T10:15:30.123Z ";

/// The raw fields a fast-path record answers without its DOM.
const KNOWN_RAW_FIELDS: [&str; 19] = [
    "verb",
    "stage",
    "auditID",
    "level",
    "responseStatus.code",
    "requestURI",
    "userAgent",
    "user.username",
    "user.uid",
    "user.groups",
    "sourceIPs",
    "impersonatedUser.username",
    "objectRef.resource",
    "objectRef.subresource",
    "objectRef.apiVersion",
    "objectRef.uid",
    "objectRef.namespace",
    "objectRef.name",
    "objectRef.apiGroup",
];

fuzz_target!(|data: &[u8]| {
    // One input in four runs with a small object cap, so that the trimming of
    // `requestObject`/`responseObject` is reached by inputs of a few hundred bytes; the
    // length decides, so the bytes the parser sees are the input's own.
    let max_object_bytes = if data.len() % 4 == 0 {
        256
    } else {
        DEFAULT_MAX_OBJECT_BYTES
    };
    let parser = AuditParser::new(AuditConfig {
        cluster: Some("fuzz".into()),
        node: None,
        max_object_bytes,
    });
    let docker = DockerParser {
        cluster: Some("fuzz".into()),
        ..DockerParser::default()
    };
    let mut scan = Scan {
        parser: &parser,
        docker: &docker,
        stages: StageFilter::new(),
        records: Vec::new(),
    };
    scan.input(data);
});

struct Scan<'a> {
    parser: &'a AuditParser,
    docker: &'a DockerParser,
    stages: StageFilter,
    records: Vec<AuditRecord>,
}

impl Scan<'_> {
    fn input(&mut self, data: &[u8]) {
        let mut offset = 0u64;
        for (line_no, line) in data.split(|&b| b == b'\n').enumerate() {
            let start = offset;
            offset += line.len() as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if self.docker_record(line) {
                continue;
            }
            match self.audit_record(line, start) {
                // A first line that is the start of a longer document: the rest of the input
                // is read as a stream of documents, as `scan` does.
                Err(AuditError::Json(e)) if e.is_eof() && line_no == 0 => {
                    self.documents(data);
                    return;
                }
                _ => {}
            }
        }
    }

    fn documents(&mut self, data: &[u8]) {
        let stream =
            serde_json::Deserializer::from_slice(data).into_iter::<&serde_json::value::RawValue>();
        for item in stream {
            let Ok(raw) = item else {
                // A stream cannot resynchronize after a syntax error.
                return;
            };
            let bytes = raw.get().as_bytes();
            let start = bytes.as_ptr() as usize - data.as_ptr() as usize;
            if !self.docker_record(bytes) {
                let _ = self.audit_record(bytes, start as u64);
            }
        }
    }

    /// A Docker engine event, if the record is one (then it is fully handled here).
    fn docker_record(&mut self, record: &[u8]) -> bool {
        if !looks_like_docker_event(record) {
            return false;
        }
        match self.docker.parse(record, INGEST_TIME) {
            Ok(d) => {
                let mut event = d.event;
                event.detections = RULES.detect(&event, None);
                check_outputs(&event);
                true
            }
            Err(DockerError::NotDocker(_)) => false,
            Err(_) => true,
        }
    }

    fn audit_record(&mut self, line: &[u8], start: u64) -> Result<(), AuditError> {
        self.records.clear();
        let pos = Position {
            origin: "fuzz",
            offset: start,
        };
        let outcome = self
            .parser
            .parse_line(line, pos, INGEST_TIME, &mut self.records)?;
        assert!(outcome.events >= 1, "a line accepted with no event");
        assert_eq!(outcome.events, self.records.len());
        for record in self.records.drain(..) {
            if is_fast(&record) {
                same_as_dom_path(self.parser, line, pos, &record);
            }
            let detections = RULES.detect_audit(&record, &mut self.stages);
            let mut event = record.into_event();
            event.detections = detections;
            check_outputs(&event);
        }
        Ok(())
    }
}

/// A record of the fast path answers raw fields without its DOM; one of the DOM path never
/// does.
fn is_fast(record: &AuditRecord) -> bool {
    record.known_field("verb").is_some()
}

fn same_as_dom_path(parser: &AuditParser, line: &[u8], pos: Position<'_>, fast: &AuditRecord) {
    let body = line.trim_ascii();
    // The prefix makes the line longer; where that alone would decide whether objects are
    // trimmed, the two paths legitimately differ.
    if body.len() + S3_PREFIX.len() > parser.config().max_object_bytes {
        return;
    }
    let mut prefixed = S3_PREFIX.to_vec();
    prefixed.extend_from_slice(body);
    let mut out = Vec::new();
    let outcome = parser.parse_line(&prefixed, pos, INGEST_TIME, &mut out);
    let shown = String::from_utf8_lossy(body);
    assert!(
        outcome.is_ok(),
        "the fast path took a line the DOM path refuses ({outcome:?}): {shown}"
    );
    assert_eq!(out.len(), 1, "{shown}");
    let dom = &out[0];
    assert!(!is_fast(dom));
    assert_eq!(fast.stage(), dom.stage(), "{shown}");
    assert_eq!(fast.audit_id(), dom.audit_id(), "{shown}");
    assert_eq!(fast.audit(), dom.audit(), "raw documents differ: {shown}");
    let config = DetectConfig::default();
    let fv = RuleView::new(&fast.event, Some(fast as &dyn RawSource), &config);
    let dv = RuleView::new(&dom.event, Some(dom as &dyn RawSource), &config);
    for path in KNOWN_RAW_FIELDS {
        assert_eq!(fv.get_field(path), dv.get_field(path), "{path} of {shown}");
    }
    let fd = RULES.detect_audit(fast, &mut StageFilter::new());
    let dd = RULES.detect_audit(dom, &mut StageFilter::new());
    assert_eq!(fd, dd, "detections differ: {shown}");
    let without_raw = |e: &Event| {
        let mut v = serde_json::to_value(e).expect("an event serializes");
        if let Value::Object(o) = &mut v {
            o.remove("raw");
        }
        v
    };
    assert_eq!(
        without_raw(&fast.event),
        without_raw(&dom.event),
        "events differ: {shown}"
    );
}

fn check_outputs(event: &Event) {
    let mut line = Vec::new();
    encode_json_line(event, &mut line).expect("an event serializes");
    assert_eq!(line.last(), Some(&b'\n'));
    assert_eq!(
        line.iter().filter(|&&b| b == b'\n').count(),
        1,
        "an event's JSON line contains a newline"
    );
    let value: Value = serde_json::from_slice(&line).expect("an event's JSON line is valid JSON");

    let mut message = Vec::new();
    if WazuhEncoder::default().encode(event, &mut message).is_ok() {
        assert!(
            message.len() <= MAX_EVENT_BYTES,
            "a Wazuh message of {} bytes",
            message.len()
        );
    }

    // Cut to about half its size, so that every input exercises the trimming.
    let full = line.len() - 1;
    let budget = (full / 2).max(64);
    if let Ok(trimmed) = trim::fit(value, full, budget, |v| {
        serde_json::to_vec(v).map_err(Into::into)
    }) {
        assert!(trimmed.len() <= budget, "{} > {budget}", trimmed.len());
        if let Err(e) = serde_json::from_slice::<Event>(&trimmed) {
            panic!(
                "a trimmed event is not a vigil.event/v1 event ({e}): {}",
                String::from_utf8_lossy(&trimmed)
            );
        }
    }
}
