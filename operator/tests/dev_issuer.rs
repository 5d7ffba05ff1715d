//! `chatroom-operator dev-issuer` with `local examples/chatroom-dev-auth.yaml`: sign-in tried
//! on one machine with no identity provider, as the README shows a newcomer.

mod binary;
mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use binary::{LocalGateway, Running, binary, free_port, repo_root};
use support::{connect, next_json, send_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_issuer_signs_a_newcomer_in_to_the_example_room() {
    let port = free_port();
    let mut command = binary();
    command.args(["dev-issuer", "--listen", &format!("127.0.0.1:{port}")]);
    let issuer = Running::spawn(command);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "the issuer did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The example, as committed, but for the issuer's port.
    let example = std::fs::read_to_string(repo_root().join("examples/chatroom-dev-auth.yaml"))
        .unwrap()
        .replace("127.0.0.1:8090", &format!("127.0.0.1:{port}"));
    let dir = std::env::temp_dir().join(format!("chatroom-dev-issuer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let room = dir.join("room.yaml");
    std::fs::write(&room, example).unwrap();
    let gateway = LocalGateway::start(&[&room], &[]);

    let (status, headers, token) = support::http(addr, "GET", "/token?name=ada", b"").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(
        support::header(&headers, "x-chatroom-warning"),
        Some("development issuer: not for production")
    );
    let url = gateway.url("default/lobby/dev");
    let mut ada = connect(&format!("{url}?token={}", token.trim())).await;
    send_text(&mut ada, r#"{"action":"who"}"#).await;
    assert_eq!(
        next_json(&mut ada).await["online"],
        serde_json::json!(["ada"])
    );

    let forged = tokio_tungstenite::connect_async(format!("{url}?token=not.a.token")).await;
    match forged {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("a forged token connected: {other:?}"),
    }

    let (status, _, stderr) = gateway.terminate();
    assert!(status.success(), "{stderr}");
    let mut issuer = issuer;
    let exit = issuer.terminate(Duration::from_secs(10));
    assert!(exit.status.success(), "{}", exit.stderr);
    assert!(
        exit.stdout.contains("not for production") && exit.stdout.contains("# ada: ey"),
        "{}",
        exit.stdout
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_development_issuer_refuses_to_serve_a_network() {
    let out = binary()
        .args(["dev-issuer", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a loopback address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
