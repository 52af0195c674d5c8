//! Leader election between `vigil-operator run` processes sharing one API server (kmock
//! behind the shim, whose server-side apply conflicts are what keep a free Lease from being
//! taken twice). Checked the way a user would: the Lease's holder, each replica's
//! `/metrics`, the ConfigMaps and the ContainerMonitor's status.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_operator::crd::ContainerMonitor;

const NS: &str = "vigil-system";
const LEASE: &str = "vigil-operator";
/// Short, so that a takeover after SIGKILL takes seconds; the leader renews a third of it
/// before expiry, which leaves two seconds of slack on a loaded machine.
const LEASE_SECS: u64 = 6;
/// Generous: the slowest step waits for a Lease to expire (plus the standby's random pause).
const TIMEOUT: Duration = Duration::from_secs(40);

/// A `vigil-operator run` process, killed when dropped so a failed test leaves none behind.
struct Replica {
    name: &'static str,
    port: u16,
    child: Child,
}

impl Replica {
    fn start(name: &'static str, kubeconfig: &Path) -> Replica {
        // A port nobody listens on now; the replica binds it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_vigil-operator"))
            .args(["run", "--namespace", NS, "--identity", name])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--lease-duration", &LEASE_SECS.to_string()])
            .env("KUBECONFIG", kubeconfig)
            .env("VIGIL_LOG", "warn")
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Replica { name, port, child }
    }

    /// The body of `GET path`, or `None` while nothing answers 200 there.
    async fn get(&self, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        (head.split(' ').nth(1) == Some("200")).then(|| body.to_owned())
    }

    /// The replica's own counters, as `/metrics` shows them.
    async fn metrics(&self) -> Option<Counters> {
        let text = self.get("/metrics").await?;
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
        };
        Some(Counters {
            leader: value("vigil_operator_leader")?,
            renders: value("vigil_operator_renders_total")?,
            configmap_writes: value("vigil_operator_configmap_writes_total")?,
            status_writes: value("vigil_operator_status_writes_total")?,
        })
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// Waits for the process to exit, polling, for at most `TIMEOUT`.
    async fn exited(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    leader: u64,
    renders: u64,
    configmap_writes: u64,
    status_writes: u64,
}

impl Counters {
    /// A replica that never ran the controller: nothing rendered, nothing written.
    const STANDBY: Counters = Counters {
        leader: 0,
        renders: 0,
        configmap_writes: 0,
        status_writes: 0,
    };
}

/// Polls `check` until it returns something, for at most `TIMEOUT`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn client(api: &vigil_testkit::kmock::Kmock) -> Client {
    let mut config = kube::Config::new(api.url().parse().unwrap());
    config.default_namespace = NS.into();
    Client::try_from(config).unwrap()
}

async fn holder(client: &Client) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get_opt(LEASE)
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

async fn data(client: &Client, name: &str) -> BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|c| c.data)
        .unwrap_or_default()
}

/// Levels the published policy gives to namespace shop's own rules.
async fn shop_levels(client: &Client) -> Vec<String> {
    let Some(yaml) = data(client, "vigil-audit-policy")
        .await
        .remove("policy.yaml")
    else {
        return Vec::new();
    };
    let policy: serde_json::Value = yaml_serde::from_str(&yaml).unwrap();
    policy["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespaces"] == json!(["shop"]))
        .map(|r| r["level"].as_str().unwrap().to_owned())
        .collect()
}

/// Sets shop/web's audit level and waits until the policy and the monitor's status show it.
async fn change_and_see_published(client: &Client, level: &str, generation: i64) {
    let monitors = Api::<ContainerMonitor>::namespaced(client.clone(), "shop");
    monitors
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"audit": {"level": level}}})),
        )
        .await
        .unwrap();
    eventually(&format!("the policy with shop at {level}"), || async {
        (shop_levels(client).await == [level]).then_some(())
    })
    .await;
    let hash = data(client, "vigil-audit-policy").await["hash"].clone();
    eventually(
        &format!("shop/web's status at generation {generation}"),
        || async {
            let status = monitors
                .get("web")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            (status.observed_generation == Some(generation)
                && status.policy_hash.as_deref() == Some(hash.as_str()))
            .then_some(())
        },
    )
    .await;
}

/// ConfigMap writes (creates and patches), from the API server's request log.
async fn configmap_writes(client: &Client) -> usize {
    let request = http::Request::get("/_shim/requests")
        .body(Vec::new())
        .unwrap();
    let pairs: Vec<(String, String)> =
        serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    pairs
        .iter()
        .filter(|(method, path)| {
            (method == "POST" || method == "PATCH") && path.contains("/configmaps")
        })
        .count()
}

/// Waits until exactly one of `replicas` says it leads and the Lease names it; returns its
/// index.
async fn the_leader(client: &Client, replicas: &[&Replica]) -> usize {
    eventually("exactly one leader, named by the Lease", || async {
        let holder = holder(client).await?;
        let mut leading = Vec::new();
        for (i, r) in replicas.iter().enumerate() {
            if r.metrics().await?.leader == 1 {
                leading.push(i);
            }
        }
        match leading[..] {
            [i] if replicas[i].name == holder => Some(i),
            _ => None,
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_writes_and_the_standby_takes_over() {
    let api = vigil_testkit::kmock::Kmock::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, NS);
    let client = client(&api);
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "cp-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    let web: ContainerMonitor = serde_json::from_value(json!({
        "apiVersion": "vigil.dev/v1alpha1", "kind": "ContainerMonitor",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"audit": {"level": "Request"}},
    }))
    .unwrap();
    Api::<ContainerMonitor>::namespaced(client.clone(), "shop")
        .create(&PostParams::default(), &web)
        .await
        .unwrap();

    // Both replicas start at once, as a Deployment's two pods do.
    let mut a = Replica::start("replica-a", &kubeconfig);
    let mut b = Replica::start("replica-b", &kubeconfig);
    eventually("the policy with shop at Request", || async {
        (shop_levels(&client).await == ["Request"]).then_some(())
    })
    .await;
    let hash = data(&client, "vigil-audit-policy").await["hash"].clone();
    eventually("shop/web's status", || async {
        let status = Api::<ContainerMonitor>::namespaced(client.clone(), "shop")
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap_or_default();
        (status.policy_hash.as_deref() == Some(hash.as_str())).then_some(())
    })
    .await;

    // One leads and wrote everything; the other never ran the controller.
    let first = the_leader(&client, &[&a, &b]).await;
    let (leader, standby) = if first == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let counters = leader.metrics().await.unwrap();
    assert_eq!(counters.leader, 1);
    assert_eq!(
        counters.configmap_writes, 2,
        "the policy and the agents' configuration, each created once"
    );
    assert!(counters.status_writes >= 1);
    assert_eq!(standby.metrics().await.unwrap(), Counters::STANDBY);
    // The ConfigMaps were published once: the two above, and the agents' report ConfigMap
    // created empty.
    assert_eq!(configmap_writes(&client).await, 3);

    // SIGTERM: the leader gives the Lease up before it exits, and the standby takes over.
    leader.signal("-TERM");
    let status = leader.exited().await;
    assert!(status.success(), "{} exited with {status}", leader.name);
    assert_ne!(
        holder(&client).await.as_deref(),
        Some(leader.name),
        "a replica stopped by SIGTERM still holds the Lease"
    );
    let standby_name = standby.name;
    assert_eq!(the_leader(&client, &[&*standby]).await, 0);
    assert_eq!(holder(&client).await.as_deref(), Some(standby_name));
    change_and_see_published(&client, "RequestResponse", 2).await;
    let counters = standby.metrics().await.unwrap();
    assert!(counters.renders >= 1 && counters.configmap_writes >= 1);

    // A new standby; then SIGKILL: the dead leader still holds the Lease, which the standby
    // takes once it expired.
    let mut c = Replica::start("replica-c", &kubeconfig);
    eventually("replica-c ready", || c.get("/readyz")).await;
    assert_eq!(c.metrics().await.unwrap(), Counters::STANDBY);
    standby.signal("-KILL");
    standby.exited().await;
    assert_eq!(holder(&client).await.as_deref(), Some(standby_name));
    assert_eq!(the_leader(&client, &[&c]).await, 0);
    change_and_see_published(&client, "None", 3).await;
    assert!(c.metrics().await.unwrap().configmap_writes >= 1);
    c.signal("-TERM");
    assert!(c.exited().await.success());
}
