//! The backend client's bounds against a real HTTP server on loopback: what an answer may hold,
//! how long it may take, and that an unsigned loopback backend gets no signature headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;
use chatroom_handlers::backend::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use chatroom_handlers::backend::{
    AddressPolicy, Backend, BackendError, HttpBackend, MAX_ANSWER_BYTES,
};

/// Serves `/small` (a short answer), `/large` (one byte over the bound) and `/slow`; keeps the
/// headers of each request.
async fn serve() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new()
        .route("/small", axum::routing::post(|| async { "ok" }))
        .route(
            "/large",
            axum::routing::post(|| async { "x".repeat(MAX_ANSWER_BYTES + 1) }),
        )
        .route(
            "/slow",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push(request.headers().clone());
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn client(url: &str, key: Option<&str>, timeout: Duration) -> HttpBackend {
    HttpBackend::new(
        url,
        key.map(|k| k.as_bytes().to_vec()),
        timeout,
        AddressPolicy::Any,
    )
    .unwrap()
}

#[tokio::test]
async fn an_answer_over_128_kb_is_refused_and_a_slow_one_times_out() {
    let (base, _) = serve().await;
    let second = Duration::from_secs(1);
    let small = client(&format!("{base}/small"), Some("k"), second);
    assert_eq!(
        small.deliver(Bytes::from_static(b"{}")).await.unwrap(),
        "ok"
    );
    let large = client(&format!("{base}/large"), Some("k"), second);
    assert!(matches!(
        large.deliver(Bytes::from_static(b"{}")).await,
        Err(BackendError::AnswerTooLarge)
    ));
    let slow = client(&format!("{base}/slow"), Some("k"), second);
    let started = std::time::Instant::now();
    assert!(matches!(
        slow.deliver(Bytes::from_static(b"{}")).await,
        Err(BackendError::Timeout(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let gone = client("http://127.0.0.1:9/chat", Some("k"), second);
    assert!(matches!(
        gone.deliver(Bytes::from_static(b"{}")).await,
        Err(BackendError::Unreachable(_))
    ));
}

#[tokio::test]
async fn requests_are_signed_with_a_key_and_unsigned_without_one() {
    let (base, seen) = serve().await;
    let second = Duration::from_secs(1);
    client(&format!("{base}/small"), Some("k"), second)
        .deliver(Bytes::from_static(b"{}"))
        .await
        .unwrap();
    client(&format!("{base}/small"), None, second)
        .deliver(Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen[0].contains_key(SIGNATURE_HEADER) && seen[0].contains_key(TIMESTAMP_HEADER));
    assert!(!seen[1].contains_key(SIGNATURE_HEADER) && !seen[1].contains_key(TIMESTAMP_HEADER));
    assert_eq!(seen[0]["content-type"], "application/json");
}
