//! The API's routes: exactly `$connect`, `$disconnect`, `$default`, the message route, `who`
//! and (with history) `history`, each targeting the one integration. Routes the spec no longer
//! names go.

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::AuthorizationType;
use chatroom_handlers::contract::routes;

use super::RoomContext;
use super::change::{Change, Converged, outcome};
use super::error::{AwsError, On, Step};
use crate::crd::ChatRoomSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRoutes {
    pub keys: Vec<String>,
    /// `integrations/{id}`
    pub target: String,
    /// The authorizer `$connect` must name, in a room with auth.
    pub connect_authorizer: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRoute {
    pub id: String,
    pub key: String,
    pub target: Option<String>,
    /// Set when the route's authorization is `CUSTOM`.
    pub authorizer_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteField {
    Target,
    /// `$connect`'s authorization type and authorizer.
    Authorization,
}

/// A change to one route, named by its key (and id, when it exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChange {
    pub key: String,
    pub id: Option<String>,
    pub change: Change<RouteField>,
}

/// The three predefined routes, the message route, `who`, `history` for a room that keeps
/// history, `subscribe` and `unsubscribe` for a room with channels, and the backend's routes
/// for a room with one (its function forwards them): all to the one integration.
pub fn desired(
    spec: &ChatRoomSpec,
    integration_id: &str,
    connect_authorizer: Option<&str>,
) -> DesiredRoutes {
    let mut keys: Vec<String> = ["$connect", "$disconnect", "$default"]
        .into_iter()
        .chain([spec.message_route.as_str(), routes::WHO])
        .map(str::to_owned)
        .collect();
    if spec.history_settings().is_some() {
        keys.push(routes::HISTORY.to_owned());
    }
    if spec.channels.is_some() {
        keys.extend([routes::SUBSCRIBE, routes::UNSUBSCRIBE].map(str::to_owned));
    }
    if let Some(backend) = &spec.backend {
        keys.extend(backend.routes.iter().cloned());
    }
    DesiredRoutes {
        keys,
        target: format!("integrations/{integration_id}"),
        connect_authorizer: connect_authorizer.map(str::to_owned),
    }
}

impl DesiredRoutes {
    /// The authorizer route `key` must name: only `$connect` can have one.
    fn authorizer_for(&self, key: &str) -> Option<&str> {
        self.connect_authorizer
            .as_deref()
            .filter(|_| key == CONNECT)
    }
}

const CONNECT: &str = "$connect";

pub fn diff(observed: &[ObservedRoute], desired: &DesiredRoutes) -> Vec<RouteChange> {
    let mut changes = Vec::new();
    for route in observed {
        let change = if !desired.keys.contains(&route.key) {
            Change::Remove
        } else if route.target.as_deref() != Some(desired.target.as_str()) {
            Change::Update(RouteField::Target)
        } else if route.authorizer_id.as_deref() != desired.authorizer_for(&route.key) {
            Change::Update(RouteField::Authorization)
        } else {
            continue;
        };
        changes.push(RouteChange {
            key: route.key.clone(),
            id: Some(route.id.clone()),
            change,
        });
    }
    for key in &desired.keys {
        if !observed.iter().any(|route| &route.key == key) {
            changes.push(RouteChange {
                key: key.clone(),
                id: None,
                change: Change::Create,
            });
        }
    }
    changes
}

/// Converges the routes `observed` found (the pipeline reads them first: `$connect`'s
/// authorizer id is where the authorizer is found).
pub async fn converge(
    room: &RoomContext<'_>,
    api_id: &str,
    observed: &[ObservedRoute],
    integration_id: &str,
    connect_authorizer: Option<&str>,
) -> Result<Converged<()>, AwsError> {
    let apigw = &room.clients.apigateway;
    let desired = desired(room.spec, integration_id, connect_authorizer);
    let changes = diff(observed, &desired);
    for change in &changes {
        act(apigw, api_id, &desired, change).await?;
        if change.change == Change::Remove {
            tracing::info!(room = %room.display, route = %change.key, "removed a route no longer in the spec");
        }
    }
    Ok(Converged {
        output: (),
        outcome: outcome(changes.iter().map(|c| &c.change)),
    })
}

pub async fn observe(apigw: &Client, api_id: &str) -> Result<Vec<ObservedRoute>, AwsError> {
    let found = apigw
        .get_routes()
        .api_id(api_id)
        .send()
        .await
        .map_err(|e| On::new(Step::Routes, api_id).err(e))?;
    Ok(found
        .items()
        .iter()
        .filter_map(|route| {
            Some(ObservedRoute {
                id: route.route_id()?.to_owned(),
                key: route.route_key()?.to_owned(),
                target: route.target().map(str::to_owned),
                authorizer_id: route
                    .authorizer_id()
                    .filter(|_| route.authorization_type() == Some(&AuthorizationType::Custom))
                    .map(str::to_owned),
            })
        })
        .collect())
}

async fn act(
    apigw: &Client,
    api_id: &str,
    desired: &DesiredRoutes,
    route: &RouteChange,
) -> Result<(), AwsError> {
    let fail = On::new(Step::Routes, api_id);
    let id = route.id.as_deref().unwrap_or_default();
    match &route.change {
        Change::Create => {
            let create = apigw
                .create_route()
                .api_id(api_id)
                .route_key(&route.key)
                .target(&desired.target);
            let create = match desired.authorizer_for(&route.key) {
                Some(authorizer) => create
                    .authorization_type(AuthorizationType::Custom)
                    .authorizer_id(authorizer),
                None => create,
            };
            create.send().await.map(drop).map_err(|e| fail.err(e))
        }
        Change::Update(RouteField::Authorization) => {
            let update = apigw.update_route().api_id(api_id).route_id(id);
            let update = match desired.authorizer_for(&route.key) {
                Some(authorizer) => update
                    .authorization_type(AuthorizationType::Custom)
                    .authorizer_id(authorizer),
                None => update.authorization_type(AuthorizationType::None),
            };
            update.send().await.map(drop).map_err(|e| fail.err(e))
        }
        Change::Update(RouteField::Target) => apigw
            .update_route()
            .api_id(api_id)
            .route_id(id)
            .target(&desired.target)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail.err(e)),
        Change::Remove => apigw
            .delete_route()
            .api_id(api_id)
            .route_id(id)
            .send()
            .await
            .map(drop)
            .map_err(|e| fail.err(e)),
        other => Err(fail.unexpected(format!("diff asked for {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::HistorySpec;

    fn converged(desired: &DesiredRoutes) -> Vec<ObservedRoute> {
        desired
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| ObservedRoute {
                id: format!("r{i}"),
                key: key.clone(),
                target: Some(desired.target.clone()),
                authorizer_id: desired.authorizer_for(key).map(str::to_owned),
            })
            .collect()
    }

    fn with_route(message_route: &str) -> ChatRoomSpec {
        ChatRoomSpec {
            message_route: message_route.into(),
            ..ChatRoomSpec::default()
        }
    }

    #[test]
    fn five_routes_target_the_integration() {
        let routes = desired(&with_route("onMessage"), "i1", None);
        assert_eq!(
            routes.keys,
            ["$connect", "$disconnect", "$default", "onMessage", "who"]
        );
        assert_eq!(routes.target, "integrations/i1");
        assert_eq!(diff(&converged(&routes), &routes), []);
        assert_eq!(diff(&[], &routes).len(), 5);
    }

    #[test]
    fn history_has_its_route_while_the_room_keeps_history() {
        let mut spec = with_route("onMessage");
        spec.history = Some(HistorySpec {
            messages: 20,
            retention: "24h".into(),
        });
        let kept = desired(&spec, "i1", None);
        assert_eq!(kept.keys.last().map(String::as_str), Some("history"));
        spec.history = Some(HistorySpec {
            messages: 0,
            retention: "24h".into(),
        });
        let changes = diff(&converged(&kept), &desired(&spec, "i1", None));
        assert_eq!(
            changes,
            [RouteChange {
                key: "history".into(),
                id: Some("r5".into()),
                change: Change::Remove
            }]
        );
    }

    #[test]
    fn channels_have_their_two_routes_while_the_room_has_channels() {
        let mut spec = with_route("onMessage");
        spec.channels = Some(crate::crd::ChannelsSpec::default());
        let with = desired(&spec, "i1", None);
        assert_eq!(with.keys[5..], ["subscribe", "unsubscribe"]);
        spec.channels = None;
        let removed: Vec<String> = diff(&converged(&with), &desired(&spec, "i1", None))
            .into_iter()
            .filter(|c| c.change == Change::Remove)
            .map(|c| c.key)
            .collect();
        assert_eq!(removed, ["subscribe", "unsubscribe"]);
    }

    #[test]
    fn a_backends_routes_go_to_the_rooms_function_while_it_has_them() {
        let mut spec = with_route("onMessage");
        spec.backend = Some(crate::crd::BackendSpec {
            url: "https://backend.example.com/chat".into(),
            routes: vec!["notify".into(), "order".into()],
            events: Vec::new(),
            secret_ref: None,
            timeout_seconds: 5,
        });
        let with = desired(&spec, "i1", None);
        assert_eq!(with.keys[5..], ["notify", "order"]);
        spec.backend.as_mut().unwrap().routes.pop();
        let removed: Vec<String> = diff(&converged(&with), &desired(&spec, "i1", None))
            .into_iter()
            .filter(|c| c.change == Change::Remove)
            .map(|c| c.key)
            .collect();
        assert_eq!(removed, ["order"]);
    }

    #[test]
    fn connect_names_the_rooms_authorizer_and_no_other_route_does() {
        let spec = with_route("onMessage");
        let guarded = desired(&spec, "i1", Some("au1"));
        assert_eq!(diff(&converged(&guarded), &guarded), []);
        let open = desired(&spec, "i1", None);
        let connect = RouteChange {
            key: "$connect".into(),
            id: Some("r0".into()),
            change: Change::Update(RouteField::Authorization),
        };
        assert_eq!(
            diff(&converged(&open), &guarded),
            std::slice::from_ref(&connect)
        );
        assert_eq!(diff(&converged(&guarded), &open), [connect]);
    }

    #[test]
    fn a_missing_route_is_created() {
        let routes = desired(&with_route("onMessage"), "i1", None);
        let mut found = converged(&routes);
        found.retain(|r| r.key != "$default");
        assert_eq!(
            diff(&found, &routes),
            [RouteChange {
                key: "$default".into(),
                id: None,
                change: Change::Create
            }]
        );
    }

    #[test]
    fn a_new_message_route_replaces_the_old_one_and_stray_targets_are_fixed() {
        let old = desired(&with_route("onMessage"), "i1", None);
        let mut found = converged(&old);
        found[0].target = Some("integrations/other".into());
        let changes = diff(&found, &desired(&with_route("say"), "i1", None));
        assert_eq!(
            changes,
            [
                RouteChange {
                    key: "$connect".into(),
                    id: Some("r0".into()),
                    change: Change::Update(RouteField::Target)
                },
                RouteChange {
                    key: "onMessage".into(),
                    id: Some("r3".into()),
                    change: Change::Remove
                },
                RouteChange {
                    key: "say".into(),
                    id: None,
                    change: Change::Create
                },
            ]
        );
    }
}
