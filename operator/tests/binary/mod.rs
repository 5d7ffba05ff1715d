//! Drives the real `chatroom-operator` binary.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chatroom-operator"))
}

pub use chatroom_testkit::repo_root;

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `chatroom-operator local FILES --listen 127.0.0.1:PORT`, running until stopped.
pub struct LocalGateway {
    pub child: Child,
    pub port: u16,
}

impl LocalGateway {
    pub fn start(files: &[&Path], extra: &[&str]) -> Self {
        let port = free_port();
        let child = binary()
            .arg("local")
            .args(files)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .current_dir(repo_root())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let gateway = Self { child, port };
        gateway.wait_until_listening();
        gateway
    }

    fn wait_until_listening(&self) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the gateway did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}/{path}", self.port)
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns status, stdout and stderr.
    pub fn terminate(mut self) -> (ExitStatus, String, String) {
        let exit = terminate(&mut self.child, Duration::from_secs(20));
        (exit.status, exit.stdout, exit.stderr)
    }
}

pub struct Exit {
    pub status: ExitStatus,
    /// From the start of the wait (the SIGTERM, for `terminate`) to the exit.
    pub took: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// Sends SIGTERM to a child started with piped output and waits up to `within` for its exit.
pub fn terminate(child: &mut Child, within: Duration) -> Exit {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    output_of(child, within)
}

/// Waits up to `within` for a child started with piped output to exit, and reads its output.
pub fn output_of(child: &mut Child, within: Duration) -> Exit {
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < within, "no exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Exit {
        status,
        took,
        stdout,
        stderr,
    }
}

impl Drop for LocalGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
