//! Vigil notifications: detections routed to Slack-compatible webhooks, PagerDuty, email
//! and generic webhooks, de-duplicated and rate-limited, for teams without a SIEM.
//!
//! The operator starts a [`Notifier`] from the `notifications:` section of its
//! configuration ([`NotifyConfig`]) and [offers](Notifier::offer) it every event it
//! stores. For each detection of an event, every route it matches (level, rule,
//! namespace) yields one notification per receiver of the route, unless:
//!
//! - the event was offered before (same event id), or a notification with the same
//!   de-duplication key (route + receiver + rule + namespace + object or pod/container
//!   name) was sent within `dedup_window_secs`: counted as a duplicate;
//! - the route's rate limit for that receiver is used up: counted, and summed up in one
//!   message at the end of the window;
//! - the receiver's queue is full: dropped and counted.
//!
//! Each receiver has a task that delivers its queue one notification at a time with
//! bounded retries ([`delivery`]). Secrets are read from files when sending and never
//! logged.
//!
//! Modules: [`config`] (the configuration and its validation), `route` (matching,
//! de-duplication, rate limits), `message` (the texts), `receivers` (Slack, PagerDuty,
//! email, webhook), [`delivery`] (queues and retries), `metrics`.

#![forbid(unsafe_code)]

pub mod config;
pub mod delivery;
mod error;
mod message;
mod metrics;
mod notifier;
mod receivers;
mod route;
mod secret;

pub use config::{
    EmailConfig, HttpMethod, NotifyConfig, PagerDutyConfig, RateLimit, ReceiverConfig, RouteConfig,
    SlackConfig, WebhookConfig,
};
pub use error::NotifyError;
pub use notifier::Notifier;
pub use receivers::pagerduty::MAX_SUMMARY_CHARS as PAGERDUTY_MAX_SUMMARY_CHARS;
pub use receivers::slack::MAX_TEXT_CHARS as SLACK_MAX_TEXT_CHARS;
pub use receivers::webhook::{MAX_BODY_BYTES as WEBHOOK_MAX_BODY_BYTES, TEMPLATE_FUEL};
pub use route::{MAX_DEDUP_KEYS, MAX_SUMMARY_RULES, RECENT_EVENT_IDS};
pub use secret::MAX_SECRET_BYTES;
