//! The `notifications:` configuration and its validation.
//!
//! Every secret (webhook URLs that carry a token, PagerDuty routing keys, SMTP passwords,
//! authorization headers) is a `*_file` field naming a file, usually a mounted Kubernetes
//! Secret. The file is read each time a notification is sent, so a rotated Secret is used
//! without a restart; a final newline is ignored; its contents never appear in logs,
//! errors or metrics.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::NotifyError;
use crate::receivers::webhook;

/// Default of [`NotifyConfig::dedup_window_secs`].
pub const DEFAULT_DEDUP_WINDOW_SECS: u64 = 600;
/// Default of [`NotifyConfig::queue_size`].
pub const DEFAULT_QUEUE_SIZE: usize = 1000;
/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Notifications about detections: where to send them (receivers) and which detections go
/// where (routes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// Seconds during which a detection with the same de-duplication key is sent only once;
    /// repeats are counted in `vigil_notifications_suppressed_total{reason="duplicate"}`.
    /// The key is route + receiver + rule + namespace + subject, where the subject is the
    /// object's name (`object.name`) or else `pod/container` of the container concerned.
    /// `0` turns this off (an event offered twice is still sent once: events are also
    /// de-duplicated by id). Default: 600.
    #[serde(default = "default_dedup_window_secs")]
    pub dedup_window_secs: u64,
    /// Notifications waiting for each receiver, at most. When a receiver's queue is full
    /// (it is down or slow and retrying), further notifications for it are dropped and
    /// counted in `vigil_notifications_suppressed_total{reason="queue_full"}`; other
    /// receivers are not affected. Default: 1000.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Where notifications can be sent. Each has a `name` routes refer to and exactly one
    /// of `slack`, `pagerduty`, `email`, `webhook`.
    pub receivers: Vec<ReceiverConfig>,
    /// Which detections are sent to which receivers. A detection is sent by every route it
    /// matches; at least one route is required.
    pub routes: Vec<RouteConfig>,
}

fn default_dedup_window_secs() -> u64 {
    DEFAULT_DEDUP_WINDOW_SECS
}

fn default_queue_size() -> usize {
    DEFAULT_QUEUE_SIZE
}

/// One place notifications are sent to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    /// The name routes use, also the `receiver` label of the metrics: letters, digits,
    /// `-`, `_` and `.`, at most 63 characters, unique.
    pub name: String,
    /// A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackConfig>,
    /// PagerDuty, through the Events API v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutyConfig>,
    /// Email through an SMTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailConfig>,
    /// Any HTTP endpoint, with a body made by a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

/// A Slack-compatible incoming webhook. The message is `{"text": ...}`, one line per
/// detection (at most 3000 characters); `<`, `>` and `&` from events are escaped so event
/// data cannot mention `@channel` or forge links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// File holding the webhook URL (it carries the token, so it belongs in a Secret).
    /// Exactly one of `url_file` and `url` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// The webhook URL, for endpoints whose URL is not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// PEM file of the CA certificates that may sign the endpoint's certificate. Default:
    /// the system's trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds one request may take, connecting included. Default: 10.
    #[serde(default = "default_http_timeout_secs")]
    pub timeout_secs: u64,
}

/// PagerDuty Events API v2: each notification triggers an alert whose `dedup_key` is the
/// notification's de-duplication key, so repeats after the window join the same incident.
/// Severity from the detection's level: 12–15 critical, 8–11 error, 5–7 warning, 0–4
/// info.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// File holding the integration's routing key.
    pub routing_key_file: PathBuf,
    /// The Events API endpoint. Default: `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// PEM file of the CA certificates that may sign the endpoint's certificate. Default:
    /// the system's trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds one request may take, connecting included. Default: 10.
    #[serde(default = "default_http_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_owned()
}

fn default_http_timeout_secs() -> u64 {
    10
}

/// Email through an SMTP server, one plain-text message per notification, subject
/// `[Vigil] <title> (<namespace>)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server's host name (also the name its certificate must carry).
    pub host: String,
    /// The SMTP port. Default: 465 with `implicit_tls`, else 587 (submission).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Require STARTTLS: a server that does not offer it, or whose certificate does not
    /// verify, gets nothing, neither password nor message. Turn it off only for a relay
    /// on a trusted network, without `username`. Default: true.
    #[serde(default = "default_true")]
    pub starttls: bool,
    /// Speak TLS from the first byte (SMTPS, usually port 465) instead of STARTTLS.
    /// Default: false.
    #[serde(default)]
    pub implicit_tls: bool,
    /// User name for SMTP AUTH; requires `password_file` and TLS. Default: no AUTH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// File holding the SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The sender, `vigil@example.com` or `Vigil <vigil@example.com>`.
    pub from: String,
    /// The recipients (at least one).
    pub to: Vec<String>,
    /// PEM file of the CA certificates that may sign the server's certificate. Default: the
    /// system's trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds each SMTP command may take. Default: 30.
    #[serde(default = "default_smtp_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_true() -> bool {
    true
}

fn default_smtp_timeout_secs() -> u64 {
    30
}

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum HttpMethod {
    /// POST
    #[default]
    #[serde(rename = "POST")]
    Post,
    /// PUT
    #[serde(rename = "PUT")]
    Put,
    /// PATCH
    #[serde(rename = "PATCH")]
    Patch,
}

/// Any HTTP endpoint. The body is `template` rendered with minijinja (Jinja2 syntax), or
/// without a template a JSON object with the same variables. Template variables: `event`
/// (the whole event, as JSON; `{}` for a held-back summary), `detection` (`rule`, `id`,
/// `title`, `level`, `severity`, `mitre`, `tags`; for a summary `rule` is
/// `vigil.held_back`, `title` the summary and `level` the highest level held back),
/// `namespace`, `node`, `summary` (the one-line text), `count` (detections this
/// notification stands for: 1, or the number held back), `route`, `kind` (`detection` or
/// `held_back`). Use `| tojson` to put strings into JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// File holding the endpoint URL, when it carries a token. Exactly one of `url_file`
    /// and `url` is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<PathBuf>,
    /// The endpoint URL, when it is not a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `POST`, `PUT` or `PATCH`. Default: `POST`.
    #[serde(default)]
    pub method: HttpMethod,
    /// Headers sent as they are (not secrets). `Content-Type`, `Content-Length`, `Host`
    /// and `Transfer-Encoding` are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Headers whose value is read from a file when sending (`Authorization:
    /// /etc/vigil/notify/ticket-auth`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header_files: BTreeMap<String, PathBuf>,
    /// The body's `Content-Type`. When it mentions `json`, a rendered body that is not
    /// valid JSON is a failed delivery instead of a broken request. Default:
    /// `application/json`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The body template (minijinja). Checked when the configuration is loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// PEM file of the CA certificates that may sign the endpoint's certificate. Default:
    /// the system's trusted roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Seconds one request may take, connecting included. Default: 10.
    #[serde(default = "default_http_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

/// Which detections go to which receivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The route's name, in logs and messages; unique.
    pub name: String,
    /// Only detections of at least this level (Wazuh scale 0–15). Default: 0 (all).
    #[serde(default)]
    pub min_level: u8,
    /// Rule names (`container.privileged`) or globs (`rbac.*`; `*` any text, `?` one
    /// character). Empty: any rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Namespaces, or globs of them. The event's namespace is `object.namespace`, else the
    /// container's pod namespace. Empty: any namespace, and cluster-scoped events too;
    /// otherwise events without a namespace do not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Names of the receivers to send to (at least one).
    pub receivers: Vec<String>,
    /// At most `max` notifications per `per_secs` seconds for each receiver of this route.
    /// Beyond it notifications are held back and counted, and one summary is sent at the
    /// end of the window (`14 more detections held back in the last 60 s:
    /// container.privileged ×9, exec.shell ×5`). Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// A route's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Notifications sent per window (at least 1).
    pub max: u32,
    /// The window, in seconds (at least 1). It starts with the first notification sent.
    pub per_secs: u64,
}

/// What a receiver is, once validated.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReceiverKind<'a> {
    Slack(&'a SlackConfig),
    PagerDuty(&'a PagerDutyConfig),
    Email(&'a EmailConfig),
    Webhook(&'a WebhookConfig),
}

impl ReceiverConfig {
    /// The one kind this receiver has, or why it has not exactly one.
    pub(crate) fn kind(&self) -> Result<ReceiverKind<'_>, NotifyError> {
        let mut kinds = Vec::new();
        if let Some(c) = &self.slack {
            kinds.push(ReceiverKind::Slack(c));
        }
        if let Some(c) = &self.pagerduty {
            kinds.push(ReceiverKind::PagerDuty(c));
        }
        if let Some(c) = &self.email {
            kinds.push(ReceiverKind::Email(c));
        }
        if let Some(c) = &self.webhook {
            kinds.push(ReceiverKind::Webhook(c));
        }
        match kinds.as_slice() {
            [one] => Ok(*one),
            [] => Err(NotifyError::config(
                receiver_entry(self),
                "needs one of slack, pagerduty, email, webhook",
            )),
            _ => Err(NotifyError::config(
                receiver_entry(self),
                "has more than one of slack, pagerduty, email, webhook; use one receiver each",
            )),
        }
    }
}

fn receiver_entry(r: &ReceiverConfig) -> String {
    format!("receivers[{}]", r.name)
}

/// Headers the webhook sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

impl NotifyConfig {
    /// Checks the configuration; the error names the offending entry. Files are not read
    /// here: secrets are read when sending, CA files when the notifier starts.
    pub fn validate(&self) -> Result<(), NotifyError> {
        if self.queue_size == 0 {
            return Err(NotifyError::config("queue_size", "must be at least 1"));
        }
        if self.receivers.is_empty() {
            return Err(NotifyError::config("receivers", "is empty"));
        }
        if self.routes.is_empty() {
            return Err(NotifyError::config(
                "routes",
                "is empty: no detection would be sent anywhere",
            ));
        }
        let mut names = HashSet::new();
        for (i, r) in self.receivers.iter().enumerate() {
            if !valid_name(&r.name) {
                return Err(NotifyError::config(
                    format!("receivers[{i}].name"),
                    format!("{:?}: use 1 to 63 letters, digits, '-', '_' or '.'", r.name),
                ));
            }
            if !names.insert(r.name.as_str()) {
                return Err(NotifyError::config(
                    receiver_entry(r),
                    "the name is used by another receiver",
                ));
            }
            let entry = receiver_entry(r);
            match r.kind()? {
                ReceiverKind::Slack(s) => {
                    check_url_source(&format!("{entry}.slack"), &s.url, &s.url_file)?;
                    check_timeout(&format!("{entry}.slack"), s.timeout_secs)?;
                }
                ReceiverKind::PagerDuty(p) => {
                    check_url(&format!("{entry}.pagerduty.url"), &p.url)?;
                    check_path(
                        &format!("{entry}.pagerduty.routing_key_file"),
                        &p.routing_key_file,
                    )?;
                    check_timeout(&format!("{entry}.pagerduty"), p.timeout_secs)?;
                }
                ReceiverKind::Email(e) => check_email(&format!("{entry}.email"), e)?,
                ReceiverKind::Webhook(w) => check_webhook(&r.name, &format!("{entry}.webhook"), w)?,
            }
        }
        let mut route_names = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            if route.name.trim().is_empty() {
                return Err(NotifyError::config(format!("routes[{i}].name"), "is empty"));
            }
            let entry = format!("routes[{}]", route.name);
            if !route_names.insert(route.name.as_str()) {
                return Err(NotifyError::config(
                    entry,
                    "the name is used by another route",
                ));
            }
            if route.min_level > 15 {
                return Err(NotifyError::config(
                    format!("{entry}.min_level"),
                    format!("{} is above 15, the highest level", route.min_level),
                ));
            }
            if route.receivers.is_empty() {
                return Err(NotifyError::config(
                    format!("{entry}.receivers"),
                    "is empty: the route would send nothing",
                ));
            }
            let mut seen = HashSet::new();
            for name in &route.receivers {
                if !names.contains(name.as_str()) {
                    return Err(NotifyError::config(
                        format!("{entry}.receivers"),
                        format!("unknown receiver {name:?}"),
                    ));
                }
                if !seen.insert(name.as_str()) {
                    return Err(NotifyError::config(
                        format!("{entry}.receivers"),
                        format!("receiver {name:?} is listed twice"),
                    ));
                }
            }
            for (field, patterns) in [("rules", &route.rules), ("namespaces", &route.namespaces)] {
                if let Some(p) = patterns.iter().find(|p| p.trim().is_empty()) {
                    return Err(NotifyError::config(
                        format!("{entry}.{field}"),
                        format!(
                            "{p:?}: an empty pattern matches nothing; leave the list empty to match all"
                        ),
                    ));
                }
            }
            if let Some(limit) = route.rate_limit
                && (limit.max == 0 || limit.per_secs == 0)
            {
                return Err(NotifyError::config(
                    format!("{entry}.rate_limit"),
                    "max and per_secs must be at least 1",
                ));
            }
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn check_timeout(entry: &str, secs: u64) -> Result<(), NotifyError> {
    if secs == 0 {
        return Err(NotifyError::config(
            format!("{entry}.timeout_secs"),
            "must be at least 1",
        ));
    }
    Ok(())
}

fn check_path(entry: &str, path: &std::path::Path) -> Result<(), NotifyError> {
    if path.as_os_str().is_empty() {
        return Err(NotifyError::config(entry, "is empty"));
    }
    Ok(())
}

fn check_url_source(
    entry: &str,
    url: &Option<String>,
    url_file: &Option<PathBuf>,
) -> Result<(), NotifyError> {
    match (url, url_file) {
        (Some(url), None) => check_url(&format!("{entry}.url"), url),
        (None, Some(file)) => check_path(&format!("{entry}.url_file"), file),
        (None, None) => Err(NotifyError::config(entry, "needs url_file (or url)")),
        (Some(_), Some(_)) => Err(NotifyError::config(
            entry,
            "has both url and url_file; keep one",
        )),
    }
}

/// Checks a URL written in the configuration. Errors quote it: it is not a secret (those
/// are in `*_file` fields).
pub(crate) fn check_url(entry: &str, url: &str) -> Result<(), NotifyError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| NotifyError::config(entry, format!("{url:?} is not a URL: {e}")))?;
    check_parsed_url(&parsed)
        .map_err(|reason| NotifyError::config(entry, format!("{url:?}: {reason}")))
}

/// What is wrong with a URL, in words that never repeat it.
pub(crate) fn check_parsed_url(url: &reqwest::Url) -> Result<(), &'static str> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the scheme must be http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL; put them in a *_file field");
    }
    Ok(())
}

fn check_email(entry: &str, e: &EmailConfig) -> Result<(), NotifyError> {
    if e.host.trim().is_empty() {
        return Err(NotifyError::config(format!("{entry}.host"), "is empty"));
    }
    if e.port == Some(0) {
        return Err(NotifyError::config(
            format!("{entry}.port"),
            "must not be 0",
        ));
    }
    check_timeout(entry, e.timeout_secs)?;
    e.from.parse::<lettre::message::Mailbox>().map_err(|err| {
        NotifyError::config(format!("{entry}.from"), format!("{:?}: {err}", e.from))
    })?;
    if e.to.is_empty() {
        return Err(NotifyError::config(format!("{entry}.to"), "is empty"));
    }
    for to in &e.to {
        to.parse::<lettre::message::Mailbox>()
            .map_err(|err| NotifyError::config(format!("{entry}.to"), format!("{to:?}: {err}")))?;
    }
    match (&e.username, &e.password_file) {
        (Some(_), Some(file)) => check_path(&format!("{entry}.password_file"), file)?,
        (None, None) => {}
        (Some(_), None) => {
            return Err(NotifyError::config(
                format!("{entry}.password_file"),
                "is required with username",
            ));
        }
        (None, Some(_)) => {
            return Err(NotifyError::config(
                format!("{entry}.username"),
                "is required with password_file",
            ));
        }
    }
    if e.username.is_some() && !e.starttls && !e.implicit_tls {
        return Err(NotifyError::config(
            entry,
            "username with starttls: false and implicit_tls: false would send the password in clear",
        ));
    }
    Ok(())
}

fn check_webhook(receiver: &str, entry: &str, w: &WebhookConfig) -> Result<(), NotifyError> {
    check_url_source(entry, &w.url, &w.url_file)?;
    check_timeout(entry, w.timeout_secs)?;
    reqwest::header::HeaderValue::from_str(&w.content_type).map_err(|_| {
        NotifyError::config(
            format!("{entry}.content_type"),
            "is not a valid header value",
        )
    })?;
    let mut seen = HashSet::new();
    for name in w.headers.keys().chain(w.header_files.keys()) {
        let field = if w.headers.contains_key(name) {
            "headers"
        } else {
            "header_files"
        };
        let lower = name.to_ascii_lowercase();
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(NotifyError::config(
                format!("{entry}.{field}"),
                format!("{name:?} is not a valid header name"),
            ));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(NotifyError::config(
                format!("{entry}.{field}"),
                format!("{name:?} is set by Vigil (use content_type for Content-Type)"),
            ));
        }
        if !seen.insert(lower) {
            return Err(NotifyError::config(
                format!("{entry}.{field}"),
                format!("header {name:?} is given twice"),
            ));
        }
    }
    for (name, value) in &w.headers {
        reqwest::header::HeaderValue::from_str(value).map_err(|_| {
            NotifyError::config(
                format!("{entry}.headers"),
                format!("the value of {name:?} is not a valid header value"),
            )
        })?;
    }
    for (name, file) in &w.header_files {
        check_path(&format!("{entry}.header_files.{name}"), file)?;
    }
    webhook::check_template(receiver, w).map_err(|e| match e {
        NotifyError::Template { reason, .. } => {
            NotifyError::config(format!("{entry}.template"), reason)
        }
        other => other,
    })
}
