//! The room's one stage, auto-deployed (moto has no CreateDeployment, and auto-deploy is what a
//! declarative room wants anyway), with the spec's throttling. Other stages go.
//!
//! Throttling has one trap: a stage's default route settings with a throttling field left out
//! read as 0, and 0 lets no request through; no UpdateStage can return a stage to "not
//! configured". So a stage is created without route settings unless the spec throttles, and a
//! stage whose throttling the spec dropped is replaced.
//! <https://github.com/hashicorp/terraform-provider-aws/issues/30373>

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::{AccessLogSettings, RouteSettings};

use super::change::{Change, Converged, outcome};
use super::error::{AwsError, Misconfiguration, On, Step};
use super::{RoomContext, Tags};
use crate::crd::ChatRoomSpec;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Throttling {
    pub burst_limit: i32,
    pub rate_limit: f64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// The log group's ARN, without `:*`.
    pub destination_arn: String,
    pub format: String,
}

/// One JSON line per connect, message and disconnect, from API Gateway's WebSocket
/// `$context` variables.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-logging.html>
pub const ACCESS_LOG_FORMAT: &str = r#"{"requestId":"$context.requestId","requestTime":"$context.requestTimeEpoch","connectionId":"$context.connectionId","eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status","error":"$context.error.message","integrationLatency":"$context.integrationLatency","sourceIp":"$context.identity.sourceIp"}"#;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStage {
    pub name: String,
    /// `None`: AWS's account-level limits apply.
    pub throttling: Option<Throttling>,
    /// `None`: no access logs.
    pub access_log: Option<AccessLog>,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedStage {
    pub name: String,
    pub auto_deploy: bool,
    pub burst_limit: Option<i32>,
    pub rate_limit: Option<f64>,
    /// Reported for auto-deployed stages only.
    pub last_deployment_status: Option<String>,
    pub access_log: Option<AccessLog>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageField {
    AutoDeploy,
    Throttling,
    /// Set by UpdateStage with the other fields.
    AccessLog,
    /// Turned off: DeleteAccessLogSettings, a call of its own.
    AccessLogOff,
}

/// A change to one stage, named by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageChange {
    pub name: String,
    pub change: Change<StageField>,
}

/// How the stage's last automatic deployment went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deployment {
    Succeeded,
    /// No status reported: AWS gives none before a stage's first deployment, moto never does.
    NotReported,
    Failed(String),
    /// Any other status, such as a deployment under way.
    Pending(String),
}

/// `access_log_arn`: the log group of a room with `spec.accessLog`.
pub fn desired(spec: &ChatRoomSpec, tags: &Tags, access_log_arn: Option<&str>) -> DesiredStage {
    DesiredStage {
        access_log: access_log_arn.map(|arn| AccessLog {
            destination_arn: arn.to_owned(),
            format: ACCESS_LOG_FORMAT.to_owned(),
        }),
        name: spec.stage.clone(),
        throttling: spec.throttling.as_ref().map(|t| Throttling {
            burst_limit: t.burst_limit,
            rate_limit: t.rate_limit,
        }),
        tags: tags.clone(),
    }
}

pub fn diff(observed: &[ObservedStage], desired: &DesiredStage) -> Vec<StageChange> {
    let mut changes: Vec<StageChange> = observed
        .iter()
        .filter(|stage| stage.name != desired.name)
        .map(|stage| StageChange {
            name: stage.name.clone(),
            change: Change::Remove,
        })
        .collect();
    let ours = |change| StageChange {
        name: desired.name.clone(),
        change,
    };
    let Some(stage) = observed.iter().find(|stage| stage.name == desired.name) else {
        changes.push(ours(Change::Create));
        return changes;
    };
    let found = (stage.burst_limit, stage.rate_limit);
    match desired.throttling {
        None if found != (None, None) => {
            changes.push(ours(Change::Replace(StageField::Throttling)));
            return changes;
        }
        Some(wanted) if found != (Some(wanted.burst_limit), Some(wanted.rate_limit)) => {
            changes.push(ours(Change::Update(StageField::Throttling)));
        }
        _ => {}
    }
    if !stage.auto_deploy {
        changes.push(ours(Change::Update(StageField::AutoDeploy)));
    }
    match (&stage.access_log, &desired.access_log) {
        (found, Some(wanted)) if found.as_ref() != Some(wanted) => {
            changes.push(ours(Change::Update(StageField::AccessLog)));
        }
        (Some(_), None) => changes.push(ours(Change::Update(StageField::AccessLogOff))),
        _ => {}
    }
    changes
}

/// What API Gateway's status message says of the last deployment.
/// Messages seen from AWS: "Successfully deployed stage with deployment ID 'abc123'" and
/// "Deployment attempt failed: Unable to deploy API because no routes exist in this API".
pub fn deployment(stage: &ObservedStage) -> Deployment {
    match stage.last_deployment_status.as_deref() {
        None => Deployment::NotReported,
        Some(message) if message.starts_with("Successfully deployed") => Deployment::Succeeded,
        Some(message) if message.starts_with("Deployment attempt failed") => {
            Deployment::Failed(message.to_owned())
        }
        Some(message) => Deployment::Pending(message.to_owned()),
    }
}

/// Converges the stage; its output is how the stage's deployment stands. When anything of the
/// API changed in this reconcile (`api_changed`) or here, the stage is read once more, as the
/// auto-deployment of those changes is what clients will meet.
pub async fn converge(
    room: &RoomContext<'_>,
    api_id: &str,
    api_changed: bool,
    access_log_arn: Option<&str>,
) -> Result<Converged<Deployment>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.spec, &room.tags, access_log_arn);
    let observed = observe(apigw, api_id, &desired.name).await?;
    let changes = diff(&observed, &desired);
    let mut updated = false;
    for stage in &changes {
        if stage.change == Change::Update(StageField::AccessLogOff) {
            let delete = apigw
                .delete_access_log_settings()
                .api_id(api_id)
                .stage_name(&stage.name);
            let fail = On::new(Step::Stage, &stage.name);
            delete.send().await.map_err(|e| fail.err(e))?;
            continue;
        }
        if matches!(stage.change, Change::Update(_)) && std::mem::replace(&mut updated, true) {
            continue; // One UpdateStage sets every field.
        }
        act(apigw, api_id, &desired, stage).await?;
    }
    let current = if changes.is_empty() && !api_changed {
        observed
    } else {
        observe(apigw, api_id, &desired.name).await?
    };
    let deployment = current
        .iter()
        .find(|stage| stage.name == desired.name)
        .map_or(Deployment::NotReported, deployment);
    Ok(Converged {
        output: deployment,
        outcome: outcome(changes.iter().map(|c| &c.change)),
    })
}

async fn act(
    apigw: &Client,
    api_id: &str,
    desired: &DesiredStage,
    stage: &StageChange,
) -> Result<(), AwsError> {
    let fail = On::new(Step::Stage, &stage.name);
    let settings = desired.throttling.map(|t| {
        RouteSettings::builder()
            .throttling_burst_limit(t.burst_limit)
            .throttling_rate_limit(t.rate_limit)
            .build()
    });
    let access_log = desired.access_log.as_ref().map(|log| {
        AccessLogSettings::builder()
            .destination_arn(&log.destination_arn)
            .format(&log.format)
            .build()
    });
    let delete = || async {
        let deleted = apigw.delete_stage().api_id(api_id).stage_name(&stage.name);
        deleted.send().await.map(drop).map_err(|e| fail.err(e))
    };
    let create = || async {
        let created = apigw
            .create_stage()
            .api_id(api_id)
            .stage_name(&desired.name)
            .auto_deploy(true)
            .set_default_route_settings(settings.clone())
            .set_access_log_settings(access_log.clone())
            .set_tags(Some(desired.tags.clone().into_iter().collect()));
        created
            .send()
            .await
            .map(drop)
            .map_err(|e| refusal(fail.err(e)))
    };
    match &stage.change {
        Change::Remove => delete().await,
        Change::Create => create().await,
        Change::Replace(_) => {
            delete().await?;
            create().await
        }
        Change::Update(_) => apigw
            .update_stage()
            .api_id(api_id)
            .stage_name(&desired.name)
            .auto_deploy(true)
            .set_default_route_settings(settings.clone())
            .set_access_log_settings(access_log.clone())
            .send()
            .await
            .map(drop)
            .map_err(|e| refusal(fail.err(e))),
        other => Err(fail.unexpected(format!("diff asked for {other:?}"))),
    }
}

/// API Gateway's refusal to log before the account has a CloudWatch Logs role, as the
/// operator's own configuration error: no retry helps until someone sets the role.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html>
fn refusal(error: AwsError) -> AwsError {
    match &error {
        AwsError::Service { code, message, .. }
            if code == "BadRequestException"
                && message.contains("CloudWatch Logs role ARN must be set in account settings") =>
        {
            AwsError::Configuration {
                step: Step::Stage,
                problem: Misconfiguration::NoCloudWatchRole,
            }
        }
        _ => error,
    }
}

pub async fn observe(
    apigw: &Client,
    api_id: &str,
    name: &str,
) -> Result<Vec<ObservedStage>, AwsError> {
    let found = apigw
        .get_stages()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| On::new(Step::Stage, name).err(e))?;
    Ok(found
        .items()
        .iter()
        .filter_map(|stage| {
            let settings = stage.default_route_settings();
            Some(ObservedStage {
                name: stage.stage_name()?.to_owned(),
                auto_deploy: stage.auto_deploy() == Some(true),
                burst_limit: settings.and_then(|s| s.throttling_burst_limit()),
                rate_limit: settings.and_then(|s| s.throttling_rate_limit()),
                last_deployment_status: stage.last_deployment_status_message().map(str::to_owned),
                access_log: stage.access_log_settings().and_then(|log| {
                    Some(AccessLog {
                        destination_arn: log.destination_arn()?.to_owned(),
                        format: log.format()?.to_owned(),
                    })
                }),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ThrottlingSpec;

    fn converged(desired: &DesiredStage) -> ObservedStage {
        ObservedStage {
            name: desired.name.clone(),
            auto_deploy: true,
            burst_limit: desired.throttling.map(|t| t.burst_limit),
            rate_limit: desired.throttling.map(|t| t.rate_limit),
            last_deployment_status: None,
            access_log: desired.access_log.clone(),
        }
    }

    fn throttled() -> DesiredStage {
        let spec = ChatRoomSpec {
            throttling: Some(ThrottlingSpec {
                burst_limit: 50,
                rate_limit: 10.0,
            }),
            ..ChatRoomSpec::default()
        };
        desired(&spec, &Tags::new(), None)
    }

    fn changes(observed: ObservedStage, desired: &DesiredStage) -> Vec<Change<StageField>> {
        diff(&[observed], desired)
            .into_iter()
            .map(|c| c.change)
            .collect()
    }

    #[test]
    fn the_stage_is_the_specs_with_its_throttling() {
        let stage = throttled();
        assert_eq!(stage.name, "dev");
        assert_eq!(
            stage.throttling,
            Some(Throttling {
                burst_limit: 50,
                rate_limit: 10.0
            })
        );
        assert_eq!(
            desired(&ChatRoomSpec::default(), &Tags::new(), None).throttling,
            None
        );
    }

    #[test]
    fn a_missing_stage_is_created_and_a_converged_one_left_alone() {
        let stage = throttled();
        assert_eq!(
            diff(&[], &stage),
            [StageChange {
                name: "dev".into(),
                change: Change::Create
            }]
        );
        assert_eq!(diff(&[converged(&stage)], &stage), []);
        let plain = desired(&ChatRoomSpec::default(), &Tags::new(), None);
        assert_eq!(diff(&[converged(&plain)], &plain), []);
    }

    #[test]
    fn changed_throttling_and_auto_deploy_are_restored() {
        let stage = throttled();
        let mut found = converged(&stage);
        found.rate_limit = Some(1000.0);
        found.auto_deploy = false;
        assert_eq!(
            changes(found, &stage),
            [
                Change::Update(StageField::Throttling),
                Change::Update(StageField::AutoDeploy)
            ]
        );
    }

    #[test]
    fn throttling_the_spec_dropped_replaces_the_stage() {
        // What UpdateStage leaves after an attempt to unset the limits: zeros, no traffic.
        let plain = desired(&ChatRoomSpec::default(), &Tags::new(), None);
        for (burst, rate) in [
            (Some(50), Some(10.0)),
            (Some(0), Some(0.0)),
            (None, Some(5.0)),
        ] {
            let found = ObservedStage {
                burst_limit: burst,
                rate_limit: rate,
                ..converged(&plain)
            };
            assert_eq!(
                changes(found, &plain),
                [Change::Replace(StageField::Throttling)],
                "{burst:?} {rate:?}"
            );
        }
    }

    #[test]
    fn other_stages_are_removed() {
        let stage = throttled();
        let old = ObservedStage {
            name: "prod".into(),
            ..converged(&stage)
        };
        assert_eq!(
            diff(&[old, converged(&stage)], &stage),
            [StageChange {
                name: "prod".into(),
                change: Change::Remove
            }]
        );
    }

    #[test]
    fn the_deployment_is_read_from_the_stages_status_message() {
        let with = |message: Option<&str>| ObservedStage {
            last_deployment_status: message.map(str::to_owned),
            ..ObservedStage::default()
        };
        assert_eq!(
            deployment(&with(Some(
                "Successfully deployed stage with deployment ID 'abc123'"
            ))),
            Deployment::Succeeded
        );
        let failed =
            "Deployment attempt failed: Unable to deploy API because no routes exist in this API";
        assert_eq!(
            deployment(&with(Some(failed))),
            Deployment::Failed(failed.into())
        );
        assert!(matches!(
            deployment(&with(Some("Deploying"))),
            Deployment::Pending(_)
        ));
        assert_eq!(deployment(&with(None)), Deployment::NotReported);
    }

    mod canned_answers {
        use aws_sdk_apigatewayv2::operation::get_stages::GetStagesOutput;
        use aws_sdk_apigatewayv2::types::Stage;
        use aws_smithy_mocks::{RuleMode, mock, mock_client};

        use super::*;

        #[tokio::test]
        async fn a_stage_without_throttling_is_created_without_route_settings() {
            // Route settings with throttling left out read as 0: no traffic at all.
            let bare = mock!(Client::create_stage)
                .match_requests(|req| req.default_route_settings().is_none())
                .then_output(|| {
                    aws_sdk_apigatewayv2::operation::create_stage::CreateStageOutput::builder()
                        .build()
                });
            let apigw = mock_client!(aws_sdk_apigatewayv2, RuleMode::MatchAny, [&bare]);
            let plain = desired(&ChatRoomSpec::default(), &Tags::new(), None);
            let create = StageChange {
                name: "dev".into(),
                change: Change::Create,
            };

            act(&apigw, "abc123", &plain, &create).await.unwrap();

            assert_eq!(bare.num_calls(), 1);
        }

        #[tokio::test]
        async fn a_failed_deployment_is_read_from_get_stages() {
            let failed = mock!(Client::get_stages).then_output(|| {
                GetStagesOutput::builder()
                    .items(
                        Stage::builder()
                            .stage_name("dev")
                            .auto_deploy(true)
                            .last_deployment_status_message(
                                "Deployment attempt failed: Unable to deploy API because no routes exist in this API",
                            )
                            .build(),
                    )
                    .build()
            });
            let apigw = mock_client!(aws_sdk_apigatewayv2, [&failed]);

            let stages = observe(&apigw, "abc123", "dev").await.unwrap();

            assert!(matches!(deployment(&stages[0]), Deployment::Failed(_)));
        }
    }

    #[test]
    fn access_logs_are_set_with_the_other_fields_and_turned_off_on_their_own() {
        let arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/apigateway/x";
        let logged = desired(&ChatRoomSpec::default(), &Tags::new(), Some(arn));
        let plain = desired(&ChatRoomSpec::default(), &Tags::new(), None);
        assert_eq!(changes(converged(&logged), &logged), []);
        assert_eq!(
            changes(converged(&plain), &logged),
            [Change::Update(StageField::AccessLog)]
        );
        assert_eq!(
            changes(converged(&logged), &plain),
            [Change::Update(StageField::AccessLogOff)]
        );
        let format: serde_json::Value =
            serde_json::from_str(ACCESS_LOG_FORMAT).expect("the format is JSON");
        assert_eq!(format["connectionId"], "$context.connectionId");
    }

    #[tokio::test]
    async fn an_account_without_a_cloudwatch_role_is_a_configuration_error_not_a_retry() {
        use aws_smithy_mocks::{mock, mock_client};

        use crate::providers::aws::canned::rest_json_error;

        // What API Gateway answers when the account's settings name no CloudWatch Logs role
        // (reported in sst/ion#373).
        let refused = mock!(Client::update_stage).then_http_response(|| {
            rest_json_error(
                400,
                "BadRequestException",
                "CloudWatch Logs role ARN must be set in account settings to enable logging",
            )
        });
        let client = mock_client!(aws_sdk_apigatewayv2, [&refused]);
        let arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/apigateway/x";
        let logged = desired(&ChatRoomSpec::default(), &Tags::new(), Some(arn));
        let change = StageChange {
            name: "dev".into(),
            change: Change::Update(StageField::AccessLog),
        };

        let error = act(&client, "api1", &logged, &change).await.unwrap_err();

        assert_eq!(error.reason(), "NoCloudWatchRole");
        assert!(error.is_permanent());
        assert!(error.to_string().contains("cloudwatchRoleArn"), "{error}");
        assert_eq!(refused.num_calls(), 1);
    }
}
