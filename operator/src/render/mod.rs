//! Rendering: ContainerMonitors in, the cluster audit policy and the agents' per-namespace
//! configuration out, with what was refused, clamped or overridden reported per monitor.
//!
//! Everything here is a pure function of its input: no clock, no I/O, no iteration over hash
//! maps. The same monitors in any order give byte-identical output and the same hash, which
//! is what lets the operator skip writes that would not change anything and lets agents
//! report which policy they run by its hash.
//!
//! When monitors of one namespace disagree, the more watchful setting wins: the more
//! detailed audit level, the higher detection level, an explicit level over another monitor's
//! `disabled`, the more sensitive resource-usage threshold (field by field; see
//! [`resources`]). Monitors add visibility; one monitor cannot quietly take away what another one
//! asked for. The monitor whose setting lost is told so.

pub mod policy;
mod resources;
mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::crd::{AuditLevel, ContainerMonitor, ContainerMonitorSpec, NamespaceAuditRule};
use policy::{DEFAULT_LEVEL, GroupResources, POLICY_API_VERSION, Policy, PolicyRule};
pub use rules::Catalog;
use vigil_core::tuning::{
    Exception, InlineRule, LabelSelector, LabelSelectorRequirement, LogSelection, MonitorSelection,
    NAMESPACE_CONFIG_SCHEMA, NamespaceConfig, NamespaceDetections,
};

/// ConfigMaps hold at most 1 MiB of data; a larger policy cannot be published as one.
pub const CONFIGMAP_MAX_BYTES: usize = 1024 * 1024;

/// Why rendering failed as a whole (never because of one monitor's content).
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The output could not be serialized.
    #[error("cannot serialize the rendered {what}: {source}")]
    Serialize {
        /// Policy or agent configuration.
        what: &'static str,
        /// The cause.
        source: yaml_serde::Error,
    },
}

/// A ContainerMonitor, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MonitorRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for MonitorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    /// Part of the monitor was left out of the output.
    Refused,
    /// Part of the monitor was rendered but the cluster baseline overrides it.
    Clamped,
    /// Another monitor of the namespace asked for something else, and won.
    Overridden,
    /// Rendered as written, but probably not what was meant.
    Warning,
}

impl ProblemKind {
    /// Lower-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Refused => "refused",
            ProblemKind::Clamped => "clamped",
            ProblemKind::Overridden => "overridden",
            ProblemKind::Warning => "warning",
        }
    }
}

/// Something about one monitor that a person should know.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// How serious.
    pub kind: ProblemKind,
    /// The field concerned (`spec.audit.rules[1]`).
    pub field: String,
    /// What happened and why, in a sentence.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.kind.as_str(),
            self.field,
            self.message
        )
    }
}

/// The result of a render.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The cluster audit policy.
    pub policy: Policy,
    /// The policy as written to the ConfigMap and the apiserver's policy file.
    pub policy_yaml: String,
    /// sha256 of `policy_yaml`, lower-case hex: what agents report as applied.
    pub policy_hash: String,
    /// Agent configuration, per namespace with at least one monitor.
    pub namespaces: BTreeMap<String, NamespaceConfig>,
    /// Every monitor rendered, each with its problems (empty when it rendered as written).
    pub monitors: BTreeMap<MonitorRef, Vec<Problem>>,
    /// Problems with the render as a whole (a policy too large for a ConfigMap).
    pub cluster_problems: Vec<String>,
}

impl Rendered {
    /// The agent configuration of one namespace as YAML.
    pub fn namespace_yaml(&self, namespace: &str) -> Result<Option<String>, RenderError> {
        self.namespaces
            .get(namespace)
            .map(|c| {
                yaml_serde::to_string(c).map_err(|source| RenderError::Serialize {
                    what: "agent configuration",
                    source,
                })
            })
            .transpose()
    }

    /// Whether anything of any monitor was left out.
    pub fn any_refused(&self) -> bool {
        self.monitors
            .values()
            .flatten()
            .any(|p| p.kind == ProblemKind::Refused)
    }
}

/// sha256 of `bytes`, lower-case hex.
pub fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders the policy and the agent configuration from `monitors` (in any order).
pub fn render(monitors: &[ContainerMonitor], catalog: &Catalog) -> Result<Rendered, RenderError> {
    let mut reports: BTreeMap<MonitorRef, Vec<Problem>> = BTreeMap::new();
    let by_namespace = group(monitors, &mut reports);

    let baseline = policy::baseline();
    let mut rules = baseline.clone();
    let mut namespaces = BTreeMap::new();
    for (ns, members) in &by_namespace {
        rules.extend(namespace_policy(ns, members, &baseline, &mut reports));
        namespaces.insert(
            ns.clone(),
            namespace_config(ns, members, catalog, &mut reports),
        );
    }
    rules.push(policy::default_rule());
    let policy = Policy {
        api_version: POLICY_API_VERSION.to_owned(),
        kind: "Policy".to_owned(),
        omit_stages: vec![crate::crd::AuditStage::RequestReceived],
        omit_managed_fields: Some(true),
        rules,
    };
    let policy_yaml = yaml_serde::to_string(&policy).map_err(|source| RenderError::Serialize {
        what: "audit policy",
        source,
    })?;
    let mut cluster_problems = Vec::new();
    if policy_yaml.len() > CONFIGMAP_MAX_BYTES {
        cluster_problems.push(format!(
            "the audit policy is {} bytes, more than the {CONFIGMAP_MAX_BYTES} bytes a ConfigMap holds; fewer or coarser namespace rules are needed",
            policy_yaml.len()
        ));
    }
    for problems in reports.values_mut() {
        problems.sort();
        problems.dedup();
    }
    Ok(Rendered {
        policy_hash: hash_hex(policy_yaml.as_bytes()),
        policy,
        policy_yaml,
        namespaces,
        monitors: reports,
        cluster_problems,
    })
}

type Members<'a> = Vec<(String, &'a ContainerMonitorSpec)>;

/// Monitors by namespace, each namespace's in name order. A name seen twice (two files
/// defining the same object) keeps one copy, chosen by content so the choice does not depend
/// on input order.
fn group<'a>(
    monitors: &'a [ContainerMonitor],
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
) -> BTreeMap<String, Members<'a>> {
    let mut keyed: BTreeMap<MonitorRef, Vec<&'a ContainerMonitorSpec>> = BTreeMap::new();
    for m in monitors {
        let key = MonitorRef {
            namespace: m.metadata.namespace.clone().unwrap_or_default(),
            name: m.metadata.name.clone().unwrap_or_default(),
        };
        keyed.entry(key).or_default().push(&m.spec);
    }
    let mut out: BTreeMap<String, Members<'a>> = BTreeMap::new();
    for (key, mut specs) in keyed {
        let problems = reports.entry(key.clone()).or_default();
        if key.namespace.is_empty() || key.name.is_empty() {
            problems.push(Problem {
                kind: ProblemKind::Refused,
                field: "metadata".into(),
                message: "a ContainerMonitor needs metadata.name and metadata.namespace".into(),
            });
            continue;
        }
        if specs.len() > 1 {
            specs.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
            problems.push(Problem {
                kind: ProblemKind::Refused,
                field: "metadata.name".into(),
                message: format!(
                    "defined {} times in the input; the copy rendered is chosen by content, not by input order, so that the output does not depend on file order: remove the others",
                    specs.len()
                ),
            });
        }
        if let Some(spec) = specs.first() {
            out.entry(key.namespace).or_default().push((key.name, spec));
        }
    }
    out
}

fn problem(
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
    ns: &str,
    name: &str,
    kind: ProblemKind,
    field: String,
    message: String,
) {
    reports
        .entry(MonitorRef {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })
        .or_default()
        .push(Problem {
            kind,
            field,
            message,
        });
}

/// The policy rules of one namespace: its monitors' rules, then its level.
fn namespace_policy(
    ns: &str,
    members: &Members<'_>,
    baseline: &[PolicyRule],
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
) -> Vec<PolicyRule> {
    let mut out = Vec::new();
    for (name, spec) in members {
        for (i, rule) in spec.audit.rules.iter().enumerate() {
            let field = format!("spec.audit.rules[{i}]");
            if let Some(named) = names_credentials_above_metadata(rule) {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Refused,
                    field,
                    format!(
                        "asks for {} on {named}; Secrets, ConfigMaps, TokenReviews and service-account tokens are logged at Metadata at most so that secret values never reach the audit log (the rule was left out)",
                        rule.level
                    ),
                );
                continue;
            }
            let rendered = to_policy_rule(ns, rule);
            for b in baseline {
                if b.level != rendered.level && policy::may_overlap(&rendered, b) {
                    let shared = policy::shared_resources(&rendered, b);
                    let verbs = match policy::shared_verbs(&rendered, b) {
                        None => "all requests".to_owned(),
                        Some(v) => format!("{} requests", v.join(", ")),
                    };
                    let direction = if rendered.level < b.level {
                        "cannot lower"
                    } else {
                        "cannot raise"
                    };
                    problem(
                        reports,
                        ns,
                        name,
                        ProblemKind::Clamped,
                        field.clone(),
                        format!(
                            "asks for {} but {direction} the cluster baseline, which comes first: {verbs} on {} stay at {}",
                            rendered.level,
                            shared.join(", "),
                            b.level
                        ),
                    );
                }
            }
            out.push(rendered);
        }
    }
    let levels: Vec<(&str, AuditLevel)> = members
        .iter()
        .filter_map(|(n, s)| s.audit.level.map(|l| (n.as_str(), l)))
        .collect();
    if let Some(&(winner, level)) = levels
        .iter()
        .max_by_key(|(n, l)| (*l, std::cmp::Reverse(*n)))
    {
        for (n, l) in &levels {
            if *l != level {
                problem(
                    reports,
                    ns,
                    n,
                    ProblemKind::Overridden,
                    "spec.audit.level".into(),
                    format!(
                        "the namespace is logged at {level}, not {l}, because ContainerMonitor {winner} asks for it (the most detailed level of a namespace's monitors applies)"
                    ),
                );
            }
        }
        if level != DEFAULT_LEVEL {
            out.push(PolicyRule {
                namespaces: vec![ns.to_owned()],
                ..policy::default_rule_with(level)
            });
        }
    }
    out
}

/// The first credential resource a rule names explicitly above Metadata.
fn names_credentials_above_metadata(rule: &NamespaceAuditRule) -> Option<String> {
    if rule.level <= AuditLevel::Metadata {
        return None;
    }
    rule.resources.iter().find_map(|g| {
        g.resources.iter().find_map(|r| {
            policy::CREDENTIAL_RESOURCES
                .iter()
                .any(|(cg, cr)| *cg == g.group && cr == r)
                .then(|| {
                    if g.group.is_empty() {
                        r.clone()
                    } else {
                        format!("{r}.{}", g.group)
                    }
                })
        })
    })
}

fn to_policy_rule(ns: &str, rule: &NamespaceAuditRule) -> PolicyRule {
    PolicyRule {
        level: rule.level,
        users: rule.users.clone(),
        user_groups: rule.user_groups.clone(),
        verbs: rule.verbs.clone(),
        resources: rule
            .resources
            .iter()
            .map(|g| GroupResources {
                group: g.group.clone(),
                resources: g.resources.clone(),
                resource_names: g.resource_names.clone(),
            })
            .collect(),
        namespaces: vec![ns.to_owned()],
        non_resource_urls: Vec::new(),
        omit_stages: rule.omit_stages.clone(),
    }
}

/// The agent configuration of one namespace.
fn namespace_config(
    ns: &str,
    members: &Members<'_>,
    catalog: &Catalog,
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
) -> NamespaceConfig {
    let mut selections = Vec::new();
    for (name, spec) in members {
        if let Err(message) = check_selector(&spec.selector) {
            problem(
                reports,
                ns,
                name,
                ProblemKind::Refused,
                "spec.selector".into(),
                format!("{message}; the monitor covers no pods until it is fixed"),
            );
            continue;
        }
        selections.push(MonitorSelection {
            monitor: name.clone(),
            selector: selector_of(&spec.selector),
            runtime: spec.runtime.enabled,
            logs: LogSelection {
                enabled: spec.logs.enabled,
                include: spec.logs.containers.include.clone(),
                exclude: spec.logs.containers.exclude.clone(),
            },
        });
    }

    let inline = inline_rules(ns, members, catalog, reports);
    let inline_names: BTreeSet<&str> = inline
        .iter()
        .flat_map(|r| r.names.iter().map(String::as_str))
        .collect();
    let known = |rule: &str| catalog.is_builtin(rule) || inline_names.contains(rule);
    let unknown = |rule: &str| {
        format!(
            "no built-in rule and no inline rule of this namespace is named `{rule}`; it is kept for rules the agents load from their own files"
        )
    };

    let disables = |monitor: &str, rule: &str| {
        members
            .iter()
            .any(|(n, s)| n == monitor && s.detections.disabled.iter().any(|d| d == rule))
    };
    let mut detections = NamespaceDetections::default();
    // rule → (level, monitor that set it); the highest level wins, ties to the first name.
    let mut levels: BTreeMap<&str, (u8, &str)> = BTreeMap::new();
    for (name, spec) in members {
        for (rule, level) in &spec.detections.levels {
            if !known(rule) {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Warning,
                    format!("spec.detections.levels.{rule}"),
                    unknown(rule),
                );
            }
            let level = level.get();
            match levels.get(rule.as_str()) {
                Some(&(l, _)) if l >= level => {}
                _ => {
                    levels.insert(rule, (level, name));
                }
            }
        }
    }
    for (name, spec) in members {
        for (rule, level) in &spec.detections.levels {
            if let Some(&(l, winner)) = levels.get(rule.as_str())
                && l != level.get()
            {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Overridden,
                    format!("spec.detections.levels.{rule}"),
                    format!(
                        "`{rule}` fires at level {l} in this namespace, not {}, because ContainerMonitor {winner} asks for it (the highest level applies)",
                        level.get()
                    ),
                );
            }
        }
        for (i, rule) in spec.detections.disabled.iter().enumerate() {
            let field = format!("spec.detections.disabled[{i}]");
            if !known(rule) {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Warning,
                    field.clone(),
                    unknown(rule),
                );
            }
            match levels.get(rule.as_str()) {
                Some(&(l, winner)) if !disables(winner, rule) => problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Overridden,
                    field,
                    format!(
                        "`{rule}` stays enabled at level {l} because ContainerMonitor {winner} sets its level (an explicit level outweighs another monitor's disabled)"
                    ),
                ),
                Some(_) => {
                    if spec.detections.levels.contains_key(rule) {
                        problem(
                            reports,
                            ns,
                            name,
                            ProblemKind::Warning,
                            field,
                            format!(
                                "`{rule}` is disabled, so its level in spec.detections.levels has no effect"
                            ),
                        );
                    }
                    detections.disabled.insert(rule.clone());
                }
                None => {
                    detections.disabled.insert(rule.clone());
                }
            }
        }
        for (i, ex) in spec.detections.exceptions.iter().enumerate() {
            let field = format!("spec.detections.exceptions[{i}]");
            if ex.images.is_empty() && ex.service_accounts.is_empty() && ex.users.is_empty() {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Refused,
                    field,
                    "an exception must name at least one image, service account or user; to switch a rule off for the whole namespace, list it in detections.disabled".into(),
                );
                continue;
            }
            if !known(&ex.rule) {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Warning,
                    field,
                    unknown(&ex.rule),
                );
            }
            detections.exceptions.push(Exception {
                rule: ex.rule.clone(),
                images: ex.images.clone(),
                service_accounts: ex.service_accounts.clone(),
                users: ex.users.clone(),
                monitor: name.clone(),
            });
        }
    }
    detections.levels = levels
        .into_iter()
        .filter(|(rule, _)| !detections.disabled.contains(*rule))
        .map(|(rule, (level, _))| (rule.to_owned(), level))
        .collect();
    detections.rules = inline;
    NamespaceConfig {
        schema: NAMESPACE_CONFIG_SCHEMA.to_owned(),
        namespace: ns.to_owned(),
        monitors: selections,
        detections,
        resources: resources::namespace_resources(ns, members, reports),
    }
}

/// The namespace's inline rules that load; the others are refused on their monitor.
fn inline_rules(
    ns: &str,
    members: &Members<'_>,
    catalog: &Catalog,
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
) -> Vec<InlineRule> {
    let mut sources = Vec::new();
    let mut owners = Vec::new();
    for (name, spec) in members {
        for (i, text) in spec.detections.rules.iter().enumerate() {
            sources.push(rules::InlineSource {
                origin: format!("ContainerMonitor {ns}/{name} spec.detections.rules[{i}]"),
                text,
            });
            owners.push((name.as_str(), i));
        }
    }
    if sources.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for ((source, (name, i)), result) in sources
        .iter()
        .zip(owners)
        .zip(rules::check_namespace(&sources, catalog))
    {
        match result {
            Ok(loaded) => out.push(InlineRule {
                names: loaded.names,
                origin: source.origin.clone(),
                yaml: source.text.to_owned(),
            }),
            Err(message) => problem(
                reports,
                ns,
                name,
                ProblemKind::Refused,
                format!("spec.detections.rules[{i}]"),
                format!("{message} (the rule was left out; the monitor's other settings apply)"),
            ),
        }
    }
    out
}

/// The checks kube-apiserver applies to a built-in object's selector, which a CRD's schema
/// does not: a typo in an operator would otherwise select nothing, silently.
/// The selector in the agents' document: the same fields, in vigil-core's own type so the
/// agents need no Kubernetes API types to read it.
fn selector_of(s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: s.match_labels.clone(),
        match_expressions: s.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| LabelSelectorRequirement {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone(),
                })
                .collect()
        }),
    }
}

fn check_selector(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Result<(), String> {
    for (i, e) in s.match_expressions.iter().flatten().enumerate() {
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} needs at least one value",
                    e.operator
                ));
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(format!(
                    "matchExpressions[{i}]: operator {} takes no values",
                    e.operator
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => {
                return Err(format!(
                    "matchExpressions[{i}]: unknown operator `{other}` (In, NotIn, Exists or DoesNotExist)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
