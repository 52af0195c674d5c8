//! The parser against a sample of every envelope (`core/tests/fixtures/audit`, whose README
//! lists the facts asserted here), and against hostile input.

use std::path::PathBuf;

use super::*;
use crate::event::{Outcome, Source};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Parsed {
    records: Vec<AuditRecord>,
    errors: Vec<(usize, AuditError)>,
}

/// Parses a JSON-lines fixture, or the whole file as one document when `whole` is set.
fn parse(name: &str, whole: bool) -> Parsed {
    let bytes = fixture(name);
    let parser = AuditParser::default();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    let chunks: Vec<&[u8]> = if whole {
        vec![&bytes[..]]
    } else {
        bytes.split(|b| *b == b'\n').collect()
    };
    let mut offset = 0u64;
    for (i, chunk) in chunks.iter().enumerate() {
        let pos = Position {
            origin: name,
            offset,
        };
        offset += chunk.len() as u64 + 1;
        if chunk.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parser.parse_line(chunk, pos, "2024-01-01T00:00:00.000000000Z", &mut records) {
            Ok(outcome) => errors.extend(outcome.skipped.into_iter().map(|e| (i + 1, e))),
            Err(e) => errors.push((i + 1, e)),
        }
    }
    Parsed { records, errors }
}

/// `user | verb-derived action | resource[/sub] | namespace | name | outcome`.
fn facts(r: &AuditRecord) -> String {
    let e = &r.event;
    let o = &e.object;
    let res = match (&o.resource, &o.subresource) {
        (Some(r), Some(s)) => format!("{r}/{s}"),
        (Some(r), None) => r.clone(),
        _ => "-".into(),
    };
    format!(
        "{} | {} | {} | {} | {} | {}",
        e.actor.user.as_deref().unwrap_or("-"),
        e.action,
        res,
        o.namespace.as_deref().unwrap_or("-"),
        o.name.as_deref().unwrap_or("-"),
        e.outcome.as_str()
    )
}

fn all_facts(p: &Parsed) -> Vec<String> {
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    p.records.iter().map(facts).collect()
}

#[test]
fn v1_single_event() {
    let p = parse("v1-event.json", false);
    assert_eq!(
        all_facts(&p),
        ["dev-alice@example.com | exec | pods/exec | shop | web-7d9fc5b6d-x2k8p | success"]
    );
    let e = &p.records[0].event;
    assert_eq!(e.source, Source::K8sAudit);
    assert_eq!(e.time, "2024-05-02T10:15:30.412871000Z");
    assert_eq!(e.actor.source_ips, ["203.0.113.45"]);
    let process = e.process.as_ref().unwrap();
    assert_eq!(process.args, ["/bin/sh"]);
    assert_eq!(process.tty, Some(true));
    assert_eq!(
        e.container
            .as_ref()
            .and_then(|c| c.pod.as_ref())
            .and_then(|p| p.name.as_deref()),
        Some("web-7d9fc5b6d-x2k8p")
    );
    // Nothing needed redaction: raw is the verbatim line.
    let raw =
        serde_json::to_string(&p.records.into_iter().next().unwrap().into_event().raw).unwrap();
    let line = String::from_utf8(fixture("v1-event.json")).unwrap();
    assert_eq!(raw, line.trim());
}

#[test]
fn v1beta1_events() {
    let p = parse("v1beta1-event.jsonl", false);
    assert_eq!(
        all_facts(&p),
        [
            "jane | list | pods | default | - | success",
            "jane | exec | pods/exec | default | nginx-7cdbd8cdc9-4xw2z | success",
            "system:serviceaccount:kube-system:tiller | get | secrets | kube-system | tiller-token-r8m2k | success",
        ]
    );
    assert_eq!(
        p.records[2].event.actor.service_account.as_deref(),
        Some("kube-system/tiller")
    );
    assert!(
        p.records[0]
            .event
            .actor
            .groups
            .contains(&"developers".to_owned())
    );
}

#[test]
fn events_without_api_version() {
    let p = parse("no-apiversion.jsonl", false);
    assert_eq!(
        all_facts(&p),
        [
            "system:node:worker-1 | update | leases | kube-node-lease | worker-1 | success",
            "system:serviceaccount:ingress-nginx:ingress-nginx | get | configmaps | ingress-nginx | ingress-nginx-controller | success",
            "ops@example.com | delete | pods | shop | web-7d9fc5b6d-q9wzt | success",
        ]
    );
    assert_eq!(
        p.records[0].event.object.api_group.as_deref(),
        Some("coordination.k8s.io")
    );
}

#[test]
fn event_lists_give_distinct_stable_ids() {
    let p = parse("eventlist.json", false);
    assert_eq!(
        all_facts(&p),
        [
            "system:serviceaccount:ci:deployer | patch | deployments | shop | web | success",
            "dev-alice@example.com | create | rolebindings | shop | web-readers | success",
            "system:serviceaccount:ingress-nginx:ingress-nginx | get | secrets | shop | web-tls | success",
        ]
    );
    let ids: std::collections::HashSet<_> = p.records.iter().map(|r| r.event.id.clone()).collect();
    assert_eq!(ids.len(), 3);
    let again = parse("eventlist.json", false);
    assert_eq!(
        again.records[1].event.id, p.records[1].event.id,
        "ids must survive a replay"
    );
}

#[test]
fn eks_cloudwatch_subscription() {
    let p = parse("eks-cloudwatch-subscription.json", false);
    assert_eq!(
        all_facts(&p),
        [
            "arn:aws:sts::111122223333:assumed-role/DevOps/alice | exec | pods/exec | shop | web-5f8d9c7b6-kx2lp | success",
            "system:node:ip-10-0-12-34.eu-west-1.compute.internal | update | leases | kube-node-lease | ip-10-0-12-34.eu-west-1.compute.internal | success",
            "arn:aws:sts::111122223333:assumed-role/DevOps/alice | get | secrets | payments | stripe-api-key | success",
        ]
    );
    assert!(
        p.records
            .iter()
            .all(|r| r.event.cluster.as_deref() == Some("prod"))
    );
}

#[test]
fn eks_filter_log_events_pretty_printed() {
    let p = parse("eks-filter-log-events.json", true);
    assert_eq!(
        all_facts(&p),
        [
            "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/bob | create | clusterrolebindings | - | ci-admin | success",
            "system:anonymous | list | secrets | - | - | failure",
            "arn:aws:sts::111122223333:assumed-role/PlatformAdmin/bob | patch | configmaps | kube-system | aws-auth | success",
        ]
    );
    assert_eq!(
        p.records[0]
            .audit()
            .pointer("/requestObject/roleRef/name")
            .and_then(|v| v.as_str()),
        Some("cluster-admin")
    );
}

#[test]
fn eks_s3_export_lines() {
    let p = parse("eks-s3-export.log", false);
    assert_eq!(
        all_facts(&p),
        [
            "eks:addon-manager | get | daemonsets | kube-system | aws-node | success",
            "arn:aws:sts::111122223333:assumed-role/DevOps/alice | create | rolebindings | shop | ops-edit | success",
            "system:node:ip-10-0-12-34.eu-west-1.compute.internal | get | nodes | - | ip-10-0-12-34.eu-west-1.compute.internal | success",
            "system:anonymous | get | - | - | - | success",
        ]
    );
    assert_eq!(
        p.records[3].event.object.request_uri.as_deref(),
        Some("/version")
    );
}

#[test]
fn aks_diagnostic_records_object_string_and_eventhub() {
    let p = parse("aks-diagnostic-object.jsonl", false);
    assert_eq!(
        all_facts(&p),
        [
            "alice@contoso.com | exec | pods/exec | shop | web-6c7d8e9f5-m4n8q | success",
            "aksService | get | configmaps | kube-system | coredns-custom | success",
        ]
    );
    assert!(
        p.records
            .iter()
            .all(|r| r.event.cluster.as_deref() == Some("AKS-SHOP-PROD"))
    );

    let p = parse("aks-diagnostic-string.jsonl", false);
    assert_eq!(
        all_facts(&p),
        [
            "masterclient | create | clusterrolebindings | - | break-glass | success",
            "system:node:aks-nodepool1-38291745-vmss000002 | update | leases | kube-node-lease | aks-nodepool1-38291745-vmss000002 | success",
            "alice@contoso.com | list | secrets | payments | - | success",
        ]
    );

    let p = parse("aks-eventhub-records.json", false);
    assert_eq!(
        all_facts(&p),
        [
            "system:anonymous | list | secrets | kube-system | - | failure",
            "alice@contoso.com | create | deployments | batch | reports | success",
            "system:serviceaccount:kube-system:metrics-server | create | tokenreviews | - | - | success",
        ]
    );
    let w = p.records[1].event.workload.as_ref().unwrap();
    assert_eq!(w.images, ["shopacr.azurecr.io/reports:3.2.0"]);
}

#[test]
fn gke_cloud_logging_entries() {
    let p = parse("gke-cloud-logging.jsonl", false);
    assert_eq!(
        all_facts(&p),
        [
            "alice@example.com | create | pods | shop | node-shell | success",
            "alice@example.com | exec | pods/exec | shop | web-1 | success",
            "system:serviceaccount:shop:default | get | secrets | kube-system | gke-metadata-server-token | failure",
            "alice@example.com | create | clusterrolebindings | - | debug-admin | success",
            "system:serviceaccount:shop:default | list | secrets | - | - | success",
        ]
    );
    let w = p.records[0].event.workload.as_ref().unwrap();
    assert!(w.privileged && w.host_pid && w.host_network);
    assert_eq!(p.records[0].event.actor.source_ips, ["203.0.113.45"]);
    assert!(
        p.records
            .iter()
            .all(|r| r.event.cluster.as_deref() == Some("prod"))
    );
    assert_eq!(
        p.records[2]
            .audit()
            .pointer("/responseStatus/code")
            .and_then(|c| c.as_i64()),
        Some(403)
    );
    assert_eq!(
        p.records[3]
            .audit()
            .pointer("/objectRef/apiGroup")
            .and_then(|c| c.as_str()),
        Some("rbac.authorization.k8s.io")
    );
}

#[test]
fn workload_facts_of_every_kind() {
    let p = parse("every-workload-kind.jsonl", false);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.records.len(), 9);
    let w: Vec<_> = p
        .records
        .iter()
        .map(|r| {
            r.event
                .workload
                .clone()
                .unwrap_or_else(|| panic!("no workload: {}", facts(r)))
        })
        .collect();
    let kinds: Vec<_> = w
        .iter()
        .map(|w| w.kind.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds[..8],
        [
            "Pod",
            "Deployment",
            "DaemonSet",
            "StatefulSet",
            "ReplicaSet",
            "ReplicationController",
            "Job",
            "CronJob"
        ]
    );
    // 1: only the init container is privileged.
    assert!(w[0].privileged);
    assert!(
        w[0].containers
            .iter()
            .any(|c| c.role.as_deref() == Some("init") && c.privileged)
    );
    assert!(
        w[0].containers
            .iter()
            .any(|c| c.role.is_none() && !c.privileged)
    );
    assert!(w[1].host_network);
    let sock = w[2]
        .host_paths
        .iter()
        .find(|h| h.path == "/var/run/docker.sock")
        .unwrap();
    assert!(sock.read_only);
    assert!(w[2].host_paths.iter().any(|h| h.path == "/var/log"));
    assert!(w[3].host_ipc);
    assert!(w[4].host_pid);
    let c = &w[5].containers[0];
    assert!(c.run_as_root && c.allow_privilege_escalation == Some(true));
    assert!(!w[6].privileged && w[6].host_paths.is_empty());
    assert_eq!(w[7].capabilities_added, ["NET_ADMIN"]);
    assert_eq!(
        (w[7].namespace.as_deref(), w[7].name.as_deref()),
        (Some("apps"), Some("nightly-report"))
    );
    // 9: the ephemeral container of kubectl debug.
    assert_eq!(
        p.records[8].event.object.subresource.as_deref(),
        Some("ephemeralcontainers")
    );
    assert!(
        w[8].containers
            .iter()
            .any(|c| c.role.as_deref() == Some("ephemeral")
                && c.capabilities_added == ["SYS_PTRACE"])
    );
    assert!(w[8].capabilities_added.contains(&"SYS_PTRACE".to_owned()));
}

#[test]
fn secret_values_never_reach_raw() {
    let p = parse("secrets-with-data.jsonl", false);
    assert_eq!(p.records.len(), 6);
    let out: Vec<String> = p
        .records
        .into_iter()
        .map(|r| serde_json::to_string(&r.into_event()).unwrap())
        .collect();
    let all = out.join("\n");
    for secret in [
        "payments_app",
        "cGF5bWVudHNfYXBw",
        "S3cr3t-Pa55w0rd!",
        "UzNjcjN0LVBhNTV3MHJkIQ==",
        "vigil-fixture-api-key-7Qm2xT9pLw",
        "dmlnaWwtZml4dHVyZS1hcGkta2V5LTdRbTJ4VDlwTHc=",
        "smtp-Pa55-2024",
        "c210cC1QYTU1LTIwMjQ=",
        "bWFpbGVyQGV4YW1wbGUuY29t",
        "mailer@example.com",
        "eyJhbGciOiJSUzI1NiIs",
    ] {
        assert!(!all.contains(secret), "`{secret}` leaked");
    }
    assert!(
        all.contains("hunter2-prod-2024"),
        "ConfigMap data is not a Secret and stays for detection"
    );
    assert!(out[0].contains(REDACTED));
    assert!(out[2].contains("JTI="), "credential ids are not secrets");
}

#[test]
fn malformed_lines_are_skipped_and_counted() {
    let p = parse("malformed.jsonl", false);
    let good: Vec<_> = p.records.iter().map(facts).collect();
    assert_eq!(
        good,
        [
            "dev-alice@example.com | list | pods | shop | - | success",
            "dev-alice@example.com | exec | pods/exec | shop | web-7d9fc5b6d-x2k8p | success",
            "system:serviceaccount:shop:default | list | secrets | - | - | success",
            "system:node:worker-3 | update | leases | kube-node-lease | worker-3 | success",
        ]
    );
    let bad: Vec<(usize, &str)> = p.errors.iter().map(|(l, e)| (*l, e.kind())).collect();
    assert_eq!(
        bad,
        [
            (2, "invalid_json"),
            (4, "not_audit"),
            (5, "not_audit"),
            (6, "wrong_shape"),
            (8, "invalid_json"),
            (10, "invalid_json"),
            (11, "not_audit"),
        ]
    );
}

#[test]
fn hostile_input_never_panics() {
    let parser = AuditParser::default();
    let pos = Position {
        origin: "x",
        offset: 0,
    };
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_obj = format!(
        "{}{}",
        "{\"a\":".repeat(50_000),
        "1".to_owned() + &"}".repeat(50_000)
    );
    let ten_mib = format!(
        "{{\"kind\":\"Event\",\"verb\":\"get\",\"userAgent\":\"{}\"}}",
        "x".repeat(10 << 20)
    );
    let nested_envelopes = r#"{"message":"{\"message\":\"{\\\"message\\\":\\\"{\\\\\\\"message\\\\\\\":\\\\\\\"{}\\\\\\\"}\\\"}\"}"}"#;
    let inputs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00\x01\x02\xff\xfe".to_vec(),
        deep.into_bytes(),
        deep_obj.into_bytes(),
        br#"{"kind":"Event","objectRef":"pods"}"#.to_vec(),
        br#"{"kind":"Event","user":{"groups":"admins"}}"#.to_vec(),
        br#"{"kind":"Event","apiVersion":"audit.k8s.io/v2"}"#.to_vec(),
        br#"{"kind":"EventList","items":"nope"}"#.to_vec(),
        br#"{"kind":"EventList","items":[1,2,{"kind":"Event","verb":"get"}]}"#.to_vec(),
        br#"{"records":[{"category":"kube-apiserver","properties":{"log":"I0502 started"}}]}"#.to_vec(),
        br#"{"protoPayload":{"@type":"type.googleapis.com/google.cloud.audit.AuditLog"}}"#.to_vec(),
        br#"{"protoPayload":{"methodName":"io.k8s.core.v1.pods.exec.create","resourceName":"////","request":{"command":[1,null]}}}"#.to_vec(),
        nested_envelopes.as_bytes().to_vec(),
        br#"{"kind":"Event","verb":"create","objectRef":{"resource":"pods"},"requestObject":{"spec":{"containers":[1,"x",{"securityContext":7}],"volumes":{"a":1}}}}"#.to_vec(),
        ten_mib.into_bytes(),
    ];
    for input in &inputs {
        let mut out = Vec::new();
        let _ = parser.parse_line(input, pos, "2024-01-01T00:00:00Z", &mut out);
    }
    // The one good item of a partly bad EventList is kept, the bad ones reported.
    let mut out = Vec::new();
    let outcome = parser.parse_line(&inputs[8], pos, "t", &mut out).unwrap();
    assert_eq!((outcome.events, outcome.skipped.len()), (1, 2));
    // Non-audit categories of AKS diagnostics are recognized as such.
    let err = parser
        .parse_line(&inputs[9], pos, "t", &mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), "not_audit");
}

#[test]
fn oversize_objects_are_trimmed_after_workload_facts_are_taken() {
    let parser = AuditParser::new(AuditConfig {
        max_object_bytes: 1024,
        ..AuditConfig::default()
    });
    let env: Vec<String> = (0..200)
        .map(|i| format!("{{\"name\":\"V{i}\",\"value\":\"{}\"}}", "v".repeat(20)))
        .collect();
    let line = format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/api/v1/namespaces/a/pods","objectRef":{{"resource":"pods","namespace":"a"}},"responseStatus":{{"code":201}},"requestObject":{{"kind":"Pod","spec":{{"containers":[{{"name":"c","image":"i","env":[{}],"securityContext":{{"privileged":true}}}}]}}}}}}"#,
        env.join(",")
    );
    let mut out = Vec::new();
    parser
        .parse_line(
            line.as_bytes(),
            Position {
                origin: "x",
                offset: 0,
            },
            "t",
            &mut out,
        )
        .unwrap();
    let r = out.pop().unwrap();
    assert!(r.event.workload.as_ref().unwrap().privileged);
    assert_eq!(
        r.audit()
            .pointer(&format!("/requestObject/{TRIMMED_MARKER}")),
        Some(&serde_json::json!(true))
    );
    let ev = r.into_event();
    assert!(serde_json::to_string(&ev).unwrap().len() < 2048);
    assert_eq!(ev.outcome, Outcome::Success);
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn parse_any(bytes: &[u8]) -> Result<usize, AuditError> {
        let mut out = Vec::new();
        let outcome = AuditParser::default().parse_line(
            bytes,
            Position {
                origin: "p",
                offset: 0,
            },
            "t",
            &mut out,
        )?;
        // Whatever is accepted must also serialize: outputs never meet an unwritable event.
        for r in out {
            serde_json::to_string(&r.into_event()).expect("an accepted event serializes");
        }
        Ok(outcome.events)
    }

    fn good_lines() -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        for f in [
            "v1-event.json",
            "every-workload-kind.jsonl",
            "secrets-with-data.jsonl",
            "gke-cloud-logging.jsonl",
            "aks-diagnostic-string.jsonl",
            "eventlist.json",
        ] {
            lines.extend(
                fixture(f)
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
        lines
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_any(&bytes);
        }

        /// Real events cut anywhere, or with bytes flipped: an error or an event, never a
        /// panic, and a cut event is never accepted as complete.
        #[test]
        fn truncated_and_mutated_events_never_panic(pick in 0usize..64, cut in 0.0f64..1.0, flips in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..6)) {
            let lines = good_lines();
            let line = &lines[pick % lines.len()];
            let at = ((line.len() as f64) * cut) as usize;
            if at + 1 < line.trim_ascii_end().len() {
                prop_assert!(parse_any(&line[..at]).is_err(), "a truncated event was accepted");
            }
            let mut mutated = line.clone();
            for (pos, byte) in flips {
                let i = ((mutated.len() as f64) * pos) as usize % mutated.len();
                mutated[i] = byte;
            }
            let _ = parse_any(&mutated);
        }
    }
}

const KNOWN_RAW_FIELDS: [&str; 19] = [
    "verb",
    "stage",
    "auditID",
    "level",
    "responseStatus.code",
    "requestURI",
    "userAgent",
    "user.username",
    "user.uid",
    "user.groups",
    "sourceIPs",
    "impersonatedUser.username",
    "objectRef.resource",
    "objectRef.subresource",
    "objectRef.apiVersion",
    "objectRef.uid",
    "objectRef.namespace",
    "objectRef.name",
    "objectRef.apiGroup",
];

/// The fast path is an optimization only: for every line it takes, the DOM path must give
/// the same event, byte for byte once serialized, and the same detections.
#[test]
fn fast_path_and_dom_path_give_the_same_events() {
    let rules = crate::detect::RuleSet::builtin().unwrap();
    let mut input = crate::audit::synth::generate(
        crate::audit::synth::SynthConfig {
            seed: 11,
            attack_ratio: 0.2,
        },
        3_000_000,
    );
    for f in
        std::fs::read_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit"))
            .unwrap()
    {
        input.extend(std::fs::read(f.unwrap().path()).unwrap());
        input.push(b'\n');
    }
    input.extend(
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/audit/attack-story.log"),
        )
        .unwrap(),
    );
    let parser = AuditParser::default();
    let (mut fast, mut total) = (0, 0);
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        let pos = Position {
            origin: "eq",
            offset: i as u64,
        };
        let Some(f) = parser.parse_fast(line, pos, "t") else {
            continue;
        };
        let mut dom = Vec::new();
        parser
            .parse_dom(line, pos, "t", &mut dom)
            .expect("a line the fast path takes parses");
        assert_eq!(dom.len(), 1);
        let d = dom.pop().unwrap();
        assert_eq!(f.stage(), d.stage());
        assert_eq!(f.audit_id(), d.audit_id());
        // Raw fields a fast record answers without its DOM must be what the DOM says.
        let config = crate::detect::DetectConfig::default();
        let fv = crate::detect::RuleView::new(
            &f.event,
            Some(&f as &dyn crate::detect::RawSource),
            &config,
        );
        let dv = crate::detect::RuleView::new(
            &d.event,
            Some(&d as &dyn crate::detect::RawSource),
            &config,
        );
        for path in KNOWN_RAW_FIELDS {
            use rsigma_eval::event::Event as _;
            assert_eq!(
                fv.get_field(path),
                dv.get_field(path),
                "{path} of {}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(f.audit(), d.audit());
        let mut stages = StageFilter::new();
        let fd = rules.detect_audit(&f, &mut stages);
        let dd = rules.detect_audit(&d, &mut StageFilter::new());
        assert_eq!(fd, dd, "{}", String::from_utf8_lossy(line));
        let fe = serde_json::to_string(&f.into_event()).unwrap();
        let de = serde_json::to_string(&d.into_event()).unwrap();
        assert_eq!(fe, de);
        fast += 1;
        total += usize::from(!line.trim_ascii().is_empty());
    }
    // Most lines of a busy cluster take the fast path; the test covers it broadly.
    assert!(fast > 2000, "{fast} of {total} lines took the fast path");
}

/// serde_json skips unknown fields without checking their UTF-8; a line with invalid UTF-8
/// anywhere must still be refused, since it is kept verbatim as `raw`.
#[test]
fn invalid_utf8_in_an_unknown_field_is_refused() {
    let mut line = br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","requestURI":"/x","auditID":"a","extra":""#.to_vec();
    line.extend_from_slice(&[0xff, 0xfe]);
    line.extend_from_slice(br#""}"#);
    let err = AuditParser::default()
        .parse_line(
            &line,
            Position {
                origin: "u",
                offset: 0,
            },
            "t",
            &mut Vec::new(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_json");
}

/// A Secret inside a list must be redacted even when its kind is spelled with escapes.
#[test]
fn escaped_secret_kinds_are_still_redacted() {
    let line = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"create","requestURI":"/api/v1/namespaces/a/lists","objectRef":{"resource":"lists","namespace":"a"},"responseStatus":{"code":201},"requestObject":{"kind":"List","items":[{"kind":"Secr\u0065t","data":{"k":"c2VjcmV0LXZhbHVl"}}]}}"#;
    let mut out = Vec::new();
    AuditParser::default()
        .parse_line(
            line.as_bytes(),
            Position {
                origin: "e",
                offset: 0,
            },
            "t",
            &mut out,
        )
        .unwrap();
    let text = serde_json::to_string(&out.pop().unwrap().into_event()).unwrap();
    assert!(!text.contains("c2VjcmV0LXZhbHVl"), "{text}");
    assert!(text.contains(REDACTED));
}

/// A document read whole (`scan` of a pretty-printed file, a webhook body) may span lines;
/// its event must still be one JSON line, so its `raw` is not the verbatim text.
#[test]
fn a_record_spanning_lines_is_not_kept_verbatim() {
    // A `pods` event takes the fast path; a `secrets` one without a body the DOM path, which
    // changes nothing in it.
    for resource in ["pods", "secrets"] {
        let line = format!(
            "{{\"kind\":\"Event\",\"apiVersion\":\"audit.k8s.io/v1\",\r\n \"auditID\":\"a\",\n \"stage\":\"ResponseComplete\",\"verb\":\"get\",\"requestURI\":\"/api/v1/namespaces/a/{resource}\",\n \"objectRef\":{{\"resource\":\"{resource}\",\"namespace\":\"a\"}}}}\n"
        );
        let mut out = Vec::new();
        AuditParser::default()
            .parse_line(
                line.as_bytes(),
                Position {
                    origin: "pretty",
                    offset: 0,
                },
                "t",
                &mut out,
            )
            .unwrap();
        let mut json = Vec::new();
        crate::outputs::encode_json_line(&out.pop().unwrap().into_event(), &mut json).unwrap();
        assert_eq!(
            json.iter().filter(|&&b| b == b'\n' || b == b'\r').count(),
            1,
            "{}",
            String::from_utf8_lossy(&json)
        );
        let event: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(event["raw"]["objectRef"]["resource"], resource);
    }
}
