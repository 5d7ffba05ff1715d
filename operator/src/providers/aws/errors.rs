use std::fmt;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_smithy_runtime_api::client::result::{CreateUnhandledError, SdkError};

/// The step of a room's convergence, in dependency order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Table,
    Api,
    Role,
    Function,
    Integration,
    Routes,
    Permission,
    Stage,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Api => "api",
            Self::Role => "role",
            Self::Function => "function",
            Self::Integration => "integration",
            Self::Routes => "routes",
            Self::Permission => "permission",
            Self::Stage => "stage",
        })
    }
}

/// An AWS call that failed, with what a person needs to act: the step, the resource, and AWS's
/// own error code and message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step} {resource}: {code}: {message}")]
pub struct AwsError {
    pub step: Step,
    pub resource: String,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(step: Step, resource: &str, code: &str, message: impl Into<String>) -> Self {
        Self {
            step,
            resource: resource.to_owned(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn from_sdk<E>(step: Step, resource: &str, error: E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = error.code().unwrap_or("Unknown").to_owned();
        let message = error
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
        Self {
            step,
            resource: resource.to_owned(),
            code,
            message,
        }
    }

    pub fn is_not_found(&self) -> bool {
        is_not_found_code(&self.code)
    }

    /// Errors a retry cannot fix: the spec, the zip or the operator's permissions must change.
    /// Throttling and 5xx were already retried by the SDK's retry policy.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ValidationException"
                | "BadRequestException"
                | "InvalidParameterValueException"
                | "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "UnrecognizedClientException"
                | "MalformedPolicyDocument"
                | "ConflictingOwner"
                | "NoHandlerForArchitecture"
                | "NoHandlerZip"
        )
    }
}

/// Maps the SDK error of any operation on one resource to an [`AwsError`].
#[derive(Clone, Copy)]
pub struct On<'a> {
    step: Step,
    resource: &'a str,
}

impl<'a> On<'a> {
    pub fn new(step: Step, resource: &'a str) -> Self {
        Self { step, resource }
    }

    pub fn err<E, R>(&self, error: SdkError<E, R>) -> AwsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static + CreateUnhandledError,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        AwsError::from_sdk(self.step, self.resource, error.into_service_error())
    }
}

pub fn is_not_found_code(code: &str) -> bool {
    matches!(
        code,
        "ResourceNotFoundException" | "NoSuchEntity" | "NotFoundException"
    )
}
