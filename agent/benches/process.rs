//! The cost of the process path at a high exec rate.
//!
//! ```sh
//! cargo bench -p vigil-agent --bench process                   # both parts
//! cargo bench -p vigil-agent --bench process -- --path-only    # only the in-process part
//! ```
//!
//! Needs root (the process connector): the machine's own processes are the load.
//!
//! 1. **Path** (in process): for a live process, what the source does per exec: read
//!    `/proc/<pid>` and its parent, find the container, make the event, run every built-in
//!    rule, serialize it. The figure is the thread's CPU time per exec
//!    (`/proc/thread-self/schedstat`), so other load does not inflate it.
//! 2. **Agent** (real): the release `vigil-agent run` with only the process source
//!    (connector, null output) while this program starts `/bin/true` as fast as
//!    `EXEC_THREADS` threads can for `LOAD_SECS` seconds (thousands per second). Reported:
//!    the exec rate the kernel reported, the agent's CPU (`utime + stime` of
//!    `/proc/<pid>/stat`) as a share of one core, its resident memory idle and at the end
//!    (`VmRSS`, `VmHWM`), and what it could not follow: execs that ended before `/proc`
//!    was read (skipped as vanished, or sent partial) and kernel overruns.

#![allow(clippy::unwrap_used)] // a benchmark program: a failed unwrap is a failed run

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use vigil_agent::sources::process::{ProcessConfig, ProcessMetrics, exec_event, observe};
use vigil_core::detect::RuleSet;

const EXEC_THREADS: usize = 4;
const LOAD_SECS: u64 = 15;

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

fn path() {
    let rules = RuleSet::builtin().unwrap();
    let cfg = ProcessConfig::default();
    let m = ProcessMetrics::default();
    // A live process to read: a child shell (so it has a parent, a cgroup, a command line).
    let mut child = Command::new("/bin/sh")
        .args(["-c", "sleep 60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.id();
    let rounds = 20_000u32;
    let (mut read_ns, mut event_ns, mut bytes) = (0u64, 0u64, 0usize);
    for i in 0..rounds {
        let t0 = thread_cpu_ns();
        let o = observe(&cfg, &m, pid, u64::from(i)).unwrap();
        let t1 = thread_cpu_ns();
        let mut e = exec_event(o, "bench", "2026-01-01T00:00:00.000000000Z", 4096);
        e.detections = rules.detect(&e, None);
        bytes += serde_json::to_vec(&e).unwrap().len();
        event_ns += thread_cpu_ns() - t1;
        read_ns += t1 - t0;
    }
    let _ = child.kill();
    let _ = child.wait();
    let per = |ns: u64| ns as f64 / f64::from(rounds) / 1e3;
    let total = per(read_ns + event_ns);
    println!(
        "path: per exec: /proc read (process + parent + cgroup) {:.1} µs, event + {} rules + JSON {:.1} µs ({} bytes), total {:.1} µs = {:.0} execs/s on one core",
        per(read_ns),
        rules.rules().len(),
        per(event_ns),
        bytes / rounds as usize,
        total,
        1e6 / total,
    );
}

/// `utime + stime` of a process in seconds, `VmRSS` and `VmHWM` in KiB.
fn cpu_and_memory(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), counted from `state` (field 3); USER_HZ is 100.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (ticks as f64 / 100.0, kib("VmRSS:"), kib("VmHWM:"))
}

fn metrics(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn agent() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "node: bench\nstate_dir: {}\nsources:\n  audit_log:\n    enabled: false\n  process:\n    mode: connector\noutputs:\n  - type: null\nmetrics_listen: 127.0.0.1:{port}\n",
        dir.path().join("state").display()
    );
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, config).unwrap();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["run", "--config"])
        .arg(&path)
        .env("VIGIL_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = agent.id();
    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&metrics(port), "vigil_process_mode ") != 1.0 {
        assert!(
            agent.try_wait().unwrap().is_none(),
            "the agent stopped: the connector needs root"
        );
        assert!(
            Instant::now() < deadline,
            "the process source did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));
    let (_, idle_rss, _) = cpu_and_memory(pid);
    let before = metrics(port);
    let (cpu0, _, _) = cpu_and_memory(pid);
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..EXEC_THREADS)
        .map(|_| {
            let (stop, spawned) = (stop.clone(), spawned.clone());
            std::thread::spawn(move || {
                while !stop.load(Relaxed) {
                    let s = Command::new("/bin/true").status().unwrap();
                    assert!(s.success());
                    spawned.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(LOAD_SECS));
    stop.store(true, Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    // Let the agent drain what it has queued.
    std::thread::sleep(Duration::from_secs(2));
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss, hwm) = cpu_and_memory(pid);
    let after = metrics(port);
    let d = |p: &str| metric(&after, p) - metric(&before, p);
    let execs = d("vigil_process_kernel_events_total{kind=\"exec\"}");
    let sent = d("vigil_process_events_total ");
    let vanished = d("vigil_process_skipped_total{reason=\"vanished\"}");
    let partial = d("vigil_process_partial_total ");
    let overruns = d("vigil_process_connector_overruns_total ");
    let read_s = d("vigil_process_read_seconds_total ");
    println!(
        "agent: {} /bin/true by {EXEC_THREADS} threads in {secs:.1} s; the kernel reported {execs:.0} execs ({:.0}/s); events sent {sent:.0}, skipped as vanished {vanished:.0} ({:.1}%), sent partial {partial:.0}, overruns {overruns:.0}",
        spawned.load(Relaxed),
        execs / secs,
        if execs > 0.0 {
            vanished / execs * 100.0
        } else {
            0.0
        },
    );
    println!(
        "agent: CPU {:.1}% of one core ({:.1} µs per exec, of which /proc reads {:.1} µs); resident memory idle {:.1} MiB, after {:.1} MiB, peak {:.1} MiB",
        (cpu1 - cpu0) / secs * 100.0,
        if execs > 0.0 {
            (cpu1 - cpu0) / execs * 1e6
        } else {
            0.0
        },
        if execs > 0.0 {
            read_s / execs * 1e6
        } else {
            0.0
        },
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = agent.wait();
}

fn main() {
    assert!(Path::new("/proc/self/stat").exists(), "needs Linux /proc");
    path();
    if !std::env::args().any(|a| a == "--path-only") {
        agent();
    }
}
