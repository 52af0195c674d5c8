//! Rule tests: events that must fire a rule and look-alikes that must not.
//!
//! A rule directory keeps its tests in `tests/*.yml`, one file per rule:
//!
//! ```yaml
//! rule: container.privileged          # the rule's name
//! fire:
//!   - name: privileged Deployment      # what the case shows
//!     audit: { kind: Event, verb: create, ... }   # a Kubernetes audit event (any envelope)
//! no_fire:
//!   - name: unprivileged Deployment
//!     audit: { ... }
//!   - name: a docker event, normalized
//!     event: { source: docker, kind: runtime, action: start, workload: {privileged: false} }
//! ```
//!
//! `audit` cases go through the real audit parser, so a test exercises normalization too;
//! `docker` cases go through the Docker normalizer: `engine` is the engine's event as
//! `GET /events` sends it, `inspect` and `exec_inspect` (optional) what `docker inspect` of
//! the container and of the exec returns, merged in as the Docker source does;
//! `event` cases are normalized events (missing `id`/`time` are filled in) for sources whose
//! parsers live elsewhere.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::RuleSet;
use crate::audit::{AuditParser, Position};
use crate::event::Event;

/// One rule test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestFile {
    /// The rule under test.
    pub rule: String,
    /// Cases that must fire it.
    #[serde(default)]
    pub fire: Vec<TestCase>,
    /// Cases that must not.
    #[serde(default)]
    pub no_fire: Vec<TestCase>,
}

/// One test event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// What the case shows.
    pub name: String,
    /// A Kubernetes audit event, or any envelope the audit parser accepts.
    #[serde(default)]
    pub audit: Option<Value>,
    /// A normalized event.
    #[serde(default)]
    pub event: Option<Value>,
    /// A Docker engine event, with the inspect output the Docker source would add.
    #[serde(default)]
    pub docker: Option<DockerCase>,
}

/// A Docker engine event and what inspect adds to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerCase {
    /// The event as the engine sends it.
    pub engine: Value,
    /// `GET /containers/{id}/json`.
    #[serde(default)]
    pub inspect: Option<Value>,
    /// `GET /exec/{id}/json`.
    #[serde(default)]
    pub exec_inspect: Option<Value>,
}

/// The result of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// The test file.
    pub file: PathBuf,
    /// The rule.
    pub rule: String,
    /// The case name.
    pub case: String,
    /// Whether the rule had to fire.
    pub expect_fire: bool,
    /// `None` when it passed, else what went wrong.
    pub failure: Option<String>,
}

/// What a test run found.
#[derive(Debug, Default)]
pub struct TestReport {
    /// Every case, in file order.
    pub cases: Vec<CaseResult>,
    /// Rules of the set without a test file.
    pub untested_rules: Vec<String>,
    /// Files that could not be read or parsed, with why.
    pub broken_files: Vec<(PathBuf, String)>,
}

impl TestReport {
    /// Failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseResult> {
        self.cases.iter().filter(|c| c.failure.is_some())
    }

    /// True when every case passed and every file could be read.
    pub fn passed(&self) -> bool {
        self.failures().next().is_none() && self.broken_files.is_empty()
    }
}

/// Runs every test file of `tests_dir` against `rules`.
pub fn run_dir(rules: &RuleSet, tests_dir: &Path) -> TestReport {
    let mut report = TestReport::default();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(tests_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
            .collect(),
        Err(e) => {
            report
                .broken_files
                .push((tests_dir.to_path_buf(), e.to_string()));
            return report;
        }
    };
    files.sort();
    let mut tested = std::collections::HashSet::new();
    for file in files {
        let parsed = std::fs::read_to_string(&file)
            .map_err(|e| e.to_string())
            .and_then(|t| yaml_serde::from_str::<RuleTestFile>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(tf) => {
                tested.insert(tf.rule.clone());
                run_file(rules, &file, tf, &mut report);
            }
            Err(e) => report.broken_files.push((file, e)),
        }
    }
    report.untested_rules = rules
        .rules()
        .iter()
        .map(|r| r.name.clone())
        .filter(|n| !tested.contains(n))
        .collect();
    report
}

fn run_file(rules: &RuleSet, file: &Path, tf: RuleTestFile, report: &mut TestReport) {
    if !rules.rules().iter().any(|r| r.name == tf.rule) {
        report.broken_files.push((
            file.to_path_buf(),
            format!("no rule named `{}` is loaded", tf.rule),
        ));
        return;
    }
    let cases = tf
        .fire
        .into_iter()
        .map(|c| (true, c))
        .chain(tf.no_fire.into_iter().map(|c| (false, c)));
    for (expect_fire, case) in cases {
        let failure = match fired(rules, &case, &tf.rule) {
            Err(e) => Some(e),
            Ok((true, _)) if expect_fire => None,
            Ok((false, _)) if !expect_fire => None,
            Ok((_, others)) if expect_fire => {
                Some(format!("did not fire (fired instead: {others:?})"))
            }
            Ok(_) => Some("fired on a case that must not fire it".to_owned()),
        };
        report.cases.push(CaseResult {
            file: file.to_path_buf(),
            rule: tf.rule.clone(),
            case: case.name,
            expect_fire,
            failure,
        });
    }
}

/// Whether `rule` fired on the case, and every rule that fired.
fn fired(rules: &RuleSet, case: &TestCase, rule: &str) -> Result<(bool, Vec<String>), String> {
    let names = match (&case.audit, &case.event, &case.docker) {
        (None, None, Some(docker)) => docker_case(rules, docker)?,
        (Some(audit), None, None) => {
            let line = serde_json::to_vec(audit).map_err(|e| e.to_string())?;
            let parser = AuditParser::default();
            let mut records = Vec::new();
            parser
                .parse_line(
                    &line,
                    Position {
                        origin: "test",
                        offset: 0,
                    },
                    "2024-01-01T00:00:00.000000000Z",
                    &mut records,
                )
                .map_err(|e| format!("the audit event does not parse: {e}"))?;
            let mut names = Vec::new();
            for r in &records {
                names.extend(
                    rules
                        .detect_audit(r, &mut crate::audit::StageFilter::new())
                        .into_iter()
                        .map(|d| d.rule),
                );
            }
            names
        }
        (None, Some(partial), None) => {
            let event = complete_event(partial.clone())?;
            rules
                .detect(&event, None)
                .into_iter()
                .map(|d| d.rule)
                .collect()
        }
        _ => return Err("a case needs exactly one of `audit`, `docker` or `event`".into()),
    };
    Ok((names.iter().any(|n| n == rule), names))
}

fn docker_case(rules: &RuleSet, case: &DockerCase) -> Result<Vec<String>, String> {
    use crate::runtime::{ContainerFacts, DockerParser, Enrichment, ExecFacts};
    let line = serde_json::to_vec(&case.engine).map_err(|e| e.to_string())?;
    let mut parsed = DockerParser::default()
        .parse(&line, "2024-01-01T00:00:00.000000000Z")
        .map_err(|e| format!("the engine event does not parse: {e}"))?;
    let enrichment = Enrichment {
        container: case
            .inspect
            .clone()
            .map(ContainerFacts::from_inspect)
            .transpose()
            .map_err(|e| format!("`inspect`: {e}"))?,
        exec: case
            .exec_inspect
            .clone()
            .map(ExecFacts::from_inspect)
            .transpose()
            .map_err(|e| format!("`exec_inspect`: {e}"))?,
    };
    parsed.enrich(&enrichment);
    Ok(rules
        .detect(&parsed.event, None)
        .into_iter()
        .map(|d| d.rule)
        .collect())
}

fn complete_event(mut partial: Value) -> Result<Event, String> {
    let obj = partial.as_object_mut().ok_or("`event` must be a mapping")?;
    for (k, v) in [
        ("schema", "vigil.event/v1"),
        ("id", "0"),
        ("time", "2024-01-01T00:00:00.000000000Z"),
        ("ingest_time", "2024-01-01T00:00:00.000000000Z"),
        ("outcome", "success"),
    ] {
        obj.entry(k).or_insert_with(|| Value::String(v.into()));
    }
    serde_json::from_value(partial).map_err(|e| format!("`event` is not a normalized event: {e}"))
}
