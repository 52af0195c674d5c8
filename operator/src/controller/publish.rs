//! The rendered policy and agent configuration, written as ConfigMaps.
//!
//! Writes are a read, then a create when the ConfigMap is missing or a JSON merge patch
//! when its data differs, never PUT or server-side apply: that works on every API server
//! and on the in-memory one the tests use, and a read that finds the same data writes
//! nothing, so a re-render that changes nothing does not restart the agents' reload.
//! The patch carries the `resourceVersion` that was read, so on a real API server a
//! concurrent writer makes it fail with a conflict (retried) instead of being overwritten.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use super::{Error, FIELD_MANAGER};
use crate::render::{CONFIGMAP_MAX_BYTES, Rendered};

/// Key of the policy YAML in the policy ConfigMap.
pub const POLICY_KEY: &str = "policy.yaml";
/// Key of the policy's sha256 (hex) in the policy ConfigMap.
pub const HASH_KEY: &str = "hash";
/// Label set on the ConfigMaps the operator writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vigil-operator");

/// The policy ConfigMap's data.
pub fn policy_data(rendered: &Rendered) -> BTreeMap<String, String> {
    BTreeMap::from([
        (POLICY_KEY.to_owned(), rendered.policy_yaml.clone()),
        (HASH_KEY.to_owned(), rendered.policy_hash.clone()),
    ])
}

/// The agent ConfigMap's data: one key `NAMESPACE.yaml` per namespace with a monitor.
/// Mounted as a volume, it is one file per namespace, which agents reload one by one;
/// namespace names are DNS labels, so they are valid ConfigMap keys as they are.
pub fn agent_data(rendered: &Rendered) -> Result<BTreeMap<String, String>, Error> {
    let mut data = BTreeMap::new();
    for ns in rendered.namespaces.keys() {
        if let Some(yaml) = rendered.namespace_yaml(ns)? {
            data.insert(format!("{ns}.yaml"), yaml);
        }
    }
    Ok(data)
}

fn size(data: &BTreeMap<String, String>) -> usize {
    data.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Makes ConfigMap `name` hold exactly `data`. Returns whether anything was written.
pub async fn apply(
    api: &Api<ConfigMap>,
    name: &str,
    data: BTreeMap<String, String>,
) -> Result<bool, Error> {
    let bytes = size(&data);
    if bytes > CONFIGMAP_MAX_BYTES {
        return Err(Error::TooLarge {
            configmap: name.to_owned(),
            bytes,
        });
    }
    let labelled = |meta: &ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY.0))
            .is_some_and(|v| v == MANAGED_BY.1)
    };
    let Some(existing) = api.get_opt(name).await.map_err(Error::kube)? else {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        };
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        api.create(&pp, &cm).await.map_err(Error::kube)?;
        return Ok(true);
    };
    let current = existing.data.clone().unwrap_or_default();
    if current == data && labelled(&existing.metadata) {
        return Ok(false);
    }
    // Keys that are gone are set to null: a merge patch removes them.
    let mut patch = Map::new();
    for key in current.keys().filter(|k| !data.contains_key(*k)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, value) in data {
        if current.get(&key) != Some(&value) {
            patch.insert(key, Value::String(value));
        }
    }
    let body = json!({
        "metadata": {
            "resourceVersion": existing.metadata.resource_version,
            "labels": { MANAGED_BY.0: MANAGED_BY.1 },
        },
        "data": patch,
    });
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &pp, &Patch::Merge(&body))
        .await
        .map_err(Error::kube)?;
    Ok(true)
}

/// Creates the agents' report ConfigMap when it is missing, and never touches its data:
/// the agents own it.
pub async fn ensure_exists(api: &Api<ConfigMap>, name: &str) -> Result<(), Error> {
    if api.get_opt(name).await.map_err(Error::kube)?.is_some() {
        return Ok(());
    }
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    match api.create(&PostParams::default(), &cm).await {
        Ok(_) => Ok(()),
        // Another replica, or the chart, created it in between: fine, it exists.
        Err(kube::Error::Api(s)) if s.is_already_exists() => Ok(()),
        Err(e) => Err(Error::kube(e)),
    }
}
