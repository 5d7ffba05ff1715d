//! Lambda's `Invoke` API for asynchronous invocations (`X-Amz-Invocation-Type: Event`), on
//! loopback, in front of a pool of real function processes under the Runtime API: an event is
//! queued (202), a free process runs it, and one that fails or dies is run again up to twice
//! more, as Lambda does. The test can have every event delivered twice, which Lambda says may
//! happen, and can kill a process mid-invocation.
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html>

use std::collections::VecDeque;
use std::path::{Path as FilePath, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::Value;
use tokio::sync::Notify;

use crate::lambda_runtime::{Function, Outcome};

/// How Lambda retries an asynchronous event whose invocation failed: twice more.
const RETRIES: u32 = 2;

/// One asynchronous invocation as it ended.
#[derive(Debug)]
pub struct Ran {
    pub event: Value,
    pub attempt: u32,
    /// `None`: the process died (or hung past the function's timeout).
    pub outcome: Option<Outcome>,
}

#[derive(Default)]
struct Queue {
    waiting: Mutex<VecDeque<(Value, u32)>>,
    arrived: Notify,
    /// Events accepted and not yet ended (their last attempt).
    open: AtomicUsize,
    ran: Mutex<Vec<Ran>>,
    deliver_twice: std::sync::atomic::AtomicBool,
    /// The pid of the process running each worker's current event (0 when idle).
    busy: Mutex<Vec<u32>>,
    /// Every worker's process, busy or not.
    pids: Mutex<Vec<u32>>,
}

/// The Invoke API and its pool.
pub struct LambdaService {
    queue: Arc<Queue>,
    endpoint: String,
    workers: Vec<tokio::task::JoinHandle<String>>,
    stop: Arc<Notify>,
}

impl LambdaService {
    /// The Invoke API alone, so that the functions can be told where it is
    /// ([`LambdaService::endpoint`]) before [`LambdaService::run`] starts them.
    pub async fn listen() -> Self {
        let queue = Arc::new(Queue::default());
        let app = Router::new()
            .route("/2015-03-31/functions/{name}/invocations", post(invoke))
            .with_state(queue.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            queue,
            endpoint,
            workers: Vec::new(),
            stop: Arc::new(Notify::new()),
        }
    }

    /// Where the functions send `Invoke` (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every event is delivered a second time once its first delivery ended.
    pub fn deliver_twice(&self) {
        self.queue.deliver_twice.store(true, Ordering::SeqCst);
    }

    /// Starts `processes` copies of `binary` with `env`, each with `timeout` per invocation.
    pub async fn run(
        &mut self,
        processes: usize,
        binary: &FilePath,
        name: &str,
        env: &[(&str, String)],
        timeout: Duration,
    ) {
        self.queue.busy.lock().unwrap().resize(processes, 0);
        self.queue.pids.lock().unwrap().resize(processes, 0);
        for index in 0..processes {
            let (queue, stop) = (self.queue.clone(), self.stop.clone());
            let (binary, name) = (binary.to_path_buf(), name.to_owned());
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            let function = start(&binary, &name, &env, timeout).await;
            self.queue.pids.lock().unwrap()[index] = function.pid();
            self.workers.push(tokio::spawn(work(
                index, queue, stop, function, binary, name, env, timeout,
            )));
        }
    }

    /// The processes running now, one per worker (for a benchmark that holds each to a share
    /// of a CPU).
    pub fn pids(&self) -> Vec<u32> {
        self.queue.pids.lock().unwrap().clone()
    }

    /// Kills the process running an event now, if any; answers whether one was.
    pub fn kill_a_busy_process(&self) -> bool {
        let busy = self.queue.busy.lock().unwrap().clone();
        let Some(pid) = busy.into_iter().find(|pid| *pid != 0) else {
            return false;
        };
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits until every accepted event has ended (at most `patience`); answers them all.
    pub async fn settled(&self, patience: Duration) -> Vec<Ran> {
        let deadline = tokio::time::Instant::now() + patience;
        while self.queue.open.load(Ordering::SeqCst) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} events still open",
                self.queue.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        std::mem::take(&mut *self.queue.ran.lock().unwrap())
    }

    /// Stops the processes; answers what they wrote.
    pub async fn stop(self) -> String {
        self.stop.notify_waiters();
        let mut logs = String::new();
        for worker in self.workers {
            worker.abort();
            if let Ok(log) = worker.await {
                logs.push_str(&log);
            }
        }
        logs
    }
}

async fn start(
    binary: &FilePath,
    name: &str,
    env: &[(String, String)],
    timeout: Duration,
) -> Function {
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    Function::start_with_timeout(binary, name, &env, timeout).await
}

#[allow(clippy::too_many_arguments)]
async fn work(
    index: usize,
    queue: Arc<Queue>,
    stop: Arc<Notify>,
    mut function: Function,
    binary: PathBuf,
    name: String,
    env: Vec<(String, String)>,
    timeout: Duration,
) -> String {
    let mut logs = String::new();
    loop {
        let next = queue.waiting.lock().unwrap().pop_front();
        let Some((event, attempt)) = next else {
            tokio::select! {
                () = queue.arrived.notified() => continue,
                () = tokio::time::sleep(Duration::from_millis(50)) => continue,
                () = stop.notified() => return logs + &function.stop(),
            }
        };
        queue.busy.lock().unwrap()[index] = function.pid();
        let outcome = function
            .try_invoke(event.clone(), timeout + Duration::from_secs(1))
            .await;
        queue.busy.lock().unwrap()[index] = 0;
        let failed = !matches!(outcome, Some(Outcome::Response(..)));
        if outcome.is_none() {
            // The process died or hung: Lambda starts a fresh one.
            let fresh = start(&binary, &name, &env, timeout).await;
            queue.pids.lock().unwrap()[index] = fresh.pid();
            logs.push_str(&std::mem::replace(&mut function, fresh).stop());
        }
        let again = if failed && attempt < RETRIES {
            Some((event.clone(), attempt + 1))
        } else if attempt == 0 && queue.deliver_twice.load(Ordering::SeqCst) {
            // The duplicate is a delivery of its own: it counts as open until it ends.
            Some((event.clone(), RETRIES + 1))
        } else {
            None
        };
        queue.ran.lock().unwrap().push(Ran {
            event,
            attempt,
            outcome,
        });
        match again {
            Some(next) => {
                queue.waiting.lock().unwrap().push_back(next);
                queue.arrived.notify_one();
            }
            None => {
                queue.open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`: only `Event` invocations are served here.
async fn invoke(
    State(queue): State<Arc<Queue>>,
    Path(_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok());
    if kind != Some("Event") {
        return (
            StatusCode::BAD_REQUEST,
            "only Event invocations are served here",
        )
            .into_response();
    }
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the payload is not JSON").into_response();
    };
    queue.open.fetch_add(1, Ordering::SeqCst);
    queue.waiting.lock().unwrap().push_back((event, 0));
    queue.arrived.notify_one();
    StatusCode::ACCEPTED.into_response()
}
