use std::path::PathBuf;

use super::*;
use crate::audit::{AuditParser, Position};

fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

fn detect_line(rules: &RuleSet, line: &str) -> Vec<String> {
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
        .flat_map(|r| rules.detect_audit(r, &mut crate::audit::StageFilter::new()))
        .map(|d| d.rule)
        .collect()
}

#[test]
fn every_builtin_rule_passes_its_tests() {
    let rules = RuleSet::builtin().unwrap();
    assert!(!rules.rules().is_empty());
    let report = testing::run_dir(&rules, &rules_dir().join("tests"));
    for f in report.failures() {
        eprintln!(
            "FAIL {} / {}: {}",
            f.rule,
            f.case,
            f.failure.as_deref().unwrap_or_default()
        );
    }
    assert!(report.broken_files.is_empty(), "{:?}", report.broken_files);
    assert!(report.passed());
    assert!(
        report.untested_rules.is_empty(),
        "rules without tests: {:?}",
        report.untested_rules
    );
    for rule in rules.rules() {
        let fire = report
            .cases
            .iter()
            .filter(|c| c.rule == rule.name && c.expect_fire)
            .count();
        let no_fire = report
            .cases
            .iter()
            .filter(|c| c.rule == rule.name && !c.expect_fire)
            .count();
        assert!(
            fire >= 1 && no_fire >= 1,
            "{} needs cases that fire and look-alikes that do not",
            rule.name
        );
    }
}

#[test]
fn every_builtin_rule_is_complete() {
    let rules = RuleSet::builtin().unwrap();
    for rule in rules.rules() {
        assert!(
            rule.name.contains('.'),
            "{}: the name must be a short dotted name",
            rule.origin
        );
        assert!(rule.id.is_some(), "{}: no id", rule.name);
        assert!(
            rule.description.as_deref().is_some_and(|d| d.len() > 80),
            "{}: describe why and how to tune",
            rule.name
        );
        assert!(!rule.mitre.is_empty(), "{}: no MITRE technique", rule.name);
        assert!(
            !rule.sources.is_empty(),
            "{}: its logsource matches no source",
            rule.name
        );
        assert!(rule.level > 0, "{}", rule.name);
        assert!(
            rule.origin == format!("builtin:{}.yml", rule.name),
            "{}: file must be named after the rule",
            rule.origin
        );
    }
}

/// Rules in the shapes SigmaHQ writes for `product: kubernetes, service: audit`, loaded
/// unmodified: raw field names, modifiers, and the pseudo-fields through the pipeline.
#[test]
fn sigmahq_shaped_rules_load_and_match_unmodified() {
    let doc = |title: &str, id: &str, detection: &str| {
        format!(
            "title: {title}\nid: {id}\nstatus: test\nlogsource:\n    category: application\n    product: kubernetes\n    service: audit\ndetection:\n{detection}level: low\n"
        )
    };
    let docs = vec![
        (
            "hostpath".to_owned(),
            doc(
                "hostpath",
                "00000000-0000-0000-0000-000000000001",
                "    selection:\n        verb: 'create'\n        objectRef.resource: 'pods'\n        hostPath: '*'\n    condition: selection\n",
            ),
        ),
        (
            "caps".to_owned(),
            doc(
                "caps",
                "00000000-0000-0000-0000-000000000002",
                "    selection:\n        verb: 'create'\n        objectRef.resource: 'pods'\n        capabilities: '*'\n    condition: selection\n",
            ),
        ),
        (
            "exec".to_owned(),
            doc(
                "exec",
                "00000000-0000-0000-0000-000000000003",
                "    selection:\n        verb: 'create'\n        objectRef.resource: 'pods'\n        objectRef.subresource: 'exec'\n    condition: selection\n",
            ),
        ),
        (
            "uri".to_owned(),
            doc(
                "uri",
                "00000000-0000-0000-0000-000000000004",
                "    selection:\n        requestURI|contains: 'command=%2Fbin%2Fsh'\n    condition: selection\n",
            ),
        ),
        (
            "ua".to_owned(),
            doc(
                "ua",
                "00000000-0000-0000-0000-000000000005",
                "    selection:\n        userAgent|contains: 'trufflehog'\n    condition: selection\n",
            ),
        ),
        (
            "denied".to_owned(),
            doc(
                "denied",
                "00000000-0000-0000-0000-000000000006",
                "    selection:\n        responseStatus.code:\n            - 401\n            - 403\n    condition: selection\n",
            ),
        ),
        (
            "apigroup".to_owned(),
            doc(
                "apigroup",
                "00000000-0000-0000-0000-000000000007",
                "    selection:\n        apiGroup: 'rbac.authorization.k8s.io'\n        objectRef.resource: 'clusterrolebindings'\n        verb: 'create'\n    condition: selection\n",
            ),
        ),
        (
            "ns".to_owned(),
            doc(
                "ns",
                "00000000-0000-0000-0000-000000000008",
                "    selection:\n        objectRef.namespace: 'kube-system'\n        verb: 'create'\n        objectRef.resource: 'pods'\n    condition: selection\n",
            ),
        ),
        (
            "re".to_owned(),
            doc(
                "re",
                "00000000-0000-0000-0000-000000000009",
                "    selection_request_uri:\n        requestURI|re|i: '%2f(bin%2f(ash|bash|sh))'\n    selection_status:\n        responseStatus.code: 101\n    condition: selection_request_uri and selection_status\n",
            ),
        ),
    ];
    let rules = RuleSet::from_documents(&docs).unwrap();

    let pod = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/api/v1/namespaces/kube-system/pods","userAgent":"trufflehog/3.63","objectRef":{"resource":"pods","namespace":"kube-system","apiVersion":"v1"},"responseStatus":{"code":201},"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"a","image":"x","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}],"volumes":[{"name":"r","hostPath":{"path":"/"}}]}}}"#;
    let mut got = detect_line(&rules, pod);
    got.sort();
    assert_eq!(
        got,
        [
            "00000000-0000-0000-0000-000000000001",
            "00000000-0000-0000-0000-000000000002",
            "00000000-0000-0000-0000-000000000005",
            "00000000-0000-0000-0000-000000000008"
        ]
    );

    let plain_pod = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/api/v1/namespaces/shop/pods","objectRef":{"resource":"pods","namespace":"shop"},"responseStatus":{"code":201},"requestObject":{"kind":"Pod","spec":{"containers":[{"name":"a","image":"x"}]}}}"#;
    assert!(detect_line(&rules, plain_pod).is_empty());

    let exec = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/api/v1/namespaces/shop/pods/web/exec?command=%2Fbin%2Fsh&container=web&stdin=true&tty=true","objectRef":{"resource":"pods","subresource":"exec","namespace":"shop","name":"web"},"responseStatus":{"code":101}}"#;
    let mut got = detect_line(&rules, exec);
    got.sort();
    assert_eq!(
        got,
        [
            "00000000-0000-0000-0000-000000000003",
            "00000000-0000-0000-0000-000000000004",
            "00000000-0000-0000-0000-000000000009"
        ]
    );

    let denied = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"list","requestURI":"/api/v1/secrets","objectRef":{"resource":"secrets"},"responseStatus":{"code":403,"status":"Failure"}}"#;
    assert_eq!(
        detect_line(&rules, denied),
        ["00000000-0000-0000-0000-000000000006"]
    );

    let crb = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings","objectRef":{"resource":"clusterrolebindings","apiGroup":"rbac.authorization.k8s.io"},"responseStatus":{"code":201}}"#;
    assert_eq!(
        detect_line(&rules, crb),
        ["00000000-0000-0000-0000-000000000007"]
    );
}

#[test]
fn kubernetes_rules_do_not_run_on_other_sources() {
    let docs = vec![(
        "k".to_owned(),
        "title: any verb\nid: 00000000-0000-0000-0000-0000000000aa\nlogsource:\n    product: kubernetes\n    service: audit\ndetection:\n    selection:\n        action: start\n    condition: selection\nlevel: low\n".to_owned(),
    )];
    let rules = RuleSet::from_documents(&docs).unwrap();
    let docker = Event {
        source: Source::Docker,
        action: "start".into(),
        ..Event::default()
    };
    assert!(rules.detect(&docker, None).is_empty());
    let audit = Event {
        source: Source::K8sAudit,
        action: "start".into(),
        ..Event::default()
    };
    assert_eq!(rules.detect(&audit, None).len(), 1);
}

#[test]
fn bad_rules_are_refused_with_their_origin() {
    let bad = |text: &str| {
        RuleSet::from_documents(&[("my/rule.yml".to_owned(), text.to_owned())])
            .unwrap_err()
            .to_string()
    };
    let err = bad("title: x\nlogsource: {product: vigil}\ndetection: {condition: nothing}\n");
    assert!(err.contains("my/rule.yml"), "{err}");
    let err = bad(
        "title: x\nname: a.b\nwazuh_level: 99\nlogsource: {product: vigil}\ndetection: {s: {action: get}, condition: s}\n",
    );
    assert!(err.contains("wazuh_level"), "{err}");
    let err = bad(": : not yaml [");
    assert!(err.contains("my/rule.yml"), "{err}");
    let twice = "title: x\nname: a.b\nlogsource: {product: vigil}\ndetection: {s: {action: get}, condition: s}\n";
    let err =
        RuleSet::from_documents(&[("one".into(), twice.into()), ("two".into(), twice.into())])
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("defined twice") && err.contains("one") && err.contains("two"),
        "{err}"
    );
}

#[test]
fn metadata_comes_from_the_rule() {
    let rules = RuleSet::builtin().unwrap();
    let r = rules
        .rules()
        .iter()
        .find(|r| r.name == "container.privileged")
        .unwrap();
    assert_eq!(r.level, 12);
    assert_eq!(r.severity, Severity::High);
    assert!(r.mitre.contains(&"T1610".to_owned()));
    assert!(r.tags.contains(&"attack.privilege-escalation".to_owned()));
    assert_eq!(r.sources.len(), SOURCES.len());
}

#[test]
fn registries_are_read_as_the_runtimes_do() {
    assert_eq!(image_registry("nginx"), "docker.io");
    assert_eq!(image_registry("alice/tool:1"), "docker.io");
    assert_eq!(image_registry("quay.io/x/y@sha256:ab"), "quay.io");
    assert_eq!(image_registry("10.0.0.5:5000/x"), "10.0.0.5:5000");
    assert_eq!(image_registry("localhost/x"), "localhost");
    let allowed = default_allowed_registries();
    assert!(registry_allowed("nginx:1.27", &allowed));
    assert!(registry_allowed("myacr.azurecr.io/app:1", &allowed));
    assert!(!registry_allowed("azurecr.io.evil.com/app", &allowed));
    assert!(!registry_allowed("evilazurecr.io/app", &allowed));
    assert!(!registry_allowed("203.0.113.9:5000/miner", &allowed));
}

/// The gate index is an optimization only: on a realistic mix of events (the generator's,
/// with a high attack share, plus every fixture) it must give exactly what evaluating every
/// rule gives.
#[test]
fn gated_evaluation_equals_evaluating_every_rule() {
    let rules = RuleSet::builtin().unwrap();
    let mut input = crate::audit::synth::generate(
        crate::audit::synth::SynthConfig {
            seed: 7,
            attack_ratio: 0.3,
        },
        4_000_000,
    );
    for f in
        std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit"))
            .unwrap()
    {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "jsonl" || e == "log") {
            input.extend(std::fs::read(p).unwrap());
            input.push(b'\n');
        }
    }
    input.extend(std::fs::read(rules_dir().join("../examples/audit/attack-story.log")).unwrap());
    let parser = AuditParser::default();
    let (mut events, mut fired) = (0, 0);
    for line in input.split(|b| *b == b'\n') {
        let mut records = Vec::new();
        if parser
            .parse_line(
                line,
                Position {
                    origin: "t",
                    offset: 0,
                },
                "t",
                &mut records,
            )
            .is_err()
        {
            continue;
        }
        for r in &records {
            let gated = rules.detect(&r.event, Some(r));
            let all = rules.detect_ungated(&r.event, Some(r));
            assert_eq!(gated, all, "{:?}", r.audit());
            events += 1;
            fired += usize::from(!all.is_empty());
        }
    }
    assert!(
        events > 3000 && fired > 300,
        "{events} events, {fired} fired: the comparison must cover detections"
    );
}

/// rsigma 0.15's own index misses events that match only the non-exact branch of an OR'd
/// list of mappings, or a wildcard member of a value list; the gate index must not.
#[test]
fn mixed_exact_and_pattern_selections_are_never_pruned_away() {
    let doc = |id: &str, detection: &str| {
        (
            id.to_owned(),
            format!(
                "title: {id}\nid: {id}\nlogsource: {{product: vigil, service: k8s_audit}}\ndetection:\n{detection}level: low\n"
            ),
        )
    };
    let rules = RuleSet::from_documents(&[
        doc("00000000-0000-0000-0000-0000000000b1", "  sel:\n    - actor.user|startswith: dev-\n    - actor.user: root\n  condition: sel\n"),
        doc("00000000-0000-0000-0000-0000000000b2", "  sel:\n    actor.user: [root, 'dev-*']\n  condition: sel\n"),
        doc("00000000-0000-0000-0000-0000000000b3", "  sel:\n    - {object.resource: pods, action: create}\n    - {actor.user|startswith: dev-}\n  condition: sel\n"),
    ])
    .unwrap();
    let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","requestURI":"/api/v1/namespaces/a/configmaps/x","user":{"username":"dev-alice"},"objectRef":{"resource":"configmaps","namespace":"a","name":"x"},"responseStatus":{"code":200}}"#;
    let mut got = detect_line(&rules, line);
    got.sort();
    assert_eq!(
        got,
        [
            "00000000-0000-0000-0000-0000000000b1",
            "00000000-0000-0000-0000-0000000000b2",
            "00000000-0000-0000-0000-0000000000b3"
        ]
    );
}
