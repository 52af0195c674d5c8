//! The audit policy on a control-plane node: written atomically where kube-apiserver reads
//! it, the apiserver's manifest checked, the apiserver optionally restarted, and what it
//! runs reported to the operator.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use vigil_core::tuning::mounted::MountedDir;

use super::manifest::{self, Problem};
use super::{AuditPolicyConfig, OperatorConfig, api::Api};
use crate::metrics::Metrics;

/// Keys of the policy ConfigMap (the operator's `controller::publish`).
const POLICY_KEY: &str = "policy.yaml";
const HASH_KEY: &str = "hash";

/// `/proc/PID/stat` start times are in USER_HZ ticks, 100 on every Linux ABI the agent runs
/// on (it is fixed for user space whatever the kernel's own HZ).
const USER_HZ: u64 = 100;

#[derive(Debug, thiserror::Error)]
enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the published policy's sha256 is {actual}, its `hash` key says {published}; waiting for a consistent ConfigMap"
    )]
    HashMismatch { actual: String, published: String },
    #[error("{path}: not YAML: {message}")]
    Manifest { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PolicyError + '_ {
    move |source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub struct PolicyApplier {
    cfg: AuditPolicyConfig,
    source: MountedDir,
    node: String,
    api: Api,
    metrics: Arc<Metrics>,
    /// The hash of the policy this node serves, once read.
    hash: Option<String>,
    /// What was last reported successfully.
    reported: Option<String>,
    /// Manifest problems last logged, so a lasting problem is logged once.
    logged: Vec<Problem>,
    /// Last error logged, likewise.
    last_error: Option<String>,
}

impl PolicyApplier {
    pub fn new(config: &OperatorConfig, node: String, api: Api, metrics: Arc<Metrics>) -> Self {
        PolicyApplier {
            cfg: config.audit_policy.clone(),
            source: MountedDir::new(&config.policy_dir),
            node,
            api,
            metrics,
            hash: None,
            reported: None,
            logged: Vec::new(),
            last_error: None,
        }
    }

    pub async fn tick(&mut self) {
        if !self.cfg.manifest.exists() {
            // Not a node that runs an apiserver: nothing to install, nothing to report.
            return;
        }
        let status = match self.apply() {
            Ok(Some(status)) => {
                self.last_error = None;
                status
            }
            Ok(None) => return,
            Err(e) => {
                let shown = e.to_string();
                if self.last_error.as_ref() != Some(&shown) {
                    self.metrics.operator.policy_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %shown, "audit policy not installed");
                    self.last_error = Some(shown);
                }
                return;
            }
        };
        if self.reported.as_deref() == Some(status.as_str()) {
            return;
        }
        match self.api.report(&self.node, &status).await {
            Ok(()) => {
                self.metrics.operator.status_reports.fetch_add(1, Relaxed);
                tracing::info!(node = %self.node, status = %status, "audit policy status reported");
                self.reported = Some(status);
            }
            Err(e) => {
                self.metrics.operator.status_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "audit policy status not reported; retrying");
            }
        }
    }

    /// Installs the published policy if it changed; returns what to report, or `None`
    /// while nothing is published.
    fn apply(&mut self) -> Result<Option<String>, PolicyError> {
        let changed = self.source.changed().map_err(io(self.source.path()))?;
        if changed || self.hash.is_none() {
            let dir = self.source.path().to_path_buf();
            let policy_file = dir.join(POLICY_KEY);
            let policy = match std::fs::read(&policy_file) {
                Ok(p) => p,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io(&policy_file)(e)),
            };
            let hash_file = dir.join(HASH_KEY);
            let published = std::fs::read_to_string(&hash_file).map_err(io(&hash_file))?;
            let actual = hex(&Sha256::digest(&policy));
            if published.trim() != actual {
                // The two keys of one ConfigMap are swapped together by the kubelet; a
                // mismatch is a hand edit or a half-written copy, and never installed.
                return Err(PolicyError::HashMismatch {
                    actual,
                    published: published.trim().to_owned(),
                });
            }
            let on_disk = std::fs::read(&self.cfg.path).ok();
            if on_disk.as_deref() != Some(policy.as_slice()) {
                if let Some(parent) = self.cfg.path.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                vigil_core::durable::write_atomic_hidden(&self.cfg.path, &policy, 0o600)
                    .map_err(io(&self.cfg.path))?;
                self.metrics.operator.policy_writes.fetch_add(1, Relaxed);
                tracing::info!(path = %self.cfg.path.display(), hash = %actual, "audit policy written");
            }
            self.hash = Some(actual);
        }
        let Some(hash) = self.hash.clone() else {
            return Ok(None);
        };

        let manifest_path = self.cfg.manifest.clone();
        let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
        let mut doc: yaml_serde::Value =
            yaml_serde::from_str(&text).map_err(|e| PolicyError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
        let check = manifest::check(&doc, &self.cfg.path);
        self.metrics
            .operator
            .manifest_problems
            .store(check.problems.len() as u64, Relaxed);
        if check.problems != self.logged {
            for p in &check.problems {
                tracing::warn!(manifest = %manifest_path.display(), problem = %p,
                    "kube-apiserver is not set up to load the audit policy (docs/install.md)");
            }
            if check.problems.is_empty() && !self.logged.is_empty() {
                tracing::info!(manifest = %manifest_path.display(), "kube-apiserver's audit flags are complete");
            }
            self.logged = check.problems.clone();
        }

        let written = std::fs::metadata(&self.cfg.path)
            .and_then(|m| m.modified())
            .map_err(io(&self.cfg.path))?;
        let loaded = check.problems.is_empty()
            && apiserver_started(&self.cfg.proc_dir).is_some_and(|started| started >= written);
        self.metrics
            .operator
            .policy_loaded
            .store(u64::from(loaded), Relaxed);

        if !loaded
            && self.cfg.restart_apiserver
            && check.problems.is_empty()
            && check.annotated_hash.as_deref() != Some(hash.as_str())
            && manifest::annotate(&mut doc, &hash)
        {
            let text = yaml_serde::to_string(&doc).map_err(|e| PolicyError::Manifest {
                path: manifest_path.clone(),
                message: e.to_string(),
            })?;
            vigil_core::durable::write_atomic_hidden(&manifest_path, text.as_bytes(), 0o600)
                .map_err(io(&manifest_path))?;
            self.metrics
                .operator
                .restarts_requested
                .fetch_add(1, Relaxed);
            tracing::warn!(manifest = %manifest_path.display(), hash = %hash,
                "kube-apiserver restart requested to load the new audit policy");
        }
        Ok(Some(if loaded {
            hash
        } else {
            format!("pending:{hash}")
        }))
    }
}

/// When the oldest running kube-apiserver process started, from `/proc`.
fn apiserver_started(proc_dir: &Path) -> Option<SystemTime> {
    let boot = std::fs::read_to_string(proc_dir.join("stat"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
    std::fs::read_dir(proc_dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim() == "kube-apiserver")
        })
        .filter_map(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name may hold spaces and parentheses; fields resume after the last `)`.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
            // btime is whole seconds, rounded down, so this is a lower bound of the real
            // start: a process it places after the write really started after it.
            let since_boot = Duration::from_millis(ticks.saturating_mul(1000) / USER_HZ);
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(boot) + since_boot)
        })
        .min()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_start_time_is_read_from_proc() {
        // A process named kube-apiserver is what the agent looks for; with none running the
        // answer is None, and the parsing is checked on a copy of our own stat line.
        let dir = tempfile::tempdir().unwrap();
        let proc_stat = std::fs::read_to_string("/proc/stat").unwrap();
        std::fs::write(dir.path().join("stat"), &proc_stat).unwrap();
        assert_eq!(apiserver_started(dir.path()), None);

        let me = dir.path().join("4242");
        std::fs::create_dir(&me).unwrap();
        std::fs::write(me.join("comm"), "kube-apiserver\n").unwrap();
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let own = own.replacen('(', "(kube apiserver) (", 1);
        std::fs::write(me.join("stat"), own).unwrap();
        let started = apiserver_started(dir.path()).unwrap();
        let age = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(3600), "started {age:?} ago");
    }

    #[test]
    fn garbage_in_proc_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stat"), "btime 1700000000\n").unwrap();
        for (pid, stat) in [("1", "garbage"), ("2", "2 (kube-apiserver) S"), ("3", "")] {
            let p = dir.path().join(pid);
            std::fs::create_dir(&p).unwrap();
            std::fs::write(p.join("comm"), "kube-apiserver\n").unwrap();
            std::fs::write(p.join("stat"), stat).unwrap();
        }
        assert_eq!(apiserver_started(dir.path()), None);
    }
}
