//! Render time for 1,000 ContainerMonitors (budget: 100 ms, DESIGN §8).
//!
//! `cargo bench -p vigil-operator --bench render`
//!
//! The monitors are spread over 400 namespaces (a few namespaces with several monitors),
//! each with two audit rules, level overrides, exceptions and disabled rules; one in ten
//! carries an inline Sigma rule, which is compiled with the agents' loader on every render.
//! `-- --write FILE` also writes them as a manifest, for timing `vigil-operator render`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use vigil_operator::crd::{ContainerMonitor, ContainerMonitorSpec};
use vigil_operator::render::{Catalog, render};

const MONITORS: usize = 1000;
const NAMESPACES: usize = 400;

fn spec(i: usize) -> String {
    let mut s = format!(
        "selector:\n  matchLabels: {{app: app-{i}}}\naudit:\n  level: {level}\n  rules:\n  - level: RequestResponse\n    verbs: [create, update, patch]\n    resources: [{{group: apps, resources: [deployments, statefulsets]}}]\n  - level: None\n    users: ['system:serviceaccount:ns-{ns}:scraper']\n    verbs: [get, list, watch]\nlogs:\n  containers: {{exclude: [istio-proxy]}}\ndetections:\n  disabled: [container.shell]\n  levels: {{container.exec: {lvl}, pod.port-forward: 4}}\n  exceptions:\n  - {{rule: secret.access, serviceAccounts: [external-secrets-{i}]}}\n  - {{rule: container.privileged, images: ['quay.io/team-{i}/*']}}\n",
        level = ["Metadata", "Request", "None"][i % 3],
        ns = i % NAMESPACES,
        lvl = 5 + i % 10,
    );
    if i.is_multiple_of(10) {
        let rule = format!(
            "title: Team rule {i}\nname: team.rule-{i}\nid: 00000000-0000-4000-8000-{i:012}\nlogsource:\n  product: vigil\ndetection:\n  selection:\n    action: exec\n    process.command_line|contains: tool-{i}\n  condition: selection\nlevel: medium\n"
        );
        s.push_str(&format!(
            "  rules:\n  - {}\n",
            serde_json::to_string(&rule).unwrap_or_default()
        ));
    }
    s
}

fn monitors() -> Vec<ContainerMonitor> {
    (0..MONITORS)
        .map(|i| {
            let spec: ContainerMonitorSpec = match yaml_serde::from_str(&spec(i)) {
                Ok(s) => s,
                Err(e) => panic!("bench input {i}: {e}"),
            };
            let mut m = ContainerMonitor::new(&format!("monitor-{i}"), spec);
            m.metadata.namespace = Some(format!("ns-{}", i % NAMESPACES));
            m
        })
        .collect()
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let monitors = monitors();
    if let Some(path) = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
    {
        let yaml: Vec<String> = monitors
            .iter()
            .map(|m| yaml_serde::to_string(m).unwrap_or_default())
            .collect();
        if let Err(e) = std::fs::write(path, yaml.join("---\n")) {
            panic!("cannot write {path}: {e}");
        }
        println!("wrote {MONITORS} ContainerMonitors to {path}");
    }

    let started = Instant::now();
    let catalog = match Catalog::builtin() {
        Ok(c) => c,
        Err(e) => panic!("built-in rules: {e}"),
    };
    let catalog_time = started.elapsed();

    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while times.len() < 20 || (Instant::now() < deadline && times.len() < 200) {
        let t = Instant::now();
        let r = render(black_box(&monitors), &catalog);
        times.push(t.elapsed());
        last = Some(r);
    }
    times.sort();
    let r = match last {
        Some(Ok(r)) => r,
        Some(Err(e)) => panic!("render failed: {e}"),
        None => return,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "render {MONITORS} ContainerMonitors in {NAMESPACES} namespaces ({} policy rules, {} KiB policy, {} inline rules compiled):",
        r.policy.rules.len(),
        r.policy_yaml.len() / 1024,
        r.namespaces
            .values()
            .map(|n| n.detections.rules.len())
            .sum::<usize>(),
    );
    println!(
        "  best {:.1} ms, median {:.1} ms, worst {:.1} ms over {} runs (budget 100 ms)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
    println!(
        "  built-in rule catalog, loaded once per process: {:.1} ms",
        ms(catalog_time)
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "  peak resident memory of this process: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
}
