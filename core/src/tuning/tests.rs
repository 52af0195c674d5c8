use std::collections::BTreeMap;

use super::*;
use crate::audit::{AuditParser, Position, StageFilter};

/// A privileged Deployment created in `ns` by `user`, with these container images.
fn privileged_deployment(ns: &str, user: &str, images: &[&str]) -> String {
    let containers: Vec<serde_json::Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            serde_json::json!({"name": format!("c{i}"), "image": image,
                "securityContext": {"privileged": i == 0}})
        })
        .collect();
    serde_json::json!({
        "apiVersion": "audit.k8s.io/v1", "kind": "Event", "level": "Request",
        "auditID": "6f1b7a53-3f7d-4d4e-9a3e-0b0e9d7f3a11", "stage": "ResponseComplete",
        "requestURI": format!("/apis/apps/v1/namespaces/{ns}/deployments"),
        "verb": "create", "user": {"username": user},
        "objectRef": {"resource": "deployments", "namespace": ns, "name": "d", "apiGroup": "apps"},
        "responseStatus": {"code": 201},
        "requestObject": {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "d", "namespace": ns},
            "spec": {"template": {"spec": {"containers": containers}}}},
        "stageTimestamp": "2024-05-02T10:15:30.140000Z"
    })
    .to_string()
}

fn detect(rules: &RuleSet, line: &str) -> Vec<(String, u8)> {
    let mut records = Vec::new();
    AuditParser::default()
        .parse_line(
            line.as_bytes(),
            Position {
                origin: "t",
                offset: 0,
            },
            "2024-01-01T00:00:00Z",
            &mut records,
        )
        .unwrap();
    records
        .iter()
        .flat_map(|r| rules.detect_audit(r, &mut StageFilter::new()))
        .map(|d| (d.rule, d.level))
        .collect()
}

fn fired(rules: &RuleSet, line: &str, rule: &str) -> Option<u8> {
    detect(rules, line)
        .into_iter()
        .find(|(r, _)| r == rule)
        .map(|(_, l)| l)
}

const CI: &str = r#"
schema: vigil.dev/agent-namespace/v1alpha1
namespace: ci
monitors:
- monitor: ci
  selector: {}
  runtime: false
  logs: {enabled: false}
detections:
  levels:
    container.privileged: 3
  exceptions:
  - rule: container.privileged
    images: ["docker.io/library/docker:*-dind"]
    monitor: ci
  - rule: container.privileged
    service_accounts: [runner]
    monitor: ci
"#;

#[test]
fn a_namespace_without_a_document_is_not_tuned() {
    let rules = RuleSet::builtin().unwrap();
    let line = privileged_deployment("shop", "alice", &["alpine:3.19"]);
    let before = fired(&rules, &line, "container.privileged").expect("fires untuned");
    rules
        .tuning()
        .replace(Tuning::from_documents(&[("ci.yaml".into(), CI.into())]).unwrap());
    assert_eq!(fired(&rules, &line, "container.privileged"), Some(before));
}

#[test]
fn levels_and_exceptions_apply_to_their_namespace_only() {
    let rules = RuleSet::builtin().unwrap();
    rules
        .tuning()
        .replace(Tuning::from_documents(&[("ci.yaml".into(), CI.into())]).unwrap());

    let plain = privileged_deployment("ci", "alice", &["alpine:3.19"]);
    assert_eq!(
        fired(&rules, &plain, "container.privileged"),
        Some(3),
        "the level override applies"
    );

    let dind = privileged_deployment("ci", "alice", &["docker.io/library/docker:27-dind"]);
    assert_eq!(fired(&rules, &dind, "container.privileged"), None);

    // An excepted image beside another one does not carry the other past the rule.
    let mixed = privileged_deployment(
        "ci",
        "alice",
        &["docker.io/library/docker:27-dind", "alpine:3.19"],
    );
    assert_eq!(fired(&rules, &mixed, "container.privileged"), Some(3));

    let by_runner = privileged_deployment("ci", "system:serviceaccount:ci:runner", &["alpine"]);
    assert_eq!(fired(&rules, &by_runner, "container.privileged"), None);
    // The same account name in another namespace is someone else.
    let other_runner =
        privileged_deployment("ci", "system:serviceaccount:other:runner", &["alpine"]);
    assert_eq!(
        fired(&rules, &other_runner, "container.privileged"),
        Some(3)
    );

    let c = &rules.tuning().counters;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(c.excepted.load(Relaxed), 2);
    assert!(c.relevelled.load(Relaxed) >= 3);
}

#[test]
fn disabled_rules_and_inline_rules() {
    let doc = r#"
schema: vigil.dev/agent-namespace/v1alpha1
namespace: shop
monitors: []
detections:
  disabled: [container.privileged]
  rules:
  - names: [shop.deployment-created]
    origin: ContainerMonitor shop/m spec.detections.rules[0]
    yaml: |
      title: Deployment created in shop
      name: shop.deployment-created
      id: 5a0f3c1e-0000-4000-8000-000000000001
      logsource: {product: kubernetes, service: audit}
      detection:
        selection: {action: create, object.resource: deployments}
        condition: selection
      level: medium
"#;
    let rules = RuleSet::builtin().unwrap();
    rules
        .tuning()
        .replace(Tuning::from_documents(&[("shop.yaml".into(), doc.into())]).unwrap());
    let line = privileged_deployment("shop", "alice", &["alpine"]);
    let found = detect(&rules, &line);
    assert!(
        !found.iter().any(|(r, _)| r == "container.privileged"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|(r, _)| r == "shop.deployment-created"),
        "{found:?}"
    );
    // The inline rule is the namespace's own.
    let elsewhere = privileged_deployment("web", "alice", &["alpine"]);
    let found = detect(&rules, &elsewhere);
    assert!(found.iter().any(|(r, _)| r == "container.privileged"));
    assert!(!found.iter().any(|(r, _)| r == "shop.deployment-created"));
}

#[test]
fn selection_by_labels_and_container_names() {
    let doc = r#"
schema: vigil.dev/agent-namespace/v1alpha1
namespace: web
monitors:
- monitor: frontends
  selector:
    matchLabels: {tier: frontend}
    matchExpressions:
    - {key: track, operator: NotIn, values: [canary]}
  runtime: true
  logs: {enabled: true, include: ["nginx*"], exclude: [nginx-exporter]}
- monitor: all
  selector: {}
  runtime: false
  logs: {enabled: false}
detections: {}
"#;
    let t = Tuning::from_documents(&[("web.yaml".into(), doc.into())]).unwrap();
    let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let front = labels(&[("tier", "frontend")]);
    let canary = labels(&[("tier", "frontend"), ("track", "canary")]);
    let back = labels(&[("tier", "backend")]);
    assert!(t.runtime_selected("web", Some(&front)));
    assert!(!t.runtime_selected("web", Some(&canary)));
    assert!(!t.runtime_selected("web", Some(&back)));
    assert!(
        t.runtime_selected("web", None),
        "unknown labels never hide events"
    );
    assert!(
        t.runtime_selected("other", Some(&back)),
        "untuned namespace"
    );

    assert!(t.logs_selected("web", Some(&front), "nginx"));
    assert!(t.logs_selected("web", Some(&front), "nginx-sidecar"));
    assert!(!t.logs_selected("web", Some(&front), "nginx-exporter"));
    assert!(!t.logs_selected("web", Some(&front), "app"));
    assert!(!t.logs_selected("web", Some(&back), "nginx"));
}

#[test]
fn bad_documents_are_refused_with_their_origin() {
    let cases: &[(&str, &str)] = &[
        ("not: [yaml", "a.yaml"),
        (
            "schema: vigil.dev/agent-namespace/v9\nnamespace: x\nmonitors: []\ndetections: {}\n",
            "v9",
        ),
        (
            "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: x\nmonitors: []\ndetections: {}\nsurprise: 1\n",
            "surprise",
        ),
        (
            "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: x\nmonitors: []\ndetections:\n  rules:\n  - names: [r]\n    origin: cm x/y\n    yaml: 'title: broken'\n",
            "inline rule",
        ),
        ("[1, 2, 3]", "a.yaml"),
    ];
    for (text, expect) in cases {
        let err = Tuning::from_documents(&[("a.yaml".into(), (*text).into())])
            .expect_err(text)
            .to_string();
        assert!(err.contains(expect), "{err} should mention {expect}");
    }
    let one =
        "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: x\nmonitors: []\ndetections: {}\n";
    let err =
        Tuning::from_documents(&[("a.yaml".into(), one.into()), ("b.yaml".into(), one.into())])
            .unwrap_err()
            .to_string();
    assert!(err.contains("namespace x is tuned twice"), "{err}");
}

#[test]
fn resource_thresholds_are_optional_read_and_checked() {
    // A document written before `resources` existed reads as before, and tunes no threshold.
    let t = Tuning::from_documents(&[("ci.yaml".into(), CI.into())]).unwrap();
    assert!(t.resource_thresholds().is_empty());
    let doc: NamespaceConfig = yaml_serde::from_str(CI).unwrap();
    assert_eq!(doc.resources, None);
    assert!(
        !yaml_serde::to_string(&doc).unwrap().contains("resources"),
        "an absent block is not written"
    );

    let with = format!("{CI}resources:\n  memory_limit_ratio: 0.7\n  sustain_secs: 30\n");
    let t = Tuning::from_documents(&[("ci.yaml".into(), with)]).unwrap();
    let got = t.resource_thresholds();
    assert_eq!(got.len(), 1);
    assert_eq!(got["ci"].memory_limit_ratio, Some(0.7));
    assert_eq!(got["ci"].sustain_secs, Some(30));
    assert_eq!(got["ci"].egress_spike_factor, None);

    for (block, field) in [
        ("memory_limit_ratio: 1.5", "resources.memory_limit_ratio"),
        ("cpu_throttled_ratio: 0", "resources.cpu_throttled_ratio"),
        ("egress_spike_factor: 1", "resources.egress_spike_factor"),
        ("repeat_secs: 0", "resources.repeat_secs"),
        ("memory_limit: 0.5", "unknown field `memory_limit`"),
    ] {
        let text = format!("{CI}resources:\n  {block}\n");
        let err = Tuning::from_documents(&[("ci.yaml".into(), text)])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("ci.yaml (document 1): ") && err.contains(field),
            "{block}: {err}"
        );
    }
}

#[test]
fn the_operator_rendering_is_read_back() {
    // Every document of the operator's golden renderings, as published, compiles.
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../operator/tests/golden");
    let mut read = 0;
    for entry in std::fs::read_dir(&golden).unwrap() {
        let file = entry.unwrap().path().join("agent.yaml");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let t = Tuning::from_documents(&[(file.display().to_string(), text)])
            .unwrap_or_else(|e| panic!("{e}"));
        read += t.namespaces().len();
    }
    assert!(read >= 5, "only {read} namespaces read");
}

#[test]
fn load_dir_reads_a_mounted_configmap() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("..2026_01_01.1");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("ci.yaml"), CI).unwrap();
    std::os::unix::fs::symlink(&data, dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/ci.yaml", dir.path().join("ci.yaml")).unwrap();
    let t = Tuning::load_dir(dir.path()).unwrap();
    assert_eq!(t.namespaces(), vec!["ci"]);
    assert!(Tuning::load_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn runtime_events_follow_the_pods_labels_as_they_become_known() {
    use crate::event::{Container, PodRef};
    let doc = r#"
schema: vigil.dev/agent-namespace/v1alpha1
namespace: web
monitors:
- monitor: frontends
  selector: {matchLabels: {tier: frontend}}
  runtime: true
  logs: {enabled: true}
detections: {}
"#;
    let shared = SharedTuning::default();
    let event = |ns: &str, pod: &str| Event {
        container: Some(Container {
            pod: Some(PodRef {
                namespace: Some(ns.into()),
                name: Some(pod.into()),
                ..PodRef::default()
            }),
            ..Container::default()
        }),
        ..Event::default()
    };
    assert!(
        shared.runtime_wanted(&event("web", "api-0")),
        "nothing is tuned yet"
    );
    shared.replace(Tuning::from_documents(&[("web.yaml".into(), doc.into())]).unwrap());
    assert!(
        shared.runtime_wanted(&event("web", "api-0")),
        "labels unknown: kept"
    );
    let labels =
        |v: &str| -> BTreeMap<String, String> { [("tier".to_owned(), v.to_owned())].into() };
    shared.set_pods(
        [
            (("web".to_owned(), "api-0".to_owned()), labels("backend")),
            (("web".to_owned(), "front-0".to_owned()), labels("frontend")),
        ]
        .into(),
    );
    assert!(!shared.runtime_wanted(&event("web", "api-0")));
    assert!(shared.runtime_wanted(&event("web", "front-0")));
    assert!(
        shared.runtime_wanted(&event("other", "api-0")),
        "untuned namespace"
    );
    assert!(!shared.logs_wanted("web", "api-0", "app"));
    assert!(shared.logs_wanted("web", "front-0", "app"));
    assert_eq!(shared.set_pod("web", "api-0", None), 1);
    assert!(
        shared.runtime_wanted(&event("web", "api-0")),
        "a pod gone from the list is unknown again"
    );
    assert!(
        shared.runtime_wanted(&Event::default()),
        "no pod: not selectable"
    );
}
