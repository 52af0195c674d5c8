//! The operator's per-namespace configuration, reloaded when its ConfigMap changes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use vigil_core::detect::RuleSet;
use vigil_core::tuning::mounted::MountedDir;
use vigil_core::tuning::{Reload, Tuning};

use crate::metrics::Metrics;

/// Watches the mounted configuration and puts each valid version in force.
pub struct ConfigFollower {
    dir: MountedDir,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    /// The last read error, so a directory that stays unreadable is reported once.
    unreadable: Option<String>,
}

impl ConfigFollower {
    pub fn new(dir: &Path, rules: Arc<RuleSet>, metrics: Arc<Metrics>) -> ConfigFollower {
        ConfigFollower {
            dir: MountedDir::new(dir),
            rules,
            metrics,
            unreadable: None,
        }
    }

    /// Reloads if the directory changed.
    pub fn poll(&mut self) {
        let m = &self.metrics.operator;
        match Tuning::reload(&mut self.dir, self.rules.tuning()) {
            Reload::Unchanged => {}
            Reload::Unreadable(e) => {
                let e = e.to_string();
                if self.unreadable.as_ref() != Some(&e) {
                    tracing::warn!(dir = %self.dir.path().display(), error = %e,
                        "operator configuration unreadable; the one in force stays");
                    self.unreadable = Some(e);
                }
            }
            Reload::Applied { namespaces } => {
                self.unreadable = None;
                m.config_reloads.fetch_add(1, Relaxed);
                m.config_namespaces.store(namespaces as u64, Relaxed);
                m.config_ok.store(1, Relaxed);
                tracing::info!(namespaces, dir = %self.dir.path().display(),
                    "operator configuration in force");
            }
            Reload::Refused(e) => {
                self.unreadable = None;
                m.config_refused.fetch_add(1, Relaxed);
                m.config_ok.store(0, Relaxed);
                tracing::error!(error = %e, dir = %self.dir.path().display(),
                    "operator configuration refused; the previous one stays in force");
            }
        }
    }
}
