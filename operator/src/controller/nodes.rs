//! Which control-plane nodes run which policy: the reading side of the agents' report.
//!
//! The contract (also in the README): agents on control-plane nodes, once they have
//! installed a policy, merge-patch `{"data": {"NODE": "SHA256"}}` into the ConfigMap
//! `vigil-policy-status` of the operator's namespace. A merge patch of one key never
//! conflicts with another agent's, so no agent needs to read before it writes. The
//! control-plane nodes are the Nodes carrying the control-plane label; a node that is gone
//! stops counting even if its key is still there.
//!
//! Both watches also filter on the client side: the label and field selectors are an
//! optimisation the API server applies, and the tests' in-memory server ignores them. Nodes
//! are watched as metadata only: a Node's status (its image list above all) is kilobytes
//! the operator never reads.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::status::NodeReport;

/// Keeps `tx` up to date with the control-plane nodes and the agents' reports, until the
/// watches end (they retry with backoff, so only when the future is dropped).
pub async fn follow(
    client: Client,
    namespace: &str,
    status_configmap: &str,
    control_plane_label: &str,
    tx: watch::Sender<NodeReport>,
) {
    let (nodes_reader, nodes_writer) = reflector::store::<PartialObjectMeta<Node>>();
    let (cms_reader, cms_writer) = reflector::store::<ConfigMap>();
    let nodes = watcher(
        Api::<PartialObjectMeta<Node>>::all(client.clone()),
        watcher::Config::default().labels(control_plane_label),
    )
    .default_backoff()
    .reflect(nodes_writer)
    .map_ok(|_| ());
    let reports = watcher(
        Api::<ConfigMap>::namespaced(client, namespace),
        watcher::Config::default().fields(&format!("metadata.name={status_configmap}")),
    )
    .default_backoff()
    .reflect(cms_writer)
    .map_ok(|_| ());
    let mut changes = std::pin::pin!(futures::stream::select(nodes, reports));
    while let Some(item) = changes.next().await {
        if let Err(e) = item {
            tracing::warn!(error = %e, "watching nodes or the agents' policy reports");
            continue;
        }
        let report = NodeReport {
            control_plane: nodes_reader
                .state()
                .iter()
                .filter(|n| n.labels().contains_key(control_plane_label))
                .map(|n| n.name_any())
                .collect(),
            reported: cms_reader
                .state()
                .iter()
                .filter(|c| c.name_any() == status_configmap)
                .flat_map(|c| c.data.clone().unwrap_or_default())
                .collect::<BTreeMap<_, _>>(),
        };
        // Only a real change wakes the reconciles of every monitor.
        tx.send_if_modified(|current| {
            if *current == report {
                false
            } else {
                *current = report;
                true
            }
        });
    }
}
