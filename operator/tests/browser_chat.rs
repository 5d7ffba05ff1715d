//! The chat page in headless Chromium against the real binary: two pages in one room chat and
//! markup shows as literal text; a page the server drops says so and reconnects by itself.
//!
//! Ignored by a plain `cargo test`: it needs Debian's chromium and playwright-core from npm,
//! which scripts/test.sh installs.

mod binary;

use std::path::Path;
use std::process::Command;

use binary::{LocalGateway, repo_root};

#[test]
#[ignore = "needs chromium and playwright-core; run through scripts/test.sh"]
fn two_browser_pages_chat_and_markup_stays_text() {
    in_chromium("chat", &[]);
}

#[test]
#[ignore = "needs chromium and playwright-core; run through scripts/test.sh"]
fn a_page_that_joins_later_shows_what_was_said_and_who_is_online() {
    in_room_in_chromium("examples/chatroom-history.yaml", "garden", "history", &[]);
}

#[test]
#[ignore = "needs chromium and playwright-core; run through scripts/test.sh"]
fn the_page_says_when_the_server_drops_it_and_reconnects_by_itself() {
    // The idle timeout is the server closing the connection (1001), as API Gateway does.
    in_chromium("reconnect", &["--idle-timeout", "3s"]);
}

/// Runs `tools/browser-chat.mjs MODE` against the example room on the real binary.
fn in_chromium(mode: &str, gateway_flags: &[&str]) {
    in_room_in_chromium("examples/chatroom.yaml", "lobby", mode, gateway_flags);
}

/// Runs `tools/browser-chat.mjs MODE` against `default/{room}/dev` of the example `file`.
fn in_room_in_chromium(file: &str, room: &str, mode: &str, gateway_flags: &[&str]) {
    let root = repo_root();
    let gateway = LocalGateway::start(&[Path::new(&root.join(file))], gateway_flags);
    let page = format!("http://127.0.0.1:{}/default/{room}/dev", gateway.port);
    let screenshot = root.join(format!("target/browser-{mode}.png"));
    let _ = std::fs::remove_file(&screenshot);

    let output = Command::new("node")
        .arg(root.join("tools/browser-chat.mjs"))
        .args([mode, page.as_str(), screenshot.to_str().unwrap()])
        .current_dir(&root)
        .output()
        .expect("node runs");

    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    assert!(report.starts_with("ok: "), "{report}");
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 1000),
        "no screenshot at {}",
        screenshot.display()
    );
    let (status, _, stderr) = gateway.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn the_page_and_index_are_served_without_external_assets() {
    let root = repo_root();
    let gateway = LocalGateway::start(&[Path::new(&root.join("examples/chatroom.yaml"))], &[]);
    let get = |path: &str| {
        let output = Command::new("python3")
            .args(["-c", "import sys, urllib.request as u; r = u.urlopen(sys.argv[1]); print(r.headers.get('content-security-policy')); print(r.read().decode())"])
            .arg(format!("http://127.0.0.1:{}{path}", gateway.port))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    let page = get("/default/lobby/dev");
    assert!(
        page.starts_with("default-src 'none'"),
        "a strict CSP: {}",
        page.lines().next().unwrap()
    );
    assert!(
        page.contains(r#""template":{"action":"onMessage","message":""}"#),
        "the room's message template is in the page"
    );
    for external in ["http://", "https://", "//cdn"] {
        assert!(
            !page.contains(external),
            "the page loads nothing from elsewhere ({external})"
        );
    }
    assert!(
        !page.contains(".innerHTML"),
        "peer text is never parsed as HTML"
    );

    let index = get("/");
    assert!(
        index.contains(r#"<a href="/default/lobby/dev">"#),
        "{index}"
    );
    gateway.terminate();
}
