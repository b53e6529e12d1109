//! What the HTTP engines share: one client with a timeout, bounded responses, and the
//! mapping of transport failures to errors (never to an allow, never retried).

use std::time::Duration;

use serde_json::Value;

use crate::PolicyError;

/// The timeout of a remote engine when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest response body read from a remote engine.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) engine: &'static str,
    pub(crate) base_url: String,
    pub(crate) timeout: Duration,
    client: reqwest::Client,
}

impl Remote {
    pub(crate) fn new(
        engine: &'static str,
        base_url: &str,
        timeout: Duration,
    ) -> Result<Self, PolicyError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(PolicyError::InvalidInput {
                engine,
                what: "URL",
                reason: format!("`{base_url}` is not an http(s) URL"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| PolicyError::InvalidInput {
                engine,
                what: "HTTP client",
                reason: error.to_string(),
            })?;
        Ok(Self {
            engine,
            base_url,
            timeout,
            client,
        })
    }

    /// POSTs `body` as JSON and returns the JSON answer. Any status but 200, a timeout, a
    /// connection failure, an oversized or non-JSON body is an error.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Result<Value, PolicyError> {
        self.send(
            path,
            self.client
                .post(format!("{}{path}", self.base_url))
                .json(body),
        )
        .await
    }

    /// PUTs `body` as JSON, for engines whose policies are managed over the same API.
    #[cfg(feature = "cedar-agent")]
    pub(crate) async fn put_json(&self, path: &str, body: &Value) -> Result<Value, PolicyError> {
        self.send(
            path,
            self.client
                .put(format!("{}{path}", self.base_url))
                .json(body),
        )
        .await
    }

    async fn send(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, PolicyError> {
        let endpoint = format!("{}{path}", self.base_url);
        let mut response = request
            .send()
            .await
            .map_err(|error| self.transport(&endpoint, &error))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport(&endpoint, &error))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(
                    self.garbage(format!("the response exceeds {MAX_RESPONSE_BYTES} bytes"))
                );
            }
            body.extend_from_slice(&chunk);
        }
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(self.garbage(format!(
                "HTTP {status} from {endpoint}: {}",
                text.chars().take(200).collect::<String>()
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|error| self.garbage(format!("the body is not JSON: {error}")))
    }

    fn transport(&self, endpoint: &str, error: &reqwest::Error) -> PolicyError {
        if error.is_timeout() {
            PolicyError::Timeout {
                engine: self.engine,
                endpoint: endpoint.to_owned(),
                after: self.timeout,
            }
        } else {
            PolicyError::Unreachable {
                engine: self.engine,
                endpoint: endpoint.to_owned(),
                reason: error.to_string(),
            }
        }
    }

    pub(crate) fn garbage(&self, reason: String) -> PolicyError {
        PolicyError::MalformedAnswer {
            engine: self.engine,
            reason,
        }
    }
}

/// Policy names that are safe to put in a URL path: letters, digits, `_`, `-`, `.` and
/// `/` between segments.
#[cfg(feature = "opa")]
pub(crate) fn check_policy_name(engine: &'static str, policy: &str) -> Result<(), PolicyError> {
    let valid = !policy.is_empty()
        && policy.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        });
    if valid {
        Ok(())
    } else {
        Err(PolicyError::Evaluation {
            engine,
            policy: policy.chars().take(80).collect(),
            reason: "the policy name must be segments of [A-Za-z0-9_.-] separated by `/`".into(),
        })
    }
}
