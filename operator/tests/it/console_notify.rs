//! Notifications from the console: a detection at or above the route's level reaches a real
//! SMTP server (STARTTLS, AUTH) and a webhook once, though two replicas store it and an
//! agent sent it twice; the standby never notifies.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_core::event::Event;
use vigil_core::outputs::tls::TlsSettings;
use vigil_operator::console::PeersConfig;
use vigil_testkit::certs::TestPki;
use vigil_testkit::http::NdjsonReceiver;
use vigil_testkit::smtp::{SmtpOptions, SmtpServer};

use super::console::{Console, INGEST, runtime_event, send_as_agent};

fn detection(id: &str, level: u8, rule: &str) -> Event {
    let mut e = serde_json::to_value(runtime_event(
        0,
        "start",
        "web",
        "payments",
        "node-1",
        "2026-11-23T10:00:00Z",
    ))
    .unwrap();
    e["id"] = json!(id);
    e["detections"] = json!([{"rule": rule, "title": format!("{rule} fired"), "level": level, "severity": "high"}]);
    serde_json::from_value(e).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detection_arrives_once_by_email_and_by_webhook_from_the_leader_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(TestPki::create(&dir.path().join("pki")));
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.server_cert, &pki.server_key)),
        auth: Some(("vigil", "smtp-password-42")),
    });
    let hook = NdjsonReceiver::start().await;
    let password = dir.path().join("smtp-password");
    std::fs::write(&password, "smtp-password-42\n").unwrap();
    let notifications = format!(
        r#"
receivers:
  - name: mail
    email:
      host: 127.0.0.1
      port: {port}
      username: vigil
      password_file: {pw}
      from: "Vigil <vigil@example.com>"
      to: ["secops@example.com"]
      ca_file: {ca}
  - name: tickets
    webhook:
      url: {hook}
      template: '{{"rule": {{{{ detection.rule | tojson }}}}, "level": {{{{ detection.level }}}}, "ns": {{{{ namespace | tojson }}}}, "id": {{{{ event.id | tojson }}}}}}'
routes:
  - name: high
    min_level: 10
    receivers: [mail, tickets]
"#,
        port = smtp.port,
        pw = password.display(),
        ca = pki.ca_cert.display(),
        hook = hook.url(),
    );
    let notify: vigil_notify::NotifyConfig = yaml_serde::from_str(&notifications).unwrap();

    let token = dir.path().join("peer-token");
    std::fs::write(&token, format!("{INGEST}\n")).unwrap();
    let peers = |port: u16| PeersConfig {
        urls: vec![format!("https://localhost:{port}")],
        token_file: token.clone(),
        tls: TlsSettings {
            ca_file: Some(pki.ca_cert.clone()),
            ..TlsSettings::default()
        },
        interval_secs: 1,
        ..PeersConfig::default()
    };
    // The standby starts first (it copies from nobody yet); the leader copies from it.
    let standby = Console::start(&dir.path().join("b"), pki.clone(), |c| {
        c.notifications = Some(notify.clone());
    })
    .await;
    standby.leader.store(false, Ordering::Relaxed);
    let leader = Console::start(&dir.path().join("a"), pki.clone(), |c| {
        c.notifications = Some(notify.clone());
        c.peers = peers(standby.addr.port());
    })
    .await;

    // An agent sends a level-12 and a level-5 detection to the standby; later the same
    // level-12 event reaches the leader too (an agent's retry through the Service).
    let agent = dir.path().join("agent");
    let critical = detection("evt-critical-1", 12, "container.privileged");
    let minor = detection("evt-minor-1", 5, "image.latest-tag");
    let router = send_as_agent(
        &standby.output(&agent),
        &agent,
        vec![critical.clone(), minor],
    )
    .await;
    router.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        leader.wait_events(2).await,
        2,
        "the leader copied the standby's events"
    );
    let agent2 = dir.path().join("agent2");
    let router = send_as_agent(&leader.output(&agent2), &agent2, vec![critical]).await;
    router.shutdown(Duration::from_secs(10)).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while (smtp.messages().is_empty() || hook.lines().is_empty()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for any second notification to show up, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "one email: {mails:#?}");
    assert_eq!(mails[0]["tls"], true, "sent after STARTTLS: {:?}", mails[0]);
    assert_eq!(mails[0]["auth_user"], "vigil");
    let subject = mails[0]["subject"].as_str().unwrap();
    assert!(
        subject.contains("container.privileged fired") && subject.contains("payments"),
        "{subject}"
    );
    let lines = hook.lines();
    assert_eq!(lines.len(), 1, "one webhook call: {lines:?}");
    let body: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        body,
        json!({"rule": "container.privileged", "level": 12, "ns": "payments", "id": "evt-critical-1"})
    );
    leader.stop().await;
    standby.stop().await;
}
