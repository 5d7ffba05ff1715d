//! Why converging a room stopped, typed so that each kind of failure knows for itself whether
//! waiting can help ([`AwsError::is_permanent`]) and what its condition reason is.

use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response;

use crate::report::Part;

/// A step of a room's convergence, in dependency order; each belongs to one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Who the operator's credentials are: the account and partition every ARN needs.
    Identity,
    Table,
    /// The table of the room's messages, when it keeps history.
    HistoryTable,
    /// The table of channel subscriptions, when the room has channels.
    ChannelTable,
    Api,
    Role,
    LogGroup,
    Function,
    Integration,
    /// The `$connect` route's authorizer (rooms with `spec.auth`).
    Authorizer,
    /// The stage's access log group (rooms with `spec.accessLog`).
    AccessLog,
    /// The custom domain and its API mapping (rooms with `spec.domain`).
    Domain,
    Routes,
    Permission,
    Stage,
}

impl Step {
    /// The part whose condition the step's failure turns False; none for what precedes all.
    pub fn part(self) -> Option<Part> {
        match self {
            Self::Identity => None,
            Self::Table | Self::HistoryTable | Self::ChannelTable => Some(Part::Table),
            Self::Role | Self::LogGroup | Self::Function | Self::Permission => Some(Part::Function),
            Self::Api
            | Self::Integration
            | Self::Authorizer
            | Self::Routes
            | Self::AccessLog
            | Self::Domain
            | Self::Stage => Some(Part::Api),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::LogGroup => "log-group",
            Self::Table => "table",
            Self::HistoryTable => "history-table",
            Self::ChannelTable => "channel-table",
            Self::Api => "api",
            Self::Role => "role",
            Self::Function => "function",
            Self::Integration => "integration",
            Self::Authorizer => "authorizer",
            Self::AccessLog => "access-log",
            Self::Domain => "domain",
            Self::Routes => "routes",
            Self::Permission => "permission",
            Self::Stage => "stage",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What AWS's refusal means for the operator, decided once, where the answer arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The resource does not exist (observers read this as "absent").
    NotFound,
    /// The request is wrong for AWS (validation, a malformed policy): only a change fixes it.
    Invalid,
    /// The operator's credentials may not do this: only a change to its permissions fixes it.
    Denied,
    /// Throttling, a resource busy with another change, or AWS failing on its side; the SDK has
    /// already retried, and a later reconcile may succeed.
    Transient,
}

impl Fault {
    /// AWS's error codes and HTTP status, read once. Unknown codes count as transient: the room
    /// is retried with backoff rather than left waiting for a change that may not be needed.
    pub fn classify(code: &str, http_status: Option<u16>) -> Self {
        match code {
            "ResourceNotFoundException" | "NoSuchEntity" | "NotFoundException" => Self::NotFound,
            "ValidationException"
            | "BadRequestException"
            | "InvalidParameterValueException"
            | "MalformedPolicyDocument" => Self::Invalid,
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "UnrecognizedClientException" => Self::Denied,
            _ if http_status == Some(404) => Self::NotFound,
            _ if http_status == Some(403) => Self::Denied,
            _ => Self::Transient,
        }
    }
}

/// What the operator itself lacks, which only its configuration can give.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misconfiguration {
    #[error("no AWS region: set spec.region or the operator's AWS_REGION")]
    NoRegion,
    /// API Gateway refuses access logging until the account names a CloudWatch Logs role.
    #[error(
        "spec.accessLog: API Gateway writes access logs only once this account's API Gateway settings name a CloudWatch Logs role (aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=ROLE_ARN; see docs/operations.md)"
    )]
    NoCloudWatchRole,
    #[error("the operator was started without --handler-zip")]
    NoHandlerZip,
    #[error(
        "spec.function.architecture is arm64 but the operator has no arm64 bootstrap.zip (--handler-zip-arm64)"
    )]
    NoHandlerForArchitecture,
    #[error(
        "spec.function.roleArn {arn} is not among the roles this operator may pass to Lambda ({allowed}); ask its administrator to add it to --allowed-role-arns and to the operator's iam:PassRole permission"
    )]
    RoleNotAllowed { arn: String, allowed: String },
}

impl Misconfiguration {
    fn reason(&self) -> &'static str {
        match self {
            Self::NoRegion => "NoRegion",
            Self::NoCloudWatchRole => "NoCloudWatchRole",
            Self::NoHandlerZip => "NoHandlerZip",
            Self::NoHandlerForArchitecture => "NoHandlerForArchitecture",
            Self::RoleNotAllowed { .. } => "RoleNotAllowed",
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    /// AWS answered with an error; `code` and `message` are AWS's own.
    #[error("{step} {resource}: {code}: {message}")]
    Service {
        step: Step,
        resource: String,
        code: String,
        message: String,
        fault: Fault,
    },
    /// No answer came: the connection, a timeout, or the credentials chain failed.
    #[error("{step} {resource}: no answer from AWS: {message}")]
    Unanswered {
        step: Step,
        resource: String,
        message: String,
    },
    #[error("{step}: {problem}")]
    Configuration {
        step: Step,
        problem: Misconfiguration,
    },
    /// A resource with the room's name belongs to another owner: it is never touched.
    #[error("{step} {resource}: {detail}")]
    Conflict {
        step: Step,
        resource: String,
        detail: String,
    },
    #[error("{step} {resource}: did not become {state} within {}", humantime::format_duration(*.waited))]
    Timeout {
        step: Step,
        resource: String,
        state: &'static str,
        waited: Duration,
    },
    /// AWS reports the resource itself failed (a Lambda update that failed, say).
    #[error("{step} {resource}: {state}: {reason}")]
    Failed {
        step: Step,
        resource: String,
        state: &'static str,
        reason: String,
    },
    /// AWS has not finished with the resource yet (a stage deployment under way, say).
    #[error("{step} {resource}: {state}: {reason}")]
    Pending {
        step: Step,
        resource: String,
        state: &'static str,
        reason: String,
    },
    /// An answer lacked what the operator needs from it, or a request could not be built.
    #[error("{step} {resource}: {what}")]
    Unexpected {
        step: Step,
        resource: String,
        what: String,
    },
}

impl AwsError {
    pub fn step(&self) -> Step {
        match self {
            Self::Service { step, .. }
            | Self::Unanswered { step, .. }
            | Self::Configuration { step, .. }
            | Self::Conflict { step, .. }
            | Self::Timeout { step, .. }
            | Self::Failed { step, .. }
            | Self::Pending { step, .. }
            | Self::Unexpected { step, .. } => *step,
        }
    }

    /// The condition reason: AWS's error code, or the operator's own word for the failure.
    pub fn reason(&self) -> &str {
        match self {
            Self::Service { code, .. } => code,
            Self::Unanswered { .. } => "NoAnswer",
            Self::Configuration { problem, .. } => problem.reason(),
            Self::Conflict { .. } => "ConflictingOwner",
            Self::Timeout { .. } => "Timeout",
            Self::Failed { state, .. } | Self::Pending { state, .. } => state,
            Self::Unexpected { .. } => "UnexpectedAnswer",
        }
    }

    /// Errors a retry cannot fix: the spec, the zip, the operator's configuration or its
    /// permissions must change, or another owner must let go of a name.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Service { fault, .. } => matches!(fault, Fault::Invalid | Fault::Denied),
            Self::Configuration { .. } | Self::Conflict { .. } | Self::Failed { .. } => true,
            Self::Unanswered { .. }
            | Self::Timeout { .. }
            | Self::Pending { .. }
            | Self::Unexpected { .. } => false,
        }
    }

    /// AWS refused for now, and a later attempt may succeed: a transient AWS answer.
    pub fn is_transient_answer(&self) -> bool {
        matches!(
            self,
            Self::Service {
                fault: Fault::Transient,
                ..
            }
        )
    }

    /// The same answer, known from the operation's documentation to be temporary.
    pub fn retry_later(self) -> Self {
        match self {
            Self::Service {
                step,
                resource,
                code,
                message,
                ..
            } => Self::Service {
                step,
                resource,
                code,
                message,
                fault: Fault::Transient,
            },
            other => other,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Service {
                fault: Fault::NotFound,
                ..
            }
        )
    }
}

/// Turns the SDK errors of any operation on one resource into [`AwsError`]s.
#[derive(Clone, Copy)]
pub struct On<'a> {
    step: Step,
    resource: &'a str,
}

impl<'a> On<'a> {
    pub fn new(step: Step, resource: &'a str) -> Self {
        Self { step, resource }
    }

    pub fn err<E>(&self, error: SdkError<E, Response>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let resource = self.resource.to_owned();
        let step = self.step;
        match error {
            SdkError::ServiceError(failed) => {
                let http_status = failed.raw().status().as_u16();
                let error = failed.into_err();
                let code = error.code().unwrap_or("Unknown").to_owned();
                let message = error
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
                AwsError::Service {
                    fault: Fault::classify(&code, Some(http_status)),
                    step,
                    resource,
                    code,
                    message,
                }
            }
            other => AwsError::Unanswered {
                step,
                resource,
                message: DisplayErrorContext(other).to_string(),
            },
        }
    }

    /// A request that could not be built, or an answer without what the operator needs.
    pub fn unexpected(&self, what: impl fmt::Display) -> AwsError {
        AwsError::Unexpected {
            step: self.step,
            resource: self.resource.to_owned(),
            what: what.to_string(),
        }
    }

    pub fn timeout(&self, state: &'static str, waited: Duration) -> AwsError {
        AwsError::Timeout {
            step: self.step,
            resource: self.resource.to_owned(),
            state,
            waited,
        }
    }

    pub fn conflict(&self, detail: String) -> AwsError {
        AwsError::Conflict {
            step: self.step,
            resource: self.resource.to_owned(),
            detail,
        }
    }
}

/// An observation: a "not found" answer is an absent resource, not an error.
pub fn absent_if_not_found<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(found) => Ok(Some(found)),
        Err(error) if error.is_not_found() => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: &str, http_status: u16) -> AwsError {
        AwsError::Service {
            step: Step::Table,
            resource: "t".into(),
            code: code.into(),
            message: "m".into(),
            fault: Fault::classify(code, Some(http_status)),
        }
    }

    #[test]
    fn permanence_follows_the_kind_of_failure() {
        assert!(service("ValidationException", 400).is_permanent());
        assert!(service("AccessDeniedException", 400).is_permanent());
        assert!(
            service("SomethingNew", 403).is_permanent(),
            "a 403 is a denial"
        );
        assert!(!service("ThrottlingException", 400).is_permanent());
        assert!(!service("InternalFailure", 500).is_permanent());
        assert!(service("SomethingNew", 404).is_not_found());
        let no_region = AwsError::Configuration {
            step: Step::Table,
            problem: Misconfiguration::NoRegion,
        };
        assert!(
            no_region.is_permanent(),
            "a missing region is not retried forever"
        );
        assert_eq!(no_region.reason(), "NoRegion");
        let waited = On::new(Step::Function, "f").timeout("Active", Duration::from_secs(120));
        assert!(!waited.is_permanent());
        assert_eq!(
            waited.to_string(),
            "function f: did not become Active within 2m"
        );
    }
}
