//! The `aws` provider: a ChatRoom becomes a DynamoDB table, an IAM role, a Lambda function and
//! an API Gateway WebSocket API.
//!
//! Each resource has a module with the same shape: a pure `desired` (spec → what AWS should
//! hold), `observe` (what AWS holds), a pure `diff` (the typed [`change::Change`]s between the
//! two) and the calls that carry the changes out. [`pipeline`] runs the resources in
//! dependency order and reports what it reached. Converging twice changes nothing, and a crash
//! at any point is repaired by the next run: names are deterministic ([`naming`]) and
//! ownership is in tags ([`tags`]).

mod api;
mod calls;
mod change;
mod error;
mod function;
mod handler_zip;
mod integration;
mod naming;
mod permission;
mod pipeline;
mod role;
mod role_policy;
mod routes;
mod stage;
mod table;
mod tags;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use aws_config::{Region, SdkConfig};

pub use calls::{Call, CallLog};
pub use error::{AwsError, Misconfiguration, Step};
pub use handler_zip::HandlerZip;
pub use naming::ResourceNames;

use crate::crd::{ChatRoom, ChatRoomSpec, DeletionPolicy};
use crate::report::Report;

/// Tags as AWS takes them: key → value, sorted for stable requests.
pub type Tags = BTreeMap<String, String>;

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
struct Clients {
    dynamodb: aws_sdk_dynamodb::Client,
    iam: aws_sdk_iam::Client,
    lambda: aws_sdk_lambda::Client,
    apigateway: aws_sdk_apigatewayv2::Client,
}

/// Everything a step needs to know about the room it works on.
struct RoomContext<'a> {
    clients: Clients,
    names: ResourceNames,
    spec: &'a ChatRoomSpec,
    tags: Tags,
    region: String,
    settings: &'a Settings,
    /// `namespace/name`, for messages.
    display: String,
}

impl RoomContext<'_> {
    fn partition(&self) -> &'static str {
        if self.region.starts_with("cn-") {
            "aws-cn"
        } else if self.region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        }
    }
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
                let calls = &self.calls;
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
                            .interceptor(calls.clone())
                            .build(),
                    ),
                }
            })
            .clone()
    }

    /// What every step needs to work on `room`: its region's clients, names and tags.
    fn context<'a>(&'a self, room: &'a ChatRoom) -> Result<RoomContext<'a>, AwsError> {
        let region = room
            .spec
            .region
            .clone()
            .or_else(|| self.sdk.region().map(ToString::to_string))
            .ok_or(AwsError::Configuration {
                step: Step::Table,
                problem: Misconfiguration::NoRegion,
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

    /// Converges every resource of `room`, in dependency order, and reports how far it got.
    pub async fn converge(&self, room: &ChatRoom) -> Report {
        match self.context(room) {
            Ok(context) => pipeline::run(&context).await,
            Err(error) => pipeline::stopped_before_start(&error),
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
        if room.spec.connection_table.deletion_policy == DeletionPolicy::Delete
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
