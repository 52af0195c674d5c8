//! Rule pre-filtering: which rules can possibly fire on an event.
//!
//! From each rule's condition a *gate* is derived: a field and the values it must have for
//! the rule to fire (`object.resource ∈ {roles, clusterroles}`). Events are offered only
//! the rules whose gate they pass, plus the rules that have no gate. A gate is an
//! over-approximation, never a guess: a rule is skipped only when its condition cannot be
//! true for the event.
//!
//! rsigma's own index gives up on a rule as soon as one of its selections has no exact value
//! (a `startswith` filter, a regex, a boolean), which real rules almost always have, so it
//! ends up evaluating every rule on every event.
//!
//! Derivation, on the condition after the processing pipeline has renamed fields:
//! - a selection (a mapping) requires each of its plain-string fields to be one of its values
//!   (no modifier but `cased`; no wildcard); a list of mappings requires what every one of
//!   them requires;
//! - `a and b` requires what `a` and what `b` require; `a or b` requires only fields both
//!   require, with either's values; `not a` requires nothing;
//! - `1 of x*` is an `or`, `all of x*` an `and`, `N of x*` (N ≥ 1) at least an `or`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rsigma_eval::event::{Event as _, EventValue};
use rsigma_parser::{
    ConditionExpr, Detection, Modifier, Quantifier, SelectorPattern, SigmaRule, SigmaValue,
};

use super::RuleView;

/// Fields worth gating on, most selective first. A rule is gated on the first of these its
/// condition constrains.
const GATE_FIELDS: [&str; 9] = [
    "object.resource",
    "objectRef.resource",
    "object.subresource",
    "objectRef.subresource",
    "action",
    "verb",
    "source",
    "kind",
    "outcome",
];

/// field → allowed lower-case values.
type Constraints = BTreeMap<String, BTreeSet<String>>;

/// A rule's gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gate {
    pub field: &'static str,
    pub values: BTreeSet<String>,
}

/// The gate of `rule`, if its condition has one on a [`GATE_FIELDS`] field.
pub(super) fn gate_of(rule: &SigmaRule) -> Option<Gate> {
    let det = &rule.detection;
    // Several conditions are alternatives.
    let constraints = det
        .conditions
        .iter()
        .map(|c| of_condition(c, rule))
        .reduce(|a, b| or(&a, &b))?;
    GATE_FIELDS.iter().find_map(|f| {
        constraints.get(*f).map(|values| Gate {
            field: f,
            values: values.clone(),
        })
    })
}

fn of_condition(expr: &ConditionExpr, rule: &SigmaRule) -> Constraints {
    let named = &rule.detection.named;
    match expr {
        ConditionExpr::Identifier(name) => named.get(name).map(of_detection).unwrap_or_default(),
        ConditionExpr::And(parts) => parts
            .iter()
            .map(|p| of_condition(p, rule))
            .fold(Constraints::new(), and),
        ConditionExpr::Or(parts) => parts
            .iter()
            .map(|p| of_condition(p, rule))
            .reduce(|a, b| or(&a, &b))
            .unwrap_or_default(),
        ConditionExpr::Not(_) => Constraints::new(),
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let mut names: Vec<&String> = named.keys().filter(|n| selects(pattern, n)).collect();
            names.sort();
            let parts = names
                .into_iter()
                .filter_map(|n| named.get(n))
                .map(of_detection);
            match quantifier {
                Quantifier::All => parts.fold(Constraints::new(), and),
                Quantifier::Any | Quantifier::Count(_) => {
                    parts.reduce(|a, b| or(&a, &b)).unwrap_or_default()
                }
            }
        }
    }
}

fn selects(pattern: &SelectorPattern, name: &str) -> bool {
    match pattern {
        SelectorPattern::Them => !name.starts_with('_'),
        SelectorPattern::Pattern(p) => match p.strip_suffix('*') {
            Some(prefix) if !prefix.contains('*') => name.starts_with(prefix),
            _ if p.contains('*') => {
                // A pattern with inner wildcards: select every name it could match
                // (selecting more only loosens the gate).
                true
            }
            _ => name == p,
        },
    }
}

fn of_detection(d: &Detection) -> Constraints {
    match d {
        Detection::AllOf(items) => {
            let mut c = Constraints::new();
            for item in items {
                let Some(field) = &item.field.name else {
                    continue;
                };
                if !item
                    .field
                    .modifiers
                    .iter()
                    .all(|m| matches!(m, Modifier::Cased))
                {
                    continue;
                }
                let values: Option<BTreeSet<String>> = item
                    .values
                    .iter()
                    .map(|v| match v {
                        SigmaValue::String(s) => s.as_plain().map(|p| p.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                if let Some(values) = values.filter(|v| !v.is_empty()) {
                    c = and(c, Constraints::from([(field.clone(), values)]));
                }
            }
            c
        }
        Detection::AnyOf(subs) => subs
            .iter()
            .map(of_detection)
            .reduce(|a, b| or(&a, &b))
            .unwrap_or_default(),
        _ => Constraints::new(),
    }
}

fn and(mut a: Constraints, b: Constraints) -> Constraints {
    for (field, values) in b {
        match a.get_mut(&field) {
            Some(existing) => *existing = existing.intersection(&values).cloned().collect(),
            None => {
                a.insert(field, values);
            }
        }
    }
    a
}

fn or(a: &Constraints, b: &Constraints) -> Constraints {
    a.iter()
        .filter_map(|(field, va)| {
            b.get(field)
                .map(|vb| (field.clone(), va.union(vb).cloned().collect()))
        })
        .collect()
}

/// Rules by gate, for one source.
#[derive(Debug, Default)]
pub(super) struct GateIndex {
    /// field → value → rule positions.
    by_field: Vec<(&'static str, HashMap<String, Vec<usize>>)>,
    /// Rules without a gate: always candidates.
    ungated: Vec<usize>,
    /// Rules pushed so far (the position of the next one).
    rule_count: usize,
}

impl GateIndex {
    pub(super) fn push(&mut self, gate: Option<&Gate>) {
        let idx = self.rule_count;
        self.rule_count += 1;
        let Some(gate) = gate else {
            self.ungated.push(idx);
            return;
        };
        let slot = match self.by_field.iter().position(|(f, _)| *f == gate.field) {
            Some(i) => i,
            None => {
                self.by_field.push((gate.field, HashMap::new()));
                self.by_field.len() - 1
            }
        };
        for v in &gate.values {
            self.by_field[slot]
                .1
                .entry(v.clone())
                .or_default()
                .push(idx);
        }
    }

    /// The rules `view` may fire, in rule order.
    pub(super) fn candidates(&self, view: &RuleView<'_>, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.ungated);
        for (field, values) in &self.by_field {
            let Some(value) = view.get_field(field) else {
                continue;
            };
            let members: &[EventValue<'_>] = match &value {
                EventValue::Array(items) => items,
                single => std::slice::from_ref(single),
            };
            for member in members {
                match member {
                    EventValue::Str(s) => {
                        // Values are nearly always lower case already; lower-case only when not.
                        let hit = if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                            values.get(s.to_lowercase().as_str())
                        } else {
                            values.get(s.as_ref())
                        };
                        if let Some(rules) = hit {
                            out.extend_from_slice(rules);
                        }
                    }
                    // A non-string value might still compare equal as text: every rule
                    // gated on this field stays a candidate.
                    _ => values
                        .values()
                        .for_each(|rules| out.extend_from_slice(rules)),
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(yaml: &str) -> Option<Gate> {
        let c = rsigma_parser::parse_sigma_yaml(yaml).unwrap();
        gate_of(&c.rules[0])
    }

    fn rule(detection: &str) -> String {
        format!("title: t\nlogsource: {{product: vigil}}\ndetection:\n{detection}")
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn and_keeps_constraints_or_keeps_shared_ones_not_keeps_none() {
        let g = gate(&rule("  a: {object.resource: [roles, ClusterRoles], action: create}\n  f: {object.resource: roles}\n  condition: a and not f\n")).unwrap();
        assert_eq!(
            g,
            Gate {
                field: "object.resource",
                values: set(&["roles", "clusterroles"])
            }
        );

        let g = gate(&rule("  a: {object.resource: pods, action: create}\n  b: {action: [start, create], source: docker}\n  condition: a or b\n")).unwrap();
        assert_eq!(
            g,
            Gate {
                field: "action",
                values: set(&["create", "start"])
            }
        );

        assert_eq!(
            gate(&rule("  a: {object.resource: pods}\n  condition: not a\n")),
            None
        );
        assert_eq!(
            gate(&rule(
                "  a: {object.resource: pods}\n  b: {actor.user: x}\n  condition: a or b\n"
            )),
            None
        );
    }

    #[test]
    fn modifiers_wildcards_and_non_strings_give_no_gate() {
        assert_eq!(
            gate(&rule(
                "  a: {object.resource|startswith: pod}\n  condition: a\n"
            )),
            None
        );
        assert_eq!(
            gate(&rule("  a: {object.resource: 'pod*'}\n  condition: a\n")),
            None
        );
        assert_eq!(
            gate(&rule("  a: {action: [get, 'l*']}\n  condition: a\n")),
            None
        );
        let g = gate(&rule(
            "  a: {object.resource|cased: Pods}\n  condition: a\n",
        ))
        .unwrap();
        assert_eq!(g.values, set(&["pods"]));
    }

    #[test]
    fn selectors_and_lists_of_mappings() {
        let g = gate(&rule(
            "  sel_a: {verb: create}\n  sel_b: {verb: patch}\n  condition: 1 of sel_*\n",
        ))
        .unwrap();
        assert_eq!(
            g,
            Gate {
                field: "verb",
                values: set(&["create", "patch"])
            }
        );
        let g = gate(&rule("  sel_a: {verb: create}\n  sel_b: {objectRef.resource: pods}\n  condition: all of sel_*\n")).unwrap();
        assert_eq!(
            g,
            Gate {
                field: "objectRef.resource",
                values: set(&["pods"])
            }
        );
        let g = gate(&rule("  a:\n    - {action: exec, object.resource: pods}\n    - {action: exec, source: docker}\n  condition: a\n")).unwrap();
        assert_eq!(
            g,
            Gate {
                field: "action",
                values: set(&["exec"])
            }
        );
        assert_eq!(
            gate(&rule(
                "  a: {verb: create}\n  b: {verb: get}\n  condition: a and b\n"
            ))
            .map(|g| g.values),
            Some(BTreeSet::new())
        );
    }
}
