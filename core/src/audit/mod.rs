//! Kubernetes audit events: from any supported envelope to normalized [`Event`]s.
//!
//! Accepted inputs, one JSON document per line (or per request body for the webhook):
//!
//! - an `audit.k8s.io/v1` or `v1beta1` `Event`, or one without `apiVersion`/`kind` (some log
//!   shippers strip them);
//! - an `EventList` (what kube-apiserver's webhook backend posts);
//! - EKS audit logs as exported from CloudWatch Logs: a subscription `DATA_MESSAGE`, the
//!   output of `aws logs filter-log-events` (`{"events":[...]}`), a single log event
//!   (`{"message":"<json>"}`), and S3 export lines (`<RFC 3339 time> <json>`);
//! - AKS diagnostic records of category `kube-audit`/`kube-audit-admin`, with
//!   `properties.log` as an object or as a JSON string, alone or in `{"records":[...]}`;
//! - GKE Cloud Logging entries whose `protoPayload` is a `google.cloud.audit.AuditLog`.
//!
//! Parsing builds a JSON DOM once; normalization, redaction and the detection rules all read
//! that one DOM, and the verbatim line is kept as `raw` when nothing had to be redacted.

mod command;
mod envelope;
mod fast;
mod gke;
mod normalize;
mod redact;
mod stages;
pub mod synth;
mod workload;

use std::borrow::Cow;
use std::sync::OnceLock;

use rsigma_eval::event::EventValue;

use serde_json::Value;

use crate::event::{Event, Raw};

pub use command::decode_command;
pub use redact::{REDACTED, TRIMMED_MARKER};
pub use stages::{MAX_OPEN_REQUESTS, StageFilter};
pub use workload::workload_from_object;

/// Default cap on the serialized size of an audit event's `requestObject` or
/// `responseObject` kept in `raw`; a larger object is replaced by a marker. Two objects at
/// 32 KiB plus the metadata stay near the Wazuh manager's 65,536-byte message limit, which
/// the Wazuh output enforces exactly.
pub const DEFAULT_MAX_OBJECT_BYTES: usize = 32 * 1024;

/// Why an input line or item could not be turned into an audit event.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The bytes are not JSON (or not UTF-8, or nested too deeply).
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Valid JSON, but no envelope or audit event this parser knows.
    #[error("not a Kubernetes audit event: {0}")]
    NotAudit(&'static str),
    /// An audit event with a field of the wrong type.
    #[error("malformed audit event: field `{field}` should be {expected}")]
    Shape {
        /// The offending field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// An `apiVersion` other than `audit.k8s.io/v1` or `v1beta1`.
    #[error("unsupported audit apiVersion `{0}`")]
    ApiVersion(String),
}

impl AuditError {
    /// A short stable label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditError::Json(_) => "invalid_json",
            AuditError::NotAudit(_) => "not_audit",
            AuditError::Shape { .. } => "wrong_shape",
            AuditError::ApiVersion(_) => "unsupported_version",
        }
    }
}

/// Settings of the audit normalizer.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The cluster name stamped on events, unless an envelope names it.
    pub cluster: Option<String>,
    /// The node name stamped on events.
    pub node: Option<String>,
    /// Cap on the serialized size of `requestObject`/`responseObject` kept in `raw`.
    pub max_object_bytes: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            cluster: None,
            node: None,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

/// Where a line came from, for event ids.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// A stable name of the origin: a file fingerprint, a path, an endpoint.
    pub origin: &'a str,
    /// The record's position in it (a byte offset, a sequence number).
    pub offset: u64,
}

fn s(v: &Option<String>) -> Option<EventValue<'_>> {
    v.as_deref().map(|v| EventValue::Str(Cow::Borrowed(v)))
}

fn list(v: &[String]) -> EventValue<'_> {
    EventValue::Array(
        v.iter()
            .map(|x| EventValue::Str(Cow::Borrowed(x.as_str())))
            .collect(),
    )
}

/// One audit event parsed and normalized, ready for detection.
///
/// The original audit event is kept beside the normalized one for rules that read raw
/// fields (SigmaHQ's): as the DOM the parser built, or, for a plain line read by the fast
/// path, as its bytes, parsed into a DOM only when a rule asks for a raw field.
#[derive(Debug)]
pub struct AuditRecord {
    /// The normalized event, without `raw` and detections yet.
    pub event: Event,
    raw: RawAudit,
}

#[derive(Debug)]
enum RawAudit {
    /// The audit event (redacted and trimmed), and its verbatim bytes when nothing changed.
    Dom {
        value: Value,
        verbatim: Option<Box<[u8]>>,
    },
    /// A plain line that needed no change.
    Lazy {
        bytes: Box<[u8]>,
        value: OnceLock<Value>,
        known: fast::Known,
    },
}

impl AuditRecord {
    /// The audit event as a DOM, redacted and trimmed. For a record of the fast path this
    /// parses its bytes the first time.
    pub fn audit(&self) -> &Value {
        match &self.raw {
            RawAudit::Dom { value, .. } => value,
            // The bytes were parsed as this very JSON document when the line was read.
            RawAudit::Lazy { bytes, value, .. } => {
                value.get_or_init(|| serde_json::from_slice(bytes).unwrap_or(Value::Null))
            }
        }
    }

    /// The stage of the request the event records (`ResponseComplete` ...).
    pub fn stage(&self) -> Option<&str> {
        match &self.raw {
            RawAudit::Dom { value, .. } => value.get("stage").and_then(Value::as_str),
            RawAudit::Lazy { known, .. } => known.stage.as_deref(),
        }
    }

    /// The request's `auditID`.
    pub fn audit_id(&self) -> Option<&str> {
        match &self.raw {
            RawAudit::Dom { value, .. } => value.get("auditID").and_then(Value::as_str),
            RawAudit::Lazy { known, .. } => known.audit_id.as_deref(),
        }
    }

    /// Completes the event: `raw` is the verbatim record when nothing was redacted or
    /// trimmed, the edited DOM otherwise.
    pub fn into_event(self) -> Event {
        let mut event = self.event;
        event.raw = Some(match self.raw {
            RawAudit::Dom {
                verbatim: Some(bytes),
                ..
            }
            | RawAudit::Lazy { bytes, .. } => Raw::Verbatim(bytes),
            RawAudit::Dom {
                value,
                verbatim: None,
            } => Raw::Value(value),
        });
        event
    }
}

impl crate::detect::RawSource for AuditRecord {
    fn raw_value(&self) -> Option<&Value> {
        Some(self.audit())
    }

    /// The raw fields SigmaHQ's rules read most, answered from what a fast-path record
    /// holds, so that such rules do not make every event build its DOM. Each answer is the
    /// raw value exactly (a test compares them with the DOM's over a corpus).
    fn known_field(&self, path: &str) -> Option<Option<EventValue<'_>>> {
        let RawAudit::Lazy { known, .. } = &self.raw else {
            return None;
        };
        let e = &self.event;
        Some(match path {
            "verb" => s(&known.verb),
            "stage" => s(&known.stage),
            "auditID" => s(&known.audit_id),
            "level" => s(&known.level),
            "responseStatus.code" => known.code.map(EventValue::Int),
            "requestURI" => s(&e.object.request_uri),
            "userAgent" => s(&e.actor.user_agent),
            "user.username" => s(&e.actor.user),
            "user.uid" => s(&e.actor.uid),
            "impersonatedUser.username" => s(&e.actor.impersonated_user),
            "objectRef.resource" => s(&e.object.resource),
            "objectRef.subresource" => s(&e.object.subresource),
            "objectRef.apiVersion" => s(&e.object.api_version),
            "objectRef.uid" => s(&e.object.uid),
            // Lists and the fields normalization drops when empty are exact only when present.
            "user.groups" if known.has_groups => Some(list(&e.actor.groups)),
            "sourceIPs" if known.has_source_ips => Some(list(&e.actor.source_ips)),
            "objectRef.namespace" if e.object.namespace.is_some() => s(&e.object.namespace),
            "objectRef.name" if e.object.name.is_some() => s(&e.object.name),
            "objectRef.apiGroup" if e.object.api_group.is_some() => s(&e.object.api_group),
            _ => return None,
        })
    }
}

/// What became of one input line.
#[derive(Debug, Default)]
pub struct LineOutcome {
    /// Events appended to the output.
    pub events: usize,
    /// Items of a batch (EventList, envelope) that were skipped, with why.
    pub skipped: Vec<AuditError>,
}

/// Turns audit log lines into normalized records.
#[derive(Debug, Clone, Default)]
pub struct AuditParser {
    config: AuditConfig,
}

impl AuditParser {
    /// The settings it was made with.
    pub fn config(&self) -> &AuditConfig {
        &self.config
    }

    /// A parser with these settings.
    pub fn new(config: AuditConfig) -> Self {
        AuditParser { config }
    }

    /// Parses one line (or request body) and appends its audit events to `out`.
    ///
    /// `Err` means nothing in the line was usable. Items of a batch that are unusable are
    /// reported in [`LineOutcome::skipped`] while the others are kept.
    pub fn parse_line(
        &self,
        line: &[u8],
        pos: Position<'_>,
        ingest_time: &str,
        out: &mut Vec<AuditRecord>,
    ) -> Result<LineOutcome, AuditError> {
        if let Some(record) = self.parse_fast(line, pos, ingest_time) {
            out.push(record);
            return Ok(LineOutcome {
                events: 1,
                skipped: Vec::new(),
            });
        }
        self.parse_dom(line, pos, ingest_time, out)
    }

    fn parse_fast(&self, line: &[u8], pos: Position<'_>, ingest_time: &str) -> Option<AuditRecord> {
        let body = line.trim_ascii();
        if !single_line(body) {
            return None;
        }
        let parsed = fast::parse(body, self.config.max_object_bytes)?;
        let facts = parsed.line.facts(parsed.request_object.as_ref());
        let mut event = normalize::build(
            facts,
            parsed.request_object.as_ref(),
            parsed.response_object.as_ref(),
            pos,
            0,
            ingest_time,
        );
        event.cluster.clone_from(&self.config.cluster);
        event.node.clone_from(&self.config.node);
        Some(AuditRecord {
            event,
            raw: RawAudit::Lazy {
                bytes: body.into(),
                value: OnceLock::new(),
                known: parsed.line.known(),
            },
        })
    }

    /// The general path: a DOM, any envelope, redaction and trimming.
    fn parse_dom(
        &self,
        line: &[u8],
        pos: Position<'_>,
        ingest_time: &str,
        out: &mut Vec<AuditRecord>,
    ) -> Result<LineOutcome, AuditError> {
        let (body, verbatim_ok) = envelope::strip_export_prefix(line);
        let doc: Value = serde_json::from_slice(body)?;
        let mut items = Vec::new();
        envelope::unwrap(doc, &self.config, &mut items)?;
        // Only a line that is exactly one plain audit event can be kept verbatim as `raw`.
        let single_plain = verbatim_ok
            && single_line(body.trim_ascii())
            && items.len() == 1
            && items[0].as_ref().is_ok_and(|i| i.plain);
        let mut outcome = LineOutcome::default();
        for (index, item) in items.into_iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            match item
                .and_then(|item| self.normalize_item(item, pos, index, ingest_time, line.len()))
            {
                Ok((mut record, changed)) => {
                    if single_plain
                        && !changed
                        && let RawAudit::Dom { verbatim, .. } = &mut record.raw
                    {
                        *verbatim = Some(body.trim_ascii().into());
                    }
                    out.push(record);
                    outcome.events += 1;
                }
                Err(e) => outcome.skipped.push(e),
            }
        }
        if outcome.events == 0 {
            if !outcome.skipped.is_empty() {
                return Err(outcome.skipped.swap_remove(0));
            }
            return Err(AuditError::NotAudit("an empty batch"));
        }
        Ok(outcome)
    }

    /// Normalizes one audit event, then redacts and trims it; returns whether the audit
    /// event was changed (then it cannot be kept verbatim).
    fn normalize_item(
        &self,
        item: envelope::Item,
        pos: Position<'_>,
        index: u32,
        ingest_time: &str,
        line_len: usize,
    ) -> Result<(AuditRecord, bool), AuditError> {
        let envelope::Item {
            mut audit, cluster, ..
        } = item;
        check_version(&audit)?;
        let facts = normalize::facts_from_value(&audit)?;
        let mut event = normalize::build(
            facts,
            audit.get("requestObject"),
            audit.get("responseObject"),
            pos,
            index,
            ingest_time,
        );
        event.cluster = cluster.or_else(|| self.config.cluster.clone());
        event.node.clone_from(&self.config.node);
        let changed = redact::redact_and_trim(&mut audit, self.config.max_object_bytes, line_len);
        Ok((
            AuditRecord {
                event,
                raw: RawAudit::Dom {
                    value: audit,
                    verbatim: None,
                },
            },
            changed,
        ))
    }
}

/// Whether a record holds no line break, so that it can be kept verbatim as `raw`: every
/// output writes an event on one line (JSON lines, syslog framed by LF), and a document read
/// whole (`scan` of a pretty-printed file, a webhook body) may span several. In valid JSON a
/// line break can only be whitespace between tokens, so the re-serialized DOM loses nothing.
fn single_line(record: &[u8]) -> bool {
    !record.iter().any(|&b| b == b'\n' || b == b'\r')
}

fn check_version(audit: &Value) -> Result<(), AuditError> {
    match audit.get("apiVersion") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(v)) if v == "audit.k8s.io/v1" || v == "audit.k8s.io/v1beta1" => Ok(()),
        Some(Value::String(v)) => Err(AuditError::ApiVersion(v.clone())),
        Some(_) => Err(AuditError::Shape {
            field: "apiVersion",
            expected: "a string",
        }),
    }
}

#[cfg(test)]
mod tests;
