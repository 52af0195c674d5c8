//! Unwrapping the envelopes audit events arrive in.

use serde_json::{Map, Value};

use super::{AuditConfig, AuditError, gke};

/// Envelopes nest (a `records` batch of AKS records holding a string that holds the event);
/// deeper than this is not a format anyone exports and is refused rather than followed.
const MAX_ENVELOPE_DEPTH: usize = 4;

/// One audit event found in a document.
pub(super) struct Item {
    /// The audit event itself.
    pub audit: Value,
    /// The cluster the envelope names, if any.
    pub cluster: Option<String>,
    /// True when the document was the audit event itself, not an envelope.
    pub plain: bool,
}

/// Strips the `<RFC 3339 time> ` prefix of CloudWatch exports to S3. Returns the JSON part
/// and whether the line may be kept verbatim (only when nothing was stripped).
pub(super) fn strip_export_prefix(line: &[u8]) -> (&[u8], bool) {
    let trimmed = line.trim_ascii_start();
    if trimmed.first() == Some(&b'{') || trimmed.first() == Some(&b'[') {
        return (line, true);
    }
    // "2024-05-02T10:15:30.123Z {" : a timestamp of at least 20 characters then a space.
    if let Some(space) = trimmed.iter().take(40).position(|&b| b == b' ')
        && space >= 20
        && trimmed[0].is_ascii_digit()
        && trimmed[4] == b'-'
        && trimmed.get(space + 1) == Some(&b'{')
    {
        return (&trimmed[space + 1..], false);
    }
    (line, true)
}

/// Finds the audit events in `doc`, appending them to `out`; an unusable element of a batch
/// is appended as its error, so the caller can count it while keeping the others.
pub(super) fn unwrap(
    doc: Value,
    cfg: &AuditConfig,
    out: &mut Vec<Result<Item, AuditError>>,
) -> Result<(), AuditError> {
    unwrap_at(doc, None, cfg, 0, true, out)
}

fn unwrap_at(
    doc: Value,
    cluster: Option<String>,
    cfg: &AuditConfig,
    depth: usize,
    top: bool,
    out: &mut Vec<Result<Item, AuditError>>,
) -> Result<(), AuditError> {
    if depth > MAX_ENVELOPE_DEPTH {
        return Err(AuditError::NotAudit("envelopes nested too deeply"));
    }
    let Value::Object(mut obj) = doc else {
        return Err(AuditError::NotAudit("a JSON value that is not an object"));
    };

    if is_audit_event(&obj) {
        out.push(Ok(Item {
            audit: Value::Object(obj),
            cluster,
            plain: top,
        }));
        return Ok(());
    }

    // An EventList from the webhook backend, or a bare list of items.
    if obj.get("kind").and_then(Value::as_str) == Some("EventList")
        || (obj.contains_key("items") && !obj.contains_key("protoPayload"))
    {
        let items = take_array(&mut obj, "items")?;
        return each(items, cluster, cfg, depth, out);
    }

    // CloudWatch Logs subscription payload.
    if obj.contains_key("logEvents") {
        if obj.get("messageType").and_then(Value::as_str) == Some("CONTROL_MESSAGE") {
            return Err(AuditError::NotAudit("a CloudWatch control message"));
        }
        let cluster = cluster.or_else(|| eks_cluster(&obj));
        let events = take_array(&mut obj, "logEvents")?;
        return each(events, cluster, cfg, depth, out);
    }

    // `aws logs filter-log-events` output.
    if obj.contains_key("events") && obj.get("events").is_some_and(Value::is_array) {
        let events = take_array(&mut obj, "events")?;
        return each(events, cluster, cfg, depth, out);
    }

    // Azure Event Hub / storage export: {"records":[...]}.
    if obj.contains_key("records") {
        let records = take_array(&mut obj, "records")?;
        return each(records, cluster, cfg, depth, out);
    }

    // An AKS diagnostic record.
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut)
        && props.contains_key("log")
    {
        let category = obj
            .get("category")
            .and_then(Value::as_str)
            .unwrap_or("kube-audit");
        if !category.starts_with("kube-audit") {
            return Err(AuditError::NotAudit(
                "an AKS diagnostic record of another category",
            ));
        }
        let cluster = cluster.or_else(|| aks_cluster(&obj));
        let log = obj
            .get_mut("properties")
            .and_then(|p| p.get_mut("log"))
            .map(Value::take)
            .unwrap_or_default();
        return unwrap_embedded(log, cluster, cfg, depth, out);
    }

    // A GKE Cloud Logging entry.
    if obj.contains_key("protoPayload") {
        let (audit, gke_cluster) = gke::to_audit_event(obj)?;
        out.push(Ok(Item {
            audit,
            cluster: cluster.or(gke_cluster),
            plain: false,
        }));
        return Ok(());
    }

    // A single CloudWatch log event, or any record carrying the event in `message`.
    if let Some(message) = obj.get_mut("message") {
        let message = message.take();
        return unwrap_embedded(message, cluster, cfg, depth, out);
    }

    Err(AuditError::NotAudit("no audit event or known envelope"))
}

/// An event embedded in an envelope, as an object or as a JSON string.
fn unwrap_embedded(
    inner: Value,
    cluster: Option<String>,
    cfg: &AuditConfig,
    depth: usize,
    out: &mut Vec<Result<Item, AuditError>>,
) -> Result<(), AuditError> {
    match inner {
        Value::String(text) => {
            let doc: Value = serde_json::from_str(&text)?;
            unwrap_at(doc, cluster, cfg, depth + 1, false, out)
        }
        Value::Object(_) => unwrap_at(inner, cluster, cfg, depth + 1, false, out),
        _ => Err(AuditError::Shape {
            field: "message",
            expected: "an object or a JSON string",
        }),
    }
}

/// Unwraps every element of a batch; a bad element becomes an error entry of its own.
fn each(
    items: Vec<Value>,
    cluster: Option<String>,
    cfg: &AuditConfig,
    depth: usize,
    out: &mut Vec<Result<Item, AuditError>>,
) -> Result<(), AuditError> {
    for item in items {
        if let Err(e) = unwrap_at(item, cluster.clone(), cfg, depth + 1, false, out) {
            out.push(Err(e));
        }
    }
    Ok(())
}

fn take_array(obj: &mut Map<String, Value>, key: &'static str) -> Result<Vec<Value>, AuditError> {
    match obj.remove(key) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(_) => Err(AuditError::Shape {
            field: key,
            expected: "an array",
        }),
    }
}

/// An audit event is recognized by the fields every stage of every version carries.
fn is_audit_event(obj: &Map<String, Value>) -> bool {
    match obj.get("kind").and_then(Value::as_str) {
        Some("Event") => true,
        Some(_) => false,
        None => {
            obj.contains_key("auditID")
                || (obj.contains_key("verb") && obj.contains_key("requestURI"))
        }
    }
}

/// `/aws/eks/<cluster>/cluster` is the log group EKS writes control-plane logs to.
fn eks_cluster(obj: &Map<String, Value>) -> Option<String> {
    let group = obj.get("logGroup")?.as_str()?;
    let rest = group.strip_prefix("/aws/eks/")?;
    let name = rest.strip_suffix("/cluster")?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// `.../providers/Microsoft.ContainerService/managedClusters/<cluster>`, often upper-cased.
fn aks_cluster(obj: &Map<String, Value>) -> Option<String> {
    let id = obj.get("resourceId")?.as_str()?;
    let lower = id.to_ascii_lowercase();
    let at = lower.rfind("/managedclusters/")? + "/managedclusters/".len();
    let name = id[at..].split('/').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}
