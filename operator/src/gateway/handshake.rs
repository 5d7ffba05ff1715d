//! The WebSocket opening handshake (RFC 6455 4.2) on the gateway's own HTTP server, so that
//! the connection after it is a tokio-tungstenite stream configured with the gateway's limits
//! in bytes (frame, message, write buffer).

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::{Role, WebSocketConfig};

pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// A request that asks to become a WebSocket.
pub struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum NotAHandshake {
    /// No `Upgrade` header: an ordinary page request.
    NoUpgrade,
    /// It asks for an upgrade but breaks the handshake's rules.
    Invalid(&'static str),
}

impl IntoResponse for NotAHandshake {
    fn into_response(self) -> Response {
        let reason = match self {
            Self::NoUpgrade => "Expected a WebSocket upgrade",
            Self::Invalid(reason) => reason,
        };
        (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Handshake {
    type Rejection = NotAHandshake;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        if !headers.contains_key(header::UPGRADE) {
            return Err(NotAHandshake::NoUpgrade);
        }
        if parts.method != Method::GET {
            return Err(NotAHandshake::Invalid("A WebSocket handshake is a GET"));
        }
        if !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
        {
            return Err(NotAHandshake::Invalid(
                "Expected Connection: Upgrade and Upgrade: websocket",
            ));
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            return Err(NotAHandshake::Invalid("Expected Sec-WebSocket-Version: 13"));
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .cloned()
            .ok_or(NotAHandshake::Invalid("Missing Sec-WebSocket-Key"))?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotAHandshake::Invalid("This connection cannot be upgraded"))?;
        Ok(Self { key, on_upgrade })
    }
}

impl Handshake {
    /// Answers 101 and, once the client has it, runs `serve` with the socket, or with the
    /// error when the client left before the upgrade completed. The socket comes boxed: it is
    /// hundreds of bytes, and each future it passes through would otherwise keep room for it
    /// for the connection's whole life (measured: 4.5 KB per idle connection, unboxed).
    pub fn accept<F>(
        self,
        config: WebSocketConfig,
        serve: impl FnOnce(Result<Box<Socket>, hyper::Error>) -> F + Send + 'static,
    ) -> Response
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let accept = derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let socket = match on_upgrade.await {
                Ok(upgraded) => Ok(Box::new(
                    WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await,
                )),
                Err(error) => Err(error),
            };
            serve(socket).await;
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}

/// Whether a comma-separated header holds `token`, in any case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .as_bytes()
            .split(|b| *b == b',')
            .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_may_list_several_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        // RFC 6455 1.3.
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
