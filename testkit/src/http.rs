//! A minimal NDJSON receiver over HTTP (axum on loopback) that can be taken down and brought
//! back on the same port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

/// The receiver. Lines of every accepted body are kept in arrival order.
pub struct NdjsonReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Shared>,
    server: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    lines: Mutex<Vec<String>>,
    /// While down, connections already open (axum serves each on a task of its own) are
    /// answered 503, as a load balancer does for a backend that is gone.
    down: std::sync::atomic::AtomicBool,
}

impl NdjsonReceiver {
    /// Starts on a free loopback port.
    pub async fn start() -> NdjsonReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = NdjsonReceiver {
            addr: listener.local_addr().unwrap(),
            state: Arc::new(Shared::default()),
            server: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/ingest", post(ingest))
            .with_state(self.state.clone());
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// The URL to POST to.
    pub fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    /// Stops listening and drops open connections (the port refuses connections).
    pub fn down(&mut self) {
        self.state
            .down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "cannot listen again on {}: {e}",
                        self.addr
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        };
        self.state
            .down
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.serve(listener);
    }

    /// The lines received so far.
    pub fn lines(&self) -> Vec<String> {
        self.state.lines.lock().unwrap().clone()
    }
}

impl Drop for NdjsonReceiver {
    fn drop(&mut self) {
        self.down();
    }
}

async fn ingest(State(state): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    if state.down.load(std::sync::atomic::Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    state
        .lines
        .lock()
        .unwrap()
        .extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    StatusCode::OK
}
