//! `kest mcp proxy`: the hook in front of an MCP server nobody can change, over stdio.
//!
//! The proxy relays newline-delimited JSON-RPC between the client and the server. It
//! reads every message the client sends; `tools/call`, `resources/read` and `prompts/get`
//! go through the hook (decided before they are forwarded, recorded when the server's
//! answer comes back, the passport added to the result's `_meta.baggage`). Every other
//! message (initialize, lists, notifications, cancellation, progress, errors, the
//! server's own requests) is forwarded byte for byte.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::error::{INVALID_REQUEST, McpError, PARSE_ERROR, RpcError};
use crate::guard::{CallError, Kind, McpGuard, Request, Session};
use crate::json::parse_strict;

/// Messages queued for one peer before the sender waits.
pub(crate) const QUEUE: usize = 256;
/// Queued messages written to a peer at once, up to about this many bytes.
const BATCH_BYTES: usize = 64 * 1024;
/// Guarded calls waiting for the server at once; more are refused until some end.
const MAX_IN_FLIGHT: usize = 1024;
/// `initialize` requests remembered while their answers are awaited.
const MAX_INITIALIZING: usize = 8;
/// Pages of `tools/list` read when checking the configuration against the server.
const MAX_LIST_PAGES: usize = 100;

/// What a proxy run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyReport {
    /// Calls that ran and were recorded.
    pub recorded: usize,
    /// Calls refused before they reached the server.
    pub refused: usize,
}

/// The stdio proxy: one client, one server, one session.
///
/// ```no_run
/// use kest_mcp::{McpConfig, McpGuard, Proxy};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::path::Path::new("kest.toml");
/// let kest = kest::Kest::from_toml_file(path).await?;
/// let guard = McpGuard::new(kest, McpConfig::from_toml_file(path)?).await?;
/// let mut child = tokio::process::Command::new("python3")
///     .args(["server.py"])
///     .stdin(std::process::Stdio::piped())
///     .stdout(std::process::Stdio::piped())
///     .spawn()?;
/// let (to_server, from_server) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
/// let report = Proxy::new(guard)
///     .passport_out("passport.json")
///     .run(tokio::io::stdin(), tokio::io::stdout(), from_server, to_server)
///     .await?;
/// eprintln!("{} recorded, {} refused", report.recorded, report.refused);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Proxy {
    guard: McpGuard,
    passport_out: Option<PathBuf>,
}

/// A guarded request waiting for the server's answer.
type Waiting = oneshot::Sender<Value>;

pub(crate) struct Shared {
    session: Session,
    to_client: mpsc::Sender<String>,
    to_server: mpsc::Sender<String>,
    /// Guarded and internal requests in flight, by their id's JSON text.
    waiting: Mutex<HashMap<String, Waiting>>,
    /// Guarded calls the client cancelled: still recorded if the server answers (the
    /// tool ran), but the answer is not sent.
    cancelled: Mutex<std::collections::HashSet<String>>,
    /// `initialize` requests in flight, whose answers name the server.
    initializing: Mutex<Vec<String>>,
    passport_out: Option<PathBuf>,
    /// Serializes rewrites of the passport file.
    file: tokio::sync::Mutex<()>,
    report: Mutex<ProxyReport>,
    /// The prefix of the proxy's own request ids.
    own_ids: String,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// A proxy for a new session of `guard`.
    #[must_use]
    pub const fn new(guard: McpGuard) -> Self {
        Self {
            guard,
            passport_out: None,
        }
    }

    /// Rewrites `path` (atomically: a temporary file, then a rename) after every recorded
    /// call, with the session's passport as JSON, the list of JWS `kest verify` reads.
    #[must_use]
    pub fn passport_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.passport_out = Some(path.into());
        self
    }

    /// Relays until either side closes: the client's messages from `client_in` to the
    /// server's `server_out` (its stdin), the server's from `server_in` (its stdout) to
    /// `client_out`.
    ///
    /// # Errors
    /// [`McpError::Io`] when a side cannot be read or written.
    pub async fn run<CI, CO, SI, SO>(
        self,
        client_in: CI,
        client_out: CO,
        server_in: SI,
        server_out: SO,
    ) -> Result<ProxyReport, McpError>
    where
        CI: AsyncRead + Unpin + Send + 'static,
        CO: AsyncWrite + Unpin + Send + 'static,
        SI: AsyncRead + Unpin + Send + 'static,
        SO: AsyncWrite + Unpin + Send + 'static,
    {
        let max = self.guard.config().max_message_bytes();
        let (to_client, client_queue) = mpsc::channel(QUEUE);
        let (to_server, server_queue) = mpsc::channel(QUEUE);
        let shared = Shared::new(&self.guard, to_client, to_server, self.passport_out);
        let stop_server = Arc::new(tokio::sync::Notify::new());
        let client_writer = tokio::spawn(write_lines(client_queue, client_out, "the client", None));
        let server_writer = tokio::spawn(write_lines(
            server_queue,
            server_out,
            "the server",
            Some(Arc::clone(&stop_server)),
        ));
        let mut from_server = tokio::spawn(from_server(
            Arc::clone(&shared),
            BufReader::new(server_in),
            max,
        ));
        let from_client = from_client(Arc::clone(&shared), BufReader::new(client_in), max);
        tokio::pin!(from_client);
        // The proxy lives as long as the server. When the client closes, the server's
        // stdin is closed and it finishes what it has; when the server exits, the proxy
        // stops reading the client.
        let (client_result, server_result) = tokio::select! {
            result = &mut from_client => {
                stop_server.notify_one();
                (Some(result), (&mut from_server).await)
            }
            result = &mut from_server => {
                stop_server.notify_one();
                (None, result)
            }
        };
        let report = shared.report();
        drop(shared);
        let _ = server_writer.await;
        // What is queued for the client is written; calls still waiting have ended.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), client_writer).await;
        if let Some(Err(error)) = client_result {
            return Err(error);
        }
        match server_result {
            Ok(Err(error)) => Err(error),
            _ => Ok(report),
        }
    }
}

impl Proxy {
    /// Relays a client on `client_in`/`client_out` (stdio, say) to a server that speaks
    /// streamable HTTP at `url` (feature `http`): the proxy is that server's HTTP client,
    /// with one upstream session, deleted when the client closes.
    ///
    /// # Errors
    /// [`McpError::Config`] when `url` is not a URL; [`McpError::Io`] when the client
    /// cannot be read.
    #[cfg(feature = "http")]
    pub async fn run_to_url<CI, CO>(
        self,
        client_in: CI,
        client_out: CO,
        url: impl Into<String>,
    ) -> Result<ProxyReport, McpError>
    where
        CI: AsyncRead + Unpin + Send + 'static,
        CO: AsyncWrite + Unpin + Send + 'static,
    {
        let url = url.into();
        crate::http::stdio_to_url(&self.guard, self.passport_out, &url, client_in, client_out).await
    }
}

/// Writes each queued message as one line.
pub(crate) async fn write_lines<W: AsyncWrite + Unpin>(
    mut queue: mpsc::Receiver<String>,
    mut out: W,
    peer: &'static str,
    stop: Option<Arc<tokio::sync::Notify>>,
) -> Result<(), McpError> {
    loop {
        let next = match &stop {
            Some(stop) => tokio::select! {
                biased;
                line = queue.recv() => line,
                () = stop.notified() => None,
            },
            None => queue.recv().await,
        };
        let Some(line) = next else {
            break;
        };
        // One write per batch, the newline included: a peer reading lines from a pipe
        // is woken once, not once for the message and again for its newline.
        let mut batch = line.into_bytes();
        batch.push(b'\n');
        while batch.len() < BATCH_BYTES {
            let Ok(more) = queue.try_recv() else {
                break;
            };
            batch.extend_from_slice(more.as_bytes());
            batch.push(b'\n');
        }
        let io = |source| McpError::Io {
            what: format!("writing to {peer}"),
            source,
        };
        out.write_all(&batch).await.map_err(io)?;
        out.flush().await.map_err(io)?;
    }
    let _ = out.shutdown().await;
    Ok(())
}

/// One line of at most `max` bytes, without its newline; `Ok(None)` at the end.
/// A longer line is read to its end and reported as `Err(len)`, never held whole.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    peer: &'static str,
) -> Result<Option<Result<String, usize>>, McpError> {
    let mut line = Vec::new();
    let mut total = 0_usize;
    let mut overflow = false;
    loop {
        let chunk = reader.fill_buf().await.map_err(|source| McpError::Io {
            what: format!("reading from {peer}"),
            source,
        })?;
        if chunk.is_empty() {
            if total == 0 {
                return Ok(None);
            }
            break;
        }
        let (part, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(end) => (chunk.get(..end).unwrap_or_default(), Some(end + 1)),
            None => (chunk, None),
        };
        total = total.saturating_add(part.len());
        if total > max {
            overflow = true;
            line.clear();
        } else if !overflow {
            line.extend_from_slice(part);
        }
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            break;
        }
    }
    if overflow {
        return Ok(Some(Err(total)));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(
        String::from_utf8(line).map_err(|error| error.into_bytes().len()),
    ))
}

/// Reads the client's messages and routes each.
pub(crate) async fn from_client<R: AsyncBufRead + Unpin>(
    shared: Arc<Shared>,
    mut reader: R,
    max: usize,
) -> Result<(), McpError> {
    while let Some(line) = read_line(&mut reader, max, "the client").await? {
        match line {
            Ok(text) => shared.client_text(text).await?,
            Err(len) => {
                let error = rpc(
                    INVALID_REQUEST,
                    &format!(
                        "kest: a message of {len} bytes is not UTF-8 or exceeds the limit of {max} bytes"
                    ),
                );
                send(&shared.to_client, error.response(&Value::Null)).await;
            }
        }
    }
    Ok(())
}

impl Shared {
    /// A relay for one session of `guard`: what the client is to get goes to
    /// `to_client`, what the server is to get to `to_server`.
    pub(crate) fn new(
        guard: &McpGuard,
        to_client: mpsc::Sender<String>,
        to_server: mpsc::Sender<String>,
        passport_out: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Self {
            session: guard.session(),
            to_client,
            to_server,
            waiting: Mutex::new(HashMap::new()),
            cancelled: Mutex::new(std::collections::HashSet::new()),
            initializing: Mutex::new(Vec::new()),
            passport_out,
            file: tokio::sync::Mutex::new(()),
            report: Mutex::new(ProxyReport::default()),
            own_ids: format!("kest-proxy:{}:", uuid::Uuid::new_v4()),
        })
    }

    /// The session this relay's calls are recorded in.
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "used by the HTTP side")
    )]
    pub(crate) const fn session(&self) -> &Session {
        &self.session
    }

    /// What the relay has done so far.
    pub(crate) fn report(&self) -> ProxyReport {
        *lock(&self.report)
    }

    /// Routes one message from the client (UTF-8, within the size limit).
    ///
    /// # Errors
    /// [`McpError::Io`] when the server's queue is closed.
    pub(crate) async fn client_text(self: &Arc<Self>, text: String) -> Result<(), McpError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let message = match parse_strict(&text) {
            Ok(message) => message,
            Err(error) => {
                let error = rpc(
                    PARSE_ERROR,
                    &format!("kest: the message is not JSON the proxy accepts: {error}"),
                );
                send(&self.to_client, error.response(&Value::Null)).await;
                return Ok(());
            }
        };
        self.client_message(text, &message).await
    }

    /// Routes one message from the client, `message` being `text` as
    /// [`parse_strict`] read it (a transport that has parsed it already passes both).
    ///
    /// # Errors
    /// [`McpError::Io`] when the server's queue is closed.
    pub(crate) async fn client_message(
        self: &Arc<Self>,
        text: String,
        message: &Value,
    ) -> Result<(), McpError> {
        let object = match route(message) {
            Route::Refuse(error) => {
                send(&self.to_client, error.response(&Value::Null)).await;
                return Ok(());
            }
            Route::Guard { kind, id, object } => {
                let shared = Arc::clone(self);
                let (id, object) = (id.clone(), object.clone());
                tokio::spawn(async move { guarded(shared, kind, id, object, text).await });
                return Ok(());
            }
            Route::Forward(object) => object,
        };
        let method = object.get("method").and_then(Value::as_str);
        let id = object.get("id");
        match (method, id) {
            (Some(method), Some(id)) => {
                if method == "initialize" {
                    if let Some(info) = object.get("params").and_then(|p| p.get("clientInfo")) {
                        self.session.client_said(info);
                    }
                    let mut initializing = lock(&self.initializing);
                    // A client repeating `initialize` cannot grow this without bound.
                    if initializing.len() >= MAX_INITIALIZING {
                        initializing.remove(0);
                    }
                    initializing.push(id.to_string());
                }
                forward(&self.to_server, text).await
            }
            (Some(method), None) => {
                if method == "notifications/cancelled" {
                    let request = object
                        .get("params")
                        .and_then(|params| params.get("requestId"))
                        .map(Value::to_string);
                    if let Some(request) = request
                        && lock(&self.waiting).contains_key(&request)
                    {
                        // If the server still answers, the tool ran: the call is
                        // recorded, and the answer withheld as the client asked.
                        lock(&self.cancelled).insert(request);
                    }
                }
                let initialized = method == "notifications/initialized";
                forward(&self.to_server, text).await?;
                if initialized {
                    tokio::spawn(check_tools(Arc::clone(self)));
                }
                Ok(())
            }
            // Answers to the server's own requests, and anything else: unchanged.
            _ => forward(&self.to_server, text).await,
        }
    }

    /// Routes one message from the server: an answer to a guarded request goes back
    /// through the hook, everything else to the client unchanged. `false` once the
    /// client's queue is closed.
    pub(crate) async fn server_text(&self, text: String) -> bool {
        let answer = parse_strict(&text).ok().and_then(|message| {
            let is_answer = message.get("method").is_none()
                && (message.get("result").is_some() || message.get("error").is_some());
            let id = message.get("id").map(Value::to_string)?;
            is_answer.then_some((id, message))
        });
        if let Some((id, message)) = answer {
            let waiting = lock(&self.waiting).remove(&id);
            if let Some(waiting) = waiting {
                let _ = waiting.send(message);
                return true;
            }
            let initializing = {
                let mut pending = lock(&self.initializing);
                let found = pending.iter().position(|pending| *pending == id);
                found.map(|at| pending.swap_remove(at)).is_some()
            };
            if initializing
                && let Some(name) = message
                    .get("result")
                    .and_then(|r| r.get("serverInfo"))
                    .and_then(|info| info.get("name"))
                    .and_then(Value::as_str)
            {
                self.session.server_said(name);
            }
        }
        self.to_client.send(text).await.is_ok()
    }

    /// The server is gone: every call still waiting ends unrecorded.
    pub(crate) fn server_gone(&self) {
        lock(&self.waiting).clear();
    }
}

/// Where a client's message goes.
pub(crate) enum Route<'m> {
    /// Answered with this error; nothing is forwarded.
    Refuse(RpcError),
    /// Through the hook.
    Guard {
        kind: Kind,
        id: &'m Value,
        object: &'m Map<String, Value>,
    },
    /// To the server as read.
    Forward(&'m Map<String, Value>),
}

/// Decides where a parsed client message goes. Whatever names a guarded method goes
/// through the hook or is refused: a batch (it could hide one), and a guarded method
/// sent as a notification (no `id`), which a lenient server might still run.
pub(crate) fn route(message: &Value) -> Route<'_> {
    let Value::Object(object) = message else {
        return Route::Refuse(rpc(
            INVALID_REQUEST,
            "kest: the proxy takes one JSON-RPC message per line; batches are refused",
        ));
    };
    let kind = object
        .get("method")
        .and_then(Value::as_str)
        .and_then(Kind::of_method);
    match (kind, object.get("id")) {
        (Some(kind), Some(id)) => Route::Guard { kind, id, object },
        (Some(kind), None) => Route::Refuse(rpc(
            INVALID_REQUEST,
            &format!("kest: {} must be a request with an id", kind.method()),
        )),
        (None, _) => Route::Forward(object),
    }
}

/// What the proxy does with one line from the client (for the fuzz target).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzRoute {
    /// Answered with an error; nothing forwarded.
    Refused,
    /// Decided by the hook.
    Guarded(Kind),
    /// Forwarded as read.
    Forwarded,
}

/// Where the proxy sends one line from the client (for the fuzz target).
#[doc(hidden)]
pub fn fuzz_route(line: &str) -> FuzzRoute {
    let Ok(message) = parse_strict(line) else {
        return FuzzRoute::Refused;
    };
    match route(&message) {
        Route::Refuse(_) => FuzzRoute::Refused,
        Route::Guard { kind, .. } => FuzzRoute::Guarded(kind),
        Route::Forward(_) => FuzzRoute::Forwarded,
    }
}

/// Reads the server's messages and routes each.
pub(crate) async fn from_server<R: AsyncBufRead + Unpin>(
    shared: Arc<Shared>,
    mut reader: R,
    max: usize,
) -> Result<(), McpError> {
    while let Some(line) = read_line(&mut reader, max, "the server").await? {
        let Ok(text) = line else {
            tracing::error!(
                max,
                "kest-mcp: the server sent a message over the size limit or not UTF-8; dropped"
            );
            continue;
        };
        if !shared.server_text(text).await {
            break;
        }
    }
    shared.server_gone();
    Ok(())
}

/// The server's answer to a guarded request, or why there is none.
#[derive(Debug)]
enum Answer {
    Error(Value),
    Cancelled,
}

/// One guarded request: the hook, the server as the operation, the answer with lineage.
async fn guarded(
    shared: Arc<Shared>,
    kind: Kind,
    id: Value,
    object: Map<String, Value>,
    text: String,
) {
    let answer = guarded_answer(&shared, kind, &id, &object, text).await;
    if lock(&shared.cancelled).remove(&id.to_string()) {
        return;
    }
    let response = match answer {
        Ok(Some(response)) => response,
        Ok(None) => return,
        Err(error) => {
            if error.is_refused() {
                lock(&shared.report).refused += 1;
            }
            error.log(kind);
            error.to_rpc_error().response(&id)
        }
    };
    send(&shared.to_client, response).await;
}

async fn guarded_answer(
    shared: &Arc<Shared>,
    kind: Kind,
    id: &Value,
    object: &Map<String, Value>,
    text: String,
) -> Result<Option<Value>, McpError> {
    let params = object.get("params").and_then(Value::as_object);
    let name_member = if kind == Kind::Resource {
        "uri"
    } else {
        "name"
    };
    let invalid = |reason: &str| McpError::Meta {
        method: kind.method(),
        target: String::new(),
        reason: reason.to_owned(),
    };
    let name = params
        .and_then(|params| params.get(name_member))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("params.{name_member} is missing or not a string")))?;
    let arguments = match params.and_then(|params| params.get("arguments")) {
        None | Some(Value::Null) => None,
        Some(Value::Object(arguments)) => Some(arguments),
        Some(_) => return Err(invalid("params.arguments is not an object")),
    };
    let baggage = match params
        .and_then(|params| params.get("_meta"))
        .map(|meta| meta.get("baggage"))
    {
        None | Some(None) => None,
        Some(Some(Value::String(baggage))) => Some(baggage.as_str()),
        Some(Some(_)) => return Err(invalid("it is not a string")),
    };
    let key = id.to_string();
    let request = Request {
        kind,
        name,
        arguments,
        baggage,
    };
    let run = async {
        let (answer, waiting) = oneshot::channel();
        {
            let mut table = lock(&shared.waiting);
            if table.contains_key(&key) {
                return Err(Answer::Error(
                    rpc(
                        INVALID_REQUEST,
                        "kest: a request with this id is already in flight",
                    )
                    .response(id),
                ));
            }
            if table.len() >= MAX_IN_FLIGHT {
                let message =
                    format!("kest: {MAX_IN_FLIGHT} calls are already waiting for the server");
                return Err(Answer::Error(rpc(INVALID_REQUEST, &message).response(id)));
            }
            table.insert(key.clone(), answer);
        }
        if shared.to_server.send(text).await.is_err() {
            lock(&shared.waiting).remove(&key);
            return Err(Answer::Cancelled);
        }
        let message = waiting.await.map_err(|_| Answer::Cancelled)?;
        if message.get("error").is_some() {
            return Err(Answer::Error(message));
        }
        Ok(message)
    };
    let hash = |message: &Value| kest::hash_serialized(&message.get("result"));
    match shared.session.call(request, run, hash).await {
        Ok(recorded) => {
            let mut message = recorded.output;
            let meta = message
                .get_mut("result")
                .and_then(Value::as_object_mut)
                .map(|result| result.entry("_meta").or_insert_with(|| json!({})));
            match meta.and_then(Value::as_object_mut) {
                Some(meta) => {
                    meta.insert("baggage".to_owned(), Value::String(recorded.baggage));
                }
                None => {
                    return Err(McpError::ResultMeta {
                        method: kind.method(),
                        target: kest::canon::escape_untrusted(name, 120),
                    });
                }
            }
            lock(&shared.report).recorded += 1;
            shared.write_passport().await;
            Ok(Some(message))
        }
        Err(CallError::Kest(error)) => Err(error),
        Err(CallError::Server(Answer::Error(message))) => Ok(Some(message)),
        Err(CallError::Server(Answer::Cancelled)) => Ok(None),
    }
}

impl Shared {
    /// Rewrites the passport file with the session's passport, atomically.
    async fn write_passport(&self) {
        let Some(path) = &self.passport_out else {
            return;
        };
        let _one_at_a_time = self.file.lock().await;
        let json = self.session.passport().to_json();
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let written = async {
            tokio::fs::write(&temporary, json.as_bytes()).await?;
            tokio::fs::rename(&temporary, path).await
        }
        .await;
        if let Err(error) = written {
            tracing::error!(path = %path.display(), error = %error, "kest-mcp: cannot write the passport file");
        }
    }
}

/// Lists the server's tools once the session is up, and warns about every configured
/// tool it does not offer (a typo in `[mcp.tools]` would otherwise never match).
async fn check_tools(shared: Arc<Shared>) {
    let mut offered = Vec::new();
    let mut cursor: Option<Value> = None;
    for page in 0..MAX_LIST_PAGES {
        let id = Value::String(format!("{}{page}", shared.own_ids));
        let (answer, waiting) = oneshot::channel();
        lock(&shared.waiting).insert(id.to_string(), answer);
        let params = cursor
            .take()
            .map_or_else(|| json!({}), |cursor| json!({"cursor": cursor}));
        let request = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params});
        if shared.to_server.send(request.to_string()).await.is_err() {
            return;
        }
        let Ok(message) = waiting.await else {
            return;
        };
        let result = message.get("result");
        if let Some(tools) = result
            .and_then(|r| r.get("tools"))
            .and_then(Value::as_array)
        {
            offered.extend(
                tools
                    .iter()
                    .filter_map(|tool| tool.get("name").and_then(Value::as_str))
                    .map(str::to_owned),
            );
        }
        match result.and_then(|r| r.get("nextCursor")) {
            Some(next) if !next.is_null() => cursor = Some(next.clone()),
            _ => break,
        }
    }
    for name in shared.session.guard().config().tool_names() {
        if !offered.iter().any(|offered| offered == name) {
            tracing::warn!(
                tool = %kest::canon::Untrusted::new(name),
                "kest-mcp: [mcp.tools] names a tool the server does not list"
            );
        }
    }
}

pub(crate) fn rpc(code: i64, message: &str) -> RpcError {
    RpcError {
        code,
        message: kest::canon::escape_untrusted(message, 1000),
        data: Value::Null,
    }
}

async fn send(queue: &mpsc::Sender<String>, message: Value) {
    let _ = queue.send(message.to_string()).await;
}

async fn forward(queue: &mpsc::Sender<String>, text: String) -> Result<(), McpError> {
    queue.send(text).await.map_err(|_| McpError::Io {
        what: "forwarding to the server".to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::BrokenPipe),
    })
}

#[cfg(test)]
mod tests {
    use super::{FuzzRoute, Kind, fuzz_route};

    #[test]
    fn each_guarded_method_is_routed_through_the_hook() {
        for (method, kind) in [
            ("tools/call", Kind::Tool),
            ("resources/read", Kind::Resource),
            ("prompts/get", Kind::Prompt),
        ] {
            let request =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{}}}}"#);
            assert_eq!(fuzz_route(&request), FuzzRoute::Guarded(kind));
            let notification = format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{{}}}}"#);
            assert_eq!(fuzz_route(&notification), FuzzRoute::Refused);
            assert_eq!(fuzz_route(&format!("[{request}]")), FuzzRoute::Refused);
            assert_eq!(Kind::of_method(kind.method()), Some(kind));
        }
        for forwarded in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"Tools/Call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
        ] {
            assert_eq!(fuzz_route(forwarded), FuzzRoute::Forwarded, "{forwarded}");
        }
        assert_eq!(fuzz_route("{"), FuzzRoute::Refused);
    }
}
