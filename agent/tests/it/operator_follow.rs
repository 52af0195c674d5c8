//! The real `vigil-agent run` following what vigil-operator publishes, on a simulated
//! control-plane node: ConfigMaps mounted as the kubelet mounts them (a `..data` link swapped
//! on each update), kube-apiserver's static pod manifest, a process named `kube-apiserver`,
//! and kmock as the API server. What is checked is what an operator of the cluster sees: the
//! policy file kube-apiserver reads, the manifest, the status ConfigMap, the events shipped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::PostParams;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_testkit::kmock::Kmock;
use vigil_testkit::process::AgentProcess;

const NS: &str = "vigil-system";
const NODE: &str = "cp-1";

/// A directory with a ConfigMap mounted the kubelet's way.
struct Mount {
    root: PathBuf,
    version: u32,
}

impl Mount {
    fn new(root: PathBuf) -> Mount {
        std::fs::create_dir_all(&root).unwrap();
        Mount { root, version: 0 }
    }

    /// Publishes `files` as the ConfigMap's whole content: a new `..TIMESTAMP` directory,
    /// the `..data` link swapped to it by a rename, visible names linking through `..data`.
    fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let data = self
            .root
            .join(format!("..2026_11_23_00_00_00.{}", self.version));
        std::fs::create_dir(&data).unwrap();
        for (name, text) in files {
            std::fs::write(data.join(name), text).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(data.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        for (name, _) in files {
            let link = self.root.join(name);
            if link.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
            }
        }
    }
}

fn sha(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn policy(level: &str) -> String {
    format!(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: {level}\n"
    )
}

fn namespace_doc(detections: &str) -> String {
    format!(
        "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: ci\nmonitors:\n- monitor: ci\n  selector: {{}}\n  runtime: true\n  logs: {{enabled: false}}\ndetections: {detections}\n"
    )
}

/// kubeadm's manifest with auditing set up, its hostPath volumes under `host`.
fn manifest(host: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
  labels: {{component: kube-apiserver, tier: control-plane}}
spec:
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.31.0
    command:
    - kube-apiserver
    - --audit-policy-file=/etc/kubernetes/audit/policy.yaml
    - --audit-log-path=/var/log/kubernetes/audit/audit.log
    - --audit-log-maxage=7
    - --audit-log-maxbackup=4
    - --audit-log-maxsize=100
    volumeMounts:
    - {{name: audit-policy, mountPath: /etc/kubernetes/audit, readOnly: true}}
    - {{name: audit-log, mountPath: /var/log/kubernetes/audit}}
  hostNetwork: true
  volumes:
  - {{name: audit-policy, hostPath: {{path: {}/audit, type: DirectoryOrCreate}}}}
  - {{name: audit-log, hostPath: {{path: {}/log, type: DirectoryOrCreate}}}}
"#,
        host.display(),
        host.display()
    )
}

/// A privileged Deployment created in namespace `ci`.
fn privileged_deployment(name: &str) -> String {
    json!({
        "apiVersion": "audit.k8s.io/v1", "kind": "Event", "level": "Request",
        "auditID": format!("00000000-0000-4000-8000-{:012}", name.len()),
        "stage": "ResponseComplete",
        "requestURI": "/apis/apps/v1/namespaces/ci/deployments",
        "verb": "create", "user": {"username": "alice"},
        "objectRef": {"resource": "deployments", "namespace": "ci", "name": name, "apiGroup": "apps"},
        "responseStatus": {"code": 201},
        "requestObject": {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": name, "namespace": "ci"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "alpine:3.19", "securityContext": {"privileged": true}}]}}}},
        "stageTimestamp": "2026-11-23T10:15:30.140000Z"
    })
    .to_string()
}

/// A process whose command name is `kube-apiserver`, as the agent finds it in /proc.
struct FakeApiserver(Child);

impl FakeApiserver {
    fn start(dir: &Path) -> FakeApiserver {
        let exe = dir.join("kube-apiserver");
        if !exe.exists() {
            let sleep = ["/bin/sleep", "/usr/bin/sleep"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .expect("sleep(1) is needed to stand in for kube-apiserver");
            std::fs::copy(sleep, &exe).unwrap();
        }
        FakeApiserver(
            Command::new(&exe)
                .arg("600")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for FakeApiserver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node {
    metrics_port: u16,
    out: PathBuf,
    audit: PathBuf,
}

impl Node {
    fn metrics(&self) -> String {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)) else {
            return String::new();
        };
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn metric(&self, name: &str) -> Option<u64> {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    fn write_audit(&self, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.audit)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// Detections (rule, level) of the shipped event for Deployment `name`, once shipped.
    fn detections_of(&self, name: &str) -> Vec<(String, u64)> {
        let event = eventually(&format!("the event of Deployment {name}"), || {
            std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["object"]["name"] == name)
        });
        event["detections"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                (
                    d["rule"].as_str().unwrap().to_owned(),
                    d["level"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn level_of(found: &[(String, u64)], rule: &str) -> Option<u64> {
    found.iter().find(|(r, _)| r == rule).map(|(_, l)| *l)
}

#[test]
fn the_agent_follows_the_operator_live() {
    let api = Kmock::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NS);

    let rt = tokio::runtime::Runtime::new().unwrap();
    // The client's buffer task needs the runtime it is made in.
    let client = rt.block_on(async {
        let mut config = kube::Config::new(api.url().parse().unwrap());
        config.default_namespace = NS.into();
        kube::Client::try_from(config).unwrap()
    });
    let cms = kube::Api::<ConfigMap>::namespaced(client.clone(), NS);
    rt.block_on(async {
        // As the operator creates it at start.
        let status: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": "vigil-policy-status"}, "data": {"worker-1": "abc"}
        }))
        .unwrap();
        cms.create(&PostParams::default(), &status).await.unwrap();
        let pods = kube::Api::<Pod>::namespaced(client.clone(), "web");
        for (name, node) in [("front", NODE), ("elsewhere", "worker-1")] {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"tier": "frontend"}},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]}
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
    });
    let status_of_node = || -> Option<String> {
        rt.block_on(cms.get("vigil-policy-status"))
            .ok()?
            .data?
            .get(NODE)
            .cloned()
    };

    let mut config_mount = Mount::new(dir.path().join("operator/config"));
    config_mount.publish(&[(
        "ci.yaml",
        &namespace_doc("{levels: {container.privileged: 3}}"),
    )]);
    let mut policy_mount = Mount::new(dir.path().join("operator/policy"));
    let p1 = policy("Metadata");
    policy_mount.publish(&[("policy.yaml", &p1), ("hash", &sha(&p1))]);

    let host = dir.path().join("host");
    std::fs::create_dir_all(host.join("manifests")).unwrap();
    let manifest_path = host.join("manifests/kube-apiserver.yaml");
    std::fs::write(&manifest_path, manifest(&host)).unwrap();
    let policy_path = host.join("audit/policy.yaml");

    let node = Node {
        metrics_port: std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(),
        out: dir.path().join("events.json"),
        audit: dir.path().join("audit.log"),
    };
    std::fs::write(&node.audit, "").unwrap();
    let cfg = dir.path().join("agent.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"node: {NODE}
state_dir: {state}
metrics_listen: 127.0.0.1:{port}
sources:
  audit_log: {{path: {audit}, start_at: beginning, poll_interval_ms: 50}}
outputs:
  - {{type: file, path: {out}}}
pipeline: {{checkpoint_interval_ms: 100}}
operator:
  config_dir: {config_dir}
  policy_dir: {policy_dir}
  audit_policy:
    path: {policy_path}
    manifest: {manifest}
    restart_apiserver: true
  namespace: {NS}
  poll_interval_ms: 100
"#,
            state = dir.path().join("state").display(),
            port = node.metrics_port,
            audit = node.audit.display(),
            out = node.out.display(),
            config_dir = dir.path().join("operator/config").display(),
            policy_dir = dir.path().join("operator/policy").display(),
            policy_path = policy_path.display(),
            manifest = manifest_path.display(),
        ),
    )
    .unwrap();
    let agent = AgentProcess(
        Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("KUBECONFIG", &kubeconfig)
            .env("VIGIL_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    // The policy reaches the path kube-apiserver reads; no apiserver runs it yet, so the
    // node reports it pending and, opted in, asks the kubelet for a restart.
    let h1 = sha(&p1);
    eventually("the policy file", || {
        (std::fs::read_to_string(&policy_path).ok()? == p1).then_some(())
    });
    assert_eq!(
        eventually("a pending status", status_of_node),
        format!("pending:{h1}")
    );
    let annotated = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(
        annotated.contains(&format!("vigil.dev/audit-policy-hash: {h1}")),
        "{annotated}"
    );
    assert!(annotated.contains("--audit-policy-file=/etc/kubernetes/audit/policy.yaml"));
    let others = rt.block_on(cms.get("vigil-policy-status")).unwrap();
    assert_eq!(
        others.data.unwrap().get("worker-1").map(String::as_str),
        Some("abc"),
        "another node's report is left alone"
    );
    assert_eq!(node.metric("vigil_audit_manifest_problems"), Some(0));

    // The kubelet restarts the apiserver: it now runs the policy.
    std::thread::sleep(Duration::from_millis(1100));
    let apiserver = FakeApiserver::start(dir.path());
    eventually("the loaded status", || {
        (status_of_node()? == h1).then_some(())
    });
    assert_eq!(node.metric("vigil_audit_policy_loaded"), Some(1));

    // Detections follow the namespace configuration in force, without a restart.
    node.write_audit(&privileged_deployment("first"));
    assert_eq!(
        level_of(&node.detections_of("first"), "container.privileged"),
        Some(3)
    );
    config_mount.publish(&[(
        "ci.yaml",
        &namespace_doc("{disabled: [container.privileged]}"),
    )]);
    eventually("the second configuration", || {
        (node.metric("vigil_operator_config_reloads_total")? >= 2).then_some(())
    });
    node.write_audit(&privileged_deployment("second"));
    assert_eq!(
        level_of(&node.detections_of("second"), "container.privileged"),
        None
    );

    // A bad configuration is refused; the one in force stays.
    config_mount.publish(&[(
        "ci.yaml",
        "schema: vigil.dev/agent-namespace/v9\nnamespace: ci\n",
    )]);
    eventually("the refusal", || {
        (node.metric("vigil_operator_config_refused_total")? >= 1).then_some(())
    });
    assert_eq!(node.metric("vigil_operator_config_ok"), Some(0));
    node.write_audit(&privileged_deployment("third"));
    assert_eq!(
        level_of(&node.detections_of("third"), "container.privileged"),
        None
    );

    // A new policy: written, pending until the apiserver restarts again.
    let p2 = policy("Request");
    let h2 = sha(&p2);
    policy_mount.publish(&[("policy.yaml", &p2), ("hash", &h2)]);
    eventually("the second policy file", || {
        (std::fs::read_to_string(&policy_path).ok()? == p2).then_some(())
    });
    eventually("the pending second policy", || {
        (status_of_node()? == format!("pending:{h2}")).then_some(())
    });
    assert!(
        std::fs::read_to_string(&manifest_path)
            .unwrap()
            .contains(&format!("vigil.dev/audit-policy-hash: {h2}"))
    );
    drop(apiserver);
    std::thread::sleep(Duration::from_millis(1100));
    let _apiserver = FakeApiserver::start(dir.path());
    eventually("the second policy loaded", || {
        (status_of_node()? == h2).then_some(())
    });

    // A ConfigMap whose hash does not match its policy is never installed.
    let p3 = policy("RequestResponse");
    policy_mount.publish(&[("policy.yaml", &p3), ("hash", &h2)]);
    eventually("the refused policy", || {
        (node.metric("vigil_audit_policy_errors_total")? >= 1).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&policy_path).unwrap(), p2);

    // The pods of this node are watched for the monitors' label selectors.
    eventually("the pod labels", || {
        (node.metric("vigil_pods_labelled")? == 1).then_some(())
    });
    agent.terminate();
}
