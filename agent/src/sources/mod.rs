//! The agent's sources: where records come from.

pub mod audit_log;
pub mod container_logs;
pub mod containerd;
pub mod docker;
pub mod drift;
pub mod hardening;
pub mod process;
pub mod resources;
pub mod runtimes;

/// Where the runtimes are, for the sources that find containers through them (resource
/// usage, drift) when their own block names none: the Docker and containerd sources'
/// settings.
#[derive(Debug, Clone, Default)]
pub struct RuntimeDefaults {
    /// `sources.docker.endpoint`.
    pub docker_endpoint: Option<String>,
    /// `sources.containerd.address`.
    pub containerd_address: Option<String>,
    /// `sources.containerd.namespaces`.
    pub containerd_namespaces: Vec<String>,
}

impl RuntimeDefaults {
    /// What the Docker and containerd blocks of `sources` say.
    pub fn of(sources: &crate::config::SourcesConfig) -> Self {
        let containerd = sources.containerd.as_ref();
        Self {
            docker_endpoint: sources.docker.as_ref().and_then(|d| d.endpoint.clone()),
            containerd_address: containerd.and_then(|c| c.address.clone()),
            containerd_namespaces: containerd.map(|c| c.namespaces.clone()).unwrap_or_default(),
        }
    }
}
