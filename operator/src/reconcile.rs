//! The reconciler core every driver shares (`local`, `apply`/`delete`, and the controller):
//! validate → converge through a provider → the status to write.

use std::sync::Arc;

use crate::crd::{ChatRoom, ChatRoomStatus};
use crate::providers::aws::{AwsProvider, Removal, Step};
use crate::providers::local::LocalProvider;
use crate::report::{Applied, Failure, Report};
use crate::status::status_from;
use crate::validate::validate;

/// Where rooms run.
#[derive(Clone)]
pub enum Provider {
    Local(LocalProvider),
    Aws(Arc<AwsProvider>),
}

impl Provider {
    async fn converge(&self, room: &ChatRoom) -> Report {
        match self {
            Self::Local(local) => local.converge(room).await,
            Self::Aws(aws) => aws.converge(room).await,
        }
    }
}

/// What one reconcile made of a room.
#[derive(Debug)]
pub struct Reconciled {
    pub status: ChatRoomStatus,
    pub failure: Option<Failure>,
    /// What this reconcile created or changed; empty when nothing.
    pub applied: Vec<Applied>,
}

impl Reconciled {
    pub fn is_ready(&self) -> bool {
        self.failure.is_none()
    }
}

pub async fn reconcile(provider: &Provider, room: &ChatRoom) -> Reconciled {
    let report = match validate(room) {
        // Nothing is called in the cloud for a spec that breaks a rule.
        Err(invalid) => Report::failed(Failure::invalid_spec(invalid.to_string())),
        Ok(()) => provider.converge(room).await,
    };
    Reconciled {
        status: status_from(room.status.as_ref(), &report, room.metadata.generation),
        failure: report.failure().cloned(),
        applied: report.applied,
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
            Ok(removals) => Ok(deletion_summary(&removals)),
            Err(error) => Err(error.to_string()),
        },
    }
}

/// `deleted api, function; left table x: it belongs to cluster b, room default/lobby`.
fn deletion_summary(removals: &[(Step, Removal)]) -> String {
    let deleted: Vec<&str> = removals
        .iter()
        .filter(|(_, removal)| *removal == Removal::Deleted)
        .map(|(step, _)| step.name())
        .collect();
    let mut lines = vec![if deleted.is_empty() {
        "nothing left to delete".to_owned()
    } else {
        format!("deleted {}", deleted.join(", "))
    }];
    for (step, removal) in removals {
        if let Removal::Foreign(whose) = removal {
            lines.push(format!("left the {step} alone: it belongs to {whose}"));
        }
    }
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ChatRoomSpec;
    use crate::gateway::{Gateway, GatewayConfig, Limits};

    #[tokio::test]
    async fn an_invalid_spec_is_not_ready_with_the_field_named_and_waits_for_a_change() {
        let provider = Provider::Local(LocalProvider::new(Gateway::new(GatewayConfig::local(
            "http://127.0.0.1:1".parse().unwrap(),
            "http://127.0.0.1:2".parse().unwrap(),
            Limits::default(),
        ))));
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
