//! Routing as a user sees it: what arrives, what does not, rate limits, full queues,
//! shutdown, metrics.

use std::time::Duration;

use vigil_notify::Notifier;

use crate::common::{HttpReceiver, config, event, metric};

const GRACE: Duration = Duration::from_secs(30);

fn slack_notifier(hook: &HttpReceiver, route_extra: &str, top_extra: &str) -> Notifier {
    Notifier::start(config(&format!(
        "{top_extra}receivers:\n  - name: team-slack\n    slack: {{ url: {} }}\nroutes:\n  - name: high\n    receivers: [team-slack]\n{route_extra}",
        hook.url("/hook")
    )))
    .unwrap()
}

fn texts(hook: &HttpReceiver) -> Vec<String> {
    hook.received()
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn only_matching_detections_are_sent() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(
        &hook,
        "    min_level: 10\n    rules: [container.*, rbac.cluster_admin_binding]\n    namespaces: [team-*]\n",
        "",
    );
    n.offer(&event("below", "team-a", "p1", "container.privileged", 9));
    n.offer(&event("other-rule", "team-a", "p2", "exec.shell", 15));
    n.offer(&event("other-ns", "prod", "p3", "container.privileged", 15));
    let mut no_detection = event("none", "team-a", "p4", "x", 15);
    no_detection.detections.clear();
    n.offer(&no_detection);
    n.offer(&event("match", "team-b", "p5", "container.privileged", 10));
    let mut two = event("two", "team-c", "p6", "rbac.cluster_admin_binding", 12);
    let mut second = two.detections[0].clone();
    second.rule = "container.host_pid".into();
    second.level = 3;
    two.detections.push(second);
    n.offer(&two);
    n.shutdown(GRACE).await;
    let got = texts(&hook);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[0].ends_with("event match"), "{}", got[0]);
    assert!(
        got[1].contains("rbac.cluster_admin_binding") && got[1].ends_with("event two"),
        "{}",
        got[1]
    );
    for reason in ["duplicate", "rate_limited", "queue_full"] {
        assert_eq!(
            metric(
                &n,
                &format!("vigil_notifications_suppressed_total{{reason=\"{reason}\"}}")
            ),
            0,
            "not matching is not suppressing"
        );
    }
}

#[tokio::test]
async fn each_matching_detection_of_an_event_is_sent() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(&hook, "", "");
    let mut e = event("ev-1", "team-a", "web-1", "container.privileged", 12);
    let mut shell = e.detections[0].clone();
    shell.rule = "exec.shell".into();
    shell.title = "Shell in container".into();
    e.detections.push(shell);
    n.offer(&e);
    n.shutdown(GRACE).await;
    let got = texts(&hook);
    assert_eq!(got.len(), 2);
    assert!(got[0].contains("container.privileged"));
    assert!(got[1].contains("exec.shell — Shell in container"));
}

#[tokio::test]
async fn rate_limit_sends_max_then_one_summary() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(&hook, "    rate_limit: { max: 3, per_secs: 2 }\n", "");
    let rules = [
        "container.privileged",
        "container.privileged",
        "exec.shell",
        "container.privileged",
        "exec.shell",
        "container.privileged",
        "container.privileged",
        "container.privileged",
    ];
    for (i, rule) in rules.iter().enumerate() {
        n.offer(&event(
            &format!("ev-{i}"),
            "team-a",
            &format!("web-{i}"),
            rule,
            12,
        ));
    }
    // The summary comes at the end of the 2 s window, without shutdown.
    let got = hook.wait_for(4, Duration::from_secs(10)).await;
    let texts: Vec<String> = got
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        texts[..3].iter().all(|t| t.starts_with("[level 12]")),
        "{texts:#?}"
    );
    assert_eq!(
        texts[3],
        "5 more detections held back in the last 2 s: container.privileged ×4, exec.shell ×1 (route high)"
    );
    assert!(
        got[3].at - got[0].at >= Duration::from_millis(1500),
        "sent at the end of the window"
    );
    n.shutdown(GRACE).await;
    assert_eq!(hook.received().len(), 4, "one summary only");
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_sent_total{receiver="team-slack"}"#
        ),
        3
    );
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_summaries_total{receiver="team-slack"}"#
        ),
        1
    );
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_suppressed_total{reason="rate_limited"}"#
        ),
        5
    );
}

#[tokio::test]
async fn shutdown_sends_the_pending_summary() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(&hook, "    rate_limit: { max: 1, per_secs: 3600 }\n", "");
    for i in 0..3 {
        n.offer(&event(
            &format!("ev-{i}"),
            "team-a",
            &format!("web-{i}"),
            "exec.shell",
            12,
        ));
    }
    n.shutdown(GRACE).await;
    let got = texts(&hook);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(
        got[1],
        "2 more detections held back in the last 3600 s: exec.shell ×2 (route high)"
    );
    // After shutdown nothing more is taken.
    n.offer(&event("late", "team-a", "web-9", "exec.shell", 12));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(hook.received().len(), 2);
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let hook = HttpReceiver::start().await;
    hook.delay(Duration::from_millis(200));
    let n = slack_notifier(&hook, "", "queue_size: 2\n");
    // The test's runtime has one thread: the delivery task cannot take anything from the
    // queue while these offers run, so exactly 2 fit.
    for i in 0..6 {
        n.offer(&event(
            &format!("ev-{i}"),
            "team-a",
            &format!("web-{i}"),
            "exec.shell",
            12,
        ));
    }
    assert_eq!(
        metric(
            &n,
            r#"vigil_notifications_suppressed_total{reason="queue_full"}"#
        ),
        4
    );
    assert_eq!(
        metric(&n, r#"vigil_notifications_queued{receiver="team-slack"}"#),
        2
    );
    // A dropped notification is not remembered as sent: offered again later, it goes.
    hook.wait_for(2, Duration::from_secs(10)).await;
    crate::common::wait_until("the queue to drain", Duration::from_secs(10), || {
        metric(&n, r#"vigil_notifications_queued{receiver="team-slack"}"#) == 0
    })
    .await;
    n.offer(&event("ev-5-again", "team-a", "web-5", "exec.shell", 12));
    n.shutdown(GRACE).await;
    let got = texts(&hook);
    assert_eq!(got.len(), 3);
    assert!(got[2].ends_with("event ev-5-again"));
}

#[tokio::test]
async fn offer_works_from_any_thread() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(&hook, "", "");
    let n2 = n.clone();
    std::thread::spawn(move || {
        n2.offer(&event("ev-1", "team-a", "web-1", "exec.shell", 12));
    })
    .join()
    .unwrap();
    n.shutdown(GRACE).await;
    assert_eq!(hook.received().len(), 1);
}

#[tokio::test]
async fn metrics_have_help_type_and_every_series() {
    let hook = HttpReceiver::start().await;
    let n = slack_notifier(&hook, "", "");
    n.offer(&event("ev-1", "team-a", "web-1", "exec.shell", 12));
    n.offer(&event("ev-1", "team-a", "web-1", "exec.shell", 12));
    n.shutdown(GRACE).await;
    let mut out = String::new();
    n.render_metrics(&mut out);
    for line in [
        "# TYPE vigil_notifications_sent_total counter",
        "vigil_notifications_sent_total{receiver=\"team-slack\"} 1",
        "# TYPE vigil_notifications_failed_total counter",
        "vigil_notifications_failed_total{receiver=\"team-slack\"} 0",
        "# TYPE vigil_notifications_suppressed_total counter",
        "vigil_notifications_suppressed_total{reason=\"duplicate\"} 1",
        "vigil_notifications_suppressed_total{reason=\"rate_limited\"} 0",
        "vigil_notifications_suppressed_total{reason=\"queue_full\"} 0",
        "# TYPE vigil_notifications_summaries_total counter",
        "vigil_notifications_summaries_total{receiver=\"team-slack\"} 0",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "missing {line:?} in:\n{out}"
        );
    }
    assert_eq!(
        out.matches("# HELP ").count(),
        out.matches("# TYPE ").count()
    );
}
