//! Where clients reach the gateway: `--public-url`, or the listening address.

use std::fmt;
use std::str::FromStr;

/// An absolute `ws://`, `wss://`, `http://` or `https://` URL without query or fragment. The
/// scheme says only whether TLS is in front: room URLs get `ws(s)://`, `@connections` URLs
/// `http(s)://`, whichever of the two was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    secure: bool,
    /// `host[:port][/path]`, without a trailing slash.
    rest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a ws://, wss://, http:// or https:// URL with a host (and no query or fragment)"
)]
pub struct InvalidPublicUrl(pub String);

impl PublicUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidPublicUrl> {
        let invalid = || InvalidPublicUrl(text.to_owned());
        let (scheme, rest) = text.split_once("://").ok_or_else(invalid)?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" | "http" => false,
            "wss" | "https" => true,
            _ => return Err(invalid()),
        };
        let rest = rest.trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or_default();
        let clean = |c: char| !c.is_whitespace() && !c.is_control() && !"?#@\\".contains(c);
        if host.is_empty() || !rest.chars().all(clean) {
            return Err(invalid());
        }
        Ok(Self {
            secure,
            rest: rest.to_owned(),
        })
    }

    /// `http://{addr}`: where the gateway listens, when nothing stands in front of it.
    pub fn listening_at(addr: std::net::SocketAddr) -> Self {
        Self {
            secure: false,
            rest: addr.to_string(),
        }
    }

    /// `ws(s)://host/path`, where room URLs hang off.
    pub fn websocket_base(&self) -> String {
        format!("{}://{}", if self.secure { "wss" } else { "ws" }, self.rest)
    }

    /// `http(s)://host/path`, where pages and `@connections` hang off.
    pub fn http_base(&self) -> String {
        format!(
            "{}://{}",
            if self.secure { "https" } else { "http" },
            self.rest
        )
    }

    /// `host[:port]`, as events carry it in `requestContext.domainName`.
    pub fn authority(&self) -> &str {
        self.rest.split('/').next().unwrap_or_default()
    }
}

impl FromStr for PublicUrl {
    type Err = InvalidPublicUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.http_base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_scheme_family_gives_both_kinds_of_url() {
        for given in [
            "wss://chat.example.com/rooms/",
            "https://chat.example.com/rooms",
        ] {
            let url = PublicUrl::parse(given).unwrap();
            assert_eq!(url.websocket_base(), "wss://chat.example.com/rooms");
            assert_eq!(url.http_base(), "https://chat.example.com/rooms");
            assert_eq!(url.authority(), "chat.example.com");
        }
        let plain = PublicUrl::parse("ws://127.0.0.1:8081").unwrap();
        assert_eq!(plain.http_base(), "http://127.0.0.1:8081");
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "chat.example.com",
            "ftp://chat.example.com",
            "https://",
            "https://chat.example.com/?a=1",
            "https://user@chat.example.com",
            "https://chat example.com",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
