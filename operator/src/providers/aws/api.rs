//! The room's WebSocket API: found by its deterministic name and owned only when its tags say
//! so; its route selection expression follows the spec.

use std::collections::HashMap;

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::ProtocolType;

use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::tags::owned_by;
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
    pub route_selection_expression: Option<String>,
    pub tags: HashMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiField {
    RouteSelectionExpression,
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
    if !owned_by(&api.tags, &desired.tags) {
        return vec![Change::Conflict(format!(
            "an API named {} exists but its chatroom.dev tags name another owner",
            desired.name
        ))];
    }
    if api.route_selection_expression.as_deref() != Some(&desired.route_selection_expression) {
        return vec![Change::Update(ApiField::RouteSelectionExpression)];
    }
    Vec::new()
}

/// Observes, creates or updates the API; its output is the API's id.
pub async fn converge(room: &RoomContext<'_>) -> Result<Converged<String>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.spec, &room.names.api, &room.display, &room.tags);
    let observed = observe(apigw, &desired.name).await?;
    let changes = diff(observed.as_ref(), &desired);
    let fail = On::new(Step::Api, &desired.name);
    let mut id = observed.map(|api| api.id);
    for change in &changes {
        match change {
            Change::Create => id = Some(create(apigw, &desired).await?),
            Change::Update(ApiField::RouteSelectionExpression) => {
                apigw
                    .update_api()
                    .api_id(id.as_deref().unwrap_or_default())
                    .route_selection_expression(&desired.route_selection_expression)
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            Change::Conflict(detail) => return Err(fail.conflict(detail.clone())),
            Change::Replace(_) | Change::Remove => {
                return Err(fail.unexpected(format!("diff asked for {change:?}")));
            }
        }
    }
    Ok(Converged {
        output: id.unwrap_or_default(),
        outcome: outcome(&changes),
    })
}

/// The API with the room's name, paging through every API in the region.
pub async fn observe(apigw: &Client, name: &str) -> Result<Option<ObservedApi>, AwsError> {
    let fail = On::new(Step::Api, name);
    let mut token = None;
    loop {
        let page = apigw
            .get_apis()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        if let Some(api) = page.items().iter().find(|api| api.name() == Some(name)) {
            return Ok(Some(ObservedApi {
                id: api.api_id().unwrap_or_default().to_owned(),
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

async fn create(apigw: &Client, desired: &DesiredApi) -> Result<String, AwsError> {
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
    created
        .api_id
        .ok_or_else(|| fail.unexpected("CreateApi answered without an id"))
}

/// Deletes the room's API (routes, integrations and stages go with it); `false` when there
/// was none. Another owner's API with the room's name is never deleted.
pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let apigw = &room.clients.apigateway;
    let name = &room.names.api;
    let fail = On::new(Step::Api, name);
    let Some(api) = observe(apigw, name).await? else {
        return Ok(false);
    };
    if !owned_by(&api.tags, &room.tags) {
        return Err(fail.conflict(format!(
            "an API named {name} exists but its chatroom.dev tags name another owner"
        )));
    }
    let deleted = apigw.delete_api().api_id(&api.id).send().await;
    Ok(absent_if_not_found(deleted.map_err(|e| On::new(Step::Api, &api.id).err(e)))?.is_some())
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
}
