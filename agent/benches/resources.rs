//! The cost of resource-usage collection: the agent's CPU time for 200 containers.
//!
//! ```sh
//! cargo bench -p vigil-agent --bench resources                 # 200 synthetic containers
//! tests/engines.sh start && cargo bench -p vigil-agent --bench resources -- --real
//! ```
//!
//! Synthetic (default): 200 containers laid out as on a node (`/proc/<pid>/cgroup`,
//! `net/dev`, `net/sockstat`, `ns/net`, and the cgroup files of each, with
//! the kernel's full `memory.stat`), for cgroup v1 and v2. One collection reads every file,
//! computes the rates and judges the signals; then each sample becomes an event, runs
//! through the built-in rules and is serialized as the outputs would. The figure is the
//! thread's CPU time (`/proc/thread-self/schedstat`, nanoseconds, so other load on the
//! machine does not inflate it), per collection; at a 10 s interval the agent spends a
//! tenth of it per second.
//!
//! Real (`--real`): 200 busybox containers started with `ctr` on the private containerd, the
//! release `vigil-agent run` with only the resources source (10 s interval, null output)
//! following them; its CPU time (`utime + stime` of `/proc/<pid>/stat`) over 60 s after a
//! warm-up, and its resident memory. This includes what the synthetic run leaves out: the
//! containerd listing every interval, the kernel generating the cgroup and `/proc` files,
//! and the agent's own idle work.

#![allow(clippy::unwrap_used)] // a benchmark program: a failed unwrap is a failed run

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_agent::sources::resources::cgroup::Layout;
use vigil_agent::sources::resources::collect::{
    Collected, Collector, CollectorConfig, synthetic_node,
};
use vigil_agent::sources::resources::sample_event;
use vigil_agent::sources::resources::signals::ThresholdTable;
use vigil_core::detect::RuleSet;

const CONTAINERS: usize = 200;

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn synthetic() {
    let rules = RuleSet::builtin().unwrap();
    for layout in [Layout::V1, Layout::V2] {
        let dir = tempfile::tempdir().unwrap();
        let containers = synthetic_node(dir.path(), CONTAINERS, layout).unwrap();
        let mut c = Collector::new(
            CollectorConfig {
                proc_root: dir.path().join("proc"),
                cgroup_root: dir.path().join("cgroup"),
                count_connections: true,
            },
            ThresholdTable::default(),
        );
        // The first collection also locates every cgroup; later ones only read.
        let t0 = thread_cpu_ns();
        let Collected { sampled: s, .. } = c.collect(&containers);
        let first = thread_cpu_ns() - t0;
        assert_eq!(s.len(), CONTAINERS);

        let rounds = 200u32;
        let (mut collect_ns, mut events_ns, mut bytes) = (0u64, 0u64, 0usize);
        for round in 0..rounds {
            let t0 = thread_cpu_ns();
            let Collected { sampled, .. } = c.collect(&containers);
            let t1 = thread_cpu_ns();
            for s in sampled {
                let mut e = sample_event(s, "2026-01-01T00:00:00.000000000Z", u64::from(round));
                e.detections = rules.detect(&e, None);
                bytes += serde_json::to_vec(&e).unwrap().len();
            }
            let t2 = thread_cpu_ns();
            collect_ns += t1 - t0;
            events_ns += t2 - t1;
        }
        let per = |ns: u64| ns as f64 / f64::from(rounds) / 1e6;
        let total = per(collect_ns + events_ns);
        println!(
            "{} x {CONTAINERS} synthetic containers: first collection {:.2} ms; then per collection: read + judge {:.2} ms, events + rules + JSON {:.2} ms ({} bytes/event), total {:.2} ms = {:.1} µs per container; at a 10 s interval {:.3}% of one core",
            layout.name(),
            first as f64 / 1e6,
            per(collect_ns),
            per(events_ns),
            bytes / (rounds as usize * CONTAINERS),
            total,
            total * 1000.0 / CONTAINERS as f64,
            total / 10_000.0 * 100.0,
        );
    }
}

fn ctr(sock: &str, args: &[&str]) -> bool {
    Command::new("ctr")
        .args(["-a", sock, "-n", "k8s.io"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `utime + stime` of a process, in seconds, and its resident memory in KiB.
fn proc_cpu_and_rss(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from `state` (field 3) here; clock ticks of
    // 1/100 s, the USER_HZ of every Linux architecture vigil runs on.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks as f64 / 100.0, rss)
}

struct Cleanup<'a>(&'a str, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for id in &self.1 {
            ctr(self.0, &["tasks", "kill", "-s", "KILL", id]);
        }
        std::thread::sleep(Duration::from_secs(1));
        for id in &self.1 {
            ctr(self.0, &["tasks", "rm", "-f", id]);
            ctr(self.0, &["containers", "rm", id]);
        }
    }
}

fn real() {
    let sock = std::env::var("VIGIL_TEST_CONTAINERD_SOCK")
        .unwrap_or_else(|_| "/tmp/vigil-engines/containerd/containerd.sock".into());
    let image = std::env::var("VIGIL_TEST_CONTAINERD_IMAGE")
        .unwrap_or_else(|_| "docker.io/vigil-test/busybox:latest".into());
    assert!(
        Path::new(&sock).exists(),
        "no containerd at {sock}: run `tests/engines.sh start` first (as root)"
    );
    let snapshotter = std::fs::read_to_string(Path::new(&sock).with_file_name("snapshotter"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "overlayfs".into());
    let mut cleanup = Cleanup(&sock, Vec::new());
    let started = Instant::now();
    for i in 0..CONTAINERS {
        let id = format!("vigil-bench-{}-{i}", std::process::id());
        let ok = ctr(
            &sock,
            &[
                "run",
                "-d",
                "--snapshotter",
                &snapshotter,
                "--label",
                "io.kubernetes.pod.namespace=vigil-bench",
                "--label",
                &format!("io.kubernetes.pod.name=pod-{i}"),
                "--label",
                "io.kubernetes.container.name=app",
                &image,
                &id,
                "sleep",
                "3600",
            ],
        );
        assert!(ok, "ctr run {id} failed");
        cleanup.1.push(id);
    }
    println!(
        "started {CONTAINERS} containers in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            "state_dir: {}\nsources:\n  audit_log: {{enabled: false}}\n  resources:\n    interval_ms: 10000\n    docker: false\n    containerd_address: {sock}\noutputs:\n  - type: null\n",
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id();
    // Two collections first: the first one reads every container record and locates
    // every cgroup.
    std::thread::sleep(Duration::from_secs(25));
    let (cpu0, _) = proc_cpu_and_rss(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let (cpu1, rss) = proc_cpu_and_rss(pid);
    let wall = t0.elapsed().as_secs_f64();
    let _ = agent.kill();
    let _ = agent.wait();
    println!(
        "vigil-agent, {CONTAINERS} containerd containers, 10 s interval: {:.2} s of CPU in {wall:.0} s = {:.2}% of one core ({:.0} ms per collection); resident {:.1} MiB",
        cpu1 - cpu0,
        (cpu1 - cpu0) / wall * 100.0,
        (cpu1 - cpu0) / (wall / 10.0) * 1000.0,
        rss as f64 / 1024.0
    );
}

fn main() {
    if std::env::args().any(|a| a == "--real") {
        real();
    } else {
        synthetic();
    }
}
