//! The wazuh output against the manager stand-in: enrollment, startup, keepalives, the
//! docker-listener message shape, outages, refusals and restarts.

use std::path::Path;
use std::time::Duration;

use vigil_core::event::{Event, Raw, Source};
use vigil_core::outputs::remote::SpoolSettings;
use vigil_core::outputs::tls::TlsSettings;
use vigil_core::outputs::wazuh::{EnrollmentConfig, WazuhOutputConfig};
use vigil_core::outputs::{BuildContext, Output, OutputConfig};
use vigil_testkit::wazuh::{Mode, PeerConfig, WazuhPeer};

const WAIT: Duration = Duration::from_secs(20);

fn config(peer: &WazuhPeer, password_file: Option<&Path>) -> WazuhOutputConfig {
    WazuhOutputConfig {
        name: None,
        manager: "127.0.0.1".into(),
        port: peer.remoted.port(),
        agent_name: None,
        agent_version: "v4.7.0".into(),
        keys_file: None,
        enrollment: EnrollmentConfig {
            port: peer.authd.port(),
            groups: vec!["k8s".into(), "vigil".into()],
            password_file: password_file.map(Path::to_path_buf),
            tls: TlsSettings {
                ca_file: Some(peer.pki.ca_cert.clone()),
                server_name: Some("localhost".into()),
                ..TlsSettings::default()
            },
            ..EnrollmentConfig::default()
        },
        max_eps: 0,
        keepalive_secs: 1,
        reconnect_secs: 2,
        locations: Default::default(),
        spool: SpoolSettings::default(),
    }
}

fn build(cfg: WazuhOutputConfig, state: &Path) -> Box<dyn Output> {
    OutputConfig::Wazuh(cfg)
        .build(&BuildContext {
            state_dir: state.to_path_buf(),
            node: "node-1".into(),
        })
        .unwrap()
}

fn docker_start(n: usize) -> Event {
    let raw = format!(
        r#"{{"status":"start","id":"c{n}","from":"busybox","Type":"container","Action":"start","Actor":{{"ID":"c{n}","Attributes":{{"image":"busybox","name":"web-{n}"}}}},"scope":"local","time":1700000000,"timeNano":17000000000000{n:05}}}"#
    );
    Event {
        id: format!("d{n}"),
        source: Source::Docker,
        action: "start".into(),
        raw: Some(Raw::Verbatim(raw.into_bytes().into_boxed_slice())),
        ..Event::default()
    }
}

fn audit(n: usize) -> Event {
    Event {
        id: format!("a{n}"),
        action: "create".into(),
        ..Event::default()
    }
}

/// The event ids among the messages the peer received, in order.
fn ids(peer: &WazuhPeer) -> Vec<String> {
    peer.seen(|s| {
        s.events()
            .iter()
            .filter_map(|m| {
                let json = m.split_once(":{").map(|(_, j)| format!("{{{j}"))?;
                let v: serde_json::Value = serde_json::from_str(&json).ok()?;
                v["vigil"]["id"].as_str().map(str::to_owned)
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolls_starts_keeps_alive_and_sends_docker_events_as_docker_listener_does() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let state = dir.path().join("state");
    let mut out = build(config(&peer, None), &state);
    out.send(&[docker_start(1), audit(2)]).await.unwrap();
    peer.wait_for("two events", WAIT, |s| s.events().len() >= 3)
        .await;

    peer.seen(|s| {
        assert_eq!(
            s.enrollments,
            ["OSSEC A:'node-1' V:'v4.7.0' G:'k8s,vigil'"],
            "one enrollment, fields in authd's order"
        );
        assert!(
            s.messages[0]
                .message
                .starts_with(r#"#!-agent startup {"version":"v4.7.0"}"#)
        );
        assert_eq!(
            s.messages[1].message,
            "1:wazuh-agent:ossec: Agent started: 'node-1->any'."
        );
        let events = s.events();
        let docker = events
            .iter()
            .find(|m| m.starts_with("1:Wazuh-Docker:"))
            .unwrap();
        assert!(
            docker.starts_with(
                r#"1:Wazuh-Docker:{"integration":"docker","docker":{"status":"start","id":"c1""#
            ),
            "{docker}"
        );
        let v: serde_json::Value =
            serde_json::from_str(docker.strip_prefix("1:Wazuh-Docker:").unwrap()).unwrap();
        assert_eq!(v["docker"]["Action"], "start");
        assert_eq!(v["docker"]["Actor"]["Attributes"]["name"], "web-1");
        assert_eq!(v["vigil"]["source"], "docker");
        assert!(
            events
                .iter()
                .any(|m| m.starts_with(r#"1:vigil-k8s-audit:{"integration":"vigil","vigil":{"#))
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    });
    // Keepalives keep coming when idle, and each is acknowledged (no reconnect).
    let before = peer.seen(|s| s.control("#!-Linux"));
    peer.wait_for("idle keepalives", WAIT, |s| {
        s.control("#!-Linux") >= before + 2
    })
    .await;
    let keepalive = peer.seen(|s| {
        s.messages
            .iter()
            .rev()
            .find(|m| m.message.starts_with("#!-Linux"))
            .unwrap()
            .message
            .clone()
    });
    assert!(keepalive.contains(" - Wazuh v4.7.0\n"), "{keepalive}");
    assert!(
        keepalive.contains("#\"_agent_ip\":127.0.0.1"),
        "{keepalive}"
    );
    assert_eq!(peer.seen(|s| s.connections), 1);
    let keys = std::fs::read_to_string(state.join("wazuh/wazuh/client.keys")).unwrap();
    assert!(keys.starts_with("001 node-1 any "), "the key is stored");
    out.flush().await.unwrap();
    peer.wait_for("shutdown message", WAIT, |s| {
        s.control("#!-agent shutdown") == 1
    })
    .await;

    drop(out);

    // A restart reuses the stored key: no second enrollment, counters keep growing.
    let mut out = build(config(&peer, None), &state);
    out.send(&[audit(3)]).await.unwrap();
    peer.wait_for("the event after the restart", WAIT, |s| {
        s.events().iter().any(|m| m.contains(r#""id":"a3""#))
    })
    .await;
    assert_eq!(peer.seen(|s| s.enrollments.len()), 1);
    peer.seen(|s| {
        assert!(
            s.errors.is_empty(),
            "counters went backwards? {:?}",
            s.errors
        )
    });
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_outage_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let mut out = build(config(&peer, None), &dir.path().join("state"));
    let counters = out.counters().unwrap();
    let mut sent = Vec::new();
    let mut n = 0;
    let mut batch = |k: usize| {
        let b: Vec<Event> = (0..k)
            .map(|_| {
                n += 1;
                audit(n)
            })
            .collect();
        sent.extend(b.iter().map(|e| e.id.clone()));
        b
    };
    out.send(&batch(20)).await.unwrap();
    peer.wait_for("first events", WAIT, |s| s.events().len() >= 20)
        .await;

    // The manager goes away: connections are cut and new ones refused.
    peer.set_mode(Mode::Refuse);
    peer.close_connections();
    for _ in 0..10 {
        out.send(&batch(15)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        counters
            .spool_records
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    peer.set_mode(Mode::Normal);
    out.send(&batch(5)).await.unwrap();
    let total = sent.len();
    peer.wait_for("every event", Duration::from_secs(60), |s| {
        let got: std::collections::BTreeSet<_> = s
            .events()
            .iter()
            .filter_map(|m| {
                m.split(r#""id":""#)
                    .nth(1)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .collect();
        got.len() >= total
    })
    .await;
    let got = ids(&peer);
    // In order: duplicates may appear where a connection broke, but each first arrival
    // follows the order sent.
    let mut first = Vec::new();
    for id in &got {
        if !first.contains(id) {
            first.push(id.clone());
        }
    }
    assert_eq!(first, sent);
    let duplicates = got.len() - first.len();
    assert!(
        duplicates <= 20,
        "{duplicates} duplicates: more than the one chunk in flight"
    );
    peer.seen(|s| assert!(s.errors.is_empty(), "{:?}", s.errors));
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_manager_is_left_and_reconnected() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let mut out = build(config(&peer, None), &dir.path().join("state"));
    out.send(&[audit(1)]).await.unwrap();
    peer.wait_for("first event", WAIT, |s| s.events().len() >= 2)
        .await;
    peer.set_mode(Mode::Stall);
    out.send(&[audit(2)]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    peer.close_connections();
    peer.set_mode(Mode::Normal);
    peer.wait_for("the event after the stall", WAIT, |s| {
        s.events().iter().any(|m| m.contains(r#""id":"a2""#))
    })
    .await;
    assert!(peer.seen(|s| s.connections) >= 2, "the agent reconnected");
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_needs_the_right_password_and_refusals_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(
        &dir.path().join("pki"),
        PeerConfig {
            password: Some("s3cret".into()),
            refuse_duplicate_names: true,
        },
    )
    .await;
    let pass = dir.path().join("authd.pass");
    std::fs::write(&pass, "wrong\n").unwrap();
    let mut out = build(config(&peer, Some(&pass)), &dir.path().join("state"));
    out.send(&[audit(1)]).await.unwrap();
    peer.wait_for("a refused enrollment", WAIT, |s| !s.enrollments.is_empty())
        .await;
    assert!(peer.seen(|s| s.events().is_empty()));
    // The Secret is fixed: the next attempt reads the file again.
    std::fs::write(&pass, "s3cret\n").unwrap();
    peer.wait_for("the event after enrollment", WAIT, |s| {
        s.events().iter().any(|m| m.contains(r#""id":"a1""#))
    })
    .await;
    peer.seen(|s| {
        assert!(s.enrollments[0].starts_with("OSSEC PASS: wrong OSSEC A:'node-1'"));
        assert!(
            s.enrollments
                .last()
                .unwrap()
                .starts_with("OSSEC PASS: s3cret OSSEC A:'node-1'")
        );
    });
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_refusing_the_agent_gets_nothing_until_it_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    peer.set_mode(Mode::RefuseStartup);
    let mut out = build(config(&peer, None), &dir.path().join("state"));
    let counters = out.counters().unwrap();
    out.send(&[audit(1)]).await.unwrap();
    peer.wait_for("two refused startups", WAIT, |s| {
        s.control("#!-agent startup") >= 2
    })
    .await;
    assert!(peer.seen(|s| s.events().is_empty()));
    assert!(counters.retries.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    peer.set_mode(Mode::Normal);
    peer.wait_for("the event once accepted", WAIT, |s| !s.events().is_empty())
        .await;
    out.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provisioned_key_is_used_without_enrolling() {
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let line =
        "1042 provisioned any 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    peer.add_key(line);
    let keys = dir.path().join("secret/client.keys");
    std::fs::create_dir_all(keys.parent().unwrap()).unwrap();
    std::fs::write(&keys, format!("{line}\n")).unwrap();
    let mut cfg = config(&peer, None);
    cfg.keys_file = Some(keys);
    cfg.enrollment.enabled = false;
    let mut out = build(cfg, &dir.path().join("state"));
    out.send(&[audit(1)]).await.unwrap();
    peer.wait_for("the event", WAIT, |s| !s.events().is_empty())
        .await;
    peer.seen(|s| {
        assert!(s.enrollments.is_empty());
        assert!(s.messages.iter().all(|m| m.agent_id == "1042"));
    });
    out.flush().await.unwrap();
}

/// The stand-in decodes the frames Wazuh's own encoder produced (the shared test vectors),
/// so agreeing with it means agreeing with Wazuh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_stand_in_decodes_wazuhs_own_frames() {
    use tokio::io::AsyncWriteExt;
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wazuh/wazuh-secure-message-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the Wazuh test vectors are missing at {}: {e}",
            path.display()
        )
    });
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    peer.add_key(vectors["client_keys_line"].as_str().unwrap());
    let mut tcp = tokio::net::TcpStream::connect(peer.remoted).await.unwrap();
    let mut expected = Vec::new();
    for v in vectors["vectors"].as_array().unwrap() {
        if v["direction"] != "agent_to_manager" {
            continue;
        }
        let frame = hex::decode(v["tcp_frame_hex"].as_str().unwrap()).unwrap();
        tcp.write_all(&frame).await.unwrap();
        expected.push(v["plaintext_event"].as_str().unwrap().to_owned());
    }
    assert!(!expected.is_empty());
    peer.wait_for("every vector", WAIT, |s| s.messages.len() >= expected.len())
        .await;
    peer.seen(|s| {
        let got: Vec<&str> = s.messages.iter().map(|m| m.message.as_str()).collect();
        assert_eq!(got, expected);
        // The vectors all carry the same counters: the stand-in flags what a manager with
        // `remoted.verify_msg_id` would refuse, and nothing else.
        assert_eq!(s.errors.len(), expected.len() - 1, "{:?}", s.errors);
        assert!(
            s.errors
                .iter()
                .all(|e| e.contains("counters went backwards"))
        );
    });
}
