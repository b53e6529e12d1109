//! Fetching JSON documents (OIDC discovery, JWK Sets) from other services: https only
//! (plain HTTP to this machine alone), bounded in size and time. HTTPS needs the `tls`
//! feature; without it, an https URL is refused when it is configured, naming the feature.

use std::time::Duration;

use crate::IdentityError;

/// The largest document read, in bytes.
pub(crate) const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
/// How long one request may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// Keys are fetched again for an unknown `kid` or principal at most this often, so input
/// with made-up names cannot make a service hammer the one that publishes them.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Plain HTTP only to this machine: keys fetched in clear text from elsewhere prove
/// nothing.
pub(crate) fn require_secure(url: &str) -> Result<(), IdentityError> {
    let parsed = reqwest::Url::parse(url).map_err(|error| IdentityError::Missing {
        what: format!(
            "`{}` is not a URL: {error}",
            kest_canon::escape_untrusted(url, 200)
        ),
    })?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if cfg!(feature = "tls") => Ok(()),
        "https" => Err(IdentityError::Unavailable {
            provider: "fetching keys over https",
            feature: "tls",
            why: "TLS is left out of this build",
        }),
        "http" if loopback => Ok(()),
        scheme => Err(IdentityError::Missing {
            what: format!("`{url}`: keys must be fetched over https, not {scheme}"),
        }),
    }
}

/// An HTTP client for fetching keys: a timeout, and no redirects (a redirect could move
/// the fetch off https).
pub(crate) fn client(service: &'static str) -> Result<reqwest::Client, IdentityError> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| IdentityError::Service {
            service,
            reason: format!("cannot build an HTTP client: {error}"),
        })
}

/// GETs a JSON document of bounded size.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    service: &'static str,
) -> Result<T, IdentityError> {
    let failed = |reason: String| IdentityError::Service { service, reason };
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| failed(format!("GET {url}: {error}")))?;
    if !response.status().is_success() {
        return Err(failed(format!("GET {url}: HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| failed(format!("GET {url}: {error}")))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_DOCUMENT_BYTES {
            return Err(failed(format!(
                "GET {url}: the response is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map_err(|error| failed(format!("GET {url}: not the expected JSON: {error}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, reason = "tests")]

    use super::require_secure;
    use crate::IdentityError;

    /// Keys come over https (with `tls`), or plain http from this machine; https without
    /// `tls` is refused naming the feature, never tried and never downgraded.
    #[test]
    fn https_needs_tls_and_plain_http_stays_on_this_machine() {
        let https = require_secure("https://peer.example/.well-known/jwks.json");
        if cfg!(feature = "tls") {
            assert!(https.is_ok(), "{https:?}");
        } else {
            assert!(
                matches!(
                    https,
                    Err(IdentityError::Unavailable { feature: "tls", .. })
                ),
                "{https:?}"
            );
        }
        for local in [
            "http://127.0.0.1:1/k",
            "http://localhost/k",
            "http://[::1]:8/k",
        ] {
            assert!(require_secure(local).is_ok(), "{local}");
        }
        for refused in [
            "http://peer.example/k",
            "http://10.0.0.1/k",
            "ftp://127.0.0.1/k",
            "not a url",
        ] {
            assert!(require_secure(refused).is_err(), "{refused}");
        }
    }
}
