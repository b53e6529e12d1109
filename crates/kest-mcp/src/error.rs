//! Errors of the MCP boundary, and the JSON-RPC errors a refusal becomes.

use serde_json::{Value, json};
use thiserror::Error;

/// The JSON-RPC error code of a call Kest refused before it ran (policy, lineage,
/// unlisted tool). In the range JSON-RPC leaves to implementations.
pub const REFUSED: i64 = -32_001;
/// The JSON-RPC error code of a call that ran but whose lineage entry could not be
/// recorded: its result is withheld.
pub const NOT_RECORDED: i64 = -32_002;
/// JSON-RPC: the message is not JSON.
pub const PARSE_ERROR: i64 = -32_700;
/// JSON-RPC: the message is not a valid request.
pub const INVALID_REQUEST: i64 = -32_600;

/// Why the MCP boundary refused a call, could not record one, or could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum McpError {
    /// The hook refused the call before it ran, or could not record it after: the cause
    /// (policy denial, refused lineage, no identity, ...) is the source.
    #[error("{method} `{target}`: {source}")]
    Hook {
        /// `tools/call`, `resources/read` or `prompts/get`.
        method: &'static str,
        /// The tool, URI or prompt (escaped).
        target: String,
        /// What the hook said.
        #[source]
        source: Box<kest::KestError>,
    },
    /// A tool the configuration does not list, with unlisted tools denied.
    #[error("{method} `{target}` is not listed in [mcp.tools] and unlisted tools are denied")]
    Unlisted {
        /// `tools/call`, `resources/read` or `prompts/get`.
        method: &'static str,
        /// The tool, URI or prompt (escaped).
        target: String,
    },
    /// `_meta.baggage` cannot be read: not a string, not W3C baggage, too large.
    #[error("`_meta.baggage` of {method} `{target}` cannot be read: {reason}")]
    Meta {
        /// The request's method.
        method: &'static str,
        /// The tool, URI or prompt (escaped).
        target: String,
        /// What is wrong (escaped).
        reason: String,
    },
    /// The inbound passport verifies, but neither continues the session's lineage nor is
    /// part of it: taking it would forget what the session has done (its taints).
    #[error(
        "the passport in `_meta.baggage` of {method} `{target}` does not continue this session's lineage (tip {session_tip}); a client cannot roll the session back"
    )]
    Diverged {
        /// The request's method.
        method: &'static str,
        /// The tool, URI or prompt (escaped).
        target: String,
        /// The session's chain tip.
        session_tip: String,
    },
    /// The returned lineage does not extend the one sent (client side).
    #[error("the server returned a passport that does not extend the one sent (tip {sent_tip})")]
    NotExtended {
        /// The tip the client sent.
        sent_tip: String,
    },
    /// The lineage the server returned could not be read or does not verify (client
    /// side).
    #[error("the server's lineage is refused: {0}")]
    Returned(#[source] Box<kest::KestError>),
    /// The `[mcp]` configuration cannot be used.
    #[error("{origin}: {reason}")]
    Config {
        /// The file, or `TOML text`.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A rule cannot be made into a protected call (an unknown origin, an override above
    /// 100, an empty policy list).
    #[error("[mcp] rule for `{name}`: {source}")]
    Rule {
        /// The tool, or `resources`/`prompts`.
        name: String,
        /// What the runtime said.
        #[source]
        source: Box<kest::KestError>,
    },
    /// The server's result cannot carry the lineage back.
    #[error("the server's result for {method} `{target}` has a `_meta` that is not an object")]
    ResultMeta {
        /// The request's method.
        method: &'static str,
        /// The tool, URI or prompt (escaped).
        target: String,
    },
    /// The proxy's peer or child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The RPC over rmcp failed (client side).
    #[error("MCP request failed: {0}")]
    Service(#[source] Box<rmcp::ServiceError>),
}

impl McpError {
    /// Whether the call was refused before it ran (it did not run).
    #[must_use]
    pub fn is_refused(&self) -> bool {
        match self {
            Self::Hook { source, .. } => !matches!(**source, kest::KestError::Record(_)),
            Self::Unlisted { .. } | Self::Meta { .. } | Self::Diverged { .. } => true,
            _ => false,
        }
    }

    /// Logs a refusal the hook has not logged already (it logs its own denials and
    /// failures).
    pub(crate) fn log(&self, kind: crate::guard::Kind) {
        if !matches!(self, Self::Hook { .. }) {
            tracing::warn!(error = %self, "kest-mcp: {} refused", kind.method());
        }
    }

    /// The JSON-RPC error this becomes: code, one escaped line naming the policy and the
    /// cause, and `data.kest` with the same in fields.
    #[must_use]
    pub fn to_rpc_error(&self) -> RpcError {
        let code = if self.is_refused() {
            REFUSED
        } else {
            NOT_RECORDED
        };
        let policy = match self {
            Self::Hook { source, .. } => match source.as_ref() {
                kest::KestError::Unauthorized(error) => Some(error.policy().to_owned()),
                _ => None,
            },
            _ => None,
        };
        let cause = match self {
            Self::Hook { source, .. } => hook_cause(source),
            Self::Unlisted { .. } => "unlisted",
            Self::Meta { .. } => "meta",
            Self::Diverged { .. } => "diverged",
            _ => "internal",
        };
        let message =
            kest::canon::escape_untrusted(&format!("kest: {}", error_chain(self)), MESSAGE_CHARS);
        RpcError {
            code,
            data: json!({"kest": {"refused": self.is_refused(), "cause": cause, "policy": policy}}),
            message,
        }
    }
}

/// The longest error message, in characters; longer ones are cut with `…`.
const MESSAGE_CHARS: usize = 1000;

/// A short name for what stopped the hook.
fn hook_cause(error: &kest::KestError) -> &'static str {
    match error {
        kest::KestError::Unauthorized(kest::policy::AuthorizationError::Denied { .. }) => "denied",
        kest::KestError::Unauthorized(_) => "policy_error",
        kest::KestError::Lineage(_) => "lineage",
        kest::KestError::Identity(_) | kest::KestError::SignerUnavailable { .. } => "identity",
        kest::KestError::Record(_) => "not_recorded",
        _ => "configuration",
    }
}

/// `error` and its causes on one line, each said once: a cause whose text the message
/// already holds is not repeated. Not escaped: callers that print it escape it.
///
/// ```
/// let io = std::io::Error::other("disk full");
/// let error = kest_mcp::McpError::Io { what: "writing the passport".into(), source: io };
/// assert_eq!(kest_mcp::error_chain(&error), "writing the passport: disk full");
/// ```
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = cause.source();
    }
    text
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The code ([`REFUSED`], [`NOT_RECORDED`], ...).
    pub code: i64,
    /// One line, escaped: never a control character.
    pub message: String,
    /// Structured detail.
    pub data: Value,
}

impl RpcError {
    /// The `error` member of a JSON-RPC response.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "data": self.data})
    }

    /// A whole JSON-RPC error response to request `id`.
    #[must_use]
    pub fn response(&self, id: &Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": self.to_json()})
    }

    /// As an rmcp error.
    #[must_use]
    pub fn to_rmcp(&self) -> rmcp::ErrorData {
        rmcp::ErrorData::new(
            rmcp::model::ErrorCode(i32::try_from(self.code).unwrap_or(i32::MIN)),
            self.message.clone(),
            Some(self.data.clone()),
        )
    }
}
