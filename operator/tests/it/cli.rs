//! The `vigil-operator` command as a user runs it.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigil-operator"))
}

fn golden(case: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(case)
        .join("input.yaml")
}

#[test]
fn crd_prints_the_committed_manifest() {
    let out = bin().arg("crd").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/crds/containermonitors.vigil.dev.yaml"),
    )
    .unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn render_writes_the_policy_its_hash_and_one_file_per_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["render", "-f"])
        .arg(golden("many-namespaces"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let policy = std::fs::read_to_string(dir.path().join("audit-policy.yaml")).unwrap();
    let hash = std::fs::read_to_string(dir.path().join("audit-policy.sha256")).unwrap();
    assert_eq!(
        hash.trim(),
        vigil_operator::render::hash_hex(policy.as_bytes())
    );
    let expected =
        std::fs::read_to_string(golden("many-namespaces").with_file_name("policy.yaml")).unwrap();
    assert_eq!(policy, expected);
    for ns in ["analytics", "batch", "ci", "kube-system", "payments"] {
        assert!(
            dir.path().join(format!("agent/{ns}.yaml")).is_file(),
            "{ns}"
        );
    }
    assert!(
        stderr.contains("ContainerMonitor payments/payments: clamped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("5 ContainerMonitors in 5 namespaces"),
        "{stderr}"
    );
}

#[test]
fn render_exits_1_and_names_the_monitor_when_something_is_refused() {
    let out = bin()
        .args(["render", "-f"])
        .arg(golden("inline-rule-errors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ContainerMonitor research/detections: refused: spec.detections.rules[1]"),
        "{stderr}"
    );
    // The output is still complete and usable.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kind: Policy"));
    assert!(stdout.contains("research.notebook-shell"));
}

#[test]
fn render_reads_directories_and_stdin_and_rejects_broken_manifests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let out = bin().args(["render", "-f"]).arg(&dir).output().unwrap();
    // Several cases share names across files: the command still renders.
    assert!(out.status.code().is_some_and(|c| c <= 1));

    let mut child = bin()
        .args(["render", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"apiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: m}\nspec:\n  audit: {level: Loud}\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<stdin>:1:"), "{stderr}");
    assert!(stderr.contains("Loud"), "{stderr}");
}

#[test]
fn help_explains_the_commands_and_exit_codes() {
    let out = bin().args(["render", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for wanted in ["-f, --filename", "--out", "Exit status", "Examples"] {
        assert!(help.contains(wanted), "{wanted} missing from:\n{help}");
    }
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("crd") && help.contains("render"), "{help}");
}

#[test]
fn console_runs_alone_stores_what_it_is_sent_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("tokens"), "t0k3n\n").unwrap();
    let config = dir.path().join("console.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nstore: {{path: {d}/store/events.db}}\nauth: {{viewer_token_files: [{d}/tokens], ingest_token_files: [{d}/tokens]}}\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let child = bin()
        .args(["console", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let request = |req: &str| -> String {
        use std::io::{Read, Write};
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(req.as_bytes()).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the console never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let event = r#"{"schema":"vigil.event/v1","id":"cli-1","time":"2026-11-23T10:00:00Z","ingest_time":"2026-11-23T10:00:00Z","source":"docker","kind":"runtime","action":"start","outcome":"success","container":{"name":"from-the-cli"}}"#;
    let answer = request(&format!(
        "POST /api/v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k3n\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{event}",
        event.len()
    ));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let page = request(
        "GET /events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0k3n\r\nConnection: close\r\n\r\n",
    );
    assert!(
        page.starts_with("HTTP/1.1 200") && page.contains("from-the-cli"),
        "{page}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("console listening on 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[test]
fn console_refuses_a_configuration_that_cannot_work_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("console.yaml");
    for (yaml, says) in [
        ("store: {path: /tmp/x.db}\n", "nobody may view the console"),
        (
            "store: {path: /tmp/x.db}\nlisten: nowhere\n",
            "invalid console configuration",
        ),
        (
            "store: {path: /tmp/x.db}\nauth: {token_review: {viewer_users: [a]}}\n",
            "needs the Kubernetes API",
        ),
    ] {
        std::fs::write(&config, yaml).unwrap();
        let out = bin()
            .args(["console", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {stderr}");
        assert!(stderr.contains(says), "{yaml}: {stderr}");
    }
}

#[test]
fn the_example_console_configuration_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/console/console.yaml");
    let cfg: vigil_operator::console::ConsoleConfig =
        yaml_serde::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    cfg.validate().unwrap();
}
