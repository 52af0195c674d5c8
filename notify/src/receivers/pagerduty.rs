//! PagerDuty Events API v2: one `trigger` per notification.

use std::path::PathBuf;

use reqwest::{Url, header};
use serde_json::{Value, json};

use super::http::{client, send};
use super::{Failure, Retry};
use crate::config::PagerDutyConfig;
use crate::error::NotifyError;
use crate::message::{Body, Notification, cut, sanitize};
use crate::route::namespace;
use crate::secret;

/// PagerDuty refuses a longer `payload.summary`.
pub const MAX_SUMMARY_CHARS: usize = 1024;
/// Characters kept of `source`, `component`, `group`, `class`.
const SHORT_FIELD_CHARS: usize = 255;
/// Characters kept of each `custom_details` value.
const DETAIL_CHARS: usize = 1000;

#[derive(Debug)]
pub(crate) struct PagerDuty {
    name: String,
    url: Url,
    routing_key_file: PathBuf,
    client: reqwest::Client,
}

impl PagerDuty {
    pub(crate) fn new(name: &str, cfg: &PagerDutyConfig) -> Result<PagerDuty, NotifyError> {
        Ok(PagerDuty {
            name: name.to_owned(),
            url: Url::parse(&cfg.url).map_err(|e| NotifyError::Setup {
                receiver: name.to_owned(),
                reason: format!("url: {e}"),
            })?,
            routing_key_file: cfg.routing_key_file.clone(),
            client: client(name, cfg.ca_file.as_deref(), cfg.timeout_secs)?,
        })
    }

    pub(crate) fn secret_file(&self) -> &std::path::Path {
        &self.routing_key_file
    }

    pub(crate) async fn deliver(&self, n: &Notification) -> Result<(), Failure> {
        let key = secret::read(&self.routing_key_file)
            .await
            .map_err(Failure::permanent)?;
        let body = serde_json::to_vec(&event(n, &key)).map_err(|e| Failure {
            error: NotifyError::Transport {
                receiver: self.name.clone(),
                reason: format!("encoding the event: {e}"),
            },
            retry: Retry::Never,
        })?;
        let request = self
            .client
            .post(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        send(&self.name, request, &[&key]).await
    }
}

/// PagerDuty's severity for a Wazuh level.
pub(crate) fn severity(level: u8) -> &'static str {
    match level {
        12.. => "critical",
        8..=11 => "error",
        5..=7 => "warning",
        _ => "info",
    }
}

fn short(s: &str) -> String {
    cut(&sanitize(s), SHORT_FIELD_CHARS)
}

fn detail(s: &str) -> Value {
    Value::String(cut(&sanitize(s), DETAIL_CHARS))
}

/// The Events API v2 body.
pub(crate) fn event(n: &Notification, routing_key: &str) -> Value {
    let summary = cut(&n.line(), MAX_SUMMARY_CHARS);
    let mut payload = json!({
        "summary": summary,
        "severity": severity(n.level()),
    });
    match (&n.body, n.detection()) {
        (Body::Detection { .. }, Some((e, d))) => {
            let source = e
                .node
                .as_deref()
                .or(e.cluster.as_deref())
                .unwrap_or("vigil");
            payload["source"] = Value::String(short(source));
            payload["timestamp"] = Value::String(short(&e.time));
            payload["class"] = Value::String(short(&d.rule));
            if let Some(ns) = namespace(e) {
                payload["group"] = Value::String(short(ns));
            }
            let component = e
                .container
                .as_ref()
                .and_then(|c| c.image.as_deref())
                .or(e.object.resource.as_deref());
            if let Some(c) = component {
                payload["component"] = Value::String(short(c));
            }
            let mut details = serde_json::Map::new();
            let mut put = |k: &str, v: Option<&str>| {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    details.insert(k.to_owned(), detail(v));
                }
            };
            put("rule", Some(&d.rule));
            put("rule_id", d.id.as_deref());
            put("title", Some(&d.title));
            put("severity", Some(d.severity.as_str()));
            put("namespace", namespace(e));
            put("object", e.object.name.as_deref());
            put("resource", e.object.resource.as_deref());
            if let Some(c) = &e.container {
                put("pod", c.pod.as_ref().and_then(|p| p.name.as_deref()));
                put("container", c.name.as_deref());
                put("image", c.image.as_deref());
            }
            put(
                "command_line",
                e.process.as_ref().and_then(|p| p.command_line.as_deref()),
            );
            put("actor", e.actor.user.as_deref());
            put("action", Some(&e.action));
            put("node", e.node.as_deref());
            put("cluster", e.cluster.as_deref());
            put("event_id", Some(&e.id));
            put("mitre", Some(&d.mitre.join(", ")));
            put("route", Some(&n.route));
            details.insert("level".into(), json!(d.level));
            payload["custom_details"] = Value::Object(details);
        }
        (Body::HeldBack { held, at }, _) => {
            payload["source"] = Value::String("vigil".into());
            payload["timestamp"] = Value::String(at.clone());
            payload["class"] = Value::String("vigil.held_back".into());
            let by_rule: serde_json::Map<String, Value> = held
                .by_rule
                .iter()
                .map(|(r, c)| (short(r), json!(c)))
                .collect();
            payload["custom_details"] = json!({
                "held_back": held.total,
                "per_secs": held.per.as_secs(),
                "by_rule": by_rule,
                "route": short(&n.route),
            });
        }
        _ => {
            payload["source"] = Value::String("vigil".into());
        }
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.group_key(),
        "client": "Vigil",
        "payload": payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_follows_the_level() {
        assert_eq!(severity(15), "critical");
        assert_eq!(severity(12), "critical");
        assert_eq!(severity(11), "error");
        assert_eq!(severity(8), "error");
        assert_eq!(severity(7), "warning");
        assert_eq!(severity(5), "warning");
        assert_eq!(severity(4), "info");
        assert_eq!(severity(0), "info");
    }
}
