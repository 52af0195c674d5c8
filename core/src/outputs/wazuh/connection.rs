//! The agent's connection to remoted (TCP 1514): startup, keepalives, events, and the
//! manager's answers.
//!
//! Wazuh's event messages have no acknowledgement, but the manager answers every keepalive
//! with `#!-agent ack `, in order on the connection. So after writing a chunk of events the
//! transport writes a keepalive and waits for its ACK: when it arrives, remoted has read
//! every event before it. A chunk counts as delivered only then; a connection that breaks
//! or stays silent before it is dropped, and the whole chunk is sent again on a new one
//! (duplicates, never a loss). This costs one keepalive per chunk, at most a few per second
//! under the events-per-second limit.

use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::codec::{
    CodecError, Counters, FrameEncoder, MAX_FRAME_PAYLOAD_BYTES, SecureCodec, default_rand_source,
    frame_len,
};
use super::enroll::{self, EnrollRequest};
use super::keys::AgentKey;
use super::state;
use crate::outputs::BoxFuture;
use crate::outputs::remote::{Transport, TransportError, Undelivered};

/// The manager's answer to startup and keepalive messages.
const ACK: &[u8] = b"#!-agent ack ";

/// Settings of the connection.
#[derive(Debug, Clone)]
pub struct ConnectionSettings {
    /// remoted's host.
    pub host: String,
    /// remoted's port (1514).
    pub port: u16,
    /// The version announced at startup and in keepalives (`v4.x.y`).
    pub version: String,
    /// Interval between keepalives when idle (Wazuh's `notify_time`, 20 s).
    pub keepalive: Duration,
    /// How long to wait for an ACK before reconnecting (Wazuh's `time-reconnect`, 60 s).
    pub ack_timeout: Duration,
    /// Timeout of the TCP connect.
    pub connect_timeout: Duration,
}

/// Where the agent's key comes from.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The `client.keys` file: read at start, written after enrollment.
    pub keys_file: PathBuf,
    /// Where the message counters are saved.
    pub counters_file: PathBuf,
    /// Enrollment, when enabled; `password_file` is read at each attempt.
    pub enrollment: Option<(EnrollRequest, Option<PathBuf>)>,
}

/// The Wazuh transport: one connection per key, re-established when it fails.
pub struct WazuhTransport {
    settings: ConnectionSettings,
    identity: Identity,
    key: Option<AgentKey>,
    counters: Counters,
    saved_global: u32,
    conn: Option<Conn>,
    shared_md5: Arc<Mutex<Option<String>>>,
}

struct Writer {
    half: OwnedWriteHalf,
    encoder: FrameEncoder,
    /// Messages that the manager answers with an ACK (startup and keepalives) written on
    /// this connection.
    pings: u64,
    keepalive: Vec<u8>,
}

/// What the reader task learns from the manager.
#[derive(Default)]
struct Answers {
    acks: AtomicU64,
    dead: AtomicBool,
    refusal: Mutex<Option<String>>,
    notify: Notify,
}

impl Answers {
    fn kill(&self) {
        self.dead.store(true, SeqCst);
        self.notify.notify_waiters();
    }
}

struct Conn {
    writer: Arc<tokio::sync::Mutex<Writer>>,
    answers: Arc<Answers>,
    tasks: [JoinHandle<()>; 2],
    peer: String,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl WazuhTransport {
    /// A transport that connects on first use. A key already in `identity.keys_file` is used
    /// as is; otherwise the agent enrolls (when enabled) before its first connection.
    pub fn new(
        settings: ConnectionSettings,
        identity: Identity,
    ) -> Result<WazuhTransport, state::StateError> {
        let key = state::load_key(&identity.keys_file)?;
        let counters = state::load_counters(&identity.counters_file);
        if let Some(k) = &key {
            tracing::info!(id = k.id(), name = k.name(), file = %identity.keys_file.display(),
                "using the Wazuh agent key from the keys file");
        }
        Ok(WazuhTransport {
            settings,
            identity,
            key,
            saved_global: u32::MAX,
            counters,
            conn: None,
            shared_md5: Arc::new(Mutex::new(None)),
        })
    }

    fn peer(&self) -> String {
        format!("{}:{}", self.settings.host, self.settings.port)
    }

    async fn key(&mut self) -> Result<AgentKey, TransportError> {
        if let Some(k) = &self.key {
            return Ok(k.clone());
        }
        let Some((request, password_file)) = &self.identity.enrollment else {
            return Err(TransportError::Refused(format!(
                "no agent key in {} and enrollment is disabled",
                self.identity.keys_file.display()
            )));
        };
        let mut request = request.clone();
        if let Some(path) = password_file {
            request.password = Some(enroll::read_password(path).map_err(|e| {
                TransportError::Refused(format!(
                    "cannot read the enrollment password {}: {e}",
                    path.display()
                ))
            })?);
        }
        tracing::info!(authd = %format!("{}:{}", request.host, request.port), name = %request.name,
            verify = request.tls.verifies(crate::outputs::tls::DefaultTrust::None),
            "enrolling with wazuh-authd");
        if !request
            .tls
            .verifies(crate::outputs::tls::DefaultTrust::None)
        {
            tracing::warn!(
                "enrollment.tls.ca_file is not set: the manager's certificate is not verified"
            );
        }
        let key = enroll::enroll(&request).await.map_err(|e| {
            let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
            TransportError::Refused(format!("{e}{hint}"))
        })?;
        state::store_key(&self.identity.keys_file, &key)
            .map_err(|e| TransportError::Refused(format!("cannot store the agent key: {e}")))?;
        tracing::info!(id = key.id(), name = key.name(), file = %self.identity.keys_file.display(),
            "enrolled; key stored");
        self.key = Some(key.clone());
        Ok(key)
    }

    fn save_counters(&mut self) {
        let (global, _) = self.counters.current();
        if global == self.saved_global {
            return;
        }
        match state::store_counters(&self.identity.counters_file, self.counters) {
            Ok(()) => self.saved_global = global,
            Err(e) => tracing::warn!(error = %e, "cannot save the message counters"),
        }
    }

    async fn connect(&mut self) -> Result<(), TransportError> {
        self.conn = None;
        let key = self.key().await?;
        let peer = self.peer();
        let connect = TcpStream::connect((self.settings.host.as_str(), self.settings.port));
        let tcp = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| TransportError::Connect {
                peer: peer.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| TransportError::Connect {
                peer: peer.clone(),
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let local_ip = tcp
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|_| "any".into());
        let (read, write) = tcp.into_split();
        let codec = SecureCodec::new(&key);
        let answers = Arc::new(Answers::default());
        let reader = tokio::spawn(read_answers(
            read,
            codec.clone(),
            answers.clone(),
            self.shared_md5.clone(),
        ));
        let mut writer = Writer {
            half: write,
            encoder: FrameEncoder::new(codec, self.counters, default_rand_source()),
            pings: 0,
            keepalive: keepalive_text(&self.settings.version, None, &local_ip).into_bytes(),
        };

        let handshake = self.handshake(&mut writer, &answers, &key).await;
        // Frames written before a failure used counters too: never reuse them.
        self.counters = writer.encoder.counters();
        self.save_counters();
        if let Err(e) = handshake {
            reader.abort();
            return Err(e);
        }

        let writer = Arc::new(tokio::sync::Mutex::new(writer));
        let keepalive = tokio::spawn(keep_alive(
            writer.clone(),
            answers.clone(),
            self.shared_md5.clone(),
            self.settings.clone(),
            local_ip,
        ));
        tracing::info!(manager = %peer, id = key.id(), "connected to the Wazuh manager");
        self.conn = Some(Conn {
            writer,
            answers,
            tasks: [reader, keepalive],
            peer,
        });
        Ok(())
    }

    /// Startup, the manager's ACK, then `Agent started` and a first keepalive, as Wazuh's
    /// agent does.
    async fn handshake(
        &self,
        writer: &mut Writer,
        answers: &Answers,
        key: &AgentKey,
    ) -> Result<(), TransportError> {
        let timeout = self.settings.ack_timeout;
        let startup = format!(
            r#"#!-agent startup {{"version":"{}"}}"#,
            self.settings.version
        );
        write_messages(writer, &[startup.as_bytes()], false, timeout).await?;
        // The manager answers the startup message like a keepalive.
        writer.pings += 1;
        wait_for_ack(answers, 1, timeout).await?;
        let started = format!(
            "1:wazuh-agent:ossec: Agent started: '{}->{}'.",
            key.name(),
            key.ip()
        );
        write_messages(writer, &[started.as_bytes()], true, timeout).await
    }

    async fn send(&mut self, messages: &[&[u8]]) -> Result<(), TransportError> {
        if self
            .conn
            .as_ref()
            .is_none_or(|c| c.answers.dead.load(SeqCst))
        {
            if let Some(c) = &self.conn {
                tracing::warn!(manager = %c.peer, "connection to the Wazuh manager lost; reconnecting");
            }
            self.connect().await?;
        }
        let Some(conn) = &self.conn else {
            return Err(TransportError::Refused("not connected".into()));
        };
        let answers = conn.answers.clone();
        let target = {
            let mut w = conn.writer.lock().await;
            let written = write_messages(&mut w, messages, true, self.settings.ack_timeout).await;
            self.counters = w.encoder.counters();
            if let Err(e) = written {
                answers.kill();
                return Err(e);
            }
            w.pings
        };
        self.save_counters();
        if let Err(e) = wait_for_ack(&answers, target, self.settings.ack_timeout).await {
            answers.kill();
            return Err(e);
        }
        Ok(())
    }
}

/// Writes `messages` as frames, then (when `ping`) a keepalive the manager will ACK.
async fn write_messages(
    w: &mut Writer,
    messages: &[&[u8]],
    ping: bool,
    timeout: Duration,
) -> Result<(), TransportError> {
    let mut buf = Vec::with_capacity(messages.iter().map(|m| m.len() / 2 + 64).sum());
    for m in messages {
        match w.encoder.next_frame(m) {
            Ok(frame) => buf.extend_from_slice(&frame),
            // The encoder keeps events under the limit; a message that still does not fit is
            // refused here rather than sent to be dropped silently by the manager.
            Err(e @ CodecError::EventTooLarge { .. }) => {
                tracing::error!(error = %e, "message not sent");
            }
            Err(e) => return Err(TransportError::Refused(e.to_string())),
        }
    }
    if ping {
        let keepalive = w.keepalive.clone();
        let frame = w
            .encoder
            .next_frame(&keepalive)
            .map_err(|e| TransportError::Refused(e.to_string()))?;
        buf.extend_from_slice(&frame);
        w.pings += 1;
    }
    let write = async {
        w.half.write_all(&buf).await?;
        w.half.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| {
            TransportError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the manager does not read",
            ))
        })?
        .map_err(TransportError::Io)
}

/// Waits until the manager has acknowledged `target` pings on this connection.
async fn wait_for_ack(
    answers: &Answers,
    target: u64,
    timeout: Duration,
) -> Result<(), TransportError> {
    let wait = async {
        loop {
            let notified = answers.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(refusal) = answers
                .refusal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return Err(TransportError::Refused(format!(
                    "the manager refused the agent: {refusal}"
                )));
            }
            if answers.acks.load(SeqCst) >= target {
                return Ok(());
            }
            if answers.dead.load(SeqCst) {
                return Err(TransportError::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionAborted,
                    "the manager closed the connection",
                )));
            }
            notified.await;
        }
    };
    tokio::time::timeout(timeout, wait).await.map_err(|_| {
        TransportError::Refused(format!(
            "no acknowledgement from the manager within {timeout:?}"
        ))
    })?
}

/// Reads the manager's frames until the connection ends.
async fn read_answers(
    mut read: OwnedReadHalf,
    codec: SecureCodec,
    answers: Arc<Answers>,
    shared_md5: Arc<Mutex<Option<String>>>,
) {
    let mut prefix = [0u8; 4];
    let mut payload = Vec::new();
    loop {
        if read.read_exact(&mut prefix).await.is_err() {
            break;
        }
        let len = match frame_len(&prefix) {
            Ok(len) if len <= MAX_FRAME_PAYLOAD_BYTES => len,
            Ok(len) => {
                tracing::warn!(
                    len,
                    "the manager announced an oversized frame; reconnecting"
                );
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "bad frame from the manager; reconnecting");
                break;
            }
        };
        payload.resize(len, 0);
        if read.read_exact(&mut payload).await.is_err() {
            break;
        }
        match codec.decode_payload(&payload) {
            Ok(decoded) => handle_answer(&decoded.message, &answers, &shared_md5),
            Err(e) => {
                // The manager encrypts with the same key; a frame that does not decode means
                // keys differ (the agent was removed and re-added on the manager).
                tracing::warn!(error = %e, "cannot decode a message from the manager");
            }
        }
    }
    answers.kill();
}

fn handle_answer(message: &[u8], answers: &Answers, shared_md5: &Mutex<Option<String>>) {
    if message.starts_with(ACK) || message == &ACK[..ACK.len() - 1] {
        answers.acks.fetch_add(1, SeqCst);
        answers.notify.notify_waiters();
    } else if let Some(err) = message.strip_prefix(b"#!-err") {
        let text = String::from_utf8_lossy(err).trim().to_owned();
        tracing::error!(refusal = %text, "the manager refused the agent");
        *answers
            .refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(text);
        answers.notify.notify_waiters();
    } else if let Some(rest) = message.strip_prefix(b"#!-up file ") {
        // `#!-up file <md5> <name>`: the manager pushes the group's shared configuration.
        // Vigil takes its configuration elsewhere, but reporting the pushed md5 in the next
        // keepalives tells the manager the agent is current, so it stops pushing.
        let text = String::from_utf8_lossy(rest);
        let mut parts = text.split_whitespace();
        if let (Some(md5), Some("merged.mg")) = (parts.next(), parts.next())
            && md5.len() == 32
            && md5.bytes().all(|b| b.is_ascii_hexdigit())
        {
            *shared_md5.lock().unwrap_or_else(PoisonError::into_inner) = Some(md5.to_owned());
        }
    } else if message.starts_with(b"#!-force_reconnect") {
        tracing::info!("the manager asked the agent to reconnect");
        answers.kill();
    } else if message.starts_with(b"#!-") {
        // File contents of a pushed configuration, `#!-close file`, active responses
        // (`#!-execd`) and module requests (`#!-req`): Vigil runs no commands on the
        // manager's word and has no Wazuh modules, so these are ignored on purpose.
        tracing::debug!(
            message = %String::from_utf8_lossy(&message[..message.len().min(64)]),
            "manager message ignored"
        );
    }
}

/// The keepalive text (see the protocol notes): uname, the shared file's md5, our IP.
fn keepalive_text(version: &str, shared_md5: Option<&str>, ip: &str) -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let host = read("/proc/sys/kernel/hostname");
    let release = read("/proc/sys/kernel/osrelease");
    let kversion = read("/proc/sys/kernel/version");
    let arch = std::env::consts::ARCH;
    let vigil = env!("CARGO_PKG_VERSION");
    let uname = format!(
        "Linux |{host} |{release} |{kversion} |{arch} [Vigil|vigil: {vigil}] - Wazuh {version}"
    );
    let md5 = shared_md5.unwrap_or("x");
    format!("#!-{uname}\n{md5} merged.mg\n#\"_agent_ip\":{ip}\n")
}

/// Sends a keepalive every `keepalive` and drops the connection when the manager has not
/// acknowledged any for `ack_timeout`.
async fn keep_alive(
    writer: Arc<tokio::sync::Mutex<Writer>>,
    answers: Arc<Answers>,
    shared_md5: Arc<Mutex<Option<String>>>,
    settings: ConnectionSettings,
    ip: String,
) {
    let mut acked_at = tokio::time::Instant::now();
    let mut last_acks = answers.acks.load(SeqCst);
    loop {
        tokio::time::sleep(settings.keepalive).await;
        let acks = answers.acks.load(SeqCst);
        if acks != last_acks {
            last_acks = acks;
            acked_at = tokio::time::Instant::now();
        }
        let mut w = writer.lock().await;
        if w.pings > acks && acked_at.elapsed() >= settings.ack_timeout {
            tracing::warn!(timeout = ?settings.ack_timeout,
                "no acknowledgement from the Wazuh manager; reconnecting");
            answers.kill();
            return;
        }
        let md5 = shared_md5
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        w.keepalive = keepalive_text(&settings.version, md5.as_deref(), &ip).into_bytes();
        if write_messages(&mut w, &[], true, settings.ack_timeout)
            .await
            .is_err()
        {
            answers.kill();
            return;
        }
    }
}

impl Transport for WazuhTransport {
    fn describe(&self) -> String {
        format!("wazuh://{}", self.peer())
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>> {
        Box::pin(async move { self.send(messages).await.map_err(Undelivered::none) })
    }

    fn idle(&mut self) -> BoxFuture<'_, Result<(), TransportError>> {
        // The manager lists an agent as active only while it connects and keeps alive.
        Box::pin(async move {
            if self.connected() {
                return Ok(());
            }
            self.connect().await
        })
    }

    fn connected(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| !c.answers.dead.load(SeqCst))
    }

    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(conn) = self.conn.take() {
                let mut w = conn.writer.lock().await;
                let _ = write_messages(
                    &mut w,
                    &[b"#!-agent shutdown "],
                    false,
                    Duration::from_secs(2),
                )
                .await;
                self.counters = w.encoder.counters();
                let _ = w.half.shutdown().await;
            }
            self.save_counters();
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_carry_the_version_the_shared_md5_and_the_ip() {
        let text = keepalive_text("v4.7.0", None, "10.1.2.3");
        assert!(text.starts_with("#!-Linux |"), "{text}");
        assert!(text.contains("] - Wazuh v4.7.0\n"), "{text}");
        assert!(
            text.ends_with("\nx merged.mg\n#\"_agent_ip\":10.1.2.3\n"),
            "{text}"
        );
        let md5 = "0123456789abcdef0123456789abcdef";
        assert!(
            keepalive_text("v4.7.0", Some(md5), "any").contains(&format!("\n{md5} merged.mg\n"))
        );
    }

    #[test]
    fn manager_answers_are_understood_and_the_rest_ignored() {
        let answers = Answers::default();
        let md5 = Mutex::new(None);
        handle_answer(b"#!-agent ack ", &answers, &md5);
        handle_answer(
            b"#!-up file 0123456789abcdef0123456789abcdef merged.mg\n",
            &answers,
            &md5,
        );
        handle_answer(b"#!-execd restart-wazuh", &answers, &md5);
        handle_answer(b"#!-req 42 agent getconfig", &answers, &md5);
        handle_answer(b"\xff\xfe garbage", &answers, &md5);
        assert_eq!(answers.acks.load(SeqCst), 1);
        assert_eq!(
            md5.lock().unwrap().as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(!answers.dead.load(SeqCst));
        handle_answer(br#"#!-err {"message":"version"}"#, &answers, &md5);
        assert!(
            answers
                .refusal
                .lock()
                .unwrap()
                .as_deref()
                .unwrap()
                .contains("version")
        );
        handle_answer(b"#!-force_reconnect", &answers, &md5);
        assert!(answers.dead.load(SeqCst));
    }
}
