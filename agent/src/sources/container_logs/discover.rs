//! Finding container log files and what their paths and the runtime's files say.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use vigil_core::event::{Container, PodRef};
use vigil_core::logs::LogPath;
use vigil_core::tuning::SharedTuning;

use super::config::ContainerLogsConfig;

/// Most entries looked at in one directory per scan, so a hostile or broken directory
/// cannot stall discovery.
const MAX_DIR_ENTRIES: usize = 100_000;

/// A log file found, with its container as far as the node knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its container.
    pub container: Container,
    /// Labels, when a runtime file knows them.
    pub labels: Option<BTreeMap<String, String>>,
}

/// One listing of the log directories.
#[derive(Debug, Default)]
pub struct Listing {
    /// Log files by real path.
    pub files: BTreeMap<PathBuf, Found>,
    /// Directories whose new entries mean new files (the roots and the pod directories).
    pub dirs: Vec<PathBuf>,
}

fn entries(dir: &Path) -> impl Iterator<Item = fs::DirEntry> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .take(MAX_DIR_ENTRIES)
        .filter_map(Result::ok)
}

/// The real path of a root directory (itself if it cannot be resolved).
fn real(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Lists the pod logs, the Docker logs and the links to them. `docker_cache` keeps what
/// the Docker container files said, by container id, between listings.
pub fn list(cfg: &ContainerLogsConfig, docker_cache: &mut HashMap<String, Found>) -> Listing {
    let mut out = Listing::default();
    let pods = real(&cfg.pods_dir);
    out.dirs.push(pods.clone());
    for pod in entries(&pods) {
        if !pod.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let pod_dir = pod.path();
        out.dirs.push(pod_dir.clone());
        for container in entries(&pod_dir) {
            if !container.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for file in entries(&container.path()) {
                let path = file.path();
                if !file.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                if let Some(layout @ LogPath::Pod { .. }) = LogPath::parse(&path) {
                    let found = Found {
                        container: layout.container(),
                        labels: None,
                    };
                    out.files.insert(path, found);
                }
            }
        }
    }
    let docker = real(&cfg.docker_dir);
    out.dirs.push(docker.clone());
    for dir in entries(&docker) {
        let id = dir.file_name().to_string_lossy().into_owned();
        let path = dir.path().join(format!("{id}-json.log"));
        if !matches!(LogPath::parse(&path), Some(LogPath::Docker { .. })) || !path.is_file() {
            continue;
        }
        let found = docker_cache
            .entry(id.clone())
            .or_insert_with(|| docker_container(&dir.path(), &id))
            .clone();
        out.files.insert(path, found);
    }
    docker_cache.retain(|id, _| docker.join(id).is_dir());
    let links = real(&cfg.containers_dir);
    out.dirs.push(links.clone());
    for link in entries(&links) {
        let Some(LogPath::Link {
            pod,
            namespace,
            container,
            id,
        }) = LogPath::parse(&link.path())
        else {
            continue;
        };
        // A link is resolved, never read: its target is read once under its real path.
        let Ok(target) = fs::canonicalize(link.path()) else {
            continue;
        };
        if !target.is_file() {
            continue;
        }
        let found = out.files.entry(target).or_insert_with(|| Found {
            container: Container {
                name: Some(container),
                pod: Some(PodRef {
                    namespace: Some(namespace),
                    name: Some(pod),
                    uid: None,
                }),
                ..Container::default()
            },
            labels: None,
        });
        found.container.id.get_or_insert(id);
    }
    out
}

/// What Docker's `config.v2.json` says about a container: name, image, labels, and the
/// pod for containers run by cri-dockerd. Unreadable or odd files give just the id.
fn docker_container(dir: &Path, id: &str) -> Found {
    let mut container = Container {
        id: Some(id.to_owned()),
        runtime: Some("docker".to_owned()),
        ..Container::default()
    };
    let mut labels = None;
    // Bounded: a runtime's own small file; a larger one is not read.
    let text = fs::File::open(dir.join("config.v2.json"))
        .ok()
        .and_then(|f| {
            use std::io::Read;
            let mut s = String::new();
            f.take(1024 * 1024).read_to_string(&mut s).ok().map(|_| s)
        });
    if let Some(v) = text.and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
        let str_at = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_owned);
        container.name = str_at("/Name").map(|n| n.trim_start_matches('/').to_owned());
        container.image = str_at("/Config/Image");
        container.image_id = str_at("/Image");
        if let Some(map) = v.pointer("/Config/Labels").and_then(|l| l.as_object()) {
            let l: BTreeMap<String, String> = map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect();
            let get = |k: &str| l.get(k).cloned();
            if let Some(ns) = get("io.kubernetes.pod.namespace") {
                container.pod = Some(PodRef {
                    namespace: Some(ns),
                    name: get("io.kubernetes.pod.name"),
                    uid: get("io.kubernetes.pod.uid"),
                });
                if let Some(name) = get("io.kubernetes.container.name") {
                    container.name = Some(name);
                }
            }
            container.labels = l.clone();
            labels = Some(l);
        }
    }
    Found { container, labels }
}

impl Found {
    /// Whether this container's logs are followed: the agent configuration's selection
    /// keeps it, and so do the ContainerMonitors of its namespace (as `tuning` has them;
    /// a container outside any pod, or a namespace without monitors, is not limited).
    pub fn selected(&self, cfg: &ContainerLogsConfig, tuning: &SharedTuning) -> bool {
        let pod = self.container.pod.as_ref();
        let ns = pod.and_then(|p| p.namespace.as_deref());
        let configured = cfg.namespaces.allows(ns)
            && cfg.containers.allows(self.container.name.as_deref())
            && cfg.labels.allows(self.labels.as_ref());
        configured
            && match (
                ns,
                pod.and_then(|p| p.name.as_deref()),
                &self.container.name,
            ) {
                (Some(ns), Some(pod), Some(container)) => tuning.logs_wanted(ns, pod, container),
                _ => true,
            }
    }
}
