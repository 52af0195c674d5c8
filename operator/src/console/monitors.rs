//! The ContainerMonitors and their status, as the console shows them: read from the API
//! server on demand, the answer reused for a few seconds so that page views do not become
//! API load.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};

use crate::crd::{ContainerMonitor, condition};

/// How long one list of the ContainerMonitors is shown before it is read again.
const CACHE_FOR: Duration = Duration::from_secs(10);

/// One ContainerMonitor as shown.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorRow {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The `Ready` condition's status (`True`, `False`, `Unknown`), if reported.
    pub ready: Option<String>,
    /// Messages of the conditions that are not `True`.
    pub problems: Vec<String>,
    /// Policy hash (shortened for display by the page).
    pub policy_hash: Option<String>,
    /// Control-plane nodes running the policy, and their number.
    pub nodes: Option<(i32, i32)>,
    /// Whether the status describes the current generation.
    pub current: bool,
}

/// The cached list.
pub struct Monitors {
    client: Option<kube::Client>,
    cache: Mutex<Option<(Instant, Vec<MonitorRow>)>>,
}

impl Monitors {
    pub(super) fn new(client: Option<kube::Client>) -> Self {
        Monitors {
            client,
            cache: Mutex::new(None),
        }
    }

    /// The ContainerMonitors of every namespace, sorted by namespace and name.
    pub async fn list(&self) -> Result<Vec<MonitorRow>, String> {
        if let Some((at, rows)) = &*self.cache.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < CACHE_FOR
        {
            return Ok(rows.clone());
        }
        let client = self
            .client
            .clone()
            .ok_or("the operator runs without access to the Kubernetes API")?;
        let api: Api<ContainerMonitor> = Api::all(client);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("cannot list ContainerMonitors: {e}"))?;
        let mut rows: Vec<MonitorRow> = list.items.iter().map(row).collect();
        rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), rows.clone()));
        Ok(rows)
    }
}

fn row(m: &ContainerMonitor) -> MonitorRow {
    let status = m.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == condition::READY)
        .map(|c| c.status.clone());
    let problems = status
        .conditions
        .iter()
        .filter(|c| c.status != "True" && !c.message.is_empty())
        .map(|c| format!("{}: {}", c.type_, c.message))
        .collect();
    MonitorRow {
        namespace: m.metadata.namespace.clone().unwrap_or_default(),
        name: m.metadata.name.clone().unwrap_or_default(),
        ready,
        problems,
        policy_hash: status.policy_hash,
        nodes: status.nodes.map(|n| (n.applied, n.total)),
        current: status.observed_generation.is_some()
            && status.observed_generation == m.metadata.generation,
    }
}
