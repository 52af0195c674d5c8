//! The in-cluster controller: ContainerMonitors in, ConfigMaps and statuses out.
//!
//! ```text
//! watch ContainerMonitors (all namespaces) ─► store ─┬─► publisher: render all, write the
//!                                                    │   policy and agent ConfigMaps ──┐
//!                 generation predicate ─► Controller ◄── reconcile all on a new publish┘
//!                                          │            or a new node report
//!                                          └─► per monitor: status compared, written if
//!                                              different; Warning Events on failures
//! ```
//!
//! The policy is one document for the whole cluster, so rendering is not per object: one
//! publisher task renders everything after a change (bursts coalesced) and writes the two
//! ConfigMaps only where their data differs. Deleting a monitor is a change like another,
//! which a per-object reconcile could not see once the object is gone. The per-object
//! controller only derives each monitor's status from the last publish and the agents'
//! reports.
//!
//! No loop feeds itself: the controller's trigger passes only generation changes, and a
//! status write does not change the generation; the publisher renders only when the set of
//! (uid, generation) changes, so its own status-driven watch events render nothing; a
//! status equal to the one stored is not written.

pub mod http;
pub mod leader;
pub mod metrics;
pub mod nodes;
pub mod publish;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::{Notify, watch};
use vigil_core::detect::RuleError;

use crate::crd::{ContainerMonitor, ContainerMonitorStatus, condition};
use crate::render::{self, CONFIGMAP_MAX_BYTES, Catalog, MonitorRef, RenderError, Rendered};
pub use metrics::Metrics;
use status::{NodeReport, Places, Published};

/// Field manager and Event reporter of every write.
pub const FIELD_MANAGER: &str = "vigil-operator";

/// Longest Event note the API server accepts, in bytes.
const MAX_EVENT_NOTE_BYTES: usize = 1024;

/// Retry delays of a failed publish: doubled from the first to the last.
const PUBLISH_RETRY: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(60));

/// Reconciles (status writes) in flight at once. Every publish reconciles every monitor;
/// unbounded, 1,000 monitors meant about 1,000 simultaneous requests, each on its own
/// connection with its buffers, which more than doubled the operator's resident memory
/// for good (the heap does not shrink back) and hits the API server with a burst.
const RECONCILE_CONCURRENCY: u16 = 8;

/// What can go wrong. Each variant has a metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the API server failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] Box<kube::Error>),
    /// The render failed as a whole (never because of one monitor's content).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The built-in rules, which inline rules are checked against, do not load.
    #[error("cannot load the built-in rules: {0}")]
    Catalog(#[source] Box<RuleError>),
    /// An object from the API server lacks its namespace or name.
    #[error("ContainerMonitor without metadata.{0}")]
    Metadata(&'static str),
    /// The rendered data does not fit in a ConfigMap.
    #[error(
        "ConfigMap {configmap} would hold {bytes} bytes, more than the {CONFIGMAP_MAX_BYTES} a ConfigMap holds; fewer or coarser namespace rules are needed"
    )]
    TooLarge {
        /// The ConfigMap.
        configmap: String,
        /// Its size.
        bytes: usize,
    },
    /// The render task panicked or was cancelled.
    #[error("the render task failed: {0}")]
    Join(#[source] tokio::task::JoinError),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[source] Box<kube_lease_manager::LeaseManagerError>),
    /// A watch or the leader election task ended, which they only do when shut down.
    #[error("{0} ended")]
    Ended(&'static str),
}

impl Error {
    pub(crate) fn kube(e: kube::Error) -> Error {
        Error::Kube(Box::new(e))
    }

    /// The `kind` label of `vigil_operator_reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Render(_) => "render",
            Error::Catalog(_) => "catalog",
            Error::Metadata(_) => "metadata",
            Error::TooLarge { .. } => "too_large",
            Error::Join(_) => "join",
            Error::Lease(_) => "lease",
            Error::Ended(_) => "ended",
        }
    }
}

/// Where the controller writes and what it watches.
#[derive(Debug, Clone)]
pub struct Config {
    /// Namespace of the ConfigMaps (the operator's own).
    pub namespace: String,
    /// ConfigMap of the audit policy (keys `policy.yaml` and `hash`).
    pub policy_configmap: String,
    /// ConfigMap of the agents' configuration (a key `NAMESPACE.yaml` per namespace).
    pub agent_configmap: String,
    /// ConfigMap where agents report the policy hash they applied (key: node name).
    pub status_configmap: String,
    /// Label key that marks control-plane nodes.
    pub control_plane_label: String,
    /// Quiet time after a change before rendering, so a burst renders once.
    pub debounce: Duration,
    /// How often the ConfigMaps are checked and repaired (a hand edit is undone) and the
    /// statuses re-derived, without any change.
    pub resync: Duration,
    /// Reporting instance of Events (the pod name).
    pub instance: Option<String>,
}

impl Config {
    /// The defaults, in `namespace`.
    pub fn new(namespace: impl Into<String>) -> Config {
        Config {
            namespace: namespace.into(),
            policy_configmap: "vigil-audit-policy".into(),
            agent_configmap: "vigil-agent-config".into(),
            status_configmap: "vigil-policy-status".into(),
            control_plane_label: "node-role.kubernetes.io/control-plane".into(),
            debounce: Duration::from_millis(200),
            resync: Duration::from_secs(300),
            instance: None,
        }
    }

    fn places(&self) -> Places {
        Places {
            policy_configmap: format!("{}/{}", self.namespace, self.policy_configmap),
            control_plane_label: self.control_plane_label.clone(),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    published: watch::Receiver<Option<Arc<Published>>>,
    nodes: watch::Receiver<NodeReport>,
}

/// Runs the controller until the future is dropped or a watch gives up for good. Only the
/// leader runs it (see [`leader`]); everything it starts stops when it is dropped.
pub async fn run(client: Client, config: Config, metrics: Arc<Metrics>) -> Result<(), Error> {
    let catalog = Arc::new(Catalog::builtin().map_err(|e| Error::Catalog(Box::new(e)))?);
    let cms = Api::<ConfigMap>::namespaced(client.clone(), &config.namespace);
    publish::ensure_exists(&cms, &config.status_configmap).await?;
    metrics
        .ready
        .store(true, std::sync::atomic::Ordering::Relaxed);

    let (reader, writer) = reflector::store::<ContainerMonitor>();
    let dirty = Arc::new(Notify::new());
    let (published_tx, published_rx) = watch::channel(None);
    let (nodes_tx, nodes_rx) = watch::channel(NodeReport::default());

    let signal = Arc::clone(&dirty);
    let monitors = watcher(
        Api::<ContainerMonitor>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    // The store keeps every monitor for the life of the process: without the fields the
    // API server adds for its own bookkeeping (managedFields, kubectl's copy of the last
    // applied object), which are often larger than the spec and never read here.
    .modify(|m| {
        m.managed_fields_mut().clear();
        m.annotations_mut()
            .remove("kubectl.kubernetes.io/last-applied-configuration");
    })
    .reflect(writer)
    // Every change of the set, deletions and re-lists included, reaches the publisher; the
    // per-object controller below sees spec changes only.
    .inspect(move |event| {
        if matches!(
            event,
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone)
        ) {
            signal.notify_one();
        }
    })
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default());

    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: config.instance.clone(),
            },
        ),
        client: client.clone(),
        config: config.clone(),
        metrics: Arc::clone(&metrics),
        published: published_rx.clone(),
        nodes: nodes_rx.clone(),
    });
    let resync = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(config.resync).await;
        Some(((), ()))
    });
    let triggers = futures::stream::select(
        futures::stream::select(changes(published_rx), changes(nodes_rx)),
        resync,
    );
    let controller = Controller::for_stream(monitors, reader.clone())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
        )
        .reconcile_all_on(triggers)
        .run(reconcile, error_policy, Arc::clone(&ctx))
        .for_each(|result| {
            match result {
                Ok((obj, _)) => tracing::debug!(monitor = %obj, "reconciled"),
                // A monitor deleted between its event and its turn: nothing to do.
                Err(kube::runtime::controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(monitor = %obj, "gone before its reconcile");
                }
                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
            }
            std::future::ready(())
        });
    let publisher = publisher(Arc::clone(&ctx), reader, dirty, catalog, published_tx);
    let nodes = nodes::follow(
        client,
        &ctx.config.namespace,
        &ctx.config.status_configmap,
        &ctx.config.control_plane_label,
        nodes_tx,
    );
    tokio::select! {
        () = controller => Err(Error::Ended("the ContainerMonitor controller")),
        result = publisher => result,
        () = nodes => Err(Error::Ended("the node watch")),
    }
}

/// A stream that yields once per change of `rx`'s value.
fn changes<T: Send + Sync + 'static>(rx: watch::Receiver<T>) -> impl Stream<Item = ()> + Send {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok().map(|()| ((), rx))
    })
}

/// What identifies the rendered input: a monitor's spec changes exactly when its
/// generation does, which status writes and label edits leave alone.
type Fingerprint = Vec<(String, String, Option<String>, Option<i64>)>;

fn fingerprint(monitors: &[ContainerMonitor]) -> Fingerprint {
    let mut fp: Fingerprint = monitors
        .iter()
        .map(|m| {
            (
                m.namespace().unwrap_or_default(),
                m.name_any(),
                m.metadata.uid.clone(),
                m.metadata.generation,
            )
        })
        .collect();
    fp.sort();
    fp
}

/// Renders and publishes whenever the set of monitors changes, retries failed publishes
/// with backoff, and checks the ConfigMaps every `resync`.
async fn publisher(
    ctx: Arc<Context>,
    reader: Store<ContainerMonitor>,
    dirty: Arc<Notify>,
    catalog: Arc<Catalog>,
    tx: watch::Sender<Option<Arc<Published>>>,
) -> Result<(), Error> {
    reader
        .wait_until_ready()
        .await
        .map_err(|_| Error::Ended("the ContainerMonitor watch"))?;
    let mut last: Option<(Fingerprint, Result<(), String>)> = None;
    let mut retry = PUBLISH_RETRY.0;
    loop {
        // Coalesces a burst (the initial list, `kubectl apply -f dir/`) into one render.
        tokio::time::sleep(ctx.config.debounce).await;
        let monitors: Vec<ContainerMonitor> =
            reader.state().iter().map(|m| (**m).clone()).collect();
        let fp = fingerprint(&monitors);
        let generations: BTreeMap<MonitorRef, Option<i64>> = monitors
            .iter()
            .map(|m| {
                (
                    MonitorRef {
                        namespace: m.namespace().unwrap_or_default(),
                        name: m.name_any(),
                    },
                    m.metadata.generation,
                )
            })
            .collect();
        let cat = Arc::clone(&catalog);
        // Rendering 1,000 monitors takes tens of milliseconds: off the async workers.
        let rendered = tokio::task::spawn_blocking(move || render::render(&monitors, &cat))
            .await
            .map_err(Error::Join)
            .and_then(|r| r.map_err(Error::from));
        ctx.metrics
            .renders
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = match rendered {
            Ok(rendered) => {
                let rendered = Arc::new(rendered);
                let outcome = publish_all(&ctx, &rendered)
                    .await
                    .map_err(|e| e.to_string());
                let changed = last.as_ref() != Some(&(fp.clone(), outcome.clone()));
                if changed {
                    tx.send_replace(Some(Arc::new(Published {
                        rendered: Arc::clone(&rendered),
                        generations,
                        outcome: outcome.clone(),
                    })));
                }
                match &outcome {
                    Ok(()) => tracing::info!(
                        monitors = fp.len(),
                        policy_hash = %rendered.policy_hash,
                        "published"
                    ),
                    Err(e) => tracing::warn!(error = %e, "cannot publish; retrying"),
                }
                last = Some((fp, outcome.clone()));
                outcome
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot render; retrying");
                Err(e.to_string())
            }
        };
        let wait = if outcome.is_err() {
            ctx.metrics
                .publish_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = retry;
            retry = (retry * 2).min(PUBLISH_RETRY.1);
            wait
        } else {
            retry = PUBLISH_RETRY.0;
            ctx.config.resync
        };
        tokio::select! {
            () = dirty.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn publish_all(ctx: &Context, rendered: &Rendered) -> Result<(), Error> {
    let api = Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.config.namespace);
    if let Some(problem) = rendered.cluster_problems.first() {
        tracing::warn!(problem = %problem, "render");
    }
    // The agents' configuration first: a policy that names a namespace is no use before
    // the agents know how to read that namespace's events.
    let mut written = 0;
    for (name, data) in [
        (&ctx.config.agent_configmap, publish::agent_data(rendered)?),
        (&ctx.config.policy_configmap, publish::policy_data(rendered)),
    ] {
        if publish::apply(&api, name, data).await? {
            written += 1;
            tracing::info!(configmap = %name, "written");
        }
    }
    ctx.metrics
        .configmap_writes
        .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

async fn reconcile(monitor: Arc<ContainerMonitor>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = reconcile_status(&monitor, &ctx).await;
    ctx.metrics.reconciled(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    result
}

async fn reconcile_status(monitor: &ContainerMonitor, ctx: &Context) -> Result<Action, Error> {
    let namespace = monitor.namespace().ok_or(Error::Metadata("namespace"))?;
    let name = monitor
        .metadata
        .name
        .clone()
        .ok_or(Error::Metadata("name"))?;
    let key = MonitorRef { namespace, name };
    let Some(published) = ctx.published.borrow().clone() else {
        // The first publish triggers every monitor.
        return Ok(Action::await_change());
    };
    if published.generations.get(&key) != Some(&monitor.metadata.generation) {
        // A render of this generation is on its way and will trigger every monitor again.
        return Ok(Action::await_change());
    }
    let nodes = ctx.nodes.borrow().clone();
    let current = monitor.status.clone().unwrap_or_default();
    let desired = status::desired(
        &key,
        monitor.metadata.generation,
        &published,
        &nodes,
        &ctx.config.places(),
        &current,
        &Time(k8s_openapi::jiff::Timestamp::now()),
    );
    if desired == current {
        return Ok(Action::await_change());
    }
    let api = Api::<ContainerMonitor>::namespaced(ctx.client.clone(), &key.namespace);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    // A merge patch of the whole status: conditions are a list, which a merge patch
    // replaces, so a condition removed here is removed there.
    api.patch_status(
        &key.name,
        &pp,
        &Patch::Merge(serde_json::json!({ "status": desired })),
    )
    .await
    .map_err(Error::kube)?;
    ctx.metrics
        .status_writes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(monitor = %key, "status written");
    record_failures(ctx, monitor, &current, &desired).await;
    Ok(Action::await_change())
}

/// A Warning Event when a condition turns to a failure or its failure changes: once per
/// failure, not once per reconcile.
async fn record_failures(
    ctx: &Context,
    monitor: &ContainerMonitor,
    before: &ContainerMonitorStatus,
    after: &ContainerMonitorStatus,
) {
    for (type_, action, failing_reasons) in [
        (condition::POLICY_RENDERED, "Render", &["Degraded"][..]),
        (condition::POLICY_APPLIED, "Publish", &["PublishFailed"][..]),
    ] {
        let Some(now) = status::find(after, type_) else {
            continue;
        };
        if !failing_reasons.contains(&now.reason.as_str()) {
            continue;
        }
        let was = status::find(before, type_);
        if was.is_some_and(|w| w.reason == now.reason && w.message == now.message) {
            continue;
        }
        let event = Event {
            type_: EventType::Warning,
            reason: now.reason.clone(),
            note: Some(status::truncate(now.message.clone(), MAX_EVENT_NOTE_BYTES)),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &monitor.object_ref(&())).await {
            ctx.metrics
                .event_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(error = %e, "cannot record an Event");
        }
    }
}

fn error_policy(monitor: Arc<ContainerMonitor>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(
        monitor = %format!("{}/{}", monitor.namespace().unwrap_or_default(), monitor.name_any()),
        error = %error,
        "reconcile failed; retrying in 30 s"
    );
    Action::requeue(Duration::from_secs(30))
}
