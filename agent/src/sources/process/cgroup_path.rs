//! The container a process belongs to, from its cgroup path (`/proc/<pid>/cgroup`).
//!
//! Runtimes put each container in a cgroup whose path names it. The shapes recognised,
//! under cgroup v1 (one line per hierarchy) and v2 (the `0::` line) alike:
//!
//! | path (last components)                                             | runtime    |
//! |--------------------------------------------------------------------|------------|
//! | `/docker/<64 hex>` (cgroupfs driver)                               | docker     |
//! | `…/docker-<64 hex>.scope` (systemd driver)                         | docker     |
//! | `…/cri-containerd-<64 hex>.scope` (CRI, systemd driver)            | containerd |
//! | `…/crio-<64 hex>.scope`                                            | cri-o      |
//! | `…/libpod-<64 hex>.scope`, `/libpod_parent/libpod-<64 hex>`        | podman     |
//! | `/kubepods[/<qos>]/pod<uid>/<64 hex>` (kubelet's cgroupfs driver)  | (not said) |
//! | `/<containerd namespace>/<id>` (containerd without CRI: `ctr`,     | containerd |
//! |   nerdctl), for the configured namespaces only                     |            |
//!
//! The pod's uid comes from a `pod<uid>` component (`kubepods-burstable-pod<uid>.slice`
//! under systemd, with `_` for `-`). A path climbing out of the reader's cgroup namespace
//! (`/../../kubepods/…`) is read the same way: only the components matter.
//!
//! Anything else is not a container: the node's own services (`/system.slice/…`), user
//! sessions, and other hex-named cgroups (a 32-hex machine id, say) are left alone, so a
//! process is never given a container it does not have. The id must be exactly 64
//! lower-case hex digits in the shapes that carry one.

use crate::sources::resources::cgroup::parse_proc_cgroup;

/// The container a cgroup path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The runtime's container id.
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`; absent when the shape does not say.
    pub runtime: Option<&'static str>,
    /// The pod's uid, when the path carries it.
    pub pod_uid: Option<String>,
}

fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `(prefix, runtime)` of systemd scope names: `<prefix><64 hex>.scope`.
const SCOPES: [(&str, &str); 4] = [
    ("docker-", "docker"),
    ("cri-containerd-", "containerd"),
    ("crio-", "cri-o"),
    ("libpod-", "podman"),
];

/// The pod uid of a `pod<uid>` component (cgroupfs: `pod0b3c…`; systemd:
/// `kubepods-besteffort-pod0b3c_…_….slice`).
fn pod_uid(component: &str) -> Option<String> {
    let c = component.strip_suffix(".slice").unwrap_or(component);
    let at = c.rfind("pod")?;
    if at > 0 && !c[..at].ends_with('-') {
        return None;
    }
    let uid = &c[at + 3..];
    let ok = uid.len() == 36
        && uid
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_');
    ok.then(|| uid.replace('_', "-"))
}

/// The container named by one cgroup path. `containerd_namespaces` are the namespaces
/// whose `/<namespace>/<id>` cgroups are containers (containerd's default cgroup path).
pub fn container_of_path(path: &str, containerd_namespaces: &[String]) -> Option<ContainerRef> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "..")
        .collect();
    let pod = parts.iter().find_map(|p| pod_uid(p));
    let in_kubepods = parts.iter().any(|p| p.starts_with("kubepods"));
    // The innermost component that names a container wins: a container nested in
    // another's cgroup (docker-in-docker) is the inner one.
    for (i, part) in parts.iter().enumerate().rev() {
        for (prefix, runtime) in SCOPES {
            if let Some(id) = part
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(".scope").or(Some(r)))
                .filter(|id| is_id(id))
            {
                return Some(ContainerRef {
                    id: id.to_owned(),
                    runtime: Some(runtime),
                    pod_uid: pod,
                });
            }
        }
        if is_id(part) {
            let parent = i.checked_sub(1).map(|j| parts[j]);
            let runtime = match parent {
                Some("docker") => Some("docker"),
                _ if in_kubepods && pod.is_some() => None,
                _ => continue,
            };
            return Some(ContainerRef {
                id: (*part).to_owned(),
                runtime,
                pod_uid: pod,
            });
        }
    }
    // containerd's own default, `/<namespace>/<id>`: any name is an id, so the namespace
    // must be one the user named.
    if let [ns, id] = parts.as_slice()
        && containerd_namespaces.iter().any(|n| n == ns)
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Some(ContainerRef {
            id: (*id).to_owned(),
            runtime: Some("containerd"),
            pod_uid: None,
        });
    }
    None
}

/// The container of a process, from the text of its `/proc/<pid>/cgroup`; the second value
/// counts malformed lines. The unified (v2) line is looked at first, then the named systemd
/// hierarchy, then the others: on a hybrid node the unified line may be the root while the
/// v1 lines name the container.
pub fn container_of(text: &str, containerd_namespaces: &[String]) -> (Option<ContainerRef>, u64) {
    let (lines, malformed) = parse_proc_cgroup(text);
    let rank = |controllers: &str| match controllers {
        "" => 0,
        "name=systemd" => 1,
        _ => 2,
    };
    let mut ordered: Vec<_> = lines.iter().collect();
    ordered.sort_by_key(|m| rank(m.controllers));
    let found = ordered
        .iter()
        .find_map(|m| container_of_path(m.path, containerd_namespaces));
    (found, malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "efad774bfc327a44c12212fb88fb1fd44913747471b27479d97b126b592991dd";
    const UID: &str = "0b3c6a8e-1f2d-4c5b-9a7e-6d5c4b3a2f10";

    fn ns() -> Vec<String> {
        vec!["k8s.io".into(), "default".into()]
    }

    fn of(path: &str) -> Option<ContainerRef> {
        container_of_path(path, &ns())
    }

    #[test]
    fn docker_cgroupfs_and_systemd_shapes() {
        let c = of(&format!("/docker/{ID}")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("docker")));
        let c = of(&format!("/system.slice/docker-{ID}.scope")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("docker")));
    }

    #[test]
    fn kubernetes_shapes_give_the_pod_uid() {
        let u = UID.replace('-', "_");
        let c = of(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, Some("containerd"));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        let c = of(&format!("/kubepods/besteffort/pod{UID}/{ID}")).unwrap();
        assert_eq!((c.id.as_str(), c.runtime), (ID, None));
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        let c = of(&format!("/kubepods/pod{UID}/{ID}")).unwrap();
        assert_eq!(c.pod_uid.as_deref(), Some(UID));
        let c = of(&format!(
            "/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope"
        ))
        .unwrap();
        assert_eq!(c.runtime, Some("cri-o"));
        // Seen from inside another cgroup namespace.
        let c = of(&format!("/../../kubepods/burstable/pod{UID}/{ID}")).unwrap();
        assert_eq!(c.id, ID);
    }

    #[test]
    fn podman_and_plain_containerd_shapes() {
        assert_eq!(
            of(&format!("/machine.slice/libpod-{ID}.scope"))
                .unwrap()
                .runtime,
            Some("podman")
        );
        let c = of("/k8s.io/proc-probe-c").unwrap();
        assert_eq!(
            (c.id.as_str(), c.runtime),
            ("proc-probe-c", Some("containerd"))
        );
        assert_eq!(
            of("/unknown-ns/foo"),
            None,
            "only the configured namespaces"
        );
    }

    #[test]
    fn the_nodes_own_cgroups_are_not_containers() {
        for path in [
            "/",
            "/system.slice/containerd.service",
            "/system.slice/docker.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/process_api/60863796dc0b06f15075662f03787337",
            "/kubepods/besteffort",
            "/kubepods.slice/kubepods-burstable.slice",
            &format!("/somewhere/{ID}"),
            &format!("/docker/{}", &ID[..63]),
            &format!("/docker/{}", ID.to_uppercase()),
            "/docker",
            "/k8s.io/a/b",
            "/k8s.io/a b",
        ] {
            assert_eq!(of(path), None, "{path}");
        }
    }

    #[test]
    fn v1_hybrid_and_v2_files() {
        let v1 = format!(
            "12:pids:/docker/{ID}\n4:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n"
        );
        assert_eq!(container_of(&v1, &ns()).0.unwrap().id, ID);
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(container_of(&v2, &ns()).0.unwrap().id, ID);
        let host = "4:memory:/process_api/60863796dc0b06f15075662f03787337\n1:cpu:/\n0::/\n";
        assert_eq!(container_of(host, &ns()), (None, 0));
    }

    #[test]
    fn malformed_and_hostile_lines_are_counted_and_skipped() {
        let text = format!("garbage\n::\nx:y:z\n0::/docker/{ID}\n\u{0}\u{ff}:::\n");
        let (c, bad) = container_of(&text, &ns());
        assert_eq!(c.unwrap().id, ID);
        assert_eq!(bad, 4);
        let long = format!("0::/{}\n", "a/".repeat(50_000));
        assert_eq!(container_of(&long, &ns()).0, None);
        for cut in 0..40 {
            let t = format!("0::/docker/{ID}");
            let _ = container_of(&t[..cut], &ns());
        }
        assert_eq!(pod_uid("pod"), None);
        assert_eq!(pod_uid("xpod0b3c6a8e-1f2d-4c5b-9a7e-6d5c4b3a2f10"), None);
    }
}
