//! The checks: a subset of the CIS Docker Benchmark, judged from what the engine reports.
//!
//! Daemon checks (`vigil-hard-1.x`) read Docker's `info`, the default bridge network, the
//! daemon's configuration file (`/etc/docker/daemon.json`) and dockerd's command line (a
//! setting may be in either). Container checks (`vigil-hard-2.x`) read each running
//! container's `inspect`. Each check is a pure function of those documents, so the tests
//! feed it documents as the engine writes them, hostile ones included.
//!
//! Benchmark numbers follow the CIS Docker Benchmark v1.2.0; later versions renumber some.

use serde_json::Value;
use vigil_core::event::CheckStatus;

/// A check's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Stable id.
    pub id: &'static str,
    /// What compliance means.
    pub title: &'static str,
    /// The benchmark recommendation.
    pub benchmark: &'static str,
}

/// A check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Pass, fail, or unknown.
    pub status: CheckStatus,
    /// Why (for a failure or an unknown).
    pub reason: Option<String>,
}

fn pass() -> Verdict {
    Verdict {
        status: CheckStatus::Pass,
        reason: None,
    }
}
fn pass_because(why: impl Into<String>) -> Verdict {
    Verdict {
        status: CheckStatus::Pass,
        reason: Some(why.into()),
    }
}
fn fail(why: impl Into<String>) -> Verdict {
    Verdict {
        status: CheckStatus::Fail,
        reason: Some(why.into()),
    }
}
fn unknown(why: impl Into<String>) -> Verdict {
    Verdict {
        status: CheckStatus::Unknown,
        reason: Some(why.into()),
    }
}
fn judge(ok: bool, why: impl Into<String>) -> Verdict {
    if ok { pass() } else { fail(why) }
}

/// The daemon checks.
pub const DAEMON_CHECKS: [Check; 10] = [
    Check {
        id: "vigil-hard-1.1",
        title: "Traffic between containers on the default bridge is restricted (icc off)",
        benchmark: "CIS Docker Benchmark v1.2.0 2.1",
    },
    Check {
        id: "vigil-hard-1.2",
        title: "The daemon listens on TCP only with TLS client verification",
        benchmark: "CIS Docker Benchmark v1.2.0 2.6",
    },
    Check {
        id: "vigil-hard-1.3",
        title: "Live restore is enabled",
        benchmark: "CIS Docker Benchmark v1.2.0 2.13",
    },
    Check {
        id: "vigil-hard-1.4",
        title: "User namespace remapping is enabled",
        benchmark: "CIS Docker Benchmark v1.2.0 2.8",
    },
    Check {
        id: "vigil-hard-1.5",
        title: "Container logs are kept and bounded (log driver not none; json-file with max-size)",
        benchmark: "CIS Docker Benchmark v1.2.0 2.12",
    },
    Check {
        id: "vigil-hard-1.6",
        title: "Default ulimits are configured",
        benchmark: "CIS Docker Benchmark v1.2.0 2.7",
    },
    Check {
        id: "vigil-hard-1.7",
        title: "Containers cannot gain new privileges by default (no-new-privileges)",
        benchmark: "CIS Docker Benchmark v1.2.0 2.17",
    },
    Check {
        id: "vigil-hard-1.8",
        title: "The userland proxy is disabled",
        benchmark: "CIS Docker Benchmark v1.2.0 2.14",
    },
    Check {
        id: "vigil-hard-1.9",
        title: "No insecure registries beyond the loopback defaults",
        benchmark: "CIS Docker Benchmark v1.2.0 2.4",
    },
    Check {
        id: "vigil-hard-1.10",
        title: "Experimental features are off",
        benchmark: "CIS Docker Benchmark v1.2.0 2.16",
    },
];

/// The container checks.
pub const CONTAINER_CHECKS: [Check; 14] = [
    Check {
        id: "vigil-hard-2.1",
        title: "The container is not privileged",
        benchmark: "CIS Docker Benchmark v1.2.0 5.4",
    },
    Check {
        id: "vigil-hard-2.2",
        title: "The container has a memory limit",
        benchmark: "CIS Docker Benchmark v1.2.0 5.10",
    },
    Check {
        id: "vigil-hard-2.3",
        title: "The container has a CPU limit or share",
        benchmark: "CIS Docker Benchmark v1.2.0 5.11",
    },
    Check {
        id: "vigil-hard-2.4",
        title: "The container runs as a non-root user",
        benchmark: "CIS Docker Benchmark v1.2.0 4.1",
    },
    Check {
        id: "vigil-hard-2.5",
        title: "The container's root file system is read-only",
        benchmark: "CIS Docker Benchmark v1.2.0 5.12",
    },
    Check {
        id: "vigil-hard-2.6",
        title: "The host's network namespace is not shared",
        benchmark: "CIS Docker Benchmark v1.2.0 5.9",
    },
    Check {
        id: "vigil-hard-2.7",
        title: "The host's PID namespace is not shared",
        benchmark: "CIS Docker Benchmark v1.2.0 5.15",
    },
    Check {
        id: "vigil-hard-2.8",
        title: "The host's IPC namespace is not shared",
        benchmark: "CIS Docker Benchmark v1.2.0 5.16",
    },
    Check {
        id: "vigil-hard-2.9",
        title: "A seccomp profile applies",
        benchmark: "CIS Docker Benchmark v1.2.0 5.21",
    },
    Check {
        id: "vigil-hard-2.10",
        title: "An AppArmor profile applies",
        benchmark: "CIS Docker Benchmark v1.2.0 5.1",
    },
    Check {
        id: "vigil-hard-2.11",
        title: "No container runtime socket is mounted",
        benchmark: "CIS Docker Benchmark v1.2.0 5.31",
    },
    Check {
        id: "vigil-hard-2.12",
        title: "The container has a health check",
        benchmark: "CIS Docker Benchmark v1.2.0 4.6 / 5.26",
    },
    Check {
        id: "vigil-hard-2.13",
        title: "The container has a PIDs limit",
        benchmark: "CIS Docker Benchmark v1.2.0 5.28",
    },
    Check {
        id: "vigil-hard-2.14",
        title: "The container cannot gain new privileges (no-new-privileges)",
        benchmark: "CIS Docker Benchmark v1.2.0 5.25",
    },
];

/// What the daemon checks read. Each part may be missing or broken on its own; a check
/// that needs a part that could not be read says `unknown` with the reason.
#[derive(Debug, Clone)]
pub struct DaemonFacts {
    /// `GET /info`.
    pub info: Value,
    /// `GET /networks/bridge`: `Ok(None)` when there is no default bridge.
    pub bridge: Result<Option<Value>, String>,
    /// The configuration file: `Ok(None)` when there is none (every default applies),
    /// `Err` when it cannot be read or is not a JSON object.
    pub daemon_json: Result<Option<Value>, String>,
    /// dockerd's arguments, when its process was found.
    pub cmdline: Option<Vec<String>>,
}

/// Parses a daemon.json text: an object, or the reason it is not one.
pub fn parse_daemon_json(text: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("daemon.json is not a JSON object".into()),
        Err(e) => Err(format!("daemon.json is not valid JSON: {e}")),
    }
}

/// A setting found in the file, on the command line, or nowhere.
enum Setting {
    /// Set to this value (as text; `true` for a bare flag).
    Set(String),
    /// Not set in either place.
    Unset,
    /// Not on the command line, and the file could not be read.
    Unknowable(String),
}

impl DaemonFacts {
    /// All values of a command-line option (`--opt v`, `--opt=v`, `-H v`, `-Hv`).
    fn flag_values(&self, long: &str, short: Option<&str>) -> Vec<String> {
        let Some(args) = &self.cmdline else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut it = args.iter().skip(1).peekable();
        while let Some(a) = it.next() {
            let names = std::iter::once(long).chain(short);
            for n in names {
                if a == n {
                    // A boolean flag has no separate value; an option takes the next word.
                    match it.peek() {
                        Some(v) if !v.starts_with('-') => {
                            out.push((*v).clone());
                        }
                        _ => out.push("true".into()),
                    }
                } else if let Some(v) = a.strip_prefix(n).and_then(|r| {
                    r.strip_prefix('=')
                        .or_else(|| (n.len() == 2 && !r.is_empty()).then_some(r))
                }) {
                    out.push(v.to_owned());
                }
            }
        }
        out
    }

    fn setting(&self, key: &str, long: &str) -> Setting {
        if let Some(v) = self.flag_values(long, None).pop() {
            return Setting::Set(v);
        }
        match &self.daemon_json {
            Ok(Some(v)) => match v.get(key) {
                Some(Value::String(s)) => Setting::Set(s.clone()),
                Some(Value::Null) | None => Setting::Unset,
                Some(other) => Setting::Set(other.to_string()),
            },
            Ok(None) => Setting::Unset,
            Err(e) => Setting::Unknowable(e.clone()),
        }
    }

    fn info_str(&self, key: &str) -> Option<&str> {
        self.info.get(key).and_then(Value::as_str)
    }

    fn security_options(&self) -> Vec<&str> {
        self.info
            .get("SecurityOptions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
}

/// Judges one daemon check.
pub fn daemon_check(id: &str, f: &DaemonFacts) -> Verdict {
    match id {
        "vigil-hard-1.1" => match &f.bridge {
            Ok(None) => pass_because("no default bridge network"),
            Ok(Some(net)) => {
                let icc = net
                    .pointer("/Options/com.docker.network.bridge.enable_icc")
                    .and_then(Value::as_str);
                judge(
                    icc == Some("false"),
                    "containers on the default bridge can reach each other (icc is on)",
                )
            }
            Err(e) => unknown(format!("default bridge not readable: {e}")),
        },
        "vigil-hard-1.2" => {
            let mut hosts = f.flag_values("--host", Some("-H"));
            let file_hosts = match &f.daemon_json {
                Ok(Some(v)) => v
                    .get("hosts")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                Ok(None) => Vec::new(),
                Err(e) if f.cmdline.is_none() => return unknown(e.clone()),
                Err(_) => Vec::new(),
            };
            hosts.extend(file_hosts);
            let tcp: Vec<&String> = hosts.iter().filter(|h| h.starts_with("tcp://")).collect();
            if tcp.is_empty() {
                // Without the command line, its -H flags are not known: no pass by default.
                return match f.cmdline {
                    Some(_) => pass(),
                    None => unknown(
                        "dockerd's command line was not found (no hostPID, or several daemons \
                         and none on the configured endpoint)",
                    ),
                };
            }
            let verify = match f.setting("tlsverify", "--tlsverify") {
                Setting::Set(v) => v == "true",
                _ => false,
            };
            judge(
                verify,
                format!(
                    "listens on {} without TLS client verification (tlsverify)",
                    tcp.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        }
        "vigil-hard-1.3" => match f.info.get("LiveRestoreEnabled").and_then(Value::as_bool) {
            Some(on) => judge(
                on,
                "live-restore is off: restarting dockerd stops every container",
            ),
            None => unknown("info does not report LiveRestoreEnabled"),
        },
        "vigil-hard-1.4" => judge(
            f.security_options()
                .iter()
                .any(|o| o.contains("name=userns")),
            "user namespace remapping is off: root in a container is root on the node",
        ),
        "vigil-hard-1.5" => {
            let Some(driver) = f.info_str("LoggingDriver") else {
                return unknown("info does not report LoggingDriver");
            };
            if driver == "none" {
                return fail("the log driver is none: container output is discarded");
            }
            if driver != "json-file" {
                return pass();
            }
            let on_cmdline = f
                .flag_values("--log-opt", None)
                .iter()
                .any(|v| v.starts_with("max-size="));
            if on_cmdline {
                return pass();
            }
            match &f.daemon_json {
                Ok(Some(v)) if v.pointer("/log-opts/max-size").is_some() => pass(),
                Err(e) => unknown(e.clone()),
                _ => fail("json-file logs without max-size grow without bound"),
            }
        }
        "vigil-hard-1.6" => {
            if !f.flag_values("--default-ulimit", None).is_empty() {
                return pass();
            }
            match &f.daemon_json {
                Ok(Some(v)) => judge(
                    v.get("default-ulimits")
                        .and_then(Value::as_object)
                        .is_some_and(|o| !o.is_empty()),
                    "no default-ulimits: containers inherit the daemon's limits",
                ),
                Ok(None) => fail("no default-ulimits: containers inherit the daemon's limits"),
                Err(e) => unknown(e.clone()),
            }
        }
        "vigil-hard-1.7" => match f.setting("no-new-privileges", "--no-new-privileges") {
            Setting::Set(v) => judge(v == "true", "no-new-privileges is not the default"),
            Setting::Unset => fail("no-new-privileges is not the default"),
            Setting::Unknowable(e) => unknown(e),
        },
        "vigil-hard-1.8" => match f.setting("userland-proxy", "--userland-proxy") {
            Setting::Set(v) => judge(v == "false", "the userland proxy is on"),
            Setting::Unset => fail("the userland proxy is on (the default)"),
            Setting::Unknowable(e) => unknown(e),
        },
        "vigil-hard-1.9" => {
            let Some(reg) = f.info.get("RegistryConfig") else {
                return unknown("info does not report RegistryConfig");
            };
            let mut insecure: Vec<String> = reg
                .get("InsecureRegistryCIDRs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter(|c| !matches!(*c, "127.0.0.0/8" | "::1/128"))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            if let Some(idx) = reg.get("IndexConfigs").and_then(Value::as_object) {
                insecure.extend(
                    idx.iter()
                        .filter(|(_, c)| c.get("Secure").and_then(Value::as_bool) == Some(false))
                        .map(|(name, _)| name.clone()),
                );
            }
            insecure.sort();
            insecure.dedup();
            judge(
                insecure.is_empty(),
                format!("insecure registries: {}", insecure.join(", ")),
            )
        }
        "vigil-hard-1.10" => judge(
            f.info.get("ExperimentalBuild").and_then(Value::as_bool) != Some(true),
            "experimental features are on",
        ),
        _ => unknown("no such check"),
    }
}

/// Runtime sockets that give whoever holds them the node.
const RUNTIME_SOCKETS: [&str; 5] = [
    "docker.sock",
    "containerd.sock",
    "crio.sock",
    "podman.sock",
    "dockershim.sock",
];

/// Judges one container check on an `inspect` document.
pub fn container_check(id: &str, c: &Value) -> Verdict {
    let hc = c.get("HostConfig").unwrap_or(&Value::Null);
    let cfg = c.get("Config").unwrap_or(&Value::Null);
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let privileged = hc.get("Privileged").and_then(Value::as_bool) == Some(true);
    let secopt: Vec<String> = hc
        .get("SecurityOpt")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let has_opt = |name: &str, value: &str| {
        secopt
            .iter()
            .any(|o| o == &format!("{name}={value}") || o == &format!("{name}:{value}"))
    };
    match id {
        "vigil-hard-2.1" => judge(
            !privileged,
            "privileged: every device and capability of the node",
        ),
        "vigil-hard-2.2" => judge(num(hc, "Memory") > 0, "no memory limit"),
        "vigil-hard-2.3" => {
            let shares = num(hc, "CpuShares");
            judge(
                num(hc, "NanoCpus") > 0
                    || num(hc, "CpuQuota") > 0
                    || (shares > 0 && shares != 1024),
                "no CPU limit or share",
            )
        }
        "vigil-hard-2.4" => {
            let user = text(cfg, "User");
            let name = user.split(':').next().unwrap_or("");
            judge(
                !(name.is_empty() || name == "0" || name == "root"),
                if user.is_empty() {
                    "runs as root (no user set)".to_owned()
                } else {
                    format!("runs as root ({user})")
                },
            )
        }
        "vigil-hard-2.5" => judge(
            hc.get("ReadonlyRootfs").and_then(Value::as_bool) == Some(true),
            "the root file system is writable",
        ),
        "vigil-hard-2.6" => judge(
            text(hc, "NetworkMode") != "host",
            "shares the host's network",
        ),
        "vigil-hard-2.7" => judge(
            text(hc, "PidMode") != "host",
            "shares the host's PID namespace",
        ),
        "vigil-hard-2.8" => judge(
            text(hc, "IpcMode") != "host",
            "shares the host's IPC namespace",
        ),
        "vigil-hard-2.9" => {
            if privileged {
                fail("privileged: no seccomp filtering")
            } else {
                judge(!has_opt("seccomp", "unconfined"), "seccomp=unconfined")
            }
        }
        "vigil-hard-2.10" => {
            let profile = text(c, "AppArmorProfile");
            if privileged || profile == "unconfined" || has_opt("apparmor", "unconfined") {
                fail("apparmor unconfined")
            } else if profile.is_empty() {
                fail("no AppArmor profile (the node has no AppArmor, or none was applied)")
            } else {
                pass()
            }
        }
        "vigil-hard-2.11" => {
            let mounted: Vec<String> = c
                .get("Mounts")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("Source").and_then(Value::as_str))
                        .filter(|s| RUNTIME_SOCKETS.iter().any(|k| s.ends_with(k)))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            judge(
                mounted.is_empty(),
                format!("runtime socket mounted: {}", mounted.join(", ")),
            )
        }
        "vigil-hard-2.12" => {
            let test: Vec<&str> = cfg
                .pointer("/Healthcheck/Test")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            judge(!test.is_empty() && test[0] != "NONE", "no health check")
        }
        "vigil-hard-2.13" => judge(num(hc, "PidsLimit") > 0, "no PIDs limit"),
        "vigil-hard-2.14" => judge(
            secopt.iter().any(|o| {
                o == "no-new-privileges"
                    || o == "no-new-privileges:true"
                    || o == "no-new-privileges=true"
            }),
            "no-new-privileges is not set",
        ),
        _ => unknown("no such check"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(v: Verdict) -> CheckStatus {
        v.status
    }

    #[test]
    fn a_bare_root_container_fails_what_it_should() {
        let c = json!({
            "AppArmorProfile": "",
            "Config": {"User": "", "Image": "busybox"},
            "HostConfig": {"Privileged": false, "Memory": 0, "NanoCpus": 0, "CpuQuota": 0, "CpuShares": 0,
                "ReadonlyRootfs": false, "NetworkMode": "default", "PidMode": "", "IpcMode": "private",
                "SecurityOpt": null, "PidsLimit": null},
            "Mounts": []
        });
        let failed: Vec<&str> = CONTAINER_CHECKS
            .iter()
            .filter(|k| container_check(k.id, &c).status == CheckStatus::Fail)
            .map(|k| k.id)
            .collect();
        assert_eq!(
            failed,
            [
                "vigil-hard-2.2",
                "vigil-hard-2.3",
                "vigil-hard-2.4",
                "vigil-hard-2.5",
                "vigil-hard-2.10",
                "vigil-hard-2.12",
                "vigil-hard-2.13",
                "vigil-hard-2.14"
            ]
        );
    }

    #[test]
    fn a_hardened_container_passes_everything() {
        let c = json!({
            "AppArmorProfile": "docker-default",
            "Config": {"User": "1000:1000", "Healthcheck": {"Test": ["CMD", "true"]}},
            "HostConfig": {"Privileged": false, "Memory": 67108864, "NanoCpus": 500000000,
                "ReadonlyRootfs": true, "NetworkMode": "bridge", "PidMode": "", "IpcMode": "private",
                "SecurityOpt": ["no-new-privileges:true"], "PidsLimit": 100},
            "Mounts": [{"Source": "/srv/data", "Destination": "/data"}]
        });
        for k in CONTAINER_CHECKS {
            assert_eq!(container_check(k.id, &c), pass(), "{}", k.id);
        }
    }

    #[test]
    fn dangerous_settings_are_named() {
        let c = json!({
            "AppArmorProfile": "unconfined",
            "Config": {"User": "root:root", "Healthcheck": {"Test": ["NONE"]}},
            "HostConfig": {"Privileged": true, "NetworkMode": "host", "PidMode": "host", "IpcMode": "host",
                "SecurityOpt": ["seccomp=unconfined"]},
            "Mounts": [{"Source": "/run/containerd/containerd.sock"}, {"Source": "/var/run/docker.sock"}]
        });
        for k in CONTAINER_CHECKS {
            assert_eq!(
                status(container_check(k.id, &c)),
                CheckStatus::Fail,
                "{}",
                k.id
            );
        }
        let v = container_check("vigil-hard-2.11", &c);
        assert!(v.reason.unwrap().contains("/var/run/docker.sock"));
    }

    #[test]
    fn hostile_inspect_documents_never_panic() {
        for c in [
            json!(null),
            json!([]),
            json!("x"),
            json!({"HostConfig": 5, "Config": [], "Mounts": {"a": 1}}),
            json!({"HostConfig": {"Memory": "lots", "SecurityOpt": [1, null]}, "Config": {"User": 0, "Healthcheck": {"Test": []}}}),
        ] {
            for k in CONTAINER_CHECKS {
                let _ = container_check(k.id, &c);
            }
        }
    }

    fn facts(
        info: Value,
        daemon_json: Result<Option<Value>, String>,
        cmdline: Option<&[&str]>,
    ) -> DaemonFacts {
        DaemonFacts {
            info,
            bridge: Ok(None),
            daemon_json,
            cmdline: cmdline.map(|c| c.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    #[test]
    fn daemon_settings_from_the_file_or_the_command_line() {
        let info = json!({"LiveRestoreEnabled": false, "LoggingDriver": "json-file", "SecurityOptions": ["name=seccomp,profile=builtin"],
            "RegistryConfig": {"InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {"docker.io": {"Secure": true}}}, "ExperimentalBuild": false});
        let f = facts(
            info.clone(),
            Ok(None),
            Some(&[
                "dockerd",
                "-H",
                "tcp://0.0.0.0:2375",
                "--userland-proxy=false",
            ]),
        );
        assert_eq!(daemon_check("vigil-hard-1.2", &f).status, CheckStatus::Fail);
        assert_eq!(daemon_check("vigil-hard-1.8", &f).status, CheckStatus::Pass);
        assert_eq!(daemon_check("vigil-hard-1.3", &f).status, CheckStatus::Fail);
        assert_eq!(daemon_check("vigil-hard-1.4", &f).status, CheckStatus::Fail);
        assert_eq!(daemon_check("vigil-hard-1.5", &f).status, CheckStatus::Fail);
        assert_eq!(daemon_check("vigil-hard-1.9", &f).status, CheckStatus::Pass);
        assert_eq!(
            daemon_check("vigil-hard-1.10", &f).status,
            CheckStatus::Pass
        );
        assert_eq!(daemon_check("vigil-hard-1.1", &f).status, CheckStatus::Pass);
        let file = json!({"hosts": ["unix:///var/run/docker.sock", "tcp://0.0.0.0:2376"], "tlsverify": true,
            "live-restore": true, "log-opts": {"max-size": "10m"}, "default-ulimits": {"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}},
            "no-new-privileges": true, "userland-proxy": false});
        let f = facts(info, Ok(Some(file)), None);
        for id in [
            "vigil-hard-1.2",
            "vigil-hard-1.5",
            "vigil-hard-1.6",
            "vigil-hard-1.7",
            "vigil-hard-1.8",
        ] {
            assert_eq!(daemon_check(id, &f).status, CheckStatus::Pass, "{id}");
        }
    }

    #[test]
    fn listening_addresses_are_unknown_without_the_command_line() {
        let file = Ok(Some(json!({"hosts": ["unix:///var/run/docker.sock"]})));
        let f = facts(json!({}), file.clone(), None);
        assert_eq!(
            daemon_check("vigil-hard-1.2", &f).status,
            CheckStatus::Unknown
        );
        let f = facts(
            json!({}),
            file,
            Some(&["dockerd", "--containerd=/run/c.sock"]),
        );
        assert_eq!(daemon_check("vigil-hard-1.2", &f).status, CheckStatus::Pass);
    }

    #[test]
    fn a_broken_daemon_json_makes_its_checks_unknown_not_passed() {
        for text in [
            &b"{not json"[..],
            b"[1,2]",
            b"",
            b"\xff\xfe garbage",
            b"null",
        ] {
            let err = parse_daemon_json(text).unwrap_err();
            let f = facts(json!({"LoggingDriver": "json-file"}), Err(err), None);
            for id in [
                "vigil-hard-1.2",
                "vigil-hard-1.5",
                "vigil-hard-1.6",
                "vigil-hard-1.7",
                "vigil-hard-1.8",
            ] {
                let v = daemon_check(id, &f);
                assert_eq!(v.status, CheckStatus::Unknown, "{id}");
                assert!(v.reason.unwrap().contains("daemon.json"), "{id}");
            }
        }
        // Wrongly typed values are judged as not set, never a panic.
        let f = facts(
            json!({"LoggingDriver": 5, "RegistryConfig": {"IndexConfigs": []}}),
            Ok(Some(
                json!({"hosts": "tcp://x", "default-ulimits": [], "log-opts": 7}),
            )),
            None,
        );
        for k in DAEMON_CHECKS {
            let _ = daemon_check(k.id, &f);
        }
    }

    #[test]
    fn icc_is_read_from_the_default_bridge() {
        let mut f = facts(json!({}), Ok(None), None);
        f.bridge = Ok(Some(
            json!({"Options": {"com.docker.network.bridge.enable_icc": "true"}}),
        ));
        assert_eq!(daemon_check("vigil-hard-1.1", &f).status, CheckStatus::Fail);
        f.bridge = Ok(Some(
            json!({"Options": {"com.docker.network.bridge.enable_icc": "false"}}),
        ));
        assert_eq!(daemon_check("vigil-hard-1.1", &f).status, CheckStatus::Pass);
        f.bridge = Err("timeout".into());
        assert_eq!(
            daemon_check("vigil-hard-1.1", &f).status,
            CheckStatus::Unknown
        );
    }
}
