//! Every AWS call the provider makes, recorded by an SDK interceptor: for metrics, for the
//! tests that count calls, and (feature `crash-points`) to fail the k-th mutating call after
//! AWS carried it out, as a crash between a create and the status write would.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// One call: service and operation, e.g. `("dynamodb", "CreateTable")`.
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

/// Called for every AWS call, e.g. to count it in metrics.
pub type CallObserver = Arc<dyn Fn(&Call) + Send + Sync>;

#[derive(Clone, Default)]
pub struct CallLog {
    calls: Arc<Mutex<Vec<Call>>>,
    observer: Arc<Mutex<Option<CallObserver>>>,
    mutating_done: Arc<AtomicUsize>,
    crash_after: Arc<Mutex<Option<usize>>>,
}

impl CallLog {
    pub fn calls(&self) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn observe(&self, observer: CallObserver) {
        *self.observer.lock().unwrap_or_else(PoisonError::into_inner) = Some(observer);
    }

    pub fn clear(&self) {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.mutating_done.store(0, Ordering::SeqCst);
    }

    pub fn mutating(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_mutating).collect()
    }

    /// Fails the `k`-th mutating call (1-based) after it succeeded at AWS; `None` disarms.
    #[cfg(feature = "crash-points")]
    pub fn crash_after(&self, k: Option<usize>) {
        *self
            .crash_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = k;
        self.mutating_done.store(0, Ordering::SeqCst);
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
        f.debug_struct("CallLog")
            .field("calls", &self.calls().len())
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
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(call) = call_of(cfg) {
            let observer = self
                .observer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(observer) = observer {
                observer(&call);
            }
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(call);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = call_of(cfg) else {
            return Ok(());
        };
        if !call.is_mutating() {
            return Ok(());
        }
        let done = self.mutating_done.fetch_add(1, Ordering::SeqCst) + 1;
        let crash = *self
            .crash_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match crash {
            Some(k) if done == k => {
                Err(format!("crash point after mutating call {k} ({})", call.operation).into())
            }
            _ => Ok(()),
        }
    }
}
