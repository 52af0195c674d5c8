//! The node tests' events in the console: the real agent follows the private dockerd and
//! sends with its `vigil` output to a console (the operator's, run in this process); a
//! viewer then sees the privileged container with the host's root mounted, its detections
//! and its raw Docker event, and the container among those running until it is removed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_operator::console::{
    AuthConfig, ConsoleConfig, ConsoleMetrics, ConsoleServer, ServerTls,
};
use vigil_testkit::certs::TestPki;
use vigil_testkit::docker::DockerEngine;

use crate::agent::TestAgent;

const VIEWER: &str = "console-viewer-token";
const AGENT_TOKEN: &str = "console-agent-token";

async fn page(client: &reqwest::Client, url: &str) -> String {
    let res = client.get(url).bearer_auth(VIEWER).send().await.unwrap();
    assert_eq!(res.status(), 200, "{url}");
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privileged_container_on_the_node_shows_in_the_console_with_its_detections() {
    let engine = DockerEngine::find();
    let agent = TestAgent::new();
    let pki = TestPki::create(&agent.path("pki"));
    std::fs::write(agent.path("viewers"), format!("{VIEWER}\n")).unwrap();
    std::fs::write(agent.path("senders"), format!("{AGENT_TOKEN}\n")).unwrap();
    std::fs::write(agent.path("agent-token"), format!("{AGENT_TOKEN}\n")).unwrap();
    let config = ConsoleConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: Some(ServerTls {
            cert_file: pki.server_cert.clone(),
            key_file: pki.server_key.clone(),
        }),
        store: serde_json::from_value(json!({"path": agent.path("console/events.db")})).unwrap(),
        auth: AuthConfig {
            viewer_token_files: vec![agent.path("viewers")],
            ingest_token_files: vec![agent.path("senders")],
            token_review: Default::default(),
        },
        ingest: Default::default(),
        peers: Default::default(),
        notifications: None,
        retention_interval_secs: 300,
        page_rows: 100,
    };
    let server = ConsoleServer::bind(
        config,
        Arc::new(|| true),
        None,
        Arc::new(ConsoleMetrics::default()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let console = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let socket = PathBuf::from(engine.host.strip_prefix("unix://").unwrap_or(&engine.host));
    agent.configure(
        &format!("  docker:\n    endpoint: unix://{}\n", socket.display()),
        &format!(
            "  - type: vigil\n    url: https://localhost:{port}\n    token_file: {token}\n    tls:\n      ca_file: {ca}\n",
            token = agent.path("agent-token").display(),
            ca = pki.ca_cert.display(),
        ),
    );
    let process = agent.start();
    agent.wait_metric_line(
        "vigil_docker_connected 1",
        "the docker source never connected",
    );

    let name = format!("vigil-console-{}", std::process::id());
    engine.docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--privileged",
        "-v",
        "/:/host",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        "io.kubernetes.pod.name=web-7d9f",
        "--label",
        "io.kubernetes.container.name=app",
        &engine.image,
        "sleep",
        "300",
    ]);

    let tls = vigil_core::outputs::tls::TlsSettings {
        ca_file: Some(pki.ca_cert.clone()),
        ..Default::default()
    }
    .client_config(vigil_core::outputs::tls::DefaultTrust::SystemRoots)
    .unwrap();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let detections = loop {
        let p = page(&client, &format!("{base}/detections?namespace=shop")).await;
        if p.contains("start web-7d9f/app (") || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        detections.contains(&format!("start web-7d9f/app ({})", engine.image)),
        "the container's detections in the console: {detections}"
    );
    for rule in ["container.privileged", "container.host-path"] {
        assert!(detections.contains(rule), "{rule} on the detections page");
    }
    let containers = page(&client, &format!("{base}/containers")).await;
    assert!(
        containers.contains("web-7d9f") && containers.contains(&engine.image),
        "{containers}"
    );
    // The event page carries the Docker event as the engine sent it.
    let at = detections.find("href=\"/events/").unwrap() + "href=\"".len();
    let link = detections[at..].split('"').next().unwrap();
    let event = page(&client, &format!("{base}{link}")).await;
    assert!(
        event.contains("&quot;Action&quot;") || event.contains("\"Action\""),
        "raw event: {event}"
    );

    engine.docker(&["rm", "-f", &name]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let containers = page(&client, &format!("{base}/containers")).await;
        if !containers.contains("web-7d9f") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the removed container is still shown as running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(process);
    let _ = stop.send(());
    console.await.unwrap();
}
