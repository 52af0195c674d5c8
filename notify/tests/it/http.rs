//! Slack, PagerDuty and webhook receivers against a local HTTP endpoint: bodies, retries,
//! refusals, secret files, hostile input.

use std::time::Duration;

use vigil_notify::Notifier;

use crate::common::{Answer, HttpReceiver, Logs, config, event, metric, write_secret};

const GRACE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn slack_gets_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HttpReceiver::start().await;
    let url_file = dir.path().join("slack-url");
    write_secret(&url_file, &hook.url("/services/T0/B0/token"));
    let n = Notifier::start(config(&format!(
        "receivers:\n  - name: team-slack\n    slack: {{ url_file: {} }}\nroutes:\n  - name: high\n    min_level: 10\n    receivers: [team-slack]\n",
        url_file.display()
    )))
    .unwrap();
    let mut e = event("ev-1", "team-a", "web-1", "container.privileged", 12);
    e.actor.user = Some("system:serviceaccount:team-a:deployer".into());
    n.offer(&e);
    n.shutdown(GRACE).await;
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/services/T0/B0/token");
    assert_eq!(
        got[0].json(),
        serde_json::json!({"text": "[level 12] container.privileged — Privileged container started — ns team-a pod web-1 container app (nginx:1.27) on node-1 by system:serviceaccount:team-a:deployer — 2025-06-01T12:00:00.000000000Z event ev-1"})
    );
}

#[tokio::test]
async fn pagerduty_gets_an_events_v2_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let pd = HttpReceiver::start().await;
    pd.always(Answer {
        status: 202,
        retry_after: None,
        body: r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#.into(),
    });
    let key_file = dir.path().join("pd-key");
    write_secret(&key_file, "R0UTINGKEY0123456789");
    let n = Notifier::start(config(&format!(
        "receivers:\n  - name: oncall\n    pagerduty: {{ routing_key_file: {}, url: {} }}\nroutes:\n  - name: high\n    receivers: [oncall]\n",
        key_file.display(),
        pd.url("/v2/enqueue")
    )))
    .unwrap();
    n.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    n.offer(&event("ev-2", "team-b", "db-0", "exec.shell", 6));
    n.shutdown(GRACE).await;
    let got = pd.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/v2/enqueue");
    assert_eq!(got[0].headers["content-type"], "application/json");
    let body = got[0].json();
    assert_eq!(body["routing_key"], "R0UTINGKEY0123456789");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(
        body["dedup_key"],
        "vigil/high/oncall/container.privileged/team-a/web-1/app"
    );
    let p = &body["payload"];
    assert!(
        p["summary"].as_str().unwrap().starts_with(
            "[level 12] container.privileged — Privileged container started — ns team-a pod web-1"
        ),
        "{p}"
    );
    assert_eq!(p["source"], "node-1");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["timestamp"], "2025-06-01T12:00:00.000000000Z");
    assert_eq!(p["component"], "nginx:1.27");
    assert_eq!(p["group"], "team-a");
    assert_eq!(p["class"], "container.privileged");
    assert_eq!(p["custom_details"]["event_id"], "ev-1");
    assert_eq!(p["custom_details"]["level"], 12);
    assert_eq!(got[1].json()["payload"]["severity"], "warning");
    assert_eq!(
        metric(&n, r#"vigil_notifications_sent_total{receiver="oncall"}"#),
        2
    );
}

fn webhook_notifier(url: &str, extra: &str) -> Notifier {
    Notifier::start(config(&format!(
        "receivers:\n  - name: tickets\n    webhook:\n      url: {url}\n{extra}routes:\n  - name: high\n    receivers: [tickets]\n"
    )))
    .unwrap()
}

#[tokio::test]
async fn receiver_down_then_up_is_retried_and_delivered_once() {
    let hook = HttpReceiver::start().await;
    hook.script([
        Answer::status(503),
        Answer {
            status: 429,
            retry_after: Some("3".into()),
            body: "slow down".into(),
        },
    ]);
    let n = webhook_notifier(&hook.url("/hook"), "");
    n.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    n.shutdown(GRACE).await;
    let got = hook.received();
    assert_eq!(got.len(), 3, "503, 429, then delivered");
    assert_eq!(got[0].body, got[2].body, "the same notification each time");
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(900),
        "backoff after the 503"
    );
    assert!(
        got[2].at - got[1].at >= Duration::from_millis(2900),
        "Retry-After: 3 honoured, waited {:?}",
        got[2].at - got[1].at
    );
    assert_eq!(
        metric(&n, r#"vigil_notifications_sent_total{receiver="tickets"}"#),
        1
    );
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_failed_total{receiver="tickets"}"#
        ),
        0
    );
}

#[tokio::test]
async fn client_error_is_not_retried_and_counted_failed() {
    let hook = HttpReceiver::start().await;
    hook.script([Answer::status(400)]);
    let n = webhook_notifier(&hook.url("/hook"), "");
    n.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    // The grace covers several backoffs: a retry would show as a second request.
    n.shutdown(Duration::from_secs(5)).await;
    assert_eq!(hook.received().len(), 1);
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_failed_total{receiver="tickets"}"#
        ),
        1
    );
    assert_eq!(
        metric(&n, r#"vigil_notifications_sent_total{receiver="tickets"}"#),
        0
    );
}

#[tokio::test]
async fn rotated_secret_files_are_used_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HttpReceiver::start().await;
    let url_file = dir.path().join("url");
    let auth_file = dir.path().join("auth");
    write_secret(&url_file, &hook.url("/hook/one"));
    write_secret(&auth_file, "Bearer first-token");
    let n = Notifier::start(config(&format!(
        "receivers:\n  - name: tickets\n    webhook:\n      url_file: {}\n      header_files: {{Authorization: {}}}\nroutes:\n  - name: high\n    receivers: [tickets]\n",
        url_file.display(),
        auth_file.display()
    )))
    .unwrap();
    n.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    hook.wait_for(1, Duration::from_secs(10)).await;
    write_secret(&url_file, &hook.url("/hook/two"));
    write_secret(&auth_file, "Bearer second-token");
    n.offer(&event(
        "ev-2",
        "team-a",
        "web-2",
        "container.privileged",
        12,
    ));
    n.shutdown(GRACE).await;
    let got = hook.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        (
            got[0].path.as_str(),
            got[0].headers["authorization"].as_str()
        ),
        ("/hook/one", "Bearer first-token")
    );
    assert_eq!(
        (
            got[1].path.as_str(),
            got[1].headers["authorization"].as_str()
        ),
        ("/hook/two", "Bearer second-token")
    );
}

#[tokio::test]
async fn secrets_never_appear_in_logs() {
    let logs = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let hook = HttpReceiver::start().await;
    // Every answer echoes what it got: the path (the Slack token), the Authorization
    // header and the body (the PagerDuty routing key).
    hook.always(Answer {
        status: 403,
        retry_after: None,
        body: "denied {path} {auth} {body}".into(),
    });
    let secret = |name: &str, value: &str| {
        let f = dir.path().join(name);
        write_secret(&f, value);
        f
    };
    let slack_url = secret("slack-url", &hook.url("/services/T0/B0/SLACKTOKEN-sekrit"));
    let auth = secret("auth", "Bearer HEADER-sekrit");
    let pd_key = secret("pd-key", "PDKEY-sekrit");
    let n = Notifier::start(config(&format!(
        r#"receivers:
  - name: team-slack
    slack: {{ url_file: {slack} }}
  - name: tickets
    webhook: {{ url: {hook}, header_files: {{Authorization: {auth}}} }}
  - name: oncall
    pagerduty: {{ routing_key_file: {pd}, url: {hook} }}
  - name: missing
    slack: {{ url_file: {missing} }}
routes:
  - name: all
    receivers: [team-slack, tickets, oncall, missing]
"#,
        slack = slack_url.display(),
        hook = hook.url("/hook"),
        auth = auth.display(),
        pd = pd_key.display(),
        missing = dir.path().join("not-mounted").display(),
    )))
    .unwrap();
    n.offer(&event(
        "ev-1",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    n.shutdown(GRACE).await;

    assert_eq!(
        hook.received().len(),
        3,
        "one refused request per readable receiver"
    );
    for r in ["team-slack", "tickets", "oncall", "missing"] {
        assert_eq!(
            metric(
                &n,
                &format!("vigil_notifications_failed_total{{receiver=\"{r}\"}}")
            ),
            1,
            "{r}"
        );
    }
    let text = logs.text();
    assert!(
        text.contains("receiver team-slack: answered 403: denied"),
        "{text}"
    );
    assert!(
        text.contains("[secret]"),
        "echoed secrets are blanked: {text}"
    );
    assert!(
        text.contains("not-mounted"),
        "the missing file is named: {text}"
    );
    for s in ["SLACKTOKEN-sekrit", "HEADER-sekrit", "PDKEY-sekrit"] {
        assert!(!text.contains(s), "{s} leaked into the logs:\n{text}");
    }
}

#[tokio::test]
async fn hostile_fields_make_bounded_messages() {
    let dir = tempfile::tempdir().unwrap();
    let hook = HttpReceiver::start().await;
    let key = dir.path().join("pd-key");
    write_secret(&key, "R0UTINGKEY0123456789");
    let n = Notifier::start(config(&format!(
        "receivers:\n  - name: team-slack\n    slack: {{ url: {slack} }}\n  - name: oncall\n    pagerduty: {{ routing_key_file: {key}, url: {pd} }}\n  - name: tickets\n    webhook: {{ url: {wh} }}\nroutes:\n  - name: all\n    receivers: [team-slack, oncall, tickets]\n",
        slack = hook.url("/slack"),
        key = key.display(),
        pd = hook.url("/pd"),
        wh = hook.url("/webhook"),
    )))
    .unwrap();
    let huge = "<!channel> ".repeat(10_000);
    let mut e = event(
        "ev-1",
        "team-a",
        &format!("web\n{}", "p".repeat(50_000)),
        "container.privileged",
        12,
    );
    e.detections[0].title = format!("Line one\nLine two {huge}");
    e.node = Some("n".repeat(100_000));
    e.container.as_mut().unwrap().image = Some(format!(
        "<https://evil.example|click> {}",
        "i".repeat(10_000)
    ));
    n.offer(&e);
    n.shutdown(GRACE).await;

    let got = hook.received();
    assert_eq!(got.len(), 3, "every receiver got its message");
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().json();
    let slack = by_path("/slack");
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.chars().count() <= vigil_notify::SLACK_MAX_TEXT_CHARS,
        "{}",
        text.len()
    );
    assert!(!text.contains('<') && !text.contains('\n'), "{text}");
    assert!(text.contains("&lt;!channel&gt;"));

    let pd = by_path("/pd");
    let summary = pd["payload"]["summary"].as_str().unwrap();
    assert!(summary.chars().count() <= vigil_notify::PAGERDUTY_MAX_SUMMARY_CHARS);
    assert!(pd["dedup_key"].as_str().unwrap().chars().count() <= 255);
    assert!(pd["payload"]["source"].as_str().unwrap().chars().count() <= 255);
    assert!(
        got.iter()
            .all(|r| r.path == "/webhook" || r.body.len() < 16 * 1024),
        "Slack and PagerDuty bodies stay small"
    );

    // The default webhook body carries the whole event, as it is.
    let wh = by_path("/webhook");
    assert_eq!(
        wh["event"]["detections"][0]["title"]
            .as_str()
            .unwrap()
            .len(),
        e.detections[0].title.len()
    );
    assert_eq!(wh["count"], 1);
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_failed_total{receiver="tickets"}"#
        ),
        0
    );
}

#[tokio::test]
async fn template_render_error_is_a_counted_failure() {
    let hook = HttpReceiver::start().await;
    let n = webhook_notifier(
        &hook.url("/hook"),
        "      template: '{\"pod\": {{ event.container.pod.name | tojson }}}'\n",
    );
    // An audit event: no container, so the template's `event.container.pod` fails.
    let mut audit = event("ev-1", "team-a", "web-1", "rbac.cluster_admin_binding", 12);
    audit.container = None;
    audit.object.namespace = Some("team-a".into());
    audit.object.name = Some("admin-binding".into());
    n.offer(&audit);
    n.offer(&event(
        "ev-2",
        "team-a",
        "web-1",
        "container.privileged",
        12,
    ));
    n.shutdown(GRACE).await;
    let got = hook.received();
    assert_eq!(got.len(), 1, "only the renderable one was sent");
    assert_eq!(got[0].json(), serde_json::json!({"pod": "web-1"}));
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_failed_total{receiver="tickets"}"#
        ),
        1
    );
    assert_eq!(
        metric(&n, r#"vigil_notifications_sent_total{receiver="tickets"}"#),
        1
    );
}

#[tokio::test]
async fn template_rendering_broken_json_is_not_sent() {
    let hook = HttpReceiver::start().await;
    // Passes the load-time check (no quote in its output for the sample), but a pod name
    // with a quote would break the JSON.
    let n = webhook_notifier(
        &hook.url("/hook"),
        "      template: '{\"pod\": \"{{ event.container.pod.name }}\"}'\n",
    );
    n.offer(&event(
        "ev-1",
        "team-a",
        "web\"1",
        "container.privileged",
        12,
    ));
    n.offer(&event(
        "ev-2",
        "team-a",
        "web-2",
        "container.privileged",
        12,
    ));
    n.shutdown(GRACE).await;
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json(), serde_json::json!({"pod": "web-2"}));
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_failed_total{receiver="tickets"}"#
        ),
        1
    );
}
