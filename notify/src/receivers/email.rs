//! Email through SMTP (lettre), one plain-text message per notification.
//!
//! A connection is opened for each message: the password file is read each time (so a
//! rotated Secret takes effect at once), and an idle pool would only hold server slots
//! between rare notifications.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Failure, Retry};
use crate::config::EmailConfig;
use crate::error::NotifyError;
use crate::message::{Notification, sanitize};
use crate::secret;

#[derive(Debug)]
enum Mode {
    StartTls,
    Implicit,
    Plain,
}

pub(crate) struct Email {
    name: String,
    host: String,
    port: u16,
    mode: Mode,
    tls: Option<TlsParameters>,
    username: Option<String>,
    password_file: Option<PathBuf>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("name", &self.name)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Email {
    pub(crate) fn new(name: &str, cfg: &EmailConfig) -> Result<Email, NotifyError> {
        let setup = |reason: String| NotifyError::Setup {
            receiver: name.to_owned(),
            reason,
        };
        let mode = if cfg.implicit_tls {
            Mode::Implicit
        } else if cfg.starttls {
            Mode::StartTls
        } else {
            Mode::Plain
        };
        let tls = match mode {
            Mode::Plain => None,
            Mode::StartTls | Mode::Implicit => {
                let mut builder = TlsParameters::builder(cfg.host.clone());
                if let Some(ca) = &cfg.ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| setup(format!("ca_file {}: {e}", ca.display())))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| setup(format!("ca_file {}: {e}", ca.display())))?;
                    builder = builder
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                Some(
                    builder
                        .build_rustls()
                        .map_err(|e| setup(format!("tls: {e}")))?,
                )
            }
        };
        let port = cfg.port.unwrap_or(if cfg.implicit_tls { 465 } else { 587 });
        let parse = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| setup(format!("address {s:?}: {e}")))
        };
        Ok(Email {
            name: name.to_owned(),
            host: cfg.host.clone(),
            port,
            mode,
            tls,
            username: cfg.username.clone(),
            password_file: cfg.password_file.clone(),
            from: parse(&cfg.from)?,
            to: cfg.to.iter().map(|t| parse(t)).collect::<Result<_, _>>()?,
            timeout: Duration::from_secs(cfg.timeout_secs),
        })
    }

    pub(crate) fn secret_file(&self) -> Option<&std::path::Path> {
        self.password_file.as_deref()
    }

    pub(crate) async fn deliver(&self, n: &Notification) -> Result<(), Failure> {
        let password = match &self.password_file {
            Some(f) => Some(secret::read(f).await.map_err(Failure::permanent)?),
            None => None,
        };
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(sanitize(&n.email_subject()))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message.body(n.email_body()).map_err(|e| Failure {
            error: self.smtp_error(e.to_string(), None),
            retry: Retry::Never,
        })?;
        let tls = match (&self.mode, &self.tls) {
            (Mode::StartTls, Some(p)) => Tls::Required(p.clone()),
            (Mode::Implicit, Some(p)) => Tls::Wrapper(p.clone()),
            _ => Tls::None,
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let (Some(user), Some(pw)) = (&self.username, &password) {
            transport = transport.credentials(Credentials::new(user.clone(), pw.clone()));
        }
        match transport.build().send(message).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // A refusal (5xx), a TLS failure or a missing STARTTLS will not change by
                // trying again; a 4xx, a timeout or a broken connection may.
                let retry = if e.is_permanent()
                    || e.is_tls()
                    || e.is_client()
                    || vigil_core::outputs::tls::find_rustls(&e).is_some()
                {
                    Retry::Never
                } else {
                    Retry::Backoff
                };
                Err(Failure {
                    error: self.smtp_error(error_chain(&e), password.as_deref()),
                    retry,
                })
            }
        }
    }

    fn smtp_error(&self, reason: String, password: Option<&str>) -> NotifyError {
        let secrets: Vec<&str> = password.into_iter().collect();
        NotifyError::Smtp {
            receiver: self.name.clone(),
            reason: sanitize(&secret::redact(&reason, &secrets)),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
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
