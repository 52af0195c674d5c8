//! Hardening checks: the Docker daemon's configuration and every running container, judged
//! against a CIS Docker Benchmark subset ([`checks`]), at start and on a schedule
//! ([`schedule`]).
//!
//! Each run sends one `vigil.event/v1` per check and target (`source: hardening`,
//! `kind: posture`, `action: check`, facts in `posture`; the container's in `container`).
//! The result of the previous run on the same target is kept in
//! `<state_dir>/hardening-state.json` (so an agent restart does not forget it), and an
//! event whose check passed last time and fails now is marked `posture.regressed`: the
//! `posture.regression` rule fires on it. A container seen for the first time has no
//! previous result, so its failures are reported but do not count as regressions.
//!
//! A run that cannot reach the engine sends nothing and is counted; the previous results
//! stay, so the next run compares against them.

pub mod checks;
pub mod schedule;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use vigil_core::detect::RuleSet;
use vigil_core::event::{CheckStatus, Container, Event, Kind, Outcome, Posture, Source};
use vigil_core::pipeline::{Ack, Batch, Router, RouterError};

use crate::metrics::Metrics;
use checks::{CONTAINER_CHECKS, Check, DAEMON_CHECKS, DaemonFacts, Verdict};
use schedule::{Schedule, ScheduleConfig};

/// The hardening source's settings (`sources.hardening`). The source runs when this block
/// is present and `disabled` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HardeningConfig {
    /// Turn the source off while keeping its settings.
    #[serde(default)]
    pub disabled: bool,
    /// The engine's API, as `sources.docker.endpoint`. Default: that setting when the
    /// Docker source is configured, else `$DOCKER_HOST`, else the default sockets.
    #[serde(default)]
    pub docker_endpoint: Option<String>,
    /// The daemon's configuration file, as the agent sees it (`/host/etc/docker/daemon.json`
    /// in a pod with the node's `/etc/docker` mounted). A missing file means every
    /// default applies; an unreadable or invalid one makes the checks that need it
    /// `unknown`. Default `/etc/docker/daemon.json`.
    #[serde(default = "default_daemon_json")]
    pub daemon_json: PathBuf,
    /// The node's process table, to read dockerd's command line (settings may be flags
    /// rather than file entries; the pod needs `hostPID: true`). Default `/proc`.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    /// When checks run after the first run.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Run once as soon as the agent starts. Default true.
    #[serde(default = "default_true")]
    pub run_on_start: bool,
    /// Send an event for checks that pass too (the full posture at every run). With
    /// `false` only failures and unknowns are sent. Default true.
    #[serde(default = "default_true")]
    pub report_passing: bool,
    /// Check ids not to run (`vigil-hard-2.10` on nodes without AppArmor, say).
    #[serde(default)]
    pub skip_checks: Vec<String>,
    /// Time allowed for one engine API call, in milliseconds. Default 5000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for HardeningConfig {
    fn default() -> Self {
        HardeningConfig {
            disabled: false,
            docker_endpoint: None,
            daemon_json: default_daemon_json(),
            proc_root: default_proc_root(),
            schedule: ScheduleConfig::default(),
            run_on_start: true,
            report_passing: true,
            skip_checks: Vec::new(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_daemon_json() -> PathBuf {
    PathBuf::from("/etc/docker/daemon.json")
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_timeout_ms() -> u64 {
    5000
}

/// Largest daemon.json read; a larger file is judged unreadable (the real one is a few
/// hundred bytes).
const MAX_DAEMON_JSON_BYTES: u64 = 1 << 20;

impl HardeningConfig {
    /// The first invalid field, with its path.
    pub fn validate(&self) -> Result<(), String> {
        Schedule::parse(&self.schedule).map_err(|e| format!("sources.hardening.schedule.{e}"))?;
        if self.timeout_ms == 0 {
            return Err("sources.hardening.timeout_ms: must be at least 1".into());
        }
        let known = |id: &String| {
            DAEMON_CHECKS
                .iter()
                .chain(CONTAINER_CHECKS.iter())
                .any(|c| c.id == id)
        };
        if let Some(bad) = self.skip_checks.iter().find(|id| !known(id)) {
            return Err(format!("sources.hardening.skip_checks: no check {bad:?}"));
        }
        Ok(())
    }
}

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    /// The outputs stopped.
    #[error("hardening: {0}")]
    Router(#[from] RouterError),
}

/// The source's figures.
#[derive(Debug, Default)]
pub struct HardeningMetrics {
    /// Runs completed.
    pub runs: AtomicU64,
    /// Runs that could not reach the engine.
    pub run_errors: AtomicU64,
    /// Checks that failed in the last run.
    pub failing: AtomicU64,
    /// Checks that could not be judged in the last run.
    pub unknown: AtomicU64,
    /// Checks that turned from pass to fail, in all.
    pub regressions: AtomicU64,
    /// State file writes that failed.
    pub state_errors: AtomicU64,
}

impl HardeningMetrics {
    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        for (name, kind, help, v) in [
            (
                "vigil_hardening_runs_total",
                "counter",
                "Hardening runs completed.",
                &self.runs,
            ),
            (
                "vigil_hardening_run_errors_total",
                "counter",
                "Hardening runs that could not reach the engine.",
                &self.run_errors,
            ),
            (
                "vigil_hardening_failing_checks",
                "gauge",
                "Checks (per target) failing in the last run.",
                &self.failing,
            ),
            (
                "vigil_hardening_unknown_checks",
                "gauge",
                "Checks (per target) that could not be judged in the last run.",
                &self.unknown,
            ),
            (
                "vigil_hardening_regressions_total",
                "counter",
                "Checks that turned from pass to fail.",
                &self.regressions,
            ),
            (
                "vigil_hardening_state_errors_total",
                "counter",
                "Writes of the hardening state file that failed.",
                &self.state_errors,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// The previous results, by `target|check`, as written to the state file.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    version: u32,
    results: BTreeMap<String, CheckStatus>,
}

/// One check's result on one target.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The check.
    pub check: Check,
    /// The container, or `None` for the daemon.
    pub container: Option<Container>,
    /// The state key of the target: `daemon` or the container id.
    pub target: String,
    /// The result.
    pub verdict: Verdict,
}

/// The running source.
pub struct HardeningSource {
    cfg: HardeningConfig,
    schedule: Schedule,
    endpoint: Option<String>,
    state_path: PathBuf,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    cluster: Option<String>,
    node: Option<String>,
}

impl HardeningSource {
    /// A source with `cfg` (validated); `docker_endpoint` is the Docker source's, used when
    /// this block names none.
    #[allow(clippy::too_many_arguments)] // the same context every source takes
    pub fn new(
        cfg: &HardeningConfig,
        docker_endpoint: Option<String>,
        state_dir: &Path,
        cluster: Option<String>,
        node: Option<String>,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Self {
        // Validated at load; a default schedule is the fallback that cannot fail.
        let schedule = Schedule::parse(&cfg.schedule).unwrap_or_else(|_| Schedule::daily());
        HardeningSource {
            cfg: cfg.clone(),
            schedule,
            endpoint: cfg.docker_endpoint.clone().or(docker_endpoint),
            state_path: state_dir.join("hardening-state.json"),
            rules,
            metrics,
            only_detections,
            cluster,
            node,
        }
    }

    /// Runs at start (unless turned off) and on the schedule until `stop` turns true.
    pub async fn run(
        self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), HardeningError> {
        if self.cfg.run_on_start {
            self.run_once(&router).await?;
        }
        let mut previous = None;
        loop {
            let now = time::OffsetDateTime::now_utc();
            let next = self.schedule.next(now, previous);
            previous = Some(next);
            let wait = Duration::try_from(next - now).unwrap_or(Duration::ZERO);
            tracing::debug!(next = %vigil_core::timestamp::format_nanos(next), "hardening: next run");
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                    continue;
                }
                _ = tokio::time::sleep(wait) => {}
            }
            self.run_once(&router).await?;
        }
    }

    /// One run: facts, checks, events.
    pub async fn run_once(&self, router: &Router) -> Result<(), HardeningError> {
        let m = &self.metrics.hardening;
        let (findings, uninspected) = match self.collect().await {
            Ok(f) => f,
            Err(e) => {
                m.run_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "hardening: cannot reach the Docker engine; no checks this run");
                return Ok(());
            }
        };
        let mut state = self.load_state();
        let mut next = BTreeMap::new();
        let now = time::OffsetDateTime::now_utc();
        let time = vigil_core::timestamp::format_nanos(now);
        let position = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0);
        let (mut failing, mut unknown) = (0, 0);
        let mut events = Vec::new();
        for f in findings {
            let key = format!("{}|{}", f.target, f.check.id);
            let previous = state.results.remove(&key);
            // An unknown result keeps the last known one, so that pass, unknown, fail is
            // still a regression.
            let kept = match f.verdict.status {
                CheckStatus::Unknown => previous.unwrap_or(CheckStatus::Unknown),
                status => status,
            };
            next.insert(key.clone(), kept);
            match f.verdict.status {
                CheckStatus::Fail => failing += 1,
                CheckStatus::Unknown => unknown += 1,
                CheckStatus::Pass => {}
            }
            let regressed =
                previous == Some(CheckStatus::Pass) && f.verdict.status == CheckStatus::Fail;
            if regressed {
                m.regressions.fetch_add(1, Relaxed);
            }
            if f.verdict.status == CheckStatus::Pass && !self.cfg.report_passing && !regressed {
                continue;
            }
            let mut event = posture_event(&f, previous, regressed, &time, position, &key);
            event.cluster.clone_from(&self.cluster);
            event.node.clone_from(&self.node);
            let detections = self.rules.detect(&event, None);
            if !detections.is_empty() {
                self.metrics.events_with_detections.fetch_add(1, Relaxed);
                for d in &detections {
                    self.metrics.detection(&d.rule);
                }
            } else if self.only_detections {
                continue;
            }
            event.detections = detections;
            events.push(event);
        }
        // Containers that are gone take their results with them: a new container reusing
        // nothing of theirs starts without history. One that is there but did not answer
        // its inspect in time keeps them.
        for (key, status) in state.results {
            if key
                .split_once('|')
                .is_some_and(|(target, _)| uninspected.iter().any(|id| id == target))
            {
                next.insert(key, status);
            }
        }
        self.save_state(State {
            version: 1,
            results: next,
        });
        m.failing.store(failing, Relaxed);
        m.unknown.store(unknown, Relaxed);
        m.runs.fetch_add(1, Relaxed);
        tracing::info!(
            events = events.len(),
            failing,
            unknown,
            "hardening: run complete"
        );
        for chunk in events.chunks(512) {
            router
                .send(Batch::new(chunk.to_vec(), Ack::detached()))
                .await?;
        }
        Ok(())
    }

    fn load_state(&self) -> State {
        match std::fs::read(&self.state_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.state_path.display(), error = %e, "hardening: state file unreadable; starting without history");
                State::default()
            }),
            Err(_) => State::default(),
        }
    }

    /// Written to a temporary file and renamed, so a crash leaves the old state or the new.
    fn save_state(&self, state: State) {
        let tmp = self.state_path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.state_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let bytes = serde_json::to_vec(&state).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &self.state_path)
        };
        if let Err(e) = write() {
            self.metrics.hardening.state_errors.fetch_add(1, Relaxed);
            tracing::warn!(path = %self.state_path.display(), error = %e, "hardening: cannot write the state file");
        }
    }

    /// The findings of this run, and the containers listed whose inspect timed out (judged
    /// next time).
    async fn collect(&self) -> Result<(Vec<Finding>, Vec<String>), String> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms.max(1));
        let client = crate::sources::runtimes::connect_docker(self.endpoint.as_deref(), timeout)
            .await
            .map_err(|e| e.to_string())?;
        let late = |what: &str| format!("{what} timed out");
        let info = tokio::time::timeout(timeout, client.info())
            .await
            .map_err(|_| late("info"))?
            .map_err(|e| e.to_string())?;
        let info = serde_json::to_value(info).unwrap_or(Value::Null);
        let bridge = match tokio::time::timeout(
            timeout,
            client.inspect_network(
                "bridge",
                None::<bollard::query_parameters::InspectNetworkOptions>,
            ),
        )
        .await
        {
            Err(_) => Err(late("network inspect")),
            Ok(Ok(n)) => Ok(serde_json::to_value(n).ok()),
            Ok(Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(None),
            Ok(Err(e)) => Err(e.to_string()),
        };
        let facts = DaemonFacts {
            info,
            bridge,
            daemon_json: read_daemon_json(&self.cfg.daemon_json),
            cmdline: dockerd_cmdline(&self.cfg.proc_root, self.endpoint.as_deref()),
        };
        let skip = |c: &Check| self.cfg.skip_checks.iter().any(|s| s == c.id);
        let mut out: Vec<Finding> = DAEMON_CHECKS
            .iter()
            .filter(|c| !skip(c))
            .map(|c| Finding {
                check: *c,
                container: None,
                target: "daemon".into(),
                verdict: checks::daemon_check(c.id, &facts),
            })
            .collect();
        let listed = tokio::time::timeout(timeout, client.list_containers(None))
            .await
            .map_err(|_| late("listing containers"))?
            .map_err(|e| e.to_string())?;
        let mut uninspected = Vec::new();
        for summary in listed {
            let Some(id) = summary.id else { continue };
            let inspect =
                match tokio::time::timeout(timeout, client.inspect_container(&id, None)).await {
                    Ok(Ok(inspect)) => inspect,
                    Err(_) => {
                        uninspected.push(id);
                        continue;
                    }
                    // Gone since the listing: nothing to judge.
                    Ok(Err(_)) => continue,
                };
            let v = serde_json::to_value(inspect).unwrap_or(Value::Null);
            let container = container_of(&id, &v);
            for c in CONTAINER_CHECKS.iter().filter(|c| !skip(c)) {
                out.push(Finding {
                    check: *c,
                    container: Some(container.clone()),
                    target: id.clone(),
                    verdict: checks::container_check(c.id, &v),
                });
            }
        }
        Ok((out, uninspected))
    }
}

fn container_of(id: &str, v: &Value) -> Container {
    let labels: BTreeMap<String, String> = v
        .pointer("/Config/Labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    crate::sources::drift::discover::container(
        id,
        "docker",
        v.get("Name")
            .and_then(Value::as_str)
            .map(|n| n.trim_start_matches('/').to_owned()),
        v.pointer("/Config/Image")
            .and_then(Value::as_str)
            .map(str::to_owned),
        &labels,
    )
}

/// The daemon's configuration file: `Ok(None)` when absent.
pub fn read_daemon_json(path: &Path) -> Result<Option<Value>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("daemon.json ({}) unreadable: {e}", path.display())),
    };
    let mut text = Vec::new();
    use std::io::Read as _;
    file.take(MAX_DAEMON_JSON_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("daemon.json ({}) unreadable: {e}", path.display()))?;
    if text.len() as u64 > MAX_DAEMON_JSON_BYTES {
        return Err(format!(
            "daemon.json ({}) is larger than 1 MiB",
            path.display()
        ));
    }
    checks::parse_daemon_json(&text).map(Some)
}

/// dockerd's arguments: the dockerd process serving `endpoint` when several run (its
/// socket path on the command line), else the only one.
pub fn dockerd_cmdline(proc_root: &Path, endpoint: Option<&str>) -> Option<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(proc_root).ok()?.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        if comm.trim() != "dockerd" {
            continue;
        }
        // A daemon in a child PID namespace (Docker in Docker) is not the node's.
        let nested = std::fs::read_to_string(entry.path().join("status"))
            .ok()
            .and_then(|st| {
                st.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .map(|ids| ids.split_whitespace().count() > 1)
            })
            .unwrap_or(false);
        if nested {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        found.push(args);
        if found.len() > 64 {
            break;
        }
    }
    let socket = endpoint.map(|e| e.trim_start_matches("unix://").to_owned());
    if let Some(s) = socket.filter(|s| !s.is_empty())
        && let Some(i) = found.iter().position(|a| a.iter().any(|x| x.contains(&s)))
    {
        return Some(found.swap_remove(i));
    }
    if found.len() == 1 { found.pop() } else { None }
}

/// The event of one check's result.
pub fn posture_event(
    f: &Finding,
    previous: Option<CheckStatus>,
    regressed: bool,
    time: &str,
    position: u64,
    key: &str,
) -> Event {
    Event {
        id: vigil_core::event::event_id(Source::Hardening, key, position, 0),
        time: time.to_owned(),
        ingest_time: time.to_owned(),
        source: Source::Hardening,
        kind: Kind::Posture,
        action: "check".into(),
        outcome: match f.verdict.status {
            CheckStatus::Pass => Outcome::Success,
            CheckStatus::Fail => Outcome::Failure,
            CheckStatus::Unknown => Outcome::Unknown,
        },
        container: f.container.clone(),
        posture: Some(Posture {
            check: f.check.id.into(),
            title: f.check.title.into(),
            target: if f.container.is_some() {
                "container"
            } else {
                "daemon"
            }
            .into(),
            status: f.verdict.status,
            previous_status: previous,
            regressed,
            reason: f.verdict.reason.clone(),
            benchmark: Some(f.check.benchmark.into()),
        }),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let c = crate::config::AgentConfig::parse("sources:\n  hardening: {}\n").unwrap();
        assert_eq!(c.sources.hardening, Some(HardeningConfig::default()));
        let err = crate::config::AgentConfig::parse(
            "sources:\n  hardening:\n    schedule: {time: '3pm'}\n",
        )
        .unwrap_err();
        assert!(err.starts_with("sources.hardening.schedule.time"), "{err}");
        let err = crate::config::AgentConfig::parse(
            "sources:\n  hardening:\n    skip_checks: [vigil-hard-9.9]\n",
        )
        .unwrap_err();
        assert!(err.starts_with("sources.hardening.skip_checks"), "{err}");
    }

    #[test]
    fn daemon_json_on_disk_hostile_and_absent() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read_daemon_json(&t.path().join("none")), Ok(None));
        let p = t.path().join("daemon.json");
        std::fs::write(&p, b"{\"icc\": false").unwrap();
        assert!(read_daemon_json(&p).unwrap_err().contains("not valid JSON"));
        std::fs::write(&p, vec![b' '; 2 << 20]).unwrap();
        assert!(read_daemon_json(&p).unwrap_err().contains("larger"));
        // A directory where the file should be.
        assert!(read_daemon_json(t.path()).is_err());
        std::fs::write(&p, b"{\"live-restore\": true}").unwrap();
        assert!(read_daemon_json(&p).unwrap().is_some());
    }

    #[test]
    fn dockerd_is_found_by_its_socket() {
        let t = tempfile::tempdir().unwrap();
        for (pid, comm, cmd) in [
            ("10", "dockerd\n", "dockerd\0-H\0unix:///a.sock\0"),
            ("11", "dockerd\n", "dockerd\0-H\0unix:///b.sock\0"),
            ("12", "sh\n", "sh\0"),
            ("self", "dockerd\n", "x\0"),
        ] {
            let d = t.path().join(pid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("comm"), comm).unwrap();
            std::fs::write(d.join("cmdline"), cmd).unwrap();
        }
        let got = dockerd_cmdline(t.path(), Some("unix:///b.sock")).unwrap();
        assert_eq!(got[2], "unix:///b.sock");
        // Two candidates and no way to choose: none rather than the wrong one.
        assert_eq!(dockerd_cmdline(t.path(), None), None);
        // A daemon in a container (Docker in Docker) is not the node's: with it out of the
        // way, the node's daemon is the only one.
        std::fs::write(t.path().join("10/status"), "Name:\tdockerd\nNSpid:\t10\n").unwrap();
        std::fs::write(
            t.path().join("11/status"),
            "Name:\tdockerd\nNSpid:\t11\t7\n",
        )
        .unwrap();
        let got = dockerd_cmdline(t.path(), None).unwrap();
        assert_eq!(got[2], "unix:///a.sock");
    }

    #[test]
    fn posture_events_are_valid_and_mark_regressions() {
        let f = Finding {
            check: CONTAINER_CHECKS[1],
            container: Some(Container {
                id: Some("c1".into()),
                ..Container::default()
            }),
            target: "c1".into(),
            verdict: checks::container_check("vigil-hard-2.2", &serde_json::json!({})),
        };
        let e = posture_event(
            &f,
            Some(CheckStatus::Pass),
            true,
            "2026-01-01T00:00:00.000000000Z",
            1,
            "c1|x",
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["posture"]["status"], "fail");
        assert_eq!(v["posture"]["previous_status"], "pass");
        assert_eq!(v["posture"]["regressed"], true);
        assert_eq!(v["posture"]["target"], "container");
        let schema = vigil_core::event::json_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&v), "{v}");
    }
}
