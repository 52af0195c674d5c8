//! Container runtime events: from an engine's own event record to normalized [`Event`]s.
//!
//! - [`docker`]: Docker Engine API events (`GET /events`, `docker events --format
//!   '{{json .}}'`), with the facts of `docker inspect` merged in when the caller has them.
//! - [`containerd`]: containerd's event envelopes (topic, namespace, decoded payload), with
//!   the facts of the container record and its OCI spec merged in.
//!
//! A runtime event carries `source: docker` (or `containerd`) and `kind: runtime`; its
//! security facts go to the same keys as an audit event's pod template (`workload.*`), so
//! one rule covers a privileged Deployment written through the API and a `docker run
//! --privileged` alike.
//!
//! [`Event`]: crate::event::Event

pub mod containerd;
pub mod docker;

pub use docker::{
    ContainerFacts, DockerError, DockerEvent, DockerParser, Enrichment, ExecFacts, MountFacts,
};

use std::collections::BTreeMap;

use crate::event::{PodRef, Workload};

/// Labels kubelet (through dockershim or cri-dockerd) and CRI (containerd's Kubernetes
/// plugin) put on the containers of a pod.
const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The pod a container belongs to, from its labels.
fn pod_of(labels: &BTreeMap<String, String>) -> Option<PodRef> {
    let pod = PodRef {
        namespace: labels.get(POD_NAMESPACE_LABEL).cloned(),
        name: labels.get(POD_NAME_LABEL).cloned(),
        uid: labels.get(POD_UID_LABEL).cloned(),
    };
    (pod != PodRef::default()).then_some(pod)
}

/// The pod and the Kubernetes container name of a container, from the labels kubelet or
/// CRI put on it (`None`s for a container outside Kubernetes). Sources that find containers
/// without an event (resource usage) name them as the event sources do.
pub fn pod_identity(labels: &BTreeMap<String, String>) -> (Option<PodRef>, Option<String>) {
    (pod_of(labels), labels.get(CONTAINER_NAME_LABEL).cloned())
}

/// The workload of a runtime event: its pod, where there is one.
fn pod_workload(pod: Option<&PodRef>) -> Workload {
    match pod {
        Some(p) => Workload {
            kind: Some("Pod".into()),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            ..Workload::default()
        },
        None => Workload::default(),
    }
}

#[cfg(test)]
mod tests;
