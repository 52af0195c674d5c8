//! Generic webhooks: a body rendered from a minijinja template (or a default JSON object).

use std::path::{Path, PathBuf};

use minijinja::{Environment, ErrorKind};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use super::http::{UrlSource, client, send};
use super::{Failure, Retry};
use crate::config::{HttpMethod, WebhookConfig};
use crate::error::NotifyError;
use crate::message::{Body, Notification, sample_event};
use crate::route::HeldBack;
use crate::secret;

/// Template instructions one render may run (minijinja's fuel); a template that loops
/// over a huge event field fails instead of stalling the receiver.
pub const TEMPLATE_FUEL: u64 = 1_000_000;
/// The largest body sent; a template that renders more fails the delivery.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const TEMPLATE_NAME: &str = "template";

pub(crate) struct Webhook {
    name: String,
    url: UrlSource,
    method: reqwest::Method,
    headers: HeaderMap,
    header_files: Vec<(HeaderName, PathBuf)>,
    content_type: HeaderValue,
    json: bool,
    template: Option<Environment<'static>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

fn template_error(receiver: &str, e: &minijinja::Error) -> NotifyError {
    NotifyError::Template {
        receiver: receiver.to_owned(),
        reason: e.to_string(),
    }
}

fn environment(receiver: &str, source: &str) -> Result<Environment<'static>, NotifyError> {
    let mut env = Environment::new();
    env.set_fuel(Some(TEMPLATE_FUEL));
    // Without auto-escaping: the template decides (`| tojson`), as a Jinja user expects.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.add_template_owned(TEMPLATE_NAME, source.to_owned())
        .map_err(|e| template_error(receiver, &e))?;
    Ok(env)
}

fn is_json(content_type: &str) -> bool {
    content_type.to_ascii_lowercase().contains("json")
}

/// Compiles the template and renders it for a sample detection. A syntax error, an
/// unknown filter, test or function, or (for a JSON content type) a body that is not JSON
/// is refused now rather than at the first real detection. Other render errors depend on
/// the event (a field it lacks) and are left to delivery.
pub(crate) fn check_template(receiver: &str, cfg: &WebhookConfig) -> Result<(), NotifyError> {
    let Some(source) = &cfg.template else {
        return Ok(());
    };
    let env = environment(receiver, source)?;
    let event = std::sync::Arc::new(sample_event());
    let sample = Notification {
        route: "sample".into(),
        receiver: receiver.into(),
        body: Body::Detection {
            event,
            detection: 0,
        },
    };
    match render(&env, &sample) {
        Ok(body) => {
            if is_json(&cfg.content_type) && serde_json::from_str::<Value>(&body).is_err() {
                return Err(NotifyError::Template {
                    receiver: receiver.to_owned(),
                    reason: format!(
                        "renders invalid JSON for a sample detection (its title has a double quote: put strings in with `| tojson`): {}",
                        crate::message::cut(&body, 200)
                    ),
                });
            }
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::SyntaxError
                    | ErrorKind::OutOfFuel
            ) =>
        {
            Err(template_error(receiver, &e))
        }
        Err(_) => Ok(()),
    }
}

/// The template variables (see [`WebhookConfig`]).
pub(crate) fn context(n: &Notification) -> Value {
    match (&n.body, n.detection()) {
        (Body::Detection { .. }, Some((e, d))) => json!({
            "kind": "detection",
            "event": serde_json::to_value(e).unwrap_or(Value::Null),
            "detection": serde_json::to_value(d).unwrap_or(Value::Null),
            "namespace": n.namespace(),
            "node": e.node,
            "summary": n.line(),
            "count": n.count(),
            "route": &*n.route,
        }),
        (Body::HeldBack { held, .. }, _) => held_back_context(n, held),
        _ => json!({}),
    }
}

fn held_back_context(n: &Notification, held: &HeldBack) -> Value {
    let line = n.line();
    let severity = match held.max_level {
        14.. => "critical",
        12..=13 => "high",
        8..=11 => "medium",
        5..=7 => "low",
        _ => "informational",
    };
    json!({
        "kind": "held_back",
        "event": {},
        "detection": {
            "rule": "vigil.held_back",
            "title": line,
            "level": held.max_level,
            "severity": severity,
            "mitre": [],
            "tags": [],
        },
        "namespace": null,
        "node": null,
        "summary": line,
        "count": held.total,
        "route": &*n.route,
        "held_back": held.by_rule.iter().map(|(r, c)| json!({"rule": r, "count": c})).collect::<Vec<_>>(),
    })
}

fn render(env: &Environment<'static>, n: &Notification) -> Result<String, minijinja::Error> {
    let template = env.get_template(TEMPLATE_NAME)?;
    template.render(minijinja::Value::from_serialize(context(n)))
}

impl Webhook {
    pub(crate) fn new(name: &str, cfg: &WebhookConfig) -> Result<Webhook, NotifyError> {
        let setup = |reason: String| NotifyError::Setup {
            receiver: name.to_owned(),
            reason,
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let k = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| setup(format!("header name {k:?}")))?;
            let v = HeaderValue::from_str(v).map_err(|_| setup(format!("header {k}")))?;
            headers.insert(k, v);
        }
        let header_files = cfg
            .header_files
            .iter()
            .map(|(k, f)| {
                HeaderName::from_bytes(k.as_bytes())
                    .map(|k| (k, f.clone()))
                    .map_err(|_| setup(format!("header name {k:?}")))
            })
            .collect::<Result<_, _>>()?;
        let method = match cfg.method {
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Patch => reqwest::Method::PATCH,
        };
        Ok(Webhook {
            name: name.to_owned(),
            url: UrlSource::new(name, cfg.url.as_deref(), cfg.url_file.as_deref())?,
            method,
            headers,
            header_files,
            content_type: HeaderValue::from_str(&cfg.content_type)
                .map_err(|_| setup("content_type".into()))?,
            json: is_json(&cfg.content_type),
            template: cfg
                .template
                .as_deref()
                .map(|t| environment(name, t))
                .transpose()?,
            client: client(name, cfg.ca_file.as_deref(), cfg.timeout_secs)?,
        })
    }

    pub(crate) fn secret_files(&self) -> impl Iterator<Item = &Path> {
        self.url
            .secret_file()
            .into_iter()
            .chain(self.header_files.iter().map(|(_, f)| f.as_path()))
    }

    fn body(&self, n: &Notification) -> Result<Vec<u8>, NotifyError> {
        let fail = |reason: String| NotifyError::Template {
            receiver: self.name.clone(),
            reason,
        };
        let body = match &self.template {
            Some(env) => render(env, n).map_err(|e| template_error(&self.name, &e))?,
            None => serde_json::to_string(&context(n)).map_err(|e| fail(e.to_string()))?,
        };
        if body.len() > MAX_BODY_BYTES {
            return Err(fail(format!(
                "rendered {} bytes, more than {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        if self.json
            && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&body)
        {
            return Err(fail(format!(
                "rendered a body that is not JSON ({e}); put strings in with `| tojson`"
            )));
        }
        Ok(body.into_bytes())
    }

    pub(crate) async fn deliver(&self, n: &Notification) -> Result<(), Failure> {
        let body = self.body(n).map_err(Failure::permanent)?;
        let (url, url_secret) = self.url.resolve().await?;
        let mut headers = self.headers.clone();
        let mut secrets = Vec::new();
        for (name, file) in &self.header_files {
            let value = secret::read(file).await.map_err(Failure::permanent)?;
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                Failure::permanent(NotifyError::Secret {
                    path: file.clone(),
                    reason: format!("not a valid value for header {name}"),
                })
            })?;
            v.set_sensitive(true);
            headers.insert(name.clone(), v);
            secrets.push(value);
        }
        secrets.extend(url_secret);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let request = self
            .client
            .request(self.method.clone(), url)
            .headers(headers)
            .header(header::CONTENT_TYPE, self.content_type.clone())
            .body(body);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        send(&self.name, request, &secrets).await
    }
}

impl Failure {
    /// A failure that trying again cannot fix.
    pub(crate) fn permanent(error: NotifyError) -> Failure {
        Failure {
            error,
            retry: Retry::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn cfg(template: &str) -> WebhookConfig {
        WebhookConfig {
            url_file: None,
            url: Some("http://127.0.0.1:1/".into()),
            method: HttpMethod::Post,
            headers: BTreeMap::new(),
            header_files: BTreeMap::new(),
            content_type: "application/json".into(),
            template: Some(template.into()),
            ca_file: None,
            timeout_secs: 10,
        }
    }

    #[test]
    fn template_checks() {
        assert!(check_template("t", &cfg(r#"{"t": {{ detection.title | tojson }}, "l": {{ detection.level }}, "ns": {{ namespace | tojson }}}"#)).is_ok());
        let syntax = check_template("t", &cfg("{{ detection.title "))
            .unwrap_err()
            .to_string();
        assert!(syntax.contains("syntax"), "{syntax}");
        let filter = check_template("t", &cfg("{{ detection.title | nosuch }}"))
            .unwrap_err()
            .to_string();
        assert!(filter.contains("unknown filter"), "{filter}");
        let quoted = check_template("t", &cfg(r#"{"t": "{{ detection.title }}"}"#))
            .unwrap_err()
            .to_string();
        assert!(quoted.contains("tojson"), "{quoted}");
        let mut text = cfg("Alert: {{ summary }}");
        text.content_type = "text/plain".into();
        assert!(check_template("t", &text).is_ok());
        // Depends on the event: left to delivery.
        assert!(check_template("t", &cfg(r#"{"x": {{ event.log.message | tojson }}}"#)).is_ok());
    }

    #[test]
    fn summary_context_keeps_detection_templates_working() {
        let env = environment("t", r#"{"t": {{ detection.title | tojson }}, "l": {{ detection.level }}, "n": {{ count }}}"#).unwrap();
        let n = Notification {
            route: "r".into(),
            receiver: "t".into(),
            body: Body::HeldBack {
                held: HeldBack {
                    route: 0,
                    receiver: 0,
                    per: std::time::Duration::from_secs(60),
                    total: 3,
                    by_rule: vec![("a".into(), 3)],
                    max_level: 13,
                },
                at: "2025-01-01T00:00:00Z".into(),
            },
        };
        let body: Value = serde_json::from_str(&render(&env, &n).unwrap()).unwrap();
        assert_eq!(body["l"], 13);
        assert_eq!(body["n"], 3);
        assert!(
            body["t"]
                .as_str()
                .unwrap()
                .starts_with("3 more detections held back")
        );
    }
}
