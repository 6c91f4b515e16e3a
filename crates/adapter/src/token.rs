//! Bearer tokens for the heartbeat stream: the OAuth2 client-credentials grant (RFC 6749
//! §4.4) with the document's `clientId` and `clientSecret`, against its `tokenEndpoint`, or,
//! when that is null, the well-known `/identity/connect/token` on the failover service's URL.
//!
//! A token is renewed at 80% of its lifetime: the session then reconnects with the new one
//! (the same incarnation, so the same member and role), well before the service would end the
//! stream at expiry. The client secret goes only into the token request's form body.

use std::time::Duration;

use tokio::time::Instant;

use failover_core::ClientFailoverConfig;
use serde::Deserialize;

/// The well-known token path on the failover service's URL.
pub const WELL_KNOWN_PATH: &str = "/identity/connect/token";

/// An access token ready to send.
#[derive(Clone)]
pub struct AccessToken {
    /// `Bearer <token>`, the `authorization` value.
    pub header: String,
    /// When to get a new one.
    pub renew_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("renew_at", &self.renew_at)
            .finish_non_exhaustive()
    }
}

/// Where the document's tokens come from.
pub fn token_url(cfg: &ClientFailoverConfig) -> String {
    match &cfg.token_endpoint {
        Some(url) => url.clone(),
        None => format!("{}{WELL_KNOWN_PATH}", cfg.endpoint.trim_end_matches('/')),
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Gets a token for `client_id`/`client_secret` from `url`. The error says what went wrong
/// in words fit for FailoverState (never the secret).
pub async fn fetch(
    http: &reqwest::Client,
    url: &str,
    client_id: &str,
    client_secret: &str,
) -> Result<AccessToken, String> {
    let asked = Instant::now();
    let response = http
        .post(url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the token endpoint {url}: {}",
                failover_proto::tls::explain(&e)
            )
        })?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("the token endpoint {url} broke off its answer: {e}"))?;
    if !status.is_success() {
        return Err(match serde_json::from_slice::<TokenError>(&body) {
            Ok(e) if e.error == "invalid_client" => format!(
                "the token endpoint {url} refused our client credentials (invalid_client: {})",
                e.error_description.unwrap_or_default()
            ),
            Ok(e) => format!(
                "the token endpoint {url} answered {status}: {} {}",
                e.error,
                e.error_description.unwrap_or_default()
            ),
            Err(_) => format!("the token endpoint {url} answered {status}"),
        });
    }
    let token: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| format!("the token endpoint {url} answered no token: {e}"))?;
    if let Some(t) = &token.token_type
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(format!(
            "the token endpoint {url} issued a {t:?} token; only Bearer is supported"
        ));
    }
    // A token without a lifetime is renewed hourly.
    let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600).clamp(1, 365 * 86_400));
    Ok(AccessToken {
        header: format!("Bearer {}", token.access_token),
        renew_at: asked + lifetime.mul_f64(0.8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_token_endpoint_means_the_well_known_path() {
        let mut cfg = ClientFailoverConfig::from_json(
            r#"{"failoverGroupId":"g","failoverTimeout":"00:00:02","mode":"Hot",
                "endpoint":"http://127.0.0.1:50053/","clientId":"c","clientSecret":"s"}"#,
        )
        .expect("valid");
        assert_eq!(
            token_url(&cfg),
            "http://127.0.0.1:50053/identity/connect/token"
        );
        cfg.token_endpoint = Some("http://idp.example/token".into());
        assert_eq!(token_url(&cfg), "http://idp.example/token");
    }
}
