//! An audit event DOM to the normalized [`Event`].

use serde_json::Value;

use super::{AuditError, Position, command::decode_command, workload::workload_from_object};
use crate::event::{
    Actor, Container, Event, Kind, Object, Outcome, PodRef, Process, Source, event_id,
};
use crate::timestamp;

/// Fills every normalized field an audit event can give; `raw` and detections are left to
/// the caller.
pub(super) fn normalize(
    audit: &Value,
    pos: Position<'_>,
    index: u32,
    ingest_time: &str,
) -> Result<Event, AuditError> {
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
    let object = object_ref(audit)?;
    let actor = actor(audit)?;
    let action = action(
        verb,
        object.resource.as_deref(),
        object.subresource.as_deref(),
    );

    let time = ["requestReceivedTimestamp", "stageTimestamp", "timestamp"]
        .iter()
        .filter_map(|k| audit.get(*k).and_then(Value::as_str))
        .find_map(timestamp::normalize)
        .unwrap_or_else(|| ingest_time.to_owned());

    let mut event = Event {
        id: event_id(Source::K8sAudit, pos.origin, pos.offset, index),
        time,
        ingest_time: ingest_time.to_owned(),
        source: Source::K8sAudit,
        kind: Kind::Audit,
        action: action.to_owned(),
        outcome: outcome(audit),
        actor,
        object,
        ..Event::default()
    };

    if matches!(action, "exec" | "attach") {
        exec_facts(&mut event, audit);
    }
    if matches!(verb, "create" | "update" | "patch") {
        event.workload = audit
            .get("requestObject")
            .and_then(workload_from_object)
            .or_else(|| audit.get("responseObject").and_then(workload_from_object))
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
    Ok(event)
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

fn outcome(audit: &Value) -> Outcome {
    let Some(status) = audit.get("responseStatus") else {
        return Outcome::Unknown;
    };
    if status.get("status").and_then(Value::as_str) == Some("Failure") {
        return Outcome::Failure;
    }
    match status.get("code").and_then(Value::as_i64) {
        Some(100..=399) => Outcome::Success,
        Some(_) => Outcome::Failure,
        None => Outcome::Unknown,
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
fn service_account(user: &str) -> Option<String> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| format!("{ns}/{name}"))
}

fn exec_facts(event: &mut Event, audit: &Value) {
    let uri = event.object.request_uri.as_deref().unwrap_or_default();
    let mut req = decode_command(uri);
    // GKE and some proxies log the exec options as the request body instead.
    if req.args.is_empty()
        && let Some(cmd) = audit
            .pointer("/requestObject/command")
            .and_then(Value::as_array)
    {
        req.args = cmd
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
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
