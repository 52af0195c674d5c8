//! `vigil-agent scan` as a user runs it: the binary, real files, real output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(args)
        .current_dir(root())
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("vigil-agent runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_attack_story_is_reported_in_text() {
    let o = agent(&[
        "scan",
        "--format",
        "text",
        "examples/audit/attack-story.log",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // Each step of the story, by its rule and its actor.
    for (rule, needle) in [
        (
            "container.exec",
            "dev-alice@example.com → exec pods/exec shop/",
        ),
        ("container.shell", "/bin/sh"),
        (
            "container.sensitive-exec",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
        ),
        ("container.privileged", "create deployments shop/node-debug"),
        ("container.host-path", "create deployments shop/node-debug"),
        (
            "container.host-namespace",
            "create deployments shop/node-debug",
        ),
        (
            "container.dangerous-capability",
            "create deployments shop/node-debug",
        ),
        (
            "rbac.cluster-admin-binding",
            "create clusterrolebindings debug-admin",
        ),
        ("secret.enumeration", "list secrets (cluster-wide)"),
        ("auth.forbidden", "[denied]"),
    ] {
        assert!(
            text.lines().any(|l| l.contains(rule) && l.contains(needle)),
            "no `{rule}` line containing `{needle}` in:\n{text}"
        );
    }
    assert!(
        text.contains("Summary: 1 input(s), 200 record(s), 200 event(s)"),
        "{text}"
    );
    assert!(text.contains("0 malformed"), "{text}");
}

#[test]
fn json_output_validates_against_the_committed_schema() {
    let o = agent(&["scan", "examples/audit/attack-story.log"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("schema/vigil.event.v1.json")).unwrap(),
    )
    .unwrap();
    let validator =
        jsonschema::validator_for(&schema).expect("the committed schema is a valid JSON Schema");
    let text = stdout(&o);
    let mut n = 0;
    let mut with_detections = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Err(e) = validator.validate(&v) {
            panic!("event does not match the schema: {e}\n{line}");
        }
        assert_eq!(v["schema"], "vigil.event/v1");
        if v.get("detections").is_some() {
            with_detections += 1;
        }
        n += 1;
    }
    assert_eq!(n, 200);
    assert!(with_detections >= 8, "{with_detections}");
    // The schema is strict: an unknown key is refused, so the validation above means something.
    let mut bad: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    bad["surprise"] = serde_json::json!(1);
    assert!(validator.validate(&bad).is_err());
}

#[test]
fn only_detections_filters_events() {
    let o = agent(&[
        "scan",
        "--only-detections",
        "examples/audit/attack-story.log",
    ]);
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty() && lines.len() < 200);
    assert!(
        lines
            .iter()
            .all(|v| v["detections"].as_array().is_some_and(|d| !d.is_empty()))
    );
}

#[test]
fn malformed_records_are_reported_with_file_and_line() {
    let o = agent(&[
        "scan",
        "--format",
        "text",
        "core/tests/fixtures/audit/malformed.jsonl",
    ]);
    assert!(o.status.success(), "malformed input is not fatal");
    let err = stderr(&o);
    for line in [2, 4, 5, 6, 8, 10, 11] {
        assert!(
            err.contains(&format!(
                "core/tests/fixtures/audit/malformed.jsonl:{line}: skipped"
            )),
            "line {line}:\n{err}"
        );
    }
    assert!(stdout(&o).contains("4 event(s)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("7 malformed"), "{}", stdout(&o));
}

#[test]
fn every_envelope_scans_including_pretty_printed_documents() {
    let dir = "core/tests/fixtures/audit";
    let files = [
        ("v1-event.json", 1),
        ("eventlist.json", 3),
        ("eks-cloudwatch-subscription.json", 3),
        ("eks-filter-log-events.json", 3),
        ("eks-s3-export.log", 4),
        ("aks-diagnostic-object.jsonl", 2),
        ("aks-diagnostic-string.jsonl", 3),
        ("aks-eventhub-records.json", 3),
        ("gke-cloud-logging.jsonl", 5),
    ];
    for (f, n) in files {
        let path = format!("{dir}/{f}");
        let o = agent(&["scan", &path]);
        assert!(o.status.success());
        assert_eq!(stdout(&o).lines().count(), n, "{f}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{f}: {}", stderr(&o));
    }
}

#[test]
fn hostile_files_do_not_stop_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let good =
        std::fs::read_to_string(root().join("core/tests/fixtures/audit/v1-event.json")).unwrap();
    let mut content = Vec::new();
    content.extend_from_slice(&[0xff, 0x00, 0x1f, 0x8b, 0x08, b'\n']);
    content.extend_from_slice(b"{\"kind\":\"Event\",\"verb\":\"");
    content.extend(std::iter::repeat_n(b'a', 10 << 20));
    content.extend_from_slice(b"\"}\n");
    content.extend_from_slice(good.as_bytes());
    content.extend_from_slice(b"{\"kind\":\"Event\",\"verb\":\"get\"");
    let path = dir.path().join("hostile.log");
    std::fs::write(&path, &content).unwrap();
    let empty = dir.path().join("empty.log");
    std::fs::write(&empty, b"").unwrap();
    let o = agent(&[
        "scan",
        "--format",
        "text",
        "--max-line-bytes",
        "1048576",
        path.to_str().unwrap(),
        empty.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("2 input(s), 4 record(s), 1 event(s)"), "{out}");
    assert!(
        out.contains("invalid_json=2") && out.contains("oversize=1"),
        "{out}"
    );
}

#[test]
fn stdin_is_read_with_a_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["scan", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = std::fs::read(root().join("core/tests/fixtures/audit/eventlist.json")).unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&input).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[test]
fn unreadable_input_fails_and_says_why() {
    let o = agent(&["scan", "/nonexistent/audit.log"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/audit.log: cannot open"),
        "{}",
        stderr(&o)
    );
    let o = agent(&[
        "scan",
        "--rules",
        "/nonexistent/rules",
        "examples/audit/attack-story.log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/rules"), "{}", stderr(&o));
}

#[test]
fn user_rules_are_added_and_tested() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tests")).unwrap();
    std::fs::write(
        dir.path().join("leases.yml"),
        "title: Lease updated by a node\nid: 0d1f3c9e-2f59-4d8f-9a51-8b6a3f0f6a10\nname: custom.lease-update\ndescription: a user rule\nlogsource:\n  product: kubernetes\n  service: audit\ndetection:\n  sel:\n    objectRef.resource: leases\n    verb: update\n    user.username|startswith: 'system:node:'\n  condition: sel\nlevel: low\ntags: [attack.t1078]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tests/leases.yml"),
        "rule: custom.lease-update\nfire:\n  - name: node lease\n    audit: {kind: Event, verb: update, requestURI: /x, user: {username: 'system:node:a'}, objectRef: {resource: leases}}\nno_fire:\n  - name: controller lease\n    audit: {kind: Event, verb: update, requestURI: /x, user: {username: 'system:kube-scheduler'}, objectRef: {resource: leases}}\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    let o = agent(&["rules", "test", d]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("2 passed, 0 failed"), "{}", stdout(&o));

    let o = agent(&["rules", "list", "--rules", d]);
    assert!(stdout(&o).contains("custom.lease-update"));
    assert!(stdout(&o).contains("container.privileged"));

    let o = agent(&[
        "scan",
        "--only-detections",
        "--no-builtin-rules",
        "--rules",
        d,
        "examples/audit/attack-story.log",
    ]);
    let n = stdout(&o).lines().count();
    assert!(n > 10, "node lease updates in the story: {n}");

    // A broken test case makes `rules test` fail.
    std::fs::write(
        dir.path().join("tests/leases.yml"),
        "rule: custom.lease-update\nfire:\n  - name: not a node\n    audit: {kind: Event, verb: update, requestURI: /x, user: {username: alice}, objectRef: {resource: leases}}\n",
    )
    .unwrap();
    let o = agent(&["rules", "test", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("FAIL custom.lease-update"),
        "{}",
        stdout(&o)
    );
}

/// Writes `text` at `rel` under `dir`, creating directories.
fn put(dir: &std::path::Path, rel: &str, text: &str) -> String {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn events(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_cri_pod_log_is_reassembled_enriched_from_its_path_and_checked_by_the_log_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = put(
        dir.path(),
        "var/log/pods/shop_web-7c9f8d6b5-x2kqz_0f1e2d3c-aaaa-bbbb-cccc-123456789abc/nginx/0.log",
        concat!(
            "2024-05-02T10:15:30.123456789Z stdout F 203.0.113.9 - - [02/May/2024:10:15:30 +0000] \"GET /static/app.js HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"\n",
            "2024-05-02T10:15:31.5+02:00 stdout P 203.0.113.9 - - [02/May/2024:10:15:31 +0000] \"GET /static/../../\n",
            "2024-05-02T10:15:31.5+02:00 stderr F worker 3 started\n",
            "2024-05-02T10:15:31.5+02:00 stdout F ../../etc/passwd HTTP/1.1\" 400 157 \"-\" \"curl/8.5.0\"\n",
            "not a CRI line at all\n",
            "2024-05-02T10:15:32Z stdout P unfinished at the end of the file\n",
        ),
    );
    let o = agent(&["scan", &file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let events = events(&o);
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["log"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 4, "{messages:?}");
    assert!(
        messages[1].starts_with("worker 3"),
        "stderr interleaves: {messages:?}"
    );
    assert!(
        messages[2].contains("GET /static/../../../../etc/passwd HTTP/1.1"),
        "P parts joined: {messages:?}"
    );
    assert_eq!(
        events[3]["log"]["partial"], true,
        "an open message is emitted cut"
    );
    let traversal = &events[2];
    assert_eq!(traversal["source"], "container_log");
    assert_eq!(
        traversal["time"], "2024-05-02T08:15:31.500000000Z",
        "converted to UTC"
    );
    assert_eq!(traversal["container"]["name"], "nginx");
    assert_eq!(traversal["container"]["pod"]["namespace"], "shop");
    assert_eq!(traversal["container"]["pod"]["name"], "web-7c9f8d6b5-x2kqz");
    let rules: Vec<&str> = traversal["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"log.web-path-traversal"), "{rules:?}");
    assert!(
        events[0].get("detections").is_none(),
        "an ordinary request is quiet"
    );
    let err = stderr(&o);
    assert!(err.contains(&format!("{file}:5: skipped")), "{err}");
}

#[test]
fn a_docker_json_file_log_is_read_with_its_parts_joined() {
    let dir = tempfile::tempdir().unwrap();
    let id = "4f".repeat(32);
    let file = put(
        dir.path(),
        &format!("var/lib/docker/containers/{id}/{id}-json.log"),
        concat!(
            "{\"log\":\"sh: \",\"stream\":\"stderr\",\"time\":\"2024-05-02T10:15:30.1Z\"}\n",
            "{\"log\":\"can't access tty; job control turned off\\n\",\"stream\":\"stderr\",\"time\":\"2024-05-02T10:15:30.2Z\"}\n",
            "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-02T10:15:31Z\"}\n",
            "{\"log\": 42}\n",
        ),
    );
    let o = agent(&["scan", "--format", "text", &file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("log.shell-announced"), "{text}");
    let o = agent(&["scan", &file]);
    let events = events(&o);
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["log"]["message"],
        "sh: can't access tty; job control turned off"
    );
    assert_eq!(events[0]["container"]["id"], id.as_str());
    assert!(
        stderr(&o).contains(&format!("{file}:4: skipped")),
        "{}",
        stderr(&o)
    );
}
