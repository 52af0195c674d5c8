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
