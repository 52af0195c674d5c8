//! Enrollment against wazuh-authd: one TLS request line, one answer line.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::keys::{AgentKey, KeyError};
use crate::outputs::tls::{self, DefaultTrust, TlsSettings};

/// Longest answer read from authd; real answers are under 200 bytes.
const MAX_ANSWER_BYTES: usize = 4096;

/// What enrollment needs. Its `Debug` leaves the password out.
#[derive(Clone)]
pub struct EnrollRequest {
    /// authd's host.
    pub host: String,
    /// authd's port (1515).
    pub port: u16,
    /// The agent name to register.
    pub name: String,
    /// The password, when authd requires one.
    pub password: Option<String>,
    /// Groups to join.
    pub groups: Vec<String>,
    /// The `IP` field (`any` when not given: the key works from any address).
    pub ip: Option<String>,
    /// The version to announce.
    pub version: String,
    /// TLS settings towards authd.
    pub tls: TlsSettings,
    /// Timeout for the whole exchange.
    pub timeout: Duration,
}

impl std::fmt::Debug for EnrollRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollRequest")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("groups", &self.groups)
            .field("ip", &self.ip)
            .field("version", &self.version)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why enrollment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Connecting, TLS or reading failed.
    #[error("cannot reach wazuh-authd at {addr}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS settings are unusable.
    #[error("TLS settings for enrollment: {0}")]
    Tls(#[from] tls::TlsError),
    /// authd answered `ERROR: ...`.
    #[error("wazuh-authd refused the enrollment: {0}")]
    Refused(String),
    /// authd's answer is not a key line.
    #[error("unexpected answer from wazuh-authd: {0:?}")]
    BadAnswer(String),
    /// The key authd sent does not parse.
    #[error("wazuh-authd sent an invalid key: {0}")]
    BadKey(#[from] KeyError),
    /// No answer in time.
    #[error("wazuh-authd did not answer within {0:?}")]
    Timeout(Duration),
    /// A field would break authd's line format.
    #[error("invalid enrollment field: {0}")]
    BadField(String),
}

impl EnrollError {
    /// A hint for the operator, for the refusals people meet.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            EnrollError::Refused(m) if m.contains("Duplicate") => Some(
                "the manager already has an agent with this name: remove it on the manager \
                 (manage_agents -r <id>) or restore this agent's client.keys; authd refuses a \
                 name for an hour after it was registered or last connected",
            ),
            EnrollError::Refused(m) if m.contains("password") => {
                Some("check enrollment.password_file against the manager's authd.pass")
            }
            _ => None,
        }
    }
}

/// The request line, fields in the order authd parses them.
pub fn request_line(req: &EnrollRequest) -> Result<String, EnrollError> {
    let field_ok = |what: &str, v: &str| {
        if v.contains(['\'', '\n', '\r']) {
            Err(EnrollError::BadField(format!(
                "{what} must not contain quotes or line breaks"
            )))
        } else {
            Ok(())
        }
    };
    field_ok("agent name", &req.name)?;
    let mut line = String::new();
    if let Some(pw) = &req.password {
        if pw.contains([' ', '\n', '\r']) {
            return Err(EnrollError::BadField(
                "the password must not contain spaces or line breaks".into(),
            ));
        }
        line.push_str("OSSEC PASS: ");
        line.push_str(pw);
        line.push(' ');
    }
    line.push_str(&format!("OSSEC A:'{}'", req.name));
    field_ok("version", &req.version)?;
    line.push_str(&format!(" V:'{}'", req.version));
    if !req.groups.is_empty() {
        let groups = req.groups.join(",");
        field_ok("groups", &groups)?;
        line.push_str(&format!(" G:'{groups}'"));
    }
    if let Some(ip) = &req.ip {
        field_ok("ip", ip)?;
        line.push_str(&format!(" IP:'{ip}'"));
    }
    line.push('\n');
    Ok(line)
}

/// Parses authd's answer.
pub fn parse_answer(answer: &str) -> Result<AgentKey, EnrollError> {
    let answer = answer.trim_end_matches(['\n', '\r', '\0']);
    if let Some(err) = answer.strip_prefix("ERROR: ") {
        return Err(EnrollError::Refused(err.to_owned()));
    }
    let line = answer
        .strip_prefix("OSSEC K:'")
        .and_then(|r| r.strip_suffix('\''))
        .ok_or_else(|| {
            // A key line, even a broken one, holds the agent's secret: never echoed.
            EnrollError::BadAnswer(if answer.starts_with("OSSEC K:") {
                format!("a key line that does not parse ({} bytes)", answer.len())
            } else {
                answer.chars().take(200).collect()
            })
        })?;
    AgentKey::parse_line(line)?.ok_or_else(|| EnrollError::BadAnswer("an empty key".into()))
}

/// Enrolls and returns the issued key.
pub async fn enroll(req: &EnrollRequest) -> Result<AgentKey, EnrollError> {
    let line = request_line(req)?;
    let config: Arc<rustls::ClientConfig> = req.tls.client_config(DefaultTrust::None)?;
    let addr = format!("{}:{}", req.host, req.port);
    let io = |source| EnrollError::Io {
        addr: addr.clone(),
        source,
    };
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((req.host.as_str(), req.port))
            .await
            .map_err(io)?;
        let mut tls = tls::connect(config, &req.tls, &req.host, tcp)
            .await
            .map_err(io)?;
        tls.write_all(line.as_bytes()).await.map_err(io)?;
        tls.flush().await.map_err(io)?;
        let mut buf = Vec::with_capacity(256);
        // authd closes after its answer; read to EOF (bounded) or to the first newline.
        let mut chunk = [0u8; 512];
        loop {
            let n = match tls.read(&mut chunk).await {
                Ok(n) => n,
                // Some authd versions close without close_notify.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(io(e)),
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.contains(&b'\n') || buf.len() >= MAX_ANSWER_BYTES {
                break;
            }
        }
        buf.truncate(MAX_ANSWER_BYTES);
        parse_answer(&String::from_utf8_lossy(&buf))
    };
    tokio::time::timeout(req.timeout, exchange)
        .await
        .map_err(|_| EnrollError::Timeout(req.timeout))?
}

/// Reads the password file (first line, trailing newline removed).
pub fn read_password(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> EnrollRequest {
        EnrollRequest {
            host: "m".into(),
            port: 1515,
            name: "node-1".into(),
            password: None,
            groups: vec![],
            ip: None,
            version: "v4.0.0".into(),
            tls: TlsSettings::default(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let mut r = request();
        r.password = Some("hunter2".into());
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn the_request_has_authds_field_order() {
        let mut r = request();
        assert_eq!(request_line(&r).unwrap(), "OSSEC A:'node-1' V:'v4.0.0'\n");
        r.password = Some("pw".into());
        r.groups = vec!["a".into(), "b".into()];
        r.ip = Some("10.0.0.1".into());
        assert_eq!(
            request_line(&r).unwrap(),
            "OSSEC PASS: pw OSSEC A:'node-1' V:'v4.0.0' G:'a,b' IP:'10.0.0.1'\n"
        );
    }

    #[test]
    fn fields_that_would_break_the_line_are_refused() {
        for (name, pw, group) in [
            ("a'b", None, None),
            ("a\nb", None, None),
            ("n", Some("with space"), None),
            ("n", None, Some("g'")),
        ] {
            let mut r = request();
            r.name = name.into();
            r.password = pw.map(Into::into);
            r.groups = group.into_iter().map(Into::into).collect();
            assert!(
                matches!(request_line(&r), Err(EnrollError::BadField(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn answers_are_parsed_and_refusals_explained() {
        let key = parse_answer(
            "OSSEC K:'005 node-1 any 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'\n",
        )
        .unwrap();
        assert_eq!((key.id(), key.name(), key.ip()), ("005", "node-1", "any"));
        let e = parse_answer("ERROR: Duplicate agent name: node-1\n").unwrap_err();
        assert!(matches!(&e, EnrollError::Refused(m) if m.contains("Duplicate")));
        assert!(e.hint().unwrap().contains("client.keys"));
        assert!(
            parse_answer("ERROR: Invalid password")
                .unwrap_err()
                .hint()
                .is_some()
        );
        for junk in [
            "",
            "OSSEC K:'",
            "OSSEC K:'1 2 3'",
            "\u{0}\u{0}",
            &"x".repeat(10_000),
        ] {
            assert!(parse_answer(junk).is_err(), "{junk:.20}");
        }
        let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let e = parse_answer(&format!("OSSEC K:'005 node-1 any {secret}' trailing")).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }
}
