//! The store's settings, as they appear under `store:` in the console configuration.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the events are kept and how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database file. Its directory is created when missing; the write-ahead log
    /// (`-wal`) and its index (`-shm`) sit beside it.
    pub path: PathBuf,
    /// Size cap of the database file, in bytes. Past it, retention removes the oldest plain
    /// events first and events with detections only when no plain event is left.
    /// Default: 1073741824 (1 GiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// How long an event without detections is kept, in seconds (by the event's own time).
    /// Default: 604800 (7 days).
    #[serde(default = "default_event_retention_secs")]
    pub event_retention_secs: u64,
    /// How long an event that fired a detection is kept, in seconds (by the event's own
    /// time). Default: 7776000 (90 days).
    #[serde(default = "default_detection_retention_secs")]
    pub detection_retention_secs: u64,
}

impl StoreConfig {
    /// The defaults, with the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            path: path.into(),
            max_bytes: default_max_bytes(),
            event_retention_secs: default_event_retention_secs(),
            detection_retention_secs: default_detection_retention_secs(),
        }
    }
}

fn default_max_bytes() -> u64 {
    1 << 30
}

fn default_event_retention_secs() -> u64 {
    7 * 24 * 3600
}

fn default_detection_retention_secs() -> u64 {
    90 * 24 * 3600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_path_is_required_and_defaults_are_documented_values() {
        let cfg: StoreConfig = serde_json::from_str(r#"{"path":"/x/events.db"}"#).unwrap();
        assert_eq!(cfg, StoreConfig::new("/x/events.db"));
        assert_eq!(cfg.max_bytes, 1_073_741_824);
        assert_eq!(cfg.event_retention_secs, 604_800);
        assert_eq!(cfg.detection_retention_secs, 7_776_000);
        assert!(serde_json::from_str::<StoreConfig>(r#"{}"#).is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<StoreConfig>(r#"{"path":"a","max_byte":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_byte"), "{err}");
    }

    #[test]
    fn the_schema_documents_every_field() {
        let schema = serde_json::to_value(schemars::schema_for!(StoreConfig)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        assert_eq!(props.len(), 4);
        for (name, prop) in props {
            let doc = prop["description"].as_str().unwrap_or_default();
            assert!(!doc.is_empty(), "{name} has no description");
        }
        assert_eq!(schema["required"], serde_json::json!(["path"]));
    }
}
