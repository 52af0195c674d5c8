use super::*;
use crate::manifests;
use crate::render::{self, Catalog};

const GOOD: &str = "
apiVersion: vigil.dev/v1alpha1
kind: ContainerMonitor
metadata: {name: web, namespace: shop}
spec:
  audit: {level: Request}
";

const REFUSED_RULE: &str = "
apiVersion: vigil.dev/v1alpha1
kind: ContainerMonitor
metadata: {name: lab, namespace: research}
spec:
  detections:
    rules:
      - |
        title: Not YAML at all
        detection: [unclosed
";

fn published(yaml: &str, outcome: Result<(), String>) -> Published {
    let monitors = manifests::parse(yaml, "test", "default").unwrap();
    let rendered = render::render(&monitors, &Catalog::builtin().unwrap()).unwrap();
    Published {
        generations: rendered
            .monitors
            .keys()
            .map(|k| (k.clone(), Some(1)))
            .collect(),
        rendered: Arc::new(rendered),
        outcome,
    }
}

fn places() -> Places {
    Places {
        policy_configmap: "vigil-system/vigil-audit-policy".into(),
        control_plane_label: "node-role.kubernetes.io/control-plane".into(),
    }
}

fn key(ns: &str, name: &str) -> MonitorRef {
    MonitorRef {
        namespace: ns.into(),
        name: name.into(),
    }
}

fn time(s: &str) -> Time {
    Time(s.parse().unwrap())
}

fn nodes(cp: &[&str], reported: &[(&str, &str)]) -> NodeReport {
    NodeReport {
        control_plane: cp.iter().map(|s| (*s).to_owned()).collect(),
        reported: reported
            .iter()
            .map(|(n, h)| ((*n).to_owned(), (*h).to_owned()))
            .collect(),
    }
}

fn cond<'a>(s: &'a ContainerMonitorStatus, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = find(s, t).unwrap();
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn applied_everywhere_is_ready() {
    let p = published(GOOD, Ok(()));
    let hash = p.rendered.policy_hash.clone();
    let n = nodes(&["cp-1", "cp-2"], &[("cp-1", &hash), ("cp-2", &hash)]);
    let s = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &n,
        &places(),
        &ContainerMonitorStatus::default(),
        &time("2030-01-01T00:00:00Z"),
    );
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.policy_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(
        s.nodes,
        Some(NodesStatus {
            applied: 2,
            total: 2
        })
    );
    assert_eq!(cond(&s, "Ready").0, "True");
    assert_eq!(cond(&s, "PolicyRendered").1, "Rendered");
    assert_eq!(cond(&s, "PolicyApplied").1, "Applied");
}

#[test]
fn a_node_on_an_older_policy_is_named() {
    let p = published(GOOD, Ok(()));
    let hash = p.rendered.policy_hash.clone();
    let n = nodes(
        &["cp-1", "cp-2", "cp-3"],
        &[("cp-1", &hash), ("cp-2", "0ld"), ("worker-1", &hash)],
    );
    let s = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &n,
        &places(),
        &ContainerMonitorStatus::default(),
        &time("2030-01-01T00:00:00Z"),
    );
    assert_eq!(
        s.nodes,
        Some(NodesStatus {
            applied: 1,
            total: 3
        })
    );
    let (status, reason, message) = cond(&s, "PolicyApplied");
    assert_eq!((status, reason), ("False", "Pending"));
    assert!(message.contains("runs on 1 of 3"), "{message}");
    assert!(message.ends_with("not yet on cp-2, cp-3"), "{message}");
    assert_eq!(cond(&s, "Ready").0, "False");
}

#[test]
fn a_refused_inline_rule_is_reported_with_the_loader_message() {
    let p = published(REFUSED_RULE, Ok(()));
    let s = desired(
        &key("research", "lab"),
        Some(1),
        &p,
        &NodeReport::default(),
        &places(),
        &ContainerMonitorStatus::default(),
        &time("2030-01-01T00:00:00Z"),
    );
    let (status, reason, message) = cond(&s, "PolicyRendered");
    assert_eq!((status, reason), ("False", "Degraded"));
    assert!(message.contains("spec.detections.rules[0]"), "{message}");
    assert!(message.contains("YAML parse error"), "{message}");
    assert_eq!(cond(&s, "Ready").1, "Degraded");
    // No control-plane node: nobody can install the policy, which is not a failure.
    assert_eq!(cond(&s, "PolicyApplied").0, "Unknown");
}

#[test]
fn a_failed_publish_is_not_ready() {
    let p = published(GOOD, Err("forbidden".into()));
    let s = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &nodes(&["cp-1"], &[]),
        &places(),
        &ContainerMonitorStatus::default(),
        &time("2030-01-01T00:00:00Z"),
    );
    let (status, reason, message) = cond(&s, "PolicyApplied");
    assert_eq!((status, reason), ("False", "PublishFailed"));
    assert!(message.contains("vigil-system/vigil-audit-policy: forbidden"));
    assert_eq!(cond(&s, "Ready").1, "PublishFailed");
}

#[test]
fn the_same_inputs_give_the_status_already_written() {
    let p = published(GOOD, Ok(()));
    let n = nodes(&["cp-1"], &[]);
    let first = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &n,
        &places(),
        &ContainerMonitorStatus::default(),
        &time("2030-01-01T00:00:00Z"),
    );
    let again = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &n,
        &places(),
        &first,
        &time("2030-01-01T01:00:00Z"),
    );
    assert_eq!(first, again);

    // A condition that changes status gets the new time; the others keep theirs.
    let hash = p.rendered.policy_hash.clone();
    let applied = desired(
        &key("shop", "web"),
        Some(1),
        &p,
        &nodes(&["cp-1"], &[("cp-1", &hash)]),
        &places(),
        &first,
        &time("2030-01-01T02:00:00Z"),
    );
    let at = |s: &ContainerMonitorStatus, t: &str| find(s, t).unwrap().last_transition_time.clone();
    assert_eq!(at(&applied, "PolicyApplied"), time("2030-01-01T02:00:00Z"));
    assert_eq!(at(&applied, "PolicyRendered"), time("2030-01-01T00:00:00Z"));
}

#[test]
fn long_messages_are_cut_at_a_character_boundary() {
    let long = "é".repeat(MAX_MESSAGE_BYTES);
    let out = cap(long);
    assert!(out.len() <= MAX_MESSAGE_BYTES);
    assert!(out.ends_with("(truncated)"));
}
