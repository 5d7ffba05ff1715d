//! Drives the real `chatroom-operator` binary.
#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
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

/// A child whose stdout and stderr are read while it runs, so that a chatty process never
/// blocks on a full pipe; both are returned when it exits.
pub struct Running {
    pub child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let drain = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                let _ = pipe.read_to_end(&mut text);
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let stdout = child.stdout.take().map(|p| drain(Box::new(p)));
        let stderr = child.stderr.take().map(|p| drain(Box::new(p)));
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Sends SIGTERM and waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> Exit {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        self.wait(within)
    }

    /// Waits up to `within` for the exit, and collects the output.
    pub fn wait(&mut self, within: Duration) -> Exit {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(started.elapsed() < within, "no exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let took = started.elapsed();
        let collect =
            |pipe: Option<JoinHandle<String>>| pipe.map(|t| t.join().unwrap()).unwrap_or_default();
        Exit {
            status,
            took,
            stdout: collect(self.stdout.take()),
            stderr: collect(self.stderr.take()),
        }
    }

    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `chatroom-operator local FILES --listen 127.0.0.1:PORT --management-listen
/// 127.0.0.1:MANAGEMENT_PORT`, running until stopped.
pub struct LocalGateway {
    pub process: Running,
    pub port: u16,
    pub management_port: u16,
}

impl LocalGateway {
    pub fn start(files: &[&Path], extra: &[&str]) -> Self {
        let (port, management_port) = (free_port(), free_port());
        let mut command = binary();
        command
            .arg("local")
            .args(files)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--management-listen",
                &format!("127.0.0.1:{management_port}"),
            ])
            .args(extra)
            .current_dir(repo_root());
        let gateway = Self {
            process: Running::spawn(command),
            port,
            management_port,
        };
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
        let exit = self.process.terminate(Duration::from_secs(20));
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
