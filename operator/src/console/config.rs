//! The console's configuration (`vigil-operator run --console-config FILE`).

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use vigil_core::outputs::tls::TlsSettings;
use vigil_notify::NotifyConfig;
use vigil_store::StoreConfig;

/// Settings of the console: the store agents send events to, the web pages, the
/// notifications.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address and port of the console and of the agents' ingest endpoint.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// HTTPS certificate and key. Without them the console speaks plain HTTP: acceptable
    /// only behind `kubectl port-forward` with no agent sending to it, since bearer tokens
    /// then cross the network in clear (a warning says so at start).
    #[serde(default)]
    pub tls: Option<ServerTls>,
    /// The event store.
    pub store: StoreConfig,
    /// Who may look at the console and who may send events.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Limits of the ingest endpoint.
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Other operator replicas whose stores this one copies (see `docs/console.md`).
    #[serde(default)]
    pub peers: PeersConfig,
    /// Notifications of detections (sent by the leader replica only). Default: none.
    #[serde(default)]
    pub notifications: Option<NotifyConfig>,
    /// How often retention is enforced on the store, in seconds.
    #[serde(default = "default_retention_interval_secs")]
    pub retention_interval_secs: u64,
    /// Rows per page of the timeline.
    #[serde(default = "default_page_rows")]
    pub page_rows: usize,
}

/// The console's server certificate.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain; its names must include the Service name agents use.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
}

/// Authentication. Every page is read-only; the one write is agents' ingest.
///
/// A bearer token (an `Authorization` header, or the cookie the login page sets) is
/// accepted when a token file lists it, or when the API server's TokenReview says it
/// belongs to an allowed user or group.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Files of tokens that may view the console, one per line (a mounted Secret); read
    /// again when they change.
    #[serde(default)]
    pub viewer_token_files: Vec<PathBuf>,
    /// Files of tokens that may send events (agents with a static token, tests).
    #[serde(default)]
    pub ingest_token_files: Vec<PathBuf>,
    /// Users and groups allowed through a TokenReview. Default: none (TokenReview unused).
    #[serde(default)]
    pub token_review: TokenReviewConfig,
}

/// Who a TokenReview may admit, per role.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenReviewConfig {
    /// Users (`system:serviceaccount:NS:NAME`, or a user name) who may view the console.
    #[serde(default)]
    pub viewer_users: Vec<String>,
    /// Groups whose members may view the console.
    #[serde(default)]
    pub viewer_groups: Vec<String>,
    /// Users who may send events: the agents' service account, and the operator's own
    /// (its replicas copy each other's stores and its webhook collector may send here).
    #[serde(default)]
    pub ingest_users: Vec<String>,
    /// Seconds a TokenReview's answer is reused for the same token; a revoked token is
    /// refused at most this late. Every agent presents its own token, so this also sets the
    /// review load on the API server: a cluster of N nodes asks about N / `cache_secs`
    /// reviews a second.
    #[serde(default = "default_review_cache_secs")]
    pub cache_secs: u64,
}

impl TokenReviewConfig {
    /// Whether any TokenReview is needed at all.
    pub fn is_used(&self) -> bool {
        !(self.viewer_users.is_empty()
            && self.viewer_groups.is_empty()
            && self.ingest_users.is_empty())
    }
}

/// Limits of `POST /api/v1/ingest`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body, in bytes, after decompression; a larger one is answered 413,
    /// which the vigil output answers by sending halves.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Requests stored at once; others wait, and after `timeout_ms` are answered 503 so
    /// that the agent retries.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent_requests: usize,
    /// How long a request may wait for its turn and for the store, in milliseconds.
    #[serde(default = "default_ingest_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: default_max_body_bytes(),
            max_concurrent_requests: default_max_concurrent(),
            timeout_ms: default_ingest_timeout_ms(),
        }
    }
}

/// The other replicas.
///
/// Each replica stores what agents send it and, every `interval_secs`, copies from each
/// peer the events that peer received itself since the last copy (the peer's own sequence
/// is the cursor, kept in this replica's store). Event ids make the copy idempotent. So two
/// replicas show the same events within about one interval, and a replica that was down
/// catches up when it returns, as far back as the peer still holds.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// A DNS name resolving to every replica (a headless Service), e.g.
    /// `vigil-console-peers.vigil-system.svc`. Each address is asked on `port`; the
    /// replica that answers with this replica's own store id is skipped.
    #[serde(default)]
    pub dns: Option<String>,
    /// The console port of the replicas that `dns` finds.
    #[serde(default = "default_peer_port")]
    pub port: u16,
    /// Peer base URLs, e.g. `https://10.0.0.7:8443`, besides those `dns` finds.
    #[serde(default)]
    pub urls: Vec<String>,
    /// The token presented to peers (default: the pod's service-account token; it needs
    /// the ingest role there).
    #[serde(default = "default_peer_token_file")]
    pub token_file: PathBuf,
    /// TLS towards the peers: `ca_file` is the console certificate's CA, and
    /// `server_name` a name the certificate carries (default: `dns`), checked although
    /// the peers are reached by address.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Seconds between copies.
    #[serde(default = "default_peer_interval_secs")]
    pub interval_secs: u64,
}

impl Default for PeersConfig {
    fn default() -> Self {
        PeersConfig {
            dns: None,
            port: default_peer_port(),
            urls: Vec::new(),
            token_file: default_peer_token_file(),
            tls: TlsSettings::default(),
            interval_secs: default_peer_interval_secs(),
        }
    }
}

impl PeersConfig {
    /// Whether any peer is configured.
    pub fn is_used(&self) -> bool {
        self.dns.is_some() || !self.urls.is_empty()
    }
}

impl ConsoleConfig {
    /// Refuses what cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let auth = &self.auth;
        if auth.viewer_token_files.is_empty()
            && auth.token_review.viewer_users.is_empty()
            && auth.token_review.viewer_groups.is_empty()
        {
            return Err(
                "console.auth: nobody may view the console; set `viewer_token_files` \
                 or `token_review.viewer_users`/`viewer_groups`"
                    .into(),
            );
        }
        let positive = [
            ("retention_interval_secs", self.retention_interval_secs),
            ("page_rows", self.page_rows as u64),
            ("ingest.max_body_bytes", self.ingest.max_body_bytes as u64),
            (
                "ingest.max_concurrent_requests",
                self.ingest.max_concurrent_requests as u64,
            ),
            ("ingest.timeout_ms", self.ingest.timeout_ms),
            ("peers.interval_secs", self.peers.interval_secs),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(format!("console.{field}: must be greater than 0"));
            }
        }
        if self.page_rows > MAX_PAGE_ROWS {
            return Err(format!("console.page_rows: at most {MAX_PAGE_ROWS}"));
        }
        if let Some(n) = &self.notifications {
            n.validate()
                .map_err(|e| format!("console.notifications: {e}"))?;
        }
        Ok(())
    }
}

/// The most rows one timeline page may show: a page is rendered whole, in memory.
pub const MAX_PAGE_ROWS: usize = 1000;

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_retention_interval_secs() -> u64 {
    300
}
fn default_page_rows() -> usize {
    100
}
fn default_review_cache_secs() -> u64 {
    300
}
/// Four times the vigil output's default body, so its bodies always fit.
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_max_concurrent() -> usize {
    8
}
fn default_ingest_timeout_ms() -> u64 {
    10_000
}
fn default_peer_token_file() -> PathBuf {
    PathBuf::from(vigil_core::outputs::vigil::SERVICE_ACCOUNT_TOKEN)
}
fn default_peer_port() -> u16 {
    8443
}
fn default_peer_interval_secs() -> u64 {
    5
}
