//! A namespace's resource-usage thresholds, merged from its monitors' `spec.resources`.
//!
//! Field by field, among the monitors that set the field, the most sensitive value applies:
//! the one that makes the detection fire sooner or more often (the lowest ratio, factor,
//! floor, sustain, warm-up and repeat interval; `enabled: true` over `false`; the longest
//! baseline half-life, which keeps a raised level judged against the old usual level for
//! longer). Equal values go to the first monitor in name order, so the result depends on
//! the monitors only, never on their order. This follows the rest of the rendering: monitors
//! add visibility, and one monitor cannot quietly make another's namespace less watched.
//! The monitors whose value lost are told so; fields no monitor sets are left out, and the
//! agents' own settings apply to them.

use std::collections::BTreeMap;

use vigil_core::tuning::ThresholdSettings;

use super::{Members, MonitorRef, Problem, ProblemKind, problem};
use crate::crd::ResourcesSpec;

/// One field of [`ThresholdSettings`]: how to read it, compare it and copy it.
struct Field {
    /// The settings' name of the field.
    name: &'static str,
    /// The value as a number to compare (`true` is 1), if set.
    rank: fn(&ThresholdSettings) -> Option<f64>,
    /// The value as written, for messages.
    show: fn(&ThresholdSettings) -> Option<String>,
    /// Copies the field from the second settings into the first.
    take: fn(&mut ThresholdSettings, &ThresholdSettings),
    /// Whether a lower value is the more sensitive one.
    lower_wins: bool,
}

/// Numbers compared when merging.
trait Rank {
    fn rank(&self) -> f64;
}

impl Rank for f64 {
    fn rank(&self) -> f64 {
        *self
    }
}

impl Rank for u64 {
    fn rank(&self) -> f64 {
        // Exact below 2^53; thresholds are far below.
        *self as f64
    }
}

impl Rank for bool {
    fn rank(&self) -> f64 {
        f64::from(u8::from(*self))
    }
}

macro_rules! field {
    ($name:ident, lower_wins: $lower:expr) => {
        Field {
            name: stringify!($name),
            rank: |s| s.$name.as_ref().map(Rank::rank),
            show: |s| s.$name.as_ref().map(ToString::to_string),
            take: |to, from| to.$name = from.$name,
            lower_wins: $lower,
        }
    };
}

/// Every field, in the settings' order.
const FIELDS: [Field; 12] = [
    field!(enabled, lower_wins: false),
    field!(memory_limit_ratio, lower_wins: true),
    field!(cpu_saturation_ratio, lower_wins: true),
    field!(cpu_throttled_ratio, lower_wins: true),
    field!(sustain_secs, lower_wins: true),
    field!(egress_spike_factor, lower_wins: true),
    field!(egress_min_bytes_per_sec, lower_wins: true),
    field!(connections_spike_factor, lower_wins: true),
    field!(connections_min, lower_wins: true),
    field!(baseline_half_life_secs, lower_wins: false),
    field!(baseline_warmup_secs, lower_wins: true),
    field!(repeat_secs, lower_wins: true),
];

/// The namespace's thresholds, or `None` when no monitor sets any. A monitor whose block
/// has a value out of range (possible only for files that did not go through the API
/// server's validation) has its whole block refused: a half-applied block would be a
/// setting nobody wrote.
pub(super) fn namespace_resources(
    ns: &str,
    members: &Members<'_>,
    reports: &mut BTreeMap<MonitorRef, Vec<Problem>>,
) -> Option<ThresholdSettings> {
    let mut valid: Vec<(&str, ThresholdSettings)> = Vec::new();
    for (name, spec) in members {
        let Some(r) = &spec.resources else { continue };
        let settings = ThresholdSettings::from(r);
        match settings.validate() {
            Ok(()) => valid.push((name.as_str(), settings)),
            Err(e) => problem(
                reports,
                ns,
                name,
                ProblemKind::Refused,
                format!("spec.resources.{}", ResourcesSpec::api_field(e.field)),
                format!(
                    "{} (the resources block was left out; the monitor's other settings apply)",
                    e.message
                ),
            ),
        }
    }
    let mut merged = ThresholdSettings::default();
    for f in &FIELDS {
        // Members are in name order; only a strictly more sensitive value replaces the
        // winner, so ties go to the first name.
        let mut winner: Option<(&str, &ThresholdSettings, f64)> = None;
        for (name, s) in &valid {
            let Some(v) = (f.rank)(s) else { continue };
            let better = match winner {
                None => true,
                Some((_, _, w)) if f.lower_wins => v < w,
                Some((_, _, w)) => v > w,
            };
            if better {
                winner = Some((name, s, v));
            }
        }
        let Some((winner, from, value)) = winner else {
            continue;
        };
        (f.take)(&mut merged, from);
        let shown = (f.show)(from).unwrap_or_default();
        let api = ResourcesSpec::api_field(f.name);
        let rule = if f.lower_wins { "lowest" } else { "highest" };
        for (name, s) in &valid {
            if (f.rank)(s).is_some_and(|v| v != value) {
                problem(
                    reports,
                    ns,
                    name,
                    ProblemKind::Overridden,
                    format!("spec.resources.{api}"),
                    format!(
                        "the namespace uses {api}: {shown}, not {}, because ContainerMonitor {winner} asks for it (the most sensitive value of a namespace's monitors applies: here the {rule})",
                        (f.show)(s).unwrap_or_default()
                    ),
                );
            }
        }
    }
    (!merged.is_empty()).then_some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_merged_and_named_in_the_api() {
        let all = ThresholdSettings {
            enabled: Some(true),
            memory_limit_ratio: Some(0.5),
            cpu_saturation_ratio: Some(0.5),
            cpu_throttled_ratio: Some(0.5),
            sustain_secs: Some(5),
            egress_spike_factor: Some(5.0),
            egress_min_bytes_per_sec: Some(5.0),
            connections_spike_factor: Some(5.0),
            connections_min: Some(5),
            baseline_half_life_secs: Some(5),
            baseline_warmup_secs: Some(5),
            repeat_secs: Some(5),
        };
        let mut copied = ThresholdSettings::default();
        for f in &FIELDS {
            assert!((f.rank)(&all).is_some(), "{}", f.name);
            assert!(!ResourcesSpec::api_field(f.name).is_empty(), "{}", f.name);
            (f.take)(&mut copied, &all);
        }
        assert_eq!(copied, all, "a field of ThresholdSettings is missing here");
    }
}
