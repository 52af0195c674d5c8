//! Peers and fixtures: an HTTP receiver (axum), events, log capture (the SMTP server is
//! testkit's).

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use vigil_core::event::{Container, Detection, Event, PodRef, Severity};
use vigil_notify::{Notifier, NotifyConfig};

/// A detection event: `rule` at `level` in container `app` (image `nginx:1.27`) of pod
/// `pod` in namespace `ns`, on `node-1`.
pub fn event(id: &str, ns: &str, pod: &str, rule: &str, level: u8) -> Event {
    Event {
        id: id.into(),
        time: "2025-06-01T12:00:00.000000000Z".into(),
        ingest_time: "2025-06-01T12:00:00.100000000Z".into(),
        node: Some("node-1".into()),
        action: "start".into(),
        container: Some(Container {
            name: Some("app".into()),
            image: Some("nginx:1.27".into()),
            pod: Some(PodRef {
                namespace: Some(ns.into()),
                name: Some(pod.into()),
                uid: None,
            }),
            ..Container::default()
        }),
        detections: vec![Detection {
            rule: rule.into(),
            id: None,
            title: "Privileged container started".into(),
            level,
            severity: Severity::High,
            mitre: vec!["T1610".into()],
            tags: vec![],
        }],
        ..Event::default()
    }
}

/// A configuration from YAML, as a user writes it.
pub fn config(yaml: &str) -> NotifyConfig {
    yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"))
}

/// The value of one series (`name{labels}`) in the notifier's metrics.
pub fn metric(n: &Notifier, series: &str) -> u64 {
    let mut out = String::new();
    n.render_metrics(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{out}"))
}

/// Waits until `cond` holds, failing the test after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes a secret file the way a mounted Secret looks (with a final newline).
pub fn write_secret(path: &Path, value: &str) {
    // Replaced by rename, as the kubelet swaps a Secret's files.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{value}\n")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    /// `{auth}` and `{path}` and `{body}` are replaced by what the request carried, to
    /// check that echoed secrets are not logged.
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: String::new(),
        }
    }
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
    /// The answer once the script is used up.
    default: Mutex<Option<Answer>>,
    delay: Mutex<Duration>,
}

/// An HTTP endpoint on loopback that records every request (any path, any method) and
/// answers from a script, then 200.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    state: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl HttpReceiver {
    pub async fn start() -> HttpReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpReceiver {
            addr,
            state,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with these, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    /// Answers every request (after the script) with this.
    pub fn always(&self, answer: Answer) {
        *self.state.default.lock().unwrap() = Some(answer);
    }

    /// Waits this long before answering.
    pub fn delay(&self, d: Duration) {
        *self.state.delay.lock().unwrap() = d;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        wait_until(&format!("{n} requests"), timeout, || {
            self.state.received.lock().unwrap().len() >= n
        })
        .await;
        self.received()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(state): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let headers: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.default.lock().unwrap().clone())
        .unwrap_or(Answer::status(200));
    let text = answer
        .body
        .replace(
            "{auth}",
            headers.get("authorization").map_or("", String::as_str),
        )
        .replace("{path}", uri.path())
        .replace("{body}", &body);
    state.received.lock().unwrap().push(Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    });
    let mut response = (StatusCode::from_u16(answer.status).unwrap(), text).into_response();
    if let Some(r) = answer.retry_after {
        response
            .headers_mut()
            .insert("retry-after", r.parse().unwrap());
    }
    response
}

/// Captures the logs of the current thread (tests run on a current-thread runtime, so
/// the delivery tasks log on it too).
pub struct Logs {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

#[derive(Clone)]
struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> Logs {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Writer(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish();
        Logs {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}
