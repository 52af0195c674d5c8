//! What a Sigma rule sees of an event.
//!
//! Rules read the normalized keys (`action`, `workload.privileged`, `object.resource` ...),
//! so one rule covers every source. Any other field name is looked up in the original
//! record, so rules written for raw Kubernetes audit events (`verb`, `objectRef.resource`,
//! `requestURI`, `responseStatus.code` — SigmaHQ's) run unmodified. A `raw.` prefix reads the
//! original record explicitly when a name exists in both.
//!
//! Derived fields, computed only when a rule asks for them:
//!
//! - `workload.untrusted_images`: the images whose registry is outside the allowed list
//!   ([`super::DetectConfig::allowed_registries`]); Sigma cannot say "some element is not in
//!   a list", so the comparison is made here;
//! - `request.data_keys`, `request.data_values`: the keys and values of
//!   `requestObject.data`/`stringData` (ConfigMaps; Secret values are redacted before any
//!   rule runs).
//!
//! Resource-usage events expose `metrics.anomalies.signal` (the signals the collector
//! judged, by name) and the main figures as numbers (`metrics.memory.limit_ratio`,
//! `metrics.cpu.usage_cores`, `metrics.network.tx_bytes_per_sec` ...), for `|gte`-style
//! rules of one's own.
//!
//! Lookups borrow from the event; nothing is serialized per event.

use std::borrow::Cow;

use rsigma_eval::event::{Event as SigmaEvent, EventValue, JsonEvent};
use serde_json::Value;

use crate::event::{Event, HostPath, WorkloadContainer};

/// The original record of an event, for rules that read raw fields. A source may build its
/// DOM only when first asked.
pub trait RawSource {
    /// The record as a JSON document, if there is one.
    fn raw_value(&self) -> Option<&Value>;

    /// A raw field answered without building the document, when the source knows it
    /// exactly: `Some(value)` is the answer (`Some(None)`: absent), `None` means "look in
    /// the document".
    fn known_field(&self, path: &str) -> Option<Option<EventValue<'_>>> {
        let _ = path;
        None
    }
}

impl RawSource for Value {
    fn raw_value(&self) -> Option<&Value> {
        Some(self)
    }
}

/// An event as rules see it.
pub struct RuleView<'a> {
    event: &'a Event,
    raw: Option<&'a dyn RawSource>,
    /// rsigma's walker over the raw record, for paths with escapes or brackets and for
    /// keyword searches; built on first use.
    json: std::cell::OnceCell<Option<JsonEvent<'a>>>,
    config: &'a super::DetectConfig,
}

impl<'a> RuleView<'a> {
    /// `raw` is the original record, when the source has one.
    pub fn new(
        event: &'a Event,
        raw: Option<&'a dyn RawSource>,
        config: &'a super::DetectConfig,
    ) -> Self {
        RuleView {
            event,
            raw,
            json: std::cell::OnceCell::new(),
            config,
        }
    }

    fn raw_value(&self) -> Option<&'a Value> {
        self.raw.and_then(|r| r.raw_value())
    }

    fn json(&self) -> Option<&JsonEvent<'a>> {
        self.json
            .get_or_init(|| self.raw_value().map(JsonEvent::borrow))
            .as_ref()
    }

    fn request_data(&self, keys: bool) -> Option<EventValue<'_>> {
        let body = self.raw_value()?.get("requestObject")?;
        let mut out = Vec::new();
        for field in ["data", "stringData"] {
            if let Some(Value::Object(map)) = body.get(field) {
                for (k, v) in map {
                    match (keys, v) {
                        (true, _) => out.push(s(k)),
                        (false, Value::String(v)) => out.push(s(v)),
                        (false, _) => {}
                    }
                }
            }
        }
        (!out.is_empty()).then_some(EventValue::Array(out))
    }

    fn raw_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(known) = self.raw.and_then(|r| r.known_field(path)) {
            return known;
        }
        // Plain dotted paths, by far the common case, are walked here without allocating;
        // rsigma's own walker parses the path on every call. Escapes and brackets go to it.
        if path.contains(['[', '\\']) {
            return self.json()?.get_field(path);
        }
        let root = self.raw_value()?;
        if let Some(v) = root.as_object().and_then(|o| o.get(path)) {
            return Some(EventValue::from(v));
        }
        let mut found = Vec::new();
        walk(root, path, &mut found);
        match found.len() {
            0 => None,
            1 => found.pop(),
            _ => Some(EventValue::Array(found)),
        }
    }
}

/// Follows a dotted path; crossing an array follows every element, so a rule sees every
/// value the path reaches (the any-member semantics of rsigma's own walker). Keys may contain
/// dots themselves (`annotations.authorization.k8s.io/decision`, label keys): when a segment
/// is not a key, it is joined with the next one and tried again.
fn walk<'a>(v: &'a Value, path: &str, out: &mut Vec<EventValue<'a>>) {
    match v {
        Value::Object(map) => {
            let mut end = 0;
            loop {
                let (key, rest) = match path[end..].find('.') {
                    Some(i) => (&path[..end + i], Some(&path[end + i + 1..])),
                    None => (path, None),
                };
                if let Some(next) = map.get(key) {
                    match rest {
                        Some(rest) => walk(next, rest, out),
                        None => out.push(EventValue::from(next)),
                    }
                    return;
                }
                match rest {
                    Some(_) => end = key.len() + 1,
                    None => return,
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, path, out);
            }
        }
        _ => {}
    }
}

fn s(v: &str) -> EventValue<'_> {
    EventValue::Str(Cow::Borrowed(v))
}

fn opt(v: &Option<String>) -> Option<EventValue<'_>> {
    v.as_deref().map(s)
}

fn list(v: &[String]) -> Option<EventValue<'_>> {
    (!v.is_empty()).then(|| EventValue::Array(v.iter().map(|x| s(x)).collect()))
}

fn flag(b: bool) -> Option<EventValue<'static>> {
    Some(EventValue::Bool(b))
}

fn num(v: Option<u32>) -> Option<EventValue<'static>> {
    v.map(|v| EventValue::Int(i64::from(v)))
}

fn paths<'a>(
    hp: &'a [HostPath],
    f: impl Fn(&'a HostPath) -> EventValue<'a>,
) -> Option<EventValue<'a>> {
    (!hp.is_empty()).then(|| EventValue::Array(hp.iter().map(f).collect()))
}

fn containers<'a>(
    cs: &'a [WorkloadContainer],
    f: impl Fn(&'a WorkloadContainer) -> Option<EventValue<'a>>,
) -> Option<EventValue<'a>> {
    let vals: Vec<_> = cs.iter().filter_map(f).collect();
    (!vals.is_empty()).then_some(EventValue::Array(vals))
}

impl RuleView<'_> {
    /// Calls `f` with each string value of `path` (every member of a list), without building
    /// the list; `false` when the field is absent. Non-string values go to `other`.
    pub(super) fn visit_strings(
        &self,
        path: &str,
        f: &mut dyn FnMut(&str),
        other: &mut dyn FnMut(),
    ) -> bool {
        let a = &self.event.actor;
        let lists: Option<&[String]> = match path {
            "actor.groups" => Some(&a.groups),
            "actor.source_ips" => Some(&a.source_ips),
            _ => None,
        };
        if let Some(list) = lists {
            list.iter().for_each(|s| f(s));
            return !list.is_empty();
        }
        let Some(value) = SigmaEvent::get_field(self, path) else {
            return false;
        };
        let members: &[EventValue<'_>] = match &value {
            EventValue::Array(items) => items,
            single => std::slice::from_ref(single),
        };
        for m in members {
            match m {
                EventValue::Str(s) => f(s),
                _ => other(),
            }
        }
        true
    }

    /// The normalized fields. `None` from the outer option means "not a normalized key",
    /// `Some(None)` means "a normalized key that is absent on this event".
    fn normalized(&self, path: &str) -> Option<Option<EventValue<'_>>> {
        let e = self.event;
        let (head, tail) = path.split_once('.').unwrap_or((path, ""));
        Some(match (head, tail) {
            ("schema", "") => Some(s(crate::event::SCHEMA)),
            ("id", "") => Some(s(&e.id)),
            ("time", "") => Some(s(&e.time)),
            ("ingest_time", "") => Some(s(&e.ingest_time)),
            ("cluster", "") => opt(&e.cluster),
            ("node", "") => opt(&e.node),
            ("source", "") => Some(s(e.source.as_str())),
            ("kind", "") => Some(s(e.kind.as_str())),
            ("action", "") => Some(s(&e.action)),
            ("outcome", "") => Some(s(e.outcome.as_str())),
            ("actor", t) => {
                let a = &e.actor;
                match t {
                    "user" => opt(&a.user),
                    "uid" => opt(&a.uid),
                    "groups" => list(&a.groups),
                    "service_account" => opt(&a.service_account),
                    "impersonated_user" => opt(&a.impersonated_user),
                    "source_ips" => list(&a.source_ips),
                    "user_agent" => opt(&a.user_agent),
                    _ => None,
                }
            }
            ("object", t) => {
                let o = &e.object;
                match t {
                    "api_group" => opt(&o.api_group),
                    "api_version" => opt(&o.api_version),
                    "resource" => opt(&o.resource),
                    "subresource" => opt(&o.subresource),
                    "namespace" => opt(&o.namespace),
                    "name" => opt(&o.name),
                    "uid" => opt(&o.uid),
                    "request_uri" => opt(&o.request_uri),
                    _ => None,
                }
            }
            ("workload", t) => {
                let Some(w) = &e.workload else {
                    return Some(None);
                };
                match t {
                    "kind" => opt(&w.kind),
                    "namespace" => opt(&w.namespace),
                    "name" => opt(&w.name),
                    "service_account" => opt(&w.service_account),
                    "host_network" => flag(w.host_network),
                    "host_pid" => flag(w.host_pid),
                    "host_ipc" => flag(w.host_ipc),
                    "privileged" => flag(w.privileged),
                    "capabilities_added" => list(&w.capabilities_added),
                    "host_paths.path" | "host_paths" => paths(&w.host_paths, |h| s(&h.path)),
                    "host_paths.read_only" => {
                        paths(&w.host_paths, |h| EventValue::Bool(h.read_only))
                    }
                    "images" => list(&w.images),
                    "untrusted_images" => {
                        let bad: Vec<_> = w
                            .images
                            .iter()
                            .filter(|i| {
                                !super::registry_allowed(i, &self.config.allowed_registries)
                            })
                            .map(|i| s(i))
                            .collect();
                        (!bad.is_empty()).then_some(EventValue::Array(bad))
                    }
                    "containers.name" => containers(&w.containers, |c| Some(s(&c.name))),
                    "containers.image" => containers(&w.containers, |c| opt(&c.image)),
                    "containers.role" => containers(&w.containers, |c| opt(&c.role)),
                    "containers.privileged" => containers(&w.containers, |c| flag(c.privileged)),
                    "containers.allow_privilege_escalation" => containers(&w.containers, |c| {
                        c.allow_privilege_escalation.and_then(flag)
                    }),
                    "containers.run_as_root" => containers(&w.containers, |c| flag(c.run_as_root)),
                    "containers.capabilities_added" => {
                        containers(&w.containers, |c| list(&c.capabilities_added))
                    }
                    _ => None,
                }
            }
            ("container", t) => {
                let Some(c) = &e.container else {
                    return Some(None);
                };
                match t {
                    "id" => opt(&c.id),
                    "name" => opt(&c.name),
                    "image" => opt(&c.image),
                    "image_id" => opt(&c.image_id),
                    "runtime" => opt(&c.runtime),
                    "pod.namespace" => c.pod.as_ref().and_then(|p| opt(&p.namespace)),
                    "pod.name" => c.pod.as_ref().and_then(|p| opt(&p.name)),
                    "pod.uid" => c.pod.as_ref().and_then(|p| opt(&p.uid)),
                    _ => t
                        .strip_prefix("labels.")
                        .and_then(|k| c.labels.get(k))
                        .map(|v| s(v)),
                }
            }
            ("process", t) => {
                let Some(p) = &e.process else {
                    return Some(None);
                };
                match t {
                    "command_line" => opt(&p.command_line),
                    "args" => list(&p.args),
                    "tty" => p.tty.and_then(flag),
                    "exec_id" => opt(&p.exec_id),
                    "user" => opt(&p.user),
                    "privileged" => flag(p.privileged),
                    "healthcheck" => flag(p.healthcheck),
                    "pid" => num(p.pid),
                    "ppid" => num(p.ppid),
                    "name" => opt(&p.name),
                    "exe" => opt(&p.exe),
                    "cwd" => opt(&p.cwd),
                    "uid" => num(p.uid),
                    "euid" => num(p.euid),
                    "gid" => num(p.gid),
                    "egid" => num(p.egid),
                    "parent.pid" => num(p.parent.as_ref().and_then(|q| q.pid)),
                    "parent.name" => p.parent.as_ref().and_then(|q| opt(&q.name)),
                    "parent.exe" => p.parent.as_ref().and_then(|q| opt(&q.exe)),
                    "parent.command_line" => p.parent.as_ref().and_then(|q| opt(&q.command_line)),
                    "parent_is_runtime" => p.parent_is_runtime.and_then(flag),
                    "container_init" => flag(p.container_init),
                    "in_container" => p.in_container.and_then(flag),
                    _ => None,
                }
            }
            ("request", "data_keys") => self.request_data(true),
            ("request", "data_values") => self.request_data(false),
            ("log", t) => {
                let Some(l) = &e.log else { return Some(None) };
                match t {
                    "stream" => opt(&l.stream),
                    "message" => opt(&l.message),
                    "partial" => flag(l.partial),
                    "file" => opt(&l.file),
                    _ => None,
                }
            }
            ("file", t) => {
                let Some(f) = &e.file else { return Some(None) };
                match t {
                    "path" => Some(s(&f.path)),
                    "change" => Some(s(f.change.as_str())),
                    "size" => f
                        .size
                        .and_then(|v| i64::try_from(v).ok())
                        .map(EventValue::Int),
                    "sha256" => opt(&f.sha256),
                    "hash_skipped" => opt(&f.hash_skipped),
                    "executable" => flag(f.executable),
                    "elf" => flag(f.elf),
                    "sensitive" => flag(f.sensitive),
                    "in_image" => flag(f.in_image),
                    _ => None,
                }
            }
            ("posture", t) => {
                let Some(p) = &e.posture else {
                    return Some(None);
                };
                match t {
                    "check" => Some(s(&p.check)),
                    "title" => Some(s(&p.title)),
                    "target" => Some(s(&p.target)),
                    "status" => Some(s(p.status.as_str())),
                    "previous_status" => p.previous_status.map(|v| s(v.as_str())),
                    "regressed" => flag(p.regressed),
                    "reason" => opt(&p.reason),
                    "benchmark" => opt(&p.benchmark),
                    _ => None,
                }
            }
            ("metrics", t) => {
                let Some(m) = &e.metrics else {
                    return Some(None);
                };
                let float = |v: Option<f64>| v.map(EventValue::Float);
                let int =
                    |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).map(EventValue::Int);
                match t {
                    "collector" => Some(s(&m.collector)),
                    "anomalies" | "anomalies.signal" => (!m.anomalies.is_empty()).then(|| {
                        EventValue::Array(m.anomalies.iter().map(|a| s(&a.signal)).collect())
                    }),
                    "host_network" => flag(m.host_network),
                    "cpu.usage_cores" => float(m.cpu.as_ref().and_then(|c| c.usage_cores)),
                    "cpu.limit_cores" => float(m.cpu.as_ref().and_then(|c| c.limit_cores)),
                    "cpu.throttled_ratio" => float(m.cpu.as_ref().and_then(|c| c.throttled_ratio)),
                    "memory.usage_bytes" => int(m.memory.as_ref().map(|x| x.usage_bytes)),
                    "memory.working_set_bytes" => {
                        int(m.memory.as_ref().and_then(|x| x.working_set_bytes))
                    }
                    "memory.limit_bytes" => int(m.memory.as_ref().and_then(|x| x.limit_bytes)),
                    "memory.limit_ratio" => float(m.memory.as_ref().and_then(|x| x.limit_ratio)),
                    "memory.oom_kills" => int(m.memory.as_ref().and_then(|x| x.oom_kills)),
                    "network.rx_bytes_per_sec" => {
                        float(m.network.as_ref().and_then(|n| n.rx_bytes_per_sec))
                    }
                    "network.tx_bytes_per_sec" => {
                        float(m.network.as_ref().and_then(|n| n.tx_bytes_per_sec))
                    }
                    "network.tcp_connections" => {
                        int(m.network.as_ref().and_then(|n| n.tcp_connections))
                    }
                    "pids.current" => int(m.pids.as_ref().map(|p| p.current)),
                    _ => None,
                }
            }
            _ => return None,
        })
    }
}

impl SigmaEvent for RuleView<'_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if let Some(raw_path) = path.strip_prefix("raw.") {
            return self.raw_field(raw_path);
        }
        match self.normalized(path) {
            Some(found) => found,
            None => self.raw_field(path),
        }
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let e = self.event;
        let own = [
            e.process.as_ref().and_then(|p| p.command_line.as_deref()),
            e.log.as_ref().and_then(|l| l.message.as_deref()),
            e.actor.user.as_deref(),
            e.object.name.as_deref(),
        ];
        own.into_iter().flatten().any(pred) || self.json().is_some_and(|r| r.any_string_value(pred))
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = self
            .json()
            .map(|r| r.all_string_values())
            .unwrap_or_default();
        let e = self.event;
        if let Some(cmd) = e.process.as_ref().and_then(|p| p.command_line.as_deref()) {
            out.push(Cow::Borrowed(cmd));
        }
        if let Some(msg) = e.log.as_ref().and_then(|l| l.message.as_deref()) {
            out.push(Cow::Borrowed(msg));
        }
        out
    }

    fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self.event).unwrap_or(Value::Null);
        if let (Some(obj), Some(raw)) = (v.as_object_mut(), self.raw_value()) {
            obj.insert("raw".into(), raw.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, Workload};
    use serde_json::json;

    #[test]
    fn normalized_keys_win_and_raw_fills_the_rest() {
        let event = Event {
            action: "exec".into(),
            actor: Actor {
                groups: vec!["a".into(), "b".into()],
                ..Actor::default()
            },
            workload: Some(Workload {
                privileged: true,
                host_paths: vec![HostPath {
                    path: "/etc".into(),
                    read_only: true,
                }],
                ..Workload::default()
            }),
            ..Event::default()
        };
        let raw = json!({"verb": "get", "kind": "Event", "objectRef": {"resource": "pods"}});
        let config = crate::detect::DetectConfig::default();
        let view = RuleView::new(&event, Some(&raw as &dyn RawSource), &config);
        assert_eq!(view.get_field("action"), Some(s("exec")));
        assert_eq!(view.get_field("kind"), Some(s("audit")));
        assert_eq!(view.get_field("raw.kind"), Some(s("Event")));
        assert_eq!(view.get_field("verb"), Some(s("get")));
        assert_eq!(view.get_field("objectRef.resource"), Some(s("pods")));
        assert_eq!(
            view.get_field("workload.privileged"),
            Some(EventValue::Bool(true))
        );
        assert_eq!(
            view.get_field("workload.host_paths.path"),
            Some(EventValue::Array(vec![s("/etc")]))
        );
        assert_eq!(
            view.get_field("actor.groups"),
            Some(EventValue::Array(vec![s("a"), s("b")]))
        );
        // Normalized keys that are absent do not fall through to the raw record.
        assert_eq!(view.get_field("process.command_line"), None);
        assert_eq!(view.get_field("actor.user"), None);
        assert_eq!(view.get_field("nothing.here"), None);
    }

    #[test]
    fn resource_figures_and_signals_are_fields() {
        use crate::event::{Anomaly, MemoryUsage, ResourceUsage};
        let event = Event {
            metrics: Some(ResourceUsage {
                collector: "cgroup_v2".into(),
                memory: Some(MemoryUsage {
                    usage_bytes: 10,
                    limit_ratio: Some(0.95),
                    ..MemoryUsage::default()
                }),
                anomalies: vec![Anomaly {
                    signal: "memory_near_limit".into(),
                    value: 0.95,
                    threshold: 0.9,
                    ..Anomaly::default()
                }],
                ..ResourceUsage::default()
            }),
            ..Event::default()
        };
        let config = crate::detect::DetectConfig::default();
        let view = RuleView::new(&event, None, &config);
        assert_eq!(
            view.get_field("metrics.anomalies.signal"),
            Some(EventValue::Array(vec![s("memory_near_limit")]))
        );
        assert_eq!(
            view.get_field("metrics.memory.limit_ratio"),
            Some(EventValue::Float(0.95))
        );
        assert_eq!(
            view.get_field("metrics.memory.usage_bytes"),
            Some(EventValue::Int(10))
        );
        assert_eq!(view.get_field("metrics.cpu.usage_cores"), None);
        assert_eq!(
            RuleView::new(&Event::default(), None, &config).get_field("metrics.collector"),
            None
        );
    }

    #[test]
    fn raw_paths_cross_arrays_like_rsigma() {
        let event = Event::default();
        let raw = json!({"requestObject": {"rules": [{"verbs": ["get"]}, {"verbs": ["*", "list"]}], "x.y": 1},
                         "a": {"b": [1, 2]}, "flat.key": "f"});
        let config = crate::detect::DetectConfig::default();
        let view = RuleView::new(&event, Some(&raw as &dyn RawSource), &config);
        let reference = JsonEvent::borrow(&raw);
        for path in [
            "requestObject.rules.verbs",
            "a.b",
            "flat.key",
            "a",
            "a.b.c",
            "requestObject.rules",
        ] {
            assert_eq!(
                view.get_field(&format!("raw.{path}")),
                reference.get_field(path),
                "{path}"
            );
        }
    }
}
