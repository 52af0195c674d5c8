//! The event made of an exec, and the source's settings.

use super::*;
use procfs::{Stat, Status};

const ID: &str = "efad774bfc327a44c12212fb88fb1fd44913747471b27479d97b126b592991dd";
const NOW: &str = "2026-11-23T10:00:00.000000000Z";

fn info(pid: u32, args: &[&str], nspid: &[u32], cgroup: &str) -> ProcInfo {
    ProcInfo {
        pid,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        exe: Some("/bin/busybox".into()),
        cwd: Some("/".into()),
        status: Status {
            name: Some("sh".into()),
            ppid: Some(100),
            uid: Some((0, 0)),
            gid: Some((1, 2)),
            nspid: nspid.to_vec(),
            malformed: 0,
        },
        cgroup: Some(cgroup.to_owned()),
        stat: Some(Stat {
            comm: "sh".into(),
            start_ticks: 5,
            tty_nr: 34816,
        }),
        missing: 0,
    }
}

fn parent(name: &str) -> Option<(u32, ParentInfo)> {
    Some((
        100,
        ParentInfo {
            name: Some(name.into()),
            exe: Some(format!("/usr/bin/{name}")),
            args: vec![name.into(), "exec".into()],
        },
    ))
}

fn event(info: ProcInfo, parent: Option<(u32, ParentInfo)>) -> Event {
    let cgroup = info.cgroup.clone().unwrap_or_default();
    let container =
        cgroup_path::container_of(&cgroup, &ProcessConfig::default().containerd_namespaces).0;
    exec_event(
        Observed {
            timestamp_ns: 42,
            info,
            parent,
            container,
        },
        "boot",
        NOW,
        4096,
    )
}

#[test]
fn an_exec_by_the_runtime_into_a_docker_container() {
    let e = event(
        info(200, &["sh"], &[200, 7], &format!("0::/docker/{ID}\n")),
        parent("runc"),
    );
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["source"], "process");
    assert_eq!(v["kind"], "process");
    assert_eq!(v["action"], "exec");
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["container"]["id"], ID);
    assert_eq!(v["container"]["runtime"], "docker");
    let p = &v["process"];
    assert_eq!(p["command_line"], "sh");
    assert_eq!(
        (p["pid"].as_u64(), p["ppid"].as_u64()),
        (Some(200), Some(100))
    );
    assert_eq!(p["name"], "sh");
    assert_eq!(p["exe"], "/bin/busybox");
    assert_eq!((p["uid"].as_u64(), p["egid"].as_u64()), (Some(0), Some(2)));
    assert_eq!(p["tty"], true);
    assert_eq!(p["parent"]["name"], "runc");
    assert_eq!(p["parent"]["command_line"], "runc exec");
    assert_eq!(p["parent_is_runtime"], true);
    assert_eq!(p["in_container"], true);
    assert!(p.get("container_init").is_none(), "absent when false: {p}");
    let schema = vigil_core::event::json_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(validator.is_valid(&v), "{v}");
    let back: Event = serde_json::from_value(v).unwrap();
    assert_eq!(back, e);
}

#[test]
fn a_shell_started_by_the_containers_own_process() {
    let e = event(
        info(
            300,
            &["/bin/sh", "-c", "id"],
            &[300, 9],
            &format!("0::/docker/{ID}\n"),
        ),
        parent("httpd"),
    );
    let p = e.process.unwrap();
    assert_eq!(p.parent_is_runtime, Some(false));
    assert_eq!(p.in_container, Some(true));
}

#[test]
fn the_containers_first_process_is_marked() {
    let e = event(
        info(400, &["sh", "-c", "sleep 9"], &[400, 1], "0::/k8s.io/web\n"),
        parent("containerd-shim"),
    );
    let p = e.process.unwrap();
    assert!(p.container_init);
    assert_eq!(p.parent_is_runtime, Some(true));
    let c = e.container.unwrap();
    assert_eq!(
        (c.id.as_deref(), c.runtime.as_deref()),
        (Some("web"), Some("containerd"))
    );
}

#[test]
fn a_node_process_is_labelled_as_not_in_a_container() {
    let e = event(
        info(
            500,
            &["apt-get", "update"],
            &[500],
            "0::/system.slice/cron.service\n",
        ),
        parent("cron"),
    );
    assert!(e.container.is_none());
    let p = e.process.unwrap();
    assert_eq!(p.in_container, Some(false));
    assert_eq!(
        p.parent_is_runtime, None,
        "a runtime parent means nothing outside containers"
    );
}

#[test]
fn a_process_in_its_own_pid_namespace_with_an_unknown_cgroup_is_in_a_container() {
    let e = event(
        info(600, &["sh"], &[600, 3], "0::/sandbox/abc\n"),
        parent("bwrap"),
    );
    assert!(e.container.is_none());
    assert_eq!(e.process.unwrap().in_container, Some(true));
}

#[test]
fn a_process_gone_before_reading_gives_what_was_read_and_no_guess() {
    let mut i = info(700, &[], &[], "");
    i.cgroup = None;
    i.exe = None;
    i.stat = None;
    i.missing = 4;
    let e = event(i, None);
    let p = e.process.unwrap();
    assert_eq!(p.command_line, None);
    assert_eq!(p.in_container, None, "unknown, not false");
    assert_eq!(p.name.as_deref(), Some("sh"));
}

#[test]
fn event_ids_differ_per_exec_and_are_stable() {
    let a = event(info(1, &["a"], &[1], "0::/\n"), None);
    let b = event(info(2, &["a"], &[2], "0::/\n"), None);
    assert_ne!(a.id, b.id);
    assert_eq!(a.id, event(info(1, &["b"], &[1], "0::/\n"), None).id);
}

#[test]
fn runtime_names() {
    for n in [
        "runc",
        "runc:[2:INIT]",
        "containerd-shim",
        "crun",
        "conmon",
        "docker-containe",
    ] {
        assert!(is_runtime_name(n), "{n}");
    }
    for n in ["sh", "httpd", "containerd", "dockerd", "java", ""] {
        assert!(!is_runtime_name(n), "{n}");
    }
}

#[test]
fn config_defaults_typos_and_bad_values() {
    let c = crate::config::AgentConfig::parse("sources:\n  process: {}\n").unwrap();
    assert_eq!(c.sources.process, Some(ProcessConfig::default()));
    assert_eq!(ProcessConfig::default().mode, ProcessMode::Auto);
    assert!(ProcessConfig::default().host_processes);
    let off = crate::config::AgentConfig::parse("{}").unwrap();
    assert_eq!(off.sources.process, None, "off unless the block is present");
    let err =
        crate::config::AgentConfig::parse("sources:\n  process:\n    mod: scan\n").unwrap_err();
    assert!(err.contains("mod"), "{err}");
    let err =
        crate::config::AgentConfig::parse("sources:\n  process:\n    mode: ebpf\n").unwrap_err();
    assert!(err.contains("ebpf"), "{err}");
    let err = crate::config::AgentConfig::parse("sources:\n  process:\n    scan_interval_ms: 1\n")
        .unwrap_err();
    assert!(err.starts_with("sources.process.scan_interval_ms"), "{err}");
    let err = crate::config::AgentConfig::parse("sources:\n  process:\n    queue_events: 0\n")
        .unwrap_err();
    assert!(err.starts_with("sources.process.queue_events"), "{err}");
}

#[test]
fn metrics_render_every_family() {
    let m = ProcessMetrics::default();
    m.kernel_event("exec");
    m.skip("host");
    m.malformed("cgroup", 2);
    m.overruns.fetch_add(1, Relaxed);
    let mut s = String::new();
    m.render(&mut s);
    for line in [
        "vigil_process_kernel_events_total{kind=\"exec\"} 1",
        "vigil_process_skipped_total{reason=\"host\"} 1",
        "vigil_process_malformed_total{kind=\"cgroup\"} 2",
        "vigil_process_connector_overruns_total 1",
        "vigil_process_mode 0",
    ] {
        assert!(s.contains(line), "{line} in\n{s}");
    }
}
