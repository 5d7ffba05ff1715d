//! The order a room's resources converge in, and the report of how far it got.
//!
//! table → history table (rooms that keep history) → API → role and its policy (the policy
//! names the tables and the API) → log group → function → integration → routes → permission
//! → stage. A failing step stops the pipeline;
//! the report keeps what the steps before it reached, so the status shows the ids and the
//! ready parts. What AWS will not do yet but the room can work without (TTL, point-in-time
//! recovery, a stage deployment under way) does not stop the pipeline: the room is reported
//! not ready, and retried, once everything else converged.

use super::api::{self, ApiOutput};
use super::change::{Converged, Removal};
use super::error::{AwsError, Misconfiguration, Step};
use super::role_policy::PolicyScope;
use super::stage::Deployment;
use super::table::TableKind;
use super::{
    RoomContext, arn_pattern, authorizer, domain, function, integration, log_group, permission,
    role, role_policy, routes, stage, table,
};
use crate::crd::DeletionPolicy;
use crate::report::{Applied, Failure, Outcome, Outputs, Part, PartReady, Report, Verdict};

/// What the steps reached so far.
#[derive(Default)]
struct Progress {
    outputs: Outputs,
    parts: Vec<PartReady>,
    applied: Vec<Applied>,
    /// What AWS would not do yet; the room is not ready until it is done.
    deferred: Option<AwsError>,
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

    /// Whether any of `steps` created or changed something in this reconcile.
    fn changed(&self, steps: &[Step]) -> bool {
        let names: Vec<&str> = steps.iter().map(|step| step.name()).collect();
        self.applied.iter().any(|a| names.contains(&a.resource))
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
    let result = steps(room, &mut progress).await;
    match result.map(|()| progress.deferred.take()) {
        Ok(None) => {
            let url = progress.outputs.websocket_url.clone().unwrap_or_default();
            progress.report(Verdict::Ready {
                reason: "Ready",
                message: format!("Clients connect to {url}"),
            })
        }
        Ok(Some(error)) | Err(error) => progress.report(Verdict::NotReady(failure(&error))),
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
        part: error.step().part(),
    }
}

async fn steps(room: &RoomContext<'_>, progress: &mut Progress) -> Result<(), AwsError> {
    // Before anything is made: a role the operator may not pass would fail only at the end.
    if let Some(arn) = &room.spec.function.role_arn {
        allowed_role(room, arn)?;
    }
    let table_arn = table_part(room, progress).await?;
    let history_table_arn = optional_table_part(room, progress, TableKind::History).await?;
    let channel_table_arn = optional_table_part(room, progress, TableKind::Channels).await?;
    let api = progress.note(
        room,
        Step::Api,
        api::converge(room, room.known_api_id).await?,
    );
    progress.outputs.api_id = Some(api.id.clone());
    let tables = Tables {
        connections: &table_arn,
        history: history_table_arn.as_deref(),
        channels: channel_table_arn.as_deref(),
    };
    let function_arn = function_part(room, progress, &tables, &api).await?;
    api_part(room, progress, &api, &function_arn).await?;
    domain_part(room, progress, &api.id).await
}

async fn table_part(room: &RoomContext<'_>, progress: &mut Progress) -> Result<String, AwsError> {
    let table = progress.note(room, Step::Table, table::converge(room).await?);
    let name = &room.names.table;
    progress.outputs.table_name = Some(name.clone());
    match table.deferred {
        Some(error) => progress.deferred = Some(error),
        None => progress.ready(Part::Table, "Active", format!("Table {name} is active")),
    }
    Ok(table.arn)
}

/// The history table of a room that keeps history, or the channel table of a room with
/// channels (its ARN); a room that stopped wanting it has the table deleted, unless its tables
/// are retained.
async fn optional_table_part(
    room: &RoomContext<'_>,
    progress: &mut Progress,
    kind: TableKind,
) -> Result<Option<String>, AwsError> {
    let (name, wanted, known, step) = match kind {
        TableKind::History => (
            &room.names.history_table,
            room.spec.history_settings().is_some(),
            room.known_history_table,
            Step::HistoryTable,
        ),
        TableKind::Channels => (
            &room.names.channel_table,
            room.spec.channels.is_some(),
            room.known_channel_table,
            Step::ChannelTable,
        ),
        TableKind::Connections => return Ok(None),
    };
    if wanted {
        let converged = match kind {
            TableKind::Channels => table::converge_channels(room).await?,
            _ => table::converge_history(room).await?,
        };
        let table = progress.note(room, step, converged);
        *optional_table_output(&mut progress.outputs, kind) = Some(Some(name.clone()));
        if let Some(error) = table.deferred {
            progress.deferred.get_or_insert(error);
        }
        return Ok(Some(table.arn));
    }
    if known && room.spec.connection_table.deletion_policy == DeletionPolicy::Delete {
        let removal = match kind {
            TableKind::Channels => table::delete_channels(room).await?,
            _ => table::delete_history(room).await?,
        };
        tracing::info!(room = %room.display, table = %name, ?removal, "table no longer wanted");
        if removal == Removal::Deleted {
            progress.applied.push(Applied {
                resource: step.name(),
                outcome: Outcome::Updated,
            });
        }
    }
    *optional_table_output(&mut progress.outputs, kind) = Some(None);
    Ok(None)
}

/// Where the status learns the name of a table only some rooms have.
fn optional_table_output(outputs: &mut Outputs, kind: TableKind) -> &mut Option<Option<String>> {
    match kind {
        TableKind::Channels => &mut outputs.channel_table_name,
        _ => &mut outputs.history_table_name,
    }
}

/// The ARNs of the room's tables, for its role's policy.
struct Tables<'a> {
    connections: &'a str,
    history: Option<&'a str>,
    channels: Option<&'a str>,
}

/// The role and its policy, the log group and the function, then the permission that lets
/// the API invoke it; returns the function's ARN.
async fn function_part(
    room: &RoomContext<'_>,
    progress: &mut Progress,
    tables: &Tables<'_>,
    api: &ApiOutput,
) -> Result<String, AwsError> {
    let api_id = api.id.as_str();
    let names = &room.names;
    let role_arn = match &room.spec.function.role_arn {
        Some(arn) => arn.clone(),
        None => {
            let boundary = room.permissions_boundary();
            let converged = role::converge(room, &boundary).await?;
            let arn = progress.note(room, Step::Role, converged);
            let scope = PolicyScope {
                partition: room.partition(),
                region: &room.region,
                account: &room.caller.account,
                table_arn: tables.connections,
                history_table_arn: tables.history,
                channel_table_arn: tables.channels,
                api_id,
                stage: &room.spec.stage,
                log_group: &names.log_group(),
                function: &names.function,
            };
            let converged = role_policy::converge(room, &scope).await?;
            progress.note(room, Step::Role, converged);
            arn
        }
    };
    progress.outputs.role_arn = Some(role_arn.clone());
    progress.note(room, Step::LogGroup, log_group::converge(room).await?);
    // Through a custom domain the event's domainName is the domain, where `@connections` does
    // not answer: the function is told the execute-api endpoint.
    let callback_url = room
        .spec
        .domain
        .as_ref()
        .and(api.endpoint.as_deref())
        .map(|endpoint| api::urls(endpoint, &room.spec.stage).1);
    let converged = function::converge(room, &role_arn, callback_url.as_deref()).await?;
    let function_arn = progress.note(room, Step::Function, converged);
    progress.outputs.function_name = Some(names.function.clone());
    progress.outputs.function_arn = Some(function_arn.clone());

    let account = &room.caller.account;
    let invoke = permission::desired(room.partition(), &room.region, account, api_id);
    let converged = permission::converge(room, &invoke).await?;
    progress.note(room, Step::Permission, converged);
    let message = format!("Function {} is active", names.function);
    progress.ready(Part::Function, "Active", message);
    Ok(function_arn)
}

/// A role the spec brings, if the operator may pass it to Lambda.
fn allowed_role(room: &RoomContext<'_>, arn: &str) -> Result<String, AwsError> {
    let allowed = &room.settings.allowed_role_arns;
    if allowed
        .iter()
        .any(|pattern| arn_pattern::matches(pattern, arn))
    {
        return Ok(arn.to_owned());
    }
    Err(AwsError::Configuration {
        step: Step::Function,
        problem: Misconfiguration::RoleNotAllowed {
            arn: arn.to_owned(),
            allowed: allowed.join(", "),
        },
    })
}

/// The custom domain of a room with `spec.domain`, mapped to its stage: clients connect to
/// it; a domain the room dropped or renamed is deleted.
async fn domain_part(
    room: &RoomContext<'_>,
    progress: &mut Progress,
    api_id: &str,
) -> Result<(), AwsError> {
    let wanted = domain::desired(room.spec, &room.tags);
    if let Some(old) = room.known_domain
        && wanted.as_ref().is_none_or(|w| w.name != old)
    {
        let removal = domain::delete(room, old).await?;
        tracing::info!(room = %room.display, domain = %old, ?removal, "domain dropped");
    }
    let Some(wanted) = wanted else {
        progress.outputs.domain = Some(None);
        return Ok(());
    };
    let converged = domain::converge(room, &wanted, api_id).await?;
    let target = progress.note(room, Step::Domain, converged);
    progress.outputs.websocket_url = Some(domain::websocket_url(&wanted));
    progress.outputs.domain = Some(Some((wanted.name.clone(), target)));
    Ok(())
}

/// The integration, the routes and the stage; the API is ready once its stage deployed.
async fn api_part(
    room: &RoomContext<'_>,
    progress: &mut Progress,
    api: &ApiOutput,
    function_arn: &str,
) -> Result<(), AwsError> {
    let converged = integration::converge(room, &api.id, function_arn).await?;
    let integration_id = progress.note(room, Step::Integration, converged);
    let observed_routes = routes::observe(&room.clients.apigateway, &api.id).await?;
    let current_authorizer = observed_routes
        .iter()
        .find(|route| route.key == "$connect")
        .and_then(|route| route.authorizer_id.clone());
    let converged =
        authorizer::converge(room, &api.id, current_authorizer.as_deref(), function_arn).await?;
    let authorizer_id = progress.note(room, Step::Authorizer, converged);
    let converged = routes::converge(
        room,
        &api.id,
        &observed_routes,
        &integration_id,
        authorizer_id.as_deref(),
    )
    .await?;
    progress.note(room, Step::Routes, converged);
    // Only once `$connect` no longer names it can an authorizer go.
    if let Some(old) = current_authorizer
        && authorizer_id.as_deref() != Some(old.as_str())
    {
        authorizer::remove(room, &api.id, &old).await?;
    }
    let api_changed =
        progress.changed(&[Step::Api, Step::Integration, Step::Authorizer, Step::Routes]);
    let access_log_arn = match &room.spec.access_log {
        Some(log) => {
            let converged = log_group::converge_access_log(room, log.retention_days).await?;
            Some(progress.note(room, Step::AccessLog, converged))
        }
        None => None,
    };
    let converged = stage::converge(room, &api.id, api_changed, access_log_arn.as_deref()).await?;
    let deployment = progress.note(room, Step::Stage, converged);

    let stage = &room.spec.stage;
    let endpoint = api
        .endpoint
        .as_deref()
        .ok_or_else(|| AwsError::Unexpected {
            step: Step::Api,
            resource: api.id.clone(),
            what: "the API has no ApiEndpoint".into(),
        })?;
    let (websocket_url, callback_url) = api::urls(endpoint, stage);
    progress.outputs.stage = Some(stage.clone());
    progress.outputs.websocket_url = Some(websocket_url);
    progress.outputs.callback_url = Some(callback_url);
    let pending = |state, reason| AwsError::Pending {
        step: Step::Stage,
        resource: stage.clone(),
        state,
        reason,
    };
    match deployment {
        Deployment::Succeeded | Deployment::NotReported => {
            let message = format!("API {} serves stage {stage}", api.id);
            progress.ready(Part::Api, "Deployed", message);
        }
        Deployment::Pending(message) => {
            progress.deferred = Some(pending("DeploymentPending", message));
        }
        Deployment::Failed(message) => {
            progress.deferred = Some(pending("DeploymentFailed", message));
        }
    }
    Ok(())
}
