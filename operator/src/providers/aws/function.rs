//! The room's Lambda function: the handlers' `bootstrap` on provided.al2023, configured through
//! the handlers' contract. New code rolls out when the zip's SHA-256 differs from the
//! function's `CodeSha256`; drifted configuration is restored.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Architecture as AwsArchitecture, Environment, FunctionCode, FunctionConfiguration,
    LastUpdateStatus, Runtime, State,
};
use backon::{ExponentialBuilder, Retryable};
use chatroom_handlers::backend::BackendConfig;
use chatroom_handlers::contract::env;

use super::change::{Change, Converged, Removal, claim, outcome};
use super::error::{AwsError, Misconfiguration, On, Step, absent_if_not_found};
use super::handler_zip::HandlerZip;
use super::{RoomContext, Settings, Tags};
use crate::crd::{Architecture, ChatRoomSpec};

const HANDLER: &str = "bootstrap";
/// How long a new or changed function may take to become usable.
const USABLE_WITHIN: Duration = Duration::from_secs(120);

#[derive(Clone, Debug, PartialEq)]
pub struct DesiredFunction {
    pub name: String,
    pub role_arn: String,
    pub memory_mb: i32,
    pub timeout_seconds: i32,
    pub architecture: AwsArchitecture,
    pub environment: HashMap<String, String>,
    pub code: HandlerZip,
    pub tags: Tags,
    /// Attempts at creating the function while Lambda cannot assume a role the operator has
    /// just created; none for a role the spec brought, which should already exist.
    pub role_propagation_attempts: usize,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedFunction {
    pub arn: String,
    pub tags: HashMap<String, String>,
    pub memory_mb: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub role_arn: Option<String>,
    pub runtime: Option<Runtime>,
    pub handler: Option<String>,
    pub environment: HashMap<String, String>,
    pub architecture: Option<AwsArchitecture>,
    pub code_sha256: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionField {
    Memory,
    Timeout,
    Role,
    Runtime,
    Handler,
    Environment,
    Architecture,
    Code,
}

impl FunctionField {
    /// Architecture and code change together through UpdateFunctionCode; the rest through
    /// UpdateFunctionConfiguration.
    fn is_code(self) -> bool {
        matches!(self, Self::Architecture | Self::Code)
    }
}

/// Where the function keeps the room's state, as its environment names it.
pub struct Storage<'a> {
    pub table: &'a str,
    /// Named to the function only when the spec keeps history.
    pub history_table: &'a str,
    /// `namespace/name`: the history's partition key.
    pub room: &'a str,
    /// Named to the function only when the spec has channels.
    pub channel_table: &'a str,
    /// The execute-api `@connections` endpoint, for a room whose clients connect through a
    /// custom domain (the management API does not answer there).
    pub callback_url: Option<&'a str>,
    /// The key the function signs requests to the room's backend with (`spec.backend`).
    pub backend_key: Option<&'a str>,
}

/// The function `spec` needs, running as `role_arn` with the operator's code.
pub fn desired(
    spec: &ChatRoomSpec,
    name: &str,
    storage: &Storage<'_>,
    role_arn: &str,
    settings: &Settings,
    tags: &Tags,
) -> Result<DesiredFunction, AwsError> {
    let function = &spec.function;
    let (code, architecture) = match function.architecture {
        Architecture::X86_64 => (&settings.handler_zip, AwsArchitecture::X8664),
        Architecture::Arm64 => (&settings.handler_zip_arm64, AwsArchitecture::Arm64),
    };
    let code = code.clone().ok_or(AwsError::Configuration {
        step: Step::Function,
        problem: match function.architecture {
            Architecture::X86_64 => Misconfiguration::NoHandlerZip,
            Architecture::Arm64 => Misconfiguration::NoHandlerForArchitecture,
        },
    })?;
    let mut environment = HashMap::from([
        (env::TABLE_NAME.to_owned(), storage.table.to_owned()),
        (env::MESSAGE_ROUTE.to_owned(), spec.message_route.clone()),
        (
            env::ROUTE_SELECTION_EXPRESSION.to_owned(),
            spec.route_selection_expression.clone(),
        ),
    ]);
    if let Some(history) = spec.history_settings() {
        environment.extend([
            (
                env::HISTORY_TABLE.to_owned(),
                storage.history_table.to_owned(),
            ),
            (
                env::HISTORY_MESSAGES.to_owned(),
                history.messages.to_string(),
            ),
            (
                env::HISTORY_RETENTION_SECONDS.to_owned(),
                history.retention.as_secs().to_string(),
            ),
            (env::ROOM.to_owned(), storage.room.to_owned()),
        ]);
    }
    if let Some(channels) = spec.channel_settings() {
        environment.extend([
            (
                env::CHANNEL_TABLE.to_owned(),
                storage.channel_table.to_owned(),
            ),
            (
                env::CHANNELS_PER_CONNECTION.to_owned(),
                channels.max_per_connection.to_string(),
            ),
        ]);
    }
    if let Some(fanout) = &spec.fanout {
        environment.insert(
            env::FANOUT_POSTS_PER_SECOND.to_owned(),
            fanout.posts_per_second.to_string(),
        );
    }
    if let Some(url) = storage.callback_url {
        environment.insert(env::CALLBACK_URL.to_owned(), url.to_owned());
    }
    if let Some(backend) = &spec.backend {
        environment.extend(backend_environment(spec, backend, storage.backend_key));
    }
    // The same function is the `$connect` route's authorizer.
    if let Some(jwt) = spec.auth.as_ref().and_then(|auth| auth.jwt.settings()) {
        environment.extend(jwt.to_env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    let role_propagation_attempts = if function.role_arn.is_none() {
        settings.role_propagation_attempts
    } else {
        0
    };
    Ok(DesiredFunction {
        name: name.to_owned(),
        role_arn: role_arn.to_owned(),
        memory_mb: function.memory_mb,
        timeout_seconds: function.timeout_seconds,
        architecture,
        environment,
        code,
        tags: tags.clone(),
        role_propagation_attempts,
    })
}

pub fn diff(
    observed: Option<&ObservedFunction>,
    desired: &DesiredFunction,
) -> Vec<Change<FunctionField>> {
    let Some(found) = observed else {
        return vec![Change::Create];
    };
    let what = format!("function {}", desired.name);
    let mut changes = match claim(&found.tags, &desired.tags, &what) {
        Ok(changes) => changes,
        Err(conflict) => return conflict,
    };
    let checks = [
        (
            FunctionField::Memory,
            found.memory_mb == Some(desired.memory_mb),
        ),
        (
            FunctionField::Timeout,
            found.timeout_seconds == Some(desired.timeout_seconds),
        ),
        (
            FunctionField::Role,
            found.role_arn.as_deref() == Some(desired.role_arn.as_str()),
        ),
        (
            FunctionField::Runtime,
            found.runtime == Some(Runtime::Providedal2023),
        ),
        (
            FunctionField::Handler,
            found.handler.as_deref() == Some(HANDLER),
        ),
        (
            FunctionField::Environment,
            found.environment == desired.environment,
        ),
        (
            FunctionField::Architecture,
            found.architecture.as_ref() == Some(&desired.architecture),
        ),
        (
            FunctionField::Code,
            found.code_sha256.as_deref() == Some(desired.code.sha256.as_str()),
        ),
    ];
    let drifted = checks.into_iter().filter(|(_, same)| !same);
    changes.extend(drifted.map(|(field, _)| Change::Update(field)));
    changes
}

/// The function forwards to the backend itself (docs/architecture.md says why): its URL, what
/// goes there, its key, and how long it may take — under the function's own timeout, so that
/// a hung backend ends in an error frame rather than in a killed invocation.
fn backend_environment(
    spec: &ChatRoomSpec,
    backend: &crate::crd::BackendSpec,
    key: Option<&str>,
) -> Vec<(String, String)> {
    let under_the_function = u64::try_from(spec.function.timeout_seconds - 1).unwrap_or(0);
    let config = BackendConfig {
        url: backend.url.clone(),
        forwarded: backend.forwarded(),
        secret: key.map(str::to_owned),
        timeout: backend
            .timeout()
            .min(Duration::from_secs(under_the_function))
            .max(Duration::from_secs(1)),
    };
    config
        .to_env()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// Observes, creates or updates the function; its output is the function's ARN.
pub async fn converge(
    room: &RoomContext<'_>,
    role_arn: &str,
    callback_url: Option<&str>,
) -> Result<Converged<String>, AwsError> {
    let lambda = &room.clients.lambda;
    let storage = Storage {
        table: &room.names.table,
        history_table: &room.names.history_table,
        room: &room.display,
        channel_table: &room.names.channel_table,
        callback_url,
        backend_key: room.backend_key.as_deref(),
    };
    let desired = desired(
        room.spec,
        &room.names.function,
        &storage,
        role_arn,
        room.settings,
        &room.tags,
    )?;
    let observed = observe(lambda, &desired.name).await?;
    let changes = diff(observed.as_ref(), &desired);
    let created_arn = act(lambda, &desired, observed.as_ref(), &changes).await?;
    let arn = created_arn.or(observed.map(|f| f.arn)).unwrap_or_default();
    Ok(Converged {
        output: arn,
        outcome: outcome(&changes),
    })
}

pub async fn observe(lambda: &Client, name: &str) -> Result<Option<ObservedFunction>, AwsError> {
    let fail = On::new(Step::Function, name);
    let found = lambda.get_function().function_name(name).send().await;
    let Some(found) = absent_if_not_found(found.map_err(|e| fail.err(e)))? else {
        return Ok(None);
    };
    let tags = found.tags().cloned().unwrap_or_default();
    Ok(found.configuration.map(|config| ObservedFunction {
        tags,
        ..observed_function(&config)
    }))
}

fn observed_function(config: &FunctionConfiguration) -> ObservedFunction {
    ObservedFunction {
        arn: config.function_arn().unwrap_or_default().to_owned(),
        tags: HashMap::new(),
        memory_mb: config.memory_size(),
        timeout_seconds: config.timeout(),
        role_arn: config.role().map(str::to_owned),
        runtime: config.runtime().cloned(),
        handler: config.handler().map(str::to_owned),
        environment: config
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default(),
        architecture: config.architectures().first().cloned(),
        code_sha256: config.code_sha256().map(str::to_owned),
    }
}

/// Creates the function, or sends one configuration update and one code update for whatever
/// drifted, waiting after each until Lambda can take the next. Returns a created function's ARN.
async fn act(
    lambda: &Client,
    desired: &DesiredFunction,
    observed: Option<&ObservedFunction>,
    changes: &[Change<FunctionField>],
) -> Result<Option<String>, AwsError> {
    let fail = On::new(Step::Function, &desired.name);
    if changes.contains(&Change::Create) {
        let arn = create(lambda, desired).await?;
        wait_usable(lambda, &desired.name).await?;
        return Ok(Some(arn));
    }
    let mut fields = Vec::new();
    for change in changes {
        match change {
            Change::Update(field) => fields.push(*field),
            Change::Conflict(whose) => return Err(fail.conflict(whose.clone())),
            Change::Adopt => {
                let arn = observed.map(|f| f.arn.as_str()).unwrap_or_default();
                lambda
                    .tag_resource()
                    .resource(arn)
                    .set_tags(Some(desired.tags.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(|e| fail.err(e))?;
            }
            other => return Err(fail.unexpected(format!("diff asked for {other:?}"))),
        }
    }
    if fields.iter().any(|field| !field.is_code()) {
        lambda
            .update_function_configuration()
            .function_name(&desired.name)
            .runtime(Runtime::Providedal2023)
            .handler(HANDLER)
            .role(&desired.role_arn)
            .memory_size(desired.memory_mb)
            .timeout(desired.timeout_seconds)
            .environment(environment(desired))
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        wait_usable(lambda, &desired.name).await?;
    }
    if fields.iter().any(|field| field.is_code()) {
        lambda
            .update_function_code()
            .function_name(&desired.name)
            .zip_file(Blob::new(desired.code.bytes.as_slice()))
            .architectures(desired.architecture.clone())
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        wait_usable(lambda, &desired.name).await?;
    }
    Ok(None)
}

fn environment(desired: &DesiredFunction) -> Environment {
    Environment::builder()
        .set_variables(Some(desired.environment.clone()))
        .build()
}

async fn create(lambda: &Client, desired: &DesiredFunction) -> Result<String, AwsError> {
    let name = &desired.name;
    let fail = On::new(Step::Function, name);
    let create = || async {
        lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler(HANDLER)
            .role(&desired.role_arn)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(desired.code.bytes.as_slice()))
                    .build(),
            )
            .memory_size(desired.memory_mb)
            .timeout(desired.timeout_seconds)
            .architectures(desired.architecture.clone())
            .environment(environment(desired))
            .set_tags(Some(desired.tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| fail.err(e))
    };
    // A new role takes seconds to propagate through IAM; until then Lambda refuses it with
    // "cannot be assumed". 0.5 s doubling to 8 s.
    let propagation = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(desired.role_propagation_attempts);
    let created = create
        .retry(propagation)
        .when(|error: &AwsError| error.to_string().contains("cannot be assumed"))
        .notify(|error, delay| tracing::info!(function = %name, %error, ?delay, "waiting for IAM to propagate the new role"))
        .await?;
    created
        .function_arn
        .ok_or_else(|| fail.unexpected("CreateFunction answered without an ARN"))
}

/// Waits (bounded) for `State: Active` and a finished update, as the next change needs. A
/// function AWS reports failed stops the wait at once, with AWS's reason.
/// <https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html>
pub async fn wait_usable(lambda: &Client, name: &str) -> Result<(), AwsError> {
    let fail = On::new(Step::Function, name);
    for _ in 0..USABLE_WITHIN.as_secs() {
        let config = lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
            .map_err(|e| fail.err(e))?;
        let health = Health::of(&config);
        if let Some(failed) = health.failure(name) {
            return Err(failed);
        }
        if health.is_usable() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(fail.timeout("Active", USABLE_WITHIN))
}

/// The function's state and the state of its last update, as GetFunctionConfiguration says.
#[derive(Debug, Default)]
struct Health<'a> {
    state: Option<&'a State>,
    state_code: Option<&'a str>,
    state_reason: Option<&'a str>,
    update: Option<&'a LastUpdateStatus>,
    update_code: Option<&'a str>,
    update_reason: Option<&'a str>,
}

impl<'a> Health<'a> {
    fn of(config: &'a GetFunctionConfigurationOutput) -> Self {
        Self {
            state: config.state(),
            state_code: config.state_reason_code().map(|c| c.as_str()),
            state_reason: config.state_reason(),
            update: config.last_update_status(),
            update_code: config.last_update_status_reason_code().map(|c| c.as_str()),
            update_reason: config.last_update_status_reason(),
        }
    }

    /// Settled and not updating. Inactive functions count: the next call wakes them.
    fn is_usable(&self) -> bool {
        !matches!(self.state, Some(State::Pending))
            && !matches!(self.update, Some(LastUpdateStatus::InProgress))
    }

    /// A function in state `Failed`, or whose last update failed, with AWS's reason and code.
    fn failure(&self, name: &str) -> Option<AwsError> {
        let (state, code, reason) = if self.state == Some(&State::Failed) {
            ("FunctionFailed", self.state_code, self.state_reason)
        } else if self.update == Some(&LastUpdateStatus::Failed) {
            ("UpdateFailed", self.update_code, self.update_reason)
        } else {
            return None;
        };
        let reason = reason.unwrap_or("no reason given");
        Some(AwsError::Failed {
            step: Step::Function,
            resource: name.to_owned(),
            state,
            reason: match code {
                Some(code) => format!("{code}: {reason}"),
                None => reason.to_owned(),
            },
        })
    }
}

/// Deletes the function (its resource policy goes with it); another owner's is left alone.
pub async fn delete(room: &RoomContext<'_>) -> Result<Removal, AwsError> {
    let lambda = &room.clients.lambda;
    let name = &room.names.function;
    let found = observe(lambda, name).await?;
    if let Some(skip) = Removal::skip_reason(found.as_ref().map(|f| &f.tags), &room.tags) {
        return Ok(skip);
    }
    let deleted = lambda.delete_function().function_name(name).send().await;
    let fail = On::new(Step::Function, name);
    let deleted = absent_if_not_found(deleted.map_err(|e| fail.err(e)))?;
    Ok(deleted.map_or(Removal::Absent, |_| Removal::Deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::aws::tags::lobby_tags;

    const ROLE: &str = "arn:aws:iam::123456789012:role/chatroom-default-lobby-x";
    const STORAGE: Storage<'static> = Storage {
        table: "t",
        history_table: "t-history",
        room: "default/lobby",
        channel_table: "t-channels",
        callback_url: None,
        backend_key: None,
    };

    fn settings() -> Settings {
        Settings::new(Some(HandlerZip::from_bytes(b"v1".to_vec())), "test")
    }

    fn wanted(spec: &ChatRoomSpec) -> DesiredFunction {
        desired(spec, "f", &STORAGE, ROLE, &settings(), &lobby_tags()).unwrap()
    }

    #[test]
    fn a_backend_is_named_to_the_function_with_its_key_and_a_timeout_under_its_own() {
        let mut spec = ChatRoomSpec::default();
        spec.function.timeout_seconds = 4;
        spec.backend = Some(crate::crd::BackendSpec {
            url: "https://backend.example.com/chat".into(),
            routes: vec!["notify".into(), "order".into()],
            events: vec![crate::crd::BackendEvent::Disconnect],
            secret_ref: None,
            timeout_seconds: 5,
        });
        let storage = Storage {
            backend_key: Some("k3y"),
            ..STORAGE
        };
        let function = desired(&spec, "f", &storage, ROLE, &settings(), &lobby_tags()).unwrap();
        let environment = &function.environment;
        assert_eq!(
            environment[env::BACKEND_URL],
            "https://backend.example.com/chat"
        );
        assert_eq!(environment[env::BACKEND_ROUTES], "notify,order");
        assert_eq!(environment[env::BACKEND_EVENTS], "disconnect");
        assert_eq!(environment[env::BACKEND_SECRET], "k3y");
        assert_eq!(environment[env::BACKEND_TIMEOUT_SECONDS], "3");
        assert!(
            !wanted(&ChatRoomSpec::default())
                .environment
                .contains_key(env::BACKEND_URL)
        );
    }

    /// What a converged function of `desired` looks like in AWS.
    fn converged(desired: &DesiredFunction) -> ObservedFunction {
        ObservedFunction {
            arn: "arn:aws:lambda:eu-west-1:123456789012:function:f".into(),
            tags: desired.tags.clone().into_iter().collect(),
            memory_mb: Some(desired.memory_mb),
            timeout_seconds: Some(desired.timeout_seconds),
            role_arn: Some(desired.role_arn.clone()),
            runtime: Some(Runtime::Providedal2023),
            handler: Some(HANDLER.into()),
            environment: desired.environment.clone(),
            architecture: Some(desired.architecture.clone()),
            code_sha256: Some(desired.code.sha256.clone()),
        }
    }

    fn drift(edit: impl FnOnce(&mut ObservedFunction)) -> Vec<Change<FunctionField>> {
        let desired = wanted(&ChatRoomSpec::default());
        let mut found = converged(&desired);
        edit(&mut found);
        diff(Some(&found), &desired)
    }

    #[test]
    fn the_default_function_runs_the_contracts_environment_on_x86_64() {
        let function = wanted(&ChatRoomSpec::default());
        assert_eq!((function.memory_mb, function.timeout_seconds), (128, 10));
        assert_eq!(function.architecture, AwsArchitecture::X8664);
        assert_eq!(function.environment[env::TABLE_NAME], "t");
        assert_eq!(function.environment[env::MESSAGE_ROUTE], "onMessage");
        assert_eq!(
            function.environment[env::ROUTE_SELECTION_EXPRESSION],
            "$request.body.action"
        );
        assert_eq!(
            function.role_propagation_attempts, 8,
            "waits for a new role"
        );
        assert!(
            !function.environment.contains_key(env::HISTORY_TABLE),
            "no history unless asked"
        );
    }

    #[test]
    fn a_room_with_history_names_its_history_table_size_retention_and_room() {
        let spec = ChatRoomSpec {
            history: Some(crate::crd::HistorySpec {
                messages: 50,
                retention: "7d".into(),
            }),
            ..ChatRoomSpec::default()
        };
        let environment = wanted(&spec).environment;
        assert_eq!(environment[env::HISTORY_TABLE], "t-history");
        assert_eq!(environment[env::HISTORY_MESSAGES], "50");
        assert_eq!(environment[env::HISTORY_RETENTION_SECONDS], "604800");
        assert_eq!(environment[env::ROOM], "default/lobby");
        let off = ChatRoomSpec {
            history: Some(crate::crd::HistorySpec {
                messages: 0,
                retention: "7d".into(),
            }),
            ..ChatRoomSpec::default()
        };
        assert!(!wanted(&off).environment.contains_key(env::HISTORY_TABLE));
    }

    #[test]
    fn a_room_with_channels_names_its_channel_table_and_bound() {
        let spec = ChatRoomSpec {
            channels: Some(crate::crd::ChannelsSpec {
                max_per_connection: 3,
            }),
            ..ChatRoomSpec::default()
        };
        let environment = wanted(&spec).environment;
        assert_eq!(environment[env::CHANNEL_TABLE], "t-channels");
        assert_eq!(environment[env::CHANNELS_PER_CONNECTION], "3");
        let without = wanted(&ChatRoomSpec::default()).environment;
        assert!(!without.contains_key(env::CHANNEL_TABLE));
    }

    #[test]
    fn a_rooms_posting_budget_reaches_its_function_when_set() {
        let spec = ChatRoomSpec {
            fanout: Some(crate::crd::FanoutSpec {
                posts_per_second: 9_000,
            }),
            ..ChatRoomSpec::default()
        };
        assert_eq!(
            wanted(&spec).environment[env::FANOUT_POSTS_PER_SECOND],
            "9000"
        );
        let default = wanted(&ChatRoomSpec::default()).environment;
        assert!(
            !default.contains_key(env::FANOUT_POSTS_PER_SECOND),
            "the function's default"
        );
    }

    #[test]
    fn a_custom_function_with_its_own_role_does_not_wait_for_propagation() {
        let mut spec = ChatRoomSpec::default();
        spec.function.memory_mb = 512;
        spec.function.timeout_seconds = 29;
        spec.function.role_arn = Some(ROLE.into());
        spec.message_route = "say".into();
        let function = wanted(&spec);
        assert_eq!((function.memory_mb, function.timeout_seconds), (512, 29));
        assert_eq!(function.environment[env::MESSAGE_ROUTE], "say");
        assert_eq!(function.role_propagation_attempts, 0);
    }

    #[test]
    fn arm64_needs_its_own_zip() {
        let mut spec = ChatRoomSpec::default();
        spec.function.architecture = Architecture::Arm64;
        let error = desired(&spec, "f", &STORAGE, ROLE, &settings(), &Tags::new()).unwrap_err();
        assert_eq!(error.reason(), "NoHandlerForArchitecture");
        assert!(error.is_permanent());
        let mut with_arm = settings();
        with_arm.handler_zip_arm64 = Some(HandlerZip::from_bytes(b"arm".to_vec()));
        let function = desired(&spec, "f", &STORAGE, ROLE, &with_arm, &Tags::new()).unwrap();
        assert_eq!(function.architecture, AwsArchitecture::Arm64);
        assert_eq!(function.code.bytes.as_slice(), b"arm");
    }

    #[test]
    fn a_missing_function_is_created_and_a_converged_one_left_alone() {
        let desired = wanted(&ChatRoomSpec::default());
        assert_eq!(diff(None, &desired), [Change::Create]);
        assert_eq!(diff(Some(&converged(&desired)), &desired), []);
    }

    #[test]
    fn changed_memory_and_timeout_are_restored() {
        assert_eq!(
            drift(|f| f.memory_mb = Some(1024)),
            [Change::Update(FunctionField::Memory)]
        );
        assert_eq!(
            drift(|f| f.timeout_seconds = Some(3)),
            [Change::Update(FunctionField::Timeout)]
        );
    }

    #[test]
    fn a_changed_environment_is_restored() {
        assert_eq!(
            drift(|f| {
                f.environment.insert(env::TABLE_NAME.into(), "other".into());
            }),
            [Change::Update(FunctionField::Environment)]
        );
    }

    #[test]
    fn new_code_and_another_architecture_go_out_as_a_code_update() {
        let changes = drift(|f| {
            f.code_sha256 = Some("older".into());
            f.architecture = Some(AwsArchitecture::Arm64);
        });
        assert_eq!(
            changes,
            [
                Change::Update(FunctionField::Architecture),
                Change::Update(FunctionField::Code)
            ]
        );
        assert!(
            changes
                .iter()
                .all(|c| matches!(c, Change::Update(f) if f.is_code()))
        );
    }

    #[test]
    fn another_role_runtime_or_handler_is_restored() {
        assert_eq!(
            drift(|f| {
                f.role_arn = Some("arn:aws:iam::123456789012:role/other".into());
                f.runtime = Some(Runtime::Providedal2);
                f.handler = None;
            }),
            [
                Change::Update(FunctionField::Role),
                Change::Update(FunctionField::Runtime),
                Change::Update(FunctionField::Handler)
            ]
        );
    }

    mod canned_answers {
        use aws_sdk_lambda::types::StateReasonCode;
        use aws_smithy_mocks::{mock, mock_client};

        use super::*;

        #[tokio::test]
        async fn a_failed_function_reports_aws_reason_at_once_instead_of_timing_out() {
            let failed = mock!(Client::get_function_configuration).then_output(|| {
                GetFunctionConfigurationOutput::builder()
                    .state(State::Failed)
                    .state_reason_code(StateReasonCode::InvalidZipFileException)
                    .state_reason("Lambda was unable to unzip the deployment package")
                    .build()
            });
            let lambda = mock_client!(aws_sdk_lambda, [&failed]);

            let started = std::time::Instant::now();
            let error = wait_usable(&lambda, "f").await.unwrap_err();

            assert!(started.elapsed() < Duration::from_secs(1), "no waiting");
            assert_eq!(error.reason(), "FunctionFailed");
            assert!(
                error.to_string().contains(
                    "InvalidZipFileException: Lambda was unable to unzip the deployment package"
                ),
                "{error}"
            );
            assert!(error.is_permanent(), "a new zip or spec is what fixes it");
            assert_eq!(failed.num_calls(), 1);
        }

        #[tokio::test]
        async fn a_pending_function_is_waited_for_until_active() {
            let states = mock!(Client::get_function_configuration)
                .sequence()
                .output(|| {
                    GetFunctionConfigurationOutput::builder()
                        .state(State::Pending)
                        .build()
                })
                .output(|| {
                    GetFunctionConfigurationOutput::builder()
                        .state(State::Active)
                        .last_update_status(LastUpdateStatus::Successful)
                        .build()
                })
                .build();
            let lambda = mock_client!(aws_sdk_lambda, [&states]);

            wait_usable(&lambda, "f").await.unwrap();

            assert_eq!(states.num_calls(), 2);
        }
    }
}
