//! The agent's two conversations with the API server: reporting the policy it applied, and
//! the labels of its node's pods.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use tokio::sync::OnceCell;
use vigil_core::detect::RuleSet;
use vigil_core::tuning::PodLabels;

use crate::metrics::Metrics;

/// A lazily connected client: the API server may be unreachable when the agent starts.
#[derive(Clone)]
pub struct Api {
    namespace: String,
    status_configmap: String,
    client: Arc<OnceCell<kube::Client>>,
}

impl Api {
    pub fn new(namespace: String, status_configmap: String) -> Api {
        Api {
            namespace,
            status_configmap,
            client: Arc::new(OnceCell::new()),
        }
    }

    /// In-cluster configuration, or `$KUBECONFIG` / `~/.kube/config` outside a cluster.
    async fn client(&self) -> Result<kube::Client, kube::Error> {
        self.client
            .get_or_try_init(kube::Client::try_default)
            .await
            .cloned()
    }

    /// Writes `value` under `node` in the status ConfigMap, touching no other key.
    pub async fn report(&self, node: &str, value: &str) -> Result<(), kube::Error> {
        let cms = kube::Api::<ConfigMap>::namespaced(self.client().await?, &self.namespace);
        let patch = serde_json::json!({ "data": { node: value } });
        cms.patch(
            &self.status_configmap,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(|_| ())
    }

    /// Keeps the labels of `node`'s pods in the rule set's tuning until `stop`.
    pub async fn watch_pods(
        self,
        node: String,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) {
        let mut backoff = Duration::from_secs(1);
        while !stop.load(Relaxed) {
            match self.follow_pods(&node, &rules, &metrics, &stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_s = backoff.as_secs(),
                        "operator: cannot watch this node's pods; label selectors are taken to match");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    async fn follow_pods(
        &self,
        node: &str,
        rules: &RuleSet,
        metrics: &Metrics,
        stop: &AtomicBool,
    ) -> Result<(), PodWatchError> {
        let pods = kube::Api::<Pod>::all(self.client().await?);
        // The field selector keeps the API server's answer to this node's pods; the check
        // below keeps the same promise against a server that ignores it.
        let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
        let on_node = |p: &Pod| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node);
        let key = |p: &Pod| {
            (
                p.metadata.namespace.clone().unwrap_or_default(),
                p.metadata.name.clone().unwrap_or_default(),
            )
        };
        let labels =
            |p: &Pod| -> BTreeMap<String, String> { p.metadata.labels.clone().unwrap_or_default() };
        let tuning = rules.tuning();
        let mut stream = std::pin::pin!(watcher(pods, config));
        let mut listing: Option<PodLabels> = None;
        let mut known: usize = 0;
        while let Some(event) = stream.try_next().await? {
            if stop.load(Relaxed) {
                return Ok(());
            }
            match event {
                watcher::Event::Init => listing = Some(PodLabels::new()),
                watcher::Event::InitApply(p) => {
                    if on_node(&p) {
                        listing
                            .get_or_insert_with(PodLabels::new)
                            .insert(key(&p), labels(&p));
                    }
                }
                watcher::Event::InitDone => {
                    let all = listing.take().unwrap_or_default();
                    known = all.len();
                    tuning.set_pods(all);
                    tracing::debug!(pods = known, "operator: pod labels listed");
                }
                watcher::Event::Apply(p) => {
                    let (ns, name) = key(&p);
                    let now = on_node(&p).then(|| labels(&p));
                    known = tuning.set_pod(&ns, &name, now);
                }
                watcher::Event::Delete(p) => {
                    let (ns, name) = key(&p);
                    known = tuning.set_pod(&ns, &name, None);
                }
            }
            metrics.operator.pods_known.store(known as u64, Relaxed);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum PodWatchError {
    #[error(transparent)]
    Client(#[from] kube::Error),
    #[error(transparent)]
    Watch(#[from] watcher::Error),
}
