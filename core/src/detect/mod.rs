//! Detection: Sigma rules evaluated on normalized events.
//!
//! Rules are Sigma YAML, evaluated by `rsigma-eval`. Two kinds of rule live side by side:
//!
//! - `logsource: {product: vigil}` rules read the normalized keys and run on events of every
//!   source; `service: <source>` (`k8s_audit`, `docker`, ...) narrows one to a source.
//! - `logsource: {product: kubernetes, service: audit}` rules (SigmaHQ's) read raw audit
//!   fields and run on audit events. A processing pipeline maps Sigma's pseudo-fields
//!   `hostPath`, `capabilities` and `apiGroup` onto what an audit event has.
//!
//! Rules are compiled once and grouped per source; within a source, a gate index derived
//! from each rule's condition (`gate.rs`) offers an event only the rules that can fire on it. Vigil reads three attributes of a rule besides the standard ones:
//! `name` (the short stable rule name, e.g. `container.privileged`), `wazuh_level` (0–15;
//! default from the Sigma level) and MITRE technique ids from `attack.tNNNN` tags.

mod builtin;
mod gate;
mod settings;
pub mod testing;
mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rsigma_eval::{CompiledRule, Pipeline};
use rsigma_parser::{LogSource, SigmaRule};

use crate::event::{Detection, Event, Severity, Source};

pub use builtin::{BUILTIN_RULES, PIPELINE_YAML};
pub use settings::RulesConfig;
pub use view::{RawSource, RuleView};

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A rule file could not be read.
    #[error("cannot read rule file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A rule file is not valid Sigma.
    #[error("invalid Sigma rule in {origin}: {message}")]
    Parse {
        /// Where the rule came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A rule cannot be compiled (unknown modifier, bad regex ...).
    #[error("cannot compile rule `{rule}` from {origin}: {message}")]
    Compile {
        /// The rule.
        rule: String,
        /// Where it came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Two rules share a name or an id.
    #[error("rule `{name}` is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The name or id.
        name: String,
        /// The first definition.
        first: String,
        /// The second definition.
        second: String,
    },
    /// A `wazuh_level` outside 0–15.
    #[error("rule `{rule}` in {origin}: wazuh_level must be an integer from 0 to 15")]
    Level {
        /// The rule.
        rule: String,
        /// Where it came from.
        origin: String,
    },
}

/// What Vigil knows of a rule beyond what the engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleMeta {
    /// Short stable name (`container.privileged`); the Sigma `name`, else its `id`.
    pub name: String,
    /// Sigma id.
    pub id: Option<String>,
    /// Title.
    pub title: String,
    /// Description: why it matters and how to tune it.
    pub description: Option<String>,
    /// Sigma severity.
    pub severity: Severity,
    /// Wazuh level 0–15.
    pub level: u8,
    /// MITRE technique ids.
    pub mitre: Vec<String>,
    /// Other tags.
    pub tags: Vec<String>,
    /// `builtin:<file>` or the file path.
    pub origin: String,
    /// The sources whose events it is evaluated on.
    pub sources: Vec<Source>,
}

impl RuleMeta {
    fn detection(&self) -> Detection {
        Detection {
            rule: self.name.clone(),
            id: self.id.clone(),
            title: self.title.clone(),
            level: self.level,
            severity: self.severity,
            mitre: self.mitre.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Where rules come from.
#[derive(Debug, Clone, Default)]
pub struct RuleSources {
    /// Leave out the built-in rules.
    pub no_builtin: bool,
    /// Directories (searched recursively for `*.yml`/`*.yaml`) and files of user rules.
    pub paths: Vec<PathBuf>,
}

/// Settings that derived fields depend on.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Registries images may come from; `image.untrusted-registry` fires for any other.
    /// Entries are host names (`quay.io`, `10.0.0.5:5000`) or `*.suffix` patterns
    /// (`*.azurecr.io`). Images without a registry host are from `docker.io`.
    #[serde(default = "default_allowed_registries")]
    pub allowed_registries: Vec<String>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            allowed_registries: default_allowed_registries(),
        }
    }
}

/// The registries of the Kubernetes project and the large public and cloud registries.
pub fn default_allowed_registries() -> Vec<String> {
    [
        "registry.k8s.io",
        "k8s.gcr.io",
        "docker.io",
        "quay.io",
        "ghcr.io",
        "gcr.io",
        "*.gcr.io",
        "*.pkg.dev",
        "mcr.microsoft.com",
        "*.azurecr.io",
        "public.ecr.aws",
        "*.amazonaws.com",
    ]
    .map(String::from)
    .to_vec()
}

/// The registry host of an image reference, as the container runtimes resolve it.
pub fn image_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "docker.io",
    }
}

fn registry_allowed(image: &str, allowed: &[String]) -> bool {
    let host = image_registry(image);
    let host = if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    };
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host[..host.len() - suffix.len()].ends_with('.')
        }
        None => a.eq_ignore_ascii_case(host),
    })
}

/// Every source, in the order of the per-source engines.
const SOURCES: [Source; 8] = [
    Source::K8sAudit,
    Source::Docker,
    Source::Containerd,
    Source::ContainerLog,
    Source::Process,
    Source::File,
    Source::Stats,
    Source::Hardening,
];

/// The rules of one source.
#[derive(Default)]
struct SourceRules {
    /// Shared between sources: a rule for every source is compiled once.
    compiled: Vec<(Arc<CompiledRule>, Arc<RuleMeta>)>,
    gates: gate::GateIndex,
}

/// A loaded, compiled rule set.
pub struct RuleSet {
    config: DetectConfig,
    /// Indexed like [`SOURCES`].
    per_source: Vec<SourceRules>,
    rules: Vec<Arc<RuleMeta>>,
    tuning: crate::tuning::SharedTuning,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl RuleSet {
    /// Loads the built-in rules (unless disabled) and the user's.
    pub fn load(sources: &RuleSources) -> Result<RuleSet, RuleError> {
        let mut docs: Vec<(String, String)> = Vec::new();
        if !sources.no_builtin {
            docs.extend(
                BUILTIN_RULES
                    .iter()
                    .map(|(f, t)| (format!("builtin:{f}"), (*t).to_owned())),
            );
        }
        for path in &sources.paths {
            for file in rule_files(path)? {
                let text = std::fs::read_to_string(&file).map_err(|source| RuleError::Io {
                    path: file.clone(),
                    source,
                })?;
                docs.push((file.display().to_string(), text));
            }
        }
        Self::from_documents(&docs)
    }

    /// The built-in rules only.
    pub fn builtin() -> Result<RuleSet, RuleError> {
        Self::load(&RuleSources::default())
    }

    /// Compiles rules from `(origin, yaml)` documents.
    pub fn from_documents(docs: &[(String, String)]) -> Result<RuleSet, RuleError> {
        let pipelines = [pipeline()?];
        let mut per_source: Vec<SourceRules> =
            SOURCES.iter().map(|_| SourceRules::default()).collect();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        let mut rules = Vec::new();
        for (origin, text) in docs {
            let collection =
                rsigma_parser::parse_sigma_yaml(text).map_err(|e| RuleError::Parse {
                    origin: origin.clone(),
                    message: e.to_string(),
                })?;
            if let Some(first) = collection.errors.first() {
                return Err(RuleError::Parse {
                    origin: origin.clone(),
                    message: first.clone(),
                });
            }
            for rule in &collection.rules {
                let meta = Arc::new(meta_of(rule, origin)?);
                let compile_err = |e: rsigma_eval::EvalError| RuleError::Compile {
                    rule: meta.name.clone(),
                    origin: origin.clone(),
                    message: e.to_string(),
                };
                for (map, key) in [
                    (&mut names, Some(meta.name.clone())),
                    (&mut ids, meta.id.clone()),
                ] {
                    if let Some(key) = key
                        && let Some(first) = map.insert(key.clone(), origin.clone())
                    {
                        return Err(RuleError::Duplicate {
                            name: key,
                            first,
                            second: origin.clone(),
                        });
                    }
                }
                let mut mapped = rule.clone();
                rsigma_eval::apply_pipelines(&pipelines, &mut mapped).map_err(compile_err)?;
                let compiled = Arc::new(rsigma_eval::compile_rule(&mapped).map_err(compile_err)?);
                let gate = gate::gate_of(&mapped);
                for (slot, source) in per_source.iter_mut().zip(SOURCES) {
                    if meta.sources.contains(&source) {
                        slot.gates.push(gate.as_ref());
                        slot.compiled.push((compiled.clone(), meta.clone()));
                    }
                }
                rules.push(meta);
            }
        }
        Ok(RuleSet {
            config: DetectConfig::default(),
            per_source,
            rules,
            tuning: crate::tuning::SharedTuning::default(),
        })
    }

    /// Sets what derived fields depend on.
    #[must_use]
    pub fn with_config(mut self, config: DetectConfig) -> Self {
        self.config = config;
        self
    }

    /// Every rule loaded, in load order.
    pub fn rules(&self) -> &[Arc<RuleMeta>] {
        &self.rules
    }

    /// The per-namespace tuning applied to every detection; [`SharedTuning::replace`]
    /// puts a new one in force for every holder of this rule set.
    ///
    /// [`SharedTuning::replace`]: crate::tuning::SharedTuning::replace
    pub fn tuning(&self) -> &crate::tuning::SharedTuning {
        &self.tuning
    }

    /// The rules `event` fires, in load order, then those of its namespace's inline rules,
    /// as its namespace's tuning leaves them. `raw` is the original record's DOM, for rules
    /// that read raw fields.
    pub fn detect(&self, event: &Event, raw: Option<&dyn RawSource>) -> Vec<Detection> {
        let found = self.detect_untuned(event, raw);
        let tuning = self.tuning.current();
        if tuning.is_empty() {
            return found;
        }
        tuning.tune(event, raw, found, &self.tuning.counters)
    }

    fn detect_untuned(&self, event: &Event, raw: Option<&dyn RawSource>) -> Vec<Detection> {
        let Some(rules) = self.rules_of(event.source) else {
            return Vec::new();
        };
        let view = RuleView::new(event, raw, &self.config);
        let mut candidates = Vec::new();
        rules.gates.candidates(&view, &mut candidates);
        candidates
            .into_iter()
            .filter_map(|idx| rules.compiled.get(idx))
            .filter(|(compiled, _)| rsigma_eval::evaluate_rule(compiled, &view).is_some())
            .map(|(_, meta)| meta.detection())
            .collect()
    }

    fn rules_of(&self, source: Source) -> Option<&SourceRules> {
        SOURCES
            .iter()
            .position(|s| *s == source)
            .and_then(|i| self.per_source.get(i))
    }

    /// The rules an audit record fires, once per request whatever stages the policy logs
    /// (see [`StageFilter`](crate::audit::StageFilter)).
    pub fn detect_audit(
        &self,
        record: &crate::audit::AuditRecord,
        stages: &mut crate::audit::StageFilter,
    ) -> Vec<Detection> {
        if !stages.should_detect(record) {
            return Vec::new();
        }
        self.detect(&record.event, Some(record))
    }

    /// Every rule evaluated on `event`, without the gate index: the reference the index is
    /// tested against.
    #[cfg(test)]
    fn detect_ungated(&self, event: &Event, raw: Option<&dyn RawSource>) -> Vec<Detection> {
        let Some(rules) = self.rules_of(event.source) else {
            return Vec::new();
        };
        let view = RuleView::new(event, raw, &self.config);
        rules
            .compiled
            .iter()
            .filter(|(compiled, _)| rsigma_eval::evaluate_rule(compiled, &view).is_some())
            .map(|(_, meta)| meta.detection())
            .collect()
    }
}

/// The processing pipeline applied to every rule.
fn pipeline() -> Result<Pipeline, RuleError> {
    rsigma_eval::parse_pipeline(PIPELINE_YAML).map_err(|e| RuleError::Parse {
        origin: "builtin:pipeline".into(),
        message: e.to_string(),
    })
}

/// Which sources' events a rule applies to, from its logsource.
fn sources_of(ls: &LogSource) -> Vec<Source> {
    let product = ls.product.as_deref().map(str::to_ascii_lowercase);
    let service = ls.service.as_deref().map(str::to_ascii_lowercase);
    match product.as_deref() {
        Some("vigil") => match service.as_deref() {
            None => SOURCES.to_vec(),
            Some(svc) => SOURCES
                .iter()
                .copied()
                .filter(|s| s.as_str() == svc)
                .collect(),
        },
        Some("kubernetes") if matches!(service.as_deref(), None | Some("audit")) => {
            vec![Source::K8sAudit]
        }
        Some("docker") => vec![Source::Docker],
        Some("containerd") => vec![Source::Containerd],
        _ => Vec::new(),
    }
}

fn meta_of(rule: &SigmaRule, origin: &str) -> Result<RuleMeta, RuleError> {
    let name = rule
        .name
        .clone()
        .or_else(|| rule.id.clone())
        .unwrap_or_else(|| {
            rule.title
                .to_ascii_lowercase()
                .replace(char::is_whitespace, "-")
        });
    let severity = match rule.level {
        Some(rsigma_parser::Level::Informational) | None => Severity::Informational,
        Some(rsigma_parser::Level::Low) => Severity::Low,
        Some(rsigma_parser::Level::Medium) => Severity::Medium,
        Some(rsigma_parser::Level::High) => Severity::High,
        Some(rsigma_parser::Level::Critical) => Severity::Critical,
    };
    let level = match rule.custom_attributes.get("wazuh_level") {
        None => severity.default_level(),
        Some(v) => v
            .as_u64()
            .filter(|l| *l <= 15)
            .and_then(|l| u8::try_from(l).ok())
            .ok_or_else(|| RuleError::Level {
                rule: name.clone(),
                origin: origin.to_owned(),
            })?,
    };
    let mut mitre = Vec::new();
    let mut tags = Vec::new();
    for tag in &rule.tags {
        match tag.strip_prefix("attack.") {
            Some(t)
                if t.len() > 1
                    && t.starts_with(['t', 'T'])
                    && t[1..2].chars().all(|c| c.is_ascii_digit()) =>
            {
                mitre.push(t.to_ascii_uppercase());
            }
            _ => tags.push(tag.clone()),
        }
    }
    Ok(RuleMeta {
        name,
        id: rule.id.clone(),
        title: rule.title.clone(),
        description: rule.description.clone(),
        severity,
        level,
        mitre,
        tags,
        origin: origin.to_owned(),
        sources: sources_of(&rule.logsource),
    })
}

/// The rule files of a path: the file itself, or every `*.yml`/`*.yaml` below a directory,
/// sorted so that load order (and duplicate reports) do not depend on the file system.
/// A `tests` directory holds rule tests, not rules, and is skipped.
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let io = |source| RuleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RuleError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let p = entry
                .map_err(|source| RuleError::Io {
                    path: dir.clone(),
                    source,
                })?
                .path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "tests") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
