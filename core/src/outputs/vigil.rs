//! The vigil output: events to the operator's console store, over HTTPS.
//!
//! It is the [`http`](super::http) output with the settings the operator's ingest endpoint
//! expects, so it has the same spool, retries and guarantees: events wait on disk while the
//! operator is away, are sent again after a lost answer (the store ignores an id it already
//! holds), and a crash replays what was not acknowledged. Agents authenticate with their
//! service-account token, which the operator checks with a TokenReview; the token file is
//! read before every request, so the kubelet's rotation of it is followed.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::http::{HttpAuth, HttpCompression, HttpOutputConfig};
use super::remote::SpoolSettings;
use super::tls::TlsSettings;
use super::{BuildContext, Output, OutputError};

/// The operator's ingest path, below `url`.
pub const INGEST_PATH: &str = "/api/v1/ingest";

/// Where a pod's service-account token is mounted.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Settings of the vigil output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VigilOutputConfig {
    /// The output's name in logs and metrics, and its spool directory. Default: `vigil`.
    #[serde(default)]
    pub name: Option<String>,
    /// The operator's console service, `https://HOST:PORT` (the ingest path is added).
    /// Default: `https://vigil-console.vigil-system.svc:8443`.
    #[serde(default = "default_url")]
    pub url: String,
    /// File holding the bearer token sent with every request: by default the pod's
    /// service-account token, which the operator checks with a TokenReview. A static token
    /// (a mounted Secret listed in the operator's `ingest.token_files`) works too.
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// TLS: `ca_file` is the CA that signed the operator's console certificate (the chart
    /// mounts it). Default: the system's trusted roots.
    #[serde(default)]
    pub tls: TlsSettings,
    /// How long one request may take before it is abandoned and retried, in milliseconds.
    /// Default: 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most events in one request. Default: 500.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Most bytes in one request before compression. Keep it at or below the operator's
    /// `ingest.max_body_bytes`. Default: 4194304 (4 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// The spool that holds events until the operator has them.
    #[serde(default)]
    pub spool: SpoolSettings,
}

fn default_url() -> String {
    "https://vigil-console.vigil-system.svc:8443".into()
}

fn default_token_file() -> PathBuf {
    PathBuf::from(SERVICE_ACCOUNT_TOKEN)
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_max_batch_events() -> usize {
    500
}

fn default_max_body_bytes() -> usize {
    4 * 1024 * 1024
}

impl VigilOutputConfig {
    /// The http output this one is.
    pub fn to_http(&self) -> HttpOutputConfig {
        HttpOutputConfig {
            name: self.name.clone(),
            url: format!("{}{INGEST_PATH}", self.url.trim_end_matches('/')),
            compression: HttpCompression::Gzip,
            auth: Some(HttpAuth::BearerTokenFile(self.token_file.clone())),
            headers: Default::default(),
            tls: self.tls.clone(),
            timeout_ms: self.timeout_ms,
            max_batch_events: self.max_batch_events,
            max_body_bytes: self.max_body_bytes,
            max_eps: None,
            spool: self.spool.clone(),
        }
    }
}

/// Builds the output: an http output to the ingest endpoint.
pub fn build(
    cfg: &VigilOutputConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<Box<dyn Output>, OutputError> {
    super::http::build(&cfg.to_http(), name, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::OutputConfig;

    #[test]
    fn the_defaults_reach_the_console_service_with_the_pod_token_gzipped() {
        let cfg: OutputConfig = yaml_serde::from_str("type: vigil").unwrap();
        let OutputConfig::Vigil(v) = &cfg else {
            panic!("{cfg:?}")
        };
        assert_eq!(cfg.name(), "vigil");
        let http = v.to_http();
        assert_eq!(
            http.url,
            "https://vigil-console.vigil-system.svc:8443/api/v1/ingest"
        );
        assert_eq!(http.compression, HttpCompression::Gzip);
        assert_eq!(
            http.auth,
            Some(HttpAuth::BearerTokenFile(SERVICE_ACCOUNT_TOKEN.into()))
        );
        let cfg: OutputConfig = yaml_serde::from_str(
            "{type: vigil, name: console, url: 'https://c.example:9443/', tls: {ca_file: /ca.pem}}",
        )
        .unwrap();
        let OutputConfig::Vigil(v) = &cfg else {
            panic!("{cfg:?}")
        };
        assert_eq!(cfg.name(), "console");
        assert_eq!(v.to_http().url, "https://c.example:9443/api/v1/ingest");
        assert!(
            yaml_serde::from_str::<OutputConfig>("{type: vigil, urll: x}").is_err(),
            "unknown fields are refused"
        );
    }
}
