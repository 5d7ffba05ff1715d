//! The signature check docs/backend.md gives backends, run as written (Python 3) against
//! requests signed the way the room signs them: it accepts a request once, and refuses a
//! replay, a forgery and an old request.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use chatroom_handlers::backend::signature::sign;

/// The first ```python block of docs/backend.md.
fn documented_check() -> String {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/backend.md"))
        .unwrap();
    let start = docs
        .find("```python\n")
        .expect("docs/backend.md has a python block")
        + 10;
    let end = start + docs[start..].find("```").unwrap();
    docs[start..end].to_owned()
}

/// What the documented `verified` says of each request in turn, in one Python process (so
/// that it remembers what it accepted).
fn verdicts(key: &str, requests: &[(String, String, Vec<u8>)]) -> Vec<String> {
    let mut script = documented_check();
    script.push_str("\nimport base64, json, sys\n");
    script.push_str("for ts, sig, body in json.load(sys.stdin):\n");
    script.push_str(&format!(
        "    print(verified({key:?}.encode(), ts, sig, base64.b64decode(body)))\n"
    ));
    let requests: Vec<serde_json::Value> = requests
        .iter()
        .map(|(ts, sig, body)| {
            use base64::Engine;
            serde_json::json!([
                ts,
                sig,
                base64::engine::general_purpose::STANDARD.encode(body)
            ])
        })
        .collect();
    let mut python = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&requests).unwrap().as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_documented_check_accepts_a_signed_request_once_and_refuses_replays_and_forgeries() {
    let key = "room-signing-key";
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let body = br#"{"requestContext":{"routeKey":"notify"}}"#.to_vec();
    let signed = (
        now.to_string(),
        sign(key.as_bytes(), now, &body),
        body.clone(),
    );
    let mut forged_body = body.clone();
    forged_body.push(b' ');
    let old = now - 600;
    let requests = [
        signed.clone(),
        signed.clone(),
        (signed.0.clone(), signed.1.clone(), forged_body),
        (
            now.to_string(),
            sign(b"another key", now, &body),
            body.clone(),
        ),
        (
            old.to_string(),
            sign(key.as_bytes(), old, &body),
            body.clone(),
        ),
        (String::new(), signed.1.clone(), body),
    ];
    assert_eq!(
        verdicts(key, &requests),
        ["True", "False", "False", "False", "False", "False"],
        "accepted once; then a replay, a forged body, another key, an old request, no timestamp"
    );
}
