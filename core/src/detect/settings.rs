//! The detection rules as a configuration file names them (the agent's and the webhook
//! collector's `rules:` block).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DetectConfig, RuleError, RuleSet, RuleSources, default_allowed_registries};

/// Detection rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Load the built-in rules.
    #[serde(default = "default_true")]
    pub builtin: bool,
    /// Files or directories of user Sigma rules (directories are searched recursively; a
    /// `tests` directory is skipped).
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Registries images may come from; `image.untrusted-registry` fires for any other.
    /// Host names (`quay.io`, `10.0.0.5:5000`) or `*.suffix` patterns (`*.azurecr.io`);
    /// images without a registry host are from `docker.io`. Default: the Kubernetes
    /// project's and the large public and cloud registries.
    #[serde(default = "default_allowed_registries")]
    pub allowed_registries: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            builtin: true,
            paths: Vec::new(),
            allowed_registries: default_allowed_registries(),
        }
    }
}

impl RulesConfig {
    /// What the detection engine's derived fields need.
    pub fn detect_config(&self) -> DetectConfig {
        DetectConfig {
            allowed_registries: self.allowed_registries.clone(),
        }
    }

    /// Loads the rules these settings name.
    pub fn load(&self) -> Result<RuleSet, RuleError> {
        Ok(RuleSet::load(&RuleSources {
            no_builtin: !self.builtin,
            paths: self.paths.clone(),
        })?
        .with_config(self.detect_config()))
    }
}
