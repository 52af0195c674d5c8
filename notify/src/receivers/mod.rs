//! The places notifications go to, one module each.

pub(crate) mod email;
pub(crate) mod http;
pub(crate) mod pagerduty;
pub(crate) mod slack;
pub(crate) mod webhook;

use std::path::Path;
use std::time::Duration;

use crate::config::{ReceiverConfig, ReceiverKind};
use crate::error::NotifyError;
use crate::message::Notification;

/// Whether a failed delivery is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    Never,
    Backoff,
    /// After the wait the receiver asked for (`Retry-After`).
    After(Duration),
}

/// A failed delivery attempt.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: NotifyError,
    pub retry: Retry,
}

#[derive(Debug)]
pub(crate) enum Receiver {
    Slack(slack::Slack),
    PagerDuty(pagerduty::PagerDuty),
    Email(email::Email),
    // Boxed: its template environment makes it several times larger than the others.
    Webhook(Box<webhook::Webhook>),
}

impl Receiver {
    /// From a validated receiver configuration.
    pub(crate) fn new(cfg: &ReceiverConfig) -> Result<Receiver, NotifyError> {
        let name = &cfg.name;
        Ok(match cfg.kind()? {
            ReceiverKind::Slack(c) => Receiver::Slack(slack::Slack::new(name, c)?),
            ReceiverKind::PagerDuty(c) => Receiver::PagerDuty(pagerduty::PagerDuty::new(name, c)?),
            ReceiverKind::Email(c) => Receiver::Email(email::Email::new(name, c)?),
            ReceiverKind::Webhook(c) => {
                Receiver::Webhook(Box::new(webhook::Webhook::new(name, c)?))
            }
        })
    }

    /// The secret files it reads when sending.
    pub(crate) fn secret_files(&self) -> Vec<&Path> {
        match self {
            Receiver::Slack(r) => r.secret_file().into_iter().collect(),
            Receiver::PagerDuty(r) => vec![r.secret_file()],
            Receiver::Email(r) => r.secret_file().into_iter().collect(),
            Receiver::Webhook(r) => r.secret_files().collect(),
        }
    }

    /// One attempt.
    pub(crate) async fn deliver(&self, n: &Notification) -> Result<(), Failure> {
        match self {
            Receiver::Slack(r) => r.deliver(n).await,
            Receiver::PagerDuty(r) => r.deliver(n).await,
            Receiver::Email(r) => r.deliver(n).await,
            Receiver::Webhook(r) => r.deliver(n).await,
        }
    }
}
