//! Secret values out of `raw`, and oversize objects cut down to a marker.
//!
//! A Secret's `data`/`stringData`, a TokenRequest's issued token and a TokenReview's
//! reviewed token must never leave the node, whatever audit level the cluster's policy
//! chose. Keys are kept (which secret keys were read is useful), values are replaced.

use serde_json::{Map, Value, json};

/// What replaces a secret value.
pub const REDACTED: &str = "<redacted by vigil>";

/// The key of the object that replaces an oversize `requestObject`/`responseObject`.
pub const TRIMMED_MARKER: &str = "vigil.trimmed";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Redacts and trims `audit` in place. `size_hint` is an upper bound of the event's
/// serialized size (the input line's length): below the cap nothing needs measuring.
/// Returns whether anything changed.
pub(super) fn redact_and_trim(
    audit: &mut Value,
    max_object_bytes: usize,
    size_hint: usize,
) -> bool {
    let Some(obj) = audit.as_object_mut() else {
        return false;
    };
    let resource = obj.pointer_str("objectRef", "resource");
    let subresource = obj.pointer_str("objectRef", "subresource");
    let mut changed = false;
    for key in ["requestObject", "responseObject"] {
        let Some(body) = obj.get_mut(key) else {
            continue;
        };
        changed |= match (resource.as_deref(), subresource.as_deref()) {
            (Some("secrets"), _) => redact_secret_body(body),
            (Some("serviceaccounts"), Some("token")) | (Some("tokenrequests"), _) => {
                redact_pointer(body, "/status/token")
            }
            (Some("tokenreviews"), _) => redact_pointer(body, "/spec/token"),
            // Secrets can also travel in generic lists (`kubectl apply -f` of a List).
            _ => redact_embedded_secrets(body),
        };
        if size_hint > max_object_bytes {
            let size = serialized_len(body);
            if size > max_object_bytes {
                *body = json!({ TRIMMED_MARKER: true, "original_bytes": size });
                changed = true;
            }
        }
    }
    changed
}

trait PointerStr {
    fn pointer_str(&self, a: &str, b: &str) -> Option<String>;
}

impl PointerStr for Map<String, Value> {
    fn pointer_str(&self, a: &str, b: &str) -> Option<String> {
        self.get(a)?.get(b)?.as_str().map(str::to_owned)
    }
}

/// A Secret, a SecretList, a merge patch or a JSON patch of a secret.
fn redact_secret_body(body: &mut Value) -> bool {
    match body {
        Value::Array(ops) => {
            // JSON patch: every operation value may carry secret data.
            let mut changed = false;
            for op in ops {
                if let Some(v) = op.get_mut("value") {
                    *v = Value::String(REDACTED.into());
                    changed = true;
                }
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            if let Some(Value::Array(items)) = map.get_mut("items") {
                for item in items {
                    changed |= redact_secret_object(item);
                }
            }
            changed | redact_secret_object(body)
        }
        _ => false,
    }
}

fn redact_secret_object(obj: &mut Value) -> bool {
    let Some(map) = obj.as_object_mut() else {
        return false;
    };
    let mut changed = false;
    for key in ["data", "stringData"] {
        if let Some(Value::Object(data)) = map.get_mut(key) {
            for v in data.values_mut() {
                *v = Value::String(REDACTED.into());
                changed = true;
            }
        } else if let Some(v) = map.get_mut(key)
            && !v.is_null()
        {
            *v = Value::String(REDACTED.into());
            changed = true;
        }
    }
    if let Some(Value::Object(ann)) = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        && let Some(v) = ann.get_mut(LAST_APPLIED)
    {
        *v = Value::String(REDACTED.into());
        changed = true;
    }
    changed
}

fn redact_pointer(body: &mut Value, pointer: &str) -> bool {
    match body.pointer_mut(pointer) {
        Some(v) if !v.is_null() => {
            *v = Value::String(REDACTED.into());
            true
        }
        _ => false,
    }
}

/// Secrets inside a `List` or any `items` array, as `kubectl apply` of a list sends them.
fn redact_embedded_secrets(body: &mut Value) -> bool {
    let is_secret = |v: &Value| v.get("kind").and_then(Value::as_str) == Some("Secret");
    if is_secret(body) {
        return redact_secret_object(body);
    }
    let Some(Value::Array(items)) = body.get_mut("items") else {
        return false;
    };
    let mut changed = false;
    for item in items.iter_mut().filter(|i| is_secret(i)) {
        changed |= redact_secret_object(item);
    }
    changed
}

fn serialized_len(v: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a Value into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_secret_left(v: &Value, secret: &str) {
        let text = v.to_string();
        assert!(!text.contains(secret), "secret value left in {text}");
    }

    #[test]
    fn redacts_secret_data_keeping_keys() {
        let mut ev = json!({
            "objectRef": {"resource": "secrets", "namespace": "shop", "name": "db"},
            "requestObject": {"kind": "Secret", "data": {"password": "aHVudGVyMg=="}, "stringData": {"user": "hunter2"},
                "metadata": {"annotations": {LAST_APPLIED: "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"}}},
            "responseObject": {"kind": "SecretList", "items": [{"data": {"token": "c2VjcmV0"}}]}
        });
        assert!(redact_and_trim(&mut ev, 1 << 20, 0));
        no_secret_left(&ev, "aHVudGVyMg==");
        no_secret_left(&ev, "hunter2");
        no_secret_left(&ev, "c2VjcmV0");
        assert_eq!(
            ev.pointer("/requestObject/data/password"),
            Some(&json!(REDACTED))
        );
        assert_eq!(
            ev.pointer("/responseObject/items/0/data/token"),
            Some(&json!(REDACTED))
        );
    }

    #[test]
    fn redacts_json_patches_of_secrets() {
        let mut ev = json!({
            "objectRef": {"resource": "secrets"},
            "requestObject": [{"op": "replace", "path": "/data/password", "value": "bmV3"}]
        });
        assert!(redact_and_trim(&mut ev, 1 << 20, 0));
        no_secret_left(&ev, "bmV3");
        assert_eq!(
            ev.pointer("/requestObject/0/path"),
            Some(&json!("/data/password"))
        );
    }

    #[test]
    fn redacts_tokens() {
        let mut tr = json!({
            "objectRef": {"resource": "serviceaccounts", "subresource": "token"},
            "responseObject": {"kind": "TokenRequest", "status": {"token": "eyJhbGciOi.xxx", "expirationTimestamp": "x"}}
        });
        assert!(redact_and_trim(&mut tr, 1 << 20, 0));
        no_secret_left(&tr, "eyJhbGciOi");
        let mut review = json!({
            "objectRef": {"resource": "tokenreviews"},
            "requestObject": {"spec": {"token": "eyJhbGciOi.yyy"}},
            "responseObject": {"spec": {"token": "eyJhbGciOi.yyy"}, "status": {"authenticated": true}}
        });
        assert!(redact_and_trim(&mut review, 1 << 20, 0));
        no_secret_left(&review, "eyJhbGciOi");
    }

    #[test]
    fn leaves_other_objects_alone() {
        let mut ev = json!({
            "objectRef": {"resource": "configmaps"},
            "requestObject": {"kind": "ConfigMap", "data": {"password": "visible"}}
        });
        let before = ev.clone();
        assert!(!redact_and_trim(&mut ev, 1 << 20, 0));
        assert_eq!(ev, before);
    }

    #[test]
    fn redacts_secrets_inside_lists() {
        let mut ev = json!({
            "objectRef": {"resource": "lists"},
            "requestObject": {"kind": "List", "items": [{"kind": "Secret", "data": {"k": "c2VjcmV0"}}, {"kind": "ConfigMap", "data": {"k": "v"}}]}
        });
        assert!(redact_and_trim(&mut ev, 1 << 20, 0));
        no_secret_left(&ev, "c2VjcmV0");
        assert_eq!(
            ev.pointer("/requestObject/items/1/data/k"),
            Some(&json!("v"))
        );
    }

    #[test]
    fn trims_oversize_objects_with_a_marker() {
        let big = "x".repeat(5000);
        let mut ev = json!({"objectRef": {"resource": "configmaps"}, "requestObject": {"data": {"k": big}}, "responseObject": {"small": 1}});
        assert!(redact_and_trim(&mut ev, 1000, 6000));
        assert_eq!(
            ev.pointer(&format!("/requestObject/{TRIMMED_MARKER}")),
            Some(&json!(true))
        );
        let original = ev
            .pointer("/requestObject/original_bytes")
            .and_then(Value::as_u64)
            .unwrap();
        assert!(original > 5000);
        assert_eq!(ev.pointer("/responseObject/small"), Some(&json!(1)));
    }
}
