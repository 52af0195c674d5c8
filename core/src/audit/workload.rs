//! Security facts of a pod spec, from any object that carries one.
//!
//! The pod spec sits at a different depth per kind: `spec` of a Pod, `spec.template.spec` of
//! a Deployment, DaemonSet, StatefulSet, ReplicaSet, ReplicationController or Job,
//! `spec.jobTemplate.spec.template.spec` of a CronJob, `template.spec` of a PodTemplate. The
//! shape is probed rather than the kind trusted, so a patch body or an object of a kind this
//! code has never heard of (an operator's CRD with a pod template) still yields its facts.

use serde_json::Value;

use crate::event::{HostPath, Workload, WorkloadContainer};

/// Extracts the workload facts of `obj`, or `None` when it carries no pod spec.
pub fn workload_from_object(obj: &Value) -> Option<Workload> {
    let spec = pod_spec(obj)?;
    let mut w = Workload {
        kind: str_at(obj, "kind"),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        service_account: str_at(spec, "serviceAccountName")
            .or_else(|| str_at(spec, "serviceAccount")),
        host_network: bool_at(spec, "hostNetwork"),
        host_pid: bool_at(spec, "hostPID"),
        host_ipc: bool_at(spec, "hostIPC"),
        ..Workload::default()
    };
    let pod_run_as_root = run_as_root(spec.get("securityContext"));

    let host_volumes = host_path_volumes(spec);
    let mut mounts: Vec<HostPath> = Vec::new();
    for (role, key) in [
        (Some("init"), "initContainers"),
        (None, "containers"),
        (Some("ephemeral"), "ephemeralContainers"),
    ] {
        let Some(list) = spec.get(key).and_then(Value::as_array) else {
            continue;
        };
        for c in list {
            let container = container_facts(c, role, pod_run_as_root);
            w.privileged |= container.privileged;
            for cap in &container.capabilities_added {
                if !w.capabilities_added.contains(cap) {
                    w.capabilities_added.push(cap.clone());
                }
            }
            if let Some(image) = &container.image
                && !w.images.contains(image)
            {
                w.images.push(image.clone());
            }
            record_mounts(c, &host_volumes, &mut mounts);
            w.containers.push(container);
        }
    }
    // A hostPath volume no container mounts still reaches the node when one is added later
    // (an ephemeral container); it is reported, writable unless every mount says otherwise.
    for (_, path) in &host_volumes {
        if !mounts.iter().any(|m| &m.path == path) {
            mounts.push(HostPath {
                path: path.clone(),
                read_only: false,
            });
        }
    }
    w.host_paths = mounts;
    Some(w)
}

fn pod_spec(obj: &Value) -> Option<&Value> {
    const CANDIDATES: [&str; 4] = [
        "/spec/jobTemplate/spec/template/spec",
        "/spec/template/spec",
        "/template/spec",
        "/spec",
    ];
    CANDIDATES
        .iter()
        .filter_map(|p| obj.pointer(p))
        .find(|s| is_pod_spec(s))
}

fn is_pod_spec(v: &Value) -> bool {
    [
        "containers",
        "initContainers",
        "ephemeralContainers",
        "volumes",
        "hostNetwork",
        "hostPID",
        "hostIPC",
    ]
    .iter()
    .any(|k| v.get(k).is_some())
}

fn container_facts(
    c: &Value,
    role: Option<&str>,
    pod_run_as_root: Option<bool>,
) -> WorkloadContainer {
    let sc = c.get("securityContext");
    let caps = sc
        .and_then(|s| s.pointer("/capabilities/add"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(normalize_capability)
                .collect()
        })
        .unwrap_or_default();
    WorkloadContainer {
        name: str_at(c, "name").unwrap_or_default(),
        image: str_at(c, "image"),
        role: role.map(str::to_owned),
        privileged: sc.is_some_and(|s| bool_at(s, "privileged")),
        allow_privilege_escalation: sc
            .and_then(|s| s.get("allowPrivilegeEscalation"))
            .and_then(Value::as_bool),
        run_as_root: run_as_root(sc).or(pod_run_as_root).unwrap_or(false),
        capabilities_added: caps,
    }
}

/// `Some(true)` when the context explicitly runs as root, `Some(false)` when it explicitly
/// does not, `None` when it does not say (the image decides).
fn run_as_root(sc: Option<&Value>) -> Option<bool> {
    let sc = sc?;
    match sc.get("runAsUser").and_then(Value::as_i64) {
        Some(0) => return Some(true),
        Some(_) => return Some(false),
        None => {}
    }
    sc.get("runAsNonRoot")
        .and_then(Value::as_bool)
        .map(|non_root| !non_root)
}

/// `CAP_SYS_ADMIN`, `sys_admin` and `SYS_ADMIN` are one capability.
fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

/// Volume name → host path, for the pod's hostPath volumes.
fn host_path_volumes(spec: &Value) -> Vec<(String, String)> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .map(|vols| {
            vols.iter()
                .filter_map(|v| {
                    let path = v.pointer("/hostPath/path")?.as_str()?;
                    Some((str_at(v, "name").unwrap_or_default(), path.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn record_mounts(c: &Value, host_volumes: &[(String, String)], mounts: &mut Vec<HostPath>) {
    let Some(list) = c.get("volumeMounts").and_then(Value::as_array) else {
        return;
    };
    for m in list {
        let Some(name) = m.get("name").and_then(Value::as_str) else {
            continue;
        };
        let Some((_, path)) = host_volumes.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let read_only = bool_at(m, "readOnly");
        match mounts.iter_mut().find(|h| &h.path == path) {
            Some(existing) => existing.read_only &= read_only,
            None => mounts.push(HostPath {
                path: path.clone(),
                read_only,
            }),
        }
    }
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn bool_at(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_spec_json() -> Value {
        json!({
            "hostPID": true,
            "serviceAccountName": "builder",
            "securityContext": {"runAsUser": 1000},
            "initContainers": [{"name": "init", "image": "busybox", "securityContext": {"privileged": true}}],
            "containers": [
                {"name": "app", "image": "nginx:1.27",
                 "securityContext": {"capabilities": {"add": ["NET_ADMIN", "cap_sys_admin"]}, "runAsUser": 0},
                 "volumeMounts": [{"name": "root", "mountPath": "/host", "readOnly": true},
                                  {"name": "sock", "mountPath": "/var/run/docker.sock"}]},
                {"name": "side", "image": "nginx:1.27",
                 "volumeMounts": [{"name": "root", "mountPath": "/host2"}]}
            ],
            "ephemeralContainers": [{"name": "dbg", "image": "alpine", "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}],
            "volumes": [{"name": "root", "hostPath": {"path": "/"}},
                        {"name": "sock", "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"}},
                        {"name": "etc", "hostPath": {"path": "/etc"}},
                        {"name": "tmp", "emptyDir": {}}]
        })
    }

    #[test]
    fn finds_the_pod_spec_of_every_kind() {
        let spec = pod_spec_json();
        let objects = [
            ("Pod", json!({"kind": "Pod", "spec": spec})),
            (
                "Deployment",
                json!({"kind": "Deployment", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "DaemonSet",
                json!({"kind": "DaemonSet", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "StatefulSet",
                json!({"kind": "StatefulSet", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "ReplicaSet",
                json!({"kind": "ReplicaSet", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "ReplicationController",
                json!({"kind": "ReplicationController", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "Job",
                json!({"kind": "Job", "spec": {"template": {"spec": spec}}}),
            ),
            (
                "CronJob",
                json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}),
            ),
            (
                "PodTemplate",
                json!({"kind": "PodTemplate", "template": {"spec": spec}}),
            ),
        ];
        for (kind, obj) in objects {
            let w = workload_from_object(&obj).unwrap_or_else(|| panic!("{kind}: no workload"));
            assert_eq!(w.kind.as_deref(), Some(kind));
            assert!(w.privileged, "{kind}: privileged init container missed");
            assert!(w.host_pid && !w.host_network && !w.host_ipc, "{kind}");
            assert_eq!(
                w.capabilities_added,
                ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"],
                "{kind}"
            );
            assert_eq!(w.images, ["busybox", "nginx:1.27", "alpine"], "{kind}");
            assert_eq!(w.service_account.as_deref(), Some("builder"));
            assert_eq!(w.containers.len(), 4, "{kind}");
        }
    }

    #[test]
    fn host_paths_are_read_only_only_when_every_mount_is() {
        let w = workload_from_object(&json!({"spec": pod_spec_json()})).unwrap();
        let find = |p: &str| w.host_paths.iter().find(|h| h.path == p).cloned();
        assert_eq!(
            find("/"),
            Some(HostPath {
                path: "/".into(),
                read_only: false
            })
        );
        assert_eq!(
            find("/var/run/docker.sock").map(|h| h.read_only),
            Some(false)
        );
        // Declared but mounted by no container yet: still reported.
        assert_eq!(find("/etc").map(|h| h.read_only), Some(false));
        assert_eq!(w.host_paths.len(), 3);
    }

    #[test]
    fn container_user_overrides_pod_user() {
        let w = workload_from_object(&json!({"spec": pod_spec_json()})).unwrap();
        let by_name = |n: &str| w.containers.iter().find(|c| c.name == n).unwrap();
        assert!(by_name("app").run_as_root);
        assert!(!by_name("side").run_as_root);
        assert_eq!(by_name("init").role.as_deref(), Some("init"));
        assert_eq!(by_name("dbg").role.as_deref(), Some("ephemeral"));
        assert_eq!(by_name("app").role, None);
    }

    #[test]
    fn objects_without_pod_specs_have_no_workload() {
        for obj in [
            json!({"kind": "ConfigMap", "data": {"a": "b"}}),
            json!({"kind": "Service", "spec": {"type": "NodePort", "ports": []}}),
            json!("a string"),
            json!({"spec": {"containers": "not a list"}}),
        ] {
            let w = workload_from_object(&obj);
            assert!(
                w.is_none() || w.as_ref().is_some_and(|w| w.containers.is_empty()),
                "{obj}"
            );
        }
        assert!(
            workload_from_object(&json!({"kind": "Service", "spec": {"type": "NodePort"}}))
                .is_none()
        );
    }
}
