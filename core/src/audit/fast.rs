//! The fast path for the common line: one plain audit event that needs no redaction.
//!
//! A typed parse borrows the metadata strings from the line and keeps `requestObject` and
//! `responseObject` as unparsed slices, at about twice the speed of a JSON DOM. Request and
//! response objects are parsed only for writes, whose pod templates give the workload facts;
//! the DOM of the whole event is built later only if a rule reads a raw field that the
//! normalized event does not carry (`AuditRecord::audit`).
//!
//! Anything else takes the DOM path, which gives the same events (a test holds the two to
//! that): envelopes and lists, S3 export prefixes, unknown API versions, wrong field types (the
//! DOM path names the field), and every event that redaction or trimming could change
//! (secrets, tokens, embedded Secrets, lines longer than the object cap).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::normalize::{Facts, body_command, service_account};
use crate::event::{Actor, Object};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User<'a> {
    #[serde(borrow, default)]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    groups: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef<'a> {
    #[serde(borrow, default)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    subresource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_group: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    uid: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Status<'a> {
    #[serde(default)]
    code: Option<i64>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// The fields of an audit event the normalizer reads. Unknown fields are skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Line<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    level: Option<Cow<'a, str>>,
    #[serde(rename = "auditID", borrow, default)]
    audit_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stage: Option<Cow<'a, str>>,
    #[serde(rename = "requestURI", borrow, default)]
    request_uri: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    verb: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<User<'a>>,
    #[serde(borrow, default)]
    impersonated_user: Option<User<'a>>,
    #[serde(rename = "sourceIPs", borrow, default)]
    source_ips: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    object_ref: Option<ObjectRef<'a>>,
    #[serde(borrow, default)]
    response_status: Option<Status<'a>>,
    #[serde(borrow, default)]
    request_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    stage_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

/// Raw fields a fast-path record answers without its DOM (with the normalized event).
#[derive(Debug)]
pub(super) struct Known {
    pub verb: Option<String>,
    pub stage: Option<String>,
    pub audit_id: Option<String>,
    pub level: Option<String>,
    pub code: Option<i64>,
    /// `user.groups` was present (the normalized list is empty both when it was absent and
    /// when it was empty).
    pub has_groups: bool,
    pub has_source_ips: bool,
}

/// Resources whose request or response bodies may carry secret values.
const REDACTED_RESOURCES: [&str; 4] = [
    "secrets",
    "serviceaccounts",
    "tokenreviews",
    "tokenrequests",
];

/// What the fast path made of a line.
pub(super) struct Parsed<'a> {
    pub line: Line<'a>,
    pub request_object: Option<Value>,
    pub response_object: Option<Value>,
}

/// Parses `body` if it is a plain audit event that the DOM path would leave unchanged;
/// `None` sends it to the DOM path.
pub(super) fn parse(body: &[u8], max_object_bytes: usize) -> Option<Parsed<'_>> {
    if body.len() > max_object_bytes || body.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    // serde_json does not check the UTF-8 of what it skips (unknown fields, raw objects), and
    // the line is kept verbatim as `raw`: validate all of it once, then parse from `str`.
    let text = simdutf8::basic::from_utf8(body).ok()?;
    let line: Line<'_> = serde_json::from_str(text).ok()?;
    let is_event = match line.kind.as_deref() {
        Some("Event") => true,
        Some(_) => false,
        None => line.audit_id.is_some() || (line.verb.is_some() && line.request_uri.is_some()),
    };
    let version_ok = matches!(
        line.api_version.as_deref(),
        None | Some("audit.k8s.io/v1" | "audit.k8s.io/v1beta1")
    );
    if !is_event || !version_ok {
        return None;
    }
    let resource = line.object_ref.as_ref().and_then(|o| o.resource.as_deref());
    if resource.is_some_and(|r| REDACTED_RESOURCES.contains(&r)) {
        return None;
    }
    // A List sent to the API may embed Secrets; the DOM path redacts them. A `\u` escape could
    // spell the kind without its letters appearing, so any escape goes to the DOM path too.
    let embeds_secret = |o: Option<&RawValue>| {
        o.is_some_and(|o| o.get().contains("\"Secret\"") || o.get().contains("\\u"))
    };
    if embeds_secret(line.request_object) || embeds_secret(line.response_object) {
        return None;
    }
    // The normalizer reads the bodies of writes (pod templates) and of execs (the command,
    // where an exporter logs it as the body).
    let writes = matches!(line.verb.as_deref(), Some("create" | "update" | "patch"));
    let exec = matches!(
        line.object_ref
            .as_ref()
            .and_then(|o| o.subresource.as_deref()),
        Some("exec" | "attach")
    );
    let (request_object, response_object) = if writes || exec {
        let parse =
            |o: Option<&RawValue>| o.and_then(|o| serde_json::from_str::<Value>(o.get()).ok());
        (parse(line.request_object), parse(line.response_object))
    } else {
        (None, None)
    };
    Some(Parsed {
        line,
        request_object,
        response_object,
    })
}

fn own(s: &Option<Cow<'_, str>>) -> Option<String> {
    s.as_deref().map(str::to_owned)
}

fn own_non_empty(s: &Option<Cow<'_, str>>) -> Option<String> {
    s.as_deref().filter(|v| !v.is_empty()).map(str::to_owned)
}

fn own_list(l: &Option<Vec<Cow<'_, str>>>) -> Vec<String> {
    l.as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| s.as_ref().to_owned())
        .collect()
}

impl<'a> Line<'a> {
    /// The facts, as [`super::normalize::facts_from_value`] reads them from a DOM.
    pub(super) fn facts(&'a self, request_object: Option<&Value>) -> Facts<'a> {
        let o = self.object_ref.as_ref();
        let object = Object {
            api_group: o.and_then(|o| own_non_empty(&o.api_group)),
            api_version: o.and_then(|o| own(&o.api_version)),
            resource: o.and_then(|o| own(&o.resource)),
            subresource: o.and_then(|o| own(&o.subresource)),
            namespace: o.and_then(|o| own_non_empty(&o.namespace)),
            name: o.and_then(|o| own_non_empty(&o.name)),
            uid: o.and_then(|o| own(&o.uid)),
            request_uri: own(&self.request_uri),
        };
        let user = self.user.as_ref();
        let username = user.and_then(|u| own(&u.username));
        let actor = Actor {
            service_account: username.as_deref().and_then(service_account),
            user: username,
            uid: user.and_then(|u| own(&u.uid)),
            groups: user.map(|u| own_list(&u.groups)).unwrap_or_default(),
            impersonated_user: self
                .impersonated_user
                .as_ref()
                .and_then(|u| own(&u.username)),
            source_ips: own_list(&self.source_ips),
            user_agent: own(&self.user_agent),
        };
        Facts {
            verb: self.verb.as_deref().unwrap_or_default(),
            object,
            actor,
            has_status: self.response_status.is_some(),
            status: self
                .response_status
                .as_ref()
                .and_then(|s| s.status.as_deref()),
            code: self.response_status.as_ref().and_then(|s| s.code),
            times: [
                self.request_received_timestamp.as_deref(),
                self.stage_timestamp.as_deref(),
                self.timestamp.as_deref(),
            ],
            body_command: body_command(request_object),
        }
    }

    /// What the record keeps of the raw event besides the normalized facts.
    pub(super) fn known(&self) -> Known {
        Known {
            verb: own(&self.verb),
            stage: own(&self.stage),
            audit_id: own(&self.audit_id),
            level: own(&self.level),
            code: self.response_status.as_ref().and_then(|s| s.code),
            has_groups: self.user.as_ref().is_some_and(|u| u.groups.is_some()),
            has_source_ips: self.source_ips.is_some(),
        }
    }
}
