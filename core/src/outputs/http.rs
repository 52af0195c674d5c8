//! The http output: events as NDJSON, POSTed in batches to an HTTP(S) endpoint.
//!
//! Spooling, retries with backoff, the rate limit and ordering come from
//! [`super::remote`]; this module encodes one JSON line per event and turns a delivery into
//! POST requests.
//!
//! # How a delivery becomes requests
//!
//! The messages of one delivery (at most one router batch) are cut, in order, into bodies
//! of at most `max_batch_events` lines and `max_body_bytes` bytes before compression; a
//! single line larger than `max_body_bytes` goes alone. The bodies are POSTed one after the
//! other and the next leaves only after a 2xx for the previous one, so the peer sees the
//! events in spool order and a failure at body `k` means bodies `0..k` are delivered and
//! none after `k` was sent.
//!
//! # Answers
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | delivered |
//! | 413 | the body is cut in halves, sent in order; one event still too large is rejected |
//! | 400, 422 | the body is rejected: its events are dropped and counted in `rejected_events`; the bodies after it are sent |
//! | 401, 403 | retried, with an error log: credentials are usually being rotated, and the secret files are read again before every request |
//! | 429, 5xx | retried with backoff; a `Retry-After` is waited for first (up to [`RETRY_AFTER_CAP`]) |
//! | 3xx, any other 4xx | retried, with an error log: a wrong URL or endpoint is fixed by configuration, and the spool keeps the events until then |
//! | timeout, connection or TLS failure | retried with backoff |
//!
//! # Duplicates
//!
//! A body whose answer was lost (timeout, broken connection) may have been processed, and is
//! sent again: each retry can duplicate at most one body (`max_batch_events` events). After a
//! crash the spool replays up to [`super::remote::SENDER_ROUND_RECORDS`] batches. Every event
//! carries a stable `id` for the receiver to de-duplicate.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::remote::{
    DeliverySettings, EncodeError, Encoded, MessageEncoder, RemoteOutput, SpoolSettings, Transport,
    TransportError, Undelivered,
};
use super::tls::{DefaultTrust, TlsSettings};
use super::{BoxFuture, BuildContext, Output, OutputError, encode_json_line};
use crate::event::Event;

/// The longest `Retry-After` waited for inside one delivery; a longer one is cut to this.
/// The framework's backoff follows the wait, as after any refusal, so an endpoint that keeps
/// refusing is still backed off from. Waiting blocks only this output's sender; at shutdown
/// the wait is abandoned and the batch stays in the spool.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(30);

/// `Content-Type` of every body.
pub const CONTENT_TYPE: &str = "application/x-ndjson";

/// Headers the output sets itself; configuring them would corrupt the request.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
];

/// Settings of the http output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOutputConfig {
    /// The output's name in logs and metrics, and its spool directory. Default: `http`.
    #[serde(default)]
    pub name: Option<String>,
    /// The endpoint POSTed to, `http://` or `https://`. It must not carry credentials
    /// (`user:password@`): use `auth`, which keeps them out of the configuration and the logs.
    pub url: String,
    /// Compression of the bodies. `gzip` sends `Content-Encoding: gzip`; `max_body_bytes`
    /// applies before compression. Default: `none`.
    #[serde(default)]
    pub compression: HttpCompression,
    /// Credentials sent with every request, read from files (Kubernetes Secrets) before each
    /// request, so a rotated secret is used without a restart. Their contents are never
    /// logged. Default: none.
    #[serde(default)]
    pub auth: Option<HttpAuth>,
    /// Extra headers sent with every request (`X-Tenant: prod`). `Content-Type`,
    /// `Content-Encoding`, `Content-Length`, `Transfer-Encoding` and `Host` are set by the
    /// output and refused here, as is `Authorization` when `auth` is set.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS for `https://` URLs. Default: the system's trusted roots, no client certificate.
    /// The certificate is checked against the URL's host; `server_name` must be absent or
    /// equal to it.
    #[serde(default)]
    pub tls: TlsSettings,
    /// How long one request may take, connecting included, before it is abandoned and
    /// retried, in milliseconds. Default: 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Most events (lines) in one body. Default: 500.
    #[serde(default = "default_max_batch_events")]
    pub max_batch_events: usize,
    /// Most bytes in one body before compression; a single event larger than this is sent
    /// alone. Keep it below the endpoint's own limit: a 413 answer costs a split and a
    /// request per half. Default: 4194304 (4 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest number of events sent per second; unlimited when absent. Events wait in the
    /// spool meanwhile.
    #[serde(default)]
    pub max_eps: Option<u32>,
    /// The spool that holds events until the endpoint has them.
    #[serde(default)]
    pub spool: SpoolSettings,
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

/// Compression of the request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpCompression {
    /// Bodies as they are.
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// Credentials of the http output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`, the token read from this file (surrounding
    /// whitespace, such as a final newline, is ignored).
    BearerTokenFile(PathBuf),
    /// `Authorization: Basic`, with the password read from a file.
    Basic(BasicAuth),
}

/// Written as the one-key map it is read from (`{bearer_token_file: PATH}`). The derived
/// form is what JSON writes too, but YAML writes it as a tag (`!bearer_token_file PATH`),
/// which cannot be read back inside the internally tagged [`OutputConfig`]: `check-config`
/// would print a configuration that does not load.
///
/// [`OutputConfig`]: super::OutputConfig
impl Serialize for HttpAuth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            HttpAuth::BearerTokenFile(path) => map.serialize_entry("bearer_token_file", path)?,
            HttpAuth::Basic(basic) => map.serialize_entry("basic", basic)?,
        }
        map.end()
    }
}

/// HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    pub username: String,
    /// File holding the password (surrounding whitespace, such as a final newline, is
    /// ignored).
    pub password_file: PathBuf,
}

/// Builds the output.
pub fn build(
    cfg: &HttpOutputConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<Box<dyn Output>, OutputError> {
    let transport = HttpTransport::new(cfg)?;
    tracing::info!(output = %name, endpoint = %transport.describe(), "http output configured");
    let dir = cfg.spool.dir.clone().unwrap_or_else(|| ctx.spool_dir(name));
    let settings = DeliverySettings {
        max_eps: cfg.max_eps,
        ..DeliverySettings::default()
    };
    let output = RemoteOutput::start(
        name.to_owned(),
        dir,
        &cfg.spool,
        Arc::new(JsonLineEncoder),
        Box::new(transport),
        settings,
    )?;
    Ok(Box::new(output))
}

/// One JSON line per event.
struct JsonLineEncoder;

impl MessageEncoder for JsonLineEncoder {
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<Encoded, EncodeError> {
        encode_json_line(event, out)?;
        Ok(Encoded::Whole)
    }
}

/// Cuts `sizes` (message lengths, in order) into consecutive ranges of at most `max_events`
/// messages and `max_bytes` bytes; a message larger than `max_bytes` gets a range of its
/// own. Each message is counted with the newline that ends its line, added when missing.
pub(crate) fn plan_bodies(
    sizes: impl IntoIterator<Item = usize>,
    max_events: usize,
    max_bytes: usize,
) -> Vec<Range<usize>> {
    let max_events = max_events.max(1);
    let mut bodies = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    let mut end = 0;
    for size in sizes {
        let fits = end > start && end - start < max_events && bytes + size <= max_bytes;
        if end > start && !fits {
            bodies.push(start..end);
            start = end;
            bytes = 0;
        }
        bytes += size;
        end += 1;
    }
    if end > start {
        bodies.push(start..end);
    }
    bodies
}

/// The length a message takes in a body: itself and its newline.
fn line_len(message: &[u8]) -> usize {
    message.len() + usize::from(!message.ends_with(b"\n"))
}

/// How the endpoint's answer to one body is handled.
enum Answer {
    Delivered,
    /// Too large for the endpoint: split, or reject a single event.
    TooLarge,
    /// The events themselves are refused; sending them again would fail again.
    Rejected(String),
    /// Try again later, after `wait` when the endpoint said so.
    Retry {
        reason: String,
        wait: Option<Duration>,
    },
}

struct HttpTransport {
    client: reqwest::Client,
    url: Url,
    /// The URL without its query, which may hold an API key, for logs.
    shown: String,
    compression: HttpCompression,
    auth: Option<HttpAuth>,
    headers: HeaderMap,
    max_batch_events: usize,
    max_body_bytes: usize,
    connected: bool,
}

fn config_err(msg: impl Into<String>) -> OutputError {
    OutputError::Config(msg.into())
}

impl HttpTransport {
    fn new(cfg: &HttpOutputConfig) -> Result<HttpTransport, OutputError> {
        let url = Url::parse(&cfg.url).map_err(|e| config_err(format!("url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(config_err("url: the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config_err(
                "url: credentials in the URL would be logged; use `auth` instead",
            ));
        }
        let host = url
            .host_str()
            .ok_or_else(|| config_err("url: no host"))?
            .to_owned();
        if let Some(name) = &cfg.tls.server_name
            && name.trim_start_matches('[').trim_end_matches(']')
                != host.trim_start_matches('[').trim_end_matches(']')
        {
            return Err(config_err(
                "tls.server_name: the http output verifies the URL's host; put the certificate's name in `url`",
            ));
        }
        if cfg.max_body_bytes == 0 || cfg.max_batch_events == 0 {
            return Err(config_err(
                "max_body_bytes and max_batch_events must be at least 1",
            ));
        }
        if cfg.timeout_ms == 0 {
            return Err(config_err("timeout_ms must be at least 1"));
        }
        let headers = custom_headers(&cfg.headers, cfg.auth.is_some())?;
        if let Some(auth) = &cfg.auth {
            // A missing or unreadable secret is a configuration error at start; later, a
            // failed read is retried (the Secret may be being rewritten).
            authorization(auth).map_err(|e| config_err(e.to_string()))?;
        }

        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.timeout_ms))
            // A redirected POST may turn into a GET or carry the credentials elsewhere; a
            // redirect is reported instead (see the answers table).
            .redirect(reqwest::redirect::Policy::none());
        if url.scheme() == "https" {
            if cfg.tls.insecure_skip_verify {
                tracing::warn!(url = %shown_url(&url),
                    "tls.insecure_skip_verify: the endpoint's certificate is not checked");
            }
            let tls = cfg
                .tls
                .client_config(DefaultTrust::SystemRoots)
                .map_err(|e| config_err(format!("tls: {e}")))?;
            let mut tls = (*tls).clone();
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            builder = builder.tls_backend_preconfigured(tls);
        } else {
            if cfg.tls != TlsSettings::default() {
                tracing::warn!(url = %shown_url(&url), "tls settings are ignored for an http:// URL");
            }
            // The client wants a TLS configuration even when it never uses one (redirects
            // are off, so it cannot reach an https:// URL): one that trusts nothing.
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| config_err(format!("tls: {e}")))?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder = builder.tls_backend_preconfigured(tls);
        }
        let client = builder
            .build()
            .map_err(|e| config_err(format!("http client: {e}")))?;
        Ok(HttpTransport {
            client,
            shown: shown_url(&url),
            url,
            compression: cfg.compression,
            auth: cfg.auth.clone(),
            headers,
            max_batch_events: cfg.max_batch_events,
            max_body_bytes: cfg.max_body_bytes,
            connected: false,
        })
    }

    /// POSTs the messages as one body and classifies the answer.
    async fn post(&mut self, messages: &[&[u8]]) -> Result<Answer, TransportError> {
        let mut body = Vec::with_capacity(messages.iter().map(|m| line_len(m)).sum());
        for m in messages {
            body.extend_from_slice(m);
            if !m.ends_with(b"\n") {
                body.push(b'\n');
            }
        }
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(header::CONTENT_TYPE, CONTENT_TYPE);
        if self.compression == HttpCompression::Gzip {
            body = gzip(&body)?;
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        if let Some(auth) = &self.auth {
            let value = authorization(auth).map_err(|e| TransportError::Refused(e.to_string()))?;
            request = request.header(header::AUTHORIZATION, value);
        }
        let mut response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                self.connected = false;
                return Err(classify_error(&e, &self.shown));
            }
        };
        self.connected = true;
        let status = response.status();
        let wait = retry_after(response.headers());
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The answer's text helps find out why events were refused; it is cut short so a
        // verbose error page does not flood the log. Only its first bytes are read: a huge
        // or endless error body costs neither memory nor the request's whole timeout (the
        // connection is dropped with the rest unread).
        let text = if status.is_success() {
            String::new()
        } else {
            let head = error_body_head(&mut response).await;
            let mut t = String::from_utf8_lossy(&head).into_owned();
            truncate(&mut t, 256);
            t
        };
        Ok(match status {
            s if s.is_success() => Answer::Delivered,
            StatusCode::PAYLOAD_TOO_LARGE => Answer::TooLarge,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Answer::Rejected(format!("{status}: {text}"))
            }
            StatusCode::TOO_MANY_REQUESTS => Answer::Retry {
                reason: format!("{status}: {text}"),
                wait,
            },
            s if s.is_server_error() => Answer::Retry {
                reason: format!("{status}: {text}"),
                wait,
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                tracing::error!(url = %self.shown, %status,
                    "the endpoint refused the credentials; retrying (the secret files are read again)");
                Answer::Retry {
                    reason: format!("{status}: {text}"),
                    wait,
                }
            }
            s if s.is_redirection() => {
                tracing::error!(url = %self.shown, %status, location = location.as_deref().unwrap_or("-"),
                    "the endpoint redirects; set `url` to the final address. Retrying");
                Answer::Retry {
                    reason: format!("{status}"),
                    wait: None,
                }
            }
            _ => {
                tracing::error!(url = %self.shown, %status, %text,
                    "unexpected answer; check `url`. Retrying");
                Answer::Retry {
                    reason: format!("{status}: {text}"),
                    wait,
                }
            }
        })
    }

    async fn deliver_all(&mut self, messages: &[&[u8]]) -> Result<(), Undelivered> {
        let planned = plan_bodies(
            messages.iter().map(|m| line_len(m)),
            self.max_batch_events,
            self.max_body_bytes,
        );
        // Pending bodies, next on top. A 413 replaces a body by its halves, first half on
        // top, so the order of the messages is kept.
        let mut pending: Vec<Range<usize>> = planned.into_iter().rev().collect();
        while let Some(body) = pending.pop() {
            let answer = self
                .post(&messages[body.clone()])
                .await
                .map_err(|error| Undelivered {
                    delivered: body.start,
                    error,
                })?;
            match answer {
                Answer::Delivered => {}
                Answer::TooLarge if body.len() > 1 => {
                    let mid = body.start + body.len() / 2;
                    tracing::debug!(url = %self.shown, events = body.len(),
                        "413: sending the body in halves");
                    pending.push(mid..body.end);
                    pending.push(body.start..mid);
                }
                Answer::TooLarge => {
                    return Err(Undelivered {
                        delivered: body.start,
                        error: TransportError::Rejected {
                            reason: format!(
                                "413: an event of {} bytes is too large for the endpoint",
                                messages[body.start].len()
                            ),
                            count: 1,
                        },
                    });
                }
                Answer::Rejected(reason) => {
                    // The whole body is refused; the bodies after it still go.
                    return Err(Undelivered {
                        delivered: body.start,
                        error: TransportError::Rejected {
                            reason,
                            count: body.len(),
                        },
                    });
                }
                Answer::Retry { reason, wait } => {
                    if let Some(wait) = wait {
                        let wait = wait.min(RETRY_AFTER_CAP);
                        tracing::info!(url = %self.shown, ?wait, "waiting as the endpoint asked (Retry-After)");
                        tokio::time::sleep(wait).await;
                    }
                    return Err(Undelivered {
                        delivered: body.start,
                        error: TransportError::Refused(reason),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Transport for HttpTransport {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>> {
        Box::pin(self.deliver_all(messages))
    }

    fn connected(&self) -> bool {
        self.connected
    }
}

/// The URL without query or fragment.
fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// Bytes of an error answer's body read at most (of which 256 are kept for the log).
pub const ERROR_BODY_READ: usize = 1024;

/// The first [`ERROR_BODY_READ`] bytes of an answer's body. The rest is left unread: a huge
/// or endless error body costs neither memory nor the request's whole timeout (the
/// connection is dropped with it). A body that breaks off gives what came before.
pub async fn error_body_head(response: &mut reqwest::Response) -> Vec<u8> {
    let mut head = Vec::new();
    while head.len() < ERROR_BODY_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = ERROR_BODY_READ - head.len();
                head.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    head
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

fn gzip(body: &[u8]) -> Result<Vec<u8>, TransportError> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    Ok(enc.finish()?)
}

fn custom_headers(
    headers: &BTreeMap<String, String>,
    has_auth: bool,
) -> Result<HeaderMap, OutputError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| config_err(format!("headers: invalid header name {name:?}")))?;
        if RESERVED_HEADERS.contains(&parsed.as_str()) {
            return Err(config_err(format!("headers: {name} is set by the output")));
        }
        if parsed == header::AUTHORIZATION && has_auth {
            return Err(config_err(
                "headers: Authorization and `auth` are both set; keep one",
            ));
        }
        // The value is not quoted in the error: it may be a credential.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| config_err(format!("headers: the value of {name} is not valid")))?;
        if parsed == header::AUTHORIZATION {
            value.set_sensitive(true);
        }
        map.append(parsed, value);
    }
    Ok(map)
}

/// Why a secret could not be used. Its text names the file, never the secret.
#[derive(Debug, thiserror::Error)]
enum SecretError {
    #[error("auth: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("auth: {0} is empty")]
    Empty(PathBuf),
    #[error("auth: {0} holds characters a header cannot carry")]
    Invalid(PathBuf),
}

fn read_secret(path: &Path) -> Result<String, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(SecretError::Empty(path.to_path_buf()));
    }
    Ok(secret.to_owned())
}

/// The `Authorization` header, from the secret files as they are now. The files are small
/// and read once per request, which is what lets a rotated Secret take effect at the next
/// request without watching the files.
fn authorization(auth: &HttpAuth) -> Result<HeaderValue, SecretError> {
    let (text, path) = match auth {
        HttpAuth::BearerTokenFile(path) => (format!("Bearer {}", read_secret(path)?), path),
        HttpAuth::Basic(basic) => {
            let password = read_secret(&basic.password_file)?;
            let pair = format!("{}:{password}", basic.username);
            (
                format!("Basic {}", base64(pair.as_bytes())),
                &basic.password_file,
            )
        }
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| SecretError::Invalid(path.clone()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Standard base64 with padding (RFC 4648), for basic authentication.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The wait a `Retry-After` header asks for: delay-seconds or an HTTP date (a date past is
/// no wait).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let left = at - time::OffsetDateTime::now_utc();
    Some(left.try_into().unwrap_or(Duration::ZERO))
}

fn classify_error(e: &reqwest::Error, url: &str) -> TransportError {
    // The URL is left out of the texts: its query may hold an API key.
    if let Some(tls) = std::error::Error::source(e).and_then(super::tls::find_rustls) {
        return TransportError::Tls(tls.to_string());
    }
    let text = error_chain(e);
    if e.is_timeout() {
        TransportError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, text))
    } else if e.is_connect() {
        TransportError::Connect {
            peer: url.to_owned(),
            reason: text,
        }
    } else {
        TransportError::Io(std::io::Error::other(text))
    }
}

/// The error and its causes, `a: b: c`, without the request's URL.
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = String::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut first = true;
    while let Some(s) = source {
        if !first {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        first = false;
        source = s.source();
    }
    if text.is_empty() {
        text = if e.is_timeout() {
            "timed out".into()
        } else {
            "request failed".into()
        };
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    /// What `vigil-agent check-config` prints (YAML) loads back, and JSON keeps its form.
    #[test]
    fn credentials_written_as_yaml_read_back() {
        for auth in [
            HttpAuth::BearerTokenFile("/run/token".into()),
            HttpAuth::Basic(BasicAuth {
                username: "vigil".into(),
                password_file: "/run/password".into(),
            }),
        ] {
            let config: crate::outputs::OutputConfig = yaml_serde::from_str(&format!(
                "type: http\nurl: https://logs.example.com/\nauth: {}",
                serde_json::to_string(&auth).unwrap()
            ))
            .unwrap();
            let yaml = yaml_serde::to_string(&config).unwrap();
            let again: crate::outputs::OutputConfig = yaml_serde::from_str(&yaml)
                .unwrap_or_else(|e| panic!("{e} in what was written:\n{yaml}"));
            assert_eq!(again, config);
            let json = serde_json::to_value(&auth).unwrap();
            assert_eq!(serde_json::from_value::<HttpAuth>(json).unwrap(), auth);
        }
        assert_eq!(
            serde_json::to_string(&HttpAuth::BearerTokenFile("/t".into())).unwrap(),
            r#"{"bearer_token_file":"/t"}"#
        );
    }

    proptest! {
        #[test]
        fn bodies_cover_every_message_once_in_order_within_bounds(
            sizes in proptest::collection::vec(0usize..300, 0..200),
            max_events in 1usize..20,
            max_bytes in 1usize..1000,
        ) {
            let bodies = plan_bodies(sizes.iter().copied(), max_events, max_bytes);
            let mut next = 0;
            for body in &bodies {
                prop_assert_eq!(body.start, next, "bodies are consecutive");
                prop_assert!(!body.is_empty());
                prop_assert!(body.len() <= max_events);
                let bytes: usize = sizes[body.clone()].iter().sum();
                prop_assert!(bytes <= max_bytes || body.len() == 1,
                    "{} bytes in {} messages over {}", bytes, body.len(), max_bytes);
                next = body.end;
            }
            prop_assert_eq!(next, sizes.len(), "every message is in a body");
        }

        #[test]
        fn bodies_are_as_full_as_the_bounds_allow(
            sizes in proptest::collection::vec(0usize..300, 1..200),
            max_events in 1usize..20,
            max_bytes in 1usize..1000,
        ) {
            let bodies = plan_bodies(sizes.iter().copied(), max_events, max_bytes);
            for pair in bodies.windows(2) {
                let (body, next) = (&pair[0], &pair[1]);
                let with_next: usize = sizes[body.start..=next.start].iter().sum();
                prop_assert!(body.len() == max_events || with_next > max_bytes,
                    "the next message would have fitted");
            }
        }
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        let later = time::OffsetDateTime::now_utc() + time::Duration::seconds(120);
        let date = later
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap()
            .replace("+0000", "GMT");
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );

        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));

        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn headers_the_output_sets_cannot_be_configured() {
        let one = |name: &str| BTreeMap::from([(name.to_owned(), "x".to_owned())]);
        assert!(custom_headers(&one("X-Tenant"), true).is_ok());
        assert!(custom_headers(&one("Content-Type"), false).is_err());
        assert!(custom_headers(&one("content-encoding"), false).is_err());
        assert!(custom_headers(&one("Authorization"), false).is_ok());
        assert!(custom_headers(&one("Authorization"), true).is_err());
        assert!(custom_headers(&one("bad name"), false).is_err());
    }

    #[test]
    fn secret_errors_name_the_file_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr\u{7f}t-value\n").unwrap();
        let err = authorization(&HttpAuth::BearerTokenFile(path.clone())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(!text.contains("s3cr"), "{text}");

        std::fs::write(&path, "tok-1\n").unwrap();
        let value = authorization(&HttpAuth::BearerTokenFile(path)).unwrap();
        assert_eq!(value.to_str().unwrap(), "Bearer tok-1");
        assert!(value.is_sensitive());
    }

    #[test]
    fn the_configuration_is_checked_at_build() {
        let cfg = |url: &str| HttpOutputConfig {
            name: None,
            url: url.into(),
            compression: HttpCompression::None,
            auth: None,
            headers: BTreeMap::new(),
            tls: TlsSettings::default(),
            timeout_ms: default_timeout_ms(),
            max_batch_events: default_max_batch_events(),
            max_body_bytes: default_max_body_bytes(),
            max_eps: None,
            spool: SpoolSettings::default(),
        };
        assert!(HttpTransport::new(&cfg("http://127.0.0.1:9/ingest")).is_ok());
        assert!(HttpTransport::new(&cfg("ftp://example.com/")).is_err());
        assert!(HttpTransport::new(&cfg("https://user:pw@example.com/")).is_err());
        let mut missing_secret = cfg("http://127.0.0.1:9/");
        missing_secret.auth = Some(HttpAuth::BearerTokenFile("/nonexistent/token".into()));
        assert!(HttpTransport::new(&missing_secret).is_err());
        let mut renamed = cfg("https://10.0.0.1/");
        renamed.tls.server_name = Some("logs.example".into());
        assert!(HttpTransport::new(&renamed).is_err());
    }

    #[test]
    fn the_shown_url_leaves_out_the_query() {
        let url = Url::parse("https://logs.example/ingest?api_key=abc#x").unwrap();
        assert_eq!(shown_url(&url), "https://logs.example/ingest");
    }
}
