//! The crate's one error type.

use std::path::PathBuf;

/// Why a configuration was refused or a notification was not delivered.
///
/// No variant carries a secret: secret files are named by their path, and answers from
/// receivers have every secret value used for the request blanked out before they are put
/// in an error.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The configuration is invalid; `entry` names the offending entry
    /// (`receivers[team-slack].slack.url`, `routes[high].receivers`).
    #[error("notifications: {entry}: {reason}")]
    Config {
        /// Where in the configuration.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A receiver could not be set up at start (an unreadable CA file, a TLS setting rustls
    /// refuses).
    #[error("receiver {receiver}: {reason}")]
    Setup {
        /// The receiver.
        receiver: String,
        /// What is wrong.
        reason: String,
    },
    /// A secret file could not be read when sending.
    #[error("secret file {}: {reason}", path.display())]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong (never its contents).
        reason: String,
    },
    /// A webhook template failed to render, or rendered something unusable.
    #[error("receiver {receiver}: template: {reason}")]
    Template {
        /// The receiver.
        receiver: String,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be sent or got no answer (connection, TLS, timeout).
    #[error("receiver {receiver}: {reason}")]
    Transport {
        /// The receiver.
        receiver: String,
        /// What went wrong; the URL is left out (it may hold a token).
        reason: String,
    },
    /// The receiver answered with a status other than 2xx.
    #[error("receiver {receiver}: answered {status}: {body}")]
    Status {
        /// The receiver.
        receiver: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The SMTP exchange failed.
    #[error("receiver {receiver}: SMTP: {reason}")]
    Smtp {
        /// The receiver.
        receiver: String,
        /// What went wrong.
        reason: String,
    },
    /// [`crate::Notifier::start`] was called outside a tokio runtime.
    #[error("notifications need a tokio runtime to start their delivery tasks")]
    NoRuntime,
}

impl NotifyError {
    pub(crate) fn config(entry: impl Into<String>, reason: impl Into<String>) -> NotifyError {
        NotifyError::Config {
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}
