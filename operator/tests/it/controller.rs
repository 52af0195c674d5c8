//! The controller's conversation with an API server over HTTP: kmock's in-memory Kubernetes
//! with the shim of `testkit/kmock/shim.py`, started here on a free port. What is checked is
//! what a user sees with kubectl: the ConfigMaps, the ContainerMonitors' status, the Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::api::events::v1::Event;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use vigil_operator::controller::{self, Metrics};
use vigil_operator::crd::{ContainerMonitor, ContainerMonitorStatus};

const NS: &str = "vigil-system";

/// The fake API server (kmock behind the shim), stopped when dropped.
struct Kmock(vigil_testkit::kmock::Kmock);

impl Kmock {
    fn start() -> Kmock {
        Kmock(vigil_testkit::kmock::Kmock::start())
    }

    fn client(&self) -> Client {
        let mut config = kube::Config::new(self.0.url().parse().unwrap());
        config.default_namespace = NS.into();
        Client::try_from(config).unwrap()
    }

    /// Requests the fake API server received, as `METHOD PATH`.
    async fn requests(&self, client: &Client) -> Vec<String> {
        let request = http::Request::get("/_shim/requests")
            .body(Vec::new())
            .unwrap();
        let text = client.request_text(request).await.unwrap();
        let pairs: Vec<(String, String)> = serde_json::from_str(&text).unwrap();
        pairs.into_iter().map(|(m, p)| format!("{m} {p}")).collect()
    }
}

/// Polls `check` until it returns something, for at most 20 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
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

fn config() -> controller::Config {
    let mut config = controller::Config::new(NS);
    config.debounce = Duration::from_millis(50);
    config.instance = Some("test".into());
    config
}

fn monitor(namespace: &str, name: &str, spec: serde_json::Value) -> ContainerMonitor {
    serde_json::from_value(json!({
        "apiVersion": "vigil.dev/v1alpha1",
        "kind": "ContainerMonitor",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap()
}

fn node(name: &str, control_plane: bool) -> Node {
    let labels: BTreeMap<String, String> = if control_plane {
        BTreeMap::from([(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        )])
    } else {
        BTreeMap::new()
    };
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
    }))
    .unwrap()
}

async fn data(client: &Client, name: &str) -> Option<BTreeMap<String, String>> {
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
        .and_then(|c| c.data)
}

async fn status(client: &Client, ns: &str, name: &str) -> ContainerMonitorStatus {
    Api::<ContainerMonitor>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
        .status
        .unwrap_or_default()
}

fn condition<'a>(
    s: &'a ContainerMonitorStatus,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

/// Levels the policy gives to a namespace's own rules.
fn namespace_levels(policy_yaml: &str, namespace: &str) -> Vec<String> {
    let policy: serde_json::Value = yaml_serde::from_str(policy_yaml).unwrap();
    policy["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["namespaces"] == json!([namespace]))
        .map(|r| r["level"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitors_become_configmaps_and_statuses() {
    let api = Kmock::start();
    let client = api.client();
    let nodes = Api::<Node>::all(client.clone());
    for (name, cp) in [("cp-1", true), ("cp-2", true), ("worker-1", false)] {
        nodes
            .create(&PostParams::default(), &node(name, cp))
            .await
            .unwrap();
    }
    let metrics = Arc::new(Metrics::default());
    let running = tokio::spawn(controller::run(
        client.clone(),
        config(),
        Arc::clone(&metrics),
    ));

    // Create: the policy names the namespace, the agents get its configuration.
    let shop = Api::<ContainerMonitor>::namespaced(client.clone(), "shop");
    shop.create(
        &PostParams::default(),
        &monitor("shop", "web", json!({"audit": {"level": "Request"}})),
    )
    .await
    .unwrap();
    let policy = eventually("the policy ConfigMap with namespace shop", || async {
        data(&client, "vigil-audit-policy")
            .await
            .filter(|d| d.get("policy.yaml").is_some_and(|p| p.contains("shop")))
    })
    .await;
    let hash = policy["hash"].clone();
    assert_eq!(
        hash,
        vigil_operator::render::hash_hex(policy["policy.yaml"].as_bytes())
    );
    assert_eq!(
        namespace_levels(&policy["policy.yaml"], "shop"),
        ["Request"]
    );
    let agents = data(&client, "vigil-agent-config").await.unwrap();
    assert_eq!(agents.keys().collect::<Vec<_>>(), ["shop.yaml"]);
    assert!(agents["shop.yaml"].contains("namespace: shop"));
    // The agents' report ConfigMap exists for them to patch.
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get_opt("vigil-policy-status")
            .await
            .unwrap()
            .is_some()
    );

    let s = eventually("the status of shop/web", || async {
        let s = status(&client, "shop", "web").await;
        (s.policy_hash.as_deref() == Some(hash.as_str())).then_some(s)
    })
    .await;
    assert_eq!(s.observed_generation, Some(1));
    let nodes_status = s.nodes.clone().unwrap();
    assert_eq!((nodes_status.applied, nodes_status.total), (0, 2));
    assert_eq!(condition(&s, "PolicyRendered").unwrap().1, "Rendered");
    let (ready, reason, _) = condition(&s, "Ready").unwrap();
    assert_eq!((ready, reason), ("False", "Pending"));
    assert!(
        condition(&s, "PolicyApplied")
            .unwrap()
            .2
            .ends_with("not yet on cp-1, cp-2")
    );

    // The agents of both control-plane nodes report the policy: Ready.
    let cms = Api::<ConfigMap>::namespaced(client.clone(), NS);
    cms.patch(
        "vigil-policy-status",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"cp-1": hash, "cp-2": hash}})),
    )
    .await
    .unwrap();
    let s = eventually("shop/web Ready", || async {
        let s = status(&client, "shop", "web").await;
        (condition(&s, "Ready").map(|c| c.0) == Some("True")).then_some(s)
    })
    .await;
    let nodes_status = s.nodes.clone().unwrap();
    assert_eq!((nodes_status.applied, nodes_status.total), (2, 2));

    // Update: a new policy, a new hash in the status, not applied anywhere yet.
    shop.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"audit": {"level": "RequestResponse"}}})),
    )
    .await
    .unwrap();
    let s = eventually("shop/web at generation 2", || async {
        let s = status(&client, "shop", "web").await;
        (s.observed_generation == Some(2)).then_some(s)
    })
    .await;
    let policy = data(&client, "vigil-audit-policy").await.unwrap();
    assert_ne!(policy["hash"], hash);
    assert_eq!(s.policy_hash.as_deref(), Some(policy["hash"].as_str()));
    assert_eq!(
        namespace_levels(&policy["policy.yaml"], "shop"),
        ["RequestResponse"]
    );
    assert_eq!(s.nodes.clone().unwrap().applied, 0);
    assert_eq!(condition(&s, "PolicyApplied").unwrap().1, "Pending");

    // A monitor with an inline rule that does not load: the rest applies, the status says
    // which rule and why, and a Warning Event says it too.
    let research = Api::<ContainerMonitor>::namespaced(client.clone(), "research");
    research
        .create(
            &PostParams::default(),
            &monitor(
                "research",
                "lab",
                json!({"detections": {
                    "disabled": ["container.exec"],
                    "rules": ["title: Not YAML at all\ndetection: [unclosed\n"],
                }}),
            ),
        )
        .await
        .unwrap();
    let s = eventually("research/lab rendered", || async {
        let s = status(&client, "research", "lab").await;
        condition(&s, "PolicyRendered").is_some().then_some(s)
    })
    .await;
    let (rendered, reason, message) = condition(&s, "PolicyRendered").unwrap();
    assert_eq!((rendered, reason), ("False", "Degraded"));
    assert!(message.contains("spec.detections.rules[0]"), "{message}");
    assert!(message.contains("YAML parse error"), "{message}");
    assert_eq!(condition(&s, "Ready").unwrap().0, "False");
    let agents = data(&client, "vigil-agent-config").await.unwrap();
    assert_eq!(
        agents.keys().collect::<Vec<_>>(),
        ["research.yaml", "shop.yaml"]
    );
    assert!(agents["research.yaml"].contains("container.exec"));
    let event = eventually("a Warning Event on research/lab", || async {
        Api::<Event>::namespaced(client.clone(), "research")
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lab"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reason.as_deref(), Some("Degraded"));
    assert!(event.note.unwrap().contains("spec.detections.rules[0]"));

    // Delete: the namespace leaves the policy and the agents' configuration.
    shop.delete("web", &DeleteParams::default()).await.unwrap();
    let agents = eventually("shop's configuration removed", || async {
        data(&client, "vigil-agent-config")
            .await
            .filter(|d| !d.contains_key("shop.yaml"))
    })
    .await;
    assert_eq!(agents.keys().collect::<Vec<_>>(), ["research.yaml"]);
    let policy = data(&client, "vigil-audit-policy").await.unwrap();
    assert!(namespace_levels(&policy["policy.yaml"], "shop").is_empty());
    let lab = eventually("research/lab on the last policy", || async {
        let s = status(&client, "research", "lab").await;
        (s.policy_hash.as_deref() == Some(policy["hash"].as_str())).then_some(s)
    })
    .await;

    // Nothing changed: a restarted controller reconciles every monitor and renders, but
    // writes no status and no ConfigMap.
    running.abort();
    let _ = running.await;
    let writes = |requests: Vec<String>| {
        requests
            .into_iter()
            .filter(|r| {
                (r.starts_with("PATCH ") || r.starts_with("POST "))
                    && (r.ends_with("/status") || r.contains("/configmaps"))
            })
            .count()
    };
    let before = writes(api.requests(&client).await);
    let again = Arc::new(Metrics::default());
    let running = tokio::spawn(controller::run(
        client.clone(),
        config(),
        Arc::clone(&again),
    ));
    eventually("a reconcile after the restart", || async {
        (again.reconciles.load(std::sync::atomic::Ordering::Relaxed) >= 1
            && again.renders.load(std::sync::atomic::Ordering::Relaxed) >= 1)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writes(api.requests(&client).await), before);
    assert_eq!(
        again
            .status_writes
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        again
            .configmap_writes
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(status(&client, "research", "lab").await, lab);
    running.abort();
}

/// The console's monitors page shows what the controller wrote into the statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_monitors_and_their_status() {
    use super::console::{Console, VIEWER};
    let api = Kmock::start();
    let client = api.client();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node("cp-1", true))
        .await
        .unwrap();
    let running = tokio::spawn(controller::run(
        client.clone(),
        config(),
        Arc::new(Metrics::default()),
    ));
    for (ns, name) in [("shop", "web"), ("payments", "api")] {
        Api::<ContainerMonitor>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &monitor(ns, name, json!({})))
            .await
            .unwrap();
    }
    eventually("both statuses", || async {
        let a = status(&client, "shop", "web").await;
        let b = status(&client, "payments", "api").await;
        (a.nodes.is_some() && b.nodes.is_some()).then_some(())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(vigil_testkit::certs::TestPki::create(
        &dir.path().join("pki"),
    ));
    let console =
        Console::start_with(&dir.path().join("c"), pki, Some(client.clone()), |_| {}).await;
    let (code, page) = console.get("/monitors", Some(VIEWER)).await;
    assert_eq!(code, 200, "{page}");
    let rows: Vec<&str> = page.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{page}");
    // Sorted by namespace; not ready, the policy applied on none of the one control plane.
    assert!(
        rows[0].contains("<td>payments</td><td>api</td><td>False"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("<td>shop</td><td>web</td><td>False"),
        "{}",
        rows[1]
    );
    assert!(rows.iter().all(|r| r.contains("0 / 1")), "{rows:?}");
    assert!(
        rows[0].contains("PolicyApplied"),
        "the condition's message says why: {}",
        rows[0]
    );
    console.stop().await;
    running.abort();
}

/// The console asks the API server who a token belongs to (TokenReview) and admits it by
/// user or group, for the role it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_admits_tokens_by_what_the_token_review_says() {
    use super::console::{Console, INGEST};
    use vigil_operator::console::TokenReviewConfig;
    let api = Kmock::start();
    let client = api.client();
    let tokens = json!({
        "sa-viewer": {"username": "system:serviceaccount:vigil-system:viewer", "groups": ["system:serviceaccounts"]},
        "alice": {"username": "alice@example.com", "groups": ["security-team", "system:authenticated"]},
        "bob": {"username": "bob@example.com", "groups": ["developers"]},
        "sa-agent": {"username": "system:serviceaccount:vigil-system:vigil-agent", "groups": []},
    });
    let request = http::Request::post("/_shim/tokens")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&tokens).unwrap())
        .unwrap();
    client.request_text(request).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(vigil_testkit::certs::TestPki::create(
        &dir.path().join("pki"),
    ));
    let console = Console::start_with(&dir.path().join("c"), pki, Some(client.clone()), |c| {
        c.auth.token_review = TokenReviewConfig {
            viewer_users: vec!["system:serviceaccount:vigil-system:viewer".into()],
            viewer_groups: vec!["security-team".into()],
            ingest_users: vec!["system:serviceaccount:vigil-system:vigil-agent".into()],
            cache_secs: 60,
        };
    })
    .await;
    for (token, code) in [
        ("sa-viewer", 200),
        ("alice", 200),
        ("bob", 403),
        ("sa-agent", 403),
        ("made-up", 403),
        (INGEST, 403),
    ] {
        let (got, _) = console.get("/events", Some(token)).await;
        assert_eq!(got, code, "viewing with {token}");
    }
    let http = console.client();
    for (token, code) in [("sa-agent", 200), ("alice", 403), ("made-up", 403)] {
        let res = http
            .post(console.url("/api/v1/ingest"))
            .bearer_auth(token)
            .body(
                serde_json::to_string(&super::console::runtime_event(
                    1,
                    "start",
                    "c",
                    "ns",
                    "n",
                    "2026-11-23T10:00:00Z",
                ))
                .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), code, "sending with {token}");
    }
    // Answers are reused: the same tokens again cost no more reviews.
    let reviews = |log: Vec<String>| log.iter().filter(|r| r.contains("tokenreviews")).count();
    let before = reviews(api.requests(&client).await);
    let (got, _) = console.get("/events", Some("alice")).await;
    assert_eq!(got, 200);
    assert_eq!(reviews(api.requests(&client).await), before);
    assert_eq!(before, 6, "one review per distinct token");
    console.stop().await;
}
