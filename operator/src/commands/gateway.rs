//! The local gateway as `local` and `run --provider local` start it: limits checked, both
//! listeners bound, URLs from the flags or the listeners.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use crate::cli::{LimitArgs, ManagementArgs};
use crate::gateway::{Gateway, GatewayConfig, InvalidLimit, ManagementAuth, PublicUrl};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Limits(Vec<InvalidLimit>),
    #[error("{flag} {addr}: {source}")]
    Listen {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

impl GatewayError {
    /// Bad flags: nothing was started, and the same command would fail again.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Limits(_))
    }
}

/// Where and how the gateway is to serve.
pub struct GatewayFlags<'a> {
    pub listen: SocketAddr,
    pub public_url: Option<&'a PublicUrl>,
    pub management_listen: SocketAddr,
    pub management: &'a ManagementArgs,
    pub limits: &'a LimitArgs,
    pub auth: ManagementAuth,
    pub room_index: bool,
}

/// A gateway and the two listeners it is to serve on.
pub struct BoundGateway {
    pub gateway: Gateway,
    pub clients: TcpListener,
    pub management: TcpListener,
}

pub async fn bind_gateway(flags: GatewayFlags<'_>) -> Result<BoundGateway, GatewayError> {
    let limits = flags.limits.limits();
    let problems = limits.problems();
    if !problems.is_empty() {
        return Err(GatewayError::Limits(problems));
    }
    let clients = bind("--listen", flags.listen).await?;
    let management = bind("--management-listen", flags.management_listen).await?;
    let public_url = flags
        .public_url
        .cloned()
        .unwrap_or_else(|| PublicUrl::listening_at(local_addr(&clients, flags.listen)));
    let management_url = flags.management.management_url.clone().unwrap_or_else(|| {
        PublicUrl::listening_at(local_addr(&management, flags.management_listen))
    });
    let gateway = Gateway::new(GatewayConfig {
        public_url,
        management_url,
        limits,
        management_auth: flags.auth,
        room_index: flags.room_index,
    });
    Ok(BoundGateway {
        gateway,
        clients,
        management,
    })
}

/// Connections the kernel may hold for the gateway before it accepts them (the kernel caps it
/// at `net.core.somaxconn`). Tokio's default is std's 128: a burst of clients past it waits for
/// a SYN retransmission, one second, although the gateway would take them at once.
const ACCEPT_BACKLOG: u32 = 4096;

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, GatewayError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(ACCEPT_BACKLOG)
    };
    listen().map_err(|source| GatewayError::Listen { flag, addr, source })
}

/// The address actually bound (port 0 picks one).
fn local_addr(listener: &TcpListener, asked: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(asked)
}
