//! The configuration as a user writes it: the documented example loads, mistakes are
//! refused with the offending entry named, every field is documented.

use vigil_notify::{Notifier, NotifyConfig, NotifyError};

use crate::common::config;

const EXAMPLE: &str = r#"
dedup_window_secs: 600
receivers:
  - name: team-slack
    slack: { url_file: /etc/vigil/notify/slack-url }
  - name: oncall
    pagerduty: { routing_key_file: /etc/vigil/notify/pd-key, url: "https://events.pagerduty.com/v2/enqueue" }
  - name: mail
    email: { host: smtp.example.com, port: 587, starttls: true, username: vigil, password_file: /etc/vigil/notify/smtp-password, from: "vigil@example.com", to: ["sec@example.com"], timeout_secs: 30 }
  - name: tickets
    webhook: { url: "https://tickets.example.com/api", method: POST, headers: {X-Team: sec}, header_files: {Authorization: /etc/vigil/notify/ticket-auth}, content_type: application/json, template: '{"title": {{ detection.title | tojson }}, "level": {{ detection.level }}, "ns": {{ namespace | tojson }}}' }
routes:
  - name: high
    min_level: 10
    rules: []
    namespaces: []
    receivers: [team-slack, mail, tickets]
    rate_limit: { max: 10, per_secs: 60 }
  - name: rbac
    rules: ["rbac.*"]
    namespaces: ["team-*"]
    receivers: [oncall]
"#;

/// The error for `EXAMPLE` with `from` replaced by `to`.
fn error_for(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "{from}");
    let yaml = EXAMPLE.replacen(from, to, 1);
    match yaml_serde::from_str::<NotifyConfig>(&yaml) {
        Err(e) => e.to_string(),
        Ok(c) => c
            .validate()
            .expect_err(&format!("accepted: {to}"))
            .to_string(),
    }
}

#[test]
fn documented_example_loads_with_defaults() {
    let c = config(EXAMPLE);
    c.validate().unwrap();
    assert_eq!(c.queue_size, 1000);
    assert_eq!(c.routes[1].min_level, 0);
    assert_eq!(c.receivers[0].slack.as_ref().unwrap().timeout_secs, 10);
    let minimal = config(
        "receivers: [{name: s, slack: {url_file: /x}}]\nroutes: [{name: r, receivers: [s]}]",
    );
    minimal.validate().unwrap();
    assert_eq!(minimal.dedup_window_secs, 600);
    let email = config(
        "receivers: [{name: m, email: {host: h, from: a@b.c, to: [d@e.f]}}]\nroutes: [{name: r, receivers: [m]}]",
    );
    let e = email.receivers[0].email.as_ref().unwrap();
    assert!(e.starttls && !e.implicit_tls && e.port.is_none());
    // What serializes loads back the same.
    let again: NotifyConfig = yaml_serde::from_str(&yaml_serde::to_string(&c).unwrap()).unwrap();
    assert_eq!(again, c);
}

#[test]
fn mistakes_name_the_offending_entry() {
    let cases = [
        (
            "receivers: [team-slack, mail, tickets]",
            "receivers: [team-slack, pager]",
            "routes[high].receivers: unknown receiver \"pager\"",
        ),
        (
            "receivers: [oncall]",
            "receivers: []",
            "routes[rbac].receivers: is empty",
        ),
        (
            "receivers: [oncall]",
            "receivers: [oncall, oncall]",
            "listed twice",
        ),
        ("min_level: 10", "min_level: 16", "routes[high].min_level"),
        (
            "{ max: 10, per_secs: 60 }",
            "{ max: 0, per_secs: 60 }",
            "routes[high].rate_limit",
        ),
        ("rules: [\"rbac.*\"]", "rules: [\"\"]", "routes[rbac].rules"),
        (
            "url: \"https://tickets.example.com/api\"",
            "url: \"ftp://tickets.example.com/api\"",
            "receivers[tickets].webhook.url",
        ),
        (
            "url: \"https://tickets.example.com/api\"",
            "url: \"not a url\"",
            "receivers[tickets].webhook.url",
        ),
        (
            "url: \"https://tickets.example.com/api\"",
            "url: \"https://user:pw@tickets.example.com/api\"",
            "credentials in the URL",
        ),
        (
            "url: \"https://events.pagerduty.com/v2/enqueue\"",
            "url: \"events.pagerduty.com\"",
            "receivers[oncall].pagerduty.url",
        ),
        (
            "{{ detection.title | tojson }}",
            "{{ detection.title | nosuchfilter }}",
            "receivers[tickets].webhook.template: unknown filter",
        ),
        (
            "{{ detection.level }}",
            "{{ detection.level ",
            "receivers[tickets].webhook.template: syntax error",
        ),
        (
            "{{ detection.title | tojson }}",
            "\"{{ detection.title }}\"",
            "receivers[tickets].webhook.template: renders invalid JSON",
        ),
        (
            "headers: {X-Team: sec}",
            "headers: {Content-Type: text/plain}",
            "receivers[tickets].webhook.headers",
        ),
        (
            "headers: {X-Team: sec}",
            "headers: {authorization: x}",
            "header \"Authorization\" is given twice",
        ),
        ("method: POST", "method: GET", "unknown variant"),
        (
            "slack: { url_file: /etc/vigil/notify/slack-url }",
            "slack: {}",
            "receivers[team-slack].slack: needs url_file",
        ),
        (
            "slack: { url_file: /etc/vigil/notify/slack-url }",
            "slack: { url_file: /x, url: \"https://h/x\" }",
            "has both url and url_file",
        ),
        (
            "name: oncall\n    pagerduty:",
            "name: oncall\n    slack: {url_file: /x}\n    pagerduty:",
            "receivers[oncall]: has more than one",
        ),
        (
            "name: team-slack",
            "name: \"team slack\"",
            "receivers[0].name",
        ),
        (
            "name: oncall",
            "name: mail",
            "receivers[mail]: the name is used by another receiver",
        ),
        (
            "starttls: true, username: vigil",
            "starttls: false, username: vigil",
            "password in clear",
        ),
        (
            "password_file: /etc/vigil/notify/smtp-password, ",
            "",
            "receivers[mail].email.password_file: is required with username",
        ),
        (
            "from: \"vigil@example.com\"",
            "from: \"not an address\"",
            "receivers[mail].email.from",
        ),
        (
            "to: [\"sec@example.com\"]",
            "to: []",
            "receivers[mail].email.to: is empty",
        ),
        (
            "min_level: 10",
            "min_levle: 10",
            "unknown field `min_levle`",
        ),
        (
            "dedup_window_secs: 600",
            "dedup_window_secs: 600\nqueue_size: 0",
            "queue_size",
        ),
    ];
    for (from, to, expected) in cases {
        let err = error_for(from, to);
        assert!(
            err.contains(expected),
            "{to:?}: expected {expected:?} in {err:?}"
        );
    }
    let no_routes = EXAMPLE.split("routes:").next().unwrap().to_owned() + "routes: []\n";
    let err = config(&no_routes).validate().unwrap_err().to_string();
    assert!(err.contains("routes: is empty"), "{err}");
}

#[test]
fn every_field_is_documented_in_the_schema() {
    let schema = serde_json::to_value(schemars::schema_for!(NotifyConfig)).unwrap();
    let mut undocumented = Vec::new();
    let mut check = |name: &str, obj: &serde_json::Value| {
        if let Some(props) = obj.get("properties").and_then(|p| p.as_object()) {
            for (field, s) in props {
                if s.get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty)
                {
                    undocumented.push(format!("{name}.{field}"));
                }
            }
        }
    };
    check("NotifyConfig", &schema);
    let defs = schema["$defs"].as_object().unwrap();
    assert!(defs.len() >= 8, "{:?}", defs.keys());
    for (name, def) in defs {
        check(name, def);
    }
    assert!(undocumented.is_empty(), "undocumented: {undocumented:?}");
}

#[test]
fn start_needs_a_runtime() {
    let err = Notifier::start(config(EXAMPLE)).unwrap_err();
    assert!(matches!(err, NotifyError::NoRuntime), "{err}");
}

#[tokio::test]
async fn start_refuses_an_unreadable_ca_file() {
    let yaml = EXAMPLE.replace(
        "slack: { url_file: /etc/vigil/notify/slack-url }",
        "slack: { url_file: /etc/vigil/notify/slack-url, ca_file: /nonexistent/ca.pem }",
    );
    let err = Notifier::start(config(&yaml)).unwrap_err().to_string();
    assert!(
        err.contains("receiver team-slack") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
}
