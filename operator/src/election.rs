//! Leader election over the Lease `chatroom-operator` (kube-lease-manager), so that replicas
//! never reconcile the same room at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

const LEASE: &str = "chatroom-operator";
/// How long a clean exit waits for the Lease to be released before leaving it to expire.
const RELEASE_BOUND: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("leader election: {0}")]
    Start(#[from] kube_lease_manager::LeaseManagerError),
    #[error("leader election stopped: {0}")]
    Stopped(#[from] watch::error::RecvError),
}

pub struct Election {
    identity: String,
    leading: watch::Receiver<bool>,
    task: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Election {
    /// Starts competing for the Lease in `namespace`; `duration` is how long a lease lasts
    /// unrenewed, so a standby takes over at most that long after the leader stops.
    pub async fn start(
        client: Client,
        namespace: &str,
        duration: Duration,
    ) -> Result<Self, ElectionError> {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("chatroom-operator-{}", std::process::id()));
        let seconds = duration.as_secs();
        let manager = LeaseManagerBuilder::new(client, LEASE)
            .with_namespace(namespace)
            .with_identity(&identity)
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .with_duration(seconds)
            // Renew a third of the way before expiry: two renewals may fail before the lease lapses.
            .with_grace(seconds / 3)
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        tracing::info!(%identity, %namespace, "waiting for the leader lease");
        Ok(Self {
            identity,
            leading,
            task,
        })
    }

    /// Completes once this replica holds the Lease.
    pub async fn won(&mut self) -> Result<(), ElectionError> {
        self.leading.wait_for(|leading| *leading).await?;
        tracing::info!(identity = %self.identity, "leading");
        Ok(())
    }

    /// Completes when this replica no longer holds the Lease.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut leading = self.leading.clone();
        async move {
            // An Err means the election task ended: we cannot know that we still lead.
            let _ = leading.wait_for(|leading| !*leading).await;
            tracing::warn!("lost the leader lease");
        }
    }

    pub fn leads(&self) -> bool {
        *self.leading.borrow()
    }

    /// Gives the Lease up so that a standby need not wait for it to expire; bounded, because
    /// an unreachable API server must not hold the exit up.
    pub async fn release(self) {
        drop(self.leading);
        match tokio::time::timeout(RELEASE_BOUND, self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!(identity = %self.identity, "released the leader lease"),
            Ok(Ok(Err(error))) => tracing::warn!(%error, "cannot release the leader lease"),
            Ok(Err(error)) => tracing::warn!(%error, "the leader-election task failed"),
            Err(_) => {
                tracing::warn!(bound = ?RELEASE_BOUND, "the leader lease was not released in time; it will expire")
            }
        }
    }
}

/// `--lease-duration`: whole seconds, at least 3, so that renewal has room before expiry.
pub fn parse_lease_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration.subsec_nanos() != 0 || duration < Duration::from_secs(3) {
        return Err("must be whole seconds, at least 3s".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_durations_are_whole_seconds_of_at_least_three() {
        assert_eq!(parse_lease_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_lease_duration("1m"), Ok(Duration::from_secs(60)));
        for bad in ["2s", "3500ms", "0s", "soon"] {
            assert!(parse_lease_duration(bad).is_err(), "{bad} was accepted");
        }
    }
}
