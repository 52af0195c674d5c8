//! `vigil-agent run`: the long-lived pipeline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_core::audit::AuditConfig;
use vigil_core::detect::{RuleSet, RuleSources};
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
    let rules = RuleSet::load(&RuleSources {
        no_builtin: !config.rules.builtin,
        paths: config.rules.paths.clone(),
    })?
    .with_config(config.rules.detect_config());
    tracing::info!(rules = rules.rules().len(), "rules loaded");
    let rules = Arc::new(rules);
    let metrics = Arc::new(Metrics::default());

    let outputs = config
        .outputs
        .iter()
        .map(|o| o.build())
        .collect::<Result<Vec<_>, _>>()?;
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

    shutdown.await;
    tracing::info!("shutting down: finishing queued batches");
    stop.store(true, Relaxed);
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
