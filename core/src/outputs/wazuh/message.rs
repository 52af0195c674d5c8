//! Events as Wazuh event messages: `1:<location>:<JSON>`.
//!
//! Docker events go out exactly as Wazuh's docker-listener sends them,
//! `{"integration":"docker","docker":<engine event as received>}`, so the stock rules
//! 87900–87958 fire unchanged, plus a `vigil` object with the normalized event. Every other
//! event is `{"integration":"vigil","vigil":<normalized event>}` on a location of its own.
//! `vigil.alert` summarizes the highest detection in flat fields the manager's rules can
//! match (the bundled `vigil_rules.xml` does).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::codec::MAX_EVENT_BYTES;
use crate::event::{Event, Raw, Source};
use crate::outputs::remote::{EncodeError, Encoded, MessageEncoder};
use crate::outputs::trim;

/// The location docker-listener uses; the stock docker rules do not depend on it, but
/// dashboards and `<location>` filters of existing installations do.
pub const DOCKER_LOCATION: &str = "Wazuh-Docker";

/// Wazuh's log-collector queue, the one JSON events go to.
const LOCALFILE_QUEUE: u8 = b'1';

/// Locations of the non-Docker events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Locations {
    /// Kubernetes audit events.
    #[serde(default = "default_audit_location")]
    pub audit: String,
    /// Container log lines.
    #[serde(default = "default_log_location")]
    pub container_log: String,
    /// Everything else (containerd, processes, files, metrics, posture).
    #[serde(default = "default_other_location")]
    pub other: String,
}

impl Default for Locations {
    fn default() -> Self {
        Locations {
            audit: default_audit_location(),
            container_log: default_log_location(),
            other: default_other_location(),
        }
    }
}

fn default_audit_location() -> String {
    "vigil-k8s-audit".into()
}
fn default_log_location() -> String {
    "vigil-container-log".into()
}
fn default_other_location() -> String {
    "vigil".into()
}

/// Encodes events as Wazuh event messages.
#[derive(Debug, Clone, Default)]
pub struct WazuhEncoder {
    /// Where each kind of event goes.
    pub locations: Locations,
}

/// Appends `location` with Wazuh's escaping (`|` → `||`, `:` → `|:`).
fn push_location(out: &mut Vec<u8>, location: &str) {
    for b in location.bytes() {
        match b {
            b'|' => out.extend_from_slice(b"||"),
            b':' => out.extend_from_slice(b"|:"),
            _ => out.push(b),
        }
    }
}

/// The flat summary of the highest detection (ties: the first).
fn alert(event: &Event) -> Option<Value> {
    let top = event
        .detections
        .iter()
        .reduce(|best, d| if d.level > best.level { d } else { best })?;
    let rules: Vec<&str> = event.detections.iter().map(|d| d.rule.as_str()).collect();
    Some(json!({
        "rule": top.rule,
        "title": top.title,
        "level": top.level,
        "severity": top.severity,
        "mitre": top.mitre,
        "rules": rules,
        "count": event.detections.len(),
    }))
}

impl WazuhEncoder {
    fn location(&self, event: &Event) -> &str {
        match event.source {
            Source::Docker => DOCKER_LOCATION,
            Source::K8sAudit => &self.locations.audit,
            Source::ContainerLog => &self.locations.container_log,
            _ => &self.locations.other,
        }
    }
}

/// The normalized event with `alert`, the flat summary of its highest detection that the
/// manager's rules match on: the `vigil` object of the messages, also what the syslog
/// output's `format: wazuh` sends.
pub fn vigil_value(event: &Event) -> Result<Value, EncodeError> {
    let mut vigil = serde_json::to_value(event)?;
    if let (Value::Object(obj), Some(a)) = (&mut vigil, alert(event)) {
        obj.insert("alert".into(), a);
    }
    Ok(vigil)
}

/// Writes the JSON document; `docker` is the engine event to send in docker-listener's
/// shape. Written by hand so `integration` comes first, as in docker-listener's messages, and
/// the engine's event keeps its bytes and key order.
fn write_document(
    out: &mut Vec<u8>,
    docker: Option<&Raw>,
    vigil: &Value,
) -> Result<(), EncodeError> {
    match docker {
        Some(raw) => {
            out.extend_from_slice(br#"{"integration":"docker","docker":"#);
            match raw {
                // Checked to be one JSON document when it was read.
                Raw::Verbatim(bytes) => out.extend_from_slice(bytes),
                Raw::Value(v) => serde_json::to_writer(&mut *out, v)?,
            }
        }
        None => out.extend_from_slice(br#"{"integration":"vigil""#),
    }
    out.extend_from_slice(br#","vigil":"#);
    serde_json::to_writer(&mut *out, vigil)?;
    out.push(b'}');
    Ok(())
}

/// Appends `head` and the document of `event` to `out`, trimmed (see [`trim::fit`]) so
/// that what it appends stays within `max` bytes.
fn encode_document(
    event: &Event,
    max: usize,
    head: impl Fn(&mut Vec<u8>),
    out: &mut Vec<u8>,
) -> Result<Encoded, EncodeError> {
    let docker = match (&event.source, &event.raw) {
        (Source::Docker, Some(raw)) => Some(raw),
        _ => None,
    };
    let mut vigil = vigil_value(event)?;
    if docker.is_some()
        && let Value::Object(obj) = &mut vigil
    {
        // The engine event travels beside it, once.
        obj.remove("raw");
    }
    let whole = |docker: Option<&Raw>, v: &Value| -> Result<Vec<u8>, EncodeError> {
        let mut msg = Vec::with_capacity(1024);
        head(&mut msg);
        write_document(&mut msg, docker, v)?;
        Ok(msg)
    };
    let msg = whole(docker, &vigil)?;
    if msg.len() <= max {
        out.extend_from_slice(&msg);
        return Ok(Encoded::Whole);
    }
    // Too large: the engine's record goes first, as `raw` does for other events (it can
    // be up to the Docker parser's 1 MiB, which no cut of the vigil part would make fit).
    let marker = docker.map(|raw| {
        let original_bytes = match raw {
            Raw::Verbatim(bytes) => bytes.len(),
            Raw::Value(v) => serde_json::to_vec(v).map_or(0, |b| b.len()),
        };
        Raw::Value(
            serde_json::json!({ trim::RAW_TRIMMED_KEY: true, "original_bytes": original_bytes }),
        )
    });
    let trimmed = trim::fit(vigil, msg.len(), max, |v| whole(marker.as_ref(), v))?;
    out.extend_from_slice(&trimmed);
    Ok(Encoded::Trimmed)
}

impl MessageEncoder for WazuhEncoder {
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<Encoded, EncodeError> {
        let head = |out: &mut Vec<u8>| {
            out.push(LOCALFILE_QUEUE);
            out.push(b':');
            push_location(out, self.location(event));
            out.push(b':');
        };
        encode_document(event, MAX_EVENT_BYTES, head, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detection, Log, Severity};

    fn encode(event: &Event) -> String {
        let mut out = Vec::new();
        WazuhEncoder::default().encode(event, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn detection(rule: &str, level: u8) -> Detection {
        Detection {
            rule: rule.into(),
            id: None,
            title: format!("title of {rule}"),
            level,
            severity: Severity::High,
            mitre: vec!["T1611".into()],
            tags: vec![],
        }
    }

    #[test]
    fn a_docker_event_keeps_docker_listeners_shape_and_action() {
        let engine = br#"{"status":"exec_start: bash -i","id":"abc","Type":"container","Action":"exec_start: bash -i","Actor":{"ID":"abc","Attributes":{"name":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000000000000}"#;
        let event = Event {
            source: Source::Docker,
            action: "exec".into(),
            raw: Some(Raw::Verbatim(engine.to_vec().into_boxed_slice())),
            detections: vec![
                detection("container.shell", 8),
                detection("container.exec", 5),
            ],
            ..Event::default()
        };
        let msg = encode(&event);
        let json = msg.strip_prefix("1:Wazuh-Docker:").expect(&msg);
        assert!(
            json.starts_with(r#"{"integration":"docker","docker":{"#),
            "{json}"
        );
        let doc: Value = serde_json::from_str(json).unwrap();
        assert!(
            json.contains(std::str::from_utf8(engine).unwrap()),
            "the engine event travels byte for byte"
        );
        assert_eq!(doc["docker"]["Action"], "exec_start: bash -i");
        assert!(
            doc["vigil"].get("raw").is_none(),
            "the engine event is sent once"
        );
        assert_eq!(doc["vigil"]["alert"]["rule"], "container.shell");
        assert_eq!(doc["vigil"]["alert"]["level"], 8);
        assert_eq!(
            doc["vigil"]["alert"]["rules"],
            json!(["container.shell", "container.exec"])
        );
    }

    #[test]
    fn an_oversized_docker_event_sends_a_marker_for_the_engine_record_and_keeps_its_alert() {
        // A container with a huge label: its engine record alone is over the limit.
        let label = "l".repeat(MAX_EVENT_BYTES * 2);
        let engine = json!({"Type": "container", "Action": "start",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "big": label}}});
        let engine = serde_json::to_vec(&engine).unwrap();
        let event = Event {
            source: Source::Docker,
            action: "start".into(),
            raw: Some(Raw::Verbatim(engine.clone().into_boxed_slice())),
            detections: vec![detection("container.privileged", 12)],
            ..Event::default()
        };
        let msg = encode(&event);
        assert!(msg.len() <= MAX_EVENT_BYTES, "{} bytes", msg.len());
        let json = msg.strip_prefix("1:Wazuh-Docker:").expect(&msg);
        let doc: Value = serde_json::from_str(json).unwrap();
        assert_eq!(doc["integration"], "docker");
        assert_eq!(doc["docker"]["vigil.trimmed"], true);
        assert_eq!(doc["docker"]["original_bytes"], engine.len());
        assert_eq!(doc["vigil"]["alert"]["rule"], "container.privileged");
        assert_eq!(doc["vigil"]["action"], "start");
    }

    #[test]
    fn audit_events_go_to_their_location_with_escaping() {
        let event = Event::default();
        let enc = WazuhEncoder {
            locations: Locations {
                audit: "k8s:audit|prod".into(),
                ..Locations::default()
            },
        };
        let mut out = Vec::new();
        enc.encode(&event, &mut out).unwrap();
        let msg = String::from_utf8(out).unwrap();
        assert!(
            msg.starts_with(r#"1:k8s|:audit||prod:{"integration":"vigil","vigil":{"#),
            "{msg}"
        );
        assert!(!msg.contains("\"alert\""), "no detection, no alert");
    }

    #[test]
    fn oversized_events_are_trimmed_with_a_marker_and_never_exceed_the_limit() {
        let big = "x".repeat(MAX_EVENT_BYTES * 2);
        let event = Event {
            raw: Some(Raw::Value(json!({"requestObject": big}))),
            ..Event::default()
        };
        let msg = encode(&event);
        assert!(msg.len() <= MAX_EVENT_BYTES);
        let json = msg.strip_prefix("1:vigil-k8s-audit:").unwrap();
        let doc: Value = serde_json::from_str(json).unwrap();
        assert_eq!(doc["vigil"]["raw"]["vigil.trimmed"], true);

        let event = Event {
            source: Source::ContainerLog,
            log: Some(Log {
                message: Some("é".repeat(MAX_EVENT_BYTES)),
                ..Log::default()
            }),
            ..Event::default()
        };
        let msg = encode(&event);
        assert!(msg.starts_with("1:vigil-container-log:"));
        assert!(msg.len() <= MAX_EVENT_BYTES);
        assert!(msg.contains(r#""partial":true"#));
    }
}
