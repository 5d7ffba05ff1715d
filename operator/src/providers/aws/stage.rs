//! The room's one stage, auto-deployed (moto has no CreateDeployment, and auto-deploy is what a
//! declarative room wants anyway), with the spec's throttling. Other stages go.

use aws_sdk_apigatewayv2::types::RouteSettings;

use super::errors::{AwsError, On, Step};
use super::{Outcome, RoomContext};

pub async fn converge(room: &RoomContext<'_>, api_id: &str) -> Result<Outcome, AwsError> {
    let apigw = &room.clients.apigateway;
    let stage = &room.spec.stage;
    let fail = On::new(Step::Stage, stage);
    let throttling = room.spec.throttling.clone().unwrap_or_default();
    let settings = RouteSettings::builder()
        .set_throttling_burst_limit(throttling.burst_limit)
        .set_throttling_rate_limit(throttling.rate_limit)
        .build();
    let existing = apigw
        .get_stages()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let mut outcome = Outcome::Unchanged;
    for other in existing
        .items()
        .iter()
        .filter_map(|s| s.stage_name())
        .filter(|name| *name != stage)
    {
        apigw
            .delete_stage()
            .api_id(api_id)
            .stage_name(other)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        outcome = Outcome::Updated;
    }
    let Some(current) = existing
        .items()
        .iter()
        .find(|s| s.stage_name() == Some(stage.as_str()))
    else {
        apigw
            .create_stage()
            .api_id(api_id)
            .stage_name(stage)
            .auto_deploy(true)
            .default_route_settings(settings)
            .set_tags(Some(room.tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        return Ok(Outcome::Created);
    };
    let current_settings = current.default_route_settings();
    let drifted = current.auto_deploy() != Some(true)
        || current_settings.and_then(|s| s.throttling_burst_limit()) != throttling.burst_limit
        || current_settings.and_then(|s| s.throttling_rate_limit()) != throttling.rate_limit;
    if drifted {
        apigw
            .update_stage()
            .api_id(api_id)
            .stage_name(stage)
            .auto_deploy(true)
            .default_route_settings(settings)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        outcome = Outcome::Updated;
    }
    Ok(outcome)
}
