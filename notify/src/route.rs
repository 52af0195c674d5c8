//! Which detections become notifications: route matching, de-duplication and rate limits.
//!
//! Pure: the time is passed in, so the windows are tested with a made-up clock, and nothing
//! here sends or waits. Memory is bounded whatever the events hold: de-duplication keeps
//! 64-bit hashes, not the keys, and at most [`MAX_DEDUP_KEYS`] of them and
//! [`RECENT_EVENT_IDS`] event ids.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_core::event::{Detection, Event};

use crate::config::NotifyConfig;

/// Event ids remembered to drop an event offered again.
pub const RECENT_EVENT_IDS: usize = 16_384;
/// De-duplication keys remembered at most. Past this the oldest are forgotten early, so a
/// flood of distinct detections can at worst let an old key's repeat through again.
pub const MAX_DEDUP_KEYS: usize = 100_000;
/// Distinct rules counted by name in one held-back summary; the others are counted
/// together as "other rules".
pub const MAX_SUMMARY_RULES: usize = 20;
/// The longest rule name kept in a summary (rule names come from events).
const MAX_RULE_CHARS: usize = 128;

/// A `*`/`?` glob (`rbac.*`); without wildcards an exact match.
#[derive(Debug, Clone)]
pub(crate) struct Glob(Vec<char>);

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        Glob(pattern.chars().collect())
    }

    /// Linear-time wildcard matching (backtracks only to the last `*`), so a hostile
    /// subject cannot make it slow.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let p = &self.0;
        let t: Vec<char> = text.chars().collect();
        let (mut pi, mut ti) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some('*') => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(&c) if c == '?' || c == t[ti] => {
                    pi += 1;
                    ti += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        pi = sp + 1;
                        ti = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == '*')
    }
}

struct CompiledRoute {
    min_level: u8,
    rules: Vec<Glob>,
    namespaces: Vec<Glob>,
    receivers: Vec<usize>,
    rate_limit: Option<(u32, Duration)>,
}

impl CompiledRoute {
    fn matches(&self, d: &Detection, namespace: Option<&str>) -> bool {
        d.level >= self.min_level
            && (self.rules.is_empty() || self.rules.iter().any(|g| g.matches(&d.rule)))
            && (self.namespaces.is_empty()
                || namespace.is_some_and(|ns| self.namespaces.iter().any(|g| g.matches(ns))))
    }
}

/// The namespace an event is about: the API object's, else the container's pod's.
pub fn namespace(event: &Event) -> Option<&str> {
    event
        .object
        .namespace
        .as_deref()
        .or_else(|| {
            event
                .container
                .as_ref()
                .and_then(|c| c.pod.as_ref())
                .and_then(|p| p.namespace.as_deref())
        })
        .filter(|ns| !ns.is_empty())
}

/// What a detection is about, for de-duplication: the API object's name, else
/// `pod/container` (or whichever of the two is known).
pub fn subject(event: &Event) -> String {
    if let Some(name) = event.object.name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    let Some(c) = &event.container else {
        return String::new();
    };
    let pod = c.pod.as_ref().and_then(|p| p.name.as_deref());
    match (pod, c.name.as_deref()) {
        (Some(pod), Some(name)) => format!("{pod}/{name}"),
        (Some(one), None) | (None, Some(one)) => one.to_owned(),
        (None, None) => String::new(),
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub route: usize,
    pub receiver: usize,
    /// Index into the event's detections.
    pub detection: usize,
    /// The de-duplication key's hash, to [`Router::release`] it.
    pub key_hash: u64,
}

/// What became of one offered event.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Routed {
    pub planned: Vec<Planned>,
    /// Notifications not sent as repeats (same key in the window, or the event offered
    /// before: then 1 for the whole event).
    pub duplicates: u64,
    /// Notifications held back by a rate limit.
    pub rate_limited: u64,
}

/// Notifications one route held back for one receiver during a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeldBack {
    pub route: usize,
    pub receiver: usize,
    pub per: Duration,
    pub total: u64,
    /// Per rule, most held back first (then by name); see [`MAX_SUMMARY_RULES`].
    pub by_rule: Vec<(String, u64)>,
    pub max_level: u8,
}

#[derive(Debug)]
struct RateWindow {
    start: Instant,
    sent: u32,
    held: BTreeMap<String, u64>,
    held_total: u64,
    max_level: u8,
}

impl RateWindow {
    fn take_held(&mut self, route: usize, receiver: usize, per: Duration) -> Option<HeldBack> {
        if self.held_total == 0 {
            return None;
        }
        let mut by_rule: Vec<(String, u64)> = std::mem::take(&mut self.held).into_iter().collect();
        by_rule.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let held = HeldBack {
            route,
            receiver,
            per,
            total: self.held_total,
            by_rule,
            max_level: self.max_level,
        };
        self.held_total = 0;
        self.max_level = 0;
        Some(held)
    }
}

/// Remembers recent keys (as hashes) for a fixed time.
#[derive(Debug)]
struct Window {
    ttl: Duration,
    cap: usize,
    seen: HashMap<u64, Instant>,
    /// Insertion order, which is also expiry order since every entry lives `ttl`.
    order: VecDeque<(Instant, u64)>,
}

impl Window {
    fn new(ttl: Duration, cap: usize) -> Window {
        Window {
            ttl,
            cap,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.order.front() {
            let expired = now.saturating_duration_since(at) >= self.ttl;
            if !expired && self.order.len() <= self.cap {
                break;
            }
            self.order.pop_front();
            // A released and re-inserted key has a newer entry further back.
            if self.seen.get(&key) == Some(&at) {
                self.seen.remove(&key);
            }
        }
    }

    /// True when `key` was seen within the window; otherwise remembers it from `now`.
    fn check_and_insert(&mut self, key: u64, now: Instant) -> bool {
        self.expire(now);
        if let Some(&at) = self.seen.get(&key)
            && now.saturating_duration_since(at) < self.ttl
        {
            return true;
        }
        self.seen.insert(key, now);
        self.order.push_back((now, key));
        if self.order.len() > self.cap {
            self.expire(now);
        }
        false
    }

    fn forget(&mut self, key: u64) {
        self.seen.remove(&key);
    }
}

/// Routes, de-duplication and rate-limit state.
pub(crate) struct Router {
    routes: Vec<CompiledRoute>,
    hasher: RandomState,
    dedup: Option<Window>,
    recent_ids: HashSet<u64>,
    recent_order: VecDeque<u64>,
    limits: HashMap<(usize, usize), RateWindow>,
    /// Summaries of windows that rolled over while detections were offered, waiting for
    /// [`Router::due_summaries`].
    ready: Vec<HeldBack>,
    route_names: Vec<Arc<str>>,
    receiver_names: Vec<Arc<str>>,
}

impl Router {
    /// From a validated configuration.
    pub(crate) fn new(config: &NotifyConfig) -> Router {
        let receiver_index: HashMap<&str, usize> = config
            .receivers
            .iter()
            .enumerate()
            .map(|(i, r)| (r.name.as_str(), i))
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|r| CompiledRoute {
                min_level: r.min_level,
                rules: r.rules.iter().map(|p| Glob::new(p)).collect(),
                namespaces: r.namespaces.iter().map(|p| Glob::new(p)).collect(),
                receivers: r
                    .receivers
                    .iter()
                    .filter_map(|n| receiver_index.get(n.as_str()).copied())
                    .collect(),
                rate_limit: r
                    .rate_limit
                    .map(|l| (l.max, Duration::from_secs(l.per_secs))),
            })
            .collect();
        let dedup = (config.dedup_window_secs > 0).then(|| {
            Window::new(
                Duration::from_secs(config.dedup_window_secs),
                MAX_DEDUP_KEYS,
            )
        });
        Router {
            routes,
            hasher: RandomState::new(),
            dedup,
            recent_ids: HashSet::new(),
            recent_order: VecDeque::new(),
            limits: HashMap::new(),
            ready: Vec::new(),
            route_names: config
                .routes
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
            receiver_names: config
                .receivers
                .iter()
                .map(|r| Arc::from(r.name.as_str()))
                .collect(),
        }
    }

    pub(crate) fn route_name(&self, route: usize) -> Arc<str> {
        self.route_names
            .get(route)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    pub(crate) fn receiver_name(&self, receiver: usize) -> Arc<str> {
        self.receiver_names
            .get(receiver)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// True when this event id was offered recently; otherwise remembers it.
    fn repeated_event(&mut self, id: &str) -> bool {
        if id.is_empty() {
            return false;
        }
        let h = self.hasher.hash_one(id);
        if !self.recent_ids.insert(h) {
            return true;
        }
        self.recent_order.push_back(h);
        if self.recent_order.len() > RECENT_EVENT_IDS
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent_ids.remove(&old);
        }
        false
    }

    fn key_hash(
        &self,
        route: usize,
        receiver: usize,
        rule: &str,
        ns: Option<&str>,
        subject: &str,
    ) -> u64 {
        let mut h = self.hasher.build_hasher();
        route.hash(&mut h);
        receiver.hash(&mut h);
        rule.hash(&mut h);
        ns.hash(&mut h);
        subject.hash(&mut h);
        h.finish()
    }

    /// Decides what to send for `event`, offered at `now`.
    pub(crate) fn route(&mut self, event: &Event, now: Instant) -> Routed {
        let mut out = Routed::default();
        if event.detections.is_empty() {
            return out;
        }
        if self.repeated_event(&event.id) {
            out.duplicates = 1;
            return out;
        }
        let ns = namespace(event);
        let subject = subject(event);
        for (di, d) in event.detections.iter().enumerate() {
            for ri in 0..self.routes.len() {
                if !self.routes[ri].matches(d, ns) {
                    continue;
                }
                for k in 0..self.routes[ri].receivers.len() {
                    let receiver = self.routes[ri].receivers[k];
                    let key_hash = self.key_hash(ri, receiver, &d.rule, ns, &subject);
                    if let Some(w) = &mut self.dedup
                        && w.check_and_insert(key_hash, now)
                    {
                        out.duplicates += 1;
                        continue;
                    }
                    if self.admit(ri, receiver, d, now) {
                        out.planned.push(Planned {
                            route: ri,
                            receiver,
                            detection: di,
                            key_hash,
                        });
                    } else {
                        out.rate_limited += 1;
                    }
                }
            }
        }
        out
    }

    /// Applies the route's rate limit for `receiver`; false when `d` is held back.
    fn admit(&mut self, route: usize, receiver: usize, d: &Detection, now: Instant) -> bool {
        let Some((max, per)) = self.routes[route].rate_limit else {
            return true;
        };
        let w = self
            .limits
            .entry((route, receiver))
            .or_insert_with(|| RateWindow {
                start: now,
                sent: 0,
                held: BTreeMap::new(),
                held_total: 0,
                max_level: 0,
            });
        if now.saturating_duration_since(w.start) >= per {
            if let Some(held) = w.take_held(route, receiver, per) {
                self.ready.push(held);
            }
            w.start = now;
            w.sent = 0;
        }
        if w.sent < max {
            w.sent += 1;
            return true;
        }
        let rule: String = d.rule.chars().take(MAX_RULE_CHARS).collect();
        if w.held.contains_key(&rule) || w.held.len() < MAX_SUMMARY_RULES {
            *w.held.entry(rule).or_default() += 1;
        } else {
            *w.held.entry("other rules".to_owned()).or_default() += 1;
        }
        w.held_total += 1;
        w.max_level = w.max_level.max(d.level);
        false
    }

    /// Forgets a planned notification's key, so a repeat is sent (its notification could
    /// not be queued).
    pub(crate) fn release(&mut self, key_hash: u64) {
        if let Some(w) = &mut self.dedup {
            w.forget(key_hash);
        }
    }

    /// Summaries of the windows that ended by `now` with detections held back.
    pub(crate) fn due_summaries(&mut self, now: Instant) -> Vec<HeldBack> {
        let mut due = std::mem::take(&mut self.ready);
        for (&(route, receiver), w) in &mut self.limits {
            let per = self.routes[route]
                .rate_limit
                .map_or(Duration::ZERO, |l| l.1);
            if now.saturating_duration_since(w.start) >= per
                && let Some(held) = w.take_held(route, receiver, per)
            {
                due.push(held);
            }
        }
        due.sort_by_key(|h| (h.route, h.receiver));
        due
    }

    /// Every pending summary, due or not (at shutdown).
    pub(crate) fn flush_summaries(&mut self) -> Vec<HeldBack> {
        let mut due = std::mem::take(&mut self.ready);
        for (&(route, receiver), w) in &mut self.limits {
            let per = self.routes[route]
                .rate_limit
                .map_or(Duration::ZERO, |l| l.1);
            due.extend(w.take_held(route, receiver, per));
        }
        due.sort_by_key(|h| (h.route, h.receiver));
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateLimit, ReceiverConfig, RouteConfig, SlackConfig};
    use vigil_core::event::{Container, PodRef};

    fn receiver(name: &str) -> ReceiverConfig {
        ReceiverConfig {
            name: name.into(),
            slack: Some(SlackConfig {
                url_file: None,
                url: Some("http://127.0.0.1:1/hook".into()),
                ca_file: None,
                timeout_secs: 10,
            }),
            pagerduty: None,
            email: None,
            webhook: None,
        }
    }

    fn route(name: &str, receivers: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            min_level: 10,
            rules: vec![],
            namespaces: vec![],
            receivers: receivers.iter().map(|s| s.to_string()).collect(),
            rate_limit: None,
        }
    }

    fn config(routes: Vec<RouteConfig>) -> NotifyConfig {
        let c = NotifyConfig {
            dedup_window_secs: 600,
            queue_size: 10,
            receivers: vec![receiver("a"), receiver("b")],
            routes,
        };
        c.validate().unwrap();
        c
    }

    fn event(id: &str, ns: &str, pod: &str, detections: &[(&str, u8)]) -> Event {
        Event {
            id: id.into(),
            container: Some(Container {
                name: Some("app".into()),
                pod: Some(PodRef {
                    namespace: Some(ns.into()),
                    name: Some(pod.into()),
                    uid: None,
                }),
                ..Container::default()
            }),
            detections: detections
                .iter()
                .map(|(rule, level)| Detection {
                    rule: rule.to_string(),
                    title: format!("{rule} fired"),
                    level: *level,
                    ..Detection::default()
                })
                .collect(),
            ..Event::default()
        }
    }

    fn sent(r: &Routed) -> Vec<(usize, usize, usize)> {
        r.planned
            .iter()
            .map(|p| (p.route, p.receiver, p.detection))
            .collect()
    }

    #[test]
    fn globs() {
        let g = Glob::new("rbac.*");
        assert!(g.matches("rbac.cluster_admin_binding"));
        assert!(g.matches("rbac."));
        assert!(!g.matches("rbac"));
        assert!(!g.matches("xrbac.a"));
        assert!(Glob::new("exact.rule").matches("exact.rule"));
        assert!(!Glob::new("exact.rule").matches("exact.rules"));
        assert!(Glob::new("team-?").matches("team-a"));
        assert!(!Glob::new("team-?").matches("team-ab"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("*a*b*c").matches("xxaxxbxxc"));
        assert!(!Glob::new("*a*b*c").matches("xxaxxcxxb"));
        // Pathological for naive backtracking; must stay fast.
        let long = "a".repeat(20_000);
        assert!(!Glob::new("*a*a*a*a*a*b").matches(&long));
    }

    #[test]
    fn level_rule_and_namespace_filters() {
        let mut r1 = route("r", &["a"]);
        r1.rules = vec!["container.*".into()];
        r1.namespaces = vec!["team-?".into()];
        let mut router = Router::new(&config(vec![r1]));
        let t = Instant::now();
        assert!(
            router
                .route(
                    &event("1", "team-a", "p", &[("container.privileged", 9)]),
                    t
                )
                .planned
                .is_empty(),
            "below min_level"
        );
        assert!(
            router
                .route(&event("2", "team-a", "p", &[("exec.shell", 12)]), t)
                .planned
                .is_empty(),
            "rule not listed"
        );
        assert!(
            router
                .route(&event("3", "prod", "p", &[("container.privileged", 12)]), t)
                .planned
                .is_empty(),
            "namespace not listed"
        );
        let mut no_ns = event("4", "x", "p", &[("container.privileged", 12)]);
        no_ns.container = None;
        assert!(
            router.route(&no_ns, t).planned.is_empty(),
            "no namespace with a namespace filter"
        );
        assert_eq!(
            sent(&router.route(
                &event("5", "team-a", "p", &[("container.privileged", 10)]),
                t
            )),
            vec![(0, 0, 0)]
        );
    }

    #[test]
    fn namespace_comes_from_object_then_pod() {
        let mut e = event("1", "from-pod", "p", &[("r", 12)]);
        assert_eq!(namespace(&e), Some("from-pod"));
        assert_eq!(subject(&e), "p/app");
        e.object.namespace = Some("from-object".into());
        e.object.name = Some("obj".into());
        assert_eq!(namespace(&e), Some("from-object"));
        assert_eq!(subject(&e), "obj");
    }

    #[test]
    fn each_detection_and_each_receiver_is_a_notification() {
        let mut router = Router::new(&config(vec![route("r", &["a", "b"])]));
        let e = event("1", "ns", "p", &[("one", 12), ("two", 12), ("low", 3)]);
        assert_eq!(
            sent(&router.route(&e, Instant::now())),
            vec![(0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 1, 1)]
        );
    }

    #[test]
    fn same_event_id_is_dropped_even_without_a_dedup_window() {
        let mut c = config(vec![route("r", &["a"])]);
        c.dedup_window_secs = 0;
        let mut router = Router::new(&c);
        let t = Instant::now();
        let e = event("same", "ns", "p", &[("r", 12)]);
        assert_eq!(router.route(&e, t).planned.len(), 1);
        let again = router.route(&e, t + Duration::from_secs(3600));
        assert!(again.planned.is_empty());
        assert_eq!(again.duplicates, 1);
        // Without a window, another event with the same key is sent.
        assert_eq!(
            router
                .route(&event("other", "ns", "p", &[("r", 12)]), t)
                .planned
                .len(),
            1
        );
    }

    #[test]
    fn recent_event_ids_are_bounded() {
        let mut c = config(vec![route("r", &["a"])]);
        c.dedup_window_secs = 0;
        let mut router = Router::new(&c);
        let t = Instant::now();
        for i in 0..RECENT_EVENT_IDS + 10 {
            router.route(&event(&i.to_string(), "ns", "p", &[("r", 12)]), t);
        }
        assert_eq!(router.recent_ids.len(), RECENT_EVENT_IDS);
        // The oldest id was forgotten; the newest is still known.
        assert_eq!(
            router
                .route(&event("0", "ns", "p", &[("r", 12)]), t)
                .planned
                .len(),
            1
        );
        let last = (RECENT_EVENT_IDS + 9).to_string();
        assert_eq!(
            router
                .route(&event(&last, "ns", "p", &[("r", 12)]), t)
                .duplicates,
            1
        );
    }

    #[test]
    fn dedup_window_counts_repeats_then_expires() {
        let mut router = Router::new(&config(vec![route("r", &["a"])]));
        let t0 = Instant::now();
        assert_eq!(
            router
                .route(&event("1", "ns", "p", &[("r", 12)]), t0)
                .planned
                .len(),
            1
        );
        let repeat = router.route(
            &event("2", "ns", "p", &[("r", 12)]),
            t0 + Duration::from_secs(599),
        );
        assert!(repeat.planned.is_empty());
        assert_eq!(repeat.duplicates, 1);
        // Another pod, namespace or rule is another key.
        assert_eq!(
            router
                .route(&event("3", "ns", "q", &[("r", 12)]), t0)
                .planned
                .len(),
            1
        );
        assert_eq!(
            router
                .route(&event("4", "other", "p", &[("r", 12)]), t0)
                .planned
                .len(),
            1
        );
        assert_eq!(
            router
                .route(&event("5", "ns", "p", &[("s", 12)]), t0)
                .planned
                .len(),
            1
        );
        // The window is counted from the first send, not extended by repeats.
        assert_eq!(
            router
                .route(
                    &event("6", "ns", "p", &[("r", 12)]),
                    t0 + Duration::from_secs(600)
                )
                .planned
                .len(),
            1
        );
    }

    #[test]
    fn released_key_is_sent_again() {
        let mut router = Router::new(&config(vec![route("r", &["a"])]));
        let t = Instant::now();
        let first = router.route(&event("1", "ns", "p", &[("r", 12)]), t);
        router.release(first.planned[0].key_hash);
        assert_eq!(
            router
                .route(&event("2", "ns", "p", &[("r", 12)]), t)
                .planned
                .len(),
            1
        );
        // Still de-duplicated afterwards.
        assert!(
            router
                .route(&event("3", "ns", "p", &[("r", 12)]), t)
                .planned
                .is_empty()
        );
    }

    #[test]
    fn dedup_keys_are_bounded() {
        let mut w = Window::new(Duration::from_secs(600), 3);
        let t = Instant::now();
        for k in 0..5 {
            assert!(!w.check_and_insert(k, t));
        }
        assert!(w.seen.len() <= 3 && w.order.len() <= 3);
        assert!(w.check_and_insert(4, t), "recent key still known");
        assert!(!w.check_and_insert(0, t), "oldest key forgotten early");
    }

    #[test]
    fn rate_limit_holds_back_and_summarizes_once_per_window() {
        let mut r = route("high", &["a", "b"]);
        r.rate_limit = Some(RateLimit {
            max: 2,
            per_secs: 60,
        });
        let mut router = Router::new(&config(vec![r]));
        let t0 = Instant::now();
        let mut planned_a = 0;
        let mut held = 0;
        let rules = [
            "exec.shell",
            "container.privileged",
            "container.privileged",
            "exec.shell",
            "container.privileged",
            "container.privileged",
        ];
        for (i, rule) in rules.iter().enumerate() {
            let level = if i == 4 { 15 } else { 12 };
            let out = router.route(
                &event(&i.to_string(), "ns", &format!("p{i}"), &[(rule, level)]),
                t0 + Duration::from_secs(i as u64),
            );
            planned_a += out.planned.iter().filter(|p| p.receiver == 0).count();
            held += out.rate_limited;
        }
        assert_eq!(planned_a, 2, "exactly max sent to each receiver");
        assert_eq!(held, 8, "4 held back for each of the 2 receivers");
        assert!(
            router
                .due_summaries(t0 + Duration::from_secs(59))
                .is_empty(),
            "window not over"
        );
        let due = router.due_summaries(t0 + Duration::from_secs(60));
        assert_eq!(due.len(), 2, "one summary per receiver");
        assert_eq!(due[0].receiver, 0);
        assert_eq!(due[0].total, 4);
        assert_eq!(due[0].max_level, 15);
        assert_eq!(due[0].per, Duration::from_secs(60));
        assert_eq!(
            due[0].by_rule,
            vec![
                ("container.privileged".to_owned(), 3),
                ("exec.shell".to_owned(), 1)
            ]
        );
        assert!(
            router
                .due_summaries(t0 + Duration::from_secs(61))
                .is_empty(),
            "sent once"
        );
        // A new window starts with the next detection.
        let out = router.route(
            &event("new", "ns", "pnew", &[("x", 12)]),
            t0 + Duration::from_secs(62),
        );
        assert_eq!(out.planned.len(), 2);
    }

    #[test]
    fn window_rolled_over_by_a_detection_still_summarizes() {
        let mut r = route("high", &["a"]);
        r.rate_limit = Some(RateLimit {
            max: 1,
            per_secs: 10,
        });
        let mut router = Router::new(&config(vec![r]));
        let t0 = Instant::now();
        router.route(&event("1", "ns", "p1", &[("r", 12)]), t0);
        assert_eq!(
            router
                .route(&event("2", "ns", "p2", &[("r", 12)]), t0)
                .rate_limited,
            1
        );
        // No tick ran before the next detection arrived after the window.
        assert_eq!(
            router
                .route(
                    &event("3", "ns", "p3", &[("r", 12)]),
                    t0 + Duration::from_secs(11)
                )
                .planned
                .len(),
            1
        );
        let due = router.due_summaries(t0 + Duration::from_secs(11));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].total, 1);
    }

    #[test]
    fn many_distinct_rules_are_capped_in_a_summary() {
        let mut r = route("high", &["a"]);
        r.rate_limit = Some(RateLimit {
            max: 1,
            per_secs: 10,
        });
        let mut router = Router::new(&config(vec![r]));
        let t0 = Instant::now();
        for i in 0..100 {
            router.route(
                &event(&i.to_string(), "ns", "p", &[(&format!("rule{i:03}"), 12)]),
                t0,
            );
        }
        let due = router.flush_summaries();
        assert_eq!(due[0].total, 99);
        assert_eq!(due[0].by_rule.len(), MAX_SUMMARY_RULES + 1);
        assert!(
            due[0]
                .by_rule
                .contains(&("other rules".to_owned(), 99 - MAX_SUMMARY_RULES as u64))
        );
    }
}
