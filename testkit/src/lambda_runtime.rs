//! A real Lambda function binary under a minimal Lambda Runtime API on loopback: the
//! `next`/`response`/`error` endpoints of the runtime interface, enough for a custom runtime
//! (`provided.al2023`) to take events one at a time and answer them, as Lambda runs it.
//! https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

use std::collections::VecDeque;
use std::path::Path as FilePath;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::{Notify, mpsc};

/// What a function posts back for an invocation: its response or its error.
#[derive(Debug)]
pub enum Outcome {
    Response(String, Value),
    Error(String, Value),
}

impl Outcome {
    /// The `statusCode` of an API Gateway proxy response; panics on an invocation error.
    pub fn status_code(&self) -> i64 {
        match self {
            Outcome::Response(_, body) => body["statusCode"].as_i64().unwrap_or_default(),
            Outcome::Error(_, body) => panic!("the function failed: {body}"),
        }
    }
}

/// `GET …/invocation/next` hands out queued events; responses and errors are reported back.
#[derive(Default)]
struct RuntimeApi {
    queue: Mutex<VecDeque<(String, Value)>>,
    queued: Notify,
    outcomes: Mutex<Option<mpsc::UnboundedSender<Outcome>>>,
    function_arn: String,
    /// The function's timeout: each invocation's deadline is this far from its start.
    timeout: Duration,
}

async fn next_invocation(State(api): State<Arc<RuntimeApi>>) -> impl IntoResponse {
    loop {
        let next = api.queue.lock().unwrap().pop_front();
        if let Some((request_id, event)) = next {
            let timeout = i64::try_from(api.timeout.as_millis()).unwrap_or(i64::MAX);
            let deadline = chrono::Utc::now().timestamp_millis() + timeout;
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", request_id.parse().unwrap());
            headers.insert(
                "lambda-runtime-deadline-ms",
                deadline.to_string().parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                api.function_arn.parse().unwrap(),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000".parse().unwrap(),
            );
            return (headers, event.to_string());
        }
        api.queued.notified().await;
    }
}

async fn report(
    State(api): State<Arc<RuntimeApi>>,
    Path((request_id, kind)): Path<(String, String)>,
    body: Bytes,
) -> StatusCode {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let outcome = if kind == "response" {
        Outcome::Response(request_id, body)
    } else {
        Outcome::Error(request_id, body)
    };
    if let Some(sender) = api.outcomes.lock().unwrap().as_ref() {
        let _ = sender.send(outcome);
    }
    StatusCode::ACCEPTED
}

/// One running function process and the Runtime API it polls.
pub struct Function {
    child: Child,
    api: Arc<RuntimeApi>,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    invocations: usize,
}

impl Function {
    /// Starts `binary` named `function_name` with Lambda's reserved environment (the owner's
    /// dummy credentials, us-east-1) and then `env`, which overrides it.
    pub async fn start(binary: &FilePath, function_name: &str, env: &[(&str, String)]) -> Self {
        Self::start_with_timeout(binary, function_name, env, Duration::from_secs(30)).await
    }

    /// [`Function::start`] for a function whose invocations each have `timeout`.
    pub async fn start_with_timeout(
        binary: &FilePath,
        function_name: &str,
        env: &[(&str, String)],
        timeout: Duration,
    ) -> Self {
        let api = Arc::new(RuntimeApi {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            timeout,
            ..RuntimeApi::default()
        });
        let (sender, outcomes) = mpsc::unbounded_channel();
        *api.outcomes.lock().unwrap() = Some(sender);
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(report))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let child = Command::new(binary)
            .env_clear()
            .envs(lambda_environment(&addr.to_string(), function_name))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        Self {
            child,
            api,
            outcomes,
            invocations: 0,
        }
    }

    /// Invokes the function with `event` and waits (at most 20 s) for its answer.
    pub async fn invoke(&mut self, event: Value) -> Outcome {
        let request_id = format!("request-{}", self.invocations + 1);
        self.try_invoke(event, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("no answer to {request_id}"))
    }

    /// Invokes the function with `event`; `None` when no answer came within `patience` (the
    /// process died, or hangs).
    pub async fn try_invoke(&mut self, event: Value, patience: Duration) -> Option<Outcome> {
        self.invocations += 1;
        let request_id = format!("request-{}", self.invocations);
        self.api
            .queue
            .lock()
            .unwrap()
            .push_back((request_id.clone(), event));
        self.api.queued.notify_waiters();
        let outcome = tokio::time::timeout(patience, self.outcomes.recv())
            .await
            .ok()??;
        match &outcome {
            Outcome::Response(id, _) | Outcome::Error(id, _) => assert_eq!(*id, request_id),
        }
        Some(outcome)
    }

    /// The process's id, for a test that kills it mid-invocation.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process and answers what it wrote (stderr, then stdout).
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let output = self.child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stderr).into_owned()
            + &String::from_utf8_lossy(&output.stdout)
    }
}

/// The variables Lambda sets for a custom runtime.
/// https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
fn lambda_environment(runtime_api: &str, function_name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", crate::OWNER_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ]
}
