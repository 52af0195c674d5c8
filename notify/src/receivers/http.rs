//! What the HTTP receivers share: the client, the URL (fixed or from a secret file) and how
//! an answer is judged.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | delivered |
//! | 408, 429, 5xx | retried; a `Retry-After` is waited for (up to [`crate::delivery::RETRY_AFTER_CAP`]) |
//! | 3xx, any other 4xx | failed, not retried: the URL, the secret or the body is wrong |
//! | TLS failure (certificate not trusted, handshake refused) | failed, not retried |
//! | connection failure or timeout | retried |

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{StatusCode, Url};
use vigil_core::outputs::http::{error_body_head, retry_after};
use vigil_core::outputs::tls::{DefaultTrust, TlsSettings, find_rustls};

use super::{Failure, Retry};
use crate::error::NotifyError;
use crate::message::{cut, sanitize};
use crate::secret;

/// The HTTP client of one receiver: TLS through rustls with the ring provider, verified
/// against `ca_file` or the system's roots; no redirects (a redirected POST could carry the
/// body, or a token in the URL, elsewhere).
pub(crate) fn client(
    receiver: &str,
    ca_file: Option<&Path>,
    timeout_secs: u64,
) -> Result<reqwest::Client, NotifyError> {
    let setup = |reason: String| NotifyError::Setup {
        receiver: receiver.to_owned(),
        reason,
    };
    let settings = TlsSettings {
        ca_file: ca_file.map(Path::to_path_buf),
        ..TlsSettings::default()
    };
    let tls = settings
        .client_config(DefaultTrust::SystemRoots)
        .map_err(|e| setup(format!("tls: {e}")))?;
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| setup(format!("http client: {e}")))
}

/// Where a receiver's URL comes from.
#[derive(Debug, Clone)]
pub(crate) enum UrlSource {
    Fixed(Url),
    /// A secret file, read for every notification.
    File(PathBuf),
}

impl UrlSource {
    pub(crate) fn new(
        receiver: &str,
        url: Option<&str>,
        url_file: Option<&Path>,
    ) -> Result<UrlSource, NotifyError> {
        match (url, url_file) {
            (_, Some(file)) => Ok(UrlSource::File(file.to_path_buf())),
            (Some(url), None) => {
                Url::parse(url)
                    .map(UrlSource::Fixed)
                    .map_err(|e| NotifyError::Setup {
                        receiver: receiver.to_owned(),
                        reason: format!("url: {e}"),
                    })
            }
            (None, None) => Err(NotifyError::Setup {
                receiver: receiver.to_owned(),
                reason: "no url".into(),
            }),
        }
    }

    pub(crate) fn secret_file(&self) -> Option<&Path> {
        match self {
            UrlSource::Fixed(_) => None,
            UrlSource::File(f) => Some(f),
        }
    }

    /// The URL and, when it came from a secret file, the parts of it to blank out of
    /// answers: the whole text, the path, the query and the longer path segments (the
    /// token of a Slack URL is one; an endpoint may echo any of these).
    pub(crate) async fn resolve(&self) -> Result<(Url, Vec<String>), Failure> {
        match self {
            UrlSource::Fixed(url) => Ok((url.clone(), Vec::new())),
            UrlSource::File(path) => {
                let text = secret::read(path).await.map_err(Failure::permanent)?;
                // Neither the text nor the parser's view of it goes into the error.
                let bad = |reason: &str| {
                    Failure::permanent(NotifyError::Secret {
                        path: path.clone(),
                        reason: reason.to_owned(),
                    })
                };
                let url = Url::parse(&text).map_err(|_| bad("does not hold a URL"))?;
                crate::config::check_parsed_url(&url).map_err(bad)?;
                let mut secrets = vec![text, url.path().to_owned()];
                secrets.extend(url.query().map(str::to_owned));
                secrets.extend(
                    url.path_segments()
                        .into_iter()
                        .flatten()
                        .filter(|s| s.len() >= 8)
                        .map(str::to_owned),
                );
                secrets.retain(|s| s.len() > 1);
                // Longest first, so a part inside a longer one does not break it up.
                secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
                Ok((url, secrets))
            }
        }
    }
}

/// Sends `request` and judges the answer. `secrets` are blanked out of anything quoted.
pub(crate) async fn send(
    receiver: &str,
    request: reqwest::RequestBuilder,
    secrets: &[&str],
) -> Result<(), Failure> {
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            // A certificate the CA does not vouch for will not change in the next seconds.
            let retry = if find_rustls(&e).is_some() {
                Retry::Never
            } else {
                Retry::Backoff
            };
            return Err(Failure {
                error: NotifyError::Transport {
                    receiver: receiver.to_owned(),
                    reason: secret::redact(&error_chain(e), secrets),
                },
                retry,
            });
        }
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let wait = retry_after(response.headers());
    let head = error_body_head(&mut response).await;
    let body = cut(
        &sanitize(&secret::redact(&String::from_utf8_lossy(&head), secrets)),
        256,
    );
    let retry = if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        wait.map_or(Retry::Backoff, Retry::After)
    } else {
        Retry::Never
    };
    let body = if status.is_redirection() {
        "the endpoint redirects; configure the final URL".to_owned()
    } else {
        body
    };
    Err(Failure {
        error: NotifyError::Status {
            receiver: receiver.to_owned(),
            status: status.as_u16(),
            body,
        },
        retry,
    })
}

/// The error and its causes, without the URL (its path or query may hold a token).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{self, HeaderMap, HeaderValue};

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("later"));
        assert_eq!(retry_after(&h), None);
    }

    #[tokio::test]
    async fn a_url_file_that_holds_no_url_is_not_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("url");
        std::fs::write(&f, "not a url but a secret-ish token\n").unwrap();
        let err = UrlSource::File(f).resolve().await.unwrap_err();
        let text = err.error.to_string();
        assert!(text.contains("does not hold a URL"), "{text}");
        assert!(!text.contains("secret-ish"), "{text}");
        assert!(matches!(err.retry, Retry::Never));
    }
}
