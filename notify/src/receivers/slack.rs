//! Slack-compatible incoming webhooks (Slack, Mattermost, Rocket.Chat): `{"text": ...}`.

use reqwest::header;

use super::http::{UrlSource, client, send};
use super::{Failure, Retry};
use crate::config::SlackConfig;
use crate::error::NotifyError;
use crate::message::Notification;

/// Slack shows at most this many characters of a message's text before cutting it.
pub const MAX_TEXT_CHARS: usize = 3000;

#[derive(Debug)]
pub(crate) struct Slack {
    name: String,
    url: UrlSource,
    client: reqwest::Client,
}

impl Slack {
    pub(crate) fn new(name: &str, cfg: &SlackConfig) -> Result<Slack, NotifyError> {
        Ok(Slack {
            name: name.to_owned(),
            url: UrlSource::new(name, cfg.url.as_deref(), cfg.url_file.as_deref())?,
            client: client(name, cfg.ca_file.as_deref(), cfg.timeout_secs)?,
        })
    }

    pub(crate) fn secret_file(&self) -> Option<&std::path::Path> {
        self.url.secret_file()
    }

    pub(crate) async fn deliver(&self, n: &Notification) -> Result<(), Failure> {
        let (url, secret) = self.url.resolve().await?;
        let body =
            serde_json::to_vec(&serde_json::json!({ "text": text(n) })).map_err(|e| Failure {
                error: NotifyError::Transport {
                    receiver: self.name.clone(),
                    reason: format!("encoding the message: {e}"),
                },
                retry: Retry::Never,
            })?;
        let request = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        let secrets: Vec<&str> = secret.iter().map(String::as_str).collect();
        send(&self.name, request, &secrets).await
    }
}

/// The message text: the one-line text with Slack's control characters escaped, so event
/// data cannot mention `@channel` (`<!channel>`) or forge links, cut to
/// [`MAX_TEXT_CHARS`].
pub(crate) fn text(n: &Notification) -> String {
    let escaped = escape(&n.line());
    if escaped.chars().count() <= MAX_TEXT_CHARS {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(MAX_TEXT_CHARS - 1).collect();
    // Do not leave half an entity (`&am`) at the end.
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    cut.push('…');
    cut
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Body, sample_event};
    use std::sync::Arc;

    #[test]
    fn escapes_mentions_and_cuts_long_text() {
        let mut e = sample_event();
        e.detections[0].title = format!("<!channel> & {}", "<".repeat(5000));
        let many = "<".repeat(1000);
        e.node = Some(many.clone());
        e.actor.user = Some(many.clone());
        let c = e.container.as_mut().unwrap();
        c.name = Some(many.clone());
        c.image = Some(many.clone());
        e.process.as_mut().unwrap().command_line = Some(many);
        let n = Notification {
            route: "r".into(),
            receiver: "s".into(),
            body: Body::Detection {
                event: Arc::new(e),
                detection: 0,
            },
        };
        let t = text(&n);
        assert!(t.contains("&lt;!channel&gt; &amp; "), "{t}");
        assert!(!t.contains('<'));
        assert!(t.chars().count() <= MAX_TEXT_CHARS);
        assert!(t.ends_with("&lt;…") || t.ends_with(";…") || t.ends_with('…'));
        let before_ellipsis = t.trim_end_matches('…');
        let tail = &before_ellipsis[before_ellipsis.rfind('&').unwrap()..];
        assert!(tail.contains(';'), "half entity left: {tail}");
    }
}
