//! The syslog output against a private rsyslogd: what rsyslog parsed and wrote to disk is what
//! a user of the receiving side would see.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::certs::TestPki;
use tokio::time::Instant;
use vigil_core::event::{Actor, Detection, Event, Kind, Log, Raw, Source};
use vigil_core::outputs::remote::RemoteOutput;
use vigil_core::outputs::syslog::{
    self, SyslogFormat, SyslogFraming, SyslogOutputConfig, SyslogProtocol,
};
use vigil_core::outputs::tls::TlsSettings;
use vigil_core::outputs::trim::TRIM_MARKER;
use vigil_core::outputs::{BuildContext, Output, OutputCounters};
use vigil_testkit::rsyslog::{Line, Listen, Rsyslog};

const APP: &str = "vigil-it";
fn event(i: usize) -> Event {
    let secs = 1_700_000_000 + i64::try_from(i).unwrap();
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(secs) * 1_000_000_000 + 123_456_789,
    )
    .unwrap()
    .format(&time::format_description::well_known::Rfc3339)
    .unwrap();
    Event {
        id: format!("{i:032x}"),
        time: t.clone(),
        ingest_time: t,
        node: Some("node-it".into()),
        source: Source::Docker,
        kind: Kind::Runtime,
        action: "start".into(),
        actor: Actor {
            user: Some(format!("usér-{i} | \"quoted\" \\ tab\t")),
            ..Actor::default()
        },
        detections: if i.is_multiple_of(3) {
            vec![Detection {
                rule: "container.privileged".into(),
                title: "Privileged container".into(),
                level: u8::try_from(i % 16).unwrap(),
                ..Detection::default()
            }]
        } else {
            Vec::new()
        },
        ..Event::default()
    }
}

fn expected_pri(e: &Event) -> u8 {
    // local0 (16), and the documented level → severity map.
    let severity = match e.detections.iter().map(|d| d.level).max() {
        None | Some(0..=4) => 6,
        Some(5..=7) => 5,
        Some(8..=11) => 4,
        Some(12) => 3,
        Some(13 | 14) => 2,
        Some(_) => 1,
    };
    16 * 8 + severity
}

fn same_instant(a: &str, b: &str) -> bool {
    use time::format_description::well_known::Rfc3339;
    let a = time::OffsetDateTime::parse(a, &Rfc3339).unwrap();
    let b = time::OffsetDateTime::parse(b, &Rfc3339).unwrap();
    // RFC 5424 carries microseconds.
    (a - b).abs() < time::Duration::microseconds(1)
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    rsyslog: Rsyslog,
}

fn setup(listen: impl FnOnce(&Path) -> Option<TestPki>) -> (Setup, Option<TestPki>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let pki = listen(&dir);
    let rsyslog = match &pki {
        Some(pki) => Rsyslog::start(&dir, Listen::Tls(pki), APP),
        None => Rsyslog::start(&dir, Listen::Tcp, APP),
    };
    (
        Setup {
            _tmp: tmp,
            dir,
            rsyslog,
        },
        pki,
    )
}

fn config(port: u16, protocol: SyslogProtocol, dir: &Path) -> SyslogOutputConfig {
    let mut cfg = SyslogOutputConfig::new(format!("127.0.0.1:{port}"));
    cfg.protocol = protocol;
    cfg.app_name = APP.into();
    cfg.spool.dir = Some(dir.join("spool"));
    cfg
}

fn start(cfg: &SyslogOutputConfig, dir: &Path) -> (RemoteOutput, Arc<OutputCounters>) {
    let ctx = BuildContext {
        state_dir: dir.join("state"),
        node: "agent-node".into(),
    };
    let out = syslog::start(cfg, "syslog", &ctx).unwrap();
    let counters = out.counters().unwrap();
    (out, counters)
}

/// Polls `cond` until it holds or `secs` pass.
async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn send_all(out: &mut RemoteOutput, events: &[Event], batch: usize) {
    for chunk in events.chunks(batch) {
        out.send(chunk).await.unwrap();
    }
}

/// Waits until rsyslog wrote `n` distinct events.
async fn wait_for_events(rsyslog: &Rsyslog, n: usize) -> Vec<Line> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let lines = rsyslog.lines();
        let distinct: HashSet<String> = lines.iter().map(|l| l.event().id).collect();
        if distinct.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog wrote {} of {n} events\n{}",
            distinct.len(),
            rsyslog.diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event arrived exactly once, in order, with every header field as documented and its
/// JSON intact.
fn assert_received_as_sent(lines: &[Line], sent: &[Event]) {
    let ids: Vec<String> = lines.iter().map(|l| l.event().id).collect();
    let want: Vec<String> = sent.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want, "events missing, repeated or out of order");
    for (line, e) in lines.iter().zip(sent) {
        assert_eq!(line.pri, expected_pri(e), "{line:?}");
        assert!(
            same_instant(&line.timestamp, &e.time),
            "{line:?} vs {}",
            e.time
        );
        assert_eq!(&line.hostname, e.node.as_ref().unwrap());
        assert_eq!(line.app_name, APP);
        assert_eq!(line.procid, std::process::id().to_string());
        assert_eq!(line.msgid, "docker.runtime");
        assert_eq!(line.structured_data, "-");
        assert_eq!(&line.event(), e);
    }
}

async fn deliver_in_order(listen_tls: bool, framing: SyslogFraming) {
    let (s, pki) = setup(|dir| listen_tls.then(|| TestPki::create(&dir.join("pki"))));
    let protocol = if listen_tls {
        SyslogProtocol::Tls
    } else {
        SyslogProtocol::Tcp
    };
    let mut cfg = config(s.rsyslog.port, protocol, &s.dir);
    cfg.framing = framing;
    if let Some(pki) = &pki {
        cfg.tls = TlsSettings {
            ca_file: Some(pki.ca_cert.clone()),
            cert_file: Some(pki.client_cert.clone()),
            key_file: Some(pki.client_key.clone()),
            server_name: Some("localhost".into()),
            ..TlsSettings::default()
        };
    }
    let (mut out, counters) = start(&cfg, &s.dir);
    let events: Vec<Event> = (0..1000).map(event).collect();
    send_all(&mut out, &events, 64).await;
    let lines = wait_for_events(&s.rsyslog, events.len()).await;
    assert_received_as_sent(&lines, &events);
    assert_eq!(counters.events_delivered.load(Relaxed), 1000);
    assert_eq!(counters.trimmed_events.load(Relaxed), 0);
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_octet_counted_messages_arrive_in_order_and_parse() {
    deliver_in_order(false, SyslogFraming::OctetCounting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_newline_framed_messages_arrive_in_order_and_parse() {
    deliver_in_order(false, SyslogFraming::Newline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificate_arrives_in_order_and_parses() {
    deliver_in_order(true, SyslogFraming::OctetCounting).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_a_receiver_its_ca_did_not_sign() {
    let (s, pki) = setup(|dir| Some(TestPki::create(&dir.join("pki"))));
    let pki = pki.unwrap();
    let mut cfg = config(s.rsyslog.port, SyslogProtocol::Tls, &s.dir);
    cfg.tls = TlsSettings {
        ca_file: Some(pki.other_ca_cert.clone()),
        cert_file: Some(pki.client_cert.clone()),
        key_file: Some(pki.client_key.clone()),
        ..TlsSettings::default()
    };
    let (mut out, counters) = start(&cfg, &s.dir);
    send_all(&mut out, &[event(0)], 1).await;
    wait_for(30, "two failed attempts", || {
        counters.retries.load(Relaxed) >= 2
    })
    .await;
    assert_eq!(counters.events_delivered.load(Relaxed), 0);
    assert_eq!(counters.spool_records.load(Relaxed), 1, "kept for later");
    assert!(s.rsyslog.lines().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_arrive_and_an_oversized_event_is_trimmed_to_valid_json() {
    let tmp = tempfile::tempdir().unwrap();
    let rsyslog = Rsyslog::start(tmp.path(), Listen::Udp, APP);
    let cfg = config(rsyslog.port, SyslogProtocol::Udp, tmp.path());
    let max = cfg.effective_max_message_bytes();
    let (mut out, counters) = start(&cfg, tmp.path());
    let mut events: Vec<Event> = (0..200).map(event).collect();
    let big = &mut events[100];
    big.log = Some(Log {
        message: Some("line of a noisy container ".repeat(500)),
        ..Log::default()
    });
    big.raw = Some(Raw::Value(
        serde_json::json!({ "body": "x".repeat(20_000) }),
    ));
    let big = big.clone();
    send_all(&mut out, &events, 20).await;
    let lines = wait_for_events(&rsyslog, events.len()).await;
    assert_eq!(counters.trimmed_events.load(Relaxed), 1);
    assert_eq!(counters.events_delivered.load(Relaxed), 200);
    let ids: Vec<String> = lines.iter().map(|l| l.event().id).collect();
    let want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, want);
    for (line, e) in lines.iter().zip(&events) {
        let got = line.event();
        if e.id != big.id {
            assert_eq!(&got, e);
            continue;
        }
        // The header (≤ 100 bytes here) plus the JSON fit the datagram limit.
        assert!(line.msg.len() < max, "{} bytes", line.msg.len());
        assert_eq!(got.detections, big.detections);
        let log = got.log.unwrap();
        assert!(log.partial);
        assert!(log.message.unwrap().ends_with(TRIM_MARKER));
        assert_eq!(got.raw.unwrap().to_value()["vigil.trimmed"], true);
    }
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_event_over_tcp_fits_rsyslog_64k_limit() {
    let (s, _) = setup(|_| None);
    let cfg = config(s.rsyslog.port, SyslogProtocol::Tcp, &s.dir);
    let (mut out, counters) = start(&cfg, &s.dir);
    let mut e = event(7);
    e.raw = Some(Raw::Value(
        serde_json::json!({ "body": "y".repeat(200_000) }),
    ));
    let events = vec![event(6), e, event(8)];
    send_all(&mut out, &events, 3).await;
    let lines = wait_for_events(&s.rsyslog, 3).await;
    assert_eq!(lines.len(), 3);
    assert_eq!(counters.trimmed_events.load(Relaxed), 1);
    let got = lines[1].event();
    assert_eq!(got.id, events[1].id);
    let raw = got.raw.unwrap().to_value();
    assert_eq!(raw["vigil.trimmed"], true);
    assert!(raw["original_bytes"].as_u64().unwrap() > 200_000);
    assert_eq!(lines[2].event(), events[2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_cannot_forge_fields_or_messages() {
    let (s, _) = setup(|_| None);
    let mut cfg = config(s.rsyslog.port, SyslogProtocol::Tcp, &s.dir);
    cfg.framing = SyslogFraming::Newline;
    let (mut out, _counters) = start(&cfg, &s.dir);
    let forged = format!("<0>1 2020-01-01T00:00:00Z forged {APP} 1 forged - {{}}");
    let mut events = Vec::new();
    for (i, node) in [
        format!("evil host\n{forged}"),
        format!("n\u{0}\r\u{7f}ü{}", "h".repeat(300)),
        String::new(),
        "-".into(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(i);
        e.node = Some(node);
        e.log = Some(Log {
            message: Some(format!("line\n{forged}\n12 {forged}")),
            ..Log::default()
        });
        events.push(e);
    }
    send_all(&mut out, &events, 4).await;
    let lines = wait_for_events(&s.rsyslog, events.len()).await;
    assert_eq!(lines.len(), events.len(), "a value forged a message");
    for (line, e) in lines.iter().zip(&events) {
        assert_eq!(&line.event(), e, "JSON intact");
        assert!(line.hostname.len() <= 255);
        assert!(line.hostname.bytes().all(|b| (33..=126).contains(&b)));
        assert_eq!(line.app_name, APP);
        assert_eq!(line.msgid, "docker.runtime");
    }
    assert!(
        lines[0].hostname.starts_with("evil_host_<0>1_"),
        "{}",
        lines[0].hostname
    );
    assert_eq!(lines[1].hostname.len(), 255);
    // An empty node falls back to the agent's node name.
    assert_eq!(lines[2].hostname, "agent-node");
}

/// rsyslog is stopped while events keep coming, then started again: no event is lost, and
/// the duplicates stay within the documented bound (the resend window after each broken
/// connection plus the batch being written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_restart_under_steady_sending_loses_nothing() {
    let (mut s, _) = setup(|_| None);
    let cfg = config(s.rsyslog.port, SyslogProtocol::Tcp, &s.dir);
    let (mut out, counters) = start(&cfg, &s.dir);
    let total = 600;
    let batch = 2;
    let events: Vec<Event> = (0..total).map(event).collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Event>>(1);
    let producer = {
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(batch) {
                tx.send(chunk.to_vec()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let sender = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            out.send(&chunk).await.unwrap();
        }
        out
    });

    wait_for(30, "some events delivered", || {
        counters.events_delivered.load(Relaxed) >= 150
    })
    .await;
    s.rsyslog.stop();
    let at_stop = counters.spooled_events.load(Relaxed);
    wait_for(30, "a failed delivery", || {
        counters.retries.load(Relaxed) >= 1
    })
    .await;
    wait_for(30, "events spooled during the outage", || {
        counters.spooled_events.load(Relaxed) >= at_stop + 100
    })
    .await;
    s.rsyslog.launch();

    producer.await.unwrap();
    let mut out = sender.await.unwrap();
    let lines = wait_for_events(&s.rsyslog, total).await;
    out.flush().await.unwrap();

    let mut seen = BTreeMap::<String, usize>::new();
    let mut first_seen_order = Vec::new();
    for line in &lines {
        let e = line.event();
        let n = seen.entry(e.id.clone()).or_default();
        if *n == 0 {
            first_seen_order.push(e.id.clone());
        }
        *n += 1;
    }
    let want: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        first_seen_order, want,
        "an event is missing or came out of order"
    );
    let duplicates = lines.len() - total;
    let smallest_frame = lines.iter().map(|l| l.msg.len() + 60).min().unwrap();
    let reconnects = 1;
    let bound = reconnects * (cfg.resend_window_bytes / smallest_frame + 1 + batch);
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than the documented bound {bound}"
    );
    eprintln!("restart: {duplicates} duplicates (bound {bound})");
}

/// `format: wazuh` with LF framing, as configured for a Wazuh syslog listener: the message is
/// the document the manager-side decoder and rules read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wazuh_format_carries_the_event_and_its_alert_summary() {
    let (s, _) = setup(|_| None);
    let mut cfg = config(s.rsyslog.port, SyslogProtocol::Tcp, &s.dir);
    cfg.framing = SyslogFraming::Newline;
    cfg.format = SyslogFormat::Wazuh;
    let (mut out, _counters) = start(&cfg, &s.dir);
    let events: Vec<Event> = (0..30).map(event).collect();
    send_all(&mut out, &events, 10).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let lines = loop {
        let lines = s.rsyslog.lines();
        if lines.len() >= events.len() {
            break lines;
        }
        assert!(Instant::now() < deadline, "{}", s.rsyslog.diagnostics());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lines.len(), events.len());
    for (line, e) in lines.iter().zip(&events) {
        assert!(line.msg.starts_with(r#"{"integration":"vigil","vigil":{"#));
        let mut doc: serde_json::Value = serde_json::from_str(&line.msg).unwrap();
        let vigil = doc["vigil"].as_object_mut().unwrap();
        let alert = vigil.remove("alert");
        match e.detections.first() {
            Some(d) => assert_eq!(alert.unwrap()["rule"], d.rule.as_str()),
            None => assert!(alert.is_none()),
        }
        let back: Event = serde_json::from_value(doc["vigil"].take()).unwrap();
        assert_eq!(&back, e);
    }
}
