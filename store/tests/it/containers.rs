//! Containers running now, from runtime events, whatever order they arrive in.

use serde_json::{Value, json};
use vigil_core::event::Event;
use vigil_store::ContainerState;

use crate::common::*;

fn runtime(id: &str, container: &str, node: &str, action: &str, secs: i64) -> Event {
    event(
        id,
        secs,
        json!({"source": "docker", "kind": "runtime", "action": action, "node": node,
               "container": {"id": container, "name": format!("{container}-name"),
                             "image": "nginx:1.27", "image_id": "sha256:abc", "runtime": "docker",
                             "pod": {"namespace": "shop", "name": format!("{container}-pod")}}}),
    )
}

fn sighting(id: &str, container: &str, node: &str, kind: &str, secs: i64) -> Event {
    let mut fields: Value = json!({"source": "container_log", "kind": kind, "action": "log",
        "node": node, "container": {"id": container}});
    if kind == "metrics" {
        fields["source"] = json!("stats");
        fields["action"] = json!("sample");
    }
    event(id, secs, fields)
}

fn running(s: &TestStore) -> Vec<ContainerState> {
    s.store.containers().unwrap()
}

fn one(s: &TestStore, id: &str) -> Option<ContainerState> {
    running(s).into_iter().find(|c| c.id == id)
}

#[test]
fn start_pause_unpause_die_follow_the_container() {
    let s = TestStore::new();
    s.insert(&[runtime("e1", "c1", "n1", "create", 10)]);
    assert!(running(&s).is_empty(), "created is not running");

    s.insert(&[runtime("e2", "c1", "n1", "start", 20)]);
    let c = one(&s, "c1").unwrap();
    assert_eq!(
        c,
        ContainerState {
            id: "c1".into(),
            name: Some("c1-name".into()),
            image: Some("nginx:1.27".into()),
            image_id: Some("sha256:abc".into()),
            runtime: Some("docker".into()),
            node: Some("n1".into()),
            namespace: Some("shop".into()),
            pod: Some("c1-pod".into()),
            state: "running".into(),
            since: at(20),
            last_seen: at(20),
        }
    );

    s.insert(&[runtime("e3", "c1", "n1", "pause", 30)]);
    let c = one(&s, "c1").unwrap();
    assert_eq!(
        (c.state.as_str(), c.since.as_str()),
        ("paused", at(20).as_str())
    );

    s.insert(&[runtime("e4", "c1", "n1", "unpause", 40)]);
    let c = one(&s, "c1").unwrap();
    assert_eq!(
        (c.state.as_str(), c.since.as_str()),
        ("running", at(20).as_str()),
        "since the start"
    );
    assert_eq!(c.last_seen, at(40));

    // Neither an exec ending nor a kill signal stops the container; the die does.
    s.insert(&[
        runtime("e5", "c1", "n1", "exec_die", 45),
        runtime("e6", "c1", "n1", "kill", 49),
    ]);
    assert_eq!(one(&s, "c1").unwrap().state, "running");
    s.insert(&[runtime("e7", "c1", "n1", "die", 50)]);
    assert_eq!(one(&s, "c1"), None);

    // Started again: a new run.
    s.insert(&[runtime("e8", "c1", "n1", "start", 60)]);
    assert_eq!(one(&s, "c1").unwrap().since, at(60));
    s.insert(&[runtime("e9", "c1", "n1", "destroy", 70)]);
    assert!(running(&s).is_empty());
}

#[test]
fn stop_and_containerd_task_delete_also_end_a_container() {
    let s = TestStore::new();
    s.insert(&[
        runtime("a1", "c1", "n1", "start", 10),
        runtime("a2", "c2", "n1", "start", 10),
    ]);
    s.insert(&[
        runtime("a3", "c1", "n1", "stop", 20),
        runtime("a4", "c2", "n1", "task_delete", 20),
    ]);
    assert!(running(&s).is_empty());
}

#[test]
fn an_older_event_arriving_late_does_not_flip_the_state() {
    let s = TestStore::new();
    // A start, then the die of the previous run arrives late.
    s.insert(&[runtime("b2", "c1", "n1", "start", 200)]);
    s.insert(&[runtime("b1", "c1", "n1", "die", 100)]);
    let c = one(&s, "c1").unwrap();
    assert_eq!(
        (c.state.as_str(), c.since.as_str()),
        ("running", at(200).as_str())
    );

    // A die, then the start it ended arrives late: the container stays gone.
    s.insert(&[runtime("b4", "c2", "n1", "die", 400)]);
    s.insert(&[runtime("b3", "c2", "n1", "start", 300)]);
    assert_eq!(one(&s, "c2"), None);

    // A pause older than the unpause already seen.
    s.insert(&[
        runtime("b5", "c1", "n1", "unpause", 500),
        runtime("b6", "c1", "n1", "pause", 450),
    ]);
    assert_eq!(one(&s, "c1").unwrap().state, "running");
    assert_eq!(
        one(&s, "c1").unwrap().last_seen,
        at(500),
        "last seen never goes back"
    );

    // Within one batch, in any order.
    s.insert(&[
        runtime("b8", "c3", "n1", "die", 800),
        runtime("b7", "c3", "n1", "start", 700),
    ]);
    assert_eq!(one(&s, "c3"), None);
}

#[test]
fn any_event_of_a_running_container_refreshes_last_seen() {
    let s = TestStore::new();
    s.insert(&[runtime("c1", "web", "n1", "start", 10)]);
    s.insert(&[sighting("c2", "web", "n1", "log", 50)]);
    assert_eq!(one(&s, "web").unwrap().last_seen, at(50));
    s.insert(&[sighting("c3", "web", "n1", "metrics", 90)]);
    assert_eq!(one(&s, "web").unwrap().last_seen, at(90));
    s.insert(&[sighting("c4", "web", "n1", "process", 70)]);
    assert_eq!(
        one(&s, "web").unwrap().last_seen,
        at(90),
        "an older sighting changes nothing"
    );
    assert_eq!(one(&s, "web").unwrap().since, at(10));
    // A log line of a container never seen starting does not invent a running container.
    s.insert(&[sighting("c5", "ghost", "n1", "log", 95)]);
    assert_eq!(one(&s, "ghost"), None);
}

#[test]
fn the_same_container_id_on_two_nodes_is_two_containers() {
    let s = TestStore::new();
    s.insert(&[
        runtime("d1", "c1", "n1", "start", 10),
        runtime("d2", "c1", "n2", "start", 10),
    ]);
    s.insert(&[runtime("d3", "c1", "n1", "die", 20)]);
    let list = running(&s);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].node.as_deref(), Some("n2"));
}

#[test]
fn a_duplicate_event_changes_nothing_and_state_survives_a_restart() {
    let s = TestStore::new();
    s.insert(&[
        runtime("f1", "c1", "n1", "start", 10),
        runtime("f2", "c1", "n1", "die", 20),
    ]);
    s.insert(&[runtime("f3", "c1", "n1", "start", 30)]);
    // The old start replayed (same id): ignored, since stays that of the latest start.
    let r = s
        .store
        .insert(
            &[runtime("f1", "c1", "n1", "start", 10)],
            vigil_store::Origin::Local,
        )
        .unwrap();
    assert_eq!(r.duplicates, 1);
    let s = s.reopen();
    let c = one(&s, "c1").unwrap();
    assert_eq!(
        (c.state.as_str(), c.since.as_str()),
        ("running", at(30).as_str())
    );
}
