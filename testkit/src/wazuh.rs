//! A Wazuh manager stand-in: an authd-like enrollment server (TLS) and a remoted-like
//! receiver (TCP) that decrypts and checks every frame with Vigil's codec (itself checked
//! against Wazuh's own test vectors), answers startup and keepalives with `#!-agent ack `,
//! and can be told to refuse, drop connections or stall.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use vigil_core::outputs::wazuh::{
    AgentKey, BlockHeader, MAX_FRAME_PAYLOAD_BYTES, SecureCodec, frame_len,
};

use crate::certs::TestPki;

/// How the receiver treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decode, record and acknowledge.
    Normal,
    /// Close every new connection at once (a manager that is down behind a load balancer).
    Refuse,
    /// Accept and keep connections, read nothing (a hung manager).
    Stall,
    /// Answer `#!-err` to startup messages (a manager refusing this agent).
    RefuseStartup,
}

/// One decoded message.
#[derive(Debug, Clone)]
pub struct Received {
    /// The agent id of the key that decoded it.
    pub agent_id: String,
    /// The global and local counters.
    pub counters: (u64, u32),
    /// The connection it came on (1 = the first).
    pub connection: usize,
    /// The message text.
    pub message: String,
}

/// What the peer saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Enrollment request lines, exactly as received.
    pub enrollments: Vec<String>,
    /// Decoded messages in arrival order.
    pub messages: Vec<Received>,
    /// Problems: frames that did not decode, counters that went backwards, unknown agents.
    pub errors: Vec<String>,
    /// Connections accepted by the receiver.
    pub connections: usize,
}

impl Seen {
    /// Event messages (not control messages `#!-…`), in order.
    pub fn events(&self) -> Vec<&str> {
        self.messages
            .iter()
            .map(|m| m.message.as_str())
            .filter(|m| !m.starts_with("#!-"))
            .collect()
    }

    /// Control messages starting with `prefix`.
    pub fn control(&self, prefix: &str) -> usize {
        self.messages
            .iter()
            .filter(|m| m.message.starts_with(prefix))
            .count()
    }
}

/// Settings of the peer.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    /// The enrollment password authd requires; `None` for open enrollment.
    pub password: Option<String>,
    /// Refuse a name already enrolled (authd's default within an hour).
    pub refuse_duplicate_names: bool,
}

struct Shared {
    config: PeerConfig,
    keys: HashMap<String, AgentKey>,
    next_id: u32,
    seen: Seen,
    mode: Mode,
    last_counters: HashMap<String, (u64, u32)>,
}

/// The running peer. Its tasks end when it is dropped.
pub struct WazuhPeer {
    /// Where authd listens (TLS).
    pub authd: SocketAddr,
    /// Where remoted listens (TCP).
    pub remoted: SocketAddr,
    /// The PKI whose CA signed authd's certificate.
    pub pki: TestPki,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for WazuhPeer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.close_connections();
    }
}

impl WazuhPeer {
    /// Starts both servers on loopback, with a PKI written into `dir`.
    pub async fn start(dir: &std::path::Path, config: PeerConfig) -> WazuhPeer {
        Self::start_on(dir, config, 0, 0).await
    }

    /// Starts both servers on the given loopback ports (0 for any), e.g. to come back on the
    /// same ports after a simulated outage.
    pub async fn start_on(
        dir: &std::path::Path,
        config: PeerConfig,
        authd_port: u16,
        remoted_port: u16,
    ) -> WazuhPeer {
        let pki = TestPki::create(dir);
        let authd_listener = TcpListener::bind(("127.0.0.1", authd_port)).await.unwrap();
        let remoted_listener = TcpListener::bind(("127.0.0.1", remoted_port))
            .await
            .unwrap();
        let shared = Arc::new(Mutex::new(Shared {
            config,
            keys: HashMap::new(),
            next_id: 1,
            seen: Seen::default(),
            mode: Mode::Normal,
            last_counters: HashMap::new(),
        }));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config());
        let authd = authd_listener.local_addr().unwrap();
        let remoted = remoted_listener.local_addr().unwrap();
        let tasks = vec![
            tokio::spawn(run_authd(authd_listener, acceptor, shared.clone())),
            tokio::spawn(run_remoted(remoted_listener, shared.clone(), conns.clone())),
        ];
        WazuhPeer {
            authd,
            remoted,
            pki,
            shared,
            tasks,
            conns,
        }
    }

    /// Changes how new and current connections are treated.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().unwrap().mode = mode;
    }

    /// Drops every open receiver connection (a manager restart).
    pub fn close_connections(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Adds a key as if enrolled earlier (a `client.keys` line).
    pub fn add_key(&self, line: &str) {
        let key = AgentKey::parse_line(line).unwrap().unwrap();
        let mut s = self.shared.lock().unwrap();
        s.keys.insert(key.id().to_owned(), key);
    }

    /// Reads what the peer saw.
    pub fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.shared.lock().unwrap().seen)
    }

    /// Waits until `cond` holds on what the peer saw, or panics after `timeout`.
    pub async fn wait_for(&self, what: &str, timeout: Duration, cond: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.seen(&cond) {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let summary = self.seen(|s| {
                    format!(
                        "{} messages, {} enrollments, {} connections, errors {:?}",
                        s.messages.len(),
                        s.enrollments.len(),
                        s.connections,
                        s.errors
                    )
                });
                panic!("timed out waiting for {what}: {summary}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn run_authd(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Mutex<Shared>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut reader = BufReader::new(tls);
            let mut line = String::new();
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let answer = enroll(&shared, line.trim_end_matches('\n'));
            let mut tls = reader.into_inner();
            let _ = tls.write_all(answer.as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

/// Parses an authd request the way authd does (fields in order) and issues a key.
fn enroll(shared: &Mutex<Shared>, line: &str) -> String {
    let mut s = shared.lock().unwrap();
    s.seen.enrollments.push(line.to_owned());
    let mut rest = line;
    let mut password = None;
    if let Some(r) = rest.strip_prefix("OSSEC PASS: ") {
        let Some((pw, r)) = r.split_once(' ') else {
            return "ERROR: Invalid request for new agent\n".into();
        };
        password = Some(pw.to_owned());
        rest = r;
    }
    if s.config.password.is_some() && s.config.password != password {
        return "ERROR: Invalid password\n".into();
    }
    let Some(r) = rest.strip_prefix("OSSEC A:'") else {
        return "ERROR: Invalid request for new agent\n".into();
    };
    let Some((name, r)) = r.split_once('\'') else {
        return "ERROR: Invalid request for new agent\n".into();
    };
    let mut fields = HashMap::new();
    for part in r.split(" ").filter(|p| !p.is_empty()) {
        if let Some((k, v)) = part.split_once(":'") {
            fields.insert(k.to_owned(), v.trim_end_matches('\'').to_owned());
        }
    }
    if s.config.refuse_duplicate_names && s.keys.values().any(|k| k.name() == name) {
        return format!("ERROR: Duplicate agent name: {name}\n");
    }
    let id = format!("{:03}", s.next_id);
    s.next_id += 1;
    let key: String = {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        (0..4u64)
            .map(|i| format!("{:016x}", state.hash_one((&id, i))))
            .collect()
    };
    let ip = fields.get("IP").cloned().unwrap_or_else(|| "any".into());
    let issued = format!("{id} {name} {ip} {key}");
    let parsed = AgentKey::parse_line(&issued).unwrap().unwrap();
    s.keys.insert(id, parsed);
    format!("OSSEC K:'{issued}'\n")
}

async fn run_remoted(
    listener: TcpListener,
    shared: Arc<Mutex<Shared>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (mode, connection) = {
            let mut s = shared.lock().unwrap();
            s.seen.connections += 1;
            (s.mode, s.seen.connections)
        };
        if mode == Mode::Refuse {
            drop(tcp);
            continue;
        }
        let task = tokio::spawn(serve_connection(tcp, shared.clone(), connection));
        conns.lock().unwrap().push(task);
    }
}

async fn serve_connection(mut tcp: TcpStream, shared: Arc<Mutex<Shared>>, connection: usize) {
    let mut counter: u32 = 0;
    loop {
        if shared.lock().unwrap().mode == Mode::Stall {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let mut prefix = [0u8; 4];
        if tcp.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let len = match frame_len(&prefix) {
            Ok(len) if len <= MAX_FRAME_PAYLOAD_BYTES => len,
            other => {
                record_error(&shared, format!("bad frame length: {other:?}"));
                return;
            }
        };
        let mut payload = vec![0u8; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            return;
        }
        // A frame read just as the manager hangs is held, not processed, until it recovers
        // (or the connection is closed, losing it as a crashed manager would).
        while shared.lock().unwrap().mode == Mode::Stall {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(reply) = receive(&shared, &payload, connection) else {
            continue;
        };
        let (key, message) = reply;
        counter += 1;
        let codec = SecureCodec::new(&key).without_id_prefix();
        let frame = codec
            .encode_frame(
                BlockHeader {
                    rand: 12345,
                    global: 0,
                    local: counter,
                },
                message.as_bytes(),
            )
            .unwrap();
        if tcp.write_all(&frame).await.is_err() {
            return;
        }
    }
}

fn record_error(shared: &Mutex<Shared>, e: String) {
    shared.lock().unwrap().seen.errors.push(e);
}

/// Decodes one payload, records it, and returns the reply to send (key and text), if any.
fn receive(
    shared: &Mutex<Shared>,
    payload: &[u8],
    connection: usize,
) -> Option<(AgentKey, String)> {
    let mut s = shared.lock().unwrap();
    let id = payload
        .strip_prefix(b"!")
        .and_then(|p| p.iter().position(|&b| b == b'!').map(|end| &p[..end]))
        .map(|id| String::from_utf8_lossy(id).into_owned());
    let Some(key) = id.as_ref().and_then(|id| s.keys.get(id)).cloned() else {
        s.seen
            .errors
            .push(format!("frame from an unknown agent {id:?}"));
        return None;
    };
    let decoded = match SecureCodec::new(&key).decode_payload(payload) {
        Ok(d) => d,
        Err(e) => {
            s.seen.errors.push(format!("undecodable frame: {e}"));
            return None;
        }
    };
    let counters = (decoded.global, decoded.local);
    if let Some(last) = s.last_counters.get(key.id()).copied()
        && counters <= last
    {
        s.seen.errors.push(format!(
            "counters went backwards for {}: {last:?} then {counters:?}",
            key.id()
        ));
    }
    s.last_counters.insert(key.id().to_owned(), counters);
    let message = String::from_utf8_lossy(&decoded.message).into_owned();
    s.seen.messages.push(Received {
        agent_id: key.id().to_owned(),
        counters,
        connection,
        message: message.clone(),
    });
    if message.starts_with("#!-agent startup") {
        if s.mode == Mode::RefuseStartup {
            return Some((
                key,
                r#"#!-err {"message":"Agent version must be lower or equal to manager version"}"#
                    .into(),
            ));
        }
        return Some((key, "#!-agent ack ".into()));
    }
    // Anything else starting with `#!-` and not a shutdown is a keepalive.
    if message.starts_with("#!-") && !message.starts_with("#!-agent shutdown") {
        return Some((key, "#!-agent ack ".into()));
    }
    None
}
