//! The lineage layer: `baggage` in, a [`Flow`] for the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};

use kest_passport::PassportError;

use super::refuse;
use crate::{Baggage, BaggageLimits, Flow, PassportCodec, PropagationError};

/// Restores the passport of every request from its `baggage` header (all three tiers,
/// claim checks redeemed from the codec's store), verifies it as the codec's
/// [`crate::Ingress`] says, and runs the rest of the stack in a [`Flow`] continuing it.
/// The flow is also put in the request's extensions.
///
/// Nothing behind the layer runs for a refused request:
///
/// | lineage | answer |
/// |---|---|
/// | does not verify: forged, re-signed by an unknown key, edited, an undeclared trust raise, a dropped taint, truncated, members that conflict | 403, one line naming the member, entry and cause |
/// | none at an internal service ([`crate::Boundary::Internal`]): no passport, or an empty one | 403, "no lineage" |
/// | cannot be read: malformed baggage (bytes that are not visible ASCII, bad percent-encoding, bad members), a chain tip without a passport, a malformed chain tip, a claim check that cannot be redeemed, is too large or holds no passport's text | 400 |
/// | the claim-check store fails or does not answer in time | 503 |
///
/// A request without lineage at an edge service (the default [`crate::Boundary`]) starts a
/// new chain held to the edge's origin (`user_input` unless configured), never at full
/// trust.
///
/// Each refusal is logged with the cause, the entry's index and its `entry_id`. The
/// chain never silently restarts, and never continues from lineage nobody checked.
#[derive(Debug, Clone)]
pub struct LineageLayer {
    codec: Arc<PassportCodec>,
    limits: BaggageLimits,
}

impl LineageLayer {
    /// A layer decoding with `codec` (its store redeems claim checks).
    #[must_use]
    pub fn new(codec: PassportCodec) -> Self {
        Self {
            codec: Arc::new(codec),
            limits: BaggageLimits::default(),
        }
    }

    /// Limits on inbound baggage (64 members, 8192 bytes by default).
    #[must_use]
    pub const fn limits(mut self, limits: BaggageLimits) -> Self {
        self.limits = limits;
        self
    }
}

impl<S> tower::Layer<S> for LineageLayer {
    type Service = Lineage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Lineage {
            inner,
            codec: Arc::clone(&self.codec),
            limits: self.limits,
        }
    }
}

/// The service [`LineageLayer`] makes.
#[derive(Debug, Clone)]
pub struct Lineage<S> {
    inner: S,
    codec: Arc<PassportCodec>,
    limits: BaggageLimits,
}

impl<S, B, R> tower::Service<Request<B>> for Lineage<S>
where
    S: tower::Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    R: From<String>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let codec = Arc::clone(&self.codec);
        let limits = self.limits;
        Box::pin(async move {
            let baggage = match baggage_header(&request)
                .and_then(|header| Baggage::parse(&header, &limits))
            {
                Ok(baggage) => baggage,
                Err(error) => {
                    // Refused before the codec saw it; the codec counts what it refuses.
                    crate::metrics::verification_failed(error.kind());
                    return Ok(refusal(&error));
                }
            };
            let raw_json = baggage.has_raw_json_passport();
            let (passport, caller) = match codec.read(&baggage).await {
                Ok(restored) => restored,
                Err(error) => return Ok(refusal(&error)),
            };
            if raw_json {
                note_raw_json_peer(passport.as_ref());
            }
            let flow = match passport.filter(|passport| !passport.is_empty()) {
                Some(passport) => Flow::with_passport(passport, caller),
                None => match codec.ingress_config().boundary_config().start_trust() {
                    Some(start) => Flow::at_edge(start, caller),
                    None => {
                        let error = PropagationError::NoLineage;
                        crate::metrics::verification_failed(error.kind());
                        return Ok(refusal(&error));
                    }
                },
            };
            request.extensions_mut().insert(flow.clone());
            flow.scope(async move { inner.call(request).await }).await
        })
    }
}

/// Every `baggage` header of the request, joined as one list (RFC 9110 allows a list
/// header to be split). A header that is not visible ASCII is malformed, never skipped:
/// W3C baggage percent-encodes everything else.
fn baggage_header<B>(request: &Request<B>) -> Result<String, PropagationError> {
    let mut joined = String::new();
    for (index, value) in request
        .headers()
        .get_all(http::header::HeaderName::from_static("baggage"))
        .iter()
        .enumerate()
    {
        let text = value
            .to_str()
            .map_err(|_| PropagationError::HeaderNotText { index })?;
        if index > 0 {
            joined.push(',');
        }
        joined.push_str(text);
    }
    Ok(joined)
}

/// Peers already told about, so that each is logged once.
static RAW_JSON_PEERS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
/// Peers remembered at most; beyond, the rest are not logged (never unbounded memory).
const RAW_JSON_PEERS_MAX: usize = 1024;

/// Logs, once per peer (the workload that signed the passport's last entry), that its
/// `baggage` header carried the passport as raw JSON, which is not W3C baggage.
fn note_raw_json_peer(passport: Option<&kest_passport::Passport>) {
    let peer = passport
        .and_then(kest_passport::Passport::tip)
        .and_then(|tip| tip.entry().principal().map(str::to_owned))
        .unwrap_or_default();
    let mut seen = RAW_JSON_PEERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if seen.len() >= RAW_JSON_PEERS_MAX || seen.contains(&peer) {
        return;
    }
    tracing::warn!(
        peer = %kest_canon::Untrusted::new(&peer),
        "kest: read a `kest.passport` baggage member written as raw JSON with unencoded commas \
         (the Python package's interceptor does this); it is not valid W3C baggage, but its \
         passport verified"
    );
    seen.push(peer);
}

/// The answer to a request whose lineage was refused, logged with what failed where.
fn refusal<R: From<String>>(error: &PropagationError) -> Response<R> {
    let (status, what) = if error.is_untrusted() {
        (StatusCode::FORBIDDEN, "does not verify")
    } else if matches!(error, PropagationError::Store { .. }) {
        (StatusCode::SERVICE_UNAVAILABLE, "cannot be fetched")
    } else {
        (StatusCode::BAD_REQUEST, "cannot be read")
    };
    let (member, index, entry_id) = match error {
        PropagationError::Passport { key, source } => match source {
            PassportError::Entry {
                index, entry_id, ..
            } => (Some(*key), Some(*index), entry_id.as_deref()),
            _ => (Some(*key), None, None),
        },
        _ => (None, None, None),
    };
    tracing::warn!(
        member,
        index,
        entry_id,
        cause = %error,
        status = status.as_u16(),
        "kest: refusing a request whose lineage {what}"
    );
    refuse(status, format!("kest lineage: {error}"))
}
