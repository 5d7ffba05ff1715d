//! What IAM authorises for each HTTP request the operator sent: the documented action of the
//! operation, the ARN it touches, the condition keys it carries, and the further actions AWS
//! requires for it (tags on create, a role passed to Lambda).
//!
//! Tags on resources are modelled, not read back: in the scenarios every resource the operator
//! touches after creating it is the room's own and carries the room's tags (`Model::tags`),
//! and only resources AWS lets carry tags have any (API Gateway v2: the API, its stages and domain names).
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-tagging-supported-resources.html>

use std::collections::{BTreeMap, HashMap};

use chatroom_operator::providers::aws::RecordedRequest;
use serde_json::Value;

use super::evaluate::Authorization;

/// moto's account.
pub const ACCOUNT: &str = "123456789012";

/// What the requests' resources are taken to carry.
pub struct Model {
    /// The room's tags: every existing resource of the room carries them.
    pub tags: BTreeMap<String, String>,
    /// The permissions boundary on the room's role.
    pub boundary: String,
}

/// A request as IAM sees it, for failure messages.
pub fn describe(request: &RecordedRequest) -> String {
    let path = path_of(&request.uri);
    format!(
        "{} {} ({} {})",
        request.call.service, request.call.operation, request.method, path
    )
}

pub fn authorizations(request: &RecordedRequest, model: &Model) -> Vec<Authorization> {
    let region = region_of(request);
    let op = request.call.operation.as_str();
    match request.call.service.as_str() {
        "DynamoDB" => dynamodb(op, &json_body(request), &region, model),
        "IAM" => iam(op, &form_body(request), model),
        "Lambda" => lambda(op, request, &region, model),
        "CloudWatch Logs" => logs(op, &json_body(request), &region, model),
        "ApiGatewayV2" => apigateway(request, &region, model),
        // "No permissions are required to perform this operation."
        // https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
        "STS" if op == "GetCallerIdentity" => Vec::new(),
        service => panic!(
            "the policy test cannot map {service} {op} to IAM; teach requests.rs the documented action"
        ),
    }
}

fn dynamodb(op: &str, body: &Value, region: &str, model: &Model) -> Vec<Authorization> {
    let resource = match body["ResourceArn"].as_str() {
        Some(arn) => arn.to_owned(),
        None => format!(
            "arn:aws:dynamodb:{region}:{ACCOUNT}:table/{}",
            body["TableName"].as_str().unwrap_or_default()
        ),
    };
    let request_tags = key_value_list(&body["Tags"], "Key", "Value");
    let mut context = tag_context(&request_tags);
    if op != "CreateTable" {
        context.extend(resource_tags(&model.tags));
    }
    let mut found = vec![authorize(
        format!("dynamodb:{op}"),
        &resource,
        context.clone(),
    )];
    // Creating with tags also needs dynamodb:TagResource.
    // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Tagging.Operations.html
    if op == "CreateTable" && !request_tags.is_empty() {
        found.push(authorize("dynamodb:TagResource".into(), &resource, context));
    }
    found
}

fn iam(op: &str, form: &HashMap<String, String>, model: &Model) -> Vec<Authorization> {
    let role = form.get("RoleName").cloned().unwrap_or_default();
    let resource = format!("arn:aws:iam::{ACCOUNT}:role/{role}");
    let mut request_tags = BTreeMap::new();
    for n in 1.. {
        let (Some(key), Some(value)) = (
            form.get(&format!("Tags.member.{n}.Key")),
            form.get(&format!("Tags.member.{n}.Value")),
        ) else {
            break;
        };
        request_tags.insert(key.clone(), value.clone());
    }
    let mut context = tag_context(&request_tags);
    // iam:PermissionsBoundary: the boundary in the request when one is set, else the role's.
    let boundary = form.get("PermissionsBoundary").unwrap_or(&model.boundary);
    context.insert("iam:permissionsboundary".into(), vec![boundary.clone()]);
    if op != "CreateRole" {
        context.extend(resource_tags(&model.tags));
    }
    let mut found = vec![authorize(format!("iam:{op}"), &resource, context.clone())];
    if op == "CreateRole" && !request_tags.is_empty() {
        // https://docs.aws.amazon.com/IAM/latest/UserGuide/id_tags_roles.html
        found.push(authorize("iam:TagRole".into(), &resource, context));
    }
    found
}

fn lambda(op: &str, request: &RecordedRequest, region: &str, model: &Model) -> Vec<Authorization> {
    let path = path_of(&request.uri);
    let body = json_body(request);
    let function_arn = |name: &str| format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resource = match (op, segments.as_slice()) {
        ("CreateFunction", _) => function_arn(body["FunctionName"].as_str().unwrap_or_default()),
        ("TagResource", [_, "tags", arn]) => decode(arn),
        (_, [_, "functions", name, ..]) => function_arn(&decode(name)),
        _ => panic!("no function in the Lambda request {op} {path}"),
    };
    let request_tags: BTreeMap<String, String> = body["Tags"]
        .as_object()
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut context = tag_context(&request_tags);
    if let Some(principal) = body["Principal"].as_str() {
        context.insert("lambda:principal".into(), vec![principal.to_owned()]);
    }
    if op != "CreateFunction" {
        context.extend(resource_tags(&model.tags));
    }
    let mut found = vec![authorize(
        format!("lambda:{op}"),
        &resource,
        context.clone(),
    )];
    if op == "CreateFunction" && !request_tags.is_empty() {
        // "To add tags when you create a function, you need lambda:TagResource."
        // https://docs.aws.amazon.com/lambda/latest/dg/attribute-based-access-control.html
        found.push(authorize(
            "lambda:TagResource".into(),
            &resource,
            context.clone(),
        ));
    }
    if op == "GetFunction" {
        // "Lambda returns tag data only if you have explicit allow permissions for
        // lambda:ListTags": without it the ownership check finds no tags on our own function.
        // https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html
        found.push(authorize(
            "lambda:ListTags".into(),
            &resource,
            context.clone(),
        ));
    }
    // Creating a function, or changing its role, passes the role to Lambda.
    // https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html
    if let Some(role) = body["Role"].as_str() {
        let passed = HashMap::from([(
            "iam:passedtoservice".to_owned(),
            vec!["lambda.amazonaws.com".to_owned()],
        )]);
        found.push(authorize("iam:PassRole".into(), role, passed));
    }
    found
}

fn logs(op: &str, body: &Value, region: &str, model: &Model) -> Vec<Authorization> {
    // DescribeLogGroups has no resource-level permission: it is authorised on `*`.
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html
    if op == "DescribeLogGroups" {
        return vec![authorize(
            "logs:DescribeLogGroups".into(),
            "*",
            HashMap::new(),
        )];
    }
    let resource = match body["resourceArn"].as_str() {
        Some(arn) => arn.trim_end_matches(":*").to_owned(),
        None => format!(
            "arn:aws:logs:{region}:{ACCOUNT}:log-group:{}",
            body["logGroupName"].as_str().unwrap_or_default()
        ),
    };
    let request_tags: BTreeMap<String, String> = body["tags"]
        .as_object()
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut context = tag_context(&request_tags);
    if op != "CreateLogGroup" {
        context.extend(resource_tags(&model.tags));
    }
    let mut found = vec![authorize(format!("logs:{op}"), &resource, context.clone())];
    if op == "CreateLogGroup" && !request_tags.is_empty() {
        // "To create a log group with tags, you must have both logs:CreateLogGroup and
        // logs:TagResource." https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html
        found.push(authorize("logs:TagResource".into(), &resource, context));
    }
    found
}

/// API Gateway authorises its own API by HTTP method on the request's path.
/// <https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-control-access-using-iam-policies-to-create-and-manage-api.html>
fn apigateway(request: &RecordedRequest, region: &str, model: &Model) -> Vec<Authorization> {
    let path = path_of(&request.uri);
    let path = path.strip_prefix("/v2").unwrap_or(&path).to_owned();
    let resource = format!("arn:aws:apigateway:{region}::{path}");
    let body = json_body(request);
    let request_tags: BTreeMap<String, String> = body["tags"]
        .as_object()
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut context = tag_context(&request_tags);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Only APIs, stages and domain names carry tags; routes, integrations, authorizers, API
    // mappings and collections have none.
    let taggable = matches!(
        segments.as_slice(),
        ["apis", _] | ["apis", _, "stages", _] | ["domainnames", _]
    );
    if taggable && request.method != "POST" {
        context.extend(resource_tags(&model.tags));
    }
    let action = format!("apigateway:{}", request.method);
    let mut found = vec![authorize(action, &resource, context.clone())];
    if !request_tags.is_empty() {
        // A request that carries tags is also authorised as apigateway:TagResource, on the
        // request's own resource: "is not authorized to perform: apigateway:TagResource on
        // resource: arn:aws:apigateway:eu-west-3::/apis/<APIID>/stages" (aws-amplify/amplify-cli#12316).
        found.push(authorize(
            "apigateway:TagResource".into(),
            &resource,
            context,
        ));
    }
    found
}

fn authorize(
    action: String,
    resource: &str,
    context: HashMap<String, Vec<String>>,
) -> Authorization {
    Authorization {
        action,
        resource: resource.to_owned(),
        context,
    }
}

/// `aws:RequestTag/{key}` for every tag a request sets, and `aws:TagKeys`.
fn tag_context(tags: &BTreeMap<String, String>) -> HashMap<String, Vec<String>> {
    let mut context: HashMap<String, Vec<String>> = tags
        .iter()
        .map(|(k, v)| {
            (
                format!("aws:requesttag/{}", k.to_lowercase()),
                vec![v.clone()],
            )
        })
        .collect();
    if !tags.is_empty() {
        context.insert("aws:tagkeys".into(), tags.keys().cloned().collect());
    }
    context
}

fn resource_tags(tags: &BTreeMap<String, String>) -> HashMap<String, Vec<String>> {
    tags.iter()
        .flat_map(|(k, v)| {
            let key = k.to_lowercase();
            [
                (format!("aws:resourcetag/{key}"), vec![v.clone()]),
                (format!("iam:resourcetag/{key}"), vec![v.clone()]),
            ]
        })
        .collect()
}

fn key_value_list(value: &Value, key: &str, val: &str) -> BTreeMap<String, String> {
    value
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    (
                        p[key].as_str().unwrap_or_default().to_owned(),
                        p[val].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn json_body(request: &RecordedRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

fn form_body(request: &RecordedRequest) -> HashMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// The region of the request's SigV4 credential scope.
fn region_of(request: &RecordedRequest) -> String {
    let authorization = request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|credential| credential.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_owned()
}

fn path_of(uri: &str) -> String {
    let without_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let path = without_scheme
        .find('/')
        .map_or("/", |i| &without_scheme[i..]);
    path.split('?').next().unwrap_or(path).to_owned()
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}
