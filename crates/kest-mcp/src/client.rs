//! The client side: lineage out in each request's `_meta`, and back from each result.

use kest::passport::Passport;
use kest::propagation::{Baggage, BaggageLimits, PassportCodec};
use kest::{Caller, Flow, Kest, KestError};
use rmcp::model::{CallToolRequestParams, CallToolResult, MetaObject, RequestMetaObject};
use rmcp::service::{Peer, RoleClient};

use crate::McpError;

/// Carries a flow's passport to MCP servers and continues from what they return.
///
/// Each call puts the flow's passport in the request's `_meta.baggage` (the same W3C
/// baggage members and tiers as HTTP). The passport in the result's `_meta.baggage` is
/// verified against the runtime's trusted keys (the server's key must be trusted for the
/// server's principal) and must extend the one sent; only then does the flow continue
/// from it. A server that returns no lineage leaves the flow as it was.
///
/// ```
/// use kest::identity::LocalEd25519;
/// use kest::{Flow, Kest};
/// use kest_mcp::KestClient;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let kest = Kest::builder().identity(LocalEd25519::new("spiffe://example.org/agent")?).build()?;
/// let client = KestClient::new(&kest, Flow::new());
/// assert!(client.flow().passport().is_empty());
/// // client.call_tool(&peer, CallToolRequestParams::new("fetch_page")).await?
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct KestClient {
    codec: PassportCodec,
    flow: Flow,
    limits: BaggageLimits,
}

impl KestClient {
    /// A propagator for `flow`, reading and writing lineage as `kest` does.
    #[must_use]
    pub fn new(kest: &Kest, flow: Flow) -> Self {
        Self {
            codec: kest.codec().clone(),
            flow,
            limits: BaggageLimits::default(),
        }
    }

    /// The flow it carries.
    #[must_use]
    pub const fn flow(&self) -> &Flow {
        &self.flow
    }

    /// `_meta` holding the flow's passport as `baggage`, for any request.
    ///
    /// # Errors
    /// [`McpError::Returned`] wrapping the codec's error (a passport too large for the
    /// inline and compressed tiers with no claim store).
    pub async fn request_meta(&self) -> Result<RequestMetaObject, McpError> {
        let mut baggage = Baggage::new();
        self.codec
            .write(&mut baggage, &self.flow.passport(), &Caller::default())
            .await
            .map_err(|error| McpError::Returned(Box::new(KestError::Lineage(error))))?;
        let mut meta = MetaObject::new();
        meta.set_baggage(baggage.to_header());
        Ok(RequestMetaObject::from(meta))
    }

    /// Continues the flow from the lineage in a result's `_meta`, given the passport that
    /// was sent.
    ///
    /// # Errors
    /// [`McpError::Returned`] when it cannot be read or does not verify;
    /// [`McpError::NotExtended`] when it does not contain the tip that was sent.
    pub async fn continue_from(
        &self,
        meta: Option<&MetaObject>,
        sent: &Passport,
    ) -> Result<(), McpError> {
        let Some(header) = meta.and_then(MetaObject::get_baggage) else {
            tracing::debug!("kest-mcp: the server returned no lineage; the flow stays as it was");
            return Ok(());
        };
        let baggage = Baggage::parse(header, &self.limits)
            .map_err(|error| McpError::Returned(Box::new(KestError::Lineage(error))))?;
        let (returned, _) = self
            .codec
            .read(&baggage)
            .await
            .map_err(|error| McpError::Returned(Box::new(KestError::Lineage(error))))?;
        let Some(returned) = returned else {
            return Ok(());
        };
        if let Some(tip) = sent.tip_hash()
            && returned.find(&tip).is_none()
        {
            return Err(McpError::NotExtended {
                sent_tip: tip.to_hex(),
            });
        }
        self.flow
            .update(|passport| {
                *passport = returned;
                Ok(())
            })
            .map_err(|error| McpError::Returned(Box::new(KestError::Record(error.into()))))
    }

    /// Calls a tool with the flow's lineage, and continues the flow from the lineage the
    /// result carries.
    ///
    /// # Errors
    /// As [`KestClient::request_meta`] and [`KestClient::continue_from`];
    /// [`McpError::Service`] when the request fails (a refusal is a JSON-RPC error:
    /// [`McpError::refusal_of`] reads it).
    pub async fn call_tool(
        &self,
        peer: &Peer<RoleClient>,
        mut params: CallToolRequestParams,
    ) -> Result<CallToolResult, McpError> {
        let sent = self.flow.passport();
        let mut meta = params.meta.take().unwrap_or_default();
        meta.extend(self.request_meta().await?);
        params.meta = Some(meta);
        let result = peer
            .call_tool(params)
            .await
            .map_err(|error| McpError::Service(Box::new(error)))?;
        self.continue_from(result.meta.as_ref(), &sent).await?;
        Ok(result)
    }
}

impl McpError {
    /// The JSON-RPC error of a call Kest refused, if `self` is one: the server said
    /// [`crate::REFUSED`].
    #[must_use]
    pub fn refusal_of(&self) -> Option<&rmcp::ErrorData> {
        match self {
            Self::Service(error) => match error.as_ref() {
                rmcp::ServiceError::McpError(data)
                    if i64::from(data.code.0) == crate::error::REFUSED =>
                {
                    Some(data)
                }
                _ => None,
            },
            _ => None,
        }
    }
}
