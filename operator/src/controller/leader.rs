//! Two replicas, one writer: the controller runs only in the replica holding the Lease.
//!
//! Election is kube-lease-manager's (a `coordination.k8s.io/v1` Lease in the operator's
//! namespace). The leader renews it every few seconds; when it stops (crash, partition),
//! the standby takes over once `duration` has passed without renewal. A leader that loses
//! the Lease drops its controller at once, which cancels its watches and reconciles, and
//! stands by. Two leaders at once are possible only for the renewal skew of one `grace`
//! period; every write the controller makes is idempotent (same render, same status), so
//! the overlap writes the same data twice at worst.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use super::{Config, Error, FIELD_MANAGER, Metrics};

/// The Lease and who competes for it.
#[derive(Debug, Clone)]
pub struct Election {
    /// Lease name, in the operator's namespace.
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Seconds without renewal after which the Lease is free.
    pub duration_secs: u64,
    /// Seconds before expiry at which the holder renews.
    pub grace_secs: u64,
}

/// This replica's field manager on the Lease. Taking a free Lease is a server-side apply of
/// `holderIdentity`, and the API server refuses it with a conflict only when another
/// *manager* set that field: replicas sharing one manager name would overwrite each other
/// and both lead.
fn field_manager(identity: &str) -> String {
    // The API server refuses field managers longer than 128 bytes.
    const MAX: usize = 128;
    let mut name = format!("{FIELD_MANAGER}-{identity}");
    let mut end = name.len().min(MAX);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

/// Runs [`super::run`] whenever this replica leads, until `shutdown` completes; then gives
/// the Lease up so the other replica takes over without waiting for it to expire.
pub async fn run(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    election: Election,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&config.namespace)
        .with_identity(&election.identity)
        .with_duration(election.duration_secs)
        .with_grace(election.grace_secs)
        .with_field_manager(field_manager(&election.identity))
        .build()
        .await
        .map_err(|e| Error::Lease(Box::new(e)))?;
    metrics.ready.store(true, Relaxed);
    let (mut leading, task) = manager.watch().await;
    let work = async {
        loop {
            while !*leading.borrow_and_update() {
                tracing::info!(identity = %election.identity, "standing by");
                leading
                    .changed()
                    .await
                    .map_err(|_| Error::Ended("leader election"))?;
            }
            tracing::info!(identity = %election.identity, "leading");
            metrics.leader.store(true, Relaxed);
            let lost = async {
                loop {
                    if leading.changed().await.is_err() || !*leading.borrow() {
                        return;
                    }
                }
            };
            let result = tokio::select! {
                r = super::run(client.clone(), config.clone(), Arc::clone(&metrics)) => Some(r),
                () = lost => None,
            };
            metrics.leader.store(false, Relaxed);
            match result {
                Some(r) => return r,
                None => tracing::warn!("lost the leader Lease; standing by"),
            }
        }
    };
    let result = tokio::select! {
        r = work => r,
        () = shutdown => Ok(()),
    };
    // Closing the channel makes the manager release the Lease.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), task).await {
        Ok(Ok(Ok(_))) => tracing::info!("leader Lease released"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the leader Lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "leader election task failed"),
        Err(_) => tracing::warn!("leader Lease not released within 5 s; it expires by itself"),
    }
    result
}
