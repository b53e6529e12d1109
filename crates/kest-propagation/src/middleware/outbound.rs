//! The outbound propagator: the current flow out in `baggage`.

use std::sync::Arc;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use crate::{Baggage, BaggageLimits, Flow, PassportCodec};

/// reqwest middleware that writes the current flow's passport (in the tier its size
/// calls for), its chain tip and its `kest.user/agent/task/jwt` into the `baggage` header
/// of every request, merged with baggage already on the request: other members are kept,
/// old Kest members replaced.
///
/// ```no_run
/// # fn main() {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(kest_propagation::PropagateLineage::new(kest_propagation::PassportCodec::new()))
///     .build();
/// # let _ = client;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PropagateLineage {
    codec: Arc<PassportCodec>,
}

impl PropagateLineage {
    /// A propagator encoding with `codec` (its store takes claim-checked passports).
    #[must_use]
    pub fn new(codec: PassportCodec) -> Self {
        Self {
            codec: Arc::new(codec),
        }
    }
}

#[async_trait::async_trait]
impl Middleware for PropagateLineage {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        if let Some(flow) = Flow::current() {
            let existing = request
                .headers()
                .get_all("baggage")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect::<Vec<_>>()
                .join(",");
            let mut baggage = Baggage::parse(&existing, &BaggageLimits::default())
                .map_err(reqwest_middleware::Error::middleware)?;
            self.codec
                .write(&mut baggage, &flow.passport(), &flow.caller())
                .await
                .map_err(reqwest_middleware::Error::middleware)?;
            let value = http::HeaderValue::from_str(&baggage.to_header())
                .map_err(reqwest_middleware::Error::middleware)?;
            request.headers_mut().remove("baggage");
            request.headers_mut().insert("baggage", value);
        }
        next.run(request, extensions).await
    }
}
