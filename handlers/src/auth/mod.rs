//! Who may join a room: clients present a JWT at `$connect`, and the room's authorizer checks
//! it before the connection exists, on AWS (a Lambda REQUEST authorizer) and on the local
//! gateway alike.
//!
//! This module is the part both sides read without verifying anything: the settings, where
//! the token comes from, and what an allowed connection carries into its events. Verifying
//! (the `auth` feature) lives in [`Verifier`].

use std::collections::HashMap;

#[cfg(feature = "auth")]
mod https;
#[cfg(feature = "auth")]
mod jwks;
#[cfg(feature = "auth")]
mod verifier;

#[cfg(feature = "auth")]
pub use https::{HttpsKeySource, NoHttpsClient};
#[cfg(feature = "auth")]
pub use jwks::{FetchError, JwksCache, KeySource};
#[cfg(feature = "auth")]
pub use verifier::{Denied, Verifier};

use crate::contract::{authorizer_context, env};

/// A room's JWT settings (`spec.auth.jwt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSettings {
    /// The token's `iss` must equal this.
    pub issuer: String,
    /// The token's `aud` must hold one of these.
    pub audiences: Vec<String>,
    /// Where the issuer publishes its signing keys.
    pub jwks_uri: String,
    pub identity_source: IdentitySource,
    /// The claim that names the sender; unset, `name`, and `sub` when the token has no `name`.
    pub name_claim: Option<String>,
}

/// Where in the `$connect` request the token is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// `querystring.token`: `wss://…?token=…`, what browsers can send.
    Query(String),
    /// `header.Authorization`: the header's value, without a leading `Bearer `.
    Header(String),
}

impl Default for IdentitySource {
    fn default() -> Self {
        Self::Query("token".to_owned())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "identity source {0:?} must be querystring.<name> or header.<name>, with a name of letters, digits, '-' or '_'"
)]
pub struct InvalidIdentitySource(pub String);

impl IdentitySource {
    /// `querystring.token` or `header.Authorization`, as `spec.auth.jwt.identitySource` says.
    pub fn parse(text: &str) -> Result<Self, InvalidIdentitySource> {
        let invalid = || InvalidIdentitySource(text.to_owned());
        let (place, name) = text.split_once('.').ok_or_else(invalid)?;
        let name_ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match place {
            _ if !name_ok => Err(invalid()),
            "querystring" => Ok(Self::Query(name.to_owned())),
            "header" => Ok(Self::Header(name.to_owned())),
            _ => Err(invalid()),
        }
    }

    /// The form `spec.auth.jwt.identitySource` and the function's environment use.
    pub fn spec_text(&self) -> String {
        match self {
            Self::Query(name) => format!("querystring.{name}"),
            Self::Header(name) => format!("header.{name}"),
        }
    }

    /// The authorizer's `IdentitySource` as API Gateway writes it.
    pub fn api_gateway_expression(&self) -> String {
        format!("route.request.{}", self.spec_text())
    }

    /// The token in a request with these query parameters and headers, if it carries one.
    /// Header names match case-insensitively, as HTTP's do.
    pub fn token<'a>(
        &self,
        query: impl Fn(&str) -> Option<&'a str>,
        headers: &'a http::HeaderMap,
    ) -> Option<&'a str> {
        let value = match self {
            Self::Query(name) => query(name),
            Self::Header(name) => headers.get(name.as_str()).and_then(|v| v.to_str().ok()),
        }?;
        let token = match self {
            Self::Header(_) => strip_bearer(value),
            Self::Query(_) => value,
        }
        .trim();
        (!token.is_empty()).then_some(token)
    }
}

fn strip_bearer(value: &str) -> &str {
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest,
        _ => value,
    }
}

/// Who an allowed connection is: what the authorizer's context hands every event of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The display name, from the name claim (normalised like `?name=`).
    pub name: String,
    /// The token's subject.
    pub sub: String,
}

impl Identity {
    /// The authorizer context API Gateway passes on as `requestContext.authorizer`.
    pub fn context(&self) -> HashMap<String, serde_json::Value> {
        HashMap::from([
            (
                authorizer_context::NAME.to_owned(),
                self.name.clone().into(),
            ),
            (authorizer_context::SUB.to_owned(), self.sub.clone().into()),
        ])
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtSettingsError {
    #[error("{name} must be set when {} is", env::AUTH_ISSUER)]
    Missing { name: &'static str },
    #[error("{}: {source}", env::AUTH_IDENTITY_SOURCE)]
    IdentitySource {
        #[from]
        source: InvalidIdentitySource,
    },
}

impl JwtSettings {
    /// The settings in the function's environment, or `None` when the room has no auth
    /// (`AUTH_ISSUER` unset).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, JwtSettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let Some(issuer) = get(env::AUTH_ISSUER) else {
            return Ok(None);
        };
        let required = |name: &'static str| get(name).ok_or(JwtSettingsError::Missing { name });
        let audiences = env::list_items(&required(env::AUTH_AUDIENCES)?);
        if audiences.is_empty() {
            return Err(JwtSettingsError::Missing {
                name: env::AUTH_AUDIENCES,
            });
        }
        let identity_source = match get(env::AUTH_IDENTITY_SOURCE) {
            Some(text) => IdentitySource::parse(&text)?,
            None => IdentitySource::default(),
        };
        Ok(Some(Self {
            issuer,
            audiences,
            jwks_uri: required(env::AUTH_JWKS_URI)?,
            identity_source,
            name_claim: get(env::AUTH_NAME_CLAIM),
        }))
    }

    /// The environment the operator gives the function for these settings.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (env::AUTH_ISSUER, self.issuer.clone()),
            (env::AUTH_AUDIENCES, self.audiences.join(",")),
            (env::AUTH_JWKS_URI, self.jwks_uri.clone()),
            (env::AUTH_IDENTITY_SOURCE, self.identity_source.spec_text()),
        ];
        if let Some(claim) = &self.name_claim {
            vars.push((env::AUTH_NAME_CLAIM, claim.clone()));
        }
        vars
    }
}

/// Whether a room may call `uri` (its issuer's keys, its backend): HTTPS, or plain HTTP to a
/// loopback address (a test or a sidecar on the same host), never plain HTTP across a network.
pub fn https_or_loopback_problem(uri: &str) -> Option<String> {
    let Ok(parsed) = uri.parse::<http::Uri>() else {
        return Some(format!("{uri:?} is not a URL"));
    };
    let host = parsed.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme_str() {
        _ if host.is_empty() => Some(format!("{uri:?} has no host")),
        Some("https") => None,
        Some("http") if loopback => None,
        Some("http") => Some(format!(
            "{uri:?} must be https (plain http only to a loopback address)"
        )),
        _ => Some(format!("{uri:?} must be an https URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sources_are_a_query_parameter_or_a_header() {
        assert_eq!(
            IdentitySource::parse("querystring.token"),
            Ok(IdentitySource::Query("token".into()))
        );
        let header = IdentitySource::parse("header.Authorization").unwrap();
        assert_eq!(
            header.api_gateway_expression(),
            "route.request.header.Authorization"
        );
        for bad in [
            "token",
            "body.token",
            "header.",
            "querystring.a b",
            "cookie.x",
        ] {
            assert!(IdentitySource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_is_taken_from_its_place_and_a_header_loses_its_bearer() {
        let query = |name: &str| (name == "token").then_some("q.t.x");
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer h.t.x".parse().unwrap());
        let by_query = IdentitySource::default();
        let by_header = IdentitySource::Header("Authorization".into());
        assert_eq!(by_query.token(query, &headers), Some("q.t.x"));
        assert_eq!(by_header.token(query, &headers), Some("h.t.x"));
        let blank = |_: &str| Some(" ");
        assert_eq!(by_query.token(blank, &http::HeaderMap::new()), None);
        assert_eq!(by_header.token(query, &http::HeaderMap::new()), None);
    }

    #[test]
    fn settings_round_trip_through_the_functions_environment() {
        let settings = JwtSettings {
            issuer: "https://login.example.com/".into(),
            audiences: vec!["chat".into(), "web".into()],
            jwks_uri: "https://login.example.com/jwks.json".into(),
            identity_source: IdentitySource::Header("Authorization".into()),
            name_claim: Some("preferred_username".into()),
        };
        let vars: HashMap<&str, String> = settings.to_env().into_iter().collect();
        let read = JwtSettings::from_lookup(|name| vars.get(name).cloned());
        assert_eq!(read, Ok(Some(settings)));
        assert_eq!(JwtSettings::from_lookup(|_| None), Ok(None));
        let partial = JwtSettings::from_lookup(|name| {
            (name == env::AUTH_ISSUER).then(|| "https://i/".to_owned())
        });
        assert_eq!(
            partial,
            Err(JwtSettingsError::Missing {
                name: env::AUTH_AUDIENCES
            })
        );
    }

    #[test]
    fn keys_come_over_https_or_from_loopback() {
        assert_eq!(
            https_or_loopback_problem("https://login.example.com/jwks"),
            None
        );
        assert_eq!(
            https_or_loopback_problem("http://127.0.0.1:8080/jwks"),
            None
        );
        assert_eq!(https_or_loopback_problem("http://[::1]:8080/jwks"), None);
        assert_eq!(https_or_loopback_problem("http://localhost/jwks"), None);
        for bad in ["http://login.example.com/jwks", "ftp://x/", "jwks.json", ""] {
            assert!(https_or_loopback_problem(bad).is_some(), "{bad}");
        }
    }
}
