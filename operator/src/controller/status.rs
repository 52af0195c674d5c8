//! A ContainerMonitor's status as a pure function of the last publish, the agents' reports
//! and the status it has now.
//!
//! Conditions keep their `lastTransitionTime` while their status stays the same, so the
//! status computed twice from the same inputs is equal to the one already written and the
//! controller can compare instead of writing: a write that changes nothing would wake every
//! watcher of ContainerMonitors for no reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::crd::{ContainerMonitorStatus, NodesStatus, condition};
use crate::render::{MonitorRef, ProblemKind, Rendered};

/// Longest condition message, in bytes. The API server accepts 32 KiB; a status that large
/// would be read by nobody and stored in every watch cache.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// How many nodes a message names before it says "and N more".
const MAX_NODES_NAMED: usize = 10;

/// The outcome of one render and publish of the whole set of ContainerMonitors.
#[derive(Debug, Clone)]
pub struct Published {
    /// What was rendered.
    pub rendered: Arc<Rendered>,
    /// The `metadata.generation` of each monitor rendered: a monitor whose generation is not
    /// the one here waits for the next render rather than reporting on an older spec.
    pub generations: BTreeMap<MonitorRef, Option<i64>>,
    /// Whether the ConfigMaps were written; the error as a sentence otherwise.
    pub outcome: Result<(), String>,
}

/// What the agents on control-plane nodes report (see the README's ConfigMap contract).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeReport {
    /// Names of the nodes carrying the control-plane label.
    pub control_plane: BTreeSet<String>,
    /// Node name → policy hash the node's agent last applied.
    pub reported: BTreeMap<String, String>,
}

impl NodeReport {
    /// Control-plane nodes running `hash`, and those that are not.
    pub fn split(&self, hash: &str) -> (Vec<&str>, Vec<&str>) {
        self.control_plane
            .iter()
            .map(String::as_str)
            .partition(|n| self.reported.get(*n).is_some_and(|h| h == hash))
    }
}

/// Names the status messages point at.
#[derive(Debug, Clone)]
pub struct Places {
    /// `NAMESPACE/NAME` of the policy ConfigMap.
    pub policy_configmap: String,
    /// The label that marks control-plane nodes.
    pub control_plane_label: String,
}

/// The status `monitor` should have.
pub fn desired(
    monitor: &MonitorRef,
    generation: Option<i64>,
    published: &Published,
    nodes: &NodeReport,
    places: &Places,
    current: &ContainerMonitorStatus,
    now: &Time,
) -> ContainerMonitorStatus {
    let hash = &published.rendered.policy_hash;
    let short = short_hash(hash);
    let problems = published
        .rendered
        .monitors
        .get(monitor)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let refused: Vec<String> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Refused)
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    let notes: Vec<String> = problems
        .iter()
        .filter(|p| p.kind != ProblemKind::Refused)
        .map(ToString::to_string)
        .collect();

    let rendered = if !refused.is_empty() {
        (
            "False",
            "Degraded",
            cap(format!(
                "{} part(s) refused and left out, the rest applies: {}",
                refused.len(),
                refused.join("; ")
            )),
        )
    } else if !notes.is_empty() {
        (
            "True",
            "RenderedWithWarnings",
            cap(format!(
                "rendered into audit policy sha256:{short} and the agent configuration of namespace {}; {}",
                monitor.namespace,
                notes.join("; ")
            )),
        )
    } else {
        (
            "True",
            "Rendered",
            format!(
                "rendered into audit policy sha256:{short} and the agent configuration of namespace {}",
                monitor.namespace
            ),
        )
    };

    let (on, pending) = nodes.split(hash);
    let applied = match &published.outcome {
        Err(e) => (
            "False",
            "PublishFailed",
            cap(format!(
                "the rendered policy could not be published in ConfigMap {}: {e}",
                places.policy_configmap
            )),
        ),
        Ok(()) if nodes.control_plane.is_empty() => (
            "Unknown",
            "NoControlPlaneNodes",
            format!(
                "policy sha256:{short} is published in ConfigMap {}, but no node is labelled {}: with a managed control plane no agent can install it; send the API server's audit events to the webhook collector instead",
                places.policy_configmap, places.control_plane_label
            ),
        ),
        Ok(()) if pending.is_empty() => (
            "True",
            "Applied",
            format!(
                "policy sha256:{short} runs on all {} control-plane node(s)",
                on.len()
            ),
        ),
        Ok(()) => (
            "False",
            "Pending",
            format!(
                "policy sha256:{short} runs on {} of {} control-plane node(s); not yet on {}",
                on.len(),
                nodes.control_plane.len(),
                name_some(&pending)
            ),
        ),
    };

    let ready = if rendered.0 == "False" {
        (
            "False",
            "Degraded",
            "parts of this monitor were refused; see condition PolicyRendered".to_owned(),
        )
    } else if applied.0 == "False" {
        (
            "False",
            applied.1,
            "the audit policy is not in effect everywhere yet; see condition PolicyApplied"
                .to_owned(),
        )
    } else if applied.0 == "Unknown" {
        (
            "True",
            "AgentConfigured",
            "the agents' configuration is published; whether the audit policy runs is unknown, see condition PolicyApplied".to_owned(),
        )
    } else {
        (
            "True",
            "Ready",
            "rendered, and the audit policy runs on every control-plane node".to_owned(),
        )
    };

    let make = |type_: &str, (status, reason, message): (&str, &str, String)| {
        let previous = current.conditions.iter().find(|c| c.type_ == type_);
        Condition {
            last_transition_time: match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            },
            message,
            observed_generation: generation,
            reason: reason.to_owned(),
            status: status.to_owned(),
            type_: type_.to_owned(),
        }
    };
    ContainerMonitorStatus {
        observed_generation: generation,
        conditions: vec![
            make(condition::READY, ready),
            make(condition::POLICY_RENDERED, rendered),
            make(condition::POLICY_APPLIED, applied),
        ],
        policy_hash: Some(hash.clone()),
        nodes: Some(NodesStatus {
            applied: i32::try_from(on.len()).unwrap_or(i32::MAX),
            total: i32::try_from(nodes.control_plane.len()).unwrap_or(i32::MAX),
        }),
    }
}

/// The first 12 hex digits: enough to tell policies apart in a message.
fn short_hash(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

fn name_some(nodes: &[&str]) -> String {
    let mut s = nodes
        .iter()
        .take(MAX_NODES_NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if nodes.len() > MAX_NODES_NAMED {
        s.push_str(&format!(" and {} more", nodes.len() - MAX_NODES_NAMED));
    }
    s
}

fn cap(message: String) -> String {
    truncate(message, MAX_MESSAGE_BYTES)
}

/// `message` cut at a character boundary to at most `max` bytes, saying so.
pub fn truncate(mut message: String, max: usize) -> String {
    const MORE: &str = " …(truncated)";
    if message.len() > max {
        let mut end = max.saturating_sub(MORE.len());
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(MORE);
    }
    message
}

/// The condition of `type_`, if any.
pub fn find<'a>(status: &'a ContainerMonitorStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests;
