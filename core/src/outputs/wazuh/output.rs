//! The `wazuh` output: its configuration and how it is assembled.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::connection::{ConnectionSettings, Identity, WazuhTransport};
use super::enroll::EnrollRequest;
use super::message::{Locations, WazuhEncoder};
use crate::outputs::remote::{DeliverySettings, RemoteOutput, SpoolSettings};
use crate::outputs::tls::TlsSettings;
use crate::outputs::{BuildContext, Output, OutputError};

/// Settings of the wazuh output: Vigil connects to the manager as a Wazuh agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WazuhOutputConfig {
    /// The output's name in logs and metrics, and its spool and key directory. Default:
    /// `wazuh`.
    #[serde(default)]
    pub name: Option<String>,
    /// The manager's host name or IP address (Wazuh's `<server><address>`).
    pub manager: String,
    /// remoted's port (Wazuh's `<server><port>`). Only TCP is supported.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The agent name. Default: the node name. Must be unique among the manager's agents,
    /// made of `[A-Za-z0-9._-]`, at most 128 characters.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// The Wazuh version the agent announces. Managers refuse agents newer than
    /// themselves, so the default, `v4.0.0`, is accepted by every 4.x manager.
    #[serde(default = "default_version")]
    pub agent_version: String,
    /// The `client.keys` file. When it holds a key (say, mounted from a Secret) that key is
    /// used; otherwise the agent enrolls and writes the issued key here, so a restarted pod
    /// keeps its identity. Default: `<state_dir>/wazuh/<name>/client.keys`.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
    /// Enrollment with wazuh-authd.
    #[serde(default)]
    pub enrollment: EnrollmentConfig,
    /// Events per second sent at most (Wazuh's client buffer `events_per_second`, 500 by
    /// default). Events wait in the spool meanwhile. 0 means no limit.
    #[serde(default = "default_max_eps")]
    pub max_eps: u32,
    /// Seconds between keepalives when idle (Wazuh's `notify_time`).
    #[serde(default = "default_keepalive_secs")]
    pub keepalive_secs: u64,
    /// Seconds to wait for the manager's acknowledgement before reconnecting (Wazuh's
    /// `time-reconnect`).
    #[serde(default = "default_reconnect_secs")]
    pub reconnect_secs: u64,
    /// Locations of the non-Docker events (Docker events use `Wazuh-Docker`, as the stock
    /// docker-listener does).
    #[serde(default)]
    pub locations: Locations,
    /// The spool in front of the manager.
    #[serde(default)]
    pub spool: SpoolSettings,
}

/// Enrollment with wazuh-authd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Enroll when there is no key. Disable it when keys are provisioned (a Secret).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// authd's host. Default: `manager`.
    #[serde(default)]
    pub host: Option<String>,
    /// authd's port.
    #[serde(default = "default_enrollment_port")]
    pub port: u16,
    /// A file holding the enrollment password (authd's `authd.pass`), e.g. from a Secret.
    /// Default: no password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Agent groups to join.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The address the key is bound to. Default: none sent, so authd issues a key valid
    /// from any address (`any`), which pods behind NAT need.
    #[serde(default)]
    pub agent_ip: Option<String>,
    /// TLS towards authd. With `ca_file` the manager's certificate is verified; without it,
    /// as with Wazuh's own agent, it is not (a warning is logged).
    #[serde(default)]
    pub tls: TlsSettings,
    /// Timeout of one enrollment attempt, in seconds.
    #[serde(default = "default_enrollment_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        EnrollmentConfig {
            enabled: true,
            host: None,
            port: default_enrollment_port(),
            password_file: None,
            groups: Vec::new(),
            agent_ip: None,
            tls: TlsSettings::default(),
            timeout_secs: default_enrollment_timeout_secs(),
        }
    }
}

fn default_port() -> u16 {
    1514
}
fn default_enrollment_port() -> u16 {
    1515
}
fn default_version() -> String {
    "v4.0.0".into()
}
fn default_max_eps() -> u32 {
    500
}
fn default_keepalive_secs() -> u64 {
    20
}
fn default_reconnect_secs() -> u64 {
    60
}
fn default_enrollment_timeout_secs() -> u64 {
    30
}
fn default_true() -> bool {
    true
}

/// Builds the output: the spool, the encoder and the agent connection.
pub fn build(
    cfg: &WazuhOutputConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<Box<dyn Output>, OutputError> {
    let agent_name = cfg.agent_name.clone().unwrap_or_else(|| ctx.node.clone());
    if agent_name.is_empty()
        || agent_name.len() > super::keys::MAX_NAME_BYTES
        || !agent_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(OutputError::Config(format!(
            "wazuh agent name {agent_name:?} must be 1 to 128 characters of [A-Za-z0-9._-]: set agent_name"
        )));
    }
    let state_dir = ctx.state_dir.join("wazuh").join(name);
    let keys_file = cfg
        .keys_file
        .clone()
        .unwrap_or_else(|| state_dir.join("client.keys"));
    let enrollment = cfg.enrollment.enabled.then(|| {
        (
            EnrollRequest {
                host: cfg
                    .enrollment
                    .host
                    .clone()
                    .unwrap_or_else(|| cfg.manager.clone()),
                port: cfg.enrollment.port,
                name: agent_name.clone(),
                password: None,
                groups: cfg.enrollment.groups.clone(),
                ip: cfg.enrollment.agent_ip.clone(),
                version: cfg.agent_version.clone(),
                tls: cfg.enrollment.tls.clone(),
                timeout: Duration::from_secs(cfg.enrollment.timeout_secs.max(1)),
            },
            cfg.enrollment.password_file.clone(),
        )
    });
    std::fs::create_dir_all(&state_dir)?;
    let transport = WazuhTransport::new(
        ConnectionSettings {
            host: cfg.manager.clone(),
            port: cfg.port,
            version: cfg.agent_version.clone(),
            keepalive: Duration::from_secs(cfg.keepalive_secs.max(1)),
            ack_timeout: Duration::from_secs(cfg.reconnect_secs.max(1)),
            connect_timeout: Duration::from_secs(10),
        },
        Identity {
            keys_file,
            counters_file: state_dir.join("counters"),
            enrollment,
        },
    )
    .map_err(|e| OutputError::Config(e.to_string()))?;
    let dir = cfg.spool.dir.clone().unwrap_or_else(|| ctx.spool_dir(name));
    let output = RemoteOutput::start(
        name.to_owned(),
        dir,
        &cfg.spool,
        Arc::new(WazuhEncoder {
            locations: cfg.locations.clone(),
        }),
        Box::new(transport),
        DeliverySettings {
            max_eps: (cfg.max_eps > 0).then_some(cfg.max_eps),
            ..DeliverySettings::default()
        },
    )?;
    Ok(Box::new(output))
}
