//! The audit webhook collector: kube-apiserver's audit webhook backend posts `EventList`
//! batches here over HTTPS.
//!
//! ```text
//! kube-apiserver ──POST /audit (EventList)──► TLS ─► authenticate ─► body cap ─► parse,
//!   normalize, detect ─► Router ─► outputs (spool first) ─► ack ─► 200
//! ```
//!
//! # Guarantees
//!
//! - **Durable before 200.** A request is answered 200 only once every output holds its
//!   events durably: written by the `file` and `stdout` outputs, in the spool of the remote
//!   ones. Anything else is answered so that kube-apiserver behaves as it should: 503 with
//!   `Retry-After` (retried) when the outputs did not take the batch within `ack_timeout_ms`;
//!   4xx (not retried) when sending the same bytes again cannot help.
//! - **At least once.** A batch answered 503 may still reach the outputs (it was queued when
//!   the time ran out); its retry then gives duplicates, with the same event ids: an event's
//!   id is a hash of its bytes, which a retry sends unchanged.
//! - **Bounded.** At most `max_concurrent_requests` bodies of at most `max_body_bytes` are
//!   held at once; further requests wait for a turn within the ack timeout, then get 503.
//!   Each output's queue is the router's (8 batches), and waiting for room there counts
//!   against the same timeout.
//!
//! # Answers
//!
//! | status | when | kube-apiserver |
//! |---|---|---|
//! | 200 | events durable in every output (or the list was empty) | done |
//! | 400 | body not an `audit.k8s.io` `EventList` | drops the batch |
//! | 401 | no client certificate and no valid bearer token | drops the batch |
//! | 403 | client certificate without an allowed name | drops the batch |
//! | 404/405 | another path or method than `POST /audit` | drops the batch |
//! | 413 | body over `max_body_bytes` | drops the batch |
//! | 503 | busy, outputs too slow or failing, shutting down | retries with backoff |

mod auth;
mod config;
mod ingest;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use vigil_core::audit::AuditConfig;
use vigil_core::detect::RuleError;
use vigil_core::outputs::{BuildContext, OutputError};
use vigil_core::pipeline::{AckTracker, Batch, Router, RouterConfig};
use vigil_core::tuning::mounted::MountedDir;
use vigil_core::tuning::{Reload, Tuning};

pub use auth::{Decision, Peer, TokenStore, server_config};
pub use config::{AUDIT_PATH, RulesConfig, WebhookConfig};
pub use ingest::IngestError;
pub use metrics::{WebhookMetrics, render_prometheus};

use ingest::Ingest;

/// A client that opened a connection has this long to finish the TLS handshake; slow or
/// silent clients would otherwise hold a task and a socket each.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client has this long to send a request's headers (on a new or an idle kept-alive
/// connection) before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The `Retry-After` of a 503, in seconds. kube-apiserver's webhook client honours it and
/// otherwise backs off from `--audit-webhook-initial-backoff`.
const RETRY_AFTER_SECS: u64 = 1;

/// Why the collector could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A certificate, key, CA or token file is missing or unusable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate material.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The state directory cannot be created.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The detection rules do not load.
    #[error("rules: {0}")]
    Rules(#[from] RuleError),
    /// An output cannot be built.
    #[error("outputs: {0}")]
    Outputs(#[from] OutputError),
}

/// Runs the collector until `shutdown` completes, then lets requests in progress finish and
/// the outputs write what they hold (within `shutdown_grace_secs`).
pub async fn serve(
    config: WebhookConfig,
    metrics: Arc<WebhookMetrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), WebhookError> {
    WebhookServer::bind(config, metrics)
        .await?
        .run(shutdown)
        .await;
    Ok(())
}

/// What every request shares.
struct Shared {
    tokens: Arc<TokenStore>,
    ingest: Ingest,
    pipeline: Arc<Router>,
    permits: Semaphore,
    metrics: Arc<WebhookMetrics>,
    client_names: Vec<String>,
    max_body_bytes: usize,
    ack_timeout: Duration,
    limiter: LogLimiter,
}

/// A collector bound to its address, with its outputs started, not yet accepting.
pub struct WebhookServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    grace: Duration,
    token_reload: Duration,
    /// The mounted agents' ConfigMap and the rules its tuning goes to.
    tuning: Option<(MountedDir, Arc<vigil_core::detect::RuleSet>)>,
}

/// How often the mounted tuning is looked at.
const TUNING_POLL: Duration = Duration::from_secs(2);

/// Puts a changed tuning in force, saying so in the log and the metrics.
fn reload_tuning(
    dir: &mut MountedDir,
    rules: &vigil_core::detect::RuleSet,
    metrics: &WebhookMetrics,
) {
    match Tuning::reload(dir, rules.tuning()) {
        Reload::Unchanged => {}
        Reload::Applied { namespaces } => {
            metrics.tuning_applied();
            tracing::info!(namespaces, dir = %dir.path().display(), "namespace tuning in force");
        }
        Reload::Refused(e) => {
            metrics.tuning_refused();
            tracing::error!(error = %e, dir = %dir.path().display(),
                "namespace tuning refused; the previous one stays in force");
        }
        Reload::Unreadable(e) => {
            metrics.tuning_refused();
            tracing::warn!(error = %e, dir = %dir.path().display(),
                "namespace tuning unreadable; the one in force stays");
        }
    }
}

impl WebhookServer {
    /// Checks the configuration, loads the TLS material, tokens and rules, binds the listen
    /// address and starts the outputs. Must run inside a multi-threaded Tokio runtime.
    pub async fn bind(
        config: WebhookConfig,
        metrics: Arc<WebhookMetrics>,
    ) -> Result<WebhookServer, WebhookError> {
        config.validate().map_err(WebhookError::Config)?;
        let tls = auth::server_config(
            &config.cert_file,
            &config.key_file,
            config.client_ca_file.as_deref(),
        )?;
        let tokens = Arc::new(TokenStore::load(&config.token_files)?);
        let rules = config.rules.load()?;
        std::fs::create_dir_all(&config.state_dir).map_err(|source| WebhookError::StateDir {
            path: config.state_dir.clone(),
            source,
        })?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| WebhookError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let outputs = vigil_core::outputs::build_all(
            &config.outputs,
            &BuildContext {
                state_dir: config.state_dir.clone(),
                node: config.instance.clone(),
            },
        )?;
        let pipeline = Router::start(outputs, RouterConfig::default());
        metrics.set_outputs(pipeline.counters());
        tracing::info!(
            listen = %listener.local_addr().unwrap_or(config.listen),
            rules = rules.rules().len(),
            mtls = config.client_ca_file.is_some(),
            token_files = config.token_files.len(),
            outputs = config.outputs.len(),
            "audit webhook collector ready"
        );
        let rules = Arc::new(rules);
        let tuning = config.tuning_dir.as_ref().map(|dir| {
            let mut dir = MountedDir::new(dir);
            reload_tuning(&mut dir, &rules, &metrics);
            (dir, rules.clone())
        });
        let ingest = Ingest::new(
            AuditConfig {
                cluster: config.cluster.clone(),
                node: None,
                max_object_bytes: config.max_object_bytes,
            },
            rules,
            config.max_event_bytes,
            config.only_detections,
        );
        Ok(WebhookServer {
            listener,
            acceptor: TlsAcceptor::from(tls),
            shared: Arc::new(Shared {
                tokens,
                ingest,
                pipeline: Arc::new(pipeline),
                permits: Semaphore::new(config.max_concurrent_requests),
                metrics,
                client_names: config.client_names,
                max_body_bytes: config.max_body_bytes,
                ack_timeout: Duration::from_millis(config.ack_timeout_ms),
                limiter: LogLimiter::new(Duration::from_secs(60)),
            }),
            grace: Duration::from_secs(config.shutdown_grace_secs),
            token_reload: Duration::from_secs(config.token_reload_secs),
            tuning,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let WebhookServer {
            listener,
            acceptor,
            shared,
            grace,
            token_reload,
            tuning,
        } = self;
        let metrics = shared.metrics.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = JoinSet::new();
        if shared.tokens.is_configured() {
            background.spawn(shared.tokens.clone().watch(token_reload, stop_rx.clone()));
        }
        if let Some((mut dir, rules)) = tuning {
            let (metrics, mut stop) = (metrics.clone(), stop_rx.clone());
            background.spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(TUNING_POLL) => reload_tuning(&mut dir, &rules, &metrics),
                    }
                }
            });
        }
        let app = axum::Router::new()
            .route(AUDIT_PATH, axum::routing::post(receive))
            .with_state(shared.clone());
        metrics.set_serving(true);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        connections.spawn(connection(
                            tcp,
                            addr,
                            acceptor.clone(),
                            app.clone(),
                            shared.clone(),
                            stop_rx.clone(),
                        ));
                    }
                    Err(e) => {
                        // Out of file descriptors or the like: pausing lets connections
                        // finish and free some instead of spinning on the error.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        metrics.set_serving(false);
        drop(listener);
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = connections.len(),
                "requests still in progress at the end of the shutdown grace; their batches are answered by a broken connection and kube-apiserver retries them"
            );
            connections.shutdown().await;
        }
        background.shutdown().await;
        drop(app);
        let pipeline = shared.pipeline.clone();
        drop(shared);
        // Bodies still in a parsing thread hold the last references for a moment.
        let mut pipeline = pipeline;
        for _ in 0..50 {
            match Arc::try_unwrap(pipeline) {
                Ok(router) => {
                    router.shutdown(grace).await;
                    tracing::info!("audit webhook collector stopped");
                    return;
                }
                Err(still_shared) => {
                    pipeline = still_shared;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        tracing::warn!(
            "the outputs are still in use at shutdown; they finish writing their queues on their own"
        );
    }
}

async fn connection(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    app: axum::Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.handshake_failed();
            if let Some(suppressed) = shared.limiter.allow("handshake") {
                tracing::warn!(peer = %addr, error = %e, suppressed, "TLS handshake failed");
            }
            return;
        }
        Err(_) => {
            shared.metrics.handshake_failed();
            return;
        }
    };
    let peer = Peer::from_handshake(
        tls.get_ref().1.peer_certificates(),
        &shared.client_names,
        addr,
    );
    let metrics = shared.metrics.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(peer.clone());
            let app = app.clone();
            let metrics = metrics.clone();
            async move {
                let started = Instant::now();
                let res = app.oneshot(req).await;
                if let Ok(r) = &res {
                    metrics.answered(r.status().as_u16(), started.elapsed());
                }
                res
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
        }
        _ = async { let _ = stop.wait_for(|stop| *stop).await; } => {
            // Finishes the request in progress (its answer says whether it is durable),
            // then closes instead of waiting for the next one.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Decrements the in-flight gauge however the request ends (answered, or dropped with its
/// connection).
struct InFlight(Arc<WebhookMetrics>);

impl InFlight {
    fn start(metrics: &Arc<WebhookMetrics>) -> InFlight {
        metrics.in_flight(1);
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight(-1);
    }
}

fn answer(code: StatusCode, message: &str) -> Response {
    let mut res = (code, format!("{message}\n")).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if code == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    if code == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    res
}

async fn receive(
    State(s): State<Arc<Shared>>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let _in_flight = InFlight::start(&s.metrics);
    let peer_addr = peer.addr.map(|a| a.to_string()).unwrap_or_default();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match auth::decide(&peer, authorization, &s.tokens) {
        Decision::Certificate | Decision::Token => {}
        Decision::Unauthenticated(why) => {
            if let Some(suppressed) = s.limiter.allow("unauthenticated") {
                tracing::warn!(peer = %peer_addr, reason = why, suppressed, "audit webhook request refused");
            }
            return answer(StatusCode::UNAUTHORIZED, why);
        }
        Decision::Forbidden => {
            if let Some(suppressed) = s.limiter.allow("forbidden") {
                tracing::warn!(peer = %peer_addr, suppressed, "audit webhook request refused: the client certificate carries none of client_names");
            }
            return answer(
                StatusCode::FORBIDDEN,
                "the client certificate is not allowed to send audit events",
            );
        }
    }
    let too_large = || {
        s.metrics.refused("too_large");
        if let Some(suppressed) = s.limiter.allow("too_large") {
            tracing::error!(peer = %peer_addr, max_body_bytes = s.max_body_bytes, suppressed,
                "audit webhook body over max_body_bytes refused; kube-apiserver drops such a batch: set --audit-webhook-truncate-enabled with --audit-webhook-truncate-max-batch-size below max_body_bytes, or raise max_body_bytes");
        }
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over {} bytes", s.max_body_bytes),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > s.max_body_bytes as u64) {
        // A client still writing the body when the answer comes reads a broken pipe instead
        // of the 413; read and drop a body up to twice the cap, briefly, so it sees why. A
        // larger one is cut off.
        if len <= 2 * s.max_body_bytes as u64 {
            let _ = tokio::time::timeout(Duration::from_secs(5), drain(body)).await;
        }
        return too_large();
    }

    let deadline = tokio::time::Instant::now() + s.ack_timeout;
    let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, s.permits.acquire()).await else {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many audit batches in progress; retry",
        );
    };
    // The body is read within the same deadline: a client trickling it must not hold a
    // turn (and its memory) for longer than a batch may take.
    let read = http_body_util::Limited::new(body, s.max_body_bytes).collect();
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            s.metrics.refused("unreadable_body");
            return answer(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            );
        }
        Err(_) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the body did not arrive within the ack timeout; retry",
            );
        }
    };
    s.metrics.body(bytes.len());

    let worker = s.clone();
    // Parsing and rule evaluation are CPU work: off the threads that serve connections.
    let ingested =
        tokio::task::spawn_blocking(move || worker.ingest.process(&bytes, &worker.metrics)).await;
    let ingested = match ingested {
        Ok(Ok(ingested)) => ingested,
        Ok(Err(e)) => {
            s.metrics.refused(e.kind());
            if let Some(suppressed) = s.limiter.allow(e.kind()) {
                tracing::warn!(peer = %peer_addr, error = %e, suppressed, "audit webhook body refused");
            }
            return answer(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Err(e) => {
            tracing::error!(error = %e, "audit webhook parsing task failed");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal error while parsing; retry",
            );
        }
    };
    s.metrics.received(ingested.items);
    let events = ingested.events.len();
    if events == 0 {
        return answer(StatusCode::OK, "ok");
    }

    let mut tracker: AckTracker<()> = AckTracker::new();
    let batch = Batch::new(ingested.events, tracker.issue(()));
    match tokio::time::timeout_at(deadline, s.pipeline.send(batch)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("shutting down ({e}); retry"),
            );
        }
        Err(_) => {
            if let Some(suppressed) = s.limiter.allow("queue_timeout") {
                tracing::warn!(suppressed, ack_timeout = ?s.ack_timeout, "outputs too slow to take an audit batch; answered 503 so kube-apiserver retries");
            }
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the outputs are busy; retry",
            );
        }
    }
    match tokio::time::timeout_at(deadline, tracker.next_committable()).await {
        Ok(done) if !done.is_empty() => {
            s.metrics.accepted(events);
            answer(StatusCode::OK, "ok")
        }
        Ok(_) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "an output could not store the events; retry",
        ),
        Err(_) => {
            if let Some(suppressed) = s.limiter.allow("ack_timeout") {
                tracing::warn!(suppressed, ack_timeout = ?s.ack_timeout, "audit batch not durable within the ack timeout; answered 503 so kube-apiserver retries");
            }
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                "the events are not stored yet; retry",
            )
        }
    }
}

/// At most one log line per kind and interval, with the count of those left out, so that a
/// misconfigured or hostile client cannot flood the operator's log.
struct LogLimiter {
    every: Duration,
    seen: Mutex<std::collections::HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    fn new(every: Duration) -> LogLimiter {
        LogLimiter {
            every,
            seen: Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// `Some(suppressed since the last line)` when a line of `kind` may be logged now.
    fn allow(&self, kind: &'static str) -> Option<u64> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match seen.get_mut(kind) {
            Some((last, suppressed)) if now.duration_since(*last) < self.every => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                seen.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// Reads a refused body to its end, dropping it.
async fn drain(mut body: Body) {
    while let Some(Ok(_)) = body.frame().await {}
}
