//! The containers running now, as the runtime events tell it.
//!
//! One row per container (by node and runtime id) holds its last state and the time of the
//! event that set it. An event older than that time changes nothing, so an old `die`
//! arriving after a newer `start` (an agent's spool replaying, a peer's copy catching up)
//! leaves the container running. A container that stopped keeps its row, as `exited`, for
//! the same reason: a late `start` older than the `die` must not bring it back. Retention
//! removes such rows after the event retention.

use rusqlite::{OptionalExtension, params};
use vigil_core::event::{Event, Kind};

use crate::Store;
use crate::error::{self, StoreError};

/// A container running (or paused) now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// Runtime container id.
    pub id: String,
    /// Container name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Image id or digest.
    pub image_id: Option<String>,
    /// `docker`, `containerd` ...
    pub runtime: Option<String>,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its pod's namespace.
    pub namespace: Option<String>,
    /// Its pod.
    pub pod: Option<String>,
    /// `running` or `paused`.
    pub state: String,
    /// When it was started (RFC 3339, as the event said).
    pub since: String,
    /// The newest event that concerned it.
    pub last_seen: String,
}

/// What a runtime action does to a container's state; `None` for actions that leave it
/// (`kill` and `oom` are followed by a `die` when the container does stop; `create` and
/// containerd's `task_create` are not running yet).
fn transition(action: &str) -> Option<&'static str> {
    match action {
        "start" | "restart" | "unpause" => Some("running"),
        "pause" => Some("paused"),
        // containerd's `task_delete` follows the main process's exit, `destroy` is the
        // container record going away (both runtimes).
        "die" | "stop" | "destroy" | "task_delete" => Some("exited"),
        _ => None,
    }
}

/// Records what `ev` says about its container.
pub(crate) fn observe(
    tx: &rusqlite::Transaction<'_>,
    ev: &Event,
    time_ns: i64,
) -> error::Result<()> {
    let Some(c) = &ev.container else {
        return Ok(());
    };
    let Some(id) = c.id.as_deref().filter(|id| !id.is_empty()) else {
        return Ok(());
    };
    let node = ev.node.as_deref().unwrap_or("");
    let next = if ev.kind == Kind::Runtime {
        transition(&ev.action)
    } else {
        None
    };
    let Some(next) = next else {
        // Any event of a known container says it was alive then.
        tx.prepare_cached(
            "UPDATE containers SET last_seen = ?3, last_seen_ns = ?4
             WHERE node = ?1 AND id = ?2 AND last_seen_ns < ?4",
        )?
        .execute(params![node, id, ev.time, time_ns])?;
        return Ok(());
    };
    let known: Option<(String, i64, String, i64)> = tx
        .prepare_cached(
            "SELECT state, state_ns, since, last_seen_ns FROM containers WHERE node = ?1 AND id = ?2",
        )?
        .query_row(params![node, id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let pod = c.pod.as_ref();
    match known {
        Some((_, state_ns, _, _)) if state_ns > time_ns => {
            // Older than what set the state: only the facts it may add and the last sighting.
            tx.prepare_cached(
                "UPDATE containers SET
                     name = coalesce(name, ?3), image = coalesce(image, ?4),
                     image_id = coalesce(image_id, ?5), runtime = coalesce(runtime, ?6),
                     namespace = coalesce(namespace, ?7), pod = coalesce(pod, ?8),
                     last_seen = CASE WHEN last_seen_ns < ?10 THEN ?9 ELSE last_seen END,
                     last_seen_ns = max(last_seen_ns, ?10)
                 WHERE node = ?1 AND id = ?2",
            )?
            .execute(params![
                node,
                id,
                c.name,
                c.image,
                c.image_id,
                c.runtime,
                pod.and_then(|p| p.namespace.as_deref()),
                pod.and_then(|p| p.name.as_deref()),
                ev.time,
                time_ns,
            ])?;
        }
        known => {
            // `since` is the start of the current run: kept across pause and unpause, set
            // anew by a start after an exit (or a restart).
            let since = match &known {
                Some((state, _, since, _))
                    if state != "exited" && !matches!(ev.action.as_str(), "start" | "restart") =>
                {
                    since.clone()
                }
                _ => ev.time.clone(),
            };
            let newer_sighting = known.as_ref().is_none_or(|k| k.3 <= time_ns);
            tx.prepare_cached(
                "INSERT INTO containers (node, id, name, image, image_id, runtime, namespace, pod,
                     state, state_ns, since, last_seen, last_seen_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?10)
                 ON CONFLICT (node, id) DO UPDATE SET
                     name = coalesce(excluded.name, name),
                     image = coalesce(excluded.image, image),
                     image_id = coalesce(excluded.image_id, image_id),
                     runtime = coalesce(excluded.runtime, runtime),
                     namespace = coalesce(excluded.namespace, namespace),
                     pod = coalesce(excluded.pod, pod),
                     state = excluded.state, state_ns = excluded.state_ns, since = excluded.since,
                     last_seen = CASE WHEN ?13 THEN excluded.last_seen ELSE last_seen END,
                     last_seen_ns = max(last_seen_ns, excluded.last_seen_ns)",
            )?
            .execute(params![
                node,
                id,
                c.name,
                c.image,
                c.image_id,
                c.runtime,
                pod.and_then(|p| p.namespace.as_deref()),
                pod.and_then(|p| p.name.as_deref()),
                next,
                time_ns,
                since,
                ev.time,
                newer_sighting,
            ])?;
        }
    }
    Ok(())
}

impl Store {
    /// The containers running or paused now, by namespace, pod and name. Retention drops
    /// a container nothing was heard of for `event_retention_secs` (its node is gone, or
    /// its stop was never received).
    pub fn containers(&self) -> Result<Vec<ContainerState>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, image, image_id, runtime, node, namespace, pod, state, since,
                        last_seen
                 FROM containers WHERE state IN ('running', 'paused')
                 ORDER BY namespace, pod, name, node, id",
            )?;
            let rows = stmt.query_map([], |r| {
                let node: String = r.get(5)?;
                Ok(ContainerState {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    image: r.get(2)?,
                    image_id: r.get(3)?,
                    runtime: r.get(4)?,
                    node: (!node.is_empty()).then_some(node),
                    namespace: r.get(6)?,
                    pod: r.get(7)?,
                    state: r.get(8)?,
                    since: r.get(9)?,
                    last_seen: r.get(10)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
