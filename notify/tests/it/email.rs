//! Email against a real SMTP server (aiosmtpd) with STARTTLS and AUTH.

use std::time::Duration;

use vigil_notify::Notifier;
use vigil_testkit::certs::TestPki;

use crate::common::{HttpReceiver, Logs, config, event, metric, write_secret};
use vigil_testkit::smtp::{SmtpOptions, SmtpServer};

const GRACE: Duration = Duration::from_secs(20);

fn email_yaml(port: u16, ca: &std::path::Path, password_file: &std::path::Path) -> String {
    format!(
        r#"
receivers:
  - name: mail
    email:
      host: 127.0.0.1
      port: {port}
      username: vigil
      password_file: {pw}
      from: "Vigil <vigil@example.com>"
      to: ["sec@example.com", "oncall@example.com"]
      ca_file: {ca}
      timeout_secs: 10
"#,
        pw = password_file.display(),
        ca = ca.display()
    )
}

#[tokio::test]
async fn detection_arrives_once_by_email_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(&dir.path().join("pki"));
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.server_cert, &pki.server_key)),
        auth: Some(("vigil", "pw-0123456789")),
    });
    let hook = HttpReceiver::start().await;
    let pw = dir.path().join("smtp-password");
    write_secret(&pw, "pw-0123456789");
    let yaml = format!(
        r#"{}
  - name: tickets
    webhook:
      url: {url}
      headers: {{X-Team: sec}}
      template: '{{"title": {{{{ detection.title | tojson }}}}, "level": {{{{ detection.level }}}}, "ns": {{{{ namespace | tojson }}}}, "count": {{{{ count }}}}}}'
routes:
  - name: high
    min_level: 10
    receivers: [mail, tickets]
"#,
        email_yaml(smtp.port, &pki.ca_cert, &pw),
        url = hook.url("/api/tickets"),
    );
    let notifier = Notifier::start(config(&yaml)).unwrap();

    let first = event("ev-1", "team-a", "web-1", "container.privileged", 12);
    for _ in 0..3 {
        notifier.offer(&first);
    }
    // Another event about the same thing, within the de-duplication window.
    notifier.offer(&event(
        "ev-2",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    notifier.shutdown(GRACE).await;

    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail["tls"], true, "sent after STARTTLS");
    assert_eq!(mail["auth_user"], "vigil");
    assert_eq!(mail["mail_from"], "vigil@example.com");
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["sec@example.com", "oncall@example.com"])
    );
    assert_eq!(
        mail["subject"],
        "[Vigil] Privileged container started (team-a)"
    );
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "[level 12] container.privileged — Privileged container started — ns team-a pod web-1 container app (nginx:1.27) on node-1"
        ),
        "{text}"
    );
    assert!(text.contains("Event id:   ev-1"), "{text}");
    assert!(text.contains("MITRE:      T1610"), "{text}");

    let tickets = hook.received();
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0].method, "POST");
    assert_eq!(tickets[0].path, "/api/tickets");
    assert_eq!(tickets[0].headers["x-team"], "sec");
    assert_eq!(tickets[0].headers["content-type"], "application/json");
    assert_eq!(
        tickets[0].json(),
        serde_json::json!({"title": "Privileged container started", "level": 12, "ns": "team-a", "count": 1})
    );

    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_sent_total{receiver="mail"}"#
        ),
        1
    );
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_sent_total{receiver="tickets"}"#
        ),
        1
    );
    // ev-1 twice more (once per event), ev-2 for each of the two receivers.
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_suppressed_total{reason="duplicate"}"#
        ),
        4
    );
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_failed_total{receiver="mail"}"#
        ),
        0
    );
}

#[tokio::test]
async fn server_without_starttls_gets_nothing() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(&dir.path().join("pki"));
    // No certificate: the server offers no STARTTLS and would take mail in clear.
    let smtp = SmtpServer::start(SmtpOptions::default());
    let pw = dir.path().join("smtp-password");
    write_secret(&pw, "pw-never-in-clear");
    let yaml = format!(
        "{}routes:\n  - name: all\n    receivers: [mail]\n",
        email_yaml(smtp.port, &pki.ca_cert, &pw)
    );
    let notifier = Notifier::start(config(&yaml)).unwrap();
    notifier.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    notifier.shutdown(GRACE).await;

    assert!(smtp.messages().is_empty());
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_failed_total{receiver="mail"}"#
        ),
        1
    );
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_sent_total{receiver="mail"}"#
        ),
        0
    );
    let text = logs.text();
    assert!(text.contains("STARTTLS"), "the log says why: {text}");
    assert!(!text.contains("pw-never-in-clear"));
}

#[tokio::test]
async fn untrusted_server_certificate_gets_nothing() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(&dir.path().join("pki"));
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.server_cert, &pki.server_key)),
        auth: Some(("vigil", "pw-0123456789")),
    });
    let pw = dir.path().join("smtp-password");
    write_secret(&pw, "pw-0123456789");
    // Verified against a CA that did not sign the server's certificate.
    let yaml = format!(
        "{}routes:\n  - name: all\n    receivers: [mail]\n",
        email_yaml(smtp.port, &pki.other_ca_cert, &pw)
    );
    let notifier = Notifier::start(config(&yaml)).unwrap();
    notifier.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    notifier.shutdown(GRACE).await;
    assert!(smtp.messages().is_empty());
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_failed_total{receiver="mail"}"#
        ),
        1
    );
    let text = logs.text();
    assert!(
        text.contains("giving up") && text.contains("attempt=1"),
        "refused at once, not retried: {text}"
    );
    assert!(!text.contains("not delivered yet"), "{text}");
}

#[tokio::test]
async fn rotated_smtp_password_is_used_without_restart() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::create(&dir.path().join("pki"));
    let smtp = SmtpServer::start(SmtpOptions {
        tls: Some((&pki.server_cert, &pki.server_key)),
        auth: Some(("vigil", "pw-rotated-new")),
    });
    let pw = dir.path().join("smtp-password");
    write_secret(&pw, "pw-stale-old");
    let yaml = format!(
        "{}routes:\n  - name: all\n    receivers: [mail]\n",
        email_yaml(smtp.port, &pki.ca_cert, &pw)
    );
    let notifier = Notifier::start(config(&yaml)).unwrap();

    notifier.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    // A refused password is not retried.
    crate::common::wait_until("the refused attempt", Duration::from_secs(5), || {
        metric(
            &notifier,
            r#"vigil_notifications_failed_total{receiver="mail"}"#,
        ) == 1
    })
    .await;
    assert!(smtp.messages().is_empty());

    write_secret(&pw, "pw-rotated-new");
    notifier.offer(&event(
        "ev-2",
        "team-a",
        "web-2",
        "container.privileged",
        12,
    ));
    notifier.shutdown(GRACE).await;
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    assert!(mails[0]["text"].as_str().unwrap().contains("ev-2"));
    assert_eq!(
        metric(
            &notifier,
            r#"vigil_notifications_sent_total{receiver="mail"}"#
        ),
        1
    );
    let text = logs.text();
    assert!(text.contains("receiver mail: SMTP"), "{text}");
    assert!(
        !text.contains("pw-stale-old") && !text.contains("pw-rotated-new"),
        "{text}"
    );
}
