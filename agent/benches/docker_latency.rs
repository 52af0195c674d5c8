//! Docker event → event written by the output: latency of the `vigil-agent` binary against
//! the private engine of `tests/engines.sh start`, with and without inspect enrichment.
//!
//! ```sh
//! tests/engines.sh start && cargo bench -p vigil-agent --bench docker_latency
//! ```
//!
//! The agent follows the engine and writes to a file output; this program drives the engine
//! with the docker CLI (execs in a running container, and containers created, started,
//! killed and removed), follows the output file in a tight loop, and takes for each event
//! the time it appeared in the file minus the engine's own `timeNano`. Same host, same clock.
//! A bare subscriber that only reads `/events` and stamps each line runs beside the agent in
//! every run: its figures are the floor that the engine and the machine set.

#![allow(clippy::unwrap_used)] // a benchmark program: a failed unwrap is a failed run

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const WELL_KNOWN_HOST: &str = "unix:///tmp/vigil-engines/docker/docker.sock";
const IMAGE: &str = "vigil-test/busybox:latest";

fn docker(host: &str, args: &[&str]) {
    let s = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(s.success(), "docker {}", args.join(" "));
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `/events` over the socket and stamps every line: no parsing beyond `timeNano`.
fn bare_subscriber(socket: &str, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Vec<f64> {
    use std::io::Write as _;
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(b"GET /events HTTP/1.1\r\nHost: docker\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut out = Vec::new();
    let mut line = String::new();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        let seen = now_ns();
        if let Some(i) = line.find("\"timeNano\":") {
            let digits: String = line[i + 11..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(t) = digits.parse::<i128>() {
                out.push((seen - t) as f64 / 1e6);
            }
        }
    }
    out
}

fn run(host: &str, inspect: bool, execs: usize, lifecycles: usize) -> (Vec<f64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.json");
    let config = format!(
        "state_dir: {}\nsources:\n  audit_log:\n    enabled: false\n  docker:\n    endpoint: {host}\n    inspect: {inspect}\noutputs:\n  - type: file\n    path: {}\n",
        dir.path().join("state").display(),
        out.display()
    );
    std::fs::write(dir.path().join("agent.yaml"), config).unwrap();
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
            .args(["run", "--config"])
            .arg(dir.path().join("agent.yaml"))
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let name = format!("vigil-bench-{}", std::process::id());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bare = {
        let socket = host.strip_prefix("unix://").unwrap_or(host).to_owned();
        let stop = stop.clone();
        std::thread::spawn(move || bare_subscriber(&socket, stop))
    };

    let host_owned = host.to_owned();
    let name_owned = name.clone();
    let driver = std::thread::spawn(move || {
        let host = host_owned.as_str();
        docker(
            host,
            &["run", "-d", "--name", &name_owned, IMAGE, "sleep", "600"],
        );
        for _ in 0..execs {
            docker(host, &["exec", &name_owned, "true"]);
        }
        for i in 0..lifecycles {
            let c = format!("{name_owned}-{i}");
            docker(host, &["run", "-d", "--name", &c, IMAGE, "sleep", "60"]);
            docker(host, &["kill", &c]);
            docker(host, &["rm", &c]);
        }
        docker(host, &["rm", "-f", &name_owned]);
    });

    let mut latencies = Vec::new();
    let mut pos = 0u64;
    let mut partial = String::new();
    let deadline_after_driver = Duration::from_secs(5);
    let mut driver_done: Option<Instant> = None;
    loop {
        if let Ok(f) = std::fs::File::open(&out) {
            let mut r = BufReader::new(f);
            r.seek(SeekFrom::Start(pos)).unwrap();
            loop {
                let mut line = String::new();
                let n = r.read_line(&mut line).unwrap();
                if n == 0 {
                    break;
                }
                pos += n as u64;
                partial.push_str(&line);
                if !partial.ends_with('\n') {
                    continue;
                }
                let seen = now_ns();
                let v: serde_json::Value = serde_json::from_str(&partial).unwrap();
                partial.clear();
                if let Some(t) = v["raw"]["timeNano"].as_i64() {
                    latencies.push((seen - i128::from(t)) as f64 / 1e6);
                }
            }
        }
        if driver.is_finished() && driver_done.is_none() {
            driver_done = Some(Instant::now());
        }
        if driver_done.is_some_and(|d| d.elapsed() > deadline_after_driver) {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    driver.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (latencies, bare.join().unwrap())
}

fn report(label: &str, mut l: Vec<f64>) {
    l.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{label:<22} events {:>5}  p50 {:>6.3} ms  p90 {:>6.3} ms  p99 {:>6.3} ms  max {:>7.3} ms",
        l.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        l[l.len() - 1]
    );
}

fn main() {
    let host = std::env::var("VIGIL_TEST_DOCKER_HOST").unwrap_or_else(|_| WELL_KNOWN_HOST.into());
    let socket = host.strip_prefix("unix://").unwrap_or(&host);
    assert!(
        Path::new(socket).exists(),
        "no Docker engine at {host}: start it with `tests/engines.sh start`"
    );
    let execs: usize = std::env::var("VIGIL_BENCH_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let cycles: usize = std::env::var("VIGIL_BENCH_CONTAINERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    println!("engine event → file output ({execs} execs, {cycles} container lifecycles per run)");
    let (agent, bare) = run(&host, false, execs, cycles);
    report("agent, no inspect", agent);
    report("  bare /events reader", bare);
    let (agent, bare) = run(&host, true, execs, cycles);
    report("agent, with inspect", agent);
    report("  bare /events reader", bare);
}
