//! The API's one AWS_PROXY integration: every route invokes the room's function, which
//! dispatches on `requestContext.routeKey`.

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::IntegrationType;

use super::RoomContext;
use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredIntegration {
    /// `arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations`
    pub uri: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedIntegration {
    pub id: String,
    pub proxy: bool,
    pub uri: Option<String>,
}

/// An integration has nothing the operator updates: one with the right target is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntegrationField {}

pub fn desired(partition: &str, region: &str, function_arn: &str) -> DesiredIntegration {
    DesiredIntegration {
        uri: format!(
            "arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
        ),
    }
}

/// The integration to use, if one already invokes the function.
pub fn find<'a>(
    observed: &'a [ObservedIntegration],
    desired: &DesiredIntegration,
) -> Option<&'a ObservedIntegration> {
    observed
        .iter()
        .find(|i| i.proxy && i.uri.as_deref() == Some(desired.uri.as_str()))
}

pub fn diff(
    observed: &[ObservedIntegration],
    desired: &DesiredIntegration,
) -> Vec<Change<IntegrationField>> {
    match find(observed, desired) {
        Some(_) => Vec::new(),
        None => vec![Change::Create],
    }
}

/// Finds or creates the integration; its output is the integration's id.
pub async fn converge(
    room: &RoomContext<'_>,
    api_id: &str,
    function_arn: &str,
) -> Result<Converged<String>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.partition(), &room.region, function_arn);
    let observed = observe(apigw, api_id).await?;
    let changes = diff(&observed, &desired);
    let id = match find(&observed, &desired) {
        Some(found) => found.id.clone(),
        None => create(apigw, api_id, &desired).await?,
    };
    Ok(Converged {
        output: id,
        outcome: outcome(&changes),
    })
}

pub async fn observe(apigw: &Client, api_id: &str) -> Result<Vec<ObservedIntegration>, AwsError> {
    let found = apigw
        .get_integrations()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| On::new(Step::Integration, api_id).err(e))?;
    Ok(found
        .items()
        .iter()
        .map(|i| ObservedIntegration {
            id: i.integration_id().unwrap_or_default().to_owned(),
            proxy: i.integration_type() == Some(&IntegrationType::AwsProxy),
            uri: i.integration_uri().map(str::to_owned),
        })
        .collect())
}

async fn create(
    apigw: &Client,
    api_id: &str,
    desired: &DesiredIntegration,
) -> Result<String, AwsError> {
    let fail = On::new(Step::Integration, api_id);
    let created = apigw
        .create_integration()
        .api_id(api_id)
        .integration_type(IntegrationType::AwsProxy)
        .integration_uri(&desired.uri)
        .integration_method("POST")
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    created
        .integration_id
        .ok_or_else(|| fail.unexpected("CreateIntegration answered without an id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FUNCTION: &str = "arn:aws-cn:lambda:cn-north-1:123456789012:function:f";

    #[test]
    fn the_integration_invokes_the_function_in_its_partition() {
        let wanted = desired("aws-cn", "cn-north-1", FUNCTION);
        assert_eq!(
            wanted.uri,
            format!(
                "arn:aws-cn:apigateway:cn-north-1:lambda:path/2015-03-31/functions/{FUNCTION}/invocations"
            )
        );
    }

    #[test]
    fn an_integration_to_the_function_is_used_and_none_means_create() {
        let wanted = desired("aws", "eu-west-1", FUNCTION);
        assert_eq!(diff(&[], &wanted), [Change::Create]);
        let elsewhere = ObservedIntegration {
            id: "a".into(),
            proxy: true,
            uri: Some("arn:aws:apigateway:eu-west-1:lambda:path/other".into()),
        };
        let ours = ObservedIntegration {
            id: "b".into(),
            proxy: true,
            uri: Some(wanted.uri.clone()),
        };
        assert_eq!(
            diff(std::slice::from_ref(&elsewhere), &wanted),
            [Change::Create]
        );
        let both = [elsewhere, ours];
        assert_eq!(diff(&both, &wanted), []);
        assert_eq!(find(&both, &wanted).map(|i| i.id.as_str()), Some("b"));
    }
}
