//! The `$connect` route's REQUEST authorizer, for a room with `spec.auth.jwt`: the room's own
//! function, invoked with the connection request before `$connect`.
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-lambda-auth.html>
//!
//! The authorizer is named for its room (the function's name) and found by the id the
//! `$connect` route names (GetRoutes, which the routes step reads anyway): a steady reconcile
//! pays one GetAuthorizer. Only when the route names none that fits is it looked for by name
//! (GetAuthorizers): a stop between CreateAuthorizer and the route's update leaves one that no
//! route names, and API Gateway refuses a second authorizer of the same name in an API
//! ("Authorizer name must be unique", aws/aws-cdk#13711), so that orphan is adopted, never
//! made again. The API is the room's own (checked before this step), so is what it holds.
//!
//! The function's one invoke permission (`{apiId}/*`) covers the authorizer's source ARN
//! `{apiId}/authorizers/{id}`, so no second statement is needed.

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::AuthorizerType;

use super::RoomContext;
use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::integration;
use crate::crd::ChatRoomSpec;

/// Authorizers in one API: API Gateway allows 10 by default, so one page holds them; the
/// bound keeps a listing of a strange API finite.
const MAX_AUTHORIZER_PAGES: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAuthorizer {
    /// The function's invocation URI, as the integration's.
    pub uri: String,
    /// `route.request.querystring.token` or `route.request.header.Authorization`.
    pub identity_source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedAuthorizer {
    pub id: String,
    pub request_type: bool,
    pub uri: Option<String>,
    pub identity_source: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizerField {
    Uri,
    IdentitySource,
}

/// The authorizer a room with auth needs; `None` for a room without.
pub fn desired(
    spec: &ChatRoomSpec,
    partition: &str,
    region: &str,
    function_arn: &str,
) -> Option<DesiredAuthorizer> {
    let settings = spec.auth.as_ref()?.jwt.settings()?;
    Some(DesiredAuthorizer {
        uri: integration::desired(partition, region, function_arn).uri,
        identity_source: settings.identity_source.api_gateway_expression(),
    })
}

pub fn diff(
    observed: Option<&ObservedAuthorizer>,
    desired: Option<&DesiredAuthorizer>,
) -> Vec<Change<AuthorizerField>> {
    match (observed, desired) {
        (None, None) => Vec::new(),
        (Some(_), None) => vec![Change::Remove],
        (None, Some(_)) => vec![Change::Create],
        // Something else under the route's authorizer id: the room's own is made anew.
        (Some(found), Some(_)) if !found.request_type => vec![Change::Create],
        (Some(found), Some(wanted)) => {
            let mut changes = Vec::new();
            if found.uri.as_deref() != Some(wanted.uri.as_str()) {
                changes.push(Change::Update(AuthorizerField::Uri));
            }
            if found.identity_source != [wanted.identity_source.clone()] {
                changes.push(Change::Update(AuthorizerField::IdentitySource));
            }
            changes
        }
    }
}

/// The authorizer's id once converged: `None` for a room without auth. `current` is the id
/// the `$connect` route names today. Removing an authorizer waits for the route to let go of
/// it: see [`remove`].
pub async fn converge(
    room: &RoomContext<'_>,
    api_id: &str,
    current: Option<&str>,
    function_arn: &str,
) -> Result<Converged<Option<String>>, AwsError> {
    let apigw = &room.clients.apigateway;
    let wanted = desired(room.spec, room.partition(), &room.region, function_arn);
    let name = &room.names.function;
    let mut observed = match current {
        Some(id) => observe(apigw, api_id, id).await?,
        None => None,
    };
    if wanted.is_some() && observed.as_ref().is_none_or(|found| !found.request_type) {
        let orphan = find_by_name(apigw, api_id, name).await?;
        observed = orphan.or(observed);
    }
    let changes = diff(observed.as_ref(), wanted.as_ref());
    let fail = On::new(Step::Authorizer, api_id);
    let mut id = observed.as_ref().map(|found| found.id.clone());
    for change in &changes {
        match (change, &wanted) {
            (Change::Create, Some(wanted)) => {
                let created = apigw
                    .create_authorizer()
                    .api_id(api_id)
                    .name(name)
                    .authorizer_type(AuthorizerType::Request)
                    .authorizer_uri(&wanted.uri)
                    .identity_source(&wanted.identity_source)
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
                id =
                    Some(created.authorizer_id.ok_or_else(|| {
                        fail.unexpected("CreateAuthorizer answered without an id")
                    })?);
            }
            (Change::Update(_), Some(wanted)) => {
                apigw
                    .update_authorizer()
                    .api_id(api_id)
                    .authorizer_id(id.as_deref().unwrap_or_default())
                    .authorizer_uri(&wanted.uri)
                    .identity_source(&wanted.identity_source)
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            // Done by `remove` once the route no longer names it.
            (Change::Remove, None) => id = None,
            (other, _) => return Err(fail.unexpected(format!("diff asked for {other:?}"))),
        }
    }
    let outcome = outcome(changes.iter().filter(|c| **c != Change::Remove));
    Ok(Converged {
        output: id.filter(|_| wanted.is_some()),
        outcome,
    })
}

/// Deletes the authorizer a room stopped using, after its route was updated.
pub async fn remove(room: &RoomContext<'_>, api_id: &str, id: &str) -> Result<(), AwsError> {
    let deleted = room
        .clients
        .apigateway
        .delete_authorizer()
        .api_id(api_id)
        .authorizer_id(id)
        .send()
        .await;
    absent_if_not_found(deleted.map_err(|e| On::new(Step::Authorizer, api_id).err(e))).map(drop)
}

/// The API's authorizer called `name`, if there is one.
async fn find_by_name(
    apigw: &Client,
    api_id: &str,
    name: &str,
) -> Result<Option<ObservedAuthorizer>, AwsError> {
    let mut next_token = None;
    for _ in 0..MAX_AUTHORIZER_PAGES {
        let page = apigw
            .get_authorizers()
            .api_id(api_id)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| On::new(Step::Authorizer, api_id).err(e))?;
        if let Some(found) = page.items().iter().find(|a| a.name() == Some(name)) {
            return Ok(found.authorizer_id().map(|id| ObservedAuthorizer {
                id: id.to_owned(),
                request_type: found.authorizer_type() == Some(&AuthorizerType::Request),
                uri: found.authorizer_uri().map(str::to_owned),
                identity_source: found.identity_source().to_vec(),
            }));
        }
        next_token = page.next_token().map(str::to_owned);
        if next_token.is_none() {
            break;
        }
    }
    Ok(None)
}

async fn observe(
    apigw: &Client,
    api_id: &str,
    id: &str,
) -> Result<Option<ObservedAuthorizer>, AwsError> {
    let found = apigw
        .get_authorizer()
        .api_id(api_id)
        .authorizer_id(id)
        .send()
        .await;
    let found = absent_if_not_found(found.map_err(|e| On::new(Step::Authorizer, api_id).err(e)))?;
    Ok(found.map(|a| ObservedAuthorizer {
        id: id.to_owned(),
        request_type: a.authorizer_type() == Some(&AuthorizerType::Request),
        uri: a.authorizer_uri().map(str::to_owned),
        identity_source: a.identity_source().to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AuthSpec, JwtSpec};

    const FUNCTION: &str = "arn:aws:lambda:eu-west-1:123456789012:function:f";

    fn with_auth(identity_source: &str) -> ChatRoomSpec {
        ChatRoomSpec {
            auth: Some(AuthSpec {
                jwt: JwtSpec {
                    issuer: "https://login.example.com/".into(),
                    audiences: vec!["chat".into()],
                    jwks_uri: "https://login.example.com/jwks.json".into(),
                    identity_source: identity_source.into(),
                    name_claim: None,
                },
            }),
            ..ChatRoomSpec::default()
        }
    }

    fn as_observed(wanted: &DesiredAuthorizer) -> ObservedAuthorizer {
        ObservedAuthorizer {
            id: "au1".into(),
            request_type: true,
            uri: Some(wanted.uri.clone()),
            identity_source: vec![wanted.identity_source.clone()],
        }
    }

    #[test]
    fn a_room_with_auth_has_a_request_authorizer_invoking_its_function() {
        let wanted = desired(
            &with_auth("querystring.token"),
            "aws",
            "eu-west-1",
            FUNCTION,
        )
        .expect("auth on");
        assert_eq!(wanted.identity_source, "route.request.querystring.token");
        assert!(
            wanted
                .uri
                .ends_with(&format!("functions/{FUNCTION}/invocations"))
        );
        assert_eq!(
            desired(&ChatRoomSpec::default(), "aws", "eu-west-1", FUNCTION),
            None
        );
        assert_eq!(diff(None, Some(&wanted)), [Change::Create]);
        assert_eq!(diff(Some(&as_observed(&wanted)), Some(&wanted)), []);
    }

    #[test]
    fn a_changed_identity_source_is_updated_and_auth_turned_off_removes_it() {
        let before = desired(
            &with_auth("querystring.token"),
            "aws",
            "eu-west-1",
            FUNCTION,
        );
        let after = desired(
            &with_auth("header.Authorization"),
            "aws",
            "eu-west-1",
            FUNCTION,
        );
        let found = as_observed(before.as_ref().unwrap());
        assert_eq!(
            diff(Some(&found), after.as_ref()),
            [Change::Update(AuthorizerField::IdentitySource)]
        );
        assert_eq!(diff(Some(&found), None), [Change::Remove]);
        let foreign = ObservedAuthorizer {
            request_type: false,
            ..found
        };
        assert_eq!(diff(Some(&foreign), before.as_ref()), [Change::Create]);
    }
}
