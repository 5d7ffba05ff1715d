//! `chatroom-operator iam-policy`: the operator's IAM policies for one cluster and partition.

use std::process::ExitCode;

use serde_json::{Map, Value};

use super::EXIT_BAD_INPUT;
use crate::cli::IamPolicyArgs;
use crate::providers::aws::operator_policy::operator_policies;

pub fn print(args: &IamPolicyArgs) -> ExitCode {
    let policies = match operator_policies(&args.partition, &args.cluster_name) {
        Ok(policies) => policies,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let output = match &args.document {
        Some(name) => match policies.into_iter().find(|p| p.name == name) {
            Some(policy) => policy.document,
            None => {
                eprintln!(
                    "error: --document {name:?}: the policies are chatroom-operator and chatroom-operator-apigateway"
                );
                return ExitCode::from(EXIT_BAD_INPUT);
            }
        },
        None => Value::Object(
            policies
                .into_iter()
                .map(|p| (p.name.to_owned(), p.document))
                .collect::<Map<_, _>>(),
        ),
    };
    match serde_json::to_string_pretty(&output) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
