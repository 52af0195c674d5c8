//! The console: events agents send to the operator, kept in an embedded store, shown on
//! read-only web pages and turned into notifications.
//!
//! ```text
//! agents ──vigil output (HTTPS, NDJSON)──► /api/v1/ingest ─► store (SQLite) ─► pages
//!                                                  │             ▲
//!                          leader only: new events ▼             │ /api/v1/sync
//!                                            notifications    other replicas
//! ```
//!
//! Every replica serves the console and accepts events; replicas copy each other's
//! events ([`sync`]), so each shows them all within a copy interval. Only the leader
//! notifies, and only for events its store did not hold yet, so an event reaching both
//! replicas (an agent's retry to the other one, or the copy) is notified once.

mod auth;
pub mod cert;
mod config;
mod ingest;
mod metrics;
mod monitors;
mod pages;
mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use vigil_core::event::Event;
use vigil_notify::Notifier;
use vigil_store::Store;

pub use auth::{Authenticator, COOKIE, Refusal, Role};
pub use config::{
    AuthConfig, ConsoleConfig, IngestConfig, MAX_PAGE_ROWS, PeersConfig, ServerTls,
    TokenReviewConfig,
};
pub use ingest::{GunzipError, Parsed, gunzip, parse_lines};
pub use metrics::ConsoleMetrics;
pub use sync::{STORE_HEADER, SYNC_BATCH};

/// Says whether this replica leads now (only the leader notifies).
pub type IsLeader = Arc<dyn Fn() -> bool + Send + Sync>;

/// A client has this long to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the token files are checked for changes.
const TOKEN_RELOAD: Duration = Duration::from_secs(2);

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The configuration cannot work.
    #[error("invalid console configuration: {0}")]
    Config(String),
    /// The store cannot be opened.
    #[error("store: {0}")]
    Store(#[from] vigil_store::StoreError),
    /// The notifications cannot start.
    #[error("notifications: {0}")]
    Notify(#[from] vigil_notify::NotifyError),
    /// The certificate or key cannot be used.
    #[error("tls: {0}")]
    Tls(String),
    /// The store id file cannot be read or written.
    #[error("{path}: {source}")]
    StoreId {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every request shares.
pub(crate) struct Shared {
    config: ConsoleConfig,
    store: Arc<Store>,
    store_id: String,
    auth: Authenticator,
    notifier: Option<Notifier>,
    leader: IsLeader,
    permits: Semaphore,
    metrics: Arc<ConsoleMetrics>,
    monitors: monitors::Monitors,
}

impl Shared {
    /// Admits a request to the API (ingest, sync): a token of the ingest role, from the
    /// `Authorization` header or the cookie; otherwise the answer to give.
    async fn admit_api(&self, headers: &axum::http::HeaderMap) -> Result<(), Response> {
        let token = auth::request_token(headers);
        self.auth
            .admit(token.as_deref(), Role::Ingest)
            .await
            .map_err(refused)
    }

    /// Offers the events `inserted` names (new in this store) to the notifications, when
    /// this replica leads.
    fn offer_new(&self, events: &[Event], inserted: &[usize]) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        if !(self.leader)() {
            return;
        }
        for &i in inserted {
            if let Some(e) = events.get(i)
                && !e.detections.is_empty()
            {
                notifier.offer(e);
            }
        }
    }
}

/// The console bound to its address, its store open, not yet serving.
pub struct ConsoleServer {
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
}

impl ConsoleServer {
    /// Checks the configuration, opens the store, loads tokens and TLS material, starts
    /// the notifications and binds. `leader` says whether this replica leads (it notifies
    /// only then); `client` reaches the API server for TokenReviews and the
    /// ContainerMonitors page (without it, those are unavailable).
    pub async fn bind(
        config: ConsoleConfig,
        leader: IsLeader,
        client: Option<kube::Client>,
        metrics: Arc<ConsoleMetrics>,
    ) -> Result<ConsoleServer, ConsoleError> {
        config.validate().map_err(ConsoleError::Config)?;
        let auth =
            Authenticator::new(&config.auth, client.clone()).map_err(ConsoleError::Config)?;
        let acceptor = match &config.tls {
            Some(tls) => Some(TlsAcceptor::from(
                crate::webhook::server_config(&tls.cert_file, &tls.key_file, None)
                    .map_err(|e| ConsoleError::Tls(e.to_string()))?,
            )),
            None => {
                tracing::warn!(
                    "console without tls: tokens cross the network in clear; use it only behind kubectl port-forward"
                );
                None
            }
        };
        let store_config = config.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&store_config))
            .await
            .map_err(|e| ConsoleError::Config(e.to_string()))??;
        let store_id = store_id(&config.store.path)?;
        let notifier = match &config.notifications {
            Some(n) => Some(Notifier::start(n.clone())?),
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ConsoleError::Bind {
                    addr: config.listen,
                    source,
                })?;
        tracing::info!(
            listen = %listener.local_addr().unwrap_or(config.listen),
            store = %config.store.path.display(),
            tls = acceptor.is_some(),
            notifications = notifier.is_some(),
            peers = config.peers.is_used(),
            "console ready"
        );
        let permits = Semaphore::new(config.ingest.max_concurrent_requests);
        Ok(ConsoleServer {
            listener,
            acceptor,
            shared: Arc::new(Shared {
                config,
                store: Arc::new(store),
                store_id,
                auth,
                notifier,
                leader,
                permits,
                metrics,
                monitors: monitors::Monitors::new(client),
            }),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Appends the console's and the notifications' metrics (Prometheus text) to `out`.
    pub fn metrics_renderer(&self) -> impl Fn(&mut String) + Send + Sync + 'static {
        let shared = self.shared.clone();
        move |out: &mut String| {
            shared.metrics.render(out);
            if let Some(n) = &shared.notifier {
                n.render_metrics(out);
            }
        }
    }

    /// Serves until `shutdown` completes; then stops the background work and gives the
    /// notifications a few seconds to send what they hold.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let ConsoleServer {
            listener,
            acceptor,
            shared,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut background = JoinSet::new();
        for store in shared.auth.token_stores() {
            if store.is_configured() {
                background.spawn(store.watch(TOKEN_RELOAD, stop_rx.clone()));
            }
        }
        background.spawn(retention(shared.clone(), stop_rx.clone()));
        if shared.config.peers.is_used() {
            background.spawn(sync::run(shared.clone(), stop_rx.clone()));
        }
        let app = router(shared.clone());
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, addr)) => {
                        connections.spawn(connection(tcp, addr, acceptor.clone(), app.clone(), stop_rx.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        connections.shutdown().await;
        background.shutdown().await;
        if let Some(n) = &shared.notifier {
            n.shutdown(Duration::from_secs(5)).await;
        }
        tracing::info!("console stopped");
    }
}

/// The routes: the pages (viewer role, GET only), ingest and sync (ingest role).
fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/ingest", post(ingest::receive))
        .route("/api/v1/sync", get(sync::serve))
        .merge(pages::routes())
        .with_state(shared)
}

async fn connection(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    acceptor: Option<TlsAcceptor>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    use tower::ServiceExt;
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        app.clone().oneshot(req)
    });
    let builder = hyper::server::conn::http1::Builder::new();
    let served = match acceptor {
        Some(acceptor) => {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => { conn.as_mut().graceful_shutdown(); conn.await }
            }
        }
        None => {
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => { conn.as_mut().graceful_shutdown(); conn.await }
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
    }
}

/// Enforces retention every `retention_interval_secs`, and once at start.
async fn retention(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick =
        tokio::time::interval(Duration::from_secs(shared.config.retention_interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let store = shared.store.clone();
        let done = tokio::task::spawn_blocking(move || {
            store.enforce_retention(time::OffsetDateTime::now_utc())
        })
        .await;
        match done {
            Ok(Ok(report)) => shared.metrics.retention(&report),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "retention failed; the store may grow past its cap")
            }
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
    }
}

/// The store's id: made once, kept beside the database, so peers know this store across
/// restarts and address changes.
fn store_id(db: &std::path::Path) -> Result<String, ConsoleError> {
    let mut path = db.as_os_str().to_owned();
    path.push(".id");
    let path = std::path::PathBuf::from(path);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ConsoleError::StoreId { path, source }),
    }
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ConsoleError::StoreId {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let id = hex::encode(bytes);
    let tmp = path.with_extension("id.tmp");
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| ConsoleError::StoreId {
            path: path.clone(),
            source,
        })?;
    Ok(id)
}

/// A plain-text answer.
pub(crate) fn plain(code: StatusCode, message: &str) -> Response {
    let mut res = (code, format!("{message}\n")).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if code == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// The answer to a refused API request.
pub(crate) fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::NoToken => {
            let mut res = plain(StatusCode::UNAUTHORIZED, &refusal.to_string());
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res
        }
        Refusal::NotAllowed => plain(StatusCode::FORBIDDEN, &refusal.to_string()),
        Refusal::ReviewFailed(_) => plain(StatusCode::SERVICE_UNAVAILABLE, &refusal.to_string()),
    }
}
