//! The order a room's resources converge in, and the report of how far it got.
//!
//! table → API → role and its policy (the policy names the table and the API) → function →
//! integration → routes → permission → stage. A failing step stops the pipeline; the report
//! keeps what the steps before it reached, so the status shows the ids and the ready parts.

use super::change::Converged;
use super::error::{AwsError, Step};
use super::role_policy::PolicyScope;
use super::{
    RoomContext, api, function, integration, permission, role, role_policy, routes, stage, table,
};
use crate::report::{Applied, Failure, Outcome, Outputs, Part, PartReady, Report, Verdict};

/// What the steps reached so far.
#[derive(Default)]
struct Progress {
    outputs: Outputs,
    parts: Vec<PartReady>,
    applied: Vec<Applied>,
}

impl Progress {
    /// Notes what `step` did and hands back its output.
    fn note<T>(&mut self, room: &RoomContext<'_>, step: Step, converged: Converged<T>) -> T {
        if converged.outcome != Outcome::Unchanged {
            tracing::info!(room = %room.display, %step, outcome = ?converged.outcome, "converged");
            self.applied.push(Applied {
                resource: step.name(),
                outcome: converged.outcome,
            });
        }
        converged.output
    }

    fn ready(&mut self, part: Part, reason: &'static str, message: String) {
        self.parts.push(PartReady {
            part,
            reason,
            message,
        });
    }

    fn report(self, verdict: Verdict) -> Report {
        Report {
            outputs: self.outputs,
            parts: self.parts,
            verdict,
            applied: self.applied,
        }
    }
}

/// Runs every step; the report says how far the room got.
pub async fn run(room: &RoomContext<'_>) -> Report {
    let mut progress = Progress::default();
    match steps(room, &mut progress).await {
        Ok(()) => {
            let url = progress.outputs.websocket_url.clone().unwrap_or_default();
            progress.report(Verdict::Ready {
                reason: "Ready",
                message: format!("Clients connect to {url}"),
            })
        }
        Err(error) => progress.report(Verdict::NotReady(failure(&error))),
    }
}

/// The report of a room whose context could not be built (no region, say).
pub fn stopped_before_start(error: &AwsError) -> Report {
    Report::failed(failure(error))
}

fn failure(error: &AwsError) -> Failure {
    Failure {
        reason: error.reason().to_owned(),
        message: error.to_string(),
        permanent: error.is_permanent(),
        part: Some(error.step().part()),
    }
}

async fn steps(room: &RoomContext<'_>, progress: &mut Progress) -> Result<(), AwsError> {
    let names = &room.names;
    let converged = table::converge(room).await?;
    let table_arn = progress.note(room, Step::Table, converged);
    progress.outputs.table_name = Some(names.table.clone());
    let message = format!("Table {} is active", names.table);
    progress.ready(Part::Table, "Active", message);

    let api_id = progress.note(room, Step::Api, api::converge(room).await?);
    progress.outputs.api_id = Some(api_id.clone());

    let role_arn = match &room.spec.function.role_arn {
        Some(arn) => arn.clone(),
        None => progress.note(room, Step::Role, role::converge(room).await?),
    };
    let account = account_of(&role_arn).ok_or_else(|| AwsError::Unexpected {
        step: Step::Role,
        resource: role_arn.clone(),
        what: "cannot read the account from the role ARN".into(),
    })?;
    if room.spec.function.role_arn.is_none() {
        let scope = PolicyScope {
            partition: room.partition(),
            region: &room.region,
            account,
            table_arn: &table_arn,
            api_id: &api_id,
            stage: &room.spec.stage,
            log_group: &names.log_group(),
        };
        let converged = role_policy::converge(room, &scope).await?;
        progress.note(room, Step::Role, converged);
    }
    progress.outputs.role_arn = Some(role_arn.clone());

    let converged = function::converge(room, &role_arn).await?;
    let function_arn = progress.note(room, Step::Function, converged);
    progress.outputs.function_name = Some(names.function.clone());
    progress.outputs.function_arn = Some(function_arn.clone());

    let converged = integration::converge(room, &api_id, &function_arn).await?;
    let integration_id = progress.note(room, Step::Integration, converged);
    let converged = routes::converge(room, &api_id, &integration_id).await?;
    progress.note(room, Step::Routes, converged);
    let invoke = permission::desired(room.partition(), &room.region, account, &api_id);
    let converged = permission::converge(room, &invoke).await?;
    progress.note(room, Step::Permission, converged);
    let message = format!("Function {} is active", names.function);
    progress.ready(Part::Function, "Active", message);

    progress.note(room, Step::Stage, stage::converge(room, &api_id).await?);
    let host = format!("{api_id}.execute-api.{}.amazonaws.com", room.region);
    let stage = &room.spec.stage;
    progress.outputs.stage = Some(stage.clone());
    progress.outputs.websocket_url = Some(format!("wss://{host}/{stage}"));
    progress.outputs.callback_url = Some(format!("https://{host}/{stage}/@connections"));
    let message = format!("API {api_id} serves stage {stage}");
    progress.ready(Part::Api, "Deployed", message);
    Ok(())
}

/// `arn:aws:iam::123456789012:role/name` → `123456789012`.
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|account| !account.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_comes_from_the_role_arn() {
        assert_eq!(
            account_of("arn:aws:iam::123456789012:role/chat"),
            Some("123456789012")
        );
        assert_eq!(account_of("role/chat"), None);
    }
}
