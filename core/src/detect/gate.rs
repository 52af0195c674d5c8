//! Rule pre-filtering: which rules can possibly fire on an event.
//!
//! From each rule's condition a *gate* is derived: a condition the event must meet for the
//! rule to fire (`object.resource ∈ {roles, clusterroles}`). Events are offered only
//! the rules whose gate they pass, plus the rules that have no gate. A gate is an
//! over-approximation, never a guess: a rule is skipped only when its condition cannot be
//! true for the event.
//!
//! rsigma's own index gives up on a rule as soon as one of its selections has no exact value
//! (a `startswith` filter, a regex, a boolean), which real rules almost always have, so it
//! ends up evaluating every rule on every event.
//!
//! Derivation, on the condition after the processing pipeline has renamed fields, of
//! *clauses*: necessary conditions of the form "field1 ∈ values1 or field2 ∈ values2 ...":
//! - a selection (a mapping) gives one clause per plain-string field it constrains (no
//!   modifier but `cased`; no wildcard), and one "is present" clause per selective normalized
//!   field it tests in any way ([`PRESENCE_FIELDS`]: a positive test of a field needs the
//!   field); a list of mappings is an `or` of them;
//! - `a and b` keeps the clauses of both; `a or b` joins the best clause of each into one
//!   (`user ∈ {system:anonymous} or groups ∈ {system:unauthenticated}`), and has none if
//!   either side has none; `not a` has none;
//! - `1 of x*` is an `or`, `all of x*` an `and`, `N of x*` (N ≥ 1) at least an `or`.
//!
//! The gate is the most selective clause: the one whose weakest field is the most selective
//! ([`GATE_FIELDS`] ranks; presence of a workload or process ranks with a subresource). Only fields a record answers without building its JSON DOM are
//! used, so gating never costs a parse.

use std::collections::{BTreeMap, BTreeSet};

use rsigma_parser::{
    ConditionExpr, Detection, Modifier, Quantifier, SelectorPattern, SigmaRule, SigmaValue,
};

use super::RuleView;

/// Fields worth gating on, most selective first; the normalized name and the raw audit
/// name of a fact share a rank.
const GATE_FIELDS: [(&str, u8); 13] = [
    ("object.resource", 0),
    ("objectRef.resource", 0),
    ("object.subresource", 1),
    ("objectRef.subresource", 1),
    ("actor.user", 2),
    ("user.username", 2),
    ("actor.groups", 2),
    ("user.groups", 2),
    ("action", 3),
    ("verb", 3),
    ("source", 8),
    ("kind", 8),
    ("outcome", 8),
];

/// Normalized fields whose mere presence is selective: only writes of pod templates carry a
/// workload, only execs a process. A positive selection on such a field requires it to be
/// present, whatever it compares (a regex, a boolean, a list).
const PRESENCE_FIELDS: [&str; 10] = [
    "workload.privileged",
    "workload.host_network",
    "workload.host_pid",
    "workload.host_ipc",
    "workload.capabilities_added",
    "workload.host_paths",
    "workload.host_paths.path",
    "workload.images",
    "process.command_line",
    "process.args",
];

/// The rank of a presence atom.
const PRESENCE_RANK: u8 = 1;

/// The value that stands for "the field is present" in a clause.
const PRESENT: &str = "\u{0}present";

fn rank(field: &str) -> Option<(&'static str, u8)> {
    GATE_FIELDS
        .iter()
        .find(|(f, _)| *f == field)
        .copied()
        .or_else(|| {
            PRESENCE_FIELDS
                .iter()
                .find(|f| **f == field)
                .map(|f| (*f, PRESENCE_RANK))
        })
}

/// "at least one of these fields has one of its values".
type Clause = BTreeMap<&'static str, BTreeSet<String>>;

/// A rule's gate: the rule can fire only if the event passes its clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gate {
    pub clause: Clause,
}

/// The gate of `rule`, if its condition has a clause on [`GATE_FIELDS`].
pub(super) fn gate_of(rule: &SigmaRule) -> Option<Gate> {
    // Several conditions are alternatives.
    let clauses = rule
        .detection
        .conditions
        .iter()
        .map(|c| of_condition(c, rule))
        .reduce(|a, b| or(&a, &b))?;
    best(&clauses).map(|clause| Gate { clause })
}

/// The most selective clause: lowest rank of its weakest field, then fewest values.
fn best(clauses: &[Clause]) -> Option<Clause> {
    clauses
        .iter()
        .min_by_key(|c| {
            let weakest = c
                .keys()
                .filter_map(|f| rank(f))
                .map(|(_, r)| r)
                .max()
                .unwrap_or(u8::MAX);
            (weakest, c.values().map(BTreeSet::len).sum::<usize>())
        })
        .cloned()
}

fn of_condition(expr: &ConditionExpr, rule: &SigmaRule) -> Vec<Clause> {
    let named = &rule.detection.named;
    match expr {
        ConditionExpr::Identifier(name) => named.get(name).map(of_detection).unwrap_or_default(),
        ConditionExpr::And(parts) => parts.iter().flat_map(|p| of_condition(p, rule)).collect(),
        ConditionExpr::Or(parts) => parts
            .iter()
            .map(|p| of_condition(p, rule))
            .reduce(|a, b| or(&a, &b))
            .unwrap_or_default(),
        ConditionExpr::Not(_) => Vec::new(),
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
                Quantifier::All => parts.flatten().collect(),
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
            // A pattern with inner wildcards: select every name it could match (selecting
            // more only loosens the gate).
            _ if p.contains('*') => true,
            _ => name == p,
        },
    }
}

fn of_detection(d: &Detection) -> Vec<Clause> {
    match d {
        Detection::AllOf(items) => items
            .iter()
            .filter_map(|item| {
                let (field, _) = rank(item.field.name.as_deref()?)?;
                if !item
                    .field
                    .modifiers
                    .iter()
                    .all(|m| matches!(m, Modifier::Cased))
                {
                    return None;
                }
                let values: Option<BTreeSet<String>> = item
                    .values
                    .iter()
                    .map(|v| match v {
                        SigmaValue::String(s) => s.as_plain().map(|p| p.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                values.map(|v| Clause::from([(field, v)]))
            })
            .collect(),
        Detection::AnyOf(subs) => subs
            .iter()
            .map(of_detection)
            .reduce(|a, b| or(&a, &b))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// `a or b`: one clause joining the best clause of each side.
fn or(a: &[Clause], b: &[Clause]) -> Vec<Clause> {
    match (best(a), best(b)) {
        (Some(mut joined), Some(other)) => {
            for (field, values) in other {
                joined.entry(field).or_default().extend(values);
            }
            vec![joined]
        }
        _ => Vec::new(),
    }
}

/// Rules by gate, for one source.
#[derive(Debug, Default)]
pub(super) struct GateIndex {
    /// field → value → rule positions.
    by_field: Vec<(&'static str, ahash::AHashMap<String, Vec<usize>>)>,
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
        for (field, values) in &gate.clause {
            let slot = match self.by_field.iter().position(|(f, _)| f == field) {
                Some(i) => i,
                None => {
                    self.by_field.push((field, ahash::AHashMap::new()));
                    self.by_field.len() - 1
                }
            };
            for v in values {
                self.by_field[slot]
                    .1
                    .entry(v.clone())
                    .or_default()
                    .push(idx);
            }
        }
    }

    /// The rules `view` may fire, in rule order.
    pub(super) fn candidates(&self, view: &RuleView<'_>, out: &mut Vec<usize>) {
        out.clear();
        out.extend_from_slice(&self.ungated);
        for (field, values) in &self.by_field {
            let mut hit = |s: &str| {
                // Values are nearly always lower case already; lower-case only when not.
                let rules = if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
                    values.get(s.to_lowercase().as_str())
                } else {
                    values.get(s)
                };
                if let Some(rules) = rules {
                    out.extend_from_slice(rules);
                }
            };
            let mut non_string = false;
            let present = view.visit_strings(field, &mut hit, &mut || non_string = true);
            if present && let Some(rules) = values.get(PRESENT) {
                out.extend_from_slice(rules);
            }
            // A non-string value might still compare equal as text: every rule gated on this
            // field stays a candidate.
            if non_string {
                values
                    .values()
                    .for_each(|rules| out.extend_from_slice(rules));
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(yaml: &str) -> Option<Clause> {
        let c = rsigma_parser::parse_sigma_yaml(yaml).unwrap();
        gate_of(&c.rules[0]).map(|g| g.clause)
    }

    fn rule(detection: &str) -> String {
        format!("title: t\nlogsource: {{product: vigil}}\ndetection:\n{detection}")
    }

    fn clause(atoms: &[(&'static str, &[&str])]) -> Clause {
        atoms
            .iter()
            .map(|(f, v)| (*f, v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn and_keeps_the_most_selective_clause_not_keeps_none() {
        let g = gate(&rule(
            "  a: {object.resource: [roles, ClusterRoles], action: create}\n  f: {object.resource: roles}\n  condition: a and not f\n",
        ));
        assert_eq!(
            g,
            Some(clause(&[("object.resource", &["roles", "clusterroles"])]))
        );
        assert_eq!(
            gate(&rule("  a: {object.resource: pods}\n  condition: not a\n")),
            None
        );
        // A low-selectivity field is used only when nothing better is constrained.
        let g = gate(&rule(
            "  a: {outcome: success, action: get}\n  condition: a\n",
        ));
        assert_eq!(g, Some(clause(&[("action", &["get"])])));
    }

    #[test]
    fn or_joins_the_best_clause_of_each_side() {
        let g = gate(&rule(
            "  a: {object.resource: pods}\n  b: {actor.user: x}\n  condition: a or b\n",
        ));
        assert_eq!(
            g,
            Some(clause(&[
                ("object.resource", &["pods"]),
                ("actor.user", &["x"])
            ]))
        );
        let g = gate(&rule(
            "  anon:\n    - actor.user: system:anonymous\n    - actor.groups: system:unauthenticated\n  ok: {outcome: success}\n  condition: anon and ok\n",
        ));
        assert_eq!(
            g,
            Some(clause(&[
                ("actor.user", &["system:anonymous"]),
                ("actor.groups", &["system:unauthenticated"])
            ]))
        );
        let g = gate(&rule(
            "  a: {verb: create}\n  b: {verb: patch}\n  condition: a or b\n",
        ));
        assert_eq!(g, Some(clause(&[("verb", &["create", "patch"])])));
        // One side without a clause leaves the whole `or` without one.
        assert_eq!(
            gate(&rule(
                "  a: {object.resource: pods}\n  b: {actor.user|startswith: x}\n  condition: a or b\n"
            )),
            None
        );
    }

    #[test]
    fn modifiers_wildcards_non_strings_and_other_fields_give_no_gate() {
        for d in [
            "  a: {object.resource|startswith: pod}\n  condition: a\n",
            "  a: {object.resource: 'pod*'}\n  condition: a\n",
            "  a: {action: [get, 'l*']}\n  condition: a\n",
            "  a: {requestObject.spec.type: NodePort}\n  condition: a\n",
            "  a: {workload.privileged: true}\n  condition: a\n",
        ] {
            assert_eq!(gate(&rule(d)), None, "{d}");
        }
        let g = gate(&rule(
            "  a: {object.resource|cased: Pods}\n  condition: a\n",
        ));
        assert_eq!(g, Some(clause(&[("object.resource", &["pods"])])));
    }

    #[test]
    fn selectors_and_lists_of_mappings() {
        let g = gate(&rule(
            "  sel_a: {verb: create}\n  sel_b: {verb: patch}\n  condition: 1 of sel_*\n",
        ));
        assert_eq!(g, Some(clause(&[("verb", &["create", "patch"])])));
        let g = gate(&rule(
            "  sel_a: {verb: create}\n  sel_b: {objectRef.resource: pods}\n  condition: all of sel_*\n",
        ));
        assert_eq!(g, Some(clause(&[("objectRef.resource", &["pods"])])));
        let g = gate(&rule(
            "  a:\n    - {action: exec, object.resource: pods}\n    - {action: exec, source: docker}\n  condition: a\n",
        ));
        assert_eq!(
            g,
            Some(clause(&[
                ("object.resource", &["pods"]),
                ("action", &["exec"])
            ]))
        );
        // Contradictory requirements: a clause no event passes.
        let g = gate(&rule(
            "  a: {verb: create}\n  b: {verb: get}\n  condition: a and b\n",
        ));
        assert!(g.is_some());
    }
}
