//! `vigil-agent run`: the long-lived pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_core::audit::AuditConfig;
use vigil_core::pipeline::{Router, RouterConfig};

use crate::config::AgentConfig;
use crate::metrics::Metrics;
use crate::sources::audit_log::AuditLogSource;

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Rules could not be loaded.
    #[error(transparent)]
    Rules(#[from] vigil_core::detect::RuleError),
    /// An output could not be opened.
    #[error("output: {0}")]
    Output(#[from] vigil_core::outputs::OutputError),
    /// A source failed.
    #[error(transparent)]
    Source(#[from] crate::sources::audit_log::SourceError),
    /// The container-log source failed.
    #[error(transparent)]
    ContainerLogs(#[from] crate::sources::container_logs::ContainerLogsError),
    /// The Docker source failed.
    #[error(transparent)]
    Docker(#[from] crate::sources::docker::DockerSourceError),
    /// The containerd source failed.
    #[error(transparent)]
    Containerd(#[from] crate::sources::containerd::ContainerdSourceError),
    /// The resource-usage source failed.
    #[error(transparent)]
    Resources(#[from] crate::sources::resources::ResourcesError),
    /// The drift and file-integrity source failed.
    #[error(transparent)]
    Drift(#[from] crate::sources::drift::DriftError),
    /// The hardening source failed.
    #[error(transparent)]
    Hardening(#[from] crate::sources::hardening::HardeningError),
    /// The process source failed.
    #[error(transparent)]
    Process(#[from] crate::sources::process::ProcessSourceError),
    /// The checkpoint could not be written at shutdown.
    #[error("final checkpoint: {0}")]
    Checkpoint(#[from] crate::tail::TailError),
    /// The runtime or a listener could not start.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How long outputs get at shutdown to write what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs until SIGTERM or SIGINT.
pub fn run(config: AgentConfig) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run_async(config, shutdown_signal()))
}

/// Resolves on SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The pipeline, stopping when `shutdown` resolves. Public so tests can drive it.
pub async fn run_async(
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    let rules = config.rules.load()?;
    tracing::info!(rules = rules.rules().len(), "rules loaded");
    let rules = Arc::new(rules);
    let metrics = Arc::new(Metrics::default());

    let outputs = vigil_core::outputs::build_all(
        &config.outputs,
        &vigil_core::outputs::BuildContext {
            state_dir: config.state_dir.clone(),
            node: config
                .node_name()
                .unwrap_or_else(|| "vigil-agent".to_owned()),
        },
    )?;
    let router = Arc::new(Router::start(
        outputs,
        RouterConfig {
            queue_batches: config.pipeline.queue_batches,
            ..RouterConfig::default()
        },
    ));
    metrics.set_outputs(router.counters());

    if let Some(addr) = config.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        tokio::spawn(serve_metrics(listener, metrics.clone()));
    }

    let stop = Arc::new(AtomicBool::new(false));
    // Before any source starts, so the first events are already tuned.
    let operator_tasks = match &config.operator {
        Some(op) => {
            crate::operator::start(
                op,
                config.node_name(),
                rules.clone(),
                metrics.clone(),
                stop.clone(),
            )
            .await
        }
        None => Vec::new(),
    };
    let mut source_task = None;
    if config.sources.audit_log.enabled {
        let audit = AuditConfig {
            cluster: config.cluster.clone(),
            node: config.node_name(),
            ..AuditConfig::default()
        };
        let source = AuditLogSource::new(
            &config.sources.audit_log,
            &config.pipeline,
            audit,
            &config.state_dir,
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        )?;
        let (router, stop) = (router.clone(), stop.clone());
        source_task = Some(tokio::task::spawn_blocking(move || {
            source.run(&router, &stop)
        }));
        tracing::info!(path = %config.sources.audit_log.path.display(), "audit-log source started");
    }

    // The runtime sources stop when this turns true; each holds a receiver.
    let (sources_stop, sources_stop_rx) = tokio::sync::watch::channel(false);
    // The sources that return nothing at their end, by name, in start order.
    let mut runtime_tasks: Vec<(&str, tokio::task::JoinHandle<Result<(), RunError>>)> = Vec::new();
    let mut docker_task = None;
    if let Some(docker) = config.sources.docker.as_ref().filter(|d| !d.disabled) {
        let parser = vigil_core::runtime::DockerParser {
            cluster: config.cluster.clone(),
            node: config.node_name(),
            ..vigil_core::runtime::DockerParser::default()
        };
        let source = crate::sources::docker::DockerSource::new(
            docker,
            &config.pipeline,
            parser,
            &config.state_dir,
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        )?;
        docker_task = Some(tokio::spawn(
            source.run(router.clone(), sources_stop_rx.clone()),
        ));
        tracing::info!("docker source started");
    }

    if let Some(cd) = config.sources.containerd.as_ref().filter(|c| !c.disabled) {
        let parser = vigil_core::runtime::containerd::ContainerdParser {
            cluster: config.cluster.clone(),
            node: config.node_name(),
        };
        let source = crate::sources::containerd::ContainerdSource::new(
            cd,
            &config.pipeline,
            parser,
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        );
        let (router, stop) = (router.clone(), sources_stop_rx.clone());
        runtime_tasks.push((
            "containerd",
            tokio::spawn(async move { Ok(source.run(router, stop).await?) }),
        ));
        tracing::info!("containerd source started");
    }

    if let Some(res) = config.sources.resources.as_ref().filter(|r| !r.disabled) {
        let defaults = crate::sources::RuntimeDefaults::of(&config.sources);
        let source = crate::sources::resources::ResourcesSource::new(
            res,
            defaults,
            &config.pipeline,
            config.cluster.clone(),
            config.node_name(),
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        );
        let (router, stop) = (router.clone(), sources_stop_rx.clone());
        runtime_tasks.push((
            "resources",
            tokio::spawn(async move { Ok(source.run(router, stop).await?) }),
        ));
        tracing::info!("resource-usage source started");
    }

    if let Some(d) = config.sources.drift.as_ref().filter(|d| !d.disabled) {
        let defaults = crate::sources::RuntimeDefaults::of(&config.sources);
        let source = crate::sources::drift::DriftSource::new(
            d,
            defaults,
            &config.pipeline,
            config.cluster.clone(),
            config.node_name(),
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        );
        let (router, stop) = (router.clone(), sources_stop_rx.clone());
        runtime_tasks.push((
            "drift",
            tokio::spawn(async move { Ok(source.run(router, stop).await?) }),
        ));
        tracing::info!("drift source started");
    }

    if let Some(h) = config.sources.hardening.as_ref().filter(|h| !h.disabled) {
        let source = crate::sources::hardening::HardeningSource::new(
            h,
            config
                .sources
                .docker
                .as_ref()
                .and_then(|d| d.endpoint.clone()),
            &config.state_dir,
            config.cluster.clone(),
            config.node_name(),
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        );
        let (router, stop) = (router.clone(), sources_stop_rx.clone());
        runtime_tasks.push((
            "hardening",
            tokio::spawn(async move { Ok(source.run(router, stop).await?) }),
        ));
        tracing::info!("hardening source started");
    }

    if let Some(p) = config.sources.process.as_ref().filter(|p| !p.disabled) {
        let source = crate::sources::process::ProcessSource::new(
            p,
            &config.pipeline,
            config.cluster.clone(),
            config.node_name(),
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        );
        let (router, stop) = (router.clone(), sources_stop_rx.clone());
        runtime_tasks.push((
            "process",
            tokio::spawn(async move { Ok(source.run(router, stop).await?) }),
        ));
        tracing::info!("process source started");
    }

    let mut logs_task = None;
    if let Some(logs) = config
        .sources
        .container_logs
        .as_ref()
        .filter(|c| !c.disabled)
    {
        let source = crate::sources::container_logs::ContainerLogsSource::new(
            logs,
            &config.pipeline,
            config.cluster.clone(),
            config.node_name(),
            &config.state_dir,
            rules.clone(),
            metrics.clone(),
            config.only_detections,
        )?;
        let (router, stop) = (router.clone(), stop.clone());
        logs_task = Some(tokio::task::spawn_blocking(move || {
            source.run(&router, &stop)
        }));
        tracing::info!("container-log source started");
    }

    shutdown.await;
    tracing::info!("shutting down: finishing queued batches");
    stop.store(true, Relaxed);
    for task in operator_tasks {
        task.abort();
    }
    let _ = sources_stop.send(true);
    for (name, task) in runtime_tasks {
        task.await.map_err(|e| {
            std::io::Error::other(format!("the {name} source's task ended abnormally: {e}"))
        })??;
    }
    let docker_finisher = match docker_task {
        Some(task) => Some(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        ),
        None => None,
    };
    let logs_finisher = match logs_task {
        Some(task) => Some(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        ),
        None => None,
    };
    let finisher = match source_task {
        Some(task) => Some(
            task.await
                .map_err(|e| std::io::Error::other(e.to_string()))??,
        ),
        None => None,
    };
    match Arc::try_unwrap(router) {
        Ok(router) => router.shutdown(SHUTDOWN_GRACE).await,
        Err(_) => tracing::warn!("outputs still referenced at shutdown"),
    }
    if let Some(f) = finisher {
        f.finish()?;
    }
    if let Some(f) = logs_finisher {
        f.finish()?;
    }
    if let Some(f) = docker_finisher {
        f.finish()?;
    }
    tracing::info!(
        lines = metrics.audit_lines.load(Relaxed),
        events = metrics.audit_events.load(Relaxed),
        with_detections = metrics.events_with_detections.load(Relaxed),
        "stopped"
    );
    Ok(())
}

/// A minimal HTTP/1.1 responder: the three endpoints are read-only and small, so a full
/// HTTP stack would only add weight. Requests are read up to 8 KiB and answered once.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of file descriptors, typically: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (status, body, ctype) = match path {
                "/metrics" => ("200 OK", metrics.render(), "text/plain; version=0.0.4"),
                "/healthz" | "/readyz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
                _ => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
