use super::policy::RequestAttributes;
use super::*;
use crate::crd::{ContainerMonitor, ResourcesSpec};

fn monitor(ns: &str, name: &str, spec_yaml: &str) -> ContainerMonitor {
    let spec: ContainerMonitorSpec = yaml_serde::from_str(spec_yaml).unwrap();
    let mut m = ContainerMonitor::new(name, spec);
    m.metadata.namespace = Some(ns.to_owned());
    m
}

fn catalog() -> Catalog {
    Catalog::builtin().unwrap()
}

fn req<'a>(
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    sub: Option<&'a str>,
    ns: Option<&'a str>,
) -> RequestAttributes<'a> {
    RequestAttributes {
        user: "alice",
        groups: &["system:authenticated"],
        verb,
        group,
        resource,
        subresource: sub,
        namespace: ns,
        name: Some("x"),
    }
}

/// What the built-in detections read, and the least level that shows it to them.
const DETECTIONS_NEED: &[(&str, &str, &str, Option<&str>, AuditLevel)] = &[
    (
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        None,
        AuditLevel::Request,
    ),
    (
        "patch",
        "rbac.authorization.k8s.io",
        "roles",
        None,
        AuditLevel::Request,
    ),
    ("create", "", "pods", None, AuditLevel::Request),
    ("patch", "apps", "deployments", None, AuditLevel::Request),
    ("create", "batch", "cronjobs", None, AuditLevel::Request),
    (
        "update",
        "",
        "pods",
        Some("ephemeralcontainers"),
        AuditLevel::Request,
    ),
    ("create", "", "services", None, AuditLevel::Request),
    (
        "update",
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        None,
        AuditLevel::Request,
    ),
    (
        "update",
        "certificates.k8s.io",
        "certificatesigningrequests",
        Some("approval"),
        AuditLevel::Request,
    ),
    ("create", "", "pods", Some("exec"), AuditLevel::Metadata),
    ("get", "", "pods", Some("exec"), AuditLevel::Metadata),
    ("get", "", "pods", Some("attach"), AuditLevel::Metadata),
    (
        "create",
        "",
        "pods",
        Some("portforward"),
        AuditLevel::Metadata,
    ),
    (
        "create",
        "",
        "serviceaccounts",
        Some("token"),
        AuditLevel::Metadata,
    ),
    ("create", "", "serviceaccounts", None, AuditLevel::Metadata),
    ("delete", "", "events", None, AuditLevel::Metadata),
    ("delete", "batch", "cronjobs", None, AuditLevel::Metadata),
    ("get", "", "secrets", None, AuditLevel::Metadata),
];

#[test]
fn the_baseline_shows_detections_what_they_need_even_where_a_namespace_asks_for_none() {
    let silent = monitor(
        "quiet",
        "all-off",
        "audit:\n  level: None\n  rules:\n  - level: None\n",
    );
    let r = render(&[silent], &catalog()).unwrap();
    for (verb, group, resource, sub, need) in DETECTIONS_NEED {
        for ns in ["quiet", "other"] {
            let got = r
                .policy
                .level_for(&req(verb, group, resource, *sub, Some(ns)));
            assert!(
                got >= *need,
                "{verb} {group}/{resource}/{sub:?} in {ns}: logged at {got}, detections need {need}"
            );
        }
    }
    // What is not in the baseline follows the namespace's wish.
    assert_eq!(
        r.policy
            .level_for(&req("get", "", "pods", None, Some("quiet"))),
        AuditLevel::None
    );
    assert_eq!(
        r.policy
            .level_for(&req("get", "", "pods", None, Some("other"))),
        AuditLevel::Metadata
    );
}

#[test]
fn secrets_configmaps_and_tokenreviews_never_go_above_metadata() {
    let greedy = monitor(
        "greedy",
        "everything",
        "audit:\n  level: RequestResponse\n  rules:\n  - level: RequestResponse\n  - level: RequestResponse\n    resources: [{group: '', resources: ['*']}]\n",
    );
    let r = render(&[greedy], &catalog()).unwrap();
    for (group, resource, sub) in [
        ("", "secrets", None),
        ("", "configmaps", None),
        ("", "serviceaccounts", Some("token")),
        ("authentication.k8s.io", "tokenreviews", None),
    ] {
        for verb in ["get", "list", "create", "update", "patch", "delete"] {
            for ns in [Some("greedy"), None] {
                let got = r.policy.level_for(&req(verb, group, resource, sub, ns));
                assert!(
                    got <= AuditLevel::Metadata,
                    "{verb} {resource} in {ns:?} logged at {got}"
                );
            }
        }
    }
    let problems = &r.monitors[&MonitorRef {
        namespace: "greedy".into(),
        name: "everything".into(),
    }];
    assert!(
        problems
            .iter()
            .any(|p| p.kind == ProblemKind::Clamped && p.message.contains("secrets")),
        "{problems:?}"
    );
}

#[test]
fn a_rule_naming_secrets_above_metadata_is_refused_and_the_rest_is_kept() {
    let m = monitor(
        "team",
        "bodies",
        "audit:\n  rules:\n  - level: Request\n    resources: [{resources: [secrets, services]}]\n  - level: Request\n    verbs: [create]\n    resources: [{group: apps, resources: [deployments]}]\n",
    );
    let r = render(&[m], &catalog()).unwrap();
    let problems = &r.monitors[&MonitorRef {
        namespace: "team".into(),
        name: "bodies".into(),
    }];
    let refused: Vec<_> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Refused)
        .collect();
    assert_eq!(refused.len(), 1, "{problems:?}");
    assert_eq!(refused[0].field, "spec.audit.rules[0]");
    assert!(refused[0].message.contains("secrets"));
    let team_rules: Vec<_> = r
        .policy
        .rules
        .iter()
        .filter(|rule| rule.namespaces == ["team"])
        .collect();
    assert_eq!(team_rules.len(), 1);
    assert_eq!(team_rules[0].verbs, ["create"]);
    assert!(r.any_refused());
}

#[test]
fn namespace_rules_only_match_their_namespace_and_follow_the_baseline() {
    let a = monitor(
        "a",
        "m",
        "audit:\n  rules:\n  - level: RequestResponse\n    resources: [{group: apps, resources: [deployments]}]\n",
    );
    let r = render(&[a], &catalog()).unwrap();
    let baseline = policy::baseline();
    assert_eq!(r.policy.rules[..baseline.len()], baseline[..]);
    assert_eq!(r.policy.rules.last(), Some(&policy::default_rule()));
    for rule in &r.policy.rules[baseline.len()..r.policy.rules.len() - 1] {
        assert_eq!(rule.namespaces, ["a"]);
    }
    assert_eq!(
        r.policy
            .level_for(&req("get", "apps", "deployments", None, Some("a"))),
        AuditLevel::RequestResponse
    );
    assert_eq!(
        r.policy
            .level_for(&req("get", "apps", "deployments", None, Some("b"))),
        AuditLevel::Metadata
    );
    assert_eq!(
        r.policy.omit_stages,
        [crate::crd::AuditStage::RequestReceived]
    );
}

#[test]
fn monitors_of_one_namespace_combine_the_more_watchful_way() {
    let a = monitor(
        "shop",
        "a",
        "audit: {level: Request}\ndetections:\n  disabled: [container.exec, container.shell]\n  levels: {pod.port-forward: 3, container.attach: 9}\n",
    );
    let b = monitor(
        "shop",
        "b",
        "audit: {level: None}\ndetections:\n  levels: {pod.port-forward: 10, container.shell: 4}\n  exceptions:\n  - {rule: container.exec, serviceAccounts: [ci]}\n",
    );
    let r = render(&[b, a], &catalog()).unwrap();
    assert_eq!(
        r.policy
            .level_for(&req("get", "", "pods", None, Some("shop"))),
        AuditLevel::Request
    );
    let d = &r.namespaces["shop"].detections;
    assert_eq!(d.levels.get("pod.port-forward"), Some(&10));
    assert_eq!(d.levels.get("container.attach"), Some(&9));
    assert!(d.disabled.contains("container.exec"));
    assert!(!d.disabled.contains("container.shell"));
    assert_eq!(d.levels.get("container.shell"), Some(&4));
    assert_eq!(d.exceptions.len(), 1);
    assert_eq!(d.exceptions[0].monitor, "b");
    let of = |name: &str| {
        r.monitors[&MonitorRef {
            namespace: "shop".into(),
            name: name.into(),
        }]
            .clone()
    };
    let a_problems = of("a");
    let b_problems = of("b");
    assert!(a_problems.iter().any(|p| p.kind == ProblemKind::Overridden
        && p.field == "spec.detections.levels.pod.port-forward"));
    assert!(
        a_problems
            .iter()
            .any(|p| p.kind == ProblemKind::Overridden && p.field == "spec.detections.disabled[1]")
    );
    assert!(
        b_problems
            .iter()
            .any(|p| p.kind == ProblemKind::Overridden && p.field == "spec.audit.level")
    );
    let names: Vec<_> = r.namespaces["shop"]
        .monitors
        .iter()
        .map(|m| m.monitor.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn resource_thresholds_of_two_monitors_merge_field_by_field_to_the_most_sensitive() {
    let a = monitor(
        "shop",
        "a",
        "resources:\n  memoryLimitRatio: 0.8\n  sustainSeconds: 300\n  egressSpikeFactor: 20\n  baselineHalfLifeSeconds: 600\n",
    );
    let b = monitor(
        "shop",
        "b",
        "resources:\n  memoryLimitRatio: 0.95\n  sustainSeconds: 60\n  enabled: false\n  baselineHalfLifeSeconds: 7200\n",
    );
    let c = monitor("other", "c", "runtime: {enabled: true}\n");
    for order in [
        vec![a.clone(), b.clone(), c.clone()],
        vec![c.clone(), b.clone(), a.clone()],
    ] {
        let r = render(&order, &catalog()).unwrap();
        let got = r.namespaces["shop"].resources.clone().unwrap();
        assert_eq!(
            got,
            vigil_core::tuning::ThresholdSettings {
                enabled: Some(false),
                memory_limit_ratio: Some(0.8),
                sustain_secs: Some(60),
                egress_spike_factor: Some(20.0),
                baseline_half_life_secs: Some(7200),
                ..Default::default()
            },
            "lowest ratio and sustain, the only factor, the longest half-life"
        );
        assert_eq!(
            r.namespaces["other"].resources, None,
            "a namespace whose monitors set nothing keeps the agents' settings"
        );
        let problems = |name: &str| {
            r.monitors[&MonitorRef {
                namespace: "shop".into(),
                name: name.into(),
            }]
                .iter()
                .filter(|p| p.kind == ProblemKind::Overridden)
                .map(|p| p.field.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            problems("a"),
            [
                "spec.resources.baselineHalfLifeSeconds",
                "spec.resources.sustainSeconds"
            ]
        );
        assert_eq!(problems("b"), ["spec.resources.memoryLimitRatio"]);
        let yaml = r.namespace_yaml("shop").unwrap().unwrap();
        assert!(
            yaml.contains("resources:\n  enabled: false\n  memory_limit_ratio: 0.8\n"),
            "{yaml}"
        );
        // What the agents read back is what was rendered.
        let back =
            vigil_core::tuning::Tuning::from_documents(&[("shop.yaml".into(), yaml)]).unwrap();
        assert_eq!(back.resource_thresholds()["shop"], &got);
    }
}

#[test]
fn out_of_range_resources_are_refused_and_the_rest_of_the_monitor_applies() {
    // Files given to `vigil-operator render` never met the API server's validation.
    let bad = monitor(
        "shop",
        "bad",
        "logs: {enabled: false}\nresources:\n  memoryLimitRatio: 1.5\n  sustainSeconds: 30\n",
    );
    let good = monitor("shop", "good", "resources:\n  sustainSeconds: 90\n");
    let r = render(&[bad, good], &catalog()).unwrap();
    let problems = &r.monitors[&MonitorRef {
        namespace: "shop".into(),
        name: "bad".into(),
    }];
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::Refused);
    assert_eq!(problems[0].field, "spec.resources.memoryLimitRatio");
    let ns = &r.namespaces["shop"];
    assert_eq!(
        ns.resources.as_ref().unwrap().sustain_secs,
        Some(90),
        "the refused block's 30 s does not count"
    );
    assert!(!ns.monitors[0].logs.enabled);
}

const GOOD_RULE: &str = "title: Curl in a container\nname: team.curl\nid: 0b1e2e7a-6f0b-4a43-9d6b-8c1f0e2d3a4b\nlogsource: {product: vigil}\ndetection:\n  sel:\n    process.command_line|contains: curl\n  condition: sel\nlevel: low\n";

#[test]
fn inline_rules_load_with_the_agents_loader_and_a_bad_one_is_refused_alone() {
    let bad_condition = GOOD_RULE
        .replace("condition: sel", "condition: nothing_here")
        .replace("team.curl", "team.broken")
        .replace("0b1e2e7a", "1b1e2e7a");
    let clash = GOOD_RULE
        .replace("team.curl", "container.exec")
        .replace("0b1e2e7a", "2b1e2e7a");
    let m = monitor(
        "dev",
        "rules",
        &format!(
            "detections:\n  rules:\n  - {}\n  - {}\n  - {}\n  - 'not: [valid'\n",
            serde_json::to_string(GOOD_RULE).unwrap(),
            serde_json::to_string(&bad_condition).unwrap(),
            serde_json::to_string(&clash).unwrap(),
        ),
    );
    let other = monitor("dev", "z-other", "runtime: {enabled: false}\n");
    let r = render(&[m, other], &catalog()).unwrap();
    let d = &r.namespaces["dev"].detections;
    assert_eq!(d.rules.len(), 1);
    assert_eq!(d.rules[0].names, ["team.curl"]);
    let problems = &r.monitors[&MonitorRef {
        namespace: "dev".into(),
        name: "rules".into(),
    }];
    let refused: Vec<&str> = problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Refused)
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(
        refused,
        [
            "spec.detections.rules[1]",
            "spec.detections.rules[2]",
            "spec.detections.rules[3]"
        ]
    );
    assert!(problems.iter().any(|p| p.message.contains("built-in")));
    // The other monitor of the namespace is untouched.
    assert!(
        r.monitors[&MonitorRef {
            namespace: "dev".into(),
            name: "z-other".into()
        }]
            .is_empty()
    );
    assert!(!r.namespaces["dev"].monitors[1].runtime);
}

#[test]
fn the_same_inline_rule_name_in_two_namespaces_is_fine_but_not_twice_in_one() {
    let text = serde_json::to_string(GOOD_RULE).unwrap();
    let spec = format!("detections:\n  rules: [{text}]\n");
    let r = render(
        &[
            monitor("a", "m", &spec),
            monitor("b", "m", &spec),
            monitor("b", "n", &spec),
        ],
        &catalog(),
    )
    .unwrap();
    assert_eq!(r.namespaces["a"].detections.rules.len(), 1);
    assert_eq!(r.namespaces["b"].detections.rules.len(), 1);
    let n = &r.monitors[&MonitorRef {
        namespace: "b".into(),
        name: "n".into(),
    }];
    assert!(
        n.iter()
            .any(|p| p.kind == ProblemKind::Refused && p.message.contains("already defined")),
        "{n:?}"
    );
}

#[test]
fn unknown_rule_names_are_warned_about_and_kept() {
    let m = monitor(
        "a",
        "m",
        "detections:\n  disabled: [contianer.exec]\n  exceptions:\n  - {rule: container.exec, images: ['registry.example.com/ci/*']}\n",
    );
    let r = render(&[m], &catalog()).unwrap();
    let problems = &r.monitors[&MonitorRef {
        namespace: "a".into(),
        name: "m".into(),
    }];
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].kind, ProblemKind::Warning);
    assert!(problems[0].message.contains("contianer.exec"));
    assert!(
        r.namespaces["a"]
            .detections
            .disabled
            .contains("contianer.exec")
    );
    assert!(!r.any_refused());
}

#[test]
fn a_bad_selector_is_refused_with_the_expression_named() {
    let m = monitor(
        "a",
        "m",
        "selector:\n  matchExpressions:\n  - {key: app, operator: in, values: [web]}\n",
    );
    let r = render(&[m], &catalog()).unwrap();
    let problems = &r.monitors[&MonitorRef {
        namespace: "a".into(),
        name: "m".into(),
    }];
    assert_eq!(problems[0].field, "spec.selector");
    assert!(problems[0].message.contains("`in`"), "{problems:?}");
    assert!(r.namespaces["a"].monitors.is_empty());
}

#[test]
fn empty_input_gives_the_baseline_and_the_default() {
    let r = render(&[], &catalog()).unwrap();
    assert_eq!(r.policy.rules.len(), policy::baseline().len() + 1);
    assert!(r.namespaces.is_empty());
    assert_eq!(r.policy_hash, hash_hex(r.policy_yaml.as_bytes()));
    assert_eq!(r.policy_hash.len(), 64);
}

#[test]
fn the_policy_yaml_reads_back_as_the_policy() {
    let m = monitor(
        "a",
        "m",
        "audit:\n  level: Request\n  rules:\n  - {level: None, users: ['system:serviceaccount:a:noisy'], omitStages: [ResponseStarted]}\n",
    );
    let r = render(&[m], &catalog()).unwrap();
    let back: Policy = yaml_serde::from_str(&r.policy_yaml).unwrap();
    assert_eq!(back, r.policy);
}

mod determinism {
    use super::*;
    use proptest::prelude::*;

    fn arb_monitor() -> impl Strategy<Value = ContainerMonitor> {
        let levels = prop::sample::select(vec!["None", "Metadata", "Request", "RequestResponse"]);
        (
            prop::sample::select(vec!["a", "b", "c"]),
            prop::sample::select(vec!["m1", "m2", "m3", "m4"]),
            prop::option::of(levels.clone()),
            prop::collection::vec(
                (
                    levels,
                    prop::sample::select(vec!["pods", "secrets", "deployments", "*", "pods/exec"]),
                ),
                0..3,
            ),
            prop::collection::btree_map(
                prop::sample::select(vec!["container.exec", "pod.port-forward", "x.custom"]),
                0u8..=15,
                0..3,
            ),
            prop::collection::vec(
                prop::sample::select(vec!["container.exec", "container.shell"]),
                0..2,
            ),
            prop::option::of((
                prop::option::of(prop::sample::select(vec![0.5, 0.8, 0.9])),
                prop::option::of(prop::sample::select(vec![10u32, 60])),
                prop::option::of(any::<bool>()),
            )),
        )
            .prop_map(|(ns, name, level, rules, levels, disabled, resources)| {
                let mut spec = ContainerMonitorSpec::default();
                spec.audit.level = level.map(|l| yaml_serde::from_str(l).unwrap());
                spec.audit.rules = rules
                    .into_iter()
                    .map(|(l, res)| {
                        yaml_serde::from_str(&format!(
                            "{{level: {l}, resources: [{{resources: ['{res}']}}]}}"
                        ))
                        .unwrap()
                    })
                    .collect();
                spec.detections.levels = levels
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_owned(),
                            crate::crd::Level::try_from(u64::from(v)).unwrap(),
                        )
                    })
                    .collect();
                spec.detections.disabled = disabled.into_iter().map(str::to_owned).collect();
                spec.resources = resources.map(|(ratio, sustain, enabled)| ResourcesSpec {
                    memory_limit_ratio: ratio,
                    sustain_seconds: sustain,
                    enabled,
                    ..ResourcesSpec::default()
                });
                let mut m = ContainerMonitor::new(name, spec);
                m.metadata.namespace = Some(ns.to_owned());
                m
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn rendering_does_not_depend_on_input_order(
            (monitors, shuffled) in prop::collection::vec(arb_monitor(), 0..12)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let catalog = catalog();
            let a = render(&monitors, &catalog).unwrap();
            let b = render(&shuffled, &catalog).unwrap();
            prop_assert_eq!(&a.policy_yaml, &b.policy_yaml);
            prop_assert_eq!(&a.policy_hash, &b.policy_hash);
            prop_assert_eq!(&a.namespaces, &b.namespaces);
            prop_assert_eq!(&a.monitors, &b.monitors);
        }
    }
}
