//! The process source against the real kernel and the private dockerd
//! (`tests/engines.sh start`): the `vigil-agent` binary with only a `process` source follows
//! every exec of the machine through the kernel's process connector while the test
//!
//! - starts a busybox container whose entrypoint writes a CGI script and runs
//!   `busybox httpd` (the container's first process),
//! - opens a shell in it with `docker exec -i ... sh` (a shell started by the runtime),
//! - asks httpd for the CGI script through `docker exec ... busybox wget`, so the container's own
//!   process starts `/bin/sh run` in `/www/cgi-bin` (a shell started by the application: what a
//!   web shell looks like),
//! - runs a script that reads the service-account token path,
//! - runs a marked shell on the machine itself, outside any container.
//!
//! The events must carry the process facts, the container's id and the parent, and the
//! `process.*` detections must fire on the right events only; the host's process must be
//! labelled as not in a container. A second test runs the `/proc` scan fallback and checks
//! that it sees a long process and counts the short ones it cannot see.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;
use vigil_testkit::process::AgentProcess;

use crate::agent::{TestAgent, rules};

/// An agent with only the process source.
struct Harness(TestAgent);

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl Harness {
    /// `process_block` is the source's settings, indented by four spaces.
    fn new(process_block: &str) -> Harness {
        Harness(TestAgent::with_sources(&format!(
            "  process:\n{process_block}"
        )))
    }

    /// Waits until the source runs in `mode` (1 connector, 2 scan), failing if the agent
    /// exits (as it does with `mode: connector` where the connector cannot be used).
    fn wait_mode(&self, agent: &mut AgentProcess, mode: f64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = agent.0.try_wait().unwrap() {
                panic!(
                    "the agent exited ({status}) before following processes: the process \
                     connector needs root (CAP_NET_ADMIN) in the host's network namespace"
                );
            }
            if self.metric("vigil_process_mode ") == Some(mode) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the process source did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for an event that `pred` accepts.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                return e;
            }
            if Instant::now() > deadline {
                let cmds: Vec<String> = self
                    .events()
                    .iter()
                    .filter(|e| e["process"]["in_container"] == true)
                    .map(|e| {
                        format!(
                            "{} <- {}",
                            e["process"]["command_line"], e["process"]["parent"]
                        )
                    })
                    .collect();
                panic!(
                    "no event for {what}; container execs seen:\n{}",
                    cmds.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs the docker CLI with `stdin` fed to the command.
fn docker_with_input(engine: &DockerEngine, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", &engine.host)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Removed<'a>(&'a DockerEngine, String);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = self.0.try_docker(&["rm", "-f", &self.1]);
    }
}

/// The entrypoint: a CGI script that stays a second (so its process is still there when the
/// agent reads `/proc`), then busybox's web server in the foreground.
const ENTRYPOINT: &str = "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep 1\\necho cgi-ran\\n' > /www/cgi-bin/run && chmod +x /www/cgi-bin/run && exec /bin/busybox httpd -f -p 127.0.0.1:8080 -h /www";

#[test]
fn process_events_tell_exec_shells_from_app_shells_and_host_processes() {
    let engine = DockerEngine::find();
    let h = Harness::new("    mode: connector\n");
    let mut agent = h.start();
    h.wait_mode(&mut agent, 1.0);

    let nonce = format!("{:x}", std::process::id());
    let name = format!("vigil-proc-{nonce}");
    let id = engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        &engine.image,
        "sh",
        "-c",
        ENTRYPOINT,
    ]);
    let _cleanup = Removed(&engine, name.clone());

    // A shell opened from outside, commands piped in as `kubectl exec -i` does.
    docker_with_input(&engine, &["exec", "-i", &name, "sh"], "sleep 1\nexit\n");
    // The web server runs the CGI script: a shell started by the container's own process.
    let page = engine.docker(&[
        "exec",
        &name,
        "busybox",
        "wget",
        "-qO-",
        "http://127.0.0.1:8080/cgi-bin/run",
    ]);
    assert!(page.contains("cgi-ran"), "{page}");
    // A script that reads the service-account token path.
    engine.docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        // The sleep comes first: busybox sh exec's its last command in place, and a
        // script that became `sleep` before /proc was read would show `sleep`'s command line.
        "sleep 1; cat /var/run/secrets/kubernetes.io/serviceaccount/token 2>/dev/null; :",
    ]);
    // A process of the machine itself.
    let marker = format!("vigil-host-marker-{nonce}");
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("sleep 1; : {marker}")])
        .status()
        .unwrap();
    assert!(status.success());

    let in_it = |e: &Value| e["container"]["id"] == id.as_str();

    // The entrypoint: the container's first process, started by the runtime. (Its
    // `sh -c` exec's httpd within milliseconds, so its first event may already show httpd:
    // /proc is read after the kernel reports the exec.)
    let init = h.wait_for("the entrypoint", |e| {
        in_it(e) && e["process"]["container_init"] == true
    });
    assert_eq!(init["process"]["parent_is_runtime"], true, "{init}");
    assert_eq!(
        init["process"]["pid"],
        init["process"]["pid"].as_u64().unwrap(),
        "{init}"
    );
    assert_eq!(init["container"]["runtime"], "docker");
    assert!(rules(&init).iter().all(|r| !r.contains("shell")), "{init}");

    // docker exec -i sh.
    let exec = h.wait_for("the exec'd shell", |e| {
        in_it(e) && e["process"]["command_line"] == "sh"
    });
    let p = &exec["process"];
    assert_eq!(exec["source"], "process");
    assert_eq!(exec["kind"], "process");
    assert_eq!(exec["action"], "exec");
    assert_eq!(p["parent_is_runtime"], true, "{exec}");
    assert_eq!(p["in_container"], true);
    assert!(p.get("container_init").is_none(), "{exec}");
    assert_eq!(p["exe"], "/bin/busybox");
    assert_eq!(p["uid"], 0);
    assert!(
        p["pid"].as_u64().unwrap() > 1 && p["ppid"] == p["parent"]["pid"],
        "{exec}"
    );
    let parent = p["parent"]["name"].as_str().unwrap();
    assert!(
        parent.starts_with("runc") || parent == "containerd-shim",
        "{exec}"
    );
    let fired = rules(&exec);
    assert!(
        fired.contains(&"process.container-shell".to_owned()),
        "{exec}"
    );
    assert!(!fired.contains(&"process.app-shell".to_owned()), "{exec}");

    // httpd running the CGI script.
    let cgi = h.wait_for("the CGI shell", |e| {
        in_it(e) && e["process"]["command_line"] == "/bin/sh run"
    });
    let p = &cgi["process"];
    assert_eq!(p["parent_is_runtime"], false, "{cgi}");
    assert!(
        p["parent"]["command_line"]
            .as_str()
            .unwrap()
            .contains("httpd"),
        "{cgi}"
    );
    assert_eq!(p["cwd"], "/www/cgi-bin", "{cgi}");
    let fired = rules(&cgi);
    assert!(fired.contains(&"process.app-shell".to_owned()), "{cgi}");
    assert!(
        !fired.contains(&"process.container-shell".to_owned()),
        "{cgi}"
    );

    let token = h.wait_for("the token reader", |e| {
        in_it(e)
            && e["process"]["command_line"]
                .as_str()
                .is_some_and(|c| c.starts_with("sh -c sleep 1; cat /var/run/secrets"))
    });
    assert!(
        rules(&token).contains(&"process.service-account-token".to_owned()),
        "{token}"
    );
    assert!(
        !rules(&token).iter().any(|r| r.ends_with("shell")),
        "sh -c is a script: {token}"
    );

    // The machine's own process: labelled as such, with no container.
    let host = h.wait_for("the host's marked shell", |e| {
        e["process"]["command_line"]
            .as_str()
            .is_some_and(|c| c.contains(&marker))
    });
    assert_eq!(host["process"]["in_container"], false, "{host}");
    assert!(host.get("container").is_none(), "{host}");
    assert!(host["process"].get("parent_is_runtime").is_none(), "{host}");
    assert!(rules(&host).is_empty(), "{host}");

    // No host process was given this container, and every event fits the schema.
    let schema = vigil_core::event::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for e in h.events() {
        assert!(validator.is_valid(&e), "{e}");
        if e["process"]["in_container"] == false {
            assert!(e.get("container").is_none(), "{e}");
        }
    }
    assert!(
        h.metric("vigil_process_kernel_events_total{kind=\"exec\"}")
            .unwrap()
            >= 5.0
    );
    assert!(
        h.metric("vigil_process_kernel_events_total{kind=\"fork\"}")
            .unwrap()
            >= 5.0
    );
    assert!(
        h.metric("vigil_detections_total{rule=\"process.app-shell\"}")
            .unwrap()
            >= 1.0
    );
    agent.terminate();
}

#[test]
fn process_scan_fallback_sees_long_processes_and_counts_what_it_misses() {
    let engine = DockerEngine::find();
    let h = Harness::new("    mode: scan\n    scan_interval_ms: 200\n");
    let mut agent = h.start();
    h.wait_mode(&mut agent, 2.0);

    let name = format!("vigil-proc-scan-{:x}", std::process::id());
    let id = engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        &engine.image,
        "sh",
        "-c",
        "sleep 60",
    ]);
    let _cleanup = Removed(&engine, name.clone());
    engine.docker(&["exec", &name, "sh", "-c", "sleep 2; : long-enough"]);
    let seen = h.wait_for("the long exec", |e| {
        e["container"]["id"] == id.as_str()
            && e["process"]["command_line"] == "sh -c sleep 2; : long-enough"
    });
    assert_eq!(seen["process"]["parent_is_runtime"], true, "{seen}");

    // Two hundred processes of a few milliseconds each: far shorter than the interval.
    let before = h.metric("vigil_process_scan_missed_total ").unwrap();
    let status = Command::new("/bin/sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(600));
    let missed = h.metric("vigil_process_scan_missed_total ").unwrap() - before;
    assert!(missed >= 150.0, "the blind spot is counted: {missed}");
    assert!(h.metric("vigil_process_scans_total ").unwrap() > 0.0);
    agent.terminate();
}
