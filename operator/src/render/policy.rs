//! The cluster audit policy (`audit.k8s.io/v1` `Policy`).
//!
//! kube-apiserver evaluates the rules in order and the first that matches a request decides
//! its level. The rendered policy is therefore, in this order:
//!
//! 1. the **baseline**, which no ContainerMonitor can weaken because it comes first:
//!    Secrets, ConfigMaps, TokenReviews and service-account tokens at Metadata (their bodies
//!    carry secret values, so nothing later may log them higher), then what the built-in
//!    detections read: RBAC, pod-template, Service, webhook and CSR writes at Request;
//!    exec, attach, port-forward, token requests, CSR and ServiceAccount creation, event
//!    deletion, workload deletion and permission listing at Metadata;
//! 2. each namespace's rules, namespaces in name order, monitors of a namespace in name
//!    order, every rule restricted to its own namespace; then the namespace's level when a
//!    monitor sets one that differs from the default;
//! 3. the **default**: Metadata for everything else.
//!
//! `RequestReceived` is omitted cluster-wide: every request is logged again at
//! `ResponseComplete` (or `ResponseStarted`), so the first stage only doubles the volume.

use serde::{Deserialize, Serialize};

use crate::crd::{AuditLevel, AuditStage};

/// `apiVersion` of the rendered policy.
pub const POLICY_API_VERSION: &str = "audit.k8s.io/v1";

/// Level of requests no other rule matches.
pub const DEFAULT_LEVEL: AuditLevel = AuditLevel::Metadata;

/// An audit policy, as kube-apiserver reads it from `--audit-policy-file`. Only the fields
/// Vigil renders; unknown fields are refused so a structural check of the output is strict.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// `audit.k8s.io/v1`.
    pub api_version: String,
    /// `Policy`.
    pub kind: String,
    /// Stages never logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit_stages: Vec<AuditStage>,
    /// Leave `managedFields` out of logged bodies: server-side apply bookkeeping, large and
    /// of no use to a detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_managed_fields: Option<bool>,
    /// The rules, first match wins.
    pub rules: Vec<PolicyRule>,
}

/// One rule of the policy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// Level of matching requests.
    pub level: AuditLevel,
    /// User names matched; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups matched; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_groups: Vec<String>,
    /// Verbs matched; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<String>,
    /// Resources matched; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<GroupResources>,
    /// Namespaces matched; empty: all, cluster-scoped requests included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Non-resource URLs matched.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
    /// Stages not logged, on top of the policy's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub omit_stages: Vec<AuditStage>,
}

/// Resources of one API group in a rule.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupResources {
    /// API group, `""` for the core group. Always written, because an absent group means the
    /// core group too and readers of the policy should not have to know that.
    #[serde(default)]
    pub group: String,
    /// Resources; empty: all of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
}

impl PolicyRule {
    fn new(level: AuditLevel) -> PolicyRule {
        PolicyRule {
            level,
            users: Vec::new(),
            user_groups: Vec::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            non_resource_urls: Vec::new(),
            omit_stages: Vec::new(),
        }
    }

    fn verbs(mut self, verbs: &[&str]) -> Self {
        self.verbs = verbs.iter().map(|v| (*v).to_owned()).collect();
        self
    }

    fn group(mut self, group: &str, resources: &[&str]) -> Self {
        self.resources.push(GroupResources {
            group: group.to_owned(),
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            resource_names: Vec::new(),
        });
        self
    }
}

const WRITE: &[&str] = &["create", "update", "patch"];
const WRITE_DELETE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];
const DELETE: &[&str] = &["delete", "deletecollection"];

/// The resources whose bodies hold secret values. Nothing logs them above Metadata:
/// Secret data, ConfigMap data (which often holds credentials, see `configmap.credentials`),
/// the bearer token a TokenReview checks, and the token a TokenRequest returns.
pub(crate) const CREDENTIAL_RESOURCES: &[(&str, &str)] = &[
    ("", "secrets"),
    ("", "configmaps"),
    ("", "serviceaccounts/token"),
    ("authentication.k8s.io", "tokenreviews"),
];

/// The baseline rules, in order. Each is there for named built-in detections; a change here
/// changes what those rules can see, so the tests check the levels detections need.
pub fn baseline() -> Vec<PolicyRule> {
    let mut credentials = PolicyRule::new(AuditLevel::Metadata);
    for (group, resource) in CREDENTIAL_RESOURCES {
        match credentials.resources.iter_mut().find(|g| g.group == *group) {
            Some(g) => g.resources.push((*resource).to_owned()),
            None => credentials = credentials.group(group, &[resource]),
        }
    }
    vec![
        // secret.access, secret.enumeration, serviceaccount.token-request: metadata is all
        // they read, and all that may be logged.
        credentials,
        // rbac.*: roleRef and rules are in the request body.
        PolicyRule::new(AuditLevel::Request)
            .verbs(WRITE_DELETE)
            .group(
                "rbac.authorization.k8s.io",
                &[
                    "roles",
                    "clusterroles",
                    "rolebindings",
                    "clusterrolebindings",
                ],
            ),
        // container.*, image.untrusted-registry, workload.*: the pod template is in the body
        // of any workload kind. Subresources (status, scale, binding) are left to the
        // default, except ephemeral containers, which add a container.
        PolicyRule::new(AuditLevel::Request)
            .verbs(WRITE)
            .group(
                "",
                &["pods", "pods/ephemeralcontainers", "replicationcontrollers"],
            )
            .group(
                "apps",
                &["deployments", "daemonsets", "statefulsets", "replicasets"],
            )
            .group("batch", &["jobs", "cronjobs"]),
        // service.nodeport: the Service type is in the body; Services carry no secrets.
        PolicyRule::new(AuditLevel::Request)
            .verbs(WRITE)
            .group("", &["services"]),
        // admission.webhook-changed; the body shows what a webhook now intercepts.
        PolicyRule::new(AuditLevel::Request)
            .verbs(WRITE_DELETE)
            .group(
                "admissionregistration.k8s.io",
                &[
                    "mutatingwebhookconfigurations",
                    "validatingwebhookconfigurations",
                ],
            ),
        // csr.created, csr.approved: the approval condition is in the body of the approval;
        // a CSR holds a public key and the identity asked for, no secret.
        PolicyRule::new(AuditLevel::Request).verbs(WRITE).group(
            "certificates.k8s.io",
            &[
                "certificatesigningrequests",
                "certificatesigningrequests/approval",
            ],
        ),
        // container.exec/shell/sensitive-exec/attach, pod.port-forward: the command is in the
        // request URI, which Metadata keeps. Both verbs (create for SPDY, get for WebSocket).
        PolicyRule::new(AuditLevel::Metadata)
            .group("", &["pods/exec", "pods/attach", "pods/portforward"]),
        // serviceaccount.created, k8s.events-deleted, workload.cronjob-modified (deletes),
        // rbac.permissions-listed.
        PolicyRule::new(AuditLevel::Metadata)
            .verbs(&["create"])
            .group("", &["serviceaccounts"])
            .group(
                "authorization.k8s.io",
                &["selfsubjectrulesreviews", "selfsubjectaccessreviews"],
            ),
        PolicyRule::new(AuditLevel::Metadata)
            .verbs(DELETE)
            .group("", &["events", "pods", "replicationcontrollers"])
            .group("events.k8s.io", &["events"])
            .group(
                "apps",
                &["deployments", "daemonsets", "statefulsets", "replicasets"],
            )
            .group("batch", &["jobs", "cronjobs"]),
    ]
}

/// The rule for everything no other rule matched.
pub fn default_rule() -> PolicyRule {
    PolicyRule::new(DEFAULT_LEVEL)
}

/// A rule matching every request, at `level`.
pub(crate) fn default_rule_with(level: AuditLevel) -> PolicyRule {
    PolicyRule::new(level)
}

/// What a request looks like to the policy, for evaluating it offline.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes<'a> {
    /// User name.
    pub user: &'a str,
    /// Groups of the user.
    pub groups: &'a [&'a str],
    /// Verb.
    pub verb: &'a str,
    /// API group, `""` for core.
    pub group: &'a str,
    /// Resource.
    pub resource: &'a str,
    /// Subresource, if any.
    pub subresource: Option<&'a str>,
    /// Namespace; `None` for cluster-scoped requests.
    pub namespace: Option<&'a str>,
    /// Object name.
    pub name: Option<&'a str>,
}

impl Policy {
    /// The level kube-apiserver logs `req` at: the first matching rule's, `None` when no rule
    /// matches. Non-resource requests are not modelled.
    pub fn level_for(&self, req: &RequestAttributes<'_>) -> AuditLevel {
        self.rules
            .iter()
            .find(|r| r.matches(req))
            .map_or(AuditLevel::None, |r| r.level)
    }
}

impl PolicyRule {
    /// Whether this rule matches a resource request, with kube-apiserver's semantics.
    pub fn matches(&self, req: &RequestAttributes<'_>) -> bool {
        if !self.non_resource_urls.is_empty() {
            return false;
        }
        let listed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        if !listed(&self.users, req.user) || !listed(&self.verbs, req.verb) {
            return false;
        }
        if !self.user_groups.is_empty()
            && !req
                .groups
                .iter()
                .any(|g| self.user_groups.iter().any(|x| x == g))
        {
            return false;
        }
        if !self.namespaces.is_empty() {
            match req.namespace {
                Some(ns) if self.namespaces.iter().any(|x| x == ns) => {}
                _ => return false,
            }
        }
        self.resources.is_empty()
            || self.resources.iter().any(|g| {
                g.group == req.group
                    && (g.resources.is_empty()
                        || g.resources
                            .iter()
                            .any(|r| resource_matches(r, req.resource, req.subresource)))
                    && (g.resource_names.is_empty()
                        || req
                            .name
                            .is_some_and(|n| g.resource_names.iter().any(|x| x == n)))
            })
    }
}

/// kube-apiserver's resource matching: `pods` (not its subresources), `pods/log`, `pods/*`,
/// `*/scale`, `*`.
pub fn resource_matches(pattern: &str, resource: &str, subresource: Option<&str>) -> bool {
    if pattern == "*" {
        return true;
    }
    match (pattern.split_once('/'), subresource) {
        (None, None) => pattern == resource,
        (None, Some(_)) => false,
        (Some((r, s)), Some(sub)) => (r == "*" || r == resource) && (s == "*" || s == sub),
        (Some(_), None) => false,
    }
}

/// Whether two resource patterns of the same group can match a common request.
pub(crate) fn patterns_overlap(a: &str, b: &str) -> bool {
    if a == "*" || b == "*" {
        return true;
    }
    match (a.split_once('/'), b.split_once('/')) {
        (None, None) => a == b,
        (Some((ar, asub)), Some((br, bsub))) => {
            (ar == "*" || br == "*" || ar == br) && (asub == "*" || bsub == "*" || asub == bsub)
        }
        _ => false,
    }
}

/// Whether two rules without namespace, user or group conditions on `b`'s side can match a
/// common request: verbs and resources intersect. `a`'s users, groups and names only narrow
/// it, so they are ignored: the answer is "some of `a`'s requests may be `b`'s".
pub(crate) fn may_overlap(a: &PolicyRule, b: &PolicyRule) -> bool {
    let verbs =
        a.verbs.is_empty() || b.verbs.is_empty() || a.verbs.iter().any(|v| b.verbs.contains(v));
    if !verbs {
        return false;
    }
    if a.resources.is_empty() || b.resources.is_empty() {
        return true;
    }
    a.resources.iter().any(|ga| {
        b.resources.iter().any(|gb| {
            ga.group == gb.group
                && (ga.resources.is_empty()
                    || gb.resources.is_empty()
                    || ga
                        .resources
                        .iter()
                        .any(|ra| gb.resources.iter().any(|rb| patterns_overlap(ra, rb))))
        })
    })
}

/// The verbs both rules match; `None` when both match every verb.
pub(crate) fn shared_verbs(a: &PolicyRule, b: &PolicyRule) -> Option<Vec<String>> {
    match (a.verbs.is_empty(), b.verbs.is_empty()) {
        (true, true) => None,
        (true, false) => Some(b.verbs.clone()),
        (false, true) => Some(a.verbs.clone()),
        (false, false) => Some(
            a.verbs
                .iter()
                .filter(|v| b.verbs.contains(v))
                .cloned()
                .collect(),
        ),
    }
}

/// The resources of `b` that `a` may also match, for messages (`pods/exec`, `secrets` ...).
pub(crate) fn shared_resources(a: &PolicyRule, b: &PolicyRule) -> Vec<String> {
    let mut out = Vec::new();
    for gb in &b.resources {
        for rb in &gb.resources {
            let hit = a.resources.is_empty()
                || a.resources.iter().any(|ga| {
                    ga.group == gb.group
                        && (ga.resources.is_empty()
                            || ga.resources.iter().any(|ra| patterns_overlap(ra, rb)))
                });
            if hit {
                out.push(if gb.group.is_empty() {
                    rb.clone()
                } else {
                    format!("{rb}.{}", gb.group)
                });
            }
        }
    }
    out
}
