//! The WebSocket API, its one AWS_PROXY integration to the function, and its routes:
//! `$connect`, `$disconnect`, `$default` and the message route. Routes no longer in the spec go.

use aws_sdk_apigatewayv2::types::{IntegrationType, ProtocolType};

use super::errors::{AwsError, On, Step};
use super::tags::owned_by;
use super::{Outcome, RoomContext};

/// Finds the room's API by name, then by its ownership tags (paging through every API), and
/// creates it when there is none; returns its id.
pub async fn converge(room: &RoomContext<'_>) -> Result<(String, Outcome), AwsError> {
    let apigw = &room.clients.apigateway;
    let name = &room.names.api;
    let fail = On::new(Step::Api, name);
    if let Some((api_id, expression)) = find(room).await? {
        if expression.as_deref() != Some(room.spec.route_selection_expression.as_str()) {
            apigw
                .update_api()
                .api_id(&api_id)
                .route_selection_expression(&room.spec.route_selection_expression)
                .send()
                .await
                .map_err(|e| fail.err(e))?;
            return Ok((api_id, Outcome::Updated));
        }
        return Ok((api_id, Outcome::Unchanged));
    }
    let created = apigw
        .create_api()
        .name(name)
        .protocol_type(ProtocolType::Websocket)
        .route_selection_expression(&room.spec.route_selection_expression)
        .description(format!("chatroom-operator: ChatRoom {}", room.display))
        .set_tags(Some(room.tags.clone().into_iter().collect()))
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok((created.api_id.unwrap_or_default(), Outcome::Created))
}

/// The room's API, if one exists: its id and route selection expression. An API with the
/// room's name that another owner tagged is a conflict, never adopted.
pub async fn find(room: &RoomContext<'_>) -> Result<Option<(String, Option<String>)>, AwsError> {
    let name = &room.names.api;
    let mut token = None;
    loop {
        let page = room
            .clients
            .apigateway
            .get_apis()
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(Step::Api, name, e.into_service_error()))?;
        for api in page.items() {
            if api.name() != Some(name.as_str()) {
                continue;
            }
            let tags = api.tags().cloned().unwrap_or_default();
            if !owned_by(&tags, &room.tags) {
                return Err(AwsError::new(
                    Step::Api,
                    name,
                    "ConflictingOwner",
                    format!(
                        "an API named {name} exists but its chatroom.dev tags name another owner"
                    ),
                ));
            }
            return Ok(Some((
                api.api_id().unwrap_or_default().to_owned(),
                api.route_selection_expression().map(str::to_owned),
            )));
        }
        match page.next_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(None),
        }
    }
}

/// The AWS_PROXY integration to the function; returns its id.
pub async fn converge_integration(
    room: &RoomContext<'_>,
    api_id: &str,
    function_arn: &str,
) -> Result<(String, Outcome), AwsError> {
    let apigw = &room.clients.apigateway;
    let uri = format!(
        "arn:{}:apigateway:{}:lambda:path/2015-03-31/functions/{function_arn}/invocations",
        room.partition(),
        room.region
    );
    let fail = On::new(Step::Integration, api_id);
    let existing = apigw
        .get_integrations()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    if let Some(found) = existing.items().iter().find(|i| {
        i.integration_type() == Some(&IntegrationType::AwsProxy)
            && i.integration_uri() == Some(uri.as_str())
    }) {
        return Ok((
            found.integration_id().unwrap_or_default().to_owned(),
            Outcome::Unchanged,
        ));
    }
    let created = apigw
        .create_integration()
        .api_id(api_id)
        .integration_type(IntegrationType::AwsProxy)
        .integration_uri(&uri)
        .integration_method("POST")
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    Ok((created.integration_id.unwrap_or_default(), Outcome::Created))
}

/// Exactly the four routes, each targeting the integration.
pub async fn converge_routes(
    room: &RoomContext<'_>,
    api_id: &str,
    integration_id: &str,
) -> Result<Outcome, AwsError> {
    let apigw = &room.clients.apigateway;
    let fail = On::new(Step::Routes, api_id);
    let target = format!("integrations/{integration_id}");
    let wanted = [
        "$connect",
        "$disconnect",
        "$default",
        room.spec.message_route.as_str(),
    ];
    let existing = apigw
        .get_routes()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| fail.err(e))?;
    let mut outcome = Outcome::Unchanged;
    for route in existing.items() {
        let (Some(route_id), Some(key)) = (route.route_id(), route.route_key()) else {
            continue;
        };
        if !wanted.contains(&key) {
            apigw
                .delete_route()
                .api_id(api_id)
                .route_id(route_id)
                .send()
                .await
                .map_err(|e| fail.err(e))?;
            tracing::info!(room = %room.display, route = key, "removed a route no longer in the spec");
            outcome = Outcome::Updated;
        } else if route.target() != Some(target.as_str()) {
            apigw
                .update_route()
                .api_id(api_id)
                .route_id(route_id)
                .target(&target)
                .send()
                .await
                .map_err(|e| fail.err(e))?;
            outcome = Outcome::Updated;
        }
    }
    for key in wanted {
        if existing.items().iter().any(|r| r.route_key() == Some(key)) {
            continue;
        }
        apigw
            .create_route()
            .api_id(api_id)
            .route_key(key)
            .target(&target)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        outcome = outcome.max(Outcome::Created);
    }
    Ok(outcome)
}

pub async fn delete(room: &RoomContext<'_>) -> Result<bool, AwsError> {
    let Some((api_id, _)) = find(room).await? else {
        return Ok(false);
    };
    match room
        .clients
        .apigateway
        .delete_api()
        .api_id(&api_id)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) => {
            let error = AwsError::from_sdk(Step::Api, &api_id, e.into_service_error());
            if error.is_not_found() {
                Ok(false)
            } else {
                Err(error)
            }
        }
    }
}
