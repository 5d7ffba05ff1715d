//! The operator's own IAM policy, for one cluster and one partition: what
//! `chatroom-operator iam-policy` prints and `docs/iam-policy*.json` hold (for the cluster
//! `default` in `aws`; a test keeps them equal).
//!
//! Everything the operator makes carries `chatroom.dev/managed-by` and `chatroom.dev/cluster`;
//! every grant AWS evaluates on tags names both, so the operator of one cluster can neither
//! make, change nor delete another cluster's rooms. Reads are granted by name alone (a read of
//! something that does not exist yet must answer NotFound, and no tag can be read before it
//! exists); what AWS cannot scope by tag at all is in docs/operations.md.
//!
//! IAM holds a managed policy to 6,144 characters, whitespace excluded
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>), so the
//! policy is two documents: API Gateway's grants, and the rest.

use serde_json::{Value, json};

use super::naming::BOUNDARY_POLICY;
use super::tags::{CLUSTER, MANAGED_BY, OPERATOR};

/// IAM's limit on a managed policy, in characters without whitespace.
pub const MAX_POLICY_CHARACTERS: usize = 6_144;

/// The longest cluster name a policy is made for (EKS allows 100 characters).
pub const MAX_CLUSTER_NAME: usize = 100;

/// The partitions the operator runs in.
pub const PARTITIONS: [&str; 3] = ["aws", "aws-cn", "aws-us-gov"];

/// One managed policy: the name to create it under and its document.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagedPolicy {
    pub name: &'static str,
    pub document: Value,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("unknown partition {0:?}: one of aws, aws-cn, aws-us-gov")]
    Partition(String),
    #[error(
        "cluster name {0:?}: 1 to {MAX_CLUSTER_NAME} letters, digits, spaces or _ . : / = + - @"
    )]
    ClusterName(String),
}

/// Whether `name` can name a cluster: a tag value AWS accepts, short enough for the policy.
pub fn check_cluster_name(name: &str) -> Result<(), PolicyError> {
    let fits = (1..=MAX_CLUSTER_NAME).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c));
    if fits {
        Ok(())
    } else {
        Err(PolicyError::ClusterName(name.to_owned()))
    }
}

/// The operator's managed policies for `cluster` in `partition`.
pub fn operator_policies(
    partition: &str,
    cluster: &str,
) -> Result<Vec<ManagedPolicy>, PolicyError> {
    if !PARTITIONS.contains(&partition) {
        return Err(PolicyError::Partition(partition.to_owned()));
    }
    check_cluster_name(cluster)?;
    let grants = Grants {
        p: partition,
        cluster,
    };
    Ok(vec![
        ManagedPolicy {
            name: "chatroom-operator",
            document: document(grants.tables_roles_functions_logs()),
        },
        ManagedPolicy {
            name: "chatroom-operator-apigateway",
            document: document(grants.api_gateway()),
        },
    ])
}

/// A document's size as IAM counts it: every character but whitespace.
pub fn policy_characters(document: &Value) -> usize {
    document
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

fn document(statements: Vec<Value>) -> Value {
    json!({ "Version": "2012-10-17", "Statement": statements })
}

struct Grants<'a> {
    p: &'a str,
    cluster: &'a str,
}

impl Grants<'_> {
    /// Made with both tags: the request must carry them.
    fn created(&self) -> Value {
        json!({ "StringEquals": {
            format!("aws:RequestTag/{MANAGED_BY}"): OPERATOR,
            format!("aws:RequestTag/{CLUSTER}"): self.cluster,
        }})
    }

    /// Changed or deleted only while it carries both tags.
    fn owned(&self) -> Value {
        json!({ "StringEquals": {
            format!("aws:ResourceTag/{MANAGED_BY}"): OPERATOR,
            format!("aws:ResourceTag/{CLUSTER}"): self.cluster,
        }})
    }

    fn boundary(&self) -> String {
        format!("arn:{}:iam::*:policy/{BOUNDARY_POLICY}", self.p)
    }

    fn tables_roles_functions_logs(&self) -> Vec<Value> {
        let p = self.p;
        let tables = format!("arn:{p}:dynamodb:*:*:table/chatroom-*");
        let roles = format!("arn:{p}:iam::*:role/chatroom-*");
        let functions = format!("arn:{p}:lambda:*:*:function:chatroom-*");
        let log_groups = [
            format!("arn:{p}:logs:*:*:log-group:/aws/lambda/chatroom-*"),
            format!("arn:{p}:logs:*:*:log-group:/aws/lambda/chatroom-*:*"),
            format!("arn:{p}:logs:*:*:log-group:/aws/apigateway/chatroom-*"),
            format!("arn:{p}:logs:*:*:log-group:/aws/apigateway/chatroom-*:*"),
        ];
        let mut under_boundary = self.owned();
        under_boundary["ArnLike"] = json!({ "iam:PermissionsBoundary": self.boundary() });
        let mut created_under_boundary = self.created();
        created_under_boundary["ArnLike"] = json!({ "iam:PermissionsBoundary": self.boundary() });
        let mut invoked_by_api_gateway = self.owned();
        invoked_by_api_gateway["StringEquals"]["lambda:Principal"] =
            json!("apigateway.amazonaws.com");
        vec![
            json!({
                "Sid": "ReadTables",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:ListTagsOfResource",
                           "dynamodb:DescribeTimeToLive", "dynamodb:DescribeContinuousBackups"],
                "Resource": tables,
            }),
            json!({
                "Sid": "CreateTaggedTables",
                "Effect": "Allow",
                "Action": ["dynamodb:CreateTable", "dynamodb:TagResource"],
                "Resource": tables,
                "Condition": self.created(),
            }),
            json!({
                "Sid": "ChangeOwnTables",
                "Effect": "Allow",
                "Action": ["dynamodb:UpdateTable", "dynamodb:UpdateTimeToLive",
                           "dynamodb:UpdateContinuousBackups", "dynamodb:DeleteTable"],
                "Resource": tables,
                "Condition": self.owned(),
            }),
            json!({
                "Sid": "ReadRoles",
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:GetRolePolicy"],
                "Resource": roles,
            }),
            json!({
                "Sid": "CreateRolesUnderTheBoundary",
                "Effect": "Allow",
                "Action": "iam:CreateRole",
                "Resource": roles,
                "Condition": created_under_boundary,
            }),
            json!({
                "Sid": "TagRolesAsCreated",
                "Effect": "Allow",
                "Action": "iam:TagRole",
                "Resource": roles,
                "Condition": self.created(),
            }),
            json!({
                "Sid": "ChangeOwnBoundedRoles",
                "Effect": "Allow",
                "Action": ["iam:PutRolePolicy", "iam:PutRolePermissionsBoundary",
                           "iam:DeleteRolePolicy", "iam:DeleteRole"],
                "Resource": roles,
                "Condition": under_boundary,
            }),
            json!({
                "Sid": "NeverLiftOrWidenTheBoundary",
                "Effect": "Deny",
                "Action": ["iam:DeleteRolePermissionsBoundary", "iam:CreatePolicyVersion",
                           "iam:DeletePolicy", "iam:DeletePolicyVersion",
                           "iam:SetDefaultPolicyVersion"],
                "Resource": [roles, format!("arn:{p}:iam::*:policy/{BOUNDARY_POLICY}")],
            }),
            json!({
                "Sid": "PassRolesToLambdaOnly",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": roles,
                "Condition": { "StringEquals": { "iam:PassedToService": "lambda.amazonaws.com" } },
            }),
            json!({
                "Sid": "ReadFunctions",
                "Effect": "Allow",
                "Action": ["lambda:GetFunction", "lambda:GetFunctionConfiguration",
                           "lambda:GetPolicy", "lambda:ListTags"],
                "Resource": functions,
            }),
            json!({
                "Sid": "CreateTaggedFunctions",
                "Effect": "Allow",
                "Action": ["lambda:CreateFunction", "lambda:TagResource"],
                "Resource": functions,
                "Condition": self.created(),
            }),
            json!({
                "Sid": "ChangeOwnFunctions",
                "Effect": "Allow",
                "Action": ["lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
                           "lambda:RemovePermission", "lambda:DeleteFunction"],
                "Resource": functions,
                "Condition": self.owned(),
            }),
            json!({
                "Sid": "LetOnlyApiGatewayInvoke",
                "Effect": "Allow",
                "Action": "lambda:AddPermission",
                "Resource": functions,
                "Condition": invoked_by_api_gateway,
            }),
            json!({
                // DescribeLogGroups has no resource-level permission.
                "Sid": "FindLogGroups",
                "Effect": "Allow",
                "Action": "logs:DescribeLogGroups",
                "Resource": "*",
            }),
            json!({
                "Sid": "ReadLogGroupTags",
                "Effect": "Allow",
                "Action": "logs:ListTagsForResource",
                "Resource": [log_groups[0], log_groups[2]],
            }),
            json!({
                "Sid": "CreateTaggedLogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:TagResource"],
                "Resource": log_groups,
                "Condition": self.created(),
            }),
            json!({
                "Sid": "ChangeOwnLogGroups",
                "Effect": "Allow",
                "Action": ["logs:PutRetentionPolicy", "logs:DeleteLogGroup"],
                "Resource": log_groups,
                "Condition": self.owned(),
            }),
        ]
    }

    /// API Gateway authorises its own API by HTTP method on the resource's path; its
    /// service-linked role is made with the operator's permission too.
    fn api_gateway(&self) -> Vec<Value> {
        let p = self.p;
        let path = |path: &str| format!("arn:{p}:apigateway:*::{path}");
        vec![
            json!({
                "Sid": "ReadApis",
                "Effect": "Allow",
                "Action": "apigateway:GET",
                "Resource": [path("/apis"), path("/apis/*"), path("/domainnames/*")],
            }),
            json!({
                // Creating a tagged API, stage or domain name is also apigateway:TagResource
                // on the collection (aws-amplify/amplify-cli#12316).
                "Sid": "CreateTaggedApisStagesAndDomains",
                "Effect": "Allow",
                "Action": ["apigateway:POST", "apigateway:TagResource"],
                "Resource": [path("/apis"), path("/apis/*/stages"), path("/domainnames")],
                "Condition": self.created(),
            }),
            json!({
                // Tags go only on what already carries this cluster's: no foreign API or
                // domain can be tagged into the operator's reach.
                "Sid": "RetagOwnApisStagesAndDomains",
                "Effect": "Allow",
                "Action": ["apigateway:POST", "apigateway:TagResource"],
                "Resource": path("/tags/*"),
                "Condition": self.owned_and_created(),
            }),
            json!({
                "Sid": "ChangeOwnApisStagesAndDomains",
                "Effect": "Allow",
                "Action": ["apigateway:PATCH", "apigateway:DELETE"],
                "Resource": [path("/apis/*"), path("/domainnames/*")],
                "Condition": self.owned(),
            }),
            json!({
                // The first API or custom domain of an account makes API Gateway's
                // service-linked role, with the caller's permission.
                // https://docs.aws.amazon.com/apigateway/latest/developerguide/using-service-linked-roles.html#create-slr
                "Sid": "LetApiGatewayMakeItsServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": format!(
                    "arn:{p}:iam::*:role/aws-service-role/ops.apigateway.amazonaws.com/AWSServiceRoleForAPIGateway"
                ),
                "Condition": { "StringEquals": { "iam:AWSServiceName": "ops.apigateway.amazonaws.com" } },
            }),
            json!({
                // Routes, integrations, authorizers and API mappings carry no tags.
                "Sid": "ManageUntaggableParts",
                "Effect": "Allow",
                "Action": ["apigateway:POST", "apigateway:PATCH", "apigateway:DELETE"],
                "Resource": [
                    path("/apis/*/integrations"), path("/apis/*/integrations/*"),
                    path("/apis/*/routes"), path("/apis/*/routes/*"),
                    path("/apis/*/authorizers"), path("/apis/*/authorizers/*"),
                    path("/domainnames/*/apimappings"), path("/domainnames/*/apimappings/*"),
                    path("/apis/*/stages/*/accesslogsettings"),
                ],
            }),
        ]
    }

    fn owned_and_created(&self) -> Value {
        let mut both = self.owned();
        for (key, value) in self.created()["StringEquals"]
            .as_object()
            .into_iter()
            .flatten()
        {
            both["StringEquals"][key] = value.clone();
        }
        both
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_fits_iams_limit_in_every_partition_for_the_longest_cluster_name() {
        let longest = "c".repeat(MAX_CLUSTER_NAME);
        for partition in PARTITIONS {
            for policy in operator_policies(partition, &longest).unwrap() {
                let size = policy_characters(&policy.document);
                assert!(
                    size <= MAX_POLICY_CHARACTERS,
                    "{} in {partition}: {size} characters",
                    policy.name
                );
            }
        }
    }

    #[test]
    fn every_tag_condition_names_the_cluster() {
        for policy in operator_policies("aws", "blue").unwrap() {
            for statement in policy.document["Statement"].as_array().unwrap() {
                let Some(equals) = statement["Condition"]["StringEquals"].as_object() else {
                    continue;
                };
                let tagged = equals.keys().any(|k| k.contains("Tag/"));
                if tagged {
                    let cluster = equals
                        .iter()
                        .filter(|(k, _)| k.ends_with(&format!("Tag/{CLUSTER}")))
                        .count();
                    assert!(cluster >= 1, "{}: {statement}", policy.name);
                    assert!(
                        equals.values().any(|v| v == "blue"),
                        "{}: {statement}",
                        policy.name
                    );
                }
            }
        }
    }

    #[test]
    fn arns_are_the_partitions_and_bad_input_is_refused() {
        for policy in operator_policies("aws-cn", "default").unwrap() {
            let text = policy.document.to_string();
            assert!(!text.contains("arn:aws:"), "{text}");
            assert!(text.contains("arn:aws-cn:"));
        }
        assert_eq!(
            operator_policies("aws-mars", "default"),
            Err(PolicyError::Partition("aws-mars".into()))
        );
        assert!(operator_policies("aws", "").is_err());
        assert!(operator_policies("aws", "a<b").is_err());
        assert!(operator_policies("aws", &"c".repeat(MAX_CLUSTER_NAME + 1)).is_err());
    }
}
