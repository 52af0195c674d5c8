//! Where the running containers' writable layers are.
//!
//! Docker: `inspect`'s `GraphDriver` (overlay2: `Data.UpperDir`, `Data.LowerDir` as a
//! colon-separated list). Other graph drivers (vfs, btrfs, zfs) have no separate writable
//! layer to watch and are counted as `unsupported_driver`.
//! containerd: the container's snapshot (`snapshotter`, `snapshot_key`), whose mounts
//! (Snapshots service `Mounts`) carry `upperdir=` and `lowerdir=` options with the
//! overlayfs snapshotter. A view or another snapshotter without an upper directory is
//! counted the same way.
//!
//! A container's layer never moves while it exists, so each container is looked up once and
//! remembered until it leaves the running list.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::{GetContainerRequest, containers_client::ContainersClient};
use containerd_client::tonic;
use vigil_core::event::{Container, PodRef};

use super::layer::Layer;
use crate::sources::runtimes::{self, ContainerdConnection};

pub use crate::sources::runtimes::{DiscoverError, connect_docker};

/// Joins a host path to the host root the agent sees it under (`/host` in a pod).
pub fn on_host(host_root: &Path, p: &str) -> PathBuf {
    host_root.join(p.trim_start_matches('/'))
}

/// The event's container from a runtime's id, name, image and labels.
pub fn container(
    id: &str,
    runtime: &str,
    name: Option<String>,
    image: Option<String>,
    labels: &BTreeMap<String, String>,
) -> Container {
    let label = |k: &str| labels.get(k).cloned();
    let pod = PodRef {
        namespace: label("io.kubernetes.pod.namespace"),
        name: label("io.kubernetes.pod.name"),
        uid: label("io.kubernetes.pod.uid"),
    };
    Container {
        id: Some(id.to_owned()),
        name: label("io.kubernetes.container.name").or(name),
        image,
        runtime: Some(runtime.to_owned()),
        pod: (pod != PodRef::default()).then_some(pod),
        ..Container::default()
    }
}

/// The Docker engine's running containers.
pub struct DockerLayers {
    endpoint: Option<String>,
    timeout: Duration,
    host_root: PathBuf,
    client: Option<bollard::Docker>,
    known: HashMap<String, Option<Layer>>,
}

impl DockerLayers {
    /// Lists through `endpoint` (as `sources.docker.endpoint`).
    pub fn new(endpoint: Option<String>, timeout: Duration, host_root: PathBuf) -> Self {
        DockerLayers {
            endpoint,
            timeout,
            host_root,
            client: None,
            known: HashMap::new(),
        }
    }

    /// Whether there is an engine to ask.
    pub fn present(&self) -> bool {
        runtimes::docker_present(self.endpoint.as_deref())
    }

    /// The running containers' layers, and how many had none to watch.
    pub async fn list(&mut self) -> Result<(Vec<Layer>, u64), DiscoverError> {
        let r = self.list_inner().await;
        if r.is_err() {
            // Reconnect next time: the engine may have restarted.
            self.client = None;
        }
        r
    }

    async fn list_inner(&mut self) -> Result<(Vec<Layer>, u64), DiscoverError> {
        let client = match &self.client {
            Some(c) => c.clone(),
            None => {
                let c = connect_docker(self.endpoint.as_deref(), self.timeout).await?;
                self.client = Some(c.clone());
                c
            }
        };
        let listed = tokio::time::timeout(self.timeout, client.list_containers(None))
            .await
            .map_err(|_| DiscoverError::Docker("listing containers timed out".into()))?
            .map_err(|e| DiscoverError::Docker(e.to_string()))?;
        let mut known = HashMap::with_capacity(listed.len());
        let (mut out, mut unsupported) = (Vec::new(), 0);
        for summary in listed {
            let Some(id) = summary.id else { continue };
            let layer = match self.known.remove(&id) {
                Some(l) => l,
                None => match self.inspect(&client, &id).await {
                    Some(l) => l,
                    // Gone between the list and the inspect, or the engine is slow: try
                    // again next round.
                    None => continue,
                },
            };
            match &layer {
                Some(l) => out.push(l.clone()),
                None => unsupported += 1,
            }
            known.insert(id, layer);
        }
        self.known = known;
        Ok((out, unsupported))
    }

    /// `Some(None)`: the container has no overlay layer.
    async fn inspect(&self, client: &bollard::Docker, id: &str) -> Option<Option<Layer>> {
        let got = tokio::time::timeout(self.timeout, client.inspect_container(id, None))
            .await
            .ok()?
            .ok()?;
        let v = serde_json::to_value(got).ok()?;
        Some(docker_layer(id, &v, &self.host_root))
    }
}

/// The layer of an inspected Docker container, `None` without an overlay2 upper directory.
pub fn docker_layer(id: &str, inspect: &serde_json::Value, host_root: &Path) -> Option<Layer> {
    let gd = inspect.get("GraphDriver")?;
    if gd.get("Name").and_then(|n| n.as_str()) != Some("overlay2") {
        return None;
    }
    let data = gd.get("Data")?;
    let upper = data.get("UpperDir")?.as_str()?;
    let lowers = data
        .get("LowerDir")
        .and_then(|l| l.as_str())
        .map(|l| {
            l.split(':')
                .filter(|p| !p.is_empty())
                .map(|p| on_host(host_root, p))
                .collect()
        })
        .unwrap_or_default();
    let labels: BTreeMap<String, String> = inspect
        .pointer("/Config/Labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    let name = inspect
        .get("Name")
        .and_then(|n| n.as_str())
        .map(|n| n.trim_start_matches('/').to_owned());
    let image = inspect
        .pointer("/Config/Image")
        .and_then(|n| n.as_str())
        .map(str::to_owned);
    Some(Layer {
        id: id.to_owned(),
        container: container(id, "docker", name, image, &labels),
        upper: on_host(host_root, upper),
        lowers,
    })
}

/// containerd's running containers (every namespace unless some are named).
pub struct ContainerdLayers {
    connection: ContainerdConnection,
    namespaces: Vec<String>,
    timeout: Duration,
    host_root: PathBuf,
    /// By namespace and id.
    known: HashMap<(String, String), Option<Layer>>,
}

impl ContainerdLayers {
    /// Lists through the socket at `address` (as `sources.containerd.address`).
    pub fn new(
        address: Option<String>,
        namespaces: Vec<String>,
        timeout: Duration,
        host_root: PathBuf,
    ) -> Self {
        ContainerdLayers {
            connection: ContainerdConnection::new(address, timeout),
            namespaces,
            timeout,
            host_root,
            known: HashMap::new(),
        }
    }

    /// Whether there is a containerd to ask.
    pub fn present(&self) -> bool {
        self.connection.present()
    }

    /// The running tasks' layers, and how many had none to watch.
    pub async fn list(&mut self) -> Result<(Vec<Layer>, u64), DiscoverError> {
        let r = self.list_inner().await;
        if r.is_err() {
            self.connection.reset();
        }
        r
    }

    async fn list_inner(&mut self) -> Result<(Vec<Layer>, u64), DiscoverError> {
        let tasks = self.connection.live_tasks(&self.namespaces).await?;
        let channel = self.connection.channel().await?;
        let (mut out, mut unsupported) = (Vec::new(), 0);
        let mut known = HashMap::new();
        for task in tasks {
            let key = (task.namespace_name, task.container_id);
            let layer = match self.known.remove(&key) {
                Some(l) => l,
                None => match self.layer(&channel, &task.namespace, &key.1).await {
                    Some(l) => l,
                    None => continue,
                },
            };
            match &layer {
                Some(l) => out.push(l.clone()),
                None => unsupported += 1,
            }
            known.insert(key, layer);
        }
        self.known = known;
        Ok((out, unsupported))
    }

    async fn layer(
        &self,
        channel: &tonic::transport::Channel,
        ns: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
        id: &str,
    ) -> Option<Option<Layer>> {
        let mut req = tonic::Request::new(GetContainerRequest { id: id.to_owned() });
        req.metadata_mut()
            .insert("containerd-namespace", ns.clone());
        let c = tokio::time::timeout(
            self.timeout,
            ContainersClient::new(channel.clone()).get(req),
        )
        .await
        .ok()?
        .ok()?
        .into_inner()
        .container?;
        if c.snapshotter.is_empty() || c.snapshot_key.is_empty() {
            return Some(None);
        }
        let mut req = tonic::Request::new(MountsRequest {
            snapshotter: c.snapshotter.clone(),
            key: c.snapshot_key.clone(),
        });
        req.metadata_mut()
            .insert("containerd-namespace", ns.clone());
        let mounts = match tokio::time::timeout(
            self.timeout,
            SnapshotsClient::new(channel.clone()).mounts(req),
        )
        .await
        .ok()?
        {
            Ok(r) => r.into_inner().mounts,
            // No such snapshot (a container without a rootfs of its own).
            Err(_) => return Some(None),
        };
        let options: Vec<&str> = mounts
            .iter()
            .filter(|m| m.r#type == "overlay")
            .flat_map(|m| m.options.iter().map(String::as_str))
            .collect();
        let labels: BTreeMap<String, String> = c.labels.into_iter().collect();
        Some(
            overlay_layer(&options, &self.host_root).map(|(upper, lowers)| Layer {
                id: id.to_owned(),
                container: container(
                    id,
                    "containerd",
                    Some(id.to_owned()),
                    Some(c.image).filter(|i| !i.is_empty()),
                    &labels,
                ),
                upper,
                lowers,
            }),
        )
    }
}

/// `upperdir=` and `lowerdir=` of overlay mount options.
pub fn overlay_layer(options: &[&str], host_root: &Path) -> Option<(PathBuf, Vec<PathBuf>)> {
    let upper = options.iter().find_map(|o| o.strip_prefix("upperdir="))?;
    let lowers = options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .map(|l| {
            l.split(':')
                .filter(|p| !p.is_empty())
                .map(|p| on_host(host_root, p))
                .collect()
        })
        .unwrap_or_default();
    Some((on_host(host_root, upper), lowers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_overlay2_layers_and_others() {
        let v = serde_json::json!({
            "Name": "/web",
            "Config": {"Image": "nginx:1.27", "Labels": {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-0", "io.kubernetes.container.name": "nginx"}},
            "GraphDriver": {"Name": "overlay2", "Data": {
                "UpperDir": "/var/lib/docker/overlay2/abc/diff",
                "LowerDir": "/var/lib/docker/overlay2/abc-init/diff:/var/lib/docker/overlay2/img/diff"}}
        });
        let l = docker_layer("c1", &v, Path::new("/host")).unwrap();
        assert_eq!(
            l.upper,
            PathBuf::from("/host/var/lib/docker/overlay2/abc/diff")
        );
        assert_eq!(l.lowers.len(), 2);
        assert_eq!(l.container.name.as_deref(), Some("nginx"));
        assert_eq!(
            l.container
                .pod
                .as_ref()
                .and_then(|p| p.namespace.as_deref()),
            Some("shop")
        );
        let vfs = serde_json::json!({"GraphDriver": {"Name": "vfs", "Data": {"UpperDir": "/x"}}});
        assert_eq!(docker_layer("c2", &vfs, Path::new("/")), None);
        assert_eq!(
            docker_layer("c3", &serde_json::json!({}), Path::new("/")),
            None
        );
    }

    #[test]
    fn containerd_overlay_mount_options() {
        let (u, l) = overlay_layer(
            &[
                "index=off",
                "workdir=/s/2/work",
                "upperdir=/s/2/fs",
                "lowerdir=/s/1/fs",
            ],
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(u, PathBuf::from("/s/2/fs"));
        assert_eq!(l, [PathBuf::from("/s/1/fs")]);
        assert_eq!(overlay_layer(&["ro", "lowerdir=/a"], Path::new("/")), None);
    }
}
