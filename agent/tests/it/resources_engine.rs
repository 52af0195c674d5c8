//! The resource-usage source against real containers: the `vigil-agent` binary, with only a
//! `resources` source, samples every second the containers of the private dockerd and
//! containerd (`tests/engines.sh start`) while the test makes them work: a CPU burner under
//! a 0.1-CPU quota (small enough to be reached on a busy machine), a memory filler near its
//! limit, a process grown past its limit until the OOM killer takes it, a steady sender and
//! a sender that suddenly sends fifty times more between two network namespaces on an
//! internal network (no gateway, nothing leaves the machine), a burst of short connections,
//! and an idle container. The figures must match what was done within a tolerance, the
//! `resource.*` detections must fire on the right containers, and the idle container (and a
//! burner in a namespace whose thresholds are turned off) must raise nothing.
//!
//! Thresholds are shortened for the test (sustained for 3 s, baselines warm after 5 s); the
//! logic is the one the defaults run.

use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;

use vigil_testkit::containerd::Containerd;

use crate::agent::{ContainerdCleanup, TestAgent, rules};

const THRESHOLDS: &str = "    thresholds:\n      sustain_secs: 3\n      repeat_secs: 3600\n      baseline_warmup_secs: 5\n      baseline_half_life_secs: 20\n      memory_limit_ratio: 0.8\n      egress_min_bytes_per_sec: 200000\n      connections_min: 100\n";

/// An agent with only the resources source.
struct Harness(TestAgent);

impl std::ops::Deref for Harness {
    type Target = TestAgent;
    fn deref(&self) -> &TestAgent {
        &self.0
    }
}

impl Harness {
    /// `runtime` is the block's runtime lines, `namespaces` its per-namespace overrides.
    fn new(runtime: &str, namespaces: &str) -> Harness {
        Harness(TestAgent::with_sources(&format!(
            "  resources:\n    interval_ms: 1000\n{runtime}{THRESHOLDS}{namespaces}"
        )))
    }

    /// The samples of one container, oldest first.
    fn samples(&self, id: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["container"]["id"] == id && e["kind"] == "metrics")
            .collect()
    }

    /// Waits for `n` samples of every container of `ids`.
    fn wait_samples(&self, ids: &[&str], n: usize) {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let events = self.events();
            let missing: Vec<&&str> = ids
                .iter()
                .filter(|id| {
                    events
                        .iter()
                        .filter(|e| e["container"]["id"] == **id)
                        .count()
                        < n
                })
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} samples of {missing:?} after 40 s (the agent samples every second)"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for a sample of `id` that fired `rule`, and returns it.
    fn wait_detection(&self, id: &str, rule: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(e) = self
                .samples(id)
                .into_iter()
                .find(|e| rules(e).iter().any(|r| r == rule))
            {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{rule} never fired for {id}; its last samples: {:#?}",
                self.samples(id).iter().rev().take(3).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// The median of a figure over samples that have it.
fn median(samples: &[Value], pointer: &str) -> f64 {
    let mut v: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.pointer(pointer).and_then(Value::as_f64))
        .collect();
    assert!(!v.is_empty(), "no sample has {pointer}");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Removes the test's containers and network even when an assertion fails half-way.
struct DockerCleanup<'a> {
    engine: &'a DockerEngine,
    containers: Vec<String>,
    network: Option<String>,
}

impl Drop for DockerCleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.engine.try_docker(&["rm", "-f", c]);
        }
        if let Some(n) = &self.network {
            let _ = self.engine.try_docker(&["network", "rm", n]);
        }
    }
}

#[test]
fn docker_containers_give_their_figures_and_unusual_ones_alert() {
    let engine = DockerEngine::find();
    let tag = std::process::id();
    let ns = format!("vigil-res-{tag}");
    let quiet_ns = format!("vigil-res-quiet-{tag}");
    let h = Harness::new(
        &format!(
            "    docker_endpoint: {}\n    containerd: false\n",
            engine.host
        ),
        &format!("    namespaces:\n      {quiet_ns}:\n        enabled: false\n"),
    );
    let name = |what: &str| format!("vigil-res-{what}-{tag}");
    let net = name("net");
    // A subnet of its own per run, so a leftover network of another run cannot clash.
    let subnet_octet = 100 + tag % 100;
    let subnet = format!("10.213.{subnet_octet}.0/24");
    let receiver_ip = format!("10.213.{subnet_octet}.2");
    let mut cleanup = DockerCleanup {
        engine: &engine,
        containers: Vec::new(),
        network: None,
    };
    engine.docker(&["network", "create", "--internal", "--subnet", &subnet, &net]);
    cleanup.network = Some(net.clone());

    let run = |cleanup: &mut DockerCleanup<'_>,
               what: &str,
               pod_ns: &str,
               extra: &[&str],
               cmd: &[&str]| {
        let n = name(what);
        let pod = format!("pod-{what}");
        let labels = [
            "--label",
            &format!("io.kubernetes.pod.namespace={pod_ns}"),
            "--label",
            &format!("io.kubernetes.pod.name={pod}"),
        ]
        .map(|s| s.to_owned());
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--name".into(), n.clone()];
        args.extend(labels);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push(engine.image.clone());
        args.extend(cmd.iter().map(|s| (*s).to_owned()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = engine.docker(&argv);
        cleanup.containers.push(n);
        id
    };
    let burn = ["sh", "-c", "while :; do :; done"];
    let idle = run(&mut cleanup, "idle", &ns, &[], &["sleep", "3600"]);
    let burner = run(&mut cleanup, "burner", &ns, &["--cpus", "0.1"], &burn);
    let quiet = run(&mut cleanup, "quiet", &quiet_ns, &["--cpus", "0.1"], &burn);
    let filler = run(
        &mut cleanup,
        "filler",
        &ns,
        &["--memory", "64m"],
        &["sleep", "3600"],
    );
    let grower = run(
        &mut cleanup,
        "grower",
        &ns,
        &["--memory", "32m"],
        &["sleep", "3600"],
    );
    let on_net = ["--network", net.as_str()];
    // The receiver discards what each connection sends (`nc -ll -e` forks a sink per
    // connection, so it keeps listening).
    let receiver = run(
        &mut cleanup,
        "receiver",
        &ns,
        &["--network", &net, "--ip", &receiver_ip],
        &[
            "sh",
            "-c",
            "printf '#!/bin/sh\\nexec busybox cat >/dev/null\\n' >/tmp/sink; chmod +x /tmp/sink; exec busybox nc -ll -p 9000 -e /tmp/sink",
        ],
    );
    // About 20 kB/s: 20,000 bytes per connection, one connection a second.
    let steady_loop = format!(
        "while :; do busybox head -c 20000 /dev/zero | busybox nc -w 2 {receiver_ip} 9000; sleep 1; done"
    );
    let steady = run(
        &mut cleanup,
        "steady",
        &ns,
        &on_net,
        &["sh", "-c", &steady_loop],
    );
    let sender = run(
        &mut cleanup,
        "sender",
        &ns,
        &on_net,
        &["sh", "-c", &steady_loop],
    );
    let scanner = run(&mut cleanup, "scanner", &ns, &on_net, &["sleep", "3600"]);

    let _agent = h.start();
    let all = [
        idle.as_str(),
        &burner,
        &quiet,
        &filler,
        &grower,
        &receiver,
        &steady,
        &sender,
        &scanner,
    ];
    h.wait_samples(&all, 2);

    // Memory: 56 MB into the container's tmpfs (charged to its cgroup, not reclaimable
    // without swap), against a 64 MiB limit: a working set of ~0.88 of the limit.
    engine.docker(&[
        "exec",
        &name("filler"),
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1000000",
        "count=56",
    ]);
    // OOM: a process doubling a string until the 32 MiB limit stops it; the container's
    // main process lives on.
    let oom = engine.try_docker(&[
        "exec",
        &name("grower"),
        "busybox",
        "awk",
        "BEGIN { s = \"x\"; while (1) s = s s }",
    ]);
    assert!(oom.is_err(), "the grower was not killed: {oom:?}");

    // Baselines are warm after 5 s of samples; wait a little more so they are settled.
    h.wait_samples(&[&sender, &scanner], 10);
    let before_burst = h.samples(&sender).last().cloned().unwrap();
    let burst_started = Instant::now();
    let rx_before = h.samples(&receiver).last().cloned().unwrap();
    // Fifty times the usual: 1 MB a second for five seconds.
    engine.docker(&[
        "exec",
        &name("sender"),
        "sh",
        "-c",
        &format!(
            "for i in 1 2 3 4 5; do busybox head -c 1000000 /dev/zero | busybox nc -w 2 {receiver_ip} 9000; sleep 1; done"
        ),
    ]);
    // A burst of 300 short connections; each leaves a TIME_WAIT socket for a minute.
    engine.docker(&[
        "exec",
        &name("scanner"),
        "sh",
        "-c",
        &format!(
            "for i in $(busybox seq 300); do echo x | busybox nc -w 2 {receiver_ip} 9000; done"
        ),
    ]);

    // CPU: sustained saturation and throttling of the burner.
    let e = h.wait_detection(&burner, "resource.cpu-saturated");
    let a = &e["metrics"]["anomalies"];
    assert!(f(&a[0]["sustained_secs"]) >= 3.0, "{e}");
    h.wait_detection(&burner, "resource.cpu-throttled");
    let burner_samples = h.samples(&burner);
    let cores = median(&burner_samples[1..], "/metrics/cpu/usage_cores");
    assert!(
        (0.07..=0.12).contains(&cores),
        "a burner under a 0.1-CPU quota used {cores} cores"
    );
    assert_eq!(f(&burner_samples[1]["metrics"]["cpu"]["limit_cores"]), 0.1);
    assert!(median(&burner_samples[1..], "/metrics/cpu/throttled_ratio") >= 0.8);
    assert_eq!(e["container"]["pod"]["namespace"], ns.as_str());
    assert_eq!(e["container"]["runtime"], "docker");
    assert_eq!(e["container"]["name"], name("burner").as_str());
    assert_eq!(
        e["metrics"]["collector"]
            .as_str()
            .map(|c| c.starts_with("cgroup_v")),
        Some(true)
    );

    // Memory near the limit, with the figures of what was written.
    let e = h.wait_detection(&filler, "resource.memory-near-limit");
    let m = &e["metrics"]["memory"];
    assert_eq!(m["limit_bytes"], 64 * 1024 * 1024);
    let ws = f(&m["working_set_bytes"]);
    assert!(
        (56e6..=64.0 * 1_048_576.0).contains(&ws),
        "56 MB written to tmpfs, working set {ws}"
    );
    assert!(f(&m["limit_ratio"]) >= 0.8);

    // The OOM kill, counted once.
    let e = h.wait_detection(&grower, "resource.oom-kill");
    assert_eq!(e["metrics"]["memory"]["oom_kills"], 1, "{e}");
    assert_eq!(e["metrics"]["memory"]["limit_bytes"], 32 * 1024 * 1024);

    // Egress: the spike is judged against the sender's own baseline of ~20 kB/s.
    let e = h.wait_detection(&sender, "resource.network-egress-spike");
    let a = e["metrics"]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["signal"] == "network_egress_spike")
        .unwrap()
        .clone();
    let (value, baseline) = (f(&a["value"]), f(&a["baseline"]));
    assert!(
        (5_000.0..=60_000.0).contains(&baseline),
        "the steady 20 kB/s gave a baseline of {baseline}"
    );
    assert!(value >= 20.0 * baseline, "{value} against {baseline}");
    // The burst's 5 MB are in the counters: payload plus TCP/IP headers, plus the steady
    // traffic of the same seconds.
    h.wait_samples(&[&sender], h.samples(&sender).len() + 3);
    let after = h.samples(&sender).last().cloned().unwrap();
    let window = burst_started.elapsed().as_secs_f64() + 2.0;
    let sent = f(&after["metrics"]["network"]["tx_bytes_total"])
        - f(&before_burst["metrics"]["network"]["tx_bytes_total"]);
    // TCP/IP headers add ~7% to bulk payload here; the steady loop adds ~21 kB a second.
    assert!(
        (5_000_000.0..=5_000_000.0 * 1.1 + 30_000.0 * window).contains(&sent),
        "sent {sent} bytes in {window:.1} s for a 5 MB burst"
    );
    let rx_after = h.samples(&receiver).last().cloned().unwrap();
    let received = f(&rx_after["metrics"]["network"]["rx_bytes_total"])
        - f(&rx_before["metrics"]["network"]["rx_bytes_total"]);
    assert!(
        received >= 5_000_000.0,
        "the receiver got {received} bytes of a 5 MB burst"
    );

    // Connections: against a baseline of none, the spike fires once 100 sockets are there;
    // the 300 connections made leave 300 TIME_WAIT sockets for a minute.
    let e = h.wait_detection(&scanner, "resource.connection-spike");
    assert!(
        e["metrics"]["network"]["tcp_connections"]
            .as_u64()
            .unwrap_or(0)
            >= 100,
        "{e}"
    );
    h.wait_samples(&[&scanner], h.samples(&scanner).len() + 2);
    let last = h.samples(&scanner).last().cloned().unwrap();
    let sockets = last["metrics"]["network"]["tcp_connections"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        (295..=305).contains(&sockets),
        "300 connections made, {sockets} sockets counted"
    );

    // The steady sender stays steady: ~20 kB/s, no alert.
    let steady_samples = h.samples(&steady);
    let tx: Vec<f64> = steady_samples
        .iter()
        .filter_map(|s| {
            s.pointer("/metrics/network/tx_bytes_per_sec")
                .and_then(Value::as_f64)
        })
        .collect();
    let mean = tx.iter().sum::<f64>() / tx.len() as f64;
    assert!(
        (10_000.0..=40_000.0).contains(&mean),
        "the steady sender averaged {mean} B/s"
    );

    // Nothing from the idle container, nor from the burner whose namespace is not judged.
    for (who, id) in [
        ("idle", &idle),
        ("quiet burner", &quiet),
        ("steady", &steady),
    ] {
        let fired: Vec<String> = h.samples(id).iter().flat_map(rules).collect();
        assert!(fired.is_empty(), "the {who} container raised {fired:?}");
    }
    let idle_samples = h.samples(&idle);
    assert!(median(&idle_samples[1..], "/metrics/cpu/usage_cores") < 0.05);
    assert_eq!(
        idle_samples.last().unwrap()["metrics"]["pids"]["current"],
        1
    );
    let quiet_cores = median(&h.samples(&quiet)[1..], "/metrics/cpu/usage_cores");
    assert!(
        quiet_cores > 0.05,
        "the quiet burner is still measured: {quiet_cores}"
    );

    // Prometheus: labelled series while the container runs, gone after it is removed.
    let metrics = h.metrics();
    let labels = format!(
        "namespace=\"{ns}\",pod=\"pod-burner\",container=\"{}\",id=\"{}\"",
        name("burner"),
        &burner[..12]
    );
    assert!(
        metrics.contains(&format!("vigil_container_cpu_limit_cores{{{labels}}} 0.1")),
        "{metrics}"
    );
    assert!(metrics.contains(&format!("id=\"{}\"", &idle[..12])));
    assert!(metrics.contains("vigil_detections_total{rule=\"resource.cpu-saturated\"}"));
    engine.docker(&["rm", "-f", &name("idle")]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while h.metrics().contains(&format!("id=\"{}\"", &idle[..12])) {
        assert!(
            Instant::now() < deadline,
            "the removed container's series are still published"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn containerd_containers_give_their_figures_and_unusual_ones_alert() {
    let c = Containerd::find();
    let tag = std::process::id();
    let ns = format!("vigil-res-cd-{tag}");
    let h = Harness::new(
        &format!("    docker: false\n    containerd_address: {}\n", c.sock),
        "",
    );
    let id = |what: &str| format!("vigil-res-cd-{what}-{tag}");
    let mut cleanup = ContainerdCleanup(&c, Vec::new());
    let run = |cleanup: &mut ContainerdCleanup<'_>, what: &str, extra: &[&str], cmd: &[&str]| {
        let cid = id(what);
        let mut args: Vec<String> = ["run", "-d", "--snapshotter", &c.snapshotter]
            .map(String::from)
            .to_vec();
        for l in [
            format!("io.kubernetes.pod.namespace={ns}"),
            format!("io.kubernetes.pod.name=pod-{what}"),
            format!("io.kubernetes.container.name={what}"),
        ] {
            args.push("--label".into());
            args.push(l);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args.push(c.image.clone());
        args.push(cid.clone());
        args.extend(cmd.iter().map(|s| (*s).to_owned()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        c.ctr(&argv);
        cleanup.1.push(cid.clone());
        cid
    };
    let idle = run(&mut cleanup, "idle", &[], &["sleep", "3600"]);
    let burner = run(
        &mut cleanup,
        "burner",
        &["--cpu-quota", "10000", "--cpu-period", "100000"],
        &["sh", "-c", "while :; do :; done"],
    );
    let filler = run(
        &mut cleanup,
        "filler",
        &["--memory-limit", "67108864"],
        &["sleep", "3600"],
    );
    let grower = run(
        &mut cleanup,
        "grower",
        &["--memory-limit", "33554432"],
        &["sleep", "3600"],
    );

    let _agent = h.start();
    h.wait_samples(&[&idle, &burner, &filler, &grower], 2);
    c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        &format!("fill-{tag}"),
        &filler,
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/shm/fill",
        "bs=1000000",
        "count=56",
    ]);
    let oom = c.try_ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        &format!("grow-{tag}"),
        &grower,
        "busybox",
        "awk",
        "BEGIN { s = \"x\"; while (1) s = s s }",
    ]);
    assert!(oom.is_err(), "the grower was not killed: {oom:?}");

    let e = h.wait_detection(&burner, "resource.cpu-saturated");
    assert_eq!(e["container"]["runtime"], "containerd");
    assert_eq!(e["container"]["name"], "burner");
    assert_eq!(e["container"]["pod"]["namespace"], ns.as_str());
    assert_eq!(e["container"]["pod"]["name"], "pod-burner");
    h.wait_detection(&burner, "resource.cpu-throttled");
    let cores = median(&h.samples(&burner)[1..], "/metrics/cpu/usage_cores");
    assert!(
        (0.07..=0.12).contains(&cores),
        "{cores} cores under a 0.1 quota"
    );

    let e = h.wait_detection(&filler, "resource.memory-near-limit");
    let ws = f(&e["metrics"]["memory"]["working_set_bytes"]);
    assert!(
        (56e6..=64.0 * 1_048_576.0).contains(&ws),
        "working set {ws}"
    );
    assert_eq!(e["metrics"]["memory"]["limit_bytes"], 67_108_864);

    let e = h.wait_detection(&grower, "resource.oom-kill");
    assert_eq!(e["metrics"]["memory"]["oom_kills"], 1, "{e}");

    // ctr gives each container a network namespace of its own with only `lo`: measured,
    // and nothing in it.
    let idle_samples = h.samples(&idle);
    let last = idle_samples.last().unwrap();
    assert_eq!(last["metrics"]["network"]["tx_bytes_total"], 0);
    assert_eq!(last["metrics"]["pids"]["current"], 1);
    let fired: Vec<String> = idle_samples.iter().flat_map(rules).collect();
    assert!(fired.is_empty(), "the idle container raised {fired:?}");
    let metrics = h.metrics();
    assert!(
        metrics.contains(&format!(
            "vigil_container_memory_limit_bytes{{namespace=\"{ns}\",pod=\"pod-grower\",container=\"grower\",id=\"{}\"}} 33554432",
            &grower[..12]
        )),
        "{metrics}"
    );
}
