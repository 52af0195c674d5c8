//! GKE Cloud Logging entries (`protoPayload` of type `google.cloud.audit.AuditLog`) turned
//! into the shape of a Kubernetes audit event, so that one normalizer and the same rules
//! (SigmaHQ's raw-field rules included) serve every cluster.

use serde_json::{Map, Value, json};

use super::AuditError;

/// Converts a LogEntry into an audit event. Returns the event and the cluster named by the
/// entry's monitored resource.
pub(super) fn to_audit_event(
    mut entry: Map<String, Value>,
) -> Result<(Value, Option<String>), AuditError> {
    let Some(Value::Object(mut payload)) = entry.remove("protoPayload") else {
        return Err(AuditError::Shape {
            field: "protoPayload",
            expected: "an object",
        });
    };
    if let Some(t) = payload.get("@type").and_then(Value::as_str)
        && !t.ends_with("google.cloud.audit.AuditLog")
    {
        return Err(AuditError::NotAudit(
            "a protoPayload that is not an AuditLog",
        ));
    }
    let method = payload
        .get("methodName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let resource_name = payload
        .get("resourceName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if method.is_empty() && resource_name.is_empty() {
        return Err(AuditError::NotAudit(
            "an AuditLog without methodName or resourceName",
        ));
    }
    let verb = method.rsplit('.').next().unwrap_or_default().to_owned();
    let path = ResourcePath::parse(&resource_name);

    let mut audit = Map::new();
    audit.insert("kind".into(), json!("Event"));
    audit.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    audit.insert(
        "level".into(),
        json!(if payload.contains_key("request") {
            "Request"
        } else {
            "Metadata"
        }),
    );
    let audit_id = entry
        .get("operation")
        .and_then(|o| o.get("id"))
        .or_else(|| entry.get("insertId"))
        .cloned()
        .unwrap_or(Value::Null);
    if !audit_id.is_null() {
        audit.insert("auditID".into(), audit_id);
    }
    audit.insert("stage".into(), json!("ResponseComplete"));
    audit.insert("verb".into(), json!(verb));

    let request = payload.remove("request");
    audit.insert(
        "requestURI".into(),
        json!(path.request_uri(request.as_ref())),
    );

    let mut user = Map::new();
    if let Some(email) = at(&payload, "authenticationInfo", "/principalEmail").cloned() {
        user.insert("username".into(), email);
    }
    audit.insert("user".into(), Value::Object(user));
    if let Some(ip) = at(&payload, "requestMetadata", "/callerIp").cloned() {
        audit.insert("sourceIPs".into(), Value::Array(vec![ip]));
    }
    if let Some(ua) = at(&payload, "requestMetadata", "/callerSuppliedUserAgent").cloned() {
        audit.insert("userAgent".into(), ua);
    }
    audit.insert("objectRef".into(), path.object_ref());

    let code = at(&payload, "status", "/code")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status = Map::new();
    status.insert("code".into(), json!(http_status(code)));
    if code != 0 {
        status.insert("status".into(), json!("Failure"));
        if let Some(msg) = at(&payload, "status", "/message").cloned() {
            status.insert("message".into(), msg);
        }
    }
    audit.insert("responseStatus".into(), Value::Object(status));
    if let Some(req) = request {
        audit.insert("requestObject".into(), req);
    }
    if let Some(resp) = payload.remove("response") {
        audit.insert("responseObject".into(), resp);
    }
    if let Some(ts) = entry.get("timestamp").cloned() {
        audit.insert("requestReceivedTimestamp".into(), ts.clone());
        audit.insert(
            "stageTimestamp".into(),
            entry.get("receiveTimestamp").cloned().unwrap_or(ts),
        );
    }
    if let Some(labels) = entry.get("labels").cloned() {
        audit.insert("annotations".into(), labels);
    }
    let cluster = entry
        .get("resource")
        .and_then(|r| r.pointer("/labels/cluster_name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((Value::Object(audit), cluster))
}

/// `<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`, where the
/// core group is written `core`.
#[derive(Debug, Default, PartialEq)]
struct ResourcePath<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: Option<&'a str>,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> ResourcePath<'a> {
    fn parse(s: &'a str) -> Self {
        let mut segs: Vec<&str> = s.split('/').filter(|p| !p.is_empty()).collect();
        if segs.len() < 2 {
            return ResourcePath::default();
        }
        let group = if segs[0] == "core" { "" } else { segs[0] };
        let version = segs[1];
        let mut rest: Vec<&str> = segs.split_off(2);
        let mut namespace = None;
        // "namespaces/<ns>/<resource>..." is a namespaced object; "namespaces/<ns>" alone is
        // the Namespace object itself.
        if rest.len() >= 3 && rest[0] == "namespaces" {
            namespace = Some(rest[1]);
            rest.drain(..2);
        }
        ResourcePath {
            group,
            version,
            namespace,
            resource: rest.first().copied(),
            name: rest.get(1).copied(),
            subresource: rest.get(2).copied(),
        }
    }

    fn object_ref(&self) -> Value {
        let mut o = Map::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                o.insert(k.into(), json!(v));
            }
        };
        put("resource", self.resource);
        put("namespace", self.namespace);
        put("name", self.name);
        put("apiGroup", Some(self.group));
        put("apiVersion", Some(self.version));
        put("subresource", self.subresource);
        Value::Object(o)
    }

    /// The request URI kube-apiserver would have logged, with the exec command of the
    /// request body as `command=` parameters so URI-based rules see it.
    fn request_uri(&self, request: Option<&Value>) -> String {
        let mut uri = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if let Some(ns) = self.namespace {
            uri.push_str("/namespaces/");
            uri.push_str(ns);
        }
        for seg in [self.resource, self.name, self.subresource]
            .into_iter()
            .flatten()
        {
            uri.push('/');
            uri.push_str(seg);
        }
        if let Some(cmd) = request
            .and_then(|r| r.get("command"))
            .and_then(Value::as_array)
        {
            let params: Vec<String> = cmd
                .iter()
                .filter_map(Value::as_str)
                .map(|a| {
                    format!(
                        "command={}",
                        percent_encoding::utf8_percent_encode(
                            a,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
                .collect();
            if !params.is_empty() {
                uri.push('?');
                uri.push_str(&params.join("&"));
            }
        }
        uri
    }
}

fn at<'a>(m: &'a Map<String, Value>, first: &str, rest: &str) -> Option<&'a Value> {
    m.get(first)?.pointer(rest)
}

/// google.rpc.Code to the HTTP status kube-apiserver would have answered.
fn http_status(code: i64) -> u16 {
    match code {
        0 => 200,
        3 | 9 | 11 => 400,
        16 => 401,
        7 => 403,
        5 => 404,
        6 | 10 => 409,
        8 => 429,
        4 => 504,
        14 => 503,
        12 => 501,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resource_names() {
        let p = ResourcePath::parse("core/v1/namespaces/shop/pods/web-1/exec");
        assert_eq!(
            p,
            ResourcePath {
                group: "",
                version: "v1",
                namespace: Some("shop"),
                resource: Some("pods"),
                name: Some("web-1"),
                subresource: Some("exec"),
            }
        );
        let p = ResourcePath::parse("rbac.authorization.k8s.io/v1/clusterrolebindings/x");
        assert_eq!(p.group, "rbac.authorization.k8s.io");
        assert_eq!(
            (p.resource, p.name, p.namespace),
            (Some("clusterrolebindings"), Some("x"), None)
        );
        let p = ResourcePath::parse("core/v1/namespaces/shop");
        assert_eq!((p.resource, p.name), (Some("namespaces"), Some("shop")));
        let p = ResourcePath::parse("core/v1/secrets");
        assert_eq!((p.resource, p.name), (Some("secrets"), None));
        assert_eq!(ResourcePath::parse("garbage"), ResourcePath::default());
    }

    #[test]
    fn builds_request_uris_with_the_exec_command() {
        let p = ResourcePath::parse("core/v1/namespaces/shop/pods/web-1/exec");
        let req = json!({"command": ["/bin/sh", "-c", "id"]});
        assert_eq!(
            p.request_uri(Some(&req)),
            "/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fsh&command=%2Dc&command=id"
        );
        let p = ResourcePath::parse("apps/v1/namespaces/shop/deployments");
        assert_eq!(
            p.request_uri(None),
            "/apis/apps/v1/namespaces/shop/deployments"
        );
    }

    #[test]
    fn maps_rpc_codes() {
        assert_eq!(http_status(0), 200);
        assert_eq!(http_status(7), 403);
        assert_eq!(http_status(16), 401);
        assert_eq!(http_status(99), 500);
    }
}
