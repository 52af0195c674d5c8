use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use super::*;
use crate::config::PipelineConfig;

pub(super) fn config(root: &Path) -> ContainerLogsConfig {
    ContainerLogsConfig {
        pods_dir: root.join("pods"),
        containers_dir: root.join("containers"),
        docker_dir: root.join("docker"),
        start_at: StartAt::Beginning,
        poll_interval_ms: 20,
        rescan_interval_ms: 200,
        ..ContainerLogsConfig::default()
    }
}

fn source(root: &Path, cfg: &ContainerLogsConfig) -> ContainerLogsSource {
    ContainerLogsSource::new(
        cfg,
        &PipelineConfig::default(),
        None,
        Some("node-1".into()),
        &root.join("state"),
        Arc::new(RuleSet::builtin().unwrap()),
        Arc::new(Metrics::default()),
        false,
    )
    .unwrap()
}

pub(super) fn append(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn cri(msg: &str) -> String {
    format!("2024-05-02T10:15:30.123456789Z stdout F {msg}\n")
}

/// Reads until `want` messages came or the deadline passed; acks everything read.
fn drain(src: &mut ContainerLogsSource, want: usize, out: &mut Vec<Event>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let checkpointer = src.checkpointer();
    while out.len() < want && Instant::now() < deadline {
        if let Some((events, position)) = src.read_events(Duration::from_millis(50)) {
            out.extend(events);
            for (file, end) in position {
                checkpointer.ack(file, end);
            }
        }
    }
}

pub(super) fn messages(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e.log.as_ref()?.message.clone())
        .collect()
}

#[test]
fn a_thousand_files_are_read_with_few_descriptors_and_watches() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut cfg = config(root);
    cfg.max_open_files = 64;
    cfg.max_watched_dirs = 300;
    let mut paths = Vec::new();
    for i in 0..1000 {
        let c = root.join(format!("pods/ns{}_pod{i}_uid-{i}/app", i % 7));
        fs::create_dir_all(&c).unwrap();
        let p = c.join("0.log");
        append(
            &p,
            &format!(
                "{}{}",
                cri(&format!("file {i} line 0")),
                cri(&format!("file {i} line 1"))
            ),
        );
        paths.push(p);
    }
    let mut src = source(root, &cfg);
    let mut events = Vec::new();
    drain(&mut src, 2000, &mut events);
    let stats = src.stats();
    assert_eq!(events.len(), 2000);
    assert!(stats.open_files <= 64, "{stats:?}");
    assert!(
        stats.watched_dirs <= 300 && stats.polled_dirs > 0,
        "{stats:?}"
    );
    let e = events
        .iter()
        .find(|e| messages(std::slice::from_ref(e))[0] == "file 7 line 1")
        .unwrap();
    let pod = e.container.as_ref().unwrap().pod.as_ref().unwrap();
    assert_eq!(pod.namespace.as_deref(), Some("ns0"));
    assert_eq!(pod.name.as_deref(), Some("pod7"));
    assert_eq!(e.container.as_ref().unwrap().name.as_deref(), Some("app"));

    // Every file, parked or not, is read again when it grows.
    for (i, p) in paths.iter().enumerate() {
        append(p, &cri(&format!("file {i} line 2")));
    }
    drain(&mut src, 3000, &mut events);
    let mut seen = messages(&events);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3000, "every line once");
    assert_eq!(events.len(), 3000);

    // A new pod is found; a deleted pod's file is let go of.
    let c = root.join("pods/late_newpod_uid-x/web");
    fs::create_dir_all(&c).unwrap();
    append(&c.join("0.log"), &cri("hello from a new pod"));
    fs::remove_dir_all(root.join("pods/ns0_pod0_uid-0")).unwrap();
    drain(&mut src, 3001, &mut events);
    assert_eq!(
        messages(&events).last().map(String::as_str),
        Some("hello from a new pod")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while src.stats().paths != 1000 && Instant::now() < deadline {
        let _ = src.read_events(Duration::from_millis(50));
    }
    assert_eq!(src.stats().paths, 1000, "one added, one retired");
}

#[test]
fn symlinks_add_the_container_id_and_files_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = config(root);
    let c = root.join("pods/shop_web_u1/nginx");
    fs::create_dir_all(&c).unwrap();
    fs::create_dir_all(root.join("containers")).unwrap();
    append(&c.join("0.log"), &cri("once"));
    let id = "ab".repeat(32);
    std::os::unix::fs::symlink(
        c.join("0.log"),
        root.join(format!("containers/web_shop_nginx-{id}.log")),
    )
    .unwrap();
    let did = "cd".repeat(32);
    let d = root.join("docker").join(&did);
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("config.v2.json"),
        r#"{"Name":"/api","Image":"sha256:1","Config":{"Image":"nginx:1.27","Labels":{"team":"a"}}}"#,
    )
    .unwrap();
    append(
        &d.join(format!("{did}-json.log")),
        "{\"log\":\"part one \",\"stream\":\"stdout\",\"time\":\"2024-05-02T10:15:30Z\"}\n{\"log\":\"and two\\n\",\"stream\":\"stdout\",\"time\":\"2024-05-02T10:15:30Z\"}\n",
    );
    let mut src = source(root, &cfg);
    let mut events = Vec::new();
    drain(&mut src, 2, &mut events);
    drain(&mut src, 3, &mut events);
    assert_eq!(events.len(), 2, "{:?}", messages(&events));
    let pod = events
        .iter()
        .find(|e| messages(std::slice::from_ref(e))[0] == "once")
        .unwrap();
    assert_eq!(
        pod.container.as_ref().unwrap().id.as_deref(),
        Some(id.as_str())
    );
    let docker = events
        .iter()
        .find(|e| messages(std::slice::from_ref(e))[0] == "part one and two")
        .unwrap();
    let c = docker.container.as_ref().unwrap();
    assert_eq!(
        (c.name.as_deref(), c.image.as_deref()),
        (Some("api"), Some("nginx:1.27"))
    );
}

#[test]
fn selection_by_namespace_container_and_label() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut cfg = config(root);
    cfg.namespaces.exclude = vec!["kube-system".into()];
    cfg.containers.exclude = vec!["istio-proxy".into()];
    for (ns, c) in [
        ("shop", "web"),
        ("kube-system", "dns"),
        ("shop", "istio-proxy"),
    ] {
        let d = root.join(format!("pods/{ns}_p_u/{c}"));
        fs::create_dir_all(&d).unwrap();
        append(&d.join("0.log"), &cri(&format!("{ns}/{c}")));
    }
    let mut src = source(root, &cfg);
    let mut events = Vec::new();
    drain(&mut src, 2, &mut events);
    assert_eq!(messages(&events), ["shop/web"]);
    let mut labels = LabelSelector::default();
    labels.include.insert("team".into(), "a".into());
    assert!(
        !labels.allows(None),
        "unknown labels never match an include"
    );
    assert!(labels.allows(Some(&BTreeMap::from([("team".into(), "a".into())]))));
}

/// The namespace documents the operator publishes: in `shop`, one monitor reading the logs of
/// pods labelled `tier=web` except their `istio-*` sidecars.
fn shop_tuning(logs_enabled: bool) -> vigil_core::tuning::Tuning {
    let doc = format!(
        r#"
schema: vigil.dev/agent-namespace/v1alpha1
namespace: shop
monitors:
  - monitor: web
    selector: {{matchLabels: {{tier: web}}}}
    runtime: true
    logs: {{enabled: {logs_enabled}, exclude: ["istio-*"]}}
detections: {{}}
"#
    );
    vigil_core::tuning::Tuning::from_documents(&[("shop.yaml".into(), doc)]).unwrap()
}

#[test]
fn container_monitors_choose_the_logs_read_and_a_change_applies_at_the_next_listing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cfg = config(root);
    let log = |ns: &str, pod: &str, container: &str| {
        let d = root.join(format!("pods/{ns}_{pod}_uid-{pod}/{container}"));
        fs::create_dir_all(&d).unwrap();
        d.join("0.log")
    };
    let web_app = log("shop", "web-1", "app");
    let web_sidecar = log("shop", "web-1", "istio-proxy");
    let batch = log("shop", "batch-1", "app");
    let unlabelled = log("shop", "new-1", "app");
    let elsewhere = log("billing", "api-1", "app");
    for p in [&web_app, &web_sidecar, &batch, &unlabelled, &elsewhere] {
        append(p, &cri(&format!("first {}", p.display())));
    }

    let rules = Arc::new(RuleSet::builtin().unwrap());
    let tuning = rules.tuning();
    tuning.replace(shop_tuning(true));
    let labels = |v: &str| Some(BTreeMap::from([("tier".to_owned(), v.to_owned())]));
    tuning.set_pod("shop", "web-1", labels("web"));
    tuning.set_pod("shop", "batch-1", labels("batch"));
    let mut src = ContainerLogsSource::new(
        &cfg,
        &PipelineConfig::default(),
        None,
        Some("node-1".into()),
        &root.join("state"),
        Arc::clone(&rules),
        Arc::new(Metrics::default()),
        false,
    )
    .unwrap();
    let mut got = Vec::new();
    drain(&mut src, 3, &mut got);
    // Read: the web pod's app, a pod whose labels are not known yet (not left out on a
    // guess) and another namespace's pod (no monitor there: not limited). Not read: the
    // excluded sidecar and the pod the selector leaves out.
    let mut read: Vec<String> = messages(&got);
    read.sort();
    let mut want: Vec<String> = [&web_app, &unlabelled, &elsewhere]
        .iter()
        .map(|p| format!("first {}", p.display()))
        .collect();
    want.sort();
    assert_eq!(read, want);
    // Nothing more comes: the others are not followed at all.
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet_until {
        if let Some((events, _)) = src.read_events(Duration::from_millis(50)) {
            got.extend(events);
        }
    }
    assert_eq!(got.len(), 3, "{:?}", messages(&got));

    // The monitor turns logs off: the files of `shop` are closed at the next listing, and
    // their new lines are not read; the other namespace goes on.
    tuning.replace(shop_tuning(false));
    let deadline = Instant::now() + Duration::from_secs(10);
    while src.stats().paths > 1 {
        assert!(Instant::now() < deadline, "{:?}", src.stats());
        let _ = src.read_events(Duration::from_millis(50));
    }
    append(&web_app, &cri("second web"));
    append(&elsewhere, &cri("second billing"));
    let mut more = Vec::new();
    drain(&mut src, 1, &mut more);
    let quiet_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet_until {
        if let Some((events, _)) = src.read_events(Duration::from_millis(50)) {
            more.extend(events);
        }
    }
    assert_eq!(messages(&more), vec!["second billing".to_owned()]);
}
