//! The configuration the agent reads, on arbitrary text: its own YAML file as
//! `vigil-agent check-config` loads and validates it, the per-namespace documents the operator
//! publishes (`Tuning::from_documents`, inline Sigma rules included), and user rule files.
//!
//! Invariants, besides never panicking:
//! - what `check-config` prints for a valid file parses back to the same configuration;
//! - a namespace document written back as YAML reads as the same document (the operator
//!   writes what the agents read);
//! - a tuning in force never lets a disabled rule through and gives relevelled rules their
//!   namespace's level.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use vigil_agent::config::AgentConfig;
use vigil_core::detect::RuleSet;
use vigil_core::event::{Detection, Event, Source};
use vigil_core::tuning::{NAMESPACE_CONFIG_SCHEMA, NamespaceConfig, Tuning, TuningCounters};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    agent_config(text);
    namespace_documents(text);
    let _ = RuleSet::from_documents(&[("fuzz.yml".to_owned(), text.to_owned())]);
});

fn agent_config(text: &str) {
    let Ok(config) = AgentConfig::parse(text) else {
        return;
    };
    let printed = yaml_serde::to_string(&config).expect("a configuration serializes");
    match AgentConfig::parse(&printed) {
        Ok(again) => assert_eq!(again, config, "check-config printed:\n{printed}"),
        Err(e) => panic!("what check-config printed does not load ({e}):\n{printed}"),
    }
}

fn namespace_documents(text: &str) {
    // The document iterator yields its error again and again after a syntax error: stop at
    // the first document that does not read, as the agent does.
    let mut docs = Vec::new();
    for de in yaml_serde::Deserializer::from_str(text) {
        match NamespaceConfig::deserialize(de) {
            Ok(doc) if doc.schema == NAMESPACE_CONFIG_SCHEMA => docs.push(doc),
            _ => break,
        }
    }
    for doc in &docs {
        let written = yaml_serde::to_string(doc).expect("a document serializes");
        let read: NamespaceConfig = yaml_serde::from_str(&written)
            .unwrap_or_else(|e| panic!("a written document does not read ({e}):\n{written}"));
        assert_eq!(&read, doc, "written as:\n{written}");
    }

    let Ok(tuning) = Tuning::from_documents(&[("fuzz.yaml".to_owned(), text.to_owned())]) else {
        return;
    };
    let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    let counters = TuningCounters::default();
    for doc in docs.iter().take(4) {
        let ns = doc.namespace.as_str();
        let _ = tuning.runtime_selected(ns, None);
        let _ = tuning.runtime_selected(ns, Some(&labels));
        let _ = tuning.logs_selected(ns, Some(&labels), "web");
        let _ = tuning.logs_selected(ns, None, "sidecar");

        let d = &doc.detections;
        let names: Vec<&String> = d
            .disabled
            .iter()
            .chain(d.levels.keys())
            .chain(d.exceptions.iter().map(|e| &e.rule))
            .take(16)
            .collect();
        let detections = names.iter().map(|rule| detection(rule)).collect();
        let mut event = Event {
            source: Source::K8sAudit,
            action: "create".into(),
            ..Event::default()
        };
        event.object.namespace = Some(ns.to_owned());
        event.actor.user = Some("system:serviceaccount:fuzz:runner".into());
        let tuned = tuning.tune(&event, None, detections, &counters);
        for t in &tuned {
            assert!(
                !d.disabled.contains(&t.rule),
                "{} fired while disabled",
                t.rule
            );
            if let Some(&level) = d.levels.get(&t.rule) {
                assert_eq!(t.level, level, "{} kept its level", t.rule);
            }
        }
    }
}

fn detection(rule: &str) -> Detection {
    Detection {
        rule: rule.to_owned(),
        id: None,
        title: rule.to_owned(),
        level: 5,
        severity: Default::default(),
        mitre: Vec::new(),
        tags: Vec::new(),
    }
}
