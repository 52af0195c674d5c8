//! The CRD manifest: the committed copy matches the types, and its validation rules refuse
//! what the operator cannot honour (checked with kube's client-side CEL evaluator, the
//! closest thing to an API server that runs here).

use std::path::PathBuf;

use kube::CustomResourceExt;
use kube::core::cel::{Validator, WarningKind, compile_schema, estimate_rule_cost};
use serde_json::{Value, json};
use vigil_operator::crd::{ContainerMonitor, crd_yaml};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crds/containermonitors.vigil.dev.yaml")
}

/// The Helm chart's copy: Helm installs `crds/` before the templates.
fn chart_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../charts/vigil/crds/containermonitors.vigil.dev.yaml")
}

#[test]
fn the_committed_crd_matches_the_types() {
    let generated = crd_yaml().unwrap();
    let path = committed_path();
    if std::env::var_os("VIGIL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from `vigil-operator crd`; regenerate it with\n  VIGIL_UPDATE_GOLDEN=1 cargo test -p vigil-operator --test it crd::\nor\n  cargo run -p vigil-operator -- crd > deploy/crds/containermonitors.vigil.dev.yaml",
        path.display()
    );
}

#[test]
fn the_charts_crd_matches_the_types() {
    let generated = crd_yaml().unwrap();
    let path = chart_path();
    if std::env::var_os("VIGIL_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} differs from `vigil-operator crd`; regenerate it with\n  VIGIL_UPDATE_GOLDEN=1 cargo test -p vigil-operator --test it crd::\nor\n  cargo run -p vigil-operator -- crd > charts/vigil/crds/containermonitors.vigil.dev.yaml",
        path.display()
    );
}

#[test]
fn the_crd_is_namespaced_with_short_name_status_and_printer_columns() {
    let crd = ContainerMonitor::crd();
    assert_eq!(crd.spec.group, "vigil.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["cmon".to_owned()][..])
    );
    let v = &crd.spec.versions[0];
    assert_eq!(v.name, "v1alpha1");
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for wanted in ["Ready", "Policy", "Applied", "Age"] {
        assert!(columns.contains(&wanted), "{columns:?}");
    }
}

fn schema() -> Value {
    let crd = ContainerMonitor::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .unwrap(),
    )
    .unwrap()
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "vigil.dev/v1alpha1",
        "kind": "ContainerMonitor",
        "metadata": {"name": "m", "namespace": "team"},
        "spec": spec,
    })
}

fn refusal(spec: Value) -> Option<String> {
    Validator::new()
        .validate(&schema(), &object(spec), None)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn every_cel_rule_compiles_and_fits_the_api_servers_cost_budget() {
    fn walk(node: &Value, path: &str, found: &mut usize) {
        if let Some(rules) = node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
        {
            let compiled = compile_schema(node);
            assert!(
                !compiled.has_errors(),
                "{path}: {:?}",
                compiled.compilation_errors()
            );
            for r in rules {
                let rule = r["rule"].as_str().unwrap();
                assert!(
                    r["message"].as_str().is_some_and(|m| m.len() > 20),
                    "{path}: every rule explains itself"
                );
                let warnings: Vec<_> = estimate_rule_cost(rule, &compiled)
                    .into_iter()
                    .filter(|w| {
                        matches!(
                            w.kind,
                            WarningKind::CostExceeded | WarningKind::MissingBounds
                        )
                    })
                    .collect();
                assert!(warnings.is_empty(), "{path}: {warnings:?}");
                *found += 1;
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                walk(v, &format!("{path}.{k}"), found);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(v) = node.get(key) {
                walk(v, &format!("{path}[]"), found);
            }
        }
    }
    let mut found = 0;
    walk(&schema(), "", &mut found);
    assert!(found >= 3, "only {found} CEL rules found");
}

#[test]
fn a_rule_asking_for_secret_or_configmap_bodies_is_refused_with_the_reason() {
    for resources in [
        json!([{"resources": ["secrets"]}]),
        json!([{"group": "", "resources": ["pods", "configmaps"]}]),
        json!([{"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]),
        json!([{"resources": ["serviceaccounts/token"]}]),
    ] {
        for level in ["Request", "RequestResponse"] {
            let err =
                refusal(json!({"audit": {"rules": [{"level": level, "resources": resources}]}}))
                    .unwrap_or_else(|| panic!("{level} on {resources} was accepted"));
            assert!(
                err.contains("secret values never reach the audit log"),
                "{err}"
            );
        }
        assert_eq!(
            refusal(json!({"audit": {"rules": [{"level": "Metadata", "resources": resources}]}})),
            None
        );
    }
    // Wildcards are accepted: the baseline keeps those resources at Metadata anyway.
    assert_eq!(
        refusal(json!({"audit": {"level": "RequestResponse", "rules": [{"level": "Request"}]}})),
        None
    );
    // Same resource names in another group are other resources.
    assert_eq!(
        refusal(
            json!({"audit": {"rules": [{"level": "Request", "resources": [{"group": "example.com", "resources": ["secrets"]}]}]}})
        ),
        None
    );
}

#[test]
fn an_exception_that_names_nobody_and_an_out_of_range_level_are_refused() {
    let err = refusal(json!({"detections": {"exceptions": [{"rule": "container.exec"}]}})).unwrap();
    assert!(err.contains("detections.disabled"), "{err}");
    assert_eq!(
        refusal(
            json!({"detections": {"exceptions": [{"rule": "container.exec", "serviceAccounts": ["ci"]}]}})
        ),
        None
    );
    let err = refusal(json!({"detections": {"levels": {"container.exec": 16}}})).unwrap();
    assert!(err.contains("0 (never alerts) to 15"), "{err}");
    assert_eq!(
        refusal(json!({"detections": {"levels": {"container.exec": 15}}})),
        None
    );
}

#[test]
fn the_example_in_the_readme_is_valid() {
    let readme = include_str!("../golden/many-namespaces/input.yaml");
    let deploy = include_str!("../../../deploy/examples/containermonitor.yaml");
    for doc in readme.split("\n---\n").chain(deploy.split("\n---\n")) {
        let value: Value = yaml_to_json(doc);
        if value["kind"] == "ContainerMonitor" {
            let spec = value["spec"].clone();
            assert_eq!(refusal(spec), None, "{doc}");
        }
    }
}

fn yaml_to_json(doc: &str) -> Value {
    let v: yaml_serde::Value = yaml_serde::from_str(doc).unwrap();
    serde_json::to_value(v).unwrap()
}

#[test]
fn the_schema_bounds_are_the_documented_limits() {
    use vigil_operator::crd::{MAX_AUDIT_RULES, MAX_INLINE_RULE_BYTES, MAX_INLINE_RULES};
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(
        spec["audit"]["properties"]["rules"]["maxItems"],
        json!(MAX_AUDIT_RULES)
    );
    let rules = &spec["detections"]["properties"]["rules"];
    assert_eq!(rules["maxItems"], json!(MAX_INLINE_RULES));
    assert_eq!(rules["items"]["maxLength"], json!(MAX_INLINE_RULE_BYTES));
}

#[test]
fn resource_thresholds_out_of_range_are_refused_with_the_reason() {
    let ok = json!({"resources": {
        "enabled": true, "memoryLimitRatio": 1, "cpuSaturationRatio": 0.95,
        "cpuThrottledRatio": 0.25, "sustainSeconds": 60, "egressSpikeFactor": 50,
        "egressMinBytesPerSecond": 0, "connectionsSpikeFactor": 1.5, "connectionsMin": 100,
        "baselineHalfLifeSeconds": 600, "baselineWarmupSeconds": 0, "repeatSeconds": 900,
    }});
    assert_eq!(refusal(ok), None);
    for (resources, says) in [
        (json!({"memoryLimitRatio": 0}), "at most 1"),
        (json!({"memoryLimitRatio": 1.5}), "at most 1"),
        (json!({"cpuSaturationRatio": -0.1}), "at most 1"),
        (json!({"cpuThrottledRatio": 2}), "at most 1"),
        (json!({"egressSpikeFactor": 1}), "must be above 1"),
        (json!({"connectionsSpikeFactor": 0.5}), "must be above 1"),
        (json!({"sustainSeconds": 0}), "sustainSeconds"),
        (json!({"repeatSeconds": 0}), "repeatSeconds"),
        (
            json!({"baselineHalfLifeSeconds": 0}),
            "baselineHalfLifeSeconds",
        ),
        (json!({"egressMinBytesPerSecond": -1}), "0 or more"),
    ] {
        let err = refusal(json!({ "resources": resources }))
            .unwrap_or_else(|| panic!("{resources} was accepted"));
        assert!(err.contains(says), "{resources}: {err}");
    }
}
