//! ContainerMonitors read from multi-document YAML, as GitOps repositories hold them.
//!
//! Documents of other kinds (Deployments, Namespaces ...) are skipped, so a whole manifest
//! directory can be passed. A document that claims to be a ContainerMonitor and does not fit
//! the schema is an error with its file, line and field, because rendering without it would
//! silently drop a namespace's settings.

use kube::Resource;

use crate::crd::ContainerMonitor;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A document is not YAML.
    #[error("{origin}:{line}: not valid YAML: {message}")]
    Yaml {
        /// The file.
        origin: String,
        /// First line of the document.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A ContainerMonitor that does not fit the schema.
    #[error("{origin}:{line}: invalid ContainerMonitor: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// First line of the document.
        line: usize,
        /// What is wrong, with the field path.
        message: String,
    },
}

/// The ContainerMonitors of one YAML text, in document order. Monitors without a namespace
/// get `default_namespace`, as `kubectl apply -n` would give them.
pub fn parse(
    text: &str,
    origin: &str,
    default_namespace: &str,
) -> Result<Vec<ContainerMonitor>, ManifestError> {
    let mut out = Vec::new();
    for (line, doc) in documents(text) {
        let value: yaml_serde::Value =
            yaml_serde::from_str(doc).map_err(|e| ManifestError::Yaml {
                origin: origin.to_owned(),
                line,
                message: e.to_string(),
            })?;
        if value.is_null() || !is_container_monitor(&value) {
            continue;
        }
        // Parsed again from the text, not from `value`, so errors carry a line and column.
        let mut monitor: ContainerMonitor =
            yaml_serde::from_str(doc).map_err(|e| ManifestError::Invalid {
                origin: origin.to_owned(),
                line,
                message: e.to_string(),
            })?;
        if monitor.metadata.name.as_deref().is_none_or(str::is_empty) {
            return Err(ManifestError::Invalid {
                origin: origin.to_owned(),
                line,
                message: "metadata.name is missing".into(),
            });
        }
        if monitor.metadata.namespace.is_none() {
            monitor.metadata.namespace = Some(default_namespace.to_owned());
        }
        out.push(monitor);
    }
    Ok(out)
}

fn is_container_monitor(value: &yaml_serde::Value) -> bool {
    let field = |k: &str| value.get(k).and_then(yaml_serde::Value::as_str);
    let api_version = ContainerMonitor::api_version(&());
    let kind = ContainerMonitor::kind(&());
    field("kind") == Some(kind.as_ref()) && field("apiVersion") == Some(api_version.as_ref())
}

/// The documents of a YAML stream with the line each starts on. A document marker is `---`
/// at the start of a line (optionally followed by a space and content) or `...`; inside a
/// block scalar such a line would end the scalar anyway, so splitting on it is what a YAML
/// parser does.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = bare == "---" || bare.starts_with("--- ") || bare == "...";
        if marker {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i + 2;
            if bare.starts_with("--- ") {
                // `--- key: value` starts a document on the marker line itself.
                start = offset + 4;
                start_line = i + 1;
            }
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out.retain(|(_, d)| !d.trim().is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_kinds_are_skipped_and_namespaces_defaulted() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: m}\nspec: {}\n---\n---\napiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: n, namespace: team}\nspec:\n  runtime: {enabled: false}\n";
        let monitors = parse(text, "x.yaml", "default").unwrap();
        let names: Vec<_> = monitors
            .iter()
            .map(|m| {
                (
                    m.metadata.namespace.clone().unwrap(),
                    m.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("default".into(), "m".into()), ("team".into(), "n".into())]
        );
        assert!(!monitors[1].spec.runtime.enabled);
    }

    #[test]
    fn a_bad_monitor_names_its_file_line_and_field() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: m}\nspec:\n  audit:\n    level: Everything\n";
        let err = parse(text, "team.yaml", "default").unwrap_err().to_string();
        assert!(err.starts_with("team.yaml:5:"), "{err}");
        assert!(
            err.contains("audit.level") || err.contains("Everything"),
            "{err}"
        );
        let err = parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: m}\nspec:\n  detections:\n    levels: {container.exec: 16}\n",
            "l.yaml",
            "default",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("0 to 15"), "{err}");
        let err = parse(
            "apiVersion: vigil.dev/v1alpha1\nkind: ContainerMonitor\nmetadata: {name: m}\nspec:\n  audti: {}\n",
            "t.yaml",
            "default",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("audti"), "{err}");
    }

    #[test]
    fn a_document_starting_on_its_marker_line_is_read() {
        let docs = documents("a: 1\n--- b: 2\n...\n---\nc: 3\n");
        let texts: Vec<&str> = docs.iter().map(|(_, d)| d.trim()).collect();
        assert_eq!(texts, ["a: 1", "b: 2", "c: 3"]);
        assert_eq!(docs.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 2, 5]);
    }
}
