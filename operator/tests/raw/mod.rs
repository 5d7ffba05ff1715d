//! A WebSocket client that writes and reads raw frames, so that tests can send what no
//! well-behaved library sends (bad UTF-8, reserved bits and opcodes, unmasked frames, huge
//! pings) and see each frame the gateway sends (fragments included); and the process
//! measurements the attack tests bound.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const OP_CONTINUE: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

pub struct RawClient {
    pub stream: TcpStream,
    buffered: Vec<u8>,
}

/// A frame as a client sends it: `first` is FIN, RSV and opcode; masked unless told not to.
pub fn encode(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut frame = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

impl RawClient {
    /// Opens `path` on `addr`; panics unless the gateway answers 101.
    pub async fn connect(addr: SocketAddr, path: &str) -> Self {
        Self::connect_with_receive_buffer(addr, path, None).await
    }

    /// The same with a small, fixed receive buffer (no autotuning): a client on a slow link.
    /// A client on a TCP connection the test made itself, before its handshake.
    pub fn from_stream(stream: TcpStream) -> Self {
        Self {
            stream,
            buffered: Vec::new(),
        }
    }

    pub async fn connect_with_receive_buffer(
        addr: SocketAddr,
        path: &str,
        receive_buffer: Option<u32>,
    ) -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes).unwrap();
        }
        let stream = socket.connect(addr).await.unwrap();
        let mut client = Self {
            stream,
            buffered: Vec::new(),
        };
        let (status, _) = client.handshake(addr, path).await;
        assert_eq!(status, 101, "handshake to {path}");
        client
    }

    /// Sends the opening handshake; returns the status and the head of the answer.
    pub async fn handshake(&mut self, addr: SocketAddr, path: &str) -> (u16, String) {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut byte))
                .await
                .expect("an answer to the handshake")
                .unwrap();
            assert_eq!(read, 1, "the gateway closed during the handshake");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head)
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// A masked text frame with FIN.
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        self.send(&encode(0x80 | OP_TEXT, text.as_bytes(), true))
            .await
    }

    /// The next frame, or `None` when the connection ends first or nothing comes in `within`.
    pub async fn read_frame(&mut self, within: Duration) -> Option<RawFrame> {
        tokio::time::timeout(within, self.next_frame())
            .await
            .ok()
            .flatten()
    }

    async fn fill(&mut self, wanted: usize) -> Option<()> {
        while self.buffered.len() < wanted {
            let mut chunk = [0u8; 16 * 1024];
            let read = self.stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            self.buffered.extend_from_slice(&chunk[..read]);
        }
        Some(())
    }

    async fn next_frame(&mut self) -> Option<RawFrame> {
        self.fill(2).await?;
        let (first, second) = (self.buffered[0], self.buffered[1]);
        let (length, at) = match second & 0x7f {
            126 => {
                self.fill(4).await?;
                (
                    usize::from(u16::from_be_bytes([self.buffered[2], self.buffered[3]])),
                    4,
                )
            }
            127 => {
                self.fill(10).await?;
                let bytes: [u8; 8] = self.buffered[2..10].try_into().unwrap();
                (u64::from_be_bytes(bytes) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        assert_eq!(second & 0x80, 0, "frames from a server are never masked");
        self.fill(at + length).await?;
        let payload = self.buffered[at..at + length].to_vec();
        self.buffered.drain(..at + length);
        Some(RawFrame {
            fin: first & 0x80 != 0,
            opcode: first & 0x0f,
            payload,
        })
    }

    /// Reads until a close frame and returns its code; `None` when the stream ends (or goes
    /// quiet for `within`) without one. Counts the data frames read on the way.
    pub async fn until_close(&mut self, within: Duration) -> (Option<u16>, usize) {
        let mut data = 0;
        while let Some(frame) = self.read_frame(within).await {
            if frame.opcode == OP_CLOSE {
                return (frame.close_code(), data);
            }
            data += usize::from(frame.opcode != OP_PONG);
        }
        (None, data)
    }
}

/// The process's resident set now and at its peak, in KiB (`VmRSS`, `VmHWM`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}
