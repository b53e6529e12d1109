//! The boundary itself, whatever the transport: a guard per server, a session per MCP
//! connection, and the hook around each call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use kest::passport::Passport;
use kest::propagation::{Baggage, BaggageLimits, Boundary, PassportCodec, PropagationError};
use kest::{Caller, Flow, Kest, KestError, Protected, Values};
use serde_json::{Map, Value, json};

use crate::config::{McpConfig, ReturnPassport, Rule, Unlisted};
use crate::error::McpError;

/// What a guarded request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `tools/call`: operation = the tool's name; policies see `tool`.
    Tool,
    /// `resources/read`: operation `resources/read`, `object.id` = the URI; policies see
    /// `resource`.
    Resource,
    /// `prompts/get`: operation `prompts/get`, `object.id` = the prompt; policies see
    /// `prompt`.
    Prompt,
}

impl Kind {
    /// The JSON-RPC method.
    #[must_use]
    pub const fn method(self) -> &'static str {
        match self {
            Self::Tool => "tools/call",
            Self::Resource => "resources/read",
            Self::Prompt => "prompts/get",
        }
    }

    /// The kind of a JSON-RPC method, if it is guarded.
    #[must_use]
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(Self::Tool),
            "resources/read" => Some(Self::Resource),
            "prompts/get" => Some(Self::Prompt),
            _ => None,
        }
    }

    /// The evaluation context's key for the request.
    const fn context_key(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

/// One guarded request, as read off the wire.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What it is.
    pub kind: Kind,
    /// The tool's name, the resource's URI or the prompt's name.
    pub name: &'a str,
    /// The arguments (tools and prompts), if any.
    pub arguments: Option<&'a Map<String, Value>>,
    /// `_meta.baggage`, if sent.
    pub baggage: Option<&'a str>,
}

/// A call that ran and was recorded.
#[derive(Debug, Clone)]
pub struct Recorded<T> {
    /// What the server returned.
    pub output: T,
    /// The result's `_meta.baggage`: the session's passport after the entry (every tier
    /// as HTTP has) when the request carried lineage or `return_passport = "always"`,
    /// else its chain tip alone.
    pub baggage: String,
    /// The session's passport after the entry.
    pub passport: Passport,
}

/// Why a guarded call produced no recorded result.
#[derive(Debug)]
pub enum CallError<E> {
    /// Kest refused it before it ran, or could not record it after it ran.
    Kest(McpError),
    /// The server answered with an error: nothing was produced, so nothing is recorded.
    Server(E),
}

/// The MCP boundary of one server: the runtime, the rules, and the protected calls built
/// from them once. Cheap to clone; every session of the server shares it.
///
/// Building it checks every rule: an unknown origin, an override above 100 or a policy
/// list the runtime refuses is an error here, not at the first call.
///
/// ```
/// use kest::identity::LocalEd25519;
/// use kest::policy::CedarEngine;
/// use kest::Kest;
/// use kest_mcp::{McpConfig, McpGuard, Rule};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kest = Kest::builder()
///     .identity(LocalEd25519::new("spiffe://example.org/tools")?)
///     .engine(CedarEngine::builder().policy_source("fetch_page", "permit(principal, action, resource);").build()?)
///     .build()?;
/// let config = McpConfig::new().with_tool("fetch_page", Rule::new().origin("internet"));
/// let guard = McpGuard::new(kest.clone(), config.clone()).await?;
/// assert_eq!(guard.config().tool_names().collect::<Vec<_>>(), ["fetch_page"]);
///
/// let typo = McpConfig::new().with_tool("fetch_page", Rule::new().origin("internett"));
/// assert!(McpGuard::new(kest, typo).await.is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct McpGuard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    kest: Kest,
    config: McpConfig,
    /// The runtime's codec, trusting this service's own key as well: lineage it signed
    /// and handed out comes back.
    codec: PassportCodec,
    tools: HashMap<String, Protected>,
    resources: Option<Protected>,
    prompts: Option<Protected>,
    limits: BaggageLimits,
}

impl std::fmt::Debug for McpGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpGuard")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl McpGuard {
    /// The boundary for `config` on `kest`.
    ///
    /// # Errors
    /// [`McpError::Rule`] naming the tool whose rule the runtime refuses;
    /// [`McpError::Hook`] when the runtime's identity cannot describe itself (no
    /// identity, no boundary).
    pub async fn new(kest: Kest, config: McpConfig) -> Result<Self, McpError> {
        let protect = |name: &str, call: kest::Call| {
            kest.protect(call).map_err(|source| McpError::Rule {
                name: name.to_owned(),
                source: Box::new(source),
            })
        };
        let mut tools = HashMap::new();
        for name in config.tool_names() {
            if let Some(rule) = config.tool(name) {
                tools.insert(name.to_owned(), protect(name, rule.call(name, name))?);
            }
        }
        let resources = config
            .resources()
            .map(|rule| protect("resources", rule.call("resources/read", "resources/read")))
            .transpose()?;
        let prompts = config
            .prompts()
            .map(|rule| protect("prompts", rule.call("prompts/get", "prompts/get")))
            .transpose()?;
        let codec = own_codec(&kest).await?;
        Ok(Self {
            inner: Arc::new(GuardInner {
                kest,
                config,
                codec,
                tools,
                resources,
                prompts,
                limits: BaggageLimits::default(),
            }),
        })
    }

    /// The rules.
    pub fn config(&self) -> &McpConfig {
        &self.inner.config
    }

    /// The runtime.
    #[must_use]
    pub fn kest(&self) -> &Kest {
        &self.inner.kest
    }

    /// The codec lineage is read and written with.
    #[must_use]
    pub fn codec(&self) -> &PassportCodec {
        &self.inner.codec
    }

    /// A new session: one MCP connection, one flow. At an edge it starts a new chain held
    /// to the edge origin's trust; at an internal service it refuses calls until a
    /// verified passport arrives in `_meta.baggage`.
    #[must_use]
    pub fn session(&self) -> Session {
        let flow = match self.inner.codec.ingress_config().boundary_config() {
            Boundary::Edge { trust, .. } => Flow::at_edge(*trust, Caller::default()),
            Boundary::Internal => Flow::with_passport(Passport::new(), Caller::default()),
        };
        Session {
            guard: self.clone(),
            state: Arc::new(SessionState {
                flow,
                server: Mutex::new(self.inner.config.server().map(str::to_owned)),
                client: Mutex::new(None),
                last_sent: Mutex::new(None),
            }),
        }
    }

    /// The protected call for `request`, or the refusal of an unlisted one.
    fn protected(&self, request: &Request<'_>) -> Result<Protected, McpError> {
        let inner = &self.inner;
        let listed = match request.kind {
            Kind::Tool => inner.tools.get(request.name),
            Kind::Resource => inner.resources.as_ref(),
            Kind::Prompt => inner.prompts.as_ref(),
        };
        if let Some(protected) = listed {
            return Ok(protected.clone());
        }
        let target = shown(request.name);
        match inner.config.unlisted() {
            Unlisted::Deny => Err(McpError::Unlisted {
                method: request.kind.method(),
                target,
            }),
            Unlisted::Guard => {
                let operation = match request.kind {
                    Kind::Tool => request.name,
                    Kind::Resource | Kind::Prompt => request.kind.method(),
                };
                inner
                    .kest
                    .protect(Rule::new().call(operation, operation))
                    .map_err(|source| McpError::Hook {
                        method: request.kind.method(),
                        target,
                        source: Box::new(source),
                    })
            }
        }
    }
}

/// The runtime's codec, its ingress also trusting the runtime's own key.
async fn own_codec(kest: &Kest) -> Result<PassportCodec, McpError> {
    let codec = kest.codec().clone();
    let Some(identity) = kest.identity() else {
        return Ok(codec);
    };
    let info = identity.describe().await.map_err(|error| McpError::Hook {
        method: "initialize",
        target: String::new(),
        source: Box::new(KestError::Identity(error)),
    })?;
    let mut own = kest::crypto::StaticKeyResolver::new();
    own.insert_jwk(info.workload_id.clone(), &info.jwk)
        .map_err(|error| McpError::Config {
            origin: "identity".to_owned(),
            reason: format!("the runtime's own public key cannot be trusted: {error}"),
        })?;
    let ingress = codec.ingress_config().clone().also_trusting(own);
    Ok(codec.ingress(ingress))
}

/// One MCP connection: its flow (every call chains onto the one before), the server's
/// and client's names. Cheap to clone.
#[derive(Clone)]
pub struct Session {
    guard: McpGuard,
    state: Arc<SessionState>,
}

struct SessionState {
    flow: Flow,
    server: Mutex<Option<String>>,
    client: Mutex<Option<String>>,
    /// The last `_meta.baggage` handed out: sent back unchanged, it needs no decoding.
    last_sent: Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("entries", &self.state.flow.passport().len())
            .field("server", &*lock(&self.state.server))
            .field("client", &*lock(&self.state.client))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Untrusted text as errors show it.
fn shown(text: &str) -> String {
    kest::canon::escape_untrusted(text, 120)
}

/// The longest `clientInfo` label kept, in characters.
const CLIENT_LABEL_CHARS: usize = 512;

impl Session {
    /// The session's flow.
    #[must_use]
    pub fn flow(&self) -> &Flow {
        &self.state.flow
    }

    /// The session's passport.
    #[must_use]
    pub fn passport(&self) -> Passport {
        self.state.flow.passport()
    }

    /// The guard this session belongs to.
    #[must_use]
    pub const fn guard(&self) -> &McpGuard {
        &self.guard
    }

    /// Names the server (`tool.server` in policies) unless configured: the name it gave
    /// in `initialize`.
    pub fn server_said(&self, name: &str) {
        let mut server = lock(&self.state.server);
        if server.is_none() {
            *server = Some(name.to_owned());
        }
    }

    /// Records the client's `clientInfo` (from `initialize`) as the label `mcp.client`
    /// of every entry: what the client says it is, never who it is.
    pub fn client_said(&self, info: &Value) {
        let text = info.to_string();
        let label = if text.chars().count() > CLIENT_LABEL_CHARS {
            text.chars().take(CLIENT_LABEL_CHARS).collect()
        } else {
            text
        };
        *lock(&self.state.client) = Some(label);
    }

    /// Sets who the session acts for, from an authenticated source (a validated bearer
    /// token): never from the request or its `_meta`.
    pub fn set_caller(&self, caller: Caller) {
        self.state.flow.set_caller(caller);
    }

    /// Runs `run` under the hook for `request`: the lineage in `_meta.baggage` is checked
    /// and taken, every policy decides, and only then does `run` go; afterwards the entry
    /// is signed and appended to the session's passport. `output_hash` gives the hash of
    /// what `run` produced (the result's canonical JSON).
    ///
    /// # Errors
    /// [`CallError::Kest`] when Kest refused the call (then `run` did not run) or could
    /// not record it (then its output is withheld); [`CallError::Server`] when `run`
    /// returned an error (nothing recorded).
    pub async fn call<T, E, F>(
        &self,
        request: Request<'_>,
        run: F,
        output_hash: impl FnOnce(&T) -> Option<kest::canon::Sha256Digest>,
    ) -> Result<Recorded<T>, CallError<E>>
    where
        F: Future<Output = Result<T, E>>,
    {
        let method = request.kind.method();
        let hook_error = |source: KestError| McpError::Hook {
            method,
            target: shown(request.name),
            source: Box::new(source),
        };
        let protected = self.guard.protected(&request).map_err(CallError::Kest)?;
        self.admit(&request).await.map_err(CallError::Kest)?;
        let values = self.values(&request);
        let flow = self.state.flow.clone();
        let outcome = flow
            .scope(protected.run_result(
                values,
                async { run.await.map_err(Outcome::Server) },
                output_hash,
            ))
            .await;
        let output = match outcome {
            Ok(output) => output,
            Err(Outcome::Kest(error)) => return Err(CallError::Kest(hook_error(error))),
            Err(Outcome::Server(error)) => return Err(CallError::Server(error)),
        };
        let passport = self.state.flow.passport();
        let whole = request.baggage.is_some()
            || self.guard.inner.config.return_passport() == ReturnPassport::Always;
        let baggage = self
            .outbound(&passport, whole)
            .await
            .map_err(|error| CallError::Kest(hook_error(KestError::Lineage(error))))?;
        Ok(Recorded {
            output,
            baggage,
            passport,
        })
    }

    /// The passport as a `_meta.baggage` value, remembered as the last one sent.
    /// With `whole` false, only the chain tip: a client that sent no lineage does not
    /// continue from any, and the passport (O(n) bytes) is not re-sent on every call.
    async fn outbound(&self, passport: &Passport, whole: bool) -> Result<String, PropagationError> {
        let mut baggage = Baggage::new();
        if !whole {
            let tip = passport
                .tip_hash()
                .map_or_else(|| "0".to_owned(), |tip| tip.to_hex());
            baggage.set(kest::propagation::keys::CHAIN_TIP, tip)?;
            let header = baggage.to_header();
            *lock(&self.state.last_sent) = Some(header.clone());
            return Ok(header);
        }
        self.guard
            .inner
            .codec
            .write(&mut baggage, passport, &Caller::default())
            .await?;
        let header = baggage.to_header();
        *lock(&self.state.last_sent) = Some(header.clone());
        Ok(header)
    }

    /// What the policies see and the entry records of `request`.
    fn values(&self, request: &Request<'_>) -> Values {
        let server = lock(&self.state.server).clone();
        let empty = Map::new();
        let arguments = request.arguments.unwrap_or(&empty);
        // The input hash is of the arguments as sent (the URI for a resource), hashed
        // where they lie rather than copied first.
        let (described, values) = match request.kind {
            Kind::Tool | Kind::Prompt => (
                json!({"name": request.name, "arguments": arguments, "server": server}),
                Values::new().inputs(arguments),
            ),
            Kind::Resource => (
                json!({"uri": request.name, "server": server}),
                Values::new().inputs(&json!({"uri": request.name})),
            ),
        };
        let mut values = values
            .resource_id(request.name)
            .context(request.kind.context_key(), described);
        if let Some(server) = server {
            values = values.label("mcp.server", server);
        }
        if let Some(client) = lock(&self.state.client).clone() {
            values = values.label("mcp.client", client);
        }
        values
    }

    /// Takes the lineage `request` carries, if any: verified, and only if it continues
    /// the session (or the session has none yet). A request without lineage continues the
    /// session; at an internal service, a session without lineage refuses it.
    async fn admit(&self, request: &Request<'_>) -> Result<(), McpError> {
        let method = request.kind.method();
        let target = || shown(request.name);
        let no_lineage = || McpError::Hook {
            method,
            target: target(),
            source: Box::new(KestError::Lineage(PropagationError::NoLineage)),
        };
        let internal = matches!(
            self.guard.inner.codec.ingress_config().boundary_config(),
            Boundary::Internal
        );
        let Some(header) = request.baggage else {
            if internal && self.state.flow.passport().is_empty() {
                return Err(no_lineage());
            }
            return Ok(());
        };
        if lock(&self.state.last_sent).as_deref() == Some(header) {
            // Exactly what this session handed out: the session holds it already.
            return Ok(());
        }
        let baggage =
            Baggage::parse(header, &self.guard.inner.limits).map_err(|error| McpError::Meta {
                method,
                target: target(),
                reason: shown(&error.to_string()),
            })?;
        if let Some(tip) = tip_alone(&baggage) {
            // A tip without its passport continues this session only if the session has
            // that entry (it handed the tip out); anywhere else it is refused, as over HTTP.
            let session = self.state.flow.passport();
            let known = session.tip_hash().is_some_and(|own| own.to_hex() == tip)
                || session
                    .entries()
                    .iter()
                    .any(|entry| entry.hash().to_hex() == tip);
            if known {
                return Ok(());
            }
        }
        // The caller is never taken from `_meta`: only an authenticated source sets it.
        let (inbound, _) = self
            .guard
            .inner
            .codec
            .read(&baggage)
            .await
            .map_err(|error| McpError::Hook {
                method,
                target: target(),
                source: Box::new(KestError::Lineage(error)),
            })?;
        let Some(inbound) = inbound.filter(|passport| !passport.is_empty()) else {
            if internal && self.state.flow.passport().is_empty() {
                return Err(no_lineage());
            }
            return Ok(());
        };
        let mut diverged = None;
        self.state
            .flow
            .update(|session| {
                let ahead = session
                    .heads()
                    .iter()
                    .all(|head| inbound.find(head).is_some());
                let behind = inbound
                    .heads()
                    .iter()
                    .all(|head| session.find(head).is_some());
                if session.is_empty() || ahead {
                    *session = inbound.clone();
                } else if !behind {
                    diverged = Some(session.tip_hash().map(|h| h.to_hex()).unwrap_or_default());
                }
                Ok(())
            })
            .map_err(|error| McpError::Hook {
                method,
                target: target(),
                source: Box::new(KestError::Record(kest::RecordError::from(error))),
            })?;
        match diverged {
            Some(session_tip) => Err(McpError::Diverged {
                method,
                target: target(),
                session_tip,
            }),
            None => Ok(()),
        }
    }
}

/// The chain tip of baggage that carries no passport member, if that is all it has.
fn tip_alone(baggage: &Baggage) -> Option<&str> {
    use kest::propagation::keys;
    let passport = [keys::PASSPORT, keys::PASSPORT_Z, keys::CLAIM_CHECK];
    if passport.iter().any(|key| baggage.get(key).is_some()) {
        return None;
    }
    baggage.get(keys::CHAIN_TIP)
}

/// The hook's error or the server's, through `run_result`.
enum Outcome<E> {
    Kest(KestError),
    Server(E),
}

impl<E> From<KestError> for Outcome<E> {
    fn from(error: KestError) -> Self {
        Self::Kest(error)
    }
}
