//! The http output against a real HTTP(S) server on loopback, driven as the agent drives it:
//! built from its configuration, fed with `Output::send`.

use crate::support;

use std::collections::{HashSet, VecDeque};
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use support::certs::TestPki;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use vigil_core::event::Event;
use vigil_core::outputs::{BuildContext, Output, OutputConfig, OutputCounters};

/// How long a condition may take before a test gives up.
const DEADLINE: Duration = Duration::from_secs(30);

/// One request the server answered.
#[derive(Debug, Clone)]
struct Request {
    headers: HeaderMap,
    /// The event ids of the body, in order; `None` when the body was not valid NDJSON of
    /// events.
    ids: Option<Vec<String>>,
    status: StatusCode,
    at: Instant,
}

/// An answer the server gives.
#[derive(Debug, Clone, Copy)]
struct Reply {
    status: StatusCode,
    retry_after: Option<u64>,
    delay: Duration,
}

impl Reply {
    fn status(status: StatusCode) -> Reply {
        Reply {
            status,
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
}

type Policy = Box<dyn Fn(&HeaderMap, &[String], usize) -> Reply + Send + Sync>;

/// What the server has seen and how it answers.
struct Behaviour {
    requests: Mutex<Vec<Request>>,
    /// Answers for the next requests, in order; then `policy` decides.
    script: Mutex<VecDeque<Reply>>,
    /// Decides from the headers, the event ids and the decoded body size.
    policy: Mutex<Policy>,
}

impl Behaviour {
    fn new() -> Arc<Behaviour> {
        Arc::new(Behaviour {
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            policy: Mutex::new(Box::new(|_, _, _| Reply::status(StatusCode::OK))),
        })
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The event ids the server accepted (2xx), in the order it accepted them.
    fn accepted(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.status.is_success())
            .flat_map(|r| r.ids.unwrap_or_default())
            .collect()
    }
}

async fn ingest(State(b): State<Arc<Behaviour>>, headers: HeaderMap, body: Bytes) -> Response {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let decoded = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map(|_| out)
            .ok()
    } else {
        Some(body.to_vec())
    };
    let ids = decoded.as_deref().and_then(ndjson_ids);
    let size = decoded.as_ref().map_or(0, Vec::len);
    let scripted = b.script.lock().unwrap().pop_front();
    let reply = scripted.unwrap_or_else(|| {
        (b.policy.lock().unwrap())(&headers, ids.as_deref().unwrap_or(&[]), size)
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    b.requests.lock().unwrap().push(Request {
        headers,
        ids,
        status: reply.status,
        at: Instant::now(),
    });
    let mut response = reply.status.into_response();
    if let Some(secs) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// The ids of a body that is NDJSON of events: every line a JSON event, newline-terminated.
fn ndjson_ids(body: &[u8]) -> Option<Vec<String>> {
    if !body.ends_with(b"\n") {
        return None;
    }
    body[..body.len() - 1]
        .split(|&b| b == b'\n')
        .map(|line| serde_json::from_slice::<Event>(line).ok().map(|e| e.id))
        .collect()
}

/// A byte stream the server can cut off, as a server going down does.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Conn {
    inner: Box<dyn Stream>,
    killed: Arc<AtomicBool>,
}

fn reset() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset)
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed.load(Relaxed) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed.load(Relaxed) {
            return Poll::Ready(Err(reset()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

struct Listener {
    tcp: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    killed: Arc<AtomicBool>,
}

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            let inner: Box<dyn Stream> = match &self.tls {
                None => Box::new(tcp),
                // A client that does not trust the certificate fails here; the server goes on.
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(tls) => Box::new(tls),
                    Err(_) => continue,
                },
            };
            return (
                Conn {
                    inner,
                    killed: self.killed.clone(),
                },
                addr,
            );
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// An HTTP(S) server on loopback that can go down and come back on the same port.
struct Server {
    behaviour: Arc<Behaviour>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    running: Option<(JoinHandle<()>, Arc<AtomicBool>)>,
}

impl Server {
    async fn start(pki: Option<&TestPki>) -> Server {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut server = Server {
            behaviour: Behaviour::new(),
            addr: tcp.local_addr().unwrap(),
            tls: pki.map(|p| tokio_rustls::TlsAcceptor::from(p.server_config())),
            running: None,
        };
        server.serve(tcp);
        server
    }

    fn serve(&mut self, tcp: tokio::net::TcpListener) {
        let killed = Arc::new(AtomicBool::new(false));
        let listener = Listener {
            tcp,
            tls: self.tls.clone(),
            killed: killed.clone(),
        };
        let app = Router::new()
            .route("/ingest", post(ingest))
            .layer(DefaultBodyLimit::disable())
            .with_state(self.behaviour.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        self.running = Some((task, killed));
    }

    /// Stops listening and breaks the open connections.
    fn down(&mut self) {
        if let Some((task, killed)) = self.running.take() {
            killed.store(true, Relaxed);
            task.abort();
        }
    }

    async fn up(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let tcp = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(tcp) => break tcp,
                // The port is free once the old listener's task has ended.
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
            }
        };
        self.serve(tcp);
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        // The test certificate names `localhost`, so TLS URLs use the name.
        let host = if self.tls.is_some() {
            "localhost".to_owned()
        } else {
            self.addr.ip().to_string()
        };
        format!("{scheme}://{host}:{}/ingest", self.addr.port())
    }

    fn set_policy(
        &self,
        policy: impl Fn(&HeaderMap, &[String], usize) -> Reply + Send + Sync + 'static,
    ) {
        *self.behaviour.policy.lock().unwrap() = Box::new(policy);
    }

    fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.behaviour.script.lock().unwrap().extend(replies);
    }
}

/// Builds the output from its JSON configuration, as the agent does. `extra` adds or
/// replaces fields of the http section.
fn build(url: &str, state_dir: &Path, extra: serde_json::Value) -> Box<dyn Output> {
    let mut cfg = json!({ "type": "http", "url": url });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg: OutputConfig = serde_json::from_value(cfg).unwrap();
    cfg.build(&BuildContext {
        state_dir: state_dir.to_path_buf(),
        node: "node-1".into(),
    })
    .unwrap()
}

fn event(tag: &str, i: usize) -> Event {
    Event {
        id: format!("{tag}-{i:06}"),
        time: "2024-05-01T10:00:00.000000000Z".into(),
        ingest_time: "2024-05-01T10:00:00.000000000Z".into(),
        action: "create".into(),
        ..Event::default()
    }
}

fn events(tag: &str, range: std::ops::Range<usize>) -> Vec<Event> {
    range.map(|i| event(tag, i)).collect()
}

fn ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn counter(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

fn counters(out: &dyn Output) -> Arc<OutputCounters> {
    out.counters().unwrap()
}

/// Stops the output's sender so the spool directory is free again.
async fn stop(mut out: Box<dyn Output>) {
    out.flush().await.unwrap();
}

/// The accepted ids with later copies of an id removed.
/// Sends the next five events of a steady load.
async fn send_some(out: &mut dyn Output, sent: &mut Vec<Event>) {
    let batch = events("load", sent.len()..sent.len() + 5);
    out.send(&batch).await.unwrap();
    sent.extend(batch);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn first_copies(accepted: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    accepted
        .iter()
        .filter(|id| seen.insert(id.as_str()))
        .cloned()
        .collect()
}

/// Standard base64, to check the basic authentication header independently of the output.
fn base64(input: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_gzipped_ndjson_with_the_bearer_token_read_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-1\n").unwrap();
    let server = Server::start(None).await;
    let mut out = build(
        &server.url(),
        dir.path(),
        json!({
            "compression": "gzip",
            "auth": { "bearer_token_file": token },
            "headers": { "X-Tenant": "prod" },
            "max_batch_events": 4,
        }),
    );
    let sent = events("a", 0..15);
    for batch in sent.chunks(5) {
        out.send(batch).await.unwrap();
    }
    let b = server.behaviour.clone();
    wait_until("all events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(b.accepted(), ids(&sent), "each event once, in order");
    for r in b.requests() {
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        assert_eq!(r.headers["content-encoding"], "gzip");
        assert_eq!(r.headers["authorization"], "Bearer tok-1");
        assert_eq!(r.headers["x-tenant"], "prod");
        let lines = r.ids.expect("the body is gzip of NDJSON events");
        assert!(
            !lines.is_empty() && lines.len() <= 4,
            "{} lines",
            lines.len()
        );
    }

    // A rotated Secret is used from the next request on, without a restart.
    std::fs::write(&token, "tok-2\n").unwrap();
    let more = events("b", 0..3);
    out.send(&more).await.unwrap();
    wait_until("the next batch arrives", || {
        b.accepted().len() >= sent.len() + more.len()
    })
    .await;
    let last = b.requests().pop().unwrap();
    assert_eq!(last.headers["authorization"], "Bearer tok-2");
    let c = counters(out.as_ref());
    assert_eq!(counter(&c.events_delivered), 18);
    assert_eq!(counter(&c.rejected_events), 0);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncompressed_bodies_carry_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "pa:ss w0rd\n").unwrap();
    let server = Server::start(None).await;
    let mut out = build(
        &server.url(),
        dir.path(),
        json!({ "auth": { "basic": { "username": "vigil", "password_file": password } } }),
    );
    let sent = events("a", 0..3);
    out.send(&sent).await.unwrap();
    let b = server.behaviour.clone();
    wait_until("the events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(b.accepted(), ids(&sent));
    let r = &b.requests()[0];
    assert!(r.headers.get("content-encoding").is_none());
    assert_eq!(
        r.headers["authorization"].to_str().unwrap(),
        format!("Basic {}", base64(b"vigil:pa:ss w0rd"))
    );
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_retried_until_the_secret_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "old").unwrap();
    let server = Server::start(None).await;
    server.set_policy(|headers, _, _| {
        if headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer new")
        {
            Reply::status(StatusCode::OK)
        } else {
            Reply::status(StatusCode::UNAUTHORIZED)
        }
    });
    let mut out = build(
        &server.url(),
        dir.path(),
        json!({ "auth": { "bearer_token_file": token } }),
    );
    let sent = events("a", 0..4);
    out.send(&sent).await.unwrap();
    let c = counters(out.as_ref());
    wait_until("the 401 is retried", || counter(&c.retries) >= 2).await;
    assert!(server.behaviour.accepted().is_empty());
    std::fs::write(&token, "new").unwrap();
    let b = server.behaviour.clone();
    wait_until("the events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(b.accepted(), ids(&sent));
    assert_eq!(counter(&c.rejected_events), 0);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_delivers_and_a_wrong_ca_keeps_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(&dir.path().join("pki"));
    let server = Server::start(Some(&pki)).await;
    let b = server.behaviour.clone();

    let mut good = build(
        &server.url(),
        dir.path(),
        json!({ "name": "good", "tls": { "ca_file": pki.ca_cert } }),
    );
    let first = events("good", 0..5);
    good.send(&first).await.unwrap();
    wait_until("the events arrive over TLS", || {
        b.accepted().len() >= first.len()
    })
    .await;
    assert_eq!(b.accepted(), ids(&first));
    stop(good).await;

    let mut wrong = build(
        &server.url(),
        dir.path(),
        json!({ "name": "wrong", "tls": { "ca_file": pki.other_ca_cert } }),
    );
    let second = events("wrong", 0..5);
    wrong.send(&second).await.unwrap();
    let c = counters(wrong.as_ref());
    wait_until("the handshake failure is retried", || {
        counter(&c.retries) >= 2
    })
    .await;
    assert_eq!(b.accepted(), ids(&first), "nothing went through");
    assert_eq!(counter(&c.rejected_events), 0);
    assert_eq!(counter(&c.spool_records), 1, "the batch waits in the spool");
    stop(wrong).await;

    // Fixing the CA and restarting delivers what waited.
    let mut fixed = build(
        &server.url(),
        dir.path(),
        json!({ "name": "wrong", "tls": { "ca_file": pki.ca_cert } }),
    );
    wait_until("the spooled events arrive", || {
        b.accepted().len() >= first.len() + second.len()
    })
    .await;
    assert_eq!(b.accepted()[first.len()..], ids(&second));
    fixed.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_under_steady_load_loses_nothing_and_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(None).await;
    let max_batch_events = 8;
    let mut out = build(
        &server.url(),
        dir.path(),
        json!({ "max_batch_events": max_batch_events, "timeout_ms": 2000 }),
    );
    let c = counters(out.as_ref());
    let b = server.behaviour.clone();
    let mut sent = Vec::new();
    for _ in 0..20 {
        send_some(out.as_mut(), &mut sent).await;
    }
    server.down();
    let down_at = Instant::now();
    let retries_before = counter(&c.retries);
    // Load goes on while the server is down, until the output has noticed a few times.
    while counter(&c.retries) < retries_before + 2 || down_at.elapsed() < Duration::from_secs(1) {
        send_some(out.as_mut(), &mut sent).await;
        assert!(down_at.elapsed() < DEADLINE, "the outage was not noticed");
    }
    server.up().await;
    for _ in 0..20 {
        send_some(out.as_mut(), &mut sent).await;
    }
    wait_until("every event arrives", || {
        first_copies(&b.accepted()).len() >= sent.len()
    })
    .await;
    let accepted = b.accepted();
    assert_eq!(first_copies(&accepted), ids(&sent), "every event, in order");
    let duplicates = accepted.len() - sent.len();
    let retries = counter(&c.retries);
    assert!(
        duplicates as u64 <= retries * max_batch_events,
        "{duplicates} duplicates for {retries} retries"
    );
    assert_eq!(counter(&c.rejected_events), 0);
    assert_eq!(counter(&c.dropped_events), 0);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_timeout_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    let slow = Reply {
        delay: Duration::from_millis(1500),
        ..Reply::status(StatusCode::OK)
    };
    server.script([slow, slow]);
    let mut out = build(&server.url(), dir.path(), json!({ "timeout_ms": 300 }));
    let sent = events("a", 0..6);
    out.send(&sent).await.unwrap();
    let b = server.behaviour.clone();
    let c = counters(out.as_ref());
    wait_until("the events arrive", || {
        first_copies(&b.accepted()).len() >= sent.len()
    })
    .await;
    assert_eq!(first_copies(&b.accepted()), ids(&sent));
    assert!(counter(&c.retries) >= 2, "each timeout is a retry");
    assert_eq!(counter(&c.rejected_events), 0);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    server.script([
        Reply::status(StatusCode::INTERNAL_SERVER_ERROR),
        Reply::status(StatusCode::SERVICE_UNAVAILABLE),
    ]);
    let mut out = build(&server.url(), dir.path(), json!({}));
    let sent = events("a", 0..6);
    out.send(&sent).await.unwrap();
    let b = server.behaviour.clone();
    let c = counters(out.as_ref());
    wait_until("the events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(
        b.accepted(),
        ids(&sent),
        "once each: a 5xx body was not taken"
    );
    assert_eq!(counter(&c.retries), 2);
    assert_eq!(counter(&c.rejected_events), 0);
    stop(out).await;
}

/// A receiver that answers its first request with a 500 whose body never ends, and every
/// later one with 200; it counts the requests it accepted.
async fn endless_error_then_ok() -> (String, Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ingest", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicU64::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let endless = std::mem::take(&mut first);
            let counted = counted.clone();
            tokio::spawn(async move {
                // Reads the request (headers, then the announced body) before answering.
                let mut req = Vec::new();
                let mut buf = [0u8; 64 * 1024];
                loop {
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                if endless {
                    let head =
                        b"HTTP/1.1 500 Internal Server Error\r\ntransfer-encoding: chunked\r\n\r\n";
                    if conn.write_all(head).await.is_err() {
                        return;
                    }
                    let chunk = format!("10000\r\n{}\r\n", "e".repeat(0x10000));
                    while conn.write_all(chunk.as_bytes()).await.is_ok() {}
                } else {
                    counted.fetch_add(1, Relaxed);
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                        .await;
                }
            });
        }
    });
    (url, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_error_body_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let (url, accepted) = endless_error_then_ok().await;
    // A request timeout longer than the wait below: reading the error body to its end
    // would hold the retry back past it.
    let mut out = build(&url, dir.path(), json!({ "timeout_ms": 120_000 }));
    let sent = events("e", 0..3);
    out.send(&sent).await.unwrap();
    let c = counters(out.as_ref());
    wait_until("the events are delivered after one retry", || {
        accepted.load(Relaxed) >= 1
    })
    .await;
    wait_until("the delivery is counted", || {
        counter(&c.events_delivered) == sent.len() as u64
    })
    .await;
    assert_eq!(counter(&c.retries), 1);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    let retry_after = 2;
    server.script([Reply {
        retry_after: Some(retry_after),
        ..Reply::status(StatusCode::TOO_MANY_REQUESTS)
    }]);
    let mut out = build(&server.url(), dir.path(), json!({}));
    let sent = events("a", 0..3);
    out.send(&sent).await.unwrap();
    let b = server.behaviour.clone();
    wait_until("the events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(b.accepted(), ids(&sent));
    let requests = b.requests();
    assert_eq!(requests[0].status, StatusCode::TOO_MANY_REQUESTS);
    let gap = requests[1].at - requests[0].at;
    assert!(
        gap >= Duration::from_secs(retry_after),
        "the next attempt came after {gap:?}"
    );
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_too_large_splits_the_batch_and_rejects_a_lone_oversized_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    let most_lines = 3;
    let most_bytes = 4096;
    server.set_policy(move |_, ids, size| {
        if ids.len() > most_lines || size > most_bytes {
            Reply::status(StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            Reply::status(StatusCode::OK)
        }
    });
    let mut out = build(&server.url(), dir.path(), json!({}));
    let c = counters(out.as_ref());
    let b = server.behaviour.clone();

    let sent = events("a", 0..10);
    out.send(&sent).await.unwrap();
    wait_until("the events arrive", || b.accepted().len() >= sent.len()).await;
    assert_eq!(b.accepted(), ids(&sent), "once each, in order");
    for r in b.requests().iter().filter(|r| r.status.is_success()) {
        assert!(r.ids.as_ref().unwrap().len() <= most_lines);
    }

    let mut huge = event("huge", 0);
    huge.action = "x".repeat(most_bytes * 2);
    out.send(std::slice::from_ref(&huge)).await.unwrap();
    let after = events("b", 0..2);
    out.send(&after).await.unwrap();
    wait_until("the next batch arrives", || {
        b.accepted().len() >= sent.len() + after.len()
    })
    .await;
    assert_eq!(b.accepted()[sent.len()..], ids(&after));
    assert_eq!(counter(&c.rejected_events), 1, "the oversized event");
    assert_eq!(counter(&c.events_delivered), 12);
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_drops_the_events_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    server.set_policy(|_, ids, _| {
        if ids.iter().any(|id| id.starts_with("poison")) {
            Reply::status(StatusCode::BAD_REQUEST)
        } else {
            Reply::status(StatusCode::OK)
        }
    });
    let mut out = build(&server.url(), dir.path(), json!({}));
    let c = counters(out.as_ref());
    let b = server.behaviour.clone();
    let before = events("a", 0..3);
    let poison = events("poison", 0..2);
    let after = events("b", 0..3);
    out.send(&before).await.unwrap();
    out.send(&poison).await.unwrap();
    out.send(&after).await.unwrap();
    wait_until("the good events arrive", || {
        b.accepted().len() >= before.len() + after.len()
    })
    .await;
    wait_until("the rejected events are counted", || {
        counter(&c.rejected_events) >= 2
    })
    .await;
    assert_eq!(b.accepted(), [ids(&before), ids(&after)].concat());
    assert_eq!(counter(&c.rejected_events), 2);
    assert_eq!(counter(&c.retries), 0, "a 400 is not retried");
    let poisoned = b
        .requests()
        .iter()
        .filter(|r| r.status == StatusCode::BAD_REQUEST)
        .count();
    assert_eq!(poisoned, 1, "sent once");
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_body_does_not_take_the_rest_of_its_batch_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(None).await;
    server.set_policy(|_, ids, _| {
        if ids.iter().any(|id| id.starts_with("poison")) {
            Reply::status(StatusCode::BAD_REQUEST)
        } else {
            Reply::status(StatusCode::OK)
        }
    });
    let mut out = build(&server.url(), dir.path(), json!({"max_batch_events": 2}));
    let c = counters(out.as_ref());
    let b = server.behaviour.clone();
    let good_before = events("a", 0..2);
    let poison = events("poison", 0..2);
    let good_after = events("b", 0..3);
    let batch = [good_before.clone(), poison, good_after.clone()].concat();
    out.send(&batch).await.unwrap();
    wait_until("the good bodies arrive", || {
        b.accepted().len() >= good_before.len() + good_after.len()
    })
    .await;
    assert_eq!(b.accepted(), [ids(&good_before), ids(&good_after)].concat());
    assert_eq!(counter(&c.rejected_events), 2, "only the rejected body");
    stop(out).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spool_outlives_the_output_and_the_next_one_delivers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(None).await;
    server.down();
    let mut out = build(&server.url(), dir.path(), json!({}));
    let sent = events("a", 0..12);
    for batch in sent.chunks(4) {
        out.send(batch).await.unwrap();
    }
    let c = counters(out.as_ref());
    wait_until("a delivery fails", || counter(&c.retries) >= 1).await;
    // The process dies: no flush, the output is just gone.
    drop(out);

    server.up().await;
    let b = server.behaviour.clone();
    // The old sender lets go of the spool directory at its next retry.
    let deadline = Instant::now() + DEADLINE;
    let cfg: OutputConfig =
        serde_json::from_value(json!({ "type": "http", "url": server.url() })).unwrap();
    let ctx = BuildContext {
        state_dir: dir.path().to_path_buf(),
        node: "node-1".into(),
    };
    let restarted = loop {
        match cfg.build(&ctx) {
            Ok(out) => break out,
            Err(e) => {
                assert!(Instant::now() < deadline, "the spool stays locked: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_until("the spooled events arrive", || {
        first_copies(&b.accepted()).len() >= sent.len()
    })
    .await;
    assert_eq!(first_copies(&b.accepted()), ids(&sent));
    assert_eq!(
        b.accepted().len(),
        sent.len(),
        "nothing had been delivered twice"
    );
    stop(restarted).await;
}
