//! A real Docker engine to a Wazuh manager stand-in through `vigil-agent run`: the agent
//! enrolls, starts, keeps alive, and a container's events arrive in docker-listener's own
//! shape on `Wazuh-Docker`, with Vigil's detections beside them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vigil_testkit::docker::DockerEngine;
use vigil_testkit::process::AgentProcess;
use vigil_testkit::wazuh::{PeerConfig, WazuhPeer};

/// The Docker messages the peer received, parsed.
fn docker_messages(peer: &WazuhPeer) -> Vec<(String, Value)> {
    peer.seen(|s| {
        s.events()
            .iter()
            .filter_map(|m| {
                let json = m.strip_prefix("1:Wazuh-Docker:")?;
                Some((json.to_owned(), serde_json::from_str(json).ok()?))
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_events_reach_the_manager_as_docker_listener_sends_them() {
    let engine = DockerEngine::find();
    let dir = tempfile::tempdir().unwrap();
    let peer = WazuhPeer::start(&dir.path().join("pki"), PeerConfig::default()).await;
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!(
            r#"node: docker-node-1
state_dir: {state}
sources:
  audit_log:
    enabled: false
  docker:
    endpoint: {host}
    start_at: end
outputs:
  - type: wazuh
    manager: 127.0.0.1
    port: {remoted}
    agent_version: v4.7.0
    keepalive_secs: 1
    enrollment:
      port: {authd}
      tls: {{ ca_file: {ca}, server_name: localhost }}
"#,
            state = dir.path().join("state").display(),
            host = engine.host,
            remoted = peer.remoted.port(),
            authd = peer.authd.port(),
            ca = peer.pki.ca_cert.display(),
        ),
    )
    .unwrap();
    let agent = AgentProcess::start(Path::new(env!("CARGO_BIN_EXE_vigil-agent")), &config);
    peer.wait_for("the agent's startup", Duration::from_secs(30), |s| {
        s.control("#!-agent startup") >= 1 && s.control("#!-Linux") >= 1
    })
    .await;
    // The source subscribes from "now": give it a moment after the manager connection.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let name = format!("vigil-wazuh-{}", std::process::id());
    engine.docker(&[
        "run",
        "--name",
        &name,
        "--privileged",
        &engine.image,
        "true",
    ]);
    peer.wait_for(
        "the container's start event",
        Duration::from_secs(30),
        |s| {
            s.events().iter().any(|m| {
                m.starts_with("1:Wazuh-Docker:")
                    && m.contains(&name)
                    && m.contains(r#""Action":"start""#)
            })
        },
    )
    .await;
    engine.docker(&["rm", &name]);
    peer.wait_for(
        "the container's destroy event",
        Duration::from_secs(30),
        |s| {
            s.events()
                .iter()
                .any(|m| m.contains(&name) && m.contains(r#""Action":"destroy""#))
        },
    )
    .await;

    let ours: Vec<(String, Value)> = docker_messages(&peer)
        .into_iter()
        .filter(|(_, v)| v["docker"]["Actor"]["Attributes"]["name"] == name.as_str())
        .collect();
    let (start_text, start) = ours
        .iter()
        .find(|(_, v)| v["docker"]["Action"] == "start")
        .unwrap();
    assert!(
        start_text.starts_with(r#"{"integration":"docker","docker":{"#),
        "docker-listener's shape, integration first: {start_text}"
    );
    assert_eq!(start["docker"]["Type"], "container");
    assert_eq!(
        start["docker"]["Actor"]["Attributes"]["image"],
        engine.image.as_str()
    );
    assert_eq!(start["vigil"]["source"], "docker");
    assert_eq!(start["vigil"]["node"], "docker-node-1");
    assert_eq!(
        start["vigil"]["alert"]["rule"], "container.privileged",
        "{start}"
    );
    let actions: Vec<&str> = ours
        .iter()
        .filter_map(|(_, v)| v["docker"]["Action"].as_str())
        .collect();
    for want in ["create", "start", "die", "destroy"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
    peer.seen(|s| {
        assert_eq!(s.enrollments, ["OSSEC A:'docker-node-1' V:'v4.7.0'"]);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    });
    drop(agent);
}
