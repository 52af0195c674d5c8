//! Why rsigma-eval: both maintained Sigma engines on the same rules and the same events.
//!
//! `cargo bench -p vigil-core --bench engine_choice`
//!
//! The rules are SigmaHQ-shaped Kubernetes audit rules on raw fields (the only kind
//! sigma-rust can run: it has no processing pipelines for pseudo-fields such as `hostPath`,
//! and no array quantifiers). Each engine parses the line its own way (sigma-rust into its
//! own event tree; Vigil into the DOM, normalized) and evaluates every rule.

use std::hint::black_box;
use std::time::Duration;

use vigil_core::audit::synth::{SynthConfig, generate};
use vigil_core::audit::{AuditParser, StageFilter};

mod support;
use support::{best, parse_into};
use vigil_core::detect::RuleSet;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RULES: [&str; 8] = [
    "detection:\n  sel:\n    verb: create\n    objectRef.resource: pods\n    objectRef.subresource: exec\n  condition: sel\n",
    "detection:\n  sel:\n    requestURI|contains:\n      - 'command=%2Fbin%2Fsh'\n      - 'command=%2Fbin%2Fbash'\n      - 'command=sh'\n  condition: sel\n",
    "detection:\n  sel:\n    userAgent|contains:\n      - access_matrix\n      - trufflehog\n      - azurehound\n  condition: sel\n",
    "detection:\n  sel:\n    responseStatus.code:\n      - 401\n      - 403\n  condition: sel\n",
    "detection:\n  sel:\n    objectRef.resource: clusterrolebindings\n    verb: create\n  condition: sel\n",
    "detection:\n  sel:\n    objectRef.resource: secrets\n    verb: list\n  filter:\n    user.username|startswith: 'system:'\n  condition: sel and not filter\n",
    "detection:\n  sel:\n    objectRef.namespace: kube-system\n    objectRef.resource: pods\n    verb: create\n  condition: sel\n",
    "detection:\n  sel:\n    objectRef.resource:\n      - mutatingwebhookconfigurations\n      - validatingwebhookconfigurations\n    verb:\n      - create\n      - update\n      - patch\n      - delete\n  condition: sel\n",
];

fn rule_yaml(i: usize, detection: &str) -> String {
    format!(
        "title: rule {i}\nid: 00000000-0000-0000-0000-{i:012}\nlogsource:\n  product: kubernetes\n  service: audit\n{detection}level: medium\n"
    )
}

fn main() {
    let input = generate(
        SynthConfig {
            seed: 42,
            attack_ratio: 0.05,
        },
        16_000_000,
    );
    let lines: Vec<&str> = std::str::from_utf8(&input)
        .expect("generated lines are UTF-8")
        .lines()
        .filter(|l| !l.is_empty())
        .collect();

    let docs: Vec<(String, String)> = RULES
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("r{i}"), rule_yaml(i, d)))
        .collect();
    let rsigma = RuleSet::from_documents(&docs).expect("rules load in rsigma");
    let sigma_rust: Vec<sigma_rust::Rule> = docs
        .iter()
        .map(|(_, y)| sigma_rust::rule_from_yaml(y).expect("rules load in sigma-rust"))
        .collect();
    let parser = AuditParser::default();

    let (t_vigil, hits_vigil) = best(3, || {
        let mut hits = 0;
        let mut stages = StageFilter::new();
        let mut records = Vec::new();
        for l in &lines {
            records.clear();
            parse_into(&parser, l.as_bytes(), &mut records);
            for r in &records {
                hits += rsigma.detect_audit(r, &mut stages).len();
            }
        }
        hits
    });
    let (t_sr, hits_sr) = best(3, || {
        let mut hits = 0;
        for l in &lines {
            let Ok(event) = sigma_rust::event_from_json(l) else {
                continue;
            };
            hits += sigma_rust.iter().filter(|r| r.is_match(&event)).count();
            black_box(&event);
        }
        hits
    });
    let rate = |t: Duration| lines.len() as f64 / t.as_secs_f64();
    println!(
        "{} events, {} SigmaHQ-shaped rules, each engine with its own parse:",
        lines.len(),
        RULES.len()
    );
    println!(
        "  vigil (rsigma-eval 0.15, gate index): {:>9.0} events/s, {hits_vigil} matches",
        rate(t_vigil)
    );
    println!(
        "  sigma-rust 0.7:                       {:>9.0} events/s, {hits_sr} matches",
        rate(t_sr)
    );
}
