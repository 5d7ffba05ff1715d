//! The reconciler core every driver shares (`local`, `apply`/`delete`, and the controller):
//! validate → converge through a provider → the status to write.

use std::sync::Arc;

use crate::crd::{ChatRoom, ChatRoomStatus};
use crate::providers::aws::AwsProvider;
use crate::providers::local::LocalProvider;
use crate::status::{ConditionStatus, READY, set_condition};
use crate::validate::validate;

/// Where rooms run.
#[derive(Clone)]
pub enum Provider {
    Local(LocalProvider),
    Aws(Arc<AwsProvider>),
}

/// What one reconcile made of a room.
#[derive(Debug)]
pub struct Reconciled {
    pub status: ChatRoomStatus,
    pub failure: Option<Failure>,
    /// What this reconcile created or changed, e.g. `table Created`; empty when nothing.
    pub changes: Vec<String>,
}

impl Reconciled {
    pub fn is_ready(&self) -> bool {
        self.failure.is_none()
    }
}

/// Why a room is not ready, and whether waiting could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub message: String,
    /// Only a change to the spec, the operator's files or its permissions fixes it.
    pub permanent: bool,
}

pub async fn reconcile(provider: &Provider, room: &ChatRoom) -> Reconciled {
    if let Err(invalid) = validate(room) {
        // Nothing is called in the cloud for a spec that breaks a rule.
        let failure = Failure {
            reason: "InvalidSpec".into(),
            message: invalid.to_string(),
            permanent: true,
        };
        return not_ready(room, room.status.clone().unwrap_or_default(), failure);
    }
    match provider {
        Provider::Local(local) => match local.converge(room) {
            Ok(status) => Reconciled {
                status,
                failure: None,
                changes: Vec::new(),
            },
            Err(error) => {
                let failure = Failure {
                    reason: "InvalidSpec".into(),
                    message: error.to_string(),
                    permanent: true,
                };
                not_ready(room, room.status.clone().unwrap_or_default(), failure)
            }
        },
        Provider::Aws(aws) => {
            let converged = aws.converge(room).await;
            let failure = converged.error.map(|error| Failure {
                reason: error.code.clone(),
                permanent: error.is_permanent(),
                message: error.to_string(),
            });
            let changes = converged
                .changes
                .iter()
                .map(|(step, outcome)| format!("{step} {outcome:?}"))
                .collect();
            Reconciled {
                status: converged.status,
                failure,
                changes,
            }
        }
    }
}

/// Tears the room down; returns a line for the person who asked.
pub async fn delete(provider: &Provider, room: &ChatRoom) -> Result<String, String> {
    match provider {
        Provider::Local(local) => {
            local.delete(room);
            Ok("stopped serving".into())
        }
        Provider::Aws(aws) => match aws.delete(room).await {
            Ok(deleted) if deleted.is_empty() => Ok("nothing left to delete".into()),
            Ok(deleted) => Ok(format!(
                "deleted {}",
                deleted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(error) => Err(error.to_string()),
        },
    }
}

fn not_ready(room: &ChatRoom, mut status: ChatRoomStatus, failure: Failure) -> Reconciled {
    let generation = room.metadata.generation;
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        READY,
        ConditionStatus::False,
        &failure.reason,
        &failure.message,
        generation,
    );
    Reconciled {
        status,
        failure: Some(failure),
        changes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ChatRoomSpec;
    use crate::gateway::{Gateway, Limits};

    #[tokio::test]
    async fn an_invalid_spec_is_not_ready_with_the_field_named_and_waits_for_a_change() {
        let provider = Provider::Local(LocalProvider::new(Gateway::new(
            "http://127.0.0.1:1",
            Limits::default(),
        )));
        let mut room = ChatRoom::new(
            "lobby",
            ChatRoomSpec {
                stage: "no spaces".into(),
                ..ChatRoomSpec::default()
            },
        );
        room.metadata.namespace = Some("default".into());
        room.metadata.generation = Some(3);

        let reconciled = reconcile(&provider, &room).await;

        let failure = reconciled.failure.expect("not ready");
        assert!(failure.permanent);
        assert_eq!(failure.reason, "InvalidSpec");
        assert!(
            failure.message.starts_with("spec.stage:"),
            "{}",
            failure.message
        );
        let ready = &reconciled.status.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(reconciled.status.observed_generation, Some(3));
        let Provider::Local(local) = &provider else {
            unreachable!()
        };
        assert!(
            local.gateway().room_keys().is_empty(),
            "nothing was started"
        );
    }
}
