//! Judging a container's figures: thresholds, how long a condition has held, and the
//! container's own baselines. What this finds goes into `metrics.anomalies`, and the
//! `resource.*` Sigma rules turn it into detections (name, level, MITRE ids), so resource
//! detections are listed, tuned, tested and shipped like every other rule.
//!
//! | signal | holds when | alerts |
//! |---|---|---|
//! | `memory_near_limit` | working set ≥ `memory_limit_ratio` × limit | on entering, then every `repeat_secs` while it holds |
//! | `oom_kill` | the cgroup's OOM-kill count grew | every interval it grew |
//! | `cpu_saturated` | CPU used ≥ `cpu_saturation_ratio` × the quota (else × the node's CPUs) | after holding `sustain_secs`, then every `repeat_secs` |
//! | `cpu_throttled` | throttled share of CFS periods ≥ `cpu_throttled_ratio` | after holding `sustain_secs`, then every `repeat_secs` |
//! | `network_egress_spike` | bytes sent per second ≥ `max(egress_spike_factor × baseline, egress_min_bytes_per_sec)` | on entering, then every `repeat_secs` |
//! | `connections_spike` | TCP sockets ≥ `max(connections_spike_factor × baseline, connections_min)` | on entering, then every `repeat_secs` |

use std::collections::BTreeMap;

use vigil_core::event::Anomaly;

use super::baseline::{Ewma, SpikeRule};

/// Thresholds and sensitivity (the type the operator's namespace documents carry too). In
/// `thresholds:` every field has its default; in `namespaces.<name>:` only the fields given
/// override `thresholds:` for that namespace's pods.
pub use vigil_core::tuning::ThresholdSettings;

/// Thresholds with every value decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// See [`ThresholdSettings::enabled`].
    pub enabled: bool,
    /// See [`ThresholdSettings::memory_limit_ratio`].
    pub memory_limit_ratio: f64,
    /// See [`ThresholdSettings::cpu_saturation_ratio`].
    pub cpu_saturation_ratio: f64,
    /// See [`ThresholdSettings::cpu_throttled_ratio`].
    pub cpu_throttled_ratio: f64,
    /// See [`ThresholdSettings::sustain_secs`].
    pub sustain_secs: f64,
    /// Egress spikes.
    pub egress: SpikeRule,
    /// Connection-count spikes.
    pub connections: SpikeRule,
    /// See [`ThresholdSettings::repeat_secs`].
    pub repeat_secs: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds::resolve(&ThresholdSettings::default(), None)
    }
}

impl Thresholds {
    /// `settings` over `base` (over the built-in defaults when `None`).
    pub fn resolve(settings: &ThresholdSettings, base: Option<&Thresholds>) -> Thresholds {
        let s = settings;
        let d = base.copied().unwrap_or(Thresholds {
            enabled: true,
            memory_limit_ratio: 0.9,
            cpu_saturation_ratio: 0.9,
            cpu_throttled_ratio: 0.5,
            sustain_secs: 120.0,
            egress: SpikeRule {
                factor: 10.0,
                floor: 1_048_576.0,
                warmup_secs: 900.0,
                half_life_secs: 3600.0,
            },
            connections: SpikeRule {
                factor: 10.0,
                floor: 500.0,
                warmup_secs: 900.0,
                half_life_secs: 3600.0,
            },
            repeat_secs: 1800.0,
        });
        let secs = |v: Option<u64>, d: f64| v.map_or(d, |v| v as f64);
        let half_life = secs(s.baseline_half_life_secs, d.egress.half_life_secs);
        let warmup = secs(s.baseline_warmup_secs, d.egress.warmup_secs);
        Thresholds {
            enabled: s.enabled.unwrap_or(d.enabled),
            memory_limit_ratio: s.memory_limit_ratio.unwrap_or(d.memory_limit_ratio),
            cpu_saturation_ratio: s.cpu_saturation_ratio.unwrap_or(d.cpu_saturation_ratio),
            cpu_throttled_ratio: s.cpu_throttled_ratio.unwrap_or(d.cpu_throttled_ratio),
            sustain_secs: secs(s.sustain_secs, d.sustain_secs),
            egress: SpikeRule {
                factor: s.egress_spike_factor.unwrap_or(d.egress.factor),
                floor: s.egress_min_bytes_per_sec.unwrap_or(d.egress.floor),
                warmup_secs: warmup,
                half_life_secs: half_life,
            },
            connections: SpikeRule {
                factor: s.connections_spike_factor.unwrap_or(d.connections.factor),
                floor: s.connections_min.map_or(d.connections.floor, |v| v as f64),
                warmup_secs: warmup,
                half_life_secs: half_life,
            },
            repeat_secs: secs(s.repeat_secs, d.repeat_secs),
        }
    }
}

/// Checks `settings`, naming the first invalid field under `path`
/// (`sources.resources.thresholds.memory_limit_ratio: ...`).
pub fn validate(settings: &ThresholdSettings, path: &str) -> Result<(), String> {
    settings.validate().map_err(|e| format!("{path}.{e}"))
}

/// Per-namespace thresholds, decided once per change of settings (not per container).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThresholdTable {
    default: Thresholds,
    namespaces: BTreeMap<String, Thresholds>,
}

impl ThresholdTable {
    /// `defaults` for every container, `namespaces` over them for those namespaces' pods.
    pub fn new(
        defaults: &ThresholdSettings,
        namespaces: &BTreeMap<String, ThresholdSettings>,
    ) -> Self {
        Self::layered(defaults, namespaces, &BTreeMap::new())
    }

    /// As [`ThresholdTable::new`], with `live` (the operator's namespace documents, from
    /// ContainerMonitors' `spec.resources`) over the agent's own entry of each namespace,
    /// field by field: the cluster's declared wish for a namespace outranks the node's
    /// static file, and a field the document leaves out keeps the agent's value.
    pub fn layered(
        defaults: &ThresholdSettings,
        namespaces: &BTreeMap<String, ThresholdSettings>,
        live: &BTreeMap<&str, &ThresholdSettings>,
    ) -> Self {
        let default = Thresholds::resolve(defaults, None);
        let mut table: BTreeMap<String, Thresholds> = namespaces
            .iter()
            .map(|(ns, o)| (ns.clone(), Thresholds::resolve(o, Some(&default))))
            .collect();
        for (ns, over) in live {
            let base = table.get(*ns).copied().unwrap_or(default);
            table.insert((*ns).to_owned(), Thresholds::resolve(over, Some(&base)));
        }
        ThresholdTable {
            namespaces: table,
            default,
        }
    }

    /// The thresholds of a container in pod namespace `ns`.
    pub fn for_namespace(&self, ns: Option<&str>) -> &Thresholds {
        ns.and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.default)
    }
}

/// Rates and levels of one container over one interval, as the judge needs them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    /// Seconds since the previous sample; `None` on the first.
    pub dt_secs: Option<f64>,
    /// Working set over limit.
    pub memory_limit_ratio: Option<f64>,
    /// OOM kills during the interval.
    pub oom_kills: Option<u64>,
    /// CPU used over the interval, in cores.
    pub cpu_cores: Option<f64>,
    /// The cores the container may use: its quota, else the node's CPUs.
    pub cpu_capacity: Option<f64>,
    /// Throttled share of the interval's periods.
    pub throttled_ratio: Option<f64>,
    /// Bytes sent per second.
    pub tx_bytes_per_sec: Option<f64>,
    /// TCP sockets now.
    pub tcp_connections: Option<u64>,
}

/// The signals, in the order anomalies are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    MemoryNearLimit,
    OomKill,
    CpuSaturated,
    CpuThrottled,
    EgressSpike,
    ConnectionsSpike,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::MemoryNearLimit => "memory_near_limit",
            Signal::OomKill => "oom_kill",
            Signal::CpuSaturated => "cpu_saturated",
            Signal::CpuThrottled => "cpu_throttled",
            Signal::EgressSpike => "network_egress_spike",
            Signal::ConnectionsSpike => "connections_spike",
        }
    }
}

/// What the judge remembers of one condition.
#[derive(Debug, Clone, Copy, Default)]
struct Condition {
    /// When it started holding (seconds on the collector's clock).
    since: Option<f64>,
    /// When it last alerted, while it holds.
    alerted: Option<f64>,
}

impl Condition {
    /// Folds in whether the condition holds at `now`; `Some(held_for)` when it should
    /// alert now.
    fn update(&mut self, holds: bool, now: f64, sustain: f64, repeat: f64) -> Option<f64> {
        if !holds {
            *self = Condition::default();
            return None;
        }
        let since = *self.since.get_or_insert(now);
        let held = now - since;
        if held + 1e-9 < sustain {
            return None;
        }
        match self.alerted {
            Some(at) if now - at + 1e-9 < repeat => None,
            _ => {
                self.alerted = Some(now);
                Some(held)
            }
        }
    }
}

/// The judgement state of one container.
#[derive(Debug, Clone, Default)]
pub struct Judge {
    memory: Condition,
    cpu_saturated: Condition,
    cpu_throttled: Condition,
    egress: Condition,
    connections: Condition,
    egress_baseline: Ewma,
    connections_baseline: Ewma,
}

/// The baselines after a sample, for the event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baselines {
    /// Usual bytes sent per second.
    pub tx_bytes_per_sec: Option<f64>,
    /// Usual TCP sockets.
    pub tcp_connections: Option<f64>,
}

impl Judge {
    /// Judges one sample taken at `now` (seconds on a monotonic clock), returning what to
    /// report. The baselines learn from every sample, judged or not.
    pub fn judge(&mut self, o: &Observed, t: &Thresholds, now: f64) -> (Vec<Anomaly>, Baselines) {
        let mut out = Vec::new();
        let mut push = |signal: Signal, value: f64, threshold: f64, baseline, sustained| {
            out.push(Anomaly {
                signal: signal.name().to_owned(),
                value,
                threshold,
                baseline,
                sustained_secs: sustained,
            });
        };
        let repeat = t.repeat_secs;

        let mem = o.memory_limit_ratio.filter(|_| t.enabled);
        let holds = mem.is_some_and(|r| r >= t.memory_limit_ratio);
        if self.memory.update(holds, now, 0.0, repeat).is_some() {
            push(
                Signal::MemoryNearLimit,
                mem.unwrap_or_default(),
                t.memory_limit_ratio,
                None,
                None,
            );
        }

        if let Some(kills) = o.oom_kills.filter(|k| *k > 0 && t.enabled) {
            push(Signal::OomKill, kills as f64, 1.0, None, None);
        }

        let cpu_ratio = match (o.cpu_cores, o.cpu_capacity) {
            (Some(used), Some(cap)) if cap > 0.0 && t.enabled => Some(used / cap),
            _ => None,
        };
        let holds = cpu_ratio.is_some_and(|r| r >= t.cpu_saturation_ratio);
        if let Some(held) = self
            .cpu_saturated
            .update(holds, now, t.sustain_secs, repeat)
        {
            push(
                Signal::CpuSaturated,
                cpu_ratio.unwrap_or_default(),
                t.cpu_saturation_ratio,
                None,
                Some(held),
            );
        }

        let thr = o.throttled_ratio.filter(|_| t.enabled);
        let holds = thr.is_some_and(|r| r >= t.cpu_throttled_ratio);
        if let Some(held) = self
            .cpu_throttled
            .update(holds, now, t.sustain_secs, repeat)
        {
            push(
                Signal::CpuThrottled,
                thr.unwrap_or_default(),
                t.cpu_throttled_ratio,
                None,
                Some(held),
            );
        }

        let dt = o.dt_secs.unwrap_or(0.0);
        if let Some(rate) = o.tx_bytes_per_sec {
            let j = self.egress_baseline.observe(rate, dt, &t.egress);
            let spike = j.filter(|j| j.spike && t.enabled);
            if self
                .egress
                .update(spike.is_some(), now, 0.0, repeat)
                .is_some()
                && let Some(j) = spike
            {
                push(
                    Signal::EgressSpike,
                    rate,
                    j.threshold,
                    Some(j.baseline),
                    None,
                );
            }
        }
        if let Some(n) = o.tcp_connections {
            let n = n as f64;
            let j = self.connections_baseline.observe(n, dt, &t.connections);
            let spike = j.filter(|j| j.spike && t.enabled);
            if self
                .connections
                .update(spike.is_some(), now, 0.0, repeat)
                .is_some()
                && let Some(j) = spike
            {
                push(
                    Signal::ConnectionsSpike,
                    n,
                    j.threshold,
                    Some(j.baseline),
                    None,
                );
            }
        }
        (
            out,
            Baselines {
                tx_bytes_per_sec: self.egress_baseline.mean(),
                tcp_connections: self.connections_baseline.mean(),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Thresholds {
        Thresholds::resolve(
            &ThresholdSettings {
                sustain_secs: Some(30),
                repeat_secs: Some(300),
                baseline_warmup_secs: Some(60),
                baseline_half_life_secs: Some(600),
                ..ThresholdSettings::default()
            },
            None,
        )
    }

    fn signals(a: &[Anomaly]) -> Vec<&str> {
        a.iter().map(|a| a.signal.as_str()).collect()
    }

    #[test]
    fn memory_alerts_on_entering_and_again_after_the_repeat_interval() {
        let t = fast();
        let mut j = Judge::default();
        let o = |r| Observed {
            memory_limit_ratio: Some(r),
            ..Observed::default()
        };
        let mut fired = Vec::new();
        for (i, r) in [0.5, 0.95, 0.96, 0.97, 0.5, 0.92].iter().enumerate() {
            let (a, _) = j.judge(&o(*r), &t, i as f64 * 10.0);
            fired.push(!a.is_empty());
        }
        assert_eq!(fired, [false, true, false, false, false, true]);
        let mut j = Judge::default();
        let alerts = (0..100)
            .filter(|i| !j.judge(&o(0.99), &t, f64::from(*i) * 10.0).0.is_empty())
            .count();
        assert_eq!(alerts, 4, "at 0, 300, 600, 900 s");
    }

    #[test]
    fn cpu_alerts_only_once_sustained() {
        let t = fast();
        let mut j = Judge::default();
        let o = Observed {
            cpu_cores: Some(0.5),
            cpu_capacity: Some(0.5),
            throttled_ratio: Some(0.9),
            ..Observed::default()
        };
        let mut first = None;
        for i in 0..10 {
            let (a, _) = j.judge(&o, &t, f64::from(i) * 10.0);
            if !a.is_empty() {
                first = Some((i, signals(&a).join(",")));
                assert_eq!(a[0].sustained_secs, Some(30.0));
                break;
            }
        }
        assert_eq!(first, Some((3, "cpu_saturated,cpu_throttled".into())));
        // A dip resets the clock.
        let mut j = Judge::default();
        for (i, cores) in [0.5, 0.5, 0.1, 0.5, 0.5, 0.5].iter().enumerate() {
            let o = Observed {
                cpu_cores: Some(*cores),
                cpu_capacity: Some(0.5),
                ..Observed::default()
            };
            assert!(j.judge(&o, &t, i as f64 * 10.0).0.is_empty());
        }
    }

    #[test]
    fn egress_fifty_times_the_usual_alerts_idle_never_does() {
        let t = Thresholds::resolve(
            &ThresholdSettings {
                egress_min_bytes_per_sec: Some(50_000.0),
                ..ThresholdSettings::default()
            },
            Some(&fast()),
        );
        let mut busy = Judge::default();
        let mut idle = Judge::default();
        let mut now = 0.0;
        let step = |j: &mut Judge, rate: f64, now: f64| {
            j.judge(
                &Observed {
                    dt_secs: Some(10.0),
                    tx_bytes_per_sec: Some(rate),
                    tcp_connections: Some(3),
                    ..Observed::default()
                },
                &t,
                now,
            )
        };
        for _ in 0..20 {
            now += 10.0;
            assert!(step(&mut busy, 20_000.0, now).0.is_empty());
            assert!(step(&mut idle, 0.0, now).0.is_empty());
        }
        now += 10.0;
        let (a, b) = step(&mut busy, 1_000_000.0, now);
        assert_eq!(signals(&a), ["network_egress_spike"]);
        assert_eq!(a[0].threshold, 200_000.0);
        assert!((a[0].baseline.unwrap() - 20_000.0).abs() < 1e-6);
        assert!(b.tx_bytes_per_sec.unwrap() > 20_000.0);
        assert!(step(&mut idle, 0.0, now).0.is_empty());
        // Still high: no new alert until the repeat interval.
        now += 10.0;
        assert!(step(&mut busy, 1_000_000.0, now).0.is_empty());
    }

    #[test]
    fn connection_spikes_and_oom_kills() {
        let t = Thresholds::resolve(
            &ThresholdSettings {
                connections_min: Some(100),
                ..ThresholdSettings::default()
            },
            Some(&fast()),
        );
        let mut j = Judge::default();
        for i in 0..10 {
            let o = Observed {
                dt_secs: Some(10.0),
                tcp_connections: Some(5),
                ..Observed::default()
            };
            assert!(j.judge(&o, &t, f64::from(i) * 10.0).0.is_empty());
        }
        let o = Observed {
            dt_secs: Some(10.0),
            tcp_connections: Some(400),
            oom_kills: Some(2),
            ..Observed::default()
        };
        let (a, _) = j.judge(&o, &t, 100.0);
        assert_eq!(signals(&a), ["oom_kill", "connections_spike"]);
        assert_eq!(a[0].value, 2.0);
    }

    #[test]
    fn namespaces_override_only_what_they_name() {
        let defaults = ThresholdSettings {
            memory_limit_ratio: Some(0.8),
            ..ThresholdSettings::default()
        };
        let ns = BTreeMap::from([(
            "batch".to_owned(),
            ThresholdSettings {
                cpu_saturation_ratio: Some(0.95),
                enabled: Some(true),
                ..ThresholdSettings::default()
            },
        )]);
        let table = ThresholdTable::new(&defaults, &ns);
        let b = table.for_namespace(Some("batch"));
        assert_eq!((b.memory_limit_ratio, b.cpu_saturation_ratio), (0.8, 0.95));
        let other = table.for_namespace(Some("web"));
        assert_eq!(
            (other.memory_limit_ratio, other.cpu_saturation_ratio),
            (0.8, 0.9)
        );
        assert_eq!(table.for_namespace(None), other);
        let off = Thresholds::resolve(
            &ThresholdSettings {
                enabled: Some(false),
                ..ThresholdSettings::default()
            },
            None,
        );
        let mut j = Judge::default();
        let o = Observed {
            memory_limit_ratio: Some(1.0),
            oom_kills: Some(1),
            ..Observed::default()
        };
        assert!(j.judge(&o, &off, 0.0).0.is_empty());
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let bad = ThresholdSettings {
            egress_spike_factor: Some(0.5),
            ..ThresholdSettings::default()
        };
        let err = validate(&bad, "sources.resources.thresholds").unwrap_err();
        assert!(
            err.starts_with("sources.resources.thresholds.egress_spike_factor: must be"),
            "{err}"
        );
        for bad in [
            ThresholdSettings {
                memory_limit_ratio: Some(f64::NAN),
                ..ThresholdSettings::default()
            },
            // Above the whole limit: could never fire, so refused rather than silently off.
            ThresholdSettings {
                cpu_saturation_ratio: Some(1.5),
                ..ThresholdSettings::default()
            },
            ThresholdSettings {
                sustain_secs: Some(0),
                ..ThresholdSettings::default()
            },
        ] {
            assert!(validate(&bad, "x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn live_namespace_settings_go_over_the_agents_field_by_field() {
        let defaults = ThresholdSettings {
            memory_limit_ratio: Some(0.8),
            ..ThresholdSettings::default()
        };
        let config_ns = BTreeMap::from([(
            "shop".to_owned(),
            ThresholdSettings {
                memory_limit_ratio: Some(0.85),
                sustain_secs: Some(60),
                ..ThresholdSettings::default()
            },
        )]);
        let shop = ThresholdSettings {
            memory_limit_ratio: Some(0.6),
            ..ThresholdSettings::default()
        };
        let batch = ThresholdSettings {
            enabled: Some(false),
            ..ThresholdSettings::default()
        };
        let live = BTreeMap::from([("shop", &shop), ("batch", &batch)]);
        let table = ThresholdTable::layered(&defaults, &config_ns, &live);
        let s = table.for_namespace(Some("shop"));
        assert_eq!(
            (s.memory_limit_ratio, s.sustain_secs),
            (0.6, 60.0),
            "the document's ratio, the agent's sustain"
        );
        let b = table.for_namespace(Some("batch"));
        assert!(!b.enabled);
        assert_eq!(b.memory_limit_ratio, 0.8, "the agent's default below");
        assert_eq!(
            ThresholdTable::layered(&defaults, &config_ns, &BTreeMap::new()),
            ThresholdTable::new(&defaults, &config_ns)
        );
    }
}
