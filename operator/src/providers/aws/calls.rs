//! Every AWS call the provider makes passes this SDK interceptor: it counts calls and their
//! outcomes (for metrics and `apply`'s summary) and keeps nothing per call, so an operator
//! that runs for months holds no more memory than on its first day.
//!
//! With the `test-hooks` feature it also records each call and each HTTP request (for tests
//! that count calls and for the operator-policy test), and can fail the k-th mutating call
//! after AWS carried it out, as a crash between a create and the status write would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::Response;
use aws_smithy_types::config_bag::ConfigBag;

/// One call: service and operation, e.g. `("DynamoDB", "CreateTable")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub service: String,
    pub operation: String,
}

impl Call {
    /// Anything that is not a read.
    pub fn is_mutating(&self) -> bool {
        !["Get", "Describe", "List"]
            .iter()
            .any(|read| self.operation.starts_with(read))
    }
}

/// How one call ended, after the SDK's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// AWS asked the operator to slow down (429, or a throttling error code).
    Throttled,
    /// Any other 4xx answer.
    ClientError,
    /// A 5xx answer.
    ServerError,
    /// No answer at all: connection, timeout, or a request that was never sent.
    NoAnswer,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Throttled => "throttled",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::NoAnswer => "no_answer",
        }
    }

    fn of(response: Option<&Response>) -> Self {
        let Some(response) = response else {
            return Self::NoAnswer;
        };
        match response.status().as_u16() {
            200..=299 => Self::Success,
            _ if is_throttling(response) => Self::Throttled,
            500..=599 => Self::ServerError,
            _ => Self::ClientError,
        }
    }
}

/// Throttling as each protocol says it: HTTP 429 (API Gateway, Lambda), the error type header
/// (JSON protocols: `ThrottlingException`), or the XML body (IAM, STS: `Throttling`).
fn is_throttling(response: &Response) -> bool {
    const CODES: [&str; 4] = [
        "Throttling",
        "TooManyRequests",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceeded",
    ];
    let header = response
        .headers()
        .get("x-amzn-errortype")
        .unwrap_or_default();
    let body = response
        .body()
        .bytes()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    response.status().as_u16() == 429
        || CODES
            .iter()
            .any(|code| header.contains(code) || body.contains(&format!("<Code>{code}")))
}

/// What the interceptor tells an observer (the controller's metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallEvent {
    /// One attempt of `call` was throttled; the SDK's retry policy decides what follows.
    Throttled(Call),
    /// `call` ended, after any retries.
    Finished(Call, Outcome),
}

/// Called for every event, e.g. to count it in metrics.
pub type CallObserver = Arc<dyn Fn(&CallEvent) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CallLog {
    observer: Arc<Mutex<Option<CallObserver>>>,
    total: Arc<AtomicU64>,
    mutating: Arc<AtomicU64>,
    #[cfg(feature = "test-hooks")]
    hooks: hooks::Hooks,
}

impl CallLog {
    pub fn observe(&self, observer: CallObserver) {
        *self.observer.lock().unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    /// Calls made, and how many of them could change something, since the last reset.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.total.load(Ordering::Relaxed),
            self.mutating.load(Ordering::Relaxed),
        )
    }

    pub fn reset_counts(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.mutating.store(0, Ordering::Relaxed);
    }

    fn tell(&self, event: &CallEvent) {
        let observer = self
            .observer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(observer) = observer {
            observer(event);
        }
    }
}

fn call_of(cfg: &ConfigBag) -> Option<Call> {
    cfg.load::<Metadata>().map(|m| Call {
        service: m.service().to_owned(),
        operation: m.name().to_owned(),
    })
}

impl std::fmt::Debug for CallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (total, mutating) = self.counts();
        f.debug_struct("CallLog")
            .field("total", &total)
            .field("mutating", &mutating)
            .finish()
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        #[cfg(feature = "test-hooks")]
        if let Some(call) = call_of(_cfg) {
            self.hooks.record_request(call, _context.request());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = call_of(cfg)
            && Outcome::of(context.response()) == Outcome::Throttled
        {
            self.tell(&CallEvent::Throttled(call));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = call_of(cfg) else {
            return Ok(());
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        if call.is_mutating() {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        let outcome = Outcome::of(context.response());
        self.tell(&CallEvent::Finished(call.clone(), outcome));
        #[cfg(feature = "test-hooks")]
        self.hooks.after_call(call)?;
        Ok(())
    }
}

/// Test-only: what tests read back, and crash points.
#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};

    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::http::Request;

    use super::{Call, CallLog};

    /// One HTTP request as it went out, for the operator-policy test.
    #[derive(Clone, Debug)]
    pub struct RecordedRequest {
        pub call: Call,
        pub method: String,
        pub uri: String,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    #[derive(Clone, Default)]
    pub struct Hooks {
        calls: Arc<Mutex<Vec<Call>>>,
        requests: Arc<Mutex<Vec<RecordedRequest>>>,
        mutating_done: Arc<AtomicUsize>,
        crash_after: Arc<Mutex<Option<usize>>>,
    }

    impl Hooks {
        pub fn record_request(&self, call: Call, request: &Request) {
            let recorded = RecordedRequest {
                call,
                method: request.method().to_owned(),
                uri: request.uri().to_owned(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                body: request
                    .body()
                    .bytes()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
            };
            lock(&self.requests).push(recorded);
        }

        pub fn after_call(&self, call: Call) -> Result<(), BoxError> {
            let mutating = call.is_mutating();
            lock(&self.calls).push(call.clone());
            if !mutating {
                return Ok(());
            }
            let done = self.mutating_done.fetch_add(1, Ordering::SeqCst) + 1;
            match *lock(&self.crash_after) {
                Some(k) if done == k => {
                    Err(format!("crash point after mutating call {k} ({})", call.operation).into())
                }
                _ => Ok(()),
            }
        }
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl CallLog {
        pub fn calls(&self) -> Vec<Call> {
            lock(&self.hooks.calls).clone()
        }

        pub fn mutating(&self) -> Vec<Call> {
            self.calls().into_iter().filter(Call::is_mutating).collect()
        }

        pub fn requests(&self) -> Vec<RecordedRequest> {
            lock(&self.hooks.requests).clone()
        }

        pub fn clear(&self) {
            lock(&self.hooks.calls).clear();
            lock(&self.hooks.requests).clear();
            self.hooks.mutating_done.store(0, Ordering::SeqCst);
        }

        /// Fails the `k`-th mutating call (1-based) after it succeeded at AWS; `None` disarms.
        pub fn crash_after(&self, k: Option<usize>) {
            *lock(&self.hooks.crash_after) = k;
            self.hooks.mutating_done.store(0, Ordering::SeqCst);
        }
    }
}

#[cfg(feature = "test-hooks")]
pub use hooks::RecordedRequest;

#[cfg(test)]
mod tests {
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn response(status: u16, error_type: Option<&str>, body: &str) -> Response {
        let mut response = Response::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::from(body.to_owned()),
        );
        if let Some(error_type) = error_type {
            response
                .headers_mut()
                .insert("x-amzn-errortype", error_type.to_owned());
        }
        response
    }

    #[test]
    fn throttling_is_recognised_in_every_protocols_shape() {
        // API Gateway and Lambda: 429 TooManyRequestsException.
        let rest = response(429, Some("TooManyRequestsException"), "{}");
        // DynamoDB: 400 with the code in the error type.
        let json = response(
            400,
            Some("ThrottlingException:http://internal.amazon.com/coral/"),
            "{}",
        );
        // IAM and STS (query protocol): 400 with the code in the XML body.
        let query = response(
            400,
            None,
            "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        );
        for throttled in [&rest, &json, &query] {
            assert_eq!(Outcome::of(Some(throttled)), Outcome::Throttled);
        }
        let denied = response(400, Some("AccessDeniedException"), "{}");
        assert_eq!(Outcome::of(Some(&denied)), Outcome::ClientError);
        assert_eq!(
            Outcome::of(Some(&response(503, None, ""))),
            Outcome::ServerError
        );
        assert_eq!(
            Outcome::of(Some(&response(200, None, "{}"))),
            Outcome::Success
        );
        assert_eq!(Outcome::of(None), Outcome::NoAnswer);
    }
}
