//! kube-apiserver's static pod manifest: are the audit flags there, and does the policy file
//! this agent writes reach the apiserver's container?

use std::path::{Component, Path, PathBuf};

use yaml_serde::Value;

/// Annotation set on the apiserver's static pod to make the kubelet restart it (it restarts a
/// static pod whenever its manifest changes), holding the hash of the policy it should load.
pub const RESTART_ANNOTATION: &str = "vigil.dev/audit-policy-hash";

/// Something in the manifest that keeps the policy from being used as intended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No kube-apiserver container in the manifest.
    NoApiserver,
    /// A flag is missing.
    MissingFlag(&'static str),
    /// `--audit-policy-file` names another file than the one written.
    PolicyElsewhere {
        /// The flag's value.
        flag: String,
        /// Where the written policy appears inside the container, if it does at all.
        expected: Option<String>,
    },
    /// No hostPath volume mounted in the container covers a host path the apiserver needs.
    NotMounted {
        /// The host path (the policy file, or the audit log's directory).
        host_path: String,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NoApiserver => write!(f, "no kube-apiserver container in the manifest"),
            Problem::MissingFlag(flag) => write!(f, "kube-apiserver has no {flag} flag"),
            Problem::PolicyElsewhere {
                flag,
                expected: Some(expected),
            } => write!(
                f,
                "--audit-policy-file={flag}, but the policy is written where the container sees {expected}"
            ),
            Problem::PolicyElsewhere {
                flag,
                expected: None,
            } => write!(
                f,
                "--audit-policy-file={flag} is not the file this agent writes"
            ),
            Problem::NotMounted { host_path } => write!(
                f,
                "no hostPath volume of the kube-apiserver pod covers {host_path}"
            ),
        }
    }
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Check {
    /// Problems, in manifest order; empty: the policy written is the policy loaded.
    pub problems: Vec<Problem>,
    /// The hash in [`RESTART_ANNOTATION`], if set.
    pub annotated_hash: Option<String>,
}

/// Checks a parsed manifest against the host path the policy is written to.
pub fn check(manifest: &Value, policy_host_path: &Path) -> Check {
    let mut out = Check {
        annotated_hash: manifest["metadata"]["annotations"][RESTART_ANNOTATION]
            .as_str()
            .map(str::to_owned),
        ..Check::default()
    };
    let Some(container) = apiserver_container(manifest) else {
        out.problems.push(Problem::NoApiserver);
        return out;
    };
    let args: Vec<&str> = ["command", "args"]
        .iter()
        .filter_map(|k| container[*k].as_sequence())
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let flag = |name: &str| {
        args.iter().find_map(|a| {
            a.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
    };
    let mounts = host_mounts(manifest, container);
    let inside = |host: &Path| container_path(&mounts, host);

    match flag("--audit-policy-file") {
        None => out
            .problems
            .push(Problem::MissingFlag("--audit-policy-file")),
        Some(value) => {
            let expected = inside(policy_host_path);
            if expected.as_deref() != Some(Path::new(&value)) {
                if expected.is_none() {
                    out.problems.push(Problem::NotMounted {
                        host_path: policy_host_path.display().to_string(),
                    });
                }
                out.problems.push(Problem::PolicyElsewhere {
                    flag: value,
                    expected: expected.map(|p| p.display().to_string()),
                });
            }
        }
    }
    match (
        flag("--audit-log-path"),
        flag("--audit-webhook-config-file"),
    ) {
        (None, None) => out.problems.push(Problem::MissingFlag("--audit-log-path")),
        (Some(log), _) if log != "-" => {
            for rotation in [
                "--audit-log-maxage",
                "--audit-log-maxbackup",
                "--audit-log-maxsize",
            ] {
                if flag(rotation).is_none() {
                    out.problems.push(Problem::MissingFlag(rotation));
                }
            }
            // The log is written inside the container; it must land on the host, where this
            // agent tails it.
            let dir = Path::new(&log).parent().unwrap_or(Path::new("/"));
            if !mounts.iter().any(|(_, c)| dir.starts_with(c)) {
                out.problems.push(Problem::NotMounted {
                    host_path: dir.display().to_string(),
                });
            }
        }
        _ => {}
    }
    out
}

/// Sets [`RESTART_ANNOTATION`] to `hash`; false if the manifest has no metadata mapping.
pub fn annotate(manifest: &mut Value, hash: &str) -> bool {
    let Some(meta) = manifest
        .as_mapping_mut()
        .and_then(|m| m.get_mut("metadata"))
        .and_then(Value::as_mapping_mut)
    else {
        return false;
    };
    let annotations = meta
        .entry(Value::from("annotations"))
        .or_insert_with(|| Value::Mapping(Default::default()));
    if !annotations.is_mapping() {
        *annotations = Value::Mapping(Default::default());
    }
    match annotations.as_mapping_mut() {
        Some(a) => {
            a.insert(Value::from(RESTART_ANNOTATION), Value::from(hash));
            true
        }
        None => false,
    }
}

fn apiserver_container(manifest: &Value) -> Option<&Value> {
    let containers = manifest["spec"]["containers"].as_sequence()?;
    containers
        .iter()
        .find(|c| c["name"].as_str() == Some("kube-apiserver"))
        .or_else(|| {
            containers.iter().find(|c| {
                c["command"]
                    .as_sequence()
                    .and_then(|s| s.first())
                    .and_then(Value::as_str)
                    .is_some_and(|cmd| cmd.ends_with("kube-apiserver"))
            })
        })
}

/// (host path, container path) of every hostPath volume the container mounts.
fn host_mounts(manifest: &Value, container: &Value) -> Vec<(PathBuf, PathBuf)> {
    let volumes = manifest["spec"]["volumes"].as_sequence();
    container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m["name"].as_str()?;
            let at = m["mountPath"].as_str()?;
            let host =
                volumes?.iter().find(|v| v["name"].as_str() == Some(name))?["hostPath"]["path"]
                    .as_str()?;
            Some((clean(Path::new(host)), clean(Path::new(at))))
        })
        .collect()
}

/// Where a host path appears inside the container, through the most specific mount.
fn container_path(mounts: &[(PathBuf, PathBuf)], host: &Path) -> Option<PathBuf> {
    let host = clean(host);
    mounts
        .iter()
        .filter_map(|(h, c)| host.strip_prefix(h).ok().map(|rest| (h, c.join(rest))))
        .max_by_key(|(h, _)| h.components().count())
        .map(|(_, p)| p)
}

fn clean(p: &Path) -> PathBuf {
    p.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubeadm manifest with auditing set up as docs/install.md says.
    const KUBEADM: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.10:6443
  labels: {component: kube-apiserver, tier: control-plane}
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.10
    - --audit-policy-file=/etc/kubernetes/audit/policy.yaml
    - --audit-log-path=/var/log/kubernetes/audit/audit.log
    - --audit-log-maxage=7
    - --audit-log-maxbackup=4
    - --audit-log-maxsize=100
    image: registry.k8s.io/kube-apiserver:v1.31.0
    name: kube-apiserver
    volumeMounts:
    - {mountPath: /etc/kubernetes/audit, name: audit-policy, readOnly: true}
    - {mountPath: /var/log/kubernetes/audit, name: audit-log}
    - {mountPath: /etc/kubernetes/pki, name: k8s-certs, readOnly: true}
  hostNetwork: true
  volumes:
  - {hostPath: {path: /etc/kubernetes/audit, type: DirectoryOrCreate}, name: audit-policy}
  - {hostPath: {path: /var/log/kubernetes/audit, type: DirectoryOrCreate}, name: audit-log}
  - {hostPath: {path: /etc/kubernetes/pki, type: DirectoryOrCreate}, name: k8s-certs}
"#;

    fn parse(text: &str) -> Value {
        yaml_serde::from_str(text).unwrap()
    }

    #[test]
    fn a_complete_kubeadm_manifest_has_no_problem() {
        let c = check(
            &parse(KUBEADM),
            Path::new("/etc/kubernetes/audit/policy.yaml"),
        );
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.annotated_hash, None);
    }

    #[test]
    fn a_manifest_without_auditing_lists_every_missing_piece() {
        let bare = KUBEADM
            .lines()
            .filter(|l| !l.contains("audit"))
            .collect::<Vec<_>>()
            .join("\n");
        let c = check(
            &parse(&bare),
            Path::new("/etc/kubernetes/audit/policy.yaml"),
        );
        assert_eq!(
            c.problems,
            vec![
                Problem::MissingFlag("--audit-policy-file"),
                Problem::MissingFlag("--audit-log-path"),
            ]
        );
    }

    #[test]
    fn rotation_flags_and_mounts_are_checked() {
        let text = KUBEADM
            .replace("    - --audit-log-maxbackup=4\n", "")
            .replace(
                "  - {hostPath: {path: /etc/kubernetes/audit, type: DirectoryOrCreate}, name: audit-policy}\n",
                "",
            );
        let c = check(
            &parse(&text),
            Path::new("/etc/kubernetes/audit/policy.yaml"),
        );
        let shown: Vec<String> = c.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "no hostPath volume of the kube-apiserver pod covers /etc/kubernetes/audit/policy.yaml",
                "--audit-policy-file=/etc/kubernetes/audit/policy.yaml is not the file this agent writes",
                "kube-apiserver has no --audit-log-maxbackup flag",
            ]
        );
    }

    #[test]
    fn a_policy_mounted_elsewhere_is_found_through_the_mount() {
        // The agent writes /srv/vigil/policy.yaml on the host, mounted at /etc/audit.
        let text = KUBEADM
            .replace(
                "path: /etc/kubernetes/audit, type",
                "path: /srv/vigil, type",
            )
            .replace(
                "mountPath: /etc/kubernetes/audit, name: audit-policy",
                "mountPath: /etc/audit, name: audit-policy",
            );
        let c = check(&parse(&text), Path::new("/srv/vigil/policy.yaml"));
        assert_eq!(
            c.problems,
            vec![Problem::PolicyElsewhere {
                flag: "/etc/kubernetes/audit/policy.yaml".into(),
                expected: Some("/etc/audit/policy.yaml".into()),
            }]
        );
    }

    #[test]
    fn a_webhook_only_apiserver_needs_no_log_flags() {
        let text = KUBEADM
            .replace(
                "--audit-log-path=/var/log/kubernetes/audit/audit.log",
                "--audit-webhook-config-file=/etc/kubernetes/audit/webhook.yaml",
            )
            .replace("    - --audit-log-maxage=7\n", "")
            .replace("    - --audit-log-maxbackup=4\n", "")
            .replace("    - --audit-log-maxsize=100\n", "");
        let c = check(
            &parse(&text),
            Path::new("/etc/kubernetes/audit/policy.yaml"),
        );
        assert!(c.problems.is_empty(), "{:?}", c.problems);
    }

    #[test]
    fn annotating_marks_the_pod_and_is_read_back() {
        let mut m = parse(KUBEADM);
        assert!(annotate(&mut m, "abc123"));
        let text = yaml_serde::to_string(&m).unwrap();
        let again = parse(&text);
        let c = check(&again, Path::new("/etc/kubernetes/audit/policy.yaml"));
        assert_eq!(c.annotated_hash.as_deref(), Some("abc123"));
        assert!(c.problems.is_empty());
        // Other annotations survive.
        assert!(text.contains("kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"));
    }

    #[test]
    fn hostile_manifests_give_problems_not_panics() {
        for text in [
            "[]",
            "42",
            "spec: {containers: 7}",
            "spec: {containers: [{name: kube-apiserver, command: [1, 2, {a: b}]}]}",
            "spec: {containers: [{name: kube-apiserver, volumeMounts: [{name: x}]}], volumes: [{name: x, hostPath: 3}]}",
        ] {
            let c = check(&parse(text), Path::new("/etc/kubernetes/audit/policy.yaml"));
            assert!(!c.problems.is_empty(), "{text}");
            let mut v = parse(text);
            annotate(&mut v, "h");
        }
    }
}
