//! A request body to normalized events with their detections.

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::value::RawValue;
use vigil_core::audit::{AuditConfig, AuditParser, AuditRecord, Position, StageFilter};
use vigil_core::detect::RuleSet;
use vigil_core::event::Event;

use super::metrics::WebhookMetrics;

/// The origin of every event id minted here. With the position being a hash of the audit
/// event's bytes, a batch that kube-apiserver sends again (after a 503, a timeout) yields the
/// same ids, so a consumer can drop the duplicates.
const ORIGIN: &str = "k8s-audit-webhook";

/// Why a body was refused as a whole (answered 400; kube-apiserver does not retry it).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not JSON, or JSON of another shape than an `EventList`.
    #[error("the body is not a JSON audit EventList: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON object, but not an audit `EventList`.
    #[error("the body is not an audit.k8s.io EventList: {0}")]
    NotEventList(String),
}

impl IngestError {
    /// A short stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            IngestError::Json(_) => "invalid_json",
            IngestError::NotEventList(_) => "not_event_list",
        }
    }
}

/// The envelope kube-apiserver's webhook backend posts. Items are kept as raw bytes so that
/// each is size-checked before it is parsed, and parsed by the same fast path as a line of
/// the audit log.
#[derive(Deserialize)]
struct EventList<'a> {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
}

/// What one body gave.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Events to ship, with their detections.
    pub events: Vec<Event>,
    /// Items in the list.
    pub items: usize,
}

/// Parses, normalizes and runs the rules; shared by every request.
pub struct Ingest {
    parser: AuditParser,
    rules: Arc<RuleSet>,
    /// Shared by all requests: kube-apiserver may send a request's `ResponseStarted` and
    /// `ResponseComplete` in different batches. Held only to decide which records to
    /// evaluate, never during evaluation.
    stages: Mutex<StageFilter>,
    max_event_bytes: usize,
    only_detections: bool,
}

impl Ingest {
    /// An ingester with these settings.
    pub fn new(
        audit: AuditConfig,
        rules: Arc<RuleSet>,
        max_event_bytes: usize,
        only_detections: bool,
    ) -> Ingest {
        Ingest {
            parser: AuditParser::new(audit),
            rules,
            stages: Mutex::new(StageFilter::new()),
            max_event_bytes,
            only_detections,
        }
    }

    /// Turns a body into events. Unusable items are skipped and counted; the body is
    /// refused only when it is not an `EventList` at all.
    pub fn process(&self, body: &[u8], metrics: &WebhookMetrics) -> Result<Ingested, IngestError> {
        let list: EventList<'_> = serde_json::from_slice(body)?;
        if let Some(kind) = list.kind.as_deref().filter(|k| *k != "EventList") {
            return Err(IngestError::NotEventList(format!(
                "kind is `{kind}`, expected `EventList`"
            )));
        }
        if let Some(v) = list
            .api_version
            .as_deref()
            .filter(|v| !matches!(*v, "audit.k8s.io/v1" | "audit.k8s.io/v1beta1"))
        {
            return Err(IngestError::NotEventList(format!(
                "apiVersion is `{v}`, expected `audit.k8s.io/v1`"
            )));
        }
        if list.kind.is_none() && list.items.is_none() {
            return Err(IngestError::NotEventList("no `kind` and no `items`".into()));
        }
        let items = list.items.unwrap_or_default();
        let ingest_time = vigil_core::timestamp::now();
        let mut records: Vec<AuditRecord> = Vec::with_capacity(items.len());
        for item in &items {
            let bytes = item.get().as_bytes();
            let offset = xxhash_rust::xxh3::xxh3_64(bytes);
            let pos = Position {
                origin: ORIGIN,
                offset,
            };
            let skeleton;
            let bytes = if bytes.len() > self.max_event_bytes {
                match without_objects(bytes) {
                    Ok(s) => {
                        metrics.event_trimmed();
                        skeleton = s;
                        &skeleton[..]
                    }
                    Err(e) => {
                        metrics.event_skipped("invalid_json");
                        tracing::warn!(error = %e, bytes = bytes.len(), "skipped an oversize audit event that is not a JSON object");
                        continue;
                    }
                }
            } else {
                bytes
            };
            match self
                .parser
                .parse_line(bytes, pos, &ingest_time, &mut records)
            {
                Ok(outcome) => {
                    for e in outcome.skipped {
                        metrics.event_skipped(e.kind());
                    }
                }
                Err(e) => {
                    metrics.event_skipped(e.kind());
                    tracing::debug!(error = %e, "skipped an unusable audit event");
                }
            }
        }
        let evaluate: Vec<bool> = {
            let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
            records.iter().map(|r| stages.should_detect(r)).collect()
        };
        let mut events = Vec::with_capacity(records.len());
        for (record, evaluate) in records.into_iter().zip(evaluate) {
            let detections = if evaluate {
                self.rules.detect(&record.event, Some(&record))
            } else {
                Vec::new()
            };
            metrics.detected(&detections);
            if detections.is_empty() && self.only_detections {
                continue;
            }
            let mut event = record.into_event();
            event.detections = detections;
            events.push(event);
        }
        Ok(Ingested {
            events,
            items: items.len(),
        })
    }
}

/// The audit event without its request and response objects, each replaced by the marker
/// the audit parser uses for a trimmed object. Only the top level is looked at (as raw
/// bytes), so an oversize event costs no DOM.
fn without_objects(bytes: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let fields: Vec<(String, &RawValue)> =
        serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(bytes)?
            .into_iter()
            .collect();
    let mut out = Vec::with_capacity(4096);
    out.push(b'{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key)?;
        out.push(b':');
        if key == "requestObject" || key == "responseObject" {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({
                    vigil_core::audit::TRIMMED_MARKER: true,
                    "original_bytes": value.get().len(),
                }),
            )?;
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    out.push(b'}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ingest(max_event_bytes: usize) -> Ingest {
        Ingest::new(
            AuditConfig::default(),
            Arc::new(RuleSet::builtin().unwrap()),
            max_event_bytes,
            false,
        )
    }

    const EXEC: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/shop/pods/web/exec?command=sh&container=web&stdin=true&tty=true","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"pods","subresource":"exec","namespace":"shop","name":"web","apiVersion":"v1"},"responseStatus":{"code":101}}"#;

    #[test]
    fn an_event_list_gives_its_events_with_stable_ids() {
        let body = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{EXEC},42]}}"#
        );
        let metrics = WebhookMetrics::default();
        let ing = ingest(1 << 20);
        let first = ing.process(body.as_bytes(), &metrics).unwrap();
        assert_eq!(first.items, 2);
        assert_eq!(first.events.len(), 1, "the item 42 is skipped");
        let rules: Vec<_> = first.events[0]
            .detections
            .iter()
            .map(|d| d.rule.as_str())
            .collect();
        assert!(rules.contains(&"container.shell"), "{rules:?}");
        let again = ingest(1 << 20).process(body.as_bytes(), &metrics).unwrap();
        assert_eq!(first.events[0].id, again.events[0].id);
        assert!(
            metrics
                .render()
                .contains("vigil_webhook_events_skipped_total")
        );
    }

    #[test]
    fn an_oversize_event_keeps_its_metadata() {
        let big = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"b","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/x/configmaps","verb":"create","user":{{"username":"bob"}},"objectRef":{{"resource":"configmaps","namespace":"x","name":"c","apiVersion":"v1"}},"responseStatus":{{"code":201}},"requestObject":{{"data":{{"k":"{}"}}}}}}"#,
            "x".repeat(5000)
        );
        let body = format!(r#"{{"kind":"EventList","items":[{big}]}}"#);
        let metrics = WebhookMetrics::default();
        let out = ingest(1024).process(body.as_bytes(), &metrics).unwrap();
        assert_eq!(out.events.len(), 1);
        let e = &out.events[0];
        assert_eq!(e.actor.user.as_deref(), Some("bob"));
        let raw = e.raw.as_ref().unwrap().to_value();
        assert_eq!(
            raw["requestObject"][vigil_core::audit::TRIMMED_MARKER],
            true
        );
        assert!(
            metrics
                .render()
                .contains("vigil_webhook_events_trimmed_total 1")
        );
    }

    #[test]
    fn other_documents_are_refused() {
        let metrics = WebhookMetrics::default();
        let ing = ingest(1 << 20);
        for body in [
            &b"{not json"[..],
            b"[]",
            br#"{"kind":"Pod"}"#,
            br#"{"kind":"EventList","apiVersion":"v1","items":[]}"#,
            br#"{"hello":1}"#,
        ] {
            assert!(
                ing.process(body, &metrics).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let empty = ing
            .process(br#"{"kind":"EventList","items":[]}"#, &metrics)
            .unwrap();
        assert!(empty.events.is_empty());
    }
}
