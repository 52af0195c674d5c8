//! Per-namespace tuning published by vigil-operator: which pods' runtime events and logs are
//! read, how detections are adjusted for each namespace (rules disabled, levels changed,
//! exceptions, inline rules), and the namespace's resource-usage thresholds.
//!
//! The operator renders one [`NamespaceConfig`] document per namespace with ContainerMonitors
//! and publishes them as the keys of a ConfigMap; agents and the webhook collector mount it,
//! compile it into a [`Tuning`] and hand it to their [`RuleSet`](crate::detect::RuleSet),
//! which applies it to every detection from then on. A namespace without a document is not
//! tuned: everything is read and every rule fires, as without the operator.

mod document;
pub mod mounted;
mod wildcard;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use document::{
    Exception, InlineRule, LabelSelector, LabelSelectorRequirement, LogSelection, MonitorSelection,
    NAMESPACE_CONFIG_SCHEMA, NamespaceConfig, NamespaceDetections, ThresholdError,
    ThresholdSettings,
};
use serde::Deserialize;
pub use wildcard::wildcard_match;

use crate::detect::{RawSource, RuleError, RuleSet};
use crate::event::{Detection, Event};

/// Why a set of documents was refused. The previous tuning stays in force.
#[derive(Debug, thiserror::Error)]
pub enum TuningError {
    /// The directory or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not valid YAML or not a namespace document.
    #[error("{origin}: {message}")]
    Document {
        /// File (and document index) of the problem.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// Two documents tune the same namespace.
    #[error("namespace {namespace} is tuned twice: in {first} and in {second}")]
    Duplicate {
        /// The namespace.
        namespace: String,
        /// Where it was first seen.
        first: String,
        /// Where it was seen again.
        second: String,
    },
    /// An inline rule does not load.
    #[error("{namespace}: inline rule from {origin}: {source}")]
    InlineRule {
        /// The namespace whose rules they are.
        namespace: String,
        /// The rule's origin as the operator wrote it.
        origin: String,
        /// Why it does not load.
        source: Box<RuleError>,
    },
}

/// What [`Tuning::reload`] did.
#[derive(Debug)]
pub enum Reload {
    /// Nothing changed.
    Unchanged,
    /// A new tuning is in force.
    Applied {
        /// Namespaces it tunes.
        namespaces: usize,
    },
    /// The new documents were refused; the previous tuning stays.
    Refused(TuningError),
    /// The directory could not be read; the previous tuning stays.
    Unreadable(std::io::Error),
}

/// The compiled tuning of every namespace that has a document.
#[derive(Default)]
pub struct Tuning {
    namespaces: HashMap<String, NamespaceTuning>,
}

impl std::fmt::Debug for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tuning")
            .field("namespaces", &self.namespaces.len())
            .finish()
    }
}

struct NamespaceTuning {
    monitors: Vec<MonitorSelection>,
    disabled: HashSet<String>,
    levels: HashMap<String, u8>,
    exceptions: Vec<Exception>,
    rules: Option<RuleSet>,
    resources: Option<ThresholdSettings>,
}

/// What tuning did to detections since start, for metrics.
#[derive(Debug, Default)]
pub struct TuningCounters {
    /// Detections dropped because the rule is disabled in the event's namespace.
    pub disabled: std::sync::atomic::AtomicU64,
    /// Detections dropped by an exception.
    pub excepted: std::sync::atomic::AtomicU64,
    /// Detections whose level a namespace changed.
    pub relevelled: std::sync::atomic::AtomicU64,
    /// Detections of namespace inline rules.
    pub inline: std::sync::atomic::AtomicU64,
}

impl Tuning {
    /// Compiles `(origin, text)` pairs; a text may hold several YAML documents.
    pub fn from_documents(docs: &[(String, String)]) -> Result<Tuning, TuningError> {
        let mut namespaces = HashMap::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (origin, text) in docs {
            for (index, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
                let at = format!("{origin} (document {})", index + 1);
                let value =
                    yaml_serde::Value::deserialize(de).map_err(|e| TuningError::Document {
                        origin: at.clone(),
                        message: e.to_string(),
                    })?;
                if value.is_null() {
                    continue;
                }
                // The schema first: a document of another version is reported as such, not
                // by the first field this version misses.
                let schema = value.get("schema").and_then(yaml_serde::Value::as_str);
                if schema != Some(NAMESPACE_CONFIG_SCHEMA) {
                    return Err(TuningError::Document {
                        origin: at,
                        message: format!(
                            "schema is {schema:?}, this version reads {NAMESPACE_CONFIG_SCHEMA:?}"
                        ),
                    });
                }
                let doc: NamespaceConfig =
                    yaml_serde::from_value(value).map_err(|e| TuningError::Document {
                        origin: at.clone(),
                        message: e.to_string(),
                    })?;
                if let Some(Err(e)) = doc.resources.as_ref().map(ThresholdSettings::validate) {
                    return Err(TuningError::Document {
                        origin: at,
                        message: format!("resources.{e}"),
                    });
                }
                if let Some(first) = seen.insert(doc.namespace.clone(), at.clone()) {
                    return Err(TuningError::Duplicate {
                        namespace: doc.namespace,
                        first,
                        second: at,
                    });
                }
                let tuning = NamespaceTuning::compile(&doc)?;
                namespaces.insert(doc.namespace, tuning);
            }
        }
        Ok(Tuning { namespaces })
    }

    /// Reads every `*.yaml`/`*.yml` file of a mounted ConfigMap directory, in name order.
    /// Hidden entries (the kubelet's `..data` and `..TIMESTAMP` directories) are skipped: the
    /// visible names are links into the current one.
    pub fn load_dir(dir: &Path) -> Result<Tuning, TuningError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TuningError::Io { path, source }
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                continue;
            }
            files.push(entry.path());
        }
        files.sort();
        let mut docs = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io(&file))?;
            docs.push((file.display().to_string(), text));
        }
        Self::from_documents(&docs)
    }

    /// Puts the directory's documents in force in `into` if the directory changed since the
    /// last call; refused documents leave the tuning in force as it was.
    pub fn reload(dir: &mut mounted::MountedDir, into: &SharedTuning) -> Reload {
        match dir.changed() {
            Ok(false) => Reload::Unchanged,
            Err(e) => Reload::Unreadable(e),
            Ok(true) => match Tuning::load_dir(dir.path()) {
                Ok(tuning) => {
                    let namespaces = tuning.namespaces.len();
                    into.replace(tuning);
                    Reload::Applied { namespaces }
                }
                Err(e) => Reload::Refused(e),
            },
        }
    }

    /// No namespace is tuned.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }

    /// Namespaces tuned, sorted.
    pub fn namespaces(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// The resource-usage thresholds of every namespace whose document sets them, by
    /// namespace.
    pub fn resource_thresholds(&self) -> BTreeMap<&str, &ThresholdSettings> {
        self.namespaces
            .iter()
            .filter_map(|(ns, t)| Some((ns.as_str(), t.resources.as_ref()?)))
            .collect()
    }

    /// Applies the event's namespace tuning to what the shared rules found: inline rules
    /// added, disabled rules and exceptions removed, levels changed.
    pub fn tune(
        &self,
        event: &Event,
        raw: Option<&dyn RawSource>,
        mut detections: Vec<Detection>,
        counters: &TuningCounters,
    ) -> Vec<Detection> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(ns) = event_namespace(event) else {
            return detections;
        };
        let Some(t) = self.namespaces.get(ns) else {
            return detections;
        };
        if let Some(rules) = &t.rules {
            let extra = rules.detect(event, raw);
            counters.inline.fetch_add(extra.len() as u64, Relaxed);
            detections.extend(extra);
        }
        detections.retain(|d| {
            if t.disabled.contains(&d.rule) {
                counters.disabled.fetch_add(1, Relaxed);
                return false;
            }
            if t.exceptions
                .iter()
                .any(|e| e.rule == d.rule && exception_applies(e, ns, event))
            {
                counters.excepted.fetch_add(1, Relaxed);
                return false;
            }
            true
        });
        for d in &mut detections {
            if let Some(level) = t.levels.get(&d.rule)
                && *level != d.level
            {
                d.level = *level;
                counters.relevelled.fetch_add(1, Relaxed);
            }
        }
        detections
    }

    /// Whether runtime (Docker/containerd) events of a pod are wanted. `labels` is `None`
    /// when the pod's labels are not known (yet): a monitor with a label selector is then
    /// taken to cover the pod, so a lookup that lags never hides an event.
    pub fn runtime_selected(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        self.select(namespace, labels, |m| m.runtime)
    }

    /// Whether a container's logs are wanted; `labels` as in [`Tuning::runtime_selected`].
    pub fn logs_selected(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
        container: &str,
    ) -> bool {
        self.select(namespace, labels, |m| {
            m.logs.enabled
                && (m.logs.include.is_empty()
                    || m.logs.include.iter().any(|p| wildcard_match(p, container)))
                && !m.logs.exclude.iter().any(|p| wildcard_match(p, container))
        })
    }

    fn select(
        &self,
        namespace: &str,
        labels: Option<&BTreeMap<String, String>>,
        wants: impl Fn(&MonitorSelection) -> bool,
    ) -> bool {
        let Some(t) = self.namespaces.get(namespace) else {
            return true;
        };
        t.monitors.iter().any(|m| {
            wants(m)
                && match labels {
                    Some(labels) => m.selector.matches(labels),
                    None => true,
                }
        })
    }
}

impl NamespaceTuning {
    fn compile(doc: &NamespaceConfig) -> Result<NamespaceTuning, TuningError> {
        let d = &doc.detections;
        let rules = if d.rules.is_empty() {
            None
        } else {
            let docs: Vec<(String, String)> = d
                .rules
                .iter()
                .map(|r| (r.origin.clone(), r.yaml.clone()))
                .collect();
            Some(RuleSet::from_documents(&docs).map_err(|source| {
                TuningError::InlineRule {
                    namespace: doc.namespace.clone(),
                    origin: d
                        .rules
                        .iter()
                        .map(|r| r.origin.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    source: Box::new(source),
                }
            })?)
        };
        Ok(NamespaceTuning {
            monitors: doc.monitors.clone(),
            disabled: d.disabled.iter().cloned().collect(),
            levels: d.levels.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            exceptions: d.exceptions.clone(),
            rules,
            resources: doc.resources.clone(),
        })
    }
}

/// The namespace an event belongs to: its pod's, its workload's, or its API object's.
pub fn event_namespace(event: &Event) -> Option<&str> {
    event
        .container
        .as_ref()
        .and_then(|c| c.pod.as_ref())
        .and_then(|p| p.namespace.as_deref())
        .or_else(|| event.workload.as_ref().and_then(|w| w.namespace.as_deref()))
        .or(event.object.namespace.as_deref())
}

/// Whether an exception covers this event of its rule.
///
/// An image exception covers a workload only when every one of its containers runs an
/// excepted image: otherwise an excepted sidecar would carry any other container past the
/// rule. A service account exception covers the account acting (`actor.service_account`) or
/// the account a workload runs as, both in the exception's own namespace.
fn exception_applies(e: &Exception, ns: &str, event: &Event) -> bool {
    let image_ok = |image: &str| e.images.iter().any(|p| wildcard_match(p, image));
    let by_image = !e.images.is_empty() && {
        let workload_images: Vec<&str> = event
            .workload
            .iter()
            .flat_map(|w| w.containers.iter().filter_map(|c| c.image.as_deref()))
            .collect();
        if workload_images.is_empty() {
            event
                .container
                .as_ref()
                .and_then(|c| c.image.as_deref())
                .is_some_and(image_ok)
        } else {
            workload_images.into_iter().all(image_ok)
        }
    };
    let by_account = e.service_accounts.iter().any(|sa| {
        event
            .actor
            .service_account
            .as_deref()
            .is_some_and(|acting| acting.split_once('/') == Some((ns, sa.as_str())))
            || event.workload.as_ref().is_some_and(|w| {
                w.service_account.as_deref() == Some(sa.as_str())
                    && w.namespace.as_deref().is_none_or(|wns| wns == ns)
            })
    });
    let by_user = event
        .actor
        .user
        .as_deref()
        .is_some_and(|u| e.users.iter().any(|x| x == u));
    by_image || by_account || by_user
}

/// Labels of the pods whose events a node sees, by namespace and name, for the monitors'
/// label selectors. Filled by whoever watches the pods (the agent, from the API server).
pub type PodLabels = HashMap<(String, String), BTreeMap<String, String>>;

/// A tuning shared by every user of a rule set, swapped whole when the operator publishes a
/// new one, with the pod labels its selectors are evaluated against.
#[derive(Debug, Default)]
pub struct SharedTuning {
    current: std::sync::RwLock<Arc<Tuning>>,
    pods: std::sync::RwLock<Option<PodLabels>>,
    /// What tuning did, across swaps.
    pub counters: TuningCounters,
}

impl SharedTuning {
    /// The tuning in force.
    pub fn current(&self) -> Arc<Tuning> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `tuning` in force for every event from now on.
    pub fn replace(&self, tuning: Tuning) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(tuning);
    }

    /// Sets or updates the labels of one pod (`None`: the pod is gone); returns how many
    /// pods' labels are known.
    pub fn set_pod(
        &self,
        namespace: &str,
        name: &str,
        labels: Option<BTreeMap<String, String>>,
    ) -> usize {
        let mut pods = self
            .pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pods = pods.get_or_insert_with(HashMap::new);
        let key = (namespace.to_owned(), name.to_owned());
        match labels {
            Some(labels) => {
                pods.insert(key, labels);
            }
            None => {
                pods.remove(&key);
            }
        }
        pods.len()
    }

    /// Replaces every pod's labels at once (a full list from the API server).
    pub fn set_pods(&self, all: PodLabels) {
        *self
            .pods
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(all);
    }

    /// Whether a runtime event is wanted: true unless its pod's namespace is tuned and no
    /// monitor covering the pod reads runtime events.
    pub fn runtime_wanted(&self, event: &Event) -> bool {
        let Some(pod) = event.container.as_ref().and_then(|c| c.pod.as_ref()) else {
            return true;
        };
        let Some(ns) = pod.namespace.as_deref() else {
            return true;
        };
        self.wanted(ns, pod.name.as_deref(), |t, labels| {
            t.runtime_selected(ns, labels)
        })
    }

    /// Whether a container's logs are wanted; see [`Tuning::logs_selected`].
    pub fn logs_wanted(&self, namespace: &str, pod: &str, container: &str) -> bool {
        self.wanted(namespace, Some(pod), |t, labels| {
            t.logs_selected(namespace, labels, container)
        })
    }

    /// `select` asked with the tuning in force and the pod's labels, if known.
    fn wanted(
        &self,
        namespace: &str,
        pod: Option<&str>,
        select: impl FnOnce(&Tuning, Option<&BTreeMap<String, String>>) -> bool,
    ) -> bool {
        let tuning = self.current();
        if tuning.is_empty() {
            return true;
        }
        let pods = self
            .pods
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let labels =
            pod.and_then(|name| pods.as_ref()?.get(&(namespace.to_owned(), name.to_owned())));
        select(&tuning, labels)
    }
}

#[cfg(test)]
mod tests;
