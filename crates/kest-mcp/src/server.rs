//! The server side: any rmcp server behind the hook.

use std::borrow::Cow;

use rmcp::model::{ClientRequest, MetaObject, ProtocolVersion, ServerResult};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, Service, ServiceRole};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Map, Value};

use crate::guard::{CallError, Kind, McpGuard, Request, Session};

/// An rmcp server whose `tools/call`, `resources/read` and `prompts/get` go through the
/// Kest hook: decided by policy before the handler runs, recorded after, with the
/// session's passport in the result's `_meta.baggage`. Everything else reaches the
/// handler unchanged. One `KestServer` is one MCP session (one flow): serve a new one per
/// connection.
///
/// A refused call never reaches the handler; the client gets a JSON-RPC error
/// ([`crate::REFUSED`]) whose message names the policy and the cause in one escaped line.
///
/// ```
/// use kest::identity::LocalEd25519;
/// use kest::policy::CedarEngine;
/// use kest::Kest;
/// use kest_mcp::{KestServer, McpConfig, McpGuard, Rule};
/// use rmcp::model::{ServerCapabilities, ServerConfig};
///
/// struct Tools;
/// impl rmcp::ServerHandler for Tools {
///     fn get_info(&self) -> ServerConfig {
///         ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kest = Kest::builder()
///     .identity(LocalEd25519::new("spiffe://example.org/tools")?)
///     .engine(CedarEngine::builder().policy_source("lookup", "permit(principal, action, resource);").build()?)
///     .build()?;
/// let guard = McpGuard::new(kest, McpConfig::new().with_tool("lookup", Rule::new())).await?;
/// let server = KestServer::new(Tools, &guard);
/// assert!(server.session().passport().is_empty());
/// // `server.serve(transport)` (rmcp::ServiceExt) runs it on any rmcp transport.
/// # Ok(())
/// # }
/// ```
pub struct KestServer<H> {
    inner: H,
    session: Session,
}

impl<H> std::fmt::Debug for KestServer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KestServer")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<H: ServerHandler> KestServer<H> {
    /// `inner` behind `guard`, in a new session.
    pub fn new(inner: H, guard: &McpGuard) -> Self {
        let session = guard.session();
        session.server_said(&inner.get_info().server_info.name);
        Self { inner, session }
    }

    /// The session: its flow and passport.
    #[must_use]
    pub const fn session(&self) -> &Session {
        &self.session
    }

    /// The wrapped handler.
    #[must_use]
    pub const fn inner(&self) -> &H {
        &self.inner
    }

    /// Runs a guarded request through the hook, the handler as the operation.
    async fn guarded(
        &self,
        kind: Kind,
        name: &str,
        arguments: Option<&Map<String, Value>>,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        let baggage = context.meta.get_baggage().map(str::to_owned);
        let wire = Request {
            kind,
            name,
            arguments,
            baggage: baggage.as_deref(),
        };
        // Boxed: the hook's future is large, and rmcp moves each request's future into
        // a task of its own; a pointer moves cheaper than the whole state.
        let recorded = Box::pin(self.session.call(
            wire,
            Service::handle_request(&self.inner, request, context),
            |result: &ServerResult| kest::hash_serialized(result),
        ))
        .await;
        match recorded {
            Ok(recorded) => {
                let mut result = recorded.output;
                if let Some(meta) = result_meta(&mut result) {
                    meta.get_or_insert_with(MetaObject::new)
                        .set_baggage(recorded.baggage);
                }
                Ok(result)
            }
            Err(CallError::Kest(error)) => {
                error.log(kind);
                Err(error.to_rpc_error().to_rmcp())
            }
            Err(CallError::Server(error)) => Err(error),
        }
    }
}

/// The `_meta` of a result that can carry lineage back.
fn result_meta(result: &mut ServerResult) -> Option<&mut Option<MetaObject>> {
    match result {
        ServerResult::CallToolResult(result) => Some(&mut result.meta),
        ServerResult::ReadResourceResult(result) => Some(&mut result.meta),
        ServerResult::GetPromptResult(result) => Some(&mut result.meta),
        _ => None,
    }
}

impl<H: ServerHandler> Service<RoleServer> for KestServer<H> {
    async fn handle_request(
        &self,
        request: <RoleServer as ServiceRole>::PeerReq,
        context: RequestContext<RoleServer>,
    ) -> Result<<RoleServer as ServiceRole>::Resp, ErrorData> {
        match &request {
            ClientRequest::CallToolRequest(call) => {
                let name = call.params.name.to_string();
                let arguments = call.params.arguments.clone();
                self.guarded(Kind::Tool, &name, arguments.as_ref(), request, context)
                    .await
            }
            ClientRequest::ReadResourceRequest(read) => {
                let uri = read.params.uri.clone();
                self.guarded(Kind::Resource, &uri, None, request, context)
                    .await
            }
            ClientRequest::GetPromptRequest(get) => {
                let name = get.params.name.clone();
                let arguments = get.params.arguments.clone();
                self.guarded(Kind::Prompt, &name, arguments.as_ref(), request, context)
                    .await
            }
            ClientRequest::InitializeRequest(initialize) => {
                if let Ok(info) = serde_json::to_value(&initialize.params.client_info) {
                    self.session.client_said(&info);
                }
                Service::handle_request(&self.inner, request, context).await
            }
            _ => Service::handle_request(&self.inner, request, context).await,
        }
    }

    async fn handle_notification(
        &self,
        notification: <RoleServer as ServiceRole>::PeerNot,
        context: NotificationContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Service::handle_notification(&self.inner, notification, context).await
    }

    fn get_info(&self) -> <RoleServer as ServiceRole>::Info {
        Service::get_info(&self.inner)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Service::supported_protocol_versions(&self.inner)
    }
}
