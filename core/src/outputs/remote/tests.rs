use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// The event's id is the message.
struct IdEncoder;

impl MessageEncoder for IdEncoder {
    fn encode(&self, event: &Event, out: &mut Vec<u8>) -> Result<Encoded, EncodeError> {
        if event.id == "unencodable" {
            return Err(EncodeError::TooLarge("test".into()));
        }
        out.extend_from_slice(event.id.as_bytes());
        Ok(Encoded::Whole)
    }
}

/// A peer that records what it got; while `down`, fails after accepting `accept_when_down`
/// messages of each delivery; rejects messages named `bad`.
#[derive(Clone, Default)]
struct Peer {
    got: Arc<Mutex<Vec<String>>>,
    down: Arc<std::sync::atomic::AtomicBool>,
    accept_when_down: Arc<AtomicUsize>,
    attempts: Arc<AtomicUsize>,
}

impl Transport for Peer {
    fn describe(&self) -> String {
        "test peer".into()
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [&'a [u8]],
    ) -> BoxFuture<'a, Result<(), Undelivered>> {
        Box::pin(async move {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let mut got = self.got.lock().unwrap();
            if self.down.load(Ordering::SeqCst) {
                let n = self
                    .accept_when_down
                    .load(Ordering::SeqCst)
                    .min(messages.len());
                for m in &messages[..n] {
                    got.push(String::from_utf8_lossy(m).into_owned());
                }
                return Err(Undelivered {
                    delivered: n,
                    error: TransportError::Refused("down".into()),
                });
            }
            if let Some(bad) = messages.iter().position(|m| *m == b"bad") {
                got.extend(
                    messages[..bad]
                        .iter()
                        .map(|m| String::from_utf8_lossy(m).into_owned()),
                );
                return Err(Undelivered {
                    delivered: bad,
                    error: TransportError::Rejected {
                        reason: "bad".into(),
                        count: 1,
                    },
                });
            }
            got.extend(
                messages
                    .iter()
                    .map(|m| String::from_utf8_lossy(m).into_owned()),
            );
            Ok(())
        })
    }
}

fn events(ids: impl IntoIterator<Item = String>) -> Vec<Event> {
    ids.into_iter()
        .map(|id| Event {
            id,
            ..Event::default()
        })
        .collect()
}

fn fast() -> DeliverySettings {
    DeliverySettings {
        max_eps: None,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        drain_timeout: Duration::from_secs(5),
    }
}

fn start(dir: &std::path::Path, peer: &Peer, settings: DeliverySettings) -> RemoteOutput {
    RemoteOutput::start(
        "test".into(),
        dir.to_path_buf(),
        &SpoolSettings::default(),
        Arc::new(IdEncoder),
        Box::new(peer.clone()),
        settings,
    )
    .unwrap()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn records_split_back_into_their_messages() {
    let mut record = Vec::new();
    for m in [&b"a"[..], b"", b"ccc"] {
        push_message(&mut record, m);
    }
    assert_eq!(
        split_messages(&record).unwrap(),
        vec![&b"a"[..], b"", b"ccc"]
    );
    assert!(split_messages(&record[..record.len() - 1]).is_err());
    assert!(split_messages(&[1, 0]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    peer.down.store(true, Ordering::SeqCst);
    peer.accept_when_down.store(1, Ordering::SeqCst);
    let mut out = start(dir.path(), &peer, fast());
    for b in 0..5 {
        out.send(&events((0..10).map(|i| format!("{b}-{i}"))))
            .await
            .unwrap();
    }
    wait_for("several failed attempts", || {
        peer.attempts.load(Ordering::SeqCst) > 5
    })
    .await;
    let counters = out.counters().unwrap();
    assert!(counters.spool_records.load(Relaxed) > 0);
    peer.down.store(false, Ordering::SeqCst);
    wait_for("everything delivered", || {
        peer.got.lock().unwrap().len() == 50
    })
    .await;
    let got = peer.got.lock().unwrap().clone();
    let want: Vec<String> = (0..5)
        .flat_map(|b| (0..10).map(move |i| format!("{b}-{i}")))
        .collect();
    assert_eq!(
        got, want,
        "in order, each exactly once: the peer confirmed what it took"
    );
    assert_eq!(counters.events_delivered.load(Relaxed), 50);
    assert!(counters.retries.load(Relaxed) > 0);
    out.flush().await.unwrap();
    assert_eq!(counters.spool_records.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_spooled_is_delivered_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dead = Peer::default();
    dead.down.store(true, Ordering::SeqCst);
    let mut out = start(dir.path(), &dead, fast());
    out.send(&events((0..20).map(|i| format!("e{i}"))))
        .await
        .unwrap();
    let settings = DeliverySettings {
        drain_timeout: Duration::from_millis(50),
        ..fast()
    };
    out.settings = settings;
    out.flush().await.unwrap();
    drop(out);

    let alive = Peer::default();
    let mut out = start(dir.path(), &alive, fast());
    wait_for("replayed", || alive.got.lock().unwrap().len() == 20).await;
    out.flush().await.unwrap();
    assert_eq!(alive.got.lock().unwrap()[0], "e0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_and_unencodable_events_are_counted_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    let mut out = start(dir.path(), &peer, fast());
    out.send(&events(["a".into(), "unencodable".into(), "b".into()]))
        .await
        .unwrap();
    out.send(&events(["x".into(), "bad".into(), "y".into()]))
        .await
        .unwrap();
    out.send(&events(["c".into()])).await.unwrap();
    wait_for("c delivered", || {
        peer.got.lock().unwrap().last().map(String::as_str) == Some("c")
    })
    .await;
    let counters = out.counters().unwrap();
    assert_eq!(counters.encode_errors.load(Relaxed), 1);
    assert_eq!(counters.rejected_events.load(Relaxed), 1);
    assert_eq!(
        *peer.got.lock().unwrap(),
        ["a", "b", "x", "y", "c"],
        "only the rejected event is dropped; the rest of its batch goes on"
    );
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    let settings = DeliverySettings {
        max_eps: Some(100),
        ..fast()
    };
    let mut out = start(dir.path(), &peer, settings);
    let begin = tokio::time::Instant::now();
    out.send(&events((0..250).map(|i| format!("{i}"))))
        .await
        .unwrap();
    wait_for("all delivered", || peer.got.lock().unwrap().len() == 250).await;
    // A full bucket of 100, then 150 more at 100/s.
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_blocks_or_drops_as_configured() {
    let big = |n: usize| events((0..n).map(|i| format!("{i:0>2000}")));
    for (policy, expect_block) in [
        (SpoolFullPolicy::Block, true),
        (SpoolFullPolicy::DropNewest, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let dead = Peer::default();
        dead.down.store(true, Ordering::SeqCst);
        let spool = SpoolSettings {
            max_mib: 1,
            when_full: policy,
            ..SpoolSettings::default()
        };
        let mut out = RemoteOutput::start(
            "test".into(),
            dir.path().to_path_buf(),
            &spool,
            Arc::new(IdEncoder),
            Box::new(dead.clone()),
            fast(),
        )
        .unwrap();
        let mut refused = 0;
        for _ in 0..20 {
            if out.send(&big(50)).await.is_err() {
                refused += 1;
            }
        }
        let c = out.counters().unwrap();
        assert!(c.spool_bytes.load(Relaxed) <= 1024 * 1024);
        if expect_block {
            assert!(refused > 0, "block: the router is told to wait");
            assert_eq!(c.dropped_events.load(Relaxed), 0);
        } else {
            assert_eq!(refused, 0);
            assert!(c.dropped_events.load(Relaxed) >= 50, "drop_newest counts");
        }
        out.settings.drain_timeout = Duration::from_millis(10);
        out.flush().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_a_spool_record_is_split_and_a_retry_appends_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let peer = Peer::default();
    peer.down.store(true, Ordering::SeqCst);
    let spool = SpoolSettings {
        max_mib: 1,
        ..SpoolSettings::default()
    };
    let mut out = RemoteOutput::start(
        "test".into(),
        dir.path().to_path_buf(),
        &spool,
        Arc::new(IdEncoder),
        Box::new(peer.clone()),
        fast(),
    )
    .unwrap();
    // 10 KB messages; a record holds at most 128 KiB, a batch here is ~400 KB.
    let batch = |b: usize| events((0..40).map(move |i| format!("{b:02}-{i:02}-{:0>10000}", 0)));
    let mut sent = Vec::new();
    let mut b = 0;
    // Fill the spool until a batch is refused part-way.
    let refused = loop {
        let events = batch(b);
        match out.send(&events).await {
            Ok(()) => sent.extend(events),
            Err(_) => break events,
        }
        b += 1;
        assert!(b < 10, "the 1 MiB spool should fill up");
    };
    // The peer comes back; the router would retry the refused batch until it fits.
    peer.down.store(false, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while out.send(&refused).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the spool never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sent.extend(refused);
    let want: Vec<String> = sent.iter().map(|e| e.id.clone()).collect();
    wait_for("everything delivered", || {
        peer.got.lock().unwrap().len() >= want.len()
    })
    .await;
    out.flush().await.unwrap();
    assert_eq!(*peer.got.lock().unwrap(), want, "in order, none twice");
}
