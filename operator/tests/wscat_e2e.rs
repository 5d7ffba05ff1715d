//! The README's newcomer path with a real WebSocket client: the `local` binary serving the
//! example room, and two `wscat` processes (npm) chatting through it.
//!
//! Ignored by a plain `cargo test` because it needs Node.js and wscat; `scripts/test.sh`
//! installs wscat and runs it with `WSCAT` pointing at the binary.

mod binary;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use binary::{LocalGateway, repo_root};

struct Wscat {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Wscat {
    /// `wscat -c URL -x FRAME -w -1`: sends FRAME once connected, then prints every frame it
    /// receives, one per line. Its stdin stays open: wscat exits at end of input.
    fn start(url: &str, frame: &str) -> Self {
        let wscat = std::env::var("WSCAT")
            .expect("set WSCAT to the wscat binary (scripts/test.sh installs it)");
        let mut child = Command::new(wscat)
            .args(["-c", url, "-x", frame, "-w", "-1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// The next printed frame that satisfies `wanted`, parsed as JSON.
    fn wait_for(
        &self,
        what: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("wscat never printed {what}"));
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
                && wanted(&json)
            {
                return json;
            }
        }
    }
}

impl Drop for Wscat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs wscat from npm; run through scripts/test.sh"]
fn two_wscat_clients_chat_through_the_local_binary() {
    let gateway = LocalGateway::start(
        &[Path::new(&repo_root().join("examples/chatroom.yaml"))],
        &[],
    );
    let url = gateway.url("default/lobby/dev");

    // bob proves he is connected by getting the $default hint for an unknown action.
    let bob = Wscat::start(&format!("{url}?name=bob"), r#"{"action":"hello"}"#);
    bob.wait_for("the $default hint", |f| f["type"] == "error");

    let ada = Wscat::start(
        &format!("{url}?name=ada"),
        r#"{"action":"onMessage","message":"Hello everyone"}"#,
    );
    let is_hello =
        |f: &serde_json::Value| f["type"] == "message" && f["message"] == "Hello everyone";
    for (who, client) in [("bob", &bob), ("ada", &ada)] {
        let frame = client.wait_for("the broadcast", is_hello);
        assert_eq!(frame["from"], "ada", "{who} got {frame}");
    }

    drop((ada, bob));
    let (status, _, stderr) = gateway.terminate();
    assert!(status.success(), "{stderr}");
}
