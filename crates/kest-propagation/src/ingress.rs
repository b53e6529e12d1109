//! What a service trusts in the lineage it receives.

use std::fmt;
use std::sync::Arc;

use kest_crypto::{KeyResolver, StaticKeyResolver};
use kest_passport::{
    Limits, Passport, Strictness, UnverifiedPassport, VerificationReport, VerifiedEntries, Verifier,
};

use kest_trust::{OriginMap, TrustError, TrustScore};

use crate::PropagationError;
use crate::tiers::InboundPassport;

/// Environment variable: `true` lets inbound passports through without verifying them.
/// For local development only; it logs a warning when used.
pub const ENV_INSECURE_UNVERIFIED_LINEAGE: &str = "KEST_INSECURE_UNVERIFIED_LINEAGE";

/// How inbound passports are checked before a flow continues from them.
///
/// By default every inbound passport is verified (every signature, the chain rules and
/// the label audit) against the keys of a [`KeyResolver`]: static JWKs, peers' JWK Sets
/// fetched from their URLs, the SPIFFE trust bundle, or a chain of them. The default
/// resolver knows no key, so a service that has not said whom it trusts refuses every
/// passport it is sent. What a request *without* a passport means is the service's
/// [`Boundary`]: a new chain held to `user_input` trust at an edge (the default), a refusal
/// at an internal service.
///
/// Verified entries are remembered in a bounded [`VerifiedEntries`] cache, so a prefix
/// seen before costs a hash lookup per entry rather than a signature check.
///
/// Taking passports on faith is [`Ingress::insecure_unverified`], which needs
/// `KEST_INSECURE_UNVERIFIED_LINEAGE=true` and says so in the log.
///
/// ```
/// use kest_crypto::{SigningKey, StaticKeyResolver};
/// use kest_propagation::{Ingress, PassportCodec};
///
/// let peer = SigningKey::generate_ed25519()?;
/// let keys = StaticKeyResolver::new().with_key("spiffe://example.org/peer", peer.verifying_key().clone());
/// let codec = PassportCodec::new().ingress(Ingress::verify(keys));
/// assert!(codec.ingress_config().is_verified());
/// assert!(Ingress::insecure_unverified(None).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Ingress {
    mode: Mode,
    boundary: Boundary,
}

/// What a request that carries no passport means to a service.
///
/// The absence of lineage is never full trust. An **edge** service (a gateway, a public
/// API) takes requests from outside: one without a passport starts a new chain, and the
/// chain's first entry is held to the trust of the configured origin (`user_input`, 40, by
/// default), as if its input came from there. An **internal** service is only ever
/// called by its peers: a request without a verified passport is refused with 403 ("no
/// lineage") before anything runs, so stripping the `baggage` header cannot skip the
/// steps (a sanitizer, say) that came before.
///
/// ```
/// use kest_propagation::Boundary;
/// use kest_trust::OriginMap;
///
/// let edge = Boundary::default();
/// assert_eq!(edge.start_trust().map(|t| t.get()), Some(40));
/// let partner = Boundary::edge("third_party_api", &OriginMap::new())?;
/// assert_eq!(partner.start_trust().map(|t| t.get()), Some(60));
/// assert!(Boundary::edge("untrsuted", &OriginMap::new()).is_err());
/// assert_eq!(Boundary::Internal.start_trust(), None);
/// # Ok::<(), kest_trust::TrustError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boundary {
    /// A request without lineage starts a new chain whose data came from `origin`.
    Edge {
        /// The origin's name.
        origin: String,
        /// Its trust score: the ceiling of the new chain's first entry.
        trust: TrustScore,
    },
    /// A request without a verified passport is refused before anything runs.
    Internal,
}

/// The origin an edge service's new chains start from unless configured otherwise.
pub const DEFAULT_EDGE_ORIGIN: &str = "user_input";

impl Default for Boundary {
    /// An edge whose new chains start at `user_input`.
    fn default() -> Self {
        Self::Edge {
            origin: DEFAULT_EDGE_ORIGIN.to_owned(),
            trust: TrustScore::new(40).unwrap_or(TrustScore::MIN),
        }
    }
}

impl Boundary {
    /// An edge whose new chains start at `origin`, scored by `origins`.
    ///
    /// # Errors
    /// [`TrustError`] when `origins` does not know `origin`: a typo must not mean 100.
    pub fn edge(origin: &str, origins: &OriginMap) -> Result<Self, TrustError> {
        Ok(Self::Edge {
            origin: origin.to_owned(),
            trust: origins.score(origin)?,
        })
    }

    /// The trust a new chain starts under, for an edge; `None` for an internal service.
    #[must_use]
    pub const fn start_trust(&self) -> Option<TrustScore> {
        match self {
            Self::Edge { trust, .. } => Some(*trust),
            Self::Internal => None,
        }
    }
}

#[derive(Clone)]
enum Mode {
    Verify {
        keys: Arc<dyn KeyResolver>,
        cache: Arc<VerifiedEntries>,
        strictness: Strictness,
    },
    Unverified,
}

impl fmt::Debug for Ingress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Mode::Verify {
                cache, strictness, ..
            } => f
                .debug_struct("Ingress")
                .field("verify", &true)
                .field("strictness", strictness)
                .field("boundary", &self.boundary)
                .field("cache", cache)
                .finish_non_exhaustive(),
            Mode::Unverified => f
                .debug_struct("Ingress")
                .field("verify", &false)
                .field("boundary", &self.boundary)
                .finish(),
        }
    }
}

impl Default for Ingress {
    /// Verification against no key at all: every inbound passport is refused.
    fn default() -> Self {
        Self::verify(StaticKeyResolver::new())
    }
}

impl Ingress {
    /// Verifies inbound passports against the keys `keys` trusts.
    #[must_use]
    pub fn verify(keys: impl KeyResolver + 'static) -> Self {
        Self::verify_shared(Arc::new(keys))
    }

    /// As [`Ingress::verify`], with a resolver shared with other parts of the service.
    #[must_use]
    pub fn verify_shared(keys: Arc<dyn KeyResolver>) -> Self {
        Self {
            mode: Mode::Verify {
                keys,
                cache: Arc::new(VerifiedEntries::default()),
                strictness: Strictness::Auto,
            },
            boundary: Boundary::default(),
        }
    }

    /// The same ingress, trusting the keys of `also` besides its own (a service's own
    /// key, say, so that lineage it signed earlier and gets back verifies). The sources
    /// are united as [`kest_crypto::KeySources`] does: neither can shadow the other.
    /// Unchanged when not verifying.
    #[must_use]
    pub fn also_trusting(mut self, also: impl KeyResolver + 'static) -> Self {
        if let Mode::Verify { keys, .. } = &mut self.mode {
            let united = kest_crypto::KeySources::new()
                .with(Arc::clone(keys))
                .with(also);
            *keys = Arc::new(united);
        }
        self
    }

    /// What a request without a passport means ([`Boundary::default`]: an edge at
    /// `user_input`).
    #[must_use]
    pub fn boundary(mut self, boundary: Boundary) -> Self {
        self.boundary = boundary;
        self
    }

    /// The service's boundary.
    #[must_use]
    pub const fn boundary_config(&self) -> &Boundary {
        &self.boundary
    }

    /// Remembers verified entries in `cache` (shared, say, by the lineage layer and the
    /// runtime of one service). Ignored when not verifying.
    #[must_use]
    pub fn cache(mut self, cache: Arc<VerifiedEntries>) -> Self {
        if let Mode::Verify { cache: slot, .. } = &mut self.mode {
            *slot = cache;
        }
        self
    }

    /// How undeclared trust raises are treated (per entry, by default). Ignored when not
    /// verifying.
    #[must_use]
    pub fn strictness(mut self, strictness: Strictness) -> Self {
        if let Mode::Verify {
            strictness: slot, ..
        } = &mut self.mode
        {
            *slot = strictness;
        }
        self
    }

    /// Continues from inbound passports **without verifying them**: any caller can then
    /// claim any lineage, trust and taints. Allowed only when `setting` is `true` (the
    /// value of [`ENV_INSECURE_UNVERIFIED_LINEAGE`]), and logged as a warning.
    ///
    /// # Errors
    /// [`PropagationError::InsecureIngress`] for any other setting.
    pub fn insecure_unverified(setting: Option<&str>) -> Result<Self, PropagationError> {
        if setting.map(str::trim) != Some("true") {
            return Err(PropagationError::InsecureIngress);
        }
        tracing::warn!(
            "kest: inbound passports are accepted WITHOUT verification ({ENV_INSECURE_UNVERIFIED_LINEAGE}=true): \
             any caller can claim any lineage, trust and taints"
        );
        Ok(Self {
            mode: Mode::Unverified,
            boundary: Boundary::default(),
        })
    }

    /// [`Ingress::insecure_unverified`] with the value of
    /// `KEST_INSECURE_UNVERIFIED_LINEAGE`.
    ///
    /// # Errors
    /// As [`Ingress::insecure_unverified`].
    pub fn insecure_unverified_from_env() -> Result<Self, PropagationError> {
        Self::insecure_unverified(
            std::env::var(ENV_INSECURE_UNVERIFIED_LINEAGE)
                .ok()
                .as_deref(),
        )
    }

    /// Whether inbound passports are verified.
    #[must_use]
    pub const fn is_verified(&self) -> bool {
        matches!(self.mode, Mode::Verify { .. })
    }

    /// The verified-entry cache, when verifying.
    #[must_use]
    pub fn verified_entries(&self) -> Option<&Arc<VerifiedEntries>> {
        match &self.mode {
            Mode::Verify { cache, .. } => Some(cache),
            Mode::Unverified => None,
        }
    }

    /// The trusted keys, when verifying.
    #[must_use]
    pub fn keys(&self) -> Option<&Arc<dyn KeyResolver>> {
        match &self.mode {
            Mode::Verify { keys, .. } => Some(keys),
            Mode::Unverified => None,
        }
    }

    /// Chooses and checks the passport `inbound` carries. When a member names a signer
    /// the resolver does not know, the resolver is refreshed (peers' JWK Sets fetched
    /// again, at most once a second) and the check is made once more.
    ///
    /// # Errors
    /// As [`InboundPassport::choose_verified`].
    pub async fn admit(
        &self,
        inbound: &InboundPassport,
        claimed: Option<&str>,
        limits: &Limits,
    ) -> Result<Option<Passport>, PropagationError> {
        match &self.mode {
            Mode::Unverified => Ok(inbound
                .choose_unverified(claimed, limits)?
                .map(UnverifiedPassport::dangerous_assume_verified)),
            Mode::Verify {
                keys,
                cache,
                strictness,
            } => {
                let check = || {
                    let verifier = Verifier::new(keys.as_ref())
                        .cache(cache)
                        .strictness(*strictness)
                        .limits(*limits);
                    inbound.choose_verified(claimed, &verifier, limits)
                };
                let report = match check() {
                    Err(error) if error.wants_keys() && keys.refresh().await => check(),
                    other => other,
                }
                // The verifier counts the passports it refuses; count what failed before.
                .inspect_err(|error| {
                    if !matches!(error, PropagationError::Passport { .. }) {
                        crate::metrics::verification_failed(error.kind());
                    }
                })?;
                Ok(report.map(VerificationReport::into_passport))
            }
        }
    }
}
