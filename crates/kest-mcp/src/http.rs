//! Streamable HTTP on both sides of the proxy (feature `http`).
//!
//! - [`HttpProxy`] serves MCP's streamable HTTP transport at `/mcp`: `POST` carries one
//!   JSON-RPC message, `GET` opens the stream of the server's own messages, `DELETE`
//!   ends the session. `initialize` opens a session (`Mcp-Session-Id`); each session is
//!   one flow, with its own upstream (a child process, or a session on an HTTP server).
//!   Every request's bearer token is validated as the HTTP identity layer does, and the
//!   caller comes from the token alone; a session belongs to the caller who opened it.
//! - [`Upstream::Url`] makes the proxy a streamable HTTP client of the server it fronts,
//!   behind either side ([`Proxy::run_to_url`](crate::Proxy::run_to_url) for stdio).
//!
//! Messages are relayed as they are, as over stdio: the same routing, the same hook.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use kest::Caller;
use kest::propagation::IdentityLayer;
use serde_json::Value;
use tokio::io::AsyncBufRead;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{INVALID_REQUEST, McpError, PARSE_ERROR};
use crate::json::parse_strict;
use crate::proxy::{QUEUE, Shared, read_line, rpc, write_lines};
use crate::{HttpSettings, McpGuard};

/// The session header of the streamable HTTP transport.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The protocol version header a client sends after `initialize`.
const VERSION_HEADER: &str = "mcp-protocol-version";
/// Server messages kept for a session whose client has no `GET` stream open.
const BACKLOG: usize = 1024;
/// JSON-RPC: an internal error (the upstream failed).
const INTERNAL_ERROR: i64 = -32_603;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where the proxied server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// A command started for each session, spoken to over stdio.
    Command {
        /// The program.
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// A streamable HTTP endpoint, such as `http://127.0.0.1:8000/mcp`.
    Url(String),
}

/// How callers are admitted.
#[derive(Debug, Clone)]
enum Admission {
    Token(IdentityLayer),
    Anonymous,
}

/// The proxy's streamable HTTP side.
///
/// ```no_run
/// use kest_mcp::{HttpProxy, McpConfig, McpGuard, Upstream};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::path::Path::new("kest.toml");
/// let kest = kest::Kest::from_toml_file(path).await?;
/// let config = McpConfig::from_toml_file(path)?;
/// let guard = McpGuard::new(kest, config).await?;
/// let upstream = Upstream::Command { program: "python3".into(), args: vec!["server.py".into()] };
/// let proxy = HttpProxy::new(guard, upstream).await?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// axum::serve(listener, proxy.router()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpProxy {
    front: Arc<Front>,
}

impl std::fmt::Debug for HttpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("upstream", &self.front.upstream)
            .field("sessions", &lock(&self.front.sessions).len())
            .finish_non_exhaustive()
    }
}

struct Front {
    guard: McpGuard,
    upstream: Upstream,
    admission: Admission,
    settings: HttpSettings,
    passport_dir: Option<PathBuf>,
    sessions: Mutex<HashMap<String, Arc<HttpSession>>>,
    client: reqwest::Client,
}

impl HttpProxy {
    /// A proxy admitting callers as `[mcp.http]` of the guard's configuration says:
    /// tokens validated against the issuer's JWKS (discovered unless `jwks_uri` is set),
    /// or, when `anonymous = true`, no token.
    ///
    /// # Errors
    /// [`McpError::Config`] when `[mcp.http]` names neither an issuer and audience nor
    /// `anonymous = true`, the issuer's keys cannot be fetched, or the upstream URL is not
    /// a URL.
    pub async fn new(guard: McpGuard, upstream: Upstream) -> Result<Self, McpError> {
        if let Upstream::Url(url) = &upstream {
            upstream_url(url)?;
        }
        let settings = guard.config().http().clone();
        let config_error = |reason: String| McpError::Config {
            origin: "[mcp.http]".to_owned(),
            reason,
        };
        let admission = match (settings.anonymous(), settings.issuer(), settings.audience()) {
            (true, None, None) => {
                tracing::warn!(
                    "kest-mcp: the HTTP side serves callers WITHOUT a bearer token (anonymous = true)"
                );
                Admission::Anonymous
            }
            (true, _, _) => {
                return Err(config_error(
                    "anonymous = true cannot be combined with an issuer or audience".to_owned(),
                ));
            }
            (false, Some(issuer), Some(audience)) => {
                // Clock skew allowed between the issuer and this machine.
                let leeway = std::time::Duration::from_secs(5);
                let validator = match settings.jwks_uri() {
                    Some(jwks) => {
                        kest::identity::JwtValidator::with_jwks_uri(issuer, audience, jwks, leeway)
                            .await
                    }
                    None => kest::identity::JwtValidator::discover(issuer, audience, leeway).await,
                }
                .map_err(|error| config_error(format!("the issuer's keys: {error}")))?;
                Admission::Token(IdentityLayer::new(validator))
            }
            (false, _, _) => {
                return Err(config_error(
                    "the HTTP side needs `issuer` and `audience` to validate bearer tokens, or `anonymous = true`"
                        .to_owned(),
                ));
            }
        };
        Ok(Self::with_admission(guard, upstream, admission, settings))
    }

    /// A proxy validating bearer tokens with `layer` (its claim mapping included),
    /// whatever `[mcp.http]` says about issuers.
    #[must_use]
    pub fn with_identity(guard: McpGuard, upstream: Upstream, layer: IdentityLayer) -> Self {
        let settings = guard.config().http().clone();
        Self::with_admission(guard, upstream, Admission::Token(layer), settings)
    }

    fn with_admission(
        guard: McpGuard,
        upstream: Upstream,
        admission: Admission,
        settings: HttpSettings,
    ) -> Self {
        Self {
            front: Arc::new(Front {
                guard,
                upstream,
                admission,
                settings,
                passport_dir: None,
                sessions: Mutex::new(HashMap::new()),
                client: reqwest::Client::new(),
            }),
        }
    }

    /// Writes each session's passport to `DIR/<session id>.json` (atomically, after every
    /// recorded call), the list of JWS `kest verify` reads.
    ///
    /// # Panics
    /// Never; it must be called before [`HttpProxy::router`] is shared, and is ignored
    /// afterwards.
    #[must_use]
    pub fn passport_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Some(front) = Arc::get_mut(&mut self.front) {
            front.passport_dir = Some(dir.into());
        }
        self
    }

    /// Sessions open now.
    #[must_use]
    pub fn sessions(&self) -> usize {
        lock(&self.front.sessions).len()
    }

    /// Ends every session: their servers are stopped and their streams close. For a
    /// graceful shutdown; new sessions can still be opened.
    pub fn close(&self) {
        let sessions: Vec<_> = lock(&self.front.sessions).drain().collect();
        tracing::info!(sessions = sessions.len(), "kest-mcp: every session ended");
    }

    /// The axum router serving `/mcp`.
    pub fn router(&self) -> axum::Router {
        let max = self.front.guard.config().max_message_bytes();
        axum::Router::new()
            .route("/mcp", axum::routing::post(post).get(get).delete(delete))
            .layer(DefaultBodyLimit::max(max))
            .with_state(Arc::clone(&self.front))
    }
}

/// One MCP session over HTTP: a relay, its upstream, and where answers go.
struct HttpSession {
    relay: Arc<Shared>,
    /// The caller who opened the session; later requests must be the same caller.
    owner: Option<(Option<String>, Option<String>)>,
    outbox: Arc<Outbox>,
    /// When the client last sent anything.
    last_seen: Mutex<std::time::Instant>,
    tasks: Vec<JoinHandle<()>>,
    /// Ends the upstream HTTP session, if there is one.
    stop: Arc<tokio::sync::Notify>,
    _child: Option<tokio::process::Child>,
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        // The upstream HTTP session is deleted by its pump, which then ends; the child
        // process, if any, is killed as it is dropped.
        self.stop.notify_one();
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Where the server's messages go: an answer to the request whose `POST` waits for it,
/// a progress notification to the request it reports on, anything else to the `GET`
/// stream (or kept until one opens).
#[derive(Default)]
struct Outbox {
    waiting: Mutex<HashMap<String, Waiter>>,
    stream: Mutex<Option<mpsc::Sender<String>>>,
    backlog: Mutex<VecDeque<String>>,
}

struct Waiter {
    send: mpsc::Sender<String>,
    progress: Option<String>,
    /// The answer goes out as an event stream (so other messages may go before it).
    streams: bool,
}

impl Outbox {
    async fn deliver(&self, text: String) {
        let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let method = message.get("method").and_then(Value::as_str);
        let target = match (method, message.get("id")) {
            (None, Some(id)) => lock(&self.waiting).remove(&id.to_string()).map(|w| w.send),
            (Some("notifications/progress"), _) => {
                let token = message
                    .get("params")
                    .and_then(|p| p.get("progressToken"))
                    .map(Value::to_string);
                token.and_then(|token| {
                    lock(&self.waiting)
                        .values()
                        .find(|waiter| {
                            waiter.streams && waiter.progress.as_deref() == Some(token.as_str())
                        })
                        .map(|waiter| waiter.send.clone())
                })
            }
            // The server's own requests and notifications ride the stream of the one
            // request in flight, the request they must come from (over stdio nothing
            // else says which); with several in flight, or none, the GET stream.
            (Some(_), _) => {
                let waiting = lock(&self.waiting);
                let mut streaming = waiting.values().filter(|waiter| waiter.streams);
                match (streaming.next(), streaming.next()) {
                    (Some(only), None) if waiting.len() == 1 => Some(only.send.clone()),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(target) = target {
            let _ = target.send(text).await;
            return;
        }
        let stream = lock(&self.stream).clone();
        if let Some(stream) = stream
            && stream.send(text.clone()).await.is_ok()
        {
            return;
        }
        let mut backlog = lock(&self.backlog);
        if backlog.len() >= BACKLOG {
            backlog.pop_front();
            tracing::warn!(
                "kest-mcp: a session's client opened no GET stream; its oldest server message was dropped"
            );
        }
        backlog.push_back(text);
    }
}

/// A request refused at the HTTP level: its status, and a JSON-RPC error body.
struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
    /// 401: the client is told how to authenticate.
    challenge: bool,
}

fn jsonrpc_error(status: StatusCode, code: i64, message: &str) -> Refusal {
    Refusal {
        status,
        code,
        message: message.to_owned(),
        challenge: false,
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = rpc(self.code, &self.message)
            .response(&Value::Null)
            .to_string();
        let mut response = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kest-mcp\""),
            );
        }
        response
    }
}

impl Front {
    /// Refuses a browser page from an origin not allowed (DNS rebinding, cross-site
    /// calls). A request without `Origin` is not from a page and passes.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let allowed = origin.to_str().is_ok_and(|origin| {
            self.settings
                .allowed_origins()
                .iter()
                .any(|allowed| allowed == origin)
        });
        if allowed {
            Ok(())
        } else {
            Err(jsonrpc_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "kest: this Origin is not allowed to call the proxy",
            ))
        }
    }

    /// The caller of a request, from its validated bearer token.
    async fn admit(&self, headers: &HeaderMap) -> Result<Option<Caller>, Refusal> {
        match &self.admission {
            Admission::Anonymous => Ok(None),
            Admission::Token(layer) => match layer.authenticate(headers).await {
                Ok(caller) => Ok(Some(caller)),
                Err(reason) => Err(Refusal {
                    challenge: true,
                    ..jsonrpc_error(
                        StatusCode::UNAUTHORIZED,
                        INVALID_REQUEST,
                        &format!("kest: {reason}"),
                    )
                }),
            },
        }
    }

    /// The session a request names, if it is the caller's.
    fn session_of(
        &self,
        headers: &HeaderMap,
        caller: Option<&Caller>,
    ) -> Result<Arc<HttpSession>, Refusal> {
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            return Err(jsonrpc_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "kest: the request names no Mcp-Session-Id; only initialize opens a session",
            ));
        };
        let Some(session) = lock(&self.sessions).get(id).cloned() else {
            return Err(jsonrpc_error(
                StatusCode::NOT_FOUND,
                INVALID_REQUEST,
                "kest: no such session (it ended, or never existed)",
            ));
        };
        if session.owner != caller.map(owner_of) {
            tracing::warn!("kest-mcp: refusing a request for a session another caller opened");
            return Err(jsonrpc_error(
                StatusCode::FORBIDDEN,
                INVALID_REQUEST,
                "kest: the session belongs to another caller",
            ));
        }
        if let Some(caller) = caller {
            // The same caller, perhaps with a fresher token.
            session.relay.session().set_caller(caller.clone());
        }
        *lock(&session.last_seen) = std::time::Instant::now();
        Ok(session)
    }

    /// Opens a session for `caller`: its relay and its upstream.
    async fn open(
        self: &Arc<Self>,
        caller: Option<Caller>,
    ) -> Result<(String, Arc<HttpSession>), Refusal> {
        self.end_idle();
        if lock(&self.sessions).len() >= self.settings.max_sessions() {
            return Err(jsonrpc_error(
                StatusCode::SERVICE_UNAVAILABLE,
                INVALID_REQUEST,
                "kest: the proxy holds as many sessions as it may; try again later",
            ));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (to_client, client_queue) = mpsc::channel(QUEUE);
        let (to_server, server_queue) = mpsc::channel(QUEUE);
        let passport = self
            .passport_dir
            .as_ref()
            .map(|dir| dir.join(format!("{id}.json")));
        let relay = Shared::new(&self.guard, to_client, to_server, passport);
        if let Some(caller) = &caller {
            relay.session().set_caller(caller.clone());
        }
        let outbox = Arc::new(Outbox::default());
        let stop = Arc::new(tokio::sync::Notify::new());
        let mut tasks = vec![tokio::spawn(dispatch(client_queue, Arc::clone(&outbox)))];
        let max = self.guard.config().max_message_bytes();
        let child = match &self.upstream {
            Upstream::Command { program, args } => {
                let (child, stdio) = spawn(program, args).map_err(|error| {
                    tracing::error!(%error, "kest-mcp: cannot start the server for a session");
                    jsonrpc_error(
                        StatusCode::BAD_GATEWAY,
                        INTERNAL_ERROR,
                        "kest: the server cannot be started",
                    )
                })?;
                let (stdin, stdout) = stdio;
                tasks.push(tokio::spawn(async move {
                    let _ = write_lines(server_queue, stdin, "the server", None).await;
                }));
                let reader = Arc::clone(&relay);
                let front = Arc::clone(self);
                let ended = id.clone();
                tasks.push(tokio::spawn(async move {
                    let _ =
                        crate::proxy::from_server(reader, tokio::io::BufReader::new(stdout), max)
                            .await;
                    // The server exited: the session is over.
                    lock(&front.sessions).remove(&ended);
                }));
                Some(child)
            }
            Upstream::Url(url) => {
                let upstream =
                    HttpUpstream::new(self.client.clone(), url, max).map_err(|error| {
                        tracing::error!(%error, "kest-mcp: the upstream URL cannot be used");
                        jsonrpc_error(
                            StatusCode::BAD_GATEWAY,
                            INTERNAL_ERROR,
                            "kest: the upstream URL cannot be used",
                        )
                    })?;
                let upstream = Arc::new(upstream);
                // Not among `tasks`: it must outlive the session to delete it upstream.
                tokio::spawn(upstream.pump(Arc::clone(&relay), server_queue, Arc::clone(&stop)));
                None
            }
        };
        let session = Arc::new(HttpSession {
            relay,
            owner: caller.as_ref().map(owner_of),
            outbox,
            last_seen: Mutex::new(std::time::Instant::now()),
            tasks,
            stop,
            _child: child,
        });
        lock(&self.sessions).insert(id.clone(), Arc::clone(&session));
        tracing::info!(session = %id, "kest-mcp: session opened");
        Ok((id, session))
    }
}

impl Front {
    /// Ends the sessions idle longer than `session_idle` (nothing in flight, no `GET`
    /// stream open), when the sessions are full: a client that never says `DELETE` does
    /// not hold its server for ever.
    fn end_idle(&self) {
        let idle = self.settings.session_idle();
        let mut sessions = lock(&self.sessions);
        if sessions.len() < self.settings.max_sessions() {
            return;
        }
        sessions.retain(|id, session| {
            let quiet = lock(&session.outbox.waiting).is_empty()
                && lock(&session.outbox.stream)
                    .as_ref()
                    .is_none_or(mpsc::Sender::is_closed)
                && lock(&session.last_seen).elapsed() >= idle;
            if quiet {
                tracing::info!(session = %id, "kest-mcp: an idle session ended for a new one");
            }
            !quiet
        });
    }
}

/// Who owns a session: the token's user and agent (the token itself may be renewed).
fn owner_of(caller: &Caller) -> (Option<String>, Option<String>) {
    (caller.user.clone(), caller.agent.clone())
}

/// A child process with piped stdin and stdout, killed when dropped.
#[allow(
    clippy::type_complexity,
    reason = "the child and its two pipes, named where used"
)]
fn spawn(
    program: &str,
    args: &[String],
) -> std::io::Result<(
    tokio::process::Child,
    (tokio::process::ChildStdin, tokio::process::ChildStdout),
)> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    Ok((child, (stdin, stdout)))
}

/// Sends each of the relay's messages for the client to where it belongs.
async fn dispatch(mut queue: mpsc::Receiver<String>, outbox: Arc<Outbox>) {
    while let Some(text) = queue.recv().await {
        outbox.deliver(text).await;
    }
}

/// `POST /mcp`: one JSON-RPC message from the client.
async fn post(State(front): State<Arc<Front>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = front.check_origin(&headers) {
        return refused.into_response();
    }
    let caller = match front.admit(&headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return jsonrpc_error(
            StatusCode::BAD_REQUEST,
            PARSE_ERROR,
            "kest: the message is not UTF-8",
        )
        .into_response();
    };
    let message = match parse_strict(&text) {
        Ok(message) => message,
        Err(error) => {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                PARSE_ERROR,
                &format!("kest: the message is not JSON the proxy accepts: {error}"),
            )
            .into_response();
        }
    };
    if let crate::proxy::Route::Refuse(error) = crate::proxy::route(&message) {
        let body = error.response(&Value::Null).to_string();
        return (
            StatusCode::BAD_REQUEST,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
    }
    let method = message.get("method").and_then(Value::as_str);
    let id = message.get("id").filter(|_| method.is_some());
    let (session_id, session) = if method == Some("initialize") && id.is_some() {
        if headers.contains_key(SESSION_HEADER) {
            return jsonrpc_error(
                StatusCode::BAD_REQUEST,
                INVALID_REQUEST,
                "kest: initialize opens a session; it cannot be sent within one",
            )
            .into_response();
        }
        match front.open(caller).await {
            Ok((id, session)) => (Some(id), session),
            Err(refused) => return refused.into_response(),
        }
    } else {
        match front.session_of(&headers, caller.as_ref()) {
            Ok(session) => (None, session),
            Err(refused) => return refused.into_response(),
        }
    };
    let Some(id) = id else {
        if method == Some("notifications/cancelled")
            && let Some(request) = message.get("params").and_then(|p| p.get("requestId"))
        {
            // The client gave up on the request: its stream ends now, whatever the
            // server does (a call it still answers is recorded, its answer withheld).
            lock(&session.outbox.waiting).remove(&request.to_string());
        }
        // A notification or an answer to the server's own request.
        return match session.relay.client_message(text, &message).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(error) => upstream_gone(&error),
        };
    };
    let streams = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/event-stream"));
    let key = id.to_string();
    let (send, receive) = mpsc::channel(QUEUE);
    {
        let mut waiting = lock(&session.outbox.waiting);
        if waiting.contains_key(&key) {
            return jsonrpc_error(
                StatusCode::CONFLICT,
                INVALID_REQUEST,
                "kest: a request with this id is already in flight",
            )
            .into_response();
        }
        let progress = message
            .get("params")
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .map(Value::to_string);
        waiting.insert(
            key.clone(),
            Waiter {
                send,
                progress,
                streams,
            },
        );
    }
    if let Err(error) = session.relay.client_message(text, &message).await {
        lock(&session.outbox.waiting).remove(&key);
        return upstream_gone(&error);
    }
    // The session is not held while the answer is awaited: if it ends (its server
    // exits, the client deletes it), the answer's channel closes with it.
    drop(session);
    let mut response = if streams {
        events(receive, None).into_response()
    } else {
        final_answer(receive, id).await
    };
    if let Some(session_id) = session_id
        && let Ok(value) = HeaderValue::from_str(&session_id)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    response
}

fn upstream_gone(error: &McpError) -> Response {
    tracing::error!(%error, "kest-mcp: the session's server is gone");
    jsonrpc_error(
        StatusCode::BAD_GATEWAY,
        INTERNAL_ERROR,
        "kest: the session's server is gone",
    )
    .into_response()
}

/// The last message of a request's answer, as one JSON body; a JSON-RPC error when the
/// session ended before the server answered.
async fn final_answer(mut receive: mpsc::Receiver<String>, id: &Value) -> Response {
    let mut last = None;
    while let Some(text) = receive.recv().await {
        last = Some(text);
    }
    let text = last.unwrap_or_else(|| {
        rpc(
            INTERNAL_ERROR,
            "kest: the session ended before the server answered",
        )
        .response(id)
        .to_string()
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// A server-sent event stream of `receive`'s messages, after `first`.
fn events(
    receive: mpsc::Receiver<String>,
    first: Option<Vec<String>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let first = futures_util::stream::iter(first.unwrap_or_default());
    let rest = futures_util::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|text| (text, receive))
    });
    let stream =
        futures_util::StreamExt::map(futures_util::StreamExt::chain(first, rest), |text| {
            Ok(Event::default().event("message").data(text))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /mcp`: the stream of the server's own messages for a session.
async fn get(State(front): State<Arc<Front>>, headers: HeaderMap) -> Response {
    if let Err(refused) = front.check_origin(&headers) {
        return refused.into_response();
    }
    let caller = match front.admit(&headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let session = match front.session_of(&headers, caller.as_ref()) {
        Ok(session) => session,
        Err(refused) => return refused.into_response(),
    };
    let (send, receive) = mpsc::channel(QUEUE);
    {
        let mut stream = lock(&session.outbox.stream);
        if stream.as_ref().is_some_and(|open| !open.is_closed()) {
            return jsonrpc_error(
                StatusCode::CONFLICT,
                INVALID_REQUEST,
                "kest: the session already has a GET stream open",
            )
            .into_response();
        }
        *stream = Some(send);
    }
    let kept: Vec<String> = lock(&session.outbox.backlog).drain(..).collect();
    events(receive, Some(kept)).into_response()
}

/// `DELETE /mcp`: the client ends its session; the server is stopped.
async fn delete(State(front): State<Arc<Front>>, headers: HeaderMap) -> Response {
    if let Err(refused) = front.check_origin(&headers) {
        return refused.into_response();
    }
    let caller = match front.admit(&headers).await {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    if let Err(refused) = front.session_of(&headers, caller.as_ref()) {
        return refused.into_response();
    }
    if let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) {
        lock(&front.sessions).remove(id);
        tracing::info!(session = %id, "kest-mcp: session ended by the client");
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The proxy as a streamable HTTP client of the server it fronts.
struct HttpUpstream {
    client: reqwest::Client,
    url: reqwest::Url,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    max: usize,
}

impl HttpUpstream {
    fn new(client: reqwest::Client, url: &str, max: usize) -> Result<Self, McpError> {
        let url = upstream_url(url)?;
        Ok(Self {
            client,
            url,
            session: Mutex::new(None),
            version: Mutex::new(None),
            max,
        })
    }

    /// Posts each of the relay's messages for the server; the answers go back to the
    /// relay. `initialize` is awaited before anything else is sent (its answer names the
    /// session); other requests run side by side. When `stop` is notified (or the queue
    /// closes), the upstream session is deleted.
    async fn pump(
        self: Arc<Self>,
        relay: Arc<Shared>,
        mut queue: mpsc::Receiver<String>,
        stop: Arc<tokio::sync::Notify>,
    ) {
        let mut listening = false;
        let mut posts = tokio::task::JoinSet::new();
        loop {
            let next = tokio::select! {
                biased;
                () = stop.notified() => None,
                text = queue.recv() => text,
            };
            let Some(text) = next else {
                break;
            };
            let message: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let method = message.get("method").and_then(Value::as_str);
            if method == Some("initialize") {
                self.post(&relay, text, &message).await;
            } else {
                let initialized = method == Some("notifications/initialized");
                let (upstream, posting) = (Arc::clone(&self), Arc::clone(&relay));
                posts.spawn(async move { upstream.post(&posting, text, &message).await });
                if initialized && !listening {
                    listening = true;
                    let (upstream, listener) = (Arc::clone(&self), Arc::clone(&relay));
                    posts.spawn(async move { upstream.listen(&listener).await });
                }
            }
            while posts.try_join_next().is_some() {}
        }
        posts.abort_all();
        relay.server_gone();
        let session = lock(&self.session).clone();
        if let Some(session) = session {
            let _ = self
                .client
                .delete(self.url.clone())
                .header(SESSION_HEADER, session)
                .send()
                .await;
        }
    }

    fn request(&self, builder: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let mut builder = builder;
        if let Some(session) = lock(&self.session).clone() {
            builder = builder.header(SESSION_HEADER, session);
        }
        if let Some(version) = lock(&self.version).clone() {
            builder = builder.header(VERSION_HEADER, version);
        }
        builder
    }

    /// Posts one message; its answer (JSON, or events) goes to the relay. A request the
    /// server cannot answer gets a JSON-RPC error, so no call waits for ever.
    async fn post(&self, relay: &Shared, text: String, message: &Value) {
        let id = message
            .get("id")
            .filter(|_| message.get("method").is_some());
        let builder = self.request(
            self.client
                .post(self.url.clone())
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ACCEPT, "application/json, text/event-stream")
                .body(text),
        );
        let failed = |reason: String| async move {
            tracing::error!(%reason, "kest-mcp: the upstream server failed a message");
            if let Some(id) = id {
                let error = rpc(
                    INTERNAL_ERROR,
                    &format!("kest: the server failed: {reason}"),
                );
                let _ = relay.server_text(error.response(id).to_string()).await;
            }
        };
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => return failed(error.to_string()).await,
        };
        if message.get("method").and_then(Value::as_str) == Some("initialize")
            && let Some(session) = response.headers().get(SESSION_HEADER)
        {
            *lock(&self.session) = Some(session.clone());
        }
        let status = response.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        if !status.is_success() {
            return failed(format!("HTTP {status}")).await;
        }
        let events = is_event_stream(response.headers());
        let reader = body_reader(response);
        let delivered = if events {
            self.read_events(relay, reader).await
        } else {
            self.read_json(relay, reader).await
        };
        if let Err(error) = delivered {
            failed(error.to_string()).await;
        }
    }

    /// Opens the server's own stream (`GET`), if it offers one.
    async fn listen(&self, relay: &Shared) {
        let builder = self.request(
            self.client
                .get(self.url.clone())
                .header(header::ACCEPT, "text/event-stream"),
        );
        let Ok(response) = builder.send().await else {
            return;
        };
        if response.status().is_success()
            && is_event_stream(response.headers())
            && let Err(error) = self.read_events(relay, body_reader(response)).await
        {
            tracing::warn!(%error, "kest-mcp: the server's GET stream failed");
        }
    }

    async fn read_json<R: AsyncBufRead + Unpin>(
        &self,
        relay: &Shared,
        mut reader: R,
    ) -> Result<(), McpError> {
        // The whole body, bounded: a JSON answer may contain no newline, or several.
        let mut body = String::new();
        while let Some(line) = read_line(&mut reader, self.max, "the server").await? {
            let line = line.map_err(|len| too_large(len, self.max))?;
            if body.len().saturating_add(line.len()) > self.max {
                return Err(too_large(body.len().saturating_add(line.len()), self.max));
            }
            body.push_str(&line);
            body.push('\n');
        }
        self.remember_version(&body);
        relay.server_text(body.trim_end().to_owned()).await;
        Ok(())
    }

    /// Reads server-sent events; each `message` event's data is one JSON-RPC message.
    async fn read_events<R: AsyncBufRead + Unpin>(
        &self,
        relay: &Shared,
        mut reader: R,
    ) -> Result<(), McpError> {
        let mut data = String::new();
        let mut kind = String::new();
        while let Some(line) = read_line(&mut reader, self.max, "the server").await? {
            let line = line.map_err(|len| too_large(len, self.max))?;
            if line.is_empty() {
                if !data.is_empty() && (kind.is_empty() || kind == "message") {
                    self.remember_version(&data);
                    relay.server_text(std::mem::take(&mut data)).await;
                }
                data.clear();
                kind.clear();
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => {
                    if data.len().saturating_add(value.len()) > self.max {
                        return Err(too_large(data.len().saturating_add(value.len()), self.max));
                    }
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(value);
                }
                "event" => value.clone_into(&mut kind),
                // Comments, ids and retry hints: nothing to relay.
                _ => {}
            }
        }
        Ok(())
    }

    /// The protocol version `initialize` settled on, sent with every later request.
    fn remember_version(&self, text: &str) {
        let version = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|message| {
                message
                    .get("result")?
                    .get("protocolVersion")?
                    .as_str()
                    .and_then(|v| HeaderValue::from_str(v).ok())
            });
        if let Some(version) = version {
            *lock(&self.version) = Some(version);
        }
    }
}

/// The upstream server's URL, read.
fn upstream_url(url: &str) -> Result<reqwest::Url, McpError> {
    reqwest::Url::parse(url).map_err(|error| McpError::Config {
        origin: "the upstream URL".to_owned(),
        reason: format!("`{}`: {error}", kest::canon::escape_untrusted(url, 200)),
    })
}

fn too_large(len: usize, max: usize) -> McpError {
    McpError::Io {
        what: "reading from the server".to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes exceeds the limit of {max} bytes, or is not UTF-8"),
        ),
    }
}

fn is_event_stream(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

fn body_reader(response: reqwest::Response) -> impl AsyncBufRead + Unpin {
    let stream = futures_util::StreamExt::map(response.bytes_stream(), |chunk| {
        chunk.map_err(std::io::Error::other)
    });
    tokio_util::io::StreamReader::new(stream)
}

/// Relays a client on `client_in`/`client_out` (stdio) to a streamable HTTP server.
pub(crate) async fn stdio_to_url<CI, CO>(
    guard: &McpGuard,
    passport_out: Option<PathBuf>,
    url: &str,
    client_in: CI,
    client_out: CO,
) -> Result<crate::ProxyReport, McpError>
where
    CI: tokio::io::AsyncRead + Unpin + Send + 'static,
    CO: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let max = guard.config().max_message_bytes();
    let (to_client, client_queue) = mpsc::channel(QUEUE);
    let (to_server, server_queue) = mpsc::channel(QUEUE);
    let relay = Shared::new(guard, to_client, to_server, passport_out);
    let upstream = HttpUpstream::new(reqwest::Client::new(), url, max)?;
    let client_writer = tokio::spawn(write_lines(client_queue, client_out, "the client", None));
    let stop = Arc::new(tokio::sync::Notify::new());
    let pump =
        tokio::spawn(Arc::new(upstream).pump(Arc::clone(&relay), server_queue, Arc::clone(&stop)));
    let result = crate::proxy::from_client(
        Arc::clone(&relay),
        tokio::io::BufReader::new(client_in),
        max,
    )
    .await;
    let report = relay.report();
    // The client is gone: the upstream session ends.
    stop.notify_one();
    drop(relay);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), pump).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), client_writer).await;
    result.map(|()| report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn answers_go_to_their_request_progress_to_its_request_the_rest_to_the_stream() {
        let outbox = Outbox::default();
        let waiter = |streams: bool, token: &str| {
            let (send, receive) = mpsc::channel(8);
            let waiter = Waiter {
                send,
                progress: Some(format!("\"{token}\"")),
                streams,
            };
            (waiter, receive)
        };
        let (seven, mut to_seven) = waiter(true, "tok");
        lock(&outbox.waiting).insert("7".to_owned(), seven);
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": "tok", "progress": 1}})
        .to_string();
        let sampling = json!({"jsonrpc": "2.0", "id": "s1", "method": "sampling/createMessage",
            "params": {}})
        .to_string();
        let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {}}).to_string();
        // One request in flight: its progress and the server's own request ride its
        // stream, and its answer ends it.
        outbox.deliver(progress.clone()).await;
        outbox.deliver(sampling.clone()).await;
        outbox.deliver(answer.clone()).await;
        assert_eq!(to_seven.recv().await.unwrap(), progress);
        assert_eq!(to_seven.recv().await.unwrap(), sampling);
        assert_eq!(to_seven.recv().await.unwrap(), answer);
        assert!(
            to_seven.recv().await.is_none(),
            "the answer ends the request's stream"
        );
        // Two in flight: a server request cannot be placed, and goes to the GET stream
        // (kept until one opens); progress still finds its request; a request answered
        // as one JSON body gets no message but its answer.
        let (eight, mut to_eight) = waiter(true, "t8");
        let (nine, mut to_nine) = waiter(false, "t9");
        lock(&outbox.waiting).insert("8".to_owned(), eight);
        lock(&outbox.waiting).insert("9".to_owned(), nine);
        let other =
            json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}}).to_string();
        let progress_8 = progress.replace("\"tok\"", "\"t8\"");
        let progress_9 = progress.replace("\"tok\"", "\"t9\"");
        outbox.deliver(other.clone()).await;
        outbox.deliver(progress_8.clone()).await;
        outbox.deliver(progress_9.clone()).await;
        assert_eq!(to_eight.recv().await.unwrap(), progress_8);
        assert!(
            to_nine.try_recv().is_err(),
            "a JSON answer carries nothing else"
        );
        assert_eq!(
            lock(&outbox.backlog).iter().collect::<Vec<_>>(),
            [&other, &progress_9]
        );
        lock(&outbox.waiting).clear();
        lock(&outbox.backlog).clear();
        for n in 0..BACKLOG + 5 {
            outbox
                .deliver(json!({"method": "m", "params": {"n": n}}).to_string())
                .await;
        }
        assert_eq!(
            lock(&outbox.backlog).len(),
            BACKLOG,
            "the backlog is bounded"
        );
    }
    /// A relay whose client side is a queue the test reads.
    async fn relay() -> (Arc<Shared>, mpsc::Receiver<String>) {
        let kest = kest::Kest::builder()
            .identity(kest::identity::MockIdentity::new("spiffe://kest.test/up").unwrap())
            .build()
            .unwrap();
        let guard = McpGuard::new(kest, crate::McpConfig::new()).await.unwrap();
        let (to_client, from_relay) = mpsc::channel(64);
        let (to_server, _server) = mpsc::channel(64);
        (Shared::new(&guard, to_client, to_server, None), from_relay)
    }

    #[tokio::test]
    async fn server_sent_events_are_read_as_the_format_says_and_bounded() {
        let (relay, mut out) = relay().await;
        let upstream =
            HttpUpstream::new(reqwest::Client::new(), "http://127.0.0.1:1/mcp", 64).unwrap();
        // Comments, ids, a priming event without data, a multi-line data field, an event
        // of another type (not relayed), CRLF line ends, and a last event without the
        // blank line that would end it (never dispatched, as the format says).
        let stream = b": keep-alive\n\nid: 1\nretry: 10\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\nevent: other\ndata: {\"b\":2}\n\r\ndata: {\"c\":3}\r\n\r\ndata: {\"d\":4}";
        upstream.read_events(&relay, &stream[..]).await.unwrap();
        assert_eq!(out.recv().await.unwrap(), "{\"a\":\n1}");
        assert_eq!(out.recv().await.unwrap(), "{\"c\":3}");
        assert!(out.try_recv().is_err(), "nothing else was relayed");
        // An event whose data grows past the limit, a line at a time, is refused.
        let long = format!("data: {}\ndata: {}\n\n", "x".repeat(40), "y".repeat(40));
        let error = upstream
            .read_events(&relay, long.as_bytes())
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("exceeds the limit of 64 bytes"),
            "{error}"
        );
        // So is one line past it, and a JSON body past it.
        let line = format!("data: {}\n\n", "z".repeat(100));
        assert!(upstream.read_events(&relay, line.as_bytes()).await.is_err());
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"{}\"}}",
            "w".repeat(30)
        );
        let twice = format!("{body}\n{body}");
        assert!(upstream.read_json(&relay, twice.as_bytes()).await.is_err());
        assert!(out.try_recv().is_err(), "nothing of them was relayed");
        // A body of exactly the limit is read.
        let exact = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"{}\"}}",
            "v".repeat(28)
        );
        assert_eq!(exact.len(), 64);
        upstream.read_json(&relay, exact.as_bytes()).await.unwrap();
        assert_eq!(out.recv().await.unwrap(), exact);
        // A JSON body within the limit is relayed whole, and its protocol version kept.
        let answer = r#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25"}}"#;
        let upstream =
            HttpUpstream::new(reqwest::Client::new(), "http://127.0.0.1:1/mcp", 1024).unwrap();
        upstream.read_json(&relay, answer.as_bytes()).await.unwrap();
        assert_eq!(out.recv().await.unwrap(), answer);
        assert_eq!(
            lock(&upstream.version).as_ref().unwrap().to_str().unwrap(),
            "2025-11-25"
        );
    }
}
