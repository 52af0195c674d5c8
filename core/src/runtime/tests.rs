//! The Docker normalizer against events and inspect output recorded from a real engine
//! (`core/tests/fixtures/docker`: dockerd 20.10 from Debian, a `--privileged` container with
//! `/` and `/etc` bind-mounted, `--pid host`, `--cap-add SYS_PTRACE`, a health check and
//! kubelet's pod labels, three execs, pause, kill, rm, a volume, a network, an image tag),
//! and against hostile input.

use std::path::PathBuf;

use super::docker::*;
use crate::detect::RuleSet;
use crate::event::{HostPath, Outcome, Source};

const INGEST: &str = "2026-11-23T00:00:00.000000000Z";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docker")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lines(name: &str) -> Vec<Vec<u8>> {
    fixture(name)
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn recorded() -> Vec<DockerEvent> {
    let parser = DockerParser::default();
    lines("engine-events.jsonl")
        .iter()
        .map(|l| {
            parser
                .parse(l, INGEST)
                .expect("a recorded engine event parses")
        })
        .collect()
}

fn container_facts() -> ContainerFacts {
    let v: serde_json::Value = serde_json::from_slice(&fixture("inspect-web.json")).unwrap();
    ContainerFacts::from_inspect(v).unwrap()
}

fn exec_facts() -> Vec<ExecFacts> {
    lines("exec-inspects.jsonl")
        .iter()
        .map(|l| ExecFacts::from_inspect(serde_json::from_slice(l).unwrap()).unwrap())
        .collect()
}

/// `type action outcome | container name | command`.
fn summary(d: &DockerEvent) -> String {
    let e = &d.event;
    format!(
        "{} {} {} | {} | {}",
        d.object_type,
        e.action,
        e.outcome.as_str(),
        e.container
            .as_ref()
            .and_then(|c| c.name.as_deref())
            .or(e.object.name.as_deref())
            .unwrap_or("-"),
        e.process
            .as_ref()
            .and_then(|p| p.command_line.as_deref())
            .unwrap_or("-")
    )
}

#[test]
fn every_recorded_event_is_normalized() {
    let events = recorded();
    let got: Vec<String> = events.iter().map(summary).collect();
    assert_eq!(
        got,
        [
            "container create success | app | -",
            "container start success | app | -",
            "container exec_create success | app | /bin/sh -c true",
            "container exec success | app | /bin/sh -c true",
            "container exec_die success | app | -",
            "container health_status success | app | -",
            "container exec_create success | app | sh",
            "container exec success | app | sh",
            "container exec_die success | app | -",
            "container exec_create success | app | /bin/sh -c cat /etc/passwd",
            "container exec success | app | /bin/sh -c cat /etc/passwd",
            "container exec_die success | app | -",
            "container exec_create success | app | ls /host",
            "container exec success | app | ls /host",
            "container exec_die success | app | -",
            "container pause success | app | -",
            "container unpause success | app | -",
            "container kill success | app | -",
            "container die failure | app | -",
            "container destroy success | app | -",
            "volume create success | vol1 | -",
            "volume destroy success | vol1 | -",
            "network create success | net1 | -",
            "network destroy success | net1 | -",
            "image tag success | registry.evil.example:5000/tools/bb:1 | -",
            "image untag success | sha256:8500618fcf556595b124c6be54722e5390790124c87e6732d43000f716330bd0 | -",
        ]
    );
    for d in &events {
        let e = &d.event;
        assert_eq!(e.source, Source::Docker);
        assert_eq!(e.kind.as_str(), "runtime");
        assert!(e.time.starts_with("2026-11-"), "{}", e.time);
        assert_eq!(e.time.len(), "2026-11-23T00:00:00.000000000Z".len());
    }
    let ids: std::collections::HashSet<_> = events.iter().map(|d| d.event.id.clone()).collect();
    assert_eq!(ids.len(), events.len(), "every event has its own id");
}

#[test]
fn container_events_carry_the_pod_and_the_labels() {
    let start = &recorded()[1];
    let c = start.event.container.as_ref().unwrap();
    assert_eq!(c.runtime.as_deref(), Some("docker"));
    assert_eq!(c.image.as_deref(), Some("vigil-test/busybox:latest"));
    assert_eq!(c.id.as_deref().map(str::len), Some(64));
    let pod = c.pod.as_ref().unwrap();
    assert_eq!(pod.namespace.as_deref(), Some("shop"));
    assert_eq!(pod.name.as_deref(), Some("web-7d9f"));
    assert_eq!(
        pod.uid.as_deref(),
        Some("1f2e3d4c-0000-4000-8000-000000000001")
    );
    assert_eq!(c.labels.get("io.kubernetes.container.name").unwrap(), "app");
    assert!(!c.labels.contains_key("image") && !c.labels.contains_key("name"));
    let w = start.event.workload.as_ref().unwrap();
    assert_eq!(w.kind.as_deref(), Some("Pod"));
    assert_eq!(w.images, ["vigil-test/busybox:latest"]);
    // The event alone does not say it is privileged: that takes inspect.
    assert!(!w.privileged);
}

#[test]
fn raw_is_the_engine_event_byte_for_byte() {
    let lines = lines("engine-events.jsonl");
    let parser = DockerParser::default();
    for line in &lines {
        let d = parser.parse(line, INGEST).unwrap();
        let text = serde_json::to_string(&d.event).unwrap();
        let raw = std::str::from_utf8(line).unwrap();
        assert!(
            text.ends_with(&format!(",\"raw\":{raw}}}")),
            "raw changed: {text}"
        );
    }
    // The escaped quotes of the exec command are kept as the engine wrote them.
    let exec = String::from_utf8(lines[10].clone()).unwrap();
    assert!(exec.contains(r#""Action":"exec_start: /bin/sh -c cat /etc/passwd""#));
}

#[test]
fn inspect_facts_reach_the_keys_rules_read() {
    let mut start = recorded().swap_remove(1);
    start.enrich(&Enrichment {
        container: Some(container_facts()),
        exec: None,
    });
    let e = &start.event;
    let w = e.workload.as_ref().unwrap();
    assert!(w.privileged);
    assert!(w.host_pid && !w.host_network && !w.host_ipc);
    assert_eq!(w.capabilities_added, ["SYS_PTRACE"]);
    assert_eq!(
        w.host_paths,
        [
            HostPath {
                path: "/".into(),
                read_only: false
            },
            HostPath {
                path: "/etc".into(),
                read_only: true
            }
        ]
    );
    assert_eq!(w.namespace.as_deref(), Some("shop"));
    assert_eq!(w.containers.len(), 1);
    assert_eq!(w.containers[0].name, "app");
    assert!(w.containers[0].privileged);
    let c = e.container.as_ref().unwrap();
    assert!(c.image_id.as_deref().unwrap().starts_with("sha256:"));
}

#[test]
fn exec_inspect_gives_exact_arguments_and_marks_the_health_check() {
    let events = recorded();
    let execs = exec_facts();
    let facts = container_facts();
    assert_eq!(
        facts.healthcheck.as_deref(),
        Some(&["/bin/sh".to_owned(), "-c".into(), "true".into()][..])
    );
    // The four exec_start events, in order: the health check, `sh`, `-t sh -c cat`, `ls`.
    let starts: Vec<DockerEvent> = events
        .into_iter()
        .filter(|d| d.event.action == "exec")
        .collect();
    assert_eq!(starts.len(), 4);
    let mut enriched = Vec::new();
    for (mut d, x) in starts.into_iter().zip(execs) {
        d.enrich(&Enrichment {
            container: Some(facts.clone()),
            exec: Some(x),
        });
        enriched.push(d.event.process.unwrap());
    }
    assert!(enriched[0].healthcheck);
    assert!(!enriched[1].healthcheck);
    assert_eq!(enriched[2].args, ["/bin/sh", "-c", "cat /etc/passwd"]);
    assert_eq!(enriched[2].tty, Some(true));
    assert_eq!(enriched[3].tty, Some(false));
    assert!(enriched[1].exec_id.is_some());
}

#[test]
fn the_health_check_is_recognised_without_exec_inspect() {
    let mut hc = recorded().swap_remove(3);
    hc.enrich(&Enrichment {
        container: Some(container_facts()),
        exec: None,
    });
    assert!(hc.event.process.unwrap().healthcheck);
}

fn rules_fired(d: &DockerEvent) -> Vec<String> {
    let rules = RuleSet::builtin().unwrap();
    let mut names: Vec<String> = rules
        .detect(&d.event, None)
        .into_iter()
        .map(|d| d.rule)
        .collect();
    names.sort();
    names
}

#[test]
fn runtime_rules_fire_on_the_recorded_story() {
    let events = recorded();
    let facts = container_facts();
    let execs = exec_facts();
    let enrich = |mut d: DockerEvent, exec: Option<ExecFacts>| {
        d.enrich(&Enrichment {
            container: Some(facts.clone()),
            exec,
        });
        d
    };
    assert_eq!(
        rules_fired(&enrich(events[1].clone(), None)),
        [
            "container.dangerous-capability",
            "container.docker-socket",
            "container.host-namespace",
            "container.host-path",
            "container.privileged"
        ]
    );
    // Without inspect only what the event says is known.
    assert!(rules_fired(&events[1]).is_empty());
    assert!(
        rules_fired(&enrich(events[3].clone(), Some(execs[0].clone()))).is_empty(),
        "a health check is not an exec by a person"
    );
    assert_eq!(
        rules_fired(&enrich(events[7].clone(), Some(execs[1].clone()))),
        ["container.exec", "container.shell"]
    );
    assert_eq!(
        rules_fired(&enrich(events[13].clone(), Some(execs[3].clone()))),
        ["container.exec"]
    );
    assert_eq!(rules_fired(&events[13]), ["container.exec"]);
    assert!(
        rules_fired(&events[12]).is_empty(),
        "exec_create is not the exec"
    );
}

#[test]
fn a_pull_from_an_unknown_registry_fires() {
    let line = br#"{"status":"pull","id":"registry.evil.example:5000/miner:latest","Type":"image","Action":"pull","Actor":{"ID":"registry.evil.example:5000/miner:latest","Attributes":{"name":"registry.evil.example:5000/miner"}},"scope":"local","time":1795407662,"timeNano":1795407662155119000}"#;
    let d = DockerParser::default().parse(line, INGEST).unwrap();
    assert_eq!(d.event.action, "pull");
    assert_eq!(rules_fired(&d), ["image.untrusted-registry"]);
    let ok = br#"{"Type":"image","Action":"pull","Actor":{"ID":"quay.io/prometheus/node-exporter:v1.8.1","Attributes":{"name":"quay.io/prometheus/node-exporter"}},"time":1795407662}"#;
    assert!(rules_fired(&DockerParser::default().parse(ok, INGEST).unwrap()).is_empty());
}

#[test]
fn every_event_type_is_accepted() {
    let parser = DockerParser::default();
    for (typ, action, resource) in [
        ("plugin", "enable", "plugins"),
        ("daemon", "reload", "daemon"),
        ("node", "update", "nodes"),
        ("service", "create", "services"),
        ("secret", "remove", "secrets"),
        ("config", "create", "configs"),
        ("builder", "prune", "builder"),
    ] {
        let line = format!(
            r#"{{"Type":"{typ}","Action":"{action}","Actor":{{"ID":"x1","Attributes":{{"name":"n"}}}},"scope":"swarm","time":1700000000,"timeNano":1700000000000000001}}"#
        );
        let d = parser.parse(line.as_bytes(), INGEST).unwrap();
        assert_eq!(d.event.action, action);
        assert_eq!(d.event.object.resource.as_deref(), Some(resource));
        assert_eq!(d.event.object.name.as_deref(), Some("n"));
        assert_eq!(d.event.time, "2023-11-14T22:13:20.000000001Z");
    }
}

#[test]
fn health_status_and_exit_codes_set_the_outcome() {
    let parser = DockerParser::default();
    let ev = |action: &str, attrs: &str| {
        let line = format!(
            r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"c1","Attributes":{{"name":"web"{attrs}}}}},"time":1700000000}}"#
        );
        parser.parse(line.as_bytes(), INGEST).unwrap().event
    };
    assert_eq!(ev("health_status: healthy", "").outcome, Outcome::Success);
    assert_eq!(ev("health_status: unhealthy", "").outcome, Outcome::Failure);
    assert_eq!(ev("health_status: starting", "").action, "health_status");
    assert_eq!(ev("die", r#","exitCode":"137""#).outcome, Outcome::Failure);
    assert_eq!(ev("die", r#","exitCode":"0""#).outcome, Outcome::Success);
    assert_eq!(ev("oom", "").outcome, Outcome::Failure);
}

#[test]
fn legacy_events_without_type_and_actor_are_read() {
    let parser = DockerParser::default();
    let d = parser
        .parse(
            br#"{"status":"start","id":"abc123","from":"nginx:1.27","time":1451606400}"#,
            INGEST,
        )
        .unwrap();
    assert_eq!(d.object_type, "container");
    assert_eq!(d.event.action, "start");
    let c = d.event.container.unwrap();
    assert_eq!(c.id.as_deref(), Some("abc123"));
    assert_eq!(c.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(d.event.time, "2016-01-01T00:00:00.000000000Z");
    let pull = parser
        .parse(
            br#"{"status":"pull","id":"busybox:latest","time":1451606400}"#,
            INGEST,
        )
        .unwrap();
    assert_eq!(pull.object_type, "image");
}

#[test]
fn hostile_input_gives_typed_errors() {
    let parser = DockerParser {
        max_event_bytes: 4096,
        ..DockerParser::default()
    };
    let kind = |b: &[u8]| parser.parse(b, INGEST).map(|_| ()).unwrap_err().kind();
    assert_eq!(kind(&vec![b' '; 5000]), "oversize");
    assert_eq!(kind(b"{\"Type\":\"container\",\"Act"), "invalid_json");
    assert_eq!(kind(b"\xff\xfe"), "invalid_json");
    assert_eq!(
        kind(b"{\"Type\":\"container\",\"Action\":\"start\",\"x\":\"\xff\"}"),
        "invalid_json"
    );
    assert_eq!(kind(b"[1,2]"), "wrong_shape");
    assert_eq!(
        kind(br#"{"Type":"container","Action":"start","Actor":{"ID":"x","Attributes":{"a":1}}}"#),
        "wrong_shape"
    );
    assert_eq!(
        kind(br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get"}"#),
        "not_docker"
    );
    assert_eq!(
        kind(br#"{"Type":"container","Action":"start","time":9223372036854775807}"#),
        "bad_time"
    );
    // Deep nesting in a skipped field costs no stack: the event is simply not an event.
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(200_000), "]".repeat(200_000));
    let err = DockerParser::default()
        .parse(deep.as_bytes(), INGEST)
        .unwrap_err();
    assert_eq!(err.kind(), "not_docker");
}

#[test]
fn docker_lines_are_told_from_audit_lines() {
    for l in lines("engine-events.jsonl") {
        assert!(looks_like_docker_event(&l));
    }
    assert!(!looks_like_docker_event(
        br#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","responseStatus":{"status":"Success"}}"#
    ));
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    fn parse_any(bytes: &[u8]) -> Result<(), DockerError> {
        let mut d = DockerParser::default().parse(bytes, INGEST)?;
        d.enrich(&Enrichment {
            container: Some(container_facts()),
            exec: exec_facts().pop(),
        });
        // Whatever is accepted must also serialize: outputs never meet an unwritable event.
        serde_json::to_string(&d.event).expect("an accepted event serializes");
        Ok(())
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
            let lines = lines("engine-events.jsonl");
            let line = &lines[pick % lines.len()];
            let at = ((line.len() as f64) * cut) as usize;
            if at + 1 < line.len() {
                prop_assert!(parse_any(&line[..at]).is_err(), "a truncated event was accepted");
            }
            let mut mutated = line.clone();
            for (pos, byte) in flips {
                let i = ((mutated.len() as f64) * pos) as usize % mutated.len();
                mutated[i] = byte;
            }
            let _ = parse_any(&mutated);
        }

        /// Inspect output of any shape never panics either.
        #[test]
        fn arbitrary_inspect_json_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let _ = ContainerFacts::from_inspect(v.clone());
                let _ = ExecFacts::from_inspect(v);
            }
        }
    }
}
