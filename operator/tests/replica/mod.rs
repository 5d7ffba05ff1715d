//! `chatroom-operator run` as a process, signed in with whatever kubeconfig the test gives it:
//! a real API server's (tests/cluster) or the in-memory one's (tests/apiserver).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::binary::{self, Running, binary, free_port};
use crate::support;

pub const PATIENCE: Duration = Duration::from_secs(20);

/// One `chatroom-operator run` process, its log collected as it runs.
pub struct Replica {
    process: Running,
    pub metrics: u16,
    /// The local provider's gateway port, for clients.
    pub gateway: u16,
    /// The local provider's management API port.
    pub management: u16,
}

/// The key pair a cluster's Secret would give the gateway's management API.
pub const MANAGEMENT_KEY_ID: &str = "AKIDCHATROOMTEST";
pub const MANAGEMENT_SECRET: &str = "test-secret-0123456789abcdefghijklmnop";

impl Replica {
    /// `run --provider local`, serving rooms on a loopback port of its own and the
    /// management API, behind SigV4 with the test's keys, on another.
    pub fn local(kubeconfig: &Path, pod: &str, extra: &[&str]) -> Self {
        let (metrics, gateway, management) = (free_port(), free_port(), free_port());
        let mut command = Self::command(kubeconfig, pod, metrics);
        command
            .args(["--provider", "local"])
            .args(["--gateway-listen", &format!("127.0.0.1:{gateway}")])
            .args(["--public-url", &format!("http://127.0.0.1:{gateway}")])
            .args(["--management-listen", &format!("127.0.0.1:{management}")])
            .env("MANAGEMENT_ACCESS_KEY_ID", MANAGEMENT_KEY_ID)
            .env("MANAGEMENT_SECRET_ACCESS_KEY", MANAGEMENT_SECRET)
            .args(extra);
        let mut replica = Self::spawn(command, metrics, gateway);
        replica.management = management;
        replica
    }

    /// `run --provider aws` against moto (`MOTO_ENDPOINT`, which scripts/test.sh sets), with
    /// the AWS environment `aws_env` (`aws_support::operator_moto_env` for its cluster).
    pub fn aws(
        kubeconfig: &Path,
        pod: &str,
        extra: &[&str],
        aws_env: [(&'static str, String); 4],
    ) -> Self {
        let metrics = free_port();
        let mut command = Self::command(kubeconfig, pod, metrics);
        command
            .args(["--provider", "aws"])
            .args(extra)
            .envs(aws_env);
        Self::spawn(command, metrics, 0)
    }

    fn command(kubeconfig: &Path, pod: &str, metrics: u16) -> Command {
        let mut command = binary();
        command
            .args(["run", "--log-format", "json"])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", pod)
            .env("RUST_LOG", "info");
        command
    }

    fn spawn(command: Command, metrics: u16, gateway: u16) -> Self {
        Self {
            process: Running::spawn(command),
            metrics,
            gateway,
            management: 0,
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let addr = ([127, 0, 0, 1], self.metrics).into();
        // Not listening yet is an answer too, while the process starts.
        tokio::net::TcpStream::connect(addr).await.ok()?;
        let (code, _, body) = support::http(addr, "GET", path, b"").await;
        Some((code, body))
    }

    /// Waits (bounded) for `/readyz` to answer 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        while self.get("/readyz").await.map(|(code, _)| code) != Some(200) {
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn leader_gauge(&self) -> String {
        let (_, metrics) = self.get("/metrics").await.unwrap();
        metrics
            .lines()
            .find(|line| line.starts_with("chatroom_leader "))
            .unwrap_or_else(|| panic!("no chatroom_leader in:\n{metrics}"))
            .to_owned()
    }

    /// Waits up to `within` for the process to exit by itself.
    pub async fn wait_for_exit(&mut self, within: Duration) -> binary::Exit {
        let deadline = Instant::now() + within;
        while !self.process.has_exited() {
            assert!(Instant::now() < deadline, "still running after {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.process.wait(Duration::ZERO)
    }

    /// Sends SIGTERM and waits up to `within` for the exit: (status, time taken, the log).
    pub async fn terminate(self, within: Duration) -> (ExitStatus, Duration, String) {
        let mut replica = self;
        let exit = tokio::task::spawn_blocking(move || replica.process.terminate(within))
            .await
            .unwrap();
        (exit.status, exit.took, exit.stderr + &exit.stdout)
    }
}
