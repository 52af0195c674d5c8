//! What a log file's path says about its container.

use std::path::Path;

/// The facts a container log path carries, without reading the file or asking anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogPath {
    /// `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, as kubelet lays
    /// it out (namespace and pod names are DNS labels and subdomains, uids hex and dashes,
    /// so none contains `_`).
    Pod {
        /// Namespace.
        namespace: String,
        /// Pod name.
        pod: String,
        /// Pod uid.
        uid: String,
        /// Container name.
        container: String,
        /// How many times the container had restarted when it wrote this file.
        restart: u32,
    },
    /// `/var/lib/docker/containers/<id>/<id>-json.log`.
    Docker {
        /// The full container id.
        id: String,
    },
    /// `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`, kubelet's symbolic
    /// link to the pod log of a container.
    Link {
        /// Pod name.
        pod: String,
        /// Namespace.
        namespace: String,
        /// Container name.
        container: String,
        /// The runtime's container id.
        id: String,
    },
}

/// `<digits>.log`: the file of one run of a container (kubelet names it by restart count).
pub fn is_restart_log_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".log")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn is_hex_id(s: &str) -> bool {
    (12..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl LogPath {
    /// The container facts the path carries.
    pub fn container(&self) -> crate::event::Container {
        use crate::event::{Container, PodRef};
        let pod = |namespace: &str, name: &str, uid: Option<&str>| {
            Some(PodRef {
                namespace: Some(namespace.to_owned()),
                name: Some(name.to_owned()),
                uid: uid.map(str::to_owned),
            })
        };
        match self {
            LogPath::Pod {
                namespace,
                pod: name,
                uid,
                container,
                ..
            } => Container {
                name: Some(container.clone()),
                pod: pod(namespace, name, Some(uid)),
                ..Container::default()
            },
            LogPath::Docker { id } => Container {
                id: Some(id.clone()),
                runtime: Some("docker".into()),
                ..Container::default()
            },
            LogPath::Link {
                pod: name,
                namespace,
                container,
                id,
            } => Container {
                id: Some(id.clone()),
                name: Some(container.clone()),
                pod: pod(namespace, name, None),
                ..Container::default()
            },
        }
    }

    /// Reads the layout of `path`; `None` when it is none of the known ones.
    pub fn parse(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        let dir = path.parent()?;
        let dir_name = dir.file_name()?.to_str()?;
        if let Some(restart) = is_restart_log_name(name) {
            let pod_dir = dir.parent()?.file_name()?.to_str()?;
            let mut parts = pod_dir.splitn(3, '_');
            let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
            if namespace.is_empty() || pod.is_empty() || uid.is_empty() || dir_name.is_empty() {
                return None;
            }
            return Some(LogPath::Pod {
                namespace: namespace.to_owned(),
                pod: pod.to_owned(),
                uid: uid.to_owned(),
                container: dir_name.to_owned(),
                restart,
            });
        }
        if let Some(id) = name.strip_suffix("-json.log")
            && id == dir_name
            && is_hex_id(id)
        {
            return Some(LogPath::Docker { id: id.to_owned() });
        }
        let stem = name.strip_suffix(".log")?;
        let (pod, rest) = stem.split_once('_')?;
        let (namespace, rest) = rest.split_once('_')?;
        let (container, id) = rest.rsplit_once('-')?;
        if pod.is_empty() || namespace.is_empty() || container.is_empty() || !is_hex_id(id) {
            return None;
        }
        Some(LogPath::Link {
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            container: container.to_owned(),
            id: id.to_owned(),
        })
    }
}
