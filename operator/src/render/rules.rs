//! Inline Sigma rules of ContainerMonitors, checked with the agent's own loader.
//!
//! A rule the operator accepts must load in every agent, so the check is vigil-core's
//! [`RuleSet::from_documents`], the function the agents use, and not a second parser.

use std::collections::{BTreeMap, BTreeSet};

use vigil_core::detect::{RuleError, RuleSet};

/// The rule names a ContainerMonitor may refer to without a warning.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    builtin: BTreeSet<String>,
}

impl Catalog {
    /// The built-in rules compiled into vigil-core.
    pub fn builtin() -> Result<Catalog, RuleError> {
        let set = RuleSet::builtin()?;
        Ok(Catalog {
            builtin: set.rules().iter().map(|r| r.name.clone()).collect(),
        })
    }

    /// A catalog of the given rule names.
    pub fn from_names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Catalog {
        Catalog {
            builtin: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether a built-in rule has this name.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(name)
    }
}

/// One inline rule document to check.
#[derive(Debug, Clone)]
pub(crate) struct InlineSource<'a> {
    /// Where it came from, for messages and for the agents' rule origin.
    pub origin: String,
    /// The Sigma YAML.
    pub text: &'a str,
}

/// The rules of one document that loaded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoadedRules {
    /// Names of the rules the document defines (a document may hold a rule collection).
    pub names: Vec<String>,
}

/// Checks every inline rule of one namespace. The result is per document, in input order:
/// the names it defines, or why it was refused. Names must be unique within the namespace
/// and must not shadow a built-in rule, since exceptions, levels and detections name rules.
pub(crate) fn check_namespace(
    docs: &[InlineSource<'_>],
    catalog: &Catalog,
) -> Vec<Result<LoadedRules, String>> {
    // One compile of the whole namespace is the common, fast case; only when it fails is
    // each document compiled alone, to say which one is at fault and keep the others.
    let all: Vec<(String, String)> = docs
        .iter()
        .map(|d| (d.origin.clone(), d.text.to_owned()))
        .collect();
    let loaded: Vec<Result<Vec<String>, String>> = match RuleSet::from_documents(&all) {
        Ok(set) => {
            let mut by_origin: BTreeMap<&str, Vec<Result<String, String>>> = BTreeMap::new();
            for r in set.rules() {
                by_origin
                    .entry(r.origin.as_str())
                    .or_default()
                    .push(check_meta(r).cloned());
            }
            docs.iter()
                .map(|d| {
                    by_origin
                        .remove(d.origin.as_str())
                        .unwrap_or_default()
                        .into_iter()
                        .collect()
                })
                .collect()
        }
        Err(_) => docs.iter().map(load_one).collect(),
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    docs.iter()
        .zip(loaded)
        .map(|(doc, result)| {
            let names = result?;
            if names.is_empty() {
                return Err("the document holds no Sigma rule".to_owned());
            }
            for name in &names {
                if catalog.is_builtin(name) {
                    return Err(format!(
                        "rule `{name}` has the name of a built-in rule; give it another `name` (to tune the built-in rule, use detections.levels, exceptions or disabled)"
                    ));
                }
                if let Some(first) = seen.get(name) {
                    return Err(format!(
                        "rule `{name}` is already defined in this namespace by {first}"
                    ));
                }
            }
            for name in &names {
                seen.insert(name.clone(), doc.origin.clone());
            }
            Ok(LoadedRules { names })
        })
        .collect()
}

fn load_one(doc: &InlineSource<'_>) -> Result<Vec<String>, String> {
    let set = RuleSet::from_documents(&[(doc.origin.clone(), doc.text.to_owned())])
        .map_err(|e| e.to_string())?;
    set.rules().iter().map(|r| check_meta(r).cloned()).collect()
}

/// A rule that applies to no source would load and never fire: refuse it rather than
/// accept a rule that silently does nothing.
fn check_meta(r: &vigil_core::detect::RuleMeta) -> Result<&String, String> {
    if r.sources.is_empty() {
        return Err(format!(
            "rule `{}` has a logsource no Vigil source produces; use `product: vigil` (optionally with `service: k8s_audit`, `docker`, `containerd`, `container_log` ...) or `product: kubernetes, service: audit`",
            r.name
        ));
    }
    Ok(&r.name)
}
