//! The fan-out benchmark for docs/benchmarks.md (not a test: nothing here is asserted). One
//! broadcast — or a soak of them, back to back — to RECIPIENTS connections, by the real
//! `bootstrap`: the invocation that gets the message hands its pages to asynchronous
//! invocations of the same function (Lambda's Invoke API on loopback, a process per worker,
//! each held to one function's share of a CPU), which post to a stand-in `@connections`
//! endpoint: 20 ms median latency (p99 60 ms), 429 `LimitExceededException` above
//! POSTS_PER_SECOND (a burst of half a second's worth), 410 for five ids. DynamoDB is moto,
//! holding the connections, behind a proxy that counts the function's requests. The first two
//! broadcasts read the table (the first finds nothing kept; its 410s move the room's version),
//! the third reuses the listing. Each broadcast is a JSON line; the last line is one JSON
//! object: the third broadcast's, or the soak's summary.
//!
//! bash scripts/bench-fanout.sh RECIPIENTS [POSTS_PER_SECOND] [VCPU] [SOAK_SECONDS] [MEMORY_MB]

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chatroom_handlers::Recipient;
use chatroom_handlers::aws::{pages, worker_posts_per_second};
use chatroom_testkit::lambda_runtime::Function;
use chatroom_testkit::lambda_service::LambdaService;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use rand::Rng;
use serde_json::{Value, json};

const FUNCTION: &str = "chatroom-bench-fanout";
/// API Gateway bills WebSocket messages at about $1.00 per million (the first billion a month;
/// every `@connections` post is one).
/// <https://aws.amazon.com/api-gateway/pricing/>
const DOLLARS_PER_MILLION_MESSAGES: f64 = 1.0;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: fanout_bench BOOTSTRAP RECIPIENTS POSTS_PER_SECOND VCPU SOAK_SECONDS [MEMORY_MB]";
    let bootstrap = std::path::PathBuf::from(args.get(1).expect(usage));
    let recipients: usize = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let rate: u32 = args.get(3).and_then(|a| a.parse().ok()).expect(usage);
    let vcpu: f64 = args.get(4).and_then(|a| a.parse().ok()).expect(usage);
    let soak = Duration::from_secs(args.get(5).and_then(|a| a.parse().ok()).unwrap_or(0));
    // The function's memory, which sets its workers' rate and how large a listing it keeps;
    // by default what VCPU stands for.
    let memory: u32 = args
        .get(6)
        .and_then(|a| a.parse().ok())
        .unwrap_or(if vcpu >= 1.0 { 1769 } else { 128 });
    let moto = std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT: moto itself");

    let sdk = chatroom_testkit::sdk_config(Some(&moto)).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = format!("chatroom-bench-fanout-{}", std::process::id());
    chatroom_testkit::create_connection_table(&dynamodb, &table, &[]).await;
    let ids: Vec<String> = (0..recipients).map(|i| format!("b-{i:07}")).collect();
    let filled = Instant::now();
    let writers = ids.chunks(recipients.div_ceil(8).max(1)).map(|slice| {
        let (dynamodb, table, slice) = (dynamodb.clone(), table.clone(), slice.to_vec());
        tokio::spawn(async move {
            chatroom_testkit::write_settled_connections(&dynamodb, &table, &slice).await;
        })
    });
    futures::future::join_all(writers).await;
    eprintln!("{recipients} connections written in {:?}", filled.elapsed());

    let gone: Vec<usize> = (0..5)
        .map(|k| (k * recipients / 5 + 3) % recipients)
        .collect();
    let requests = Arc::new(Requests::default());
    let dynamodb_url = counting_proxy(&moto, requests.clone()).await;
    let endpoint = Arc::new(Endpoint::new(recipients, rate, &gone));
    let callback = serve_connections(endpoint.clone()).await;

    let mut service = LambdaService::listen().await;
    let env = [
        ("TABLE_NAME", table.clone()),
        ("CALLBACK_URL", callback),
        ("AWS_ENDPOINT_URL", dynamodb_url),
        ("AWS_ENDPOINT_URL_LAMBDA", service.endpoint().to_owned()),
        ("FANOUT_POSTS_PER_SECOND", rate.to_string()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory.to_string()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    // As many processes as the function makes pages of the broadcast: each page is one
    // execution at once, as on Lambda.
    let listing: Vec<Recipient> = ids
        .iter()
        .map(|id| Recipient::unnamed(id.as_str()))
        .collect();
    let worker_rate = worker_posts_per_second(Some(memory));
    let pages = pages(&listing, "{}".into(), "", 0, rate, worker_rate, 0).len();
    let timeout = Duration::from_secs(29);
    service
        .run(pages.max(1), &bootstrap, FUNCTION, &env, timeout)
        .await;
    // moto's Scan reads about 8,000 rows a second (DynamoDB returns a 1 MB page in
    // milliseconds), so past 100,000 the broadcasts that read the table are given the time moto
    // needs; the warm one reads nothing, and its `coordinator_ms` shows it inside 29 s.
    let coordinator_timeout = if recipients > 100_000 {
        Duration::from_secs(900)
    } else {
        timeout
    };
    let mut coordinator =
        Function::start_with_timeout(&bootstrap, FUNCTION, &env, coordinator_timeout).await;
    let mut pids = service.pids();
    pids.push(coordinator.pid());
    let stop_limiting = Arc::new(AtomicBool::new(false));
    let limiter = {
        let stop = stop_limiting.clone();
        std::thread::spawn(move || hold_to_cpu_share(&pids, vcpu, &stop))
    };

    let started = Instant::now();
    let mut runs = Vec::new();
    let mut message = 0;
    loop {
        message += 1;
        endpoint.reset();
        let before = requests.snapshot();
        let t0 = Instant::now();
        let event = message_event(&ids[0], &format!("bench-{message}"));
        let outcome = coordinator
            .try_invoke(event, coordinator_timeout + Duration::from_secs(1))
            .await
            .expect("the coordinator answers within its timeout");
        let coordinator_done = t0.elapsed();
        let expected = recipients - gone.len();
        // Every live connection has it (the gone ones are answered 410 by the first broadcast
        // and removed), or five minutes passed.
        let deadline = Instant::now() + Duration::from_secs(300);
        while endpoint.distinct() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seconds = t0.elapsed().as_secs_f64();
        service.settled(Duration::from_secs(120)).await;
        let delivered = endpoint.distinct();
        let posts = endpoint.posts();
        let used = requests.since(&before);
        let run = json!({
            "recipients": recipients,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "delivered": delivered,
            "lost": expected.saturating_sub(delivered),
            "duplicates": posts - delivered,
            "throttled": endpoint.throttled.load(Ordering::SeqCst),
            "dynamodb_requests": used.values().sum::<u64>(),
            "dynamodb_by_operation": used,
            "posts_per_second_budget": rate,
            "vcpu_per_function": vcpu,
            "memory_mb": memory,
            "pages": pages,
            "message": message,
            "coordinator_ms": coordinator_done.as_millis(),
            "coordinator_status": outcome.status_code(),
            "cost_dollars": (posts + endpoint.gone_answers()) as f64 * DOLLARS_PER_MILLION_MESSAGES / 1e6,
        });
        println!("{run}");
        runs.push(run);
        // The first broadcast finds no listing kept and reads the table, and its 410s move
        // the room's version, so the second reads it again; the third is the one measured.
        if message >= 3 && started.elapsed() >= soak {
            break;
        }
    }
    stop_limiting.store(true, Ordering::SeqCst);
    let _ = limiter.join();
    let logs = service.stop().await + &coordinator.stop();
    if logs.contains("\"level\":\"ERROR\"") {
        eprintln!("{logs}");
    }
    if runs.len() > 3 {
        let runs = &runs[2..];
        let mut seconds: Vec<f64> = runs.iter().filter_map(|r| r["seconds"].as_f64()).collect();
        let (first, last) = (seconds[0], seconds[seconds.len() - 1]);
        seconds.sort_by(f64::total_cmp);
        println!(
            "{}",
            json!({
                "soak_seconds": started.elapsed().as_secs(),
                "messages": runs.len(),
                "seconds_first": first,
                "seconds_last": last,
                "seconds_median": seconds[seconds.len() / 2],
                "seconds_max": seconds[seconds.len() - 1],
                "lost": runs.iter().filter_map(|r| r["lost"].as_u64()).sum::<u64>(),
                "duplicates": runs.iter().filter_map(|r| r["duplicates"].as_u64()).sum::<u64>(),
                "last": runs[runs.len() - 1],
            })
        );
    }
}

fn message_event(sender: &str, request_id: &str) -> Value {
    let path = format!("{}/tests/events/message.json", env!("CARGO_MANIFEST_DIR"));
    let mut event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["requestContext"]["connectionId"] = sender.into();
    event["requestContext"]["requestId"] = request_id.into();
    event["requestContext"]["requestTimeEpoch"] = chrono::Utc::now().timestamp_millis().into();
    event
}

/// The stand-in `@connections` endpoint and what it saw.
struct Endpoint {
    received: Vec<AtomicU32>,
    gone: Vec<bool>,
    gone_answers: AtomicU64,
    throttled: AtomicU64,
    account: DefaultDirectRateLimiter,
}

impl Endpoint {
    fn new(recipients: usize, rate: u32, gone: &[usize]) -> Self {
        let mut marked = vec![false; recipients];
        for index in gone {
            marked[*index] = true;
        }
        let burst = NonZeroU32::new((rate / 2).max(1)).unwrap_or(NonZeroU32::MIN);
        let per_second = NonZeroU32::new(rate.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            received: (0..recipients).map(|_| AtomicU32::new(0)).collect(),
            gone: marked,
            gone_answers: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            account: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    fn reset(&self) {
        for count in &self.received {
            count.store(0, Ordering::SeqCst);
        }
        self.gone_answers.store(0, Ordering::SeqCst);
        self.throttled.store(0, Ordering::SeqCst);
    }

    fn distinct(&self) -> usize {
        self.received
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) > 0)
            .count()
    }

    fn posts(&self) -> usize {
        self.received
            .iter()
            .map(|c| c.load(Ordering::Relaxed) as usize)
            .sum()
    }

    fn gone_answers(&self) -> usize {
        self.gone_answers.load(Ordering::SeqCst) as usize
    }
}

/// A latency drawn from a log-normal distribution with a 20 ms median and a 60 ms p99.
fn latency() -> Duration {
    let mut rng = rand::rng();
    let (u1, u2): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let sigma = 3.0_f64.ln() / 2.326;
    Duration::from_secs_f64(0.020 * (sigma * z).exp())
}

async fn serve_connections(endpoint: Arc<Endpoint>) -> String {
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(answer))
        .with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/dev")
}

async fn answer(
    State(endpoint): State<Arc<Endpoint>>,
    Path((_stage, id)): Path<(String, String)>,
    _body: Bytes,
) -> Response {
    if endpoint.account.check().is_err() {
        endpoint.throttled.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("x-amzn-ErrorType", "LimitExceededException")],
            r#"{"message":"Rate exceeded"}"#,
        )
            .into_response();
    }
    tokio::time::sleep(latency()).await;
    let Some(index) = id.strip_prefix("b-").and_then(|n| n.parse::<usize>().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if endpoint.gone.get(index).copied().unwrap_or(true) {
        endpoint.gone_answers.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::GONE,
            [("x-amzn-ErrorType", "GoneException")],
            "{}",
        )
            .into_response();
    }
    endpoint.received[index].fetch_add(1, Ordering::SeqCst);
    StatusCode::OK.into_response()
}

/// DynamoDB requests by operation (`X-Amz-Target`).
#[derive(Default)]
struct Requests(Mutex<HashMap<String, u64>>);

impl Requests {
    fn snapshot(&self) -> HashMap<String, u64> {
        self.0.lock().unwrap().clone()
    }

    fn since(&self, before: &HashMap<String, u64>) -> HashMap<String, u64> {
        self.snapshot()
            .into_iter()
            .map(|(op, n)| {
                let earlier = before.get(&op).copied().unwrap_or(0);
                (op, n - earlier)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// A proxy in front of moto that counts what passes.
async fn counting_proxy(moto: &str, requests: Arc<Requests>) -> String {
    let upstream: axum::http::Uri = moto.parse().unwrap();
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let app = Router::new().fallback(move |request: Request| {
        let (client, requests, upstream) = (client.clone(), requests.clone(), upstream.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            let operation = parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .and_then(|t| t.rsplit('.').next())
                .unwrap_or("other")
                .to_owned();
            *requests.0.lock().unwrap().entry(operation).or_default() += 1;
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            parts.uri = format!(
                "http://{}{path}",
                upstream.authority().map_or("", |a| a.as_str())
            )
            .parse()
            .unwrap();
            let forwarded = hyper::Request::from_parts(parts, Full::new(body));
            match client.request(forwarded).await {
                Ok(answer) => {
                    let (parts, body) = answer.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    Response::from_parts(parts, axum::body::Body::from(body))
                }
                Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Holds each process to `vcpu` of a CPU as the kernel's CFS quota does a Lambda function's:
/// within each 100 ms period a process that has run its share is stopped until the period
/// ends. Time on a CPU comes from `/proc/{pid}/schedstat` (nanoseconds).
fn hold_to_cpu_share(pids: &[u32], vcpu: f64, stop: &AtomicBool) {
    if vcpu >= 1.0 {
        return;
    }
    let period = Duration::from_millis(100);
    let quota_ns = (vcpu * period.as_nanos() as f64) as u64;
    // Every thread of the process, as a cgroup's CPU quota counts them: the process's own
    // schedstat is its main thread's alone, and the runtime's workers post too.
    let on_cpu = |pid: u32| -> Option<u64> {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut total = 0;
        for thread in threads.flatten() {
            let text = std::fs::read_to_string(thread.path().join("schedstat")).ok()?;
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(total)
    };
    let signal = |pid: u32, signal: i32| {
        // SAFETY: kill(2) with a pid this benchmark started and a valid signal number.
        unsafe { libc::kill(pid as i32, signal) };
    };
    while !stop.load(Ordering::SeqCst) {
        let period_start = Instant::now();
        let baseline: Vec<Option<u64>> = pids.iter().map(|p| on_cpu(*p)).collect();
        let mut stopped = vec![false; pids.len()];
        while period_start.elapsed() < period {
            for (i, pid) in pids.iter().enumerate() {
                if stopped[i] {
                    continue;
                }
                if let (Some(start), Some(now)) = (baseline[i], on_cpu(*pid))
                    && now.saturating_sub(start) >= quota_ns
                {
                    signal(*pid, libc::SIGSTOP);
                    stopped[i] = true;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for (i, pid) in pids.iter().enumerate() {
            if stopped[i] {
                signal(*pid, libc::SIGCONT);
            }
        }
    }
}
