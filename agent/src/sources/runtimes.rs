//! Asking the container runtimes what runs, for the sources that follow containers rather
//! than events (resource usage, drift, hardening): a Docker client with its API version
//! negotiated, and containerd's live tasks across namespaces, each call bounded by a
//! timeout.

use std::time::Duration;

use containerd_client::services::v1::{
    ListNamespacesRequest, ListTasksRequest, namespaces_client::NamespacesClient,
    tasks_client::TasksClient,
};
use containerd_client::tonic;

use crate::sources::docker::Endpoint;

/// Why a runtime could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The Docker engine did not answer.
    #[error("docker: {0}")]
    Docker(String),
    /// containerd did not answer.
    #[error("containerd: {0}")]
    Containerd(String),
}

/// Whether there is a Docker engine to ask at `endpoint` (as `sources.docker.endpoint`):
/// a configured endpoint, `$DOCKER_HOST`, or a default socket that exists.
pub fn docker_present(endpoint: Option<&str>) -> bool {
    match Endpoint::resolve(endpoint) {
        Ok(Endpoint::Unix(p)) => p.exists(),
        Ok(Endpoint::Tcp(_)) => true,
        Err(_) => false,
    }
}

/// A Docker client with its API version negotiated.
pub async fn connect_docker(
    endpoint: Option<&str>,
    timeout: Duration,
) -> Result<bollard::Docker, DiscoverError> {
    let err = |e: &dyn std::fmt::Display| DiscoverError::Docker(e.to_string());
    let endpoint = Endpoint::resolve(endpoint).map_err(|e| err(&e))?;
    let secs = timeout.as_secs().max(1);
    let client = match &endpoint {
        Endpoint::Unix(p) => bollard::Docker::connect_with_unix(
            &p.display().to_string(),
            secs,
            bollard::API_DEFAULT_VERSION,
        ),
        Endpoint::Tcp(a) => {
            bollard::Docker::connect_with_http(a, secs, bollard::API_DEFAULT_VERSION)
        }
    }
    .map_err(|e| err(&e))?;
    tokio::time::timeout(timeout, client.negotiate_version())
        .await
        .map_err(|_| DiscoverError::Docker(format!("{endpoint}: version query timed out")))?
        .map_err(|e| err(&e))
}

/// Whether there is a containerd to ask at `address` (as `sources.containerd.address`).
pub fn containerd_present(address: Option<&str>) -> bool {
    crate::sources::containerd::resolve_socket(address).exists()
}

/// A connection to containerd, made at first use and kept until [`Self::reset`].
pub struct ContainerdConnection {
    address: Option<String>,
    timeout: Duration,
    channel: Option<tonic::transport::Channel>,
}

/// A running or paused task: a container with a process.
pub struct LiveTask {
    /// The task's namespace, as request metadata for the calls about its container.
    pub namespace: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    /// The namespace's name.
    pub namespace_name: String,
    /// The container's id.
    pub container_id: String,
    /// Its first process (0 when containerd does not say).
    pub pid: u32,
}

impl ContainerdConnection {
    /// Connects to the socket at `address` (default: the first default socket that
    /// exists); every call waits at most `timeout`.
    pub fn new(address: Option<String>, timeout: Duration) -> Self {
        ContainerdConnection {
            address,
            timeout,
            channel: None,
        }
    }

    /// The channel, connecting if there is none.
    pub async fn channel(&mut self) -> Result<tonic::transport::Channel, DiscoverError> {
        if let Some(c) = &self.channel {
            return Ok(c.clone());
        }
        let socket = crate::sources::containerd::resolve_socket(self.address.as_deref());
        let c = tokio::time::timeout(self.timeout, containerd_client::connect(&socket))
            .await
            .map_err(|_| {
                DiscoverError::Containerd(format!("connecting to {} timed out", socket.display()))
            })?
            .map_err(|e| DiscoverError::Containerd(e.to_string()))?;
        self.channel = Some(c.clone());
        Ok(c)
    }

    /// Whether there is a containerd to ask at the address.
    pub fn present(&self) -> bool {
        containerd_present(self.address.as_deref())
    }

    /// Forgets the channel: the next call connects again (containerd may have restarted).
    pub fn reset(&mut self) {
        self.channel = None;
    }

    /// The running and paused tasks of `namespaces` (every namespace when empty).
    pub async fn live_tasks(
        &mut self,
        namespaces: &[String],
    ) -> Result<Vec<LiveTask>, DiscoverError> {
        let channel = self.channel().await?;
        let timeout = self.timeout;
        let err = |e: &dyn std::fmt::Display| DiscoverError::Containerd(e.to_string());
        let late = |what: &str| DiscoverError::Containerd(format!("{what} timed out"));
        let namespaces = if namespaces.is_empty() {
            let mut client = NamespacesClient::new(channel.clone());
            tokio::time::timeout(timeout, client.list(ListNamespacesRequest::default()))
                .await
                .map_err(|_| late("listing namespaces"))?
                .map_err(|e| err(&e))?
                .into_inner()
                .namespaces
                .into_iter()
                .map(|n| n.name)
                .collect()
        } else {
            namespaces.to_vec()
        };
        let mut out = Vec::new();
        for ns in namespaces {
            let Ok(meta) = tonic::metadata::MetadataValue::try_from(ns.as_str()) else {
                continue;
            };
            let mut req = tonic::Request::new(ListTasksRequest::default());
            req.metadata_mut()
                .insert("containerd-namespace", meta.clone());
            let tasks = tokio::time::timeout(timeout, TasksClient::new(channel.clone()).list(req))
                .await
                .map_err(|_| late("listing tasks"))?
                .map_err(|e| err(&e))?
                .into_inner()
                .tasks;
            for task in tasks {
                // Running (2) or paused (4): a paused container still holds memory and
                // its layer.
                if !(task.status == 2 || task.status == 4) {
                    continue;
                }
                // A task is named by its container's id (`id`); `container_id` is left
                // empty for the init process.
                let container_id = if task.container_id.is_empty() {
                    task.id
                } else {
                    task.container_id
                };
                if container_id.is_empty() {
                    continue;
                }
                out.push(LiveTask {
                    namespace: meta.clone(),
                    namespace_name: ns.clone(),
                    container_id,
                    pid: task.pid,
                });
            }
        }
        Ok(out)
    }
}
