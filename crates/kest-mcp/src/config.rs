//! What each tool, resource read and prompt means to Kest: the `[mcp]` table.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::McpError;

/// How a tool call, a resource read or a prompt is guarded: which policies decide it,
/// where its output comes from, and what it does to taints and trust.
///
/// ```
/// use kest_mcp::Rule;
///
/// let fetch = Rule::new().origin("internet").added_taints(["untrusted_content"]);
/// let summarize = Rule::new().removed_taints(["untrusted_content"]).trust_override(70);
/// assert_eq!(fetch.policies_for("fetch_page"), vec!["fetch_page".to_owned()]);
/// assert_eq!(summarize.policies_for("summarize"), vec!["summarize".to_owned()]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct Rule {
    /// The policies that decide the call (default: one named after the tool).
    #[serde(default, deserialize_with = "one_or_many")]
    policy: Vec<String>,
    /// Where the output comes from, an origin of the trust map (default `internal`).
    origin: Option<String>,
    /// Taints the output carries.
    #[serde(default)]
    added_taints: Vec<String>,
    /// Taints the tool clears: a declared sanitizer.
    #[serde(default)]
    removed_taints: Vec<String>,
    /// The trust the output is given, whatever came before (a sanitizer).
    trust_override: Option<u8>,
    /// The data classification (`system` by default).
    classification: Option<String>,
}

impl Rule {
    /// Decided by the policy named after the tool; origin `internal`; no taints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a policy that decides the call (every one must allow).
    pub fn policy(mut self, policy: impl Into<String>) -> Self {
        self.policy.push(policy.into());
        self
    }

    /// Where the output comes from.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Taints the output carries.
    pub fn added_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.added_taints.extend(taints.into_iter().map(Into::into));
        self
    }

    /// Taints the tool clears (a sanitizer). Recorded in the signed entry.
    pub fn removed_taints<T: Into<String>>(mut self, taints: impl IntoIterator<Item = T>) -> Self {
        self.removed_taints
            .extend(taints.into_iter().map(Into::into));
        self
    }

    /// The trust the output is given (0..=100), recorded in the signed entry.
    pub const fn trust_override(mut self, score: u8) -> Self {
        self.trust_override = Some(score);
        self
    }

    /// The data classification.
    pub fn classification(mut self, classification: impl Into<String>) -> Self {
        self.classification = Some(classification.into());
        self
    }

    /// The policies that decide a call named `name` under this rule.
    #[must_use]
    pub fn policies_for(&self, name: &str) -> Vec<String> {
        if self.policy.is_empty() {
            vec![name.to_owned()]
        } else {
            self.policy.clone()
        }
    }

    /// The hook's call for an operation named `operation`, decided by the policies for
    /// `name`.
    pub(crate) fn call(&self, operation: &str, name: &str) -> kest::Call {
        let mut call = kest::Call::new(operation)
            .policies(self.policies_for(name))
            .added_taints(self.added_taints.iter().cloned())
            .removed_taints(self.removed_taints.iter().cloned());
        if let Some(origin) = &self.origin {
            call = call.origin(origin.clone());
        }
        if let Some(score) = self.trust_override {
            call = call.trust_override(score);
        }
        if let Some(classification) = &self.classification {
            call = call.classification(classification.clone());
        }
        call
    }
}

/// What happens to a tool the configuration does not list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unlisted {
    /// Refused before it reaches the server (the default).
    #[default]
    Deny,
    /// Decided by the policy named after the tool, recorded like a listed one with
    /// origin `internal` and no taints.
    Guard,
}

/// What a result's `_meta.baggage` carries back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnPassport {
    /// The whole passport when the request carried lineage (the client continues from
    /// it), the chain tip alone otherwise (the default): a client that sends no lineage
    /// does not read it, and re-sending O(n) bytes on every call would make each call
    /// cost more the longer the session.
    #[default]
    WhenSent,
    /// The whole passport on every result.
    Always,
}

/// The `[mcp]` table: the server's name in policies, the rules per tool, and what
/// unlisted tools get.
///
/// ```
/// use kest_mcp::{McpConfig, Rule, Unlisted};
///
/// let config = McpConfig::from_toml_str(r#"
///     [mcp]
///     server = "mail"
///     unlisted = "deny"
///
///     [mcp.tools.fetch_page]
///     origin = "internet"
///     added_taints = ["untrusted_content"]
///
///     [mcp.tools.send_email]
///     policy = "send_email"
/// "#)?;
/// assert_eq!(config.server(), Some("mail"));
/// assert_eq!(config.unlisted(), Unlisted::Deny);
/// assert!(config.tool("fetch_page").is_some());
/// assert!(config.tool("delete_everything").is_none());
/// # Ok::<(), kest_mcp::McpError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct McpConfig {
    /// The server's name, as policies see it (`tool.server`). Default: the name the
    /// server gives in `initialize`, or the command's.
    server: Option<String>,
    /// What tools not under `[mcp.tools]` get.
    #[serde(default)]
    unlisted: Unlisted,
    /// The rule for each tool by name.
    #[serde(default)]
    tools: BTreeMap<String, Rule>,
    /// `resources/read`: governed by this rule, or as an unlisted tool when absent.
    resources: Option<Rule>,
    /// `prompts/get`: as `resources`.
    prompts: Option<Rule>,
    /// The largest JSON-RPC message the proxy reads, in bytes (default 16 MiB).
    max_message_bytes: Option<usize>,
    /// What results carry back in `_meta.baggage`.
    #[serde(default)]
    return_passport: ReturnPassport,
    /// The proxy's streamable HTTP side: `[mcp.http]`.
    #[serde(default)]
    http: HttpSettings,
}

/// `[mcp.http]`: how the proxy's streamable HTTP side admits callers.
///
/// Every request must carry a bearer token, validated as the HTTP identity layer does
/// (signature against the issuer's JWKS, expiry, issuer, audience); the caller the flow
/// acts for comes from the token alone. Serving callers without a token is a choice
/// that has to be named: `anonymous = true`.
///
/// ```
/// use kest_mcp::McpConfig;
///
/// let config = McpConfig::from_toml_str(r#"
///     [mcp.http]
///     issuer = "https://login.example"
///     audience = "mail-tools"
///     allowed_origins = ["https://agent.example"]
///     max_sessions = 32
/// "#)?;
/// assert_eq!(config.http().issuer(), Some("https://login.example"));
/// assert_eq!(config.http().max_sessions(), 32);
/// assert!(!config.http().anonymous());
/// # Ok::<(), kest_mcp::McpError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[must_use]
pub struct HttpSettings {
    /// The token issuer (`iss`); its JWKS is discovered from
    /// `/.well-known/openid-configuration` unless `jwks_uri` is given.
    issuer: Option<String>,
    /// The audience tokens must name (`aud`).
    audience: Option<String>,
    /// The issuer's JWK Set, when not discovered.
    jwks_uri: Option<String>,
    /// Serve requests without a bearer token (no user in the flow).
    #[serde(default)]
    anonymous: bool,
    /// Browser origins allowed to call (a request with another `Origin` gets 403;
    /// one without `Origin` is not from a browser page and passes).
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Sessions open at once (default 64); more are refused with 503.
    max_sessions: Option<usize>,
    /// How long a session may sit idle (no request in flight, no `GET` stream open)
    /// before a new session may take its place: `session_idle_seconds` (default 900).
    #[serde(default, rename = "session_idle_seconds", deserialize_with = "seconds")]
    session_idle: Option<std::time::Duration>,
}

/// A whole number of seconds, as a duration.
fn seconds<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    Ok(Some(std::time::Duration::from_secs(u64::deserialize(
        deserializer,
    )?)))
}

/// Sessions the HTTP side holds at once unless configured.
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// Seconds a session may sit idle before it can be ended for a new one, unless configured.
pub const DEFAULT_SESSION_IDLE_SECONDS: u64 = 900;

impl HttpSettings {
    /// Tokens validated against `issuer`'s JWKS, for `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: Some(issuer.into()),
            audience: Some(audience.into()),
            ..Self::default()
        }
    }

    /// No token needed: the flow has no user. Named, never a fallback.
    pub fn anonymous_access() -> Self {
        Self {
            anonymous: true,
            ..Self::default()
        }
    }

    /// The JWK Set's URL, instead of discovering it.
    pub fn with_jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Allows a browser origin.
    pub fn with_allowed_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into());
        self
    }

    /// At most `max` sessions at once.
    pub const fn with_max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = Some(max);
        self
    }

    /// A session idle this long (no request in flight, no `GET` stream open) is ended
    /// when a new session needs its place.
    pub const fn with_session_idle(mut self, idle: std::time::Duration) -> Self {
        self.session_idle = Some(idle);
        self
    }

    /// The token issuer.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The audience tokens must name.
    #[must_use]
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// The JWK Set's URL, when configured.
    #[must_use]
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref()
    }

    /// Whether requests without a token are served.
    #[must_use]
    pub const fn anonymous(&self) -> bool {
        self.anonymous
    }

    /// The browser origins allowed to call.
    #[must_use]
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Sessions open at once.
    #[must_use]
    pub fn max_sessions(&self) -> usize {
        self.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS)
    }

    /// How long a session may sit idle before a new session may take its place.
    #[must_use]
    pub fn session_idle(&self) -> std::time::Duration {
        self.session_idle
            .unwrap_or(std::time::Duration::from_secs(DEFAULT_SESSION_IDLE_SECONDS))
    }
}

/// The largest message the proxy reads unless configured.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    mcp: Option<McpConfig>,
}

impl McpConfig {
    /// No tool listed; unlisted tools refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the `[mcp]` table of a Kest TOML file (the rest is the runtime's,
    /// [`kest::Kest::from_toml_file`]). A file without one lists no tool.
    ///
    /// # Errors
    /// [`McpError::Config`] when the file cannot be read or the table has unknown keys or
    /// values of the wrong type.
    pub fn from_toml_file(path: &Path) -> Result<Self, McpError> {
        let text = std::fs::read_to_string(path).map_err(|error| McpError::Config {
            origin: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// As [`McpConfig::from_toml_file`], from the text.
    ///
    /// # Errors
    /// As [`McpConfig::from_toml_file`].
    pub fn from_toml_str(text: &str) -> Result<Self, McpError> {
        Self::parse(text, "TOML text")
    }

    fn parse(text: &str, origin: &str) -> Result<Self, McpError> {
        // The rest of the file is the runtime's, checked there; only `[mcp]` is read here.
        let table: toml::Table = toml::from_str(text).map_err(|error| McpError::Config {
            origin: origin.to_owned(),
            reason: error.to_string(),
        })?;
        let mcp = table
            .get("mcp")
            .cloned()
            .map(|value| {
                let mut only = toml::Table::new();
                only.insert("mcp".to_owned(), value);
                only
            })
            .unwrap_or_default();
        let file: File = mcp
            .try_into()
            .map_err(|error: toml::de::Error| McpError::Config {
                origin: origin.to_owned(),
                reason: format!("[mcp]: {error}"),
            })?;
        Ok(file.mcp.unwrap_or_default())
    }

    /// Names the server in policies (`tool.server`).
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server = Some(name.into());
        self
    }

    /// Lists `name` with its rule.
    pub fn with_tool(mut self, name: impl Into<String>, rule: Rule) -> Self {
        self.tools.insert(name.into(), rule);
        self
    }

    /// What unlisted tools get.
    pub const fn with_unlisted(mut self, unlisted: Unlisted) -> Self {
        self.unlisted = unlisted;
        self
    }

    /// The rule for `resources/read`.
    pub fn with_resources(mut self, rule: Rule) -> Self {
        self.resources = Some(rule);
        self
    }

    /// The rule for `prompts/get`.
    pub fn with_prompts(mut self, rule: Rule) -> Self {
        self.prompts = Some(rule);
        self
    }

    /// The configured server name.
    #[must_use]
    pub fn server(&self) -> Option<&str> {
        self.server.as_deref()
    }

    /// What unlisted tools get.
    #[must_use]
    pub const fn unlisted(&self) -> Unlisted {
        self.unlisted
    }

    /// The rule of a listed tool.
    #[must_use]
    pub fn tool(&self, name: &str) -> Option<&Rule> {
        self.tools.get(name)
    }

    /// Every listed tool's name.
    pub fn tool_names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The rule for `resources/read`, if any.
    #[must_use]
    pub const fn resources(&self) -> Option<&Rule> {
        self.resources.as_ref()
    }

    /// The rule for `prompts/get`, if any.
    #[must_use]
    pub const fn prompts(&self) -> Option<&Rule> {
        self.prompts.as_ref()
    }

    /// What results carry back in `_meta.baggage`.
    pub const fn with_return_passport(mut self, setting: ReturnPassport) -> Self {
        self.return_passport = setting;
        self
    }

    /// What results carry back in `_meta.baggage`.
    #[must_use]
    pub const fn return_passport(&self) -> ReturnPassport {
        self.return_passport
    }

    /// The largest JSON-RPC message the proxy reads.
    #[must_use]
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }

    /// How the proxy's HTTP side admits callers.
    pub fn with_http(mut self, http: HttpSettings) -> Self {
        self.http = http;
        self
    }

    /// `[mcp.http]`.
    pub const fn http(&self) -> &HttpSettings {
        &self.http
    }
}

/// `policy = "name"` or `policy = ["a", "b"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_table_reads_every_setting_and_refuses_unknown_keys() {
        let config = McpConfig::from_toml_str(
            r#"
            service_name = "proxy"
            [identity]
            provider = "local"
            [mcp]
            unlisted = "guard"
            max_message_bytes = 1024
            return_passport = "always"
            [mcp.tools.summarize]
            policy = ["summarize", "sanitizers"]
            removed_taints = ["untrusted_content"]
            trust_override = 70
            classification = "internal"
            [mcp.resources]
            origin = "verified_rag"
            "#,
        )
        .unwrap();
        assert_eq!(config.unlisted(), Unlisted::Guard);
        assert_eq!(config.max_message_bytes(), 1024);
        assert_eq!(config.return_passport(), ReturnPassport::Always);
        let rule = config.tool("summarize").unwrap();
        assert_eq!(rule.policies_for("summarize"), ["summarize", "sanitizers"]);
        assert_eq!(rule.trust_override, Some(70));
        assert_eq!(
            config.resources().unwrap().origin.as_deref(),
            Some("verified_rag")
        );
        assert!(config.prompts().is_none());

        let typo = McpConfig::from_toml_str("[mcp.tools.x]\norgin = \"internet\"").unwrap_err();
        assert!(typo.to_string().contains("orgin"), "{typo}");
        let bad_mode = McpConfig::from_toml_str("[mcp]\nunlisted = \"allow\"").unwrap_err();
        assert!(bad_mode.to_string().contains("allow"), "{bad_mode}");
        let too_high = McpConfig::from_toml_str("[mcp.tools.x]\ntrust_override = 300");
        assert!(too_high.is_err());
        assert_eq!(McpConfig::from_toml_str("").unwrap(), McpConfig::new());
        let http = McpConfig::from_toml_str("[mcp.http]\nanonymus = true").unwrap_err();
        assert!(http.to_string().contains("anonymus"), "{http}");
        let idle = McpConfig::from_toml_str("[mcp.http]\nsession_idle_seconds = 60").unwrap();
        assert_eq!(
            idle.http().session_idle(),
            std::time::Duration::from_secs(60)
        );
        let defaults = McpConfig::new();
        assert_eq!(defaults.http().max_sessions(), DEFAULT_MAX_SESSIONS);
        assert_eq!(
            defaults.http().session_idle(),
            std::time::Duration::from_secs(DEFAULT_SESSION_IDLE_SECONDS)
        );
        assert!(!defaults.http().anonymous());
    }
}
