//! Replicas copy each other's events: `GET /api/v1/sync` serves the events a replica
//! received itself, and [`run`] pulls them from every peer.
//!
//! A peer is known by its store id (a random id made when its database was created), not
//! by its address, which changes with every pod: the cursor of a peer is kept under its
//! store id, so a restarted peer with the same volume resumes where the copy stopped, and a
//! peer with a new, empty store starts from the beginning. Events copied from a peer are
//! never served on (only `Origin::Local` rows are), so copies do not echo back and forth.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil_core::event::Event;
use vigil_core::outputs::tls::DefaultTrust;
use vigil_store::Origin;

use super::config::PeersConfig;
use super::{Shared, plain};

/// The header naming the answering replica's store.
pub const STORE_HEADER: &str = "x-vigil-store";

/// Most events one sync answer carries; the puller asks again at once while answers are
/// full, so a replica that was away for long catches up in bounded steps.
pub const SYNC_BATCH: usize = 2000;

/// An answer stops taking events once its body reaches this size (it holds at least one),
/// and says so with [`MORE_HEADER`]: bulky events make smaller batches, not larger bodies.
pub const SYNC_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Set on an answer that [`SYNC_MAX_BYTES`] cut short: more events wait.
pub const MORE_HEADER: &str = "x-vigil-more";

/// The most a puller reads of one answer: the cut plus one event of the ingest's largest
/// body. A peer sending more is refused rather than buffered.
const SYNC_READ_LIMIT: usize = SYNC_MAX_BYTES + 16 * 1024 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct SyncQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    SYNC_BATCH
}

pub(super) async fn serve(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<SyncQuery>,
) -> Response {
    if let Err(refused) = s.admit_api(&headers).await {
        return refused;
    }
    let store = s.store.clone();
    let limit = q.limit.min(SYNC_BATCH);
    let rows = tokio::task::spawn_blocking(move || store.local_after(q.after, limit)).await;
    let rows = match rows {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return plain(StatusCode::SERVICE_UNAVAILABLE, &format!("store: {e}")),
        Err(_) => return plain(StatusCode::SERVICE_UNAVAILABLE, "store task failed"),
    };
    let mut body = String::new();
    let mut more = false;
    for (seq, json) in rows {
        if body.len() >= SYNC_MAX_BYTES {
            more = true;
            break;
        }
        body.push_str("{\"seq\":");
        body.push_str(&seq.to_string());
        body.push_str(",\"event\":");
        body.push_str(&json);
        body.push_str("}\n");
    }
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    if let Ok(v) = HeaderValue::from_str(&s.store_id) {
        res.headers_mut().insert(STORE_HEADER, v);
    }
    if more {
        res.headers_mut()
            .insert(MORE_HEADER, HeaderValue::from_static("true"));
    }
    res
}

/// One line of a sync answer. The event is parsed apart from the sequence, so that an
/// event this version cannot read still moves the cursor past it.
#[derive(Debug, Deserialize)]
struct SyncLine {
    seq: i64,
    event: Box<serde_json::value::RawValue>,
}

/// What one sync answer gave: the events this version reads, and the last sequence number
/// of the answer (read or not).
struct Fetched {
    store_id: String,
    events: Vec<Event>,
    last: Option<i64>,
    lines: usize,
    /// The peer cut the answer short by size: more events wait.
    more: bool,
}

/// Why one copy from a peer failed (logged, retried at the next interval).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request failed.
    #[error("request: {0}")]
    Request(String),
    /// The peer answered with an error.
    #[error("answered {0}")]
    Status(u16),
    /// The peer did not say which store it is.
    #[error("the answer names no store")]
    NoStoreId,
    /// The local store failed.
    #[error("store: {0}")]
    Store(String),
    /// The answer is larger than a peer of this version sends.
    #[error("the answer is over {SYNC_READ_LIMIT} bytes")]
    TooLarge,
    /// The token file could not be read.
    #[error("token file: {0}")]
    Token(String),
}

/// One peer: where it is and the client that reaches it.
struct Peer {
    base: String,
    client: reqwest::Client,
}

/// Copies from every peer every `interval_secs` until `stop`.
pub(super) async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let config = shared.config.peers.clone();
    let mut clients: HashMap<String, Peer> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(config.interval_secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let targets = match peers(&config).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find the peer replicas");
                continue;
            }
        };
        clients.retain(|k, _| targets.iter().any(|(key, _)| key == k));
        for (key, target) in targets {
            if !clients.contains_key(&key) {
                match client_for(&config, &target) {
                    Ok(peer) => {
                        clients.insert(key.clone(), peer);
                    }
                    Err(e) => {
                        tracing::error!(peer = %key, error = %e, "cannot build a client for a peer");
                        continue;
                    }
                }
            }
            let Some(peer) = clients.get(&key) else {
                continue;
            };
            match copy_from(&shared, peer, &config).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(peer = %key, events = n, "copied from a peer"),
                Err(e) => {
                    shared.metrics.sync_failed();
                    tracing::warn!(peer = %key, error = %e, "cannot copy from a peer");
                }
            }
        }
    }
}

/// Where a peer is: a configured URL, or an address `dns` resolved to.
enum Target {
    Url(String),
    Addr(SocketAddr),
}

async fn peers(config: &PeersConfig) -> Result<Vec<(String, Target)>, std::io::Error> {
    let mut out: Vec<(String, Target)> = config
        .urls
        .iter()
        .map(|u| (u.clone(), Target::Url(u.trim_end_matches('/').to_owned())))
        .collect();
    if let Some(dns) = &config.dns {
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((dns.as_str(), config.port))
            .await?
            .collect();
        addrs.sort();
        addrs.dedup();
        out.extend(addrs.into_iter().map(|a| (a.to_string(), Target::Addr(a))));
    }
    Ok(out)
}

fn client_for(config: &PeersConfig, target: &Target) -> Result<Peer, SyncError> {
    let tls = config
        .tls
        .client_config(DefaultTrust::SystemRoots)
        .map_err(|e| SyncError::Request(format!("tls: {e}")))?;
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured((*tls).clone());
    let base = match target {
        Target::Url(u) => u.clone(),
        Target::Addr(addr) => {
            // The certificate names the Service, not the pod's address: the request goes
            // to the address but is made, and checked, under that name.
            let name = config
                .tls
                .server_name
                .clone()
                .or_else(|| config.dns.clone())
                .unwrap_or_else(|| addr.ip().to_string());
            builder = builder.resolve(&name, *addr);
            format!("https://{name}:{}", addr.port())
        }
    };
    let client = builder
        .build()
        .map_err(|e| SyncError::Request(e.to_string()))?;
    Ok(Peer { base, client })
}

/// Copies what `peer` received since the last copy; returns how many events were new here.
async fn copy_from(
    shared: &Arc<Shared>,
    peer: &Peer,
    config: &PeersConfig,
) -> Result<usize, SyncError> {
    let token = std::fs::read_to_string(&config.token_file)
        .map_err(|e| SyncError::Token(format!("{}: {e}", config.token_file.display())))?;
    let token = token.trim().to_owned();
    // The first answer (limit 0) only says which store the peer is, to find its cursor.
    let store_id = fetch(peer, &token, 0, 0).await?.store_id;
    if store_id == shared.store_id {
        return Ok(0);
    }
    let store = shared.store.clone();
    let id = store_id.clone();
    let mut cursor = tokio::task::spawn_blocking(move || store.peer_cursor(&id))
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?
        .map_err(|e| SyncError::Store(e.to_string()))?;
    let mut copied = 0;
    loop {
        let fetched = fetch(peer, &token, cursor, SYNC_BATCH).await?;
        let full = fetched.lines >= SYNC_BATCH || fetched.more;
        let Some(last) = fetched.last.filter(|&l| l > cursor) else {
            return Ok(copied);
        };
        let events = fetched.events;
        let store = shared.store.clone();
        let id = store_id.clone();
        let (events, report) = tokio::task::spawn_blocking(move || {
            let report = store.insert(&events, Origin::Peer)?;
            store.set_peer_cursor(&id, last)?;
            Ok::<_, vigil_store::StoreError>((events, report))
        })
        .await
        .map_err(|e| SyncError::Store(e.to_string()))?
        .map_err(|e| SyncError::Store(e.to_string()))?;
        shared.metrics.synced(report.inserted.len());
        shared.offer_new(&events, &report.inserted);
        copied += report.inserted.len();
        cursor = last;
        if !full {
            return Ok(copied);
        }
    }
}

async fn fetch(peer: &Peer, token: &str, after: i64, limit: usize) -> Result<Fetched, SyncError> {
    let res = peer
        .client
        .get(format!(
            "{}/api/v1/sync?after={after}&limit={limit}",
            peer.base
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| SyncError::Request(e.to_string()))?;
    if !res.status().is_success() {
        return Err(SyncError::Status(res.status().as_u16()));
    }
    let store_id = res
        .headers()
        .get(STORE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or(SyncError::NoStoreId)?;
    let more = res.headers().contains_key(MORE_HEADER);
    let mut res = res;
    let mut body = Vec::new();
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| SyncError::Request(e.to_string()))?
    {
        if body.len() + chunk.len() > SYNC_READ_LIMIT {
            return Err(SyncError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let mut fetched = Fetched {
        store_id,
        events: Vec::new(),
        last: None,
        lines: 0,
        more,
    };
    for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        fetched.lines += 1;
        let line = match serde_json::from_slice::<SyncLine>(line) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "a peer's answer has a line that is not a sync line; skipped");
                continue;
            }
        };
        fetched.last = fetched.last.max(Some(line.seq));
        match serde_json::from_str::<Event>(line.event.get()) {
            Ok(e) => fetched.events.push(e),
            // A newer peer's event this version cannot read is skipped rather than
            // stopping the copy for good: the cursor moves past it.
            Err(e) => {
                tracing::warn!(seq = line.seq, error = %e, "a peer's event could not be read; skipped")
            }
        }
    }
    Ok(fetched)
}
