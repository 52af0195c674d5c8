//! Which containers run on the node, and the process of each: asked of the runtimes at
//! every collection.
//!
//! - Docker: `GET /containers/json` (running containers) at every collection, and
//!   `GET /containers/{id}/json` once per new container, for its main process id, name,
//!   image and labels (the Docker source's inspect parsing).
//! - containerd: the namespaces (or the configured ones), the running tasks of each
//!   (`Tasks.List`: container id and pid), and the container record once per new
//!   container, for its labels and image (CRI's pod labels among them).
//!
//! A container both runtimes list (Docker's own containers live in containerd's `moby`
//! namespace) is kept once, with Docker's facts. When a runtime does not answer, the last
//! list it gave is used again, so a restarting engine does not erase its containers'
//! baselines; a container that is really gone fails the reads of its files and is dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::{GetContainerRequest, containers_client::ContainersClient};
use containerd_client::tonic;
use vigil_core::event::PodRef;
use vigil_core::runtime::ContainerFacts;

use crate::sources::runtimes::{self, ContainerdConnection};

/// Labels marking a pod's sandbox (pause) container, which holds the pod's network
/// namespace: cri-dockerd's, and CRI containerd's.
const SANDBOX_LABELS: [(&str, &str); 2] = [
    ("io.kubernetes.docker.type", "podsandbox"),
    ("io.cri-containerd.kind", "sandbox"),
];

/// A running container and what the figures are labelled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The runtime's container id.
    pub id: String,
    /// `docker` or `containerd`.
    pub runtime: &'static str,
    /// The main process, as the host's PID namespace numbers it.
    pub pid: u32,
    /// The container's name: the Kubernetes container name, else the runtime's name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// The pod, from kubelet's or CRI's labels.
    pub pod: Option<PodRef>,
    /// The pod's sandbox (pause) container.
    pub sandbox: bool,
}

impl ContainerInfo {
    /// The container's pod namespace, which picks its thresholds.
    pub fn namespace(&self) -> Option<&str> {
        self.pod.as_ref().and_then(|p| p.namespace.as_deref())
    }

    fn from_labels(
        id: String,
        runtime: &'static str,
        pid: u32,
        name: Option<String>,
        image: Option<String>,
        labels: &BTreeMap<String, String>,
    ) -> ContainerInfo {
        let (pod, k8s_name) = vigil_core::runtime::pod_identity(labels);
        let sandbox = SANDBOX_LABELS
            .iter()
            .any(|(k, v)| labels.get(*k).is_some_and(|x| x == v));
        ContainerInfo {
            id,
            runtime,
            pid,
            name: k8s_name
                .or_else(|| sandbox.then(|| "POD".to_owned()))
                .or(name),
            image,
            pod,
            sandbox,
        }
    }
}

pub use crate::sources::runtimes::DiscoverError;

/// Docker's running containers.
pub struct DockerDiscovery {
    endpoint: Option<String>,
    timeout: Duration,
    client: Option<bollard::Docker>,
    known: HashMap<String, ContainerInfo>,
}

impl DockerDiscovery {
    /// `endpoint` as the Docker source takes it (`None`: `$DOCKER_HOST`, else the default
    /// sockets).
    pub fn new(endpoint: Option<String>, timeout: Duration) -> Self {
        DockerDiscovery {
            endpoint,
            timeout,
            client: None,
            known: HashMap::new(),
        }
    }

    /// Whether there is an engine to ask: a configured endpoint, `$DOCKER_HOST`, or a
    /// default socket that exists.
    pub fn present(&self) -> bool {
        runtimes::docker_present(self.endpoint.as_deref())
    }

    async fn connect(&mut self) -> Result<bollard::Docker, DiscoverError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = runtimes::connect_docker(self.endpoint.as_deref(), self.timeout).await?;
        self.client = Some(client.clone());
        Ok(client)
    }

    /// The running containers.
    pub async fn list(&mut self) -> Result<Vec<ContainerInfo>, DiscoverError> {
        let result = self.list_inner().await;
        if result.is_err() {
            // A new connection (and version negotiation) next time: the engine may have
            // been restarted or upgraded.
            self.client = None;
        }
        result
    }

    async fn list_inner(&mut self) -> Result<Vec<ContainerInfo>, DiscoverError> {
        let client = self.connect().await?;
        let err = |e: &dyn std::fmt::Display| DiscoverError::Docker(e.to_string());
        let listed = tokio::time::timeout(self.timeout, client.list_containers(None))
            .await
            .map_err(|_| DiscoverError::Docker("listing containers timed out".into()))?
            .map_err(|e| err(&e))?;
        let mut out = Vec::with_capacity(listed.len());
        let mut known = HashMap::with_capacity(listed.len());
        for summary in listed {
            let Some(id) = summary.id else { continue };
            let info = match self.known.remove(&id) {
                Some(info) => Some(info),
                None => self.inspect(&client, &id).await,
            };
            if let Some(info) = info {
                out.push(info.clone());
                known.insert(id, info);
            }
        }
        self.known = known;
        Ok(out)
    }

    /// A new container's process and names; `None` when it is already gone or not running.
    async fn inspect(&self, client: &bollard::Docker, id: &str) -> Option<ContainerInfo> {
        let got = tokio::time::timeout(self.timeout, client.inspect_container(id, None))
            .await
            .ok()?
            .ok()?;
        let value = serde_json::to_value(got).ok()?;
        let pid = value
            .pointer("/State/Pid")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)?;
        let facts = ContainerFacts::from_inspect(value).ok()?;
        Some(ContainerInfo::from_labels(
            id.to_owned(),
            "docker",
            pid,
            facts.name,
            facts.image,
            &facts.labels,
        ))
    }
}

/// containerd's running tasks.
pub struct ContainerdDiscovery {
    connection: ContainerdConnection,
    namespaces: Vec<String>,
    timeout: Duration,
    /// By namespace and id.
    known: HashMap<(String, String), ContainerInfo>,
}

impl ContainerdDiscovery {
    /// `address` and `namespaces` as the containerd source takes them (empty namespaces:
    /// every namespace).
    pub fn new(address: Option<String>, namespaces: Vec<String>, timeout: Duration) -> Self {
        ContainerdDiscovery {
            connection: ContainerdConnection::new(address, timeout),
            namespaces,
            timeout,
            known: HashMap::new(),
        }
    }

    /// Whether there is a containerd to ask.
    pub fn present(&self) -> bool {
        self.connection.present()
    }

    /// The running tasks.
    pub async fn list(&mut self) -> Result<Vec<ContainerInfo>, DiscoverError> {
        let result = self.list_inner().await;
        if result.is_err() {
            self.connection.reset();
        }
        result
    }

    async fn list_inner(&mut self) -> Result<Vec<ContainerInfo>, DiscoverError> {
        let tasks = self.connection.live_tasks(&self.namespaces).await?;
        let channel = self.connection.channel().await?;
        let mut out = Vec::new();
        let mut known = HashMap::new();
        for task in tasks.into_iter().filter(|t| t.pid != 0) {
            let key = (task.namespace_name, task.container_id);
            let info = match self.known.remove(&key) {
                Some(i) if i.pid == task.pid => Some(i),
                _ => {
                    self.record(&channel, &task.namespace, &key.1, task.pid)
                        .await
                }
            };
            if let Some(info) = info {
                out.push(info.clone());
                known.insert(key, info);
            }
        }
        self.known = known;
        Ok(out)
    }

    async fn record(
        &self,
        channel: &tonic::transport::Channel,
        namespace: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        id: &str,
        pid: u32,
    ) -> Option<ContainerInfo> {
        let mut req = tonic::Request::new(GetContainerRequest { id: id.to_owned() });
        req.metadata_mut()
            .insert("containerd-namespace", namespace.clone());
        let got = match tokio::time::timeout(
            self.timeout,
            ContainersClient::new(channel.clone()).get(req),
        )
        .await
        {
            Ok(Ok(r)) => r.into_inner().container?,
            Ok(Err(status)) => {
                tracing::debug!(container = id, error = %status, "resources: no containerd record");
                return None;
            }
            Err(_) => {
                tracing::debug!(
                    container = id,
                    "resources: containerd record read timed out"
                );
                return None;
            }
        };
        let labels: BTreeMap<String, String> = got.labels.into_iter().collect();
        Some(ContainerInfo::from_labels(
            id.to_owned(),
            "containerd",
            pid,
            Some(id.to_owned()),
            Some(got.image).filter(|i| !i.is_empty()),
            &labels,
        ))
    }
}

/// Both runtimes, each used when it is configured or its socket exists.
pub struct Discovery {
    /// Docker, unless turned off.
    pub docker: Option<DockerDiscovery>,
    /// containerd, unless turned off.
    pub containerd: Option<ContainerdDiscovery>,
    last_docker: Vec<ContainerInfo>,
    last_containerd: Vec<ContainerInfo>,
}

/// What one round of discovery found.
#[derive(Debug, Default)]
pub struct Found {
    /// The containers, each once.
    pub containers: Vec<ContainerInfo>,
    /// Runtimes that did not answer (their previous list was used), with why.
    pub errors: Vec<(&'static str, DiscoverError)>,
}

impl Discovery {
    /// Discovery from these runtimes.
    pub fn new(docker: Option<DockerDiscovery>, containerd: Option<ContainerdDiscovery>) -> Self {
        Discovery {
            docker,
            containerd,
            last_docker: Vec::new(),
            last_containerd: Vec::new(),
        }
    }

    /// Drops what is known of these containers, so the next listing looks them up again
    /// (their process is gone: a restart gives a container a new one).
    pub fn forget(&mut self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
        if let Some(d) = &mut self.docker {
            d.known.retain(|id, _| !ids.contains(id.as_str()));
        }
        if let Some(c) = &mut self.containerd {
            c.known.retain(|(_, id), _| !ids.contains(id.as_str()));
        }
    }

    /// Lists every runtime that is there.
    pub async fn discover(&mut self) -> Found {
        let mut found = Found::default();
        if let Some(d) = self.docker.as_mut().filter(|d| d.present()) {
            match d.list().await {
                Ok(list) => self.last_docker = list,
                Err(e) => found.errors.push(("docker", e)),
            }
        }
        if let Some(c) = self.containerd.as_mut().filter(|c| c.present()) {
            match c.list().await {
                Ok(list) => self.last_containerd = list,
                Err(e) => found.errors.push(("containerd", e)),
            }
        }
        found.containers = merge(&self.last_docker, &self.last_containerd);
        tracing::debug!(
            docker = self.last_docker.len(),
            containerd = self.last_containerd.len(),
            "resources: containers found"
        );
        found
    }
}

/// Docker's containers, then containerd's that Docker does not list.
fn merge(docker: &[ContainerInfo], containerd: &[ContainerInfo]) -> Vec<ContainerInfo> {
    let ids: std::collections::HashSet<&str> = docker.iter().map(|c| c.id.as_str()).collect();
    docker
        .iter()
        .chain(containerd.iter().filter(|c| !ids.contains(c.id.as_str())))
        .cloned()
        .collect()
}

/// The number of CPUs the node has online, from `<proc_root>/stat` (`cpuN` lines); what a
/// container without a CPU quota may use.
pub fn node_cpus(proc_root: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(proc_root.join("stat")).ok()?;
    let n = text
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    (n > 0).then_some(n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, runtime: &'static str) -> ContainerInfo {
        ContainerInfo::from_labels(
            id.into(),
            runtime,
            1,
            Some(id.into()),
            None,
            &BTreeMap::new(),
        )
    }

    #[test]
    fn a_container_both_runtimes_list_is_kept_once_with_dockers_facts() {
        let merged = merge(
            &[info("a", "docker")],
            &[info("a", "containerd"), info("b", "containerd")],
        );
        let got: Vec<_> = merged.iter().map(|c| (c.id.as_str(), c.runtime)).collect();
        assert_eq!(got, [("a", "docker"), ("b", "containerd")]);
    }

    #[test]
    fn pod_labels_name_the_container_and_mark_the_sandbox() {
        let labels: BTreeMap<String, String> = [
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.kubernetes.pod.name", "web-1"),
            ("io.kubernetes.container.name", "nginx"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let c = ContainerInfo::from_labels(
            "x".into(),
            "containerd",
            5,
            Some("x".into()),
            None,
            &labels,
        );
        assert_eq!(c.name.as_deref(), Some("nginx"));
        assert_eq!(c.namespace(), Some("shop"));
        assert!(!c.sandbox);
        let labels: BTreeMap<String, String> = [
            ("io.kubernetes.pod.namespace", "shop"),
            ("io.cri-containerd.kind", "sandbox"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
        let s = ContainerInfo::from_labels(
            "y".into(),
            "containerd",
            6,
            Some("y".into()),
            None,
            &labels,
        );
        assert!(s.sandbox);
        assert_eq!(s.name.as_deref(), Some("POD"));
    }

    #[test]
    fn node_cpus_from_proc_stat() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("stat"),
            "cpu  1 2 3\ncpu0 1 2 3\ncpu1 1 2 3\nintr 5\ncpux 1\n",
        )
        .unwrap();
        assert_eq!(node_cpus(t.path()), Some(2.0));
        assert_eq!(node_cpus(&t.path().join("none")), None);
    }
}
