//! RFC 5424 syslog over TCP (RFC 6587 octet counting, or LF-terminated), TLS (RFC 5425) or
//! UDP (RFC 5426), with the event's JSON as the message.
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - {"schema":"vigil.event/v1",...}
//! ```
//!
//! - **PRI** = facility × 8 + severity. The severity follows the highest detection level
//!   (Wazuh's 0–15 scale): none or 0–4 → 6 informational, 5–7 → 5 notice, 8–11 → 4 warning,
//!   12 → 3 error, 13–14 → 2 critical, 15 → 1 alert. Sigma's default levels land on the
//!   syslog names they resemble (low 5 → notice, medium 8 → warning, high 12 → error,
//!   critical 14 → critical). Emergency (0) is never used: it means the sending system is
//!   unusable, which no detection says.
//! - **TIMESTAMP** is the event's `time` in UTC with microseconds (RFC 5424 allows at most 6
//!   fraction digits); `ingest_time` when `time` does not parse, `-` when neither does.
//! - **HOSTNAME** is the configured `hostname`, else the event's `node`, else the agent's node.
//! - **PROCID** is the agent's process id; **MSGID** is `<source>.<kind>` (`k8s_audit.audit`).
//! - **STRUCTURED-DATA** is `-`: every fact is in the JSON, and an SD-ID of our own would need
//!   an IANA enterprise number.
//! - **MSG** is the compact JSON of the event, without the UTF-8 BOM. RFC 5424 allows a
//!   message without it (MSG-ANY); the JSON is UTF-8 all the same, and receivers that do not
//!   strip a BOM would see it as a stray character in front of `{`: rsyslog keeps it in
//!   `%msg%`, and Wazuh's syslog listener hands the message to its JSON decoder as is, which
//!   would then fail to decode the event.
//!
//! # Delivery
//!
//! Events go through the output's disk spool ([`RemoteOutput`]): order is kept, and a receiver
//! outage only fills the spool. Syslog has no acknowledgement, so "delivered" means written
//! to the socket and flushed:
//!
//! - Before each write the connection is checked for an EOF or reset from the receiver (a
//!   restarted receiver closed it), so a batch is not written into a dead socket.
//! - A batch whose write fails counts as undelivered as a whole and is written again on the
//!   next connection (duplicates: the part of it that got through).
//! - A receiver that stops can drop what it had not yet read from its socket, after the
//!   sender's write succeeded. So after a broken connection, the last `resend_window_bytes`
//!   of messages written on it go out again first. Duplicates per broken connection are
//!   bounded by that window plus the batch being written; every duplicate has the same `id`.
//! - What stays lost: messages older than the window that the receiver had not processed
//!   (a receiver crash with a full queue of its own), and with UDP anything the network or
//!   a stopped receiver drops (UDP reports nothing, save an ICMP error that fails a later
//!   send, which is retried).
//!
//! Header values taken from events are sanitized: anything outside printable US-ASCII
//! (33–126) becomes `_` and values are cut to the RFC's limits (HOSTNAME 255, APP-NAME 48,
//! PROCID 128, MSGID 32), so no value can inject a field, a frame or a second message. The
//! JSON never holds a raw LF or control character (serde escapes them), which is what makes
//! LF framing safe.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

use super::remote::{
    DeliverySettings, EncodeError, Encoded, MessageEncoder, RemoteOutput, SpoolSettings, Transport,
    TransportError, Undelivered,
};
use super::tls::{DefaultTrust, TlsSettings};
use super::{BoxFuture, BuildContext, Output, OutputError, trim};
use crate::event::Event;

/// RFC 5424 limit of HOSTNAME.
pub const MAX_HOSTNAME: usize = 255;
/// RFC 5424 limit of APP-NAME.
pub const MAX_APP_NAME: usize = 48;
/// RFC 5424 limit of PROCID.
pub const MAX_PROCID: usize = 128;
/// RFC 5424 limit of MSGID.
pub const MAX_MSGID: usize = 32;
/// The smallest message every receiver must accept (RFC 5424 §6.1, RFC 5426 §3.2); a smaller
/// `max_message_bytes` is refused.
pub const MIN_MESSAGE_BYTES: usize = 480;
/// The largest UDP payload over IPv4.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// The largest message over TCP and TLS: far above any receiver's limit, and it keeps a batch
/// within the spool's segment size.
pub const MAX_STREAM_MESSAGE: usize = 1024 * 1024;

/// Bytes of framed messages gathered before a write call, so a large batch is not copied
/// into one buffer of its own size.
const WRITE_CHUNK: usize = 64 * 1024;

/// How messages go to the receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// TCP (RFC 6587).
    #[default]
    Tcp,
    /// TLS over TCP (RFC 5425), same framing as `tcp`.
    Tls,
    /// UDP (RFC 5426): one datagram per message, no delivery confirmation at all.
    Udp,
}

/// How messages are delimited on a TCP or TLS stream (ignored for UDP).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    /// `LEN SP MSG` (RFC 6587 §3.4.1, required by RFC 5425): rsyslog, syslog-ng and most
    /// SIEMs.
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 §3.4.2). Wazuh's `<remote><connection>syslog</connection>` over TCP
    /// splits on LF only and needs this.
    Newline,
}

/// What the message (MSG) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// The `vigil.event/v1` JSON.
    #[default]
    Json,
    /// `{"integration":"vigil","vigil":<event>}`, the event with an `alert` object summing up
    /// its highest detection: what the manager-side `vigil_decoders.xml` and
    /// `vigil_rules.xml` read on a Wazuh syslog listener.
    Wazuh,
}

/// Syslog facility; the receiver routes on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    /// Kernel messages (0).
    Kern,
    /// User-level messages (1).
    User,
    /// Mail system (2).
    Mail,
    /// System daemons (3).
    Daemon,
    /// Security/authorization (4).
    Auth,
    /// Messages of syslogd itself (5).
    Syslog,
    /// Line printer (6).
    Lpr,
    /// Network news (7).
    News,
    /// UUCP (8).
    Uucp,
    /// Clock daemon (9).
    Cron,
    /// Security/authorization, private (10).
    Authpriv,
    /// FTP daemon (11).
    Ftp,
    /// NTP (12).
    Ntp,
    /// Log audit (13).
    Audit,
    /// Log alert (14).
    Alert,
    /// Clock daemon (15).
    Clock,
    /// Local use 0 (16), the default: left to local use, so a receiver can route vigil's messages without
    /// mixing them with the system's.
    #[default]
    Local0,
    /// Local use 1 (17).
    Local1,
    /// Local use 2 (18).
    Local2,
    /// Local use 3 (19).
    Local3,
    /// Local use 4 (20).
    Local4,
    /// Local use 5 (21).
    Local5,
    /// Local use 6 (22).
    Local6,
    /// Local use 7 (23).
    Local7,
}

impl Facility {
    /// The facility's code (0–23).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Settings of the syslog output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogOutputConfig {
    /// The output's name in logs and metrics, and its spool directory. Default: `syslog`.
    #[serde(default)]
    pub name: Option<String>,
    /// The receiver, `host:port` (`[v6addr]:port` for IPv6). Syslog's ports are 514 (udp, and
    /// tcp by custom), 601 (tcp) and 6514 (tls).
    pub address: String,
    /// `tcp`, `tls` or `udp`. Default `tcp`.
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// Framing on TCP and TLS: `octet_counting` (default) or `newline` (needed by Wazuh's
    /// syslog listener). Ignored for UDP.
    #[serde(default)]
    pub framing: SyslogFraming,
    /// The message: `json` (the event, default) or `wazuh` (the event wrapped for the Wazuh
    /// rules shipped in `manager/wazuh/`).
    #[serde(default)]
    pub format: SyslogFormat,
    /// TLS settings for `protocol: tls`. The receiver's certificate is verified against
    /// `ca_file`, else the system's roots.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Facility of every message. Default `local0`.
    #[serde(default)]
    pub facility: Facility,
    /// APP-NAME of every message: 1–48 printable US-ASCII characters. Default `vigil`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME of every message (1–255 printable US-ASCII characters). Default: the event's
    /// node, else the agent's node name (sanitized and cut to 255).
    #[serde(default)]
    pub hostname: Option<String>,
    /// Largest message in bytes, header included (for TCP/TLS without the framing). A larger
    /// event is made to fit while staying valid JSON: `raw` is replaced by
    /// `{"vigil.trimmed": true, "original_bytes": N}`, then the longest strings are cut and end
    /// with `...[vigil.trimmed]`, and as a last resort only the event's identity, kind,
    /// action, outcome and detections are kept. Trimmed events are counted and logged.
    /// Default 2048 for UDP (what RFC 5426 says every receiver should take; raise it when
    /// yours takes more, up to 65507), 65536 for TCP and TLS (Wazuh's limit; rsyslog needs
    /// `global(maxMessageSize="64k")` to take that much, its default is 8k). At least 480.
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// Largest number of messages sent per second. Default: no limit.
    #[serde(default)]
    pub max_eps: Option<u32>,
    /// After a TCP/TLS connection is found broken, how many bytes of the last messages
    /// written on it are sent again on the next connection, ahead of the rest. Syslog has no
    /// acknowledgement: a receiver that stops can drop what it had not yet read from its
    /// socket, and the sender cannot tell. Those messages are repeated (duplicates) instead
    /// of lost. Default 65536; 0 turns it off.
    #[serde(default = "default_resend_window_bytes")]
    pub resend_window_bytes: usize,
    /// The spool (disk buffer) that holds events while the receiver is unreachable.
    #[serde(default)]
    pub spool: SpoolSettings,
    /// Time allowed to connect (and finish the TLS handshake), in milliseconds. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for one write to the socket, in milliseconds; a receiver that stops
    /// reading for longer is treated as gone. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub write_timeout_ms: u64,
}

fn default_app_name() -> String {
    "vigil".into()
}

fn default_resend_window_bytes() -> usize {
    64 * 1024
}

fn default_timeout_ms() -> u64 {
    10_000
}

impl SyslogOutputConfig {
    /// A configuration with every default, sending to `address`.
    pub fn new(address: impl Into<String>) -> SyslogOutputConfig {
        SyslogOutputConfig {
            name: None,
            address: address.into(),
            protocol: SyslogProtocol::default(),
            framing: SyslogFraming::default(),
            format: SyslogFormat::default(),
            tls: TlsSettings::default(),
            facility: Facility::default(),
            app_name: default_app_name(),
            hostname: None,
            max_message_bytes: None,
            max_eps: None,
            resend_window_bytes: default_resend_window_bytes(),
            spool: SpoolSettings::default(),
            connect_timeout_ms: default_timeout_ms(),
            write_timeout_ms: default_timeout_ms(),
        }
    }

    /// The effective largest message size.
    pub fn effective_max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(match self.protocol {
            SyslogProtocol::Udp => 2048,
            SyslogProtocol::Tcp | SyslogProtocol::Tls => 65_536,
        })
    }

    fn validate(&self) -> Result<(), OutputError> {
        let bad = |m: String| Err(OutputError::Config(m));
        if !is_header_value(&self.app_name, MAX_APP_NAME) {
            return bad(format!(
                "syslog app_name {:?} must be 1-{MAX_APP_NAME} printable US-ASCII characters",
                self.app_name
            ));
        }
        if let Some(h) = &self.hostname
            && !is_header_value(h, MAX_HOSTNAME)
        {
            return bad(format!(
                "syslog hostname {h:?} must be 1-{MAX_HOSTNAME} printable US-ASCII characters"
            ));
        }
        let max = self.effective_max_message_bytes();
        let ceiling = match self.protocol {
            SyslogProtocol::Udp => MAX_UDP_PAYLOAD,
            SyslogProtocol::Tcp | SyslogProtocol::Tls => MAX_STREAM_MESSAGE,
        };
        if !(MIN_MESSAGE_BYTES..=ceiling).contains(&max) {
            return bad(format!(
                "syslog max_message_bytes {max} must be between {MIN_MESSAGE_BYTES} and {ceiling}"
            ));
        }
        if self.max_eps == Some(0) {
            return bad("syslog max_eps must be at least 1 (omit it for no limit)".into());
        }
        if self.connect_timeout_ms == 0 || self.write_timeout_ms == 0 {
            return bad("syslog timeouts must be at least 1 ms".into());
        }
        split_host_port(&self.address).map(|_| ())
    }
}

/// Splits `host:port`, refusing what cannot be an address.
fn split_host_port(address: &str) -> Result<(String, u16), OutputError> {
    let invalid = || {
        OutputError::Config(format!(
            "syslog address {address:?} is not host:port ([v6addr]:port for IPv6)"
        ))
    };
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || (host.contains(':') && !host.starts_with('[')) {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
}

fn is_header_value(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (33..=126).contains(&b))
}

/// `value` as an RFC 5424 header field: printable US-ASCII only (anything else becomes `_`,
/// one per character), at most `max` bytes, `-` (NILVALUE) when empty.
pub fn header_field(value: &str, max: usize) -> Cow<'_, str> {
    if value.is_empty() {
        return Cow::Borrowed("-");
    }
    if is_header_value(value, max) {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .take(max)
            .collect(),
    )
}

/// The syslog severity of an event: from its highest detection level (see the module docs).
pub fn severity(event: &Event) -> u8 {
    match event.detections.iter().map(|d| d.level).max() {
        None | Some(0..=4) => 6,
        Some(5..=7) => 5,
        Some(8..=11) => 4,
        Some(12) => 3,
        Some(13 | 14) => 2,
        Some(_) => 1,
    }
}

/// PRI = facility × 8 + severity.
pub fn pri(facility: Facility, severity: u8) -> u8 {
    facility.code() * 8 + severity.min(7)
}

/// An RFC 3339 time as an RFC 5424 TIMESTAMP: UTC, microseconds, four-digit year.
pub fn timestamp(rfc3339: &str) -> Option<String> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?
        .to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(crate::timestamp::format_micros(t))
}

/// Appends `message` framed for a stream.
pub fn frame(framing: SyslogFraming, message: &[u8], out: &mut Vec<u8>) {
    match framing {
        SyslogFraming::OctetCounting => {
            out.extend_from_slice(message.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(message);
        }
        SyslogFraming::Newline => {
            out.extend_from_slice(message);
            out.push(b'\n');
        }
    }
}

/// Turns events into RFC 5424 messages.
#[derive(Debug)]
pub struct SyslogEncoder {
    format: SyslogFormat,
    facility: Facility,
    app_name: String,
    hostname: Option<String>,
    default_hostname: String,
    procid: String,
    max_message_bytes: usize,
}

impl SyslogEncoder {
    /// An encoder for `cfg`; `node` names the host when neither the config nor the event do.
    pub fn new(cfg: &SyslogOutputConfig, node: &str) -> SyslogEncoder {
        SyslogEncoder {
            format: cfg.format,
            facility: cfg.facility,
            app_name: header_field(&cfg.app_name, MAX_APP_NAME).into_owned(),
            hostname: cfg
                .hostname
                .as_deref()
                .map(|h| header_field(h, MAX_HOSTNAME).into_owned()),
            default_hostname: header_field(node, MAX_HOSTNAME).into_owned(),
            procid: header_field(&std::process::id().to_string(), MAX_PROCID).into_owned(),
            max_message_bytes: cfg.effective_max_message_bytes(),
        }
    }

    fn header(&self, event: &Event, out: &mut Vec<u8>) {
        let ts = timestamp(&event.time)
            .or_else(|| timestamp(&event.ingest_time))
            .unwrap_or_else(|| "-".into());
        let host = match (&self.hostname, event.node.as_deref()) {
            (Some(h), _) => Cow::Borrowed(h.as_str()),
            (None, Some(node)) if !node.is_empty() => header_field(node, MAX_HOSTNAME),
            (None, _) => Cow::Borrowed(self.default_hostname.as_str()),
        };
        let msgid = format!("{}.{}", event.source.as_str(), event.kind.as_str());
        let msgid = header_field(&msgid, MAX_MSGID);
        let header = format!(
            "<{}>1 {ts} {host} {} {} {msgid} - ",
            pri(self.facility, severity(event)),
            self.app_name,
            self.procid,
        );
        out.extend_from_slice(header.as_bytes());
    }
}

impl MessageEncoder for SyslogEncoder {
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<Encoded, EncodeError> {
        let start = out.len();
        self.header(event, out);
        let budget = self
            .max_message_bytes
            .checked_sub(out.len() - start)
            .ok_or_else(|| EncodeError::TooLarge("the syslog header alone is too long".into()))?;
        let before = out.len();
        let value = match self.format {
            SyslogFormat::Json => {
                serde_json::to_writer(&mut *out, event)?;
                None
            }
            SyslogFormat::Wazuh => {
                let v = super::wazuh::vigil_value(event)?;
                out.extend_from_slice(&wrap(self.format, &v)?);
                Some(v)
            }
        };
        let full = out.len() - before;
        if full <= budget {
            return Ok(Encoded::Whole);
        }
        out.truncate(before);
        let value = match value {
            Some(v) => v,
            None => serde_json::to_value(event)?,
        };
        let json = trim::fit(value, full, budget, |v| wrap(self.format, v))?;
        out.extend_from_slice(&json);
        tracing::warn!(event = %event.id, bytes = full, max = self.max_message_bytes,
            "event trimmed to fit the syslog message size");
        Ok(Encoded::Trimmed)
    }
}

/// The message body for the event value `v`.
fn wrap(format: SyslogFormat, v: &Value) -> Result<Vec<u8>, EncodeError> {
    Ok(match format {
        SyslogFormat::Json => serde_json::to_vec(v)?,
        SyslogFormat::Wazuh => {
            // `integration` first: the manager's decoder matches on that prefix.
            let mut out = br#"{"integration":"vigil","vigil":"#.to_vec();
            serde_json::to_writer(&mut out, v)?;
            out.push(b'}');
            out
        }
    })
}

/// A TCP or TLS connection.
trait SyslogStream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> SyslogStream for T {}

/// What a peek at a connection found.
enum Probe {
    Open,
    Data,
    Closed,
}

/// Looks, without waiting, whether the receiver closed the connection. Syslog receivers
/// never send anything, so a readable socket means EOF or a reset (or TLS records: session
/// tickets, which rustls consumes, and close_notify, which reads as EOF).
async fn probe(conn: &mut dyn SyslogStream) -> Probe {
    let mut buf = [0u8; 512];
    std::future::poll_fn(|cx| {
        let mut rb = ReadBuf::new(&mut buf);
        Poll::Ready(match Pin::new(&mut *conn).poll_read(cx, &mut rb) {
            Poll::Pending => Probe::Open,
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Probe::Closed,
            Poll::Ready(Ok(())) => Probe::Data,
            Poll::Ready(Err(_)) => Probe::Closed,
        })
    })
    .await
}

/// The last framed messages written on the current connection, up to a byte budget.
#[derive(Debug, Default)]
struct ResendWindow {
    frames: VecDeque<Vec<u8>>,
    bytes: usize,
    cap: usize,
}

impl ResendWindow {
    fn push(&mut self, frame: &[u8]) {
        if self.cap == 0 {
            return;
        }
        self.frames.push_back(frame.to_vec());
        self.bytes += frame.len();
        while self.bytes > self.cap {
            match self.frames.pop_front() {
                Some(f) => self.bytes -= f.len(),
                None => break,
            }
        }
    }
}

/// TCP or TLS to one receiver.
struct StreamTransport {
    address: String,
    host: String,
    tls: Option<(Arc<rustls::ClientConfig>, TlsSettings)>,
    framing: SyslogFraming,
    connect_timeout: Duration,
    write_timeout: Duration,
    conn: Option<Box<dyn SyslogStream>>,
    window: ResendWindow,
    /// The previous connection broke: the window goes out again before anything new.
    resend: bool,
    buf: Vec<u8>,
}

impl StreamTransport {
    async fn connect(&self) -> Result<Box<dyn SyslogStream>, TransportError> {
        let connect_err = |reason: String| TransportError::Connect {
            peer: self.describe(),
            reason,
        };
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.address))
            .await
            .map_err(|_| connect_err(format!("no answer within {:?}", self.connect_timeout)))?
            .map_err(|e| connect_err(e.to_string()))?;
        let Some((config, settings)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let tls = tokio::time::timeout(
            self.connect_timeout,
            super::tls::connect(config.clone(), settings, &self.host, tcp),
        )
        .await
        .map_err(|_| TransportError::Tls("handshake timed out".into()))?
        .map_err(|e| TransportError::Tls(e.to_string()))?;
        Ok(Box::new(tls))
    }

    fn broken(&mut self) {
        self.conn = None;
        self.resend = true;
    }

    async fn write(
        conn: &mut dyn SyslogStream,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), TransportError> {
        match tokio::time::timeout(timeout, conn.write_all(bytes)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("write not accepted within {timeout:?}"),
            ))),
        }
    }

    /// Writes the window (after a broken connection), then `messages`, then flushes.
    async fn send_all(&mut self, messages: &[&[u8]]) -> Result<(), TransportError> {
        let timeout = self.write_timeout;
        let Some(conn) = self.conn.as_deref_mut() else {
            return Err(TransportError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        self.buf.clear();
        if self.resend {
            for f in &self.window.frames {
                self.buf.extend_from_slice(f);
                if self.buf.len() >= WRITE_CHUNK {
                    Self::write(conn, &self.buf, timeout).await?;
                    self.buf.clear();
                }
            }
        }
        for m in messages {
            frame(self.framing, m, &mut self.buf);
            if self.buf.len() >= WRITE_CHUNK {
                Self::write(conn, &self.buf, timeout).await?;
                self.buf.clear();
            }
        }
        Self::write(conn, &self.buf, timeout).await?;
        match tokio::time::timeout(timeout, conn.flush()).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
        Ok(())
    }
}

impl Transport for StreamTransport {
    fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "tls" } else { "tcp" };
        format!("{scheme}://{}", self.address)
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>> {
        Box::pin(async move {
            // A receiver that restarted closed our connection; writing into it would "succeed"
            // into a socket nobody reads and lose the batch.
            if let Some(conn) = self.conn.as_deref_mut() {
                loop {
                    match probe(conn).await {
                        Probe::Open => break,
                        Probe::Data => continue,
                        Probe::Closed => {
                            tracing::info!(peer = %self.describe(),
                                "the syslog receiver closed the connection; reconnecting");
                            self.broken();
                            break;
                        }
                    }
                }
            }
            if self.conn.is_none() {
                let conn = self.connect().await.map_err(Undelivered::none)?;
                self.conn = Some(conn);
            }
            match self.send_all(messages).await {
                Ok(()) => {
                    if self.resend {
                        self.resend = false;
                    }
                    let mut framed = Vec::new();
                    for m in messages {
                        framed.clear();
                        frame(self.framing, m, &mut framed);
                        self.window.push(&framed);
                    }
                    Ok(())
                }
                // No acknowledgement exists, so none of the batch counts as delivered: it is
                // all sent again on the next connection (at least once).
                Err(e) => {
                    self.broken();
                    Err(Undelivered::none(e))
                }
            }
        })
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(mut conn) = self.conn.take() {
                let _ = tokio::time::timeout(self.write_timeout, conn.shutdown()).await;
            }
        })
    }
}

/// UDP to one receiver.
struct UdpTransport {
    address: String,
    socket: Option<UdpSocket>,
}

impl UdpTransport {
    async fn open(&self) -> Result<UdpSocket, TransportError> {
        let connect_err = |reason: String| TransportError::Connect {
            peer: self.describe(),
            reason,
        };
        let peer = tokio::net::lookup_host(&self.address)
            .await
            .map_err(|e| connect_err(e.to_string()))?
            .next()
            .ok_or_else(|| connect_err("the name has no address".into()))?;
        let local: std::net::SocketAddr = if peer.is_ipv4() {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        // Connected, so the kernel reports an ICMP "port unreachable" as an error on a later
        // send instead of dropping it.
        socket
            .connect(peer)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(socket)
    }
}

impl Transport for UdpTransport {
    fn describe(&self) -> String {
        format!("udp://{}", self.address)
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>> {
        Box::pin(async move {
            if self.socket.is_none() {
                self.socket = Some(self.open().await.map_err(Undelivered::none)?);
            }
            let Some(socket) = &self.socket else {
                return Err(Undelivered::none(TransportError::Io(
                    std::io::ErrorKind::NotConnected.into(),
                )));
            };
            for (i, m) in messages.iter().enumerate() {
                if let Err(e) = socket.send(m).await {
                    // The error is usually an earlier datagram's ICMP answer; message `i` did
                    // not leave, the ones before it did (as far as UDP ever says).
                    self.socket = None;
                    return Err(Undelivered {
                        delivered: i,
                        error: e.into(),
                    });
                }
            }
            Ok(())
        })
    }
}

/// Opens the spool and starts delivering. Must be called inside a Tokio runtime.
pub fn start(
    cfg: &SyslogOutputConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<RemoteOutput, OutputError> {
    cfg.validate()?;
    let (host, _port) = split_host_port(&cfg.address)?;
    let encoder = SyslogEncoder::new(cfg, &ctx.node);
    let transport: Box<dyn Transport> = match cfg.protocol {
        SyslogProtocol::Udp => Box::new(UdpTransport {
            address: cfg.address.clone(),
            socket: None,
        }),
        SyslogProtocol::Tcp | SyslogProtocol::Tls => {
            let tls = if cfg.protocol == SyslogProtocol::Tls {
                if !cfg.tls.verifies(DefaultTrust::SystemRoots) {
                    tracing::warn!(output = %name, "tls.insecure_skip_verify is set: the syslog receiver is not authenticated");
                }
                let config = cfg
                    .tls
                    .client_config(DefaultTrust::SystemRoots)
                    .map_err(|e| OutputError::Config(format!("syslog tls: {e}")))?;
                cfg.tls
                    .server_name(&host)
                    .map_err(|e| OutputError::Config(format!("syslog tls: {e}")))?;
                Some((config, cfg.tls.clone()))
            } else {
                None
            };
            Box::new(StreamTransport {
                address: cfg.address.clone(),
                host,
                tls,
                framing: cfg.framing,
                connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
                write_timeout: Duration::from_millis(cfg.write_timeout_ms),
                conn: None,
                window: ResendWindow {
                    cap: cfg.resend_window_bytes,
                    ..ResendWindow::default()
                },
                resend: false,
                buf: Vec::new(),
            })
        }
    };
    let dir = cfg.spool.dir.clone().unwrap_or_else(|| ctx.spool_dir(name));
    let inner = RemoteOutput::start(
        name.to_owned(),
        dir,
        &cfg.spool,
        Arc::new(encoder),
        transport,
        DeliverySettings {
            max_eps: cfg.max_eps,
            ..DeliverySettings::default()
        },
    )?;
    Ok(inner)
}

/// Builds the output.
pub fn build(
    cfg: &SyslogOutputConfig,
    name: &str,
    ctx: &BuildContext,
) -> Result<Box<dyn Output>, OutputError> {
    Ok(Box::new(start(cfg, name, ctx)?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::event::{Detection, Kind, Log, Source};
    use crate::outputs::trim::{RAW_TRIMMED_KEY, TRIM_MARKER};
    use proptest::prelude::*;

    fn event() -> Event {
        Event {
            id: "0123456789abcdef0123456789abcdef".into(),
            time: "2024-05-06T07:08:09.123456789Z".into(),
            ingest_time: "2024-05-06T07:08:10Z".into(),
            node: Some("node-1".into()),
            source: Source::Docker,
            kind: Kind::Runtime,
            action: "start".into(),
            ..Event::default()
        }
    }

    fn detection(level: u8) -> Detection {
        Detection {
            rule: "container.privileged".into(),
            title: "Privileged container".into(),
            level,
            ..Detection::default()
        }
    }

    fn encode(cfg: &SyslogOutputConfig, e: &Event) -> String {
        let mut out = Vec::new();
        SyslogEncoder::new(cfg, "agent-node")
            .encode(e, &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Splits a message into its six header fields, SD and MSG.
    fn fields(msg: &str) -> Vec<&str> {
        msg.splitn(8, ' ').collect()
    }

    #[test]
    fn pri_combines_facility_and_the_highest_detection() {
        let cfg = SyslogOutputConfig::new("localhost:514");
        let mut e = event();
        assert!(encode(&cfg, &e).starts_with("<134>1 "), "local0.info");
        e.detections = vec![detection(3), detection(12), detection(8)];
        assert!(encode(&cfg, &e).starts_with("<131>1 "), "local0.err");
        let cfg = SyslogOutputConfig {
            facility: Facility::Authpriv,
            ..cfg
        };
        e.detections = vec![detection(15)];
        assert!(encode(&cfg, &e).starts_with("<81>1 "), "authpriv.alert");
        assert_eq!(pri(Facility::Kern, 0), 0);
        assert_eq!(pri(Facility::Local7, 7), 191);
        let levels: Vec<u8> = (0..=15)
            .map(|l| {
                let mut e = event();
                e.detections = vec![detection(l)];
                severity(&e)
            })
            .collect();
        assert_eq!(levels, [6, 6, 6, 6, 6, 5, 5, 5, 4, 4, 4, 4, 3, 2, 2, 1]);
    }

    #[test]
    fn header_fields_follow_rfc5424() {
        let cfg = SyslogOutputConfig::new("localhost:514");
        let msg = encode(&cfg, &event());
        let f = fields(&msg);
        assert_eq!(f[0], "<134>1");
        assert_eq!(f[1], "2024-05-06T07:08:09.123456Z");
        assert_eq!(f[2], "node-1");
        assert_eq!(f[3], "vigil");
        assert_eq!(f[4], std::process::id().to_string());
        assert_eq!(f[5], "docker.runtime");
        assert_eq!(f[6], "-");
        let back: Event = serde_json::from_str(f[7]).unwrap();
        assert_eq!(back, event());
    }

    #[test]
    fn timestamps_are_utc_with_at_most_six_fraction_digits() {
        assert_eq!(
            timestamp("2024-01-01T01:30:00.5+01:30").as_deref(),
            Some("2024-01-01T00:00:00.500000Z")
        );
        assert_eq!(timestamp("yesterday"), None);
        let mut e = event();
        e.time = "garbage".into();
        let cfg = SyslogOutputConfig::new("localhost:514");
        assert_eq!(fields(&encode(&cfg, &e))[1], "2024-05-06T07:08:10.000000Z");
        e.ingest_time = String::new();
        assert_eq!(fields(&encode(&cfg, &e))[1], "-");
    }

    #[test]
    fn hostile_header_values_are_sanitized() {
        let cfg = SyslogOutputConfig::new("localhost:514");
        let mut e = event();
        e.node = Some(format!("evil host\n<13>1 - x\u{e9}{}", "a".repeat(400)));
        let msg = encode(&cfg, &e);
        let f = fields(&msg);
        assert_eq!(f.len(), 8);
        assert_eq!(f[2].len(), MAX_HOSTNAME);
        assert!(f[2].starts_with("evil_host_<13>1_-_x_a"), "{}", f[2]);
        assert!(!msg.contains('\n'));
        e.node = Some(String::new());
        assert_eq!(fields(&encode(&cfg, &e))[2], "agent-node");
        let cfg = SyslogOutputConfig {
            hostname: Some("configured".into()),
            ..cfg
        };
        assert_eq!(fields(&encode(&cfg, &e))[2], "configured");
        assert_eq!(header_field("", 10), "-");
        assert_eq!(header_field("ä b", 10), "__b");
    }

    #[test]
    fn invalid_configuration_is_refused() {
        let ok = SyslogOutputConfig::new("logs.example:6514");
        assert!(ok.validate().is_ok());
        for bad in [
            SyslogOutputConfig::new("logs.example"),
            SyslogOutputConfig::new("::1:514"),
            SyslogOutputConfig {
                app_name: "a b".into(),
                ..ok.clone()
            },
            SyslogOutputConfig {
                app_name: "x".repeat(49),
                ..ok.clone()
            },
            SyslogOutputConfig {
                hostname: Some(String::new()),
                ..ok.clone()
            },
            SyslogOutputConfig {
                max_message_bytes: Some(479),
                ..ok.clone()
            },
            SyslogOutputConfig {
                protocol: SyslogProtocol::Udp,
                max_message_bytes: Some(65_508),
                ..ok.clone()
            },
            SyslogOutputConfig {
                max_eps: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(SyslogOutputConfig::new("[::1]:514").validate().is_ok());
    }

    #[test]
    fn oversized_events_are_trimmed_to_valid_json() {
        let cfg = SyslogOutputConfig {
            protocol: SyslogProtocol::Udp,
            ..SyslogOutputConfig::new("localhost:514")
        };
        let max = cfg.effective_max_message_bytes();
        let mut e = event();
        e.detections = vec![detection(12)];
        e.log = Some(Log {
            message: Some("é\"\\".repeat(3000)),
            ..Log::default()
        });
        e.raw = Some(crate::event::Raw::Value(
            serde_json::json!({ "big": "x".repeat(10_000) }),
        ));
        let enc = SyslogEncoder::new(&cfg, "n");
        let mut out = Vec::new();
        assert_eq!(enc.encode(&e, &mut out).unwrap(), Encoded::Trimmed);
        assert!(out.len() <= max, "{} > {max}", out.len());
        let msg = String::from_utf8(out).unwrap();
        let back: Event = serde_json::from_str(fields(&msg)[7]).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.detections, e.detections);
        let log = back.log.unwrap();
        assert!(log.partial);
        assert!(log.message.unwrap().ends_with(TRIM_MARKER));
        assert_eq!(
            back.raw.unwrap().to_value()[RAW_TRIMMED_KEY],
            Value::Bool(true)
        );
    }

    #[test]
    fn an_event_of_many_small_values_falls_back_to_its_identity() {
        let cfg = SyslogOutputConfig {
            max_message_bytes: Some(MIN_MESSAGE_BYTES),
            ..SyslogOutputConfig::new("localhost:514")
        };
        let mut e = event();
        e.actor.groups = (0..500).map(|i| format!("group-{i}")).collect();
        let mut out = Vec::new();
        SyslogEncoder::new(&cfg, "n").encode(&e, &mut out).unwrap();
        assert!(out.len() <= MIN_MESSAGE_BYTES);
        let msg = String::from_utf8(out).unwrap();
        let back: Event = serde_json::from_str(fields(&msg)[7]).unwrap();
        assert_eq!(back.id, e.id);
        assert!(back.actor.groups.is_empty());
        assert_eq!(back.raw.unwrap().to_value()[RAW_TRIMMED_KEY], true);
    }

    #[test]
    fn wazuh_format_wraps_the_event_for_the_manager_rules() {
        let cfg = SyslogOutputConfig {
            format: SyslogFormat::Wazuh,
            ..SyslogOutputConfig::new("localhost:514")
        };
        let mut e = event();
        e.detections = vec![detection(5), detection(12)];
        let msg = encode(&cfg, &e);
        let body = fields(&msg)[7];
        assert!(
            body.starts_with(r#"{"integration":"vigil","vigil":{"#),
            "{body}"
        );
        let doc: Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["vigil"]["alert"]["level"], 12);
        assert_eq!(doc["vigil"]["alert"]["count"], 2);
        assert_eq!(doc["vigil"]["id"], e.id.as_str());
    }

    #[test]
    fn framing() {
        let mut out = Vec::new();
        frame(
            SyslogFraming::OctetCounting,
            b"<134>1 - - - - - - {}",
            &mut out,
        );
        frame(SyslogFraming::Newline, b"abc", &mut out);
        assert_eq!(out, b"21 <134>1 - - - - - - {}abc\n");
    }

    /// Splits an octet-counted stream as a receiver does.
    fn deframe(mut stream: &[u8]) -> Option<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        while !stream.is_empty() {
            let sp = stream.iter().position(|&b| b == b' ')?;
            let len: usize = std::str::from_utf8(&stream[..sp]).ok()?.parse().ok()?;
            let rest = &stream[sp + 1..];
            if rest.len() < len {
                return None;
            }
            out.push(rest[..len].to_vec());
            stream = &rest[len..];
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn octet_counting_round_trips(messages in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..600), 0..20)) {
            let mut stream = Vec::new();
            for m in &messages {
                frame(SyslogFraming::OctetCounting, m, &mut stream);
            }
            prop_assert_eq!(deframe(&stream), Some(messages));
        }

        #[test]
        fn any_node_name_yields_one_valid_header(node in ".{0,300}", level in 0u8..=15) {
            let cfg = SyslogOutputConfig::new("localhost:514");
            let mut e = event();
            e.node = Some(node);
            e.detections = vec![detection(level)];
            let msg = encode(&cfg, &e);
            let f = fields(&msg);
            prop_assert_eq!(f.len(), 8);
            prop_assert!(f[2].len() <= MAX_HOSTNAME && f[2].bytes().all(|b| (33..=126).contains(&b)));
            let framed = { let mut v = Vec::new(); frame(SyslogFraming::Newline, msg.as_bytes(), &mut v); v };
            prop_assert_eq!(framed.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert!(serde_json::from_str::<Event>(f[7]).is_ok());
        }
    }
}
