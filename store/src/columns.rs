//! The columns an event is stored under: what the console filters on and shows in one
//! timeline row, and the text the free-text search indexes.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vigil_core::event::{Event, Kind, Source};

/// Longest one-line summary, in characters.
const SUMMARY_CHARS: usize = 240;

/// Longest actor, object, container and image shown in a row, in bytes (the event's JSON
/// keeps them whole).
const SHOWN_BYTES: usize = 512;

/// Most text indexed from one field, in bytes: a megabyte log line is kept whole in the
/// event's JSON, but only its start is searchable, so one hostile event cannot make the
/// index (and every insert) slow.
const SEARCH_FIELD_BYTES: usize = 4096;

/// The derived columns of one event.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Columns {
    pub time_ns: i64,
    pub namespace: Option<String>,
    pub level: Option<u8>,
    pub rules: Vec<String>,
    pub titles: Vec<String>,
    pub actor: Option<String>,
    pub object: Option<String>,
    pub container: Option<String>,
    pub image: Option<String>,
    pub summary: String,
    pub search: String,
}

impl Columns {
    pub(crate) fn of(ev: &Event) -> Columns {
        let container_label = ev.container.as_ref().and_then(|c| {
            c.name
                .clone()
                .or_else(|| c.id.as_deref().map(|id| short_id(id).to_owned()))
        });
        let image = ev.container.as_ref().and_then(|c| c.image.clone());
        let actor = ev
            .actor
            .user
            .clone()
            .or_else(|| ev.actor.service_account.clone());
        let object = object_path(ev);
        let mut rules = Vec::with_capacity(ev.detections.len());
        let mut titles = Vec::with_capacity(ev.detections.len());
        for d in &ev.detections {
            rules.push(d.rule.clone());
            titles.push(d.title.clone());
        }
        let summary = summary(
            ev,
            actor.as_deref(),
            object.as_deref(),
            container_label.as_deref(),
            image.as_deref(),
        );
        // The summary is made of these fields, so they are indexed once each rather than
        // the summary too: the index, and the cost of every insert, grow with the text.
        let mut search = String::new();
        {
            let mut add = |s: Option<&str>| {
                if let Some(s) = s.filter(|s| !s.is_empty()) {
                    search.push_str(cut(s, SEARCH_FIELD_BYTES));
                    search.push('\n');
                }
            };
            add(Some(&ev.action));
            for d in &ev.detections {
                add(Some(&d.rule));
                add(Some(&d.title));
                for m in &d.mitre {
                    add(Some(m));
                }
            }
            add(actor.as_deref());
            add(object.as_deref());
            if let Some(c) = &ev.container {
                add(c.name.as_deref());
                add(c.image.as_deref());
                add(c.pod.as_ref().and_then(|p| p.name.as_deref()));
            }
            if let Some(p) = &ev.process {
                add(p
                    .command_line
                    .as_deref()
                    .or(p.exe.as_deref())
                    .or(p.name.as_deref()));
            }
            add(ev.log.as_ref().and_then(|l| l.message.as_deref()));
            add(ev.file.as_ref().map(|f| f.path.as_str()));
            if let Some(p) = &ev.posture {
                add(Some(&p.check));
                add(Some(&p.title));
            }
            for a in ev.metrics.iter().flat_map(|m| &m.anomalies) {
                add(Some(&a.signal));
            }
            add(ev.node.as_deref());
        }
        let shown = |s: Option<String>| s.map(|s| cut(&s, SHOWN_BYTES).to_owned());
        Columns {
            time_ns: time_ns(&ev.time)
                .or_else(|| time_ns(&ev.ingest_time))
                .unwrap_or(0),
            namespace: namespace(ev),
            level: ev.detections.iter().map(|d| d.level).max(),
            rules,
            titles,
            actor: shown(actor),
            object: shown(object),
            container: shown(container_label),
            image: shown(image),
            summary,
            search,
        }
    }
}

/// Nanoseconds since the epoch of an RFC 3339 time, clamped to what an i64 holds
/// (years 1677–2262).
pub(crate) fn time_ns(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339).ok().map(nanos)
}

pub(crate) fn nanos(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// The Kubernetes namespace: the API object's, else the pod's. containerd's events carry
/// containerd's own namespace (`k8s.io`, `moby`) in `object.namespace`, which is not a
/// Kubernetes namespace and would only clutter the filter, so for them only the pod's
/// counts.
fn namespace(ev: &Event) -> Option<String> {
    let pod = || {
        ev.container
            .as_ref()
            .and_then(|c| c.pod.as_ref())
            .and_then(|p| p.namespace.clone())
    };
    if ev.source == Source::Containerd {
        return pod();
    }
    ev.object.namespace.clone().or_else(pod)
}

/// `resource/name/subresource`, as kubectl names it: `pods/web-1/exec`.
fn object_path(ev: &Event) -> Option<String> {
    let o = &ev.object;
    let parts: Vec<&str> = [&o.resource, &o.name, &o.subresource]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn short_id(id: &str) -> &str {
    cut(id, 12)
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn summary(
    ev: &Event,
    actor: Option<&str>,
    object: Option<&str>,
    container: Option<&str>,
    image: Option<&str>,
) -> String {
    let command = ev.process.as_ref().and_then(|p| {
        p.command_line
            .as_deref()
            .or(p.exe.as_deref())
            .or(p.name.as_deref())
    });
    let mut parts: Vec<String> = Vec::new();
    match ev.kind {
        Kind::Audit => {
            parts.push(actor.unwrap_or("someone").to_owned());
            parts.push(ev.action.clone());
            parts.extend(object.map(str::to_owned));
            if let Some(c) = command {
                parts.push(format!("— {c}"));
            }
        }
        Kind::Runtime => {
            parts.push(ev.action.clone());
            // A Kubernetes container's own name (`app`) says little in a timeline of many
            // pods: its pod comes first.
            let pod = ev
                .container
                .as_ref()
                .and_then(|c| c.pod.as_ref())
                .and_then(|p| p.name.as_deref());
            match (container, object) {
                (Some(c), _) => parts.push(match pod {
                    Some(p) => format!("{p}/{c}"),
                    None => c.to_owned(),
                }),
                (None, Some(o)) => parts.push(o.to_owned()),
                (None, None) => {}
            }
            if let Some(i) = image {
                parts.push(format!("({i})"));
            }
            if let Some(c) = command {
                parts.push(format!("— {c}"));
            }
        }
        Kind::Log => {
            parts.push(format!("{}:", container.unwrap_or("log")));
            parts.extend(
                ev.log
                    .as_ref()
                    .and_then(|l| l.message.as_deref())
                    .map(|m| cut(m, SUMMARY_CHARS * 4).to_owned()),
            );
        }
        Kind::Process => {
            parts.push(format!("{}:", container.unwrap_or("node")));
            parts.push(command.unwrap_or(&ev.action).to_owned());
        }
        Kind::File => {
            parts.push(format!("{}:", container.unwrap_or("node")));
            match &ev.file {
                Some(f) => {
                    parts.push(f.change.as_str().to_owned());
                    parts.push(f.path.clone());
                }
                None => parts.push(ev.action.clone()),
            }
        }
        Kind::Metrics => {
            parts.push(format!("{}:", container.unwrap_or("node")));
            let anomalies: Vec<&str> = ev
                .metrics
                .iter()
                .flat_map(|m| &m.anomalies)
                .map(|a| a.signal.as_str())
                .collect();
            if anomalies.is_empty() {
                parts.push(metrics_line(ev));
            } else {
                parts.push(anomalies.join(", "));
            }
        }
        Kind::Posture => match &ev.posture {
            Some(p) => {
                parts.push(format!("{} {}", p.status.as_str(), p.check));
                parts.push(p.title.clone());
                parts.extend(container.map(|c| format!("({c})")));
            }
            None => parts.push(ev.action.clone()),
        },
    }
    if ev.outcome == vigil_core::event::Outcome::Failure {
        parts.push("(failed)".to_owned());
    }
    one_line(&parts.join(" "), SUMMARY_CHARS)
}

fn metrics_line(ev: &Event) -> String {
    let Some(m) = &ev.metrics else {
        return ev.action.clone();
    };
    let mut out = Vec::new();
    if let Some(cores) = m.cpu.as_ref().and_then(|c| c.usage_cores) {
        out.push(format!("cpu {cores:.2} cores"));
    }
    if let Some(mem) = &m.memory {
        out.push(format!(
            "memory {:.0} MiB",
            mem.working_set_bytes.unwrap_or(mem.usage_bytes) as f64 / 1_048_576.0
        ));
    }
    if out.is_empty() {
        ev.action.clone()
    } else {
        out.join(", ")
    }
}

/// Control characters (newlines among them) become spaces and runs of spaces one, so the
/// summary stays one line; longer than `max` characters, it ends with an ellipsis.
fn one_line(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut chars = 0;
    let mut space = false;
    for c in s.chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space || out.is_empty() {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if chars == max {
            out.push('…');
            break;
        }
        out.push(c);
        chars += 1;
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_core::event::{Container, Detection, Log, PodRef};

    fn event(json: serde_json::Value) -> Event {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_runtime_event_names_the_pod_before_the_container() {
        let ev = event(serde_json::json!({
            "schema": "vigil.event/v1", "id": "r", "time": "2026-01-02T03:04:05Z",
            "ingest_time": "2026-01-02T03:04:05Z", "source": "docker", "kind": "runtime",
            "action": "start", "outcome": "success",
            "container": {"name": "app", "image": "nginx:1.27",
                          "pod": {"namespace": "shop", "name": "web-7d9f"}}
        }));
        assert_eq!(Columns::of(&ev).summary, "start web-7d9f/app (nginx:1.27)");
        let mut bare = ev.clone();
        if let Some(c) = bare.container.as_mut() {
            c.pod = None;
        }
        assert_eq!(Columns::of(&bare).summary, "start app (nginx:1.27)");
    }

    #[test]
    fn an_exec_reads_as_who_did_what_to_which_object() {
        let ev = event(serde_json::json!({
            "schema": "vigil.event/v1", "id": "a", "time": "2026-01-02T03:04:05.000000006Z",
            "ingest_time": "2026-01-02T03:04:05Z", "source": "k8s_audit", "kind": "audit",
            "action": "exec", "outcome": "success", "actor": {"user": "alice"},
            "object": {"resource": "pods", "namespace": "shop", "name": "web-1", "subresource": "exec"},
            "process": {"command_line": "sh -c id"}
        }));
        let c = Columns::of(&ev);
        assert_eq!(c.summary, "alice exec pods/web-1/exec — sh -c id");
        assert_eq!(c.object.as_deref(), Some("pods/web-1/exec"));
        assert_eq!(c.namespace.as_deref(), Some("shop"));
        assert_eq!(c.time_ns, 1_767_323_045_000_000_006);
    }

    #[test]
    fn containerd_namespaces_are_not_kubernetes_namespaces() {
        let mut ev = Event {
            source: Source::Containerd,
            kind: Kind::Runtime,
            action: "start".into(),
            ..Event::default()
        };
        ev.object.namespace = Some("k8s.io".into());
        assert_eq!(Columns::of(&ev).namespace, None);
        ev.container = Some(Container {
            id: Some("c".repeat(64)),
            pod: Some(PodRef {
                namespace: Some("shop".into()),
                ..PodRef::default()
            }),
            ..Container::default()
        });
        let c = Columns::of(&ev);
        assert_eq!(c.namespace.as_deref(), Some("shop"));
        assert_eq!(c.container.as_deref(), Some("cccccccccccc"), "a short id");
    }

    #[test]
    fn a_multi_line_huge_log_message_becomes_one_short_line() {
        let ev = Event {
            kind: Kind::Log,
            time: "not a time".into(),
            ingest_time: "2026-01-02T03:04:05Z".into(),
            log: Some(Log {
                message: Some(format!("first\nsecond\t{}", "é".repeat(1_000_000))),
                ..Log::default()
            }),
            detections: vec![
                Detection {
                    rule: "a".into(),
                    level: 3,
                    ..Detection::default()
                },
                Detection {
                    rule: "b".into(),
                    level: 12,
                    ..Detection::default()
                },
            ],
            ..Event::default()
        };
        let c = Columns::of(&ev);
        assert!(
            c.summary.starts_with("log: first second éé"),
            "{}",
            c.summary
        );
        assert!(c.summary.ends_with('…'));
        assert_eq!(c.summary.chars().count(), SUMMARY_CHARS + 1);
        assert!(
            c.search.len() < 3 * SEARCH_FIELD_BYTES,
            "{}",
            c.search.len()
        );
        assert_eq!(c.level, Some(12));
        assert_eq!(
            c.time_ns,
            time_ns("2026-01-02T03:04:05Z").unwrap(),
            "ingest time"
        );
    }

    #[test]
    fn cut_never_splits_a_character() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
        assert_eq!(cut("abc", 0), "");
    }
}
