//! A custom domain for a room with `spec.domain`: a regional API Gateway domain name (tagged
//! like every resource of the room, TLS 1.2, the spec's ACM certificate) and one API mapping
//! from its base path to the room's stage. The management API does not answer on custom
//! domains, so `status.callbackUrl` and the function's `CALLBACK_URL` stay on execute-api.
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-custom-domain-names.html>

use std::collections::HashMap;

use aws_sdk_apigatewayv2::Client;
use aws_sdk_apigatewayv2::types::{DomainNameConfiguration, EndpointType, SecurityPolicy};

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, On, Step, absent_if_not_found};
use super::{RoomContext, Tags};
use crate::crd::ChatRoomSpec;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredDomain {
    pub name: String,
    pub certificate_arn: String,
    /// The API mapping key: empty for the domain's root.
    pub base_path: String,
    pub stage: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedDomain {
    pub certificate_arn: Option<String>,
    /// `ApiGatewayDomainName`: where DNS must point.
    pub target: Option<String>,
    pub tags: HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMapping {
    pub id: String,
    pub api_id: String,
    pub key: String,
    pub stage: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainField {
    Certificate,
}

/// What the domain step changes: the domain name itself, then its mappings by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainChanges {
    pub domain: Vec<Change<DomainField>>,
    /// Mappings of the room's API that are not the one wanted go; the wanted one is created.
    pub remove_mappings: Vec<String>,
    pub create_mapping: bool,
}

pub fn desired(spec: &ChatRoomSpec, tags: &Tags) -> Option<DesiredDomain> {
    let domain = spec.domain.as_ref()?;
    Some(DesiredDomain {
        name: domain.name.clone(),
        certificate_arn: domain.certificate_arn.clone(),
        base_path: domain.base_path.clone(),
        stage: spec.stage.clone(),
        tags: tags.clone(),
    })
}

/// `wss://{name}/{basePath}`: the API mapping leads to the stage, so no stage in the path.
pub fn websocket_url(desired: &DesiredDomain) -> String {
    match desired.base_path.as_str() {
        "" => format!("wss://{}", desired.name),
        path => format!("wss://{}/{path}", desired.name),
    }
}

pub fn diff(
    observed: Option<&ObservedDomain>,
    mappings: &[ObservedMapping],
    api_id: &str,
    desired: &DesiredDomain,
) -> DomainChanges {
    let domain = match observed {
        None => vec![Change::Create],
        Some(found) => match claim(&found.tags, &desired.tags, &desired.name) {
            Err(conflict) => conflict,
            Ok(mut changes) => {
                if found.certificate_arn.as_deref() != Some(desired.certificate_arn.as_str()) {
                    changes.push(Change::Update(DomainField::Certificate));
                }
                changes
            }
        },
    };
    let wanted = |m: &ObservedMapping| {
        m.api_id == api_id && m.key == desired.base_path && m.stage == desired.stage
    };
    DomainChanges {
        remove_mappings: mappings
            .iter()
            .filter(|m| m.api_id == api_id && !wanted(m))
            .map(|m| m.id.clone())
            .collect(),
        create_mapping: !mappings.iter().any(wanted),
        domain,
    }
}

/// Converges the domain and its mapping; the output is the DNS target.
pub async fn converge(
    room: &RoomContext<'_>,
    desired: &DesiredDomain,
    api_id: &str,
) -> Result<Converged<String>, AwsError> {
    let apigw = &room.clients.apigateway;
    let fail = On::new(Step::Domain, &desired.name);
    let observed = observe(apigw, &desired.name).await?;
    let mappings = match observed {
        Some(_) => observe_mappings(apigw, &desired.name).await?,
        None => Vec::new(),
    };
    let changes = diff(observed.as_ref(), &mappings, api_id, desired);
    let configuration = DomainNameConfiguration::builder()
        .certificate_arn(&desired.certificate_arn)
        .endpoint_type(EndpointType::Regional)
        .security_policy(SecurityPolicy::Tls12)
        .build();
    let mut target = observed.as_ref().and_then(|d| d.target.clone());
    for change in &changes.domain {
        match change {
            Change::Create => {
                let created = apigw
                    .create_domain_name()
                    .domain_name(&desired.name)
                    .domain_name_configurations(configuration.clone())
                    .set_tags(Some(desired.tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
                target = created
                    .domain_name_configurations()
                    .first()
                    .and_then(|c| c.api_gateway_domain_name())
                    .map(str::to_owned);
            }
            Change::Update(DomainField::Certificate) => {
                apigw
                    .update_domain_name()
                    .domain_name(&desired.name)
                    .domain_name_configurations(configuration.clone())
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            Change::Adopt => {
                let arn = domain_arn(room, &desired.name);
                apigw
                    .tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(desired.tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            other => return Err(fail.unexpected(format!("diff asked for {other:?}"))),
        }
    }
    for id in &changes.remove_mappings {
        apigw
            .delete_api_mapping()
            .domain_name(&desired.name)
            .api_mapping_id(id)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
    }
    if changes.create_mapping {
        apigw
            .create_api_mapping()
            .domain_name(&desired.name)
            .api_id(api_id)
            .stage(&desired.stage)
            .api_mapping_key(&desired.base_path)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
    }
    let mapping_changes = changes
        .remove_mappings
        .iter()
        .map(|_| Change::Remove)
        .chain(changes.create_mapping.then_some(Change::Create));
    let all: Vec<Change<DomainField>> = changes
        .domain
        .iter()
        .cloned()
        .chain(mapping_changes)
        .collect();
    Ok(Converged {
        output: target.unwrap_or_default(),
        outcome: outcome(&all),
    })
}

/// Deletes the room's domain `name` (its mappings go with it); another owner's is left alone.
pub async fn delete(room: &RoomContext<'_>, name: &str) -> Result<Removal, AwsError> {
    let apigw = &room.clients.apigateway;
    let found = observe(apigw, name).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|d| &d.tags), &room.tags) {
        return Ok(skip);
    }
    let deleted = apigw.delete_domain_name().domain_name(name).send().await;
    let fail = On::new(Step::Domain, name);
    let deleted = absent_if_not_found(deleted.map_err(|e| fail.err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

fn domain_arn(room: &RoomContext<'_>, name: &str) -> String {
    format!(
        "arn:{}:apigateway:{}::/domainnames/{name}",
        room.partition(),
        room.region
    )
}

async fn observe(apigw: &Client, name: &str) -> Result<Option<ObservedDomain>, AwsError> {
    let found = apigw.get_domain_name().domain_name(name).send().await;
    let found = absent_if_not_found(found.map_err(|e| On::new(Step::Domain, name).err(e)))?;
    Ok(found.map(|d| {
        let configuration = d.domain_name_configurations().first();
        ObservedDomain {
            certificate_arn: configuration
                .and_then(|c| c.certificate_arn())
                .map(str::to_owned),
            target: configuration
                .and_then(|c| c.api_gateway_domain_name())
                .map(str::to_owned),
            tags: d.tags().cloned().unwrap_or_default(),
        }
    }))
}

async fn observe_mappings(apigw: &Client, name: &str) -> Result<Vec<ObservedMapping>, AwsError> {
    let found = apigw
        .get_api_mappings()
        .domain_name(name)
        .send()
        .await
        .map_err(|e| On::new(Step::Domain, name).err(e))?;
    Ok(found
        .items()
        .iter()
        .map(|m| ObservedMapping {
            id: m.api_mapping_id().unwrap_or_default().to_owned(),
            api_id: m.api_id().unwrap_or_default().to_owned(),
            key: m.api_mapping_key().unwrap_or_default().to_owned(),
            stage: m.stage().unwrap_or_default().to_owned(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::DomainSpec;

    fn wanted(base_path: &str) -> DesiredDomain {
        let spec = ChatRoomSpec {
            domain: Some(DomainSpec {
                name: "chat.example.com".into(),
                certificate_arn: "arn:aws:acm:eu-west-1:123456789012:certificate/abc".into(),
                base_path: base_path.into(),
            }),
            ..ChatRoomSpec::default()
        };
        let tags = Tags::from([
            ("chatroom.dev/managed-by".into(), "chatroom-operator".into()),
            ("chatroom.dev/cluster".into(), "prod".into()),
            ("chatroom.dev/namespace".into(), "default".into()),
            ("chatroom.dev/name".into(), "lobby".into()),
        ]);
        desired(&spec, &tags).expect("a domain")
    }

    fn ours(desired: &DesiredDomain) -> ObservedDomain {
        ObservedDomain {
            certificate_arn: Some(desired.certificate_arn.clone()),
            target: Some("d-abc.execute-api.eu-west-1.amazonaws.com".into()),
            tags: desired.tags.clone().into_iter().collect(),
        }
    }

    fn mapping(key: &str, api_id: &str) -> ObservedMapping {
        ObservedMapping {
            id: format!("m-{key}"),
            api_id: api_id.into(),
            key: key.into(),
            stage: "dev".into(),
        }
    }

    #[test]
    fn the_url_is_the_domain_and_base_path_without_the_stage() {
        assert_eq!(websocket_url(&wanted("")), "wss://chat.example.com");
        assert_eq!(
            websocket_url(&wanted("lobby")),
            "wss://chat.example.com/lobby"
        );
    }

    #[test]
    fn a_new_domain_gets_its_mapping_and_a_converged_one_nothing() {
        let domain = wanted("lobby");
        let fresh = diff(None, &[], "api1", &domain);
        assert_eq!(fresh.domain, [Change::Create]);
        assert!(fresh.create_mapping);
        let settled = diff(
            Some(&ours(&domain)),
            &[mapping("lobby", "api1")],
            "api1",
            &domain,
        );
        assert_eq!(
            settled,
            DomainChanges {
                domain: vec![],
                remove_mappings: vec![],
                create_mapping: false
            }
        );
    }

    #[test]
    fn a_moved_base_path_replaces_the_mapping_and_a_foreign_domain_is_left_alone() {
        let domain = wanted("lobby");
        let moved = diff(
            Some(&ours(&domain)),
            &[mapping("old", "api1")],
            "api1",
            &domain,
        );
        assert_eq!(moved.remove_mappings, ["m-old"]);
        assert!(moved.create_mapping);
        let mut foreign = ours(&domain);
        foreign.tags.clear();
        assert!(matches!(
            diff(Some(&foreign), &[], "api1", &domain).domain[..],
            [Change::Conflict(_)]
        ));
        let mut renewed = ours(&domain);
        renewed.certificate_arn = Some("arn:aws:acm:eu-west-1:123456789012:certificate/old".into());
        assert_eq!(
            diff(Some(&renewed), &[mapping("lobby", "api1")], "api1", &domain).domain,
            [Change::Update(DomainField::Certificate)]
        );
    }
}
