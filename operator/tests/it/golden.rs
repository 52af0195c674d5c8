//! Golden files: each directory under `tests/golden/` holds `input.yaml` (ContainerMonitor
//! manifests) and what rendering it must give: `policy.yaml` (the audit policy, byte for
//! byte), `agent.yaml` (every namespace's agent configuration) and `report.txt` (the policy
//! hash and every monitor's problems). `VIGIL_UPDATE_GOLDEN=1 cargo test -p vigil-operator
//! --test it golden::` rewrites them; review the diff before committing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use vigil_operator::manifests;
use vigil_operator::render::policy::{self, Policy};
use vigil_operator::render::{self, Catalog, Rendered, hash_hex};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("input.yaml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn render_case(dir: &Path) -> Rendered {
    let text = std::fs::read_to_string(dir.join("input.yaml")).unwrap();
    let monitors = manifests::parse(&text, "input.yaml", "default").unwrap();
    render::render(&monitors, &Catalog::builtin().unwrap()).unwrap()
}

fn agent_yaml(r: &Rendered) -> String {
    let mut out = String::new();
    for ns in r.namespaces.keys() {
        out.push_str("---\n");
        out.push_str(&r.namespace_yaml(ns).unwrap().unwrap());
    }
    out
}

fn report(r: &Rendered) -> String {
    let mut out = format!(
        "policy sha256:{}\nrules: {}\n",
        r.policy_hash,
        r.policy.rules.len()
    );
    for (monitor, problems) in &r.monitors {
        if problems.is_empty() {
            writeln!(out, "{monitor}: ok").unwrap();
        }
        for p in problems {
            writeln!(out, "{monitor}: {p}").unwrap();
        }
    }
    for p in &r.cluster_problems {
        writeln!(out, "cluster: {p}").unwrap();
    }
    out
}

#[test]
fn rendering_matches_the_golden_files() {
    let update = std::env::var_os("VIGIL_UPDATE_GOLDEN").is_some();
    let cases = cases();
    assert!(cases.len() >= 5, "golden cases missing: {cases:?}");
    let mut failures = Vec::new();
    for dir in &cases {
        let r = render_case(dir);
        for (file, got) in [
            ("policy.yaml", r.policy_yaml.clone()),
            ("agent.yaml", agent_yaml(&r)),
            ("report.txt", report(&r)),
        ] {
            let path = dir.join(file);
            if update {
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != got {
                let line = want
                    .lines()
                    .zip(got.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
                failures.push(format!(
                    "{}: differs from line {}:\n  want: {:?}\n  got:  {:?}",
                    path.display(),
                    line + 1,
                    want.lines().nth(line),
                    got.lines().nth(line)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(if the change is intended: VIGIL_UPDATE_GOLDEN=1 cargo test -p vigil-operator --test it golden::)",
        failures.join("\n")
    );
}

/// What kube-apiserver and a reviewer rely on, checked on the committed policies themselves.
#[test]
fn every_golden_policy_is_a_well_ordered_audit_policy() {
    let baseline = policy::baseline();
    for dir in cases() {
        let text = std::fs::read_to_string(dir.join("policy.yaml")).unwrap();
        let p: Policy = yaml_serde::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not an audit policy: {e}", dir.display()));
        let name = dir.display();
        assert_eq!(p.api_version, "audit.k8s.io/v1", "{name}");
        assert_eq!(p.kind, "Policy", "{name}");
        assert!(
            p.omit_stages
                .contains(&vigil_operator::crd::AuditStage::RequestReceived),
            "{name}"
        );
        assert!(p.rules.len() > baseline.len(), "{name}");
        assert_eq!(
            p.rules[..baseline.len()],
            baseline[..],
            "{name}: baseline first"
        );
        let (last, middle) = p.rules[baseline.len()..].split_last().unwrap();
        assert_eq!(*last, policy::default_rule(), "{name}: default last");
        let namespaces: Vec<&str> = middle
            .iter()
            .map(|r| {
                assert_eq!(
                    r.namespaces.len(),
                    1,
                    "{name}: {r:?} is scoped to one namespace"
                );
                assert!(r.non_resource_urls.is_empty(), "{name}");
                r.namespaces[0].as_str()
            })
            .collect();
        assert!(
            namespaces.windows(2).all(|w| w[0] <= w[1]),
            "{name}: namespace rules sorted by namespace: {namespaces:?}"
        );
        let report = std::fs::read_to_string(dir.join("report.txt")).unwrap();
        assert!(
            report.starts_with(&format!("policy sha256:{}\n", hash_hex(text.as_bytes()))),
            "{name}: the reported hash is the policy file's sha256"
        );
    }
}
