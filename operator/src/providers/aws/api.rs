//! The room's WebSocket API: found by the id the room's status recorded, or else by its
//! deterministic name; owned only when its tags say so; its route selection expression
//! follows the spec.

use std::collections::HashMap;

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::ProtocolType;

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::{RoomContext, Tags};
use crate::crd::ChatRoomSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredApi {
    pub name: String,
    pub route_selection_expression: String,
    pub description: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedApi {
    pub id: String,
    pub name: String,
    /// `wss://{id}.execute-api.{region}.{dns suffix}`, as AWS reports it.
    pub endpoint: Option<String>,
    pub route_selection_expression: Option<String>,
    pub tags: HashMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiField {
    RouteSelectionExpression,
}

/// What later steps need of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiOutput {
    pub id: String,
    pub endpoint: Option<String>,
}

pub fn desired(spec: &ChatRoomSpec, name: &str, room: &str, tags: &Tags) -> DesiredApi {
    DesiredApi {
        name: name.to_owned(),
        route_selection_expression: spec.route_selection_expression.clone(),
        description: format!("chatroom-operator: ChatRoom {room}"),
        tags: tags.clone(),
    }
}

/// An API with the room's name that another owner tagged is a conflict, never adopted.
pub fn diff(observed: Option<&ObservedApi>, desired: &DesiredApi) -> Vec<Change<ApiField>> {
    let Some(api) = observed else {
        return vec![Change::Create];
    };
    let what = format!("API {} ({})", desired.name, api.id);
    let mut changes = match claim(&api.tags, &desired.tags, &what) {
        Ok(changes) => changes,
        Err(conflict) => return conflict,
    };
    if api.route_selection_expression.as_deref() != Some(&desired.route_selection_expression) {
        changes.push(Change::Update(ApiField::RouteSelectionExpression));
    }
    changes
}

/// Observes, creates or updates the API; `known_id` is the id the room's status recorded.
pub async fn converge(
    room: &RoomContext<'_>,
    known_id: Option<&str>,
) -> Result<Converged<ApiOutput>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.spec, &room.names.api, &room.display, &room.tags);
    let observed = observe(apigw, known_id, &desired.name).await?;
    let changes = diff(observed.as_ref(), &desired);
    let fail = On::new(Step::Api, &desired.name);
    let mut api = observed.map(|api| ApiOutput {
        id: api.id,
        endpoint: api.endpoint,
    });
    for change in &changes {
        let id = api.as_ref().map(|api| api.id.clone()).unwrap_or_default();
        match change {
            Change::Create => api = Some(create(apigw, &desired).await?),
            Change::Update(ApiField::RouteSelectionExpression) => {
                let update = apigw.update_api().api_id(&id);
                let update = update.route_selection_expression(&desired.route_selection_expression);
                update.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Adopt => {
                let arn = format!(
                    "arn:{}:apigateway:{}::/apis/{id}",
                    room.partition(),
                    room.region
                );
                let tag = apigw.tag_resource().resource_arn(arn);
                let tag = tag.set_tags(Some(desired.tags.clone().into_iter().collect()));
                tag.send().await.map_err(|e| fail.err(e))?;
            }
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            Change::Replace(_) | Change::Remove => {
                return Err(fail.unexpected(format!("diff asked for {change:?}")));
            }
        }
    }
    let api = api.ok_or_else(|| fail.unexpected("no API after converging it"))?;
    Ok(Converged {
        output: api,
        outcome: outcome(&changes),
    })
}

/// The room's API: by `known_id` (one GetApi), and only when that finds nothing of the
/// room's name, by listing every API in the region (a crash before the first status write, or
/// an API deleted behind the operator's back).
pub async fn observe(
    apigw: &Client,
    known_id: Option<&str>,
    name: &str,
) -> Result<Option<ObservedApi>, AwsError> {
    if let Some(id) = known_id {
        let found = apigw.get_api().api_id(id).send().await;
        let found = absent_if_not_found(found.map_err(|e| On::new(Step::Api, id).err(e)))?;
        if let Some(api) = found.filter(|api| api.name() == Some(name)) {
            return Ok(Some(ObservedApi {
                id: api.api_id().unwrap_or(id).to_owned(),
                name: name.to_owned(),
                endpoint: api.api_endpoint().map(str::to_owned),
                route_selection_expression: api.route_selection_expression().map(str::to_owned),
                tags: api.tags().cloned().unwrap_or_default(),
            }));
        }
    }
    find_by_name(apigw, name).await
}

async fn find_by_name(apigw: &Client, name: &str) -> Result<Option<ObservedApi>, AwsError> {
    let fail = On::new(Step::Api, name);
    let mut token = None;
    loop {
        let page = apigw.get_apis().set_next_token(token);
        let page = page.send().await.map_err(|e| fail.err(e))?;
        if let Some(api) = page.items().iter().find(|api| api.name() == Some(name)) {
            return Ok(Some(ObservedApi {
                id: api.api_id().unwrap_or_default().to_owned(),
                name: name.to_owned(),
                endpoint: api.api_endpoint().map(str::to_owned),
                route_selection_expression: api.route_selection_expression().map(str::to_owned),
                tags: api.tags().cloned().unwrap_or_default(),
            }));
        }
        match page.next_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(None),
        }
    }
}

async fn create(apigw: &Client, desired: &DesiredApi) -> Result<ApiOutput, AwsError> {
    let fail = On::new(Step::Api, &desired.name);
    let created = apigw
        .create_api()
        .name(&desired.name)
        .protocol_type(ProtocolType::Websocket)
        .route_selection_expression(&desired.route_selection_expression)
        .description(&desired.description)
        .set_tags(Some(desired.tags.clone().into_iter().collect()))
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let id = created
        .api_id
        .ok_or_else(|| fail.unexpected("CreateApi answered without an id"))?;
    Ok(ApiOutput {
        id,
        endpoint: created.api_endpoint,
    })
}

/// Deletes the room's API (routes, integrations and stages go with it). Another owner's API
/// with the room's name is never deleted.
pub async fn delete(room: &RoomContext<'_>, known_id: Option<&str>) -> Result<Removal, AwsError> {
    let apigw = &room.clients.apigateway;
    let found = observe(apigw, known_id, &room.names.api).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|a| &a.tags), &room.tags) {
        return Ok(skip);
    }
    let id = found.map(|api| api.id).unwrap_or_default();
    let deleted = apigw.delete_api().api_id(&id).send().await;
    let deleted = absent_if_not_found(deleted.map_err(|e| On::new(Step::Api, &id).err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

/// `wss://host/{stage}` and `https://host/{stage}/@connections` from the endpoint AWS reports,
/// so that partitions with other DNS suffixes (`amazonaws.com.cn`) get their own hosts.
pub fn urls(endpoint: &str, stage: &str) -> (String, String) {
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .trim_end_matches('/');
    (
        format!("wss://{host}/{stage}"),
        format!("https://{host}/{stage}/@connections"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::aws::tags;

    fn room_tags(cluster: &str) -> Tags {
        Tags::from([
            (tags::NAMESPACE.into(), "default".into()),
            (tags::NAME.into(), "lobby".into()),
            (tags::CLUSTER.into(), cluster.into()),
            (tags::MANAGED_BY.into(), tags::OPERATOR.into()),
        ])
    }

    fn wanted() -> DesiredApi {
        desired(
            &ChatRoomSpec::default(),
            "api",
            "default/lobby",
            &room_tags("a"),
        )
    }

    fn ours(desired: &DesiredApi) -> ObservedApi {
        ObservedApi {
            id: "abc123".into(),
            name: desired.name.clone(),
            endpoint: Some("wss://abc123.execute-api.eu-west-1.amazonaws.com".into()),
            route_selection_expression: Some(desired.route_selection_expression.clone()),
            tags: desired.tags.clone().into_iter().collect(),
        }
    }

    #[test]
    fn the_api_routes_on_the_specs_expression() {
        let api = wanted();
        assert_eq!(api.route_selection_expression, "$request.body.action");
        assert_eq!(diff(None, &api), [Change::Create]);
        assert_eq!(diff(Some(&ours(&api)), &api), []);
    }

    #[test]
    fn a_changed_route_selection_expression_is_restored() {
        let api = wanted();
        let mut found = ours(&api);
        found.route_selection_expression = Some("$request.body.kind".into());
        assert_eq!(
            diff(Some(&found), &api),
            [Change::Update(ApiField::RouteSelectionExpression)]
        );
    }

    #[test]
    fn an_api_of_another_cluster_is_a_conflict() {
        let api = wanted();
        let mut found = ours(&api);
        found.tags = room_tags("b").into_iter().collect();
        assert!(matches!(
            diff(Some(&found), &api)[..],
            [Change::Conflict(_)]
        ));
    }

    #[test]
    fn an_api_of_an_earlier_incarnation_of_the_room_is_adopted() {
        let mut api = wanted();
        api.tags.insert(tags::UID.into(), "new".into());
        let mut found = ours(&api);
        found.tags.insert(tags::UID.into(), "old".into());
        assert_eq!(diff(Some(&found), &api), [Change::Adopt]);
    }

    #[test]
    fn urls_follow_the_endpoint_aws_reports() {
        assert_eq!(
            urls("wss://abc.execute-api.cn-north-1.amazonaws.com.cn", "dev"),
            (
                "wss://abc.execute-api.cn-north-1.amazonaws.com.cn/dev".to_owned(),
                "https://abc.execute-api.cn-north-1.amazonaws.com.cn/dev/@connections".to_owned()
            )
        );
        // moto answers https:// for WebSocket APIs too; the host is what counts.
        assert_eq!(
            urls("https://abc.execute-api.us-east-1.amazonaws.com", "dev").0,
            "wss://abc.execute-api.us-east-1.amazonaws.com/dev"
        );
    }

    mod canned_answers {
        use aws_sdk_apigatewayv2::operation::create_api::CreateApiOutput;
        use aws_smithy_mocks::{mock, mock_client};

        use super::*;

        #[tokio::test]
        async fn the_endpoint_is_the_one_aws_answers_with() {
            let created = mock!(Client::create_api).then_output(|| {
                CreateApiOutput::builder()
                    .api_id("abc123")
                    .api_endpoint("wss://abc123.execute-api.cn-north-1.amazonaws.com.cn")
                    .build()
            });
            let apigw = mock_client!(aws_sdk_apigatewayv2, [&created]);

            let api = create(&apigw, &wanted()).await.unwrap();

            let endpoint = api.endpoint.expect("an endpoint");
            assert_eq!(
                urls(&endpoint, "dev").0,
                "wss://abc123.execute-api.cn-north-1.amazonaws.com.cn/dev"
            );
        }
    }
}
