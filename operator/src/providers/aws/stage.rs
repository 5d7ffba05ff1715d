//! The room's one stage, auto-deployed (moto has no CreateDeployment, and auto-deploy is what a
//! declarative room wants anyway), with the spec's throttling. Other stages go.

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::RouteSettings;

use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step};
use super::{RoomContext, Tags};
use crate::crd::ChatRoomSpec;

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredStage {
    pub name: String,
    pub burst_limit: Option<i32>,
    pub rate_limit: Option<f64>,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedStage {
    pub name: String,
    pub auto_deploy: bool,
    pub burst_limit: Option<i32>,
    pub rate_limit: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageField {
    AutoDeploy,
    Throttling,
}

/// A change to one stage, named by its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageChange {
    pub name: String,
    pub change: Change<StageField>,
}

pub fn desired(spec: &ChatRoomSpec, tags: &Tags) -> DesiredStage {
    let throttling = spec.throttling.clone().unwrap_or_default();
    DesiredStage {
        name: spec.stage.clone(),
        burst_limit: throttling.burst_limit,
        rate_limit: throttling.rate_limit,
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
    match observed.iter().find(|stage| stage.name == desired.name) {
        None => changes.push(ours(Change::Create)),
        Some(stage) => {
            if !stage.auto_deploy {
                changes.push(ours(Change::Update(StageField::AutoDeploy)));
            }
            if (stage.burst_limit, stage.rate_limit) != (desired.burst_limit, desired.rate_limit) {
                changes.push(ours(Change::Update(StageField::Throttling)));
            }
        }
    }
    changes
}

pub async fn converge(room: &RoomContext<'_>, api_id: &str) -> Result<Converged<()>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.spec, &room.tags);
    let observed = observe(apigw, api_id, &desired.name).await?;
    let changes = diff(&observed, &desired);
    let fail = On::new(Step::Stage, &desired.name);
    let settings = RouteSettings::builder()
        .set_throttling_burst_limit(desired.burst_limit)
        .set_throttling_rate_limit(desired.rate_limit)
        .build();
    let mut updated = false;
    for stage in &changes {
        match &stage.change {
            Change::Remove => apigw
                .delete_stage()
                .api_id(api_id)
                .stage_name(&stage.name)
                .send()
                .await
                .map(drop)
                .map_err(|e| fail.err(e)),
            Change::Create => apigw
                .create_stage()
                .api_id(api_id)
                .stage_name(&desired.name)
                .auto_deploy(true)
                .default_route_settings(settings.clone())
                .set_tags(Some(desired.tags.clone().into_iter().collect()))
                .send()
                .await
                .map(drop)
                .map_err(|e| fail.err(e)),
            // One UpdateStage sets every field.
            Change::Update(_) if updated => continue,
            Change::Update(_) => {
                updated = true;
                apigw
                    .update_stage()
                    .api_id(api_id)
                    .stage_name(&desired.name)
                    .auto_deploy(true)
                    .default_route_settings(settings.clone())
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| fail.err(e))
            }
            other => Err(fail.unexpected(format!("diff asked for {other:?}"))),
        }?;
    }
    Ok(Converged {
        output: (),
        outcome: outcome(changes.iter().map(|c| &c.change)),
    })
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
            burst_limit: desired.burst_limit,
            rate_limit: desired.rate_limit,
        }
    }

    fn throttled() -> DesiredStage {
        let spec = ChatRoomSpec {
            throttling: Some(ThrottlingSpec {
                burst_limit: Some(50),
                rate_limit: Some(10.0),
            }),
            ..ChatRoomSpec::default()
        };
        desired(&spec, &Tags::new())
    }

    #[test]
    fn the_stage_is_the_specs_with_its_throttling() {
        let stage = throttled();
        assert_eq!(stage.name, "dev");
        assert_eq!(
            (stage.burst_limit, stage.rate_limit),
            (Some(50), Some(10.0))
        );
        let plain = desired(&ChatRoomSpec::default(), &Tags::new());
        assert_eq!((plain.burst_limit, plain.rate_limit), (None, None));
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
    }

    #[test]
    fn changed_throttling_and_auto_deploy_are_restored() {
        let stage = throttled();
        let mut found = converged(&stage);
        found.rate_limit = Some(1000.0);
        found.auto_deploy = false;
        let changes: Vec<_> = diff(&[found], &stage)
            .into_iter()
            .map(|c| c.change)
            .collect();
        assert_eq!(
            changes,
            [
                Change::Update(StageField::AutoDeploy),
                Change::Update(StageField::Throttling)
            ]
        );
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
}
