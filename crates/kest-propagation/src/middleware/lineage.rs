//! The lineage layer: `baggage` in, a [`Flow`] for the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};

use super::refuse;
use crate::{Baggage, BaggageLimits, Flow, PassportCodec};

/// Restores the passport of every request from its `baggage` header (all three tiers,
/// claim checks redeemed from the codec's store) and runs the rest of the stack in a
/// [`Flow`] continuing it. The flow is also put in the request's extensions.
///
/// A request whose lineage cannot be read (a chain tip without a readable passport, a
/// claim check that cannot be redeemed, malformed baggage) is refused with 400: the chain
/// never silently restarts.
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
            let header = request
                .headers()
                .get_all(http::header::HeaderName::from_static("baggage"))
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let restored = match Baggage::parse(&header, &limits) {
                Ok(baggage) => codec.read(&baggage).await,
                Err(error) => Err(error),
            };
            let (passport, caller) = match restored {
                Ok(restored) => restored,
                Err(error) => {
                    tracing::warn!(%error, "kest: refusing a request whose lineage cannot be read");
                    return Ok(refuse(
                        StatusCode::BAD_REQUEST,
                        format!("kest lineage: {error}"),
                    ));
                }
            };
            let flow = Flow::with_passport(passport.unwrap_or_default(), caller);
            request.extensions_mut().insert(flow.clone());
            flow.scope(async move { inner.call(request).await }).await
        })
    }
}
