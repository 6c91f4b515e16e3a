//! Who may open a heartbeat stream, and the OAuth2 token endpoint that hands out bearer tokens.
//!
//! - **Basic**: the stream's `authorization` metadata must be `Basic base64(username:password)`,
//!   the ClientFailover document's `username` and `password`.
//! - **Bearer**: the adapter first gets an access token with the client-credentials grant
//!   (RFC 6749 §4.4) from `POST /identity/connect/token` on the gRPC port (the document's
//!   `tokenEndpoint`, or that well-known path when it is null), then sends `Bearer <token>`.
//!   A stream lives only as long as its token: when the token expires, the stream ends with
//!   UNAUTHENTICATED, so an adapter must renew before then (it does, at 80% of the lifetime).
//!
//! Both may be required at once; a stream then passes with either. Secrets are compared in
//! time independent of where they differ and never logged; tokens are random 256-bit values.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::time::Instant;

use axum::{
    Json, Router,
    body::Bytes,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use failover_core::config::Secret;
use failover_proto::auth::{basic_header, same_secret};
use serde_json::json;
use tonic::Status;

/// The token endpoint's path: `tokenEndpoint: null` in a document means this path on the
/// failover service's own URL.
pub const TOKEN_PATH: &str = "/identity/connect/token";

/// The one OAuth2 client the simulated identity provider knows.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// `client_id`.
    pub client_id: String,
    /// `client_secret` (shown as `***`).
    pub client_secret: Secret,
    /// How long an issued token is valid.
    pub token_lifetime: Duration,
}

/// What heartbeat streams must carry; the default requires nothing.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Username and password for HTTP basic authentication.
    pub basic: Option<(String, Secret)>,
    /// Bearer tokens issued to this client.
    pub oauth: Option<OAuthClient>,
}

impl AuthConfig {
    /// True when streams need credentials.
    pub fn required(&self) -> bool {
        self.basic.is_some() || self.oauth.is_some()
    }
}

/// Checks credentials and issues tokens.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The expected `authorization` value for basic authentication.
    basic: Option<String>,
    oauth: Option<OAuthClient>,
    /// Issued tokens and when each expires.
    tokens: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the expected header or a token.
        f.debug_struct("Authenticator")
            .field("basic", &self.basic.is_some())
            .field("oauth", &self.oauth)
            .finish_non_exhaustive()
    }
}

/// An answer of the token endpoint.
#[derive(Debug, PartialEq)]
pub enum TokenAnswer {
    /// 200: the token and its lifetime.
    Issued {
        /// The access token.
        access_token: String,
        /// Seconds it is valid.
        expires_in: u64,
    },
    /// 400 or 401 with an RFC 6749 §5.2 error code and a description.
    Refused(StatusCode, &'static str, String),
}

impl Authenticator {
    /// An authenticator for `config`.
    pub fn new(config: &AuthConfig) -> Self {
        Authenticator {
            inner: Arc::new(Inner {
                basic: config
                    .basic
                    .as_ref()
                    .map(|(u, p)| basic_header(u, p.expose())),
                oauth: config.oauth.clone(),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Checks a heartbeat stream's `authorization`. Ok(Some(t)): admitted until `t` (a bearer
    /// token's expiry); Ok(None): admitted for good.
    pub fn check(&self, presented: Option<&str>, now: Instant) -> Result<Option<Instant>, Status> {
        let inner = &self.inner;
        if inner.basic.is_none() && inner.oauth.is_none() {
            return Ok(None);
        }
        let accepted = match (&inner.basic, &inner.oauth) {
            (Some(_), Some(_)) => {
                "basic (username and password) or bearer (clientId and clientSecret)"
            }
            (Some(_), None) => "basic: set username and password in the ClientFailover document",
            _ => "bearer: set clientId and clientSecret in the ClientFailover document",
        };
        let Some(presented) = presented else {
            return Err(Status::unauthenticated(format!(
                "this failover service requires authentication ({accepted})"
            )));
        };
        if let Some(token) = presented.strip_prefix("Bearer ") {
            if inner.oauth.is_none() {
                return Err(Status::unauthenticated(format!(
                    "this failover service takes no bearer tokens ({accepted})"
                )));
            }
            let mut tokens = inner.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            tokens.retain(|_, expiry| *expiry > now);
            return match tokens.iter().find(|(t, _)| same_secret(token, t)) {
                Some((_, expiry)) => Ok(Some(*expiry)),
                None => Err(Status::unauthenticated(
                    "the access token is unknown or expired: get a new one from the token endpoint",
                )),
            };
        }
        match &inner.basic {
            Some(expected) if presented.starts_with("Basic ") => {
                if same_secret(presented, expected) {
                    Ok(None)
                } else {
                    Err(Status::unauthenticated("wrong username or password"))
                }
            }
            _ => Err(Status::unauthenticated(format!(
                "unsupported authorization scheme ({accepted})"
            ))),
        }
    }

    /// The token endpoint's answer to a request with these headers and form body.
    pub fn token_request(&self, headers: &HeaderMap, body: &[u8], now: Instant) -> TokenAnswer {
        let Some(client) = &self.inner.oauth else {
            return TokenAnswer::Refused(
                StatusCode::NOT_FOUND,
                "invalid_request",
                "this failover service issues no tokens (start it with --oauth-client-id)".into(),
            );
        };
        let form = parse_form(body);
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match field("grant_type") {
            Some("client_credentials") => {}
            Some(other) => {
                return TokenAnswer::Refused(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    format!("grant_type {other:?}: only client_credentials is supported"),
                );
            }
            None => {
                return TokenAnswer::Refused(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "missing grant_type (client_credentials), as a form field".into(),
                );
            }
        }
        // Client authentication: HTTP basic (RFC 6749 §2.3.1) or the form's fields.
        let presented_basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.starts_with("Basic "));
        let authenticated = match presented_basic {
            Some(h) => same_secret(
                h,
                &basic_header(&client.client_id, client.client_secret.expose()),
            ),
            None => {
                let id_ok = field("client_id") == Some(client.client_id.as_str());
                id_ok
                    & same_secret(
                        field("client_secret").unwrap_or_default(),
                        client.client_secret.expose(),
                    )
            }
        };
        if !authenticated {
            return TokenAnswer::Refused(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client_id or wrong client_secret".into(),
            );
        }
        let access_token = random_token();
        let expires_in = client.token_lifetime.as_secs().max(1);
        let mut tokens = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tokens.retain(|_, expiry| *expiry > now);
        tokens.insert(access_token.clone(), now + client.token_lifetime);
        TokenAnswer::Issued {
            access_token,
            expires_in,
        }
    }

    /// `POST /identity/connect/token`, to be served with the gRPC services.
    pub fn token_router(&self) -> Router {
        let auth = self.clone();
        Router::new()
            .route(
                TOKEN_PATH,
                post(move |headers: HeaderMap, body: Bytes| async move {
                    auth.token_request(&headers, &body, Instant::now())
                }),
            )
            .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
    }
}

impl IntoResponse for TokenAnswer {
    fn into_response(self) -> Response {
        let no_store = [(header::CACHE_CONTROL, "no-store")];
        match self {
            TokenAnswer::Issued {
                access_token,
                expires_in,
            } => {
                tracing::info!(expires_in, "access token issued");
                (
                    StatusCode::OK,
                    no_store,
                    Json(json!({
                        "access_token": access_token,
                        "token_type": "Bearer",
                        "expires_in": expires_in,
                    })),
                )
                    .into_response()
            }
            TokenAnswer::Refused(status, error, description) => {
                tracing::warn!(error, "token request refused: {description}");
                (
                    status,
                    no_store,
                    Json(json!({ "error": error, "error_description": description })),
                )
                    .into_response()
            }
        }
    }
}

/// 256 random bits, hex.
fn random_token() -> String {
    use std::fmt::Write;
    let bytes: [u8; 32] = rand::random();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte; bad escapes are
/// kept as written).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let name = percent_decode(it.next().unwrap_or_default());
            let value = percent_decode(it.next().unwrap_or_default());
            (name, value)
        })
        .collect()
}

fn percent_decode(s: &[u8]) -> String {
    let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match (b, hex(s.get(i + 1)), hex(s.get(i + 2))) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
                continue;
            }
            (b'+', _, _) => out.push(b' '),
            (b, _, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> Authenticator {
        Authenticator::new(&AuthConfig {
            basic: None,
            oauth: Some(OAuthClient {
                client_id: "adapter".into(),
                client_secret: Secret::new("s3cret+&="),
                token_lifetime: Duration::from_secs(60),
            }),
        })
    }

    fn issue(auth: &Authenticator, body: &str, now: Instant) -> TokenAnswer {
        auth.token_request(&HeaderMap::new(), body.as_bytes(), now)
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form(b"a=b+c&d=%41%2b%3D&e&=x&f=%zz%4"),
            [
                ("a", "b c"),
                ("d", "A+="),
                ("e", ""),
                ("", "x"),
                ("f", "%zz%4")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn a_token_admits_until_it_expires() {
        let auth = oauth();
        let t0 = Instant::now();
        let body = "grant_type=client_credentials&client_id=adapter&client_secret=s3cret%2B%26%3D";
        let TokenAnswer::Issued {
            access_token,
            expires_in,
        } = issue(&auth, body, t0)
        else {
            panic!("refused")
        };
        assert_eq!(expires_in, 60);
        assert_eq!(access_token.len(), 64);
        let header = format!("Bearer {access_token}");
        assert_eq!(
            auth.check(Some(&header), t0).ok(),
            Some(Some(t0 + Duration::from_secs(60)))
        );
        let later = t0 + Duration::from_secs(61);
        assert!(auth.check(Some(&header), later).is_err());
        assert!(auth.check(Some("Bearer nonsense"), t0).is_err());
        assert!(auth.check(None, t0).is_err());
        // Basic is not accepted when only bearer tokens are configured.
        assert!(
            auth.check(Some(&basic_header("adapter", "s3cret+&=")), t0)
                .is_err()
        );
        // The client may authenticate with HTTP basic instead of form fields.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            basic_header("adapter", "s3cret+&=")
                .parse()
                .expect("header"),
        );
        assert!(matches!(
            auth.token_request(&headers, b"grant_type=client_credentials", t0),
            TokenAnswer::Issued { .. }
        ));
    }

    #[test]
    fn bad_token_requests_get_rfc_6749_errors() {
        let auth = oauth();
        let now = Instant::now();
        let code = |body: &str| match issue(&auth, body, now) {
            TokenAnswer::Refused(status, error, _) => (status.as_u16(), error),
            TokenAnswer::Issued { .. } => (200, "issued"),
        };
        assert_eq!(
            code("grant_type=client_credentials&client_id=adapter&client_secret=wrong"),
            (401, "invalid_client")
        );
        assert_eq!(
            code("grant_type=client_credentials&client_id=other&client_secret=s3cret%2B%26%3D"),
            (401, "invalid_client")
        );
        assert_eq!(
            code("grant_type=password&client_id=adapter"),
            (400, "unsupported_grant_type")
        );
        assert_eq!(code("client_id=adapter"), (400, "invalid_request"));
        let none = Authenticator::new(&AuthConfig::default());
        assert!(matches!(
            none.token_request(&HeaderMap::new(), b"grant_type=client_credentials", now),
            TokenAnswer::Refused(StatusCode::NOT_FOUND, ..)
        ));
        assert_eq!(none.check(None, now).ok(), Some(None));
    }

    #[test]
    fn basic_and_bearer_together() {
        let mut config = AuthConfig {
            basic: Some(("user".into(), Secret::new("pw"))),
            ..AuthConfig::default()
        };
        let basic_only = Authenticator::new(&config);
        let now = Instant::now();
        assert_eq!(
            basic_only
                .check(Some(&basic_header("user", "pw")), now)
                .ok(),
            Some(None)
        );
        let wrong = basic_only.check(Some(&basic_header("user", "no")), now);
        assert!(wrong.is_err_and(|s| s.message() == "wrong username or password"));
        config.oauth = oauth().inner.oauth.clone();
        let both = Authenticator::new(&config);
        assert_eq!(
            both.check(Some(&basic_header("user", "pw")), now).ok(),
            Some(None)
        );
        assert!(both.check(Some("Bearer x"), now).is_err());
    }
}
