//! The `aws` provider: a ChatRoom becomes a DynamoDB table, an IAM role, a Lambda function and
//! an API Gateway WebSocket API. Each step observes first and creates or updates only what
//! differs, so converging twice changes nothing and a crash at any point is repaired by the
//! next run. Names are deterministic ([`naming`]); ownership is in tags ([`tags`]).

mod api;
pub mod calls;
pub mod errors;
mod function;
pub mod naming;
mod permission;
mod role;
mod stage;
mod table;
pub mod tags;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use aws_config::{Region, SdkConfig};

pub use calls::{Call, CallLog};
pub use errors::{AwsError, Step};
pub use function::HandlerZip;
pub use naming::ResourceNames;

use crate::crd::{ChatRoom, ChatRoomSpec, ChatRoomStatus};
use crate::status::{ConditionStatus, READY, set_condition};

pub const TABLE_READY: &str = "TableReady";
pub const FUNCTION_READY: &str = "FunctionReady";
pub const API_READY: &str = "ApiReady";

/// What a step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Unchanged,
    Updated,
    Created,
}

/// The operator's own settings for every room.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The function's code; `delete` needs none.
    pub handler_zip: Option<HandlerZip>,
    pub handler_zip_arm64: Option<HandlerZip>,
    /// Tagged on every resource, so operators of two clusters never take each other's.
    pub cluster_name: String,
    /// Permissions boundary ARN for the roles the operator creates.
    pub permissions_boundary: Option<String>,
    /// Attempts at creating a function while Lambda cannot assume its new role yet.
    pub role_propagation_attempts: usize,
}

impl Settings {
    pub fn new(handler_zip: Option<HandlerZip>, cluster_name: &str) -> Self {
        Self {
            handler_zip,
            handler_zip_arm64: None,
            cluster_name: cluster_name.to_owned(),
            permissions_boundary: None,
            // 0.5 s doubling to 8 s: about 40 s in all, longer than IAM usually takes.
            role_propagation_attempts: 8,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub apigateway: aws_sdk_apigatewayv2::Client,
}

/// Everything a step needs to know about the room it works on.
pub struct RoomContext<'a> {
    pub clients: Clients,
    pub names: ResourceNames,
    pub spec: &'a ChatRoomSpec,
    pub tags: BTreeMap<String, String>,
    pub region: String,
    pub settings: &'a Settings,
    /// `namespace/name`, for messages.
    pub display: String,
}

impl RoomContext<'_> {
    pub fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
}

/// A convergence that stopped at a failing step still reports what it reached.
#[derive(Debug)]
pub struct Converged {
    pub status: ChatRoomStatus,
    pub error: Option<AwsError>,
    /// Steps that created or changed something, for progress and Events.
    pub changes: Vec<(Step, Outcome)>,
}

pub struct AwsProvider {
    sdk: SdkConfig,
    settings: Settings,
    calls: CallLog,
    clients: Mutex<HashMap<String, Clients>>,
}

impl AwsProvider {
    pub fn new(sdk: SdkConfig, settings: Settings) -> Self {
        Self {
            sdk,
            settings,
            calls: CallLog::default(),
            clients: Mutex::default(),
        }
    }

    pub fn calls(&self) -> &CallLog {
        &self.calls
    }

    fn clients(&self, region: &str) -> Clients {
        let mut cache = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(region.to_owned())
            .or_insert_with(|| {
                let region = Region::new(region.to_owned());
                let sdk = &self.sdk;
                let calls = self.calls.clone();
                Clients {
                    dynamodb: aws_sdk_dynamodb::Client::from_conf(
                        aws_sdk_dynamodb::config::Builder::from(sdk)
                            .region(region.clone())
                            .interceptor(calls.clone())
                            .build(),
                    ),
                    iam: aws_sdk_iam::Client::from_conf(
                        aws_sdk_iam::config::Builder::from(sdk)
                            .region(region.clone())
                            .interceptor(calls.clone())
                            .build(),
                    ),
                    lambda: aws_sdk_lambda::Client::from_conf(
                        aws_sdk_lambda::config::Builder::from(sdk)
                            .region(region.clone())
                            .interceptor(calls.clone())
                            .build(),
                    ),
                    apigateway: aws_sdk_apigatewayv2::Client::from_conf(
                        aws_sdk_apigatewayv2::config::Builder::from(sdk)
                            .region(region)
                            .interceptor(calls)
                            .build(),
                    ),
                }
            })
            .clone()
    }

    fn region_of(&self, room: &ChatRoom) -> Option<String> {
        room.spec
            .region
            .clone()
            .or_else(|| self.sdk.region().map(ToString::to_string))
    }

    /// What every step needs to work on `room`: its region's clients, names and tags.
    fn context<'a>(&'a self, room: &'a ChatRoom) -> Result<RoomContext<'a>, AwsError> {
        let region = self.region_of(room).ok_or_else(|| {
            AwsError::new(
                Step::Table,
                "",
                "NoRegion",
                "no AWS region: set spec.region or the operator's AWS_REGION",
            )
        })?;
        let (namespace, name) = room.identity();
        Ok(RoomContext {
            clients: self.clients(&region),
            names: ResourceNames::for_room(&namespace, &name),
            spec: &room.spec,
            tags: tags::room_tags(room, &self.settings.cluster_name),
            region,
            settings: &self.settings,
            display: format!("{namespace}/{name}"),
        })
    }

    /// Converges every resource of `room`, in dependency order, and reports its status.
    pub async fn converge(&self, room: &ChatRoom) -> Converged {
        let mut status = room.status.clone().unwrap_or_default();
        status.observed_generation = room.metadata.generation;
        let context = match self.context(room) {
            Ok(context) => context,
            Err(error) => {
                mark_failed(&mut status, room, &error);
                return Converged {
                    status,
                    error: Some(error),
                    changes: Vec::new(),
                };
            }
        };
        let mut changes = Vec::new();
        let result = converge_steps(&context, &mut status, &mut changes).await;
        match result {
            Ok(()) => {
                let generation = room.metadata.generation;
                let url = status.websocket_url.clone().unwrap_or_default();
                set_condition(
                    &mut status.conditions,
                    READY,
                    ConditionStatus::True,
                    "Ready",
                    &format!("Clients connect to {url}"),
                    generation,
                );
                Converged {
                    status,
                    error: None,
                    changes,
                }
            }
            Err(error) => {
                mark_failed(&mut status, room, &error);
                Converged {
                    status,
                    error: Some(error),
                    changes,
                }
            }
        }
    }

    /// Tears the room down; "not found" counts as done, so a half-built room deletes cleanly.
    /// The table stays when `deletionPolicy` is `Retain`; a role the spec brought stays too.
    pub async fn delete(&self, room: &ChatRoom) -> Result<Vec<Step>, AwsError> {
        let context = self.context(room)?;
        let mut deleted = Vec::new();
        if api::delete(&context).await? {
            deleted.push(Step::Api);
        }
        // Deleting the function removes its resource policy (the permission) with it.
        if function::delete(&context).await? {
            deleted.push(Step::Function);
        }
        if room.spec.function.role_arn.is_none() && role::delete(&context).await? {
            deleted.push(Step::Role);
        }
        if room.spec.connection_table.deletion_policy == crate::crd::DeletionPolicy::Delete
            && table::delete(&context).await?
        {
            deleted.push(Step::Table);
        }
        for step in &deleted {
            tracing::info!(room = %context.display, %step, "deleted");
        }
        Ok(deleted)
    }
}

async fn converge_steps(
    room: &RoomContext<'_>,
    status: &mut ChatRoomStatus,
    changes: &mut Vec<(Step, Outcome)>,
) -> Result<(), AwsError> {
    let mut note = |step: Step, outcome: Outcome| {
        if outcome != Outcome::Unchanged {
            tracing::info!(room = %room.display, %step, ?outcome, "converged");
            changes.push((step, outcome));
        }
    };
    let generation = None;

    let (table_arn, outcome) = table::converge(room).await?;
    note(Step::Table, outcome);
    status.table_name = Some(room.names.table.clone());
    set_condition(
        &mut status.conditions,
        TABLE_READY,
        ConditionStatus::True,
        "Active",
        &format!("Table {} is active", room.names.table),
        generation,
    );

    let (api_id, outcome) = api::converge(room).await?;
    note(Step::Api, outcome);
    status.api_id = Some(api_id.clone());

    let role_arn = match &room.spec.function.role_arn {
        Some(arn) => arn.clone(),
        None => {
            let (arn, outcome) = role::converge_role(room).await?;
            note(Step::Role, outcome);
            arn
        }
    };
    let account = account_of(&role_arn).ok_or_else(|| {
        AwsError::new(
            Step::Role,
            &role_arn,
            "InvalidArn",
            "cannot read the account from the role ARN",
        )
    })?;
    if room.spec.function.role_arn.is_none() {
        let policy = role::room_policy(&role::PolicyScope {
            partition: room.partition(),
            region: &room.region,
            account: &account,
            table_arn: &table_arn,
            api_id: &api_id,
            stage: &room.spec.stage,
            log_group: &room.names.log_group(),
        });
        note(Step::Role, role::converge_policy(room, &policy).await?);
    }
    status.role_arn = Some(role_arn.clone());

    let (function_arn, outcome) = function::converge(room, &role_arn).await?;
    note(Step::Function, outcome);
    status.function_name = Some(room.names.function.clone());
    status.function_arn = Some(function_arn.clone());

    let (integration_id, outcome) = api::converge_integration(room, &api_id, &function_arn).await?;
    note(Step::Integration, outcome);
    note(
        Step::Routes,
        api::converge_routes(room, &api_id, &integration_id).await?,
    );
    let source_arn = permission::source_arn(room.partition(), &room.region, &account, &api_id);
    note(
        Step::Permission,
        permission::converge(room, &source_arn).await?,
    );
    set_condition(
        &mut status.conditions,
        FUNCTION_READY,
        ConditionStatus::True,
        "Active",
        &format!("Function {} is active", room.names.function),
        generation,
    );

    note(Step::Stage, stage::converge(room, &api_id).await?);
    let host = format!("{api_id}.execute-api.{}.amazonaws.com", room.region);
    status.stage = Some(room.spec.stage.clone());
    status.websocket_url = Some(format!("wss://{host}/{}", room.spec.stage));
    status.callback_url = Some(format!("https://{host}/{}/@connections", room.spec.stage));
    set_condition(
        &mut status.conditions,
        API_READY,
        ConditionStatus::True,
        "Deployed",
        &format!("API {api_id} serves stage {}", room.spec.stage),
        generation,
    );
    Ok(())
}

/// The part a failing step belongs to goes False with AWS's code and message; Ready follows.
fn mark_failed(status: &mut ChatRoomStatus, room: &ChatRoom, error: &AwsError) {
    let generation = room.metadata.generation;
    let part = match error.step {
        Step::Table => TABLE_READY,
        Step::Role | Step::Function | Step::Permission => FUNCTION_READY,
        Step::Api | Step::Integration | Step::Routes | Step::Stage => API_READY,
    };
    set_condition(
        &mut status.conditions,
        part,
        ConditionStatus::False,
        &error.code,
        &error.to_string(),
        generation,
    );
    set_condition(
        &mut status.conditions,
        READY,
        ConditionStatus::False,
        &error.code,
        &error.to_string(),
        generation,
    );
    for condition in &mut status.conditions {
        condition.observed_generation = generation;
    }
}

/// `arn:aws:iam::123456789012:role/name` → `123456789012`.
fn account_of(arn: &str) -> Option<String> {
    arn.split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}
