//! Audit event facts to the normalized [`Event`].
//!
//! Two extractions feed one builder: [`facts_from_value`] reads a JSON DOM and names the
//! field of the wrong type when there is one; `fast.rs` reads a typed parse of a plain log
//! line. [`build`] turns either into the event, so both paths normalize identically.

use serde_json::Value;

use super::{AuditError, Position, command::decode_command, workload::workload_from_object};
use crate::event::{
    Actor, Container, Event, Kind, Object, Outcome, PodRef, Process, Source, event_id,
};
use crate::timestamp;

/// What the normalizer needs of an audit event, whichever way it was parsed.
#[derive(Debug, Default)]
pub(super) struct Facts<'a> {
    pub verb: &'a str,
    pub object: Object,
    pub actor: Actor,
    /// `responseStatus` is present.
    pub has_status: bool,
    pub status: Option<&'a str>,
    pub code: Option<i64>,
    /// `requestReceivedTimestamp`, `stageTimestamp`, `timestamp` (v1beta1), in that order.
    pub times: [Option<&'a str>; 3],
    /// The exec options some exporters log as the request body (`requestObject.command`).
    pub body_command: Vec<String>,
}

/// Reads the facts from a DOM, refusing a field of the wrong type by name.
pub(super) fn facts_from_value(audit: &Value) -> Result<Facts<'_>, AuditError> {
    let verb = match audit.get("verb") {
        Some(Value::String(v)) => v.as_str(),
        None | Some(Value::Null) => "",
        Some(_) => {
            return Err(AuditError::Shape {
                field: "verb",
                expected: "a string",
            });
        }
    };
    let status = audit.get("responseStatus");
    Ok(Facts {
        verb,
        object: object_ref(audit)?,
        actor: actor(audit)?,
        has_status: status.is_some(),
        status: status.and_then(|s| s.get("status")).and_then(Value::as_str),
        code: status.and_then(|s| s.get("code")).and_then(Value::as_i64),
        times: ["requestReceivedTimestamp", "stageTimestamp", "timestamp"]
            .map(|k| audit.get(k).and_then(Value::as_str)),
        body_command: body_command(audit.get("requestObject")),
    })
}

/// The exec command some exporters log as the request body (`{"command": [...]}`).
pub(super) fn body_command(request_object: Option<&Value>) -> Vec<String> {
    request_object
        .and_then(|r| r.get("command"))
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the normalized event; `raw` and detections are left to the caller. The request
/// and response objects are only read for writes, where they carry a pod template.
pub(super) fn build(
    facts: Facts<'_>,
    request_object: Option<&Value>,
    response_object: Option<&Value>,
    pos: Position<'_>,
    index: u32,
    ingest_time: &str,
) -> Event {
    let Facts {
        verb,
        object,
        actor,
        has_status,
        status,
        code,
        times,
        body_command,
    } = facts;
    let action = action(
        verb,
        object.resource.as_deref(),
        object.subresource.as_deref(),
    );
    let time = times
        .iter()
        .flatten()
        .find_map(|t| timestamp::normalize(t))
        .unwrap_or_else(|| ingest_time.to_owned());
    let outcome = match (has_status, status, code) {
        (false, _, _) => Outcome::Unknown,
        (true, Some("Failure"), _) => Outcome::Failure,
        (true, _, Some(100..=399)) => Outcome::Success,
        (true, _, Some(_)) => Outcome::Failure,
        (true, _, None) => Outcome::Unknown,
    };

    let mut event = Event {
        id: event_id(Source::K8sAudit, pos.origin, pos.offset, index),
        time,
        ingest_time: ingest_time.to_owned(),
        source: Source::K8sAudit,
        kind: Kind::Audit,
        action: action.to_owned(),
        outcome,
        actor,
        object,
        ..Event::default()
    };

    if matches!(action, "exec" | "attach") {
        exec_facts(&mut event, body_command);
    }
    if matches!(verb, "create" | "update" | "patch") {
        event.workload = request_object
            .and_then(workload_from_object)
            .or_else(|| response_object.and_then(workload_from_object))
            .map(|mut w| {
                // A create request's body often lacks the namespace (and generateName'd
                // pods the name); the URL has them.
                if w.namespace.is_none() {
                    w.namespace.clone_from(&event.object.namespace);
                }
                if w.name.is_none() {
                    w.name.clone_from(&event.object.name);
                }
                w
            });
    }
    event
}

/// The normalized verb: the subresources that are actions of their own become that action,
/// whatever HTTP verb carried them (kubectl ≥ 1.30 execs with a WebSocket GET).
fn action<'a>(verb: &'a str, resource: Option<&str>, subresource: Option<&str>) -> &'a str {
    match (resource, subresource) {
        (Some("pods"), Some("exec")) if matches!(verb, "create" | "get") => "exec",
        (Some("pods"), Some("attach")) if matches!(verb, "create" | "get") => "attach",
        (Some("pods"), Some("portforward")) if matches!(verb, "create" | "get") => "portforward",
        (Some("pods"), Some("log")) if verb == "get" => "log",
        _ if verb.is_empty() => "unknown",
        _ => verb,
    }
}

fn object_ref(audit: &Value) -> Result<Object, AuditError> {
    let request_uri = opt_str(audit, "requestURI", "requestURI")?;
    let Some(r) = audit.get("objectRef").filter(|v| !v.is_null()) else {
        return Ok(Object {
            request_uri,
            ..Object::default()
        });
    };
    if !r.is_object() {
        return Err(AuditError::Shape {
            field: "objectRef",
            expected: "an object",
        });
    }
    Ok(Object {
        api_group: opt_str(r, "apiGroup", "objectRef.apiGroup")?.filter(|g| !g.is_empty()),
        api_version: opt_str(r, "apiVersion", "objectRef.apiVersion")?,
        resource: opt_str(r, "resource", "objectRef.resource")?,
        subresource: opt_str(r, "subresource", "objectRef.subresource")?,
        namespace: opt_str(r, "namespace", "objectRef.namespace")?.filter(|n| !n.is_empty()),
        name: opt_str(r, "name", "objectRef.name")?.filter(|n| !n.is_empty()),
        uid: opt_str(r, "uid", "objectRef.uid")?,
        request_uri,
    })
}

fn actor(audit: &Value) -> Result<Actor, AuditError> {
    let mut actor = Actor {
        user_agent: opt_str(audit, "userAgent", "userAgent")?,
        source_ips: str_list(audit, "sourceIPs", "sourceIPs")?,
        ..Actor::default()
    };
    if let Some(user) = audit.get("user").filter(|v| !v.is_null()) {
        if !user.is_object() {
            return Err(AuditError::Shape {
                field: "user",
                expected: "an object",
            });
        }
        actor.user = opt_str(user, "username", "user.username")?;
        actor.uid = opt_str(user, "uid", "user.uid")?;
        actor.groups = str_list(user, "groups", "user.groups")?;
        actor.service_account = actor.user.as_deref().and_then(service_account);
    }
    if let Some(imp) = audit.get("impersonatedUser").filter(|v| v.is_object()) {
        actor.impersonated_user = opt_str(imp, "username", "impersonatedUser.username")?;
    }
    Ok(actor)
}

/// `system:serviceaccount:<ns>:<name>` → `<ns>/<name>`.
pub(super) fn service_account(user: &str) -> Option<String> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| format!("{ns}/{name}"))
}

fn exec_facts(event: &mut Event, body_command: Vec<String>) {
    let uri = event.object.request_uri.as_deref().unwrap_or_default();
    let mut req = decode_command(uri);
    // GKE and some proxies log the exec options as the request body instead.
    if req.args.is_empty() {
        req.args = body_command;
    }
    if !req.args.is_empty() || req.tty.is_some() {
        event.process = Some(Process {
            command_line: (!req.args.is_empty()).then(|| req.args.join(" ")),
            args: req.args,
            tty: req.tty,
            ..Process::default()
        });
    }
    event.container = Some(Container {
        name: req.container,
        pod: Some(PodRef {
            namespace: event.object.namespace.clone(),
            name: event.object.name.clone(),
            uid: None,
        }),
        ..Container::default()
    });
}

fn opt_str(v: &Value, key: &str, field: &'static str) -> Result<Option<String>, AuditError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AuditError::Shape {
            field,
            expected: "a string",
        }),
    }
}

fn str_list(v: &Value, key: &str, field: &'static str) -> Result<Vec<String>, AuditError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_owned).ok_or(AuditError::Shape {
                    field,
                    expected: "a list of strings",
                })
            })
            .collect(),
        Some(_) => Err(AuditError::Shape {
            field,
            expected: "a list of strings",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_become_actions_for_both_verbs() {
        assert_eq!(action("create", Some("pods"), Some("exec")), "exec");
        assert_eq!(action("get", Some("pods"), Some("exec")), "exec");
        assert_eq!(action("get", Some("pods"), Some("attach")), "attach");
        assert_eq!(
            action("create", Some("pods"), Some("portforward")),
            "portforward"
        );
        assert_eq!(action("get", Some("pods"), Some("log")), "log");
        assert_eq!(
            action("patch", Some("pods"), Some("ephemeralcontainers")),
            "patch"
        );
        assert_eq!(action("get", Some("pods"), None), "get");
        assert_eq!(action("", None, None), "unknown");
    }

    #[test]
    fn service_accounts_are_recognized() {
        assert_eq!(
            service_account("system:serviceaccount:shop:default").as_deref(),
            Some("shop/default")
        );
        assert_eq!(service_account("system:serviceaccount::x"), None);
        assert_eq!(service_account("alice"), None);
    }
}
